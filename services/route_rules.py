"""The router-specific rules of step 4: how a Gateway API HTTPRoute and an Istio VirtualService
name a Service and match the ``x-context-class: long`` header, and the JSON patch that inserts
the long-context header rule first (or, with no router, the rule to add by hand).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from services.errors import InvalidError
from services.kube import Cluster
from services.models import Change, RouterInfo

Obj = dict[str, Any]
HEADER = "x-context-class"
HEADER_VALUE = "long"
HTTPROUTE = "httproute"
VIRTUALSERVICE = "virtualservice"
VS_RULE_NAME = "skewmit-long-context"
HTTPROUTE_MAX_RULES = 16  # gateway.networking.k8s.io/v1 HTTPRouteSpec.rules maxItems


# --- reading rules -------------------------------------------------------------------------


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


# --- the header rule ----------------------------------------------------------------------


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
