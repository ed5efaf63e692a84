"""The pod/GPU inspector: pod -> node -> node labels -> nvidia-smi -> DCGM, one row per GPU.

Rows whose GPU class differs from the expected one are marked ✗ and drawn in the theme's
error colour (component class `inspector-table--mismatch`), so they read without colour too.

The table holds one page of PAGE_ROWS rows, not the whole fleet: on `large` (1,000 pods) a
table of every row cost seconds to build and kept thousands of cells and render caches alive
for the garbage collector to walk on the UI thread. The cursor moves on to the next page past
the last row (down, page down) and back before the first (up, page up); ctrl+home/ctrl+end go
to the first and last pod. The pods that need attention (wrong class, then not read yet) come
first, on one page too: at 120x40 the list shows three rows above the detail pane, and a
wrong-class pod below them would be out of sight. With more than one page the Pod column's
header says which rows are shown ("Pod 1-100/1000").
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from services.models import SMI_NOT_READ_YET, GpuReading
from services.sanitize import terminal_line

PAGE_ROWS = 100  # rows in the table at once; a page is a few screens, never the fleet
# The list fits the pane at 80 and 120 columns; the rest of a row (labels, nvidia-smi, DCGM,
# why) is the detail under it, for the highlighted pod (`detail_text`).
COLUMNS = (
    ("", "mark"),
    ("Pod", "pod"),
    ("Node", "node"),
    ("Class", "class"),
)


def common_prefix(names: Sequence[str]) -> str:
    """What every pod name shares up to its last dash ("llm-serve-7456b8d59d-"): the list
    shows the rest, the detail the whole name. "" for fewer than two names."""
    if len(names) < 2:
        return ""
    first, last = min(names), max(names)
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[: first.rfind("-", 0, size) + 1]


def mark_of(row: GpuReading) -> str:
    """✗ on the wrong class; … while its node's nvidia-smi is not read yet (not a pass)."""
    return "✗" if row.mismatch else ("…" if SMI_NOT_READ_YET in row.note else "✓")


def attention_order(rows: Sequence[GpuReading]) -> tuple[GpuReading, ...]:
    """Wrong class first, then not read yet, then the rest, each in the given order."""
    return tuple(sorted(rows, key=lambda row: "✗…".find(mark_of(row)) % 3))


def page_header(start: int, shown: int, total: int) -> str:
    """The Pod column's label: "Pod" on one page, else which rows the page holds."""
    return "Pod" if total <= shown and start == 0 else f"Pod {start + 1}-{start + shown}/{total}"


def reading_cells(row: GpuReading, prefix: str = "") -> tuple[str, ...]:
    """The row's list cells; node and class text come from the cluster, so every cell is one
    sanitised line."""
    pod = "…" + row.pod.removeprefix(prefix) if prefix and row.pod.startswith(prefix) else row.pod
    cells = (mark_of(row), pod, row.node or "-", row.gpu_class or "?")
    return tuple(terminal_line(cell, 200) for cell in cells)


def detail_text(row: GpuReading) -> str:
    """Everything about one pod's GPU, one fact per line, sanitised (cluster text)."""
    memory = f"{row.smi_memory_mib / 1024:.0f} GiB" if row.smi_memory_mib else "-"
    mark = mark_of(row)
    source = row.label_source.removeprefix("label ") or "no GPU label"
    facts = (  # short lines: the pane is about 48 columns wide at 80x24
        ("pod", row.pod),
        ("node", row.node or "-"),
        ("class", f"{row.gpu_class or '?'} {mark} (expected {row.expected_class or '?'})"),
        ("label", f"{row.label_product or '-'} ({source})"),
        ("nvidia-smi", f"{row.smi_name or '-'}, {memory}"),
        ("DCGM", row.dcgm_model or "-"),
    )
    lines = [f"{name:<10} {terminal_line(value, 200)}" for name, value in facts]
    if row.note:
        lines.append(f"{'why':<10} {terminal_line(row.note, 300)}")
    return "\n".join(lines)


