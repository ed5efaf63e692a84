"""What the cluster shows in the evidence bundle: the manifests from before the first change,
each validated pod's image, args and env, and the GPU inspector with nvidia-smi output. Every
object is masked; Secret references are shown, never resolved."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from services import gpu, rollout
from services.errors import SkewmitError
from services.evidence_files import segment
from services.kube import Cluster
from services.masking import mask_object

Obj = dict[str, Any]
MAX_SMI_PODS = 16
SMI_QUERY = ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv"]


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
    files: dict[str, str] = {}
    smi: dict[str, str] = {}
    for pod in pods[:MAX_SMI_PODS]:
        name = pod["metadata"]["name"]
        container = pod["spec"]["containers"][0]["name"]
        outputs = []
        for argv in (SMI_QUERY, ["nvidia-smi"]):
            try:
                text = cluster.exec(pod["metadata"]["namespace"], name, container, argv)
            except SkewmitError as exc:
                text = f"(failed: {exc})\n"
            outputs.append(f"$ {' '.join(argv)}\n{text}")
            if argv is SMI_QUERY and not text.startswith("(failed"):
                smi[name] = text
        files[f"gpu/nvidia-smi/{segment(name)}.txt"] = "\n".join(outputs)
    rows = gpu.gpu_rows(pods, nodes, smi, dict(dcgm), expected)
    columns = list(asdict(rows[0])) if rows else ["pod"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([asdict(row)[c] for c in columns])
    files["gpu/inspector.csv"] = out.getvalue()
    return files
