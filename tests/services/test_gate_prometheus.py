"""The validation gate against a real Prometheus, checked against the simulator's ground truth.

One Prometheus for the module. Backfilled by promtool: yesterday's last-known-good window and
the last ten minutes of a healthy fleet (job `hist`), and a minute of the skew incident after
its own yesterday (job `skew`), so the gate is judged with the default thresholds and the
default 10-minute window without waiting ten minutes. The serving model that rendered each
window is kept, and its `ground_truth` is the oracle. Scraped live: a healthy simulator whose
engine series come through job `engine` (DCGM dropped by relabelling) and whose DCGM series
come through job `dcgm` behind a switchable proxy, and job `dropped`, where a relabel rule
drops one pod's series.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.metrics import baseline as baselines
from services.metrics.baseline import Baseline, BaselineSpec
from services.metrics.prometheus import PrometheusSource
from services.metrics.source import Scope, parse_matchers
from services.models import GpuReading, RolloutProgress, Verdict
from services.simulator import backfill as backfill_module
from services.simulator import scenario as scenario_module
from services.simulator.fleet import Fleet
from services.simulator.fleet_history import FleetTruth
from services.simulator.runner import Simulator
from services.simulator.scenario import Scenario
from services.simulator.scenario import load as load_scenario
from services.validation import RolloutFacts, Thresholds, evaluate, rollout_facts
from tests.conftest import require_tool
from tests.prometheus import PrometheusServer, SwitchableProxy, backfill
from tests.services.conftest import BACKFILL_FAMILIES, NAMESPACE, VLLM_FAST

pytestmark = pytest.mark.prometheus
DAY = 86400.0
WINDOW = Thresholds().stable_window_s  # the product default: 10 minutes
H100 = "NVIDIA H100 80GB HBM3"


class _RecordingFleet(Fleet):
    """The serving model render_history runs, kept for its ground truth."""

    made: list[Fleet] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _RecordingFleet.made.append(self)


@dataclass
class Rendered:
    pods: tuple[str, ...]
    end: float
    truth: FleetTruth


def _render(
    promtool: str,
    data: Any,
    scenario: str | Scenario,
    *,
    job: str,
    start: float,
    end: float,
    revision: int,
    seed: int,
    truth_window_s: float,
    monkeypatch: pytest.MonkeyPatch,
) -> Rendered:
    monkeypatch.setattr(backfill_module, "Fleet", _RecordingFleet)
    _RecordingFleet.made.clear()
    history = backfill_module.render_history(
        scenario,
        start=start,
        end=end,
        step_s=2.0,
        revision=revision,
        families=BACKFILL_FAMILIES,
        target_labels={"job": job, "instance": f"{job}:8000"},
        seed=seed,
    )
    fleet = _RecordingFleet.made[-1]
    truth = fleet.ground_truth(history.namespace, history.deployment, truth_window_s)
    backfill(promtool, history.text, data)
    return Rendered(history.pods, end, truth)


class _RelabelledPrometheus(PrometheusServer):
    """PrometheusServer with metric relabel rules per job."""

    def __init__(self, *args: Any, relabel: dict[str, list[dict[str, Any]]], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.relabel = relabel

    def _config(self) -> dict[str, Any]:
        config = super()._config()
        for job in config["scrape_configs"]:
            if job["job_name"] in self.relabel:
                job["metric_relabel_configs"] = self.relabel[job["job_name"]]
        return config


@dataclass
class GateWorld:
    prometheus: PrometheusServer
    sim: Simulator
    proxy: SwitchableProxy
    dropped_pod: str
    baseline_live: Rendered
    live: Rendered
    baseline_skew: Rendered
    skew: Rendered
    hw_sim: Simulator

    def query_at(self, promql: str, at: float) -> float:
        """The first value of an instant query at `at`, as a human would run it."""
        url = f"{self.prometheus.url}/api/v1/query?" + urllib.parse.urlencode(
            {"query": promql, "time": f"{at:.3f}"}
        )
        with urllib.request.urlopen(url, timeout=5) as response:
            result = json.loads(response.read())["data"]["result"]
        return float(result[0]["value"][1])

    def source(self, jobs: str, scrape_s: float = 2.0, rate_s: float = 8.0) -> PrometheusSource:
        scope = Scope(NAMESPACE, "llm-serve", extra=parse_matchers(f'job=~"{jobs}"'))
        return PrometheusSource(
            self.prometheus.url, scope, "vllm", scrape_interval_s=scrape_s, rate_window_s=rate_s
        )


@pytest.fixture(scope="module")
def gate_world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GateWorld]:
    binary = require_tool("prometheus")
    promtool = require_tool("promtool")
    workdir = tmp_path_factory.mktemp("gate-prometheus")
    data = workdir / "data"
    monkeypatch = pytest.MonkeyPatch()
    sim = Simulator("healthy", speed=1.0, seed=5).start()
    sims = [sim]
    proxy = SwitchableProxy(sim.metrics_url)
    prometheus: PrometheusServer | None = None
    try:
        now = time.time()
        end = now - 5.0
        common = {"monkeypatch": monkeypatch, "truth_window_s": WINDOW}
        # Yesterday and the last ten minutes of the healthy fleet: different seeds, the same
        # configuration. A minute of warm-up before each window so rates start full.
        baseline_live = _render(
            promtool, data, "healthy", job="hist", start=end - DAY - WINDOW - 60,
            end=end - DAY, revision=1, seed=21, **common,
        )  # fmt: skip
        live = _render(
            promtool, data, "healthy", job="hist", start=end - WINDOW - 60, end=end,
            revision=1, seed=22, **common,
        )  # fmt: skip
        # The skew incident: yesterday on revision 2, the last minute on revision 3.
        baseline_skew = _render(
            promtool, data, VLLM_FAST, job="skew", start=end - DAY - WINDOW - 60,
            end=end - DAY, revision=2, seed=23, **common,
        )  # fmt: skip
        skew = _render(
            promtool, data, VLLM_FAST, job="skew", start=end - 60, end=end, revision=3,
            seed=24, monkeypatch=monkeypatch, truth_window_s=60,
        )  # fmt: skip
        # hardware-only with start-up in seconds; yesterday it ran on H100s only (the
        # scheduler's luck: nothing pinned it), which is what the fix restores.
        hw_path = _fast_scenario(workdir, "hardware-only")
        hw_sim = Simulator(str(hw_path), speed=1.0, seed=6).start()
        sims.append(hw_sim)
        on_h100 = _h100_first(load_scenario(str(hw_path)))
        _render(
            promtool, data, on_h100, job="hw", start=end - DAY - 120, end=end - DAY + 900,
            revision=1, seed=25, **common,
        )  # fmt: skip
        assert sim.cluster is not None
        dropped = _sim_pods(sim)[0]
        target = sim.metrics_url
        prometheus = _RelabelledPrometheus(
            binary,
            workdir,
            {"engine": target, "dcgm": proxy.url, "dropped": target, "hw": hw_sim.metrics_url},
            relabel={
                "engine": [{"source_labels": ["__name__"], "regex": "DCGM_.*", "action": "drop"}],
                "dcgm": [{"source_labels": ["__name__"], "regex": "DCGM_.*", "action": "keep"}],
                "dropped": [{"source_labels": ["pod"], "regex": dropped, "action": "drop"}],
            },
        ).start()
        for job in ("engine", "dcgm", "dropped", "hw"):
            if not prometheus.wait_for(f'up{{job="{job}"}} == 1', timeout_s=30):
                raise RuntimeError(f"Prometheus never scraped job {job}")
        yield GateWorld(
            prometheus, sim, proxy, dropped, baseline_live, live, baseline_skew, skew, hw_sim
        )
    finally:
        monkeypatch.undo()
        if prometheus is not None:
            prometheus.stop()
        proxy.stop()
        for each in sims:
            each.stop()


def _fast_scenario(workdir: Path, name: str) -> Path:
    """A packaged scenario with start-up in seconds (rollouts finish in seconds at speed 1)."""
    data = yaml.safe_load(
        (Path(scenario_module.__file__).parent / "scenarios" / f"{name}.yaml").read_text()
    )
    data["timing"] = {"container_start_s": 1, "model_load_s": 2, "stop_s": 1}
    path = workdir / f"{name}-fast.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _h100_first(world: Scenario) -> Scenario:
    """The scenario with its H100 nodes listed first: an unpinned history lands there."""
    nodes = sorted(world.nodes, key=lambda g: "H100" not in (g.gpu or ""))
    return replace(world, nodes=tuple(nodes))


def _sim_pods(sim: Simulator) -> tuple[str, ...]:
    """The simulator's ready llm-serve pods, as its serving model knows them."""
    assert sim.cluster is not None
    pods = sim.call(sim.cluster.fleet.serving_pods)
    return tuple(sorted(p.name for p in pods if p.deployment == "llm-serve" and p.ready))


