"""Step 5: hardware skew. Which GPU each pod really runs on (node labels, nvidia-smi in the
container, DCGM), which class it should run on, and the plans that move it there: a
nodeSelector or required node affinity, a cordon, a NoSchedule taint, deleting wrong pods.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from services.drift import PODS_NAMED, aggregate_pod_findings
from services.errors import InvalidError
from services.gpu import (
    GPU_LABELS,
    expected_gpu_class,
    gpu_class_from_name,
    gpu_rows,
    node_selector_for,
    same_class,
)
from services.kube import Cluster
from services.models import Change, Finding, GpuReading, HardwareReport, Plan, Severity, Step
from services.names import check_name
from services.rollout import history
from services.smi_reads import NOT_READ_YET, NodeSmiCache, cache_for, is_ready
from services.smi_reads import NVIDIA_SMI_ARGV as NVIDIA_SMI_ARGV

Obj = dict[str, Any]
_REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
# Label syntax (k8s.io/apimachinery validation): used for taint keys and values.
_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)"
_TAINT_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_NAME}$")
_TAINT_VALUE = re.compile(rf"^{_NAME}?$")


# --- inspection ---------------------------------------------------------------------------


def _selector(deployment: Obj) -> str:
    labels = deployment["spec"]["selector"].get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _lkg_template(
    cluster: Cluster, namespace: str, deployment: str
) -> tuple[Obj | None, int | None]:
    lkg = next((r for r in history(cluster, namespace, deployment) if r.last_known_good), None)
    if lkg is None:
        return None, None
    rs = cluster.get("ReplicaSet", namespace, lkg.replicaset)
    template: Obj = rs["spec"]["template"]
    return template, lkg.number


def _deployment_pods(cluster: Cluster, namespace: str, deployment: str) -> tuple[Obj, list[Obj]]:
    """The Deployment and its pods (by its selector), sorted by name, as step 5 reads them."""
    dep = cluster.get("Deployment", namespace, deployment)
    pods = cluster.list("Pod", namespace, label_selector=_selector(dep))
    return dep, sorted(pods, key=lambda p: str(p["metadata"]["name"]))


def gpu_inspection(
    cluster: Cluster,
    namespace: str,
    deployment: str,
    *,
    dcgm: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
    configured: str | None = None,
    smi_cache: NodeSmiCache | None = None,
) -> HardwareReport:
    """One row per pod of the Deployment: pod -> node -> GPU labels -> nvidia-smi (run with the
    fixed NVIDIA_SMI_ARGV in one pod per node, remembered in ``smi_cache``, by default the
    connection's: services.smi_reads) -> DCGM ``modelName`` (``dcgm``, by pod name, or what it
    returns when it is a callable: asked for once the cluster's reads are done); a pod
    shows its node's reading, its note naming the pod it was read in. The expected class
    comes from the last-known-good revision's nodeSelector or affinity, else the majority of
    ready pods, else ``configured``. A pod that is not running or an exec
    that fails gives a note on its row, never an exception.

    Raises NotFoundError for an unknown Deployment, and what the cluster raises for the reads
    (ForbiddenError, UnreachableError).
    """
    dep, pods = _deployment_pods(cluster, namespace, deployment)
    nodes = cluster.list("Node")
    reads = (smi_cache or cache_for(cluster)).read(cluster, pods, nodes)
    smi, why_not = reads.by_pod, reads.notes
    readings = dict((dcgm() if callable(dcgm) else dcgm) or {})
    observed = gpu_rows(pods, nodes, smi, readings, None)
    healthy = [row.gpu_class for row, pod in zip(observed, pods, strict=True) if is_ready(pod)]
    lkg_template, lkg_revision = _lkg_template(cluster, namespace, deployment)
    expected, reason = expected_gpu_class(lkg_template, healthy, configured)
    terminating = {p["metadata"]["name"] for p in pods if p["metadata"].get("deletionTimestamp")}
    rows = [
        replace(
            row,
            note="; ".join(n for n in (row.note, why_not.get(row.pod, "")) if n),
            # A pod on its way out is not what needs fixing; its replacement may be.
            mismatch=row.mismatch and row.pod not in terminating,
        )
        for row in gpu_rows(pods, nodes, smi, readings, expected)
    ]
    pinned, _why = expected_gpu_class(dep["spec"]["template"], (), None)
    from_lkg, _why = expected_gpu_class(lkg_template, (), None) if lkg_template else (None, "")
    return HardwareReport(
        namespace=namespace,
        deployment=deployment,
        rows=tuple(rows),
        expected_class=gpu_class_from_name(expected) if expected else None,
        expected_reason=reason,
        pinned_class=pinned,
        lkg_revision=lkg_revision if from_lkg and from_lkg == expected else None,
    )


# What a pod row says until step 5 has answered for it: its class is only its node's label.
# It carries NOT_READ_YET, so the inspector marks it "…" (never a pass).
GPU_CHECK_PENDING = f"GPU check: checking ({NOT_READ_YET}; the class is the node's label)"


def listed_pod_rows(cluster: Cluster, namespace: str, deployment: str) -> HardwareReport:
    """The Deployment's pods, their nodes and the nodes' GPU labels, before step 5 answers:
    what `kubectl get pods -o wide` and `kubectl get nodes -L nvidia.com/gpu.product` show,
    from the same reads step 5 makes first (the informer's cache behind a CachedCluster). No
    exec, no DCGM and no verdict: every row is `GPU_CHECK_PENDING`, none a mismatch, and the
    report has no expected class. Raises NotFoundError for an unknown Deployment, and what
    the cluster raises for the reads."""
    _dep, pods = _deployment_pods(cluster, namespace, deployment)
    rows = tuple(
        replace(
            row,
            mismatch=False,
            note="; ".join(n for n in (GPU_CHECK_PENDING, row.note) if n),
        )
        for row in gpu_rows(pods, cluster.list("Node"), {}, {}, None)
    )
    return HardwareReport(namespace, deployment, rows, None, "step 5 checking", None, None)


def read_smi_ahead(cluster: Cluster, namespace: str, deployment: str) -> int:
    """Run step 5's nvidia-smi reads of the Deployment's nodes now, into the connection's
    cache (services.smi_reads: the same bound, the same rules), so the first check finds them
    remembered instead of waiting for the execs. Returns the execs run. Raises NotFoundError
    for an unknown Deployment, and what the cluster raises for the reads."""
    _dep, pods = _deployment_pods(cluster, namespace, deployment)
    return cache_for(cluster).read(cluster, pods, cluster.list("Node")).execs


def hardware_findings(report: HardwareReport) -> list[Finding]:
    """``gpu-class-mismatch`` (error) per GPU class the pods wrongly run on: pods on one class
    are one finding (`drift.aggregate_pod_findings`: subject ``pod/a, pod/b, pod/c and N-3
    more (N pods)``, detail["pods"], detail["count"] and detail["nodes"]), a lone pod keeps
    its own subject ``pod/<p>`` and detail["node"]; ``gpu-class-unknown`` when the expected
    class cannot be told; ``gpu-class-unpinned`` when the live template lets pods land on any
    GPU; ``gpu-smi-not-read`` (warning) while pods' nodes wait for their nvidia-smi read (at
    most smi_reads.MAX_NEW_NODES nodes are read per check). Raises nothing."""
    subject = f"deployment/{report.deployment}"
    expected = f"expected {report.expected_class} ({report.expected_reason})"
    nodes: dict[str | None, list[str]] = {}
    for row in report.mismatches:
        if row.node not in nodes.setdefault(row.gpu_class, []):
            nodes[row.gpu_class].append(row.node)
    # One message per class, so that aggregate_pod_findings folds the class's pods together.
    per_pod = [
        Finding(
            Step.HARDWARE,
            "gpu-class-mismatch",
            Severity.ERROR,
            f"runs on {row.gpu_class}, {expected}",
            f"pod/{row.pod}",
            {"gpu_class": row.gpu_class, "expected": report.expected_class, "node": row.node},
        )
        for row in report.mismatches
    ]
    findings = []
    for finding in aggregate_pod_findings(per_pod):
        gpu_class = finding.detail.get("gpu_class")
        if "count" not in finding.detail:
            pod = finding.subject.removeprefix("pod/")
            node = finding.detail["node"]
            message = f"pod {pod} runs on {gpu_class} (node {node}), {expected}"
            findings.append(replace(finding, message=message))
            continue
        on = nodes.get(gpu_class, [])
        named = ", ".join(on[:PODS_NAMED]) + (
            f" and {len(on) - PODS_NAMED} more" if len(on) > PODS_NAMED else ""
        )
        detail = {k: v for k, v in finding.detail.items() if k != "node"}
        message = (
            f"{finding.detail['count']} pods run on {gpu_class} "
            f"(node{'s' if len(on) != 1 else ''} {named}), {expected}"
        )
        findings.append(replace(finding, message=message, detail={**detail, "nodes": on}))
    unread = [row for row in report.rows if NOT_READ_YET in row.note]
    if unread:
        # Until nvidia-smi has run on their nodes these pods' class is the nodes' word (labels,
        # DCGM): a mislabelled node would pass, so the step does not.
        on = sorted({row.node for row in unread})
        findings.append(
            Finding(
                Step.HARDWARE,
                "gpu-smi-not-read",
                Severity.WARNING,
                f"nvidia-smi not read yet for {len(unread)} pod(s) on {len(on)} node(s): their "
                "GPU class comes from node labels or DCGM until a later check reads them",
                subject,
                {"pods": [row.pod for row in unread], "nodes": on},
            )
        )
    if report.rows and report.expected_class is None:
        findings.append(
            Finding(
                Step.HARDWARE,
                "gpu-class-unknown",
                Severity.WARNING,
                f"cannot tell which GPU class the pods should run on: {report.expected_reason}",
                subject,
            )
        )
    elif report.expected_class and not same_class(report.pinned_class, report.expected_class):
        findings.append(
            Finding(
                Step.HARDWARE,
                "gpu-class-unpinned",
                Severity.WARNING,
                f"deployment/{report.deployment} does not require {report.expected_class}: new "
                "pods can land on any GPU node; add a nodeSelector for it",
                subject,
                {"pinned": report.pinned_class, "expected": report.expected_class},
            )
        )
    return findings


# --- plans --------------------------------------------------------------------------------


def _patch_command(kind: str, name: str, namespace: str, patch_type: str, patch: Obj) -> str:
    where = f" -n {namespace}" if namespace else ""
    body = json.dumps(patch, separators=(",", ":"))
    return f"kubectl patch {kind}/{name}{where} --type={patch_type} -p '{body}'"


def node_selector_plan(
    cluster: Cluster,
    namespace: str,
    deployment: str,
    expected: str,
    *,
    affinity: bool = False,
) -> Plan:
    """Require the expected GPU class on the Deployment's pod template: a nodeSelector on a
    label the cluster's nodes carry (strategic merge), or with ``affinity=True`` a required
    node affinity term (added to every existing term). Other GPU-label constraints are removed.

    Raises NotFoundError (no Deployment, no node of that class), InvalidError (no class
    given, or the template already requires exactly that).
    """
    dep = cluster.get("Deployment", namespace, deployment)
    nodes = cluster.list("Node")
    selector = node_selector_for(expected, nodes)
    ((key, value),) = selector.items()
    spec = dep["spec"]["template"].get("spec") or {}
    current = spec.get("nodeSelector") or {}
    # Another GPU label in the nodeSelector would contradict the new constraint.
    stale: dict[str, str | None] = {k: None for k in current if k in GPU_LABELS and k != key}
    if affinity:
        node_affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
        terms = (node_affinity.get(_REQUIRED) or {}).get("nodeSelectorTerms") or [{}]
        expression = {"key": key, "operator": "In", "values": [value]}
        new_terms = [
            {
                **term,
                "matchExpressions": [
                    *(
                        e
                        for e in term.get("matchExpressions") or []
                        if e.get("key") not in GPU_LABELS
                    ),
                    expression,
                ],
            }
            for term in terms
        ]
        if new_terms == terms and not stale:
            raise InvalidError(f"deployment/{deployment} already requires {key}={value}")
        template_patch: Obj = {
            "affinity": {"nodeAffinity": {_REQUIRED: {"nodeSelectorTerms": new_terms}}}
        }
        if stale:
            template_patch["nodeSelector"] = stale
        what = f"required node affinity {key} In [{value}]"
    else:
        if current.get(key) == value and not stale:
            raise InvalidError(f"deployment/{deployment} already has nodeSelector {key}={value}")
        template_patch = {"nodeSelector": {**stale, key: value}}
        what = f"nodeSelector {key}={value}"
    patch: Obj = {"spec": {"template": {"spec": template_patch}}}
    after = copy.deepcopy(dep)
    after_spec = after["spec"]["template"].setdefault("spec", {})
    if affinity:
        after_spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})[_REQUIRED] = {
            "nodeSelectorTerms": template_patch["affinity"]["nodeAffinity"][_REQUIRED][
                "nodeSelectorTerms"
            ]
        }
    merged = {**current, **template_patch.get("nodeSelector", {})}
    merged = {k: v for k, v in merged.items() if v is not None}
    if merged:
        after_spec["nodeSelector"] = merged
    else:
        after_spec.pop("nodeSelector", None)
    carrying = sum(1 for n in nodes if (n["metadata"].get("labels") or {}).get(key) == value)
    rv = str(dep["metadata"]["resourceVersion"])
    return Plan(
        step=Step.HARDWARE,
        action="hardware.node-selector",
        title=f"Require {expected} for deployment/{deployment} ({what})",
        changes=(
            Change(
                "Deployment", namespace, deployment, "patch", "strategic", patch, dep, after, rv
            ),
        ),
        kubectl=(
            _patch_command("deployment", deployment, namespace, "strategic", patch),
            f"kubectl rollout status deployment/{deployment} -n {namespace}",
        ),
        tradeoff=(
            "Changes the pod template, so a rolling update replaces every pod; a pod that "
            f"finds no free GPU on {expected} nodes stays Pending instead of running elsewhere"
        ),
        notes=(f"{carrying} node(s) carry {key}={value}",),
    )


def cordon_plan(cluster: Cluster, node: str) -> Plan:
    """Mark a node unschedulable (``kubectl cordon``). Pods on it keep running.
    Raises NotFoundError for an unknown node, InvalidError when it is already cordoned,
    ConfigError for a string no node can be named (``gpu-a10g-1/../gpu-h100-1``)."""
    check_name("Node", node)
    obj = cluster.get("Node", "", node)
    if obj.get("spec", {}).get("unschedulable"):
        raise InvalidError(f"node/{node} is already cordoned")
    patch: Obj = {"spec": {"unschedulable": True}}
    after = copy.deepcopy(obj)
    after.setdefault("spec", {})["unschedulable"] = True
    rv = str(obj["metadata"]["resourceVersion"])
    return Plan(
        step=Step.HARDWARE,
        action="hardware.cordon",
        title=f"Cordon node/{node}",
        changes=(Change("Node", "", node, "patch", "strategic", patch, obj, after, rv),),
        kubectl=(f"kubectl cordon {node}",),
        tradeoff="No new pod of any workload is scheduled on the node until it is uncordoned",
        notes=(
            "pods already on the node keep running: delete the wrong ones to move them",
            f"revert uncordons it (kubectl uncordon {node})",
        ),
    )


def taint_plan(cluster: Cluster, node: str, key: str, value: str) -> Plan:
    """Taint a node ``key=value:NoSchedule``. The taint list is replaced whole (it is atomic in
    a patch), keeping every other taint; a taint with the same key and effect gets the new
    value. Raises NotFoundError for an unknown node, InvalidError for a malformed key or
    value or a taint already there."""
    if not _TAINT_KEY.match(key) or len(key) > 316:
        raise InvalidError(f"taint key {key!r} is not a valid label key (e.g. skewmit.io/gpu)")
    if not _TAINT_VALUE.match(value):
        raise InvalidError(
            f"taint value {value!r} is not a valid label value (63 characters at most: "
            "letters, digits, '-', '_', '.')"
        )
    check_name("Node", node)
    obj = cluster.get("Node", "", node)
    taints = [dict(t) for t in obj.get("spec", {}).get("taints") or []]
    taint = {"key": key, "value": value, "effect": "NoSchedule"}
    same = [t for t in taints if t.get("key") == key and t.get("effect") == "NoSchedule"]
    if same and (same[0].get("value") or "") == value:
        raise InvalidError(f"node/{node} already has the taint {key}={value}:NoSchedule")
    new = [taint if t in same else t for t in taints] if same else [*taints, taint]
    patch: Obj = {"spec": {"taints": new}}
    after = copy.deepcopy(obj)
    after.setdefault("spec", {})["taints"] = new
    rv = str(obj["metadata"]["resourceVersion"])
    overwrite = " --overwrite" if same else ""
    return Plan(
        step=Step.HARDWARE,
        action="hardware.taint",
        title=f"Taint node/{node} {key}={value}:NoSchedule",
        # A JSON merge patch replaces the list whole, as the API treats node taints.
        changes=(Change("Node", "", node, "patch", "merge", patch, obj, after, rv),),
        kubectl=(f"kubectl taint nodes {node} {key}={value}:NoSchedule{overwrite}",),
        tradeoff="Pods without a matching toleration are no longer scheduled on the node",
        notes=(
            "pods already on the node keep running (NoSchedule does not evict)",
            f"revert removes it (kubectl taint nodes {node} {key}:NoSchedule-)",
        ),
    )


def delete_pods_plan(
    cluster: Cluster, report: HardwareReport, pods: Sequence[str] | None = None
) -> Plan:
    """Delete pods the report found on the wrong GPU class (all of them by default) so their
    ReplicaSet recreates them. Refuses a pod that is not a mismatch in the report.
    Raises InvalidError (no mismatched pod, or a pod that is not one), NotFoundError."""
    wrong = {row.pod: row for row in report.mismatches}
    chosen = list(pods) if pods is not None else sorted(wrong)
    if not chosen:
        raise InvalidError("no pod runs on the wrong GPU class: nothing to delete")
    refused = [p for p in chosen if p not in wrong]
    if refused:
        raise InvalidError(
            f"not on the wrong GPU class according to the inspection: {', '.join(refused)}; "
            "skewmit deletes only pods on wrong nodes"
        )
    changes = []
    for name in chosen:
        pod = cluster.get("Pod", report.namespace, name)
        rv = str(pod["metadata"]["resourceVersion"])
        changes.append(Change("Pod", report.namespace, name, "delete", "", None, pod, None, rv))
    notes = [f"{name} runs on {wrong[name].gpu_class} (node {wrong[name].node})" for name in chosen]
    if not same_class(report.pinned_class, report.expected_class):
        notes.append(
            f"without a nodeSelector for {report.expected_class}, a cordon or a taint on the "
            "wrong nodes, the replacements may land on the same GPU class again"
        )
    return Plan(
        step=Step.HARDWARE,
        action="hardware.delete-pods",
        title=f"Delete {len(chosen)} pod(s) of deployment/{report.deployment} on the wrong GPU",
        changes=tuple(changes),
        kubectl=tuple(f"kubectl delete pod -n {report.namespace} {name}" for name in chosen),
        tradeoff=f"Serving capacity drops by {len(chosen)} pod(s) until the replacements are ready",
        notes=(*notes, "a deleted pod cannot be restored: revert has nothing to undo"),
        destructive=True,
    )


# --- the runbook's entry points -----------------------------------------------------------

# Up to this many pods, step 5's detail has a line per pod; a larger fleet is described per GPU
# class, with its first pods on a wrong class: a line per pod of a 1,000-pod fleet was 200
# wrapped lines (the rest counted) laid out each time the step opened (issue 9), and the GPU
# inspector already lists every pod with its node and GPU.
DETAIL_PODS = 20
DETAIL_WRONG_PODS = 10


def _pod_line(row: GpuReading) -> str:
    return (
        f"{row.pod} -> {row.node} -> {row.gpu_class or '?'}{'  MISMATCH' if row.mismatch else ''}"
    )


def describe(report: HardwareReport) -> list[str]:
    """What step 5 read, for its detail: a line per pod (pod -> node -> class) for a small
    fleet; for one over DETAIL_PODS pods, a line per GPU class (pods, nodes, whether it is
    the wrong one) and the first DETAIL_WRONG_PODS pods on a wrong class."""
    rows = report.rows
    if len(rows) <= DETAIL_PODS:
        return [_pod_line(row) for row in rows]
    pods: dict[str, int] = {}
    nodes: dict[str, set[str]] = {}
    wrong: set[str] = set()
    for row in rows:
        gpu_class = row.gpu_class or "?"
        pods[gpu_class] = pods.get(gpu_class, 0) + 1
        nodes.setdefault(gpu_class, set()).add(row.node)
        if row.mismatch:
            wrong.add(gpu_class)
    expected = report.expected_class or "unknown"
    lines = [f"{len(rows)} pods on {len({row.node for row in rows})} nodes; expected {expected}"]
    for gpu_class in sorted(pods, key=lambda c: (-pods[c], c)):
        mark = "  MISMATCH" if gpu_class in wrong else ""
        lines.append(f"{gpu_class}: {pods[gpu_class]} pods on {len(nodes[gpu_class])} nodes{mark}")
    mismatches = report.mismatches
    if mismatches:
        shown = mismatches[:DETAIL_WRONG_PODS]
        lines.append(f"on a wrong class ({len(shown)} of {len(mismatches)}):")
        lines += [_pod_line(row) for row in shown]
    lines.append("every pod with its node and GPU: the GPU inspector")
    return lines


def hardware_actions(report: HardwareReport) -> list[dict[str, Any]]:
    """The step's actions as the runbook's ActionSpec fields, defaults taken from the report.
    Raises nothing."""
    wrong = report.mismatches
    node = wrong[0].node if wrong else ""
    expected = report.expected_class or ""
    pinned = same_class(report.pinned_class, report.expected_class)
    no_mismatch = "" if wrong else "no pod runs on the wrong GPU class"
    return [
        {
            "id": "hardware.node-selector",
            "step": Step.HARDWARE,
            "title": f"Require {expected or 'the expected GPU class'} (nodeSelector)",
            "key": "s",
            "description": "Pin the pod template to the expected GPU class; pods roll onto it",
            "inputs": (
                {"name": "expected", "prompt": "GPU class", "default": expected},
                {
                    "name": "affinity",
                    "prompt": "Required node affinity instead? (y/n)",
                    "default": "n",
                },
            ),
            "available": bool(expected) and not pinned,
            "reason": "already pinned" if pinned else ("" if expected else report.expected_reason),
        },
        {
            "id": "hardware.cordon",
            "step": Step.HARDWARE,
            "title": "Cordon a wrong node",
            "key": "c",
            "description": "No new pods on the node; pods on it keep running",
            "kubectl": (f"kubectl cordon {node or 'NODE'}",),
            "inputs": ({"name": "node", "prompt": "Node", "default": node},),
            "available": bool(wrong),
            "reason": no_mismatch,
        },
        {
            "id": "hardware.taint",
            "step": Step.HARDWARE,
            "title": "Taint a wrong node NoSchedule",
            "key": "t",
            "description": "Pods without a toleration are no longer scheduled on the node",
            "inputs": (
                {"name": "node", "prompt": "Node", "default": node},
                {"name": "key", "prompt": "Taint key", "default": "skewmit.io/gpu-mismatch"},
                {"name": "value", "prompt": "Taint value", "default": "true"},
            ),
            "available": bool(wrong),
            "reason": no_mismatch,
        },
        {
            "id": "hardware.delete-pods",
            "step": Step.HARDWARE,
            "title": f"Delete the {len(wrong)} pod(s) on the wrong GPU",
            "key": "d",
            "description": "Their ReplicaSet recreates them; pin or cordon first",
            "kubectl": tuple(f"kubectl delete pod -n {report.namespace} {r.pod}" for r in wrong),
            "inputs": (
                {
                    "name": "pods",
                    "prompt": "Pods (comma-separated)",
                    "default": ",".join(r.pod for r in wrong),
                },
            ),
            "available": bool(wrong),
            "reason": no_mismatch,
            "destructive": True,
        },
    ]


def plan(
    cluster: Cluster, namespace: str, deployment: str, action_id: str, inputs: dict[str, str]
) -> Plan:
    """The runbook's entry: build a hardware plan from operator input. ``delete-pods`` and a
    node-selector without a class inspect the fleet afresh. Raises InvalidError for an unknown
    action or missing input, and what the plan builders raise."""

    def need(name: str) -> str:
        value = (inputs.get(name) or "").strip()
        if not value:
            raise InvalidError(f"{action_id} needs {name}")
        return value

    if action_id == "hardware.node-selector":
        expected = (inputs.get("expected") or "").strip()
        if not expected:
            expected = gpu_inspection(cluster, namespace, deployment).expected_class or ""
        affinity = (inputs.get("affinity") or "").strip().lower() in ("y", "yes", "true", "1")
        return node_selector_plan(cluster, namespace, deployment, expected, affinity=affinity)
    if action_id == "hardware.cordon":
        return cordon_plan(cluster, need("node"))
    if action_id == "hardware.taint":
        return taint_plan(cluster, need("node"), need("key"), (inputs.get("value") or "").strip())
    if action_id == "hardware.delete-pods":
        report = gpu_inspection(cluster, namespace, deployment)
        names = [p.strip() for p in (inputs.get("pods") or "").split(",") if p.strip()]
        return delete_pods_plan(cluster, report, names or None)
    raise InvalidError(f"unknown hardware action {action_id!r}")
