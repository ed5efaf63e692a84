"""The latency chart never holds the screen or the session's opening up (issue 12): plotext
loads on a worker thread, not on the UI thread (45 ms of frozen screen as the first readings
came in), and while the session opens the main screen's chart is plotted only once the
opening's first checks have answered (or CHART_HOLD_MAX_S after the first frame), so loading
plotext and building the plot (60-70 ms of the one interpreter lock) do not delay the
findings and the GPU inspector. The readings' figures themselves show at once."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

import tui.dashboard
from services.models import STEP_ORDER, Step
from tests.tui.conftest import checked, wait_until
from tests.tui.fakes import TARGET, FakeRunbook, fake_session, metrics
from tests.tui.test_low_bandwidth import ChartApp, latency
from tui.app import SkewmitApp
from tui.messages import MetricsSampled
from tui.session import Session, SessionOpener
from widgets.baseline_chart import BaselineChart
from widgets.header_bar import HeaderState
from widgets.metric_sparkline import MetricSparkline

# A chart given data in a fresh interpreter (plotext not loaded): which thread imported
# textual-plotext, what the title said before the plot, and the plot's value axis.
FIRST_PLOT = """
import asyncio, json, sys, threading
from tests.tui.test_low_bandwidth import ChartApp, latency, y_labels
from widgets.baseline_chart import BaselineChart

importers = []

class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "textual_plotext.plot":
            importers.append(threading.current_thread() is threading.main_thread())
        return None

sys.meta_path.insert(0, Spy())

async def main():
    chart = BaselineChart("latency", unit_label="s")
    async with ChartApp(chart).run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        assert "textual_plotext" not in sys.modules
        drawn = chart.draws
        chart.show([latency([0.2, 0.3, 0.25], 0.25)])
        before = [str(chart.border_title), chart.draws - drawn]
        for _ in range(600):
            if chart.draws > drawn:
                break
            await pilot.pause(0.05)
        await pilot.pause()
        print(json.dumps([importers, before, chart.draws - drawn, str(chart.border_title),
                          y_labels(chart)]))

asyncio.run(main())
"""


def test_plotext_loads_on_a_worker_thread_and_the_chart_plots_once_it_is_in() -> None:
    result = subprocess.run(
        [sys.executable, "-c", FIRST_PLOT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    importers, before, plots, title, labels = json.loads(result.stdout.splitlines()[-1])
    assert importers == [False], "textual-plotext imported once, off the UI thread"
    assert before == ["latency (s): plotting…", 0], "no plot until plotext is in"
    assert plots == 1 and title == "latency (s) ±10% band", title
    assert labels, "the plot has its value axis"


async def test_a_held_chart_keeps_what_it_is_shown_and_plots_the_newest_on_release() -> None:
    import textual_plotext.plot  # noqa: F401  (loaded: the plot is built at once)

    chart = BaselineChart("latency", unit_label="s")
    async with ChartApp(chart).run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        drawn = chart.draws
        chart.hold()
        chart.show([latency([0.2, 0.3], 0.25)])
        chart.show([latency([0.2, 0.3, 0.4], 0.25)])
        await pilot.pause()
        assert chart.draws == drawn and chart.border_title == "latency (s): plotting…"
        chart.release()
        await pilot.pause()
        assert chart.draws == drawn + 1, "plotted once, from the newest data"
        assert chart.series[0].points[-1].v == 0.4
        assert chart.border_title == "latency (s) ±10% band"
        chart.release()  # released already: nothing more
        assert chart.draws == drawn + 1


class HeldOpener:
    """A session open() that blocks until the test releases it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.session = fake_session(FakeRunbook())

    def open(self) -> Session:
        self.release.wait(30)
        return self.session

    def opener(self) -> SessionOpener:
        header = HeaderState(context=TARGET.context, server=TARGET.server)
        return SessionOpener(header, self.open, "connecting to skewmit-sim…")


async def test_while_the_session_opens_the_figures_show_and_the_chart_waits_for_the_checks() -> (
    None
):
    import textual_plotext.plot  # noqa: F401  (loaded: what is held is the plot itself)

    held = HeldOpener()
    app = SkewmitApp(held.opener())
    app.animation_level = "none"
    answered_at_plot: list[set[Step]] = []
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            chart = app.main.query_one("#chart-latency", BaselineChart)
            release = chart.release

            def release_recorded() -> None:
                if chart.held:
                    answered_at_plot.append(set(app.board.reports))
                release()

            chart.release = release_recorded  # type: ignore[method-assign]
            await wait_until(pilot, lambda: app.main.composed, "the first frame")
            drawn = chart.draws
            # Prometheus answered before the cluster: the figures show, the plot waits.
            app.post_message(MetricsSampled(metrics()))
            spark = app.main.query_one("#spark-p95", MetricSparkline)
            await wait_until(pilot, lambda: spark.series is not None, "the p95 figure")
            assert chart.draws == drawn and chart.border_title == "latency (s): plotting…"
            held.release.set()
            await wait_until(pilot, lambda: chart.draws > drawn, "the chart plotted")
            first = {STEP_ORDER[0], Step.HARDWARE}
            assert answered_at_plot and first <= answered_at_plot[0], answered_at_plot
            await wait_until(pilot, lambda: checked(app), "every step's checks")
    finally:
        held.release.set()


async def test_a_chart_held_for_a_cluster_that_never_answers_is_plotted_after_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import textual_plotext.plot  # noqa: F401

    monkeypatch.setattr(tui.dashboard, "CHART_HOLD_MAX_S", 0.3)
    held = HeldOpener()
    app = SkewmitApp(held.opener())
    app.animation_level = "none"
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            chart = app.main.query_one("#chart-latency", BaselineChart)
            await wait_until(pilot, lambda: app.main.composed, "the first frame")
            drawn = chart.draws
            app.post_message(MetricsSampled(metrics()))
            await wait_until(pilot, lambda: chart.draws > drawn, "the chart plotted anyway")
            assert app.session is None, "the cluster never answered"
            assert not chart.held
    finally:
        held.release.set()
