"""The metrics feed for the panes: live series from a MetricsSource (the baseline and the
last minutes on the first call, one new sample per later call), and the helpers that pick
the series each pane shows."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from services.gpu import gpu_class_from_name, same_class
from services.models import MetricSeries

# How long a first reading without figures is read again while nothing has taken it.
READ_AGAIN_FOR_S = 600.0


def first_series(
    series: Sequence[MetricSeries], prefer: str | None = None
) -> dict[str, MetricSeries]:
    """One series per quantity for the sparklines: the first with data, preferring one with
    a baseline (GPU quantities have a series per GPU model; a model the last-known-good
    window did not run on has none), then one of the GPU class `prefer` (the class the
    last-known-good required, from step 5). The first readings do not wait for the
    baseline: without `prefer` a mixed fleet's GPU figures were the first class listed
    (A10G: 20.7 GiB) until it came, then jumped to the last-known-good's (H100: 72.1 GiB)."""

    def rank(item: MetricSeries) -> tuple[bool, bool, bool]:
        # A class is parsed from the model's name only where one is preferred (step 5 said).
        preferred = prefer is not None and any(
            same_class(prefer, gpu_class_from_name(m)) for m in item.labels.values()
        )
        return (bool(item.points), item.baseline is not None, preferred)

    out: dict[str, MetricSeries] = {}
    for item in series:
        if item.name not in out or rank(item) > rank(out[item.name]):
            out[item.name] = item
    return out


def series_named(series: Sequence[MetricSeries], *names: str) -> list[MetricSeries]:
    return [item for item in series if item.name in names]


class MetricsFeed:
    """Live series for the sparklines and charts from a MetricsSource: the last minutes on
    the first call, then one new sample per call, with the baseline asked for on the second
    (blocking: call it from a worker). The first values do not wait for the baseline: its
    capture can take seconds (the demo's day-old window, a slow Prometheus) and the pane
    showed nothing meanwhile; the differences from it follow a poll later. Raises what the
    source raises."""

    def __init__(
        self,
        source: Any,
        baseline_window_s: float = 600.0,
        baseline: Callable[[], Any] | None = None,
    ) -> None:
        self.source = source
        self.baseline_window_s = baseline_window_s
        # The incident's frozen baseline (Runbook.baseline), so the panes and the gate
        # compare with the same numbers; without it, the source's own.
        self.baseline = baseline or (lambda: source.baseline(baseline_window_s))
        self._live: Any = None
        self._baseline_asked = False
        self._first: Future[list[MetricSeries]] | None = None  # see read_first_now
        self._lock = threading.Lock()  # the first reading: taken by a call, or read again
        self._taken = threading.Event()  # set when a call took it or closed: no reading again

    def read_first_now(
        self, then: Callable[[list[MetricSeries]], object] | None = None
    ) -> MetricsFeed:
        """Start the first reading (the last minutes) now, on a thread of its own, for the
        first call to return (or raise what it raised), and hand it to `then` as soon as it
        came: the launcher starts it while the cluster session is still opening, so the pane
        does not wait for the Kubernetes client's import and the cluster's first answers
        (issue 12). A failed reading is not handed over: the first call raises it.

        A reading that failed or lacked a figure (a Prometheus just started, its target down,
        a query timed out, no request finished yet for the latency) is read again every
        scrape interval until every figure has come or the first call takes the latest, for
        up to READ_AGAIN_FOR_S: the pane otherwise lacked them for as long as the cluster
        took to answer (a reading with tokens/sec but no p95 was once kept: CI waited 90 s)."""
        first: Future[list[MetricSeries]] = Future()
        self._first = first

        def read() -> None:
            # Every scrape interval (nothing new can come sooner), 1-15 s.
            settle, pause = first, min(max(self.scrape_interval_s or 5.0, 1.0), 15.0)
            deadline = time.monotonic() + READ_AGAIN_FOR_S
            while True:
                error: BaseException | None = None
                try:
                    live, series = self._prime_new()
                except BaseException as exc:  # raised again by the first call
                    live, series, error = None, [], exc
                with self._lock:
                    # Taken: the first call has it, or waits for it; it polls from here.
                    taken = self._first is not settle
                    if settle.done():
                        if taken:
                            return
                        settle = self._first = Future()  # replaces the one not yet taken
                    if error is not None:
                        settle.set_exception(error)
                    else:
                        self._live = live
                        settle.set_result(series)
                        if then is not None and not taken:
                            then(series)  # posts a message: it does not wait on the app
                if taken or (error is None and series and all(s.points for s in series)):
                    return
                if time.monotonic() > deadline or self._taken.wait(pause):
                    return  # a session that never opened: nothing polls the pane

        threading.Thread(target=read, name="skewmit-metrics-first", daemon=True).start()
        return self

    def close(self) -> None:
        """Stop reading the first reading again (the session it was for did not open)."""
        self._taken.set()

    def _prime_new(self) -> tuple[Any, list[MetricSeries]]:
        from services.metrics import presets
        from services.metrics.series import LiveSeries

        live = LiveSeries(self.source, presets.GATE_QUANTITIES)
        return live, live.prime()

    def _prime(self) -> list[MetricSeries]:
        self._live, series = self._prime_new()
        return series

    @property
    def scrape_interval_s(self) -> float | None:
        """Seconds between the source's scrapes (discovered from Prometheus' targets when
        it could be): no new sample can arrive sooner."""
        value = getattr(self.source, "scrape_interval_s", None)
        return float(value) if isinstance(value, int | float) else None

    def __call__(self) -> list[MetricSeries]:
        from services.errors import SkewmitError

        with self._lock:
            first, self._first = self._first, None
        if first is not None:
            self._taken.set()
            return first.result()  # a failed first reading is taken again next call
        if self._live is None:
            return self._prime()
        if not self._baseline_asked:
            self._baseline_asked = True  # once, as before: a refusal is not asked again
            try:
                self._live.baseline = self.baseline()
            except SkewmitError:
                pass  # the panes show values without a difference
        sampled: list[MetricSeries] = self._live.sample()
        return sampled


