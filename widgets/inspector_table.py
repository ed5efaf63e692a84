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
    """`show(rows)` replaces the table's rows, keeping the cursor on the same pod."""

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
        self.readings = tuple(rows)
        selected = None
        if self.row_count and 0 <= self.cursor_row < self.row_count:
            selected = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        self.clear()
        mismatch = self.get_component_rich_style("inspector-table--mismatch", partial=True)
        for i, row in enumerate(self.readings):
            style = mismatch if row.mismatch else ""
            key = f"{row.pod}/{i}"
            self.add_row(*(Text(cell, style=style) for cell in reading_cells(row)), key=key)
            if key == selected:
                self.move_cursor(row=i)
        self.set_class(self.mismatches > 0, "-mismatch")
