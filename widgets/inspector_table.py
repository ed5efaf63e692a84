"""The pod/GPU inspector: pod -> node -> node labels -> nvidia-smi -> DCGM, one row per GPU.

Rows whose GPU class differs from the expected one are marked ✗ and drawn in the theme's
error colour (component class `inspector-table--mismatch`), so they read without colour too.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

from services.models import GpuReading
from services.sanitize import terminal_line

COLUMNS = (
    ("", "mark"),
    ("Pod", "pod"),
    ("Node", "node"),
    ("Class", "class"),
    ("Expected", "expected"),
    ("Node label", "label"),
    ("nvidia-smi", "smi"),
    ("Memory", "memory"),
    ("DCGM", "dcgm"),
    ("Note", "note"),
)


def reading_cells(row: GpuReading) -> tuple[str, ...]:
    """The row's cells; node labels, nvidia-smi and DCGM text come from the cluster, so every
    cell is one sanitised line."""
    memory = f"{row.smi_memory_mib / 1024:.0f}GiB" if row.smi_memory_mib else "-"
    cells = (
        "✗" if row.mismatch else "✓",
        row.pod,
        row.node or "-",
        row.gpu_class or "?",
        row.expected_class or "?",
        row.label_product or "-",
        row.smi_name or "-",
        memory,
        row.dcgm_model or "-",
        row.note,
    )
    return tuple(terminal_line(cell, 200) for cell in cells)


class InspectorTable(DataTable[Text]):
    """`show(rows)` updates the table's rows, keeping the cursor on the same pod."""

    COMPONENT_CLASSES = {"inspector-table--mismatch", "inspector-table--muted"}
    DEFAULT_CSS = """
    InspectorTable { height: 1fr; }
    InspectorTable > .inspector-table--mismatch { color: $error; text-style: bold; }
    InspectorTable > .inspector-table--muted { color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.readings: tuple[GpuReading, ...] = ()

    def on_mount(self) -> None:
        for label, key in COLUMNS:
            self.add_column(label, key=key)

    @property
    def mismatches(self) -> int:
        return sum(1 for r in self.readings if r.mismatch)

    def show(self, rows: Sequence[GpuReading]) -> None:
        """Update in place when the same pods come back (a poll), so the cursor and the
        scroll position (nvidia-smi, DCGM and Note are off to the right) stay put; rebuild,
        still keeping both, when the pods changed."""
        self.readings = tuple(rows)
        mismatch = self.get_component_rich_style("inspector-table--mismatch", partial=True)
        keys = [f"{row.pod}/{i}" for i, row in enumerate(self.readings)]
        cells = [
            [Text(cell, style=mismatch if row.mismatch else "") for cell in reading_cells(row)]
            for row in self.readings
        ]
        if keys == [key.value for key in self.rows]:
            for key, row_cells in zip(keys, cells, strict=True):
                for (_, column), cell in zip(COLUMNS, row_cells, strict=True):
                    old = self.get_cell(key, column)
                    if (old.plain, old.style) != (cell.plain, cell.style):
                        self.update_cell(key, column, cell, update_width=True)
        else:
            self._rebuild(keys, cells)
        self.set_class(self.mismatches > 0, "-mismatch")

    def _rebuild(self, keys: list[str], cells: list[list[Text]]) -> None:
        selected = None
        if self.row_count and 0 <= self.cursor_row < self.row_count:
            selected = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        scroll = (self.scroll_x, self.scroll_y)
        self.clear()
        for i, (key, row_cells) in enumerate(zip(keys, cells, strict=True)):
            self.add_row(*row_cells, key=key)
            if key == selected:
                self.move_cursor(row=i, scroll=False)
        self.call_after_refresh(self.scroll_to, *scroll, animate=False)
