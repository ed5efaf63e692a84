"""The arithmetic of rollouts (kube-controller-manager pkg/controller/deployment/util).

Pure functions over Deployment and ReplicaSet dicts: surge and unavailability fenceposts,
revisions and their annotations, which ReplicaSet is "new", how many replicas it may have,
and the proportions used when a Deployment is scaled in the middle of a rollout.
"""

from __future__ import annotations

import copy
import math
from typing import Any

Obj = dict[str, Any]

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
HASH_LABEL = "pod-template-hash"
MAX_REV_HISTORY_CHARS = 2000
_SKIP_COPY = frozenset(
    {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO}
)


def spec_replicas(obj: Obj) -> int:
    value = (obj.get("spec") or {}).get("replicas", 1)
    return int(value) if isinstance(value, int) else 1


def status_int(obj: Obj, field: str) -> int:
    return int((obj.get("status") or {}).get(field, 0) or 0)


def annotations_of(obj: Obj) -> dict[str, str]:
    return obj.get("metadata", {}).get("annotations") or {}


# -- fenceposts --------------------------------------------------------------


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent ("25%" of 10 is 3 rounding up, 2 down).

    Raises ValueError for a string that is not a percentage or an integer.
    """
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text.endswith("%"):
        return int(text)
    percent = int(text[:-1])
    return -(-percent * total // 100) if round_up else percent * total // 100


def is_rolling(deployment: Obj) -> bool:
    strategy = (deployment.get("spec") or {}).get("strategy") or {}
    return bool(strategy.get("type", "RollingUpdate") == "RollingUpdate")


def fenceposts(deployment: Obj) -> tuple[int, int]:
    """ResolveFenceposts: (maxSurge, maxUnavailable); both zero resolves unavailable to 1."""
    rolling = ((deployment.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    desired = spec_replicas(deployment)
    try:
        surge = scaled_value(rolling.get("maxSurge", "25%"), desired, True)
        unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), desired, False)
    except ValueError:
        surge, unavailable = 0, 1
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(deployment: Obj) -> int:
    return fenceposts(deployment)[0] if is_rolling(deployment) else 0


def max_unavailable(deployment: Obj) -> int:
    desired = spec_replicas(deployment)
    if not is_rolling(deployment) or desired == 0:
        return 0
    return min(fenceposts(deployment)[1], desired)


# -- revisions and templates -------------------------------------------------


def revision(rs: Obj) -> int:
    try:
        return int(annotations_of(rs).get(REVISION, "0"))
    except ValueError:
        return 0


def max_revision(replica_sets: list[Obj]) -> int:
    return max((revision(rs) for rs in replica_sets), default=0)


def _without_hash(template: Obj) -> Obj:
    clean = copy.deepcopy(template or {})
    labels = (clean.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return clean


def equal_ignore_hash(left: Obj, right: Obj) -> bool:
    """controller.EqualIgnoreHash: templates equal once pod-template-hash is dropped."""
    return _without_hash(left) == _without_hash(right)


def by_creation(rs: Obj) -> tuple[str, str]:
    """ReplicaSetsByCreationTimestamp: oldest first, then by name."""
    meta = rs["metadata"]
    return str(meta.get("creationTimestamp", "")), str(meta.get("name", ""))


def by_revision(rs: Obj) -> tuple[int, str, str]:
    return (revision(rs), *by_creation(rs))


def find_new_rs(deployment: Obj, replica_sets: list[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template equals the Deployment's."""
    template = deployment["spec"].get("template") or {}
    for rs in sorted(replica_sets, key=by_creation):
        if equal_ignore_hash(rs["spec"].get("template") or {}, template):
            return rs
    return None


def active(replica_sets: list[Obj]) -> list[Obj]:
    return [rs for rs in replica_sets if spec_replicas(rs) > 0]


def total_replicas(replica_sets: list[Obj]) -> int:
    return sum(spec_replicas(rs) for rs in replica_sets)


def total_status(replica_sets: list[Obj], field: str) -> int:
    return sum(status_int(rs, field) for rs in replica_sets)


