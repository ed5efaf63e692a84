"""A plotext chart of one or more metric series against their baseline band.

The band is the baseline and baseline ± tolerance, drawn as horizontal lines: inside the band
is "near baseline". Time runs in minutes before the newest point, so two charts of the same
data look the same whenever they are drawn. Colours are the app theme's.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import RenderResult
from textual.color import Color
from textual_plotext import PlotextPlot

from services.models import MetricSeries
from services.sanitize import terminal_line

# Which theme variable draws the n-th series; the band uses $success (baseline) and $warning.
SERIES_COLOURS = ("accent", "primary", "secondary", "warning")


def series_label(series: MetricSeries) -> str:
    """The legend entry: the quantity, and the GPU model for per-model series. Label values
    come from Prometheus (an exporter's text): sanitised."""
    extra = " ".join(v.removeprefix("NVIDIA ") for v in series.labels.values())
    return terminal_line(f"{series.name} {extra}".strip(), 80)


class BaselineChart(PlotextPlot):
    """`BaselineChart("latency")`, then `show(series_list)`."""

    DEFAULT_CSS = """
    BaselineChart { height: 1fr; min-height: 6; border: round $primary 50%;
                    border-title-color: $text-primary; }
    """

    def __init__(
        self,
        title: str,
        *,
        tolerance_pct: float = 10.0,
        scale: float = 1.0,
        unit_label: str = "",
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.chart_title = title
        self.tolerance_pct = tolerance_pct
        self.scale = scale  # e.g. 1000 to draw seconds as milliseconds
        self.unit_label = unit_label
        self.series: tuple[MetricSeries, ...] = ()

    def on_mount(self) -> None:
        self._draw()

    def show(self, series: Sequence[MetricSeries | None]) -> None:
        self.series = tuple(s for s in series if s is not None)
        self._draw()

    def render(self) -> RenderResult:
        try:
            return super().render()
        except (ArithmeticError, ValueError, IndexError) as exc:
            # A plotting corner case must not take the incident screen down with it.
            return f"(chart unavailable: {type(exc).__name__})"

    def _colour(self, name: str) -> tuple[int, int, int]:
        value = self.app.theme_variables.get(name) or self.app.theme_variables["foreground"]
        return Color.parse(value).rgb

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        unit = f" ({self.unit_label})" if self.unit_label else ""
        plotted = [s for s in self.series if s.points]
        if not plotted:
            self.border_title = f"{self.chart_title}{unit}: no data"
            self.refresh()
            return
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
        plt.ylim(lowest - pad, highest + pad)
        # plotext divides by the axis span: never let it be zero (one point, flat line).
        left = min((s.points[0].t - newest) / 60.0 for s in plotted)
        plt.xlim(min(left, -1.0), 0)
        band_note = f" ±{self.tolerance_pct:g}% band" if bands else ""
        # The title as the border's: plotext drops a title that does not fit.
        self.border_title = f"{self.chart_title}{unit}{band_note}"
        plt.xlabel("minutes ago")
        self.refresh()
