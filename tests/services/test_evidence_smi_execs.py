"""Issue 12: the evidence bundle runs nvidia-smi the way step 5 does, once per node.

It exec'd twice in each of the first 16 pods on every capture (on `large`, 32 execs for 16
rows, and the other 984 pods had no reading at all). Now one pod per node is read, the
connection's fresh readings are reused, and every pod's row still says which node it is on
and which pod the reading was taken in. Through the real client to the simulator.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.evidence import write_bundle
from services.kube import KubeCluster
from services.models import Target
from services.simulator.runner import Simulator
from services.smi_reads import is_ready
from tests.services.harness import CountingCluster, connect, wait_for

NS, NAME = "inference", "llm-serve"
REPLICAS = 8  # on 3 GPU nodes of hardware-only: several pods share a node


def serving(cluster: Any) -> list[dict[str, Any]]:
    return [
        p
        for p in cluster.list("Pod", NS, label_selector=f"app={NAME}")
        if not p["metadata"].get("deletionTimestamp") and is_ready(p)
    ]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    with Simulator("hardware-only", speed=60.0) as sim:
        cluster = connect(sim, tmp_path_factory.mktemp("fleet"))
        cluster.patch("Deployment", NS, NAME, {"spec": {"replicas": REPLICAS}}, "merge")
        wait_for(f"{REPLICAS} ready pods", lambda: len(serving(cluster)) == REPLICAS, 60.0)
        yield cluster


def capture(cluster: Any, out: Path) -> Path:
    bundle = write_bundle(out, cluster=cluster, target=Target("skewmit-sim", NS, NAME))
    return bundle.folder


def test_a_capture_execs_once_per_node_and_says_where_each_reading_is_from(
    fleet: KubeCluster, tmp_path: Path
) -> None:
    cluster = CountingCluster(fleet)
    pods = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in serving(fleet)}
    nodes = set(pods.values())
    assert len(pods) == REPLICAS and len(nodes) < len(pods)  # pods share nodes

    folder = capture(cluster, tmp_path / "first")
    assert len(cluster.execs) <= len(nodes)
    assert {pods[p] for p in cluster.execs} == nodes  # one pod on each node, each node read

    rows = list(csv.DictReader(io.StringIO((folder / "gpu" / "inspector.csv").read_text())))
    assert {r["pod"]: r["node"] for r in rows if r["pod"] in pods} == pods
    read_in = set(cluster.execs)
    for row in rows:
        if row["pod"] not in pods:
            continue
        assert row["smi_name"], row  # every running pod has its node's reading
        if row["pod"] not in read_in:
            # Which pod on the same node the reading was taken in.
            assert f"node {row['node']}'s reading" in row["note"], row
            shared = row["note"].split(" in pod ", 1)[1].split(" ", 1)[0]
            assert shared in read_in and pods[shared] == row["node"], row
    for name in pods:
        text = (folder / "gpu" / "nvidia-smi" / f"{name}.txt").read_text()
        assert text.startswith(f"# pod {name} on node {pods[name]}: "), text
        assert "nvidia-smi --query-gpu=name,memory.total --format=csv" in text
        assert "memory.total" in text.splitlines()[2]  # the CSV header of the reading

    # A second capture while the readings are fresh execs nothing and says the same.
    cluster.execs.clear()
    again = capture(cluster, tmp_path / "second")
    assert cluster.execs == []
    assert (again / "gpu" / "inspector.csv").read_text() == (
        folder / "gpu" / "inspector.csv"
    ).read_text()
