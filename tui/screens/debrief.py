"""The drill's debrief: which incident it was, the score, and the runbook's path beside the
trainee's (the same Markdown as drill-report.md)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label, Markdown


class DebriefScreen(Screen[None]):
    DEFAULT_CSS = """
    DebriefScreen #debrief-title { padding: 0 1; background: $primary; color: $text; width: 1fr; }
    DebriefScreen #debrief-path { padding: 0 1; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "app.quit", "Quit", id="debrief.quit"),
        Binding("escape", "close", "Back to the incident", id="debrief.close"),
    ]

    def __init__(self, markdown: str, where: str) -> None:
        super().__init__()
        self.markdown = markdown
        self.where = where  # the report's path, or why it was not written

    def compose(self) -> ComposeResult:
        yield Label("Drill over: debrief", id="debrief-title")
        with VerticalScroll():
            yield Markdown(self.markdown, id="debrief")
        yield Label(f"drill-report: {self.where}", id="debrief-path", markup=False)
        yield Footer()

    def action_close(self) -> None:
        self.dismiss(None)
