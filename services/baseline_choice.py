"""Which baseline an incident is judged against, and whether it may be.

The baseline is frozen once per incident: captured the first time the incident needs it (when
it opens, in practice), checked, and journaled as a `baseline` entry holding its window,
per-quantity values, coverage and the ReplicaSet that served it. Reopening the incident reuses
that entry, so the bar does not move while the room watches, whatever an offset window would
say an hour later. An operator's explicit choice (`--baseline-offset|start|end|file`) is checked
the same way and journaled as a new entry, which then wins.

A window is refused when it is under `MIN_COVERAGE` covered (see services.metrics.baseline),
when it ends after the suspect revision rolled out (the current revision, when it drifted:
its ReplicaSet's creation time) or after the incident opened, or when the pods in its series
carry the suspect revision's pod-template-hash. The refusal is one message naming the newest
fully covered window before the suspect revision rolled out, found by scanning back up to
`SEARCH_S` at the coverage slices' resolution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from services import rollout
from services.errors import ConfigError
from services.journal import Journal
from services.kube import Cluster
from services.metrics.baseline import (
    DAY_S,
    MIN_COVERAGE,
    SLICES,
    Baseline,
    BaselineSpec,
    capture,
    coverage,
    from_json,
    slice_presence,
    slice_s,
    utc,
)
from services.metrics.presets import TOKENS
from services.metrics.source import MetricsSource

ENTRY = "baseline"  # the journal entry type
SEARCH_S = 8 * DAY_S  # how far back a suggested window is looked for (a week and a day)
MAX_POINTS = 10_000  # Prometheus answers at most 11,000 points per series and query
MAX_TRIES = 5  # candidate windows verified before giving up on a suggestion
POD_SAMPLES = 5  # instants in the window at which the reporting pods are read


class BaselineRefused(ConfigError):
    """A baseline window that cannot stand for the last-known-good: the message says why and
    which window to use instead."""


@dataclass(frozen=True)
class ReplicaSetInfo:
    name: str
    revision: int
    pod_template_hash: str
    created: float  # unix seconds, from creationTimestamp

    def describe(self) -> str:
        return f"revision {self.revision} ({self.name})"


@dataclass(frozen=True)
class IncidentWindow:
    """What a baseline window must predate, on the metrics source's clock."""

    opened_at: float | None  # when the incident opened; None: no incident yet (now)
    suspect: ReplicaSetInfo | None  # the current revision when it drifted
    replicasets: tuple[ReplicaSetInfo, ...] = ()

    @property
    def limit(self) -> float | None:
        """The latest a baseline window may end."""
        bounds = [t for t in (self.opened_at, self.suspect and self.suspect.created) if t]
        return min(bounds) if bounds else None

    def by_hash(self, pod_hash: str) -> ReplicaSetInfo | None:
        return next((r for r in self.replicasets if r.pod_template_hash == pod_hash), None)

    def newest_before(self, t: float) -> ReplicaSetInfo | None:
        older = [r for r in self.replicasets if r.created <= t]
        return max(older, key=lambda r: (r.created, r.revision)) if older else None


