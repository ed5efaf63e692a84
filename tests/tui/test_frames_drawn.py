"""Whole frames the terminal is sent for nothing (issue 12): Textual repainted a whole screen
after the layout that had just drawn it as it was first shown, and whenever anything changed
on a screen underneath one that hides it (the app's default screen under the main screen;
the main screen under the validation view). Each was a whole frame: 23 KB at 120x40 and
5-10 ms of the one interpreter lock the session's opening and checks need.

Frames are counted where Textual hands them to the driver (`App._display`), by the cells
each one rewrites; what is asserted is what the terminal is sent, never how long it took."""

from __future__ import annotations

import threading
from typing import Any

from textual._compositor import ChopsUpdate, LayoutUpdate
from textual.widgets import Label

from tests.tui.conftest import checked, wait_until
from tests.tui.fakes import TARGET, FakeRunbook, fake_session
from tui.app import SkewmitApp
from tui.screens.validation_view import ValidationScreen
from tui.session import Session, SessionOpener
from widgets.header_bar import HeaderState
from widgets.label_text import set_text

SIZE = (120, 40)
WHOLE = SIZE[0] * SIZE[1]


def cells(update: Any) -> int:
    """How many cells of the terminal a frame rewrites."""
    if isinstance(update, LayoutUpdate):
        return update.region.area
    if isinstance(update, ChopsUpdate):
        return sum(x2 - x1 for _y, x1, x2 in update.spans)
    return 0


def record_frames(app: SkewmitApp) -> list[tuple[Any, int]]:
    """Every frame drawn from now on: (the screen, the cells it rewrote)."""
    frames: list[tuple[Any, int]] = []
    display = app._display

    def record(screen: Any, update: Any) -> None:
        if update is not None and not app._batch_count:
            frames.append((screen, cells(update)))
        display(screen, update)

    app._display = record  # type: ignore[method-assign]
    return frames


def whole(frames: list[tuple[Any, int]], screen: Any) -> int:
    """How many of `frames` rewrote (nearly) all of `screen`'s terminal."""
    return sum(1 for shown, n in frames if shown is screen and n >= 0.9 * WHOLE)


async def test_the_first_showing_draws_the_screen_whole_once_before_its_layout_settles() -> None:
    """While the session opens (its open() held back), the main screen is drawn whole for
    its first frame and once more when the mounts and the tables' first sizes settle its
    layout: not a third time for the repaint Textual asked for after its own layout, nor for
    the default screen underneath it. Before, three whole frames came before any data."""
    release = threading.Event()
    session = fake_session(FakeRunbook())

    def open_() -> Session:
        release.wait(30)
        return session

    header = HeaderState(context=TARGET.context, server=TARGET.server, deployment="llm-serve")
    app = SkewmitApp(SessionOpener(header, open_, "connecting to skewmit-sim…"))
    app.animation_level = "none"  # no progress bar moving meanwhile
    frames = record_frames(app)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: whole(frames, app.main) >= 1, "the first frame")
            for _ in range(20):  # what Textual does after the first frame, settled
                await pilot.pause(0.02)
            assert app.session is None, "nothing came from the cluster meanwhile"
            assert whole(frames, app.main) <= 2, frames
            release.set()
            await wait_until(pilot, lambda: checked(app), "every step's checks")
    finally:
        release.set()


async def test_a_change_under_the_validation_view_does_not_redraw_the_view() -> None:
    """The validation view hides the main screen. A change on the main screen underneath it
    (here its status line; in a session, every check and reading) made Textual repaint all of
    the view, one whole frame for each; now it sends nothing for the hidden change."""
    app = SkewmitApp(fake_session(FakeRunbook()))
    app.animation_level = "none"
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: checked(app), "every step's checks")
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, ValidationScreen), "the view")
        view = app.screen
        for _ in range(10):
            await pilot.pause(0.02)
        frames = record_frames(app)
        for i in range(3):
            set_text(app.main.query_one("#status-line", Label), f"status under the view {i}")
            for _ in range(5):
                await pilot.pause(0.02)
        assert whole(frames, view) == 0, frames
        # The view itself still draws what changes on it.
        set_text(view.query_one(Label), "a change on the view")
        await wait_until(pilot, lambda: any(s is view for s, _n in frames), "a frame of it")
        assert whole(frames, view) == 0, frames
        # Closed, the view uncovers the main screen drawn whole, with what changed under it.
        await pilot.press("v")
        await wait_until(pilot, lambda: whole(frames, app.main) >= 1, "the main screen drawn")
        assert "status under the view 2" in app.export_screenshot().replace("&#160;", " ")


async def test_the_apps_own_refresh_still_draws_the_whole_screen() -> None:
    """What Textual asks after App.suspend (an editor or a pager run in the terminal) and a
    theme change: the screen laid out and every cell drawn again, though the screens drop
    the repaint that comes with a layout."""
    app = SkewmitApp(fake_session(FakeRunbook()))
    app.animation_level = "none"
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: checked(app), "every step's checks")
        for _ in range(10):
            await pilot.pause(0.02)
        frames = record_frames(app)
        app.refresh(layout=True)
        await wait_until(pilot, lambda: whole(frames, app.main) >= 1, "the whole screen drawn")
