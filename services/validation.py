"""The validation gate: may the incident be declared resolved?

Runbook step 6: tokens/sec back near baseline, p95/p99 stable, GPU utilisation and memory like
the last-known-good window, and the rollout complete on the expected GPU class. The gate fails
closed: a premature "resolved" is the costliest mistake here, so missing or stale data gives
`insufficient-data`, never `pass`; "stable" means every sample of the window is in band, not
only the latest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from services import gpu, rollout
from services.config import parse_duration
from services.errors import ConfigError, ForbiddenError
from services.kube import Cluster
from services.metrics import presets
from services.metrics.baseline import Baseline, duration_text
from services.metrics.source import MetricsSource
from services.models import CheckResult, GpuReading, MetricPoint, RolloutProgress, Target, Verdict

PASS, FAIL, INSUFFICIENT = "pass", "fail", "insufficient-data"


@dataclass(frozen=True)
class Thresholds:
    tokens_min_ratio: float = 0.90  # tokens/sec at least this share of baseline
    latency_max_ratio: float = 1.10  # every p95/p99 sample at most this multiple of baseline
    stable_window_s: float = 600.0  # "stable": the last N seconds, every sample in band
    gpu_util_band_points: float = 15.0  # GPU utilisation within +- this many points
    gpu_mem_band_ratio: float = 0.10  # framebuffer used within +- this share of baseline
    min_coverage: float = 0.8  # share of the window's samples that must exist
    step_s: float | None = None  # sample spacing in the window; None: the scrape interval
    stale_intervals: float = 2.0  # data older than this many scrape intervals is stale

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> Thresholds:
        """From the config's `thresholds` section. Raises ConfigError for a bad value."""
        if not values:
            return cls()
        names = {
            "stable_window": "stable_window_s",
            "step": "step_s",
            "stable_window_s": "stable_window_s",
            "step_s": "step_s",
        }
        kwargs: dict[str, float] = {}
        for key, value in values.items():
            field_name = names.get(key, key)
            if field_name not in cls.__dataclass_fields__:
                raise ConfigError(f"thresholds.{key} is not a known threshold")
            if field_name in ("stable_window_s", "step_s"):
                kwargs[field_name] = parse_duration(value, f"thresholds.{key}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"thresholds.{key} must be a number, not {value!r}")
            else:
                kwargs[field_name] = float(value)
        thresholds = cls(**kwargs)
        if not 0 < thresholds.tokens_min_ratio <= 1.5 or thresholds.latency_max_ratio < 1:
            raise ConfigError(
                "thresholds: tokens_min_ratio must be in (0, 1.5] and latency_max_ratio >= 1"
            )
        if not 0 < thresholds.min_coverage <= 1:
            raise ConfigError("thresholds.min_coverage must be in (0, 1]")
        return thresholds


@dataclass(frozen=True)
class RolloutFacts:
    """What the cluster says about the rollout and the GPUs under it."""

    progress: RolloutProgress
    rows: tuple[GpuReading, ...]
    expected_class: str | None
    expected_reason: str


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%SZ")


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3g} s"
    if unit == "%":
        return f"{value:.1f} %"
    return f"{value:,.1f} {unit}"


def rollout_facts(
    cluster: Cluster,
    namespace: str,
    deployment: str,
    *,
    configured_class: str | None = None,
    dcgm: Mapping[str, str] | None = None,
) -> RolloutFacts:
    """Read the rollout's progress and each pod's GPU class against the expected one (the
    last-known-good revision's GPU selector, else the healthy pods' majority, else
    `configured_class`). Raises NotFoundError for an unknown Deployment, UnreachableError."""
    progress = rollout.progress(cluster, namespace, deployment)
    live = cluster.get("Deployment", namespace, deployment)
    selector = ",".join(
        f"{k}={v}" for k, v in sorted(live["spec"]["selector"].get("matchLabels", {}).items())
    )
    pods = [
        p
        for p in cluster.list("Pod", namespace, label_selector=selector)
        if not p["metadata"].get("deletionTimestamp")
    ]
    try:
        nodes = cluster.list("Node")
    except ForbiddenError:
        nodes = []  # the DCGM model or nvidia-smi still tells the class
    lkg_template = None
    revisions = rollout.history(cluster, namespace, deployment)
    lkg = next((r for r in revisions if r.last_known_good), None)
    if lkg is not None:
        for rs in rollout.owned_replicasets(cluster, live):
            if rs["metadata"]["name"] == lkg.replicaset:
                lkg_template = rs["spec"]["template"]
    by_node = {n["metadata"]["name"]: n for n in nodes}
    healthy = []
    for pod in pods:
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in pod.get("status", {}).get("conditions", [])
        )
        node = by_node.get(pod["spec"].get("nodeName", ""))
        if ready and node is not None:
            healthy.append(gpu.gpu_class_from_labels(node["metadata"].get("labels"))[0])
    expected, reason = gpu.expected_gpu_class(lkg_template, healthy, configured_class)
    rows = gpu.gpu_rows(pods, nodes, {}, dict(dcgm or {}), expected)
    return RolloutFacts(progress, tuple(rows), expected, reason)


