"""What the ReplicaSet history says for the postmortem: the triggering change (the revision that
was live when the incident opened, with its change-cause), when each rollout completed, and a
before/after of every change skewmit did not make, rebuilt from the ReplicaSets.

A revision "made by skewmit" is one whose template equals a template skewmit's journal applied
(an `applied` entry's result, or the state a `reverted` entry restored); every other revision
was made outside skewmit (kubectl, CI, GitOps) and gets a before/after against the revision
before it. Templates are compared masked on both sides, as the journal stores them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import yaml

from services import rollout
from services.evidence_clock import Clocks, parse_utc
from services.masking import mask_object

Obj = dict[str, Any]
MAX_OUTSIDE = 10  # a Deployment keeps 10 old ReplicaSets by default
HISTORY = "deployment.kubernetes.io/revision-history"
_SCALED = re.compile(r"Scaled (up|down) replica set (\S+) from (\d+) to (\d+)")
_PROGRESSED = re.compile(r'ReplicaSet "([^"]+)" has successfully progressed')


@dataclass(frozen=True)
class RevisionInfo:
    number: int
    replicaset: str
    change_cause: str
    created: float | None  # the cluster's clock; None for a number the ReplicaSet got later
    template: Obj  # masked, pod-template-hash removed
    current: bool = True  # False: an older number of the ReplicaSet (revision-history)


@dataclass(frozen=True)
class Trigger:
    revision: RevisionInfo
    previous: RevisionInfo | None
    how: str  # where the bundle learned it from


@dataclass(frozen=True)
class RolloutDone:
    replicaset: str
    revision: int | None
    at: float  # the cluster's clock
    where: str  # what says so: the Deployment status (when read), or the scaling events


def _template(obj: Mapping[str, Any]) -> Obj:
    template = ((obj.get("spec") or {}).get("template")) or {}
    return rollout.strip_hash(mask_object(template, keep_refs=True))


def revisions(sets: Sequence[Mapping[str, Any]]) -> list[RevisionInfo]:
    """Every revision the ReplicaSets held, oldest first (masked templates). A rollback gives
    an old ReplicaSet the newest number and keeps its older ones in
    `deployment.kubernetes.io/revision-history`: those count too, so the history reads as it
    happened (its first number at its creation time; a later one at an unknown time)."""
    out = []
    for rs in sets:
        meta = rs.get("metadata") or {}
        notes = meta.get("annotations") or {}
        number = rollout.revision_of(dict(rs))
        older = sorted(
            int(n) for n in str(notes.get(HISTORY, "")).split(",") if n.strip().isdigit()
        )
        created = parse_utc(str(meta.get("creationTimestamp", "")))
        template = _template(rs)
        for n in (*older, number):
            out.append(
                RevisionInfo(
                    number=n,
                    replicaset=str(meta.get("name", "")),
                    change_cause=str(notes.get(rollout.CHANGE_CAUSE, "")),
                    created=created if n == min((*older, number)) else None,
                    template=template,
                    current=n == number,
                )
            )
    return sorted(out, key=lambda r: r.number)


def _record_data(record: Mapping[str, Any]) -> Mapping[str, Any]:
    data = record.get("data")
    return data if isinstance(data, Mapping) else {}


def skewmit_templates(records: Sequence[Mapping[str, Any]]) -> list[Obj]:
    """Deployment templates skewmit put in place: applied results and reverted-to states."""
    out: list[Obj] = []
    intents = {r.get("seq"): _record_data(r) for r in records if r.get("type") == "apply-intent"}
    applied = {r.get("seq"): _record_data(r) for r in records if r.get("type") == "applied"}
    for data in applied.values():
        for obj in data.get("after") or []:
            if isinstance(obj, Mapping) and (obj.get("spec") or {}).get("template"):
                out.append(_template(obj))
    for record in records:
        if record.get("type") != "reverted":
            continue
        done = applied.get(_record_data(record).get("reverts"), {})
        for change in intents.get(done.get("intent"), {}).get("changes") or []:
            before = change.get("before") if isinstance(change, Mapping) else None
            if isinstance(before, Mapping) and (before.get("spec") or {}).get("template"):
                out.append(_template(before))
    return out


def _snapshot(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    for record in records:
        data = _record_data(record)
        if record.get("type") == "snapshot" and data.get("label") == "before":
            return data
    return None


def _matching(revs: Sequence[RevisionInfo], template: Obj) -> RevisionInfo | None:
    found = [r for r in revs if r.template == template]
    return max(found, key=lambda r: r.number) if found else None


def _previous(revs: Sequence[RevisionInfo], rev: RevisionInfo) -> RevisionInfo | None:
    older = [r for r in revs if r.number < rev.number]
    return older[-1] if older else None


def triggering_change(
    records: Sequence[Mapping[str, Any]], live: Mapping[str, Any], sets: Sequence[Obj]
) -> Trigger | None:
    """The revision that was live when the incident opened (the journal's "before" snapshot,
    else the state before skewmit's first Deployment change, else the revision live now) and
    the revision before it."""
    snap = _snapshot(records)
    if snap is not None and isinstance(snap.get("deployment"), Mapping):
        revs = revisions([rs for rs in snap.get("replicasets") or [] if isinstance(rs, Mapping)])
        found = _matching(revs, _template(snap["deployment"]))
        if found is not None:
            return Trigger(found, _previous(revs, found), "live when the incident opened")
    revs = revisions(sets)
    for record in records:
        if record.get("type") != "apply-intent":
            continue
        for change in _record_data(record).get("changes") or []:
            before = change.get("before") if isinstance(change, Mapping) else None
            if change.get("kind") == "Deployment" and isinstance(before, Mapping):
                found = _matching(revs, _template(before))
                if found is not None:
                    how = "live before skewmit's first change"
                    return Trigger(found, _previous(revs, found), how)
    found = _matching(revs, _template(live))
    if found is None:
        return None
    return Trigger(found, _previous(revs, found), "live now (no change journaled)")


def outside_changes(
    records: Sequence[Mapping[str, Any]], sets: Sequence[Obj]
) -> list[tuple[RevisionInfo, RevisionInfo]]:
    """(before, after) for each revision skewmit did not apply, newest last."""
    mine = skewmit_templates(records)
    revs = revisions(sets)
    out = []
    for before, after in pairwise(revs):
        # An older number of a ReplicaSet skewmit later rolled back to was still made
        # outside skewmit; only a ReplicaSet's current number can be skewmit's doing.
        if not (after.current and after.template in mine):
            out.append((before, after))
    return out[-MAX_OUTSIDE:]


def rollouts_completed(
    deployments: Sequence[tuple[str, Mapping[str, Any]]], sets: Sequence[Obj]
) -> list[RolloutDone]:
    """When each Deployment state's rollout completed: its Progressing condition with reason
    NewReplicaSetAvailable names the ReplicaSet and the time. One row per (ReplicaSet, time)."""
    numbers = {r.replicaset: r.number for r in revisions(sets) if r.current}
    seen: set[tuple[str, float]] = set()
    out = []
    for where, deployment in deployments:
        for cond in (deployment.get("status") or {}).get("conditions") or []:
            if cond.get("type") != "Progressing" or cond.get("reason") != "NewReplicaSetAvailable":
                continue
            match = _PROGRESSED.search(str(cond.get("message", "")))
            at = parse_utc(str(cond.get("lastUpdateTime") or cond.get("lastTransitionTime")))
            if match is None or at is None or (match.group(1), at) in seen:
                continue
            seen.add((match.group(1), at))
            out.append(RolloutDone(match.group(1), numbers.get(match.group(1)), at, where))
    return sorted(out, key=lambda r: r.at)


def rollouts_from_events(
    events: Sequence[Mapping[str, Any]], deployment: str, sets: Sequence[Obj]
) -> list[RolloutDone]:
    """Rollouts rebuilt from the Deployment controller's ScalingReplicaSet events (kept an
    hour by default): a rollout to X starts when X is scaled up from 0 and completes when the
    last other ReplicaSet is scaled down to 0 (kubectl's "no old pods" moment)."""
    numbers = {r.replicaset: r.number for r in revisions(sets) if r.current}
    steps = []
    for event in events:
        involved = event.get("involvedObject") or {}
        if (
            event.get("reason") != "ScalingReplicaSet"
            or involved.get("kind") != "Deployment"
            or involved.get("name") != deployment
        ):
            continue
        match = _SCALED.search(str(event.get("message", "")))
        first = parse_utc(str(event.get("firstTimestamp") or event.get("eventTime") or ""))
        last = parse_utc(str(event.get("lastTimestamp") or "")) or first
        if match is None or first is None or last is None:
            continue
        way, name, old, new = match.groups()
        steps.append((first if way == "up" else last, way, name, old, new))
    out = []
    target: str | None = None
    done: float | None = None
    for at, way, name, old, new in sorted(steps):
        if way == "up" and old == "0":
            if target is not None and done is not None:
                out.append(RolloutDone(target, numbers.get(target), done, "scaling events"))
            target, done = name, None
        elif way == "down" and new == "0" and target is not None and name != target:
            done = at
    if target is not None and done is not None:
        out.append(RolloutDone(target, numbers.get(target), done, "scaling events"))
    return out


def merge_rollouts(
    exact: Sequence[RolloutDone], approx: Sequence[RolloutDone]
) -> list[RolloutDone]:
    """The Deployment status's completions, and the events' where the status has none for
    that ReplicaSet within a minute."""
    out = list(exact)
    for done in approx:
        if not any(e.replicaset == done.replicaset and abs(e.at - done.at) < 60 for e in exact):
            out.append(done)
    return sorted(out, key=lambda r: r.at)


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=True, default_flow_style=False, allow_unicode=True)


