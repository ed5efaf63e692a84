"""The first frame (issue 12): the screen takes its size's layout before anything mounts, keys
pressed in the first moments act, and the action log's columns fit its pane from the start
(its width used to be applied only when something else restyled the screen)."""

from __future__ import annotations

import html
import re
import threading
from typing import Any

import pytest
from textual.app import App
from textual.css.stylesheet import Stylesheet
from textual.widgets import Label

from services.models import STEP_ORDER, JournalAction
from tests.tui.conftest import checked, wait_until
from tests.tui.fakes import FakeRunbook, fake_session, held_opener
from tui.app import SkewmitApp
from tui.screens.breakpoints import size_classes
from tui.screens.help import HelpScreen
from widgets.action_log import ActionLog
from widgets.step_detail import ActionEntry, StepDetail

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
BREAKPOINTS = ("-narrow", "-wide", "-very-wide", "-short", "-tall")


@pytest.mark.parametrize("size", [(80, 24), (100, 33), (120, 34), (170, 50), (200, 20)])
async def test_the_size_classes_are_the_ones_textual_gives(size: tuple[int, int]) -> None:
    """The classes set before the first mount are those Textual's Resize sets after it (so
    that Resize restyles nothing)."""
    app = SkewmitApp(fake_session(FakeRunbook()))
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        given = {name for name in BREAKPOINTS if app.main.has_class(name)}
        assert given == {name for name, on in size_classes(app.main, app).items() if on}
        assert len(given) == 2, given  # one per dimension


def test_size_classes_follow_the_largest_breakpoint_reached() -> None:
    class Sized(App[None]):
        HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide"), (170, "-very-wide")]
        VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]

        def __init__(self, width: int, height: int) -> None:
            super().__init__()
            self._width, self._height = width, height

        @property
        def size(self) -> Any:
            from textual.geometry import Size

            return Size(self._width, self._height)

    main = SkewmitApp(fake_session(FakeRunbook())).main
    assert size_classes(main, Sized(80, 24)) == {
        "-narrow": True,
        "-wide": False,
        "-very-wide": False,
        "-short": True,
        "-tall": False,
    }
    on = size_classes(main, Sized(170, 34))
    assert {name for name, value in on.items() if value} == {"-very-wide", "-tall"}


@pytest.mark.parametrize("size", SIZES)
async def test_keys_pressed_at_once_act(size: tuple[int, int]) -> None:
    """`2`, `?` and `q` pressed as soon as the app runs, every read still blocked: each acts
    (none is lost or crashes the app)."""
    gate = threading.Event()
    app = SkewmitApp(fake_session(FakeRunbook(wait=gate)))
    try:
        async with app.run_test(size=size) as pilot:
            await pilot.press("2")
            assert app.selected_step == STEP_ORDER[1]
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert app.screen is app.main
            await pilot.press("q")
            await wait_until(pilot, lambda: not app.is_running, "the app quit")
        assert app.return_code == 0
    finally:
        gate.set()


def on_screen(app: App[Any]) -> str:
    """The text on screen, as the terminal shows it (from the app's screenshot)."""
    svg = app.export_screenshot()
    return html.unescape("".join(re.findall(r"<text [^>]*>([^<]*)", svg))).replace("\xa0", " ")


@pytest.mark.parametrize("size", SIZES)
async def test_the_action_column_fills_the_log_pane(size: tuple[int, int]) -> None:
    """The title column takes the pane's width, at 120x40 and in the log's tab at 80x24, with
    the log still empty and then with a long note: no horizontal scrollbar under the log (a
    note column past the pane's edge put one there), and the note is in full under it."""
    app = SkewmitApp(fake_session(FakeRunbook()))
    async with app.run_test(size=size) as pilot:
        if size == (80, 24):
            for _ in range(3):
                await pilot.press("]")  # the log's tab
        log = app.main.query_one(ActionLog)
        await wait_until(pilot, lambda: log.size.width > 20, "the log laid out")
        await pilot.pause()
        screen = on_screen(app)
        assert "#   When   Action" in screen and "Note" not in screen, screen
        assert not log.show_horizontal_scrollbar and log.virtual_size.width <= log.size.width
        note = "verified: 4 of 4 pods ready on revision 2, " + "the rollout finished " * 6
        app.main.show_log([JournalAction(3, "03:12:09", "Roll back", "applied", note)], False)
        await pilot.pause()
        await pilot.pause()
        assert log.row_count == 1 and not log.show_horizontal_scrollbar
        assert log.virtual_size.width <= log.size.width
        detail = app.main.query_one("#log-detail", Label)
        assert note.strip() in str(detail.render()), "the note, in full, under the log"


async def sources_after_the_checks(monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], int]:
    """The app's stylesheet sources, in order, once every step has answered (step 1's action
    entries shown), and how many times Textual parsed it while the checks came in."""
    opener, release = held_opener()
    app = SkewmitApp(opener)
    parses = 0
    parse = Stylesheet.parse

    def counted(stylesheet: Stylesheet) -> None:
        nonlocal parses
        parses += 1
        parse(stylesheet)

    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: app.main.query(StepDetail), "the first frame")
            for _ in range(20):  # what follows the first frame, settled
                await pilot.pause(0.02)
            monkeypatch.setattr(Stylesheet, "parse", counted)
            release.set()
            await wait_until(pilot, lambda: checked(app), "every step's checks")
            await wait_until(pilot, lambda: app.main.query(ActionEntry), "step 1's actions")
            for _ in range(10):
                await pilot.pause(0.02)
            return list(app.stylesheet.source), parses
    finally:
        release.set()


async def test_the_action_entries_styles_are_parsed_before_the_first_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Textual parses a widget class's styles as the first one mounts: the action entries'
    (a Button's are 7 KB of CSS) as step 1's first answer came in with the others, 6-10 ms
    of a 52-64 ms stall (issue 12). They are parsed once the first frame is out, while the
    session opens; the stylesheet is the one the mount would have made, sources in order."""
    sources, parses = await sources_after_the_checks(monkeypatch)
    assert parses == 0
    monkeypatch.setattr(StepDetail, "parse_styles_ahead", lambda self: None)
    natural, parses = await sources_after_the_checks(monkeypatch)
    assert parses >= 1  # without it, step 1's entries had their styles parsed as they came
    assert sources == natural
