"""kube-scheduler, reduced to what a GPU serving fleet exercises.

Binds pending pods to nodes honouring resource requests (GPUs included), nodeSelector,
node affinity, taints and tolerations, cordoned and NotReady nodes; prefers nodes by
preferred affinity and then least allocated, ties broken by name so runs are deterministic.
A pod that fits nowhere keeps `PodScheduled=False` (reason Unschedulable) with the real
FailedScheduling message, and is retried when nodes change, when a bound pod goes away, and
every five minutes (podMaxInUnschedulablePodsDuration).
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.simulator.clock import SimClock, rfc3339
from services.simulator.controllers import scheduling_rules as rules
from services.simulator.controllers.events import NORMAL, WARNING, EventRecorder
from services.simulator.controllers.quantities import DEFAULT_CPU, DEFAULT_MEMORY, pod_requests
from services.simulator.controllers.workqueue import WorkQueue
from services.simulator.store import Store

Obj = dict[str, Any]
Key = tuple[str, str]
COMPONENT = "default-scheduler"
UNSCHEDULABLE_RETRY_S = 300.0


@dataclass
class _Placed:
    node: str
    priority: int
    requests: dict[str, float]
    nonzero: dict[str, float]
    owner: str = ""


def _owner(pod: Obj) -> str:
    """The uid of the pod's controller (its ReplicaSet), the unit default spreading counts."""
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid", ""))
    return ""


def _nonzero(requests: dict[str, float]) -> dict[str, float]:
    out = dict(requests)
    out["cpu"] = requests.get("cpu") or DEFAULT_CPU
    out["memory"] = requests.get("memory") or DEFAULT_MEMORY
    return out


def _priority(pod: Obj) -> int:
    value = (pod.get("spec") or {}).get("priority", 0)
    return int(value) if isinstance(value, int) else 0


@dataclass
class _Candidates:
    """Nodes that pass the static filters for one kind of pod, best first (lazy max-heap)."""

    affinity: dict[str, int]
    owner: str = ""
    heap: list[tuple[int, str]] = field(default_factory=list)
    failure: str | None = None


