"""A metrics source without Prometheus: it scrapes an exposition endpoint itself (the
simulator's, in the demo), keeps the history and evaluates each quantity as the PromQL would.

It never imports the simulator: it reads `metrics_url` like Prometheus does, on a timer in the
caller's clock (simulated time in the demo), stamps samples with the scrape time, writes
staleness markers for series that disappear, and evaluates rate() and histogram_quantile()
with Prometheus' own arithmetic (`promql_math`). History can be seeded from OpenMetrics text
with timestamps (the simulator's backfill), which gives the demo a day-old baseline.
"""

from __future__ import annotations

import math
import threading
import time
import urllib.error
import urllib.request
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from services.errors import UnreachableError
from services.metrics import presets
from services.metrics.baseline import Baseline, BaselineSpec, capture
from services.metrics.presets import Detection, Preset, QuerySpec
from services.metrics.promql_math import LOOKBACK_S, bucket_quantile, extrapolated_rate
from services.metrics.source import QueryLog, QueryRecord, RangeValues, Scope, Values
from services.metrics.textformat import Sample, parse
from services.models import MetricPoint

RETENTION_S = 26 * 3600.0  # a day-old baseline window plus room
STALE = math.nan


@dataclass
class _Series:
    name: str
    labels: dict[str, str]
    times: array[float]
    values: array[float]

    def window(self, start: float, end: float) -> list[tuple[float, float]]:
        lo, hi = bisect_left(self.times, start), bisect_right(self.times, end)
        return [
            (self.times[i], self.values[i]) for i in range(lo, hi) if not math.isnan(self.values[i])
        ]

    def at(self, t: float) -> tuple[float, float] | None:
        """The instant-selector sample at t: newest within the lookback, not a stale marker."""
        i = bisect_right(self.times, t) - 1
        if i < 0 or t - self.times[i] > LOOKBACK_S or math.isnan(self.values[i]):
            return None
        return self.times[i], self.values[i]

    def add(self, t: float, v: float) -> None:
        if not self.times or t > self.times[-1]:
            self.times.append(t)
            self.values.append(v)
            return
        i = bisect_left(self.times, t)
        if i < len(self.times) and self.times[i] == t:
            self.values[i] = v
        else:
            self.times.insert(i, t)
            self.values.insert(i, v)

    def trim(self, before: float) -> None:
        cut = bisect_left(self.times, before)
        if cut:
            del self.times[:cut]
            del self.values[:cut]

    def drop_between(self, after: float, before: float) -> None:
        """Forget the samples strictly between two times (old live scrapes)."""
        lo, hi = bisect_right(self.times, after), bisect_left(self.times, before)
        if hi > lo:
            del self.times[lo:hi]
            del self.values[lo:hi]