def short_gpu_class(model: str) -> str:
    """ "NVIDIA H100 80GB HBM3" -> "H100", "NVIDIA A10G" -> "A10G" (a DCGM modelName)."""
    name = model.removeprefix("NVIDIA ").strip()
    return name.replace("-", " ").split(" ", 1)[0] if name else "?"


def class_tags(
    series: Sequence[MetricSeries],
    prefer: str | None = None,
    chosen: dict[str, MetricSeries] | None = None,
) -> dict[str, str]:
    """For each quantity read per GPU model on a mixed fleet (series with data on more than
    one model), the class the pane's figure is of (`first_series`' choice, or `chosen` where
    the caller has it already): {"gpu_util": "H100"}. A fleet of one class gets no tag."""
    if chosen is None:
        chosen = first_series(series, prefer)
    tags: dict[str, str] = {}
    for name, shown in chosen.items():
        if len(_models(series, name)) > 1 and shown.labels:
            tags[name] = short_gpu_class(next(iter(shown.labels.values())))
    return tags


def _models(series: Sequence[MetricSeries], name: str) -> set[str]:
    return {
        model
        for item in series
        if item.name == name and item.points
        for model in item.labels.values()
    }


def mixed_fleet_note(
    series: Sequence[MetricSeries], prefer: str | None = None, tags: dict[str, str] | None = None
) -> str:
    """One line for the metrics pane on a mixed fleet: which class the GPU figures are of
    ("GPU figures: H100 pods (mixed fleet: A10G, H100)"); "" on a fleet of one class.
    `tags`: `class_tags`' answer where the caller has it already."""
    if tags is None:
        tags = class_tags(series, prefer)
    if not tags:
        return ""
    shown = sorted(set(tags.values()))
    models = sorted({short_gpu_class(m) for name in tags for m in _models(series, name)})
    return f"GPU figures: {', '.join(shown)} pods (mixed fleet: {', '.join(models)})"
