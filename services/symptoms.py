"""Steps 3 and 4 judged on the live metrics, not only on the configuration: a step must not say
"clear" while its symptom is on the dashboard (issue 10: "Tail latency: clear" while p95 was
x69 the baseline).

Step 3 compares the live p95/p99 latency with the incident's frozen baseline, against the
validation gate's own limit (`Thresholds.latency_max_ratio`), so that whatever would fail
validation on latency shows in step 3 first. Step 4 compares the live prompt-length p95 (vLLM's
`vllm:request_prompt_tokens` histogram, when the metrics source's preset has a query for it)
with the same quantile over the baseline window. Each finding names the numbers and the action
to take. Without a metrics source nothing is judged; when the metrics cannot be read the step's
detail says why, and the configuration findings stand on their own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from services.errors import SkewmitError
from services.judgement import compare_latency
from services.metrics.presets import P95, P99, PROMPT_P95
from services.models import Finding, Knob, Severity, Step

# Prompt lengths move more than latency from minute to minute, and vLLM's 1-2-5 buckets make
# the quantile jump: a p95 twice the baseline's is a shift in the traffic's mix, not noise.
LONG_CONTEXT_RATIO = 2.0
# Knobs in the order step 3 proposes them: concurrency first (it moves tail latency most and
# refuses no request), then the output cap, then the context length.
_KNOB_ORDER = ("max_num_seqs", "max_output_tokens", "max_model_len")
_TITLES = {P95: "p95 latency", P99: "p99 latency"}


@dataclass(frozen=True)
class Symptoms:
    """What the live metrics say about a step: findings, and detail lines saying what was
    judged (or why nothing was)."""

    findings: tuple[Finding, ...] = ()
    detail: tuple[str, ...] = ()


def _over(live: float, base: float) -> str:
    ratio = live / base
    return (
        f"x{ratio:.1f} the baseline"
        if ratio >= 2
        else f"+{(ratio - 1) * 100:.0f}% over the baseline"
    )


def _value(values: dict[str, float]) -> float | None:
    value = values.get("")
    return value if value is not None and math.isfinite(value) else None


def tail_latency(
    metrics: Any,
    baseline: Callable[[], Any],
    limit_ratio: float,
    deployment: str,
    knobs: Sequence[Knob] = (),
) -> Symptoms:
    """Step 3 on the live metrics: a ``tail-latency-high`` finding (error) for p95 and for p99
    when the live value (over the source's rate window) is above `limit_ratio` times the
    baseline's and in a higher histogram bucket (`judgement.compare_latency`, as validation
    judges), naming both numbers, the limit and the knob to reduce first (detail["action"]).
    `baseline` returns the frozen baseline (Runbook.baseline). Raises nothing: a source or
    baseline that cannot be read leaves a detail line instead."""
    if metrics is None:
        return Symptoms()
    try:
        frozen = baseline()
        if frozen is None:
            return Symptoms(detail=("tail latency not judged: no baseline",))
        live = {q: _value(metrics.instant(q)) for q in (P95, P99)}
    except SkewmitError as exc:
        return Symptoms(detail=(f"tail latency not judged on the live metrics: {exc}",))
    knob = next(
        (k for name in _KNOB_ORDER for k in knobs if k.name == name and k.proposed is not None),
        None,
    )
    if knob is not None:
        fix = (
            f"reduce {knob.label} {knob.current} -> {knob.proposed} ({knob.action}), one knob "
            "at a time, and route long-context requests away (step 4)"
        )
    else:
        fix = "reduce one limit at a time and route long-context requests away (step 4)"
    findings: list[Finding] = []
    detail: list[str] = []
    for quantity in (P95, P99):
        now, base = live[quantity], frozen.value(quantity)
        title = _TITLES[quantity]
        if now is None or base is None or base <= 0:
            missing = "live data" if now is None else "a baseline value"
            detail.append(f"{title}: not judged (no {missing})")
            continue
        line = f"{title} {now:.3g} s now, baseline {base:.3g} s ({_over(now, base)})"
        detail.append(line)
        try:
            bounds = metrics.histogram_bounds(quantity)
        except SkewmitError:
            bounds = ()
        # As the validation gate judges it: above the limit, and in a higher bucket than the
        # baseline (within one bucket the histogram cannot tell them apart).
        if compare_latency(now, base, limit_ratio, bounds).outcome != "above":
            continue
        findings.append(
            Finding(
                Step.LATENCY,
                "tail-latency-high",
                Severity.ERROR,
                f"{title} {now:.3g} s is {_over(now, base)} ({base:.3g} s); validation allows "
                f"+{(limit_ratio - 1) * 100:.0f}%: {fix}",
                f"deployment/{deployment}",
                {
                    "quantity": quantity,
                    "live": now,
                    "baseline": base,
                    "limit_ratio": limit_ratio,
                    "action": knob.action if knob is not None else "",
                },
            )
        )
    return Symptoms(tuple(findings), tuple(detail))


def long_context(
    metrics: Any,
    baseline: Callable[[], Any],
    deployment: str,
    max_model_len: int | None = None,
) -> Symptoms:
    """Step 4 on the live metrics: a ``long-context-surge`` finding (warning) when the live p95
    prompt length is above LONG_CONTEXT_RATIO times its p95 over the baseline window (or, with
    no baseline value, above half the max context length), naming both numbers and the action
    route.long-context. Judged only where the source's preset has a PROMPT_P95 query. Raises
    nothing: what cannot be read leaves a detail line instead."""
    if metrics is None:
        return Symptoms()
    if PROMPT_P95 not in getattr(metrics.preset, "queries", {}):
        return Symptoms(
            detail=(
                "long-context share not judged: the metrics preset has no prompt-length "
                "query (vLLM's vllm:request_prompt_tokens histogram)",
            )
        )
    try:
        now = _value(metrics.instant(PROMPT_P95))
        frozen = baseline()
        base = None
        if frozen is not None:
            base = frozen.value(PROMPT_P95)
            if base is None:
                window = max(frozen.end - frozen.start, metrics.rate_window_s)
                base = _value(metrics.instant(PROMPT_P95, window_s=window, at=frozen.end))
    except SkewmitError as exc:
        return Symptoms(detail=(f"long-context share not judged on the live metrics: {exc}",))
    if now is None:
        return Symptoms(detail=("prompt length p95: not judged (no live data)",))
    if base is not None and base > 0:
        detail = (
            f"prompt length p95 {now:,.0f} tokens now, baseline {base:,.0f} ({_over(now, base)})"
        )
        high = now > base * LONG_CONTEXT_RATIO
        why = f"is {_over(now, base)} ({base:,.0f} tokens)"
    elif max_model_len:
        detail = f"prompt length p95 {now:,.0f} tokens now (no baseline value)"
        high = now > max_model_len / 2
        why = f"is over half the max context length ({max_model_len:,})"
    else:
        return Symptoms(detail=(f"prompt length p95 {now:,.0f} tokens now (nothing to compare)",))
    if not high:
        return Symptoms(detail=(detail,))
    finding = Finding(
        Step.ROUTE,
        "long-context-surge",
        Severity.WARNING,
        f"prompt length p95 {now:,.0f} tokens {why}: long-context requests are a larger share "
        "of the traffic; route them to a dedicated deployment (route.long-context) so that "
        "chat traffic stays fast",
        f"deployment/{deployment}",
        {"live": now, "baseline": base, "action": "route.long-context"},
    )
    return Symptoms((finding,), (detail,))
