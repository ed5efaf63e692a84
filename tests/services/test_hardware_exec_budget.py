"""Issues 12 and 9: step 5 runs nvidia-smi in one pod per node, remembers the answer, and
reads at most a few new nodes per check. On `large` it exec'd into all 1,000 serving pods on
every check (586 of the app's ~930 API requests a minute while the operator only looked).

Through the real client to the simulator: N pods on M nodes cost M execs, then none; a node
that is replaced, relabelled or whose pod is gone is read again; the rest wait, shown as not
read (a warning, never a pass); and what the step shows and decides equals running
nvidia-smi in every pod.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from services import hardware
from services.gpu import gpu_rows
from services.kube import KubeCluster
from services.models import HardwareReport, Severity
from services.simulator.runner import Simulator
from services.smi_reads import (
    NOT_READ_YET,
    TTL_S,
    NodeSmiCache,
    cache_for,
    forget_readings,
    is_ready,
)
from tests.services.harness import CountingCluster, connect, wait_for
from widgets.inspector_table import mark_of

NS, NAME = "inference", "llm-serve"
REPLICAS = 8  # on 3 GPU nodes (2 x 4 H100, 1 x 1 A10G): several pods share a node


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def running_pods(cluster: Any) -> list[dict[str, Any]]:
    return [
        p
        for p in cluster.list("Pod", NS, label_selector=f"app={NAME}")
        if not p["metadata"].get("deletionTimestamp")
        and all(
            "running" in (s.get("state") or {})
            for s in p["status"].get("containerStatuses") or [{}]
        )
    ]


def ready(cluster: Any) -> int:
    return sum(1 for p in running_pods(cluster) if is_ready(p))


def node_of(cluster: Any) -> dict[str, str]:
    return {p["metadata"]["name"]: p["spec"]["nodeName"] for p in running_pods(cluster)}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Simulator, KubeCluster]]:
    with Simulator("hardware-only", speed=60.0) as sim:
        cluster = connect(sim, tmp_path_factory.mktemp("fleet"))
        cluster.patch("Deployment", NS, NAME, {"spec": {"replicas": REPLICAS}}, "merge")
        wait_for(f"{REPLICAS} ready pods", lambda: ready(cluster) == REPLICAS)
        yield sim, cluster


def every_pod_report(cluster: Any, report: HardwareReport) -> HardwareReport:
    """The old behaviour as an oracle: nvidia-smi in every running pod, same expectation."""
    pods = sorted(
        cluster.list("Pod", NS, label_selector=f"app={NAME}"), key=lambda p: p["metadata"]["name"]
    )
    smi = {
        p["metadata"]["name"]: cluster.exec(
            NS, p["metadata"]["name"], "vllm", list(hardware.NVIDIA_SMI_ARGV)
        )
        for p in running_pods(cluster)
    }
    rows = gpu_rows(pods, cluster.list("Node"), smi, {}, report.expected_class)
    return replace(report, rows=tuple(rows))


def assert_same_as_every_pod(cluster: Any, report: HardwareReport) -> None:
    oracle = every_pod_report(cluster, report)

    def shown(r: HardwareReport) -> list[tuple[Any, ...]]:
        return [
            (x.pod, x.node, x.gpu_class, x.smi_name, x.smi_memory_mib, x.expected_class, x.mismatch)
            for x in r.rows
        ]

    assert shown(report) == shown(oracle)
    findings = hardware.hardware_findings(report)
    assert [(f.code, f.severity, f.subject, f.message) for f in findings] == [
        (f.code, f.severity, f.subject, f.message) for f in hardware.hardware_findings(oracle)
    ]
    assert hardware.hardware_actions(report) == hardware.hardware_actions(oracle)


def test_n_pods_on_m_nodes_cost_m_execs_then_none(fleet: tuple[Simulator, KubeCluster]) -> None:
    _sim, inner = fleet
    cluster = CountingCluster(inner)
    nodes = node_of(cluster)
    assert len(set(nodes.values())) < len(nodes) == REPLICAS

    first = hardware.gpu_inspection(cluster, NS, NAME)
    execs = cluster.take()
    # One exec per node, each in a pod on that node.
    assert sorted(nodes[p] for p in execs) == sorted(set(nodes.values()))
    assert hardware.gpu_inspection(cluster, NS, NAME) == first
    assert cluster.take() == []
    # Every running pod shows its node's reading; the others say whose reading it is.
    for row in first.rows:
        assert row.smi_name, row
        reader = next(p for p in execs if nodes[p] == row.node)
        if row.pod != reader:
            assert f"node {row.node}'s reading, in pod {reader} on the same node" in row.note
    assert "gpu-smi-not-read" not in {f.code for f in hardware.hardware_findings(first)}
    assert_same_as_every_pod(cluster, first)
    cluster.take()  # the oracle's own execs
    # The operator's explicit refresh reads every node again; a long time does too.
    forget_readings(cluster)
    hardware.gpu_inspection(cluster, NS, NAME)
    assert len(cluster.take()) == len(set(nodes.values()))
    clock = Clock()
    cache = NodeSmiCache(clock=clock)
    hardware.gpu_inspection(cluster, NS, NAME, smi_cache=cache)
    cluster.take()
    clock.now += TTL_S - 1
    hardware.gpu_inspection(cluster, NS, NAME, smi_cache=cache)
    assert cluster.take() == []
    clock.now += 2
    hardware.gpu_inspection(cluster, NS, NAME, smi_cache=cache)
    assert len(cluster.take()) == len(set(nodes.values()))


def test_a_replaced_or_relabelled_node_and_a_gone_pod_are_read_again(
    fleet: tuple[Simulator, KubeCluster],
) -> None:
    _sim, inner = fleet
    cluster = CountingCluster(inner)
    hardware.gpu_inspection(cluster, NS, NAME)
    readers = cluster.take()
    nodes = node_of(cluster)
    shared = next(n for n in set(nodes.values()) if list(nodes.values()).count(n) > 1)

    cluster.patch(
        "Node", "", shared, {"metadata": {"labels": {"skewmit.test/touched": "1"}}}, "merge"
    )
    hardware.gpu_inspection(cluster, NS, NAME)
    assert [nodes[p] for p in cluster.take()] == [shared]

    # Replaced: the same name, a new object (uid), as a node pool's replacement has.
    old = cluster.get("Node", "", shared)
    body = copy.deepcopy(old)
    for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields"):
        body["metadata"].pop(key, None)
    cluster.delete("Node", "", shared)
    cluster.create("Node", "", body)
    assert cluster.get("Node", "", shared)["metadata"]["uid"] != old["metadata"]["uid"]
    hardware.gpu_inspection(cluster, NS, NAME)
    assert [nodes[p] for p in cluster.take()] == [shared]
    hardware.gpu_inspection(cluster, NS, NAME)
    assert cluster.take() == []

    # The pod a node was read in is gone: the node is read again, in another pod.
    reader = next(p for p in readers if nodes[p] == shared)
    cluster.delete("Pod", NS, reader)
    wait_for("the reader to go", lambda: reader not in node_of(cluster))
    report = hardware.gpu_inspection(cluster, NS, NAME)
    again = cluster.take()
    assert shared in {node_of(cluster).get(p) for p in again} and reader not in again
    wait_for(f"{REPLICAS} ready pods", lambda: ready(cluster) == REPLICAS)
    assert_same_as_every_pod(cluster, hardware.gpu_inspection(cluster, NS, NAME))
    assert report.rows


def test_at_most_n_nodes_per_check_the_rest_shown_as_not_read(
    fleet: tuple[Simulator, KubeCluster],
) -> None:
    _sim, inner = fleet
    cluster = CountingCluster(inner)
    clock = Clock()
    cache = NodeSmiCache(max_new_nodes=1, clock=clock)
    nodes = node_of(cluster)
    seen: set[str] = set()
    for _check in range(len(set(nodes.values()))):
        report = hardware.gpu_inspection(cluster, NS, NAME, smi_cache=cache)
        (reader,) = cluster.take()
        seen.add(nodes[reader])
        unread = [row for row in report.rows if row.node not in seen]
        for row in unread:
            assert row.smi_name is None and NOT_READ_YET in row.note
            assert mark_of(row) == "…"  # the inspector's list: not a ✓
        warning = [f for f in hardware.hardware_findings(report) if f.code == "gpu-smi-not-read"]
        if unread:
            # Never a pass while a node's GPU has not been seen from inside a container.
            (finding,) = warning
            assert finding.severity == Severity.WARNING
            assert sorted(finding.detail["pods"]) == sorted(r.pod for r in unread)
        else:
            assert warning == []
    assert seen == set(nodes.values())
    hardware.gpu_inspection(cluster, NS, NAME, smi_cache=cache)
    assert cluster.take() == []
    # Readings that are only old are re-read one node a check, and shown until then.
    clock.now += TTL_S + 1
    report = hardware.gpu_inspection(cluster, NS, NAME, smi_cache=cache)
    assert len(cluster.take()) == 1
    assert all(row.smi_name and NOT_READ_YET not in row.note for row in report.rows)
    assert "gpu-smi-not-read" not in {f.code for f in hardware.hardware_findings(report)}


def test_the_skew_incident_shows_and_decides_as_with_every_pod_read(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    cluster = CountingCluster(connect(shared_sim, tmp_path))
    report = hardware.gpu_inspection(cluster, NS, NAME)
    assert len(cluster.take()) == len(set(node_of(cluster).values()))
    assert report.mismatches  # the incident has pods on the A10G nodes
    assert_same_as_every_pod(cluster, report)


def test_each_connection_has_its_own_readings(shared_sim: Simulator, tmp_path: Path) -> None:
    # Two simulators of one scenario share uids: a reading must never cross connections.
    one, two = connect(shared_sim, tmp_path), connect(shared_sim, tmp_path)
    assert cache_for(one) is cache_for(one) and cache_for(one) is not cache_for(two)


def test_one_checks_execs_run_side_by_side(fleet: tuple[Simulator, KubeCluster]) -> None:
    """On `large` a check's 40 execs one after another took 2.4 s of the inspector's wait
    (0.4 s side by side). Here every exec waits at a barrier for all the others of its
    check: one at a time, the first would wait alone and fail."""
    import threading

    _sim, cluster = fleet
    pods = running_pods(cluster)
    nodes = cluster.list("Node")
    on_nodes = {p["spec"]["nodeName"] for p in pods}
    assert len(on_nodes) >= 2
    meet = threading.Barrier(len(on_nodes), timeout=30)

    class Meeting(CountingCluster):
        def exec(self, namespace: str, pod: str, container: str, argv: list[str]) -> str:
            meet.wait()  # BrokenBarrierError (not a SkewmitError) if they are not together
            return super().exec(namespace, pod, container, argv)

    counted = Meeting(cluster)
    reads = NodeSmiCache().read(counted, pods, nodes)
    assert reads.execs == len(on_nodes) == len(counted.execs)
    assert set(reads.by_pod) == {p["metadata"]["name"] for p in pods}
