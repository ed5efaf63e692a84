"""Defaulting and validation, the part of admission a runbook exercises.

The real API server fills in defaults (so a Deployment read back has a strategy, a
revisionHistoryLimit, container pull policies...) and refuses invalid objects with 422.
"""

from __future__ import annotations

import json
import re
from typing import Any

from services.simulator import object_rules
from services.simulator.errors import invalid
from services.simulator.resources import ResourceType
from services.simulator.selectors import SelectorError, selector_from_spec

Obj = dict[str, Any]
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def go_string_map(labels: dict[str, Any]) -> str:
    """A label map as Go's %#v prints it in validation messages: map[string]string{"k":"v"}."""
    inner = ", ".join(f"{json.dumps(k)}:{json.dumps(str(v))}" for k, v in sorted(labels.items()))
    return "map[string]string{" + inner + "}"


def go_label_selector(selector: Obj) -> str:
    """A LabelSelector as Go's %#v prints it (the famous "field is immutable" message)."""
    labels = selector.get("matchLabels")
    shown_labels = go_string_map(labels) if labels else "map[string]string(nil)"
    requirements = []
    for req in selector.get("matchExpressions") or []:
        values = req.get("values")
        shown_values = (
            "[]string{" + ", ".join(json.dumps(str(v)) for v in values) + "}"
            if values
            else "[]string(nil)"
        )
        requirements.append(
            f"v1.LabelSelectorRequirement{{Key:{json.dumps(str(req.get('key', '')))}, "
            f"Operator:{json.dumps(str(req.get('operator', '')))}, Values:{shown_values}}}"
        )
    shown_reqs = (
        "[]v1.LabelSelectorRequirement{" + ", ".join(requirements) + "}"
        if requirements
        else "[]v1.LabelSelectorRequirement(nil)"
    )
    return f"v1.LabelSelector{{MatchLabels:{shown_labels}, MatchExpressions:{shown_reqs}}}"


def _default_container(container: Obj) -> None:
    image = str(container.get("image", ""))
    last = image.rsplit("/", 1)[-1]
    untagged = ":" not in last and "@" not in last
    latest = last.endswith(":latest")
    container.setdefault("imagePullPolicy", "Always" if (untagged or latest) else "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(kind)
        if isinstance(probe, dict):
            _default_probe(probe)


def _default_probe(probe: Obj) -> None:
    """The probe fields a manifest may leave out, as SetDefaults_Probe and friends fill them."""
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    http_get = probe.get("httpGet")
    if isinstance(http_get, dict):
        http_get.setdefault("scheme", "HTTP")
        http_get.setdefault("path", "/")
    grpc = probe.get("grpc")
    if isinstance(grpc, dict):
        grpc.setdefault("service", "")


def default_pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for container in spec.get("containers") or []:
        _default_container(container)
    for container in spec.get("initContainers") or []:
        _default_container(container)


def drop_nulls(value: Any) -> None:
    """Remove null fields in place, as decoding into typed Go structs does (kubectl sends
    `"creationTimestamp": null` inside pod templates; a real server never stores it)."""
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for item in value.values():
            drop_nulls(item)
    elif isinstance(value, list):
        for item in value:
            drop_nulls(item)


def default(kind: str, obj: Obj) -> None:
    """Fill in the defaults the real API server sets for `kind`, in place."""
    drop_nulls(obj)
    spec = obj.get("spec")
    if kind == "Pod" and isinstance(spec, dict):
        default_pod_spec(spec)
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("priority", 0)
        obj.setdefault("status", {"phase": "Pending", "qosClass": "BestEffort"})
    elif kind in ("Deployment", "ReplicaSet") and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        template = spec.setdefault("template", {})
        template.setdefault("metadata", {})
        default_pod_spec(template.setdefault("spec", {}))
        if kind == "Deployment":
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {})
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                rolling.setdefault("maxSurge", "25%")
                rolling.setdefault("maxUnavailable", "25%")
            obj.setdefault("status", {})
        else:
            obj.setdefault("status", {"replicas": 0})
    elif kind == "Service" and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
    elif kind == "Namespace":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj.setdefault("status", {"phase": "Active"})
        labels = obj["metadata"].setdefault("labels", {})
        labels.setdefault("kubernetes.io/metadata.name", obj["metadata"].get("name", ""))
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")


