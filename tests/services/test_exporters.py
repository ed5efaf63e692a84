"""Each preset against what the real engines serve: one fixture exporter per engine generation
(tests/fixtures/exporters, names, TYPEs, labels and buckets from the engines' sources), scraped
by one real Prometheus every second, read through PrometheusSource as `skewmit` reads it.

The fixtures serve a steady workload, so every answer is known: tokens/sec is the served token
rate, and p95/p99 are what histogram_quantile gives for the served bucket counts.
"""

from __future__ import annotations

import http.server
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.config import metrics_settings
from services.metrics import presets
from services.metrics.prometheus import PrometheusSource, from_settings
from services.metrics.simsource import SimMetricsSource
from services.metrics.source import Scope
from services.metrics.textformat import parse
from tests.conftest import require_tool
from tests.fixtures.exporters import NAMESPACE, ExporterServer, Fixture, all_fixtures, dcgm
from tests.fixtures.exporters import tgi as tgi_fixture
from tests.fixtures.exporters import vllm_v0 as vllm_v0_fixture
from tests.prometheus import PrometheusServer

pytestmark = pytest.mark.prometheus
FIXTURES = {f.name: f for f in all_fixtures()}
ENGINES = [f for f in FIXTURES.values() if f.preset]
RATE_WINDOW = "10s"


class FixturePrometheus(PrometheusServer):
    """Prometheus scraping every fixture pod as its own target, labelled as Kubernetes service
    discovery would label it (namespace, pod), DCGM's behind honor_labels: false."""

    def __init__(self, binary: str, workdir: Path, exporters: ExporterServer) -> None:
        super().__init__(binary, workdir, {})
        self.exporters = exporters

    def _config(self) -> dict[str, Any]:
        jobs = []
        for fixture in self.exporters.fixtures.values():
            targets = []
            for pod in fixture.pods:
                labels = dict(fixture.target_labels) or {"namespace": NAMESPACE, "pod": pod}
                labels["__metrics_path__"] = self.exporters.path(fixture.name, pod)
                targets.append({"targets": [self.exporters.address], "labels": labels})
            jobs.append(
                {
                    "job_name": fixture.name,
                    "scrape_interval": fixture.scrape_interval,
                    "honor_labels": fixture.honor_labels,
                    "static_configs": targets,
                }
            )
        return {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": jobs,
        }


@dataclass
class ExporterWorld:
    prometheus: FixturePrometheus

    def config(self, **prometheus: Any) -> dict[str, Any]:
        section = {"url": self.prometheus.url, "scrape_interval": "1s", "rate_window": RATE_WINDOW}
        return {"prometheus": section | prometheus}

    def source(
        self, fixture: str, preset: str | None = None, **prometheus: Any
    ) -> PrometheusSource:
        settings = metrics_settings(self.config(**prometheus))
        chosen = preset or FIXTURES[fixture].preset
        return from_settings(settings, NAMESPACE, fixture, chosen)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterWorld]:
    binary = require_tool("prometheus")
    exporters = ExporterServer(list(FIXTURES.values())).start()
    prometheus = FixturePrometheus(binary, tmp_path_factory.mktemp("exporters"), exporters)
    try:
        prometheus.start()
        targets = sum(len(f.pods) for f in FIXTURES.values())
        deadline = time.monotonic() + 60
        while len(prometheus.query("up == 1")) < targets and time.monotonic() < deadline:
            time.sleep(0.25)
        assert len(prometheus.query("up == 1")) == targets, prometheus.query("up")
        # A rate over RATE_WINDOW needs that much history (plus a scrape) everywhere.
        time.sleep(_seconds(RATE_WINDOW) + 2)
        yield ExporterWorld(prometheus)
    finally:
        prometheus.stop()
        exporters.stop()


def _seconds(text: str) -> float:
    return float(text.rstrip("s"))


def _only(values: dict[str, float]) -> float:
    assert len(values) == 1, values
    return next(iter(values.values()))


# ------------------------------------------------------------------ rendering


@pytest.mark.parametrize("preset", list(presets.PRESETS.values()), ids=lambda p: p.name)
def test_no_query_unions_metric_names(preset: presets.Preset) -> None:
    """A `__name__=~"a|b"` union collides as soon as a release serves both names; several
    names become one expression each, the newest first, joined by `or`."""
    for quantity, spec in preset.queries.items():
        query = presets.render(spec, 'pod=~"x-.+"', 'pod=~"x-.+"', "1m", "modelName")
        assert "__name__" not in query, (quantity, query)
        assert query.count(" or ") == len(spec.metrics) - 1
        assert query.index(spec.metrics[0]) == min(query.index(m) for m in spec.metrics)


