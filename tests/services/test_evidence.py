"""The evidence bundle: what it holds, that its manifest and tarball agree, and that no
secret planted in the Deployment (a literal API key, a --api-key flag, a secretKeyRef to the
Hugging Face token) reaches any file of it."""

from __future__ import annotations

import base64
import hashlib
import json
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from services import rollout
from services.evidence import record_snapshot, write_bundle
from services.gate import Gate
from services.journal import Journal
from services.kube import KubeCluster
from services.metrics.simsource import SimMetricsSource
from services.metrics.source import Scope
from services.models import Change, Plan, Step, Target
from services.simulator.backfill import render_history
from services.simulator.runner import Simulator
from services.validation import Thresholds
from tests.services.conftest import BACKFILL_FAMILIES, VLLM_FAST

API_KEY = "sk-live-PLANTEDsecret-0123456789abcdef"
FLAG_KEY = "PlantedFlagKey-9f8e7d6c5b4a"
HF_TOKEN = "hf_sImUlAtEdSeCrEtT0kEnD0NotLeak"  # the scenario's Secret hf-token
SECRETS = (API_KEY, FLAG_KEY, HF_TOKEN)
DAY = 86400.0


def _plant_secrets(cluster: KubeCluster, gate: Gate) -> None:
    deployment = cluster.get("Deployment", "inference", "llm-serve")
    container = "/spec/template/spec/containers/0"
    ops = [
        {"op": "add", "path": f"{container}/env/-", "value": {"name": "API_KEY", "value": API_KEY}},
        {
            "op": "add",
            "path": f"{container}/env/-",
            "value": {
                "name": "HF_TOKEN_COPY",
                "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}},
            },
        },
        {"op": "add", "path": f"{container}/args/-", "value": "--api-key"},
        {"op": "add", "path": f"{container}/args/-", "value": FLAG_KEY},
    ]
    change = Change(
        "Deployment", "inference", "llm-serve", "patch", "json", ops, deployment, None,
        deployment["metadata"]["resourceVersion"],
    )  # fmt: skip
    plan = Plan(Step.PIN, "pin.test-env", "Add an API key to llm-serve", (change,), ())
    assert gate.apply(plan, gate.preview(plan)).verified


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("evidence")
    with Simulator(VLLM_FAST, speed=5.0, seed=7) as sim:
        assert sim.cluster is not None
        clock = sim.cluster.clock.time
        cluster = KubeCluster(str(sim.write_kubeconfig(tmp / "kubeconfig")))
        target = Target(cluster.context, "inference", "llm-serve", cluster.server, cluster.whoami())
        journal = Journal.open_for(target, target.user, root=tmp / "state")
        source = SimMetricsSource(
            sim.metrics_url, Scope("inference", "llm-serve"), "vllm", clock=clock,
            scrape_interval_s=2.0, rate_window_s=20.0,
        )  # fmt: skip
        now = clock()
        # The demo's way to a day-old baseline: the simulator's own history, ingested.
        history = render_history(
            VLLM_FAST,
            start=now - DAY - 300,
            end=now - DAY + 300,
            step_s=2.0,
            revision=2,
            families=BACKFILL_FAMILIES,
        )
        source.ingest(history.text)
        source.start()
        try:
            record_snapshot(journal, cluster, "before")
            _plant_secrets(cluster, Gate(cluster, journal))
            deadline = time.monotonic() + 60
            while not rollout.progress(cluster, "inference", "llm-serve").done:
                assert time.monotonic() < deadline, "the rollout never finished"
                time.sleep(0.2)
            time.sleep(1.5)  # a few scrapes of the new pods
            written = write_bundle(
                tmp / "out",
                cluster=cluster,
                target=target,
                journal=journal,
                source=source,
                thresholds=Thresholds(stable_window_s=60, step_s=2),
            )
        finally:
            source.stop()
    return written.folder, written.tarball


