"""Wiring between the app and the runbook: the session the app is given (a real cluster or
the demo's simulator) and the action log's rows from the journal. The launchers that open a
session and start the app are in tui.launchers; the metrics feed in tui.metrics_feed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.models import MetricSeries
from services.models import Verdict as Verdict
from services.runbook import Runbook
from tui.metrics_feed import MetricsFeed as MetricsFeed  # moved; importers keep working
from tui.metrics_feed import first_series as first_series
from tui.metrics_feed import series_named as series_named

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
    low_bandwidth: bool = False  # tui.low_bandwidth: also on from the environment or config

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


def journal_log_entries(runbook: Runbook) -> list[Any]:
    """The action log's rows from the journal, newest first (blocking file read); the rule
    is services.journal_actions'."""
    from services.journal_actions import journal_actions
    from widgets.action_log import ActionLogEntry

    journal = runbook.journal
    if journal is None:
        return []
    return [
        ActionLogEntry(a.seq, a.when, a.title, a.status, a.note, revertible=a.revertible)
        for a in journal_actions(journal.entries())
    ]


def opened_at_of(meta: dict[str, Any]) -> float | None:
    """The journal's incident.json `opened_at` as unix seconds (None when unreadable)."""
    try:
        opened = datetime.strptime(str(meta.get("opened_at", "")), "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return None
    return opened.replace(tzinfo=UTC).timestamp()