class InspectorTable(DataTable[Text]):
    """`show(rows)` updates the table, one page at a time, keeping the cursor on the same pod
    and the page the operator is on."""

    COMPONENT_CLASSES = {"inspector-table--mismatch", "inspector-table--muted"}
    DEFAULT_CSS = """
    InspectorTable { height: 1fr; }
    InspectorTable > .inspector-table--mismatch { color: $error; text-style: bold; }
    InspectorTable > .inspector-table--muted { color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None, page_rows: int = PAGE_ROWS) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.page_rows = page_rows
        self.readings: tuple[GpuReading, ...] = ()  # every row, in the order shown
        self.page = 0
        self._given: tuple[GpuReading, ...] = ()
        self._prefix = ""
        self.operator_moved = False  # a key, a click or a page change put the cursor

    def on_mount(self) -> None:
        for label, key in COLUMNS:
            self.add_column(label, key=key)

    @property
    def page_start(self) -> int:
        return self.page * self.page_rows

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.readings) // self.page_rows))

    @property
    def page_readings(self) -> tuple[GpuReading, ...]:
        """The rows in the table now (the current page)."""
        return self.readings[self.page_start : self.page_start + self.page_rows]

    @property
    def selected(self) -> GpuReading | None:
        """The highlighted row's reading."""
        shown = self.page_readings
        if 0 <= self.cursor_row < min(len(shown), self.row_count):
            return shown[self.cursor_row]
        return None

    def selected_detail(self) -> str:
        """The detail pane's text for the highlighted pod ("" when there is none)."""
        row = self.selected
        return detail_text(row) if row is not None else ""

    @property
    def mismatches(self) -> int:
        return sum(1 for r in self.readings if r.mismatch)

    def show(self, rows: Sequence[GpuReading]) -> None:
        """Update in place when the same pods come back (a poll), so the cursor and the
        scroll position stay put; rebuild the page, still keeping both, when they changed.
        A poll that brings the same readings changes nothing."""
        given = tuple(rows)
        if given == self._given and self.row_count == len(self.page_readings):
            return
        self._given = given
        # The pod under the cursor once the operator has put it there; until then the cursor
        # stays on the top row, the most urgent one (the first list is in name order, and
        # the wrong-class pods that the verdicts move up would pass under a cursor that
        # followed its pod off the rows on screen).
        selected = self.selected if self.operator_moved else None
        self.readings = attention_order(given)
        self._prefix = common_prefix([row.pod for row in self.readings])
        self.page = min(self.page, self.pages - 1)
        self._render_page(selected.pod if selected is not None else None)

    def go_to_page(self, page: int, cursor: int) -> None:
        """Show page `page` (clamped) with the cursor on its row `cursor` (-1: the last)."""
        self.operator_moved = True
        self.page = max(0, min(page, self.pages - 1))
        self._render_page(None, cursor)
        self.scroll_to(y=0 if cursor == 0 else self.max_scroll_y, animate=False)

    def _render_page(self, keep_pod: str | None, cursor: int | None = None) -> None:
        shown = self.page_readings
        mismatch = self.get_component_rich_style("inspector-table--mismatch", partial=True)
        keys = [f"{row.pod}/{self.page_start + i}" for i, row in enumerate(shown)]
        cells = [
            [
                Text(cell, style=mismatch if row.mismatch else "")
                for cell in reading_cells(row, self._prefix)
            ]
            for row in shown
        ]
        header = page_header(self.page_start, len(shown), len(self.readings))
        column = self.columns.get(ColumnKey(COLUMNS[1][1]))
        if column is not None and column.label.plain != header:
            column.label = Text(header)
            column.content_width = max(column.content_width, len(header))
            self._require_update_dimensions = True
            self.refresh()
        if cursor is None and keys == [key.value for key in self.rows]:
            for key, row_cells in zip(keys, cells, strict=True):
                for (_, column_key), cell in zip(COLUMNS, row_cells, strict=True):
                    old = self.get_cell(key, column_key)
                    if (old.plain, old.style) != (cell.plain, cell.style):
                        self.update_cell(key, column_key, cell, update_width=True)
            return
        self._rebuild(keys, cells, keep_pod, cursor)

    def _rebuild(
        self, keys: list[str], cells: list[list[Text]], keep_pod: str | None, cursor: int | None
    ) -> None:
        scroll = (self.scroll_x, self.scroll_y)
        row = self.cursor_row
        self.clear()
        for key, row_cells in zip(keys, cells, strict=True):
            self.add_row(*row_cells, key=key)
        pods = [key.rsplit("/", 1)[0] for key in keys]
        if cursor is not None:
            row = cursor if cursor >= 0 else len(keys) - 1
        elif keep_pod in pods:
            row = pods.index(keep_pod)
        if keys:
            self.move_cursor(row=max(0, min(row, len(keys) - 1)), scroll=cursor is not None)
        if cursor is None:
            self.call_after_refresh(self.scroll_to, *scroll, animate=False)

    def on_click(self) -> None:
        self.operator_moved = True

    # -- moving past a page's ends -----------------------------------------------------------

    def _at_end(self) -> bool:
        return self.cursor_row >= self.row_count - 1 and self.page < self.pages - 1

    def _at_start(self) -> bool:
        return self.cursor_row <= 0 and self.page > 0

    def action_cursor_down(self) -> None:
        self.operator_moved = True
        if self._at_end():
            self.go_to_page(self.page + 1, 0)
        else:
            super().action_cursor_down()

    def action_cursor_up(self) -> None:
        self.operator_moved = True
        if self._at_start():
            self.go_to_page(self.page - 1, -1)
        else:
            super().action_cursor_up()

    def action_page_down(self) -> None:
        self.operator_moved = True
        if self._at_end():
            self.go_to_page(self.page + 1, 0)
        else:
            super().action_page_down()

    def action_page_up(self) -> None:
        self.operator_moved = True
        if self._at_start():
            self.go_to_page(self.page - 1, -1)
        else:
            super().action_page_up()

    def action_scroll_top(self) -> None:
        self.operator_moved = True
        if self.page > 0:
            self.go_to_page(0, 0)
        else:
            super().action_scroll_top()

    def action_scroll_bottom(self) -> None:
        self.operator_moved = True
        if self.page < self.pages - 1:
            self.go_to_page(self.pages - 1, -1)
        else:
            super().action_scroll_bottom()