def _texts(folder: Path, tarball: Path) -> dict[str, bytes]:
    out = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            if handle is not None:
                out[f"tar:{member.name}"] = handle.read()
    out["tar:raw"] = tarball.read_bytes()
    return out


def test_no_secret_reaches_the_bundle(bundle: tuple[Path, Path]) -> None:
    import gzip

    folder, tarball = bundle
    texts = _texts(folder, tarball)
    texts["tar:decompressed"] = gzip.decompress(tarball.read_bytes())
    assert len(texts) > 20
    for secret in SECRETS:
        forms = {secret.encode(), base64.b64encode(secret.encode())}
        for name, data in texts.items():
            for form in forms:
                assert form not in data, f"{secret[:6]}... found in {name}"
    after = yaml.safe_load((folder / "manifests" / "deployment-after.yaml").read_text())
    env = {e["name"]: e["value"] for e in after["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["API_KEY"] == "********"
    assert env["HF_TOKEN_COPY"] == "<secret hf-token/token>"  # shown, never resolved
    pods = yaml.safe_load((folder / "pods" / "validated.yaml").read_text())
    assert all("--api-key" in p["containers"][0]["args"] for p in pods)


def test_bundle_holds_the_incident_and_verifies(bundle: tuple[Path, Path]) -> None:
    folder, tarball = bundle
    expected = {
        "timeline.md", "journal.jsonl", "verdict.json", "pods/validated.yaml",
        "manifests/deployment-before.yaml", "manifests/deployment-after.yaml",
        "manifests/replicasets-before.yaml", "manifests/replicasets-after.yaml",
        "gpu/inspector.csv", "metrics/postfix.csv", "metrics/postfix.json",
        "metrics/baseline.csv", "metrics/baseline.json", "metrics/queries.txt",
        "charts/p99.txt", "charts/tokens_per_s.txt", "charts/gpu_util.txt", "MANIFEST.sha256",
    }  # fmt: skip
    files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert expected <= files
    pods = yaml.safe_load((folder / "pods" / "validated.yaml").read_text())
    assert {f"gpu/nvidia-smi/{p['name']}.txt" for p in pods} <= files

    # sha256sum -c: every file but the manifest itself, each hash right.
    listed = {}
    for line in (folder / "MANIFEST.sha256").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    assert set(listed) == files - {"MANIFEST.sha256"}
    for name, digest in listed.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    with tarfile.open(tarball) as tar:
        names = {n.removeprefix(folder.name + "/") for n in tar.getnames()}
    assert files <= names

    timeline = (folder / "timeline.md").read_text()
    assert "| apply-intent |" in timeline and "Add an API key to llm-serve" in timeline
    assert "skewmit-admin (" in timeline  # who did it
    assert "manifests recorded (before)" in timeline
    assert "T" in timeline.split("| apply-intent |")[0].rsplit("\n", 1)[-1]  # a UTC time
    before = yaml.safe_load((folder / "manifests" / "deployment-before.yaml").read_text())
    names_before = [e["name"] for e in before["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert "API_KEY" not in names_before

    verdict = json.loads((folder / "verdict.json").read_text())
    assert verdict["verdict"] in ("pass", "fail", "insufficient-data")
    assert {c["name"] for c in verdict["checks"]} >= {"p99", "tokens_per_s", "rollout-complete"}
    gpu_rows = (folder / "gpu" / "inspector.csv").read_text().splitlines()
    assert gpu_rows[0].startswith("pod,node,")
    assert len(gpu_rows) == len(pods) + 1 and all("H100-80GB" in row for row in gpu_rows[1:])
    smi = (folder / "gpu" / "nvidia-smi" / f"{pods[0]['name']}.txt").read_text()
    assert "NVIDIA H100 80GB HBM3, 81559 MiB" in smi
    assert "p99 latency" in (folder / "charts" / "p99.txt").read_text()
    baseline = json.loads((folder / "metrics" / "baseline.json").read_text())
    assert baseline["how"] == "offset 1d" and baseline["values"]["p99"][""] > 0
