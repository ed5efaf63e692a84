"""Opening an incident session against a real cluster: kubeconfig, context, target checks,
the journal and the metrics source, each failure one clear message."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services import config as config_file
from services.errors import ConfigError, NotFoundError
from services.evidence import record_snapshot
from services.journal import Journal
from services.kube import KubeCluster
from services.models import Target
from services.runbook import Runbook

PRODUCTION_WORDS = ("prod", "production", "prd")


@dataclass(frozen=True)
class SessionOptions:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    deployment: str | None = None
    read_only: bool = False
    prometheus: str | None = None
    preset: str | None = None
    config: str | None = None
    journal_root: Path | None = None
    gitops_override: bool = False


def is_production(context: str, config: dict[str, Any]) -> bool:
    """A context marked production in config, or named like prod."""
    if context in (config.get("production_contexts") or []):
        return True
    words = re.split(r"[^a-z0-9]+", context.lower())
    return any(word in PRODUCTION_WORDS for word in words)


def load_config(path: str | None) -> dict[str, Any]:
    """The config file's settings ({} without one). Raises ConfigError naming the problem."""
    return config_file.load_config(path) if path else {}


def open_cluster(options: SessionOptions) -> tuple[KubeCluster, Target]:
    """Connect and check the target exists. Raises ConfigError, NotFoundError,
    UnreachableError, ForbiddenError with what to fix."""
    cluster = KubeCluster(options.kubeconfig, options.context)
    namespace = options.namespace or cluster.default_namespace
    if not options.deployment:
        raise ConfigError("no deployment given; pass --deployment NAME")
    try:
        cluster.get("Namespace", "", namespace)
    except NotFoundError:
        raise NotFoundError(
            f'namespace "{namespace}" does not exist in context '
            f"{cluster.context}; check -n/--namespace"
        ) from None
    try:
        cluster.get("Deployment", namespace, options.deployment)
    except NotFoundError:
        names = [d["metadata"]["name"] for d in cluster.list("Deployment", namespace)]
        raise NotFoundError(
            f'deployment "{options.deployment}" not found in namespace '
            f'"{namespace}"; deployments there: '
            f"{', '.join(names) or 'none'}"
        ) from None
    user = cluster.whoami()
    target = Target(cluster.context, namespace, options.deployment, cluster.server, user)
    return cluster, target


def open_session(options: SessionOptions, metrics: Any = None) -> Runbook:
    """A Runbook for a live incident: the cluster, the (re)opened journal, config."""
    config = load_config(options.config)
    cluster, target = open_cluster(options)
    journal = Journal.open_for(target, target.user, options.journal_root)
    if [e.type for e in journal.entries()] == ["opened"]:
        # A new incident: keep the manifests from before any fix for the evidence bundle.
        record_snapshot(journal, cluster, "before")
    return Runbook(
        cluster,
        target,
        journal,
        read_only=options.read_only,
        metrics=metrics,
        config=config,
        gitops_override=options.gitops_override,
    )
