"""`skewmit drill` through the UI on the simulator's fast clock: the incident's name stays
hidden, hints are counted, the fix ends the drill with a debrief and drill-report.md, and the
trainer's `drill inject` reaches the simulator's fault API and the debrief."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Label

from services.drill import CATALOGUE, DRILL_ENTRY
from services.kube import KubeCluster
from services.models import Step
from tests.tui.conftest import FAST, checked, wait_until
from tui.bridge import resolve_source
from tui.cli import main
from tui.drill import Drill, DrillApp, open_drill_session
from tui.launchers import close_session
from tui.screens.bridge_view import BridgeSource
from tui.screens.debrief import DebriefScreen
from tui.screens.input_prompt import InputPromptScreen
from tui.screens.preview import ConfirmScreen
from tui.session import Session
from widgets.header_bar import HeaderBar

SPEED = 60.0
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"


@pytest.fixture
def dtype_drill(tmp_path: Path) -> Iterator[tuple[Session, Drill]]:
    session, drill = open_drill_session(
        CATALOGUE["dtype"],
        speed=SPEED,
        seed=1,
        kubeconfig=tmp_path / "kubeconfig",
        report_path=tmp_path / "drill-report.md",
        journal_root=tmp_path / "state",
    )
    session.intervals = FAST
    try:
        yield session, drill
    finally:
        close_session(session)


def drill_events(session: Session) -> list[str]:
    journal = session.runbook.journal
    assert journal is not None
    return [str(e.data.get("event")) for e in journal.entries() if e.type == DRILL_ENTRY]


async def test_a_drill_hides_the_incident_and_ends_with_a_debrief_when_validation_passes(
    dtype_drill: tuple[Session, Drill],
) -> None:
    session, drill = dtype_drill
    app = DrillApp(session, drill)
    app.animation_level = "none"
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: checked(app), "every step checked at launch")
        header = " ".join(
            str(label.render()) for label in app.main.query_one(HeaderBar).query(Label)
        )
        assert "llm-serve" in header
        for secret in ("dtype", "float32", "healthy"):
            assert secret not in header
        # The bad rollout is already out and the gate sees it.
        assert app.board.reports[Step.VALIDATE].state == "findings"

        await pilot.press("H")
        await wait_until(pilot, lambda: "hint" in drill_events(session), "hint journaled")
        assert app.hints_used == 1

        await pilot.press("u")
        await wait_until(pilot, lambda: isinstance(app.screen, InputPromptScreen), "prompt")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "preview")
        await pilot.press("y")
        await wait_until(
            pilot, lambda: isinstance(app.screen, DebriefScreen), "debrief", polls=2400
        )
        if os.environ.get("SKEWMIT_SCREENSHOTS"):  # the README's picture, when asked
            await pilot.pause()
            app.save_screenshot("drill-debrief-120x40.svg", str(SCREENSHOTS))
    report = drill.report_path.read_text()
    assert report.startswith("# Drill debrief: dtype")
    assert "Outcome: MITIGATED" in report
    assert "Hints used: 1" in report
    assert "Changes made: 1" in report
    assert "Actions that made it worse: 0" in report, report
    assert "| 1 | roll back to the last-known-good revision (step 1) | Roll back" in report
    assert drill_events(session)[-1] == "ended"


async def test_the_trainer_injects_faults_that_the_debrief_lists_after_giving_up(
    dtype_drill: tuple[Session, Drill],
) -> None:
    session, drill = dtype_drill
    kubeconfig = str(drill.kubeconfig)
    admin = KubeCluster(kubeconfig, "skewmit-sim")

    def ready(node: str) -> str:
        conditions = admin.get("Node", "", node)["status"]["conditions"]
        return str(next(c["status"] for c in conditions if c["type"] == "Ready"))

    assert main(["drill", "inject", "--kubeconfig", kubeconfig, "colleague"]) == 0
    template = admin.get("Deployment", "inference", "llm-serve")["spec"]["template"]
    args = template["spec"]["containers"][0]["args"]
    assert args[args.index("--max-num-seqs") + 1] == "512"
    assert main(["drill", "inject", "--kubeconfig", kubeconfig, "conflict"]) == 0
    sim = session.simulator
    assert sim.cluster.faults.describe()[0]["conflicts"] == 2
    assert main(["drill", "inject", "--kubeconfig", kubeconfig, "node-notready"]) == 0
    nodes = [n["metadata"]["name"] for n in admin.list("Node")]
    down = [n for n in nodes if ready(n) == "False"]
    assert len(down) == 1
    assert main(["drill", "inject", "--kubeconfig", kubeconfig, "clear"]) == 0
    assert sim.cluster.faults.describe() == []
    assert ready(down[0]) == "True"
    assert drill_events(session).count("fault") == 4

    # The bridge finds the drill beside its kubeconfig and reads the rollout read-only.
    target = resolve_source(argparse.Namespace(drill=kubeconfig, incident=None))
    journal = session.runbook.journal
    assert journal is not None and target.folder == journal.folder
    assert target.context == "skewmit-sim-readonly"
    source = BridgeSource(target.folder, target.kubeconfig, target.context)
    assert source.rollout().startswith("rollout: ")

    app = DrillApp(session, drill)
    app.animation_level = "none"
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("G")
        await wait_until(pilot, lambda: isinstance(app.screen, DebriefScreen), "debrief")
        assert "--dtype float32" in app.debrief_markdown  # the incident, named at last
        assert app.check_action("hint", ()) is None  # no hints once the drill is over
    report = drill.report_path.read_text()
    assert "Outcome: GAVE UP" in report
    assert "node-notready" in report and "colleague" in report


def test_inject_without_a_drill_says_what_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["drill", "inject", "--kubeconfig", str(tmp_path / "k"), "api-latency"]) == 2
    assert "pass the --kubeconfig the drill was started with" in capsys.readouterr().err
