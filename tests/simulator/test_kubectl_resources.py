"""The resources a real cluster holds beside the workload, as kubectl 1.32 and 1.37 show them:
DaemonSets with pods on GPU nodes, Endpoints and EndpointSlices from ready pods, ServiceAccounts,
PodDisruptionBudgets with live status, node Leases renewed on the clock, a Job, kube-system pods,
ClusterIPs, the kubelet's node conditions, GPU Feature Discovery labels and instance types that
carry the GPUs their nodes report.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from services.simulator.runner import Simulator
from tests.conftest import FAST, require_kubectl
from tests.simulator.test_kubectl import (
    DEPLOY,
    KUBECTL_VERSIONS,
    NS,
    Kubectl,
    blocks,
    make_kubectl,
    ro,
    table,
)

pytestmark = pytest.mark.kubectl
__all__ = ["ro"]  # the shared read-only simulator fixture, one per kubectl version

# Published shapes: GPUs per instance type (AWS EC2 accelerated computing, GCP A3).
GPUS_PER_INSTANCE = {
    "p5.48xlarge": 8,
    "a3-highgpu-4g": 4,
    "a3-highgpu-8g": 8,
    "g5.8xlarge": 1,
    "g5.12xlarge": 4,
}
SERVICE_CIDR = ipaddress.ip_network("10.100.0.0/16")


def wait_for(check: object, what: str, timeout: float = 60.0) -> None:
    """Poll `check()` until it is truthy (no timing assertion: the deadline only ends a hang)."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def node_names(k: Kubectl, selector: str = "") -> list[str]:
    args = ["get", "nodes", "-o", "name"] + (["-l", selector] if selector else [])
    return sorted(line.removeprefix("node/") for line in k.ok(*args).split())


# ---------------------------------------------------------------- discovery


def test_api_resources_lists_the_cluster_resources(ro: Kubectl) -> None:
    rows = {r["NAME"]: r for r in table(ro.ok("api-resources"))}
    expected = {
        "daemonsets": ("ds", "apps/v1", "true", "DaemonSet"),
        "endpoints": ("ep", "v1", "true", "Endpoints"),
        "endpointslices": ("", "discovery.k8s.io/v1", "true", "EndpointSlice"),
        "jobs": ("", "batch/v1", "true", "Job"),
        "leases": ("", "coordination.k8s.io/v1", "true", "Lease"),
        "poddisruptionbudgets": ("pdb", "policy/v1", "true", "PodDisruptionBudget"),
        "serviceaccounts": ("sa", "v1", "true", "ServiceAccount"),
    }
    for name, (short, version, namespaced, kind) in expected.items():
        row = rows[name]
        assert (row["SHORTNAMES"], row["APIVERSION"], row["NAMESPACED"], row["KIND"]) == (
            short,
            version,
            namespaced,
            kind,
        ), name


# ---------------------------------------------------------------- get -A


