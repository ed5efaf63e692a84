"""The validation gate's rules, Prometheus' arithmetic in the simulator source, the config file
and the headless commands' errors. No Prometheus here: a small synthetic fleet feeds the
simulator source exposition pages, second by second, on a clock the test drives."""

from __future__ import annotations

import argparse
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from services.config import load_config, metrics_settings
from services.errors import ConfigError, UnreachableError
from services.metrics import baseline as baselines
from services.metrics.baseline import BaselineSpec
from services.metrics.prometheus import PrometheusSource
from services.metrics.promql_math import bucket_quantile, extrapolated_rate
from services.metrics.series import LiveSeries, is_stale
from services.metrics.simsource import SimMetricsSource
from services.metrics.source import Scope
from services.models import GpuReading, RolloutProgress
from services.simulator.runner import Simulator
from services.simulator.tls import make_serving_cert
from services.validation import RolloutFacts, Thresholds, evaluate
from tests.prometheus import free_port
from tui import headless

H100 = "NVIDIA H100 80GB HBM3"
A10G = "NVIDIA A10G"
BOUNDS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0)
T0 = 1_800_000_000.0
THRESHOLDS = Thresholds(stable_window_s=60, step_s=1, gpu_util_band_points=10)


class Fleet:
    """Two vLLM pods whose every request takes `latency` seconds; a page per scrape."""

    def __init__(self, source: SimMetricsSource, clock: list[float]) -> None:
        self.source, self.clock = source, clock
        self.pods = ["llm-serve-5d8f7c9b4-abcde", "llm-serve-5d8f7c9b4-fghij"]
        self.buckets = {p: [0] * (len(BOUNDS) + 1) for p in self.pods}
        self.tokens = dict.fromkeys(self.pods, 0)
        self.gpu = {p: H100 for p in self.pods}
        self.silent: set[str] = set()  # pods whose engine series are not scraped
        self.dcgm = True  # False: the DCGM exporter stopped

    def page(self, util: float) -> str:
        lines = []
        for pod in self.pods:
            if pod in self.silent:
                continue
            where = f'model_name="m",namespace="inference",pod="{pod}"'
            running = 0
            for bound, count in zip((*BOUNDS, "+Inf"), _cumulate(self.buckets[pod]), strict=True):
                le = bound if isinstance(bound, str) else repr(float(bound))
                lines.append(
                    f'vllm:e2e_request_latency_seconds_bucket{{{where},le="{le}"}} {count}'
                )
            lines.append(f"vllm:generation_tokens_total{{{where}}} {self.tokens[pod]}")
            lines.append(f"vllm:num_requests_running{{{where}}} {running + 3}")
            if self.dcgm:
                gpu = f'modelName="{self.gpu[pod]}",namespace="inference",pod="{pod}"'
                lines.append(f"DCGM_FI_DEV_GPU_UTIL{{{gpu}}} {util}")
                lines.append(f"DCGM_FI_DEV_FB_USED{{{gpu}}} 70000")
        # Another deployment's pod: out of scope, never counted.
        lines.append(
            'vllm:generation_tokens_total{namespace="inference",pod="other-5d8f7c9b4-zzzzz"} 1e9'
        )
        return "\n".join(lines) + "\n"

    def run(
        self,
        seconds: int,
        latency: float,
        util: float = 80.0,
        rps: int = 100,
        slow: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        """`slow`: (share of requests, their latency) on top of `latency`."""
        share, slow_latency = slow
        for _ in range(seconds):
            self.clock[0] += 1
            for pod in self.pods:
                slow_count = round(rps * share)
                self.buckets[pod][_index(latency)] += rps - slow_count
                self.buckets[pod][_index(slow_latency)] += slow_count
                self.tokens[pod] += rps * 100
            self.source.ingest(self.page(util), self.clock[0])


def _cumulate(counts: list[int]) -> list[int]:
    out, total = [], 0
    for c in counts:
        total += c
        out.append(total)
    return out


def _index(value: float) -> int:
    return next((i for i, b in enumerate(BOUNDS) if value <= b), len(BOUNDS))


def _source(clock: list[float], offset_s: float = 480) -> SimMetricsSource:
    return SimMetricsSource(
        "http://127.0.0.1:9/metrics",
        Scope("inference", "llm-serve"),
        "vllm",
        clock=lambda: clock[0],
        scrape_interval_s=1,
        rate_window_s=10,
        baseline_spec=BaselineSpec(offset_s=offset_s),
    )


POD_NAMES = ("llm-serve-5d8f7c9b4-abcde", "llm-serve-5d8f7c9b4-fghij")


def _facts(
    done: bool = True,
    classes: tuple[str, ...] = ("H100-80GB", "H100-80GB"),
    ready: tuple[str, ...] = POD_NAMES,
) -> RolloutFacts:
    rows = tuple(
        GpuReading(POD_NAMES[i], "node", c, "label", None, None, None, c, "H100-80GB",
                   c != "H100-80GB")
        for i, c in enumerate(classes)
    )  # fmt: skip
    progress = RolloutProgress(2, 2, 2, 2, 0 if done else 1, done, "rolled out")
    why = "last-known-good revision requires it"
    return RolloutFacts(progress, rows, "H100-80GB", why, ready)


def _status(verdict: object, name: str) -> str:
    return next(c.status for c in verdict.checks if c.name == name)  # type: ignore[attr-defined]


@pytest.fixture
def world() -> tuple[Fleet, SimMetricsSource, list[float]]:
    clock = [T0]
    source = _source(clock)
    fleet = Fleet(source, clock)
    fleet.run(600, latency=0.8)  # the baseline: a minute, eight minutes before "now"
    return fleet, source, clock


# ------------------------------------------------------------------ the gate


def test_steady_metrics_like_the_baseline_pass(
    world: tuple[Fleet, SimMetricsSource, list[float]],
) -> None:
    _, source, _ = world
    verdict = evaluate(source, _facts(), THRESHOLDS)
    assert verdict.verdict == "pass", [(c.name, c.status, c.message) for c in verdict.checks]
    assert {c.name for c in verdict.checks} == {
        "data-fresh", "pods-reporting", "tokens_per_s", "p95", "p99", "gpu-data-fresh",
        f"gpu_util[{H100}]", f"gpu_mem[{H100}]", "rollout-complete", "gpu-class",
    }  # fmt: skip
    p95 = next(c for c in verdict.checks if c.name == "p95")
    # The numbers a human checks: live, baseline, limit, window, and the query to run.
    assert "vs baseline" in p95.message and "limit" in p95.message and "last 1m" in p95.message
    assert p95.query.startswith("histogram_quantile(0.95, ") and "[60s]" in p95.query
    assert p95.limit == pytest.approx(p95.baseline * 1.1)  # type: ignore[operator]


def test_a_spike_inside_the_window_fails_even_when_the_latest_sample_is_fine(
    world: tuple[Fleet, SimMetricsSource, list[float]],
) -> None:
    fleet, source, _ = world
    fleet.run(5, latency=8.0)
    fleet.run(40, latency=0.8)  # the rate window has moved past the spike: latest is fine
    assert source.instant("p99")[""] <= 1.0
    verdict = evaluate(source, _facts(), THRESHOLDS)
    assert verdict.verdict == "fail"
    p99 = next(c for c in verdict.checks if c.name == "p99")
    assert p99.status == "fail"
    assert "above the limit" in p99.message
    fleet.run(60, latency=0.8)
    assert evaluate(source, _facts(), THRESHOLDS).verdict == "pass"


def test_thresholds_come_from_the_config(
    world: tuple[Fleet, SimMetricsSource, list[float]],
) -> None:
    fleet, source, _ = world
    # 1.2 s against 0.8 s: the next bucket up, where p99 interpolates to 2.5x the baseline.
    fleet.run(70, latency=1.2)
    assert evaluate(source, _facts(), THRESHOLDS).verdict == "fail"
    lenient = Thresholds.from_mapping(
        {"latency_max_ratio": 3.0, "stable_window": "1m", "step": "1s"}
    )
    assert evaluate(source, _facts(), lenient).verdict == "pass"
    with pytest.raises(ConfigError, match="latency_max_ration"):
        Thresholds.from_mapping({"latency_max_ration": 2})


def test_stale_data_is_insufficient_never_pass(
    world: tuple[Fleet, SimMetricsSource, list[float]],
) -> None:
    _, source, clock = world
    clock[0] += 3  # three scrape intervals without a scrape
    verdict = evaluate(source, _facts(), THRESHOLDS)
    assert verdict.verdict == "insufficient-data"
    assert _status(verdict, "data-fresh") == "insufficient-data"
    assert "3 s old" in next(c.message for c in verdict.checks if c.name == "data-fresh")
    assert not [
        c
        for c in verdict.checks
        if c.status == "pass" and c.name != "rollout-complete" and c.name != "gpu-class"
    ]


def test_series_that_disappear_go_stale_at_once(
    world: tuple[Fleet, SimMetricsSource, list[float]],
) -> None:
    _, source, clock = world
    clock[0] += 1
    source.ingest("", clock[0])  # a failed scrape: every series gets a staleness marker
    assert source.last_scrape() is None
    assert evaluate(source, _facts(), THRESHOLDS).verdict == "insufficient-data"


def test_missing_baseline_and_too_little_history_are_insufficient() -> None:
    clock = [T0]
    source = _source(clock)
    fleet = Fleet(source, clock)
    fleet.run(20, latency=0.8)  # a third of the stable window, and nothing a day... ago
    verdict = evaluate(source, _facts(), THRESHOLDS)
    assert verdict.verdict == "insufficient-data"
    assert "no baseline data" in next(c.message for c in verdict.checks if c.name == "p99")
    assert evaluate(None, _facts(), THRESHOLDS).verdict == "insufficient-data"


def test_a_gpu_model_missing_from_the_baseline_fails(
    world: tuple[Fleet, SimMetricsSource, list[float]],
) -> None:
    fleet, source, _ = world
    fleet.gpu[fleet.pods[1]] = A10G
    fleet.run(5, latency=0.8)
    verdict = evaluate(source, _facts(), THRESHOLDS)
    assert _status(verdict, f"gpu_util[{A10G}]") == "fail"
    assert verdict.verdict == "fail"


def test_gpu_utilisation_outside_the_band_fails(
    world: tuple[Fleet, SimMetricsSource, list[float]],
) -> None:
    fleet, source, _ = world
    fleet.run(70, latency=0.8, util=40.0)
    assert _status(evaluate(source, _facts(), THRESHOLDS), f"gpu_util[{H100}]") == "fail"


def test_rollout_and_gpu_class_gate_the_verdict(
    world: tuple[Fleet, SimMetricsSource, list[float]],
) -> None:
    _, source, _ = world
    assert evaluate(source, _facts(done=False), THRESHOLDS).verdict == "fail"
    wrong = evaluate(source, _facts(classes=("H100-80GB", "A10G-24GB")), THRESHOLDS)
    assert _status(wrong, "gpu-class") == "fail"
    assert evaluate(source, None, THRESHOLDS).verdict == "insufficient-data"


def test_p99_on_the_top_bucket_cannot_prove_recovery() -> None:
    clock = [T0]
    source = _source(clock)
    fleet = Fleet(source, clock)
    fleet.run(600, latency=90.0)  # beyond the 60 s top bucket, in baseline and now
    p99 = next(c for c in evaluate(source, _facts(), THRESHOLDS).checks if c.name == "p99")
    assert p99.status == "insufficient-data"
    assert "top histogram bucket (60 s)" in p99.message


# ------------------------------------------------------------------ arithmetic


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = [(0.1, 10.0), (0.5, 50.0), (1.0, 90.0), (float("inf"), 100.0)]
    assert bucket_quantile(0.05, buckets) == pytest.approx(0.05)  # first bucket starts at 0
    assert bucket_quantile(0.5, buckets) == pytest.approx(0.5)
    assert bucket_quantile(0.7, buckets) == pytest.approx(0.75)
    assert bucket_quantile(0.99, buckets) == 1.0  # the +Inf bucket answers the top bound
    assert bucket_quantile(0.5, [(1.0, 0.0), (float("inf"), 0.0)]) != bucket_quantile(0.5, buckets)


def test_rate_extrapolates_and_survives_counter_resets() -> None:
    points = [(float(t), 10.0 * t) for t in range(1, 60)]
    assert extrapolated_rate(points, 0.0, 60.0) == pytest.approx(10.0, rel=0.02)
    reset = [(1.0, 100.0), (2.0, 110.0), (3.0, 5.0), (4.0, 15.0)]
    # 110 -> 5 is a reset: the increase is 10 + 110 - 100 + 5 = 25 over 3 s, extrapolated
    # by a second at each edge to the 5 s window.
    assert extrapolated_rate(reset, 0.0, 5.0) == pytest.approx(25 * 5 / 3 / 5)
    assert extrapolated_rate([(1.0, 5.0)], 0.0, 5.0) is None


def test_live_series_prime_sample_and_go_stale(
    world: tuple[Fleet, SimMetricsSource, list[float]],
) -> None:
    fleet, source, clock = world
    base = source.baseline(60)
    live = LiveSeries(source, history_s=120, baseline=base)
    first = {s.name: s for s in live.prime()}
    assert len(first["p99"].points) > 100
    assert first["p99"].baseline == pytest.approx(base.value("p99"))
    assert first["gpu_util"].labels == {"modelName": H100}
    fleet.run(1, latency=0.8)
    after = {s.name: s for s in live.sample()}
    assert after["tokens_per_s"].points[-1].t == clock[0]
    assert not is_stale(after["tokens_per_s"], clock[0])
    assert is_stale(after["tokens_per_s"], clock[0] + 3)


# ------------------------------------------------------------------ config and baseline


def test_config_file_yaml_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    yaml_file = tmp_path / "skewmit.yaml"
    yaml_file.write_text(
        "prometheus:\n  url: http://prom:9090\n  scrape_interval: 15s\n  rate_window: 2m\n"
        "  extra_matchers: 'cluster=\"prod\"'\n"
        "  queries:\n    vllm: {p99: 'my_p99{${selector}}[${window}]'}\n"
        "baseline: {offset: 7d, window: 30m}\nthresholds: {stable_window: 5m}\n"
    )
    settings = metrics_settings(load_config(yaml_file))
    assert (settings.scrape_interval_s, settings.rate_window_s) == (15, 120)
    assert settings.baseline.offset_s == 7 * 86400 and settings.baseline_window_s == 1800
    source = PrometheusSource(
        settings.url, settings.scope("ns", "d"), "vllm", overrides=settings.overrides_for("vllm")
    )
    assert source.query_text("p99", 60) == (
        'my_p99{namespace="ns",pod=~"d-[a-z0-9]+-[a-z0-9]+",cluster="prod"}[60s]'
    )
    assert "vllm:generation_tokens_total" in source.query_text("tokens_per_s", 60)
    toml_file = tmp_path / "skewmit.toml"
    toml_file.write_text(
        '[prometheus]\nurl = "http://prom:9090"\n[thresholds]\ntokens_min_ratio = 0.8\n'
    )
    assert load_config(toml_file)["thresholds"]["tokens_min_ratio"] == 0.8
    monkeypatch.setenv("SKEWMIT_CONFIG", str(toml_file))
    assert load_config()["prometheus"]["url"] == "http://prom:9090"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prometheus: {scrape_intervall: 15s}", "prometheus.scrape_intervall is not a known"),
        ("prometheus: {rate_window: soon}", "not a duration"),
        ("prometheus: {queries: {p999: x}}", "unknown quantity"),
        ("baseline: {offset: 1d, file: b.json}", "choose one"),
        ("prometheus: {preset: triton}", "unknown"),
        ("- a list", "mapping"),
    ],
)
def test_bad_config_says_which_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        metrics_settings(load_config(path))


