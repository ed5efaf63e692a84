"""The evidence bundle on a simulated incident (fast simulated clock, the simulator's scrape
source): what it holds, that its manifest and tarball agree and are private, that the timeline
reads like a postmortem (one row per finding, the triggering change, rollouts, an outside
change rebuilt from the ReplicaSets), one clock, and that no planted secret (literal API key,
--api-key flag, secretKeyRef, URL credentials, `password=` in an annotation, a bearer token,
`token=` in a change-cause) reaches any file of it."""

from __future__ import annotations

import base64
import csv
import getpass
import gzip
import hashlib
import io
import json
import re
import stat
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from services import rollout
from services.clock import Clock
from services.evidence import Bundle, write_bundle
from services.evidence_clock import parse_utc, utc
from services.gate import Gate
from services.journal import Journal
from services.kube import KubeCluster
from services.metrics.simsource import SimMetricsSource
from services.metrics.source import Scope
from services.models import Change, Plan, Step, Target
from services.runbook import Runbook
from services.simulator.backfill import render_history
from services.simulator.runner import Simulator
from services.snapshot import record_snapshot
from services.validation import Thresholds
from tests.services.conftest import BACKFILL_FAMILIES, VLLM_FAST

API_KEY = "sk-live-PLANTEDsecret-0123456789abcdef"
FLAG_KEY = "PlantedFlagKey-9f8e7d6c5b4a"
HF_TOKEN = "hf_sImUlAtEdSeCrEtT0kEnD0NotLeak"  # the scenario's Secret hf-token
DB_PASSWORD = "Planted-DB-pass-77"  # in DATABASE_URL=postgres://admin:...@db
ANNOTATION_PASSWORD = "PlantedAnnotPw-4242"  # password=... in an annotation
BEARER = "PlantedBearerTok3n9876543210"  # Authorization: Bearer ...
CAUSE_TOKEN = "PlantedCauseTok-5150"  # token=... in a hand edit's change-cause
SECRETS = (API_KEY, FLAG_KEY, HF_TOKEN, DB_PASSWORD, ANNOTATION_PASSWORD, BEARER, CAUSE_TOKEN)
DAY = 86400.0
SPEED = 5.0
HF_REF = {"name": "hf-token", "key": "token"}


def _plant_secrets(cluster: KubeCluster, gate: Gate) -> None:
    """A change through skewmit's gate that adds every secret shape to the Deployment."""
    deployment = cluster.get("Deployment", "inference", "llm-serve")
    container = "/spec/template/spec/containers/0"
    env = [
        {"name": "API_KEY", "value": API_KEY},
        {"name": "HF_TOKEN_COPY", "valueFrom": {"secretKeyRef": HF_REF}},
        {"name": "DATABASE_URL", "value": f"postgres://admin:{DB_PASSWORD}@db.internal:5432/app"},
        {"name": "UPSTREAM_AUTH", "value": f"Authorization: Bearer {BEARER}"},
    ]  # fmt: skip
    ops = [{"op": "add", "path": f"{container}/env/-", "value": e} for e in env]
    ops += [
        {"op": "add", "path": f"{container}/args/-", "value": "--api-key"},
        {"op": "add", "path": f"{container}/args/-", "value": FLAG_KEY},
        {
            "op": "add",
            "path": "/metadata/annotations/example.com~1notes",
            "value": f"rotated the db password={ANNOTATION_PASSWORD} today",
        },
    ]
    change = Change(
        "Deployment", "inference", "llm-serve", "patch", "json", ops, deployment, None,
        deployment["metadata"]["resourceVersion"],
    )  # fmt: skip
    plan = Plan(Step.PIN, "pin.test-env", "Add an API key to llm-serve", (change,), ())
    assert gate.apply(plan, gate.preview(plan)).verified


def _edit_by_hand(cluster: KubeCluster) -> None:
    """A change made outside skewmit (kubectl, a CI job): a new env var and a change-cause."""
    deployment = cluster.get("Deployment", "inference", "llm-serve")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    env = [*containers[0].get("env", []), {"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"}]
    patch = {
        "metadata": {
            "annotations": {
                "kubernetes.io/change-cause": f"ci: debug logging (deploy token={CAUSE_TOKEN})"
            }
        },
        "spec": {"template": {"spec": {"containers": [{**containers[0], "env": env}]}}},
    }
    cluster.patch("Deployment", "inference", "llm-serve", patch, "strategic")


