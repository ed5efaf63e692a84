"""Reading a pod the way the controllers do: active, ready, available, phase rank."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from services.simulator.clock import parse_rfc3339

Obj = dict[str, Any]


@lru_cache(maxsize=8192)
def parse_stamp(text: str) -> float | None:
    """An RFC 3339 timestamp as epoch seconds (cached: a rollout reads the same few thousand)."""
    try:
        return parse_rfc3339(text).timestamp()
    except ValueError:
        return None


def condition(obj: Obj, type_: str) -> Obj | None:
    """The stored condition of that type (not a copy: read it, do not change it)."""
    conditions: list[Obj] = (obj.get("status") or {}).get("conditions") or []
    for cond in conditions:
        if cond.get("type") == type_:
            return cond
    return None


def is_active(pod: Obj) -> bool:
    """controller.IsPodActive: not finished and not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def is_ready(pod: Obj) -> bool:
    cond = condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def ready_since(pod: Obj) -> float | None:
    """When the Ready condition last turned True (None when not ready)."""
    cond = condition(pod, "Ready")
    if cond is None or cond.get("status") != "True":
        return None
    stamp = cond.get("lastTransitionTime")
    return parse_stamp(stamp) if isinstance(stamp, str) else None


def available_at(pod: Obj, min_ready_seconds: int) -> float | None:
    """The moment the pod counts as available (podutil.IsPodAvailable), None if not ready.

    The real check is `lastTransitionTime + minReadySeconds` strictly before now, so a pod is
    available just after that instant (immediately when minReadySeconds is 0).
    """
    since = ready_since(pod)
    if since is None:
        return 0.0 if min_ready_seconds == 0 and is_ready(pod) else None
    if min_ready_seconds == 0:
        return since
    return since + min_ready_seconds + 1e-3


def is_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    at = available_at(pod, min_ready_seconds)
    return at is not None and at <= now


def restart_count(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(s.get("restartCount", 0)) for s in statuses), default=0)


def creation_time(pod: Obj) -> float:
    stamp = pod["metadata"].get("creationTimestamp")
    return (parse_stamp(stamp) or 0.0) if isinstance(stamp, str) else 0.0


def log_bucket(seconds: float) -> int:
    """LogarithmicScaleDown compares ages by the integer part of their log2."""
    return int(math.log2(seconds)) if seconds >= 1 else -1


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_rank(pod: Obj, related_on_node: int, now: float) -> tuple[Any, ...]:
    """controller.ActivePodsWithRanks order: pods that sort first are deleted first."""
    spec = pod.get("spec") or {}
    phase = (pod.get("status") or {}).get("phase", "Pending")
    annotations = pod["metadata"].get("annotations") or {}
    try:
        cost = int(annotations.get("controller.kubernetes.io/pod-deletion-cost", "0"))
    except ValueError:
        cost = 0
    ready = ready_since(pod)
    # Newer readiness and newer creation go first, compared on a log2 scale of age.
    ready_bucket = log_bucket(now - ready) if ready is not None else -2
    return (
        1 if spec.get("nodeName") else 0,
        _PHASE_RANK.get(str(phase), 2),
        1 if is_ready(pod) else 0,
        cost,
        -related_on_node,
        ready_bucket,
        -restart_count(pod),
        log_bucket(now - creation_time(pod)),
        pod["metadata"].get("name", ""),
    )