def test_get_system_resources_in_every_namespace(ro: Kubectl) -> None:
    out = ro.ok("get", "ds,ep,sa,pdb,lease,jobs", "-A")
    ds, ep, sa, pdb, lease, jobs = blocks(out)
    all_nodes = node_names(ro)
    gpu_nodes = node_names(ro, "nvidia.com/gpu.present=true")
    assert 0 < len(gpu_nodes) < len(all_nodes)

    assert ds.splitlines()[0].split() == [
        "NAMESPACE", "NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE",
        "SELECTOR", "AGE",
    ]  # fmt: skip
    daemonsets = {r["NAME"]: r for r in table(ds)}
    proxy = daemonsets["daemonset.apps/kube-proxy"]
    assert (proxy["NAMESPACE"], proxy["DESIRED"], proxy["READY"]) == (
        "kube-system",
        str(len(all_nodes)),
        str(len(all_nodes)),
    )
    assert proxy["NODE SELECTOR"] == "<none>"
    for name, deploy in (
        ("nvidia-device-plugin-daemonset", "device-plugin"),
        ("nvidia-dcgm-exporter", "dcgm-exporter"),
        ("gpu-feature-discovery", "gpu-feature-discovery"),
    ):
        row = daemonsets[f"daemonset.apps/{name}"]
        assert row["NAMESPACE"] == "gpu-operator"
        assert row["DESIRED"] == row["CURRENT"] == row["AVAILABLE"] == str(len(gpu_nodes))
        assert row["NODE SELECTOR"] == f"nvidia.com/gpu.deploy.{deploy}=true"

    endpoints = {r["NAME"]: r for r in table(ep)}
    serving = endpoints["endpoints/llm-serve"]["ENDPOINTS"]
    assert re.fullmatch(
        r"(10\.244\.\d+\.\d+:8000,){2}10\.244\.\d+\.\d+:8000 \+ 1 more\.\.\.", serving
    )
    assert endpoints["endpoints/kubernetes"]["NAMESPACE"] == "default"
    assert endpoints["endpoints/kube-dns"]["ENDPOINTS"].startswith("10.244.")

    accounts = {(r["NAMESPACE"], r["NAME"]) for r in table(sa)}
    namespaces = ro.ok("get", "ns", "-o", "name").split()
    for ns in namespaces:
        assert (ns.removeprefix("namespace/"), "serviceaccount/default") in accounts

    budgets = {r["NAME"]: r for r in table(pdb)}
    serving_pdb = budgets["poddisruptionbudget.policy/llm-serve"]
    assert (
        serving_pdb["MIN AVAILABLE"],
        serving_pdb["MAX UNAVAILABLE"],
        serving_pdb["ALLOWED DISRUPTIONS"],
    ) == ("N/A", "1", "1")

    leases = {r["NAME"].removeprefix("lease.coordination.k8s.io/"): r for r in table(lease)}
    assert sorted(leases) == all_nodes
    assert all(r["NAMESPACE"] == "kube-node-lease" and r["HOLDER"] == n for n, r in leases.items())

    (job,) = table(jobs)
    assert (job["NAME"], job["STATUS"], job["COMPLETIONS"]) == (
        "job.batch/model-cache-warmup",
        "Complete",
        "1/1",
    )
    assert job["DURATION"] == "6m52s"


def test_daemonset_pods_run_on_their_nodes(ro: Kubectl) -> None:
    gpu_nodes = node_names(ro, "nvidia.com/gpu.present=true")
    rows = table(ro.ok("get", "pods", "-n", "gpu-operator", "-o", "wide"))
    for prefix in (
        "nvidia-device-plugin-daemonset-",
        "nvidia-dcgm-exporter-",
        "gpu-feature-discovery-",
    ):
        placed = sorted(r["NODE"] for r in rows if r["NAME"].startswith(prefix))
        assert placed == gpu_nodes, prefix
    assert all((r["READY"], r["STATUS"]) == ("1/1", "Running") for r in rows)
    system = table(ro.ok("get", "pods", "-n", "kube-system"))
    assert sum(r["NAME"].startswith("kube-proxy-") for r in system) == len(node_names(ro))
    assert sum(r["NAME"].startswith("coredns-") for r in system) == 2
    owner = ro.json("pods", "-n", "gpu-operator")["items"][0]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["controller"]) == ("DaemonSet", True)


# ---------------------------------------------------------------- services and endpoints


def test_endpoints_and_slices_hold_the_ready_pods(ro: Kubectl) -> None:
    pods = ro.json("pods", "-n", NS, "-l", f"app={DEPLOY}")["items"]
    ips = sorted(p["status"]["podIP"] for p in pods)
    assert len(ips) == 4
    endpoints = ro.json("endpoints", DEPLOY, "-n", NS)
    (subset,) = endpoints["subsets"]
    assert sorted(a["ip"] for a in subset["addresses"]) == ips
    assert {a["targetRef"]["name"] for a in subset["addresses"]} == {
        p["metadata"]["name"] for p in pods
    }
    assert subset["ports"] == [{"name": "http", "port": 8000, "protocol": "TCP"}]
    slices = ro.json("endpointslices", "-n", NS, "-l", f"kubernetes.io/service-name={DEPLOY}")[
        "items"
    ]
    (piece,) = slices
    assert piece["addressType"] == "IPv4"
    assert sorted(e["addresses"][0] for e in piece["endpoints"]) == ips
    assert all(e["conditions"]["ready"] for e in piece["endpoints"])
    assert piece["metadata"]["ownerReferences"][0]["kind"] == "Service"
    described = ro.ok("describe", "endpoints", DEPLOY, "-n", NS)
    assert f"Addresses:          {','.join(sorted(ips))}" in described


