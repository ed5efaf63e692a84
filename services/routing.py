"""Step 4: route long-context traffic to a dedicated Deployment.

A prompt's length is in the request body, which L7 routing cannot see, so clients (or the
gateway) classify requests with the header ``x-context-class: long``. This module finds the
router that sends a Deployment's Service its traffic (a Gateway API HTTPRoute or an Istio
VirtualService), and plans a ``<name>-long`` Deployment and Service built from a known-good
template with a larger max model len, plus the header rule that sends long requests there.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from services.engines import (
    SGLANG,
    TGI,
    VLLM,
    engine_containers,
    parse_engine_config,
    parse_flags,
    parse_int,
    set_option,
    tgi_env,
)
from services.errors import ConflictError, InvalidError, NotFoundError, SkewmitError
from services.kube import Cluster
from services.models import Change, Finding, Plan, RouterInfo, Severity, Step
from services.rollout import CHANGE_CAUSE, history, strip_hash

Obj = dict[str, Any]
HEADER = "x-context-class"
HEADER_VALUE = "long"
HTTPROUTE = "httproute"
VIRTUALSERVICE = "virtualservice"
NONE = "none"
LONG_SUFFIX = "-long"
LENGTH_FACTOR = 4
DEFAULT_MODEL_LIMIT = 32768  # Llama-class models: raise it where the model supports more
LONG_FOR = "skewmit.io/long-context-for"
VS_RULE_NAME = "skewmit-long-context"
HTTPROUTE_MAX_RULES = 16  # gateway.networking.k8s.io/v1 HTTPRouteSpec.rules maxItems
_LENGTH_FLAG = {VLLM: "--max-model-len", TGI: "MAX_TOTAL_TOKENS", SGLANG: "--context-length"}


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


def _is_long_httproute_rule(rule: Obj) -> bool:
    return any(
        str(h.get("name", "")).lower() == HEADER
        and h.get("value") == HEADER_VALUE
        and h.get("type", "Exact") == "Exact"
        for match in rule.get("matches") or []
        for h in match.get("headers") or []
    )


def _is_long_vs_rule(http: Obj) -> bool:
    return any(
        ((match.get("headers") or {}).get(HEADER) or {}).get("exact") == HEADER_VALUE
        for match in http.get("match") or []
    )


def _vs_service(host: str, namespace: str) -> str:
    """The Service a VirtualService destination host names within `namespace` ("" if another)."""
    parts = host.split(".")
    if len(parts) == 1 or (
        parts[1] == namespace and parts[2:] in ([], ["svc"], ["svc", "cluster", "local"])
    ):
        return parts[0]
    return ""


def _httproute_refs(route: Obj, namespace: str) -> list[tuple[int, Obj, str, int | None]]:
    """(rule index, rule, Service name, port) for each Service backendRef of the route."""
    out = []
    for index, rule in enumerate(route.get("spec", {}).get("rules") or []):
        for ref in rule.get("backendRefs") or []:
            if ref.get("kind", "Service") != "Service" or ref.get("group", "") != "":
                continue
            if ref.get("namespace", namespace) != namespace:
                continue
            out.append((index, rule, str(ref.get("name", "")), ref.get("port")))
    return out


def _vs_refs(vs: Obj, namespace: str) -> list[tuple[int, Obj, str, int | None]]:
    out = []
    for index, http in enumerate(vs.get("spec", {}).get("http") or []):
        for route in http.get("route") or []:
            destination = route.get("destination") or {}
            service = _vs_service(str(destination.get("host", "")), namespace)
            if service:
                out.append((index, http, service, (destination.get("port") or {}).get("number")))
    return out


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


def _tgi_int(container: Obj, flag: str) -> int | None:
    """A TGI launcher setting as the launcher reads it: the flag, else its env var."""
    value = parse_flags([str(a) for a in container.get("args") or []])[0].get(flag)
    if value is None:
        env = {e.get("name"): e.get("value") for e in container.get("env") or []}
        value = env.get(tgi_env(flag))
    return parse_int(value) if isinstance(value, str) else None


def _set_tgi_value(container: Obj, flags: tuple[str, ...], value: str) -> None:
    """Set a TGI launcher setting where it is (flag, else env var); add the env var if unset."""
    args = [str(a) for a in container.get("args") or []]
    for i, token in enumerate(args):
        name, eq, _old = token.partition("=")
        if name in flags:
            if eq:
                args[i] = f"{name}={value}"
            elif i + 1 < len(args):
                args[i + 1] = value
            container["args"] = args
            return
    env = [dict(e) for e in container.get("env") or []]
    names = [tgi_env(f) for f in flags]
    for entry in env:
        if entry.get("name") in names:
            entry.pop("valueFrom", None)
            entry["value"] = value
            container["env"] = env
            return
    container["env"] = [*env, {"name": names[0], "value": value}]


def _raise_length(container: Obj, wanted: int | None, limit: int) -> tuple[Obj, int, list[str]]:
    """The container with its max model len raised; the new length and notes."""
    cfg = parse_engine_config(container)
    current = cfg.max_model_len
    notes: list[str] = []
    if wanted is not None:
        if wanted > limit:
            raise InvalidError(
                f"max model len {wanted} is above the model limit {limit}; give a smaller one, "
                "or raise the limit if the model really supports it"
            )
        new = wanted
    elif current is None:
        new = limit
        notes.append(
            f"the copied template leaves the max model len to the model's default; the "
            f"long-context Deployment sets {new} explicitly"
        )
    else:
        new = max(current, min(current * LENGTH_FACTOR, limit))
        if new == current:
            notes.append(f"max model len stays {current}: already at the limit {limit}")
    edited = set_option(container, cfg.engine, "max_model_len", str(new))
    if cfg.engine == TGI:
        max_input = cfg.effective.get("max_input_tokens", (None, ""))[0]
        if isinstance(max_input, int) and current is not None:
            new_input = new - (current - max_input)  # keep the room for output tokens
            _set_tgi_value(edited, ("--max-input-tokens", "--max-input-length"), str(new_input))
            prefill = _tgi_int(container, "--max-batch-prefill-tokens")
            # The launcher refuses MAX_BATCH_PREFILL_TOKENS below MAX_INPUT_TOKENS.
            if prefill is not None and prefill < new_input:
                _set_tgi_value(edited, ("--max-batch-prefill-tokens",), str(new_input))
            notes.append(f"TGI MAX_INPUT_TOKENS {max_input} -> {new_input}")
    flag = _LENGTH_FLAG.get(cfg.engine, "max model len")
    notes.insert(0, f"{cfg.container}: {flag} {current or 'unset'} -> {new}")
    return edited, new, notes


def _long_template(template: Obj, wanted: int | None, limit: int) -> tuple[Obj, int, list[str]]:
    out = copy.deepcopy(template)
    spec = out.setdefault("spec", {})
    engines = {c.get("name") for c in engine_containers(spec)}
    if not engines:
        raise InvalidError(
            "no vLLM, TGI or SGLang container in the template: cannot raise its max model len"
        )
    notes: list[str] = []
    length = 0
    containers = []
    for container in spec.get("containers") or []:
        if container.get("name") in engines:
            container, length, more = _raise_length(container, wanted, limit)
            notes += more
        containers.append(container)
    spec["containers"] = containers
    return out, length, notes


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


def _with_header_httproute(rule: Obj) -> list[Obj]:
    header = {"type": "Exact", "name": HEADER, "value": HEADER_VALUE}
    matches = rule.get("matches") or [{}]
    return [{**m, "headers": [*(m.get("headers") or []), header]} for m in matches]


def _with_header_vs(http: Obj) -> list[Obj]:
    matches = http.get("match") or [{}]
    header = {HEADER: {"exact": HEADER_VALUE}}
    return [{**m, "headers": {**(m.get("headers") or {}), **header}} for m in matches]


def _long_host(rule: Obj, service: str, long_name: str) -> str:
    for route in rule.get("route") or []:
        host = str((route.get("destination") or {}).get("host", ""))
        if host == service or host.startswith(service + "."):
            return long_name + host[len(service) :]
    return long_name


def _route_change(
    cluster: Cluster, info: RouterInfo, long_name: str, port: int
) -> tuple[Change, str]:
    """The JSON patch inserting the header rule first, and its kubectl command."""
    kind = "HTTPRoute" if info.kind == HTTPROUTE else "VirtualService"
    route = cluster.get(kind, info.namespace, info.name)
    after = copy.deepcopy(route)
    if info.kind == HTTPROUTE:
        field = "rules"
        rules = route.get("spec", {}).get("rules") or []
        if len(rules) >= HTTPROUTE_MAX_RULES:
            raise InvalidError(
                f"httproute/{info.name} already has {len(rules)} rules, the most an HTTPRoute "
                "may hold: add the long-context rule to another HTTPRoute by hand"
            )
        value: Obj = {
            "matches": _with_header_httproute(info.rule),
            "backendRefs": [{"name": long_name, "port": port}],
        }
    else:
        field = "http"
        value = {
            "name": VS_RULE_NAME,
            "match": _with_header_vs(info.rule),
            "route": [
                {
                    "destination": {
                        "host": _long_host(info.rule, info.service, long_name),
                        "port": {"number": port},
                    }
                }
            ],
        }
    existing = after.setdefault("spec", {}).get(field)
    ops: list[Obj]
    if existing:
        ops = [{"op": "add", "path": f"/spec/{field}/0", "value": value}]
        after["spec"][field] = [value, *existing]
    else:
        ops = [{"op": "add", "path": f"/spec/{field}", "value": [value]}]
        after["spec"][field] = [value]
    rv = str(route["metadata"]["resourceVersion"])
    change = Change(kind, info.namespace, info.name, "patch", "json", ops, route, after, rv)
    command = (
        f"kubectl patch {kind.lower()}/{info.name} -n {info.namespace} --type=json "
        f"-p '{json.dumps(ops, separators=(',', ':'))}'"
    )
    return change, command


def _no_router_notes(long_name: str, namespace: str, port: int) -> list[str]:
    address = f"{long_name}.{namespace}.svc.cluster.local:{port}"
    return [
        f"no HTTPRoute or VirtualService to edit: route requests carrying the header "
        f"`{HEADER}: {HEADER_VALUE}` to {address} in your gateway or ingress, or point "
        "long-context clients at that address",
        f"Gateway API rule: matches: [{{headers: [{{type: Exact, name: {HEADER}, value: "
        f"{HEADER_VALUE}}}]}}], backendRefs: [{{name: {long_name}, port: {port}}}]",
        f"Istio http entry: match: [{{headers: {{{HEADER}: {{exact: {HEADER_VALUE}}}}}}}], "
        f"route: [{{destination: {{host: {long_name}, port: {{number: {port}}}}}}}]",
    ]


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
    revision without drift), ConflictError (``<name>-long`` exists), InvalidError (no serving
    container, a length over the limit, replicas < 1, a full HTTPRoute, a rule already
    routing long-context requests).
    """
    dep = cluster.get("Deployment", namespace, deployment)
    long_name = f"{deployment}{LONG_SUFFIX}"
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
    changes = [
        Change("Deployment", namespace, long_name, "create", "", None, None, body),
        Change("Service", namespace, long_name, "create", "", None, None, service),
    ]
    kubectl = [
        f"kubectl apply -n {namespace} -f {long_name}.yaml  # the Deployment and Service "
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
