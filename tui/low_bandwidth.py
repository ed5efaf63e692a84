"""The low-bandwidth mode, for responders on a slow SSH link: nothing on screen moves unless
its data changed. No animation (no indeterminate bars, no sparkline scrolling: each metric
reads as its value and its difference from baseline), the latency chart only on demand (`b`
shows and hides it), the validation checks as their marks and names (their figures are in the
validation view, `v`), and the incident's clock and the stability countdown moving once a
minute. The validation view follows it too: its charts on demand (`b`), nothing animated,
the clock by the minute. While watching, the terminal gets well under a kilobyte a second
(bench/tui_bench.py --low-bandwidth).

It is on with `--low-bandwidth` (app and demo), with SKEWMIT_LOW_BANDWIDTH=1 in the
environment (a bastion's profile), or with `low_bandwidth: true` in the config file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from textual.app import App
from textual.screen import Screen
from textual.widgets import ProgressBar

from widgets.baseline_chart import BaselineChart
from widgets.header_bar import HeaderBar
from widgets.label_text import waiting_bar
from widgets.metric_sparkline import MetricSparkline
from widgets.validation_panel import ValidationPanel

ENV_VAR = "SKEWMIT_LOW_BANDWIDTH"
CONFIG_KEY = "low_bandwidth"
SCREEN_CLASS = "-low-bandwidth"
CHART_SHOWN_CLASS = "-show-chart"  # the operator asked for the chart (low-bandwidth only)
CHART_KEY = "b"
# The latency chart is rebuilt at most this often, or once per scrape interval when that is
# longer: plotext redraws the whole plot, and no new sample arrives in between.
CHART_MIN_INTERVAL_S = 5.0


def wanted(
    flag: bool = False,
    config: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> bool:
    """Whether the mode is on: the flag, the environment variable or the config setting."""
    env = os.environ if environ is None else environ
    if flag or env.get(ENV_VAR, "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    return bool(config) and (config or {}).get(CONFIG_KEY) is True


def chart_interval(scrape_interval_s: float | None) -> float:
    """Seconds between two builds of the latency chart at the most."""
    return max(CHART_MIN_INTERVAL_S, scrape_interval_s or 0.0)


def quiet(app: App[Any], screen: Screen[Any], *, figures: bool = False) -> None:
    """Turn the mode on for the app and one screen: call once the screen is mounted.
    `figures=True` keeps the validation checks' figures (the validation view shows them);
    the stability countdown moves by the minute either way."""
    app.animation_level = "none"  # Textual's own widgets stop animating too
    screen.add_class(SCREEN_CLASS)
    for bar in screen.query(ProgressBar):
        if bar.total is None:  # drawn before the mode was on: stop its animation
            waiting_bar(bar)
    for spark in screen.query(MetricSparkline):
        spark.set_still(True)
    for panel in screen.query(ValidationPanel):
        panel.marks_only = not figures
        panel.countdown_by_minute = True
    for header in screen.query(HeaderBar):
        header.minutes_only = True
        header.show(header.state)


def chart_note(screen: Screen[Any]) -> str:
    """The line that says where the chart went ("" when it is on screen)."""
    if screen.has_class(SCREEN_CLASS) and not screen.has_class(CHART_SHOWN_CLASS):
        return f"low-bandwidth: chart hidden ({CHART_KEY} shows it)"
    return ""


def toggle_chart(screen: Screen[Any]) -> None:
    """Show or hide the latency chart (it is always shown outside the low-bandwidth mode)."""
    screen.toggle_class(CHART_SHOWN_CLASS)


def session_chart_interval(session: Any) -> float:
    """Seconds between two builds of a chart for the session's metrics source."""
    sampler = getattr(session, "metrics_sampler", None)
    return chart_interval(getattr(sampler, "scrape_interval_s", None))


def pace_charts(screen: Screen[Any], every: float) -> None:
    """The screen's charts rebuilt at most every `every` seconds."""
    for chart in screen.query(BaselineChart):
        chart.min_interval_s = every


def setup(app: App[Any], screen: Screen[Any], session: Any) -> bool:
    """At mount: pace the screen's charts to the metrics' scrape interval and turn the mode
    on when the session, the environment or the config asks. True when it is on."""
    pace_charts(screen, session_chart_interval(session))
    runbook = getattr(session, "runbook", None)
    on = wanted(bool(getattr(session, "low_bandwidth", False)), getattr(runbook, "config", None))
    if on:
        quiet(app, screen)
    return on
