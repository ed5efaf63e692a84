"""The footer, rebuilt only when the keys it shows change.

Textual's `Footer` removes and mounts all its keys whenever any binding refresh is asked for,
and the app asks after every poll (a step's actions may have become available): a layout of
the whole screen and a repaint of the footer row every few seconds while nothing changed.
This one compares what it would show with what it shows and skips the rebuild when equal.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.reactive import Reactive
from textual.widgets import Footer


class QuietFooter(Footer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shown: tuple[object, ...] | None = None
        self.rebuilds = 0

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            # A key starts compact and the footer's binding then makes it not: two restyles
            # of each key as it mounts (issue 12: the first frame). Born as the footer is
            # (the palette's key is not bound to the footer: it stays as it starts).
            compact = getattr(type(widget), "compact", None)
            if isinstance(compact, Reactive) and not widget.has_class("-command-palette"):
                widget.set_reactive(compact, self.compact)
            yield widget

    def _keys(self) -> tuple[object, ...]:
        return (
            self.compact,
            self.show_command_palette,
            tuple(
                (key, b.action, b.description, b.key_display, enabled, tooltip)
                for key, (_, b, enabled, tooltip) in self.screen.active_bindings.items()
                if b.show
            ),
        )

    async def recompose(self) -> None:
        if not self.is_attached:
            return
        keys = self._keys()
        if keys == self._shown and self.children:
            return
        self._shown = keys
        self.rebuilds += 1
        await super().recompose()
