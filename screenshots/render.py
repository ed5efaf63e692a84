"""Render SVGs of the key screens into screenshots/ (`make screenshots`), from the demo: the
simulator in-process, the app driven by Pilot as a responder would drive it.

    .venv/bin/python screenshots/render.py [--out screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual.pilot import Pilot  # noqa: E402

from tui.app import SkewmitApp  # noqa: E402
from tui.launchers import close_session  # noqa: E402
from tui.session import Intervals, MetricsFeed, Session, opened_at_of  # noqa: E402

SPEED = 30.0


def session(folder: Path) -> Session:
    from tui.demo import open_demo

    runbook, sim = open_demo("skew-incident", SPEED, journal_root=folder / "state")
    source = runbook.metrics
    return Session(
        runbook,
        clock_note=f"simulated clock x{SPEED:g}",
        evidence_dir=folder / "evidence",
        intervals=Intervals(checks=2.0, validate=1.0, rollout=2.0, rollout_active=0.3, metrics=0.5),
        opened_at=opened_at_of(runbook.journal.meta()) if runbook.journal else None,
        simulator=sim,
        metrics_sampler=MetricsFeed(source) if source is not None else None,
        metrics_now=source.now if source is not None else None,
    )


async def until(pilot: Pilot[Any], condition: Callable[[], bool], polls: int = 400) -> None:
    for _ in range(polls):
        if condition():
            return
        await pilot.pause(0.05)
    raise SystemExit("render.py: the demo did not reach the screen it was waiting for")


async def shoot(
    out: Path, name: str, size: tuple[int, int], script: Callable[[SkewmitApp, Pilot[Any]], Any]
) -> None:
    with tempfile.TemporaryDirectory(prefix="skewmit-shots-") as tmp:
        demo = session(Path(tmp))
        app = SkewmitApp(demo)
        app.animation_level = "none"
        try:
            async with app.run_test(size=size) as pilot:
                await until(pilot, lambda: len(app.board.reports) == 6 and not app.board.rechecking)
                await script(app, pilot)
                await pilot.pause(0.3)
                app.clear_notifications()
                await pilot.pause()
                path = app.save_screenshot(filename=f"{name}.svg", path=str(out))
                print(path)
        finally:
            close_session(demo)


async def nothing(app: SkewmitApp, pilot: Pilot[Any]) -> None:
    from services.metrics.series import is_stale

    # Fresh figures: the in-process demo renders its day-old window in these first seconds,
    # and its scraper can fall a scrape or two behind meanwhile (not the `skewmit demo`
    # the README shows, whose simulator runs in a process of its own).
    dashboard = app.dashboard
    await until(
        pilot,
        lambda: (
            bool(dashboard.metrics)
            and not any(is_stale(s, dashboard.clock()) for s in dashboard.metrics if s.points)
            and dashboard.verdict is not None
            and "stale" not in " ".join(check.message for check in dashboard.verdict.checks)
        ),
    )


def keys(*presses: str) -> Callable[[SkewmitApp, Pilot[Any]], Any]:
    async def run(app: SkewmitApp, pilot: Pilot[Any]) -> None:
        for key in presses:
            await pilot.press(key)
            await pilot.pause(0.3)

    return run


async def rolling_back(app: SkewmitApp, pilot: Pilot[Any]) -> None:
    await pilot.press("u")
    await pilot.pause(0.3)
    await pilot.press("enter")
    await pilot.pause(0.5)
    await pilot.press("y")
    dashboard = app.dashboard
    await until(
        pilot,
        lambda: (
            dashboard.progress is not None
            and not dashboard.progress.done
            and dashboard.progress.updated > 1
        ),
    )


async def validation_view(app: SkewmitApp, pilot: Pilot[Any]) -> None:
    await rolling_back(app, pilot)
    await until(pilot, lambda: app.board.running_step is None, polls=1200)
    await pilot.press("v")
    await pilot.pause(3.0)


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    await shoot(out, "main-120x40", (120, 40), nothing)
    await shoot(out, "main-80x24", (80, 24), keys())
    await shoot(out, "inspector-80x24", (80, 24), keys("]", "]"))
    await shoot(out, "preview-120x40", (120, 40), keys("u", "enter"))
    await shoot(out, "rollout-120x40", (120, 40), rolling_back)
    await shoot(out, "validation-200x50", (200, 50), validation_view)
    await shoot(out, "help-80x24", (80, 24), keys("question_mark"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    asyncio.run(main(parser.parse_args().out))