def _timestamp(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (TypeError, ValueError):
        return None


def incident_window(
    cluster: Cluster, namespace: str, deployment: str, opened_at: float | None = None
) -> IncidentWindow:
    """The Deployment's ReplicaSets and the suspect one (the current revision, when its
    template drifted from a last-known-good one). Raises NotFoundError for an unknown
    Deployment, UnreachableError."""
    live = cluster.get("Deployment", namespace, deployment)
    sets: list[ReplicaSetInfo] = []
    for rs in rollout.owned_replicasets(cluster, live):
        meta = rs["metadata"]
        created = _timestamp(str(meta.get("creationTimestamp", "")))
        if created is None:
            continue
        sets.append(
            ReplicaSetInfo(
                meta["name"],
                rollout.revision_of(rs),
                str((meta.get("labels") or {}).get("pod-template-hash", "")),
                created,
            )
        )
    revisions = rollout.history(cluster, namespace, deployment)
    current = next((r for r in revisions if r.current), None)
    suspect = None
    # A drifted revision is the suspect only when it replaced a last-known-good one: the
    # only revision there is served the good days too.
    if current is not None and current.findings and any(r.last_known_good for r in revisions):
        suspect = next((r for r in sets if r.name == current.replicaset), None)
    return IncidentWindow(opened_at, suspect, tuple(sets))


def opened_at(journal: Journal | None) -> float | None:
    """When the journal's incident opened (unix seconds), None without one."""
    if journal is None:
        return None
    return _timestamp(str(journal.meta().get("opened_at", "")))


def pod_hash(pod: str, deployment: str) -> str:
    """The pod-template-hash in a Deployment's pod name (<deployment>-<hash>-<suffix>)."""
    if not pod.startswith(deployment + "-"):
        return ""
    rest = pod[len(deployment) + 1 :]
    return rest.rsplit("-", 1)[0] if "-" in rest else ""


def window_pods(source: MetricsSource, start: float, end: float) -> list[str]:
    """The pods whose engine series report within the window (read at a few instants).
    Raises what the source raises."""
    reader = getattr(source, "pod_freshness", None)
    if reader is None:
        return []
    pods: set[str] = set()
    for i in range(POD_SAMPLES):
        at = end - (end - start) * i / POD_SAMPLES
        pods.update(p for p, t in reader(at=at).items() if start <= t <= end)
    return sorted(pods)


def served_by(
    incident: IncidentWindow, deployment: str, pods: list[str], end: float
) -> dict[str, Any]:
    """Which ReplicaSet served a window: by the pods' pod-template-hash when one matches,
    else the newest ReplicaSet created before the window ended."""
    hashes = sorted({h for p in pods if (h := pod_hash(p, deployment))})
    matched = [r for h in hashes if (r := incident.by_hash(h)) is not None]
    if matched:
        rs = max(matched, key=lambda r: r.revision)
        how = "pod-template-hash of the window's pods"
    else:
        found = incident.newest_before(end)
        if found is None:
            return {"pod_template_hashes": hashes, "how": "no ReplicaSet is old enough"}
        rs = found
        how = "the newest ReplicaSet created before the window ended"
        if hashes:
            how += f" (the window's pods carry hash {', '.join(hashes)}, no ReplicaSet has it)"
    return {
        "replicaset": rs.name,
        "revision": rs.revision,
        "pod_template_hash": rs.pod_template_hash,
        "pod_template_hashes": hashes,
        "how": how,
    }


def problems(baseline: Baseline, incident: IncidentWindow, pods: list[str]) -> list[str]:
    """Why the baseline cannot stand for the last-known-good; [] when it can."""
    out: list[str] = []
    covered = baseline.judged_coverage
    if covered is not None and covered < MIN_COVERAGE:
        out.append(
            f"only {covered * 100:.0f}% covered (samples in {covered * SLICES:.0f} of its "
            f"{SLICES} slices; needs {MIN_COVERAGE * 100:.0f}%)"
        )
    suspect = incident.suspect
    if suspect is not None and baseline.end > suspect.created:
        out.append(
            f"it ends after {suspect.describe()} rolled out at {utc(suspect.created)} "
            "(inside the incident)"
        )
    elif incident.opened_at is not None and baseline.end > incident.opened_at:
        out.append(f"it ends after the incident opened at {utc(incident.opened_at)}")
    if suspect is not None and suspect.pod_template_hash:
        bad = [p for p in pods if pod_hash(p, baseline.deployment) == suspect.pod_template_hash]
        if bad:
            out.append(
                f"its series come from {suspect.describe()}'s pods ({', '.join(bad[:3])}"
                f"{', ...' if len(bad) > 3 else ''})"
            )
    return out


def suggest(
    source: MetricsSource, incident: IncidentWindow, window_s: float
) -> tuple[float, float] | None:
    """The newest window of `window_s` that is fully covered and ends before the suspect
    revision rolled out and the incident opened; None when the last `SEARCH_S` hold none.
    Raises what the source raises."""
    limit = incident.limit
    newest = float(math.floor(min(limit, source.now()) if limit else source.now()))
    piece = slice_s(window_s, source.scrape_interval_s)
    need = max(1, math.floor(window_s / piece + 1e-9))
    enough = math.ceil(MIN_COVERAGE * need)
    oldest = newest - SEARCH_S
    end, tries = newest, 0
    while end - window_s >= oldest and tries < MAX_TRIES:
        start = max(oldest, end - piece * MAX_POINTS)
        present = slice_presence(source, TOKENS, start, end, piece)
        slots = math.floor((end - start) / piece + 1e-9)
        count = sum(1 for i in range(need) if i in present)
        for i in range(slots - need + 1):
            if i:
                count += (i + need - 1 in present) - (i - 1 in present)
            if i not in present or count < enough:
                continue
            tries += 1
            candidate = (end - i * piece - window_s, end - i * piece)
            judged = replace(_blank(source), coverage=coverage(source, *candidate))
            if (judged.judged_coverage or 0.0) >= MIN_COVERAGE:
                return candidate
            if tries >= MAX_TRIES:
                break
        if start <= oldest:
            break
        end = start + window_s  # overlap so a window across the chunks is seen
    return None


def _blank(source: MetricsSource) -> Baseline:
    return Baseline({}, 0.0, 0.0, "", 0.0, "", source.scope.namespace, source.scope.deployment)


def refusal(
    baseline: Baseline, reasons: list[str], suggestion: tuple[float, float] | None, why: str
) -> str:
    """One line: the window, why it is refused, and the window to use instead."""
    head = (
        f"the baseline window {utc(baseline.start)} .. {utc(baseline.end)} ({baseline.how}) is "
        f"refused: {'; '.join(reasons)}"
    )
    if suggestion is None:
        return (
            f"{head}; no fully covered window of that length was found in the "
            f"{SEARCH_S / DAY_S:.0f} days before {why}: capture one with `skewmit baseline "
            "capture` while the fleet is healthy and pass --baseline-file"
        )
    start, end = (utc(t) for t in suggestion)
    return (
        f"{head}; use {start} .. {end} instead (--baseline-start {start} --baseline-end {end}), "
        f"the newest fully covered window before {why}"
    )


def check(baseline: Baseline, source: MetricsSource, incident: IncidentWindow | None) -> Baseline:
    """The baseline with `served_by` filled in, when it may stand for the last-known-good.
    Raises BaselineRefused (one line, with the window to use instead), what the source
    raises."""
    pods = window_pods(source, baseline.start, baseline.end)
    incident = incident or IncidentWindow(None, None)
    reasons = problems(baseline, incident, pods)
    if baseline.end > source.now() + source.scrape_interval_s:
        reasons.insert(0, f"it ends in the future (now is {utc(source.now())})")
    if not baseline.values:
        reasons.insert(0, "it holds no data for the deployment")
    if reasons:
        suspect = incident.suspect
        why = (
            f"{suspect.describe()} rolled out"
            if suspect is not None
            else ("the incident opened" if incident.opened_at is not None else "now")
        )
        suggestion = suggest(source, incident, baseline.end - baseline.start)
        raise BaselineRefused(refusal(baseline, reasons, suggestion, why))
    return replace(baseline, served_by=served_by(incident, baseline.deployment, pods, baseline.end))


def from_journal(journal: Journal | None) -> Baseline | None:
    """The incident's newest frozen baseline, None when it has none."""
    if journal is None:
        return None
    for entry in reversed(journal.entries()):
        if entry.type != ENTRY:
            continue
        try:
            found = from_json(entry.data, f"journal entry #{entry.seq}")
        except ConfigError:
            continue  # an entry that does not read back: an older one may
        return replace(found, frozen=f"journal {journal.incident_id} #{entry.seq}")
    return None


def record(journal: Journal | None, baseline: Baseline, reason: str) -> Baseline:
    """Journal the frozen baseline; the baseline with where it was frozen."""
    if journal is None:
        return baseline
    entry = journal.append(ENTRY, baseline.as_json() | {"reason": reason})
    if not entry.seq:
        return baseline  # a read-only journal: nothing recorded
    return replace(baseline, frozen=f"journal {journal.incident_id} #{entry.seq}")


def adopt(journal: Journal, baseline: Baseline) -> Baseline:
    """A baseline frozen before the incident's journal opened (the session judged a fleet it
    had not yet called an incident), journaled now as the `record` entry, so the evidence
    bundle and a reopen judge against the same bar. The journal's own when it already holds
    one (a reopened incident, or a capture that raced the opening). Raises JournalError when
    the entry cannot be written."""
    found = from_journal(journal)
    if found is not None:
        return found
    return record(journal, baseline, "frozen before the incident opened, when first judged")


def frozen(
    source: MetricsSource,
    spec: BaselineSpec,
    window_s: float,
    *,
    cluster: Cluster | None,
    journal: Journal | None,
    explicit: bool = False,
    record_it: bool = True,
) -> Baseline:
    """The incident's baseline: the journal's frozen one unless the operator chose another
    (`explicit`), else captured as `spec` says, checked and journaled. Raises BaselineRefused,
    ConfigError for a bad spec or file, NotFoundError, UnreachableError and what the source
    raises."""
    found = from_journal(journal)
    if found is not None and (not explicit or _same_choice(found, spec)):
        return found  # a CI loop repeating the operator's flags adds no entry per run
    incident = None
    if cluster is not None:
        scope = source.scope
        incident = incident_window(cluster, scope.namespace, scope.deployment, opened_at(journal))
    elif journal is not None:
        incident = IncidentWindow(opened_at(journal), None)
    baseline = check(capture(source, spec, window_s, with_series=False), source, incident)
    if not record_it:
        return baseline
    reason = "chosen by the operator" if explicit else "frozen when the incident opened"
    return record(journal, baseline, reason)


def _same_choice(found: Baseline, spec: BaselineSpec) -> bool:
    if spec.mode == "range":
        return (found.start, found.end) == (spec.start, spec.end) and found.how == spec.describe()
    if spec.mode == "file":
        return found.how.startswith(f"file {spec.path} ")
    return False  # an offset is "back from now": a new window each time


def summary(baseline: Baseline) -> Mapping[str, Any]:
    """What a report shows of a baseline: window, coverage, who served it, where frozen."""
    return {
        "window": [utc(baseline.start), utc(baseline.end)],
        "how": baseline.how,
        "coverage": dict(baseline.coverage),
        "served_by": dict(baseline.served_by),
        "frozen": baseline.frozen,
    }


__all__ = [
    "ENTRY",
    "BaselineRefused",
    "IncidentWindow",
    "ReplicaSetInfo",
    "adopt",
    "check",
    "from_journal",
    "frozen",
    "incident_window",
    "opened_at",
    "pod_hash",
    "problems",
    "record",
    "served_by",
    "suggest",
    "summary",
    "window_pods",
]
