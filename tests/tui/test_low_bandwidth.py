"""Watching cheaply: the low-bandwidth mode (nothing moves unless its data changed, the chart
on demand, the clock by the minute), redraws only on new data, charts that never show an
impossible negative reading, and the GPU class named on a mixed fleet.

The app runs on the fakes (no cluster); what is asserted is what the operator sees or what
the terminal is sent, never how long anything took."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import replace
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Label, ProgressBar, Sparkline
from textual.widgets._footer import FooterKey
from textual.widgets._progress_bar import Bar

import widgets.rollout_bar
import widgets.validation_panel
from services.models import MetricPoint, MetricSeries, Step
from tests.tui.conftest import wait_until
from tests.tui.fakes import T0, FakeRunbook, fake_session, metrics
from tui import low_bandwidth
from tui.app import SkewmitApp
from tui.messages import MetricsSampled
from tui.metrics_feed import class_tags, first_series, mixed_fleet_note
from widgets.baseline_chart import BaselineChart
from widgets.header_bar import HeaderBar
from widgets.label_text import PULSE_AFTER_S
from widgets.metric_sparkline import MetricSparkline
from widgets.quiet_footer import QuietFooter


def app_for(runbook: FakeRunbook | None = None, **changes: Any) -> SkewmitApp:
    return SkewmitApp(fake_session(runbook, **changes))


def chart_visible(app: SkewmitApp) -> bool:
    return app.main.query_one("#chart-latency", BaselineChart).display


async def test_low_bandwidth_shows_values_only_and_the_chart_on_demand() -> None:
    app = app_for(low_bandwidth=True)
    async with app.run_test(size=(120, 40)) as pilot:
        spark = app.main.query_one("#spark-p95", MetricSparkline)
        await wait_until(pilot, lambda: spark.series is not None, "metrics shown")
        assert app.animation_level == "none"
        # Each metric reads as its value and its difference from baseline, no sparkline.
        assert not any(s.display for s in app.main.query(Sparkline))
        assert "+" in str(spark.query_one(".ms-value", Label).content)
        note = str(app.main.query_one("#metrics-note", Label).content)
        assert not chart_visible(app) and "b shows it" in note
        await pilot.press("b")
        assert chart_visible(app)
        assert "b shows it" not in str(app.main.query_one("#metrics-note", Label).content)
        await pilot.press("b")
        assert not chart_visible(app)
        # The incident clock moves once a minute: 754 s open reads 00:12.
        elapsed = app.main.query_one(HeaderBar).query_one("#hb-elapsed", Label)
        assert str(elapsed.content) == "open 00:12"


async def test_normal_mode_keeps_the_sparklines_and_the_chart() -> None:
    app = app_for()
    async with app.run_test(size=(120, 40)) as pilot:
        spark = app.main.query_one("#spark-p95", MetricSparkline)
        await wait_until(pilot, lambda: spark.series is not None, "metrics shown")
        assert spark.query_one(Sparkline).display and chart_visible(app)
        assert app.main.query_one("#hb-elapsed", Label).content == "open 00:12:34"


async def test_no_animated_bars_while_waiting_in_low_bandwidth() -> None:
    """Every read blocks: the rollout and validation panes wait for their first answer. An
    indeterminate bar (no percentage) repaints 15 times a second: never in low-bandwidth
    mode, and otherwise only once the wait has lasted PULSE_AFTER_S (the opening's first
    answers come sooner, and the pulse took the interpreter lock from them, issue 12)."""
    gate = threading.Event()
    try:
        for low, animated in ((False, True), (True, False)):
            app = app_for(FakeRunbook(wait=gate), low_bandwidth=low)
            started = time.monotonic()  # before the bars mount
            async with app.run_test(size=(120, 40)) as pilot:
                await pilot.pause()
                bars = list(app.main.query(ProgressBar))
                assert len(bars) == 2
                if time.monotonic() - started < PULSE_AFTER_S:  # else a loaded machine's
                    assert all(bar.percentage == 0 for bar in bars), low  # still at first
                await pilot.pause(PULSE_AFTER_S + 0.2)
                assert all((bar.percentage is None) == animated for bar in bars), low
    finally:
        gate.set()


async def test_a_bar_whose_answer_came_in_time_never_pulses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pulses: list[str] = []
    indeterminate = Bar.render_indeterminate

    def counted(bar: Bar) -> Any:
        pulses.append(str(bar.parent.parent.id if bar.parent else ""))
        return indeterminate(bar)

    monkeypatch.setattr(Bar, "render_indeterminate", counted)
    # The answers come well within the second on a quiet machine; the suite's load can hold
    # them longer, so the wait here is long enough that they always come first.
    for module in (widgets.rollout_bar, widgets.validation_panel):
        monkeypatch.setattr(module, "PULSE_AFTER_S", 30.0)
    app = app_for()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "every step's checks")
        bars = list(app.main.query(ProgressBar))
        assert len(bars) == 2 and all(bar.percentage is not None for bar in bars)
        assert pulses == []


async def test_a_poll_with_nothing_new_redraws_nothing() -> None:
    app = app_for()
    async with app.run_test(size=(120, 40)) as pilot:
        chart = app.main.query_one("#chart-latency", BaselineChart)
        spark = app.main.query_one("#spark-p95", MetricSparkline).query_one(Sparkline)
        await wait_until(pilot, lambda: chart.draws >= 2, "the chart drawn from the metrics")
        draws, data = chart.draws, spark.data
        app.post_message(MetricsSampled(metrics()))  # equal series, new objects
        await pilot.pause()
        assert chart.draws == draws and spark.data is data
        newer = [replace(s, points=(*s.points, MetricPoint(T0 + 15, 9.0))) for s in metrics()]
        app.post_message(MetricsSampled(newer))
        await wait_until(pilot, lambda: chart.draws == draws + 1, "the chart redrawn")
        assert spark.data is not data and spark.data is not None and spark.data[-1] == 9.0


class ChartApp(App[None]):
    def __init__(self, chart: BaselineChart) -> None:
        super().__init__()
        self.chart = chart

    def compose(self) -> ComposeResult:
        yield self.chart


def y_labels(chart: BaselineChart) -> list[str]:
    """The value axis' labels as drawn (the text left of each tick)."""
    text = chart.render()
    plain = getattr(text, "plain", str(text))
    return [m.group(1) for m in re.finditer(r"(-?[\d.]+) *┤", plain)]


