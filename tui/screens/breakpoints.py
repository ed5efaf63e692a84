"""Screens whose widgets are styled once, as they mount. Textual would restyle every widget of
a screen twice more when it is first shown: for the breakpoint classes (-narrow/-wide,
-short/-tall) its first Resize adds after the mount, and on its first ScreenResume (issue 12:
the main screen's first frame; issue 9: the validation view's first opening)."""

from __future__ import annotations

from typing import Any

from textual import events
from textual.app import App
from textual.screen import Screen


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


class PrestyledScreen(Screen[None]):
    """A screen that takes its size classes in compose (`take_size_classes()`, before any
    child mounts) and whose first showing skips Textual's restyle of the whole screen: every
    widget was styled as it mounted, a moment before, and every class change since restyled
    what it touched. Later showings restyle as usual."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown = False  # shown once already

    def take_size_classes(self) -> None:
        """Call first thing in compose: then the first Resize restyles nothing (should the
        size be another by then, that Resize corrects the classes as before)."""
        self.update_classes(size_classes(self, self.app), animate=False)

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        if not self._shown:
            self._shown = True
            event.refresh_styles = False
            self.first_shown()

    def first_shown(self) -> None:
        """On the first showing, before Textual lays the screen out and draws it."""
