"""The action log: every change skewmit applied or reverted this incident, newest first.

Each revertible entry shows its revert key; `r` on the highlighted entry (or a click on it
followed by `r`) posts `ActionLog.RevertRequested` with the journal sequence number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from services.sanitize import terminal_line

STATUS_MARKS = {"applied": "✓", "reverted": "↶", "failed": "✗", "refused": "✗", "unverified": "?"}


@dataclass(frozen=True)
class ActionLogEntry:
    seq: int  # the journal entry a revert names
    when: str  # HH:MM:SS
    title: str
    status: str  # applied | reverted | failed | refused | unverified
    note: str = ""
    revertible: bool = False


class ActionLog(DataTable[Text]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "revert", "Revert", id="action-log.revert"),
    ]
    COMPONENT_CLASSES = {"action-log--failed", "action-log--reverted"}
    DEFAULT_CSS = """
    ActionLog { height: 1fr; }
    ActionLog > .action-log--failed { color: $error; }
    ActionLog > .action-log--reverted { color: $text-muted; }
    """

    @dataclass
    class RevertRequested(Message):
        log: ActionLog
        entry: ActionLogEntry

        @property
        def control(self) -> ActionLog:
            return self.log

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.entries: tuple[ActionLogEntry, ...] = ()
        self.read_only = False  # set by the app: reverts are then unavailable

    def on_mount(self) -> None:
        self.add_column("#", key="seq")
        self.add_column("When", key="when")
        self.add_column("", key="mark")
        self.add_column("Action", key="title")
        self.add_column("Revert", key="revert")
        self.add_column("Note", key="note")

    @property
    def selected(self) -> ActionLogEntry | None:
        if not self.entries or not 0 <= self.cursor_row < len(self.entries):
            return None
        return self.entries[self.cursor_row]

    def show(self, entries: Sequence[ActionLogEntry]) -> None:
        previous = self.selected.seq if self.selected else None
        self.entries = tuple(entries)
        self.clear()
        failed = self.get_component_rich_style("action-log--failed", partial=True)
        reverted = self.get_component_rich_style("action-log--reverted", partial=True)
        for i, entry in enumerate(self.entries):
            style = {"failed": failed, "refused": failed, "reverted": reverted}.get(
                entry.status, ""
            )
            revert = "[r] revert" if entry.revertible and not self.read_only else ""
            cells = (
                str(entry.seq),
                entry.when,
                STATUS_MARKS.get(entry.status, "?"),
                entry.title,
                revert,
                entry.note,
            )
            # Titles and notes quote the cluster (verify messages, names): one safe line each.
            self.add_row(
                *(Text(terminal_line(c, 500), style=style) for c in cells), key=str(entry.seq)
            )
            if entry.seq == previous:
                self.move_cursor(row=i)
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "revert":
            entry = self.selected
            return True if entry and entry.revertible and not self.read_only else None
        return True

    def action_revert(self) -> None:
        entry = self.selected
        if entry is not None and entry.revertible and not self.read_only:
            self.post_message(self.RevertRequested(self, entry))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.refresh_bindings()
