"""The validation gate's metric criteria: is the data there, and is the fleet back to baseline.

Coverage first: the newest engine sample is fresh, every ready pod of the Deployment reports
fresh engine series (fewer reporting than ready is never a pass: the missing pod could be the
broken one), and the DCGM data is fresh on its own (its newest sample's age, never a window
average that still says "ok" a minute after DCGM stopped). Then tokens/sec, p95, p99 and the
GPU utilisation/memory of the expected GPU class, each on one estimate over the stability
window (see `services.judgement` for the rule and its bucket-resolution clause).

Every CheckResult carries the PromQL a human can run to check the figure, and its message
names the live value, the baseline value, the limit and the window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services import gpu
from services.judgement import FAIL, INSUFFICIENT, PASS, compare_latency, window_state
from services.metrics import presets
from services.metrics.baseline import MIN_COVERAGE, Baseline, duration_text, utc
from services.metrics.source import MetricsSource
from services.models import CheckResult

if TYPE_CHECKING:
    from services.validation import RolloutFacts, Thresholds

LATENCY = (presets.P95, presets.P99)


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3g} s"
    if unit == "%":
        return f"{value:.1f} %"
    return f"{value:,.1f} {unit}"


def _wait(seconds: float) -> str:
    return f"wait {math.ceil(seconds)} s" if seconds > 0 else "wait for the next scrapes"


def _not_judged(names: Sequence[str], why: str) -> list[CheckResult]:
    return [CheckResult(n, INSUFFICIENT, None, None, "-", f"not judged: {why}") for n in names]


@dataclass(frozen=True)
class Window:
    """The judged window: its length, whether it is full, and how long until it is."""

    length_s: float  # what the queries use: the stability window, or the part with data
    span_s: float  # how far back the data reaches inside the stability window
    full: bool
    remaining_s: float

    def text(self) -> str:
        return duration_text(round(self.length_s))


def _window(source: MetricsSource, t: Thresholds, now: float) -> Window:
    """How much of the stability window holds data (sampled on the tokens rate: a pod that
    reports at all reports it)."""
    step = t.step_s or max(source.scrape_interval_s, t.stable_window_s / 300)
    start = now - t.stable_window_s
    expected = int(t.stable_window_s // step) + 1
    points = source.series(presets.TOKENS, start=start, end=now, step_s=step).get("", [])
    span = now - points[0].t if points else 0.0
    full, remaining = window_state(len(points), expected, span, t.stable_window_s, t.min_coverage)
    # Judge over the part that holds data (a rate over a window partly empty is extrapolated
    # down, a false "tokens low"): a fail can show at once, a pass waits for a full window.
    whole = span >= t.stable_window_s - step
    length = t.stable_window_s if whole else max(1.0, math.floor(span))
    return Window(length, span, full, remaining)


def _min_span(source: MetricsSource, t: Thresholds) -> float:
    return min(t.stable_window_s, 4 * source.scrape_interval_s)


def coverage_checks(
    source: MetricsSource, facts: RolloutFacts | None, t: Thresholds, now: float
) -> list[CheckResult]:
    """`pods-reporting`: every ready pod has fresh engine series. Raises what the source
    raises (UnreachableError, ForbiddenError, InvalidError)."""
    stale_after = t.stale_intervals * source.scrape_interval_s
    query = _freshness_query(source, gpu=False)
    threshold = f"every ready pod's newest engine sample <= {stale_after:g} s old"
    if facts is None:
        why = "no cluster to count the Deployment's ready pods"
        return [CheckResult("pods-reporting", INSUFFICIENT, None, None, threshold, why, query)]
    ready = facts.ready_pods
    fresh = {pod for pod, at in source.pod_freshness(now).items() if now - at <= stale_after}
    reporting = [p for p in ready if p in fresh]
    if not ready:
        why = "the Deployment has no ready pods"
        return [CheckResult("pods-reporting", INSUFFICIENT, 0.0, None, threshold, why, query)]
    count = f"{len(reporting)} of {len(ready)} ready pods reporting"
    if len(reporting) < len(ready):
        missing = ", ".join(p for p in ready if p not in fresh)
        message = (
            f"{count}: no fresh engine series from {missing} (dropped by relabelling, a scrape "
            "failing, or the pod not serving); the gate cannot vouch for pods it cannot see"
        )
        status = INSUFFICIENT
    else:
        message, status = count, PASS
    return [
        CheckResult(
            "pods-reporting", status, float(len(reporting)), float(len(ready)), threshold,
            message, query,
        )
    ]  # fmt: skip


def _freshness_query(source: MetricsSource, gpu: bool) -> str:
    render = getattr(source, "pod_freshness_query", None)
    if callable(render):
        return str(render(gpu))
    names = source.preset.queries[presets.GPU_UTIL].metrics if gpu else source.preset.freshness
    label = source.scope.gpu_pod_label if gpu else source.scope.pod_label
    series = presets.series_selector(names, source.scope.selector(gpu=gpu))
    return f"max by ({label}) (timestamp({series}))"


def tokens_check(
    source: MetricsSource, base: float | None, t: Thresholds, w: Window, now: float
) -> CheckResult:
    """tokens/sec over the window against `tokens_min_ratio` x baseline. Raises what the
    source raises."""
    name = presets.TOKENS
    pct = f"{t.tokens_min_ratio * 100:.0f}%"
    query = source.query_text(name, w.length_s)
    if base is None or base <= 0:
        threshold = f"rate over {duration_text(t.stable_window_s)} >= {pct} of baseline"
        return CheckResult(name, INSUFFICIENT, None, base, threshold, "no baseline data", query)
    floor = base * t.tokens_min_ratio
    threshold = f"rate over {duration_text(t.stable_window_s)} >= {pct} of baseline"
    live = source.instant(name, window_s=w.length_s, at=now).get("")
    if live is None:
        why = f"no tokens/sec data over the last {w.text()}"
        return CheckResult(name, INSUFFICIENT, None, base, threshold, why, query, floor, w.length_s)
    numbers = (
        f"{_fmt(live, 'tok/s')} over the last {w.text()} vs baseline {_fmt(base, 'tok/s')} "
        f"= {live / base * 100:.0f}% (limit >= {_fmt(floor, 'tok/s')}, {pct})"
    )
    if live < floor:
        status, message = FAIL, f"below the limit: {numbers}"
    elif w.full:
        status, message = PASS, numbers
    else:
        status = INSUFFICIENT
        message = f"so far in band ({numbers}); {_wait(w.remaining_s)} for the whole window"
    return CheckResult(name, status, live, base, threshold, message, query, floor, w.length_s)


def latency_check(
    source: MetricsSource,
    name: str,
    base: float | None,
    t: Thresholds,
    w: Window,
    now: float,
) -> CheckResult:
    """p95 or p99 over the window against `latency_max_ratio` x baseline, at the histogram's
    resolution (`services.judgement.compare_latency`). Raises what the source raises."""
    pct = f"{t.latency_max_ratio * 100:.0f}%"
    threshold = f"over {duration_text(t.stable_window_s)} <= {pct} of baseline"
    query = source.query_text(name, w.length_s)
    if base is None or base <= 0:
        return CheckResult(name, INSUFFICIENT, None, base, threshold, "no baseline data", query)
    limit = base * t.latency_max_ratio
    live = source.instant(name, window_s=w.length_s, at=now).get("")
    if live is None:
        why = f"no {name} data over the last {w.text()} (no requests finished?)"
        return CheckResult(name, INSUFFICIENT, None, base, threshold, why, query, limit, w.length_s)
    bounds = source.histogram_bounds(name)
    cmp = compare_latency(live, base, t.latency_max_ratio, bounds)
    numbers = (
        f"{name} {_fmt(live, 's')} over the last {w.text()} vs baseline {_fmt(base, 's')} "
        f"(limit {_fmt(limit, 's')}, {pct})"
    )
    warning = presets.top_bucket_warning(name, live, bounds, source.preset.name)
    if cmp.outcome == "above":
        status = FAIL
        message = f"above the limit: {numbers}"
        if cmp.live_bucket and cmp.base_bucket:
            message += f"; live {cmp.bucket_text()}, baseline below {cmp.base_bucket[1]:g} s"
        if warning:
            message += f"; {warning}"
    elif warning:
        # A value pinned to the top bucket is a lower bound: it cannot prove recovery.
        status, message = INSUFFICIENT, f"{numbers}; {warning}"
    elif not w.full:
        status = INSUFFICIENT
        message = f"so far in band ({numbers}); {_wait(w.remaining_s)} for the whole window"
    elif cmp.outcome == "indistinguishable":
        status = PASS
        message = (
            f"{numbers}: both {cmp.bucket_text()}, the same histogram bucket, so they cannot "
            "be told apart at this resolution"
        )
    else:
        status, message = PASS, numbers
    return CheckResult(name, status, live, base, threshold, message, query, limit, w.length_s)


def _by_class(values: Mapping[str, float]) -> dict[str | None, dict[str, float]]:
    out: dict[str | None, dict[str, float]] = {}
    for model, value in values.items():
        out.setdefault(gpu.gpu_class_from_name(model), {})[model] = value
    return out


def _expected_class(facts: RolloutFacts | None, baseline: Baseline) -> tuple[str | None, str]:
    if facts is not None:
        return facts.expected_class, facts.expected_reason
    classes = {c for c in _by_class(baseline.values.get(presets.GPU_UTIL, {})) if c}
    if len(classes) == 1:
        only = next(iter(classes))
        return only, f"the baseline window ran on {only} (no cluster to read the revision)"
    return None, "no cluster to read the last-known-good revision's GPU class"


def _gpu_quantities(source: MetricsSource) -> list[str]:
    return [q for q in (presets.GPU_UTIL, presets.GPU_MEM) if q in source.preset.queries]


def gpu_freshness(
    source: MetricsSource, facts: RolloutFacts | None, t: Thresholds, now: float
) -> CheckResult:
    """`gpu-data-fresh`: the newest DCGM sample's age, and every ready pod's DCGM series.
    Raises what the source raises."""
    stale_after = t.stale_intervals * source.scrape_interval_s
    query = _freshness_query(source, gpu=True)
    threshold = f"newest DCGM sample <= {stale_after:g} s old for every ready pod"
    fresh_at = source.pod_freshness(now, gpu=True)
    newest = max(fresh_at.values(), default=None)
    if newest is None or now - newest > stale_after:
        why = (
            "no fresh DCGM samples for the Deployment's pods: dcgm-exporter stopped reporting, "
            "or it is not scraped with pod labels"
            if newest is None
            else f"DCGM stopped reporting: its newest sample is {now - newest:.0f} s old"
        )
        age = None if newest is None else now - newest
        return CheckResult("gpu-data-fresh", INSUFFICIENT, age, None, threshold, why, query)
    age = now - newest
    stale_pods = [
        p
        for p in (facts.ready_pods if facts else ())
        if now - fresh_at.get(p, -math.inf) > stale_after
    ]
    if stale_pods:
        ready = len(facts.ready_pods) if facts else 0
        why = (
            f"DCGM data fresh for {ready - len(stale_pods)} of {ready} ready pods; none from "
            f"{', '.join(stale_pods)}"
        )
        return CheckResult("gpu-data-fresh", INSUFFICIENT, age, None, threshold, why, query)
    why = f"newest DCGM sample {age:.0f} s old"
    return CheckResult("gpu-data-fresh", PASS, age, None, threshold, why, query)


def gpu_checks(
    source: MetricsSource,
    baseline: Baseline,
    facts: RolloutFacts | None,
    t: Thresholds,
    w: Window,
    now: float,
) -> list[CheckResult]:
    """Utilisation and memory of the expected GPU class against the baseline's figures for
    that class. GPUs of another class serving now fail; the baseline's figures for other
    classes are not compared (they are not what the fix should restore). Raises what the
    source raises."""
    out: list[CheckResult] = []
    expected, reason = _expected_class(facts, baseline)
    for quantity in _gpu_quantities(source):
        out += _gpu_quantity(source, baseline, quantity, expected, reason, t, w, now)
    return out


def _gpu_quantity(
    source: MetricsSource,
    baseline: Baseline,
    quantity: str,
    expected: str | None,
    reason: str,
    t: Thresholds,
    w: Window,
    now: float,
) -> list[CheckResult]:
    unit = presets.UNITS[quantity]
    query = source.query_text(quantity, w.length_s)
    live = _by_class(source.instant(quantity, window_s=w.length_s, at=now))
    base = _by_class(baseline.values.get(quantity, {}))
    if expected is None:
        why = f"the expected GPU class is unknown ({reason})"
        return [CheckResult(quantity, INSUFFICIENT, None, None, "-", why, query)]
    out: list[CheckResult] = []
    for cls, models in sorted(live.items(), key=lambda kv: str(kv[0])):
        if gpu.same_class(cls, expected):
            continue
        for model, value in sorted(models.items()):
            message = (
                f"{model} GPUs served within the last {w.text()} ({_fmt(value, unit)}); the "
                f"expected class is {expected} ({reason})"
            )
            out.append(
                CheckResult(
                    f"{quantity}[{model}]", FAIL, value, None, f"only {expected}", message, query
                )
            )
    live_models = next((m for c, m in live.items() if gpu.same_class(c, expected)), {})
    base_models = next((m for c, m in base.items() if gpu.same_class(c, expected)), {})
    model = sorted(live_models or base_models or {expected: 0.0})[0]
    name = f"{quantity}[{model}]"
    if quantity == presets.GPU_UTIL:
        threshold = (
            f"over {duration_text(t.stable_window_s)} within +-{t.gpu_util_band_points:g} "
            "points of baseline"
        )
    else:
        threshold = (
            f"over {duration_text(t.stable_window_s)} within +-{t.gpu_mem_band_ratio * 100:.0f}% "
            "of baseline"
        )
    if not base_models:
        others = ", ".join(sorted(str(c) for c in base if c)) or "nothing"
        why = (
            f"the baseline window has no {expected} data (it had {others}): choose a baseline "
            f"window when the workload ran on {expected}"
        )
        out.append(CheckResult(name, INSUFFICIENT, None, None, threshold, why, query))
        return out
    reference = sum(base_models.values()) / len(base_models)
    if not live_models:
        why = f"no {expected} GPUs reported within the last {w.text()} ({reason})"
        out.append(CheckResult(name, FAIL, None, reference, threshold, why, query))
        return out
    value = sum(live_models.values()) / len(live_models)
    if quantity == presets.GPU_UTIL:
        band = t.gpu_util_band_points
        limit_text = f"+-{band:g} points"
    else:
        band = t.gpu_mem_band_ratio * reference
        limit_text = f"+-{_fmt(band, unit)}"
    diff = value - reference
    numbers = (
        f"{_fmt(value, unit)} over the last {w.text()} vs baseline {_fmt(reference, unit)} "
        f"({diff:+,.1f}; limit {limit_text})"
    )
    if abs(diff) > band:
        status, message = FAIL, f"outside the band: {numbers}"
    elif w.full:
        status, message = PASS, numbers
    else:
        status = INSUFFICIENT
        message = f"so far in band ({numbers}); {_wait(w.remaining_s)} for the whole window"
    out.append(
        CheckResult(name, status, value, reference, threshold, message, query, band, w.length_s)
    )
    return out


def metric_checks(
    source: MetricsSource,
    baseline: Baseline | None,
    t: Thresholds,
    now: float,
    facts: RolloutFacts | None = None,
) -> tuple[list[CheckResult], float | None]:
    """The metric checks and, when the window has not filled yet, how long until it has.
    Raises what the source raises (UnreachableError, InvalidError, ForbiddenError,
    ConfigError for a bad baseline file)."""
    gpu_names = _gpu_quantities(source)
    names = [presets.TOKENS, *LATENCY, *gpu_names]
    stale_after = t.stale_intervals * source.scrape_interval_s
    last = source.last_scrape(now)
    freshness = "newest engine sample"
    threshold = f"{freshness} <= {stale_after:g} s old ({t.stale_intervals:g} scrape intervals)"
    query = _freshness_query(source, gpu=False)
    if last is None:
        why = "no engine metrics from the deployment's pods (missing, or gone stale)"
        head = CheckResult("data-fresh", INSUFFICIENT, None, None, threshold, why, query)
        gone = ["pods-reporting", "gpu-data-fresh", *names]
        return [head, *_not_judged(gone, "no current data")], None
    age = max(0.0, now - last)
    if age > stale_after:
        why = f"the newest sample is {age:.0f} s old"
        head = CheckResult("data-fresh", INSUFFICIENT, age, None, threshold, why, query)
        gone = ["pods-reporting", "gpu-data-fresh", *names]
        return [head, *_not_judged(gone, "metrics are stale")], None
    out = [
        CheckResult(
            "data-fresh", PASS, age, None, threshold, f"newest sample {age:.0f} s old", query
        )
    ]
    out += coverage_checks(source, facts, t, now)
    gpu_fresh = gpu_freshness(source, facts, t, now) if gpu_names else None
    if gpu_fresh is not None:
        out.append(gpu_fresh)
    if baseline is None:
        baseline = source.baseline(t.stable_window_s)
    w = _window(source, t, now)
    if w.span_s < _min_span(source, t):
        wait = max(0.0, _min_span(source, t) - w.span_s)
        why = f"only {w.span_s:.0f} s of data so far; {_wait(wait)}"
        return [*out, *_not_judged(names, why)], w.remaining_s
    base_note = f" (baseline {baseline.describe_window()})"
    checks = [tokens_check(source, baseline.value(presets.TOKENS), t, w, now)]
    checks += [latency_check(source, q, baseline.value(q), t, w, now) for q in LATENCY]
    engine_gap = _baseline_gap(baseline, presets.TOKENS)
    for check in checks:
        out.append(_with_note(_thin_baseline(check, engine_gap), base_note))
    if gpu_fresh is not None and gpu_fresh.status != PASS:
        out += _not_judged(gpu_names, "GPU metrics are stale or missing")
    else:
        gpu_gap = _baseline_gap(baseline, presets.GPU_UTIL)
        out += [_thin_baseline(c, gpu_gap) for c in gpu_checks(source, baseline, facts, t, w, now)]
    return out, (None if w.full else w.remaining_s)


def _baseline_gap(baseline: Baseline, quantity: str) -> str:
    """Why the baseline cannot vouch for `quantity`: its window is badly covered (a rate over
    two covered minutes of ten reads a fifth of the truth). "" when it can, or unknown."""
    covered = baseline.coverage.get(quantity)
    if covered is None or covered >= MIN_COVERAGE:
        return ""
    return (
        f"the baseline window {utc(baseline.start)}..{utc(baseline.end)} is only "
        f"{covered * 100:.0f}% covered (needs {MIN_COVERAGE * 100:.0f}%): choose a window "
        "with data throughout"
    )


def _thin_baseline(check: CheckResult, gap: str) -> CheckResult:
    """Against a badly covered baseline a criterion is neither passed nor failed: the bar
    itself is unreliable, so the result is insufficient-data, saying why."""
    if not gap or check.status == INSUFFICIENT or check.baseline is None:
        return check
    return CheckResult(
        check.name, INSUFFICIENT, check.observed, check.baseline, check.threshold,
        f"{gap}; {check.message}", check.query, check.limit, check.window_s,
    )  # fmt: skip


def _with_note(check: CheckResult, note: str) -> CheckResult:
    if check.baseline is None:
        return check
    return CheckResult(
        check.name, check.status, check.observed, check.baseline, check.threshold,
        check.message + note, check.query, check.limit, check.window_s,
    )  # fmt: skip