class Scheduler:
    """Schedules pending pods; `schedule_pending()` is one pass over the queue."""

    def __init__(
        self, store: Store, clock: SimClock, *, events: EventRecorder | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.events = events or EventRecorder(store, clock)
        self.queue: WorkQueue[Key] = WorkQueue()
        self._placed: dict[Key, _Placed] = {}
        self._used: dict[str, dict[str, float]] = {}
        self._nonzero_used: dict[str, dict[str, float]] = {}
        self._on_node: dict[str, set[Key]] = {}
        # (controller uid, node) -> pods: the default PodTopologySpread constraint's count.
        self._owner_on_node: dict[tuple[str, str], int] = {}
        self._nodes: dict[str, rules.NodeInfo] | None = None
        self._unschedulable: set[Key] = set()
        for pod in store.items("pods"):
            self._observe_pod("ADDED", pod, None)
        store.add_listener(self._on_change)

    # -- change feed ---------------------------------------------------------

    def _on_change(self, plural: str, event: str, obj: Obj, old: Obj | None) -> None:
        if plural == "nodes":
            self._nodes = None
            self._retry_unschedulable()
        elif plural == "pods":
            self._observe_pod(event, obj, old)

    def _observe_pod(self, event: str, pod: Obj, old: Obj | None) -> None:
        meta = pod["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        spec = pod.get("spec") or {}
        phase = (pod.get("status") or {}).get("phase")
        if event == "DELETED" or phase in ("Succeeded", "Failed"):
            freed = self._unplace(key)
            self.queue.forget(key)
            self._unschedulable.discard(key)
            if freed:
                self._retry_unschedulable()
            return
        if spec.get("nodeName"):
            self.queue.forget(key)
            self._unschedulable.discard(key)
            self._place(key, pod)
            return
        if meta.get("deletionTimestamp") or spec.get("schedulerName", COMPONENT) != COMPONENT:
            return
        # A pod we marked unschedulable waits for a cluster change, unless its spec changed.
        if key not in self._unschedulable or (old is not None and old.get("spec") != spec):
            self._unschedulable.discard(key)
            self.queue.add(key)

    def _place(self, key: Key, pod: Obj) -> None:
        node = pod["spec"]["nodeName"]
        current = self._placed.get(key)
        if current is not None and current.node == node:
            return
        self._unplace(key)
        requests = pod_requests(pod)
        placed = _Placed(node, _priority(pod), requests, _nonzero(requests), _owner(pod))
        self._placed[key] = placed
        self._add_usage(node, placed, 1.0)
        self._on_node.setdefault(node, set()).add(key)

    def _unplace(self, key: Key) -> bool:
        placed = self._placed.pop(key, None)
        if placed is None:
            return False
        self._add_usage(placed.node, placed, -1.0)
        self._on_node.get(placed.node, set()).discard(key)
        return True

    def _add_usage(self, node: str, placed: _Placed, sign: float) -> None:
        if placed.owner:
            spread_key = (placed.owner, node)
            self._owner_on_node[spread_key] = self._owner_on_node.get(spread_key, 0) + int(sign)
        used = self._used.setdefault(node, {})
        for name, amount in placed.requests.items():
            used[name] = used.get(name, 0.0) + sign * amount
        used["pods"] = used.get("pods", 0.0) + sign
        nonzero = self._nonzero_used.setdefault(node, {})
        for name, amount in placed.nonzero.items():
            nonzero[name] = nonzero.get(name, 0.0) + sign * amount

    def _retry_unschedulable(self) -> None:
        for key in self._unschedulable:
            self.queue.add(key)
        self._unschedulable.clear()

    # -- scheduling ----------------------------------------------------------

    def pending(self) -> bool:
        """Whether pods wait to be scheduled (now, or at their next retry)."""
        return self.queue.pending()

    def node_usage(self, node: str) -> dict[str, float]:
        """Resources requested by the pods bound to `node` (GPUs under "nvidia.com/gpu")."""
        return dict(self._used.get(node, {}))

    def _node_infos(self) -> dict[str, rules.NodeInfo]:
        if self._nodes is None:
            self._nodes = {
                n["metadata"]["name"]: rules.NodeInfo.of(n)
                for n in sorted(self.store.items("nodes"), key=lambda o: o["metadata"]["name"])
            }
        return self._nodes

    def schedule_pending(self) -> int:
        """Try every pod that is due; returns how many were bound."""
        now = self.clock.time()
        pods = []
        for namespace, name in self.queue.take(now):
            pod = self.store.peek("pods", namespace, name)
            if pod is None or (pod.get("spec") or {}).get("nodeName"):
                continue
            if pod["metadata"].get("deletionTimestamp"):
                continue
            pods.append(pod)
        if not pods:
            return 0
        # The active queue pops by priority, then by how long a pod has waited.
        pods.sort(
            key=lambda p: (
                -_priority(p),
                p["metadata"].get("creationTimestamp", ""),
                p["metadata"]["name"],
            )
        )
        nodes = self._node_infos()
        groups: dict[str, _Candidates] = {}
        bound = 0
        for pod in pods:
            signature = self._signature(pod)
            group = groups.get(signature)
            if group is None:
                group = groups[signature] = self._candidates(pod, nodes)
            requests = pod_requests(pod)
            node = None if group.failure else self._pick(group, requests, nodes)
            if node is None:
                if group.failure is None:
                    group.failure = self._fit_error(pod, requests, nodes)
                self._mark_unschedulable(pod, group.failure, now)
                continue
            self._bind(pod, node, now)
            bound += 1
        return bound

    @staticmethod
    def _signature(pod: Obj) -> str:
        spec = pod.get("spec") or {}
        return json.dumps(
            [
                spec.get("nodeSelector"),
                rules.node_affinity(pod),
                spec.get("tolerations"),
                sorted(pod_requests(pod).items()),
                _priority(pod),
                spec.get("preemptionPolicy"),
                _owner(pod),
            ],
            sort_keys=True,
        )

    def _candidates(self, pod: Obj, nodes: dict[str, rules.NodeInfo]) -> _Candidates:
        passing = [n for n in nodes.values() if rules.static_reason(pod, n) is None]
        raw = {n.name: rules.preferred_weight(pod, n) for n in passing}
        top = max(raw.values(), default=0)
        # NodeAffinity scores are normalized to 0..100 and weigh twice LeastAllocated's.
        affinity = {name: (2 * w * 100 // top if top else 0) for name, w in raw.items()}
        group = _Candidates(affinity, _owner(pod))
        nonzero = _nonzero(pod_requests(pod))
        group.heap = [(-self._score(group, n, nonzero), n.name) for n in passing]
        heapq.heapify(group.heap)
        return group

    def _score(self, group: _Candidates, node: rules.NodeInfo, nonzero: dict[str, float]) -> int:
        used = self._nonzero_used.get(node.name, {})
        score = group.affinity.get(node.name, 0) + rules.least_allocated(nonzero, node, used)
        if group.owner:
            # System-default PodTopologySpread (weight 2): fewer siblings on a node is better.
            score += 200 // (1 + self._owner_on_node.get((group.owner, node.name), 0))
        return score

    def _pick(
        self, group: _Candidates, requests: dict[str, float], nodes: dict[str, rules.NodeInfo]
    ) -> str | None:
        nonzero = _nonzero(requests)
        while group.heap:
            negative, name = group.heap[0]
            node = nodes[name]
            score = self._score(group, node, nonzero)
            if score != -negative:
                heapq.heapreplace(group.heap, (-score, name))  # scores only fall as nodes fill
                continue
            if not rules.resource_reasons(requests, node, self._used.get(name, {})):
                return name
            heapq.heappop(group.heap)
        return None

    def _fit_error(
        self, pod: Obj, requests: dict[str, float], nodes: dict[str, rules.NodeInfo]
    ) -> str:
        """framework.FitError.Error() with DefaultPreemption's post-filter message."""
        if not nodes:
            return "no nodes available to schedule pods"
        reasons: dict[str, int] = {}
        preemption: dict[str, int] = {}
        priority = _priority(pod)
        for node in nodes.values():
            static = rules.static_reason(pod, node)
            if static is not None:
                reasons[static] = reasons.get(static, 0) + 1
                preemption[rules.NOT_HELPFUL] = preemption.get(rules.NOT_HELPFUL, 0) + 1
                continue
            used = self._used.get(node.name, {})
            failed = rules.resource_reasons(requests, node, used)
            for reason in failed:
                reasons[reason] = reasons.get(reason, 0) + 1
            if not failed:
                continue
            # selectVictimsOnNode: only lower-priority pods may be evicted.
            victims = [
                self._placed[k]
                for k in self._on_node.get(node.name, ())
                if k in self._placed and self._placed[k].priority < priority
            ]
            after = dict(used)
            for victim in victims:
                for name, amount in victim.requests.items():
                    after[name] = after.get(name, 0.0) - amount
                after["pods"] = after.get("pods", 0.0) - 1
            still = rules.resource_reasons(requests, node, after) if victims else []
            for reason in still or [rules.NO_VICTIMS]:
                preemption[reason] = preemption.get(reason, 0) + 1
        total = len(nodes)

        def histogram(counts: dict[str, int]) -> str:
            return ", ".join(sorted(f"{count} {reason}" for reason, count in counts.items()))

        message = f"0/{total} nodes are available: {histogram(reasons)}."
        if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
            return f"{message} preemption: not eligible due to preemptionPolicy=Never."
        return f"{message} preemption: 0/{total} nodes are available: {histogram(preemption)}."

    def _mark_unschedulable(self, pod: Obj, message: str, now: float) -> None:
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        self._unschedulable.add(key)
        self.queue.schedule(key, now + UNSCHEDULABLE_RETRY_S)
        stamp = rfc3339(datetime.fromtimestamp(now, UTC))

        def change(p: Obj) -> None:
            status = p.setdefault("status", {})
            conditions = status.setdefault("conditions", [])
            for cond in conditions:
                if cond.get("type") == "PodScheduled":
                    if cond.get("status") != "False":
                        cond["lastTransitionTime"] = stamp
                    cond.update(status="False", reason="Unschedulable", message=message)
                    cond.setdefault("lastProbeTime", None)
                    return
            conditions.append(
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": stamp,
                    "reason": "Unschedulable",
                    "message": message,
                }
            )

        self.store.mutate("pods", meta["namespace"], meta["name"], change)
        self.events.record(pod, WARNING, "FailedScheduling", message, component=COMPONENT)

    def _bind(self, pod: Obj, node: str, now: float) -> None:
        meta = pod["metadata"]
        stamp = rfc3339(datetime.fromtimestamp(now, UTC))

        def change(p: Obj) -> None:
            p["spec"]["nodeName"] = node
            status = p.setdefault("status", {})
            kept = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            status["conditions"] = [
                *kept,
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": stamp,
                },
            ]

        bound = self.store.mutate("pods", meta["namespace"], meta["name"], change)
        if bound is not None:
            self.events.record(
                bound,
                NORMAL,
                "Scheduled",
                f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}",
                component=COMPONENT,
            )