def _facts(pods: tuple[str, ...]) -> RolloutFacts:
    """The rollout as the cluster would report it for the rendered pods: done, on H100."""
    rows = tuple(
        GpuReading(p, "gpu-h100-1", "H100-80GB", "label", None, None, H100, "H100-80GB",
                   "H100-80GB", False)
        for p in pods
    )  # fmt: skip
    n = len(pods)
    progress = RolloutProgress(n, n, n, n, 0, True, "successfully rolled out")
    why = "last-known-good revision requires nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3"
    return RolloutFacts(progress, rows, "H100-80GB", why, pods)


def _baseline(source: PrometheusSource, at: float) -> Baseline:
    return baselines.capture(source, BaselineSpec(offset_s=DAY), WINDOW, now=at)


def _check(verdict: Verdict, name: str) -> Any:
    return next(c for c in verdict.checks if c.name == name)


def _explain(verdict: Verdict) -> list[tuple[str, str, str]]:
    return [(c.name, c.status, c.message) for c in verdict.checks]


def test_a_healthy_fleet_passes_with_the_default_thresholds_as_the_truth_says(
    gate_world: GateWorld,
) -> None:
    world = gate_world
    source = world.source("hist")
    at = world.live.end
    thresholds = Thresholds()
    verdict = evaluate(
        source, _facts(world.live.pods), thresholds, baseline=_baseline(source, at), now=at
    )
    truth, base = world.live.truth, world.baseline_live.truth
    assert truth.p95_e2e_s is not None and base.p95_e2e_s is not None
    assert truth.p99_e2e_s is not None and base.p99_e2e_s is not None
    # The oracle: the same fleet, the same configuration, within the default bands.
    assert truth.p95_e2e_s <= 1.1 * base.p95_e2e_s
    assert truth.p99_e2e_s <= 1.1 * base.p99_e2e_s
    assert truth.tokens_per_s >= 0.9 * base.tokens_per_s
    assert verdict.verdict == "pass", _explain(verdict)
    tokens = _check(verdict, "tokens_per_s")
    assert tokens.observed == pytest.approx(truth.tokens_per_s, rel=0.05)
    assert tokens.baseline == pytest.approx(base.tokens_per_s, rel=0.05)
    p95 = _check(verdict, "p95")
    assert "over the last 10m" in p95.message and "vs baseline" in p95.message
    assert "[600s]" in p95.query
    # The query in the result is the one to run: at the verdict's time it gives the figure.
    for check in (p95, tokens, _check(verdict, f"gpu_util[{H100}]")):
        assert world.query_at(check.query, at) == pytest.approx(check.observed, rel=1e-6)
    reporting = _check(verdict, "pods-reporting")
    assert (
        reporting.message
        == f"{len(world.live.pods)} of {len(world.live.pods)} ready pods reporting"
    )


