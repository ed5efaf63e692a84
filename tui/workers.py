"""The app's background work: worker groups, the poll that never overlaps itself, and
`RunbookWorkers`, which runs each Runbook call on a thread and posts the result.

Every Runbook call blocks on the network, so it runs only in a thread worker; from there the
only UI call is `post_message` of a past-tense message (tui.messages), and the UI thread
updates the widgets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.timer import Timer

from services.errors import SkewmitError
from services.models import ActionSpec, Step, StepReport
from services.report_listener import reports_to
from tui.keymap import step_of_action
from tui.messages import (
    ActionApplied,
    ActionFailed,
    ActionReverted,
    EvidenceCaptured,
    JournalRead,
    MetricsSampled,
    PodsListed,
    PreviewReady,
    RevertPreviewReady,
    RolloutProgressed,
    StepChecked,
)
from tui.step_board import journal_changes

if TYPE_CHECKING:
    from tui.session import Session

# Worker groups: one per poll, so polls of different kinds never cancel each other.
CHECK_GROUPS: dict[Step, str] = {step: f"check-{step.value}" for step in Step}
GROUP_ROLLOUT = "rollout"
GROUP_METRICS = "metrics"
GROUP_LOG = "action-log"
GROUP_ACTION = "action"  # plan + preview, apply, revert: one at a time
GROUP_EVIDENCE = "evidence"
GROUP_OPEN = "open-session"  # the opener's one call, before any poll
GROUP_PODS = "pod-rows"  # the inspector's first rows, from the informer's first list
# Thread workers run on the event loop's default executor, which asyncio sizes by the CPU
# count (6 threads on 2 cores): the six checks took them all at start, each waiting for the
# informer's first list, and the metrics' first read waited behind them for seconds.
WORKER_THREADS = 24


def use_worker_threads(threads: int = WORKER_THREADS) -> None:
    """Give the running event loop a default executor of `threads` threads (call on the loop,
    before the first thread worker starts), so that no pane's read queues behind the others'."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="skewmit-worker")
    )


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


