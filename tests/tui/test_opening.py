"""The first frame before the session opens (issue 12): with a SessionOpener the app draws
the checklist and the header from local facts at once, opens the session in a worker, refuses
the keys that need it meanwhile, exits 2 with the opener's message when it fails, and waits
for a slow open when the operator quits, so the launcher can close what was opened."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from services.errors import ConfigError
from services.models import STEP_ORDER
from tests.tui.conftest import wait_until
from tests.tui.fakes import TARGET, FakeRunbook, fake_session
from tui.app import SkewmitApp
from tui.keymap import FIX_KEY
from tui.opening import SessionOpening
from tui.screens.help import HelpScreen
from tui.screens.validation_view import ValidationScreen
from tui.session import Session, SessionOpener
from tui.step_board import SHORT_TITLES
from widgets.checklist import Checklist
from widgets.header_bar import HeaderBar, HeaderState
from widgets.step_detail import StepDetail
from widgets.validation_panel import ValidationPanel

WAITING = "connecting to skewmit-sim…"
HEADER = HeaderState(
    context=TARGET.context, server=TARGET.server, namespace="inference", deployment="llm-serve"
)


class SlowOpener:
    """An open() that blocks until the test releases it, and says when it has returned."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.release = threading.Event()
        self.returned = threading.Event()
        self.fail = fail
        self.session = fake_session(FakeRunbook())

    def open(self) -> Session:
        try:
            self.release.wait(30)
            if self.fail is not None:
                raise self.fail
            return self.session
        finally:
            self.returned.set()

    def opener(self) -> SessionOpener:
        return SessionOpener(HEADER, self.open, WAITING)


def shown(widget: Any) -> str:
    return str(widget.render())


async def test_first_frame_before_the_session_then_the_checks() -> None:
    slow = SlowOpener()
    app = SkewmitApp(slow.opener())
    app.animation_level = "none"
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            checklist = app.main.query_one(Checklist)
            assert [checklist.row(s).title for s in STEP_ORDER] == [
                SHORT_TITLES[s] for s in STEP_ORDER
            ]
            header = app.main.query_one(HeaderBar)
            assert shown(header.query_one("#hb-context")) == "skewmit-sim"
            assert "inference/llm-serve" in shown(header.query_one("#hb-target"))
            assert WAITING in shown(app.main.query_one(StepDetail).query_one("#sd-status"))
            assert WAITING in app.main.status_text
            assert not slow.returned.is_set()
            # Keys that need the session say why they did nothing; q and ? still work.
            await pilot.press(FIX_KEY)
            assert "still connecting to skewmit-sim…" in app.main.status_text
            await pilot.press("ctrl+r")
            assert "still connecting to skewmit-sim…" in app.main.status_text
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert app.session is None
            slow.release.set()
            await wait_until(pilot, lambda: len(app.board.reports) == len(STEP_ORDER), "checks")
            assert app.session is slow.session
            assert checklist.row(STEP_ORDER[0]).state == "findings"
            # The header now says what the session knows: the incident and the user.
            assert "admin" in shown(header.query_one("#hb-user"))
            await pilot.press(FIX_KEY)  # now it acts: the rollback's preview comes up
            await wait_until(pilot, lambda: app.screen is not app.main, "the preview")
    finally:
        slow.release.set()


async def test_the_first_frame_drawn_is_the_one_shown_and_the_session_opens_after_it() -> None:
    """Textual drops every frame drawn inside its start-up batch. The main screen, pushed and
    awaited in on_mount, was laid out and drawn there, dropped, then drawn whole again: 50-130
    ms more to the first frame in a real terminal (issue 12, bench/RESULTS.md). Its first
    frame is now drawn after the batch, with the panes already saying why they wait, and the
    session's open() starts after that frame."""
    slow = SlowOpener()
    # Each frame: dropped, open() started, the status line, the step pane's status.
    frames: list[tuple[bool, bool, str, str]] = []
    opened = threading.Event()
    app = SkewmitApp(SessionOpener(HEADER, lambda: (opened.set(), slow.open())[1], WAITING))
    app.animation_level = "none"
    display = app._display

    def record(screen: Any, renderable: Any) -> None:
        if screen is app.main and renderable is not None:
            step_status = shown(app.main.query_one(StepDetail).query_one("#sd-status"))
            frames.append(
                (app._batch_count > 0, opened.is_set(), app.main.status_text, step_status)
            )
        display(screen, renderable)

    app._display = record  # type: ignore[method-assign]
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, opened.is_set, "the session being opened")
            assert frames, "the main screen drew no frame"
            dropped, open_started, status, step_status = frames[0]
            assert not dropped, "the main screen's first frame was drawn inside the batch"
            assert not open_started, "the session was opened before the first frame"
            assert WAITING in status and WAITING in step_status, frames[0]
            slow.release.set()  # quitting waits for open() to return
    finally:
        slow.release.set()


