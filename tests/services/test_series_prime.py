"""Issue 12: the live-metrics pane's first fill sends its range queries together when each is
a round trip (Prometheus), so it waits for the slowest of them rather than for their sum, and
it shows exactly what the queries one after another would have. A source evaluated in this
process (the demo's) is read in sequence: threads there only starved its scraper, and the
demo's panes said "stale" at start."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from services.metrics.series import LiveSeries
from services.metrics.simsource import SimMetricsSource
from tests.services.test_metrics_windows import SCRAPE_S, START, Clock, fed_by_hand, page


class TogetherOnly(SimMetricsSource):
    """Answers a range query only once every quantity's query is in flight at the same time
    (a barrier): queries sent one after another break it."""

    reads_in_parallel = True  # as PrometheusSource
    barrier: threading.Barrier | None = None

    def series(self, quantity: str, **window: Any) -> Any:
        if self.barrier is not None:
            self.barrier.wait()
        return super().series(quantity, **window)


def fed(clock: Clock) -> SimMetricsSource:
    source = fed_by_hand(clock)
    source.__class__ = TogetherOnly
    for i in range(120):
        clock.now = START + i * SCRAPE_S
        for pod in ("llm-serve-rs0-abcde", "llm-serve-rs0-fghij"):
            source.ingest(page(pod, clock.now))
    return source


def test_the_first_fill_sends_every_quantitys_query_together() -> None:
    clock = Clock()
    source = fed(clock)
    live = LiveSeries(source)
    assert len(live.quantities) > 1
    expected = {
        q: source.series(q, start=clock.now - live.history_s, end=clock.now, step_s=live._step())
        for q in live.quantities
    }
    assert isinstance(source, TogetherOnly)
    source.barrier = threading.Barrier(len(live.quantities), timeout=10)

    primed = live.prime()

    by_name: dict[str, list[tuple[float, float]]] = {}
    for s in primed:
        by_name.setdefault(s.name, []).extend((p.t, p.v) for p in s.points)
    for quantity, answer in expected.items():
        points = sorted((p.t, p.v) for pts in answer.values() for p in pts)
        assert sorted(by_name.get(quantity, [])) == points, quantity
    assert any(by_name.values()), "the fill holds points"


def test_a_failed_query_fails_the_fill_as_before() -> None:
    clock = Clock()
    source = fed(clock)
    live = LiveSeries(source)

    def refuse(quantity: str, **window: Any) -> Any:
        raise RuntimeError(f"{quantity}: refused")

    source.series = refuse  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="refused"):
        live.prime()


def test_a_source_evaluated_in_this_process_is_read_in_sequence_on_the_callers_thread() -> None:
    clock = Clock()
    source = fed_by_hand(clock)
    for i in range(120):
        clock.now = START + i * SCRAPE_S
        source.ingest(page("llm-serve-rs0-abcde", clock.now))
    threads: set[str] = set()
    read = source.series

    def series(quantity: str, **window: Any) -> Any:
        threads.add(threading.current_thread().name)
        return read(quantity, **window)

    source.series = series  # type: ignore[method-assign]
    assert any(s.points for s in LiveSeries(source).prime())
    assert threads == {threading.current_thread().name}


def test_prometheus_sources_are_read_in_parallel() -> None:
    from services.metrics.prometheus import PrometheusSource

    assert PrometheusSource.reads_in_parallel is True
    assert not getattr(SimMetricsSource, "reads_in_parallel", False)
