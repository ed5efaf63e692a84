"""The validation view (`v`) is built once and kept (issue 9: on `large` each opening composed,
styled and drew a new screen, 133-400 ms of frozen UI): reopening it shows the same view,
whose charts are not rebuilt when no new sample came, and which shows what arrived while it
was closed (the verdict, new samples), never what it showed when it was closed."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
from textual.widgets import Label

from services.models import Step, StepReport, Verdict
from tests.tui.conftest import open_validation_view, wait_for_reads, wait_until
from tests.tui.fakes import FakeRunbook, fake_session, verdict
from tui.app import SkewmitApp
from tui.screens.validation_view import PENDING_CLASS, ValidationScreen
from widgets.baseline_chart import BaselineChart
from widgets.validation_panel import ValidationPanel


@dataclass
class Judged(FakeRunbook):
    """The gate's verdict is whatever `judged` holds now."""

    judged: Verdict = field(default_factory=verdict)

    def check(self, step: Step) -> StepReport:
        report = super().check(step)
        return replace(report, data=self.judged) if step is Step.VALIDATE else report


def verdict_line(view: ValidationScreen) -> str:
    return str(view.query_one(ValidationPanel).query_one(".vp-verdict", Label).content)


async def test_reopening_the_validation_view_reuses_it_and_shows_what_came_meanwhile() -> None:
    runbook = Judged()
    app = SkewmitApp(fake_session(runbook))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_reads(app, pilot)
        view = await open_validation_view(app, pilot)
        latency = view.query_one("#vv-latency", BaselineChart)
        await wait_until(pilot, lambda: bool(latency.series), "the latency chart drawn")
        # The plots come one a frame on the first opening; all four end up shown.
        await wait_until(pilot, lambda: not view.query(f".{PENDING_CLASS}"), "every chart")
        assert all(chart.visible for chart in view.query(BaselineChart))
        await wait_until(pilot, lambda: verdict_line(view).startswith("FAIL"), "the verdict")
        draws = latency.draws
        await pilot.press("v")
        assert app.screen is app.main

        # While it is closed the gate passes.
        runbook.judged = replace(verdict(), verdict="pass", checks=())
        app.recheck_all()  # the next poll
        await wait_until(
            pilot,
            lambda: app.dashboard.verdict is not None and app.dashboard.verdict.verdict == "pass",
            "the new verdict read",
        )
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, ValidationScreen), "reopened")
        assert app.screen is view, "the same view, not a new one"
        await wait_until(pilot, lambda: verdict_line(view).startswith("PASS"), "PASS shown")
        await pilot.pause()
        # The same samples as when it closed: the plot is not built again.
        assert latency.series and latency.draws == draws
        await pilot.press("v")
        assert app.screen is app.main


async def test_the_views_footer_is_not_rebuilt_by_the_polls() -> None:
    """Every poll's answer asks for a bindings refresh; Textual's plain Footer rebuilt its keys
    each time (24-34 layouts of the whole view while it was watched on `large`). The view's
    footer keeps its keys while they stay the same."""
    from widgets.quiet_footer import QuietFooter

    app = SkewmitApp(fake_session(Judged()))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_reads(app, pilot)
        view = await open_validation_view(app, pilot)
        footer = view.query_one(QuietFooter)
        await wait_until(pilot, lambda: bool(footer.children), "the view's keys")
        await pilot.pause()
        rebuilds = footer.rebuilds
        for _ in range(5):
            app.refresh_bindings()  # what every poll's answer asks for
            await pilot.pause()
        assert footer.rebuilds == rebuilds


async def test_the_first_opening_is_styled_as_a_full_restyle_would_style_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The view's first showing skips Textual's restyle of every widget (they were styled as
    they mounted, a moment before; it cost 20-40 ms of the UI thread on opening, the longest
    stall left with a slow API server): none runs, and what it draws, and each widget's
    styles, are those a full restyle gives."""
    restyled: list[ValidationScreen] = []
    restyle = ValidationScreen.update_node_styles

    def counted(self: ValidationScreen, animate: bool = True) -> None:
        if self.children:  # the view's widgets restyled (not the screen alone, in compose)
            restyled.append(self)
        restyle(self, animate)

    monkeypatch.setattr(ValidationScreen, "update_node_styles", counted)
    app = SkewmitApp(fake_session(Judged()))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_reads(app, pilot)
        view = await open_validation_view(app, pilot)
        await wait_until(pilot, lambda: not view.query(f".{PENDING_CLASS}"), "every chart")
        await pilot.pause()
        assert restyled == [], "the view was restyled whole on its first showing"

        def styles() -> list[tuple[str, str]]:
            return [(repr(w), w.styles.css) for w in view.walk_children(with_self=True)]

        shown, styled = app.export_screenshot(), styles()
        view.update_node_styles(animate=False)
        await pilot.pause()
        assert styles() == styled
        assert app.export_screenshot() == shown