@pytest.mark.parametrize("fixture", list(FIXTURES.values()), ids=lambda f: f.name)
def test_the_in_process_parser_reads_every_engines_page(fixture: Fixture) -> None:
    """The demo's simulator source parses pages itself: no real engine's line is skipped."""
    page = fixture.render(fixture.pods[0], time.time())
    lines = [line for line in page.splitlines() if line and not line.startswith("#")]
    samples = list(parse(page))
    assert len(samples) == len(lines)
    les = [dict(s.labels)["le"] for s in samples if s.name.endswith("_bucket")]
    assert all(le == "+Inf" or float(le) > 0 for le in les)


def test_resolve_keeps_the_newest_name_present() -> None:
    both = {"vllm:inter_token_latency_seconds_bucket", "vllm:time_per_output_token_seconds_bucket"}
    spec = presets.VLLM.resolve(both).spec(presets.TOKEN_LATENCY_P95)
    assert spec.metrics == ("vllm:inter_token_latency_seconds",)
    old = presets.SGLANG.resolve({"sglang:time_per_output_token_seconds_bucket"})
    assert old.spec(presets.TOKEN_LATENCY_P95).metrics == ("sglang:time_per_output_token_seconds",)


def _itl_page(pods: dict[str, tuple[tuple[str, ...], float, int]]) -> str:
    """An exposition page: per pod, the ITL names it serves, the one bucket bound all its
    observations fall in, and how many it has counted."""
    lines = []
    for pod, (names, bound, count) in pods.items():
        where = f'namespace="{NAMESPACE}",pod="{pod}",model_name="m"'
        lines.append(f"vllm:num_requests_running{{{where}}} 1")
        for name in names:
            for le in (0.025, 0.1):
                n = count if le >= bound else 0
                lines.append(f'{name}_bucket{{{where},le="{le}"}} {n}')
            lines.append(f'{name}_bucket{{{where},le="+Inf"}} {count}')
            lines.append(f"{name}_count{{{where}}} {count}")
    return "\n".join(lines) + "\n"


