"""The simulator's OpenAPI schemas are generated from the official client's models.

`/openapi/v3` and `/openapi/v2` (what `kubectl explain` and client-side apply read) are built
by services/simulator/openapi.py from openapi_models.json: for each model reachable from the
built-in kinds the simulator serves, its definition name, description, required fields and
each property's type and description. That table is data generated here from the installed
`kubernetes` client (whose models are themselves generated from Kubernetes' OpenAPI document);
the simulator never imports the client. This test fails when the two drift;
`.venv/bin/python -m tests.simulator.test_openapi_models` rewrites the file.
"""

from __future__ import annotations

import json
import re
import sys
import typing
from typing import Any

import kubernetes
from kubernetes import client

from services.simulator import openapi_schemas

# The built-in kinds the simulator serves, by their client model.
ROOTS = {
    "Namespace": "V1Namespace",
    "Node": "V1Node",
    "Pod": "V1Pod",
    "Service": "V1Service",
    "Event": "CoreV1Event",
    "ConfigMap": "V1ConfigMap",
    "Secret": "V1Secret",
    "ServiceAccount": "V1ServiceAccount",
    "Endpoints": "V1Endpoints",
    "Deployment": "V1Deployment",
    "ReplicaSet": "V1ReplicaSet",
    "DaemonSet": "V1DaemonSet",
    "HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler",
    # A kind served in two versions is keyed by its apiVersion too (`kubectl autoscale` 1.32).
    "autoscaling/v1/HorizontalPodAutoscaler": "V1HorizontalPodAutoscaler",
    "Job": "V1Job",
    "PodDisruptionBudget": "V1PodDisruptionBudget",
    "Lease": "V1Lease",
    "EndpointSlice": "V1EndpointSlice",
    "Eviction": "V1Eviction",
    "Scale": "V1Scale",
    "DeleteOptions": "V1DeleteOptions",
    "Status": "V1Status",
}
# Packages of the definition names (io.k8s.api.<group>.<version>.<Name>), by name prefix.
_META = {
    "ObjectMeta", "ListMeta", "LabelSelector", "LabelSelectorRequirement",
    "ManagedFieldsEntry", "OwnerReference", "Condition", "DeleteOptions", "Preconditions",
    "Status", "StatusDetails", "StatusCause",
}  # fmt: skip
_PACKAGES = (
    (("Deployment", "ReplicaSet", "DaemonSet", "RollingUpdate"), "io.k8s.api.apps.v1"),
    (("Job", "PodFailurePolicy", "SuccessPolicy", "UncountedTerminated"), "io.k8s.api.batch.v1"),
    (("PodDisruptionBudget", "Eviction"), "io.k8s.api.policy.v1"),
    (("Lease",), "io.k8s.api.coordination.v1"),
    (("EndpointSlice", "EndpointConditions", "EndpointHints", "ForZone", "ForNode"),
     "io.k8s.api.discovery.v1"),
)  # fmt: skip
_AUTOSCALING_V1 = (
    "Scale", "ScaleSpec", "ScaleStatus", "HorizontalPodAutoscaler",
    "HorizontalPodAutoscalerSpec", "HorizontalPodAutoscalerStatus", "CrossVersionObjectReference",
)  # fmt: skip
_VERSIONED = re.compile(
    r"^(?:(Core|Discovery|Events|Storage)V1|(V\d+(?:alpha|beta)\d+)|V1|V2)([A-Z]\w*)$"
)
_MODEL = re.compile(r"^(List\[|Dict\[str, )?([A-Z]\w+)\]?$")


