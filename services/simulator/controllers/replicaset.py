"""The ReplicaSet controller (kube-controller-manager pkg/controller/replicaset).

Keeps each ReplicaSet's count of active pods at `spec.replicas`: creates pods from the
template (named `<rs>-<5 random chars>`, owned by the ReplicaSet), deletes the surplus in the
order the real controller ranks them (unscheduled, pending, not ready, then newest first), and
writes `status` (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas honouring
`minReadySeconds`, observedGeneration).
"""

from __future__ import annotations

import copy
from typing import Any

from services.simulator.clock import SimClock
from services.simulator.controllers.events import NORMAL, EventRecorder
from services.simulator.controllers.ownership import OwnerIndex, controller_ref, controller_uid
from services.simulator.controllers.pod_state import (
    available_at,
    deletion_rank,
    is_active,
    is_ready,
)
from services.simulator.controllers.quantities import qos_class
from services.simulator.controllers.workqueue import WorkQueue
from services.simulator.errors import ApiError
from services.simulator.selectors import LabelSelector, SelectorError, selector_from_spec
from services.simulator.store import Store, random_suffix

Obj = dict[str, Any]
Key = tuple[str, str]
COMPONENT = "replicaset-controller"
BURST_REPLICAS = 500  # the controller's --concurrent burst: at most this many creates per sync
_MAX_GENERATED_BASE = 58  # 63 minus the 5 random characters the API server appends


def owner_reference(obj: Obj) -> Obj:
    """A controller ownerReference to `obj` (metav1.NewControllerRef)."""
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


