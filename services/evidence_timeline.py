"""timeline.md: the incident as a postmortem author reads it.

One row per distinct finding (first seen, last seen, cleared), not one per check; the triggering
change; the journal's events with the rollouts' completions and the changes made outside
skewmit between them; validation rows with each criterion's reason and numbers. Every time is
UTC on the session's one clock (the simulator's in the demo, said in the header).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from services.evidence_clock import Clocks, parse_utc, utc
from services.evidence_history import RevisionInfo, RolloutDone, Trigger
from services.models import Target, Verdict

FINDING_RECORDS = ("finding", "findings", "finding-seen", "finding-cleared", "findings-changed")
QUIET = ("check", *FINDING_RECORDS)  # summarised in the findings table, not one row each
MAX_TEXT = 400


@dataclass
class FindingSpan:
    step: str
    code: str
    subject: str
    severity: str
    message: str
    first_seen: float
    last_seen: float
    cleared: float | None = None
    times_seen: int = 0
    observed: bool = False  # last_seen is an observation (a full check), not a change


def _data(record: Mapping[str, Any]) -> Mapping[str, Any]:
    data = record.get("data")
    return data if isinstance(data, Mapping) else {}


def _ts(record: Mapping[str, Any]) -> float | None:
    return parse_utc(str(record.get("ts", "")))


def _key(finding: Mapping[str, Any], step: str) -> tuple[str, str, str]:
    return (
        str(finding.get("step", step)),
        str(finding.get("code", "")),
        str(finding.get("subject", "")),
    )


def distinct_findings(records: Sequence[Mapping[str, Any]]) -> list[FindingSpan]:
    """Findings across the journal, one per (step, code, subject). Reads both journal forms:
    `check` entries holding every finding of a step (a finding missing from a later check of
    its step was cleared then), and entries recording changes of state (`seen` / `cleared`)."""
    spans: dict[tuple[str, str, str], FindingSpan] = {}
    active: dict[str, set[tuple[str, str, str]]] = {}

    def seen(
        finding: Mapping[str, Any], step: str, at: float, observed: bool = False
    ) -> tuple[str, str, str]:
        key = _key(finding, step)
        span = spans.get(key)
        if span is None:
            span = FindingSpan(
                key[0], key[1], key[2], str(finding.get("severity", "")),
                str(finding.get("message", "")), at, at,
            )  # fmt: skip
            spans[key] = span
        span.last_seen = max(span.last_seen, at)
        span.message = str(finding.get("message", span.message))
        span.severity = str(finding.get("severity", span.severity))
        span.cleared = None
        span.times_seen += 1
        span.observed = observed
        return key

    def cleared(key: tuple[str, str, str], at: float) -> None:
        span = spans.get(key)
        if span is not None and span.cleared is None:
            span.cleared = at

    for record in records:
        at = _ts(record)
        if at is None:
            continue
        data, kind = _data(record), str(record.get("type", ""))
        step = str(data.get("step", ""))
        if kind == "check" and isinstance(data.get("findings"), list):
            now = {seen(f, step, at, True) for f in data["findings"] if isinstance(f, Mapping)}
            for key in active.get(step, set()) - now:
                cleared(key, at)
            active[step] = now
            continue
        if kind not in FINDING_RECORDS and not ({"seen", "cleared"} & set(data)):
            continue
        gone = kind.endswith("cleared") or str(data.get("state", data.get("event", ""))) in (
            "cleared",
            "resolved",
        )
        if "code" in data:
            if gone:
                cleared(_key(data, step), at)
            else:
                seen(data, step, at)
        # Cleared first: a finding whose severity changed is cleared and seen in one entry.
        for finding in data.get("cleared") or []:
            if isinstance(finding, Mapping):
                cleared(_key(finding, step), at)
        for finding in data.get("seen") or data.get("findings") or []:
            if isinstance(finding, Mapping):
                seen(finding, step, at)
    return sorted(spans.values(), key=lambda s: (s.first_seen, s.step, s.code, s.subject))


def _cell(text: str) -> str:
    text = " ".join(str(text).split())
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 1] + "…"
    return text.replace("|", "\\|")


def _number(value: Any) -> str:
    return "-" if not isinstance(value, (int, float)) else f"{value:.4g}"


def check_text(check: Mapping[str, Any]) -> str:
    """One criterion with its reason and numbers."""
    return (
        f"{check.get('name')} {check.get('status')}: {check.get('message', '')} "
        f"(observed {_number(check.get('observed'))}, baseline {_number(check.get('baseline'))}; "
        f"{check.get('threshold', '-')})"
    )


def validation_text(data: Mapping[str, Any]) -> str:
    checks = [c for c in data.get("checks") or [] if isinstance(c, Mapping)]
    if not checks:
        return f"verdict {data.get('verdict')}"
    return f"verdict {data.get('verdict')}: " + "; ".join(check_text(c) for c in checks)


def _summary(record: Mapping[str, Any], clocks: Clocks) -> str:
    kind, data = str(record.get("type", "")), _data(record)
    if kind in ("plan", "apply-intent", "applied", "reverted"):
        text = str(data.get("title", data.get("action", "")))
        if kind == "apply-intent" and data.get("kubectl"):
            text += " (" + "; ".join(str(k) for k in data["kubectl"]) + ")"
        if kind in ("applied", "reverted"):
            text += f"; verified: {data.get('verify', data.get('verified'))}"
        if kind == "reverted":
            text += f" (reverts entry {data.get('reverts')})"
        return text
    if kind == "apply-failed":
        return f"{data.get('error')} ({data.get('applied')} change(s) applied)"
    if kind in ("revert-intent", "revert-refused"):
        return f"entry {data.get('reverts')}"
    if kind == "validation":
        return validation_text(data)
    if kind == "closed":
        return f"verdict {data.get('verdict')}"
    if kind in ("opened", "reopened") and not data:
        return f"incident {kind}"
    if kind == "snapshot":
        return f"manifests recorded ({data.get('label')})"
    if kind == "baseline":
        window = ""
        if isinstance(data.get("start"), (int, float)) and isinstance(
            data.get("end"), (int, float)
        ):
            window = f" {clocks.stamp(data['start'])} .. {clocks.stamp(data['end'])}"
        return f"baseline frozen{window}: {data.get('how', '')}".rstrip(": ")
    return str(data.get("message") or data.get("title") or json.dumps(data, sort_keys=True)[:160])


def _last_seen(span: FindingSpan, capture: float) -> str:
    if span.cleared is None:
        return f"{utc(capture)} (still present)"
    if span.observed and span.last_seen < span.cleared:
        return utc(span.last_seen)
    return f"until {utc(span.cleared)}"  # a journal of changes: present until it cleared


def findings_table(records: Sequence[Mapping[str, Any]], clocks: Clocks) -> list[str]:
    """The findings table: one row per finding and time span; the same finding on several
    objects (a Deployment and each of its pods) over the same span is one row."""
    groups: dict[tuple[str, str, str, float, float | None], list[FindingSpan]] = {}
    for span in distinct_findings(records):
        key = (span.step, span.code, span.severity, span.first_seen, span.cleared)
        groups.setdefault(key, []).append(span)
    lines = [
        "| First seen (UTC) | Last seen (UTC) | Cleared (UTC) | Step | Severity | Code | Finding "
        "| Subjects |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (step, code, severity, first, cleared), spans in groups.items():
        subjects = [s.subject for s in spans]
        shown = ", ".join(subjects[:3]) + (
            f" (+{len(subjects) - 3} more)" if len(subjects) > 3 else ""
        )
        last = max(spans, key=lambda s: s.last_seen)
        lines.append(
            f"| {utc(first)} | {_last_seen(last, clocks.now)} | "
            f"{utc(cleared) if cleared is not None else '-'} | {_cell(step)} | "
            f"{_cell(severity)} | {_cell(code)} | {_cell(spans[0].message)} | {_cell(shown)} |"
        )
    if not groups:
        lines.append("| - | - | - | - | - | - | no findings journaled | - |")
    return lines


@dataclass(frozen=True)
class Row:
    at: float  # the session's clock
    when: str
    who: str
    event: str
    what: str


def _rev(rev: RevisionInfo | None) -> str:
    if rev is None:
        return "none"
    cause = f'"{rev.change_cause}"' if rev.change_cause else "no change-cause"
    return f"revision {rev.number} (`{rev.replicaset}`, {cause})"


def render(
    *,
    target: Target,
    meta: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    verdict: Verdict | None,
    clocks: Clocks,
    operator: Mapping[str, str],
    trigger: Trigger | None,
    rollouts: Sequence[RolloutDone],
    outside: Sequence[tuple[RevisionInfo, RevisionInfo]],
    failures: Sequence[tuple[str, str]],
) -> str:
    """The timeline's markdown."""
    cluster = "cluster"
    lines = [
        f"# Incident timeline: {target.namespace}/{target.deployment}",
        "",
        f"- Context: `{target.context}`; API server: {target.server or '?'}",
        f"- Incident: {meta.get('id', 'no journal')}; opened {meta.get('opened_at', '?')} by "
        f"{meta.get('kube_user', '?')} ({meta.get('os_user', '?')})",
        f"- Evidence captured {utc(clocks.now)} by {operator.get('kube_user') or '?'} "
        f"({operator.get('os_user') or '?'})",
        f"- Verdict: **{verdict.verdict if verdict else 'not judged'}**",
        f"- Clock: {clocks.describe()}",
        "",
        "## Triggering change",
        "",
    ]
    if trigger is None:
        lines.append("Not found in the ReplicaSet history.")
    else:
        created = trigger.revision.created
        lines += [
            f"- {_rev(trigger.revision)}, {trigger.how}; created "
            f"{clocks.stamp(created) if created is not None else 'at an unknown time'}",
            f"- The revision before it: {_rev(trigger.previous)}",
        ]
        if any(after.number == trigger.revision.number for _, after in outside):
            lines.append(
                f"- Made outside skewmit: see `changes/revision-{trigger.revision.number}-"
                "before.yaml` / `-after.yaml` and `changes/outside-skewmit.md`"
            )
    lines += [
        "",
        "## Findings (one row per distinct finding)",
        "",
        *findings_table(records, clocks),
    ]
    rows: list[Row] = []
    for record in records:
        kind = str(record.get("type", ""))
        at = _ts(record)
        if kind in QUIET or at is None:
            continue
        who = record.get("who") or {}
        actor = f"{who.get('kube_user', '?')} ({who.get('os_user', '?')})"
        rows.append(Row(at, str(record.get("ts", "")), actor, kind, _summary(record, clocks)))
    for done in rollouts:
        revision = f"revision {done.revision}" if done.revision is not None else "a revision"
        what = f"rollout of {revision} (`{done.replicaset}`) completed (per the {done.where})"
        rows.append(Row(done.at, clocks.stamp(done.at), cluster, "rollout", what))
    for before, after in outside:
        if after.created is None:
            continue
        what = (
            f"{_rev(after)} created outside skewmit (before: {_rev(before)}); see "
            f"changes/revision-{after.number}-after.yaml"
        )
        rows.append(Row(after.created, clocks.stamp(after.created), cluster, "change", what))
    if verdict is not None and not any(
        r.get("type") == "validation" and _data(r).get("at") == verdict.at for r in records
    ):
        what = validation_text(
            {"verdict": verdict.verdict, "checks": [asdict(c) for c in verdict.checks]}
        )
        rows.append(Row(verdict.at, clocks.stamp(verdict.at), "skewmit", "validation", what))
    lines += [
        "",
        "## Events",
        "",
        "| Time (UTC) | Who | Event | What |",
        "|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda r: r.at):
        lines.append(f"| {row.when} | {_cell(row.who)} | {row.event} | {_cell(row.what)} |")
    if verdict is not None:
        lines += ["", "## Validation (this bundle's verdict)", ""]
        lines.append(f"Judged at {clocks.stamp(verdict.at)}: **{verdict.verdict}**.")
        lines.append("")
        for check in verdict.checks:
            lines.append(
                f"- **{check.status}** `{check.name}`: {check.message} "
                f"(observed {_number(check.observed)}, baseline {_number(check.baseline)}; "
                f"{check.threshold})"
            )
    if failures:
        lines += ["", "## What could not be read", ""]
        lines += [f"- {what}: {error}" for what, error in failures]
    return "\n".join(lines) + "\n"
