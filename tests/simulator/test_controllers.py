"""The simulated cluster's control loops, driven on a Store and a frozen SimClock (no HTTP)."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from services.simulator.clock import SimClock
from services.simulator.controllers import Controllers, StartOutcome
from services.simulator.resources import Registry
from services.simulator.store import Store, template_hash

Obj = dict[str, Any]
NS = "serving"
REVISION = "deployment.kubernetes.io/revision"
HISTORY = "deployment.kubernetes.io/revision-history"


class FakeRuntime:
    """Containers start after `start_s`, are ready `ready_s` later; images in `broken` crash."""

    def __init__(self, start_s: float = 10.0, ready_s: float = 20.0) -> None:
        self.start_s = start_s
        self.ready_s = ready_s
        self.broken: set[str] = set()
        self.stop_delay_s = 5.0

    def start(self, pod: Obj, node: Obj, container: Obj) -> StartOutcome:
        image = str(container["image"])
        failure = "torch.OutOfMemoryError: CUDA out of memory" if image in self.broken else None
        ready = 0.0 if failure else self.ready_s
        digest = "sha256:" + hashlib.sha256(image.encode()).hexdigest()
        return StartOutcome(self.start_s, ready, failure, digest)


class Sim:
    """A store, a frozen clock and the controllers, with helpers to poke and observe them."""

    def __init__(self, runtime: FakeRuntime | None = None) -> None:
        self.registry = Registry()
        self.clock = SimClock(1e-9, start=datetime(2025, 3, 1, 12, 0, tzinfo=UTC))
        self.store = Store(self.registry, self.clock, seed=7)
        self.runtime = runtime or FakeRuntime()
        self.store.create(self.rt("namespaces"), {"metadata": {"name": NS}})
        self.ctl = Controllers(self.store, self.clock, self.runtime)

    def rt(self, plural: str) -> Any:
        return self.registry.by_plural(plural)

    def node(
        self,
        name: str,
        gpus: int = 8,
        labels: dict[str, str] | None = None,
        taints: list[Obj] | None = None,
        ready: str = "True",
    ) -> None:
        allocatable = {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": str(gpus)}
        spec: Obj = {"taints": taints} if taints else {}
        self.store.create(
            self.rt("nodes"),
            {
                "metadata": {
                    "name": name,
                    "labels": {"kubernetes.io/hostname": name, **(labels or {})},
                },
                "spec": spec,
                "status": {
                    "allocatable": allocatable,
                    "conditions": [{"type": "Ready", "status": ready}],
                },
            },
        )

    def deploy(
        self, name: str = "llm", replicas: int = 3, image: str = "vllm:v1", **spec: Any
    ) -> None:
        pod_spec = spec.pop("pod_spec", {})
        body: Obj = {
            "metadata": {
                "name": name,
                "namespace": NS,
                "annotations": {
                    "kubernetes.io/change-cause": f"deploy {image}",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                },
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "containers": [
                            {
                                "name": "vllm",
                                "image": image,
                                "resources": {"limits": {"nvidia.com/gpu": "1"}},
                            }
                        ],
                        **pod_spec,
                    },
                },
                **spec,
            },
        }
        self.store.create(self.rt("deployments"), body)

    def edit(self, change: Callable[[Obj], None], name: str = "llm") -> None:
        obj = self.store.get(self.rt("deployments"), NS, name)
        change(obj)
        self.store.update(self.rt("deployments"), obj)

    def set_image(self, image: str, name: str = "llm") -> None:
        def change(d: Obj) -> None:
            d["spec"]["template"]["spec"]["containers"][0]["image"] = image
            d["metadata"]["annotations"]["kubernetes.io/change-cause"] = f"deploy {image}"

        self.edit(change, name)

    def step(self, seconds: float = 1.0) -> None:
        self.ctl.tick()
        self.clock.advance(seconds)

    def run(
        self, seconds: float, step: float = 1.0, each: Callable[[], None] | None = None
    ) -> None:
        for _ in range(int(seconds / step)):
            self.step(step)
            if each is not None:
                each()

    def deployment(self, name: str = "llm") -> Obj:
        obj = self.store.peek("deployments", NS, name)
        assert obj is not None
        return obj

    def replicasets(self) -> list[Obj]:
        return sorted(
            self.store.items("replicasets", NS),
            key=lambda r: int(r["metadata"]["annotations"][REVISION]),
        )

    def rs_of(self, image: str) -> Obj:
        return next(
            r
            for r in self.replicasets()
            if r["spec"]["template"]["spec"]["containers"][0]["image"] == image
        )

    def pods(self, live: bool = True) -> list[Obj]:
        pods = self.store.items("pods", NS)
        return [p for p in pods if not (live and p["metadata"].get("deletionTimestamp"))]

    def events(self, reason: str) -> list[Obj]:
        return [e for e in self.store.items("events", NS) if e["reason"] == reason]

    def condition(self, obj: Obj, type_: str) -> Obj:
        return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def gpu_sim(nodes: int = 4, **runtime: float) -> Sim:
    sim = Sim(FakeRuntime(**runtime))
    for i in range(nodes):
        sim.node(f"gpu-{i}")
    return sim


# -- Deployments and ReplicaSets -----------------------------------------------------------------


def test_deployment_creates_replicaset_whose_pods_become_ready() -> None:
    sim = gpu_sim()
    sim.deploy(replicas=3)
    sim.run(60)
    deployment = sim.deployment()
    (rs,) = sim.replicasets()
    pod_hash = template_hash(deployment["spec"]["template"], 0)
    assert rs["metadata"]["name"] == f"llm-{pod_hash}"
    assert rs["metadata"]["labels"] == {"app": "llm", "pod-template-hash": pod_hash}
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "llm", "pod-template-hash": pod_hash}
    assert rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == pod_hash
    (owner,) = rs["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "llm",
        "uid": deployment["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    notes = rs["metadata"]["annotations"]
    assert notes[REVISION] == "1"
    assert notes["deployment.kubernetes.io/desired-replicas"] == "3"
    assert notes["deployment.kubernetes.io/max-replicas"] == "4"
    assert notes["kubernetes.io/change-cause"] == "deploy vllm:v1"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in notes
    assert deployment["metadata"]["annotations"][REVISION] == "1"

    pods = sim.pods()
    assert len(pods) == 3
    for pod in pods:
        assert pod["metadata"]["name"].startswith(rs["metadata"]["name"] + "-")
        assert len(pod["metadata"]["name"]) == len(rs["metadata"]["name"]) + 6
        assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert pod["status"]["phase"] == "Running"
        assert sim.condition(pod, "Ready")["status"] == "True"
        (container,) = pod["status"]["containerStatuses"]
        assert container["imageID"].startswith("docker.io/library/vllm@sha256:")
        assert container["containerID"].startswith("containerd://")
        assert pod["status"]["podIP"].startswith("10.244.")
    assert rs["status"] == {
        "replicas": 3,
        "fullyLabeledReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
        "observedGeneration": 1,
    }
    status = deployment["status"]
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "observedGeneration": 1,
        "replicas": 3,
        "updatedReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
    }
    assert [c["type"] for c in status["conditions"]] == ["Available", "Progressing"]
    assert (
        sim.condition(deployment, "Available")["message"] == "Deployment has minimum availability."
    )
    progressing = sim.condition(deployment, "Progressing")
    assert progressing["reason"] == "NewReplicaSetAvailable"
    assert (
        progressing["message"]
        == f'ReplicaSet "{rs["metadata"]["name"]}" has successfully progressed.'
    )
    (scaled,) = sim.events("ScalingReplicaSet")
    assert scaled["message"] == f"Scaled up replica set {rs['metadata']['name']} from 0 to 3"
    assert scaled["source"]["component"] == "deployment-controller"
    created = sorted(e["message"] for e in sim.events("SuccessfulCreate"))
    assert created == sorted(f"Created pod: {p['metadata']['name']}" for p in pods)
    assert sim.ctl.idle()


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "max_total", "min_available"),
    [(4, 1, 0, 5, 4), (10, "25%", "25%", 13, 8), (4, 0, 1, 4, 3)],
)
def test_rolling_update_stays_within_surge_and_unavailability(
    replicas: int, surge: int | str, unavailable: int | str, max_total: int, min_available: int
) -> None:
    sim = gpu_sim(nodes=4)
    strategy = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
    }
    sim.deploy(replicas=replicas, strategy=strategy)
    sim.run(60)
    sim.set_image("vllm:v2")
    totals: list[int] = []
    availables: list[int] = []
    live_pods: list[int] = []

    def observe() -> None:
        rss = sim.replicasets()
        totals.append(sum(r["spec"]["replicas"] for r in rss))
        availables.append(sum(r["status"].get("availableReplicas", 0) for r in rss))
        live_pods.append(len(sim.pods()))

    sim.run(400, each=observe)
    assert max(totals) == max_total
    assert min(availables) == min_available
    assert max(live_pods) <= max_total
    old, new = sim.replicasets()
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, replicas)
    assert (old["metadata"]["annotations"][REVISION], new["metadata"]["annotations"][REVISION]) == (
        "1",
        "2",
    )
    assert new["metadata"]["annotations"]["kubernetes.io/change-cause"] == "deploy vllm:v2"
    deployment = sim.deployment()
    assert deployment["metadata"]["annotations"][REVISION] == "2"
    assert deployment["status"]["updatedReplicas"] == replicas
    assert deployment["status"]["availableReplicas"] == replicas
    assert sim.condition(deployment, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert all(p["spec"]["containers"][0]["image"] == "vllm:v2" for p in sim.pods())


def test_rollback_reuses_the_old_replicaset_with_a_new_revision() -> None:
    sim = gpu_sim()
    sim.deploy(replicas=2)
    sim.run(60)
    first = sim.replicasets()[0]["metadata"]["name"]
    sim.set_image("vllm:v2")
    sim.run(200)
    sim.set_image("vllm:v1")  # what `kubectl rollout undo` writes
    sim.run(200)
    assert len(sim.replicasets()) == 2
    restored = sim.rs_of("vllm:v1")
    assert restored["metadata"]["name"] == first
    assert restored["metadata"]["annotations"][REVISION] == "3"
    assert restored["metadata"]["annotations"][HISTORY] == "1"
    assert restored["spec"]["replicas"] == 2
    assert sim.rs_of("vllm:v2")["spec"]["replicas"] == 0
    assert sim.deployment()["metadata"]["annotations"][REVISION] == "3"
    sim.set_image("vllm:v2")  # undo again toggles back
    sim.run(200)
    assert sim.rs_of("vllm:v2")["metadata"]["annotations"][REVISION] == "4"
    assert sim.rs_of("vllm:v2")["metadata"]["annotations"][HISTORY] == "2"


def test_revision_history_limit_deletes_the_oldest_drained_replicasets() -> None:
    sim = gpu_sim()
    sim.deploy(replicas=1, revisionHistoryLimit=2)
    for version in range(2, 7):
        sim.run(120)
        sim.set_image(f"vllm:v{version}")
    sim.run(120)
    revisions = [r["metadata"]["annotations"][REVISION] for r in sim.replicasets()]
    assert revisions == ["4", "5", "6"]
    assert [r["spec"]["replicas"] for r in sim.replicasets()] == [0, 0, 1]


def test_paused_deployment_does_not_roll_out_until_resumed() -> None:
    sim = gpu_sim()
    sim.deploy(replicas=2)
    sim.run(60)
    sim.edit(lambda d: d["spec"].__setitem__("paused", True))
    sim.set_image("vllm:v2")
    sim.run(120)
    assert len(sim.replicasets()) == 1
    assert all(p["spec"]["containers"][0]["image"] == "vllm:v1" for p in sim.pods())
    progressing = sim.condition(sim.deployment(), "Progressing")
    assert (progressing["status"], progressing["reason"], progressing["message"]) == (
        "Unknown",
        "DeploymentPaused",
        "Deployment is paused",
    )
    assert (
        sim.deployment()["status"]["observedGeneration"]
        == sim.deployment()["metadata"]["generation"]
    )
    sim.edit(lambda d: d["spec"].__setitem__("paused", False))
    sim.run(200)
    assert sim.rs_of("vllm:v2")["spec"]["replicas"] == 2
    assert sim.condition(sim.deployment(), "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_crash_looping_rollout_exceeds_its_progress_deadline() -> None:
    sim = gpu_sim()
    sim.deploy(replicas=2, progressDeadlineSeconds=120)
    sim.run(60)
    sim.runtime.broken.add("vllm:v2")
    sim.set_image("vllm:v2")
    sim.run(100)
    assert sim.condition(sim.deployment(), "Progressing")["reason"] == "ReplicaSetUpdated"
    sim.run(100)
    new = sim.rs_of("vllm:v2")["metadata"]["name"]
    progressing = sim.condition(sim.deployment(), "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert progressing["message"] == f'ReplicaSet "{new}" has timed out progressing.'
    # The old ReplicaSet keeps serving within maxUnavailable (25% of 2 rounds down to 0).
    assert sim.rs_of("vllm:v1")["status"]["availableReplicas"] == 2
    assert sim.condition(sim.deployment(), "Available")["status"] == "True"
    assert not sim.ctl.idle()


def test_recreate_removes_every_old_pod_before_creating_new_ones() -> None:
    sim = gpu_sim()
    sim.deploy(replicas=3, strategy={"type": "Recreate"})
    sim.run(60)
    sim.set_image("vllm:v2")
    mixed: list[bool] = []

    def observe() -> None:
        images = {p["spec"]["containers"][0]["image"] for p in sim.pods(live=False)}
        mixed.append(len(images) > 1)

    sim.run(200, each=observe)
    assert not any(mixed)
    assert sorted(p["spec"]["containers"][0]["image"] for p in sim.pods()) == ["vllm:v2"] * 3
    assert sim.condition(sim.deployment(), "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_scaling_a_settled_deployment_scales_its_replicaset() -> None:
    sim = gpu_sim()
    sim.deploy(replicas=2)
    sim.run(60)
    sim.edit(lambda d: d["spec"].__setitem__("replicas", 5))
    sim.run(60)
    (rs,) = sim.replicasets()
    assert rs["spec"]["replicas"] == 5
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "5"
    messages = [e["message"] for e in sim.events("ScalingReplicaSet")]
    assert f"Scaled up replica set {rs['metadata']['name']} from 2 to 5" in messages
    assert sim.deployment()["status"]["availableReplicas"] == 5


def test_scaling_mid_rollout_is_shared_out_proportionally() -> None:
    # The example of the Kubernetes documentation's "Proportional scaling" section.
    sim = gpu_sim(nodes=4)
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}
    sim.deploy(replicas=10, strategy=strategy)
    sim.run(60)
    sim.runtime.broken.add("vllm:bad")
    sim.set_image("vllm:bad")
    sim.run(60)
    assert (
        sim.rs_of("vllm:v1")["spec"]["replicas"],
        sim.rs_of("vllm:bad")["spec"]["replicas"],
    ) == (8, 5)
    sim.edit(lambda d: d["spec"].__setitem__("replicas", 15))
    sim.run(5)
    assert (
        sim.rs_of("vllm:v1")["spec"]["replicas"],
        sim.rs_of("vllm:bad")["spec"]["replicas"],
    ) == (11, 7)


def test_a_relabelled_pod_is_released_and_replaced() -> None:
    sim = gpu_sim()
    sim.deploy(replicas=2)
    sim.run(60)
    pod = sim.store.get(sim.rt("pods"), NS, sim.pods()[0]["metadata"]["name"])
    pod["metadata"]["labels"]["app"] = "debug"
    sim.store.update(sim.rt("pods"), pod)
    sim.run(60)
    released = sim.store.peek("pods", NS, pod["metadata"]["name"])
    assert released is not None and not released["metadata"].get("ownerReferences")
    owned = [p for p in sim.pods() if p["metadata"].get("ownerReferences")]
    assert len(owned) == 2
    assert sim.deployment()["status"]["availableReplicas"] == 2


def test_min_ready_seconds_delays_availability() -> None:
    sim = gpu_sim()
    sim.deploy(replicas=2, minReadySeconds=30)
    sim.run(40)  # ready at 30s
    (rs,) = sim.replicasets()
    assert rs["spec"]["minReadySeconds"] == 30
    assert rs["status"].get("readyReplicas") == 2
    assert rs["status"].get("availableReplicas", 0) == 0
    sim.run(30)
    assert sim.replicasets()[0]["status"]["availableReplicas"] == 2


def test_deleted_pods_are_replaced_and_finalized() -> None:
    sim = gpu_sim()
    sim.deploy(replicas=3)
    sim.run(60)
    victim = sim.pods()[0]["metadata"]["name"]
    sim.store.delete(sim.rt("pods"), NS, victim)
    assert sim.store.peek("pods", NS, victim)["metadata"]["deletionTimestamp"]
    sim.step()
    names = {p["metadata"]["name"] for p in sim.pods()}
    assert victim not in names and len(names) == 3
    assert sim.store.peek("pods", NS, victim) is not None  # still terminating
    assert sim.condition(sim.store.peek("pods", NS, victim), "Ready")["status"] == "False"
    sim.run(60)
    assert sim.store.peek("pods", NS, victim) is None
    assert sim.replicasets()[0]["status"]["availableReplicas"] == 3


# -- the kubelet -----------------------------------------------------------------------------------


def test_crash_loop_restarts_follow_the_kubelet_back_off() -> None:
    sim = gpu_sim(nodes=1)
    sim.runtime.broken.add("vllm:bad")
    sim.deploy(replicas=1, image="vllm:bad")
    sim.step(0.0)
    t0 = sim.clock.time()
    seen: dict[int, float] = {}
    messages: set[str] = set()

    def observe() -> None:
        (pod,) = sim.pods()
        (status,) = pod["status"].get("containerStatuses") or [{"restartCount": 0}]
        seen.setdefault(status["restartCount"], sim.clock.time() - t0)
        waiting = status.get("state", {}).get("waiting", {})
        if waiting.get("reason") == "CrashLoopBackOff":
            messages.add(waiting["message"])
        assert not status.get("ready", False)

    sim.run(1000, each=observe)
    # Starts at 10s; restarts at once, then after 10s, 20s, 40s, 80s, 160s, 300s, 300s.
    assert {k: round(v) for k, v in seen.items()} == {
        0: 1,
        1: 11,
        2: 21,
        3: 41,
        4: 81,
        5: 161,
        6: 321,
        7: 621,
        8: 921,
    }
    (pod,) = sim.pods()
    meta = pod["metadata"]
    suffix = f"restarting failed container=vllm pod={meta['name']}_{NS}({meta['uid']})"
    assert {
        f"back-off {d} {suffix}" for d in ("10s", "20s", "40s", "1m20s", "2m40s", "5m0s")
    } == messages
    (status,) = pod["status"]["containerStatuses"]
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert pod["status"]["phase"] == "Running"
    (backoff,) = sim.events("BackOff")
    assert backoff["type"] == "Warning" and backoff["count"] > 1


def test_a_clock_jump_replays_the_same_crash_loop_history() -> None:
    fine, coarse = gpu_sim(nodes=1), gpu_sim(nodes=1)
    for sim in (fine, coarse):
        sim.runtime.broken.add("vllm:bad")
        sim.deploy(replicas=1, image="vllm:bad")
    fine.run(700, step=1.0)
    coarse.run(700, step=350.0)
    fine.ctl.tick()
    coarse.ctl.tick()
    fine_status = fine.pods()[0]["status"]["containerStatuses"][0]
    coarse_status = coarse.pods()[0]["status"]["containerStatuses"][0]
    assert fine_status["restartCount"] == coarse_status["restartCount"] == 7
    assert fine_status["lastState"] == coarse_status["lastState"]
    assert fine_status["state"] == coarse_status["state"]


# -- the scheduler ---------------------------------------------------------------------------------


def test_scheduler_explains_why_no_node_fits() -> None:
    sim = Sim()
    for i in range(3):
        sim.node(f"gpu-{i}", gpus=1, labels={"pool": "gpu"})
    sim.node("cpu-0", gpus=0, labels={"pool": "cpu"})
    sim.node("cpu-1", gpus=0, labels={"pool": "cpu"})
    sim.node(
        "gpu-t",
        gpus=8,
        labels={"pool": "gpu"},
        taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
    )
    sim.deploy(replicas=4, pod_spec={"nodeSelector": {"pool": "gpu"}})
    sim.run(5)
    pending = [p for p in sim.pods() if not p["spec"].get("nodeName")]
    assert len(pending) == 1
    expected = (
        "0/6 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: present}, "
        "2 node(s) didn't match Pod's node affinity/selector, 3 Insufficient nvidia.com/gpu. "
        "preemption: 0/6 nodes are available: 3 No preemption victims found for incoming pod, "
        "3 Preemption is not helpful for scheduling."
    )
    cond = sim.condition(pending[0], "PodScheduled")
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", expected)
    (event,) = sim.events("FailedScheduling")
    assert (event["type"], event["message"]) == ("Warning", expected)
    assert pending[0]["status"]["phase"] == "Pending"
    # Tolerating the taint lets the new pod (and only it) use the tainted node.
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    sim.edit(lambda d: d["spec"]["template"]["spec"].__setitem__("tolerations", [toleration]))
    sim.run(300)
    assert sim.deployment()["status"]["availableReplicas"] == 4


def test_scheduler_honours_gpus_selectors_affinity_and_spreads() -> None:
    sim = Sim()
    sim.node("a100-0", gpus=2, labels={"gpu": "a100", "mem": "40"})
    sim.node("h100-0", gpus=2, labels={"gpu": "h100", "mem": "80"})
    sim.node("h100-1", gpus=2, labels={"gpu": "h100", "mem": "80", "spot": "true"})
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "gpu", "operator": "In", "values": ["h100", "b200"]},
                            {"key": "mem", "operator": "Gt", "values": ["48"]},
                            {"key": "spot", "operator": "DoesNotExist"},
                        ]
                    }
                ]
            }
        }
    }
    sim.deploy("big", replicas=3, pod_spec={"affinity": affinity})
    prefer = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 50,
                    "preference": {"matchExpressions": [{"key": "spot", "operator": "Exists"}]},
                }
            ]
        }
    }
    sim.deploy("batch", replicas=1, pod_spec={"affinity": prefer})
    sim.deploy("small", replicas=1, pod_spec={"nodeSelector": {"gpu": "a100"}})
    sim.run(5)
    placed = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in sim.pods()}
    big = [n for name, n in placed.items() if name.startswith("big-")]
    assert sorted(n for n in big if n) == ["h100-0", "h100-0"]  # two GPUs, the third waits
    assert big.count(None) == 1
    assert [n for name, n in placed.items() if name.startswith("batch-")] == ["h100-1"]
    assert [n for name, n in placed.items() if name.startswith("small-")] == ["a100-0"]


def test_scheduler_spreads_pods_over_the_least_allocated_nodes() -> None:
    sim = gpu_sim(nodes=4)
    sim.deploy(replicas=8)
    sim.run(5)
    per_node: dict[str, int] = {}
    for pod in sim.pods():
        per_node[pod["spec"]["nodeName"]] = per_node.get(pod["spec"]["nodeName"], 0) + 1
    assert per_node == {"gpu-0": 2, "gpu-1": 2, "gpu-2": 2, "gpu-3": 2}


def test_tolerations_cordon_and_not_ready_nodes() -> None:
    sim = Sim()
    sim.node("tainted", taints=[{"key": "dedicated", "value": "llm", "effect": "NoExecute"}])
    sim.node("sick", ready="False")
    sim.deploy("plain", replicas=1)
    sim.run(5)
    (pod,) = sim.pods()
    assert sim.condition(pod, "PodScheduled")["message"].startswith(
        "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: llm}, "
        "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."
    )
    sim.deploy("anything", replicas=1, pod_spec={"tolerations": [{"operator": "Exists"}]})
    sim.deploy(
        "exact",
        replicas=1,
        pod_spec={"tolerations": [{"key": "dedicated", "value": "llm", "effect": "NoExecute"}]},
    )
    sim.run(5)
    nodes = {p["metadata"]["name"].split("-")[0]: p["spec"].get("nodeName") for p in sim.pods()}
    assert nodes["exact"] == "tainted"
    assert nodes["anything"] in ("tainted", "sick")
    assert nodes["plain"] is None
    # Cordon every node: new pods are refused with the NodeUnschedulable reason.
    for name in ("tainted", "sick"):
        node = sim.store.get(sim.rt("nodes"), "", name)
        node["spec"]["unschedulable"] = True
        sim.store.update(sim.rt("nodes"), node)
    sim.deploy(
        "late", replicas=1, pod_spec={"tolerations": [{"operator": "Exists", "key": "dedicated"}]}
    )
    sim.run(5)
    late = next(p for p in sim.pods() if p["metadata"]["name"].startswith("late-"))
    assert "2 node(s) were unschedulable" in sim.condition(late, "PodScheduled")["message"]
    node = sim.store.get(sim.rt("nodes"), "", "tainted")
    node["spec"]["unschedulable"] = False
    sim.store.update(sim.rt("nodes"), node)
    sim.run(2)  # uncordoning retries the pending pod at once
    late = sim.store.peek("pods", NS, late["metadata"]["name"])
    assert late["spec"]["nodeName"] == "tainted"


def test_freed_gpus_let_a_pending_pod_schedule() -> None:
    sim = gpu_sim(nodes=1)
    sim.deploy("hog", replicas=8)
    sim.deploy("late", replicas=1)
    sim.run(60)
    (late,) = [p for p in sim.pods() if p["metadata"]["name"].startswith("late-")]
    assert "1 Insufficient nvidia.com/gpu" in sim.condition(late, "PodScheduled")["message"]
    sim.edit(lambda d: d["spec"].__setitem__("replicas", 7), name="hog")
    sim.run(60)
    late = sim.store.peek("pods", NS, late["metadata"]["name"])
    assert late["spec"]["nodeName"] == "gpu-0"
    assert sim.condition(late, "Ready")["status"] == "True"


def test_idle_cluster_has_nothing_pending() -> None:
    sim = gpu_sim()
    sim.deploy(replicas=4)
    sim.run(60)
    assert sim.ctl.idle()
    before = copy.deepcopy(sim.store.resource_version)
    sim.run(600, step=60.0)
    assert sim.store.resource_version == before
