"""The trainer's faults for a running drill: rules for the simulator's fault API
(`POST /_sim/faults`) and changes a colleague or a failing node would make, sent through the
API server with the simulator's admin context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.drill import Edit, Variant, start_bad_rollout
from services.errors import ConfigError, SkewmitError

DRILL_REASON = "SkewmitDrill"  # on a node condition the drill set, so `clear` finds it


@dataclass(frozen=True)
class Fault:
    """A fault the trainer injects: simulator fault rules (POST /_sim/faults) and/or edits a
    colleague makes to the Deployment through the API server."""

    name: str
    what: str
    rules: tuple[dict[str, Any], ...] = ()
    edits: tuple[Edit, ...] = ()
    node_not_ready: bool = False  # a node running a serving pod reports NotReady


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault("api-latency", "every API request answers 2 s late", ({"latency_s": 2.0},)),
        Fault(
            "api-errors",
            "a third of API requests fail with 503",
            ({"error_rate": 0.33, "error_code": 503},),
        ),
        Fault(
            "conflict",
            "the next 2 writes to the Deployment lose a race (409 Conflict)",
            ({"verb": "patch", "resource": "deployments", "conflicts": 2},),
        ),
        Fault(
            "metrics-down",
            "the serving pods' metrics stop answering (every Prometheus scrape fails with 503)",
            ({"resource": "metrics", "error_rate": 1.0, "error_code": 503},),
        ),
        Fault(
            "exec-fail",
            "kubectl exec into pods fails (nvidia-smi cannot be read)",
            ({"verb": "exec", "exec_fail": True},),
        ),
        Fault(
            "colleague",
            "a colleague raises --max-num-seqs to 512 on the Deployment (a concurrent rollout)",
            edits=(Edit("set-arg", "--max-num-seqs", "512"),),
        ),
        Fault(
            "crash-loop",
            "a colleague rolls out --max-model-len 1048576: the new pods crash-loop",
            edits=(Edit("set-arg", "--max-model-len", "1048576"),),
        ),
        Fault(
            "node-notready",
            "a node running serving pods stops reporting Ready",
            node_not_ready=True,
        ),
        Fault("clear", "remove the simulator faults and make drill-failed nodes Ready again"),
    )
}


def fault_named(name: str) -> Fault:
    """Raises ConfigError for an unknown fault."""
    if name not in FAULTS:
        raise ConfigError(f"unknown fault {name!r}; known: {', '.join(sorted(FAULTS))}")
    return FAULTS[name]


def inject(cluster: Any, namespace: str, deployment: str, fault: Fault) -> str:
    """Inject `fault` into the simulator behind `cluster` (a KubeCluster with the admin
    context): its rules replace the simulator's fault list, its edits go to the Deployment
    through the API server. Returns what was done. Raises the cluster's errors (Forbidden for
    a non-admin context, NotFound when the server is no simulator)."""
    done = []
    if fault.rules or fault.name == "clear":
        # The simulator's trainer control, reached through the same authenticated client.
        cluster._request(
            "POST", "/_sim/faults", body={"faults": list(fault.rules)}, what="set simulator faults"
        )
        done.append("simulator faults set" if fault.rules else "simulator faults cleared")
    if fault.node_not_ready:
        node = _serving_node(cluster, namespace, deployment)
        _set_ready(cluster, node, False)
        done.append(f"node/{node} NotReady")
    if fault.name == "clear":
        for node in cluster.list("Node"):
            conditions = (node.get("status") or {}).get("conditions") or []
            if any(c.get("reason") == DRILL_REASON for c in conditions):
                _set_ready(cluster, node["metadata"]["name"], True)
                done.append(f"node/{node['metadata']['name']} Ready")
    if fault.edits:
        start_bad_rollout(
            cluster, namespace, deployment, Variant(fault.name, "", fault.what, (), fault.edits)
        )
        done.append(f"deployment/{deployment} changed")
    return f"{fault.name}: {fault.what} ({'; '.join(done)})"


def _serving_node(cluster: Any, namespace: str, deployment: str) -> str:
    """A node a serving pod runs on. Raises SkewmitError when none runs."""
    live = cluster.get("Deployment", namespace, deployment)
    labels = live["spec"]["selector"].get("matchLabels", {})
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    for pod in cluster.list("Pod", namespace, label_selector=selector):
        node = pod["spec"].get("nodeName")
        if node:
            return str(node)
    raise SkewmitError(f"no pod of deployment/{deployment} runs on a node yet")


def _set_ready(cluster: Any, node: str, ready: bool) -> None:
    condition = {
        "type": "Ready",
        "status": "True" if ready else "False",
        "reason": "KubeletReady" if ready else DRILL_REASON,
        "message": "kubelet is posting ready status"
        if ready
        else "Kubelet stopped posting node status (drill)",
    }
    # A merge patch replaces the conditions list whole: keep the others.
    live = cluster.get("Node", "", node)
    conditions = [
        c for c in (live.get("status") or {}).get("conditions") or [] if c.get("type") != "Ready"
    ]
    cluster._request(
        "PATCH",
        cluster._path("Node", "", node, "status"),
        body={"status": {"conditions": [*conditions, condition]}},
        content_type="application/merge-patch+json",
        what=f"patch node {node} status",
    )
