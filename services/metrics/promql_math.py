"""Prometheus' own arithmetic (2.x), so the simulator source computes what PromQL would.

`rate()` is `extrapolatedRate` of promql/functions.go: counter resets, extrapolation to the
window's edges unless a sample is more than 1.1 average intervals away, never below zero.
`histogram_quantile()` is `bucketQuantile` of promql/quantile.go: linear interpolation inside
the bucket holding the rank, the lowest bucket starting at 0, the +Inf bucket answering the
highest finite bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Point = tuple[float, float]  # (unix seconds, value)
LOOKBACK_S = 300.0  # Prometheus' default --query.lookback-delta


def extrapolated_rate(points: Sequence[Point], start: float, end: float) -> float | None:
    """rate(counter[end - start]) evaluated at `end`; None with fewer than two samples."""
    if len(points) < 2:
        return None
    first_t, first_v = points[0]
    last_t, last_v = points[-1]
    result = last_v - first_v
    previous = 0.0
    for _, value in points:
        if value < previous:
            result += previous  # a counter reset: the counter restarted from zero
        previous = value
    to_start = first_t - start
    to_end = end - last_t
    sampled = last_t - first_t
    if sampled <= 0:
        return None
    average = sampled / (len(points) - 1)
    if result > 0 and first_v >= 0:
        # Counters cannot go below zero: do not extrapolate past where this one was zero.
        to_zero = sampled * (first_v / result)
        to_start = min(to_start, to_zero)
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    return result * (interval / sampled) / (end - start)


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """histogram_quantile(q) over (upper bound, cumulative count) pairs; NaN when undefined."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets)
    if not ordered or not math.isinf(ordered[-1][0]):
        return math.nan
    # Coalesce equal bounds, then make the counts monotonic (scrapes race with observations).
    merged: list[list[float]] = []
    for bound, count in ordered:
        if merged and merged[-1][0] == bound:
            merged[-1][1] += count
        else:
            merged.append([bound, count])
    highest = -math.inf
    for bucket in merged:
        highest = max(highest, bucket[1])
        bucket[1] = highest
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(merged) - 1) if merged[i][1] >= rank), len(merged) - 1)
    if b == len(merged) - 1:
        return merged[-2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start, end, count = 0.0, merged[b][0], merged[b][1]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    return start + (end - start) * (rank / count)


def instant_value(points: Sequence[Point], at: float) -> float | None:
    """An instant vector selector at `at`: the newest sample within the lookback, None when
    there is none or it is a staleness marker (NaN)."""
    for t, v in reversed(points):
        if t <= at:
            if at - t > LOOKBACK_S or math.isnan(v):
                return None
            return v
    return None
