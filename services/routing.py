"""Step 4: route long-context traffic to a dedicated Deployment.

A prompt's length is in the request body, which L7 routing cannot see, so clients (or the
gateway) classify requests with the header ``x-context-class: long``. This module finds the
router that sends a Deployment's Service its traffic (a Gateway API HTTPRoute or an Istio
VirtualService), and plans a ``<name>-long`` Deployment and Service built from a known-good
template with a larger max model len, plus the header rule that sends long requests there.
"""

from __future__ import annotations

import copy
from typing import Any

from services.errors import ConflictError, InvalidError, NotFoundError, SkewmitError
from services.guarded_apply import apply_change, kubectl_apply
from services.kube import Cluster

# LENGTH_FACTOR and the route_rules constants are re-exported for existing importers.
from services.long_context_template import LENGTH_FACTOR as LENGTH_FACTOR
from services.long_context_template import _long_template
from services.models import Finding, Plan, RouterInfo, Severity, Step
from services.names import check_name
from services.rollout import CHANGE_CAUSE, history, strip_hash
from services.route_rules import HEADER as HEADER
from services.route_rules import HEADER_VALUE as HEADER_VALUE
from services.route_rules import HTTPROUTE as HTTPROUTE
from services.route_rules import HTTPROUTE_MAX_RULES as HTTPROUTE_MAX_RULES
from services.route_rules import VIRTUALSERVICE as VIRTUALSERVICE
from services.route_rules import VS_RULE_NAME as VS_RULE_NAME
from services.route_rules import (
    _httproute_refs,
    _is_long_httproute_rule,
    _is_long_vs_rule,
    _no_router_notes,
    _route_change,
    _vs_refs,
)

Obj = dict[str, Any]
NONE = "none"
LONG_SUFFIX = "-long"
DEFAULT_MODEL_LIMIT = 32768  # Llama-class models: raise it where the model supports more
LONG_FOR = "skewmit.io/long-context-for"


def _served(cluster: Cluster, kind: str) -> bool:
    """Whether the API server serves a custom resource kind: KubeCluster.exists, else a list
    that does not fail (the Cluster protocol does not declare exists)."""
    exists = getattr(cluster, "exists", None)
    if callable(exists):
        return bool(exists(kind))
    try:
        cluster.list(kind, "")
    except SkewmitError:
        return False
    return True


# --- detection ----------------------------------------------------------------------------


def _selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def deployment_services(cluster: Cluster, namespace: str, deployment: Obj) -> list[Obj]:
    """The Services whose selector picks the Deployment's pods, by name."""
    labels = deployment["spec"]["template"].get("metadata", {}).get("labels") or {}
    return sorted(
        (
            svc
            for svc in cluster.list("Service", namespace)
            if _selector_matches(svc.get("spec", {}).get("selector") or {}, labels)
        ),
        key=lambda s: str(s["metadata"]["name"]),
    )


def detect_router(cluster: Cluster, namespace: str, deployment: str) -> RouterInfo:
    """Which HTTPRoute or VirtualService in the namespace sends the Deployment's Service its
    traffic, the rule that does, and any rule already sending ``x-context-class: long``
    elsewhere. HTTPRoute wins where both exist. Kind ``none`` when the CRDs are absent or no
    route references the Service. Raises NotFoundError for an unknown Deployment."""
    dep = cluster.get("Deployment", namespace, deployment)
    services = {str(s["metadata"]["name"]): s for s in deployment_services(cluster, namespace, dep)}
    if not services:
        why = f"no Service selects the pods of deployment/{deployment}"
        return RouterInfo(NONE, "", namespace, deployment, "", None, notes=(why,))
    first = next(iter(services))
    found: list[tuple[str, Obj, list[tuple[int, Obj, str, int | None]]]] = []
    for kind, label, refs_of in (
        ("HTTPRoute", HTTPROUTE, _httproute_refs),
        ("VirtualService", VIRTUALSERVICE, _vs_refs),
    ):
        if found or not _served(cluster, kind):
            continue
        for route in sorted(cluster.list(kind, namespace), key=lambda r: r["metadata"]["name"]):
            refs = refs_of(route, namespace)
            if any(r[2] in services for r in refs):
                found.append((label, route, refs))
    if not found:
        why = f"no HTTPRoute or VirtualService in {namespace} sends to service/{first}"
        port = _first_port(services[first])
        return RouterInfo(NONE, "", namespace, deployment, first, port, notes=(why,))
    label, route, refs = found[0]
    is_long = _is_long_httproute_rule if label == HTTPROUTE else _is_long_vs_rule
    main = next((r for r in refs if r[2] in services and not is_long(r[1])), None)
    index, rule, service, port = main if main else (None, {}, first, None)
    if port is None:
        port = _first_port(services.get(service, services[first]))
    notes = [f"{len(found)} routes send to service/{first}; using the first"] if found[1:] else []
    return RouterInfo(
        kind=label,
        name=str(route["metadata"]["name"]),
        namespace=namespace,
        deployment=deployment,
        service=service,
        port=int(port) if port is not None else None,
        rule_index=index,
        rule=copy.deepcopy(rule),
        long_context_backend=next((r[2] for r in refs if is_long(r[1])), ""),
        resource_version=str(route["metadata"].get("resourceVersion", "")),
        notes=tuple(notes),
    )


