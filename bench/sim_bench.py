"""Simulator speed and memory: scenario set-up, idle ticks, API lists, /metrics, exec.

Prints figures; record them in bench/RESULTS.md with the machine and date.
Usage: python bench/sim_bench.py [--scenario large]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubernetes import client, config

from services.kube import KubeCluster
from services.simulator.runner import Simulator
from services.smi_reads import NVIDIA_SMI_ARGV


def timed(fn, repeat: int = 5) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), max(samples)


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", default="large")
    args = parser.parse_args()
    start = time.perf_counter()
    sim = Simulator(args.scenario, speed=1).start()
    setup = time.perf_counter() - start
    assert sim.cluster is not None
    pods = len(sim.cluster.store.items("pods"))
    nodes = len(sim.cluster.store.items("nodes"))
    print(f"scenario {args.scenario}: {pods} pods, {nodes} nodes")
    print(f"set-up (history replay + server start): {setup:.2f} s; peak RSS {rss_mib():.0f} MiB")

    median, worst = timed(lambda: sim.call(sim.cluster.controllers.tick), 20)
    print(f"idle controller tick: median {median * 1000:.2f} ms, max {worst * 1000:.2f} ms")
    median, worst = timed(lambda: sim.call(sim.cluster.tick), 20)
    print(
        f"idle cluster tick (controllers + fleet): median {median * 1000:.2f} ms, "
        f"max {worst * 1000:.2f} ms"
    )

    def busy_tick() -> None:
        sim.cluster.clock.advance(1.0)  # one simulated second: the fleet model advances
        sim.cluster.tick()

    median, worst = timed(lambda: sim.call(busy_tick), 5)
    print(
        f"cluster tick with a fleet advance (1 s of traffic over {pods} pods): "
        f"median {median * 1000:.0f} ms, max {worst * 1000:.0f} ms"
    )

    path = sim.write_kubeconfig(Path(tempfile.mkdtemp()) / "kubeconfig")
    api = config.new_client_from_config(config_file=str(path))
    core = client.CoreV1Api(api)

    def list_pods() -> None:
        response = core.list_namespaced_pod("inference", _preload_content=False)
        response.read()

    median, worst = timed(list_pods)
    print(f"list {pods} pods over HTTPS (raw JSON): median {median:.3f} s, max {worst:.3f} s")

    def list_selected() -> None:
        response = core.list_namespaced_pod(
            "inference", label_selector="app=llm-serve", _preload_content=False
        )
        response.read()

    median, worst = timed(list_selected)
    print(f"list with label selector: median {median:.3f} s, max {worst:.3f} s")

    def walk_selected() -> int:
        """The Deployment's pods in pages of 100, as skewmit's informer lists them."""
        token, pages = "", 0
        while True:
            response = core.list_namespaced_pod(
                "inference",
                label_selector="app=llm-serve",
                limit=100,
                _continue=token,
                _preload_content=False,
            )
            pages += 1
            token = json.loads(response.read())["metadata"].get("continue", "")
            if not token:
                return pages

    pages = walk_selected()
    median, worst = timed(walk_selected)
    print(
        f"the same list in {pages} pages of 100 (raw JSON, parsed): "
        f"median {median:.3f} s, max {worst:.3f} s"
    )

    # Step 5's read: nvidia-smi in a serving pod over the exec websocket (KubeCluster.exec,
    # the app's own call), one at a time.
    cluster = KubeCluster(str(path))
    pod = next(
        p
        for p in core.list_namespaced_pod("inference", label_selector="app=llm-serve").items
        if p.status.phase == "Running"
    )
    container = pod.spec.containers[0].name
    median, worst = timed(
        lambda: cluster.exec("inference", pod.metadata.name, container, list(NVIDIA_SMI_ARGV)), 10
    )
    print(f"exec nvidia-smi in a pod: median {median * 1000:.0f} ms, max {worst * 1000:.0f} ms")

    def scrape() -> int:
        with urllib.request.urlopen(sim.metrics_url, timeout=60) as response:
            return len(response.read())

    def fresh_scrape() -> int:
        sim.call(busy_tick)  # a new fleet state, so the page is rendered, not cached
        return scrape()

    size = fresh_scrape()
    median, worst = timed(fresh_scrape, 3)
    print(
        f"/metrics after a fleet advance (render + transfer, includes one tick): "
        f"{size / 1e6:.1f} MB, median {median:.2f} s, max {worst:.2f} s"
    )
    median, worst = timed(scrape, 3)
    print(f"/metrics again before the next advance (cached): median {median * 1000:.0f} ms")
    print(f"peak RSS after benchmarks: {rss_mib():.0f} MiB")
    sim.stop()


if __name__ == "__main__":
    main()
