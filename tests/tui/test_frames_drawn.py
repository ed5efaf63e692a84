"""Whole frames the terminal is sent for nothing (issue 12): Textual repainted a whole screen
after the layout that had just drawn it as it was first shown, and whenever anything changed
on a screen underneath one that hides it (the app's default screen under the main screen;
the main screen under the validation view). Each was a whole frame: 23 KB at 120x40 and
5-10 ms of the one interpreter lock the session's opening and checks need.

Frames are counted where Textual hands them to the driver (`App._display`), by the cells
each one rewrites; what is asserted is what the terminal is sent, never how long it took."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.segment import ControlType
from textual import events
from textual._compositor import ChopsUpdate, LayoutUpdate
from textual.widgets import Label

from tests.tui.conftest import checked, wait_until
from tests.tui.fakes import FakeRunbook, fake_session, held_opener
from tui.app import SkewmitApp
from tui.screens.breakpoints import INPUT_DRAWN_S, DrawnOnceScreen, SettledCompositor
from tui.screens.help import HelpScreen
from tui.screens.input_prompt import InputPromptScreen
from tui.screens.validation_view import ValidationScreen
from widgets.label_text import set_text

SIZE = (120, 40)
SMALL = (80, 24)
WHOLE = SIZE[0] * SIZE[1]


def cells(update: Any) -> int:
    """How many cells of the terminal a frame rewrites."""
    if isinstance(update, LayoutUpdate):
        return update.region.area
    if isinstance(update, ChopsUpdate):
        return sum(x2 - x1 for _y, x1, x2 in update.spans)
    return 0


class Terminal:
    """What the terminal holds: each frame Textual hands the driver, applied cell by cell as
    a terminal would (a cursor move, then text), so that a frame saved for nothing can be told
    from one a change needed: whatever is skipped, the terminal must still show the screen."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.width, self.height = size
        self.cells: list[list[tuple[str, Any]]] = [
            [(" ", None)] * self.width for _ in range(self.height)
        ]
        self.console = Console(width=self.width, height=self.height, color_system="truecolor")

    def apply(self, update: Any) -> None:
        x = y = 0
        for segment in update.__rich_console__(self.console, self.console.options):
            if segment.control:
                for control in segment.control:
                    if control[0] == ControlType.CURSOR_MOVE_TO:
                        x, y = control[1], control[2]
                continue
            if segment.text == "\n":
                continue
            for char in segment.text:
                if 0 <= y < self.height and 0 <= x < self.width:
                    self.cells[y][x] = (char, segment.style)
                x += cell_len(char)

    def differences(self, screen: Any) -> list[str]:
        """The rows where the terminal differs from a fresh render of `screen`."""
        rows = []
        for y, strip in enumerate(screen._compositor.render_strips()):
            fresh: list[tuple[str, Any]] = []
            for segment in strip:
                fresh += [(char, segment.style) for char in segment.text]
            held = self.cells[y][: len(fresh)]
            if held != fresh:
                rows.append(f"row {y}: {''.join(c for c, _ in held)!r}")
                rows.append(f"  not {''.join(c for c, _ in fresh)!r}")
        return rows


def record_frames(app: SkewmitApp, terminal: Terminal | None = None) -> list[tuple[Any, int]]:
    """Every frame drawn from now on: (the screen, the cells it rewrote); each applied to
    `terminal` when one is given."""
    frames: list[tuple[Any, int]] = []
    display = app._display

    def record(screen: Any, update: Any) -> None:
        if update is not None and not app._batch_count:
            frames.append((screen, cells(update)))
            if terminal is not None:
                terminal.apply(update)
        display(screen, update)

    app._display = record  # type: ignore[method-assign]
    return frames


def recorded_app() -> tuple[SkewmitApp, Terminal, list[tuple[Any, int]]]:
    """The app on the fake runbook, without animations, every frame it draws recorded and
    applied to a terminal of SIZE."""
    app = SkewmitApp(fake_session(FakeRunbook()))
    app.animation_level = "none"
    terminal = Terminal(SIZE)
    return app, terminal, record_frames(app, terminal)


def held_recorded_app() -> tuple[SkewmitApp, Terminal, list[tuple[Any, int]], Any]:
    """`recorded_app`'s, with the session's opening held back until the event it returns is
    set (no progress bar moving meanwhile: animations off)."""
    opener, release = held_opener()
    app = SkewmitApp(opener)
    app.animation_level = "none"
    terminal = Terminal(SIZE)
    return app, terminal, record_frames(app, terminal), release


