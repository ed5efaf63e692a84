"""The action log: every change skewmit applied or reverted this incident, newest first.

`#` is the change's number in this incident (1 = the first); the journal's sequence number,
the full time and the note are in `entry_detail`, shown under the table. The cursor follows the
newest entry unless the operator moved it; `r` on the highlighted entry posts
`ActionLog.RevertRequested`, and on one that cannot be reverted says why. Each time the
highlighted entry changes (or the rows do) it posts `ActionLog.EntryHighlighted`, so the app
knows what `r` would revert without reading the table back.

Rows are `services.models.JournalAction`, as services.journal_actions lists the journal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from services.models import JournalAction
from services.sanitize import terminal_line

STATUS_MARKS = {"applied": "✓", "reverted": "↶", "failed": "✗", "refused": "✗", "unverified": "?"}


class ActionLog(DataTable[Text]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "revert", "Revert", id="action-log.revert"),
    ]
    COMPONENT_CLASSES = {"action-log--failed", "action-log--reverted"}
    DEFAULT_CSS = """
    ActionLog { height: 1fr; scrollbar-size-vertical: 1; }
    ActionLog > .action-log--failed { color: $error; }
    ActionLog > .action-log--reverted { color: $text-muted; }
    """
    # Fixed narrow columns so the title keeps the rest of the pane (31 cells at 120x40).
    NUMBER_WIDTH = 2
    WHEN_WIDTH = 5
    MIN_TITLE_WIDTH = 12

    @dataclass
    class RevertRequested(Message):
        log: ActionLog
        entry: JournalAction

        @property
        def control(self) -> ActionLog:
            return self.log

    @dataclass
    class EntryHighlighted(Message):
        """The entry `r` would act on now (None: no rows), and why it cannot ("" if it can)."""

        log: ActionLog
        entry: JournalAction | None
        why_not: str

        @property
        def control(self) -> ActionLog:
            return self.log

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.entries: tuple[JournalAction, ...] = ()
        self.read_only = False  # set by the app: reverts are then unavailable

    def on_mount(self) -> None:
        self.add_column("#", key="number", width=self.NUMBER_WIDTH)
        self.add_column("When", key="when", width=self.WHEN_WIDTH)
        self.add_column("Action", key="title", width=self._title_width())
        # No note column: it could only sit past the pane's edge, where it put a horizontal
        # scrollbar under the log (even an empty one). The note is in full under the table.
        self._post_highlighted()

    def _title_width(self) -> int:
        # Each column pads one cell either side; the vertical scrollbar may take one more.
        fixed = self.NUMBER_WIDTH + self.WHEN_WIDTH + 2 * 3 + 1
        return max(self.MIN_TITLE_WIDTH, self.size.width - fixed)

    def on_resize(self) -> None:
        column = self.columns.get(ColumnKey("title"))
        if column is not None and column.width != self._title_width():
            column.width = self._title_width()
            # The table measures its columns as rows are added: add them again, or the
            # header and the rows keep the width the table had when it mounted.
            self._fill(self._kept_seq())

    def number(self, row: int) -> int:
        """The change's number in this incident for a row (rows are newest first)."""
        return len(self.entries) - row

    @property
    def selected(self) -> JournalAction | None:
        if not self.entries or not 0 <= self.cursor_row < len(self.entries):
            return None
        return self.entries[self.cursor_row]

    def selected_detail(self) -> str:
        entry = self.selected
        if entry is None:
            return ""
        return entry_detail(entry, self.number(self.cursor_row), self.revertible(entry))

    def revertible(self, entry: JournalAction) -> bool:
        return entry.revertible and not self.read_only

    def show(self, entries: Sequence[JournalAction]) -> None:
        if tuple(entries) == self.entries and self.row_count == len(self.entries):
            return  # the journal said nothing new: keep the rows (and the cursor) as they are
        kept = self._kept_seq()
        self.entries = tuple(entries)
        self._fill(kept)
        self.refresh_bindings()
        self._post_highlighted()

    def _kept_seq(self) -> int | None:
        # The cursor stays on an entry the operator moved to; otherwise it is on the newest,
        # so `r` never lands on an old change by default.
        selected = self.selected
        return selected.seq if selected is not None and self.cursor_row > 0 else None

    def _fill(self, kept: int | None) -> None:
        """The rows, from `entries`, with the cursor on the entry `kept` when it is one."""
        self.clear()
        failed = self.get_component_rich_style("action-log--failed", partial=True)
        reverted = self.get_component_rich_style("action-log--reverted", partial=True)
        for i, entry in enumerate(self.entries):
            style = {"failed": failed, "refused": failed, "reverted": reverted}.get(
                entry.status, ""
            )
            cells = (
                str(self.number(i)),
                entry.when[:5],
                f"{STATUS_MARKS.get(entry.status, '?')} {entry.title}",
            )
            # Titles and notes quote the cluster (verify messages, names): one safe line each.
            self.add_row(
                *(
                    Text(terminal_line(c, 500), style=style, no_wrap=True, overflow="ellipsis")
                    for c in cells
                ),
                key=str(entry.seq),
            )
            if entry.seq == kept:
                self.move_cursor(row=i)

    def _post_highlighted(self) -> None:
        self.post_message(self.EntryHighlighted(self, self.selected, self.why_not_revertible()))

    def why_not_revertible(self) -> str:
        """Why `r` cannot revert the highlighted entry ("" when it can)."""
        entry = self.selected
        if entry is None:
            return "nothing to revert: no change has been applied in this incident"
        if self.read_only:
            return "read-only mode: nothing is reverted (started --read-only)"
        if entry.status == "reverted":
            return f"#{self.number(self.cursor_row)} is already reverted ({entry.note})"
        if not entry.revertible:
            return f"#{self.number(self.cursor_row)} ({entry.status}) has nothing to revert"
        return ""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "revert":
            return None if self.why_not_revertible() else True
        return True

    def action_revert(self) -> None:
        entry = self.selected
        if entry is not None and self.revertible(entry):
            self.post_message(self.RevertRequested(self, entry))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.refresh_bindings()
        self._post_highlighted()


def entry_detail(entry: JournalAction, number: int, revertible: bool) -> str:
    """The highlighted entry in full: its number and whole title first, then its journal
    entry, time and status (and the revert key when it applies), then the note."""
    meta = f"journal entry {entry.seq} · {entry.when} · {entry.status}"
    if revertible:
        meta += " · r reverts it"
    # Titles and notes quote the cluster: each one safe line.
    lines = [terminal_line(f"#{number} {entry.title}", 500), terminal_line(meta, 200)]
    if entry.note:
        lines.append(terminal_line(entry.note, 500))
    return "\n".join(lines)
