"""The Deployment and its ReplicaSets as they are, masked: what an incident journals when it
opens, so that the evidence bundle has the manifests from before any fix.

Kept apart from `services.evidence`: opening an incident needs only this, and the bundle's
modules (tarfile, the timeline, validation, the history) cost 40 ms of import on the worker
that opens the journal while the first checks are being drawn.
"""

from __future__ import annotations

from typing import Any

from services import rollout
from services.journal import Journal
from services.kube import Cluster
from services.masking import mask_object

Obj = dict[str, Any]


def snapshot(cluster: Cluster, namespace: str, deployment: str) -> Obj:
    """The Deployment and its ReplicaSets now, masked. Raises NotFoundError, UnreachableError."""
    live = cluster.get("Deployment", namespace, deployment)
    sets = sorted(rollout.owned_replicasets(cluster, live), key=rollout.revision_of)
    return {"deployment": mask_object(live), "replicasets": [mask_object(rs) for rs in sets]}


def record_snapshot(journal: Journal, cluster: Cluster, label: str = "before") -> None:
    """Journal the Deployment and ReplicaSets as they are (call it when an incident opens, so
    the bundle has the manifests from before any fix)."""
    target = journal.target
    journal.append(
        "snapshot", {"label": label, **snapshot(cluster, target.namespace, target.deployment)}
    )