def _wait_rollout(cluster: KubeCluster) -> None:
    deadline = time.monotonic() + 90
    while not rollout.progress(cluster, "inference", "llm-serve").done:
        assert time.monotonic() < deadline, "the rollout never finished"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    tmp = tmp_path_factory.mktemp("evidence")
    with Simulator(VLLM_FAST, speed=SPEED, seed=7) as sim:
        assert sim.cluster is not None
        # The session's one clock, as the demo makes it: the journal and the source share it.
        clock = Clock.following(sim.cluster.clock)
        cluster = KubeCluster(str(sim.write_kubeconfig(tmp / "kubeconfig")))
        target = Target(cluster.context, "inference", "llm-serve", cluster.server, cluster.whoami())
        journal = Journal.open_for(target, target.user, root=tmp / "state", clock=clock)
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
            runbook = Runbook(cluster, target, journal=journal)
            for _ in range(3):  # the TUI checks again and again: the findings repeat
                runbook.check(Step.ROLLBACK)
                runbook.check(Step.PIN)
            gate = Gate(cluster, journal)
            # The fix: roll back to revision 2, which becomes revision 4 (revision-history 2).
            undo = rollout.undo_plan(cluster, "inference", "llm-serve", 0)
            assert gate.apply(undo, gate.preview(undo)).verified
            _wait_rollout(cluster)
            _plant_secrets(cluster, gate)
            _wait_rollout(cluster)
            _edit_by_hand(cluster)
            _wait_rollout(cluster)
            runbook.check(Step.PIN)
            time.sleep(1.5)  # a few scrapes of the new pods
            written = write_bundle(
                tmp / "out",
                cluster=cluster,
                target=target,
                journal=journal,
                source=source,
                thresholds=Thresholds(stable_window_s=60, step_s=2),
            )
            # The TUI's way (Runbook.capture_evidence), in the same second: a second folder.
            config = {"thresholds": {"stable_window": "60s", "step": "2s"}}
            again = Runbook(cluster, target, journal=journal, metrics=source, config=config)
            second = again.capture_evidence(tmp / "out")
            assert second.folder.parent == written.folder.parent != second.folder
            assert (second.folder / "timeline.md").is_file() and second.failures == ()
        finally:
            source.stop()
    return written


