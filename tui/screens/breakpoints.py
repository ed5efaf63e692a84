"""The breakpoint classes a screen is given at the app's size, set before its widgets mount:
Textual adds them on the screen's first Resize, after the mount, and restyles every widget
for them (issue 12: the first frame; issue 9: the validation view's first opening)."""

from __future__ import annotations

from typing import Any

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
