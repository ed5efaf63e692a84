"""A plotext chart of one or more metric series against their baseline band.

The band is the baseline and baseline ± tolerance, drawn as horizontal lines: inside the band
is "near baseline". Time runs in minutes before the newest point, so two charts of the same
data look the same whenever they are drawn. Colours are the app theme's.

The value axis never goes below `floor` (0 by default: no latency or throughput is
negative). The chart is drawn when its data changes and at most once per `min_interval_s`
(the scrape interval: nothing new can arrive sooner); a change in between is drawn when the
interval is up, from the newest data.

plotext is loaded when a chart first has data to plot, not with the app: until then the
chart is its frame and "no data" in the title, which needs no plotting (issue 12: importing
plotext cost the first frame 30 ms, for a chart with nothing on it). It is loaded on a worker
thread, and the plot is built once it is in: imported on the UI thread, it froze the screen
for 45 ms as the first readings came in. Meanwhile the title says "plotting…".

`hold()` keeps a chart from plotting until `release()`: what it is shown meanwhile is kept
and plotted then. The app holds the main screen's chart while the session opens, so that
loading plotext and building the plot (60-70 ms of the one interpreter lock) come after the
first findings and the GPU inspector, not before them (issue 12).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import RenderResult
from textual.color import Color
from textual.timer import Timer
from textual.widget import Widget
from textual.worker import Worker, WorkerState

from services.models import MetricSeries
from services.sanitize import terminal_line

if TYPE_CHECKING:
    from textual_plotext.plot import Plot

# Which theme variable draws the n-th series; the band uses $success (baseline) and $warning.
SERIES_COLOURS = ("accent", "primary", "secondary", "warning")
PLOTEXT_MODULE = "textual_plotext.plot"  # what a plot needs (it loads plotext itself)
LOAD_GROUP = "baseline-chart-plotext"  # the worker that loads it


_LOADING = threading.Event()  # a worker is importing it now: in sys.modules, not complete


def _load_plotext() -> None:
    """On a worker thread: import plotext, textual-plotext and what the plot's theme needs."""
    _LOADING.set()
    try:
        import plotext._dict  # noqa: F401
        import textual_plotext.plot  # noqa: F401
    finally:
        _LOADING.clear()


def plotext_loaded() -> bool:
    """Whether a plot can be built without importing anything."""
    return PLOTEXT_MODULE in sys.modules and not _LOADING.is_set()


def series_label(series: MetricSeries) -> str:
    """The legend entry: the quantity, and the GPU model for per-model series. Label values
    come from Prometheus (an exporter's text): sanitised."""
    extra = " ".join(v.removeprefix("NVIDIA ") for v in series.labels.values())
    return terminal_line(f"{series.name} {extra}".strip(), 80)