def latency(values: list[float], baseline: float | None) -> MetricSeries:
    points = tuple(MetricPoint(T0 - 60 * (len(values) - i), v) for i, v in enumerate(values))
    return MetricSeries("p95", "s", points, baseline, T0, 60.0)


async def test_latency_and_throughput_axes_never_go_negative() -> None:
    import textual_plotext.plot  # noqa: F401  (loaded: each plot is built as it is shown)

    chart = BaselineChart("latency", unit_label="s")
    async with ChartApp(chart).run_test(size=(60, 20)) as pilot:
        for series in (
            latency([0.0, 0.01, 0.02, 0.0], 0.01),  # near zero: padding went below it
            latency([0.3, 0.3, 0.3], None),  # one flat line
            latency([0.0, 0.0], None),  # all zero
        ):
            chart.show([series])
            await pilot.pause()
            labels = y_labels(chart)
            assert labels, "the chart has a value axis"
            assert not any(label.startswith("-") for label in labels), labels


async def test_the_chart_is_rebuilt_at_most_once_per_interval() -> None:
    import textual_plotext.plot  # noqa: F401  (loaded: the first data is plotted at once)

    chart = BaselineChart("latency", min_interval_s=0.3)
    async with ChartApp(chart).run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        first = chart.draws  # drawn empty at mount: that starts no interval
        chart.show([latency([1.0, 1.0], 1.0)])
        assert chart.draws == first + 1, "the first data is drawn at once"
        for i in range(1, 5):  # four new samples inside one interval
            chart.show([latency([1.0, 1.0 + i], 1.0)])
        assert chart.draws == first + 1
        # The rest wait for the interval and are drawn once, from the newest.
        await wait_until(pilot, lambda: chart.draws == first + 2, "drawn again")
        assert chart.series[0].points[-1].v == 5.0


def gpu(model: str, level: float, baseline: float | None) -> MetricSeries:
    points = (MetricPoint(T0 - 15, level), MetricPoint(T0, level))
    return MetricSeries("gpu_util", "%", points, baseline, T0, 60.0, {"modelName": model})


def test_mixed_fleet_says_which_gpu_class_the_figures_are_of() -> None:
    h100, a10g = gpu("NVIDIA H100 80GB HBM3", 90.0, 80.0), gpu("NVIDIA A10G", 99.0, None)
    assert class_tags([a10g, h100]) == {"gpu_util": "H100"}
    assert mixed_fleet_note([a10g, h100]) == "GPU figures: H100 pods (mixed fleet: A10G, H100)"
    assert class_tags([h100]) == {} and mixed_fleet_note([h100]) == ""


def test_before_the_baseline_a_mixed_fleet_shows_the_class_last_known_good_required() -> None:
    # The first readings come before the baseline (no series has one yet).
    h100, a10g = gpu("NVIDIA H100 80GB HBM3", 90.0, None), gpu("NVIDIA A10G", 99.0, None)
    assert first_series([a10g, h100])["gpu_util"] is a10g  # the first listed: it jumped
    assert first_series([a10g, h100], "H100-80GB")["gpu_util"] is h100
    assert class_tags([a10g, h100], "H100-80GB") == {"gpu_util": "H100"}
    # Once the baseline is in, the class it was taken on stands.
    a10g_lkg = gpu("NVIDIA A10G", 99.0, 95.0)
    assert first_series([a10g_lkg, h100], "H100-80GB")["gpu_util"] is a10g_lkg


