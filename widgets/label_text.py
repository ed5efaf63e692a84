"""Showing new text in a label without repainting more than the label.

`Static.update` lays out the whole screen by default, since new text may resize the label.
While watching, most updates leave the size as it was (a clock ticking, a figure changing
digits): `set_text` skips an update that changes nothing and lays out only when the label's
size can change.
"""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from textual.content import Content
from textual.widgets import ProgressBar, Static


def _width(text: str) -> int:
    # rich's cell_len caches every string it measures: a clock's new text each second would
    # fill its cache; ASCII needs no table.
    return len(text) if text.isascii() else cell_len(text)


def _fixed_box(label: Static) -> bool:
    width, height = label.styles.width, label.styles.height
    return width is not None and not width.is_auto and height is not None and not height.is_auto


def set_text(label: Static, text: str) -> bool:
    """Show `text` in `label` (plain text, as given); False when it already showed it."""
    old = label.content
    if isinstance(old, str) and old == text:
        return False
    same_size = (
        isinstance(old, str) and _width(old) == _width(text) and old.count("\n") == text.count("\n")
    )
    label.update(text, layout=not (same_size or _fixed_box(label)))
    return True


# A waiting bar stays still this long after it is mounted: the opening's first answers come
# well within it, and the pulse's 15 frames a second took the interpreter lock from the
# opening's own work, the cluster client's import and the first checks (issue 12). A cluster
# slower than that sees the bar pulse: skewmit is still waiting, not stuck.
PULSE_AFTER_S = 1.0


def waiting_bar(bar: ProgressBar, *, pulse: bool = True) -> None:
    """A bar with nothing to measure yet: the indeterminate animation (15 frames a second),
    or an empty bar when the app's animations are off (the low-bandwidth mode) or `pulse`
    is False (not yet: PULSE_AFTER_S)."""
    if not pulse or bar.app.animation_level == "none":
        bar.update(total=1, progress=0)
    else:
        bar.update(total=None)


def set_content(widget: Static, content: Content) -> bool:
    """Show styled `content` in `widget` unless it already shows it; a layout pass only when
    the wrapped text takes a different number of lines at the widget's width."""
    old = widget.content
    if isinstance(old, Content) and (old.plain, old.spans) == (content.plain, content.spans):
        return False
    width = widget.content_size.width
    rules: Any = widget.styles  # what Static measures its content with
    same_height = (
        isinstance(old, Content)
        and width > 0
        and old.get_height(rules, width) == content.get_height(rules, width)
    )
    widget.update(content, layout=not same_height)
    return True
