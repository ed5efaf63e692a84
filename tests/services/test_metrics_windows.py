"""Issue 12: what the demo's metrics keep after hours of watching is its windows, not its
past. Six simulated hours of 5-second scrapes of a fleet whose pods are replaced every hour
(a rollout each), read by the metrics feed every 15 s as the panes do: the store holds the
live scrapes of its retention and only the series of pods seen in it, each pane's series
holds its 15 minutes, and the query log its limit."""

from __future__ import annotations

import tracemalloc

from services.metrics.series import HISTORY_S, MAX_POINTS
from services.metrics.simsource import SimMetricsSource
from services.metrics.source import Scope
from tui.metrics_feed import MetricsFeed

START = 1_000_000.0
HOURS = 6
SCRAPE_S = 5.0
SAMPLE_EVERY = 3  # the feed reads every third scrape (15 s)
RETENTION_S = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def fed_by_hand(clock: Clock, **options: float) -> SimMetricsSource:
    """A source the test ingests pages into itself (its URL is never scraped)."""
    return SimMetricsSource(
        "http://127.0.0.1:9/metrics",
        Scope("inference", "llm-serve"),
        "vllm",
        clock=clock,
        scrape_interval_s=SCRAPE_S,
        rate_window_s=60.0,
        **options,
    )


def page(pod: str, t: float) -> str:
    labels = f'namespace="inference",pod="{pod}",model_name="m"'
    n = (t - START) / SCRAPE_S
    return (
        "# TYPE vllm:generation_tokens_total counter\n"
        f"vllm:generation_tokens_total{{{labels}}} {100 * n}\n"
        "# TYPE vllm:num_requests_running gauge\n"
        f"vllm:num_requests_running{{{labels}}} 3\n"
        "# TYPE vllm:e2e_request_latency_seconds histogram\n"
        f'vllm:e2e_request_latency_seconds_bucket{{{labels},le="1.0"}} {2 * n}\n'
        f'vllm:e2e_request_latency_seconds_bucket{{{labels},le="+Inf"}} {3 * n}\n'
        f"vllm:e2e_request_latency_seconds_count{{{labels}}} {3 * n}\n"
        f"vllm:e2e_request_latency_seconds_sum{{{labels}}} {2 * n}\n"
    )


def test_hours_of_watching_keep_the_windows_not_the_past() -> None:
    clock = Clock()
    source = fed_by_hand(clock, live_retention_s=RETENTION_S)
    feed = MetricsFeed(source, baseline=lambda: None)
    shown = []
    sampled_at = START
    scrapes = int(HOURS * 3600 / SCRAPE_S)
    for i in range(scrapes):
        clock.now = START + i * SCRAPE_S
        hour = int((clock.now - START) // 3600)
        source.ingest(page(f"llm-serve-rs{hour}-abcde", clock.now))
        if i % SAMPLE_EVERY == 0:
            shown, sampled_at = feed(), clock.now
    now = clock.now

    # The store: live samples within the retention, and the series of the pods that served
    # in it (this hour's and the one before), not of all six.
    pods = {s.labels["pod"] for s in source._series.values()}
    assert pods == {f"llm-serve-rs{HOURS - 2}-abcde", f"llm-serve-rs{HOURS - 1}-abcde"}
    for series in source._series.values():
        assert series.times[0] >= now - RETENTION_S - SCRAPE_S, series.name

    # The panes: each quantity with data shows its last 15 minutes and no more.
    with_data = [s for s in shown if s.points]
    assert {s.name for s in with_data} >= {"p95", "p99", "tokens_per_s"}
    for series in with_data:
        assert len(series.points) <= MAX_POINTS
        assert series.points[0].t >= sampled_at - HISTORY_S
        assert series.points[-1].t == sampled_at

    # The query log keeps its newest records only.
    assert len(source.query_log.since(0)) <= 5000


def test_a_full_query_log_holds_each_query_text_once() -> None:
    """The log fills in about 15 minutes of 1 Hz polls and stays full; the same few queries
    are logged over and over, so at its limit it costs about what its records do, not 5,000
    copies of the PromQL (371 bytes a record before, 160 after)."""
    from services.metrics import presets
    from services.metrics.source import QueryLog, QueryRecord

    scope = Scope("inference", "llm-serve")
    preset = presets.preset_named("vllm")
    quantities = list(presets.GATE_QUANTITIES)
    log = QueryLog()
    # Only what this test's frames allocated and still hold: a thread an earlier test left
    # running in this worker (a simulator's fleet) allocates meanwhile too.
    tracemalloc.start(8)
    try:
        for i in range(5000):
            quantity = quantities[i % len(quantities)]
            query = presets.render(
                preset.spec(quantity), scope.selector(), scope.selector(gpu=True), "300s", "x"
            )
            log.add(QueryRecord(quantity, query, START + i, at=START + i, results=1))
        mine = tracemalloc.Filter(True, __file__, all_frames=True)
        snapshot = tracemalloc.take_snapshot().filter_traces([mine])
        held = sum(stat.size for stat in snapshot.statistics("filename"))
    finally:
        tracemalloc.stop()
    assert len(log.since(0)) == 5000
    assert held < 5000 * 200, held


def test_the_first_values_do_not_wait_for_the_baseline() -> None:
    """The pane's first figures arrive while the baseline capture is still running (the
    demo's day-old window took seconds; the pane said "no data" all that time); the
    differences from the baseline follow on the next sample."""
    import threading

    clock = Clock()
    source = fed_by_hand(clock)
    for i in range(40):
        clock.now = START + i * SCRAPE_S
        source.ingest(page("llm-serve-rs0-abcde", clock.now))
    released = threading.Event()

    class Frozen:
        def value(self, quantity: str, key: str = "") -> float | None:
            return 123.0 if quantity == "tokens_per_s" else None

    def slow_baseline() -> Frozen:
        assert released.wait(30), "the test never released the baseline"
        return Frozen()

    feed = MetricsFeed(source, baseline=slow_baseline)
    first = feed()  # would block on slow_baseline if the first call asked for it
    tokens = next(s for s in first if s.name == "tokens_per_s")
    assert tokens.points and tokens.baseline is None
    released.set()
    clock.now += SCRAPE_S
    source.ingest(page("llm-serve-rs0-abcde", clock.now))
    later = next(s for s in feed() if s.name == "tokens_per_s")
    assert later.baseline == 123.0
