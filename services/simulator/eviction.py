"""The pods/eviction subresource (policy/v1 Eviction), as `kubectl drain` uses it.

An eviction is a delete that asks the pod's PodDisruptionBudget first, following
pkg/registry/core/pod/storage/eviction.go: a pod that is not running (Pending, Succeeded,
Failed) or is already terminating is deleted without asking; more than one matching budget is
a 500; a budget whose status the disruption controller has not caught up with, or that allows
no disruption, answers 429 TooManyRequests with the real message (kubectl drain then retries
every 5 s until its timeout). An allowed eviction takes one disruption from the budget's
status and records the pod in `disruptedPods`, as the real handler does before deleting.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from services.simulator.clock import rfc3339
from services.simulator.errors import ApiError, bad_request
from services.simulator.resources import ResourceType
from services.simulator.selectors import SelectorError, selector_from_spec
from services.simulator.store import Store

Obj = dict[str, Any]
_BUDGET_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."


def _too_many(message_cause: str, retry_after_s: int) -> ApiError:
    causes = [{"reason": "DisruptionBudget", "message": message_cause}] if message_cause else None
    return ApiError(
        429,
        "TooManyRequests",
        _BUDGET_MESSAGE,
        causes=causes,
        retry_after_s=retry_after_s,
        with_details=True,
    )


def _healthy(pod: Obj) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _scaled(value: Any, expected: int, round_up: bool) -> int:
    """An IntOrString budget figure as a pod count ("25%" of `expected`)."""
    if isinstance(value, str) and value.endswith("%"):
        share = expected * int(value[:-1]) / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


def budget_status(pdb: Obj, pods: list[Obj]) -> Obj:
    """What the disruption controller would write into a budget's status for `pods` (those
    its selector matches): expected, desired and current healthy pods and the disruptions
    allowed. Used for a budget no controller has observed yet."""
    spec = pdb.get("spec", {})
    expected = len([p for p in pods if not p["metadata"].get("deletionTimestamp")])
    current = len([p for p in pods if _healthy(p)])
    if "maxUnavailable" in spec:
        desired = max(0, expected - _scaled(spec["maxUnavailable"], expected, round_up=False))
    else:
        desired = _scaled(spec.get("minAvailable", 1), expected, round_up=True)
    return {
        "observedGeneration": pdb["metadata"].get("generation", 1),
        "expectedPods": expected,
        "currentHealthy": current,
        "desiredHealthy": desired,
        "disruptionsAllowed": max(0, current - desired),
    }


def _matching_budgets(store: Store, pod: Obj) -> list[Obj]:
    labels = pod["metadata"].get("labels") or {}
    out = []
    for pdb in store.items("poddisruptionbudgets", pod["metadata"]["namespace"]):
        try:  # a nil selector matches no pod, an empty one every pod
            selector = selector_from_spec(pdb.get("spec", {}).get("selector"))
        except SelectorError:
            continue
        if selector.matches(labels):
            out.append(pdb)
    return out


def check_eviction(store: Store, pod: Obj, body: Obj, name: str, now: datetime) -> Obj:
    """Ask the pod's budget whether `pod` may be evicted, taking one disruption when it may.

    Returns the DeleteOptions the eviction carries. Raises ApiError 400 (the body names
    another pod), 429 (the budget forbids it), 500 (more than one budget), 403 (a budget
    with negative disruptions).
    """
    body_name = (body.get("metadata") or {}).get("name")
    if body_name and body_name != name:
        raise bad_request("name in URL does not match name in Eviction object")
    options: Obj = body.get("deleteOptions") or {}
    phase = pod.get("status", {}).get("phase", "")
    if pod["metadata"].get("deletionTimestamp") or phase in ("Pending", "Succeeded", "Failed"):
        return options
    budgets = _matching_budgets(store, pod)
    if not budgets:
        return options
    if len(budgets) > 1:
        raise ApiError(
            500,
            "InternalError",
            "This pod has more than one PodDisruptionBudget, which the eviction subresource "
            "does not support.",
        )
    pdb = budgets[0]
    status = pdb.get("status") or {}
    if "observedGeneration" not in status:
        # No disruption controller has looked at it yet: judge as it would now.
        selector = selector_from_spec(pdb["spec"]["selector"])
        pods = [
            p
            for p in store.items("pods", pod["metadata"]["namespace"])
            if selector.matches(p["metadata"].get("labels") or {})
        ]
        status = budget_status(pdb, pods)
    pdb_name = pdb["metadata"]["name"]
    if int(status.get("observedGeneration", 0)) < int(pdb["metadata"].get("generation", 1)):
        raise _too_many(
            f"The disruption budget {pdb_name} is still being processed by the server.", 10
        )
    allowed = int(status.get("disruptionsAllowed", 0))
    if allowed < 0:
        raise ApiError(
            403,
            "Forbidden",
            f'poddisruptionbudgets.policy "{pdb_name}" is forbidden: pdb disruptions allowed '
            "is negative",
        )
    if allowed == 0:
        raise _too_many(
            f"The disruption budget {pdb_name} needs {status.get('desiredHealthy', 0)} healthy "
            f"pods and has {status.get('currentHealthy', 0)} currently",
            0,
        )
    if options.get("dryRun"):
        return options
    taken = {**status, "disruptionsAllowed": allowed - 1}
    disrupted = dict(taken.get("disruptedPods") or {})
    disrupted[name] = rfc3339(now)
    taken["disruptedPods"] = disrupted

    def take(obj: Obj) -> None:
        obj["status"] = taken

    store.mutate("poddisruptionbudgets", pdb["metadata"]["namespace"], pdb_name, take)
    return options


def evict(
    store: Store,
    rt: ResourceType,
    namespace: str,
    name: str,
    body: Any,
    now: datetime,
    *,
    dry_run: bool,
) -> Obj:
    """POST pods/NAME/eviction: check the budget, then delete the pod with the eviction's
    DeleteOptions. Returns the Status the server answers (201).

    Raises ApiError 404 (no such pod), 400, 409 (a failed precondition), 429, 500.
    """
    pod = store.get(rt, namespace, name)
    options = check_eviction(store, pod, body if isinstance(body, dict) else {}, name, now)
    preconditions = options.get("preconditions") or {}
    grace = options.get("gracePeriodSeconds")
    store.delete(
        rt,
        namespace,
        name,
        dry_run=dry_run or bool(options.get("dryRun")),
        grace_seconds=int(grace) if grace is not None else None,
        precondition_rv=preconditions.get("resourceVersion") or "",
        precondition_uid=preconditions.get("uid") or "",
    )
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
