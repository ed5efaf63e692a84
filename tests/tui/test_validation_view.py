"""The validation view (`v`) in the low-bandwidth mode: the charts only on demand (four
plots redrawn are most of what the view would send over a slow link), nothing animated, the
incident clock and the stability countdown by the minute, the checks' figures kept (the main
screen shows only their marks); in the normal mode the charts are there at once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from textual.widgets import Label, ProgressBar, Static

from services.models import Step, StepReport
from tests.tui.conftest import open_validation_view, wait_for_reads, wait_until
from tests.tui.fakes import FakeRunbook, fake_session, verdict
from tui.app import SkewmitApp
from tui.screens.validation_view import ValidationScreen
from widgets.baseline_chart import BaselineChart
from widgets.header_bar import HeaderBar
from widgets.validation_panel import ValidationPanel


def view_of(app: SkewmitApp) -> ValidationScreen:
    screen = app.screen
    assert isinstance(screen, ValidationScreen)
    return screen


def clock(view: ValidationScreen) -> str:
    return str(view.query_one(HeaderBar).query_one("#hb-elapsed", Label).content)


def shown(widget: Any) -> bool:
    return bool(widget.display)


async def test_low_bandwidth_validation_view_draws_charts_on_demand() -> None:
    app = SkewmitApp(fake_session(low_bandwidth=True))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_reads(app, pilot)
        view = await open_validation_view(app, pilot)
        await pilot.pause()
        latency = view.query_one("#vv-latency", BaselineChart)
        assert not shown(view.query_one("#vv-grid"))
        assert "b shows them" in str(view.query_one("#vv-note", Label).content)
        assert latency.series == ()  # no plot is built from the metrics while hidden
        empty_draws = latency.draws
        assert clock(view) == "open 00:12"  # the clock moves once a minute
        assert all(bar.percentage is not None for bar in view.query(ProgressBar))
        await pilot.press("b")
        await wait_until(pilot, lambda: latency.draws > empty_draws, "the latency chart drawn")
        assert latency.series  # from the last metrics, without waiting for the next read
        assert shown(view.query_one("#vv-grid")) and not shown(view.query_one("#vv-note"))
        await pilot.press("b")
        assert not shown(view.query_one("#vv-grid"))
        await pilot.press("v")
        assert app.screen is app.main


async def test_normal_validation_view_shows_the_charts_at_once() -> None:
    app = SkewmitApp(fake_session())
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: bool(app.dashboard.metrics), "metrics")
        view = await open_validation_view(app, pilot)
        latency = view.query_one("#vv-latency", BaselineChart)
        await wait_until(pilot, lambda: bool(latency.series), "the latency chart drawn")
        assert shown(view.query_one("#vv-grid")) and not shown(view.query_one("#vv-note"))
        assert clock(view) == "open 00:12:34"


@dataclass
class WindowFilling(FakeRunbook):
    """The gate cannot judge yet: 754 s until its stability window fills."""

    def check(self, step: Step) -> StepReport:
        report = super().check(step)
        if step is not Step.VALIDATE:
            return report
        return replace(
            report, data=replace(verdict(), verdict="insufficient-data", remaining_s=754)
        )


def panel_text(panel: ValidationPanel) -> tuple[str, str]:
    """The countdown line and the checks, as the operator reads them."""
    countdown = str(panel.query_one(".vp-countdown", Label).content)
    return countdown, str(panel.query_one(".vp-checks", Static).content)


async def test_low_bandwidth_validation_view_keeps_the_figures_and_counts_down_by_the_minute() -> (
    None
):
    app = SkewmitApp(fake_session(WindowFilling(), low_bandwidth=True))
    async with app.run_test(size=(120, 40)) as pilot:
        main_panel = app.main.query_one(ValidationPanel)
        await wait_until(pilot, lambda: "to go" in panel_text(main_panel)[0], "the countdown")
        countdown, checks = panel_text(main_panel)
        assert countdown.endswith("13m00s to go")  # 754 s, by the minute
        assert "p95 stable" in checks and "2.9s vs 1.2s" not in checks  # marks only
        panel = (await open_validation_view(app, pilot)).query_one(ValidationPanel)
        await wait_until(pilot, lambda: "to go" in panel_text(panel)[0], "the view's countdown")
        countdown, checks = panel_text(panel)
        assert countdown.endswith("13m00s to go")
        assert "p95 stable: p95 2.9s vs 1.2s" in checks  # the figures are why it is open


async def test_normal_validation_view_counts_down_by_the_second() -> None:
    app = SkewmitApp(fake_session(WindowFilling()))
    async with app.run_test(size=(120, 40)) as pilot:
        panel = (await open_validation_view(app, pilot)).query_one(ValidationPanel)
        await wait_until(pilot, lambda: "to go" in panel_text(panel)[0], "the countdown")
        countdown, checks = panel_text(panel)
        assert countdown.endswith("12m34s to go")
        assert "p95 stable: p95 2.9s vs 1.2s" in checks