def new_rs_new_replicas(deployment: Obj, all_rss: list[Obj], new_rs: Obj) -> int:
    """How far the new ReplicaSet may grow now (NewRSNewReplicas)."""
    desired = spec_replicas(deployment)
    if not is_rolling(deployment):
        return desired
    current = spec_replicas(new_rs)
    max_total = desired + max_surge(deployment)
    pods = total_replicas(all_rss)
    if pods >= max_total:
        return current
    return current + min(max_total - pods, desired - current)


def is_saturated(deployment: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    try:
        desired = int(annotations_of(rs).get(DESIRED_REPLICAS, ""))
    except ValueError:
        return False
    want = spec_replicas(deployment)
    return (
        spec_replicas(rs) == want
        and desired == want
        and status_int(rs, "availableReplicas") == want
    )


def find_active_or_latest(new_rs: Obj | None, old_rss: list[Obj]) -> Obj | None:
    """The only active ReplicaSet, or the newest when none is active; None when several are."""
    if new_rs is None and not old_rss:
        return None
    olds = sorted(old_rss, key=by_creation, reverse=True)
    candidates = active([*olds, *([new_rs] if new_rs is not None else [])])
    if not candidates:
        return new_rs if new_rs is not None else olds[0]
    return candidates[0] if len(candidates) == 1 else None


# -- annotations -------------------------------------------------------------


def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    notes = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(max_replicas))):
        if notes.get(key) != value:
            notes[key] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: Obj, desired: int, max_replicas: int) -> bool:
    notes = annotations_of(rs)
    return notes.get(DESIRED_REPLICAS) != str(desired) or notes.get(MAX_REPLICAS) != str(
        max_replicas
    )


def copy_deployment_annotations(deployment: Obj, rs: Obj) -> bool:
    """Copy the Deployment's annotations to its ReplicaSet, but not the controller's own."""
    notes = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in annotations_of(deployment).items():
        if key in _SKIP_COPY or notes.get(key) == value:
            continue
        notes[key] = value
        changed = True
    return changed


def set_new_rs_annotations(deployment: Obj, rs: Obj, new_revision: int, exists: bool) -> bool:
    """SetNewReplicaSetAnnotations: copied annotations, revision, and the revision history."""
    changed = copy_deployment_annotations(deployment, rs)
    notes = rs["metadata"]["annotations"]
    old_text = notes.get(REVISION)
    try:
        old_revision = int(old_text) if old_text else 0
    except ValueError:
        return False
    if old_revision < new_revision:
        notes[REVISION] = str(new_revision)
        changed = True
        if old_text is not None:
            # A ReplicaSet that already had a revision is being rolled back to: keep its past.
            history = notes.get(REVISION_HISTORY, "")
            previous = history.split(",") if history else []
            total = len(history) + len(old_text) + 1
            start = 0
            while total > MAX_REV_HISTORY_CHARS and start < len(previous):
                total -= len(previous[start]) + 1
                start += 1
            if not previous:
                notes[REVISION_HISTORY] = old_text
            elif total <= MAX_REV_HISTORY_CHARS:
                notes[REVISION_HISTORY] = ",".join([*previous[start:], old_text])
    if not exists:
        desired = spec_replicas(deployment)
        if set_replicas_annotations(rs, desired, desired + max_surge(deployment)):
            changed = True
    return changed


# -- proportional scaling ----------------------------------------------------


def go_round(value: float) -> int:
    """math.Round: halves away from zero."""
    return math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1)


def rs_proportion(rs: Obj, deployment: Obj, to_add: int, added: int) -> int:
    """GetReplicaSetProportion: this ReplicaSet's share of a scale change."""
    size = spec_replicas(rs)
    if size == 0 or to_add == 0 or to_add == added:
        return 0
    desired = spec_replicas(deployment)
    if desired == 0:
        fraction = -size
    else:
        max_now = desired + max_surge(deployment)
        try:
            max_before = int(annotations_of(rs).get(MAX_REPLICAS, "0"))
        except ValueError:
            max_before = 0
        if max_before == 0:
            max_before = status_int(deployment, "replicas")
        fraction = go_round(size * max_now / max_before) - size if max_before else 0
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)