class RunbookWorkers:
    """Each method starts one thread worker on `app` that reads or changes through the
    session's runbook and posts the result to `app` (the worker's state changes reach the
    app too, which is how polls learn they finished)."""

    def __init__(self, app: App[Any], session: Session) -> None:
        self.app = app
        self.session = session

    def _start(
        self, work: Callable[[], None], name: str, group: str, *, exclusive: bool = True
    ) -> None:
        self.app.run_worker(
            work, name=name, group=group, exclusive=exclusive, thread=True, exit_on_error=False
        )

    def fetch_step(self, step: Step) -> None:
        self._start(partial(self._fetch_step, step), f"check {step.value}", CHECK_GROUPS[step])

    def _fetch_step(self, step: Step) -> None:
        read_at = time.monotonic()
        shown: list[StepReport] = []

        def show(report: StepReport) -> None:
            # Before the journal's work: a first finding opens the incident, which writes
            # the "before" snapshot (services.report_listener).
            shown.append(report)
            self.app.post_message(StepChecked(step, report, read_at))

        with reports_to(show):
            report = self.session.runbook.check(step)
        if not shown or report is not shown[-1]:  # not handed over, or the journal failed
            self.app.post_message(StepChecked(step, report, read_at))

    def fetch_pod_rows(self) -> None:
        self._start(self._fetch_pod_rows, "fetch_pod_rows", GROUP_PODS)

    def _fetch_pod_rows(self) -> None:
        from services.hardware import listed_pod_rows  # here: it loads the Kubernetes client

        target = self.session.runbook.target
        try:
            report = listed_pod_rows(
                self.session.runbook.cluster, target.namespace, target.deployment
            )
        except SkewmitError:
            return  # step 5's own check reads the same and says why
        self.app.post_message(PodsListed(report))

    def poll_rollout(self) -> None:
        self._start(self._poll_rollout, "poll_rollout", GROUP_ROLLOUT)

    def _poll_rollout(self) -> None:
        read_at = time.monotonic()
        try:
            self.app.post_message(
                RolloutProgressed(self.session.runbook.progress(), read_at=read_at)
            )
        except SkewmitError as exc:
            self.app.post_message(RolloutProgressed(None, str(exc), read_at))

    def poll_metrics(self) -> None:
        self._start(self._poll_metrics, "poll_metrics", GROUP_METRICS)

    def _poll_metrics(self) -> None:
        sampler = self.session.metrics_sampler
        if sampler is None:
            why = self.session.metrics_note or "no metrics source"
            self.app.post_message(MetricsSampled([], why))
            return
        try:
            self.app.post_message(MetricsSampled(sampler()))
        except SkewmitError as exc:
            self.app.post_message(MetricsSampled([], str(exc)))

    def fetch_log(self) -> None:
        self._start(self._fetch_log, "fetch_log", GROUP_LOG)

    def _fetch_log(self) -> None:
        from services.journal_actions import journal_actions

        journal = self.session.runbook.journal
        entries = journal.entries() if journal is not None else []
        standing, reverted = journal_changes(entries)
        self.app.post_message(JournalRead(list(journal_actions(entries)), standing, reverted))

    # Never exclusive: a second request must not cancel an apply half-way; the action
    # controller keeps actions one at a time instead.
    def run_preview(self, action: ActionSpec, inputs: dict[str, str]) -> None:
        work = partial(self._run_preview, action, inputs)
        self._start(work, "run_preview", GROUP_ACTION, exclusive=False)

    def _run_preview(self, action: ActionSpec, inputs: dict[str, str]) -> None:
        try:
            plan = self.session.runbook.plan(action.id, inputs)
            preview = self.session.runbook.gate.preview(plan)
        except SkewmitError as exc:
            self.app.post_message(ActionFailed(action.title, str(exc), action.step))
            return
        self.app.post_message(PreviewReady(action, plan, preview))

    def run_apply(self, message: PreviewReady) -> None:
        self._start(partial(self._run_apply, message), "run_apply", GROUP_ACTION, exclusive=False)

    def _run_apply(self, message: PreviewReady) -> None:
        action = message.action
        try:
            applied = self.session.runbook.gate.apply(message.plan, message.preview)
        except SkewmitError as exc:
            self.app.post_message(ActionFailed(action.title, str(exc), action.step))
            return
        self.app.post_message(ActionApplied(action, applied))

    def run_revert_preview(self, seq: int, title: str) -> None:
        work = partial(self._run_revert_preview, seq, title)
        self._start(work, "run_revert_preview", GROUP_ACTION, exclusive=False)

    def _run_revert_preview(self, seq: int, title: str) -> None:
        try:
            preview = self.session.runbook.gate.preview_revert(seq)
        except SkewmitError as exc:  # the gate reports refusals in the preview; this is I/O
            self.app.post_message(ActionFailed(f"Revert #{seq} {title}", str(exc)))
            return
        self.app.post_message(RevertPreviewReady(seq, title, preview))

    def run_revert(self, seq: int, title: str) -> None:
        work = partial(self._run_revert, seq, title)
        self._start(work, "run_revert", GROUP_ACTION, exclusive=False)

    def _run_revert(self, seq: int, title: str) -> None:
        from services.gate import RevertRefused  # here: it loads the Kubernetes client

        try:
            applied = self.session.runbook.gate.revert(seq)
        except RevertRefused as exc:
            self.app.post_message(ActionFailed(f"Revert #{seq}", str(exc), None, exc.diff))
            return
        except SkewmitError as exc:
            self.app.post_message(ActionFailed(f"Revert #{seq} {title}", str(exc)))
            return
        self.app.post_message(ActionReverted(seq, applied, self._step_of_entry(seq)))

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

    def run_evidence(self) -> None:
        self._start(self._run_evidence, "run_evidence", GROUP_EVIDENCE)

    def _run_evidence(self) -> None:
        try:
            bundle = self.session.runbook.capture_evidence(self.session.evidence_dir)
        except SkewmitError as exc:
            self.app.post_message(ActionFailed("Evidence capture", str(exc), Step.VALIDATE))
            return
        # A services.evidence.Bundle: the tarball is what people pass on.
        self.app.post_message(EvidenceCaptured(Path(getattr(bundle, "tarball", bundle))))