def test_a_clear_fail_is_reported_before_the_window_fills(gate_world: GateWorld) -> None:
    world = gate_world
    source = world.source("skew")
    at = world.skew.end
    verdict = evaluate(
        source, _facts(world.skew.pods), Thresholds(), baseline=_baseline(source, at), now=at
    )
    truth, base = world.skew.truth, world.baseline_skew.truth
    assert truth.p95_e2e_s is not None and base.p95_e2e_s is not None
    assert truth.p95_e2e_s > 1.1 * base.p95_e2e_s  # the oracle: a regression
    assert verdict.verdict == "fail", _explain(verdict)
    p95 = _check(verdict, "p95")
    assert p95.status == "fail"
    assert p95.observed is not None and p95.limit is not None and p95.observed > p95.limit
    assert "above the limit" in p95.message
    assert p95.window_s is not None and p95.window_s < WINDOW  # judged on the minute there is


def test_a_pod_dropped_by_relabelling_is_not_a_pass(gate_world: GateWorld) -> None:
    world = gate_world
    cluster_pods = _sim_pods(world.sim)
    facts = RolloutFacts(
        RolloutProgress(4, 4, 4, 4, 0, True, "rolled out"), (), "H100-80GB", "", tuple(cluster_pods)
    )
    source = world.source("dropped", scrape_s=1.0, rate_s=4.0)
    verdict = evaluate(source, facts, Thresholds())
    assert verdict.verdict != "pass"
    reporting = _check(verdict, "pods-reporting")
    assert reporting.status == "insufficient-data"
    n = len(cluster_pods)
    assert reporting.message.startswith(f"{n - 1} of {n} ready pods reporting")
    assert world.dropped_pod in reporting.message


