"""The fields the simulator's strict decoding knows are the official client's.

The simulator may not import the `kubernetes` client (it is an independent oracle), so the
fields it validates requests against are data: services/simulator/openapi_models.json, the one
table generated from the installed client's models (`.venv/bin/python -m
tests.simulator.test_openapi_models` rewrites it) that also serves /openapi/v2 and v3. This
test walks the client's `openapi_types`/`attribute_map` (themselves generated from the
Kubernetes OpenAPI document) from every kind a write can reach and fails when what
services/simulator/field_schema.py reads from the table drifts from them.
"""

from __future__ import annotations

import re

from kubernetes import client

from services.simulator import field_schema
from tests.simulator.test_openapi_models import definition_name

# The built-in kinds the simulator serves and writes can reach, by their client model.
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
    "autoscaling/v1/HorizontalPodAutoscaler": "V1HorizontalPodAutoscaler",
    "Job": "V1Job",
    "PodDisruptionBudget": "V1PodDisruptionBudget",
    "Lease": "V1Lease",
    "EndpointSlice": "V1EndpointSlice",
    "Eviction": "V1Eviction",
}
_MODEL = re.compile(r"^(?:List\[)?([A-Z]\w+)\]?$")


def _field_type(type_name: str) -> str:
    """A client type as the field table reads it: a definition name, "[]" + one, or ""."""
    match = _MODEL.fullmatch(type_name)
    if match is None or not hasattr(client, match[1]):
        return ""
    return ("[]" if type_name.startswith("List[") else "") + definition_name(match[1])


def client_fields() -> dict[str, dict[str, str]]:
    """Every model reachable from ROOTS, by definition name: its fields as the client has them."""
    models: dict[str, dict[str, str]] = {}
    todo = list(ROOTS.values())
    while todo:
        name = todo.pop()
        if definition_name(name) in models:
            continue
        model = getattr(client, name)
        fields = {
            model.attribute_map[attr]: _field_type(type_name)
            for attr, type_name in model.openapi_types.items()
        }
        models[definition_name(name)] = fields
        todo += [
            m[1]
            for t in model.openapi_types.values()
            if (m := _MODEL.fullmatch(t)) and hasattr(client, m[1])
        ]
    return models


def test_every_written_kind_is_checked_against_its_schema() -> None:
    assert field_schema.roots() == {kind: definition_name(m) for kind, m in ROOTS.items()}


def test_known_fields_match_the_installed_client() -> None:
    for name, fields in client_fields().items():
        assert field_schema.fields(name) == fields, (
            f"{name} drifted; regenerate: .venv/bin/python -m tests.simulator.test_openapi_models"
        )