def test_services_have_stable_cluster_ips_from_the_service_cidr(ro: Kubectl) -> None:
    rows = {(r["NAMESPACE"], r["NAME"]): r for r in table(ro.ok("get", "svc", "-A"))}
    assert rows[("default", "kubernetes")]["CLUSTER-IP"] == "10.100.0.1"
    assert rows[("kube-system", "kube-dns")]["CLUSTER-IP"] == "10.100.0.10"
    serving = rows[(NS, DEPLOY)]["CLUSTER-IP"]
    assert ipaddress.ip_address(serving) in SERVICE_CIDR
    assert len({r["CLUSTER-IP"] for r in rows.values()}) == len(rows)
    spec = ro.json("svc", DEPLOY, "-n", NS)["spec"]
    assert spec["clusterIPs"] == [serving]
    assert (spec["ipFamilies"], spec["ipFamilyPolicy"]) == (["IPv4"], "SingleStack")


# ---------------------------------------------------------------- nodes


def test_describe_node_shows_the_kubelet_conditions_and_its_lease(ro: Kubectl) -> None:
    for node in node_names(ro):
        info = ro.json("node", node)
        kinds = [c["type"] for c in info["status"]["conditions"]]
        assert kinds[-4:] == ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        cloud = info["spec"]["providerID"].split(":")[0]
        assert ("NetworkUnavailable" in kinds) == (cloud == "gce"), node
        assert all(
            c["lastHeartbeatTime"] and c["lastTransitionTime"] for c in info["status"]["conditions"]
        )
    described = ro.ok("describe", "node", "gpu-h100-1")
    lease = re.search(
        r"Lease:\n  HolderIdentity:  (\S+)\n  AcquireTime:     (.+)\n  RenewTime:       (.+)\n",
        described,
    )
    assert lease is not None, described
    assert lease.group(1) == "gpu-h100-1"
    assert re.search(
        r"^  Ready\s+True\s+.+KubeletReady\s+kubelet is posting ready status$", described, re.M
    )
    assert "nvidia.com/gpu.compute.major=9" in described


def test_leases_are_renewed_on_the_clock(ro: Kubectl) -> None:
    def renew_time() -> str:
        return str(ro.json("lease", "gpu-h100-1", "-n", "kube-node-lease")["spec"]["renewTime"])

    first = renew_time()
    later: list[str] = []
    wait_for(lambda: later.append(renew_time()) or later[-1] != first, "a lease renewal")
    assert datetime.fromisoformat(later[-1]) > datetime.fromisoformat(first)
    duration = ro.json("lease", "gpu-h100-1", "-n", "kube-node-lease")["spec"][
        "leaseDurationSeconds"
    ]
    assert duration == 40


def test_gpu_nodes_carry_gfd_labels_and_instance_types_matching_their_gpus(ro: Kubectl) -> None:
    for node in ro.json("nodes", "-l", "nvidia.com/gpu.present=true")["items"]:
        labels = node["metadata"]["labels"]
        name = node["metadata"]["name"]
        count = int(labels["nvidia.com/gpu.count"])
        assert GPUS_PER_INSTANCE[labels["node.kubernetes.io/instance-type"]] == count, name
        assert node["status"]["capacity"]["nvidia.com/gpu"] == str(count)
        for key in (
            "nvidia.com/gpu.compute.major",
            "nvidia.com/gpu.compute.minor",
            "nvidia.com/cuda.driver.major",
            "nvidia.com/cuda.driver.minor",
            "nvidia.com/cuda.driver.rev",
            "nvidia.com/cuda.driver-version.full",
            "nvidia.com/cuda.runtime.major",
            "nvidia.com/cuda.runtime-version.full",
            "nvidia.com/gpu.machine",
            "nvidia.com/gpu.replicas",
            "nvidia.com/gpu.sharing-strategy",
            "nvidia.com/mig.capable",
            "nvidia.com/gfd.timestamp",
            "feature.node.kubernetes.io/pci-10de.present",
        ):
            assert labels.get(key), f"{name}: {key}"
        driver = labels["nvidia.com/cuda.driver-version.full"]
        assert driver == ".".join(
            labels[f"nvidia.com/cuda.driver.{part}"] for part in ("major", "minor", "rev")
        )
        assert (labels["nvidia.com/gpu.replicas"], labels["nvidia.com/gpu.sharing-strategy"]) == (
            "1",
            "none",
        )
        product = labels["nvidia.com/gpu.product"]
        if product.startswith("NVIDIA-H100"):
            compute = ("9", "0")
            assert labels["nvidia.com/mig.capable"] == "true"
        else:
            compute = ("8", "6")
            assert labels["nvidia.com/mig.capable"] == "false"
        assert (
            labels["nvidia.com/gpu.compute.major"],
            labels["nvidia.com/gpu.compute.minor"],
        ) == compute
    shown = table(
        ro.ok("get", "nodes", "-L", "node.kubernetes.io/instance-type,nvidia.com/gpu.count")
    )
    assert {r["INSTANCE-TYPE"] for r in shown if r["GPU.COUNT"]} <= set(GPUS_PER_INSTANCE)