def rollout_checks(facts: RolloutFacts | None) -> list[CheckResult]:
    """`rollout-complete` and `gpu-class`. Without facts both are insufficient-data."""
    if facts is None:
        why = "no cluster to read the rollout from"
        return [
            CheckResult("rollout-complete", INSUFFICIENT, None, None, "no old pods", why),
            CheckResult("gpu-class", INSUFFICIENT, None, None, "expected class", why),
        ]
    p = facts.progress
    problems = "; ".join(f.message for f in p.problems)
    complete = p.done and p.old_pods == 0 and not p.problems
    message = p.message + (f"; {problems}" if problems else "")
    out = [
        CheckResult(
            "rollout-complete",
            PASS if complete else FAIL,
            float(p.updated),
            float(p.desired),
            "all replicas updated and available, no old pods, no crash loops",
            message,
        )
    ]
    threshold = f"every pod on {facts.expected_class or '?'}"
    rows = facts.rows
    if facts.expected_class is None:
        out.append(
            CheckResult("gpu-class", INSUFFICIENT, None, None, threshold, facts.expected_reason)
        )
    elif any(r.mismatch for r in rows):
        wrong = ", ".join(f"{r.pod} on {r.gpu_class}" for r in rows if r.mismatch)
        out.append(
            CheckResult(
                "gpu-class", FAIL, None, None, threshold, f"{wrong} ({facts.expected_reason})"
            )
        )
    elif not rows or any(r.gpu_class is None for r in rows):
        unknown = ", ".join(r.pod for r in rows if r.gpu_class is None) or "no pods"
        out.append(
            CheckResult(
                "gpu-class", INSUFFICIENT, None, None, threshold, f"GPU class unknown: {unknown}"
            )
        )
    else:
        out.append(
            CheckResult(
                "gpu-class",
                PASS,
                float(len(rows)),
                None,
                threshold,
                f"all {len(rows)} pods on {facts.expected_class} ({facts.expected_reason})",
            )
        )
    return out


def _not_judged(names: Sequence[str], why: str) -> list[CheckResult]:
    return [CheckResult(n, INSUFFICIENT, None, None, "-", f"not judged: {why}") for n in names]


def _coverage(points: Sequence[MetricPoint], expected: int, t: Thresholds, window: str) -> str:
    if len(points) >= max(2, math.ceil(t.min_coverage * expected)):
        return ""
    return (
        f"only {len(points)} of {expected} samples in the last {window}: wait until the "
        "window is covered"
    )


