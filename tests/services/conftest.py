"""One real Prometheus per test session, scraping five simulated fleets every second. Under
pytest-xdist all its users run as one group on one worker (tests/conftest.py), so it starts
once, and it stops after its last user.

Jobs: `vllm` (the skew incident with fast start-up: the validation gate's subject, with a
day-old last-known-good history backfilled by promtool; no test changes it), `rollback` (a
copy of it that the rollback test fixes), `healthy` (vLLM 0.8 names: the
accuracy checks), `tgi`, and `sglang` (behind a proxy a test can switch off). Simulators run at
speed 1: Prometheus scrapes in wall time, so rates are only right on a real-time clock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from services.config import metrics_settings
from services.kube import KubeCluster
from services.metrics.prometheus import PrometheusSource, from_settings
from services.metrics.simsource import SimMetricsSource
from services.metrics.source import Scope
from services.simulator.backfill import History, render_history
from services.simulator.runner import Simulator
from tests.conftest import last_users, require_tool
from tests.prometheus import PrometheusServer, SwitchableProxy, backfill

SCENARIOS = Path(__file__).parent / "scenarios"
VLLM_FAST = str(SCENARIOS / "vllm-skew-fast.yaml")
SGLANG = str(SCENARIOS / "sglang.yaml")
NAMESPACE, DEPLOYMENT = "inference", "llm-serve"
DAY = 86400.0
# Short windows so a test sees a whole stable window within half a minute. The thresholds are
# the product's defaults: the gate judges window-level estimates at the histogram's bucket
# resolution, so a short window needs no wider band.
TEST_CONFIG: dict[str, Any] = {
    "prometheus": {"scrape_interval": "1s", "rate_window": "15s"},
    "baseline": {"offset": "1d", "window": "120s"},
    "thresholds": {"stable_window": "15s", "step": "1s"},
}
BACKFILL_FAMILIES = (
    "vllm:e2e_request_latency_seconds",
    "vllm:generation_tokens_total",
    "vllm:num_requests",
    "vllm:gpu_cache_usage_perc",
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_FB_USED",
)


@dataclass
class PromWorld:
    prometheus: PrometheusServer
    sims: dict[str, Simulator]
    proxy: SwitchableProxy
    sim_source: SimMetricsSource
    history: History
    workdir: Path
    first_scrape: float = 0.0
    _clusters: dict[str, KubeCluster] = field(default_factory=dict)
    _closed: bool = False

    @property
    def url(self) -> str:
        return self.prometheus.url

    def config(self, job: str, **thresholds: Any) -> dict[str, Any]:
        prometheus = {
            **TEST_CONFIG["prometheus"],
            "url": self.url,
            "extra_matchers": f'job="{job}"',
        }
        return {
            "prometheus": prometheus,
            "baseline": dict(TEST_CONFIG["baseline"]),
            "thresholds": {**TEST_CONFIG["thresholds"], **thresholds},
        }

    def source(
        self, job: str, preset: str = "vllm", deployment: str = DEPLOYMENT
    ) -> PrometheusSource:
        return from_settings(metrics_settings(self.config(job)), NAMESPACE, deployment, preset)

    def kubeconfig(self, job: str) -> Path:
        path = self.workdir / f"kubeconfig-{job}"
        if not path.exists():
            self.sims[job].write_kubeconfig(path)
        return path

    def cluster(self, job: str) -> KubeCluster:
        if job not in self._clusters:
            self._clusters[job] = KubeCluster(str(self.kubeconfig(job)))
        return self._clusters[job]

    def wait_for_history(self, seconds: float) -> None:
        """Sleep until Prometheus has scraped for `seconds`."""
        remaining = self.first_scrape + seconds - time.time()
        if remaining > 0:
            time.sleep(remaining)

    def close(self) -> None:
        """Stop Prometheus and the simulators (once: after the last user, or at session end)."""
        if self._closed:
            return
        self._closed = True
        self.sim_source.stop()
        self.prometheus.stop()
        self.proxy.stop()
        for sim in self.sims.values():
            sim.stop()


# The world of this process (this xdist worker), stopped early by the hook below.
_open_worlds: list[PromWorld] = []


@pytest.hookimpl(trylast=True)  # after the module fixtures built on it are torn down
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the world after its last user: five simulators and a Prometheus scraping them
    every second would otherwise take CPU from every test that runs after them. Items run in
    collection order without xdist, and as one block on one worker with `--dist loadgroup`
    (tests/conftest.py groups the users); other modes keep the world to the session's end."""
    if not _open_worlds or item.config.getoption("dist", "no") not in ("no", "loadgroup"):
        return
    if last_users(item.session.items).get("prom_world") is item:
        for world in _open_worlds:
            world.close()
        _open_worlds.clear()


@pytest.fixture(scope="session")
def prom_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromWorld]:
    binary = require_tool("prometheus")
    promtool = require_tool("promtool")
    workdir = tmp_path_factory.mktemp("prometheus")
    sims = {
        # The skew incident as it stands: no test changes this cluster, so the tests that pair
        # it with a private simulator of the same seed see the same pods Prometheus scrapes.
        "vllm": Simulator(VLLM_FAST, speed=1.0, seed=1),
        # The same incident for the one test that fixes it (a rollback through the gate).
        "rollback": Simulator(VLLM_FAST, speed=1.0, seed=21),
        "healthy": Simulator("healthy", speed=1.0, seed=2),
        "tgi": Simulator("tgi", speed=1.0, seed=3),
        "sglang": Simulator(SGLANG, speed=1.0, seed=4),
    }
    for sim in sims.values():
        sim.start()
    proxy = SwitchableProxy(sims["sglang"].metrics_url)
    now = time.time()
    # Yesterday, the last-known-good revision (2) served the same traffic on H100.
    histories = {
        job: render_history(
            VLLM_FAST,
            start=now - DAY - 240,
            # Half an hour past "yesterday, now": the default offset-1d window slides with the
            # wall clock and the baseline gate refuses a window that is not fully covered.
            end=now - DAY + 1800,
            step_s=2.0,
            revision=2,
            families=BACKFILL_FAMILIES,
            target_labels={"job": job, "instance": sims[job].metrics_url.split("/")[2]},
            seed=11,
        )
        for job in ("vllm", "rollback")
    }
    for rendered in histories.values():  # two blocks over the same hours, different series
        backfill(promtool, rendered.text, workdir / "data")
    history = histories["vllm"]
    jobs = {name: sim.metrics_url for name, sim in sims.items() if name != "sglang"}
    jobs["sglang"] = proxy.url
    prometheus = PrometheusServer(binary, workdir, jobs).start()
    sim_source = SimMetricsSource(
        sims["healthy"].metrics_url,
        Scope(NAMESPACE, DEPLOYMENT),
        "vllm",
        scrape_interval_s=1.0,
        rate_window_s=20.0,
    ).start()
    world = PromWorld(prometheus, sims, proxy, sim_source, history, workdir)
    _open_worlds.append(world)
    try:
        for job in jobs:
            if not prometheus.wait_for(f'up{{job="{job}"}} == 1', timeout_s=30):
                raise RuntimeError(f"Prometheus never scraped job {job}")
        world.first_scrape = time.time()
        yield world
    finally:
        world.close()
        if world in _open_worlds:
            _open_worlds.remove(world)