# ---------------------------------------------------------------- live status (own simulator)


@pytest.fixture(params=KUBECTL_VERSIONS)
def frozen(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Simulator, Kubectl]]:
    """A simulator of the test's own; the test may stop its clock."""
    version = str(request.param)
    require_kubectl(version)
    with Simulator("skew-incident", speed=FAST) as sim:
        yield sim, make_kubectl(sim, tmp_path, version)


def test_a_terminating_pod_leaves_endpoints_and_uses_up_the_budget(
    frozen: tuple[Simulator, Kubectl],
) -> None:
    sim, k = frozen
    assert sim.cluster is not None
    cluster = sim.cluster
    sim.call(lambda: cluster.clock.set_speed(1e-6))  # the pod stays Terminating
    victim = k.json("pods", "-n", NS, "-l", f"app={DEPLOY}")["items"][0]
    name, ip = victim["metadata"]["name"], victim["status"]["podIP"]
    k.ok("delete", "pod", name, "-n", NS, "--wait=false")

    def settled() -> bool:
        row = {r["NAME"]: r for r in table(k.ok("get", "pdb", "-n", NS))}[DEPLOY]
        return row["ALLOWED DISRUPTIONS"] == "0"

    wait_for(settled, "the budget to count the terminating pod")
    status = k.json("pdb", DEPLOY, "-n", NS)["status"]
    assert (status["currentHealthy"], status["desiredHealthy"], status["expectedPods"]) == (3, 3, 4)
    assert status["conditions"][0]["reason"] == "InsufficientPods"
    (subset,) = k.json("endpoints", DEPLOY, "-n", NS)["subsets"]
    assert ip not in {a["ip"] for a in subset["addresses"]}
    (piece,) = k.json("endpointslices", "-n", NS, "-l", f"kubernetes.io/service-name={DEPLOY}")[
        "items"
    ]
    gone = next(e for e in piece["endpoints"] if e["addresses"] == [ip])
    # The kubelet has turned the pod unready on deletion, so it no longer serves either.
    assert gone["conditions"] == {"ready": False, "serving": False, "terminating": True}


def test_a_new_service_gets_a_cluster_ip_that_survives_a_reapply(
    frozen: tuple[Simulator, Kubectl], tmp_path: Path
) -> None:
    _, k = frozen
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "llm-serve-long", "namespace": NS},
                "spec": {"selector": {"app": DEPLOY}, "ports": [{"name": "http", "port": 8000}]},
            }
        )
    )
    k.ok("apply", "-f", str(manifest))
    first = k.json("svc", "llm-serve-long", "-n", NS)["spec"]["clusterIP"]
    assert ipaddress.ip_address(first) in SERVICE_CIDR
    manifest.write_text(
        manifest.read_text().replace('"port": 8000}', '"port": 8000, "protocol": "TCP"}')
    )
    k.ok("apply", "-f", str(manifest))
    assert k.json("svc", "llm-serve-long", "-n", NS)["spec"]["clusterIP"] == first
    wait_for(
        lambda: (
            len(
                k.json("endpoints", "llm-serve-long", "-n", NS)
                .get("subsets", [{}])[0]
                .get("addresses", [])
            )
            == 4
        ),
        "endpoints for the new Service",
    )
