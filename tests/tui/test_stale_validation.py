"""Issue 9, stale PASS: the validation verdict on screen never outlives its data.

After a PASS, Prometheus starts answering 500: the validation panel and the full-screen view
kept "PASS: the incident can be declared resolved" and "newest sample 2 s old" indefinitely
while only the checklist row said failed. Now a failed read, a failed metrics sample or a
verdict that is not renewed replaces PASS with "unknown since HH:MM:SS UTC" at once, and the
next good verdict brings it back.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from textual.widgets import Label, Static

from services.errors import UnreachableError
from services.guidance import GUIDANCE
from services.models import CheckResult, MetricSeries, Step, Verdict
from services.runbook import StepReport
from tests.tui.conftest import wait_until
from tests.tui.fakes import T0, FakeRunbook, fake_session, metrics
from tui.app import SkewmitApp
from tui.screens.validation_view import ValidationScreen
from tui.session import Intervals
from widgets.validation_panel import ValidationPanel

PROMETHEUS_500 = (
    "Prometheus at http://prometheus:9090 answered HTTP 500 for the query "
    "histogram_quantile(0.95, ...): internal server error"
)


def passing() -> Verdict:
    checks = (
        CheckResult("data-fresh", "pass", 2.0, None, "<= 60 s", "newest sample 2 s old"),
        CheckResult("p95", "pass", 1.1, 1.2, "<= 110%", "p95 1.1 s vs baseline 1.2 s"),
    )
    return Verdict("pass", checks, T0, 300.0)


@dataclass
class FlakyPrometheus(FakeRunbook):
    """The fake runbook whose validation reads Prometheus: `broken` makes it answer 500."""

    broken: bool = False
    hang: threading.Event | None = None  # validation reads block until it is set

    def check(self, step: Step) -> StepReport:
        if step != Step.VALIDATE:
            return super().check(step)
        self.calls.append("check validate")
        if self.hang is not None:
            self.hang.wait(30)
        guide = GUIDANCE[Step.VALIDATE]
        if self.broken:
            # What Runbook.check makes of the UnreachableError the metrics source raises.
            return StepReport(step, "failed", (), (), (), guide, PROMETHEUS_500)
        return StepReport(step, "ok", (), (), ("verdict: pass",), guide, data=passing())


def panel_text(panel: ValidationPanel) -> str:
    verdict = str(panel.query_one(".vp-verdict", Label).render())
    countdown = str(panel.query_one(".vp-countdown", Label).render())
    checks = str(panel.query_one(".vp-checks", Static).render())
    return f"{verdict}\n{countdown}\n{checks}"


def panels(app: SkewmitApp) -> list[str]:
    """The text of every validation panel on screen (the sidebar's and the full view's)."""
    return [panel_text(p) for screen in app.screen_stack for p in screen.query(ValidationPanel)]


def app_for(runbook: FakeRunbook, **session: Any) -> SkewmitApp:
    app = SkewmitApp(fake_session(runbook, **session))
    app.animation_level = "none"
    return app


async def test_a_failed_prometheus_read_replaces_pass_on_both_screens_at_once() -> None:
    runbook = FlakyPrometheus()
    app = app_for(runbook)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.dashboard.verdict is not None, "the first verdict")
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, ValidationScreen), "the view")
        await wait_until(pilot, lambda: len(panels(app)) == 2, "both panels")
        await wait_until(
            pilot, lambda: all(t.startswith("PASS") for t in panels(app)), "PASS shown"
        )
        runbook.broken = True
        await pilot.press("ctrl+r")
        await wait_until(
            pilot, lambda: all("unknown since" in t for t in panels(app)), "unknown shown"
        )
        for text in panels(app):
            # The session's clock is frozen at T0 (16:00:00 UTC) in these tests.
            assert text.startswith("unknown since 16:00:00 UTC")
            assert "PASS: the incident can be declared resolved" not in text.split("\n")[0]
            assert "newest sample 2 s old" not in text, "the stale checks are gone"
            assert "HTTP 500" in text, "the panel says what failed"
            assert "the last verdict was PASS" in text
        # Prometheus answers again: the next verdict stands.
        runbook.broken = False
        await pilot.press("ctrl+r")
        await wait_until(
            pilot, lambda: all(t.startswith("PASS") for t in panels(app)), "PASS again"
        )


async def test_a_failed_metrics_sample_makes_the_verdict_unknown() -> None:
    failing = {"now": False}

    def sampler() -> list[MetricSeries]:
        if failing["now"]:
            raise UnreachableError(PROMETHEUS_500)
        return metrics()

    app = app_for(FlakyPrometheus(), metrics_sampler=sampler)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.dashboard.verdict is not None, "the first verdict")
        main_panel = app.main.query_one(ValidationPanel)
        assert panel_text(main_panel).startswith("PASS")
        failing["now"] = True
        app.polls["metrics"].request()
        await wait_until(
            pilot, lambda: "unknown since" in panel_text(main_panel), "unknown after the sample"
        )
        assert "metrics: " in panel_text(main_panel) and "HTTP 500" in panel_text(main_panel)


async def test_a_verdict_that_is_not_renewed_goes_unknown() -> None:
    clock = {"now": T0}
    intervals = Intervals(checks=3600, validate=5.0, rollout=3600, rollout_active=1, metrics=3600)
    runbook = FlakyPrometheus()
    app = app_for(runbook, now=lambda: clock["now"], intervals=intervals)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: app.dashboard.verdict is not None, "the first verdict")
            main_panel = app.main.query_one(ValidationPanel)
            assert panel_text(main_panel).startswith("PASS")
            # The next validation read hangs; 20 s on (3 intervals = 15 s) nothing came back.
            runbook.hang = threading.Event()
            await pilot.press("ctrl+r")
            clock["now"] = T0 + 20
            await wait_until(
                pilot, lambda: "unknown since" in panel_text(main_panel), "unknown when stale"
            )
            assert panel_text(main_panel).startswith("unknown since 16:00:20 UTC")
            assert "no validation result for 20 s" in panel_text(main_panel)
    finally:
        if runbook.hang is not None:
            runbook.hang.set()


async def test_the_demo_on_a_fast_clock_keeps_its_verdict_current(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """The launcher's demo session (x30): staleness is judged in wall seconds, as the reads
    answer; the incident's age on the journal's (simulated) clock. Measuring staleness on the
    simulated clock made every verdict "unknown since" half a wall second after it came."""
    from tui.launchers import close_session, open_demo_session

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    session = open_demo_session("skew-incident", 30.0, evidence_dir=tmp_path / "evidence")
    try:
        app = SkewmitApp(session)
        async with app.run_test(size=(120, 40)) as pilot:
            state = app.dashboard.verdict_state
            await wait_until(pilot, lambda: state.verdict is not None, "a verdict", polls=2400)
            for _ in range(6):
                await pilot.pause(0.5)
                assert state.lost is None, state.lost
            age = app.dashboard.elapsed()
            assert age is not None and age >= 0
    finally:
        close_session(session)
