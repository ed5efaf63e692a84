"""Live series for the sparklines: one range query to fill the last minutes, then a sample per
poll. Each series knows how old its newest scraped sample is and is stale after two scrape
intervals (`MetricSeries.fetched_at` is that scrape time, `stale_after_s` the limit).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from services.metrics import presets
from services.metrics.baseline import Baseline
from services.metrics.source import MetricsSource, RangeValues
from services.models import MetricPoint, MetricSeries

HISTORY_S = 900.0
MAX_POINTS = 300


def series_age(series: MetricSeries, now: float) -> float:
    """Seconds since the newest sample behind the series was scraped."""
    return max(0.0, now - series.fetched_at)


def is_stale(series: MetricSeries, now: float) -> bool:
    return not series.points or series_age(series, now) > series.stale_after_s


@dataclass
class _Buffer:
    points: list[MetricPoint] = field(default_factory=list)

    def add(self, point: MetricPoint) -> None:
        if self.points and point.t <= self.points[-1].t:
            return
        self.points.append(point)

    def trim(self, before: float) -> None:
        self.points = [p for p in self.points if p.t >= before][-MAX_POINTS:]


class LiveSeries:
    """`LiveSeries(source).prime()` then `sample()` on every poll; `snapshot()` returns the
    series (one per quantity, one per GPU model for GPU quantities). Calls raise what the
    source raises (UnreachableError...)."""

    def __init__(
        self,
        source: MetricsSource,
        quantities: Sequence[str] = presets.QUANTITIES,
        *,
        history_s: float = HISTORY_S,
        baseline: Baseline | None = None,
        stale_intervals: float = 2.0,
    ) -> None:
        self.source = source
        self.quantities = [q for q in quantities if q in source.preset.queries]
        self.history_s = history_s
        self.baseline = baseline
        self.stale_after_s = stale_intervals * source.scrape_interval_s
        self._buffers: dict[tuple[str, str], _Buffer] = {}
        self._last_scrape = 0.0

    def _step(self) -> float:
        return max(self.source.scrape_interval_s, self.history_s / MAX_POINTS)

    def prime(self, now: float | None = None) -> list[MetricSeries]:
        """Fill the last `history_s` with one range query per quantity. A source whose
        queries are round trips (`reads_in_parallel`: Prometheus) gets them together, so the
        live-metrics pane waits for the slowest, not for their sum. Raises what the first
        quantity to fail raised."""
        now = self.source.now() if now is None else now
        start = now - self.history_s
        step_s = self._step()

        def ranged(quantity: str) -> RangeValues:
            return self.source.series(quantity, start=start, end=now, step_s=step_s)

        if getattr(self.source, "reads_in_parallel", False):
            with ThreadPoolExecutor(max(1, len(self.quantities)), "skewmit-prime") as pool:
                answers = list(pool.map(ranged, self.quantities))
        else:  # evaluated in this process: threads would only starve its scraper
            answers = [ranged(quantity) for quantity in self.quantities]
        for quantity, answer in zip(self.quantities, answers, strict=True):
            for key, points in answer.items():
                buffer = self._buffers.setdefault((quantity, key), _Buffer())
                for point in points:
                    buffer.add(point)
        self._last_scrape = self.source.last_scrape(now) or 0.0
        return self.snapshot(now)

    def sample(self, now: float | None = None) -> list[MetricSeries]:
        """Append each quantity's value now; a quantity without data gets no point (its
        series goes stale rather than showing a made-up zero)."""
        now = self.source.now() if now is None else now
        last = self.source.last_scrape(now)
        if last is not None:
            self._last_scrape = last
        for quantity in self.quantities:
            for key, value in self.source.instant(quantity, at=now).items():
                self._buffers.setdefault((quantity, key), _Buffer()).add(MetricPoint(now, value))
        for buffer in self._buffers.values():
            buffer.trim(now - self.history_s)
        return self.snapshot(now)

    def snapshot(self, now: float | None = None) -> list[MetricSeries]:
        now = self.source.now() if now is None else now
        out = []
        for quantity in self.quantities:
            keys = sorted(k for q, k in self._buffers if q == quantity)
            for key in keys or [""]:
                buffer = self._buffers.get((quantity, key), _Buffer())
                labels = {self.source.scope.gpu_model_label: key} if key else {}
                base = self.baseline.value(quantity, key) if self.baseline else None
                out.append(
                    MetricSeries(
                        name=quantity,
                        unit=presets.UNITS[quantity],
                        points=tuple(buffer.points),
                        baseline=base,
                        fetched_at=self._last_scrape,
                        stale_after_s=self.stale_after_s,
                        labels=labels,
                    )
                )
        return out