async def first_frame_settled(pilot: Any, app: SkewmitApp, frames: list[tuple[Any, int]]) -> None:
    """Wait for the main screen's first frame and what Textual does after it; the session is
    still held back."""
    await wait_until(pilot, lambda: whole(frames, app.main) >= 1, "the first frame")
    for _ in range(20):
        await pilot.pause(0.02)
    assert app.session is None, "nothing came from the cluster meanwhile"


async def shown_over_main(
    pilot: Any, app: SkewmitApp, key: str, kind: type, settle: int = 10
) -> Any:
    """Press `key`, wait for a `kind` screen on top and for what Textual does after it
    (`settle` short pauses); returns that screen."""
    await pilot.press(key)
    await wait_until(pilot, lambda: isinstance(app.screen, kind), kind.__name__)
    for _ in range(settle):
        await pilot.pause(0.02)
    return app.screen


def whole(frames: list[tuple[Any, int]], screen: Any) -> int:
    """How many of `frames` rewrote (nearly) all of `screen`'s terminal."""
    return sum(1 for shown, n in frames if shown is screen and n >= 0.9 * WHOLE)


async def test_the_first_showing_draws_the_screen_whole_once() -> None:
    """While the session opens (its open() held back), the main screen is drawn whole for
    its first frame and not again: not for the repaints its widgets asked for as they
    mounted (drawn by that frame), not for the repaint Textual asks after its own layout,
    nor for the default screen underneath it. Three whole frames came before any data, then
    two (24 KB and 30-40 ms of the interpreter lock each, issue 12). The terminal still
    shows the screen as it is, before the session opens and after every check is in."""
    app, terminal, frames, release = held_recorded_app()
    try:
        async with app.run_test(size=SIZE) as pilot:
            await first_frame_settled(pilot, app, frames)
            assert whole(frames, app.main) == 1, frames
            assert terminal.differences(app.main) == []
            release.set()
            await wait_until(pilot, lambda: checked(app), "every step's checks")
            for _ in range(10):
                await pilot.pause(0.02)
            assert terminal.differences(app.main) == []
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
        view = await shown_over_main(pilot, app, "v", ValidationScreen)
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


async def test_the_terminal_shows_each_screen_over_the_main_one_as_it_is_then_the_main() -> None:
    """The validation view and the dialogs (help, an action's inputs) drop, like the main
    screen, their widgets' mount-time repaints after their first layout: the terminal still
    shows each one as it is, and the main screen again once it closes."""
    app, terminal, _frames = recorded_app()
    shown = (
        ("v", ValidationScreen, "v"),
        ("question_mark", HelpScreen, "escape"),
        ("a", InputPromptScreen, "escape"),
    )
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: checked(app), "every step's checks")
        for _ in range(10):
            await pilot.pause(0.02)
        assert terminal.differences(app.main) == []
        for key, screen, close in shown:
            shown_screen = await shown_over_main(pilot, app, key, screen, settle=20)
            assert terminal.differences(shown_screen) == [], screen.__name__
            await pilot.press(close)
            await wait_until(pilot, lambda: app.screen is app.main, "the main screen")
            for _ in range(10):
                await pilot.pause(0.02)
            assert terminal.differences(app.main) == [], screen.__name__


async def test_a_change_under_a_dialog_sends_nothing_until_it_closes() -> None:
    """A dialog's translucent backdrop is a render of all of the main screen. Textual drew
    each change underneath by rendering all of it again (45 ms of the UI thread each, and a
    whole frame from the second change on), for every check and reading while the help or a
    confirmation was up. Now the dimmed screen around the dialog stays as it was when the
    dialog opened, a change under it sends the terminal nothing, and once the dialog closes
    the terminal shows the main screen as it is, the changes made meanwhile included."""
    app, terminal, frames = recorded_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: checked(app), "every step's checks")
        dialog = await shown_over_main(pilot, app, "question_mark", HelpScreen)
        assert terminal.differences(dialog) == []
        del frames[:]
        status = app.main.query_one("#status-line", Label)
        for i in range(4):
            set_text(status, f"status under the help {i}")
            for _ in range(5):
                await pilot.pause(0.02)
        assert frames == []
        # The dialog itself still draws what changes on it.
        set_text(dialog.query_one(Label), "a change on the dialog")
        await wait_until(pilot, lambda: len(frames) > 0, "a frame of it")
        assert whole(frames, dialog) == 0, frames
        terminal = Terminal(SMALL)  # resized (an 80x24 terminal): all of it drawn again
        record_frames(app, terminal)
        await pilot.resize_terminal(*SMALL)
        for _ in range(10):
            await pilot.pause(0.02)
        assert terminal.differences(dialog) == [], "the backdrop as the main screen is now"
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.main, "the main screen")
        for _ in range(10):
            await pilot.pause(0.02)
        assert terminal.differences(app.main) == []
        assert "status under the help 3" in app.export_screenshot().replace("&#160;", " ")


