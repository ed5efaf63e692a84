"""`skewmit validate|evidence|baseline capture` as a script runs them, real processes against
the simulator (through the real kubernetes client) and the shared real Prometheus: bad input
is one line and exit 2 before anything is asked of a server; a baseline inside the incident or
without data is refused with the window to use instead, never judged; the operator's choice is
journaled in the open incident and reused by the next run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from services.journal import Journal
from services.kube import KubeCluster
from services.metrics.baseline import utc
from services.models import Target
from services.simulator.runner import Simulator
from tests.services.conftest import DEPLOYMENT, NAMESPACE, VLLM_FAST, PromWorld

SKEWMIT = [sys.executable, "-m", "tui.cli"]
SUGGESTED = re.compile(r"--baseline-start (\S+) --baseline-end (\S+)\)")


@pytest.fixture(scope="module")
def incident_kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The skew incident's cluster, private to this module (no other test rolls it back)."""
    with Simulator(VLLM_FAST, speed=1.0, seed=1) as sim:
        yield sim.write_kubeconfig(tmp_path_factory.mktemp("incident") / "kubeconfig")


def skewmit(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SKEWMIT, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1", "XDG_STATE_HOME": str(state)},
    )


def _argv(world: PromWorld, kubeconfig: Path, tmp_path: Path, command: str) -> list[str]:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(world.config("vllm")))
    words = command.split()
    target = ["--kubeconfig", str(kubeconfig)] if words[0] != "baseline" else []
    out = ["--out", str(tmp_path / "out")] if words[0] != "validate" else []
    return [
        *words, *target, "-n", NAMESPACE, "--deployment", DEPLOYMENT,
        "--prometheus", world.url, "--config", str(config), *out,
    ]  # fmt: skip


BAD_INPUT = [
    (["--window", "0"], "--window: '0' is not a duration"),
    (["--window", "0s"], "--window: '0s' must be longer than zero"),
    (
        ["--baseline-start", "2026-03-02T10:00:00Z", "--baseline-end", "2026-03-02T09:50:00Z"],
        "the baseline range must end after it starts",
    ),
    (["--rate-window", "500ms", "--scrape-interval", "1s"], "shorter than the scrape interval"),
    (["--baseline-start", "2026-03-02T10:00:00Z"], "needs both start and end"),
]


@pytest.mark.parametrize("command", ["validate", "evidence", "baseline capture"])
def test_bad_input_is_one_line_and_exit_2(
    command: str, prom_world: PromWorld, incident_kubeconfig: Path, tmp_path: Path
) -> None:
    argv = _argv(prom_world, incident_kubeconfig, tmp_path, command)
    for extra, message in BAD_INPUT:
        result = skewmit(tmp_path, *argv, *extra)
        assert result.returncode == 2, (extra, result.stdout, result.stderr)
        assert result.stderr.startswith(f"skewmit {command}: "), result.stderr
        assert message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert result.stdout == ""
    assert not (tmp_path / "out").exists()


def test_a_baseline_inside_the_incident_is_refused_with_the_window_to_use(
    prom_world: PromWorld, incident_kubeconfig: Path, tmp_path: Path
) -> None:
    argv = _argv(prom_world, incident_kubeconfig, tmp_path, "validate")
    # 20 minutes ago revision 3 (rolled out two hours ago) was serving: p95 of 7 s would pass
    # against its own 800-second p95.
    result = skewmit(tmp_path, *argv, "--json", "--baseline-offset", "20m")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert "rolled out at" in result.stderr and "(inside the incident)" in result.stderr
    found = SUGGESTED.search(result.stderr)
    assert found, result.stderr

    # The suggested window is revision 2's, a day ago: the live incident fails against it.
    prom_world.wait_for_history(20)  # a whole stable window (15 s) of the incident
    chosen = ["--baseline-start", found.group(1), "--baseline-end", found.group(2)]
    result = skewmit(tmp_path, *argv, "--json", *chosen)
    assert result.returncode == 1, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["verdict"] == "fail"
    window = doc["baseline_window"]
    assert window["window"] == [found.group(1), found.group(2)]
    assert window["coverage"]["tokens_per_s"] >= 0.9
    assert window["served_by"]["revision"] == 2


def test_a_baseline_without_data_is_refused_never_judged(
    prom_world: PromWorld, incident_kubeconfig: Path, tmp_path: Path
) -> None:
    argv = _argv(prom_world, incident_kubeconfig, tmp_path, "validate")
    empty = time.time() - 3 * 86400.0  # Prometheus holds nothing three days back
    window = ["--baseline-start", utc(empty), "--baseline-end", utc(empty + 120)]
    result = skewmit(tmp_path, *argv, *window)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "it holds no data for the deployment" in result.stderr
    assert "0% covered" in result.stderr
    assert SUGGESTED.search(result.stderr), result.stderr

    future = ["--baseline-start", utc(time.time() + 600), "--baseline-end", utc(time.time() + 720)]
    result = skewmit(tmp_path, *argv, *future)
    assert result.returncode == 2 and "it ends in the future" in result.stderr

    capture = _argv(prom_world, incident_kubeconfig, tmp_path, "baseline capture")
    result = skewmit(tmp_path, *capture, *window)
    assert result.returncode == 2 and "no metrics for inference/llm-serve" in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_operators_baseline_is_journaled_and_reused(
    prom_world: PromWorld, incident_kubeconfig: Path, tmp_path: Path
) -> None:
    history = prom_world.history
    cluster = KubeCluster(str(incident_kubeconfig))
    target = Target(cluster.context, NAMESPACE, DEPLOYMENT, cluster.server, cluster.whoami())
    journal = Journal.open_for(target, target.user, root=tmp_path / "skewmit")
    release = getattr(journal, "release", None)
    if release is not None:
        release()  # the CLI process takes the incident from here
    argv = _argv(prom_world, incident_kubeconfig, tmp_path, "validate")
    start, end = utc(history.start + 100), utc(history.start + 220)
    prom_world.wait_for_history(20)  # a whole stable window (15 s) of the incident
    chosen = ["--baseline-start", start, "--baseline-end", end]

    first = skewmit(tmp_path, *argv, "--json", *chosen)
    assert first.returncode == 1, first.stdout + first.stderr
    recorded = [e for e in journal.entries() if e.type == "baseline"]
    assert len(recorded) == 1
    assert recorded[0].data["reason"] == "chosen by the operator"
    assert (recorded[0].data["start_utc"], recorded[0].data["end_utc"]) == (start, end)

    # The next run, without the flags (the config says offset 1d), judges against it.
    again = skewmit(tmp_path, *argv, "--json")
    assert again.returncode == 1, again.stdout + again.stderr
    doc = json.loads(again.stdout)
    assert doc["baseline_window"]["window"] == [start, end]
    assert doc["baseline_window"]["frozen"].endswith(f"#{recorded[0].seq}")
    base = {c["name"]: c["baseline"] for c in doc["checks"]}
    assert base["tokens_per_s"] == pytest.approx(recorded[0].data["values"]["tokens_per_s"][""])
    # Repeating the operator's flags (a CI loop) reuses the entry instead of adding one a run.
    repeat = skewmit(tmp_path, *argv, *chosen)
    assert repeat.returncode == 1, repeat.stdout + repeat.stderr
    assert f"baseline {start} .. {end} (range {start} .. {end}, 100% covered)" in repeat.stdout
    assert len([e for e in journal.entries() if e.type == "baseline"]) == 1