async def test_a_mixed_fleets_first_gpu_figures_are_of_the_expected_class() -> None:
    """Before the baseline, the GPU figures of a mixed fleet were the first class listed
    (A10G) and jumped to the last-known-good's (H100) a poll later; once step 5 has said
    which class the last-known-good required, they are that class's from the first."""
    mixed = [
        *(s for s in metrics() if s.name != "gpu_util"),
        gpu("NVIDIA A10G", 99.0, None),
        gpu("NVIDIA H100 80GB HBM3", 90.0, None),
    ]
    app = app_for(metrics_sampler=lambda: mixed)
    async with app.run_test(size=(120, 40)) as pilot:
        note = app.main.query_one("#metrics-note", Label)
        spark = app.main.query_one("#spark-gpu_util", MetricSparkline)
        await wait_until(pilot, lambda: Step.HARDWARE in app.board.reports, "step 5")
        await wait_until(pilot, lambda: "mixed fleet" in str(note.content), "the mixed note")
        assert "GPU figures: H100 pods" in str(note.content), note.content
        assert "(H100)" in str(spark.tooltip) and "90%" in str(spark.tooltip)


async def test_mixed_fleet_note_in_live_metrics() -> None:
    mixed = [
        *(s for s in metrics() if s.name != "gpu_util"),
        gpu("NVIDIA H100 80GB HBM3", 90.0, 80.0),
        gpu("NVIDIA A10G", 99.0, None),
    ]
    app = app_for(metrics_sampler=lambda: mixed)
    async with app.run_test(size=(120, 40)) as pilot:
        note = app.main.query_one("#metrics-note", Label)
        await wait_until(pilot, lambda: "mixed fleet" in str(note.content), "the mixed note")
        assert "H100" in str(note.content)
        spark = app.main.query_one("#spark-gpu_util", MetricSparkline)
        assert "(H100)" in str(spark.tooltip)


def test_the_mode_is_on_from_the_flag_the_environment_or_the_config() -> None:
    assert not low_bandwidth.wanted(False, {}, {})
    assert low_bandwidth.wanted(True, {}, {})
    assert low_bandwidth.wanted(False, {}, {"SKEWMIT_LOW_BANDWIDTH": "1"})
    assert not low_bandwidth.wanted(False, {}, {"SKEWMIT_LOW_BANDWIDTH": "0"})
    assert low_bandwidth.wanted(False, {"low_bandwidth": True}, {})
    assert not low_bandwidth.wanted(False, {"low_bandwidth": "yes please"}, {})


async def test_the_footer_follows_the_step_and_polls_do_not_rebuild_it() -> None:
    app = app_for()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        footer = app.main.query_one(QuietFooter)

        def keys() -> set[str]:
            return {key.key for key in footer.query(FooterKey)}

        await wait_until(pilot, lambda: "u" in keys(), "step 1's keys")
        rebuilds = footer.rebuilds
        app.refresh_bindings()  # what every poll's answer asks for
        await pilot.pause()
        assert footer.rebuilds == rebuilds
        await pilot.press("2")
        await wait_until(pilot, lambda: "i" in keys(), "step 2's keys")
        assert "u" not in keys() and footer.rebuilds == rebuilds + 1


@pytest.mark.parametrize("argv", [["demo", "--low-bandwidth"], ["--low-bandwidth", "demo"]])
def test_the_flag_turns_the_mode_on_for_the_demo(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tui.launchers
    from tui.cli import main

    monkeypatch.setenv(low_bandwidth.ENV_VAR, "0")  # restored after the test
    seen: list[bool] = []

    def run_demo(args: object) -> int:
        seen.append(low_bandwidth.wanted())
        return 0

    monkeypatch.setattr(tui.launchers, "run_demo", run_demo)
    assert main(argv) == 0 and seen == [True]


class OpeningFeed:
    """A metrics feed whose Prometheus answered after the app started (tui.launchers'
    PendingFeed): no scrape interval until its first reading, then the source's."""

    def __init__(self, scrape_s: float) -> None:
        self.scrape_s = scrape_s
        self.read = False

    @property
    def scrape_interval_s(self) -> float | None:
        return self.scrape_s if self.read else None

    def __call__(self) -> list[MetricSeries]:
        self.read = True
        return metrics()


async def test_charts_take_the_scrape_interval_of_a_prometheus_that_answered_late() -> None:
    """The charts were paced once, when the session opened: a Prometheus still being reached
    then left them at the 5 s default for the session, so the plotext chart could be rebuilt
    up to three times a scrape on a 15 s one (issue 12: at most once per scrape interval).
    They now take the interval once the first reading is in, the validation view too."""
    feed = OpeningFeed(15.0)
    app = app_for(metrics_sampler=feed)
    async with app.run_test(size=(120, 40)) as pilot:
        chart = app.main.query_one("#chart-latency", BaselineChart)
        await wait_until(pilot, lambda: chart.draws >= 2, "the chart drawn from the metrics")
        assert chart.min_interval_s == 15.0
        await pilot.press("v")
        view_chart = app.screen.query_one(BaselineChart)
        assert view_chart.min_interval_s == 15.0
