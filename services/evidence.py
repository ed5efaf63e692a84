"""The post-fix evidence bundle: a folder and a .tar.gz with a SHA-256 manifest, written from
the journal and fresh reads, ready for the postmortem.

    timeline.md                      every check, finding, action, revert and the verdict (UTC)
    journal.jsonl                    the incident journal as recorded
    verdict.json                     the validation gate's verdict, each criterion's numbers
    manifests/deployment-{before,after}.yaml, manifests/replicasets-{before,after}.yaml
    pods/validated.yaml              each pod's image, args and env as validated
    gpu/inspector.csv, gpu/nvidia-smi/<pod>.txt
    metrics/{baseline,postfix}.{csv,json}, metrics/queries.txt
    charts/<quantity>.txt            plotext charts, post-fix against baseline
    MANIFEST.sha256                  `sha256sum -c` checks every other file

No secret value reaches it: objects are masked (Secret references shown, never resolved), and
every written text goes through `mask_text` with the secret values seen in the objects.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from services import gpu, rollout
from services.errors import ConfigError, SkewmitError
from services.journal import Journal, state_dir
from services.kube import Cluster
from services.masking import is_secret_flag, is_secret_name, mask_object, mask_text
from services.metrics.baseline import Baseline
from services.metrics.export import metric_files
from services.metrics.source import MetricsSource
from services.models import Target, Verdict
from services.validation import Thresholds, evaluate, rollout_facts, verdict_record

Obj = dict[str, Any]
MAX_SMI_PODS = 16
SMI_QUERY = ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv"]


@dataclass(frozen=True)
class Bundle:
    folder: Path
    tarball: Path
    files: tuple[str, ...]  # relative paths, MANIFEST.sha256 last
    verdict: Verdict | None


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=True, default_flow_style=False, allow_unicode=True)


def secret_values(objects: Sequence[Any]) -> set[str]:
    """Literal values of secret-looking env vars and flags in pods, templates, Deployments
    and ReplicaSets: what a final `mask_text` pass must never let through."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for key in ("containers", "initContainers"):
                for container in node.get(key) or []:
                    if not isinstance(container, Mapping):
                        continue
                    for env in container.get("env") or []:
                        value = env.get("value") if isinstance(env, Mapping) else None
                        if isinstance(value, str) and is_secret_name(str(env.get("name", ""))):
                            found.add(value)
                    args = [str(a) for a in (container.get("args") or [])]
                    args += [str(a) for a in (container.get("command") or [])]
                    for i, arg in enumerate(args):
                        flag, eq, value = arg.partition("=")
                        if arg.startswith("-") and is_secret_flag(flag):
                            if eq:
                                found.add(value)
                            elif i + 1 < len(args):
                                found.add(args[i + 1])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for obj in objects:
        walk(obj)
    return {s for s in found if len(s) >= 4 and not s.startswith("<secret")}


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


def find_journal(target: Target, root: Path | None = None) -> Journal | None:
    """The target's open incident, else its newest closed one; None when there is none.
    Never creates an incident."""
    incidents = (root or state_dir()) / "incidents"
    if not incidents.is_dir():
        return None
    best: tuple[int, str, Path] | None = None
    for folder in incidents.iterdir():
        try:
            meta = json.loads((folder / "incident.json").read_text())
        except (OSError, ValueError):
            continue
        key = (meta.get("context"), meta.get("namespace"), meta.get("deployment"))
        if key != (target.context, target.namespace, target.deployment):
            continue
        rank = (1 if meta.get("status") == "open" else 0, folder.name, folder)
        if best is None or rank[:2] > best[:2]:
            best = rank
    return Journal(best[2], target, target.user) if best else None


