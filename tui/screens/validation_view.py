"""The full-screen validation view (`v`): large charts against their baseline bands, the
validation gate with its countdown, and the rollout, for a room watching a shared screen.

In the low-bandwidth mode (tui.low_bandwidth) nothing on it animates, the header's clock
moves once a minute, and the charts are drawn only when asked for (`b`): each redraw of four
plots is most of what the view would send over a slow link."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Label

from services.models import MetricSeries, RolloutProgress, Verdict
from tui import low_bandwidth
from tui.low_bandwidth import CHART_KEY, CHART_MIN_INTERVAL_S, CHART_SHOWN_CLASS, SCREEN_CLASS
from tui.metrics_feed import series_named
from tui.screens.breakpoints import PrestyledScreen
from widgets.baseline_chart import BaselineChart
from widgets.header_bar import HeaderBar, HeaderState
from widgets.quiet_footer import QuietFooter
from widgets.rollout_bar import RolloutBar
from widgets.validation_panel import ValidationPanel, VerdictLost

CHARTS_HIDDEN = f"low-bandwidth: charts hidden ({CHART_KEY} shows them)"
# A chart is laid out but not drawn until its turn (see ValidationScreen.on_mount).
PENDING_CLASS = "-pending"


class ValidationScreen(PrestyledScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v,escape", "close", "Back", id="validation-view.close"),
        Binding(CHART_KEY, "toggle_chart", "Charts", show=False, id="validation-view.chart"),
    ]
    DEFAULT_CSS = f"""
    ValidationScreen #vv-note {{ display: none; width: 1fr; padding: 0 1; color: $text-muted; }}
    ValidationScreen.{SCREEN_CLASS} #vv-grid {{ display: none; }}
    ValidationScreen.{SCREEN_CLASS} #vv-note {{ display: block; }}
    ValidationScreen.{SCREEN_CLASS}.{CHART_SHOWN_CLASS} #vv-grid {{ display: block; }}
    ValidationScreen.{SCREEN_CLASS}.{CHART_SHOWN_CLASS} #vv-note {{ display: none; }}
    ValidationScreen BaselineChart.{PENDING_CLASS} {{ visibility: hidden; }}
    """

    def __init__(
        self,
        header: HeaderState,
        *,
        quiet: bool = False,
        chart_interval_s: float = CHART_MIN_INTERVAL_S,
    ) -> None:
        super().__init__(id="validation-view")
        self.header_state = header
        self.quiet = quiet  # the low-bandwidth mode is on
        self.chart_interval_s = chart_interval_s
        self.series: Sequence[MetricSeries] = ()  # the last metrics, drawn when charts show

    def compose(self) -> ComposeResult:
        self.take_size_classes()  # its first opening restyles nothing whole (~50 widgets)
        yield HeaderBar(self.header_state, id="vv-header")
        with Horizontal(id="vv-body"):
            # In the grid's place while the low-bandwidth mode hides the charts.
            yield Label(CHARTS_HIDDEN, id="vv-note", markup=False)
            with Grid(id="vv-grid"):
                charts = (
                    BaselineChart("latency", unit_label="s", id="vv-latency"),
                    BaselineChart("tokens/sec", id="vv-tokens"),
                    BaselineChart("GPU utilisation", unit_label="%", id="vv-gpu-util"),
                    BaselineChart("GPU memory", unit_label="MiB", id="vv-gpu-mem"),
                )
                for chart in charts:
                    chart.add_class(PENDING_CLASS)
                    yield chart
            with Vertical(id="vv-side"):
                yield ValidationPanel(id="vv-validation")
                yield RolloutBar(id="vv-rollout")
        yield QuietFooter()  # rebuilt only when its keys change, not on every poll

    def on_mount(self) -> None:
        # Queries, not query_one: the app can close the view before it mounts.
        for panel in self.query("#vv-validation"):
            panel.border_title = "Validation gate"
        for bar in self.query("#vv-rollout"):
            bar.border_title = "Rollout"
        for chart in self.query(BaselineChart):
            chart.min_interval_s = self.chart_interval_s
        if self.quiet:
            low_bandwidth.quiet(self.app, self, figures=True)  # the figures are why it is open
        # The first frame without the four plots, then one plot a frame: plotext builds each
        # in 30-50 ms of the UI thread, and four at once froze the screen for 120-170 ms of
        # CPU on opening (issue 9). The view is kept after that (SkewmitApp), so this is once.
        self.call_after_frame(self._reveal_next_chart)

    def _reveal_next_chart(self) -> None:
        pending = self.query(f"BaselineChart.{PENDING_CLASS}")
        if pending:
            pending.first().remove_class(PENDING_CLASS)
            self.call_after_frame(self._reveal_next_chart)

    def pace_charts(self, chart_interval_s: float) -> None:
        """The charts rebuilt at most every `chart_interval_s` seconds (tui.low_bandwidth)."""
        self.chart_interval_s = chart_interval_s
        low_bandwidth.pace_charts(self, chart_interval_s)

    @property
    def charts_shown(self) -> bool:
        return not self.has_class(SCREEN_CLASS) or self.has_class(CHART_SHOWN_CLASS)

    def follow_session(self, quiet: bool, chart_interval_s: float) -> None:
        """The session's mode and chart pacing, for a view opened before the session was:
        it was built in the normal mode, not knowing the session's."""
        self.pace_charts(chart_interval_s)
        if quiet and not self.quiet:
            self.quiet = True
            low_bandwidth.quiet(self.app, self, figures=True)

    def show_header(self, state: HeaderState) -> None:
        """The header once the session is open (the view may have opened before it)."""
        self.header_state = state
        for header in self.query(HeaderBar):  # none yet when pushed but not composed
            header.show(state)

    def show_metrics(self, series: Sequence[MetricSeries]) -> None:
        self.series = series
        if not self.charts_shown:
            return  # hidden charts are not rebuilt: `b` draws them from the last metrics
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

    def action_toggle_chart(self) -> None:
        """The charts on demand (the low-bandwidth mode hides them)."""
        low_bandwidth.toggle_chart(self)
        self.show_metrics(self.series)

    def action_close(self) -> None:
        self.dismiss(None)
