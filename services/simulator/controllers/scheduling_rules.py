"""The scheduler's filters and scores over plain node and pod dicts.

Filters run in kube-scheduler's default order (NodeUnschedulable, TaintToleration,
NodeAffinity, NodeResourcesFit) and a node fails on the first that rejects it, with the
plugin's own reason text, so the FailedScheduling message adds up the way the real one does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.simulator.controllers.quantities import allocatable

Obj = dict[str, Any]

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"


@dataclass(frozen=True)
class NodeInfo:
    """What the scheduler's snapshot holds about a node, parsed once per node change."""

    name: str
    labels: dict[str, str]
    taints: tuple[Obj, ...]
    unschedulable: bool
    allocatable: dict[str, float]

    @classmethod
    def of(cls, node: Obj) -> NodeInfo:
        taints = [dict(t) for t in (node.get("spec") or {}).get("taints") or []]
        # The node lifecycle controller taints nodes whose Ready condition is not True.
        for cond in (node.get("status") or {}).get("conditions") or []:
            if cond.get("type") != "Ready" or cond.get("status") == "True":
                continue
            key = NOT_READY_TAINT if cond.get("status") == "False" else UNREACHABLE_TAINT
            if not any(t.get("key") == key and t.get("effect") == "NoSchedule" for t in taints):
                taints.append({"key": key, "effect": "NoSchedule"})
        return cls(
            name=node["metadata"]["name"],
            labels=dict(node["metadata"].get("labels") or {}),
            taints=tuple(taints),
            unschedulable=bool((node.get("spec") or {}).get("unschedulable")),
            allocatable=allocatable(node),
        )


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """v1.Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def untolerated_taint(taints: tuple[Obj, ...], tolerations: list[Obj]) -> Obj | None:
    """The first NoSchedule/NoExecute taint no toleration covers."""
    for taint in taints:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def _expression_matches(expr: Obj, labels: dict[str, str]) -> bool:
    key = str(expr.get("key", ""))
    operator = expr.get("operator")
    values = [str(v) for v in expr.get("values") or []]
    have = labels.get(key)
    if operator == "In":
        return have is not None and have in values
    if operator == "NotIn":
        return have is None or have not in values
    if operator == "Exists":
        return have is not None
    if operator == "DoesNotExist":
        return have is None
    if operator in ("Gt", "Lt") and have is not None and len(values) == 1:
        try:
            left, right = int(have), int(values[0])
        except ValueError:
            return False
        return left > right if operator == "Gt" else left < right
    return False


def term_matches(term: Obj, node: NodeInfo) -> bool:
    """A NodeSelectorTerm: all expressions and fields match; an empty term matches nothing."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    if not all(_expression_matches(e, node.labels) for e in expressions):
        return False
    return all(_expression_matches(f, {"metadata.name": node.name}) for f in fields)


def node_affinity(pod: Obj) -> Obj:
    return ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}


def affinity_matches(pod: Obj, node: NodeInfo) -> bool:
    """nodeSelector and requiredDuringSchedulingIgnoredDuringExecution."""
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    if any(node.labels.get(k) != v for k, v in selector.items()):
        return False
    required = node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    return any(term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])


def preferred_weight(pod: Obj, node: NodeInfo) -> int:
    total = 0
    for pref in node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution") or []:
        if term_matches(pref.get("preference") or {}, node):
            total += int(pref.get("weight", 0))
    return total


def static_reason(pod: Obj, node: NodeInfo) -> str | None:
    """Why a node is out regardless of what runs on it (None: it passes these filters)."""
    tolerations = list((pod.get("spec") or {}).get("tolerations") or [])
    if node.unschedulable and not any(
        tolerates(t, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}) for t in tolerations
    ):
        return REASON_UNSCHEDULABLE
    taint = untolerated_taint(node.taints, tolerations)
    if taint is not None:
        return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"
    if not affinity_matches(pod, node):
        return REASON_AFFINITY
    return None


def resource_reasons(
    requests: dict[str, float], node: NodeInfo, used: dict[str, float]
) -> list[str]:
    """NodeResourcesFit's reasons: "Too many pods", "Insufficient <resource>"."""
    reasons = []
    pods_allowed = node.allocatable.get("pods")
    if pods_allowed is not None and used.get("pods", 0.0) + 1 > pods_allowed:
        reasons.append("Too many pods")
    for name in sorted(requests, key=lambda n: (n not in ("cpu", "memory"), n)):
        amount = requests[name]
        if amount <= 0 or name == "pods":
            continue
        if used.get(name, 0.0) + amount > node.allocatable.get(name, 0.0) + 1e-9:
            reasons.append(f"Insufficient {name}")
    return reasons


def least_allocated(
    nonzero_requests: dict[str, float], node: NodeInfo, nonzero_used: dict[str, float]
) -> int:
    """NodeResourcesFit LeastAllocated over cpu and memory: the default scoring resources.

    Extended resources such as nvidia.com/gpu only filter, they do not score, so a pod with
    no GPU preference prefers an empty small-GPU node over a busy big one: how unpinned pods
    land on the wrong GPU class in a real cluster.
    """
    names = ["cpu", "memory"]
    total = 0
    for name in names:
        capacity = node.allocatable.get(name, 0.0)
        wanted = nonzero_used.get(name, 0.0) + nonzero_requests.get(name, 0.0)
        if capacity > 0 and wanted <= capacity:
            total += int((capacity - wanted) * 100 // capacity)
    return total // len(names)