def _summary(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(type, text) rows for one journal record."""
    kind, data = str(record.get("type", "")), record.get("data") or {}
    if kind == "check":
        rows = [(kind, f"step {data.get('step')}: {data.get('state')}")]
        for f in data.get("findings") or []:
            rows.append(("finding", f"[{f.get('severity')}] {f.get('code')}: {f.get('message')}"))
        return rows
    if kind in ("plan", "apply-intent", "applied", "reverted"):
        text = str(data.get("title", data.get("action", "")))
        if kind == "apply-intent" and data.get("kubectl"):
            text += " (" + "; ".join(data["kubectl"]) + ")"
        if kind in ("applied", "reverted"):
            text += f"; verified: {data.get('verify', data.get('verified'))}"
        if kind == "reverted":
            text += f" (reverts entry {data.get('reverts')})"
        return [(kind, text)]
    if kind == "apply-failed":
        return [(kind, f"{data.get('error')} ({data.get('applied')} change(s) applied)")]
    if kind in ("revert-intent", "revert-refused"):
        return [(kind, f"entry {data.get('reverts')}")]
    if kind in ("validation", "closed"):
        return [(kind, f"verdict {data.get('verdict')}")]
    if kind == "snapshot":
        return [(kind, f"manifests recorded ({data.get('label')})")]
    text = data.get("message") or data.get("title") or json.dumps(data, sort_keys=True)[:160]
    return [(kind, str(text))]


def timeline(
    records: Sequence[Mapping[str, Any]],
    target: Target,
    verdict: Verdict | None,
    captured_by: str,
    captured_at: float,
    meta: Mapping[str, Any],
) -> str:
    lines = [
        f"# Incident timeline: {target.namespace}/{target.deployment}",
        "",
        f"- Context: `{target.context}`; API server: {target.server or '?'}",
        f"- Incident: {meta.get('id', 'no journal')}; opened {meta.get('opened_at', '?')} by "
        f"{meta.get('kube_user', '?')} ({meta.get('os_user', '?')})",
        f"- Evidence captured {_utc(captured_at)} by {captured_by}",
        f"- Verdict: **{verdict.verdict if verdict else 'not judged'}**",
        "",
        "| Time (UTC) | Who | Event | What |",
        "|---|---|---|---|",
    ]
    for record in records:
        who = record.get("who") or {}
        actor = f"{who.get('kube_user', '?')} ({who.get('os_user', '?')})"
        for kind, text in _summary(record):
            clean = text.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {record.get('ts', '?')} | {actor} | {kind} | {clean} |")
    if verdict is not None:
        journaled = any(
            r.get("type") == "validation" and (r.get("data") or {}).get("at") == verdict.at
            for r in records
        )
        if not journaled:
            lines.append(
                f"| {_utc(verdict.at)} | {captured_by} | validation | verdict {verdict.verdict} |"
            )
        lines += ["", "## Validation", ""]
        for check in verdict.checks:
            lines.append(
                f"- **{check.status}** `{check.name}`: {check.message} "
                f"(observed {check.observed}, baseline {check.baseline}; {check.threshold})"
            )
    return "\n".join(lines) + "\n"


def _before(
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


def _pod_view(pod: Obj) -> Obj:
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


def _gpu_files(
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
        files[f"gpu/nvidia-smi/{name}.txt"] = "\n".join(outputs)
    rows = gpu.gpu_rows(pods, nodes, smi, dict(dcgm), expected)
    columns = list(asdict(rows[0])) if rows else ["pod"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([asdict(row)[c] for c in columns])
    files["gpu/inspector.csv"] = out.getvalue()
    return files


def write_bundle(
    out_dir: Path | str,
    *,
    cluster: Cluster,
    target: Target,
    journal: Journal | None = None,
    source: MetricsSource | None = None,
    baseline: Baseline | None = None,
    verdict: Verdict | None = None,
    thresholds: Thresholds | Mapping[str, Any] | None = None,
    configured_gpu_class: str | None = None,
    now: float | None = None,
) -> Bundle:
    """Write the bundle under `out_dir` (a new folder and its .tar.gz beside it). Without a
    verdict one is taken now. Raises ConfigError when `out_dir` cannot be written, and what
    the cluster or the metrics source raise."""
    t = thresholds if isinstance(thresholds, Thresholds) else Thresholds.from_mapping(thresholds)
    now = (source.now() if source is not None else time.time()) if now is None else now
    ns, name = target.namespace, target.deployment
    live = cluster.get("Deployment", ns, name)
    sets = sorted(rollout.owned_replicasets(cluster, live), key=rollout.revision_of)
    selector = ",".join(
        f"{k}={v}" for k, v in sorted(live["spec"]["selector"].get("matchLabels", {}).items())
    )
    pods = [
        p
        for p in cluster.list("Pod", ns, label_selector=selector)
        if not p["metadata"].get("deletionTimestamp")
    ]
    try:
        nodes = cluster.list("Node")
    except SkewmitError:
        nodes = []
    secrets = secret_values([live, *sets, *pods])
    records = journal.records() if journal is not None else []
    if source is not None and baseline is None:
        baseline = source.baseline(t.stable_window_s)
    dcgm = source.dcgm_models() if source is not None else {}
    facts = rollout_facts(cluster, ns, name, configured_class=configured_gpu_class, dcgm=dcgm)
    if verdict is None:
        verdict = evaluate(source, facts, t, baseline=baseline, now=now)
        if journal is not None:
            journal.append("validation", verdict_record(verdict))
            records = journal.records()
    before_dep, before_sets, before_from = _before(records, live, sets)
    captured_by = f"skewmit ({target.user or '?'})"
    files: dict[str, str] = {
        "timeline.md": timeline(
            records, target, verdict, captured_by, now, journal.meta() if journal else {}
        ),
        "journal.jsonl": "".join(
            json.dumps(mask_object(r), sort_keys=True) + "\n" for r in records
        ),
        "verdict.json": json.dumps(verdict_record(verdict), indent=2, sort_keys=True) + "\n",
        "manifests/deployment-before.yaml": f"# {before_from}\n" + _yaml(before_dep),
        "manifests/deployment-after.yaml": _yaml(mask_object(live)),
        "manifests/replicasets-before.yaml": f"# {before_from}\n" + _yaml(before_sets),
        "manifests/replicasets-after.yaml": _yaml([mask_object(rs) for rs in sets]),
        "pods/validated.yaml": _yaml([_pod_view(p) for p in pods]),
    }
    files.update(_gpu_files(cluster, pods, nodes, dcgm, facts.expected_class))
    if source is not None:
        files.update(metric_files(source, baseline, t, now))
    return _write(Path(out_dir), target, now, files, secrets, verdict)


def _write(
    out_dir: Path,
    target: Target,
    now: float,
    files: dict[str, str],
    secrets: set[str],
    verdict: Verdict,
) -> Bundle:
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"skewmit-evidence-{target.namespace}-{target.deployment}-{stamp}"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        folder = out_dir / base
        suffix = 1
        while folder.exists():
            suffix += 1
            folder = out_dir / f"{base}-{suffix}"
        folder.mkdir(mode=0o700)
        manifest = []
        for rel in sorted(files):
            text = mask_text(files[rel], sorted(secrets))
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            data = text.encode()
            path.write_bytes(data)
            manifest.append(f"{hashlib.sha256(data).hexdigest()}  {rel}")
        (folder / "MANIFEST.sha256").write_text("\n".join(manifest) + "\n")
        tarball = out_dir / f"{folder.name}.tar.gz"
        with tarfile.open(tarball, "w:gz") as tar:
            tar.add(folder, arcname=folder.name)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the evidence bundle under {out_dir}: {exc}; choose another --out"
        ) from exc
    return Bundle(folder, tarball, (*sorted(files), "MANIFEST.sha256"), verdict)


def capture(runbook: Any, out_dir: Path | str) -> Bundle:
    """The bundle for a Runbook session (cluster, target, journal, metrics, config)."""
    config = getattr(runbook, "config", {}) or {}
    return write_bundle(
        out_dir,
        cluster=runbook.cluster,
        target=runbook.target,
        journal=runbook.journal,
        source=runbook.metrics,
        thresholds=config.get("thresholds"),
        configured_gpu_class=config.get("expected_gpu_class"),
    )
