"""Wiring between the app and the runbook: the session the app is given (a real cluster or
the demo's simulator), the metrics feed for the panes, the action log's rows from the journal,
and the entry points the CLI calls: `run_app` and `run_demo` (their flags live in tui.cli, so
`skewmit --help` imports none of this).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.models import MetricSeries
from services.models import Verdict as Verdict
from services.runbook import Runbook
from tui.cli import DEMO_SPEED, add_app_arguments, add_demo_arguments  # noqa: F401

# The metrics the pane shows, the way each reads, and which direction is bad.
METRIC_NAMES = ("p95", "p99", "tokens_per_s", "gpu_util", "gpu_mem")
METRIC_LABELS = {
    "p95": "p95",
    "p99": "p99",
    "tokens_per_s": "tok/s",
    "gpu_util": "GPU %",
    "gpu_mem": "GPU mem",
}
HIGHER_IS_WORSE = {"p95": True, "p99": True, "tokens_per_s": False}


@dataclass(frozen=True)
class Intervals:
    """Seconds (wall clock) between the end of one read and the start of the next."""

    checks: float = 15.0
    validate: float = 5.0
    rollout: float = 10.0
    rollout_active: float = 1.0  # while a rollout skewmit started is in progress
    metrics: float = 5.0


@dataclass
class Session:
    """Everything the app needs that is not a widget: the runbook and how to present it."""

    runbook: Runbook
    production: bool = False
    clock_note: str = ""  # "simulated clock x12" in the demo
    evidence_dir: Path = field(default_factory=lambda: Path("evidence"))
    intervals: Intervals = field(default_factory=Intervals)
    now: Callable[[], float] = time.time  # frozen in snapshot tests
    opened_at: float | None = None  # when the incident was opened (unix seconds)
    simulator: Any = None  # the demo's Simulator, stopped when the app exits
    metrics_sampler: Callable[[], Sequence[MetricSeries]] | None = None
    metrics_now: Callable[[], float] | None = None  # the clock metric timestamps use
    metrics_note: str = ""  # why there are no metrics, shown in the pane

    @property
    def read_only(self) -> bool:
        return self.runbook.read_only

    @property
    def notices(self) -> tuple[str, ...]:
        """Said once at start: "opened read-only: held by ...", intents reconciled."""
        notices: tuple[str, ...] = getattr(self.runbook, "notices", ())  # fakes may lack it
        return notices

    @property
    def incident_id(self) -> str:
        journal = self.runbook.journal
        return journal.incident_id if journal is not None else ""


def first_series(series: Sequence[MetricSeries]) -> dict[str, MetricSeries]:
    """One series per quantity for the sparklines: the first with data, preferring one with
    a baseline (GPU quantities have a series per GPU model; a model the last-known-good
    window did not run on has none)."""

    def rank(item: MetricSeries) -> tuple[bool, bool]:
        return (bool(item.points), item.baseline is not None)

    out: dict[str, MetricSeries] = {}
    for item in series:
        if item.name not in out or rank(item) > rank(out[item.name]):
            out[item.name] = item
    return out


def series_named(series: Sequence[MetricSeries], *names: str) -> list[MetricSeries]:
    return [item for item in series if item.name in names]


def journal_log_entries(runbook: Runbook) -> list[Any]:
    """The action log's rows from the journal, newest first (blocking file read)."""
    from widgets.action_log import ActionLogEntry

    journal = runbook.journal
    if journal is None:
        return []
    entries = journal.entries()
    reverted = {e.data.get("reverts"): e for e in entries if e.type == "reverted"}
    failed_reverts = {e.data.get("reverts") for e in entries if e.type == "revert-refused"}
    rows: list[ActionLogEntry] = []
    for entry in entries:
        when = entry.ts[11:19] if len(entry.ts) >= 19 else entry.ts
        data = entry.data
        if entry.type == "applied":
            undone = entry.seq in reverted
            status = "reverted" if undone else ("applied" if data.get("verified") else "unverified")
            note = str(data.get("verify", ""))
            if undone:
                note = f"reverted by #{reverted[entry.seq].seq}"
            elif entry.seq in failed_reverts:
                note = "revert refused: the object changed since"
            rows.append(
                ActionLogEntry(
                    entry.seq,
                    when,
                    str(data.get("title", data.get("action", ""))),
                    status,
                    note,
                    revertible=not undone,
                )
            )
        elif entry.type == "apply-failed":
            rows.append(
                ActionLogEntry(
                    entry.seq,
                    when,
                    f"apply of entry {data.get('intent')}",
                    "failed",
                    str(data.get("error", "")),
                )
            )
        elif entry.type == "reconciled":
            # An intent a crash left without an outcome, and the cluster could not say.
            rows.append(
                ActionLogEntry(
                    entry.seq,
                    when,
                    str(data.get("title", "")),
                    "unknown",
                    str(data.get("message", "")),
                )
            )
        elif entry.type == "reverted":
            rows.append(
                ActionLogEntry(
                    entry.seq,
                    when,
                    str(data.get("title", "revert")),
                    "applied",
                    str(data.get("verify", "")),
                )
            )
    rows.reverse()
    return rows


def opened_at_of(meta: dict[str, Any]) -> float | None:
    """The journal's incident.json `opened_at` as unix seconds (None when unreadable)."""
    try:
        opened = datetime.strptime(str(meta.get("opened_at", "")), "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return None
    return opened.replace(tzinfo=UTC).timestamp()


# -- metrics for the panes --------------------------------------------------------------


class MetricsFeed:
    """Live series for the sparklines and charts from a MetricsSource: the baseline and the
    last minutes on the first call, one new sample per later call (blocking: call it from a
    worker). Raises what the source raises."""

    def __init__(
        self,
        source: Any,
        baseline_window_s: float = 600.0,
        baseline: Callable[[], Any] | None = None,
    ) -> None:
        self.source = source
        self.baseline_window_s = baseline_window_s
        # The incident's frozen baseline (Runbook.baseline), so the panes and the gate
        # compare with the same numbers; without it, the source's own.
        self.baseline = baseline or (lambda: source.baseline(baseline_window_s))
        self._live: Any = None

    def __call__(self) -> list[MetricSeries]:
        from services.errors import SkewmitError
        from services.metrics import presets
        from services.metrics.series import LiveSeries

        if self._live is None:
            try:
                baseline = self.baseline()
            except SkewmitError:
                baseline = None  # the panes show values without a difference
            live = LiveSeries(self.source, presets.GATE_QUANTITIES, baseline=baseline)
            series: list[MetricSeries] = live.prime()
            self._live = live
            return series
        sampled: list[MetricSeries] = self._live.sample()
        return sampled


# -- starting the app -----------------------------------------------------------------------

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
    from services.session import SessionOptions, is_production, open_session
    from tui.app import SkewmitApp

    options = SessionOptions(
        kubeconfig=args.kubeconfig,
        context=args.context,
        namespace=args.namespace,
        deployment=args.deployment,
        read_only=args.read_only,
        prometheus=args.prometheus,
        preset=args.preset,
        config=args.config,
        take_over=args.take_over,
    )
    try:
        runbook = open_session(options)
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
    )
    return SkewmitApp(session).run() or 0


def open_demo_session(
    scenario: str, speed: float, *, read_only: bool = False, evidence_dir: Path = Path("evidence")
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
        )
    except (ScenarioError, SkewmitError) as exc:
        print(f"skewmit demo: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        return SkewmitApp(session).run() or 0
    finally:
        close_session(session)