def _latency_check(
    source: MetricsSource,
    quantity: str,
    points: Sequence[MetricPoint],
    base: float | None,
    expected: int,
    t: Thresholds,
) -> CheckResult:
    window = duration_text(t.stable_window_s)
    pct = f"{t.latency_max_ratio * 100:.0f}%"
    threshold = f"every sample of {window} <= {pct} of baseline"
    if base is None or base <= 0:
        return CheckResult(quantity, INSUFFICIENT, None, base, threshold, "no baseline data")
    limit = base * t.latency_max_ratio
    threshold = f"every sample of {window} <= {pct} of baseline ({_fmt(limit, 's')})"
    gap = _coverage(points, expected, t, window)
    if gap:
        worst = max((p.v for p in points), default=None)
        return CheckResult(quantity, INSUFFICIENT, worst, base, threshold, gap)
    worst_point = max(points, key=lambda p: p.v)
    worst = worst_point.v
    warning = presets.top_bucket_warning(quantity, worst, source.histogram_bounds(quantity))
    above = [p for p in points if p.v > limit]
    if above:
        message = (
            f"{len(above)} of {len(points)} samples above the limit; worst {_fmt(worst, 's')} "
            f"at {_utc(worst_point.t)}"
        )
        return CheckResult(quantity, FAIL, worst, base, threshold, _join(message, warning))
    if warning:
        # A value pinned to the top bucket is a lower bound: it cannot prove recovery.
        return CheckResult(quantity, INSUFFICIENT, worst, base, threshold, warning)
    message = f"all {len(points)} samples in band; peak {_fmt(worst, 's')}"
    return CheckResult(quantity, PASS, worst, base, threshold, message)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _tokens_check(
    points: Sequence[MetricPoint], base: float | None, expected: int, t: Thresholds
) -> CheckResult:
    window = duration_text(t.stable_window_s)
    pct = f"{t.tokens_min_ratio * 100:.0f}%"
    threshold = f"mean of {window} >= {pct} of baseline"
    if base is None or base <= 0:
        return CheckResult(presets.TOKENS, INSUFFICIENT, None, base, threshold, "no baseline data")
    floor = base * t.tokens_min_ratio
    threshold = f"mean of {window} >= {pct} of baseline ({_fmt(floor, 'tok/s')})"
    gap = _coverage(points, expected, t, window)
    mean = sum(p.v for p in points) / len(points) if points else None
    if gap:
        return CheckResult(presets.TOKENS, INSUFFICIENT, mean, base, threshold, gap)
    assert mean is not None
    ratio = mean / base
    status = PASS if mean >= floor else FAIL
    message = (
        f"{ratio * 100:.0f}% of baseline (lowest sample {_fmt(min(p.v for p in points), 'tok/s')})"
    )
    return CheckResult(presets.TOKENS, status, mean, base, threshold, message)


def _gpu_checks(
    source: MetricsSource, baseline: Baseline, t: Thresholds, now: float
) -> list[CheckResult]:
    out: list[CheckResult] = []
    window = duration_text(t.stable_window_s)
    for quantity in (presets.GPU_UTIL, presets.GPU_MEM):
        if quantity not in source.preset.queries:
            continue
        live = source.instant(quantity, window_s=t.stable_window_s, at=now)
        base = baseline.values.get(quantity, {})
        unit = presets.UNITS[quantity]
        if not live or not base:
            why = "no DCGM metrics for the pods" if not live else "no baseline data"
            out.append(CheckResult(quantity, INSUFFICIENT, None, None, "-", why))
            continue
        for model in sorted(set(live) | set(base)):
            name = f"{quantity}[{model}]"
            value, reference = live.get(model), base.get(model)
            if quantity == presets.GPU_UTIL:
                band = t.gpu_util_band_points
                threshold = f"mean of {window} within +-{band:g} points of baseline"
            else:
                band = t.gpu_mem_band_ratio * (reference or 0.0)
                threshold = (
                    f"mean of {window} within +-{t.gpu_mem_band_ratio * 100:.0f}% of baseline"
                )
            if reference is None:
                message = f"{model} is serving now but was not in the last-known-good window"
                out.append(CheckResult(name, FAIL, value, None, threshold, message))
            elif value is None:
                message = f"no {model} serving now (the last-known-good window had them)"
                out.append(CheckResult(name, FAIL, None, reference, threshold, message))
            else:
                diff = value - reference
                status = PASS if abs(diff) <= band else FAIL
                message = f"{_fmt(value, unit)} vs {_fmt(reference, unit)} ({diff:+.1f})"
                out.append(CheckResult(name, status, value, reference, threshold, message))
    return out