class SimMetricsSource:
    """`SimMetricsSource(sim.metrics_url, Scope("inference", "llm-serve"), "vllm",
    clock=sim_clock)`; then `start()` to scrape in the background, or `scrape()` by hand."""

    def __init__(
        self,
        metrics_url: str,
        scope: Scope,
        preset: str | Preset = "vllm",
        *,
        clock: Callable[[], float] = time.time,
        scrape_interval_s: float = 15.0,
        rate_window_s: float = 60.0,
        baseline_spec: BaselineSpec | None = None,
        baseline_window_s: float | None = None,
        timeout_s: float = 5.0,
        families: tuple[str, ...] = (),
        live_retention_s: float | None = None,
    ) -> None:
        self.metrics_url = metrics_url
        # Only metric names starting with one of these are kept (all when empty): a page
        # carries families no query reads, and every scrape of them is memory.
        self.families = families
        # Live scrapes older than this are forgotten; history ingested with timestamps (a
        # backfilled baseline) is kept. None: everything within RETENTION_S.
        self.live_retention_s = live_retention_s
        self._history_until = -math.inf
        self.scope = scope
        self.preset = presets.preset_named(preset) if isinstance(preset, str) else preset
        self.clock = clock
        self.scrape_interval_s = scrape_interval_s
        self.rate_window_s = rate_window_s
        self.baseline_spec = baseline_spec or BaselineSpec()
        self.baseline_window_s = baseline_window_s
        self.timeout_s = timeout_s
        self.last_error = ""
        self.query_log = QueryLog()  # the PromQL each evaluation stands for
        self._series: dict[tuple[str, tuple[tuple[str, str], ...]], _Series] = {}
        self._by_name: dict[str, list[_Series]] = {}
        self._live: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        self._in_scope: dict[tuple[str, tuple[tuple[str, str], ...]], bool] = {}
        self._last_scrape_at = -math.inf
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- collecting ----------------------------------------------------------

    def _wanted(self, sample: Sample) -> bool:
        key = (sample.name, sample.labels)
        known = self._in_scope.get(key)
        if known is None:
            labels = dict(sample.labels)
            known = self.scope.contains(labels, gpu=sample.name.startswith("DCGM_"))
            if self.families and not sample.name.startswith(self.families):
                known = False
            if len(self._in_scope) > 200_000:
                self._in_scope.clear()
            self._in_scope[key] = known
        return known

    def ingest(self, text: str, at: float | None = None) -> int:
        """Add an exposition page scraped at `at` (default now), or OpenMetrics history whose
        samples carry their own timestamps. A series missing from a live page gets a
        staleness marker, as Prometheus writes one. Returns the samples kept."""
        at = self.clock() if at is None else at
        kept = 0
        live: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        with self._lock:
            for sample in parse(text):
                if not self._wanted(sample):
                    continue
                key = (sample.name, sample.labels)
                series = self._series.get(key)
                if series is None:
                    series = _Series(sample.name, dict(sample.labels), array("d"), array("d"))
                    self._series[key] = series
                    self._by_name.setdefault(sample.name, []).append(series)
                if sample.timestamp is None:
                    live.add(key)
                    series.add(at, sample.value)
                else:
                    series.add(sample.timestamp, sample.value)
                    self._history_until = max(self._history_until, sample.timestamp)
                kept += 1
            if live or kept == 0:
                for key in self._live - live:
                    self._series[key].add(at, STALE)
                self._live = live
                self._last_scrape_at = at
            self._trim(at - RETENTION_S)
            if self.live_retention_s is not None and live:
                self._forget_live(at - self.live_retention_s)
        return kept

    def _forget_live(self, before: float) -> None:
        if before <= self._history_until:
            return
        for series in self._series.values():
            series.drop_between(self._history_until, before)

    def _trim(self, before: float) -> None:
        for key, series in list(self._series.items()):
            series.trim(before)
            if not series.times:
                del self._series[key]
                self._by_name[series.name].remove(series)

    def scrape(self) -> float:
        """Fetch `metrics_url` once and ingest it at the clock's now; returns that time.
        Raises UnreachableError when the endpoint does not answer."""
        at = self.clock()
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=self.timeout_s) as response:
                text = response.read().decode("utf-8", errors="replace")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.last_error = f"cannot scrape {self.metrics_url}: {exc}"
            # A failed scrape makes every series stale, as in Prometheus.
            self.ingest("", at)
            raise UnreachableError(
                f"{self.last_error}; is the simulator (or exporter) running?"
            ) from exc
        self.last_error = ""
        self.ingest(text, at)
        return at

    def poll(self) -> bool:
        """Scrape when a scrape interval has passed on the clock; True when it did."""
        if self.clock() - self._last_scrape_at < self.scrape_interval_s:
            return False
        try:
            self.scrape()
        except UnreachableError:
            pass  # kept in last_error; the data goes stale, which the gate notices
        return True

    def start(self, poll_every_s: float = 0.05) -> SimMetricsSource:
        """Scrape in a background thread until `stop()`."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, args=(poll_every_s,), name="skewmit-sim-metrics", daemon=True
            )
            self._thread.start()
        return self

    def _run(self, poll_every_s: float) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(poll_every_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- evaluating ----------------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def describe(self) -> str:
        return f"simulator scrape of {self.metrics_url} (PromQL arithmetic in-process)"

    def query_text(self, quantity: str, window_s: float) -> str:
        spec = self.preset.spec(quantity)
        return presets.render(
            spec,
            self.scope.selector(),
            self.scope.selector(gpu=True),
            f"{window_s:g}s",
            self.scope.gpu_model_label,
        )

    def _named(self, names: Iterable[str]) -> list[_Series]:
        return [s for name in names for s in self._by_name.get(name, [])]

    def _evaluate(self, spec: QuerySpec, at: float, window_s: float) -> Values:
        """What `render`'s PromQL answers: one expression per name, newest first, joined by
        `or`, so each result (each GPU model) comes from the newest name that has data. A
        union would double count vLLM 0.11, which serves both inter-token-latency names."""
        out: Values = {}
        for index in range(len(spec.metrics)):
            for key, value in self._evaluate_one(spec, index, at, window_s).items():
                out.setdefault(key, value)
        return out

    def _evaluate_one(self, spec: QuerySpec, index: int, at: float, window_s: float) -> Values:
        start = at - window_s
        name = spec.metrics[index]
        if spec.kind == presets.QUANTILE:
            buckets: dict[float, float] = {}
            for s in self._named([spec.sample_names[index]]):
                rate = extrapolated_rate(s.window(start, at), start, at)
                if rate is None or "le" not in s.labels:
                    continue
                bound = float(s.labels["le"]) if s.labels["le"] != "+Inf" else math.inf
                buckets[bound] = buckets.get(bound, 0.0) + rate
            value = bucket_quantile(spec.q, list(buckets.items())) if buckets else math.nan
            return {} if math.isnan(value) else {"": value}
        if spec.kind == presets.RATE:
            rates = [extrapolated_rate(s.window(start, at), start, at) for s in self._named([name])]
            found = [r for r in rates if r is not None]
            return {"": sum(found)} if found else {}
        if spec.kind in (presets.GAUGE_SUM, presets.GAUGE_AVG):
            values = [p[1] for s in self._named([name]) if (p := s.at(at)) is not None]
            if not values:
                return {}
            total = sum(values)
            return {"": total if spec.kind == presets.GAUGE_SUM else total / len(values)}
        if spec.kind == presets.GPU_AVG:
            by_model: dict[str, list[float]] = {}
            for s in self._named([name]):
                points = s.window(start, at)
                if points:
                    model = s.labels.get(self.scope.gpu_model_label, "")
                    by_model.setdefault(model, []).append(sum(v for _, v in points) / len(points))
            return {m: sum(v) / len(v) for m, v in sorted(by_model.items())}
        return {}

    def instant(
        self, quantity: str, *, window_s: float | None = None, at: float | None = None
    ) -> Values:
        spec = self.preset.spec(quantity)
        at = self.clock() if at is None else at
        window = window_s or self.rate_window_s
        with self._lock:
            values = self._evaluate(spec, at, window)
        query = self.query_text(quantity, window)
        self.query_log.add(QueryRecord(quantity, query, self.clock(), at=at, results=len(values)))
        return values

    def series(
        self,
        quantity: str,
        *,
        start: float,
        end: float,
        step_s: float,
        window_s: float | None = None,
    ) -> RangeValues:
        spec = self.preset.spec(quantity)
        window = window_s or self.rate_window_s
        out: RangeValues = {}
        step = max(step_s, 1e-3)
        count = int((end - start) // step) + 1
        with self._lock:
            for i in range(count):
                t = start + i * step
                for key, value in self._evaluate(spec, t, window).items():
                    out.setdefault(key, []).append(MetricPoint(t, value))
        query = self.query_text(quantity, window)
        logged = QueryRecord(quantity, query, self.clock(), start=start, end=end, step_s=step)
        self.query_log.add(replace(logged, results=len(out)))
        return out

    def last_scrape(self, at: float | None = None) -> float | None:
        at = self.clock() if at is None else at
        with self._lock:
            times = [
                p[0] for s in self._named(self.preset.freshness) if (p := s.at(at)) is not None
            ]
        series = presets.series_selector(self.preset.freshness, self.scope.selector())
        self.query_log.add(
            QueryRecord(
                "the newest scrape",
                f"max(timestamp({series}))",
                self.clock(),
                at=at,
                results=1 if times else 0,
            )
        )
        return max(times) if times else None

    def pod_freshness(self, at: float | None = None, *, gpu: bool = False) -> dict[str, float]:
        at = self.clock() if at is None else at
        names = self.preset.queries[presets.GPU_UTIL].metrics if gpu else self.preset.freshness
        out: dict[str, float] = {}
        with self._lock:
            for s in self._named(names):
                pod = self.scope.pod_of(s.labels, gpu=gpu)
                if pod and (p := s.at(at)) is not None:
                    out[pod] = max(p[0], out.get(pod, p[0]))
        return dict(sorted(out.items()))

    def present_metrics(self) -> frozenset[str]:
        at = self.clock()
        with self._lock:
            return frozenset(s.name for s in self._series.values() if s.at(at) is not None)

    def histogram_bounds(self, quantity: str) -> tuple[float, ...]:
        spec = self.preset.spec(quantity)
        if spec.kind != presets.QUANTILE:
            return ()
        at = self.clock()
        with self._lock:
            # The buckets of the name the query reads: the newest one that has data.
            for name in spec.sample_names:
                live = [s for s in self._named([name]) if s.at(at) is not None]
                bounds = {
                    float(s.labels["le"]) for s in live if s.labels.get("le") not in (None, "+Inf")
                }
                if bounds:
                    return tuple(sorted(bounds))
        return ()

    def dcgm_models(
        self, namespace: str | None = None, deployment: str | None = None
    ) -> dict[str, str]:
        scope = self.scope.retarget(namespace, deployment)
        at = self.clock()
        out: dict[str, str] = {}
        with self._lock:
            for s in self._named(["DCGM_FI_DEV_GPU_UTIL"]):
                if s.at(at) is not None and scope.contains(s.labels, gpu=True):
                    out[scope.pod_of(s.labels, gpu=True)] = s.labels.get(scope.gpu_model_label, "")
        return dict(sorted(out.items()))

    def detect(self) -> Detection:
        return presets.detect(self.present_metrics(), chosen=self.preset.name)

    def baseline(self, window_s: float) -> Baseline:
        window_s = self.baseline_window_s or window_s
        return capture(self, self.baseline_spec, window_s, with_series=False)
