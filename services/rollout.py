"""Step 1: revision history, the last-known-good candidate, `rollout undo` with kubectl's exact
semantics, and a rollout watch that notices what `kubectl rollout status` does not."""

from __future__ import annotations

import copy
from typing import Any

from services.drift import template_drift
from services.engines import engine_containers, parse_engine_config
from services.errors import InvalidError, NotFoundError
from services.kube import Cluster
from services.masking import mask_text
from services.models import Change, Finding, Plan, Revision, RolloutProgress, Severity, Step

Obj = dict[str, Any]
REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
# kubectl's annotationsToSkip (pkg/polymorphichelpers/rollback.go): kept from the Deployment,
# never copied from the ReplicaSet.
ANNOTATIONS_TO_SKIP = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)


def owned_replicasets(cluster: Cluster, deployment: Obj) -> list[Obj]:
    """The ReplicaSets a Deployment controls (ownerReferences with controller=true)."""
    meta = deployment["metadata"]
    selector = ",".join(
        f"{k}={v}" for k, v in sorted(deployment["spec"]["selector"].get("matchLabels", {}).items())
    )
    out = []
    for rs in cluster.list("ReplicaSet", meta["namespace"], label_selector=selector):
        for ref in rs["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("uid") == meta["uid"]:
                out.append(rs)
    return out


def revision_of(obj: Obj) -> int:
    try:
        return int(obj["metadata"].get("annotations", {}).get(REVISION, "0"))
    except ValueError:
        return 0


def strip_hash(template: Obj) -> Obj:
    clean = copy.deepcopy(template)
    labels = clean.get("metadata", {}).get("labels")
    if labels:
        labels.pop("pod-template-hash", None)
    return clean


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    return strip_hash(a) == strip_hash(b)


def config_summary(template: Obj) -> str:
    """model / revision / dtype / max-model-len of the template's serving container."""
    parts = []
    for container in engine_containers(template.get("spec", {})):
        cfg = parse_engine_config(container)
        parts.append(
            " ".join(
                [
                    f"{cfg.engine}",
                    f"model={cfg.model or '?'}",
                    f"rev={(cfg.revision or 'unpinned')[:12]}",
                    f"dtype={cfg.dtype or 'unset'}",
                    f"max-len={cfg.max_model_len or 'unset'}",
                ]
            )
        )
    return "; ".join(parts) or "no serving container recognised"


def history(cluster: Cluster, namespace: str, name: str) -> list[Revision]:
    """Revisions newest first, the current one and the last-known-good candidate marked.

    Last-known-good: the newest revision older than the current one whose template has no
    drift findings. Raises NotFoundError for an unknown Deployment.
    """
    deployment = cluster.get("Deployment", namespace, name)
    current_template = deployment["spec"]["template"]
    sets = sorted(owned_replicasets(cluster, deployment), key=revision_of, reverse=True)
    current_rev = next(
        (
            revision_of(rs)
            for rs in sets
            if equal_ignore_hash(rs["spec"]["template"], current_template)
        ),
        0,
    )
    lkg_found = False
    out: list[Revision] = []
    for rs in sets:
        number = revision_of(rs)
        template = rs["spec"]["template"]
        findings = tuple(template_drift(template, Step.ROLLBACK, owner=f"revision/{number}"))
        is_current = number == current_rev
        lkg = not lkg_found and not is_current and number < current_rev and not findings
        lkg_found = lkg_found or lkg
        out.append(
            Revision(
                number=number,
                replicaset=rs["metadata"]["name"],
                created=rs["metadata"].get("creationTimestamp", ""),
                images=tuple(c.get("image", "") for c in template["spec"].get("containers", [])),
                summary=config_summary(template),
                # A change-cause is free text written by whoever rolled out (often a CI
                # pasting a command line): it can carry a password= or a bearer token.
                change_cause=mask_text(rs["metadata"].get("annotations", {}).get(CHANGE_CAUSE, "")),
                current=is_current,
                last_known_good=lkg,
                replicas=int(rs.get("status", {}).get("replicas", 0)),
                findings=findings,
            )
        )
    return out


def undo_target(deployment: Obj, sets: list[Obj], to_revision: int = 0) -> Obj:
    """The ReplicaSet `kubectl rollout undo` would restore, with kubectl's errors."""
    name = deployment["metadata"]["name"]
    if deployment["spec"].get("paused"):
        raise InvalidError(
            f"you cannot rollback a paused deployment; resume it first with "
            f"'kubectl rollout resume deployment/{name}' and try again"
        )
    if to_revision < 0:
        raise InvalidError(
            f"revision {to_revision} is out of range; give 0 (previous) or a "
            "revision number from the history"
        )
    by_revision = {revision_of(rs): rs for rs in sets}
    if to_revision:
        if to_revision not in by_revision:
            raise NotFoundError(
                f"unable to find specified revision {to_revision} in history of deployment/{name}"
            )
        return by_revision[to_revision]
    numbers = sorted(by_revision)
    if len(numbers) < 2:
        raise NotFoundError(f"no rollout history found for deployment/{name}")
    return by_revision[numbers[-2]]


def undo_plan(cluster: Cluster, namespace: str, name: str, to_revision: int = 0) -> Plan:
    """The exact change `kubectl rollout undo [--to-revision]` makes, as a Plan.

    One JSON patch replacing /spec/template and /metadata/annotations, guarded by a test of
    the resourceVersion read. Raises InvalidError (paused, or already at that revision),
    NotFoundError (no such revision or history).
    """
    deployment = cluster.get("Deployment", namespace, name)
    sets = owned_replicasets(cluster, deployment)
    target = undo_target(deployment, sets, to_revision)
    number = revision_of(target)
    if equal_ignore_hash(target["spec"]["template"], deployment["spec"]["template"]):
        raise InvalidError(f"skipped rollback (current template already matches revision {number})")
    own = deployment["metadata"].get("annotations") or {}
    annotations = {k: v for k, v in own.items() if k in ANNOTATIONS_TO_SKIP}
    annotations.update(
        {
            k: v
            for k, v in (target["metadata"].get("annotations") or {}).items()
            if k not in ANNOTATIONS_TO_SKIP
        }
    )
    template = strip_hash(target["spec"]["template"])
    rv = deployment["metadata"]["resourceVersion"]
    patch = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
    after = copy.deepcopy(deployment)
    after["spec"]["template"] = template
    after["metadata"]["annotations"] = annotations
    revision_flag = f" --to-revision={to_revision}" if to_revision else ""
    return Plan(
        step=Step.ROLLBACK,
        action="rollback.undo",
        title=f"Roll back deployment/{name} to revision {number}",
        changes=(
            Change("Deployment", namespace, name, "patch", "json", patch, deployment, after, rv),
        ),
        kubectl=(
            f"kubectl rollout undo deployment/{name} -n {namespace}{revision_flag}",
            f"kubectl rollout status deployment/{name} -n {namespace}",
        ),
        tradeoff="Restores the revision's pod template only; the rollout replaces every pod.",
        notes=tuple(not_restored(cluster, deployment, target)),
    )


def not_restored(cluster: Cluster, deployment: Obj, target: Obj) -> list[str]:
    """What a rollback leaves as it is: replicas, strategy, HPA, referenced config."""
    meta = deployment["metadata"]
    notes = [
        f"replicas stay at {deployment['spec'].get('replicas', 1)} (a rollback restores "
        "the pod template only)"
    ]
    notes.append(f"strategy stays {deployment['spec'].get('strategy', {}).get('type', '?')}")
    try:
        hpas = cluster.list("HorizontalPodAutoscaler", meta["namespace"])
    except Exception:
        hpas = []
    for hpa in hpas:
        ref = hpa.get("spec", {}).get("scaleTargetRef", {})
        if ref.get("kind") == "Deployment" and ref.get("name") == meta["name"]:
            notes.append(
                f"HorizontalPodAutoscaler {hpa['metadata']['name']} keeps scaling it "
                f"({hpa['spec'].get('minReplicas', 1)}-{hpa['spec'].get('maxReplicas')}"
                " replicas)"
            )
    for kind, name in sorted(referenced_config(target["spec"]["template"])):
        notes.append(f"{kind} {name} is used as it is now, not as it was at that revision")
    return notes


def referenced_config(template: Obj) -> set[tuple[str, str]]:
    spec = template.get("spec", {})
    found: set[tuple[str, str]] = set()
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            if "configMapKeyRef" in source:
                found.add(("ConfigMap", source["configMapKeyRef"].get("name", "")))
            if "secretKeyRef" in source:
                found.add(("Secret", source["secretKeyRef"].get("name", "")))
        for env_from in container.get("envFrom") or []:
            if "configMapRef" in env_from:
                found.add(("ConfigMap", env_from["configMapRef"].get("name", "")))
            if "secretRef" in env_from:
                found.add(("Secret", env_from["secretRef"].get("name", "")))
    for volume in spec.get("volumes") or []:
        if "configMap" in volume:
            found.add(("ConfigMap", volume["configMap"].get("name", "")))
        if "secret" in volume:
            found.add(("Secret", volume["secret"].get("secretName", "")))
    return found


def progress(cluster: Cluster, namespace: str, name: str) -> RolloutProgress:
    """Where a rollout stands, by kubectl's success rule, plus what kubectl does not notice:
    crash loops, restarts, Pending/unschedulable pods, ProgressDeadlineExceeded."""
    deployment = cluster.get("Deployment", namespace, name)
    spec, status = deployment["spec"], deployment.get("status", {})
    desired = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    replicas = int(status.get("replicas", 0))
    available = int(status.get("availableReplicas", 0))
    ready = int(status.get("readyReplicas", 0))
    problems: list[Finding] = []
    subject = f"deployment/{name}"
    deadline = next(
        (
            c
            for c in status.get("conditions", [])
            if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
        ),
        None,
    )
    if deadline:
        problems.append(
            Finding(
                Step.ROLLBACK,
                "rollout-stuck",
                Severity.ERROR,
                "rollout exceeded its progress deadline: " + str(deadline.get("message")),
                subject,
            )
        )
    selector = ",".join(
        f"{k}={v}" for k, v in sorted(spec["selector"].get("matchLabels", {}).items())
    )
    for pod in cluster.list("Pod", namespace, label_selector=selector):
        pod_name = pod["metadata"]["name"]
        for cs in pod.get("status", {}).get("containerStatuses") or []:
            waiting = cs.get("state", {}).get("waiting", {})
            if waiting.get("reason") == "CrashLoopBackOff":
                last = cs.get("lastState", {}).get("terminated", {})
                problems.append(
                    Finding(
                        Step.ROLLBACK,
                        "crashloop",
                        Severity.ERROR,
                        f"container {cs['name']} is in CrashLoopBackOff "
                        f"({cs.get('restartCount', 0)} restarts; last exit "
                        f"{last.get('exitCode', '?')} {last.get('reason', '')}). "
                        f"Read its log: kubectl logs -n {namespace} {pod_name} -c {cs['name']} "
                        "--previous",
                        f"pod/{pod_name}",
                    )
                )
        if pod.get("status", {}).get("phase") == "Pending" and not pod["spec"].get("nodeName"):
            cond: Obj = next(
                (c for c in pod["status"].get("conditions", []) if c.get("type") == "PodScheduled"),
                {},
            )
            problems.append(
                Finding(
                    Step.ROLLBACK,
                    "pod-unschedulable",
                    Severity.ERROR,
                    f"pod cannot be scheduled: {cond.get('message', 'pending')}",
                    f"pod/{pod_name}",
                )
            )
    observed = int(status.get("observedGeneration", 0)) >= int(
        deployment["metadata"].get("generation", 0)
    )
    message, done = _kubectl_status(
        observed, deadline is not None, desired, updated, replicas, available, name
    )
    return RolloutProgress(
        desired=desired,
        updated=updated,
        ready=ready,
        available=available,
        old_pods=max(0, replicas - updated),
        done=done and not problems,
        message=message,
        problems=tuple(problems),
    )


def _kubectl_status(
    observed: bool,
    deadline: bool,
    desired: int,
    updated: int,
    replicas: int,
    available: int,
    name: str,
) -> tuple[str, bool]:
    """kubectl's DeploymentStatusViewer messages, word for word."""
    if not observed:
        return "Waiting for deployment spec update to be observed...", False
    if deadline:
        return f'deployment "{name}" exceeded its progress deadline', False
    if updated < desired:
        return (
            f'Waiting for deployment "{name}" rollout to finish: {updated} out of {desired} '
            "new replicas have been updated..."
        ), False
    if replicas > updated:
        return (
            f'Waiting for deployment "{name}" rollout to finish: {replicas - updated} old '
            "replicas are pending termination..."
        ), False
    if available < updated:
        return (
            f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} '
            "updated replicas are available..."
        ), False
    return f'deployment "{name}" successfully rolled out', True
