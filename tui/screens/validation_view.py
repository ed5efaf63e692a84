"""The full-screen validation view (`v`): large charts against their baseline bands, the
validation gate with its countdown, and the rollout, for a room watching a shared screen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer

from services.models import MetricSeries, RolloutProgress, Verdict
from tui.session import series_named
from widgets.baseline_chart import BaselineChart
from widgets.header_bar import HeaderBar, HeaderState
from widgets.rollout_bar import RolloutBar
from widgets.validation_panel import ValidationPanel, VerdictLost


class ValidationScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v,escape", "close", "Back", id="validation-view.close"),
    ]

    def __init__(self, header: HeaderState) -> None:
        super().__init__(id="validation-view")
        self.header_state = header

    def compose(self) -> ComposeResult:
        yield HeaderBar(self.header_state, id="vv-header")
        with Horizontal(id="vv-body"):
            with Grid(id="vv-grid"):
                yield BaselineChart("latency", unit_label="s", id="vv-latency")
                yield BaselineChart("tokens/sec", id="vv-tokens")
                yield BaselineChart("GPU utilisation", unit_label="%", id="vv-gpu-util")
                yield BaselineChart("GPU memory", unit_label="MiB", id="vv-gpu-mem")
            with Vertical(id="vv-side"):
                yield ValidationPanel(id="vv-validation")
                yield RolloutBar(id="vv-rollout")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#vv-validation").border_title = "Validation gate"
        self.query_one("#vv-rollout").border_title = "Rollout"

    def show_metrics(self, series: Sequence[MetricSeries]) -> None:
        self.query_one("#vv-latency", BaselineChart).show(series_named(series, "p95", "p99"))
        self.query_one("#vv-tokens", BaselineChart).show(series_named(series, "tokens_per_s"))
        self.query_one("#vv-gpu-util", BaselineChart).show(series_named(series, "gpu_util"))
        self.query_one("#vv-gpu-mem", BaselineChart).show(series_named(series, "gpu_mem"))

    def show_verdict(
        self, verdict: Verdict | None, remaining_s: float | None, lost: VerdictLost | None = None
    ) -> None:
        self.query_one(ValidationPanel).show(verdict, remaining_s, lost)

    def show_progress(self, progress: RolloutProgress | None) -> None:
        self.query_one(RolloutBar).show(progress)

    def action_close(self) -> None:
        self.dismiss(None)
