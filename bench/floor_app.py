"""The floor for the TUI figures: a minimal Textual app with a header, three sparklines, a
50-row table and a footer, refreshed at 1 Hz. Anything skewmit draws costs at least this.
Keys 1-6 put "N · bench floor" in the header: the floor of a key press -> screen
(bench/latency_bench.py).

    .venv/bin/python bench/floor_app.py
"""

from __future__ import annotations

import random

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Footer, Header, Sparkline

ROWS = 50


class FloorApp(App[None]):
    TITLE = "bench floor"
    BINDINGS = [("q", "quit", "Quit")] + [
        (str(n), f"heading({n})", f"Step {n}") for n in range(1, 7)
    ]
    CSS = "Sparkline { height: 2; }"

    def compose(self) -> ComposeResult:
        yield Header()
        for i in range(3):
            yield Sparkline([random.random() for _ in range(30)], id=f"s{i}")
        yield DataTable(id="pods")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for name in ("pod", "node", "gpu", "util"):
            table.add_column(name, key=name)
        for i in range(ROWS):
            table.add_row(f"pod-{i:04d}", f"node-{i % 7}", "H100-80GB", "0%", key=str(i))
        self.set_interval(1.0, self.tick)

    def action_heading(self, n: int) -> None:
        self.title = f"{n} · bench floor"

    def tick(self) -> None:
        for i in range(3):
            spark = self.query_one(f"#s{i}", Sparkline)
            spark.data = [*list(spark.data or [])[1:], random.random()]
        table = self.query_one(DataTable)
        for i in range(ROWS):
            table.update_cell(str(i), "util", f"{random.randint(0, 100)}%")


if __name__ == "__main__":
    FloorApp().run()