def _first_port(service: Obj) -> int | None:
    ports = service.get("spec", {}).get("ports") or []
    return int(ports[0]["port"]) if ports and "port" in ports[0] else None


def route_findings(
    cluster: Cluster, namespace: str, deployment: str, info: RouterInfo | None = None
) -> list[Finding]:
    """Informational findings about long-context routing (``router-none``,
    ``long-context-routed`` or ``long-context-unrouted``), and a warning
    ``long-context-backend-unready`` when the header rule sends to a Service with no ready
    pod. ``info`` defaults to detect_router's. Raises what the cluster raises for the reads."""
    info = info or detect_router(cluster, namespace, deployment)
    detail = {"service": info.service, "backend": info.long_context_backend}
    if info.kind == NONE:
        where = f"service/{info.service}" if info.service else f"deployment/{deployment}"
        message = (
            f"no HTTPRoute or VirtualService sends traffic to {where}: a long-context "
            "Deployment can still be created, and its Service reached through your own "
            "gateway or by long-context clients directly"
        )
        return [
            Finding(
                Step.ROUTE,
                "router-none",
                Severity.INFO,
                message,
                f"deployment/{deployment}",
                detail,
            )
        ]
    subject = f"{info.kind}/{info.name}"
    backend = info.long_context_backend
    if not backend:
        message = (
            f"{info.kind} {info.name} sends every request to service/{info.service}, long "
            "prompts included: a dedicated long-context Deployment would keep them from "
            "slowing the whole fleet"
        )
        return [
            Finding(Step.ROUTE, "long-context-unrouted", Severity.INFO, message, subject, detail)
        ]
    message = f"requests with header {HEADER}: {HEADER_VALUE} go to service/{backend}"
    findings = [Finding(Step.ROUTE, "long-context-routed", Severity.INFO, message, subject, detail)]
    if not _ready_behind(cluster, namespace, backend):
        findings.append(
            Finding(
                Step.ROUTE,
                "long-context-backend-unready",
                Severity.WARNING,
                f"service/{backend} has no ready pod: requests carrying {HEADER}: "
                f"{HEADER_VALUE} find no endpoint",
                f"service/{backend}",
                detail,
            )
        )
    return findings


def _ready_behind(cluster: Cluster, namespace: str, service: str) -> bool:
    try:
        selector = cluster.get("Service", namespace, service)["spec"].get("selector") or {}
    except NotFoundError:
        return False
    labels = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    return bool(selector) and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for pod in cluster.list("Pod", namespace, label_selector=labels)
        for c in pod.get("status", {}).get("conditions") or []
    )


def describe(info: RouterInfo) -> list[str]:
    """Lines for the step's detail pane. Raises nothing."""
    if info.kind == NONE:
        return [*info.notes, "the long-context plan prints the routing instructions"]
    lines = [
        f"{info.kind}/{info.name} rule {info.rule_index} -> service/{info.service}:{info.port}",
        f"{HEADER}: {HEADER_VALUE} -> "
        + (f"service/{info.long_context_backend}" if info.long_context_backend else "(no rule)"),
    ]
    return lines + list(info.notes)


# --- the long-context Deployment ----------------------------------------------------------


def source_template(cluster: Cluster, namespace: str, deployment: str) -> tuple[Obj, int, str]:
    """(pod template, revision, why) to copy: the live revision when it has no drift findings,
    else the last-known-good one. Raises NotFoundError when neither exists."""
    revisions = history(cluster, namespace, deployment)
    current = next((r for r in revisions if r.current), None)
    lkg = next((r for r in revisions if r.last_known_good), None)
    if current is not None and not current.findings:
        chosen, why = current, "the live revision (no drift found in it)"
    elif lkg is not None:
        chosen, why = lkg, "the last-known-good revision"
    else:
        raise NotFoundError(
            f"deployment/{deployment} has no revision without drift to copy: pin its "
            "configuration first (step 2), then plan the long-context Deployment"
        )
    rs = cluster.get("ReplicaSet", namespace, chosen.replicaset)
    return strip_hash(rs["spec"]["template"]), chosen.number, f"revision {chosen.number}, {why}"


