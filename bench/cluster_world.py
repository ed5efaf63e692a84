"""A world for the real-cluster benches: `skewmit sim` (speed 1, a process of its own) and,
optionally, the Debian `prometheus` scraping its /metrics every 5 s (as issue 12's table
was measured). Used by tui_bench.py --cluster, rss_bench.py --cluster and large_bench.py
--cluster (scenario `large`). The simulator runs from the checkout measured
(SKEWMIT_BENCH_TREE), so a before/after measures the whole checkout's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from measure import ROOT, SKEWMIT, TREE

NS = "inference"
NAME = "llm-serve"
SCRAPE = "5s"


@dataclass(frozen=True)
class World:
    kubeconfig: Path
    metrics_url: str
    prometheus_url: str  # "" without Prometheus

    def target_args(self) -> list[str]:
        """The app's flags for this world, in real-cluster mode."""
        argv = ["--kubeconfig", str(self.kubeconfig), "-n", NS, "--deployment", NAME]
        if self.prometheus_url:
            argv += ["--prometheus", self.prometheus_url]
        return argv

    def app_argv(self, evidence: Path) -> list[str]:
        """The app against this world, in real-cluster mode."""
        return [*SKEWMIT, *self.target_args(), "--evidence-dir", str(evidence)]


@contextmanager
def cluster_world(
    folder: Path,
    *,
    prometheus: bool,
    speed: float = 1.0,
    scenario: str = "skew-incident",
    scrape_wait_s: float = 60.0,
) -> Iterator[World]:
    """Start the simulator (and Prometheus, waiting up to `scrape_wait_s` for its first two
    scrapes: `large`'s page takes longer); stop both on exit."""
    kubeconfig = folder / "kubeconfig"
    sim = subprocess.Popen(
        [*SKEWMIT, "sim", "--scenario", scenario, "--kubeconfig", str(kubeconfig),
         "--speed", str(speed)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=TREE,
    )  # fmt: skip
    assert sim.stdout is not None
    metrics = ""
    for line in sim.stdout:
        if line.startswith("metrics:"):
            metrics = line.split(":", 1)[1].strip()
            break
    if not metrics:
        sim.kill()
        sys.exit("bench: the simulator did not start")
    server = None
    try:
        prom_url = ""
        if prometheus:
            binary = shutil.which("prometheus")
            if binary is None:
                sys.exit("bench: prometheus is not installed (apt-get install prometheus)")
            sys.path.insert(0, str(ROOT))
            from tests.prometheus import PrometheusServer

            server = PrometheusServer(binary, folder / "prom", {"vllm": metrics}, SCRAPE).start()
            # Two scrapes, not one: a rate (every latency and token figure) needs two samples,
            # so after one the app's first p95 had to wait for the next scrape, up to 5 s
            # later (the lead's 6.70 s outlier). A Prometheus on call has hours of history.
            server.wait_for('count_over_time(up{job="vllm"}[1m]) >= 2', timeout_s=scrape_wait_s)
            prom_url = server.url
        yield World(kubeconfig, metrics, prom_url)
    finally:
        if server is not None:
            server.stop()
        sim.terminate()
        try:
            sim.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sim.kill()