async def test_a_layout_and_the_frame_it_moved_are_two_turns_of_the_event_loop(
    monkeypatch: Any,
) -> None:
    """A layout of the whole screen (15-30 ms of the UI thread) and the render of what it
    moved (25-40 ms) ran as one stretch, which held the event loop past issue 12's 50 ms: a
    key, a reply, a timer due waited for both. The render now waits for the loop to run
    what is due first, a screen's first showing included (the validation view's opening),
    and the terminal still shows the screen as it is. What asks to run after the frame (the
    latency chart's first plot, 30-50 ms) runs after it, not with it."""
    app, terminal, frames = recorded_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: checked(app), "every step's checks")
        for _ in range(10):
            await pilot.pause(0.02)
        turns = 0

        async def count_turns() -> None:
            nonlocal turns
            while True:
                await asyncio.sleep(0)
                turns += 1

        # (what, the loop's turn, the screen, whether it was on top)
        marks: list[tuple[str, int, Any, bool]] = []
        layout, display = DrawnOnceScreen._refresh_layout, app._display

        def laid_out(screen: Any, *args: Any, **kwargs: Any) -> None:
            marks.append(("layout", turns, screen, screen is app.screen))
            layout(screen, *args, **kwargs)
            screen.call_after_frame(lambda: marks.append(("after the frame", turns, screen, True)))

        def shown(screen: Any, update: Any) -> None:
            if update is not None:
                marks.append(("frame", turns, screen, True))
            display(screen, update)

        monkeypatch.setattr(DrawnOnceScreen, "_refresh_layout", laid_out)
        app._display = shown  # type: ignore[method-assign]
        counter = asyncio.create_task(count_turns())
        try:
            for key in "253":  # each step's own text, actions and keys: a layout each
                await pilot.press(key)
                for _ in range(10):
                    await pilot.pause(0.02)
            view = await shown_over_main(pilot, app, "v", ValidationScreen, settle=20)
        finally:
            counter.cancel()
        drawn = []  # the layouts on top that a frame of their screen followed
        for i, (what, turn, screen, on_top) in enumerate(marks):
            if what != "layout" or not on_top:
                continue
            later = [(j, m) for j, m in enumerate(marks) if j > i and m[2] is screen]
            frame = next((m for _j, m in later if m[0] == "frame"), None)
            if frame is None:
                continue  # nothing moved on it, or covered before its turn came
            drawn.append(screen)
            assert frame[1] > turn, marks
            after = next(j for j, m in later if m[0] == "after the frame")
            assert any(m[0] == "frame" for j, m in later if j < after), marks
        assert drawn.count(app.main) >= 3 and view in drawn, marks
        assert terminal.differences(view) == []
        assert frames


async def test_a_layout_arranges_the_screen_once_and_a_repaint_off_the_screen_none(
    monkeypatch: Any,
) -> None:
    """Textual marked its map of every widget's place stale when a widget off the screen
    asked for a repaint (a hidden footer key, a line scrolled out of the step pane), and did
    not mark it fresh when a layout had just made it: each layout with a new widget in it,
    and the next render after such a repaint, arranged the whole screen once more (21-22
    times in a run of the stall benchmark, 72-113 ms in all, issue 12). Opening steps (their
    action entries and keys change) still lays the screen out and the terminal shows it."""
    app, terminal, _frames = recorded_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: checked(app), "every step's checks")
        for _ in range(10):
            await pilot.pause(0.02)
        compositor = app.main._compositor
        arrange = type(compositor)._arrange_root
        layout = DrawnOnceScreen._refresh_layout
        arranged = {"in layouts": 0, "elsewhere": 0}
        layouts: list[int] = []  # the arrangements each layout of the main screen made
        in_layout = False

        def arrange_root(self: Any, *args: Any, **kwargs: Any) -> Any:
            arranged["in layouts" if in_layout else "elsewhere"] += self is compositor
            return arrange(self, *args, **kwargs)

        def laid_out(screen: Any, *args: Any, **kwargs: Any) -> None:
            nonlocal in_layout
            before, in_layout = arranged["in layouts"], screen is app.main
            try:
                layout(screen, *args, **kwargs)
            finally:
                in_layout = False
            if screen is app.main:
                layouts.append(arranged["in layouts"] - before)

        monkeypatch.setattr(type(compositor), "_arrange_root", arrange_root)
        monkeypatch.setattr(DrawnOnceScreen, "_refresh_layout", laid_out)
        for key in "5312":  # step 2's guidance is longer than its pane shows
            await pilot.press(key)
            for _ in range(10):
                await pilot.pause(0.02)
        assert len(layouts) >= 4 and all(n == 1 for n in layouts), layouts
        visible = compositor.visible_widgets
        scrolled_out = [w for w in compositor.full_map if w not in visible]
        assert scrolled_out, "step 2's pane has text below what it shows"
        arranged["elsewhere"] = 0
        for widget in scrolled_out:
            widget.refresh()
        status = app.main.query_one("#status-line", Label)
        status.refresh()  # a repaint on the screen too: no layout, a render
        for _ in range(10):
            await pilot.pause(0.02)
        assert arranged["elsewhere"] == 0
        set_text(status, "a repaint on the screen too")
        for _ in range(10):
            await pilot.pause(0.02)
        assert terminal.differences(app.main) == []
        assert "a repaint on the screen too" in app.export_screenshot().replace("&#160;", " ")


