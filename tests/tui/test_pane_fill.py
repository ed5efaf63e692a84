"""Panes fill as their own data arrives (issue 12), in the demo's real wiring: the kubernetes
client over HTTP to the simulator, the informer's watches, the app's workers.

- The GPU inspector lists the Deployment's pods, their nodes and the nodes' GPU labels from
  the informer's first list while step 5 (nvidia-smi, DCGM, the verdicts) has not answered,
  and no such row reads as a pass; step 5's answer then fills in the verdicts.
- The live metrics show their first figures while every step's check is still out: their
  read does not queue behind the checks' threads.
- In real-cluster mode, step 1's findings are on the checklist while the incident it opens is
  still being journaled (the "before" snapshot): they do not wait for the journal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.gpu import gpu_class_from_labels
from services.models import Step, StepReport
from services.session import SessionOptions, open_session
from services.simulator.runner import Simulator
from tests.tui.conftest import FAST, wait_until
from tui.app import SkewmitApp
from tui.session import Session
from widgets.checklist import Checklist
from widgets.inspector_table import InspectorTable, mark_of


def hold_checks(session: Session, held: set[Step]) -> threading.Event:
    """Make the runbook's check of each step in `held` wait until the returned event is set
    (the checks of other steps run as they do)."""
    release = threading.Event()
    runbook: Any = session.runbook
    check: Callable[[Step], StepReport] = runbook.check

    def held_check(step: Step) -> StepReport:
        if step in held:
            release.wait(60)
        return check(step)

    runbook.check = held_check
    return release


def table_text(table: InspectorTable) -> str:
    return "\n".join(table.render_line(y).text for y in range(table.size.height))


async def test_the_inspector_lists_pods_nodes_and_labels_before_step_5_answers(
    demo: Callable[..., Session],
) -> None:
    session = demo("skew-incident")
    release = hold_checks(session, {Step.HARDWARE})
    # What kubectl would list: the Deployment's pods and every node's labels.
    cluster: Any = session.runbook.cluster
    labels = cluster.get("Deployment", "inference", "llm-serve")["spec"]["selector"]
    selector = ",".join(f"{k}={v}" for k, v in labels["matchLabels"].items())
    pods = cluster.list("Pod", "inference", label_selector=selector)
    nodes = {n["metadata"]["name"]: n for n in cluster.list("Node")}
    app = SkewmitApp(session)
    app.animation_level = "none"
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            table = app.main.query_one(InspectorTable)
            await wait_until(pilot, lambda: table.row_count > 0, "the inspector's first rows")
            assert Step.HARDWARE not in app.board.reports, "step 5 was held back"
            rows = {row.pod: row for row in table.readings}
            assert set(rows) == {p["metadata"]["name"] for p in pods}
            for pod in pods:
                row = rows[pod["metadata"]["name"]]
                node = pod["spec"]["nodeName"]
                assert row.node == node
                label_class, _key = gpu_class_from_labels(nodes[node]["metadata"]["labels"])
                assert row.label_product == row.gpu_class == label_class
                # No verdict yet: never the pass mark, never a mismatch, and it says why.
                assert mark_of(row) == "…" and not row.mismatch
                assert "checking" in row.note
            await pilot.pause()
            text = table_text(table)
            assert "✓" not in text and "✗" not in text, text
            assert text.count("…") >= len(pods), text
            summary = str(app.main.query_one("#inspector-summary").render())
            assert "checking" in summary and "matches" not in summary, summary
            detail = str(app.main.query_one("#inspector-detail").render())
            assert "checking" in detail, detail

            release.set()
            await wait_until(pilot, lambda: Step.HARDWARE in app.board.reports, "step 5")
            await pilot.pause()
            # Step 5's answer replaces the list: the skew incident's wrong-class pod is ✗.
            report = app.board.reports[Step.HARDWARE].hardware
            assert report is not None and report.mismatches
            assert table.mismatches == len(report.mismatches)
            assert "✗" in table_text(table)
            summary = str(app.main.query_one("#inspector-summary").render())
            assert "checking" not in summary, summary
    finally:
        release.set()


async def test_live_metrics_fill_while_every_check_is_still_out(
    demo: Callable[..., Session],
) -> None:
    session = demo("skew-incident")
    release = hold_checks(session, set(Step))
    app = SkewmitApp(session)
    app.animation_level = "none"
    try:
        async with app.run_test(size=(120, 40)) as pilot:

            def p95_shown() -> bool:
                series, _now, _error = app.main.shown_metrics
                return any(s.name == "p95" and s.points for s in series)

            await wait_until(pilot, p95_shown, "a p95 figure in the metrics pane")
            assert app.board.reports == {}, "no check has answered yet"
    finally:
        release.set()


async def test_step_1s_findings_show_while_the_incident_is_still_being_journaled(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    kubeconfig = shared_sim.write_kubeconfig(tmp_path / "kubeconfig")
    options = SessionOptions(
        kubeconfig=str(kubeconfig), namespace="inference", deployment="llm-serve",
        journal_root=tmp_path / "state",
    )  # fmt: skip
    runbook: Any = open_session(options)  # real-cluster mode: the incident opens at a finding
    open_journal = runbook.open_journal
    opening, release = threading.Event(), threading.Event()

    def held_open() -> Any:
        opening.set()
        release.wait(60)
        return open_journal()

    runbook.open_journal = held_open
    app = SkewmitApp(Session(runbook, intervals=FAST))
    app.animation_level = "none"
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(
                pilot,
                lambda: (
                    (report := app.board.reports.get(Step.ROLLBACK)) is not None
                    and report.state == "findings"
                ),
                "step 1's findings",
            )
            assert runbook.journal is None and not release.is_set()
            await wait_until(pilot, opening.is_set, "the incident's journal being opened")
            await pilot.pause()
            row = app.main.query_one(Checklist).row(Step.ROLLBACK)
            assert row.state == "findings" and row.counts, row
            release.set()
            await wait_until(pilot, lambda: runbook.journal is not None, "the incident opened")
            journal = runbook.journal
            assert [e.type for e in journal.entries()][:2] == ["opened", "snapshot"]
    finally:
        release.set()
