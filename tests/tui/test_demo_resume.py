"""`skewmit demo` started again after it was killed: the same state directory, and the
incident resumed when the new simulator (the scenario from its seed) is the cluster it left,
or closed as abandoned, with the reason, when changes had been applied to the old one.

A kill -9 leaves the journal and its incident.json as they were and drops the lock (the
kernel releases flock): here the first run stops its simulator and releases the lock without
closing anything, which is what the second run finds after a kill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.journal import state_dir
from tui.demo import demo_root, open_demo

SPEED = 60.0


def killed_run(root: Path) -> str:
    """A demo run that found the incident and was killed: returns the incident id."""
    runbook, sim = open_demo("skew-incident", SPEED, journal_root=root)
    try:
        assert runbook.journal is not None, "skew-incident opens an incident at start"
        return str(runbook.journal.incident_id)
    finally:
        runbook.metrics.stop()
        sim.stop()
        runbook.journal.release()


def test_demo_started_again_resumes_its_incident(tmp_path: Path) -> None:
    root = tmp_path / "state"
    first = killed_run(root)
    runbook, sim = open_demo("skew-incident", SPEED, journal_root=root)
    try:
        assert runbook.journal is not None and runbook.journal.incident_id == first
        assert any(n.startswith(f"resumed demo incident {first}") for n in runbook.notices)
        assert [e.type for e in runbook.journal.entries()].count("reopened") == 1
    finally:
        runbook.metrics.stop()
        sim.stop()


def test_demo_with_changes_applied_is_not_resumed_and_says_why(tmp_path: Path) -> None:
    root = tmp_path / "state"
    runbook, sim = open_demo("skew-incident", SPEED, journal_root=root)
    try:
        journal = runbook.journal
        assert journal is not None
        first = journal.incident_id
        intent = journal.append("apply-intent", {"action": "pin.image", "title": "Pin image"})
        journal.append("applied", {"intent": intent.seq, "title": "Pin image", "inverse": []})
        folder = journal.folder
    finally:
        runbook.metrics.stop()
        sim.stop()
        journal.release()
    runbook, sim = open_demo("skew-incident", SPEED, journal_root=root)
    try:
        assert runbook.journal is not None and runbook.journal.incident_id != first
        notice = " ".join(runbook.notices)
        assert f"demo incident {first} not resumed" in notice and "Pin image" in notice
        old = json.loads((folder / "incident.json").read_text())
        assert old["status"] == "closed" and old["verdict"].startswith("abandoned")
    finally:
        runbook.metrics.stop()
        sim.stop()


def test_each_scenario_keeps_one_state_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", "/tmp/skewmit-test-state")
    assert demo_root("skew-incident") == state_dir() / "demo" / "skew-incident"
    assert demo_root("/path/to/my world.yaml") == state_dir() / "demo" / "my-world"