def test_credentials_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    scope = Scope("ns", "d")
    monkeypatch.delenv("PROM_TOKEN", raising=False)
    with pytest.raises(ConfigError, match=r"\$PROM_TOKEN is not set"):
        PrometheusSource("http://p:9090", scope, bearer_token_env="PROM_TOKEN")
    monkeypatch.setenv("PROM_TOKEN", "t0ken-value")
    source = PrometheusSource("http://p:9090", scope, bearer_token_env="PROM_TOKEN")
    assert source._client.headers == {"Authorization": "Bearer t0ken-value"}
    with pytest.raises(ConfigError, match="CA file"):
        PrometheusSource("https://p:9090", scope, ca_file=str(tmp_path / "nope.pem"))
    monkeypatch.setenv("PROM_PASSWORD", "pw")
    basic = PrometheusSource("http://p:9090", scope, username="me", password_env="PROM_PASSWORD")
    assert basic._client.auth == ("me", "pw")


def test_baseline_file_round_trip(
    world: tuple[Fleet, SimMetricsSource, list[float]], tmp_path: Path
) -> None:
    _, source, _ = world
    captured = baselines.capture(source, BaselineSpec(offset_s=300), 120)
    path = baselines.save(captured, tmp_path / "b.json")
    loaded = baselines.load(path)
    assert loaded.values == captured.values
    assert loaded.how.startswith("file ")
    assert loaded.series["p99"][""][0] == captured.series["p99"][""][0]
    (tmp_path / "bad.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ConfigError, match="not a usable baseline"):
        baselines.load(tmp_path / "bad.json")


# ------------------------------------------------------------------ headless errors


def _validate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    headless.add_validate_parser(sub)
    return headless.run_validate(parser.parse_args(["validate", *argv]))


@pytest.fixture(scope="module")
def sim_kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> object:
    with Simulator("skew-incident", speed=30) as sim:
        yield sim.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig")


def test_headless_errors_are_one_message_and_exit_2(
    sim_kubeconfig: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    dead = f"http://127.0.0.1:{free_port()}"
    common = ["--kubeconfig", str(sim_kubeconfig), "-n", "inference"]
    cases = [
        ([*common, "--deployment", "llm-serve", "--prometheus", dead, "--preset", "vllm"],
         "cannot reach Prometheus"),
        ([*common, "--deployment", "llm-serve", "--prometheus", dead], "cannot reach Prometheus"),
        ([*common, "--deployment", "nope", "--prometheus", dead], 'deployment "nope" not found'),
        (["--kubeconfig", str(tmp_path / "missing"), "--deployment", "x", "--prometheus", dead],
         "does not exist"),
        ([*common, "--deployment", "llm-serve"], "no Prometheus URL"),
    ]  # fmt: skip
    for argv, message in cases:
        assert _validate(argv) == 2
        err = capsys.readouterr().err
        assert message in err
        assert err.count("\n") == 1 and "Traceback" not in err


def test_headless_and_services_import_neither_textual_nor_rich() -> None:
    code = (
        "import sys, tui.headless, services.validation, services.evidence, "
        "services.metrics.prometheus, services.metrics.simsource, services.metrics.series, "
        "services.metrics.discovery; print('textual' in sys.modules or 'rich' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_explicit_baseline_range(world: tuple[Fleet, SimMetricsSource, list[float]]) -> None:
    _, source, _ = world
    spec = BaselineSpec(mode="range", start=T0 + 100, end=T0 + 160)
    captured = baselines.capture(source, spec, window_s=999)
    assert (captured.start, captured.end) == (T0 + 100, T0 + 160)
    assert captured.how.startswith("range ")
    assert captured.value("tokens_per_s") == pytest.approx(2 * 100 * 100, rel=0.05)
    with pytest.raises(ConfigError, match="start before its end"):
        baselines.capture(source, BaselineSpec(mode="range", start=T0, end=T0 - 1), 60)


class _FakePrometheus(http.server.BaseHTTPRequestHandler):
    """Answers every query with one sample; remembers the Authorization header it saw."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        body = json.dumps(
            {"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {}, "value": [T0, "42"]}]}}
        ).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_bearer_token_and_custom_ca_reach_prometheus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert = make_serving_cert("127.0.0.1", tmp_path)  # its key is not left behind in /tmp
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakePrometheus)
    server.socket = cert.server_context().wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}"
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cert.ca_pem)
    monkeypatch.setenv("PROM_TOKEN", "t0ken-value")
    try:
        scope = Scope("inference", "llm-serve")
        good = PrometheusSource(url, scope, bearer_token_env="PROM_TOKEN", ca_file=str(ca))
        assert good.instant("tokens_per_s") == {"": 42.0}
        assert _FakePrometheus.seen[-1] == "Bearer t0ken-value"
        untrusted = PrometheusSource(url, scope)
        with pytest.raises(UnreachableError, match="ca_file"):
            untrusted.instant("tokens_per_s")
    finally:
        server.shutdown()
        server.server_close()
