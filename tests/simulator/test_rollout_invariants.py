"""A nodeSelector rollout seen change by change through the store's feed (no HTTP): the
invariants a real Deployment controller keeps, and the order it replaces old pods in.

tests/services/test_hardware.py once passed a wait mid-rollout: it read "4 ready on an H100"
and "4 pods" from two lists, while the old pod on the A10G still ran. The feed below shows
why that was the test's race, not the simulator's: the old ReplicaSet only ever scales down,
no pod lands on a node its template excludes, and the pod on the odd node is the last old pod
to go (the doubled-up rule), so mid-rollout both counts hold while it runs.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.simulator.test_controllers import NS, FakeRuntime, Sim

Obj = dict[str, Any]
PRODUCT = "nvidia.com/gpu.product"
H100, A10G = "NVIDIA-H100-80GB-HBM3", "NVIDIA-A10G"
# hardware-only's GPU nodes: two H100 nodes of four GPUs and an A10G node of one.
NODES = {"h100-0": H100, "h100-1": H100, "a10g-0": A10G}
REPLICAS, SURGE = 4, 1  # the default 25% of 4, rounded up


class Feed:
    """Each store change to the rollout's ReplicaSets and pods, as what it left behind."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.replicas: list[dict[str, int]] = []  # ReplicaSet name -> spec.replicas
        self.live: list[list[Obj]] = []  # pods not terminating, after each change
        self.terminated: list[str] = []  # pods in the order they were told to stop
        sim.store.add_listener(self.on_change)

    def on_change(self, plural: str, event: str, obj: Obj, old: Obj | None) -> None:
        if plural not in ("replicasets", "pods"):
            return
        store = self.sim.store
        stopping = obj["metadata"].get("deletionTimestamp") or event == "DELETED"
        if plural == "pods" and stopping and obj["metadata"]["name"] not in self.terminated:
            self.terminated.append(obj["metadata"]["name"])
        self.replicas.append(
            {rs["metadata"]["name"]: rs["spec"]["replicas"] for rs in store.items("replicasets")}
        )
        self.live.append(
            [p for p in store.items("pods", NS) if not p["metadata"].get("deletionTimestamp")]
        )


def ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def cluster_with_one_pod_on_the_a10g() -> Sim:
    sim = Sim(FakeRuntime(start_s=10.0, ready_s=20.0))
    for name, product in NODES.items():
        sim.node(name, gpus=4 if product == H100 else 1, labels={PRODUCT: product})
    sim.deploy(replicas=REPLICAS)
    sim.run(60)
    on = sorted(NODES[p["spec"]["nodeName"]] for p in sim.pods() if ready(p))
    assert on == [A10G, H100, H100, H100]  # spread one a node: one lands on the A10G
    return sim


@pytest.mark.parametrize("affinity", [False, True])
def test_a_node_selector_rollout_keeps_the_controllers_invariants(affinity: bool) -> None:
    sim = cluster_with_one_pod_on_the_a10g()
    (old_rs,) = sim.replicasets()
    old_name = old_rs["metadata"]["name"]
    old_pods = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in sim.pods()}
    feed = Feed(sim)
    terms = [{"matchExpressions": [{"key": PRODUCT, "operator": "In", "values": [H100]}]}]
    pin: Obj = (
        {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
                }
            }
        }
        if affinity
        else {"nodeSelector": {PRODUCT: H100}}
    )
    sim.edit(lambda d: d["spec"]["template"]["spec"].update(pin))
    sim.run(300, step=0.5)

    # The old ReplicaSet only ever scales down, change by change.
    sizes = [r[old_name] for r in feed.replicas]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] == 0
    # Never more than replicas + maxSurge, counted in the specs or in live pods.
    assert max(sum(r.values()) for r in feed.replicas) == REPLICAS + SURGE
    assert max(len(live) for live in feed.live) <= REPLICAS + SURGE
    # No pod of the new template is ever bound to the A10G.
    new_on = {
        p["spec"].get("nodeName")
        for live in feed.live
        for p in live
        if p["metadata"]["name"] not in old_pods
    }
    assert A10G not in {NODES.get(str(n)) for n in new_on}
    # The old pod on the A10G is the last old pod told to stop: mid-rollout "4 ready on an
    # H100" (old pods included) and "4 pods" both hold while it still runs.
    old_order = [name for name in feed.terminated if name in old_pods]
    assert sorted(old_order) == sorted(old_pods)
    assert NODES[old_pods[old_order[-1]]] == A10G
    mid = [
        live
        for live in feed.live
        if any(p["metadata"]["name"] == old_order[-1] for p in live)
        and any(p["metadata"]["name"] not in old_pods for p in live)
    ]
    assert any(
        sum(1 for p in live if ready(p) and NODES.get(p["spec"].get("nodeName", "")) == H100) == 4
        for live in mid
    )
    assert any(len(live) == REPLICAS for live in mid)
    # Done: four ready pods of the new template, all on an H100.
    final = sim.pods()
    assert len(final) == REPLICAS and all(ready(p) for p in final)
    assert {NODES[p["spec"]["nodeName"]] for p in final} == {H100}
