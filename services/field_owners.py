"""Who owns a field: a server-side apply's 409 conflicts, read from the API server's Status.

A server-side apply that would change a field another field manager owns is refused with 409
Conflict; the Status' `details.causes` name each field (`.spec.replicas`) and its manager
(`conflict with "argocd-controller"`, or `... using apps/v1` for a manager that wrote with an
ordinary update). skewmit never forces such fields silently: the error says who owns what, and
where to change it instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from services.errors import ConflictError

# The words the operator reads first, and tests and callers look for.
OWNED_BY_ANOTHER = "another manager owns"
# Managers that apply what a Git repository holds: the fix belongs in Git.
_GITOPS_MANAGERS = ("argocd", "argo-cd", "flux", "kustomize-controller", "helm-controller")
_MANAGER = re.compile(
    r'conflicts? with "(?P<manager>[^"]*)"'
    r'(?: with subresource "(?P<sub>[^"]*)")?(?P<update> using \S+)?'
)


@dataclass(frozen=True)
class FieldConflict:
    """One field a server-side apply would change that another manager owns."""

    manager: str
    operation: str  # Apply (applied it) | Update (wrote it with a create/update/patch)
    field: str  # as the server prints it: .spec.replicas, .metadata.labels.app
    subresource: str = ""


class FieldOwnedError(ConflictError):
    """A server-side apply met fields other field managers own (409); nothing was written.
    `conflicts` names each field and its manager."""

    def __init__(self, message: str, conflicts: tuple[FieldConflict, ...] = ()) -> None:
        super().__init__(message)
        self.conflicts = conflicts


def _manager(found: re.Match[str]) -> tuple[str, str, str]:
    operation = "Update" if found.group("update") else "Apply"
    return found.group("manager"), operation, found.group("sub") or ""


def conflicts_in(status: Any) -> tuple[FieldConflict, ...]:
    """The field conflicts a 409 Status body (a dict or its JSON text) lists: from
    `details.causes` (reason FieldManagerConflict), else from the message's lines. Empty for
    any other conflict (a resourceVersion precondition). Raises nothing."""
    if isinstance(status, str | bytes):
        try:
            status = json.loads(status)
        except ValueError:
            return ()
    if not isinstance(status, dict):
        return ()
    out: list[FieldConflict] = []
    details = status.get("details") if isinstance(status.get("details"), dict) else {}
    for cause in (details or {}).get("causes") or []:
        if not isinstance(cause, dict) or cause.get("reason") != "FieldManagerConflict":
            continue
        found = _MANAGER.search(str(cause.get("message", "")))
        if found is not None:
            who = _manager(found)
            out.append(FieldConflict(who[0], who[1], str(cause.get("field", "")), who[2]))
    if out:
        return tuple(out)
    return _from_message(str(status.get("message", "")))


def _from_message(message: str) -> tuple[FieldConflict, ...]:
    """`Apply failed with 1 conflict: conflict with "m": .f` or, for several, a
    `conflicts with "m":` line followed by `- .f` lines per manager."""
    if not message.startswith("Apply failed with"):
        return ()
    out: list[FieldConflict] = []
    current: tuple[str, str, str] | None = None
    for line in message.splitlines():
        found = _MANAGER.search(line)
        if found is not None:
            current = _manager(found)
            field = line[found.end() :].lstrip(":").strip()
            if field:
                out.append(FieldConflict(current[0], current[1], field, current[2]))
        elif current is not None and line.startswith("- "):
            out.append(FieldConflict(current[0], current[1], line[2:].strip(), current[2]))
    return tuple(out)


def _source(managers: list[str]) -> str:
    """Where the owners' values come from, for 'change it there'."""
    lowered = [m.lower() for m in managers]
    if all(any(g in m for g in _GITOPS_MANAGERS) for m in lowered):
        return "Git"
    if all(m.startswith("kubectl") for m in lowered):
        return "the manifest it was applied from"
    return "its source (the manifest, chart or controller that writes it)"


def owned_message(what: str, conflicts: tuple[FieldConflict, ...], server: str = "") -> str:
    """One paragraph for the operator: which fields, owned by whom, that skewmit did not
    force them, and what to do. `what` names the object (deployment/x); `server` is the API
    server's own message, appended."""
    several = len(conflicts) > 1
    fields = ", ".join(
        f"{c.field} is owned by {c.manager} ({c.operation}"
        + (f", subresource {c.subresource}" if c.subresource else "")
        + ")"
        for c in conflicts
    )
    managers = sorted({c.manager for c in conflicts})
    that = "those managers read" if len(managers) > 1 else "that manager reads"
    owner = "their owners" if len(managers) > 1 else "its owner"
    text = (
        f"{what}: {OWNED_BY_ANOTHER} {'these fields' if several else 'this field'}: {fields}; "
        f"skewmit will not force {'them' if several else 'it'}. Change "
        f"{'them' if several else 'it'} where {that} from ({_source(managers)}), or re-run "
        f"skewmit with --force-conflicts after agreeing with {owner}. skewmit wrote nothing to it."
    )
    return f"{text}\nthe API server: {server}" if server else text
