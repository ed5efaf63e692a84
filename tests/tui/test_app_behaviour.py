"""The app's behaviour on a deterministic fake runbook: a slow API leaves the screen
responsive, production needs the typed name, the journal reopens, polls never overlap, the
palette offers every action, NO_COLOR keeps states readable."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from textual.timer import Timer

import tui.polls
from services.journal import Journal
from services.models import STEP_ORDER, Step, StepReport
from tests.tui.conftest import wait_until
from tests.tui.fakes import TARGET, FakeRunbook, fake_session
from tui.app import SkewmitApp
from tui.keymap import STEP_KEYS
from tui.screens.help import HelpScreen, key_rows, markdown_table
from tui.screens.main import MainScreen
from tui.screens.preview import ConfirmScreen
from tui.workers import Poll
from widgets.action_log import ActionLog
from widgets.checklist import GLYPHS, Checklist, StepItem
from widgets.step_detail import StepDetail


def app_for(runbook: FakeRunbook, **session: Any) -> SkewmitApp:
    app = SkewmitApp(fake_session(runbook, **session))
    app.animation_level = "none"
    return app


async def test_slow_api_keeps_the_screen_responsive() -> None:
    gate = threading.Event()
    runbook = FakeRunbook(wait=gate)
    app = app_for(runbook)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            checklist = app.main.query_one(Checklist)
            await pilot.pause()
            # Every check is out, none has answered: the steps say so and keys still work.
            assert {checklist.row(s).state for s in STEP_ORDER} == {"checking"}
            # The shown step's check and step 5's (the inspector) are out first; the others
            # follow at most FIRST_ALONE_S later when it does not answer (tui.polls): on a
            # loaded machine that can pass before this line (clean-clone CI, 2026-12-04).
            assert sorted(runbook.calls[:2]) == ["check hardware", "check rollback"]
            await wait_until(
                pilot, lambda: len([w for w in app.workers if w.is_running]) >= 6, "all out"
            )
            await pilot.press("down", "down")
            assert checklist.selected_step == Step.LATENCY
            detail = app.main.query_one(StepDetail)
            assert "Stabilize tail latency" in str(detail.query_one("#sd-title").render())
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            await pilot.press("]")
            assert app.main.pane == "metrics"
            assert len([w for w in app.workers if w.is_running]) >= 6
            gate.set()
            await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks answered")
            assert checklist.row(Step.ROLLBACK).state == "findings"
            assert checklist.row(Step.LATENCY).state == "clear"
    finally:
        gate.set()


async def test_the_shown_steps_check_answers_before_the_others_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At start-up the step pane's step is checked with step 5 (the inspector's verdicts)
    only, and the other steps' first checks start as soon as both answer (not after the
    bounded wait): on two cores every first read at once made step 1 answer with the last of
    them (issue 12's "findings")."""
    monkeypatch.setattr(tui.polls, "FIRST_ALONE_S", 60.0)  # only the answer releases them
    runbook = FakeRunbook()
    app = app_for(runbook)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks answered")
        checks = [call for call in runbook.calls if call.startswith("check ")]
        assert sorted(checks[:2]) == ["check hardware", "check rollback"]
        assert sorted(checks[2:6]) == [
            "check latency",
            "check pin",
            "check route",
            "check validate",
        ]


class SlowInspector(FakeRunbook):
    """Step 5's check (the inspector's nvidia-smi reads) waits for the test."""

    def __init__(self) -> None:
        super().__init__()
        self.gpu_read = threading.Event()

    def check(self, step: Step) -> StepReport:
        if step == Step.HARDWARE:
            self.calls.append("reading GPUs")
            self.gpu_read.wait(30)
        return super().check(step)


