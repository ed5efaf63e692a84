"""Screens whose widgets are styled once, as they mount, and drawn whole only when they must
be. Textual would restyle every widget of a screen twice more when it is first shown: for the
breakpoint classes (-narrow/-wide, -short/-tall) its first Resize adds after the mount, and
on its first ScreenResume (issue 12: the main screen's first frame; issue 9: the validation
view's first opening); and it repainted the whole screen after layouts that had drawn it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any, Self

from textual import events
from textual._compositor import Compositor, ReflowResult
from textual.app import App
from textual.geometry import Region, Size
from textual.screen import Screen
from textual.widget import Widget

BATCH_RETRY_S = 1 / 60  # a render held back by a batch update tries again a frame later
INPUT_DRAWN_S = 0.25  # after a key or a click, updates skip Textual's frame timer this long


def size_classes(screen: Screen[Any], app: App[Any]) -> dict[str, bool]:
    """The breakpoint classes (-narrow/-wide, -short/-tall) Textual gives `screen` at the
    app's size, by its rule: the class of the largest breakpoint the dimension reaches."""
    width, height = app.size
    classes: dict[str, bool] = {}
    horizontal, vertical = screen.HORIZONTAL_BREAKPOINTS, screen.VERTICAL_BREAKPOINTS
    for breakpoints, dimension in (
        ((app.HORIZONTAL_BREAKPOINTS if horizontal is None else horizontal) or [], width),
        ((app.VERTICAL_BREAKPOINTS if vertical is None else vertical) or [], height),
    ):
        reached = [(at, name) for at, name in breakpoints if dimension >= at]
        chosen = max(reached)[1] if reached else None
        classes.update({name: name == chosen for _, name in breakpoints})
    return classes


class SettledCompositor(Compositor):
    """Textual's compositor without its second arrangement of the whole screen. Textual keeps
    a map of where every widget is (its full map) and arranges the screen again for it on the
    next question of where a widget is, once the map is marked stale. It marked it stale when
    a widget off the screen asked for a repaint (one scrolled out of view, a hidden key, as a
    proxy for a widget just mounted) and did not mark it fresh when a layout had just made
    it: so a layout's own widgets asking for their size arranged the screen once more in the
    same call (issue 12: 21-22 such arrangements in a run of the stall benchmark, 72-113 ms
    of the UI thread in all, half of them within a layout)."""

    def reflow(self, parent: Widget, size: Size) -> ReflowResult:
        result = super().reflow(parent, size)
        self._full_map_invalidated = False  # the layout arranged every widget: the map is new
        return result

    def update_widgets(self, widgets: set[Widget]) -> None:
        # Stale only for a widget the map lacks (just mounted, not laid out yet): one off the
        # screen is where the map has it, and a hidden one (or one inside a hidden container:
        # the main screen's tab strip at 120 columns) has no place to find.
        stale = self._full_map_invalidated or any(
            widget not in self._full_map and displayed(widget)
            for widget in widgets - self.visible_widgets.keys()
        )
        self._full_map_invalidated = True  # Textual's own test (a widget off the screen) skipped
        try:
            super().update_widgets(widgets)
        finally:
            self._full_map_invalidated = stale


def displayed(widget: Widget) -> bool:
    """Whether `widget` and every container up to its screen are displayed: a widget the
    layout arranges (Textual's `display` is the widget's own)."""
    node: Any = widget
    while node is not None and not isinstance(node, Screen):
        if not node.display:
            return False
        node = node.parent
    return True