def metric_checks(
    source: MetricsSource,
    baseline: Baseline | None,
    thresholds: Thresholds,
    now: float | None = None,
) -> list[CheckResult]:
    """Freshness, tokens/sec, p95, p99 and GPU checks. Raises what the source raises
    (UnreachableError, InvalidError, ForbiddenError, ConfigError for a bad baseline file)."""
    t = thresholds
    now = source.now() if now is None else now
    names = [presets.TOKENS, presets.P95, presets.P99, presets.GPU_UTIL, presets.GPU_MEM]
    stale_after = t.stale_intervals * source.scrape_interval_s
    last = source.last_scrape(now)
    freshness = "newest engine sample"
    if last is None:
        why = "no engine metrics from the deployment's pods (missing, or gone stale)"
        head = CheckResult("data-fresh", INSUFFICIENT, None, None, freshness, why)
        return [head, *_not_judged(names, "no current data")]
    age = max(0.0, now - last)
    threshold = f"{freshness} <= {stale_after:g} s old ({t.stale_intervals:g} scrape intervals)"
    if age > stale_after:
        why = f"the newest sample is {age:.0f} s old"
        head = CheckResult("data-fresh", INSUFFICIENT, age, None, threshold, why)
        return [head, *_not_judged(names, "metrics are stale")]
    out = [CheckResult("data-fresh", PASS, age, None, threshold, f"newest sample {age:.0f} s old")]
    if baseline is None:
        baseline = source.baseline(t.stable_window_s)
    step = t.step_s or max(source.scrape_interval_s, t.stable_window_s / 300)
    start = now - t.stable_window_s
    expected = int(t.stable_window_s // step) + 1
    ranges = {
        q: source.series(q, start=start, end=now, step_s=step).get("", [])
        for q in (presets.TOKENS, presets.P95, presets.P99)
    }
    out.append(_tokens_check(ranges[presets.TOKENS], baseline.value(presets.TOKENS), expected, t))
    for quantity in (presets.P95, presets.P99):
        out.append(
            _latency_check(
                source, quantity, ranges[quantity], baseline.value(quantity), expected, t
            )
        )
    out += _gpu_checks(source, baseline, t, now)
    return out


def judge(checks: Sequence[CheckResult], at: float, window_s: float) -> Verdict:
    """fail if any check fails; else insufficient-data if any lacks data (or there are none);
    pass only when every check passes."""
    statuses = {c.status for c in checks}
    if FAIL in statuses:
        verdict = FAIL
    elif not checks or statuses != {PASS}:
        verdict = INSUFFICIENT
    else:
        verdict = PASS
    return Verdict(verdict, tuple(checks), at, window_s)


def evaluate(
    metrics: MetricsSource | None,
    facts: RolloutFacts | None,
    thresholds: Thresholds | Mapping[str, Any] | None = None,
    *,
    baseline: Baseline | None = None,
    now: float | None = None,
) -> Verdict:
    """The verdict from a metrics source and rollout facts (either may be missing: its
    checks are then insufficient-data). Raises what the source raises, ConfigError."""
    t = thresholds if isinstance(thresholds, Thresholds) else Thresholds.from_mapping(thresholds)
    checks: list[CheckResult] = []
    if metrics is None:
        why = "no metrics source: pass --prometheus"
        checks.append(CheckResult("metrics", INSUFFICIENT, None, None, "-", why))
        at = time.time() if now is None else now
    else:
        at = metrics.now() if now is None else now
        checks += metric_checks(metrics, baseline, t, at)
    checks += rollout_checks(facts)
    return judge(checks, at, t.stable_window_s)


def validate(
    cluster: Cluster | None,
    target: Target,
    metrics: MetricsSource | None,
    thresholds: Thresholds | Mapping[str, Any] | None = None,
    *,
    baseline: Baseline | None = None,
    configured_gpu_class: str | None = None,
    now: float | None = None,
) -> Verdict:
    """The gate's verdict for `target`. Raises NotFoundError for an unknown Deployment,
    UnreachableError, ForbiddenError, InvalidError from the cluster or the metrics source,
    ConfigError for bad thresholds or a bad baseline file."""
    t = thresholds if isinstance(thresholds, Thresholds) else Thresholds.from_mapping(thresholds)
    facts = None
    if cluster is not None:
        dcgm = metrics.dcgm_models(target.namespace, target.deployment) if metrics else None
        facts = rollout_facts(
            cluster,
            target.namespace,
            target.deployment,
            configured_class=configured_gpu_class,
            dcgm=dcgm,
        )
    return evaluate(metrics, facts, t, baseline=baseline, now=now)


def verdict_record(verdict: Verdict) -> dict[str, Any]:
    """The verdict as the journal and the evidence bundle store it."""
    return {
        "verdict": verdict.verdict,
        "at": verdict.at,
        "window_s": verdict.window_s,
        "checks": [asdict(c) for c in verdict.checks],
    }
