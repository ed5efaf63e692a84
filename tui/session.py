"""Wiring between the app and the runbook: the session the app is given (a real cluster or
the demo's simulator), or the opener that opens it once the app has drawn its first frame.
The launchers that open a session and start the app are in tui.launchers; the metrics feed in
tui.metrics_feed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.models import MetricSeries
from services.models import Verdict as Verdict
from tui.metrics_feed import MetricsFeed as MetricsFeed  # moved; importers keep working
from tui.metrics_feed import first_series as first_series
from tui.metrics_feed import series_named as series_named
from widgets.header_bar import HeaderState

if TYPE_CHECKING:
    # Only a type here: the runbook (and the Kubernetes client it loads, ~0.3 s) is not
    # needed to draw the first frame (issue 12).
    from services.runbook import Runbook

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
    metrics_note: str = ""  # why there are no metrics (yet), shown in the pane until a reading
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


@dataclass(frozen=True)
class SessionOpener:
    """A session still to be opened, for an app that draws its first frame before any
    network call (issue 12): what the header can say from local files alone (kubeconfig,
    flags, config), and the blocking call that opens the session, which the app runs in a
    worker. `open` raises SkewmitError (or ScenarioError in the demo) with the message the
    operator reads; the app then exits with EXIT_ERROR and prints it, as before."""

    header: HeaderState  # context, server, namespace, deployment, read_only, production
    open: Callable[[], Session]
    waiting: str = "connecting…"  # what the panes say until the session is open
    close: Callable[[Session], None] | None = None  # run after the app exits (demo: stop)
    prog: str = "skewmit"  # how the app names itself when it says why opening failed


def opened_at_of(meta: dict[str, Any]) -> float | None:
    """The journal's incident.json `opened_at` as unix seconds (None when unreadable)."""
    try:
        opened = datetime.strptime(str(meta.get("opened_at", "")), "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return None
    return opened.replace(tzinfo=UTC).timestamp()