def test_dcgm_stopped_is_not_a_pass(gate_world: GateWorld) -> None:
    world = gate_world
    pods = _sim_pods(world.sim)
    facts = RolloutFacts(
        RolloutProgress(4, 4, 4, 4, 0, True, "rolled out"), (), "H100-80GB", "", pods
    )
    source = world.source("engine|dcgm", scrape_s=1.0, rate_s=4.0)

    def fresh_status() -> str:
        return str(_check(evaluate(source, facts, Thresholds()), "gpu-data-fresh").status)

    deadline = time.monotonic() + 30  # until Prometheus has a few scrapes of both jobs
    while fresh_status() != "pass" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert fresh_status() == "pass"
    world.proxy.up = False
    try:
        deadline = time.monotonic() + 20
        while source.pod_freshness(gpu=True) and time.monotonic() < deadline:
            time.sleep(0.5)
        # The 10-minute average still has DCGM data: the old gate said "ok" from it.
        assert source.instant("gpu_util", window_s=60)
        verdict = evaluate(source, facts, Thresholds())
        assert verdict.verdict != "pass"
        fresh = _check(verdict, "gpu-data-fresh")
        assert fresh.status == "insufficient-data"
        assert "DCGM" in fresh.message
        assert not [c for c in verdict.checks if c.name.startswith("gpu_") and c.status == "pass"]
        assert _check(verdict, "pods-reporting").status == "pass"  # the engine still reports
    finally:
        world.proxy.up = True


def test_rollout_facts_name_the_ready_pods(gate_world: GateWorld, tmp_path: Any) -> None:
    from services.kube import KubeCluster

    world = gate_world
    cluster = KubeCluster(str(world.sim.write_kubeconfig(tmp_path / "kubeconfig")))
    facts = rollout_facts(cluster, NAMESPACE, "llm-serve")
    assert facts.ready_pods == _sim_pods(world.sim)


def test_hardware_only_gpu_checks_fail_before_the_fix_and_pass_after(
    gate_world: GateWorld, tmp_path: Path
) -> None:
    from services.kube import KubeCluster

    world = gate_world
    cluster = KubeCluster(str(world.hw_sim.write_kubeconfig(tmp_path / "kubeconfig")))
    source = world.source("hw", scrape_s=1.0, rate_s=4.0)
    thresholds = Thresholds(stable_window_s=15)  # the default bands over a shorter window

    def judged() -> Verdict:
        facts = rollout_facts(cluster, NAMESPACE, "llm-serve", dcgm=source.dcgm_models())
        return evaluate(source, facts, thresholds)

    a10g = "gpu_util[NVIDIA A10G]"
    before = _until(judged, lambda v: any(c.name == a10g for c in v.checks))
    assert before.verdict == "fail", _explain(before)
    assert _check(before, a10g).status == "fail"
    assert "expected class is H100-80GB" in _check(before, a10g).message
    assert _check(before, "gpu-class").status == "fail"

    # The fix: pin the GPU class the workload was sized for.
    selector = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    patch = {"spec": {"template": {"spec": {"nodeSelector": selector}}}}
    cluster.patch("Deployment", NAMESPACE, "llm-serve", patch, "merge")

    def gpu_passes(v: Verdict) -> bool:
        gpu = [c for c in v.checks if c.name.startswith(("gpu_", "gpu-"))]
        return bool(gpu) and all(c.status == "pass" for c in gpu)

    after = _until(judged, gpu_passes, timeout_s=150)
    assert gpu_passes(after), _explain(after)
    assert not [c for c in after.checks if "A10G" in c.name]
    assert _check(after, f"gpu_util[{H100}]").baseline is not None


def _until(fn: Any, ok: Any, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(1.0)
