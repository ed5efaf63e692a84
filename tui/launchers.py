"""Starting the app: `run_app` (a real cluster) and `run_demo` (the simulator in-process),
and the demo session the drill, the screenshots and the tests open and close. Their flags
live in tui.cli, so `skewmit --help` imports none of this.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from services.runbook import Runbook
from tui.metrics_feed import MetricsFeed
from tui.session import Intervals, Session, opened_at_of

EXIT_ERROR = 2


def _metrics_source(runbook: Runbook, args: argparse.Namespace) -> tuple[Any, str]:
    """A Prometheus source when one is configured: (source or None, why not)."""
    from services.config import metrics_settings
    from services.errors import UnreachableError
    from services.metrics.prometheus import from_settings

    settings = metrics_settings(runbook.config, url=args.prometheus, preset=args.preset)
    if not settings.url:
        return None, "no metrics source: pass --prometheus URL or set prometheus.url"
    target = runbook.target
    try:
        return from_settings(settings, target.namespace, target.deployment, args.preset), ""
    except UnreachableError as exc:
        return None, str(exc)


def run_app(args: argparse.Namespace) -> int:
    """`skewmit --deployment NAME ...`: the app against a real cluster. Exit 2 when the
    session cannot be opened (the message says what to fix)."""
    from services.errors import SkewmitError
    from services.session import is_production, open_session
    from tui.app import SkewmitApp
    from tui.cli import session_options

    try:
        runbook = open_session(session_options(args))
        source, why = _metrics_source(runbook, args)
    except SkewmitError as exc:
        print(f"skewmit: {exc}", file=sys.stderr)
        return EXIT_ERROR
    runbook.metrics = source
    journal = runbook.journal
    session = Session(
        runbook,
        production=is_production(runbook.target.context, runbook.config),
        evidence_dir=Path(args.evidence_dir),
        opened_at=opened_at_of(journal.meta()) if journal is not None else None,
        metrics_sampler=(
            MetricsFeed(source, baseline=runbook.baseline) if source is not None else None
        ),
        metrics_now=source.now if source is not None else None,
        metrics_note=why,
        low_bandwidth=bool(getattr(args, "low_bandwidth", False)),
    )
    return SkewmitApp(session).run() or 0


def open_demo_session(
    scenario: str,
    speed: float,
    *,
    read_only: bool = False,
    evidence_dir: Path = Path("evidence"),
    low_bandwidth: bool = False,
) -> Session:
    """The simulator in-process and a session on it. Raises ScenarioError, SkewmitError."""
    from tui.demo import open_demo

    runbook, simulator = open_demo(scenario, speed, read_only=read_only)
    source = runbook.metrics
    journal = runbook.journal
    return Session(
        runbook,
        clock_note=f"simulated clock x{speed:g}",
        evidence_dir=evidence_dir,
        intervals=Intervals(checks=5.0, validate=2.0, rollout=5.0, rollout_active=0.5, metrics=1.0),
        opened_at=opened_at_of(journal.meta()) if journal is not None else None,
        simulator=simulator,
        metrics_sampler=(
            MetricsFeed(source, baseline=runbook.baseline) if source is not None else None
        ),
        metrics_now=source.now if source is not None else None,
        low_bandwidth=low_bandwidth,
    )


def close_session(session: Session) -> None:
    """Stop what the session started (the demo's simulator and metrics scraper)."""
    source = session.runbook.metrics
    if source is not None and hasattr(source, "stop"):
        source.stop()
    if session.simulator is not None:
        session.simulator.stop()


def run_demo(args: argparse.Namespace) -> int:
    """`skewmit demo [--scenario NAME]`: the simulator in-process and the app on it."""
    from services.errors import SkewmitError
    from services.simulator.scenario import ScenarioError
    from tui.app import SkewmitApp

    if not 0 < args.speed <= 1000:
        print(f"skewmit demo: --speed {args.speed} is out of range; use (0, 1000]", file=sys.stderr)
        return EXIT_ERROR
    try:
        session = open_demo_session(
            args.scenario,
            args.speed,
            read_only=args.read_only,
            evidence_dir=Path(args.evidence_dir),
            low_bandwidth=bool(getattr(args, "low_bandwidth", False)),
        )
    except (ScenarioError, SkewmitError) as exc:
        print(f"skewmit demo: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        return SkewmitApp(session).run() or 0
    finally:
        close_session(session)
