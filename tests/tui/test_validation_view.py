"""The validation view (`v`) in the low-bandwidth mode: the charts only on demand (four
plots redrawn are most of what the view would send over a slow link), nothing animated, the
incident clock by the minute; in the normal mode the charts are there at once."""

from __future__ import annotations

from typing import Any

from textual.widgets import Label, ProgressBar

from tests.tui.conftest import wait_until
from tests.tui.fakes import fake_session
from tui.app import SkewmitApp
from tui.screens.validation_view import ValidationScreen
from widgets.baseline_chart import BaselineChart
from widgets.header_bar import HeaderBar


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
        await wait_until(pilot, lambda: bool(app.metrics) and app.verdict is not None, "reads")
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, ValidationScreen), "the view")
        view = view_of(app)
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
        await wait_until(pilot, lambda: bool(app.metrics), "metrics")
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, ValidationScreen), "the view")
        view = view_of(app)
        latency = view.query_one("#vv-latency", BaselineChart)
        await wait_until(pilot, lambda: bool(latency.series), "the latency chart drawn")
        assert shown(view.query_one("#vv-grid")) and not shown(view.query_one("#vv-note"))
        assert clock(view) == "open 00:12:34"
