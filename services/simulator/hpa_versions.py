"""HorizontalPodAutoscalers served as autoscaling/v1 beside the stored autoscaling/v2.

A real API server stores one version and converts at the edge; `kubectl autoscale` 1.32 posts
autoscaling/v1 (as protobuf), 1.37 posts v2. v1 knows one metric, the CPU utilization target,
so a v1 write keeps what only v2 can say (other metrics, `behavior`) from the stored object,
as the real conversion does through its annotations. The v1 route converts the request's
object to v2, lets the ordinary handler serve it, and converts the answer back. Watching and
server-side apply through v1 are not served (the discovery document says so for watch).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from services.simulator import request_parsing
from services.simulator.errors import bad_request, unsupported_media
from services.simulator.resources import ResourceType

Obj = dict[str, Any]
V1 = "autoscaling/v1"
V2 = "autoscaling/v2"
KIND = "HorizontalPodAutoscaler"
Handler = Callable[[ResourceType, str], Awaitable[web.StreamResponse]]  # (type, verb)


def is_v1(rt: ResourceType) -> bool:
    return rt.kind == KIND and rt.group_version == V1


def _is_cpu_utilization(metric: Any) -> bool:
    resource = metric.get("resource") or {} if isinstance(metric, dict) else {}
    return (
        isinstance(metric, dict)
        and metric.get("type") == "Resource"
        and resource.get("name") == "cpu"
        and (resource.get("target") or {}).get("type") == "Utilization"
    )


def to_v2(v1: Obj, stored: Obj | None) -> Obj:
    """A v1 object as v2, keeping `stored`'s v2-only fields."""
    out: Obj = {k: v for k, v in v1.items() if k not in ("spec", "status")}
    out["apiVersion"] = V2
    spec = v1.get("spec") or {}
    kept = (stored or {}).get("spec") or {}
    new_spec: Obj = {
        k: spec[k] for k in ("scaleTargetRef", "minReplicas", "maxReplicas") if k in spec
    }
    metrics = [m for m in kept.get("metrics") or [] if not _is_cpu_utilization(m)]
    target = spec.get("targetCPUUtilizationPercentage")
    if target is not None:
        cpu = {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}
        metrics.insert(0, {"type": "Resource", "resource": cpu})
    if metrics:
        new_spec["metrics"] = metrics
    if "behavior" in kept:
        new_spec["behavior"] = kept["behavior"]
    out["spec"] = new_spec
    if stored is not None and "status" in stored:
        out["status"] = stored["status"]
    return out


def to_v1(v2: Obj) -> Obj:
    """A stored v2 object as v1 shows it."""
    out: Obj = {k: v for k, v in v2.items() if k not in ("spec", "status")}
    out["apiVersion"] = V1
    spec = v2.get("spec") or {}
    new_spec: Obj = {
        k: spec[k] for k in ("scaleTargetRef", "minReplicas", "maxReplicas") if k in spec
    }
    cpu = next((m for m in spec.get("metrics") or [] if _is_cpu_utilization(m)), None)
    if cpu is not None:
        utilization = cpu["resource"]["target"].get("averageUtilization")
        if utilization is not None:
            new_spec["targetCPUUtilizationPercentage"] = utilization
    out["spec"] = new_spec
    status = v2.get("status") or {}
    new_status: Obj = {k: status[k] for k in ("observedGeneration", "lastScaleTime") if k in status}
    new_status["currentReplicas"] = status.get("currentReplicas", 0)
    new_status["desiredReplicas"] = status.get("desiredReplicas", 0)
    for metric in status.get("currentMetrics") or []:
        if metric.get("type") == "Resource" and (metric.get("resource") or {}).get("name") == "cpu":
            current = metric["resource"].get("current") or {}
            if "averageUtilization" in current:
                new_status["currentCPUUtilizationPercentage"] = current["averageUtilization"]
    out["status"] = new_status
    return out


def _converted(data: Any) -> Any:
    if isinstance(data, dict) and data.get("kind") == KIND:
        return to_v1(data)
    if isinstance(data, dict) and data.get("kind") == f"{KIND}List":
        return {**data, "apiVersion": V1, "items": [to_v1(i) for i in data.get("items") or []]}
    return data


async def serve(
    request: web.Request,
    v1: ResourceType,
    v2: ResourceType,
    verb: str,
    current: Callable[[], Obj],
    handle: Handler,
) -> web.StreamResponse:
    """Serve a v1 request through the v2 `handle`r: `current()` is the stored object (for
    writes that keep its v2-only fields). Raises ApiError as the handler does; 415 for a
    server-side apply through v1."""
    if verb in ("create", "update", "patch"):
        if request.content_type == request_parsing.APPLY_PATCH:
            raise unsupported_media(
                "server-side apply of autoscaling/v1 HorizontalPodAutoscalers is not "
                "simulated; apply autoscaling/v2"
            )
        body = await request_parsing.read_body(request)
        stored = current() if verb != "create" else None
        if verb == "patch":
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            body = request_parsing.apply_patch(to_v1(stored or {}), body, content_type, v1, KIND)
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        request_parsing.drop_unknown_fields(
            request, KIND, body, decoded=verb != "patch", api_version=V1
        )
        if verb == "patch" and stored is not None:
            body.setdefault("metadata", {}).setdefault(
                "resourceVersion", stored["metadata"]["resourceVersion"]
            )
        request[request_parsing.CONVERTED_BODY] = to_v2(body, stored)
    # A patch was applied to the v1 view here: the v2 handler stores the result whole.
    response = await handle(v2, "update" if verb == "patch" else verb)
    if not isinstance(response, web.Response) or response.body is None:
        return response
    if not response.content_type.startswith("application/json"):
        return response
    data = _converted(json.loads(bytes(response.body)))  # type: ignore[arg-type]
    return web.Response(
        text=json.dumps(data), status=response.status, content_type="application/json"
    )
