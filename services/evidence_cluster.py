"""What the cluster shows in the evidence bundle: the manifests from before the first change,
each validated pod's image, args and env, and the GPU inspector with nvidia-smi output (one
exec per node at most, shared with step 5's readings). Every object is masked; Secret
references are shown, never resolved."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

from services import gpu, rollout
from services.evidence_files import segment
from services.kube import Cluster
from services.masking import mask_object
from services.smi_reads import NVIDIA_SMI_ARGV, cache_for

Obj = dict[str, Any]
MAX_SMI_PODS = 16  # pods with a gpu/nvidia-smi/<pod>.txt; inspector.csv has every pod


def before_state(
    records: Sequence[Mapping[str, Any]], live: Obj, sets: list[Obj]
) -> tuple[Any, Any, str]:
    """(deployment, replicasets, where from) as they were before the first change."""
    for record in records:
        data = record.get("data") or {}
        if record.get("type") == "snapshot" and data.get("label") == "before":
            return data.get("deployment"), data.get("replicasets"), "journal snapshot"
    for record in records:
        if record.get("type") != "apply-intent":
            continue
        for change in (record.get("data") or {}).get("changes") or []:
            if change.get("kind") == "Deployment" and change.get("before"):
                template = ((change["before"].get("spec") or {}).get("template")) or {}
                ran = [
                    rs for rs in sets if rollout.equal_ignore_hash(rs["spec"]["template"], template)
                ]
                return change["before"], [mask_object(rs) for rs in ran], "first journaled change"
    return mask_object(live), [mask_object(rs) for rs in sets], "no change journaled: as now"


def pod_view(pod: Obj) -> Obj:
    statuses = {s["name"]: s for s in pod.get("status", {}).get("containerStatuses") or []}
    masked = mask_object(pod)
    return {
        "name": pod["metadata"]["name"],
        "node": pod["spec"].get("nodeName", ""),
        "phase": pod.get("status", {}).get("phase", ""),
        "containers": [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": statuses.get(c["name"], {}).get("imageID", ""),
                "command": c.get("command", []),
                "args": c.get("args", []),
                "env": c.get("env", []),
                "envFrom": c.get("envFrom", []),
            }
            for c in masked["spec"]["containers"]
        ],
    }


def gpu_files(
    cluster: Cluster,
    pods: list[Obj],
    nodes: list[Obj],
    dcgm: Mapping[str, str],
    expected: str | None,
) -> dict[str, str]:
    """gpu/inspector.csv (one row per pod, its note saying which pod on its node the
    nvidia-smi reading comes from) and gpu/nvidia-smi/<pod>.txt for the first MAX_SMI_PODS.

    nvidia-smi runs as step 5 runs it (services.smi_reads): in one pod per node, the
    connection's remembered reading used while fresh, so a capture on a 1,000-pod fleet
    execs at most once per node (none when step 5 just read them) and at most
    smi_reads.MAX_NEW_NODES times; pods left unread say so. Raises nothing."""
    reads = cache_for(cluster).read(cluster, pods, nodes)
    files: dict[str, str] = {}
    for pod in pods[:MAX_SMI_PODS]:
        name = pod["metadata"]["name"]
        node = pod["spec"].get("nodeName") or "(not scheduled)"
        note = reads.notes.get(name, "")
        head = f"# pod {name} on node {node}: {note or 'read in this pod'}"
        text = reads.by_pod.get(name)
        body = f"$ {' '.join(NVIDIA_SMI_ARGV)}\n{text}" if text is not None else "(not read)\n"
        files[f"gpu/nvidia-smi/{segment(name)}.txt"] = f"{head}\n{body}"
    rows = gpu.gpu_rows(pods, nodes, reads.by_pod, dict(dcgm), expected)
    rows = [
        replace(row, note="; ".join(n for n in (row.note, reads.notes.get(row.pod, "")) if n))
        for row in rows
    ]
    columns = list(asdict(rows[0])) if rows else ["pod"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([asdict(row)[c] for c in columns])
    files["gpu/inspector.csv"] = out.getvalue()
    return files
