"""The pod/GPU inspector: pod -> node -> node labels -> nvidia-smi -> DCGM, one row per GPU.

Rows whose GPU class differs from the expected one are marked ✗ and drawn in the theme's
error colour (component class `inspector-table--mismatch`), so they read without colour too.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

from services.models import SMI_NOT_READ_YET, GpuReading
from services.sanitize import terminal_line

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
    def selected(self) -> GpuReading | None:
        """The highlighted row's reading."""
        if 0 <= self.cursor_row < len(self.readings):
            return self.readings[self.cursor_row]
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
        scroll position (nvidia-smi, DCGM and Note are off to the right) stay put; rebuild,
        still keeping both, when the pods changed."""
        self.readings = tuple(rows)
        mismatch = self.get_component_rich_style("inspector-table--mismatch", partial=True)
        keys = [f"{row.pod}/{i}" for i, row in enumerate(self.readings)]
        prefix = common_prefix([row.pod for row in self.readings])
        cells = [
            [
                Text(cell, style=mismatch if row.mismatch else "")
                for cell in reading_cells(row, prefix)
            ]
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
