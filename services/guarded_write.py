"""One change sent to the API server guarded by the resourceVersion it was checked against.

The object is re-read first: when anything but status moved since the plan was made (spec,
labels, annotations, a secret), nothing is sent and the conflict diff says what moved. A 409
(or a JSON patch's failed resourceVersion test, a 422) while only status moved is the
controller bumping the resourceVersion between the read and the write: re-checked and retried.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from services.errors import ConflictError, InvalidError
from services.inverse import comparable, refuse_masked, render_diff
from services.kube import Cluster
from services.models import Change

Obj = dict[str, Any]
# A write answered 409 while nothing but status moved (a controller bumping the
# resourceVersion) is re-checked and retried this many times.
CONFLICT_RETRIES = 3


def fresh(cluster: Cluster, change: Change) -> Change:
    """Guard a change with the live resourceVersion, after checking that nothing but
    status moved since it was planned (a rolling Deployment's status changes every few
    seconds; its spec, labels and annotations must not). Secrets are compared too: a
    rotated key is a change. Raises ConflictError with the diff (planned -> live)."""
    if change.operation not in ("patch", "delete") or change.before is None:
        return change
    live = cluster.get(change.kind, change.namespace, change.name)
    if comparable(live, masked=False) != comparable(change.before, masked=False):
        label = f"{change.kind.lower()}/{change.name}"
        diff = render_diff(change.before, live, label, old="as planned", new="live now")
        if not diff:
            diff = f"# {label}: a masked (secret) value differs"
        raise ConflictError(
            f"{change.kind.lower()}/{change.name} changed since this plan "
            f"was made; nothing was applied. Re-open the action to plan "
            f"again.\n{diff}"
        )
    return dataclasses.replace(change, resource_version=live["metadata"]["resourceVersion"])


def send(cluster: Cluster, change: Change, *, dry_run: bool) -> Obj | None:
    """Send one change guarded by the live resourceVersion. A 409 while only status moved
    (the controller bumped the resourceVersion between the read and the write) is
    re-checked and retried; a real change of the object raises ConflictError, a change
    carrying the mask InvalidError (nothing sent), and the cluster's errors pass through."""
    refuse_masked(change)
    retryable = change.operation in ("patch", "delete") and change.before is not None
    for attempt in range(CONFLICT_RETRIES + 1):
        guarded = fresh(cluster, change)
        try:
            return _write(cluster, guarded, dry_run=dry_run)
        except (ConflictError, InvalidError) as exc:
            # A JSON patch's resourceVersion test fails as 422, a merge patch's as 409:
            # either way, only a moved resourceVersion makes it worth a re-check.
            if not retryable or attempt == CONFLICT_RETRIES:
                raise
            if isinstance(exc, InvalidError) and not _moved(cluster, guarded):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _moved(cluster: Cluster, change: Change) -> bool:
    live = cluster.get(change.kind, change.namespace, change.name)
    return bool(live["metadata"].get("resourceVersion") != change.resource_version)


def _write(cluster: Cluster, change: Change, *, dry_run: bool) -> Obj | None:
    if change.operation == "patch":
        return cluster.patch(
            change.kind,
            change.namespace,
            change.name,
            with_precondition(change),
            change.patch_type,
            dry_run=dry_run,
        )
    if change.operation == "create":
        assert change.after is not None
        return cluster.create(change.kind, change.namespace, change.after, dry_run=dry_run)
    if change.operation == "delete":
        cluster.delete(
            change.kind,
            change.namespace,
            change.name,
            dry_run=dry_run,
            resource_version=change.resource_version,
        )
        return None
    raise InvalidError(f"unknown operation {change.operation!r}")


def with_precondition(change: Change) -> Any:
    """The patch guarded by the resourceVersion it was checked against."""
    if not change.resource_version:
        return change.patch
    if change.patch_type == "json":
        guard = {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": change.resource_version,
        }
        return [guard] + [
            op
            for op in change.patch
            if not (op.get("op") == "test" and op.get("path") == "/metadata/resourceVersion")
        ]
    patch = copy.deepcopy(change.patch)
    patch.setdefault("metadata", {})["resourceVersion"] = change.resource_version
    return patch
