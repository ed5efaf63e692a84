"""What a step's check hands the UI and `skewmit check`: each step's own report, typed (the
TUI reads the rollout bar, the inspector and the verdict from it without guessing at its
shape); the action log's rows from the journal, with a revert offered exactly where the gate
will make one; and `check --all` with the info findings the default leaves out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from services.gate import Gate
from services.journal import Journal
from services.journal_actions import journal_actions
from services.kube import KubeCluster
from services.models import (
    HardwareReport,
    Knob,
    RollbackData,
    RolloutProgress,
    RouterInfo,
    Step,
    Target,
)
from services.runbook import Runbook
from services.simulator.runner import Simulator

TARGET = Target("skewmit-sim", "inference", "llm-serve")


def test_each_step_report_carries_its_own_typed_report(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    kubeconfig = shared_sim.write_kubeconfig(tmp_path / "kubeconfig")
    cluster = KubeCluster(str(kubeconfig), "skewmit-sim-readonly")
    runbook = Runbook(cluster, TARGET, None, read_only=True)

    rollback = runbook.check(Step.ROLLBACK)
    assert isinstance(rollback.data, RollbackData), rollback.error
    assert isinstance(rollback.progress, RolloutProgress)
    assert [r.current for r in rollback.revisions].count(True) == 1
    assert rollback.hardware is None and rollback.verdict is None and rollback.knobs == ()

    latency = runbook.check(Step.LATENCY)
    assert latency.knobs and all(isinstance(k, Knob) for k in latency.knobs), latency.error
    assert "max_num_seqs" in {k.name for k in latency.knobs}

    route = runbook.check(Step.ROUTE)
    assert isinstance(route.router, RouterInfo), route.error
    assert route.router.deployment == "llm-serve"

    hardware = runbook.check(Step.HARDWARE)
    assert isinstance(hardware.hardware, HardwareReport), hardware.error
    assert hardware.hardware.rows and hardware.hardware.expected_class  # one row per pod
    assert hardware.progress is None and hardware.router is None

    pin = runbook.check(Step.PIN)
    assert pin.data is None and pin.state == "findings"


def test_the_action_log_offers_a_revert_exactly_where_the_gate_makes_one(tmp_path: Path) -> None:
    journal = Journal.open_for(TARGET, "admin", root=tmp_path)
    pinned = journal.append("applied", {"title": "Pin the image", "verified": True})
    dtype = journal.append("applied", {"title": "Set --dtype", "verified": False, "verify": "?"})
    journal.append("revert-refused", {"reverts": dtype.seq, "error": "changed since"})
    journal.append("reverted", {"reverts": pinned.seq, "title": "Revert: Pin the image"})
    journal.append("apply-failed", {"intent": 99, "error": "409 conflict"})
    rows = journal_actions(journal.entries())

    assert [r.title for r in rows] == [
        "apply of entry 99",
        "Revert: Pin the image",
        "Set --dtype",
        "Pin the image",
    ]  # newest first
    by_title = {r.title: r for r in rows}
    assert by_title["Pin the image"].status == "reverted"
    assert by_title["Pin the image"].note == f"reverted by #{rows[1].seq}"
    assert by_title["Set --dtype"].status == "unverified"
    assert by_title["Set --dtype"].note == "revert refused: the object changed since"
    assert by_title["apply of entry 99"].status == "failed"
    offered = [seq for seq, _ in Gate(None, journal).applied_entries()]  # type: ignore[arg-type]
    assert [r.seq for r in rows if r.revertible] == offered == [dtype.seq]


def test_check_all_adds_the_info_findings(shared_sim: Simulator, tmp_path: Path) -> None:
    kubeconfig = shared_sim.write_kubeconfig(tmp_path / "kubeconfig")

    def findings(*more: str) -> list[dict[str, str]]:
        target = ["--kubeconfig", str(kubeconfig), "-n", "inference", "--deployment", "llm-serve"]
        result = subprocess.run(
            [sys.executable, "-m", "tui.cli", "check", *target, "--json", *more],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "NO_COLOR": "1"},
        )
        assert result.returncode == 1, result.stderr
        found: list[dict[str, str]] = json.loads(result.stdout)["findings"]
        return found

    serious, everything = findings(), findings("--all")
    assert serious and all(f["severity"] != "info" for f in serious)
    info = [f for f in everything if f["severity"] == "info"]
    assert info, "the skew incident has info findings (e.g. the router step's)"
    assert [f for f in everything if f["severity"] != "info"] == serious