class DrawnOnceScreen(Screen[Any]):
    """A screen whose first showing draws it whole once (mix it in before Textual's screen
    class: `class Dialog(DrawnOnceScreen, ModalScreen[bool])`). Textual followed the layout
    that draws a screen as it is first shown with a repaint of all of it, and, on the next
    idle, with the repaints each of its widgets asked for while it mounted (a text or a
    style set before it had a place), which that layout had already drawn: two more whole
    frames of the terminal (24 KB each at 120x40, and 20-40 ms of the UI thread) for nothing
    (issue 12; tests/tui/test_frames_drawn.py checks that the terminal still shows the
    screen). Later showings are drawn as Textual draws them. While another screen covers it,
    what changes on it is drawn only when it is on top again (`_compositor_refresh`). The
    render that ends a layout waits for the event loop to run what is due
    (`_compositor_refresh`); what must follow a frame asks `call_after_frame`."""

    _first_showing_done = False
    _laid_out_on_resume = False  # Textual's resume handler is laying it out now

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if hasattr(self._compositor, "_full_map_invalidated"):  # the Textual it was written for
            self._compositor = SettledCompositor()

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        if not self._first_showing_done:
            self._first_showing_done = True
            self.screen_layout_refresh_signal.subscribe(self, self._first_layout, immediate=True)
            # Textual's own handler runs next: on a screen not laid out at the app's size it
            # lays it out, which draws all of it (a turn of the loop later), and then asks for
            # a repaint of all of it.
            self._laid_out_on_resume = self.is_attached and self.outer_size != self.app.size
            self.call_later(self._resume_done)  # after Textual's handler, whatever it did
            self.first_showing(event)

    def first_showing(self, event: events.ScreenResume) -> None:
        """On the first showing, before Textual lays the screen out and draws it."""

    def _resume_done(self) -> None:
        self._laid_out_on_resume = False

    def _first_layout(self, _screen: Screen[Any]) -> None:
        """After the screen's first layout. When it draws the whole screen (on top, at the
        app's size, no batch holding the frame back; its render a turn of the loop later),
        every widget on it is drawn as it is: the repaints they asked for while mounting are
        not needed. Any other first layout leaves Textual's repaints as they are."""
        self.screen_layout_refresh_signal.unsubscribe(self)
        drawn = self.is_current and not self.app._batch_count
        if not (drawn and self._compositor.size == self.app.size):
            return  # not drawn whole by this layout: Textual's own repaints stand
        for widget in self._compositor.visible_widgets:
            widget._repaint_required = False
            widget._exchange_repaint_regions()

    _in_layout = False  # Textual's layout is in progress
    _render_after_layout: asyncio.Handle | None = None  # the render waiting, if one is
    _after_frame: tuple[Callable[[], object], ...] = ()  # for after it (call_after_frame)

    def _refresh_layout(self, size: Any = None, scroll: bool = False) -> None:
        self._in_layout = True
        try:
            super()._refresh_layout(size, scroll)
        finally:
            self._in_layout = False

    _input_until = float("-inf")  # the loop's time until which an input's change is drawn
    _update_soon: asyncio.Handle | None = None  # an update asked for by `_on_idle`, waiting

    def input_arrived(self) -> None:
        """The operator pressed a key or clicked (the app calls this): what it changes on
        this screen is drawn without waiting for Textual's next frame (`_on_idle`), the
        layouts that its first one leads to included (INPUT_DRAWN_S)."""
        self._input_until = asyncio.get_running_loop().time() + INPUT_DRAWN_S

    async def _on_idle(self, event: events.Idle) -> None:
        # Textual updates a screen (layout, render) on a timer of 1/60 s that it resumes when
        # the screen goes idle with something to draw, and that ticks on a fixed grid: a key
        # that opened a step waited 0-17 ms for the grid's next tick before its layout began
        # (issue 12, a key to the screen: 77-90 ms in tmux, the median). After the operator's
        # input the update runs as soon as the timers due have run; not in this turn of the
        # loop (a key's handler and the layout in one stretch held it up to 57 ms), and not
        # for what the cluster changes (updates as each answer came, without the timer's
        # pacing, held the start's loop up to 74 ms). Otherwise Textual's own handler, next
        # in line (not called from here: Textual calls each class's handler in turn).
        loop = asyncio.get_running_loop()
        if self._update_soon is not None:
            event.prevent_default()  # drawn by the update already asked for
        elif (
            loop.time() < self._input_until
            and self.is_current
            and not self.app._batch_count
            and (self._layout_required or self._repaint_required or self._dirty_widgets)
        ):
            event.prevent_default()
            self._update_soon = loop.call_later(0, loop.call_soon, self._update_now)

    def _update_now(self) -> None:
        self._update_soon = None
        if self.is_attached:
            self._on_timer_update()  # Textual's update; the layouts it leads to follow as soon

    def call_after_frame(self, callback: Callable[[], object]) -> None:
        """Call `callback` once the screen's next update has been sent to the terminal.
        Textual's `call_after_refresh` runs after the update's layout, and so, where the
        layout's render waits for its turn (`_compositor_refresh`), before that render: work
        meant for after a frame (a plot of 30-50 ms) would then have joined the render."""
        self.call_after_refresh(partial(self._after_frame_or_now, callback))

    def _after_frame_or_now(self, callback: Callable[[], object]) -> None:
        if self._render_after_layout is None:
            callback()
        else:
            self._after_frame = (*self._after_frame, callback)

    def _render_laid_out(self) -> None:
        """The render a layout left waiting, then what waited for it (`call_after_frame`;
        Textual's "after refresh" callbacks run after the layout, as they did)."""
        self._render_after_layout = None
        if self.app._batch_count:
            # Textual sends no frame while a batch update holds them (what is rendered then
            # is lost): once it has let go.
            loop = asyncio.get_running_loop()
            self._render_after_layout = loop.call_later(BATCH_RETRY_S, self._render_laid_out)
            return
        if self.is_attached and self is self.app.screen:
            # Widgets that asked for a repaint since (their Resize handled) are drawn with
            # it: Textual's render forgets the screen's dirty widgets once it has sent it.
            self._compositor.update_widgets(self._dirty_widgets)
            self._compositor_refresh()
        waiting, self._after_frame = self._after_frame, ()
        for callback in waiting:
            self.call_next(callback)

    def _compositor_refresh(self) -> None:
        app = self.app
        if self._render_after_layout is not None and self is app.screen:
            return  # drawn by the render already waiting, with whatever changed since
        if self._in_layout and self is app.screen:
            # Textual renders what a layout moved as the layout ends: one stretch of the UI
            # thread, 15-30 ms of layout and 25-40 ms of render, during which the event loop
            # ran nothing else (issue 12: the screen's longest stalls, 45-96 ms, with a key,
            # a reply or a timer due waiting for both). The render waits for one turn of the
            # loop: a timer (it runs after those already due) that queues it behind what they
            # woke. A screen's first showing too: the validation view's opening was its first
            # layout and render, 34 + 28 ms, in one stretch.
            loop = asyncio.get_running_loop()
            self._render_after_layout = loop.call_later(0, loop.call_soon, self._render_laid_out)
            return
        if self is not app.screen and self in app._background_screens:
            # Covered by another screen: what changed here is not handed up. Textual handed
            # each change up to the screen on top, then marked all of this one for a repaint
            # that its next change handed up whole. A dialog's translucent backdrop is a
            # render of all of the screen under it, so each check or reading while the help
            # or a confirmation was up cost a whole frame and 45 ms of the UI thread (typing
            # a production deployment's name into the confirmation meanwhile). The dimmed
            # screen around a dialog stays as it was when the dialog opened; the resume after
            # the dialog closes draws all of it as it is now.
            self._compositor._dirty_regions.clear()
            self._dirty_widgets.clear()
            return
        super()._compositor_refresh()

    def refresh(
        self,
        *regions: Region,
        repaint: bool = True,
        layout: bool = False,
        recompose: bool = False,
    ) -> Self:
        if self._laid_out_on_resume and not (regions or layout or recompose):
            self._laid_out_on_resume = False
            return self  # the repaint after the first showing's layout: drawn already
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)


