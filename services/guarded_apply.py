"""A server-side apply sent through the gate: planned, guarded, undone.

An apply Change carries the whole configuration skewmit has an opinion about (`patch`, also
its `after` until a dry run shows the merged object) and the live object it was planned
against (`before`; None for an object the apply creates). Before it is sent the object is
re-read: one created since the plan (for a new object) or changed since (for an existing one)
is a ConflictError with nothing sent, as for every other change. A field another manager owns
is never forced unless the gate was told to (`force`): the server's conflict is raised as
FieldOwnedError naming the fields and their managers.
"""

from __future__ import annotations

import copy
from typing import Any

from services.errors import ConflictError, NotFoundError
from services.field_owners import FieldOwnedError
from services.inverse import comparable, refuse_masked, render_diff
from services.kube import Cluster
from services.models import Change

Obj = dict[str, Any]
APPLY = "apply"


def apply_change(kind: str, namespace: str, config: Obj, live: Obj | None) -> Change:
    """The Change that server-side applies `config` (kind, apiVersion, metadata.name and the
    fields skewmit sets) to `live`, the object as read now (None: the apply creates it)."""
    name = str(config["metadata"]["name"])
    rv = str((live or {}).get("metadata", {}).get("resourceVersion", ""))
    return Change(kind, namespace, name, APPLY, APPLY, config, live, config, rv)


def applied_view(change: Change) -> Obj | None:
    """What the object would look like after the apply, for a diff shown without the
    server's dry run (refused, read-only): the configuration merged into the live object
    (maps key by key, lists of named items by name, other lists replaced), as the server
    merges it for the fields skewmit sends. Only the server's dry run is exact."""
    config = change.patch if isinstance(change.patch, dict) else change.after
    if change.before is None or config is None:
        return config
    merged: Obj = _merge(change.before, config)
    return merged


def _merge(live: Any, config: Any) -> Any:
    if isinstance(live, dict) and isinstance(config, dict):
        out = dict(live)
        for key, value in config.items():
            out[key] = _merge(live.get(key), value)
        return out
    named = isinstance(live, list) and isinstance(config, list)
    named = named and all(isinstance(i, dict) and "name" in i for i in [*live, *config])
    if named:
        by_name = {item["name"]: item for item in live}
        for item in config:
            by_name[item["name"]] = _merge(by_name.get(item["name"]), item)
        return list(by_name.values())
    return copy.deepcopy(config)


def kubectl_apply(namespace: str, file: str) -> str:
    """The equivalent kubectl command for a server-side apply under skewmit's name."""
    return f"kubectl apply --server-side --field-manager=skewmit -n {namespace} -f {file}"


def send_apply(cluster: Cluster, change: Change, *, dry_run: bool, force: bool = False) -> Obj:
    """Apply one apply Change after checking the object is as planned (absent for a new one).
    No resourceVersion precondition is sent (a real server retries its own races for an
    apply), so a 409 is a field conflict. Raises InvalidError (a masked value would be written;
    nothing sent), ConflictError (the object was created or changed since the plan),
    FieldOwnedError (another manager owns a field and `force` is off), and what the cluster
    raises."""
    refuse_masked(change)
    config = change.patch if isinstance(change.patch, dict) else change.after
    assert config is not None
    _as_planned(cluster, change)
    return cluster.apply(change.kind, change.namespace, config, force=force, dry_run=dry_run)


def taken_over(cluster: Cluster, change: Change) -> str:
    """What a forced apply would take from other managers, in words ("" when nothing): a
    dry run without force, whose conflicts are the fields force takes. Raises what
    send_apply raises, but FieldOwnedError."""
    if change.operation != APPLY:
        return ""
    try:
        send_apply(cluster, change, dry_run=True, force=False)
    except FieldOwnedError as exc:
        return ", ".join(f"{c.field} from {c.manager} ({c.operation})" for c in exc.conflicts)
    return ""


def _as_planned(cluster: Cluster, change: Change) -> None:
    """Raises ConflictError when the object was created or changed since the plan."""
    label = f"{change.kind.lower()}/{change.name}"
    try:
        live: Obj | None = cluster.get(change.kind, change.namespace, change.name)
    except NotFoundError:
        live = None
    if change.before is None and live is not None:
        raise ConflictError(
            f"{label} was created by someone else since this plan was made; nothing was "
            "applied. Look at it, then re-open the action to plan again."
        )
    if change.before is not None:
        if live is None:
            raise ConflictError(
                f"{label} was deleted since this plan was made; nothing was applied. "
                "Re-open the action to plan again."
            )
        if comparable(live, masked=False) != comparable(change.before, masked=False):
            diff = render_diff(change.before, live, label, old="as planned", new="live now")
            diff = diff or f"# {label}: a masked (secret) value differs"
            raise ConflictError(
                f"{label} changed since this plan was made; nothing was applied. Re-open "
                f"the action to plan again.\n{diff}"
            )
