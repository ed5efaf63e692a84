"""Step 1's findings reach the screen before the incident's journal is written (issue 12): a
first finding opens the incident, which reads and journals the manifests from before any fix
(the "before" snapshot). A listener (the app's check workers) is handed the report before
that work; the report `check` returns stays the one to keep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.errors import ConfigError
from services.journal import Journal
from services.kube import KubeCluster
from services.models import Step, StepReport, Target
from services.report_listener import reports_to
from services.runbook import Runbook
from services.session import SessionOptions, open_session
from services.simulator.runner import Simulator


def runbook_on(sim: Simulator, tmp_path: Path, open_journal: Any) -> Runbook:
    """A session as the app opens one: no incident until a check finds something."""
    cluster = KubeCluster(str(sim.write_kubeconfig(tmp_path / "kubeconfig")))
    target = Target(cluster.context, "inference", "llm-serve", cluster.server, cluster.whoami())
    return Runbook(cluster, target, None, open_journal=lambda: open_journal(target))


def test_step_1s_findings_are_handed_over_before_the_incident_is_journaled(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    root = tmp_path / "state"
    kubeconfig = shared_sim.write_kubeconfig(tmp_path / "kubeconfig")
    options = SessionOptions(
        kubeconfig=str(kubeconfig), namespace="inference", deployment="llm-serve",
        journal_root=root,
    )  # fmt: skip
    runbook = open_session(options)  # as the app opens it: no incident yet
    assert runbook.journal is None
    seen: list[tuple[StepReport, bool, bool]] = []

    def listener(report: StepReport) -> None:
        # What the journal held when the report was handed over.
        seen.append((report, runbook.journal is None, (root / "incidents").exists()))

    with reports_to(listener):
        report = runbook.check(Step.ROLLBACK)
    assert report.state == "findings", report
    assert [(r.state, no_journal, wrote) for r, no_journal, wrote in seen] == [
        ("findings", True, False)
    ]
    assert seen[0][0] is report
    # The incident opened afterwards, with the manifests from before any fix.
    assert runbook.journal is not None
    types = [entry.type for entry in runbook.journal.entries()]
    assert types[:2] == ["opened", "snapshot"], types
    assert "findings" in types, types


def test_a_journal_that_cannot_open_turns_the_handed_over_findings_into_a_failure(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    def refuse(_target: Target) -> Journal:
        raise ConfigError("test: the state directory is not writable")

    runbook = runbook_on(shared_sim, tmp_path, refuse)
    seen: list[StepReport] = []
    with reports_to(seen.append):
        report = runbook.check(Step.ROLLBACK)
    assert [r.state for r in seen] == ["findings"]
    assert report.state == "failed"
    assert "journal cannot be opened" in report.error and "not writable" in report.error


def test_without_a_listener_check_answers_as_before(shared_sim: Simulator, tmp_path: Path) -> None:
    root = tmp_path / "state"
    runbook = runbook_on(
        shared_sim, tmp_path, lambda target: Journal.open_for(target, target.user, root=root)
    )
    report = runbook.check(Step.ROLLBACK)
    assert report.state == "findings" and runbook.journal is not None
