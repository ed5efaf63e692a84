"""The evidence bundle: a folder and a .tar.gz with a SHA-256 manifest, written from the
journal and fresh reads, for a postmortem author to use as it is.

    timeline.md                      one row per distinct finding, the triggering change, the
                                     journal's events, rollouts completed, validation (UTC)
    journal.jsonl                    the incident journal as recorded
    verdict.json                     the verdict and each criterion's numbers; the baseline
                                     window and its coverage, preset, Prometheus URL,
                                     thresholds, tool version, operator, clocks, failures
    manifests/deployment-{before,after}.yaml, manifests/replicasets-{before,after}.yaml
    changes/outside-skewmit.md       before/after of each revision skewmit did not apply
    pods/validated.yaml              each pod's image, args and env as validated
    gpu/inspector.csv, gpu/nvidia-smi/<pod>.txt
                                     every pod's row; nvidia-smi read once per node
                                     (step 5's readings), files for the first 16 pods
    metrics/{incident,postfix,baseline}.{csv,json}
                                     the incident window, the window after the last change
    metrics/queries.txt              every query the gate and the bundle ran
    charts/<quantity>.txt            plotext charts, after the last change against baseline
    MANIFEST.sha256                  `sha256sum -c` checks every other file

The folder is 0700 and its files and the tarball 0600, at a path checked to be inside `--out`
(evidence_files). A query that fails is recorded in the bundle (timeline.md, verdict.json,
queries.txt) and the rest is still written. No secret value reaches it: objects are masked
(Secret references shown, never resolved), and every written text goes through `mask_text`
with the secret values seen in the objects.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from services import baseline_choice, rollout
from services import evidence_metrics as em
from services.clock import Clock, source_clock
from services.errors import SkewmitError
from services.evidence_clock import Clocks, parse_utc, read_clocks
from services.evidence_cluster import before_state, gpu_files, pod_view
from services.evidence_files import (
    bundle_name,
    new_folder,
    write_files,
    write_tarball,
)
from services.evidence_history import (
    merge_rollouts,
    outside_changes,
    outside_files,
    rollouts_completed,
    rollouts_from_events,
    triggering_change,
)
from services.evidence_timeline import render
from services.journal import Journal, os_user, state_dir
from services.kube import Cluster
from services.masking import is_secret_flag, is_secret_name, mask_object
from services.metrics.baseline import Baseline
from services.metrics.source import MetricsSource, QueryRecord
from services.models import CheckResult, Target, Verdict
from services.validation import Thresholds, evaluate, rollout_facts, verdict_record

Obj = dict[str, Any]
# Secrets inside free text: URL credentials, key=value assignments, bearer tokens.
_URL_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:([^/\s@]+)@")
_ASSIGNED = re.compile(
    r"(?i)\b(?:password|passwd)\s*[=:]\s*[\"']?([^\s\"',;&)\]}>]+)"
    r"|\b(?:token|secret|api[_-]?key|access[_-]?key)=[\"']?([^\s\"',;&)\]}>]+)"
)
_BEARER = re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/=-]+)")


@dataclass(frozen=True)
class Bundle:
    folder: Path
    tarball: Path
    files: tuple[str, ...]  # relative paths, MANIFEST.sha256 last
    verdict: Verdict | None
    failures: tuple[tuple[str, str], ...] = ()  # (what, error) that could not be read


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=True, default_flow_style=False, allow_unicode=True)


def secret_values(objects: Sequence[Any]) -> set[str]:
    """Literal values of secret-looking env vars and flags in pods, templates, Deployments
    and ReplicaSets, and secrets inside any text of them (URL credentials, `password=`,
    `token=`, `api_key=`, bearer tokens): what a final `mask_text` pass must never let
    through, whatever the masking of each object missed."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, str):
            for pattern in (_URL_CREDENTIALS, _ASSIGNED, _BEARER):
                found.update(g for m in pattern.finditer(node) for g in m.groups() if g)
        elif isinstance(node, Mapping):
            for key in ("containers", "initContainers"):
                for container in node.get(key) or []:
                    if not isinstance(container, Mapping):
                        continue
                    for env in container.get("env") or []:
                        value = env.get("value") if isinstance(env, Mapping) else None
                        if isinstance(value, str) and is_secret_name(str(env.get("name", ""))):
                            found.add(value)
                    args = [str(a) for a in (container.get("args") or [])]
                    args += [str(a) for a in (container.get("command") or [])]
                    for i, arg in enumerate(args):
                        flag, eq, value = arg.partition("=")
                        if arg.startswith("-") and is_secret_flag(flag):
                            if eq:
                                found.add(value)
                            elif i + 1 < len(args):
                                found.add(args[i + 1])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for obj in objects:
        walk(obj)
    masks = ("*", "<secret")
    return {s for s in found if len(s) >= 4 and not s.startswith(masks)}