class ReplicaSetController:
    """Reconciles ReplicaSets marked dirty by store changes; `tick()` runs what is due."""

    def __init__(
        self,
        store: Store,
        clock: SimClock,
        *,
        events: EventRecorder | None = None,
        pods: OwnerIndex | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.events = events or EventRecorder(store, clock)
        self.pods = pods or OwnerIndex(store, "pods")
        self.queue: WorkQueue[Key] = WorkQueue()
        self._rt_pods = store.registry.by_plural("pods")
        for rs in store.items("replicasets"):
            self.queue.add((rs["metadata"]["namespace"], rs["metadata"]["name"]))
        store.add_listener(self._on_change)

    # -- change feed ---------------------------------------------------------

    def _on_change(self, plural: str, event: str, obj: Obj, old: Obj | None) -> None:
        meta = obj["metadata"]
        if plural == "replicasets":
            key = (meta["namespace"], meta["name"])
            if event == "DELETED":
                self.queue.forget(key)
            else:
                self.queue.add(key)
        elif plural == "pods":
            ref = controller_ref(obj)
            old_ref = controller_ref(old) if old is not None else None
            for r in (ref, old_ref):
                if r is not None and r.get("kind") == "ReplicaSet":
                    self.queue.add((meta["namespace"], str(r.get("name", ""))))
            old_labels = (old or {}).get("metadata", {}).get("labels")
            relabelled = event == "ADDED" or old_ref is not None or old_labels != meta.get("labels")
            if ref is None and event != "DELETED" and relabelled:
                # An orphan may be adopted by any ReplicaSet whose selector matches it.
                for rs in self.store.items("replicasets", meta["namespace"]):
                    self.queue.add((meta["namespace"], rs["metadata"]["name"]))

    # -- driving -------------------------------------------------------------

    def tick(self) -> None:
        """Reconcile every ReplicaSet that changed or has a timer due."""
        for namespace, name in sorted(self.queue.take(self.clock.time())):
            self.reconcile(namespace, name)

    def reconcile_all(self) -> None:
        for rs in sorted(self.store.items("replicasets"), key=lambda o: o["metadata"]["name"]):
            self.reconcile(rs["metadata"]["namespace"], rs["metadata"]["name"])

    def pending(self) -> bool:
        return self.queue.pending()

    # -- one ReplicaSet ------------------------------------------------------

    def reconcile(self, namespace: str, name: str) -> None:
        """syncReplicaSet: claim pods, create or delete to match replicas, write status."""
        key = (namespace, name)
        rs = self.store.peek("replicasets", namespace, name)
        if rs is None:
            self.queue.forget(key)
            return
        try:
            selector = selector_from_spec(rs["spec"].get("selector"))
        except SelectorError:
            return
        pods = self._claim_pods(rs, selector)
        active = [p for p in pods if is_active(p)]
        if not rs["metadata"].get("deletionTimestamp"):
            if self._manage_replicas(rs, active):
                self.queue.add(key)  # burst limit reached: carry on next tick
            uid = rs["metadata"]["uid"]
            active = [p for p in self.pods.owned(uid) if is_active(p)]
        self._update_status(rs, active)

    def _claim_pods(self, rs: Obj, selector: LabelSelector) -> list[Obj]:
        """ControllerRefManager.ClaimPods: adopt matching orphans, release non-matching pods."""
        uid = rs["metadata"]["uid"]
        namespace = rs["metadata"]["namespace"]
        claimed: list[Obj] = []
        for pod in self.pods.owned(uid):
            if selector.matches(pod["metadata"].get("labels")):
                claimed.append(pod)
                continue

            def release(p: Obj) -> None:
                refs = p["metadata"].get("ownerReferences") or []
                p["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]

            self.store.mutate("pods", namespace, pod["metadata"]["name"], release)
        if rs["metadata"].get("deletionTimestamp"):
            return claimed
        for pod in self.pods.orphans(namespace):
            if pod["metadata"].get("deletionTimestamp") or not selector.matches(
                pod["metadata"].get("labels")
            ):
                continue
            ref = owner_reference(rs)

            def adopt(p: Obj, ref: Obj = ref) -> None:
                p["metadata"].setdefault("ownerReferences", []).append(ref)

            adopted = self.store.mutate("pods", namespace, pod["metadata"]["name"], adopt)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    def _manage_replicas(self, rs: Obj, active: list[Obj]) -> bool:
        """Create or delete pods; True when the burst limit left work for the next sync."""
        wanted = int(rs["spec"].get("replicas", 1))
        diff = len(active) - wanted
        if diff < 0:
            count = min(-diff, BURST_REPLICAS)
            for _ in range(count):
                if not self._create_pod(rs):
                    return False
            return -diff > count
        if diff > 0:
            count = min(diff, BURST_REPLICAS)
            for pod in self._pods_to_delete(rs, active, count):
                self._delete_pod(rs, pod)
            return diff > count
        return False

    def _create_pod(self, rs: Obj) -> bool:
        meta = rs["metadata"]
        template = rs["spec"].get("template") or {}
        tmeta = template.get("metadata") or {}
        base = f"{meta['name']}-"[:_MAX_GENERATED_BASE]
        name = base + random_suffix(self.store.rng)
        while self.store.peek("pods", meta["namespace"], name) is not None:
            name = base + random_suffix(self.store.rng)
        pod: Obj = {
            "metadata": {
                "name": name,
                "generateName": base,
                "namespace": meta["namespace"],
                "labels": dict(tmeta.get("labels") or {}),
                "ownerReferences": [owner_reference(rs)],
            },
            "spec": copy.deepcopy(template.get("spec") or {}),
        }
        if tmeta.get("annotations"):
            pod["metadata"]["annotations"] = dict(tmeta["annotations"])
        if tmeta.get("finalizers"):
            pod["metadata"]["finalizers"] = list(tmeta["finalizers"])
        pod["status"] = {"phase": "Pending", "qosClass": qos_class(pod)}
        try:
            self.store.create(self._rt_pods, pod)
        except ApiError:
            return False
        self.events.record(
            rs, NORMAL, "SuccessfulCreate", f"Created pod: {name}", component=COMPONENT
        )
        return True

    def _pods_to_delete(self, rs: Obj, active: list[Obj], count: int) -> list[Obj]:
        if count >= len(active):
            return list(active)
        # Pods of sibling ReplicaSets (same Deployment) on the same node make a pod a better
        # victim: the "doubled up" rule spreads what is left.
        owner = controller_uid(rs)
        related = list(active)
        if owner:
            for sibling in self.store.items("replicasets", rs["metadata"]["namespace"]):
                if sibling is rs or controller_uid(sibling) != owner:
                    continue
                related += [p for p in self.pods.owned(sibling["metadata"]["uid"]) if is_active(p)]
        on_node: dict[str, int] = {}
        for pod in related:
            node = pod["spec"].get("nodeName", "")
            if node:
                on_node[node] = on_node.get(node, 0) + 1
        now = self.clock.time()
        ranked = sorted(
            active,
            key=lambda p: deletion_rank(p, on_node.get(p["spec"].get("nodeName", ""), 0), now),
        )
        return ranked[:count]

    def _delete_pod(self, rs: Obj, pod: Obj) -> None:
        name = pod["metadata"]["name"]
        try:
            self.store.delete(self._rt_pods, rs["metadata"]["namespace"], name)
        except ApiError:
            return
        self.events.record(
            rs, NORMAL, "SuccessfulDelete", f"Deleted pod: {name}", component=COMPONENT
        )

    def _update_status(self, rs: Obj, active: list[Obj]) -> None:
        spec = rs["spec"]
        min_ready = int(spec.get("minReadySeconds", 0) or 0)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        now = self.clock.time()
        fully = ready = available = 0
        next_available: float | None = None
        for pod in active:
            labels = pod["metadata"].get("labels") or {}
            if all(labels.get(k) == v for k, v in template_labels.items()):
                fully += 1
            if is_ready(pod):
                ready += 1
                at = available_at(pod, min_ready)
                if at is not None and at <= now:
                    available += 1
                elif at is not None and (next_available is None or at < next_available):
                    next_available = at
        key = (rs["metadata"]["namespace"], rs["metadata"]["name"])
        if next_available is not None:
            self.queue.schedule(key, next_available)
        else:
            self.queue.cancel(key)
        status: Obj = {"replicas": len(active)}
        for field, value in (
            ("fullyLabeledReplicas", fully),
            ("readyReplicas", ready),
            ("availableReplicas", available),
            ("observedGeneration", int(rs["metadata"].get("generation", 0))),
        ):
            if value:
                status[field] = value
        if (rs.get("status") or {}).get("conditions"):
            status["conditions"] = rs["status"]["conditions"]
        if status != rs.get("status"):
            self.store.mutate(
                "replicasets", key[0], key[1], lambda o: o.__setitem__("status", status)
            )
