"""Opening an incident session against a real cluster: kubeconfig, context, target checks,
the journal and the metrics source, each failure one clear message.

Two parts, so the app can draw its first frame before any network call (issue 12):
`read_local` reads what the flags, the config file and the kubeconfig say (no network, no
Kubernetes client); `open_session` then connects, checks the target and opens the journal.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from services import config as config_file
from services.errors import ConfigError, ForbiddenError, NotFoundError
from services.names import check_name, check_namespace

if TYPE_CHECKING:
    from services.clock import Clock
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
    take_over: bool = False  # take the incident's journal from the instance holding it
    # Server-side apply may take fields another field manager owns (kubectl's
    # --force-conflicts): only when the operator said so, after agreeing with the owner.
    force_conflicts: bool = False


@dataclass(frozen=True)
class LocalTarget:
    """The target as the flags and the kubeconfig name it, read with no network call: what
    the app's header says before it connects. The user is the kubeconfig's entry; the
    server may know it by another name (services.kube `whoami`)."""

    kubeconfig: str | None  # the file read; None when $KUBECONFIG lists several
    context: str
    server: str
    namespace: str
    deployment: str
    user: str


def is_production(context: str, config: dict[str, Any]) -> bool:
    """A context marked production in config, or named like prod."""
    if context in (config.get("production_contexts") or []):
        return True
    words = re.split(r"[^a-z0-9]+", context.lower())
    return any(word in PRODUCTION_WORDS for word in words)


def load_config(path: str | None) -> dict[str, Any]:
    """The config file's settings ({} without one). Raises ConfigError naming the problem."""
    return config_file.load_config(path) if path else {}


def _read_kubeconfig(path: Path) -> dict[str, Any]:
    try:
        # libyaml when present: a kubeconfig with hundreds of contexts is read before the
        # first frame.
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"kubeconfig {path} is not valid YAML ({exc.__class__.__name__}); "
            "fix the file or pass another with --kubeconfig"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read kubeconfig {path}: {exc.strerror or exc}") from exc
    return data if isinstance(data, dict) else {}


def _entry(entries: list[Any], name: str, key: str) -> dict[str, Any]:
    """The `key` body of the kubeconfig entry called `name` ({} when there is none)."""
    found: dict[str, Any] = next((e for e in entries if e.get("name") == name), {})
    body = found.get(key)
    return body if isinstance(body, dict) else {}


def local_target(options: SessionOptions) -> LocalTarget:
    """The context, its server, user and namespace from the kubeconfig kubectl would use
    (--kubeconfig, else $KUBECONFIG, whose files merge with the first one's entries winning,
    else ~/.kube/config), and the names checked before any URL or path is built from them.
    Reads files only: no network call and no Kubernetes client. Raises ConfigError with the
    messages services.kube gives for the same faults."""
    path = options.kubeconfig
    parts = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if not path and len(parts) > 1:
        file: str | None = None
        files = [Path(p).expanduser() for p in parts if Path(p).expanduser().is_file()]
        if not files:
            raise ConfigError(
                f"cannot read kubeconfig $KUBECONFIG: none of {', '.join(parts)} exists; "
                "pass --kubeconfig PATH or set KUBECONFIG"
            )
    else:
        chosen = Path(path or (parts[0] if parts else "~/.kube/config")).expanduser()
        if not chosen.is_file():
            raise ConfigError(
                f"kubeconfig {chosen} does not exist; pass --kubeconfig PATH or set KUBECONFIG"
            )
        file, files = str(chosen), [chosen]
    merged: dict[str, list[Any]] = {"contexts": [], "clusters": [], "users": []}
    current = ""
    for each in files:
        data = _read_kubeconfig(each)
        for key, entries in merged.items():
            known = {e.get("name") for e in entries}
            listed = data.get(key)
            listed = listed if isinstance(listed, list) else []
            entries += [e for e in listed if isinstance(e, dict) and e.get("name") not in known]
        current = current or str(data.get("current-context") or "")
    if not merged["contexts"]:
        raise ConfigError(
            f"kubeconfig {file or '$KUBECONFIG'} has no contexts; is it a kubeconfig file?"
        )
    names = [str(e.get("name")) for e in merged["contexts"]]
    context = options.context or current
    if not context or context not in names:
        raise ConfigError(
            f"context {context or None!r} is not in the kubeconfig; known contexts: "
            f"{', '.join(names) or 'none'}. Pass --context NAME."
        )
    entry = _entry(merged["contexts"], context, "context")
    cluster_name = str(entry.get("cluster", ""))
    server = str(_entry(merged["clusters"], cluster_name, "cluster").get("server") or "")
    if not server:
        raise ConfigError(
            f"context {context!r} is unusable: its cluster {cluster_name!r} is not in the "
            "kubeconfig or has no server"
        )
    namespace = options.namespace or str(entry.get("namespace") or "default")
    if not options.deployment:
        raise ConfigError("no deployment given; pass --deployment NAME")
    check_namespace(namespace, flag="-n/--namespace")
    check_name("Deployment", options.deployment, flag="--deployment")
    return LocalTarget(
        file, context, server, namespace, options.deployment, str(entry.get("user", ""))
    )


