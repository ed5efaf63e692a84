"""Reconciling what a crash left: every intent in the journal without an outcome, against the
live cluster.

skewmit journals `apply-intent` before it changes anything and `applied` after it verified;
a crash (kill -9, a dropped SSH session without tmux, a full disk) between the two leaves an
intent with no outcome, and the change may or may not be live. On start the lock holder reads
each such object and journals what it finds: `applied` (the change is live: its revert is
offered like any other), `apply-failed` (the object is as it was: nothing to revert), or
`reconciled` with outcome `unknown` (the object moved since, or could not be read: shown as
such and, when it could not be read, tried again on the next start). A `revert-intent` without
its `reverted` is settled the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from services.errors import NotFoundError, SkewmitError
from services.gate import comparable, inverse_ops
from services.journal import Entry, Journal
from services.kube import Cluster

Obj = dict[str, Any]
ChangeState = Literal["applied", "not-applied", "unknown"]
Outcome = Literal["applied", "not-applied", "partial", "unknown", "reverted", "not-reverted"]
_ABSENT = object()


@dataclass(frozen=True)
class ChangeFound:
    """One object of an intent, as the live cluster shows it."""

    kind: str
    namespace: str
    name: str
    state: ChangeState
    reason: str


@dataclass(frozen=True)
class Reconciled:
    """What an intent without an outcome turned out to be, and the entry that records it."""

    intent: int  # the apply-intent's (or revert-intent's) seq
    title: str
    outcome: Outcome
    changes: tuple[ChangeFound, ...]
    seq: int  # the entry written: for `applied`/`partial`, the key a revert names
    retry: bool = False  # could not be read: tried again on the next start

    @property
    def revertible(self) -> bool:
        return self.outcome in ("applied", "partial")

    @property
    def message(self) -> str:
        what = {
            "applied": "applied (found live after a restart; revert offered)",
            "partial": "partially applied (found after a restart; revert of the live part offered)",
            "not-applied": "not applied (the objects are as they were before it)",
            "unknown": "unknown: the objects changed since, or could not be read; check them "
            "by hand",
            "reverted": "reverted (found after a restart)",
            "not-reverted": "not reverted (the change is still live; revert offered)",
        }[self.outcome]
        reasons = "; ".join(f"{c.kind.lower()}/{c.name}: {c.reason}" for c in self.changes)
        return f"entry #{self.intent} {self.title}: {what}" + (f" ({reasons})" if reasons else "")


def pending_intents(entries: Sequence[Entry]) -> list[Entry]:
    """Apply and revert intents without an outcome, oldest first."""
    closed: set[int] = set()
    reverts_done: dict[int, int] = {}  # applied seq -> seq of its last revert outcome
    for entry in entries:
        intent = entry.data.get("intent")
        settled = entry.type in ("applied", "apply-failed") or (
            entry.type == "reconciled" and not entry.data.get("retry")
        )
        if settled and isinstance(intent, int):
            closed.add(intent)
        if entry.type in ("reverted", "revert-refused") or (
            entry.type == "reconciled" and "reverts" in entry.data and not entry.data.get("retry")
        ):
            reverts_done[int(entry.data.get("reverts") or 0)] = entry.seq
    out = []
    for entry in entries:
        if entry.type == "apply-intent" and entry.seq not in closed:
            out.append(entry)
        elif entry.type == "revert-intent":
            done = reverts_done.get(int(entry.data.get("reverts") or 0), 0)
            if done < entry.seq:
                out.append(entry)
    return out


def reconcile(journal: Journal, cluster: Cluster) -> list[Reconciled]:
    """Settle every intent without an outcome against the live cluster and journal what was
    found. Only the lock holder does this (returns [] on a read-only journal). Raises
    JournalError when the journal cannot be written; a cluster error makes that intent
    `unknown` (retried on the next start), never an exception."""
    if not journal.owner:
        return []
    entries = journal.entries()
    by_seq = {e.seq: e for e in entries}
    out = []
    for intent in pending_intents(entries):
        if intent.type == "apply-intent":
            out.append(_settle_apply(journal, cluster, intent))
        else:
            applied = by_seq.get(int(intent.data.get("reverts") or 0))
            source = by_seq.get(int(applied.data.get("intent") or 0)) if applied else None
            if applied is not None and source is not None:
                out.append(_settle_revert(journal, cluster, intent, applied, source))
    return out


def _settle_apply(journal: Journal, cluster: Cluster, intent: Entry) -> Reconciled:
    data = intent.data
    title = str(data.get("title", data.get("action", "")))
    found: list[ChangeFound] = []
    inverses: list[Obj] = []
    afters: list[Obj] = []
    retry = False
    for change in data.get("changes") or []:
        state, reason, live, unreadable = _find(cluster, change)
        retry = retry or unreadable
        found.append(
            ChangeFound(change["kind"], change["namespace"], change["name"], state, reason)
        )
        inverses.append(_inverse(change, live) if state == "applied" else _none(change, reason))
        afters.append(comparable(live) if state == "applied" and live else {})
    states = {c.state for c in found}
    outcome: Outcome
    if "unknown" in states:
        outcome = "unknown"
    elif states == {"not-applied"}:
        outcome = "not-applied"
    elif "not-applied" in states:
        outcome = "partial"
    else:
        outcome = "applied"
    base = {"intent": intent.seq, "action": data.get("action", ""), "title": title}
    changes = [c.__dict__ for c in found]
    result = Reconciled(intent.seq, title, outcome, tuple(found), 0, retry)
    if outcome in ("applied", "partial"):
        entry = journal.append(
            "applied",
            {
                **base,
                "inverse": inverses,
                "after": afters,
                "verified": outcome == "applied",
                "verify": f"reconciled on restart: {result.message}",
                "reconciled": outcome,
                "changes": changes,
            },
        )
    elif outcome == "not-applied":
        entry = journal.append(
            "apply-failed",
            {
                **base,
                "error": f"reconciled on restart: {result.message}",
                "applied": 0,
                "inverse": [],
                "reconciled": outcome,
                "changes": changes,
            },
        )
    else:
        entry = journal.append(
            "reconciled",
            {
                **base,
                "outcome": outcome,
                "retry": retry,
                "message": result.message,
                "changes": changes,
            },
        )
    return Reconciled(intent.seq, title, outcome, tuple(found), entry.seq, retry)


def _settle_revert(
    journal: Journal, cluster: Cluster, intent: Entry, applied: Entry, source: Entry
) -> Reconciled:
    """A revert-intent without an outcome: the applied change's objects, back as they were
    before it (reverted), still as it left them (not reverted), or neither (unknown)."""
    title = f"Revert: {applied.data.get('title', '')}"
    found: list[ChangeFound] = []
    retry = False
    targets = {(c["kind"], c["namespace"], c["name"]): c for c in source.data.get("changes") or []}
    for inverse in applied.data.get("inverse") or []:
        if inverse.get("operation") == "none":
            continue
        change = targets.get((inverse["kind"], inverse["namespace"], inverse["name"]))
        if change is None:
            continue
        state, reason, _, unreadable = _find(cluster, change)
        retry = retry or unreadable
        # Applied now means the revert did not happen; as before means it did.
        flipped: ChangeState = (
            "not-applied" if state == "applied" else "applied" if state == "not-applied" else state
        )
        found.append(
            ChangeFound(change["kind"], change["namespace"], change["name"], flipped, reason)
        )
    states = {c.state for c in found}
    outcome: Outcome = (
        "reverted"
        if states == {"applied"}
        else "not-reverted"
        if states == {"not-applied"}
        else "unknown"
    )
    result = Reconciled(intent.seq, title, outcome, tuple(found), 0, retry)
    if outcome == "reverted":
        entry = journal.append(
            "reverted",
            {
                "reverts": applied.seq,
                "title": title,
                "verified": True,
                "verify": f"reconciled on restart: {result.message}",
                "reconciled": outcome,
            },
        )
    else:
        entry = journal.append(
            "reconciled",
            {
                "reverts": applied.seq,
                "intent": intent.seq,
                "title": title,
                "outcome": outcome,
                "retry": retry,
                "message": result.message,
            },
        )
    return Reconciled(intent.seq, title, outcome, tuple(found), entry.seq, retry)


def _find(cluster: Cluster, change: Obj) -> tuple[ChangeState, str, Obj | None, bool]:
    """(state, why, live object, could not be read) for one journaled change."""
    kind, ns, name = change["kind"], change["namespace"], change["name"]
    try:
        live = cluster.get(kind, ns, name)
    except NotFoundError:
        live = None
    except SkewmitError as exc:
        return "unknown", f"could not be read: {exc}", None, True
    operation = change.get("operation")
    # A server-side apply planned against no object created it: settled like a create.
    creates = operation == "create" or (operation == "apply" and not change.get("before"))
    if creates:
        if live is None:
            return "not-applied", "does not exist", None, False
        return "applied", "exists", live, False
    if operation == "delete":
        if live is None or live.get("metadata", {}).get("deletionTimestamp"):
            return "applied", "deleted", live, False
        return "not-applied", "still there", live, False
    if live is None:
        return "unknown", "the object no longer exists", None, False
    if operation == "apply":
        return _find_applied(change, live)
    before = _leaves(change.get("before") or {})
    after = _leaves(change.get("after") or {})
    now = _leaves(comparable(live))
    paths = {
        p for p in before.keys() | after.keys() if before.get(p, _ABSENT) != after.get(p, _ABSENT)
    }
    if all(now.get(p, _ABSENT) == after.get(p, _ABSENT) for p in paths):
        return "applied", "the change is live", live, False
    if all(now.get(p, _ABSENT) == before.get(p, _ABSENT) for p in paths):
        return "not-applied", "as it was before", live, False
    moved = sorted(".".join(p) for p in paths if now.get(p, _ABSENT) != after.get(p, _ABSENT))
    return "unknown", f"neither as before nor as planned at {', '.join(moved[:3])}", live, False


def _find_applied(change: Obj, live: Obj) -> tuple[ChangeState, str, Obj | None, bool]:
    """An apply to an existing object sent only the fields skewmit sets, and the server
    merged them into the object (defaults added to list items): applied when the live object
    holds every field sent, not applied when it is as it was."""
    now = comparable(live)
    if _covers(now, change.get("after") or {}):
        return "applied", "the applied fields are live", live, False
    if now == (change.get("before") or {}):
        return "not-applied", "as it was before", live, False
    return "unknown", "neither as before nor holding the applied fields", live, False


def _covers(have: Any, want: Any) -> bool:
    """Whether `have` holds everything `want` says: maps key by key, lists item by item (of
    the same length), anything else equal."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(
            k in have and _covers(have[k], v) for k, v in want.items()
        )
    if isinstance(want, list):
        return (
            isinstance(have, list)
            and len(have) == len(want)
            and all(_covers(h, w) for h, w in zip(have, want, strict=True))
        )
    return bool(have == want)


def _leaves(obj: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every scalar or list in a nested dict, by its key path."""
    if isinstance(obj, dict) and obj:
        out: dict[tuple[str, ...], Any] = {}
        for key, value in obj.items():
            out.update(_leaves(value, (*prefix, str(key))))
        return out
    if isinstance(obj, dict):
        return {}
    return {prefix: obj}


def _inverse(change: Obj, live: Obj | None) -> Obj:
    target = {"kind": change["kind"], "namespace": change["namespace"], "name": change["name"]}
    operation = change.get("operation")
    if operation in ("patch", "apply") and change.get("before") and live is not None:
        return {**target, "operation": "patch", "ops": inverse_ops(change["before"], live)}
    if operation in ("create", "apply"):
        return {**target, "operation": "delete"}
    return {**target, "operation": "none", "why": "a deleted pod is recreated by its ReplicaSet"}


def _none(change: Obj, reason: str) -> Obj:
    return {
        "kind": change["kind"],
        "namespace": change["namespace"],
        "name": change["name"],
        "operation": "none",
        "why": f"not applied: {reason}",
    }