def definition_name(model: str) -> str:
    """The OpenAPI definition name of a client model (V1Container ->
    io.k8s.api.core.v1.Container)."""
    match = _VERSIONED.fullmatch(model)
    assert match is not None, model
    prefix, pre_release, name = match.groups()
    if pre_release:  # a feature-gated field's type (the client does not say its group)
        return f"io.k8s.api.core.{pre_release.lower()}.{name}"
    if model.startswith("V2"):
        return f"io.k8s.api.autoscaling.v2.{name}"
    if prefix == "Discovery":
        return f"io.k8s.api.discovery.v1.{name}"
    if name in _META:
        return f"io.k8s.apimachinery.pkg.apis.meta.v1.{name}"
    if name in _AUTOSCALING_V1:
        return f"io.k8s.api.autoscaling.v1.{name}"
    for starts, package in _PACKAGES:
        if name.startswith(starts) and not (name == "EndpointConditions" and prefix == "Core"):
            return f"{package}.{name}"
    return f"io.k8s.api.core.v1.{name}"


def _field(model: Any, attr: str) -> Any:
    """The pydantic field of an openapi_types attribute (`_continue` is `var_continue`...)."""
    if attr in model.model_fields:
        return model.model_fields[attr]
    wanted = model.attribute_map[attr]
    return next(
        f for name, f in model.model_fields.items() if wanted in (f.alias, f.serialization_alias)
    )


def _int_or_string(model: Any, attr: str) -> bool:
    args = typing.get_args(_field(model, attr).annotation)
    flat = [typing.get_args(a)[0] if typing.get_args(a) else a for a in args]
    return int in flat and str in flat


def _property(model: Any, attr: str, type_name: str) -> list[str]:
    """[type, description]: "string", "integer", "boolean", "number", "date-time",
    "int-or-string", "object", "[]T", "map[T]", or a model's definition name."""
    description = _field(model, attr).description or ""
    simple = {"str": "string", "int": "integer", "bool": "boolean", "float": "number"}
    if type_name in simple:
        return [simple[type_name], description]
    if type_name == "datetime":
        return ["date-time", description]
    if type_name == "object":
        return ["int-or-string" if _int_or_string(model, attr) else "object", description]
    for wrapper, mark in (("List[", "[]"), ("Dict[str, ", "map[")):
        if type_name.startswith(wrapper):
            inner = type_name[len(wrapper) : -1]
            item = _property(model, attr, inner)[0] if inner in simple else None
            if item is None:
                item = definition_name(inner) if hasattr(client, inner) else "object"
            return [mark + item + ("]" if mark == "map[" else ""), description]
    return [definition_name(type_name), description]


def _description(model: Any) -> str:
    doc = (model.__doc__ or "").split("Attributes:")[0]
    return " ".join(doc.split())


def build_table() -> dict[str, Any]:
    models: dict[str, Any] = {}
    todo = list(ROOTS.values())
    while todo:
        name = todo.pop()
        definition = definition_name(name)
        if definition in models:
            continue
        model = getattr(client, name)
        properties = {
            model.attribute_map[attr]: _property(model, attr, type_name)
            for attr, type_name in model.openapi_types.items()
        }
        required = sorted(
            model.attribute_map[attr]
            for attr in model.openapi_types
            if _field(model, attr).is_required()
        )
        models[definition] = {
            "description": _description(model),
            "required": required,
            "properties": dict(sorted(properties.items())),
        }
        for type_name in model.openapi_types.values():
            match = _MODEL.fullmatch(type_name)
            if match and hasattr(client, match[2]):
                todo.append(match[2])
    return {
        "source": f"kubernetes Python client {kubernetes.__version__} models",
        "roots": {kind: definition_name(model) for kind, model in ROOTS.items()},
        "models": dict(sorted(models.items())),
    }


def render() -> str:
    return json.dumps(build_table(), separators=(",", ":")) + "\n"


def test_openapi_models_match_the_installed_client() -> None:
    assert openapi_schemas.MODELS.read_text() == render(), (
        "regenerate: .venv/bin/python -m tests.simulator.test_openapi_models"
    )


if __name__ == "__main__":
    openapi_schemas.MODELS.write_text(render())
    sys.stdout.write(f"wrote {openapi_schemas.MODELS}\n")