def _relabel(template: Obj, keys: set[str], long_name: str) -> tuple[Obj, dict[str, str]]:
    """The template with every key the main Deployment's or Service's selector uses given a
    ``-long`` value, so that neither selects the new pods; and the new selector."""
    out = copy.deepcopy(template)
    labels: dict[str, str] = out.setdefault("metadata", {}).setdefault("labels", {})
    for key in keys:
        labels[key] = f"{labels.get(key, long_name.removesuffix(LONG_SUFFIX))}{LONG_SUFFIX}"[-63:]
    labels["app"] = long_name
    return out, {k: labels[k] for k in sorted(keys | {"app"})}


def _refuse_existing(cluster: Cluster, namespace: str, name: str) -> None:
    for kind in ("Deployment", "Service"):
        try:
            cluster.get(kind, namespace, name)
        except NotFoundError:
            continue
        raise ConflictError(
            f"{kind.lower()}/{name} already exists in {namespace}: revert the earlier "
            f"long-context plan or delete it (kubectl delete {kind.lower()}/{name} -n "
            f"{namespace}) first"
        )


def _service_ports(services: list[Obj], template: Obj) -> list[Obj]:
    if services:
        keep = ("name", "port", "targetPort", "protocol", "appProtocol")
        return [{k: p[k] for k in keep if k in p} for p in services[0]["spec"].get("ports") or []]
    for container in template.get("spec", {}).get("containers") or []:
        for port in container.get("ports") or []:
            number = port["containerPort"]
            return [{"name": port.get("name", "http"), "port": number, "targetPort": number}]
    raise InvalidError(
        "no Service selects the Deployment and its containers declare no port: cannot tell "
        "which port the long-context Service should expose"
    )


def _gpus(template: Obj) -> int:
    total = 0
    for container in template.get("spec", {}).get("containers") or []:
        limits = (container.get("resources") or {}).get("limits") or {}
        try:
            total += int(str(limits.get("nvidia.com/gpu", 0)))
        except ValueError:
            continue
    return total