def find_journal(target: Target, root: Path | None = None) -> Journal | None:
    """The target's open incident, else its newest closed one; None when there is none.
    Never creates an incident."""
    incidents = (root or state_dir()) / "incidents"
    if not incidents.is_dir():
        return None
    best: tuple[int, str, Path] | None = None
    for folder in incidents.iterdir():
        try:
            meta = json.loads((folder / "incident.json").read_text())
        except (OSError, ValueError):
            continue
        key = (meta.get("context"), meta.get("namespace"), meta.get("deployment"))
        if key != (target.context, target.namespace, target.deployment):
            continue
        rank = (1 if meta.get("status") == "open" else 0, folder.name, folder)
        if best is None or rank[:2] > best[:2]:
            best = rank
    return Journal(best[2], target, target.user) if best else None


def _safe_url(url: str) -> str:
    """A URL without its user:password@ part."""
    return re.sub(r"(?<=://)[^/@\s]*@", "", url)


def _tool_version() -> str:
    try:
        return importlib.metadata.version("skewmit")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed as a package)"


def _judge(
    source: MetricsSource | None,
    facts: Any,
    t: Thresholds,
    baseline: Baseline | None,
    at: float,
    failures: em.Failures,
) -> Verdict:
    """The gate's verdict; when the metrics fail, the rollout checks still stand and the
    metrics criterion says what failed (never a pass). Without a source, the metrics
    criterion says why when the caller recorded it ("the metrics source" in `failures`)."""
    no_source = next((why for what, why in failures if what == "the metrics source"), "")
    try:
        return evaluate(source, facts, t, baseline=baseline, now=at, no_source=no_source)
    except SkewmitError as exc:
        failures.append(("the validation gate (metrics)", str(exc)))
        verdict = evaluate(None, facts, t, now=at)
        why = f"the metrics could not be read: {exc}"
        checks = tuple(
            replace(c, message=why) if isinstance(c, CheckResult) and c.name == "metrics" else c
            for c in verdict.checks
        )
        return replace(verdict, checks=checks)


def _baseline_doc(
    baseline: Baseline | None,
    records: Sequence[Mapping[str, Any]],
    measured: Mapping[str, float],
    clocks: Clocks,
) -> dict[str, Any]:
    frozen = next((r.get("data") for r in reversed(records) if r.get("type") == "baseline"), None)
    if baseline is None:
        return {"how": None, "note": "no baseline", "journal": frozen}
    doc: dict[str, Any] = {
        "how": baseline.how,
        "start": baseline.start,
        "end": baseline.end,
        "start_utc": clocks.stamp(baseline.start),
        "end_utc": clocks.stamp(baseline.end),
        "values": {q: dict(v) for q, v in baseline.values.items()},
        "coverage": dict(measured),
        "journal": frozen,
    }
    reported = getattr(baseline, "coverage", None)
    if isinstance(reported, Mapping) and reported:
        # The baseline's own coverage (slices of the window holding data) comes first.
        doc["coverage"] = {str(k): v for k, v in reported.items()}
        doc["coverage_how"] = "share of the window's slices holding data (as the gate judged it)"
        doc["coverage_steps"] = dict(measured)
    else:
        doc["coverage_how"] = "share of the window's evaluation steps with a value"
    for name in ("served_by", "frozen"):
        value = getattr(baseline, name, None)
        if value:
            doc[name] = dict(value) if isinstance(value, Mapping) else str(value)
    return doc


