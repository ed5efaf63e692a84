"""One metric on one line: name, sparkline, current value and the difference from baseline.

Renders a `MetricSeries` (or nothing: "no data"). Classes: `-worse` when the value has moved
past the tolerance in the bad direction, `-better`/`-steady` otherwise, `-stale` when the
series is older than its staleness limit, `-empty` without data.

It repaints only what changed: the sparkline when a new sample arrives, the value when its
text changes. `still=True` (the low-bandwidth mode) draws no sparkline at all: the value
and the difference from baseline only. A `tag` (its tooltip) names what the figure is of when
it is one of several, e.g. the GPU class on a mixed fleet.
"""

from __future__ import annotations

from statistics import mean

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Sparkline

from services.models import MetricSeries
from services.sanitize import terminal_line
from widgets.label_text import set_text


def format_value(value: float | None, unit: str) -> str:
    """A short human reading: 412ms, 1.8s, 2.3k tok/s, 87%, 61.2GiB."""
    if value is None:
        return "-"
    if unit == "s":
        if abs(value) < 10:
            return f"{value * 1000:.0f}ms"
        return f"{value:.1f}s" if abs(value) < 100 else f"{value:.0f}s"
    if unit == "%":
        return f"{value:.0f}%"
    if unit.endswith("/s"):
        return f"{value / 1000:.1f}k/s" if abs(value) >= 10_000 else f"{value:.0f}/s"
    if unit in ("MiB", "MB"):
        return f"{value / 1024:.1f}GiB" if abs(value) >= 1024 else f"{value:.0f}MiB"
    suffix = f" {unit}" if unit and unit not in ("1", "ratio") else ""
    if abs(value) >= 10_000:
        return f"{value / 1000:.1f}k{suffix}"
    return f"{value:.0f}{suffix}" if abs(value) >= 100 else f"{value:.2g}{suffix}"


def delta_percent(value: float | None, baseline: float | None) -> float | None:
    if value is None or baseline is None or baseline == 0:
        return None
    return (value - baseline) / abs(baseline) * 100.0


class MetricSparkline(Horizontal):
    """`MetricSparkline("p99", higher_is_worse=True)`, then `show(series, now)`."""

    DEFAULT_CSS = """
    MetricSparkline { height: 1; width: 1fr; }
    MetricSparkline > .ms-name { width: 7; }
    MetricSparkline > Sparkline { width: 1fr; min-width: 4; margin-right: 1; }
    MetricSparkline.-empty > .ms-value { width: 1fr; }
    MetricSparkline > .ms-value { width: 13; height: 1; text-align: right; }
    MetricSparkline.-still > Sparkline { display: none; }
    MetricSparkline.-still > .ms-value { width: 1fr; }
    MetricSparkline.-worse > .ms-value { color: $error; text-style: bold; }
    MetricSparkline.-better > .ms-value { color: $success; }
    MetricSparkline.-stale > .ms-value { color: $warning; text-style: italic; }
    MetricSparkline.-empty > .ms-value { color: $text-muted; }
    MetricSparkline.-worse > Sparkline > .sparkline--max-color { color: $error; }
    """

    def __init__(
        self,
        label: str,
        *,
        higher_is_worse: bool = True,
        tolerance_pct: float = 10.0,
        still: bool = False,
        id: str | None = None,
    ) -> None:
        # Classes from the start: set on mount they restyle the row a moment after it was
        # styled (issue 12: the first frame).
        super().__init__(id=id, classes="-empty -still" if still else "-empty")
        self.label = label
        self.higher_is_worse = higher_is_worse
        self.tolerance_pct = tolerance_pct
        self.series: MetricSeries | None = None
        self.still = still
        self._points: tuple[object, ...] | None = None  # what the sparkline draws now

    def compose(self) -> ComposeResult:
        yield Label(terminal_line(self.label), classes="ms-name", markup=False)
        # The mean per column: with the default max, a noisy series fills every column.
        yield Sparkline([], summary_function=mean)
        yield Label("no data", classes="ms-value", markup=False)

    def set_still(self, still: bool) -> None:
        """No sparkline (low-bandwidth) or the sparkline back, drawn from the last series."""
        self.still = still
        self.set_class(still, "-still")
        self._points = None
        self._draw_sparkline()

    def _draw_sparkline(self) -> None:
        spark = self.query_one(Sparkline)
        series = self.series
        points = series.points if series is not None else ()
        if self.still or not points:
            # Hidden: no data to scroll (an empty sparkline reads as a flat zero).
            if self._points != ():
                spark.data = []
                self._points = ()
            spark.display = False
            return
        spark.display = True
        if points != self._points:  # a new sample: only then does the line move
            self._points = points
            spark.data = [p.v for p in points]

    def show(self, series: MetricSeries | None, now: float | None = None, tag: str = "") -> None:
        self.series = series
        value_label = self.query_one(".ms-value", Label)
        self._draw_sparkline()
        if series is None or not series.points:
            set_text(value_label, "no data")
            gone = dict.fromkeys(("-worse", "-better", "-steady", "-stale"), False)
            self.update_classes({**gone, "-empty": True})
            return
        latest = series.latest
        delta = delta_percent(latest, series.baseline)
        stale = now is not None and now - series.fetched_at > series.stale_after_s
        text = format_value(latest, series.unit)
        if stale:
            text += " stale"
        elif delta is not None and abs(delta) >= 1000 and series.baseline:
            text += f" x{(latest or 0.0) / series.baseline:.0f}"  # "+15602%" reads as noise
        elif delta is not None:
            text += f" {delta:+.0f}%"
        set_text(value_label, text)
        bad = delta is not None and (delta if self.higher_is_worse else -delta) > self.tolerance_pct
        good = delta is not None and not bad and abs(delta) > self.tolerance_pct
        # One restyle of the figure for all its classes, not one per class (issue 12).
        steady = delta is not None and not bad and not good
        classes = {"-empty": False, "-worse": bad, "-better": good, "-steady": steady}
        self.update_classes({**classes, "-stale": stale})
        of = f" ({tag})" if tag else ""
        tip = terminal_line(
            f"{series.name}{of}: {format_value(latest, series.unit)}; baseline "
            f"{format_value(series.baseline, series.unit)}"
        )
        if self.tooltip != tip:
            self.tooltip = tip