def open_cluster(
    options: SessionOptions, local: LocalTarget | None = None
) -> tuple[KubeCluster, Target]:
    """Connect and check the target exists (`local`: what local_target read already).
    Raises ConfigError, NotFoundError, UnreachableError, ForbiddenError with what to fix."""
    from services.kube import KubeCluster
    from services.models import Target

    local = local or local_target(options)
    cluster = KubeCluster(options.kubeconfig, local.context)
    namespace, deployment = local.namespace, local.deployment
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
        cluster.get("Deployment", namespace, deployment)
    except NotFoundError:
        try:
            names = [d["metadata"]["name"] for d in cluster.list("Deployment", namespace)]
            there = f"deployments there: {', '.join(names) or 'none'}"
        except ForbiddenError:
            there = "check --deployment and -n/--namespace"
        raise NotFoundError(
            f'deployment "{deployment}" not found in namespace "{namespace}"; {there}'
        ) from None
    user = cluster.whoami()
    target = Target(cluster.context, namespace, deployment, cluster.server, user)
    return cluster, target


def open_session(
    options: SessionOptions,
    metrics: Any = None,
    clock: Clock | None = None,
    *,
    local: LocalTarget | None = None,
    config: dict[str, Any] | None = None,
) -> Runbook:
    """A Runbook for a live incident: the cluster, the journal, config. `clock` is the
    session's one clock (services.clock), which the journal stamps its entries with; by
    default the metrics source's, else the wall clock. An open incident for
    the target is reopened (and what a crash left of it reconciled) at once; otherwise none
    is opened until a check finds something to fix or a change is made, so a healthy
    Deployment leaves nothing under the state directory. With `read_only` nothing is written
    and the state directory may be missing. `local` and `config`, when the caller read them
    already (before drawing anything), are not read again. Raises ConfigError (bad config,
    an unwritable state directory), NotFoundError, UnreachableError, ForbiddenError,
    JournalError."""
    from services.clock import source_clock
    from services.journal import Journal
    from services.runbook import Runbook

    config = load_config(options.config) if config is None else config
    clock = clock or source_clock(metrics)
    local = local or local_target(options)
    if not options.read_only:
        # Said now, not at the first finding: without --read-only the journal will be needed.
        check_writable(options.journal_root)
    cluster, target = open_cluster(options, local)
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
            force_conflicts=options.force_conflicts,
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
            force_conflicts=options.force_conflicts,
            notices=tuple(notices),
        )
    runbook = Runbook(
        cluster,
        target,
        None,
        metrics=metrics,
        config=config,
        gitops_override=options.gitops_override,
        force_conflicts=options.force_conflicts,
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
    from services.journal import Journal
    from services.reconcile import reconcile
    from services.snapshot import record_snapshot

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


def check_writable(root: Path | None) -> None:
    """Raise ConfigError, as opening the journal would, when the state directory cannot be
    created or written; creates nothing."""
    from services.journal import state_dir

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
