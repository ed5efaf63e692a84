"""How the validation gate judges one criterion, as pure arithmetic on window-level figures.

Every criterion is judged on one estimate over the whole stability window, for the live fleet
and for the baseline: `histogram_quantile(q, sum by (le) (rate(..._bucket[window])))` for
latency, `sum(rate(...[window]))` for tokens/sec, `avg_over_time(...[window])` for the GPUs.
Per-minute samples are not judged one by one: a 1-minute quantile of a histogram whose buckets
around 5 s are 2.5 -> 5 -> 10 s wide is mostly interpolation noise, and a healthy fleet failed
on it (57-79 of 121 samples "above the band" while the true p95 was below it).

Histogram resolution. `histogram_quantile` knows only how many requests fell between two
bucket bounds and interpolates linearly inside the bucket. When the live and the baseline
quantile lie between the same two bounds, the histogram cannot tell them apart: the result
says so and is not a fail (the difference is below what the exporter measures). A latency
criterion fails only when the live estimate is above the limit (ratio x baseline) AND lies in a
higher bucket than the baseline: then the histogram itself shows more requests above a bucket
bound than the baseline had.

Three outcomes per criterion: pass, fail (with the numbers), insufficient-data (what is missing
and how long to wait). A fail is a fail as soon as it shows, even before the window has filled;
a pass needs the whole window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

PASS, FAIL, INSUFFICIENT = "pass", "fail", "insufficient-data"

Outcome = Literal["within", "above", "indistinguishable"]


def bucket_of(value: float, bounds: Sequence[float]) -> tuple[float, float]:
    """The histogram bucket (lower, upper] that holds `value`: Prometheus buckets are upper
    inclusive, the first starts at 0 and the last ends at +Inf. Raises nothing."""
    lower = 0.0
    for bound in sorted(bounds):
        if value <= bound:
            return lower, bound
        lower = bound
    return lower, math.inf


@dataclass(frozen=True)
class LatencyComparison:
    """A live quantile against `ratio` x its baseline, at the histogram's resolution."""

    outcome: Outcome
    live: float
    base: float
    limit: float
    live_bucket: tuple[float, float] | None  # None: bucket bounds unknown
    base_bucket: tuple[float, float] | None

    @property
    def passes(self) -> bool:
        return self.outcome != "above"

    def bucket_text(self) -> str:
        if self.live_bucket is None:
            return ""
        lo, hi = self.live_bucket
        return f"between {lo:g} and {hi:g} s" if math.isfinite(hi) else f"above {lo:g} s"


def compare_latency(
    live: float, base: float, ratio: float, bounds: Sequence[float]
) -> LatencyComparison:
    """`within` when live <= ratio x base; `indistinguishable` when live is above that limit
    but lies between the same bucket bounds as the baseline (the histogram cannot tell them
    apart); `above` otherwise. Without bucket bounds the estimates decide alone."""
    limit = base * ratio
    live_bucket = bucket_of(live, bounds) if bounds else None
    base_bucket = bucket_of(base, bounds) if bounds else None
    if live <= limit:
        outcome: Outcome = "within"
    elif live_bucket is not None and live_bucket == base_bucket:
        outcome = "indistinguishable"
    else:
        outcome = "above"
    return LatencyComparison(outcome, live, base, limit, live_bucket, base_bucket)


def window_state(
    points: int, expected: int, span_s: float, window_s: float, min_coverage: float
) -> tuple[bool, float]:
    """(full, seconds to wait): the window counts as full when at least `min_coverage` of its
    expected samples exist; otherwise the wait is what is missing of its span."""
    full = points >= max(2, math.ceil(min_coverage * expected))
    return full, 0.0 if full else max(0.0, window_s - span_s)


def judge_statuses(statuses: Sequence[str]) -> str:
    """fail if any check fails; else insufficient-data if any lacks data (or there are
    none); pass only when every check passes."""
    found = set(statuses)
    if FAIL in found:
        return FAIL
    if not found or found != {PASS}:
        return INSUFFICIENT
    return PASS