def _when(rev: RevisionInfo, clocks: Clocks) -> str:
    return clocks.stamp(rev.created) if rev.created is not None else "unknown time"


def outside_files(
    changes: Sequence[tuple[RevisionInfo, RevisionInfo]], clocks: Clocks
) -> dict[str, str]:
    """changes/outside-skewmit.md (a diff per change) and each change's before/after YAML."""
    lines = [
        "# Changes made outside skewmit",
        "",
        "Rebuilt from the ReplicaSet history: each revision whose pod template skewmit's "
        "journal did not apply, against the revision before it (pod-template-hash removed, "
        "secrets masked).",
        "",
    ]
    if not changes:
        lines.append("None: every revision in the history was applied by skewmit.")
    files: dict[str, str] = {}
    for before, after in changes:
        base = f"changes/revision-{after.number}"
        files[f"{base}-before.yaml"] = (
            f"# revision {before.number} ({before.replicaset}): {before.change_cause or '-'}\n"
            + _yaml(before.template)
        )
        files[f"{base}-after.yaml"] = (
            f"# revision {after.number} ({after.replicaset}): {after.change_cause or '-'}\n"
            + _yaml(after.template)
        )
        diff = difflib.unified_diff(
            _yaml(before.template).splitlines(),
            _yaml(after.template).splitlines(),
            f"revision {before.number}",
            f"revision {after.number}",
            lineterm="",
        )
        lines += [
            f"## Revision {before.number} -> {after.number} ({after.replicaset})",
            "",
            f"- Created: {_when(after, clocks)}",
            f"- Change-cause: {after.change_cause or '(none recorded)'} "
            f"(before: {before.change_cause or '(none recorded)'})",
            f"- Before/after: `{base}-before.yaml`, `{base}-after.yaml`",
            "",
            "```diff",
            *diff,
            "```",
            "",
        ]
    files["changes/outside-skewmit.md"] = "\n".join(lines) + "\n"
    return files
