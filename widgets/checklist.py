"""The runbook checklist: six steps, each with its state and finding counts.

Keyboard (up/down) and mouse both move the highlight; the highlighted step is the one whose
detail the app shows. State is a CSS class on each row, so colours come from the theme.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.message import Message
from textual.widgets import Label, ListItem, ListView

from services.models import Step
from services.sanitize import terminal_line
from widgets.label_text import set_text

# clear: the checks found nothing; done: an action of the step was applied and it is clear.
STATES = (
    "pending",
    "checking",
    "findings",
    "clear",
    "running",
    "done",
    "skipped",
    "failed",
    "reverted",  # every change the step made was reverted
    "attention",  # settled, but validation still fails on a check that points here
)
# A glyph per state so the list reads the same without colour (NO_COLOR, screen readers).
GLYPHS = {
    "pending": "·",
    "checking": "…",
    "findings": "!",
    "clear": "✓",
    "running": "▶",
    "done": "✓",
    "skipped": "-",
    "failed": "✗",
    "reverted": "↶",
    "attention": "‼",
}
# The state column is 8 wide; a longer state's word for it on screen.
SHOWN = {"attention": "suspect"}


@dataclass(frozen=True)
class ChecklistRow:
    """What one checklist line shows."""

    step: Step
    number: int
    title: str
    state: str = "pending"  # one of STATES
    errors: int = 0
    warnings: int = 0

    @property
    def counts(self) -> str:
        total = self.errors + self.warnings
        return str(total) if total else ""


class StepItem(ListItem):
    """One step of the checklist."""

    DEFAULT_CSS = """
    StepItem { height: 1; }
    StepItem > Label { width: 1fr; }
    """

    def __init__(self, row: ChecklistRow) -> None:
        super().__init__(id=f"step-{row.step.value}")
        self.row = row
        self._shown: ChecklistRow | None = None  # what the label shows once mounted

    def compose(self) -> ComposeResult:
        yield Label(self._text(), markup=False)

    def _text(self) -> str:
        row = self.row
        return terminal_line(
            f"{GLYPHS.get(row.state, '?')} {row.number} {row.title:<13.13} "
            f"{SHOWN.get(row.state, row.state):>8} {row.counts:>2}"
        )

    def show(self, row: ChecklistRow) -> None:
        if row == self._shown:
            return  # a poll that changed nothing repaints nothing
        self.row = row
        # One restyle for the whole change, and none before the row is in the DOM (it is
        # styled as it mounts): a class at a time restyled it up to 11 times (issue 12).
        classes = {f"-{state}": row.state == state for state in STATES}
        classes["-errors"] = row.errors > 0
        self.update_classes(classes, update=self.is_attached, animate=False)
        if self.is_mounted:
            set_text(self.query_one(Label), self._text())
            self._shown = row
        self.tooltip = terminal_line(f"{row.title}: {row.state}") + (
            f", {row.errors} error(s), {row.warnings} warning(s)" if row.counts else ""
        )


class Checklist(ListView):
    """The six runbook steps. Posts `Checklist.StepHighlighted` when the highlight moves."""

    DEFAULT_CSS = """
    Checklist { height: auto; max-height: 8; }
    """

    @dataclass
    class StepHighlighted(Message):
        checklist: Checklist
        step: Step

        @property
        def control(self) -> Checklist:
            return self.checklist

    def __init__(self, rows: Sequence[ChecklistRow], *, id: str | None = None) -> None:
        self._items = {row.step: StepItem(row) for row in rows}
        super().__init__(*self._items.values(), id=id)
        for row in rows:
            self._items[row.step].show(row)

    def row(self, step: Step) -> ChecklistRow:
        return self._items[step].row

    def update_row(self, row: ChecklistRow) -> None:
        self._items[row.step].show(row)

    @property
    def selected_step(self) -> Step | None:
        item = self.highlighted_child
        return item.row.step if isinstance(item, StepItem) else None

    def select_step(self, step: Step) -> None:
        steps = list(self._items)
        if step in steps:
            self.index = steps.index(step)

    def on_list_view_highlighted(self, event: ListView.Highlighted) -> None:
        event.stop()
        if isinstance(event.item, StepItem):
            self.post_message(self.StepHighlighted(self, event.item.row.step))

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        event.stop()
        if isinstance(event.item, StepItem):
            self.post_message(self.StepHighlighted(self, event.item.row.step))
