"""The app's background work: worker groups, the messages workers post back, the poll that
never overlaps itself, and the worker methods.

Every Runbook call blocks on the network, so it runs only in a thread worker; from there the
only UI call is `post_message` of one of these past-tense messages, and the UI thread updates
the widgets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App
from textual.message import Message
from textual.timer import Timer

from services.errors import SkewmitError
from services.gate import Applied, RevertRefused
from services.models import (
    ActionSpec,
    MetricSeries,
    Plan,
    Preview,
    RolloutProgress,
    Step,
    StepReport,
)
from tui.keymap import step_of_action
from tui.step_board import journal_changes

# Worker groups: one per poll, so polls of different kinds never cancel each other.
CHECK_GROUPS: dict[Step, str] = {step: f"check-{step.value}" for step in Step}
GROUP_ROLLOUT = "rollout"
GROUP_METRICS = "metrics"
GROUP_LOG = "action-log"
GROUP_ACTION = "action"  # plan + preview, apply, revert: one at a time
GROUP_EVIDENCE = "evidence"


# -- messages ---------------------------------------------------------------------------


@dataclass
class StepChecked(Message):
    step: Step
    report: StepReport


@dataclass
class RolloutProgressed(Message, bubble=False):
    progress: RolloutProgress | None
    error: str = ""

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
    entries: list[Any]  # widgets.action_log.ActionLogEntry
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


# -- polling ------------------------------------------------------------------------------


class Poll:
    """A periodic read that never overlaps itself.

    `request()` starts the read now, or, when one is running, once more right after it;
    `finished()` (called when its worker ends) schedules the next one `interval()` seconds
    later. A poll whose pane is hidden waits until `resume()`.
    """

    def __init__(
        self,
        start: Callable[[], object],
        interval: Callable[[], float],
        set_timer: Callable[[float, Callable[[], None]], Timer],
        visible: Callable[[], bool] = lambda: True,
    ) -> None:
        self._start = start
        self._interval = interval
        self._set_timer = set_timer
        self._visible = visible
        self._timer: Timer | None = None
        self.running = False
        self._again = False
        self._due = False
        self.stopped = False
        self.runs = 0

    def request(self) -> None:
        if self.stopped:
            return
        if self.running:
            self._again = True
            return
        if not self._visible():
            self._due = True
            return
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.running = True
        self.runs += 1
        self._start()

    def finished(self) -> None:
        self.running = False
        if self.stopped:
            return
        if self._again:
            self._again = False
            self.request()
            return
        self._timer = self._set_timer(self._interval(), self.request)

    def resume(self) -> None:
        """The pane became visible: read now if a read came due while hidden."""
        if self._due:
            self._due = False
            self.request()

    def stop(self) -> None:
        self.stopped = True
        if self._timer is not None:
            self._timer.stop()
            self._timer = None


class RunbookWorkers(App[int]):
    """The worker methods of the app (mixed into SkewmitApp): each reads or changes through
    the runbook on a thread and posts the result."""

    session: Any  # tui.session.Session

    def fetch_step(self, step: Step) -> None:
        self.run_worker(
            partial(self._fetch_step, step),
            name=f"check {step.value}",
            group=CHECK_GROUPS[step],
            exclusive=True,
            thread=True,
            exit_on_error=False,
        )

    def _fetch_step(self, step: Step) -> None:
        self.post_message(StepChecked(step, self.session.runbook.check(step)))

    @work(thread=True, exclusive=True, group=GROUP_ROLLOUT, exit_on_error=False)
    def poll_rollout(self) -> None:
        try:
            self.post_message(RolloutProgressed(self.session.runbook.progress()))
        except SkewmitError as exc:
            self.post_message(RolloutProgressed(None, str(exc)))

    @work(thread=True, exclusive=True, group=GROUP_METRICS, exit_on_error=False)
    def poll_metrics(self) -> None:
        sampler = self.session.metrics_sampler
        if sampler is None:
            why = self.session.metrics_note or "no metrics source"
            self.post_message(MetricsSampled([], why))
            return
        try:
            self.post_message(MetricsSampled(sampler()))
        except SkewmitError as exc:
            self.post_message(MetricsSampled([], str(exc)))

    @work(thread=True, exclusive=True, group=GROUP_LOG, exit_on_error=False)
    def fetch_log(self) -> None:
        from tui.session import journal_log_entries

        rows = journal_log_entries(self.session.runbook)
        journal = self.session.runbook.journal
        standing, reverted = journal_changes(journal.entries() if journal is not None else ())
        self.post_message(JournalRead(rows, standing, reverted))

    # Never exclusive: a second request must not cancel an apply half-way; `action_busy`
    # keeps actions one at a time instead.
    @work(thread=True, group=GROUP_ACTION, exit_on_error=False)
    def run_preview(self, action: ActionSpec, inputs: dict[str, str]) -> None:
        try:
            plan = self.session.runbook.plan(action.id, inputs)
            preview = self.session.runbook.gate.preview(plan)
        except SkewmitError as exc:
            self.post_message(ActionFailed(action.title, str(exc), action.step))
            return
        self.post_message(PreviewReady(action, plan, preview))

    @work(thread=True, group=GROUP_ACTION, exit_on_error=False)
    def run_apply(self, message: PreviewReady) -> None:
        try:
            applied = self.session.runbook.gate.apply(message.plan, message.preview)
        except SkewmitError as exc:
            self.post_message(ActionFailed(message.action.title, str(exc), message.action.step))
            return
        self.post_message(ActionApplied(message.action, applied))

    @work(thread=True, group=GROUP_ACTION, exit_on_error=False)
    def run_revert_preview(self, seq: int, title: str) -> None:
        try:
            preview = self.session.runbook.gate.preview_revert(seq)
        except SkewmitError as exc:  # the gate reports refusals in the preview; this is I/O
            self.post_message(ActionFailed(f"Revert #{seq} {title}", str(exc)))
            return
        self.post_message(RevertPreviewReady(seq, title, preview))

    @work(thread=True, group=GROUP_ACTION, exit_on_error=False)
    def run_revert(self, seq: int, title: str) -> None:
        try:
            applied = self.session.runbook.gate.revert(seq)
        except RevertRefused as exc:
            self.post_message(ActionFailed(f"Revert #{seq}", str(exc), None, exc.diff))
            return
        except SkewmitError as exc:
            self.post_message(ActionFailed(f"Revert #{seq} {title}", str(exc)))
            return
        self.post_message(ActionReverted(seq, applied, self._step_of_entry(seq)))

    def _step_of_entry(self, seq: int) -> Step | None:
        """The step of journal entry `seq`'s action (blocking file read)."""
        journal = self.session.runbook.journal
        for entry in journal.entries() if journal is not None else ():
            if entry.seq == seq and entry.type == "applied":
                try:
                    return step_of_action(str(entry.data.get("action", "")))
                except ValueError:
                    return None
        return None

    @work(thread=True, exclusive=True, group=GROUP_EVIDENCE, exit_on_error=False)
    def run_evidence(self) -> None:
        try:
            bundle = self.session.runbook.capture_evidence(self.session.evidence_dir)
        except SkewmitError as exc:
            self.post_message(ActionFailed("Evidence capture", str(exc), Step.VALIDATE))
            return
        # A services.evidence.Bundle: the tarball is what people pass on.
        self.post_message(EvidenceCaptured(Path(getattr(bundle, "tarball", bundle))))
