"""The demo's in-process metrics store stays the same size however long the demo runs: live
scrapes older than its retention are forgotten, a backfilled baseline is kept, and families
no query reads are never stored."""

from __future__ import annotations

from services.metrics.simsource import SimMetricsSource
from services.metrics.source import Scope

POD = 'namespace="inference",pod="llm-serve-5d4f8b7c9-abcde",model_name="m"'


def page(value: float) -> str:
    return (
        "# TYPE vllm:num_requests_running gauge\n"
        f"vllm:num_requests_running{{{POD}}} {value}\n"
        "# TYPE vllm:request_success_total counter\n"
        f"vllm:request_success_total{{{POD}}} {value}\n"
    )


def history(start: float, count: int) -> str:
    lines = [f"vllm:num_requests_running{{{POD}}} 1 {start + 5 * i:.0f}" for i in range(count)]
    return "# TYPE vllm:num_requests_running gauge\n" + "\n".join(lines) + "\n# EOF\n"


def source(**options: object) -> SimMetricsSource:
    scope = Scope("inference", "llm-serve")
    return SimMetricsSource("http://127.0.0.1:9/metrics", scope, "vllm", **options)  # type: ignore[arg-type]


def times(store: SimMetricsSource, name: str) -> list[float]:
    found = [s for (n, _), s in store._series.items() if n == name]
    return list(found[0].times) if found else []


def test_old_live_scrapes_are_forgotten_and_the_backfilled_baseline_kept() -> None:
    store = source(live_retention_s=600.0)
    store.ingest(history(13_600.0, 10), at=100_000.0)  # a day-old window, backfilled
    for i in range(200):  # a live scrape every 5 s for 1000 s
        store.ingest(page(float(i)), at=100_000.0 + 5 * i)
    kept = times(store, "vllm:num_requests_running")
    assert [t for t in kept if t < 20_000] == [13_600.0 + 5 * i for i in range(10)]
    live = [t for t in kept if t >= 100_000]
    assert min(live) >= 100_000 + 5 * 199 - 600 and max(live) == 100_000 + 5 * 199


def test_without_a_retention_every_live_scrape_is_kept() -> None:
    store = source()
    for i in range(200):
        store.ingest(page(float(i)), at=100_000.0 + 5 * i)
    assert len(times(store, "vllm:num_requests_running")) == 200


def test_families_no_query_reads_are_not_stored() -> None:
    store = source(families=("vllm:num_requests_running",))
    store.ingest(page(1.0), at=100_000.0)
    assert times(store, "vllm:num_requests_running") == [100_000.0]
    assert times(store, "vllm:request_success_total") == []