class PrestyledScreen(DrawnOnceScreen, Screen[None]):
    """A screen drawn whole once on its first showing (DrawnOnceScreen) that also takes its
    size classes in compose (`take_size_classes()`, before any child mounts) and whose first
    showing skips Textual's restyle of the whole screen: every widget was styled as it
    mounted, a moment before, and every class change since restyled what it touched. Later
    showings restyle as usual.

    Nor is it repainted whole for nothing (`refresh`): for what changed on a screen it hides,
    or with a layout (which redraws what it moves, as each changed widget redraws itself).
    Each was one more whole frame to the terminal (tests/tui/test_frames_drawn.py)."""

    def take_size_classes(self) -> None:
        """Call first thing in compose: then the first Resize restyles nothing (should the
        size be another by then, that Resize corrects the classes as before)."""
        self.update_classes(size_classes(self, self.app), animate=False)

    def first_showing(self, event: events.ScreenResume) -> None:
        event.refresh_styles = False
        self.first_shown()

    def refresh(
        self,
        *regions: Region,
        repaint: bool = True,
        layout: bool = False,
        recompose: bool = False,
    ) -> Self:
        if regions and not (layout or recompose) and self.styles.background.a == 1:
            # Only Textual's compositor passes regions to a screen's refresh: what changed on
            # a screen underneath. This app's screens hand nothing up while covered
            # (DrawnOnceScreen._compositor_refresh); Textual's default screen, under the main
            # one, still does. Nothing shows through an opaque screen, and the repaint it
            # asked for was of all of this one: a whole frame each time.
            return self
        if layout and not regions:
            # A layout redraws each region it moves or resizes, and every widget whose
            # content changed asked for its own repaint. The repaint of all of the screen that
            # comes with it (each mount into the screen, each change of its scrollable size
            # asks for both) was one more whole frame. The app's own refresh still repaints
            # all of it (SkewmitApp.refresh).
            repaint = False
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def first_shown(self) -> None:
        """On the first showing, before Textual lays the screen out and draws it."""
