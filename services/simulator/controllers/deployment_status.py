"""Deployment status and conditions (sync.go calculateStatus, progress.go, util conditions).

Condition bookkeeping follows SetDeploymentCondition exactly: an unchanged status and reason
leaves the condition alone (message and times included), a new reason with the same status
keeps lastTransitionTime, and the updated condition moves to the end of the list, which is
why a settled Deployment lists Available before Progressing.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from services.simulator.clock import parse_rfc3339, rfc3339
from services.simulator.controllers.deployment_rules import (
    max_unavailable,
    spec_replicas,
    total_status,
)

Obj = dict[str, Any]

AVAILABLE = "Available"
PROGRESSING = "Progressing"
REPLICA_FAILURE = "ReplicaFailure"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"

_STATUS_FIELDS = (
    "observedGeneration",
    "replicas",
    "updatedReplicas",
    "readyReplicas",
    "availableReplicas",
    "unavailableReplicas",
)


def new_condition(type_: str, status: str, reason: str, message: str, now: float) -> Obj:
    stamp = rfc3339(datetime.fromtimestamp(now, UTC))
    return {
        "type": type_,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def get_condition(status: Obj, type_: str) -> Obj | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def set_condition(status: Obj, cond: Obj) -> None:
    current = get_condition(status, cond["type"])
    if current is not None and (current["status"], current.get("reason")) == (
        cond["status"],
        cond.get("reason"),
    ):
        return
    cond = dict(cond)
    if current is not None and current["status"] == cond["status"]:
        cond["lastTransitionTime"] = current["lastTransitionTime"]
    others = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]]
    status["conditions"] = [*others, cond]


def remove_condition(status: Obj, type_: str) -> None:
    kept = [c for c in status.get("conditions") or [] if c.get("type") != type_]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def has_progress_deadline(deployment: Obj) -> bool:
    deadline = (deployment.get("spec") or {}).get("progressDeadlineSeconds")
    return isinstance(deadline, int) and deadline != 2**31 - 1


def calculate_status(deployment: Obj, all_rss: list[Obj], new_rs: Obj | None, now: float) -> Obj:
    """calculateStatus: counts from the ReplicaSets' status, conditions carried over + Available."""
    available = total_status(all_rss, "availableReplicas")
    total = sum(spec_replicas(rs) for rs in all_rss)
    counts = {
        "observedGeneration": int(deployment["metadata"].get("generation", 0)),
        "replicas": total_status(all_rss, "replicas"),
        "updatedReplicas": total_status([new_rs], "replicas") if new_rs is not None else 0,
        "readyReplicas": total_status(all_rss, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(total - available, 0),
    }
    old = deployment.get("status") or {}
    status: Obj = {k: v for k, v in counts.items() if v}
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    if "collisionCount" in old:
        status["collisionCount"] = old["collisionCount"]
    if available >= spec_replicas(deployment) - max_unavailable(deployment):
        cond = new_condition(
            AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.", now
        )
    else:
        cond = new_condition(
            AVAILABLE,
            "False",
            MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            now,
        )
    set_condition(status, cond)
    return status


def _count(status: Obj, field: str) -> int:
    return int(status.get(field, 0) or 0)


def deployment_complete(deployment: Obj, status: Obj) -> bool:
    want = spec_replicas(deployment)
    return (
        _count(status, "updatedReplicas") == want
        and _count(status, "replicas") == want
        and _count(status, "availableReplicas") == want
        and _count(status, "observedGeneration") >= int(deployment["metadata"].get("generation", 0))
    )


def deployment_progressing(deployment: Obj, new_status: Obj) -> bool:
    old = deployment.get("status") or {}
    old_old = _count(old, "replicas") - _count(old, "updatedReplicas")
    new_old = _count(new_status, "replicas") - _count(new_status, "updatedReplicas")
    return (
        _count(new_status, "updatedReplicas") > _count(old, "updatedReplicas")
        or new_old < old_old
        or _count(new_status, "readyReplicas") > _count(old, "readyReplicas")
        or _count(new_status, "availableReplicas") > _count(old, "availableReplicas")
    )


def progress_deadline_at(deployment: Obj, status: Obj) -> float | None:
    """When the Progressing condition's lastUpdateTime runs out of progressDeadlineSeconds."""
    if not has_progress_deadline(deployment):
        return None
    cond = get_condition(status, PROGRESSING)
    if cond is None or not cond.get("lastUpdateTime"):
        return None
    start = parse_rfc3339(str(cond["lastUpdateTime"])).timestamp()
    return start + int(deployment["spec"]["progressDeadlineSeconds"])


def deployment_timed_out(deployment: Obj, status: Obj, now: float) -> bool:
    cond = get_condition(status, PROGRESSING)
    if not has_progress_deadline(deployment) or cond is None:
        return False
    if cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    deadline = progress_deadline_at(deployment, status)
    return deadline is not None and deadline < now


def rollout_status(deployment: Obj, all_rss: list[Obj], new_rs: Obj | None, now: float) -> Obj:
    """syncRolloutStatus's new status: counts, Available, and the Progressing verdict."""
    status = calculate_status(deployment, all_rss, new_rs, now)
    if not has_progress_deadline(deployment):
        remove_condition(status, PROGRESSING)
    current = get_condition(deployment.get("status") or {}, PROGRESSING)
    complete_before = (
        _count(status, "replicas") == _count(status, "updatedReplicas")
        and current is not None
        and current.get("reason") == NEW_RS_AVAILABLE
    )
    if has_progress_deadline(deployment) and not complete_before:
        name = deployment["metadata"]["name"]
        subject = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs else f'Deployment "{name}"'
        if deployment_complete(deployment, status):
            set_condition(
                status,
                new_condition(
                    PROGRESSING,
                    "True",
                    NEW_RS_AVAILABLE,
                    f"{subject} has successfully progressed.",
                    now,
                ),
            )
        elif deployment_progressing(deployment, status):
            cond = new_condition(PROGRESSING, "True", RS_UPDATED, f"{subject} is progressing.", now)
            # Progress refreshes lastUpdateTime even when the reason stays the same.
            if current is not None:
                if current["status"] == "True":
                    cond["lastTransitionTime"] = current["lastTransitionTime"]
                remove_condition(status, PROGRESSING)
            set_condition(status, cond)
        elif deployment_timed_out(deployment, status, now):
            set_condition(
                status,
                new_condition(
                    PROGRESSING, "False", TIMED_OUT, f"{subject} has timed out progressing.", now
                ),
            )
    remove_condition(status, REPLICA_FAILURE)
    return status


def status_counts(status: Obj) -> dict[str, int]:
    return {field: _count(status, field) for field in _STATUS_FIELDS}