def _validate_pod_spec(path: str, spec: Any, causes: list[tuple[str, str]]) -> None:
    if not isinstance(spec, dict):
        causes.append((path, "Required value"))
        return
    containers = spec.get("containers")
    if not containers:
        causes.append((f"{path}.containers", "Required value"))
        return
    seen: set[str] = set()
    for i, container in enumerate(containers):
        name = container.get("name", "")
        where = f"{path}.containers[{i}]"
        if not name:
            causes.append((f"{where}.name", "Required value"))
        elif name in seen:
            causes.append((f"{where}.name", f'Duplicate value: "{name}"'))
        seen.add(name)
        if not container.get("image"):
            causes.append((f"{where}.image", "Required value"))
        for j, env in enumerate(container.get("env") or []):
            if not env.get("name"):
                causes.append((f"{where}.env[{j}].name", "Required value"))
        object_rules.validate_resources(container.get("resources"), f"{where}.resources", causes)


def validate(rt: ResourceType, obj: Obj, old: Obj | None) -> None:
    """Raise ApiError 422 when `obj` is not a valid `rt` (and, on update, not a valid change)."""
    causes: list[tuple[str, str]] = []
    meta = obj.get("metadata", {})
    name = str(meta.get("name", ""))
    if rt.builtin and name and not _DNS1123.match(name):
        causes.append(
            (
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain '
                "must consist of lower case alphanumeric characters, '-' or '.', and must "
                "start and end with an alphanumeric character (e.g. 'example.com', regex "
                "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?"
                "(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            )
        )
    if rt.builtin:
        object_rules.validate_labels(meta.get("labels"), "metadata.labels", causes)
    spec = obj.get("spec")
    if rt.kind == "Pod":
        _validate_pod_spec("spec", spec, causes)
        if old is not None and isinstance(spec, dict):
            # A pod's spec is immutable but for image, activeDeadlineSeconds and tolerations.
            def comparable(s: Obj) -> Obj:
                s = json.loads(canonical(s))
                for c in s.get("containers", []):
                    c.pop("image", None)
                for k in ("activeDeadlineSeconds", "tolerations", "nodeName"):
                    s.pop(k, None)
                return s

            if comparable(spec) != comparable(old.get("spec", {})):
                causes.append(
                    (
                        "spec",
                        "Forbidden: pod updates may not change fields other than "
                        "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                        "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions "
                        "to existing tolerations) or `spec.terminationGracePeriodSeconds`",
                    )
                )
    elif rt.kind in ("Deployment", "ReplicaSet") and isinstance(spec, dict):
        template_labels = (spec.get("template") or {}).get("metadata", {}).get("labels")
        object_rules.validate_labels(template_labels, "spec.template.metadata.labels", causes)
        _validate_pod_spec("spec.template.spec", spec.get("template", {}).get("spec"), causes)
        replicas = spec.get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 0:
            causes.append(
                ("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")
            )
        selector_spec = spec.get("selector")
        if not selector_spec:
            causes.append(("spec.selector", "Required value"))
        else:
            try:
                selector = selector_from_spec(selector_spec)
            except SelectorError as exc:
                causes.append(("spec.selector", f"Invalid value: {exc}"))
            else:
                labels = spec.get("template", {}).get("metadata", {}).get("labels") or {}
                if not selector.matches(labels):
                    causes.append(
                        (
                            "spec.template.metadata.labels",
                            f"Invalid value: "
                            f"{go_string_map(labels)}: `selector` does not match template "
                            "`labels`",
                        )
                    )
            if old is not None and old.get("spec", {}).get("selector") != selector_spec:
                causes.append(
                    (
                        "spec.selector",
                        f"Invalid value: {go_label_selector(selector_spec)}: field is immutable",
                    )
                )
    if causes:
        raise invalid(rt.kind, rt.group, name, causes)