def _changes_at(records: Sequence[Mapping[str, Any]]) -> list[float]:
    """When skewmit applied or reverted each change (the session's clock, as journaled)."""
    out = []
    for record in records:
        if record.get("type") in ("applied", "reverted", "apply-failed"):
            at = parse_utc(str(record.get("ts", "")))
            if at is not None:
                out.append(at)
    return out


def session_clock(journal: Journal | None, source: MetricsSource | None) -> Clock:
    """The session's one clock: the metrics source's (the samples, the verdict and the
    baseline are on it), else the journal's, else the wall clock."""
    if source is not None and getattr(source, "clock", None) is not None:
        return source_clock(source)
    return journal.clock if journal is not None else source_clock(None)


def _clock_mismatch(journal: Journal | None, clock: Clock) -> str:
    """Why the journal's times cannot be set beside the metrics' ("" when they can)."""
    if journal is None or journal.clock.simulated == clock.simulated:
        return ""
    return (
        f"the journal is stamped on the {journal.clock.label()} and the metrics and the "
        f"verdict on the {clock.label()}: the journal's rows are not on the bundle's clock"
    )


def write_bundle(
    out_dir: Path | str,
    *,
    cluster: Cluster,
    target: Target,
    journal: Journal | None = None,
    source: MetricsSource | None = None,
    baseline: Baseline | None = None,
    verdict: Verdict | None = None,
    thresholds: Thresholds | Mapping[str, Any] | None = None,
    configured_gpu_class: str | None = None,
    now: float | None = None,
    failures: Sequence[tuple[str, str]] = (),
) -> Bundle:
    """Write the bundle under `out_dir` (a new 0700 folder and its 0600 .tar.gz beside it).
    Every time in it is on the session's clock (`session_clock`: simulated in the demo), the
    folder's name too. Without a verdict one is taken now (`now`: on that clock). A metrics
    query that fails is recorded in the bundle, not raised. Raises ConfigError when `out_dir`
    cannot be written or the folder would fall outside it, and what the cluster raises for
    the Deployment itself (NotFoundError, UnreachableError, ForbiddenError)."""
    t = thresholds if isinstance(thresholds, Thresholds) else Thresholds.from_mapping(thresholds)
    clock = session_clock(journal, source)
    clocks = read_clocks(clock)
    if now is not None:
        clocks = replace(clocks, now=now)
    out = Path(out_dir).expanduser()
    name = bundle_name(target.namespace, target.deployment, clocks.now)
    failed: em.Failures = list(failures)  # what the caller could not read either
    mismatch = _clock_mismatch(journal, clock)
    if mismatch:
        failed.append(("one clock", mismatch))
    ns, deploy = target.namespace, target.deployment
    live = cluster.get("Deployment", ns, deploy)
    sets = sorted(rollout.owned_replicasets(cluster, live), key=rollout.revision_of)
    selector = ",".join(
        f"{k}={v}" for k, v in sorted(live["spec"]["selector"].get("matchLabels", {}).items())
    )
    pods = [
        p
        for p in cluster.list("Pod", ns, label_selector=selector)
        if not p["metadata"].get("deletionTimestamp")
    ]
    try:
        nodes = cluster.list("Node")
    except SkewmitError as exc:
        failed.append(("the nodes", str(exc)))
        nodes = []
    secrets = secret_values([live, *sets, *pods, str(getattr(source, "url", ""))])
    records = journal.records() if journal is not None else []
    log = getattr(source, "query_log", None)
    earlier: tuple[QueryRecord, ...] = log.since(0) if log is not None else ()
    gate_mark = log.mark() if log is not None else 0
    if source is not None and baseline is None:
        try:
            # The incident's frozen baseline, else the source's (never a new moving window
            # when one was frozen).
            baseline = baseline_choice.from_journal(journal) or source.baseline(t.stable_window_s)
        except SkewmitError as exc:
            failed.append(("the baseline", str(exc)))
    dcgm: dict[str, str] = {}
    if source is not None:
        try:
            dcgm = source.dcgm_models()
        except SkewmitError as exc:
            failed.append(("the GPU models (DCGM)", str(exc)))
    try:
        facts = rollout_facts(cluster, ns, deploy, configured_class=configured_gpu_class, dcgm=dcgm)
    except SkewmitError as exc:
        failed.append(("the rollout facts", str(exc)))
        facts = None
    if verdict is None:
        verdict = _judge(source, facts, t, baseline, clocks.now, failed)
        if journal is not None and journal.meta().get("status", "open") == "open":
            try:  # a closed incident's journal is evidence itself: never written to
                journal.append("validation", verdict_record(verdict))
                records = journal.records()
            except SkewmitError as exc:
                failed.append(("journaling the verdict", str(exc)))
    gate_queries = log.since(gate_mark) if log is not None else ()
    bundle_mark = log.mark() if log is not None else 0

    trigger = triggering_change(records, live, sets)
    snap_deploy = before_state(records, live, sets)[0]
    states = [("status at incident open", snap_deploy), ("status now", live)]
    rollouts = rollouts_completed([(w, d) for w, d in states if isinstance(d, Mapping)], sets)
    try:
        selector = f"involvedObject.kind=Deployment,involvedObject.name={deploy}"
        events = cluster.list("Event", ns, field_selector=selector)
        rollouts = merge_rollouts(rollouts, rollouts_from_events(events, deploy, sets))
    except SkewmitError as exc:
        failed.append(("the Deployment's events", str(exc)))
    outside = outside_changes(records, sets)
    operator = {"os_user": os_user(), "kube_user": target.user}
    files: dict[str, str] = {}
    measured: dict[str, float] = {}
    if source is not None:
        opened = parse_utc(str((journal.meta() if journal else {}).get("opened_at", "")))
        trigger_at = trigger.revision.created if trigger is not None else None
        # The changes after the trigger: skewmit's, and those made outside it since.
        later = [
            after.created
            for _, after in outside
            if after.created is not None
            and (trigger is None or after.number > trigger.revision.number)
        ]
        incident_w, post_w = em.windows(
            clocks,
            trigger_at=trigger_at,
            opened_at=opened,
            changes_at=_changes_at(records) + later,
            stable_window_s=t.stable_window_s,
        )
        incident = em.fetch(source, incident_w, failed, em.INCIDENT_POINTS)
        post = em.fetch(source, post_w, failed)
        described = {"source": source.describe()}
        files.update(em.series_files(incident, incident_w, clocks, described))
        files.update(em.series_files(post, post_w, clocks, described))
        base_series: dict[str, Any] = {}
        if baseline is not None:
            base_w, base_series = em.baseline_series(source, baseline, failed)
            step = max(source.scrape_interval_s, (base_w.end - base_w.start) / em.MAX_POINTS)
            measured = em.coverage(base_series, base_w, step)
            extra = {
                "how": baseline.how,
                "values": {q: dict(v) for q, v in baseline.values.items()},
                "coverage": measured,
            }
            files.update(em.series_files(base_series, base_w, clocks, extra))
        files.update(em.charts(post, base_series, baseline, t, clocks))
        sections = [
            ("The gate's queries for this verdict", gate_queries),
            (
                "The bundle's queries (series for the files above)",
                log.since(bundle_mark) if log else (),
            ),
            ("Earlier queries in this session", earlier),
        ]
        files["metrics/queries.txt"] = em.queries_file(source, clocks, sections)
    verdict_doc = verdict_record(verdict) | {
        "at": verdict.at,
        "at_utc": clocks.stamp(verdict.at),
        "target": {
            "context": target.context,
            "namespace": ns,
            "deployment": deploy,
            "server": _safe_url(target.server),
        },
        "operator": operator,
        "tool": {"name": "skewmit", "version": _tool_version()},
        "preset": source.preset.name if source is not None else None,
        "prometheus_url": _safe_url(str(getattr(source, "url", ""))) or None,
        "metrics_source": source.describe() if source is not None else None,
        "scrape_interval_s": source.scrape_interval_s if source is not None else None,
        "rate_window_s": source.rate_window_s if source is not None else None,
        "thresholds": asdict(t),
        "baseline": _baseline_doc(baseline, records, measured, clocks),
        "clock": clocks.as_json(),
        "failures": [{"what": w, "error": e} for w, e in failed],
    }
    before_dep, before_sets, before_from = before_state(records, live, sets)
    files.update(
        {
            "timeline.md": render(
                target=target,
                meta=journal.meta() if journal else {},
                records=records,
                verdict=verdict,
                clocks=clocks,
                operator=operator,
                trigger=trigger,
                rollouts=rollouts,
                outside=outside,
                failures=failed,
            ),
            "journal.jsonl": "".join(
                json.dumps(mask_object(r), sort_keys=True) + "\n" for r in records
            ),
            "verdict.json": json.dumps(verdict_doc, indent=2, sort_keys=True, default=str) + "\n",
            "manifests/deployment-before.yaml": f"# {before_from}\n" + _yaml(before_dep),
            "manifests/deployment-after.yaml": _yaml(mask_object(live)),
            "manifests/replicasets-before.yaml": f"# {before_from}\n" + _yaml(before_sets),
            "manifests/replicasets-after.yaml": _yaml([mask_object(rs) for rs in sets]),
            "pods/validated.yaml": _yaml([pod_view(p) for p in pods]),
        }
    )
    files.update(outside_files(outside, clocks))
    files.update(gpu_files(cluster, pods, nodes, dcgm, facts.expected_class if facts else None))
    if clocks.simulated:
        note = "# Kubernetes timestamps below are on the simulated clock (see verdict.json clock)\n"
        files.update({rel: note + text for rel, text in files.items() if rel.endswith(".yaml")})
    folder = new_folder(out, name)
    written = write_files(folder, files, sorted(secrets))
    tarball = write_tarball(folder)
    return Bundle(folder, tarball, written, verdict, tuple(failed))


def capture(runbook: Any, out_dir: Path | str) -> Bundle:
    """The bundle for a Runbook session (cluster, target, journal, metrics, config), judged
    against the session's frozen baseline. Raises what `write_bundle` raises."""
    config = getattr(runbook, "config", {}) or {}
    baseline, failures = None, []
    source = runbook.metrics
    resolve = getattr(runbook, "metrics_source", None)
    if callable(resolve):  # the metrics opening may still be under way: wait for it
        try:
            source = resolve()
        except SkewmitError as exc:
            failures.append(("the metrics source", str(exc)))
    why = getattr(runbook, "metrics_why", "")
    if source is None and why:
        failures.append(("the metrics source", why))
    frozen = getattr(runbook, "baseline", None)
    if source is not None and callable(frozen):
        try:
            baseline = frozen()
        except SkewmitError as exc:  # refused or unreadable: the bundle says so
            failures.append(("the incident's baseline", str(exc)))
    return write_bundle(
        out_dir,
        cluster=runbook.cluster,
        target=runbook.target,
        journal=runbook.journal,
        source=source,
        baseline=baseline,
        thresholds=config.get("thresholds"),
        configured_gpu_class=config.get("expected_gpu_class"),
        failures=failures,
    )
