"""The cluster's own objects on the simulated clock: node heartbeats and Leases (and their
silence when a kubelet stops posting), instance types that carry the GPUs each scenario's
nodes report, and the system pods that never disturb a scenario's own pod names."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from services.simulator import gpus
from services.simulator.cluster import Cluster
from services.simulator.instance_types import gpu_instance
from services.simulator.scenario import available, load


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    built = Cluster(load("skew-incident"), speed=1.0, seed=0)
    built.setup()
    yield built


def renew_time(cluster: Cluster, node: str) -> datetime:
    lease = cluster.store.peek("leases", "kube-node-lease", node)
    assert lease is not None
    return datetime.fromisoformat(lease["spec"]["renewTime"])


def heartbeat(cluster: Cluster, node: str, kind: str = "Ready") -> datetime:
    obj = cluster.store.peek("nodes", "", node)
    assert obj is not None
    cond = next(c for c in obj["status"]["conditions"] if c["type"] == kind)
    return datetime.fromisoformat(cond["lastHeartbeatTime"])


def run_for(cluster: Cluster, seconds: float, step: float = 5.0) -> None:
    for _ in range(int(seconds / step)):
        cluster.clock.advance(step)
        cluster.tick()


def test_every_scenario_node_runs_on_an_instance_type_with_its_gpu_count() -> None:
    for name in available():
        for group in load(name).nodes:
            if not group.gpu:
                continue
            instance = gpu_instance(group.gpu, group.gpus)
            assert instance is not None, f"{name}: {group.prefix}"
            assert instance.gpus == group.gpus
    # The shapes the issue found contradicted: a p5.48xlarge has 8 H100s, a g5.12xlarge 4 A10Gs.
    assert gpus.node_labels(gpus.H100, 8)["node.kubernetes.io/instance-type"] == "p5.48xlarge"
    assert gpus.node_labels(gpus.H100, 4)["node.kubernetes.io/instance-type"] == "a3-highgpu-4g"
    assert gpus.node_labels(gpus.A10G, 1)["node.kubernetes.io/instance-type"] == "g5.8xlarge"


def test_leases_renew_every_ten_seconds_and_nodes_report_every_five_minutes(
    cluster: Cluster,
) -> None:
    lease_before = renew_time(cluster, "gpu-h100-1")
    beat_before = heartbeat(cluster, "gpu-h100-1")
    run_for(cluster, 30)
    assert 20 <= (renew_time(cluster, "gpu-h100-1") - lease_before).total_seconds() <= 40
    assert heartbeat(cluster, "gpu-h100-1") == beat_before  # nothing changed: no status post
    run_for(cluster, 420, step=30)
    assert heartbeat(cluster, "gpu-h100-1") > beat_before
    assert heartbeat(cluster, "gpu-h100-1", "MemoryPressure") == heartbeat(cluster, "gpu-h100-1")


def test_a_node_whose_kubelet_stopped_posting_renews_nothing(cluster: Cluster) -> None:
    def not_ready(node: dict[str, object]) -> None:
        for cond in node["status"]["conditions"]:  # type: ignore[index]
            if cond["type"] == "Ready":
                cond.update(status="Unknown", reason="NodeStatusUnknown")

    cluster.store.mutate("nodes", "", "gpu-a10g-2", not_ready)
    lease_before = renew_time(cluster, "gpu-a10g-2")
    other_before = renew_time(cluster, "gpu-a10g-1")
    run_for(cluster, 600, step=30)
    assert renew_time(cluster, "gpu-a10g-2") == lease_before
    assert renew_time(cluster, "gpu-a10g-1") > other_before


def test_system_pods_leave_the_scenarios_pod_names_alone(cluster: Cluster) -> None:
    serving = sorted(p["metadata"]["name"] for p in cluster.store.items("pods", "inference"))
    # The same names a cluster without kube-system and the GPU operator would give (seed 0).
    assert serving == [
        "llm-serve-7456b8d59d-2d96g",
        "llm-serve-7456b8d59d-bggln",
        "llm-serve-7456b8d59d-dl5hs",
        "llm-serve-7456b8d59d-lbccj",
    ]
    per_node: dict[str, int] = {}
    for pod in cluster.store.items("pods", "inference"):
        per_node[pod["spec"]["nodeName"]] = per_node.get(pod["spec"]["nodeName"], 0) + 1
    assert sorted(per_node.items()) == [
        ("gpu-a10g-1", 1),
        ("gpu-a10g-2", 1),
        ("gpu-h100-1", 1),
        ("gpu-h100-2", 1),
    ]


def test_a_deleted_daemon_pod_comes_back_on_its_node(cluster: Cluster) -> None:
    pods = cluster.store.registry.by_plural("pods")
    victim = next(
        p
        for p in cluster.store.items("pods", "kube-system")
        if p["metadata"]["name"].startswith("kube-proxy-")
    )
    node = victim["spec"]["nodeName"]
    cluster.store.delete(pods, "kube-system", victim["metadata"]["name"])
    run_for(cluster, 120)

    def proxies() -> list[dict[str, object]]:
        return [
            p
            for p in cluster.store.items("pods", "kube-system")
            if p["metadata"]["name"].startswith("kube-proxy-") and p["spec"]["nodeName"] == node
        ]

    (replacement,) = proxies()
    assert replacement["metadata"]["name"] != victim["metadata"]["name"]
    assert replacement["status"]["phase"] == "Running"  # type: ignore[index]
    ds = cluster.store.peek("daemonsets", "kube-system", "kube-proxy")
    assert ds is not None
    assert ds["status"]["numberReady"] == ds["status"]["desiredNumberScheduled"] == 5