class BaselineChart(Widget):
    """`BaselineChart("latency")`, then `show(series_list)`. Draws as textual-plotext's
    PlotextPlot does (the plot in the app theme's colours), on a plot made at first use."""

    DEFAULT_CSS = """
    BaselineChart { width: 1fr; height: 1fr; min-height: 6; border: round $primary 50%;
                    border-title-color: $text-primary; }
    """

    def __init__(
        self,
        title: str,
        *,
        tolerance_pct: float = 10.0,
        scale: float = 1.0,
        unit_label: str = "",
        floor: float | None = 0.0,
        min_interval_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.chart_title = title
        self.tolerance_pct = tolerance_pct
        self.scale = scale  # e.g. 1000 to draw seconds as milliseconds
        self.unit_label = unit_label
        self.floor = floor  # None: the axis may go negative (a signed quantity)
        self.min_interval_s = min_interval_s
        self._clock = clock
        self.series: tuple[MetricSeries, ...] = ()
        self.draws = 0  # how many times the plot was built (the costly part)
        self._drawn_at: float | None = None
        self._pending: Timer | None = None
        self._plot: Plot | None = None  # made when there is first something to plot
        self._held = False  # hold(): nothing plotted until release()
        self._loading = False  # plotext is being loaded on a worker thread
        self._load_failed = False  # that load raised: the plot imports it (and shows why)
        self._deferred = False  # data came while held or loading: plot it then

    @property
    def plt(self) -> Plot:
        """The plotext figure (PlotextPlot's `plt`), made and themed on first use."""
        if self._plot is None:
            from textual_plotext.plot import Plot

            self._plot = Plot()
            self.app.theme_changed_signal.subscribe(self, lambda _: self._register_theme())
            self._register_theme()
        return self._plot

    def _theme_name(self) -> str:
        return f"textual-auto-{self.app.theme}"

    def _register_theme(self) -> None:
        """The app theme's background and foreground as a plotext theme, registered once per
        app theme: PlotextPlot's "auto" theme, with the helpers it uses."""
        from plotext._dict import themes
        from textual_plotext.plot import _rgbify_theme, _sequence

        name = self._theme_name()
        if name not in themes:
            surface = Color.parse(self.app.theme_variables["surface"]).rgb
            foreground = Color.parse(self.app.theme_variables["foreground"]).rgb
            colours: list[Any] = list(_sequence)
            themes[name] = _rgbify_theme(surface, surface, foreground, "default", colours)
        self.refresh()

    def on_mount(self) -> None:
        self._draw()

    def hold(self) -> None:
        """Plot nothing until `release()`; what `show` gives meanwhile is plotted then."""
        self._held = True

    def release(self) -> None:
        """Plot again, starting with what was shown while held (at once, or when the
        interval since the last plot is up)."""
        if not self._held:
            return
        self._held = False
        if self._deferred and self.is_mounted:
            self._deferred = False
            self._request_draw()

    @property
    def held(self) -> bool:
        return self._held

    def show(self, series: Sequence[MetricSeries | None]) -> None:
        shown = tuple(s for s in series if s is not None)
        if shown == self.series and (self.draws or self._deferred):
            return  # nothing new: no redraw
        self.series = shown
        if not self.is_mounted:
            return  # on_mount draws it
        self._request_draw()

    def _request_draw(self) -> None:
        """Draw now, or when the interval since the last plot is up."""
        wait = self._wait()
        if wait <= 0:
            self._draw()
        elif self._pending is None:
            self._pending = self.set_timer(wait, self._draw_pending)

    def _wait(self) -> float:
        if self._drawn_at is None or self.min_interval_s <= 0:
            return 0.0
        return self.min_interval_s - (self._clock() - self._drawn_at)

    def _draw_pending(self) -> None:
        self._pending = None
        self._draw()

    def render(self) -> RenderResult:
        plot = self._plot
        if plot is None:
            return ""  # nothing plotted yet: the frame and its title say "no data"
        try:
            width, height = self.size
            plot.plotsize(width, height)
            plot._set_size(width, height)  # as PlotextPlot does: plotsize alone can lag
            plot.theme(self._theme_name())
            return Text.from_ansi(plot.build())
        except (ArithmeticError, ValueError, IndexError) as exc:
            # A plotting corner case must not take the incident screen down with it.
            return f"(chart unavailable: {type(exc).__name__})"

    def _colour(self, name: str) -> tuple[int, int, int]:
        value = self.app.theme_variables.get(name) or self.app.theme_variables["foreground"]
        return Color.parse(value).rgb

    def _plot_waits(self) -> bool:
        """Whether plotting must wait: held, or plotext not loaded yet (its load is started
        on a worker thread; the plot is built when it is in)."""
        if self._held:
            return True
        if self._plot is not None or self._load_failed or plotext_loaded():
            return False
        if not self._loading:
            self._loading = True
            self.run_worker(_load_plotext, LOAD_GROUP, group=LOAD_GROUP, thread=True,
                            exit_on_error=False)  # fmt: skip
        return True

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != LOAD_GROUP or event.state not in (
            WorkerState.SUCCESS, WorkerState.ERROR
        ):  # fmt: skip
            return
        self._loading = False
        # After a failed load the plot imports it on this thread, where the error is raised.
        self._load_failed = event.state == WorkerState.ERROR
        if self._deferred and not self._held:
            self._deferred = False
            self._draw()

    def _draw(self) -> None:
        unit = f" ({self.unit_label})" if self.unit_label else ""
        plotted = [s for s in self.series if s.points]
        if plotted and self._plot_waits():
            self._deferred = True
            self.border_title = f"{self.chart_title}{unit}: plotting…"
            self.refresh()
            return
        self.draws += 1
        if not plotted and self._plot is None:
            self.border_title = f"{self.chart_title}{unit}: no data"
            self.refresh()
            return
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if not plotted:
            self.border_title = f"{self.chart_title}{unit}: no data"
            self.refresh()
            return
        # Only a plot with data starts the interval: the first data is drawn at once.
        self._drawn_at = self._clock()
        newest = max(s.points[-1].t for s in plotted)
        lowest, highest = float("inf"), float("-inf")
        for i, series in enumerate(plotted):
            xs = [(p.t - newest) / 60.0 for p in series.points]
            ys = [p.v * self.scale for p in series.points]
            lowest, highest = min(lowest, *ys), max(highest, *ys)
            colour = self._colour(SERIES_COLOURS[i % len(SERIES_COLOURS)])
            # Half-block marks: braille glyphs are drawn wider than a cell by some fonts.
            plt.plot(xs, ys, color=colour, marker="hd", label=series_label(series))
        bands = [s.baseline * self.scale for s in plotted if s.baseline is not None]
        for base in bands:
            spread = abs(base) * self.tolerance_pct / 100.0
            plt.hline(base, color=self._colour("success"))
            plt.hline(base + spread, color=self._colour("warning"))
            plt.hline(base - spread, color=self._colour("warning"))
            lowest, highest = min(lowest, base - spread), max(highest, base + spread)
        pad = (highest - lowest) * 0.1 or abs(highest) * 0.1 or 1.0  # never a zero span
        bottom = lowest - pad
        if self.floor is not None and lowest >= self.floor:
            # Padding must not invent an impossible reading (a negative latency).
            bottom = max(bottom, self.floor)
        plt.ylim(bottom, highest + pad)
        # plotext divides by the axis span: never let it be zero (one point, flat line).
        left = min((s.points[0].t - newest) / 60.0 for s in plotted)
        plt.xlim(min(left, -1.0), 0)
        band_note = f" ±{self.tolerance_pct:g}% band" if bands else ""
        # The title as the border's: plotext drops a title that does not fit.
        self.border_title = f"{self.chart_title}{unit}{band_note}"
        plt.xlabel("minutes ago")
        self.refresh()
