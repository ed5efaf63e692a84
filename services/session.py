"""Opening an incident session against a real cluster: kubeconfig, context, target checks,
the journal and the metrics source, each failure one clear message."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services import config as config_file
from services.clock import Clock, source_clock
from services.errors import ConfigError, ForbiddenError, NotFoundError
from services.evidence import record_snapshot
from services.journal import Journal, state_dir
from services.kube import KubeCluster
from services.models import Target
from services.names import check_name, check_namespace
from services.reconcile import reconcile
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
    take_over: bool = False  # take the incident's journal from the instance holding it


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
    # Before any URL or journal path is built from them.
    check_namespace(namespace, flag="-n/--namespace")
    check_name("Deployment", options.deployment, flag="--deployment")
    try:
        cluster.get("Namespace", "", namespace)
    except NotFoundError:
        raise NotFoundError(
            f'namespace "{namespace}" does not exist in context '
            f"{cluster.context}; check -n/--namespace"
        ) from None
    except ForbiddenError:
        # Namespaces are cluster-scoped: an on-call role bound in one namespace cannot read
        # them, yet can do the whole runbook there. The Deployment read below still decides.
        pass
    try:
        cluster.get("Deployment", namespace, options.deployment)
    except NotFoundError:
        try:
            names = [d["metadata"]["name"] for d in cluster.list("Deployment", namespace)]
            there = f"deployments there: {', '.join(names) or 'none'}"
        except ForbiddenError:
            there = "check --deployment and -n/--namespace"
        raise NotFoundError(
            f'deployment "{options.deployment}" not found in namespace "{namespace}"; {there}'
        ) from None
    user = cluster.whoami()
    target = Target(cluster.context, namespace, options.deployment, cluster.server, user)
    return cluster, target


def open_session(
    options: SessionOptions, metrics: Any = None, clock: Clock | None = None
) -> Runbook:
    """A Runbook for a live incident: the cluster, the journal, config. `clock` is the
    session's one clock (services.clock), which the journal stamps its entries with; by
    default the metrics source's, else the wall clock. An open incident for
    the target is reopened (and what a crash left of it reconciled) at once; otherwise none
    is opened until a check finds something to fix or a change is made, so a healthy
    Deployment leaves nothing under the state directory. With `read_only` nothing is written
    and the state directory may be missing. Raises ConfigError (bad config, an unwritable
    state directory), NotFoundError, UnreachableError, ForbiddenError, JournalError."""
    config = load_config(options.config)
    clock = clock or source_clock(metrics)
    cluster, target = open_cluster(options)
    root = options.journal_root
    # Read-only opening creates nothing: it only finds the target's open incident.
    found = Journal.open_for(target, target.user, root, read_only=True, clock=clock)
    if options.read_only:
        return Runbook(
            cluster,
            target,
            found,
            read_only=True,
            metrics=metrics,
            config=config,
            gitops_override=options.gitops_override,
        )
    if found.incident_id:
        journal, notices = _reopen(options, cluster, target, clock)
        return Runbook(
            cluster,
            target,
            journal,
            read_only=journal.read_only,
            metrics=metrics,
            config=config,
            gitops_override=options.gitops_override,
            notices=tuple(notices),
        )
    # Said now, not at the first finding: without --read-only the journal will be needed.
    _check_writable(root)
    runbook = Runbook(
        cluster,
        target,
        None,
        metrics=metrics,
        config=config,
        gitops_override=options.gitops_override,
    )

    def open_journal() -> Journal:
        journal, notices = _reopen(options, cluster, target, clock)
        if journal.read_only:
            # Another instance opened the incident first and holds it.
            runbook.read_only = True
        runbook.notices += tuple(notices)
        return journal

    runbook.open_journal = open_journal
    return runbook


def _reopen(
    options: SessionOptions, cluster: KubeCluster, target: Target, clock: Clock
) -> tuple[Journal, list[str]]:
    """The target's incident journal, reopened or started (with the manifests from before any
    fix), and what to tell the operator: who holds it, which crashed intents were settled."""
    journal = Journal.open_for(
        target, target.user, options.journal_root, take_over=options.take_over, clock=clock
    )
    notices = [journal.read_only_reason()] if journal.held_by is not None else []
    if journal.owner and [e.type for e in journal.entries()] == ["opened"]:
        # A new incident: keep the manifests from before any fix for the evidence bundle.
        record_snapshot(journal, cluster, "before")
    # What a crash left between an intent and its outcome, settled against the live cluster.
    notices += [r.message for r in reconcile(journal, cluster)]
    return journal, notices


def _check_writable(root: Path | None) -> None:
    """Raise ConfigError, as opening the journal would, when the state directory cannot be
    created or written; creates nothing."""
    incidents = (Path(root) if root else state_dir()) / "incidents"
    existing = incidents
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        return
    why = "not a directory" if existing.exists() and not existing.is_dir() else "not writable"
    raise ConfigError(
        f"cannot create the journal directory {incidents}: {existing} is {why}; set "
        "XDG_STATE_HOME to a writable directory, or pass --read-only"
    )