def long_context_plan(
    cluster: Cluster,
    namespace: str,
    deployment: str,
    *,
    max_model_len: int | None = None,
    replicas: int | None = None,
    model_limit: int = DEFAULT_MODEL_LIMIT,
) -> Plan:
    """Create ``<name>-long`` (Deployment and Service) from a known-good template with a larger
    max model len, and, where a router exists, a first rule sending ``x-context-class: long``
    to it. Reverting the plan deletes both objects and restores the route.

    The max model len defaults to 4x the template's, capped at ``model_limit``; replicas to a
    quarter of the main Deployment's (at least 1). Raises NotFoundError (no Deployment, no
    revision without drift), ConflictError (``<name>-long`` exists), ConfigError
    (``<name>-long`` is no valid Service name), InvalidError (no serving
    container, a length over the limit, replicas < 1, a full HTTPRoute, a rule already
    routing long-context requests).
    """
    dep = cluster.get("Deployment", namespace, deployment)
    long_name = f"{deployment}{LONG_SUFFIX}"
    # A Service name is a DNS-1035 label (63 characters, no dots): a name that fits the
    # Deployment but not the Service would fail half-way through the apply.
    for kind in ("Deployment", "Service"):
        check_name(kind, long_name)
    info = detect_router(cluster, namespace, deployment)
    if info.long_context_backend:
        raise InvalidError(
            f"{info.kind}/{info.name} already sends {HEADER}: {HEADER_VALUE} to "
            f"service/{info.long_context_backend}"
        )
    _refuse_existing(cluster, namespace, long_name)
    if replicas is not None and replicas < 1:
        raise InvalidError(f"replicas must be at least 1, got {replicas}")
    count = replicas or max(1, int(dep["spec"].get("replicas", 1)) // 4)
    template, revision, why = source_template(cluster, namespace, deployment)
    services = deployment_services(cluster, namespace, dep)
    keys = set((dep["spec"]["selector"].get("matchLabels") or {}).keys())
    for svc in services:
        keys |= set((svc["spec"].get("selector") or {}).keys())
    template, length, notes = _long_template(template, max_model_len, model_limit)
    template, selector = _relabel(template, keys, long_name)
    ports = _service_ports(services, template)
    port = info.port or int(ports[0]["port"])
    labels = {"app": long_name}
    annotations = {
        LONG_FOR: deployment,
        CHANGE_CAUSE: f"skewmit: long-context pool for deployment/{deployment} "
        f"(from revision {revision}, max model len {length})",
    }
    body: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": long_name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {"replicas": count, "selector": {"matchLabels": selector}, "template": template},
    }
    service: Obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": long_name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {LONG_FOR: deployment},
        },
        "spec": {"type": "ClusterIP", "selector": selector, "ports": ports},
    }
    # Server-side applied under skewmit's field manager: the new objects' fields are
    # skewmit's in managedFields, and a manager that got there first is a conflict shown
    # by name, never overwritten.
    changes = [
        apply_change("Deployment", namespace, body, None),
        apply_change("Service", namespace, service, None),
    ]
    kubectl = [
        f"{kubectl_apply(namespace, long_name + '.yaml')}  # the Deployment and Service "
        "shown in the diff",
    ]
    notes = [f"copied from {why}", *notes]
    if info.kind == NONE:
        notes += _no_router_notes(long_name, namespace, port)
    else:
        change, command = _route_change(cluster, info, long_name, port)
        changes.append(change)
        kubectl.append(command)
        notes.append(
            f"{info.kind}/{info.name}: a first rule sends {HEADER}: {HEADER_VALUE} to "
            f"service/{long_name}; other requests keep going to service/{info.service}"
        )
        notes.append(
            f"until {long_name} has a ready pod (the model must load first), requests that "
            "carry the header find no endpoint at a real gateway: tell clients to send it "
            f"once `kubectl rollout status deployment/{long_name}` succeeds"
        )
    kubectl.append(f"kubectl rollout status deployment/{long_name} -n {namespace}")
    undo = f"kubectl delete deployment/{long_name} service/{long_name} -n {namespace}"
    if info.kind != NONE:
        undo += f" and restore {info.kind}/{info.name}'s rules"
    notes.append(f"revert removes all of it ({undo})")
    gpus = _gpus(template) * count
    return Plan(
        step=Step.ROUTE,
        action="route.long-context",
        title=f"Route long-context traffic of deployment/{deployment} to {long_name}",
        changes=tuple(changes),
        kubectl=tuple(kubectl),
        tradeoff=(
            f"Uses {gpus} more GPU(s) for {count} long-context replica(s); only requests "
            f"that carry {HEADER}: {HEADER_VALUE} move (the prompt length is in the body, "
            "which routing cannot see), so clients or the gateway must set it"
        ),
        notes=tuple(notes),
    )


def route_actions(
    cluster: Cluster, namespace: str, deployment: str, info: RouterInfo
) -> list[dict[str, Any]]:
    """The step's one action, as the runbook's ActionSpec fields. Raises nothing."""
    long_name = f"{deployment}{LONG_SUFFIX}"
    reason = (
        f"{info.kind}/{info.name} already routes {HEADER}: {HEADER_VALUE}"
        if info.long_context_backend
        else ""
    )
    return [
        {
            "id": "route.long-context",
            "step": Step.ROUTE,
            "title": f"Create {long_name} and route long-context requests to it",
            "key": "l",
            "description": (
                f"A {long_name} Deployment and Service from a known-good template with a "
                f"{LENGTH_FACTOR}x max model len"
                + (f", and a first rule in {info.kind}/{info.name}" if info.kind != NONE else "")
            ),
            "kubectl": (f"kubectl rollout status deployment/{long_name} -n {namespace}",),
            "inputs": (
                {"name": "max_model_len", "prompt": "Max model len (empty = 4x, capped)"},
                {"name": "replicas", "prompt": "Replicas (empty = a quarter of the main)"},
            ),
            "available": not reason,
            "reason": reason,
        }
    ]


def _optional_int(inputs: dict[str, str], name: str) -> int | None:
    raw = (inputs.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise InvalidError(f"{name} must be a whole number, got {raw!r}")
    return int(raw)


def plan(
    cluster: Cluster, namespace: str, deployment: str, action_id: str, inputs: dict[str, str]
) -> Plan:
    """The runbook's entry: build the plan for ``route.long-context`` from operator input.
    Raises InvalidError for another action or a malformed number, and what
    long_context_plan raises."""
    if action_id != "route.long-context":
        raise InvalidError(f"unknown routing action {action_id!r}")
    return long_context_plan(
        cluster,
        namespace,
        deployment,
        max_model_len=_optional_int(inputs, "max_model_len"),
        replicas=_optional_int(inputs, "replicas"),
    )
