"""`skewmit check` and `skewmit sim` as a script or CI job runs them: real processes, real
exit codes, against the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.simulator.runner import Simulator
from services.simulator.scenario import available
from tests.conftest import require_tool

SKEWMIT = [sys.executable, "-m", "tui.cli"]


def skewmit(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SKEWMIT, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1"},
    )


def test_check_reports_findings_as_json_and_exits_1(shared_sim: Simulator, tmp_path: Path) -> None:
    kubeconfig = shared_sim.write_kubeconfig(tmp_path / "kubeconfig")
    result = skewmit(
        "check",
        "--kubeconfig",
        str(kubeconfig),
        "-n",
        "inference",
        "--deployment",
        "llm-serve",
        "--json",
    )
    assert result.returncode == 1, result.stderr
    findings = json.loads(result.stdout)["findings"]
    codes = {f["code"] for f in findings}
    assert {
        "image-mutable-tag",
        "model-revision-unpinned",
        "dtype-unset",
        "max-model-len-unset",
        "gpu-class-mismatch",
    } <= codes
    assert set(findings[0]) == {"step", "code", "severity", "message", "subject"}
    mismatch = next(f for f in findings if f["code"] == "gpu-class-mismatch")
    assert mismatch["step"] == "hardware" and mismatch["severity"] == "error"
    assert "A10G" in mismatch["message"]


def test_check_on_a_healthy_fleet_exits_0(tmp_path: Path) -> None:
    with Simulator("healthy", speed=30) as sim:
        kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
        result = skewmit(
            "check", "--kubeconfig", str(kubeconfig), "-n", "inference", "--deployment", "llm-serve"
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("no findings for deployment/llm-serve in inference")


def test_check_flags_gitops_management(tmp_path: Path) -> None:
    with Simulator("gitops-managed", speed=30) as sim:
        kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
        result = skewmit(
            "check",
            "--kubeconfig",
            str(kubeconfig),
            "-n",
            "inference",
            "--deployment",
            "llm-serve",
            "--json",
        )
    gitops = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "gitops-managed"]
    assert result.returncode == 1 and len(gitops) == 1
    assert "argocd" in gitops[0]["message"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--kubeconfig", "/nonexistent/kubeconfig", "--deployment", "x"],
            "kubeconfig /nonexistent/kubeconfig does not exist; pass --kubeconfig PATH or set "
            "KUBECONFIG",
        ),
        (
            ["--context", "nope", "--deployment", "llm-serve"],
            "context 'nope' is not in the kubeconfig; known contexts: skewmit-sim, "
            "skewmit-sim-readonly",
        ),
        (["-n", "nope", "--deployment", "llm-serve"], 'namespace "nope" does not exist'),
        (
            ["-n", "inference", "--deployment", "nope"],
            'deployment "nope" not found in namespace "inference"; deployments there: llm-serve',
        ),
    ],
)
def test_check_bad_input_is_one_clear_line_and_exit_2(
    shared_sim: Simulator, tmp_path: Path, args: list[str], message: str
) -> None:
    kubeconfig = shared_sim.write_kubeconfig(tmp_path / "kubeconfig")
    if "--kubeconfig" not in args:
        args = ["--kubeconfig", str(kubeconfig), *args]
    result = skewmit("check", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_malformed_kubeconfig_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "kubeconfig"
    broken.write_text("clusters: [unclosed\n")
    result = skewmit("check", "--kubeconfig", str(broken), "--deployment", "x")
    assert result.returncode == 2
    assert f"kubeconfig {broken} is not valid YAML" in result.stderr


@pytest.mark.parametrize("scenario", [s for s in available() if s != "large"])
def test_every_scenario_serves_kubectl(scenario: str, tmp_path: Path) -> None:
    kubectl = require_tool("kubectl")
    with Simulator(scenario, speed=30) as sim:
        kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
        result = subprocess.run(
            [
                kubectl,
                "--kubeconfig",
                str(kubeconfig),
                "--cache-dir",
                str(tmp_path / "cache"),
                "get",
                "deploy",
                "-n",
                "inference",
                "-o",
                "name",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert "deployment.apps/llm-serve" in result.stdout.split()


def test_large_scenario_holds_5000_pods_on_500_nodes() -> None:
    with Simulator("large", speed=30) as sim:
        assert sim.cluster is not None
        # The scenario's workload; kube-system and the GPU operator's daemons come on top.
        pods = sim.cluster.store.items("pods", "inference")
        assert len(sim.cluster.store.items("nodes")) == 500
        assert len(pods) == 5000
        assert all(p["spec"].get("nodeName") for p in pods)


def test_sim_command_writes_a_kubeconfig_and_prints_the_metrics_line(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "sim.kubeconfig"
    process = subprocess.Popen(
        [*SKEWMIT, "sim", "--scenario", "tgi", "--kubeconfig", str(kubeconfig), "--speed", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline(), process.stdout.readline()]
        assert lines[0].startswith("scenario: tgi (speed x20)"), lines
        assert lines[1].startswith("metrics: http://127.0.0.1:")
        assert kubeconfig.stat().st_mode & 0o777 == 0o600
        import urllib.request

        deadline = time.monotonic() + 30
        page = ""
        while "tgi_request_duration_bucket" not in page:
            assert time.monotonic() < deadline, "no TGI metrics"
            with urllib.request.urlopen(lines[1].split(" ", 1)[1].strip(), timeout=10) as r:
                page = r.read().decode()
            time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert process.returncode == 0


def test_sim_refuses_an_unknown_scenario_naming_the_known_ones(tmp_path: Path) -> None:
    result = skewmit("sim", "--scenario", "nope", "--kubeconfig", str(tmp_path / "k"))
    assert result.returncode == 2
    assert "unknown scenario 'nope'; built-in scenarios: gitops-managed, hardware-only" in (
        result.stderr
    )