async def test_the_other_steps_wait_for_the_inspectors_first_answer_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Step 1 answered first: the other steps' checks still wait for step 5's, so that the
    GPU inspector's first verdicts are not drawn behind four more checks and the rollout
    read, all under one interpreter lock (issue 12: the inspector filled 85 ms sooner at the
    median of bench/ab_bench.py)."""
    monkeypatch.setattr(tui.polls, "FIRST_ALONE_S", 60.0)  # only the answers release them
    runbook = SlowInspector()
    app = app_for(runbook)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: Step.ROLLBACK in app.board.reports, "step 1")
            for _ in range(10):
                await pilot.pause(0.02)
            assert sorted(runbook.calls) == ["check rollback", "reading GPUs"], runbook.calls
            runbook.gpu_read.set()
            await wait_until(pilot, lambda: len(app.board.reports) == 6, "every step")
    finally:
        runbook.gpu_read.set()


async def test_production_context_needs_the_typed_deployment_name() -> None:
    runbook = FakeRunbook()
    app = app_for(runbook, production=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        await pilot.press("2", "i")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "preview")
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen) and confirm.typed_name == "llm-serve"
        apply = confirm.query_one("#confirm-apply")
        assert apply.disabled
        await pilot.press("y", "enter")  # lands in the name field; not the name
        assert isinstance(app.screen, ConfirmScreen) and apply.disabled
        await pilot.press("ctrl+u", *"llm-serve")
        assert not apply.disabled
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: "applied" in [e.type for e in runbook.journal.entries()],
            "applied after the typed confirmation",
        )
        assert isinstance(app.screen, MainScreen)


async def test_revert_from_the_action_log() -> None:
    runbook = FakeRunbook()
    app = app_for(runbook)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        await pilot.press("2", "i", "y")
        log = app.main.query_one(ActionLog)
        await wait_until(pilot, lambda: len(log.entries) == 1, "log entry")
        assert log.entries[0].revertible
        log.focus()
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirm")
        await pilot.press("y")
        await wait_until(pilot, lambda: len(log.entries) == 2, "revert logged")
        assert log.entries[1].status == "reverted" and not log.entries[1].revertible


async def test_reopening_shows_the_open_incident(tmp_path: Path) -> None:
    first = Journal.open_for(TARGET, "admin", tmp_path)
    runbook = FakeRunbook(journal=first)  # type: ignore[arg-type]
    app = app_for(runbook)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        await pilot.press("2", "i", "y")
        await wait_until(pilot, lambda: len(app.main.query_one(ActionLog).entries) == 1, "log")
    # The SSH session drops; skewmit starts again for the same deployment.
    again = Journal.open_for(TARGET, "admin", tmp_path)
    assert again.incident_id == first.incident_id
    app = app_for(FakeRunbook(journal=again))  # type: ignore[arg-type]
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.main.query_one(ActionLog)
        await wait_until(pilot, lambda: len(log.entries) == 1, "the earlier change is listed")
        assert log.entries[0].title == "Pin the image by digest" and log.entries[0].revertible
        # The step board knows the change from the journal, not from this run's memory.
        assert app.board.standing == {Step.PIN: {log.entries[0].seq}}


async def test_palette_offers_every_action_and_step() -> None:
    app = app_for(FakeRunbook())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for report in app.board.reports.values():
            for action in report.actions:
                assert action.title in titles
        assert "Validation view" in titles and "Step 5: Fix hardware skew" in titles


async def test_no_color_keeps_states_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = app_for(FakeRunbook())
    assert app.no_color
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        text = [str(item.query_one("Label").render()) for item in app.main.query(StepItem)]
        assert text[0].startswith(GLYPHS["findings"]) and "findings" in text[0]
        assert text[2].startswith(GLYPHS["clear"]) and "clear" in text[2]


def test_polls_never_overlap_and_wait_while_hidden() -> None:
    started: list[int] = []
    timers: list[float] = []
    visible = [False]

    def set_timer(delay: float, callback: Any) -> Timer:
        timers.append(delay)
        return FakeTimer()  # type: ignore[return-value]

    poll = Poll(lambda: started.append(1), lambda: 5.0, set_timer, lambda: visible[0])
    poll.request()
    assert started == []  # hidden: nothing read
    visible[0] = True
    poll.resume()
    assert started == [1]
    poll.request()
    poll.request()
    assert started == [1]  # still running: no second read at the same time
    poll.finished()
    assert started == [1, 1]  # the requests made meanwhile run once, right after
    poll.finished()
    assert timers == [5.0]  # then the next read waits its interval


class FakeTimer:
    def stop(self) -> None:
        pass


def test_the_readme_key_table_is_the_help_screens() -> None:
    """The README's key table is the help screen's rows: a key added, moved or renamed in
    the app shows up in both (regenerate it with `markdown_table(key_rows(...))`)."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    start = readme.index("<!-- keys: generated from tui/screens/help.py key_rows -->\n")
    table = readme[readme.index("\n", start) + 1 : readme.index("<!-- /keys -->")]
    expected = markdown_table(key_rows(MainScreen.BINDINGS, SkewmitApp.BINDINGS))
    assert table == expected, expected


async def test_the_help_screen_lists_every_step_key_with_its_step() -> None:
    app = app_for(FakeRunbook())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-keys").render())
        for key in STEP_KEYS:
            number = STEP_ORDER.index(key.step) + 1
            assert f"{key.key}  step {number}: {key.what}" in text, key
        assert "a  fix: the selected step's first available action" in text
