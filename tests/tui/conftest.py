"""Fixtures for the app's tests: a demo session on the simulator (fast clock, journal under
tmp_path) and Pilot helpers that wait on workers and conditions, never on wall time."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from tui.app import SkewmitApp
from tui.launchers import close_session
from tui.screens.validation_view import ValidationScreen
from tui.session import Intervals, MetricsFeed, Session, opened_at_of

SPEED = 60.0  # simulated seconds per wall second: a rollout in about 2 s
FAST = Intervals(checks=1.0, validate=0.5, rollout=1.0, rollout_active=0.2, metrics=0.5)


def demo_runbook(
    scenario: str,
    speed: float,
    *,
    read_only: bool = False,
    permitted: bool = True,
    journal_root: Path,
) -> tuple[Any, Any]:
    """`skewmit demo`'s assembly with the journal under the test's tmp_path. `permitted=False`
    is the simulator's read-only kube user without the --read-only flag: RBAC says no."""
    from tui.demo import open_demo

    runbook, sim = open_demo(
        scenario, speed, read_only=read_only or not permitted, journal_root=journal_root
    )
    runbook.read_only = read_only
    return runbook, sim


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Callable[..., Session]]:
    """`demo(scenario="skew-incident", read_only=False, permitted=True)` -> a Session; every
    simulator it starts is stopped at the end of the test."""
    sessions: list[Session] = []

    def make(
        scenario: str = "skew-incident",
        *,
        speed: float = SPEED,
        read_only: bool = False,
        permitted: bool = True,
        production: bool = False,
    ) -> Session:
        runbook, sim = demo_runbook(
            scenario,
            speed,
            read_only=read_only,
            permitted=permitted,
            journal_root=tmp_path / "state",
        )
        source = runbook.metrics
        session = Session(
            runbook,
            production=production,
            clock_note=f"simulated clock x{speed:g}",
            evidence_dir=tmp_path / "evidence",
            intervals=FAST,
            # None on a fleet with nothing to fix: the demo opens no incident.
            opened_at=opened_at_of(runbook.journal.meta()) if runbook.journal else None,
            simulator=sim,
            metrics_sampler=MetricsFeed(source) if source is not None else None,
            metrics_now=source.now if source is not None else None,
        )
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        close_session(session)


async def wait_until(
    pilot: Pilot[Any], condition: Callable[[], bool], what: str, *, polls: int = 600
) -> None:
    """Let the app run until `condition()` holds; fail naming `what` after `polls` pauses
    (a bound on work, not a timing assertion)."""
    for _ in range(polls):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"gave up waiting for: {what}")


def checked(app: SkewmitApp) -> bool:
    """Every step's checks have come back at least once."""
    return len(app.board.reports) == 6 and not app.board.rechecking


@pytest.fixture
def real_gc() -> Iterator[None]:
    """The real collector for a test that freezes: a clean heap before, nothing left frozen
    after (tui.heap's tests), and no other HeapKeeper following the interpreter's collections
    meanwhile: an app another test in this worker left alive would freeze their survivors and
    change the counts (CI once saw 15 objects frozen by one)."""
    others = [cb for cb in gc.callbacks if "HeapKeeper" in getattr(cb, "__qualname__", "")]
    for callback in others:
        gc.callbacks.remove(callback)
    gc.collect()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.collect()
        gc.callbacks.extend(cb for cb in others if cb not in gc.callbacks)


class PassThroughGc:
    """The real collector behind the interface tui.heap.HeapKeeper takes, for a test to
    count what it calls (subclass and override)."""

    def collect(self, generation: int = 2) -> int:
        return gc.collect(generation)

    def freeze(self) -> None:
        gc.freeze()

    def unfreeze(self) -> None:
        gc.unfreeze()

    def get_objects(self) -> list[Any]:
        return gc.get_objects()

    def get_freeze_count(self) -> int:
        return gc.get_freeze_count()


async def open_validation_view(app: SkewmitApp, pilot: Pilot[Any]) -> ValidationScreen:
    """Press `v` and wait for the validation view; returns it."""
    await pilot.press("v")
    await wait_until(pilot, lambda: isinstance(app.screen, ValidationScreen), "the view")
    assert isinstance(app.screen, ValidationScreen)
    return app.screen


async def wait_for_reads(app: SkewmitApp, pilot: Pilot[Any]) -> None:
    """Until the first metrics and the first verdict are in."""
    await wait_until(
        pilot,
        lambda: bool(app.dashboard.metrics) and app.dashboard.verdict is not None,
        "reads",
    )
