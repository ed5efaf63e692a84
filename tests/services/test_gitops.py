"""GitOps markers on a serving Deployment and the guidance an operator gets before a change."""

from __future__ import annotations

from typing import Any

import pytest

from services.gitops import gitops_markers, parse_tracking_id


def deployment(
    labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "llm-serve",
            "namespace": "inference",
            "labels": {"app": "llm-serve", **(labels or {})},
            "annotations": {"deployment.kubernetes.io/revision": "3", **(annotations or {})},
        },
        "spec": {"replicas": 4},
    }


def application(sync_policy: dict[str, Any] | None, namespace: str = "argocd") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "project": "default",
        "source": {"repoURL": "https://git.example.com/ml/serving.git", "path": "llm-serve"},
        "destination": {"server": "https://kubernetes.default.svc", "namespace": "inference"},
    }
    if sync_policy is not None:
        spec["syncPolicy"] = sync_policy
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "llm-serve", "namespace": namespace},
        "spec": spec,
    }


ARGO = {"argocd.argoproj.io/tracking-id": "llm-serve:apps/Deployment:inference/llm-serve"}


def test_no_markers_means_no_gitops() -> None:
    assert gitops_markers(deployment()) is None


def test_argo_annotation_tracking_without_the_application() -> None:
    info = gitops_markers(deployment(annotations=ARGO))
    assert info is not None
    assert (info.tool, info.kind, info.app, info.confidence) == (
        "argocd",
        "Application",
        "llm-serve",
        "certain",
    )
    assert info.reverts is None
    assert "argocd app get llm-serve" in info.guidance
    assert "argocd app set llm-serve --self-heal=false" in info.guidance
    assert "argocd app set llm-serve --sync-policy none" in info.commands
    assert info.evidence == (
        "annotation argocd.argoproj.io/tracking-id=" + ARGO["argocd.argoproj.io/tracking-id"],
    )


def test_argo_self_heal_reverts_within_seconds() -> None:
    app = application({"automated": {"prune": True, "selfHeal": True}})
    info = gitops_markers(deployment(annotations=ARGO), app)
    assert info is not None and info.reverts is True
    assert "reverted within seconds" in info.guidance
    assert "refuses its own rollback" in info.guidance
    assert "--sync-policy none" in info.guidance and "git" in info.guidance


@pytest.mark.parametrize(
    ("sync_policy", "says"),
    [
        ({"automated": {"prune": True}}, "next git change"),
        ({"automated": {"enabled": False, "selfHeal": True}}, "OutOfSync"),
        ({"syncOptions": ["CreateNamespace=true"]}, "OutOfSync"),
        (None, "OutOfSync"),
    ],
)
def test_argo_without_self_heal_does_not_revert(
    sync_policy: dict[str, Any] | None, says: str
) -> None:
    info = gitops_markers(deployment(annotations=ARGO), application(sync_policy))
    assert info is not None and info.reverts is False
    assert says in info.guidance


def test_argo_app_in_another_namespace() -> None:
    annotations = {
        "argocd.argoproj.io/tracking-id": "ml-team_llm-serve:apps/Deployment:inference/llm-serve"
    }
    info = gitops_markers(deployment(annotations=annotations))
    assert info is not None
    assert (info.app, info.namespace) == ("llm-serve", "ml-team")
    assert "argocd app set ml-team/llm-serve --self-heal=false" in info.commands
    assert parse_tracking_id("llm-serve:apps/Deployment:inference/llm-serve") == ("llm-serve", "")
    assert parse_tracking_id(":apps/Deployment:inference/llm-serve") is None


def test_instance_label_alone_is_only_possible_argo() -> None:
    helm_labels = {
        "app.kubernetes.io/instance": "llm-serve",
        "app.kubernetes.io/managed-by": "Helm",
        "helm.sh/chart": "vllm-0.3.1",
    }
    info = gitops_markers(deployment(labels=helm_labels))
    assert info is not None
    assert (info.tool, info.confidence, info.reverts) == ("argocd", "possible", None)
    assert "Helm sets it too" in info.guidance


def test_instance_label_with_other_argo_evidence_is_likely() -> None:
    info = gitops_markers(
        deployment(
            labels={"app.kubernetes.io/instance": "llm-serve"},
            annotations={"argocd.argoproj.io/sync-wave": "1"},
        )
    )
    assert info is not None and info.confidence == "likely"
    assert "annotation argocd.argoproj.io/sync-wave" in info.evidence


def test_instance_label_confirmed_by_the_application() -> None:
    app = application({"automated": {"selfHeal": True}})
    info = gitops_markers(deployment(labels={"app.kubernetes.io/instance": "llm-serve"}), app)
    assert info is not None
    assert (info.confidence, info.reverts, info.namespace) == ("certain", True, "argocd")


FLUX_KS = {
    "kustomize.toolkit.fluxcd.io/name": "serving",
    "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
}


def test_flux_kustomization_reverts_and_says_how_to_suspend() -> None:
    info = gitops_markers(deployment(labels=FLUX_KS))
    assert info is not None
    assert (info.tool, info.kind, info.app, info.namespace) == (
        "flux",
        "Kustomization",
        "serving",
        "flux-system",
    )
    assert info.reverts is True
    assert "flux suspend kustomization serving -n flux-system" in info.guidance
    assert info.commands == (
        "flux suspend kustomization serving -n flux-system",
        "flux resume kustomization serving -n flux-system",
    )
    assert "git" in info.guidance


def test_flux_opt_out_annotation_means_no_revert() -> None:
    info = gitops_markers(
        deployment(
            labels=FLUX_KS, annotations={"kustomize.toolkit.fluxcd.io/reconcile": "disabled"}
        )
    )
    assert info is not None and info.reverts is False
    assert "not reverted" in info.guidance


def test_flux_suspended_kustomization_does_not_revert() -> None:
    kustomization = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "serving", "namespace": "flux-system"},
        "spec": {"interval": "10m", "suspend": True, "path": "./serving"},
    }
    info = gitops_markers(deployment(labels=FLUX_KS), kustomization)
    assert info is not None and info.reverts is False
    assert "suspended" in info.guidance


def test_flux_helm_release_depends_on_drift_detection() -> None:
    labels = {
        "helm.toolkit.fluxcd.io/name": "llm-serve",
        "helm.toolkit.fluxcd.io/namespace": "inference",
    }
    unknown = gitops_markers(deployment(labels=labels))
    assert unknown is not None
    assert (unknown.kind, unknown.reverts) == ("HelmRelease", None)
    assert "flux suspend helmrelease llm-serve -n inference" in unknown.guidance
    release = {"kind": "HelmRelease", "spec": {"driftDetection": {"mode": "enabled"}}}
    assert (info := gitops_markers(deployment(labels=labels), release)) is not None
    assert info.reverts is True
    default = {"kind": "HelmRelease", "spec": {"interval": "5m"}}
    assert (info := gitops_markers(deployment(labels=labels), default)) is not None
    assert info.reverts is False
    assert "next upgrade" in info.guidance