async def test_the_opening_arranges_the_screen_only_in_its_layouts(monkeypatch: Any) -> None:
    """The map of every widget's place was still rebuilt in the first frame's render and the
    next (9 ms each in a trace of the real app): the tab strip's widgets, hidden with their
    container at 120 columns but each displayed itself, counted as widgets the map lacked.
    While the session opens (held back: no answer mounts anything between a layout and its
    render), only layouts arrange the main screen, and the terminal shows it as it is."""
    rebuilt: list[str] = []
    full_map = SettledCompositor.full_map

    def counted(compositor: SettledCompositor) -> Any:
        if compositor.root is not None and compositor._full_map_invalidated:
            rebuilt.append(type(compositor.root).__name__)
        return full_map.fget(compositor)  # type: ignore[attr-defined]

    monkeypatch.setattr(SettledCompositor, "full_map", property(counted))
    app, terminal, frames, release = held_recorded_app()
    try:
        async with app.run_test(size=SIZE) as pilot:
            await first_frame_settled(pilot, app, frames)
            assert not app.main.query_one("#pane-tabs").display  # the case: a hidden strip
            assert len(frames) >= 2, "the first frame and the one after it"
            assert "MainScreen" not in rebuilt, rebuilt
            assert terminal.differences(app.main) == []
            release.set()
            await wait_until(pilot, lambda: checked(app), "every step's checks")
    finally:
        release.set()


async def test_a_key_is_drawn_without_waiting_for_textuals_frame_timer() -> None:
    """Textual updates a screen on a timer (1/60 s, on a fixed grid) that it resumes once the
    screen is idle: a key that opened a step waited up to a frame for its layout to begin
    (issue 12: a key to the screen in tmux, 75-80 ms median before, 51-57 after). What the
    operator's key changed is now laid out and drawn as soon as it has been handled; what
    the cluster changes still waits for the timer (updates as each answer came held the
    start's event loop up to 74 ms). Here the timer is made to wait 60 s, and the app runs
    without pilot's pauses (each runs the timer's update)."""
    app, terminal, frames = recorded_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: checked(app), "every step's checks")
        for _ in range(10):
            await pilot.pause(0.02)
        screen = app.main
        screen._update_timer.stop()
        screen._Screen__update_timer = screen.set_interval(  # type: ignore[attr-defined]
            60, screen._on_timer_update, name="screen_update", pause=True
        )

        async def run_until(condition: Callable[[], bool], turns: int = 300) -> bool:
            for _ in range(turns):  # a bound on work, not a timing assertion
                if condition():
                    return True
                await asyncio.sleep(0.01)
            return condition()

        def on_terminal(text: str) -> bool:
            return any(text in "".join(c for c, _ in row) for row in terminal.cells)

        # The key's first update (its step's heading) is drawn without the timer; the
        # layouts it leads to are too while the input is recent (INPUT_DRAWN_S), and wait
        # for the timer after that (a loaded machine may get there).
        app.post_message(events.Key("3", "3"))
        assert await run_until(lambda: on_terminal("│ 3 · ")), "step 3 before the timer's tick"
        await asyncio.sleep(INPUT_DRAWN_S)  # past the key's updates
        assert await run_until(lambda: not (screen._update_soon or screen._render_after_layout))
        sent = len(frames)
        set_text(screen.query_one("#evidence-path", Label), "a change from the cluster")
        assert not await run_until(lambda: len(frames) > sent, turns=20)
        app.post_message(events.Key("5", "5"))
        assert await run_until(lambda: on_terminal("│ 5 · "))
        assert on_terminal("a change from the cluster")  # drawn with the key's update