async def test_a_validation_view_opened_while_connecting_gets_the_sessions_header() -> None:
    slow = SlowOpener()
    app = SkewmitApp(slow.opener())
    app.animation_level = "none"
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await pilot.press("v")
            await wait_until(pilot, lambda: isinstance(app.screen, ValidationScreen), "the view")
            header = app.screen.query_one(HeaderBar)
            assert shown(header.query_one("#hb-context")) == "skewmit-sim"
            assert "admin" not in shown(header.query_one("#hb-user"))
            slow.release.set()
            await wait_until(pilot, lambda: app.session is not None, "the session")
            # Still on the view: its header says what the session knows, like the main one.
            await wait_until(
                pilot, lambda: "admin" in shown(header.query_one("#hb-user")), "the user shown"
            )
            assert isinstance(app.screen, ValidationScreen)
            assert shown(header.query_one("#hb-incident")) == shown(
                app.main.query_one(HeaderBar).query_one("#hb-incident")
            )
    finally:
        slow.release.set()


async def test_a_validation_view_opened_while_connecting_follows_low_bandwidth_mode() -> None:
    """Opened before the session, the view could not know the session asks for the quiet
    mode; once it opens, the view hides its charts and counts down by the minute, as one
    opened afterwards does."""
    from dataclasses import replace

    slow = SlowOpener()
    slow.session = replace(slow.session, low_bandwidth=True)
    app = SkewmitApp(slow.opener())
    app.animation_level = "none"
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await pilot.press("v")
            await wait_until(pilot, lambda: isinstance(app.screen, ValidationScreen), "the view")
            view = app.screen
            assert isinstance(view, ValidationScreen) and view.charts_shown
            slow.release.set()
            await wait_until(pilot, lambda: app.session is not None, "the session")
            await wait_until(pilot, lambda: not view.charts_shown, "charts hidden")
            panel = view.query_one(ValidationPanel)
            assert panel.countdown_by_minute and not panel.marks_only
    finally:
        slow.release.set()


async def test_a_failing_opener_exits_2_with_its_message() -> None:
    slow = SlowOpener(ConfigError("context 'nope' is not in ~/.kube/config; pass --context"))
    slow.release.set()
    app = SkewmitApp(slow.opener())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.return_code is not None, "the app to exit")
    assert app.return_code == 2
    assert app.return_value == 2
    assert app.open_error == "context 'nope' is not in ~/.kube/config; pass --context"
    assert app.session is None


async def test_a_scenario_error_also_exits_2() -> None:
    class ScenarioError(Exception):  # the simulator's own, matched by name
        pass

    slow = SlowOpener(ScenarioError("unknown scenario 'x'; choose one of: skew-incident"))
    slow.release.set()
    app = SkewmitApp(slow.opener())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.return_code is not None, "the app to exit")
    assert app.return_code == 2
    assert "unknown scenario 'x'" in app.open_error


async def test_quitting_while_opening_waits_for_the_open() -> None:
    slow = SlowOpener()
    app = SkewmitApp(slow.opener())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("q")
        # The open is still out: quitting must not leave it running behind the launcher.
        threading.Timer(0.2, slow.release.set).start()
    assert slow.returned.is_set()
    assert app.return_code == 0
    # What open() returned, for the launcher to close (the app never started its polls).
    assert app.session is slow.session
    assert len(app.polls) == 0


async def test_quitting_before_the_first_frame_does_not_wait_for_an_open_never_started() -> None:
    """The session is opened once the first frame is out: an app that quits before that
    (a key typed ahead, an error in mounting) has nothing to wait for, and must not hang on
    exit waiting for an open() that was never called."""
    slow = SlowOpener()
    opening = SessionOpening(slow.opener())
    assert await asyncio.wait_for(opening.wait(), 10) is None
    assert not slow.returned.is_set()


def test_run_prints_why_on_stderr_and_returns_2(capsys: Any) -> None:
    slow = SlowOpener(ConfigError("no context 'nope' in kubeconfig " + "x" * 100))
    slow.release.set()
    assert SkewmitApp(slow.opener()).run(headless=True, size=(80, 24)) == 2
    # One line, neither wrapped nor cropped at 80 columns: the launcher's "skewmit: why".
    assert capsys.readouterr().err == f"skewmit: no context 'nope' in kubeconfig {'x' * 100}\n"


async def test_metrics_still_being_reached_are_said_in_their_pane_not_the_api_servers() -> None:
    """The session opens before Prometheus has answered (tui.launchers.PendingFeed): the
    metrics pane says it is waiting for Prometheus, not "connecting to" the API server that
    already answered, until the first reading comes."""
    from concurrent.futures import Future

    from services.models import MetricSeries
    from tests.tui.fakes import metrics

    reading: Future[list[MetricSeries]] = Future()
    slow = SlowOpener()
    slow.session = fake_session(
        FakeRunbook(),
        metrics_sampler=lambda: reading.result(30),
        metrics_note="waiting for Prometheus at http://prometheus:9090…",
    )
    app = SkewmitApp(slow.opener())
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            note = app.main.query_one("#metrics-note")
            await pilot.pause()
            assert WAITING in shown(note)
            slow.release.set()
            await wait_until(pilot, lambda: app.session is not None, "the session")
            await wait_until(pilot, lambda: "Prometheus" in shown(note), "the pane's note")
            assert "waiting for Prometheus at http://prometheus:9090" in shown(note)
            reading.set_result(metrics())
            await wait_until(pilot, lambda: "Prometheus" not in shown(note), "the readings")
    finally:
        slow.release.set()
        if not reading.done():
            reading.set_result([])
