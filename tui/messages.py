"""What the app's workers and screens post back to it: past-tense messages, one per result.

Workers (tui.workers) run every Runbook call on a thread and post one of these; the App and
the action controller (tui.action_controller) act on them on the UI thread. High-rate
messages collapse (`bubble=False`, `can_replace`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

from services.models import (
    ActionSpec,
    HardwareReport,
    JournalAction,
    MetricSeries,
    Plan,
    Preview,
    RolloutProgress,
    Step,
    StepReport,
)

if TYPE_CHECKING:
    # A type only: services.gate loads the Kubernetes client; the first frame must not wait.
    from services.gate import Applied
    from tui.session import Session


@dataclass
class SessionOpened(Message):
    """The opener answered: the session, or None and why it could not be opened."""

    session: Session | None
    error: str = ""


@dataclass
class StepChecked(Message):
    step: Step
    report: StepReport
    # When the read started (time.monotonic): the rollout it carries is shown only when no
    # newer read of the rollout has been (reads answer out of order on the worker threads).
    read_at: float = field(default_factory=time.monotonic)


@dataclass
class PodsListed(Message, bubble=False):
    """The Deployment's pods, their nodes and GPU labels before step 5's first answer
    (services.hardware.listed_pod_rows): every row still "checking", no verdict."""

    report: HardwareReport


@dataclass
class RolloutProgressed(Message, bubble=False):
    progress: RolloutProgress | None
    error: str = ""
    read_at: float = field(default_factory=time.monotonic)  # as StepChecked's

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RolloutProgressed)


@dataclass
class MetricsSampled(Message, bubble=False):
    series: Sequence[MetricSeries]  # GPU quantities: one series per GPU model
    error: str = ""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, MetricsSampled)


@dataclass
class PreviewReady(Message):
    action: ActionSpec
    plan: Plan
    preview: Preview


@dataclass
class ActionApplied(Message):
    action: ActionSpec
    applied: Applied


@dataclass
class RevertPreviewReady(Message):
    """The gate's preview of reverting journal entry `seq`: the inverse, dry run and diff."""

    seq: int
    title: str
    preview: Preview


@dataclass
class ActionReverted(Message):
    seq: int
    applied: Applied
    step: Step | None = None  # the step of the reverted change's action, when the journal says


@dataclass
class ActionFailed(Message):
    title: str
    error: str
    step: Step | None = None
    detail: str = ""  # e.g. the diff of a refused revert


@dataclass
class JournalRead(Message, bubble=False):
    entries: list[JournalAction]  # newest first, as the action log lists them
    # Changes standing per step, and steps whose changes were all reverted (step_board).
    standing: dict[Step, set[int]] = field(default_factory=dict)
    reverted: set[Step] = field(default_factory=set)

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, JournalRead)


@dataclass
class EvidenceCaptured(Message):
    path: Path


@dataclass
class PaneShown(Message):
    """A pane came into view: its polls resume."""

    pane: str