def _texts(folder: Path, tarball: Path) -> dict[str, bytes]:
    out = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            if handle is not None:
                out[f"tar:{member.name}"] = handle.read()
    out["tar:raw"] = tarball.read_bytes()
    out["tar:decompressed"] = gzip.decompress(tarball.read_bytes())
    return out


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_no_secret_reaches_the_bundle(bundle: Bundle) -> None:
    folder = bundle.folder
    texts = _texts(folder, bundle.tarball)
    assert len(texts) > 20
    for secret in SECRETS:
        forms = {secret.encode(), base64.b64encode(secret.encode())}
        for name, data in texts.items():
            for form in forms:
                assert form not in data, f"{secret[:8]}... found in {name}"
    after = yaml.safe_load((folder / "manifests" / "deployment-after.yaml").read_text())
    env = {e["name"]: e["value"] for e in after["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["API_KEY"] == "********"
    assert env["HF_TOKEN_COPY"] == "<secret hf-token/token>"  # shown, never resolved
    assert env["DATABASE_URL"].startswith("postgres://") and "db.internal" in env["DATABASE_URL"]
    pods = yaml.safe_load((folder / "pods" / "validated.yaml").read_text())
    assert all("--api-key" in p["containers"][0]["args"] for p in pods)


def test_bundle_is_complete_verified_and_private(bundle: Bundle) -> None:
    folder, tarball = bundle.folder, bundle.tarball
    expected = {
        "timeline.md", "journal.jsonl", "verdict.json", "pods/validated.yaml",
        "manifests/deployment-before.yaml", "manifests/deployment-after.yaml",
        "manifests/replicasets-before.yaml", "manifests/replicasets-after.yaml",
        "changes/outside-skewmit.md", "gpu/inspector.csv",
        "metrics/incident.csv", "metrics/incident.json", "metrics/postfix.csv",
        "metrics/postfix.json", "metrics/baseline.csv", "metrics/baseline.json",
        "metrics/queries.txt", "charts/p99.txt", "charts/tokens_per_s.txt",
        "charts/gpu_util.txt", "MANIFEST.sha256",
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
        members = tar.getmembers()
    names = {m.name.removeprefix(folder.name + "/") for m in members}
    assert files <= names

    # Only its owner can read it: on disk and once unpacked.
    assert stat.S_IMODE(tarball.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    assert {stat.S_IMODE(m.mode) for m in members} <= {0o600, 0o700}


def test_verdict_json_says_how_it_was_judged(bundle: Bundle) -> None:
    doc = json.loads((bundle.folder / "verdict.json").read_text())
    assert doc["verdict"] in ("pass", "fail", "insufficient-data")
    assert {c["name"] for c in doc["checks"]} >= {"p99", "tokens_per_s", "rollout-complete"}
    assert doc["preset"] == "vllm"
    assert doc["tool"] == {"name": "skewmit", "version": "0.1.0"}
    assert doc["operator"] == {"os_user": getpass.getuser(), "kube_user": "skewmit-admin"}
    assert (
        doc["thresholds"]["stable_window_s"] == 60 and doc["thresholds"]["tokens_min_ratio"] == 0.9
    )
    assert doc["metrics_source"].startswith("simulator scrape of http://127.0.0.1:")
    base = doc["baseline"]
    assert base["how"] == "offset 1d" and base["values"]["p99"][""] > 0
    # The day-old window is fully backfilled: its coverage says so.
    assert base["coverage"]["tokens_per_s"] >= 0.9
    assert parse_utc(base["start_utc"]) < parse_utc(base["end_utc"]) < parse_utc(doc["at_utc"])
    assert doc["failures"] == []


def test_timeline_has_one_row_per_distinct_finding(bundle: Bundle) -> None:
    timeline = (bundle.folder / "timeline.md").read_text()
    table = _section(timeline, "Findings (one row per distinct finding)")
    rows = [
        [c.strip() for c in r.split("|")[1:-1]] for r in table.splitlines() if r.startswith("| 20")
    ]
    # first seen, last seen, cleared, step, severity, code, finding, subjects
    keys = [(r[3], r[5], r[0], r[2]) for r in rows]
    assert rows and len(keys) == len(set(keys))  # three checks, yet each finding once
    pin = {r[5]: r for r in rows if r[3] == "pin"}
    assert {"image-mutable-tag", "model-revision-unpinned"} <= set(pin)
    tag = pin["image-mutable-tag"]
    # Reported on the Deployment and on each of its 4 pods: one row naming them.
    # (the pods are grouped into one finding already: "pod/a, pod/b, pod/c and 1 more (4 pods)")
    assert "deployment/llm-serve" in tag[7] and "(4 pods)" in tag[7]
    first, cleared = parse_utc(tag[0]), parse_utc(tag[2])
    assert first is not None and cleared is not None and first < cleared  # fixed by rollback
    assert any(r[3] == "rollback" for r in rows)
    events = _section(timeline, "Events")
    assert "| check |" not in events and "| findings |" not in events


def test_timeline_names_the_trigger_rollouts_and_validation(bundle: Bundle) -> None:
    timeline = (bundle.folder / "timeline.md").read_text()
    trigger = _section(timeline, "Triggering change")
    assert "revision 3" in trigger and '"bump to latest vllm"' in trigger
    assert "live when the incident opened" in trigger
    assert "revision 2" in trigger and "last-known-good" in trigger
    events = _section(timeline, "Events")
    completed = re.findall(r"rollout of revision (\d+) \(`[^`]+`\) completed", events)
    # The bad one (status at incident open); then each of the three changes, from the
    # controller's events and the status now.
    assert completed[0] == "3" and {"4", "5", "6"} <= set(completed)
    assert "| apply-intent |" in events and "Add an API key to llm-serve" in events
    assert "skewmit-admin (" in events  # who did it
    assert "manifests recorded (before)" in events
    validation = [r for r in events.splitlines() if "| validation | verdict " in r]
    assert validation and "observed" in validation[-1] and "baseline" in validation[-1]


def test_changes_outside_skewmit_are_rebuilt_from_replicasets(bundle: Bundle) -> None:
    folder = bundle.folder
    report = (folder / "changes" / "outside-skewmit.md").read_text()
    heads = re.findall(r"## Revision (\d+) -> (\d+)", report)
    after = [int(b) for _, b in heads]
    assert {2, 3} <= set(after)  # made before skewmit was there
    assert 4 not in after and 5 not in after  # skewmit's rollback and its env change
    hand = max(after)
    assert "ci: debug logging" in report and "+      value: DEBUG" in report
    before_yaml = (folder / "changes" / f"revision-{hand}-before.yaml").read_text()
    after_yaml = (folder / "changes" / f"revision-{hand}-after.yaml").read_text()
    assert "VLLM_LOGGING_LEVEL" not in before_yaml and "VLLM_LOGGING_LEVEL" in after_yaml
    assert "API_KEY" in before_yaml  # skewmit's own change came before the hand edit
    # skewmit's change (the one that added API_KEY) is not listed as made outside it.
    for _, b in heads:
        before = (folder / "changes" / f"revision-{b}-before.yaml").read_text()
        changed = (folder / "changes" / f"revision-{b}-after.yaml").read_text()
        assert not ("API_KEY" in changed and "API_KEY" not in before)
    assert f"revision {hand}" in (folder / "timeline.md").read_text()


def test_one_clock_the_simulated_one_labelled(bundle: Bundle) -> None:
    folder = bundle.folder
    doc = json.loads((folder / "verdict.json").read_text())
    clock = doc["clock"]
    assert clock["clock"] == "simulated clock (UTC)" and clock["simulated"] is True
    assert clock["simulated_speed"] == SPEED and "wall_clock_at_capture_utc" in clock
    captured = clock["captured_at"]
    # The verdict was judged after the capture began, on the same (simulated) clock.
    assert captured <= doc["at"] < captured + 60 * SPEED
    assert utc(captured).replace("-", "").replace(":", "") in folder.name  # the bundle's name
    timeline = (folder / "timeline.md").read_text()
    assert "simulated clock (5x)" in timeline
    journal = [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines()]
    applied = [parse_utc(r["ts"]) or 0.0 for r in journal if r["type"] == "applied"]
    assert applied and all(captured - 3600 < t <= captured for t in applied)
    after = (folder / "manifests" / "deployment-after.yaml").read_text()
    assert after.startswith("# Kubernetes timestamps below are on the simulated clock")
    rows = list(csv.DictReader(io.StringIO((folder / "metrics" / "postfix.csv").read_text())))
    assert rows and "t_simulated_utc" in rows[0]
    newest = max(rows, key=lambda r: float(r["t_unix"]))
    assert abs(float(newest["t_unix"]) - captured) < 30 * SPEED
    assert newest["t_simulated_utc"] == utc(float(newest["t_unix"]))


def test_series_for_the_incident_and_after_the_last_change(bundle: Bundle) -> None:
    metrics = bundle.folder / "metrics"
    incident = json.loads((metrics / "incident.json").read_text())
    post = json.loads((metrics / "postfix.json").read_text())
    assert incident["window"]["start"] < post["window"]["start"] < post["window"]["end"]
    assert abs(incident["window"]["end"] - post["window"]["start"]) < 1  # the last change
    assert "after the last change" in post["window"]["why"]
    # (The simulator's scrape source holds seconds of incident: the Prometheus test checks
    # the incident window's series; here, its bounds.)
    assert {s["name"] for s in post["series"]} >= {"p99", "tokens_per_s"}
    assert "t_simulated_utc" in (metrics / "incident.csv").read_text().splitlines()[0]
    # The incident window reaches back before the triggering change (two simulated hours).
    span = incident["window"]["end"] - incident["window"]["start"]
    assert span > 2 * 3600


def test_queries_txt_lists_every_query_the_gate_ran(bundle: Bundle) -> None:
    text = (bundle.folder / "metrics" / "queries.txt").read_text()
    gate = _section(text, "The gate's queries for this verdict")
    assert "max(timestamp(" in gate  # freshness
    assert "histogram_quantile(0.99" in gate and "vllm:generation_tokens_total" in gate
    assert re.search(r"- ran 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ \| p99 \| (range|instant) ", gate)
    assert "on the simulated clock (5x)" in text.splitlines()[1]  # said once, at the top
    bundle_queries = _section(text, "The bundle's queries")
    assert "tokens_per_s" in bundle_queries
