"""The evidence bundle against a real Prometheus and the simulator over HTTP: written even when
Prometheus rejects one query (vLLM 0.11's duplicated series make it answer "vector cannot
contain metrics with the same labelset"), with the failure recorded in it; private modes; the
incident window's series; Prometheus credentials kept out; and a bundle path that cannot leave
`--out`, whatever the names say."""

from __future__ import annotations

import argparse
import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from services.errors import ConfigError
from services.evidence import write_bundle
from services.evidence_files import bundle_name, new_folder, write_files
from services.metrics.prometheus import PrometheusSource
from services.models import Target
from services.validation import Thresholds
from tests.services.conftest import DEPLOYMENT, NAMESPACE, PromWorld
from tui import headless

# Two histograms with the same labels under one rate(): once rate() drops the names, the
# two series collide, as vLLM 0.11's ITL and deprecated TPOT series do in a combined query.
DUPLICATED = (
    "histogram_quantile(0.95, sum by (le) (rate({__name__=~"
    '"vllm:e2e_request_latency_seconds_bucket|vllm:time_to_first_token_seconds_bucket",'
    "${selector}}[${window}])))"
)
PROM_PASSWORD = "PlantedPromPassw0rd"


def _source(world: PromWorld, url: str | None = None) -> PrometheusSource:
    plain = world.source("vllm")
    return PrometheusSource(
        url or world.url,
        plain.scope,
        "vllm",
        scrape_interval_s=plain.scrape_interval_s,
        rate_window_s=plain.rate_window_s,
        overrides={"p95": DUPLICATED},
        baseline_spec=plain.baseline_spec,
        baseline_window_s=plain.baseline_window_s,
    )


def test_bundle_is_written_when_one_query_fails(prom_world: PromWorld, tmp_path: Path) -> None:
    world = prom_world
    world.wait_for_history(30)  # the incident window's 13-second steps need a few to land in
    cluster = world.cluster("vllm")
    target = Target(cluster.context, NAMESPACE, DEPLOYMENT, cluster.server, cluster.whoami())
    url = world.url.replace("://", f"://reader:{PROM_PASSWORD}@")
    thresholds = Thresholds.from_mapping(world.config("vllm")["thresholds"])
    out = tmp_path / "out"
    bundle = write_bundle(
        out, cluster=cluster, target=target, source=_source(world, url), thresholds=thresholds
    )
    folder = bundle.folder
    assert folder.parent == out and (folder / "MANIFEST.sha256").is_file()
    failures = [f"{what}: {err}" for what, err in bundle.failures if "same labelset" in err]
    assert failures and all("p95" in f for f in failures)
    assert any(f.startswith("p95 over the incident window") for f in failures)
    assert any(f.startswith("p95 over the window after the last change") for f in failures)

    doc = json.loads((folder / "verdict.json").read_text())
    assert doc["verdict"] != "pass"
    assert len([f for f in doc["failures"] if "same labelset" in f["error"]]) == len(failures)
    assert doc["prometheus_url"] == world.url  # the credentials left out
    assert doc["preset"] == "vllm" and doc["scrape_interval_s"] == 1.0
    assert doc["baseline"]["how"] == "offset 1d" and doc["baseline"]["coverage"]
    assert doc["operator"]["kube_user"] == "skewmit-admin" and doc["tool"]["version"]

    queries = (folder / "metrics" / "queries.txt").read_text()
    assert "ERROR: " in queries and "same labelset" in queries
    assert "vllm:time_to_first_token_seconds_bucket" in queries  # the query that failed
    assert "histogram_quantile(0.99" in queries  # and those that did not
    timeline = (folder / "timeline.md").read_text()
    assert "## What could not be read" in timeline and "same labelset" in timeline

    # What could be read is there: the other quantities, for the incident and after it.
    incident = json.loads((folder / "metrics" / "incident.json").read_text())
    names = {s["name"] for s in incident["series"]}
    assert {"tokens_per_s", "p99"} <= names and "p95" not in names
    assert "revision 3" in timeline and "bump to latest vllm" in timeline

    assert stat.S_IMODE(bundle.tarball.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in [folder, *folder.rglob("*"), bundle.tarball]:
        assert PROM_PASSWORD.encode() not in (b"" if path.is_dir() else path.read_bytes())


def _headless_evidence(
    world: PromWorld, tmp: Path, deployment: str, out: Path, *extra: str, **queries: str
) -> int:
    settings = world.config("vllm")
    settings["prometheus"]["queries"] = queries
    config = tmp / "config.yaml"
    config.write_text(yaml.safe_dump(settings))
    parser = argparse.ArgumentParser(prog="skewmit")
    headless.add_evidence_parser(parser.add_subparsers(dest="command"))
    argv = [
        "evidence",
        "--kubeconfig", str(world.kubeconfig("vllm")),
        "-n", NAMESPACE,
        "--deployment", deployment,
        "--prometheus", world.url,
        "--config", str(config),
        "--state-dir", str(tmp / "state"),
        "--out", str(out),
        *extra,
    ]  # fmt: skip
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a name refused at the edge: argparse exits 2
        return int(exc.code or 0)
    return headless.run_evidence(args)


def test_headless_evidence_is_written_when_one_query_fails(
    prom_world: PromWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prom_world.wait_for_history(8)
    out = tmp_path / "out"
    # p95 collides at run time; kv_cache is a query Prometheus cannot even parse.
    broken = "avg(vllm:kv_cache_usage_perc{${selector}}"
    code = _headless_evidence(
        prom_world, tmp_path, DEPLOYMENT, out, "--json", p95=DUPLICATED, kv_cache=broken
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    written = json.loads(printed.out)
    failed = written["failures"]
    assert any("p95" in f for f in failed) and any("kv_cache" in f for f in failed)
    doc = json.loads((Path(written["folder"]) / "verdict.json").read_text())
    assert doc["verdict"] != "pass"
    assert any("same labelset" in f["error"] for f in doc["failures"])
    assert stat.S_IMODE(Path(written["tarball"]).stat().st_mode) == 0o600


def test_evidence_path_stays_under_out(prom_world: PromWorld, tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "out"
    code = _headless_evidence(prom_world, tmp_path, "x/../../deployments/llm-serve", out)
    assert code in (0, 2)  # refused as a bad name, or written under --out
    allowed = {tmp_path / "config.yaml", tmp_path / "state", tmp_path / "a", tmp_path / "a" / "b"}
    for path in tmp_path.rglob("*"):
        assert (
            path in allowed or path.is_relative_to(out) or path.is_relative_to(tmp_path / "state")
        ), f"written outside --out: {path}"
    if code == 0:
        assert all(p.parent == out for p in out.iterdir())


def test_bundle_path_is_built_safely(tmp_path: Path) -> None:
    out = tmp_path / "out"
    evil = "x/../../deployments/llm-serve"
    name = bundle_name("inference", evil, 1796180000.0)
    assert "/" not in name and ".." not in name and name.startswith("skewmit-evidence-")
    assert new_folder(out, name).parent == out
    for bad in ("../escape", "..", "a/b"):
        with pytest.raises(ConfigError):
            new_folder(out, bad)
    # A link planted where the bundle will go is not followed out of --out.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    planted = bundle_name("inference", "llm-serve", 1796180000.0)
    os.symlink(outside, out / planted)
    folder = new_folder(out, planted)
    assert folder.parent == out and not folder.is_symlink() and not any(outside.iterdir())
    with pytest.raises(ConfigError):
        write_files(folder, {"../../escaped.txt": "x"}, [])
    assert not (tmp_path / "escaped.txt").exists() and not (out / "escaped.txt").exists()