def test_the_simulator_source_reads_the_newest_itl_name_as_prometheus_does() -> None:
    """Mid-rollback from vLLM 0.11 to 0.10, the 0.11 pod serves both ITL names and the 0.10
    pod only the old one. The preset's PromQL (`new or old`) answers from the new name alone;
    a union of both names would count the 0.11 pod twice and the slow 0.10 pod too."""
    new, old = "vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"
    now = [1030.0]
    source = SimMetricsSource(
        "http://127.0.0.1:9/metrics", Scope(NAMESPACE, "llm"), "vllm", clock=lambda: now[0]
    )
    for at, count in ((1000.0, 0), (1015.0, 1500), (1030.0, 3000)):
        page = {
            "llm-6d8f7b9c5-fast1": ((new, old), 0.025, count),  # 0.11: fast, both names
            "llm-7c9d8e6f4-slow1": ((old,), 0.1, count // 2),  # 0.10: slow, old name only
        }
        source.ingest(_itl_page(page), at)
    query = source.query_text(presets.TOKEN_LATENCY_P95, 30)
    assert query.index(new) < query.index(" or ") < query.index(old)
    # Every observation behind the new name is at or below 25 ms: so is its p95.
    p95 = _only(source.instant(presets.TOKEN_LATENCY_P95, window_s=30, at=1030.0))
    assert 0 < p95 <= 0.025
    assert source.histogram_bounds(presets.TOKEN_LATENCY_P95) == (0.025, 0.1)
    # Once no pod serves the new name, the old one is read.
    for at, count in ((1045.0, 3500), (1060.0, 4000)):
        source.ingest(_itl_page({"llm-7c9d8e6f4-slow1": ((old,), 0.1, count)}), at)
    now[0] = 1060.0
    p95 = _only(source.instant(presets.TOKEN_LATENCY_P95, window_s=15))
    assert 0.025 < p95 <= 0.1


def test_the_first_sglang_metrics_release_is_read_too() -> None:
    """SGLang 0.3 counted running and waiting requests under vLLM-like names."""
    present = {"sglang:num_requests_running", "sglang:num_requests_waiting"}
    present |= {"sglang:generation_tokens_total", "sglang:e2e_request_latency_seconds_bucket"}
    assert presets.detect(present).fits == "sglang"
    resolved = presets.SGLANG.resolve(present)
    assert resolved.spec(presets.RUNNING).metrics == ("sglang:num_requests_running",)
    assert resolved.spec(presets.WAITING).metrics == ("sglang:num_requests_waiting",)
    assert resolved.freshness == ("sglang:num_requests_running",)


def test_top_bucket_warning_gives_each_engines_reason() -> None:
    tgi = presets.top_bucket_warning("p99", 145.6, tgi_fixture.DURATION_BOUNDS, "tgi")
    assert "145.6 s" in tgi and "by design" in tgi and "60 s" not in tgi
    # Without the engine, the bound itself says it is TGI's.
    assert "by design" in presets.top_bucket_warning("p99", 145.6, tgi_fixture.DURATION_BOUNDS)
    v0 = presets.top_bucket_warning("p99", 60.0, vllm_v0_fixture.E2E_BOUNDS, "vllm")
    assert "60 s" in v0 and "vLLM V0" in v0 and "TGI" not in v0
    assert presets.top_bucket_warning("p99", 3.3, vllm_v0_fixture.E2E_BOUNDS, "vllm") == ""


def test_rate_window_holds_at_least_four_declared_scrapes() -> None:
    source = PrometheusSource("http://127.0.0.1:9", Scope(NAMESPACE, "x"), "vllm", rate_window_s=60)
    assert source.scrape_interval_s == 30.0
    assert source.rate_window_s == 120.0  # 60 s held only two scrapes
    assert "120s" in source.rate_window_note


def test_the_default_rate_window_needs_no_widening() -> None:
    """A default config holds four default scrape intervals: no note on a default run."""
    settings = metrics_settings({"prometheus": {"url": "http://127.0.0.1:9"}})
    assert (settings.scrape_interval_s, settings.rate_window_s) == (30.0, 120.0)
    source = from_settings(settings, NAMESPACE, "x", "vllm")  # nothing listens on port 9
    assert source.rate_window_s == 120.0 and source.rate_window_note == ""
    assert "declared 30s" in source.interval_note


# ------------------------------------------------------------------ against Prometheus


@pytest.mark.parametrize("fixture", ENGINES, ids=lambda f: f.name)
def test_each_generation_reads_its_engine(world: ExporterWorld, fixture: Fixture) -> None:
    source = world.source(fixture.name)
    detection = source.detect()
    assert detection.fits == fixture.preset, detection
    w = fixture.workload
    at = time.time() - 1
    tokens = _only(source.instant(presets.TOKENS, at=at))
    assert tokens == pytest.approx(fixture.tokens_per_s, rel=0.01)
    for quantity, q in ((presets.P95, 0.95), (presets.P99, 0.99)):
        assert _only(source.instant(quantity, at=at)) == pytest.approx(w.e2e.quantile(q), rel=0.02)
    token_latency = _only(source.instant(presets.TOKEN_LATENCY_P95, at=at))
    assert token_latency == pytest.approx(w.itl.quantile(0.95), rel=0.02)
    assert _only(source.instant(presets.RUNNING, at=at)) > 0
    # The range query the sparklines and the evidence bundle use reads the same.
    points = source.series(presets.TOKEN_LATENCY_P95, start=at - 4, end=at, step_s=1)
    assert [p.v for p in _only_points(points)] == pytest.approx(
        [w.itl.quantile(0.95)] * 5, rel=0.02
    )


def _only_points(series: dict[str, Any]) -> list[Any]:
    assert len(series) == 1, series
    return list(next(iter(series.values())))


def test_vllm_011_reads_the_new_itl_name_and_says_so(world: ExporterWorld) -> None:
    source = world.source("vllm-011")
    query = source.query_text(presets.TOKEN_LATENCY_P95, 10)
    assert "vllm:inter_token_latency_seconds_bucket" in query
    assert "time_per_output_token" not in query
    assert presets.BOTH_ITL_NOTE in source.detect().notes
    # Unresolved (the names not known yet), the query still runs: newest name first, by `or`.
    unresolved = presets.render(
        presets.VLLM.spec(presets.TOKEN_LATENCY_P95),
        source.scope.selector(),
        source.scope.selector(gpu=True),
        "10s",
        "modelName",
    )
    rows = world.prometheus.query(unresolved)
    assert len(rows) == 1
    assert float(rows[0]["value"][1]) == pytest.approx(
        FIXTURES["vllm-011"].workload.itl.quantile(0.95), rel=0.02
    )
    # Before the rename (0.10), the old name is the one read; the KV-cache gauge served under
    # both names dates the release by the newer one.
    older = world.source("vllm-v1")
    assert "vllm:time_per_output_token_seconds_bucket" in older.query_text(
        presets.TOKEN_LATENCY_P95, 10
    )
    assert older.detect().notes == (
        "vLLM 0.9 or later (vllm:kv_cache_usage_perc)",
        "vLLM before 0.11 (vllm:time_per_output_token_seconds)",
    )


def test_sglang_generations_are_told_apart(world: ExporterWorld) -> None:
    old = world.source("sglang-old").detect()
    assert any("older SGLang" in note for note in old.notes), old.notes
    current = world.source("sglang").detect()
    assert any("current names" in note for note in current.notes), current.notes


def test_top_bucket_is_read_from_the_engines_histogram(world: ExporterWorld) -> None:
    tgi = world.source("tgi")
    bounds = tgi.histogram_bounds(presets.P99)
    assert len(bounds) == 35
    assert max(bounds) == pytest.approx(145.6, abs=0.05)
    p99 = _only(tgi.instant(presets.P99))
    warning = presets.top_bucket_warning("p99", p99, bounds, tgi.preset.name)
    assert "145.6 s" in warning and "by design" in warning
    v0 = world.source("vllm-v0")
    v0_bounds = v0.histogram_bounds(presets.P99)
    assert max(v0_bounds) == 60.0
    assert "vLLM V0" in presets.top_bucket_warning(
        "p99", _only(v0.instant(presets.P99)), v0_bounds, "vllm"
    )


def test_dcgm_behind_honor_labels_false_is_found_with_a_hint(world: ExporterWorld) -> None:
    source = world.source("vllm-v1")
    util = source.instant(presets.GPU_UTIL)
    assert util == {dcgm.MODEL: pytest.approx(dcgm.UTIL)}
    assert source.instant(presets.GPU_MEM) == {dcgm.MODEL: pytest.approx(dcgm.FB_USED)}
    assert source.dcgm_models() == {gpu[0]: dcgm.MODEL for gpu in dcgm.GPUS}
    detection = source.detect()
    assert detection.gpu_metrics
    assert presets.EXPORTED_GPU_LABELS_HINT in detection.warnings
    assert "exported_pod" in source.query_text(presets.GPU_UTIL, 10)
    # Configured explicitly, the same labels need no hint.
    explicit = world.source(
        "vllm-v1", gpu_pod_label="exported_pod", gpu_namespace_label="exported_namespace"
    )
    assert explicit.instant(presets.GPU_UTIL) == {dcgm.MODEL: pytest.approx(dcgm.UTIL)}
    assert presets.EXPORTED_GPU_LABELS_HINT not in explicit.detect().warnings


def test_scrape_interval_comes_from_the_targets_api(world: ExporterWorld) -> None:
    # vllm-v0's job scrapes every 2 s; the config declares 1 s and a 4 s rate window.
    source = world.source("vllm-v0", rate_window="4s")
    assert source.scrape_interval_s == 2.0
    assert source.rate_window_s == 8.0
    note = source.rate_window_note
    assert "every 2s" in note and "8s" in note
    assert note in source.detect().warnings
    assert "[8s]" in source.query_text(presets.TOKENS, source.rate_window_s)
    # A window that holds four scrapes of the real interval is left alone, without a note,
    # even when the declared interval (the default 30 s) would have wanted more.
    wide = world.source("vllm-v1", scrape_interval="30s")
    assert (wide.scrape_interval_s, wide.rate_window_s) == (1.0, 10.0)
    assert wide.rate_window_note == ""


class NoTargetsFrontEnd:
    """A query front end (Thanos, Mimir) before the real Prometheus: queries pass through,
    /api/v1/targets is not there."""

    def __init__(self, upstream: str) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/api/v1/targets"):
                    self.send_error(404)
                    return
                try:
                    with urllib.request.urlopen(upstream + self.path, timeout=5) as response:
                        body, status = response.read(), response.status
                except urllib.error.HTTPError as exc:
                    body, status = exc.read(), exc.code
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_without_a_targets_api_the_declared_interval_is_used_and_said(
    world: ExporterWorld,
) -> None:
    front = NoTargetsFrontEnd(world.prometheus.url)
    try:
        source = world.source("vllm-v0", url=front.url, rate_window="4s")
        assert (source.scrape_interval_s, source.rate_window_s) == (1.0, 4.0)
        assert "targets API" in source.interval_note and "declared 1s" in source.interval_note
        detection = source.detect()
        assert detection.fits == "vllm"
        assert source.interval_note in detection.notes
    finally:
        front.stop()
