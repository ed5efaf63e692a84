"""GitOps markers: whether Argo CD or Flux owns an object, and what a manual change will meet.

A rollback or pin applied by hand to an object a controller reconciles is reverted within
seconds (Argo CD self-heal) or at the next reconcile (Flux); the operator must act on the
GitOps side too, so the gate shows this guidance before any change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.models import GitOpsInfo

ARGO_TRACKING_ID = "argocd.argoproj.io/tracking-id"
ARGO_INSTANCE = "argocd.argoproj.io/instance"  # a common custom tracking label key
INSTANCE_LABEL = "app.kubernetes.io/instance"
FLUX_KUSTOMIZE = "kustomize.toolkit.fluxcd.io"
FLUX_HELM = "helm.toolkit.fluxcd.io"
FLUX_RECONCILE = f"{FLUX_KUSTOMIZE}/reconcile"
FLUX_SSA = f"{FLUX_KUSTOMIZE}/ssa"
FLUX_HELM_DRIFT = f"{FLUX_HELM}/driftDetection"


def parse_tracking_id(tracking_id: str) -> tuple[str, str] | None:
    """(application name, application namespace or "") from an Argo CD tracking id
    ``<app>:<group>/<kind>:<namespace>/<name>``; apps outside Argo CD's own namespace are
    written ``<app-namespace>_<app>``. None when the id has no app part."""
    app = tracking_id.strip().split(":", 1)[0]
    if not app:
        return None
    # Kubernetes names cannot hold "_", so it can only separate the namespace.
    namespace, _sep, name = app.rpartition("_")
    return name, namespace


def _argo_reverts(application: Mapping[str, Any] | None) -> tuple[bool | None, str]:
    if not application:
        return None, "unknown"
    automated = ((application.get("spec") or {}).get("syncPolicy") or {}).get("automated")
    if automated is None or automated.get("enabled") is False:
        return False, "manual"
    if automated.get("selfHeal"):
        return True, "self-heal"
    return False, "automated"


def _argo(
    app: str,
    namespace: str,
    confidence: str,
    evidence: list[str],
    application: Mapping[str, Any] | None,
) -> GitOpsInfo:
    if application:
        meta = application.get("metadata") or {}
        namespace = namespace or str(meta.get("namespace") or "")
    ref = f"{namespace}/{app}" if namespace and namespace != "argocd" else app
    reverts, policy = _argo_reverts(application)
    commands = (
        f"argocd app set {ref} --self-heal=false",
        f"argocd app set {ref} --sync-policy none",
        f"argocd app sync {ref}",
    )
    act = (
        f"Make the change in git and sync it (`argocd app sync {ref}`), or first stop Argo CD "
        f"from undoing it: `argocd app set {ref} --self-heal=false` (or `--sync-policy none`), "
        "and re-enable it once git holds the fix."
    )
    what = {
        "self-heal": f"Argo CD application {ref} syncs automatically with self-heal: a manual "
        "change is reverted within seconds, and Argo CD refuses its own rollback while "
        "automated sync is on.",
        "automated": f"Argo CD application {ref} syncs automatically without self-heal: a manual "
        "change stays until the next git change is synced, which overwrites it.",
        "manual": f"Argo CD application {ref} syncs manually: a manual change stays, shows as "
        "OutOfSync, and the next sync restores what git says.",
        "unknown": f"This object is tracked by Argo CD application {ref}. If it syncs "
        f"automatically with self-heal, a manual change is reverted within seconds: check with "
        f"`argocd app get {ref}`.",
    }[policy]
    if confidence == "possible":
        what = (
            f"Possibly managed by Argo CD: label {INSTANCE_LABEL}={app} is Argo CD's label "
            f"tracking, but Helm sets it too; confirm with `argocd app get {ref}`. "
        ) + (
            "If it is and the application syncs automatically with self-heal, a manual change "
            "is reverted within seconds."
            if policy == "unknown"
            else what
        )
    if policy == "manual":
        act = "Commit the same change to git so the next sync keeps it."
    return GitOpsInfo(
        tool="argocd",
        kind="Application",
        app=app,
        namespace=namespace,
        confidence=confidence,
        reverts=reverts,
        guidance=f"{what} {act}",
        evidence=tuple(evidence),
        commands=commands if policy != "manual" else (f"argocd app sync {ref}",),
    )


def _flux(
    kind: str,
    name: str,
    namespace: str,
    meta: Mapping[str, Any],
    controller: Mapping[str, Any] | None,
) -> GitOpsInfo:
    annotations = meta.get("annotations") or {}
    resource = "kustomization" if kind == "Kustomization" else "helmrelease"
    ns = f" -n {namespace}" if namespace else ""
    suspend = f"flux suspend {resource} {name}{ns}"
    resume = f"flux resume {resource} {name}{ns}"
    spec = (controller or {}).get("spec") or {}
    evidence = [f"label {FLUX_KUSTOMIZE if kind == 'Kustomization' else FLUX_HELM}/name={name}"]
    reverts: bool | None
    if spec.get("suspend") is True:
        reverts = False
        what = (
            f"Flux {kind} {namespace}/{name} is suspended: nothing is reverted until it is "
            "resumed, and then git wins."
        )
    elif kind == "Kustomization" and annotations.get(FLUX_RECONCILE) == "disabled":
        evidence.append(f"annotation {FLUX_RECONCILE}=disabled")
        reverts = False
        what = (
            f"Flux reconciliation is disabled on this object ({FLUX_RECONCILE}: disabled): a "
            "manual change is not reverted."
        )
    elif kind == "Kustomization" and annotations.get(FLUX_SSA) in ("Ignore", "IfNotPresent"):
        evidence.append(f"annotation {FLUX_SSA}={annotations[FLUX_SSA]}")
        reverts = False
        what = (
            f"Flux does not overwrite this object ({FLUX_SSA}: {annotations[FLUX_SSA]}): a "
            "manual change is not reverted."
        )
    elif kind == "Kustomization":
        reverts = True
        what = (
            f"Flux Kustomization {namespace}/{name} re-applies git at every reconcile: a manual "
            "change to fields in the manifests is reverted within its interval."
        )
    else:
        # helm-controller's drift detection is off unless the HelmRelease turns it on.
        mode = (spec.get("driftDetection") or {}).get("mode", "disabled" if controller else None)
        if annotations.get(FLUX_HELM_DRIFT) == "disabled":
            mode = "disabled"
        reverts = {"enabled": True, "warn": False, "disabled": False}.get(str(mode))
        outcome = {
            True: "drift detection is on, so a manual change is reverted at the next reconcile.",
            False: "drift detection is off, so a manual change stays until the next upgrade.",
            None: "if its drift detection is on, a manual change is reverted at the next "
            "reconcile; otherwise the next upgrade overwrites it.",
        }[reverts]
        what = f"Flux HelmRelease {namespace}/{name} owns this object: {outcome}"
    if reverts is False:
        act = "Commit the same change to git, or the next reconcile or upgrade may undo it."
    else:
        act = (
            f"Revert or fix it in git, or suspend reconciliation first (`{suspend}`) and resume "
            f"it once git holds the fix (`{resume}`)."
        )
    return GitOpsInfo(
        tool="flux",
        kind=kind,
        app=name,
        namespace=namespace,
        confidence="certain",
        reverts=reverts,
        guidance=f"{what} {act}",
        evidence=tuple(evidence),
        commands=(suspend, resume),
    )


def gitops_markers(
    obj: Mapping[str, Any], application: Mapping[str, Any] | None = None
) -> GitOpsInfo | None:
    """Which GitOps controller owns ``obj`` (a Deployment or any object), from its markers:
    Argo CD annotation tracking (``argocd.argoproj.io/tracking-id``), Flux kustomize/helm
    labels, or Argo CD label tracking (``app.kubernetes.io/instance``), which Helm also sets
    and so counts only as ``possible`` unless other Argo CD markers back it.
    ``application`` is the controller's object when known (an Argo CD Application, a Flux
    Kustomization or HelmRelease): it settles whether a manual change is reverted.
    None when no marker is found. Raises nothing."""
    meta = obj.get("metadata") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    tracking = annotations.get(ARGO_TRACKING_ID)
    parsed = parse_tracking_id(tracking) if tracking else None
    if parsed:
        evidence = [f"annotation {ARGO_TRACKING_ID}={tracking}"]
        return _argo(parsed[0], parsed[1], "certain", evidence, application)
    for kind, group in (("Kustomization", FLUX_KUSTOMIZE), ("HelmRelease", FLUX_HELM)):
        name = labels.get(f"{group}/name")
        if name:
            namespace = labels.get(f"{group}/namespace") or ""
            return _flux(kind, name, namespace, meta, application)
    if labels.get(ARGO_INSTANCE):
        evidence = [f"label {ARGO_INSTANCE}={labels[ARGO_INSTANCE]}"]
        return _argo(labels[ARGO_INSTANCE], "", "certain", evidence, application)
    instance = labels.get(INSTANCE_LABEL)
    if not instance:
        return None
    evidence = [f"label {INSTANCE_LABEL}={instance}"]
    evidence += [
        f"{where} {key}"
        for where, keys in (("annotation", annotations), ("label", labels))
        for key in keys
        if key.startswith("argocd.argoproj.io/")
    ]
    app_name = ((application or {}).get("metadata") or {}).get("name")
    if app_name == instance:
        evidence.append(f"Argo CD Application {instance}")
        return _argo(instance, "", "certain", evidence, application)
    confidence = "likely" if len(evidence) > 1 else "possible"
    return _argo(instance, "", confidence, evidence, application)
