"""The app's periodic reads: one `Poll` per step's checks, the rollout and the metrics, each
scheduled when the previous read finished (never overlapping), the metrics paused while their
pane is hidden, and a recheck of every step after a change."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from textual.timer import Timer
from textual.worker import Worker, WorkerState

from services.models import STEP_ORDER, Step
from tui.session import Session
from tui.step_board import StepBoard
from tui.workers import CHECK_GROUPS, GROUP_METRICS, GROUP_ROLLOUT, Poll, RunbookWorkers

SetTimer = Callable[[float, Callable[[], None]], Timer]
# At most this long the shown step's first check runs without the other steps' (with step 5's,
# the metrics, the inspector's pod list and the watches) before theirs start anyway.
FIRST_ALONE_S = 0.5


def step_of_group(group: str | None) -> Step | None:
    """The step whose checks run in worker group `group` (None: not a check)."""
    return next((s for s, g in CHECK_GROUPS.items() if g == group), None)


class RunbookPolls:
    """The polls by worker group (empty until `start`), as `polls[group]`."""

    def __init__(self, board: StepBoard) -> None:
        self.board = board
        self._polls: dict[str, Poll] = {}
        self._workers: RunbookWorkers | None = None
        self._session: Session | None = None
        self.first_steps: tuple[Step, ...] = ()  # the steps whose checks start runs at once
        self._first_out: set[str] = set()  # their groups whose first check has not ended
        self._held: list[str] = []  # groups waiting for it

    def start(
        self,
        session: Session,
        workers: RunbookWorkers,
        set_timer: SetTimer,
        *,
        rollout_active: Callable[[], bool],
        metrics_visible: Callable[[], bool],
        first: Step = STEP_ORDER[0],
    ) -> None:
        """Build every poll and run each once: the metrics, step `first` (the one the step
        pane shows) and step 5 (the GPU inspector's verdicts) now, the other steps and the
        rollout once both have answered (at most FIRST_ALONE_S later)."""
        self._workers, self._session = workers, session
        intervals = session.intervals
        for step in STEP_ORDER:
            every = intervals.validate if step == Step.VALIDATE else intervals.checks
            self._polls[CHECK_GROUPS[step]] = Poll(
                partial(workers.fetch_step, step), partial(float, every), set_timer
            )

        def rollout_every() -> float:
            return intervals.rollout_active if rollout_active() else intervals.rollout

        self._polls[GROUP_ROLLOUT] = Poll(workers.poll_rollout, rollout_every, set_timer)
        self._polls[GROUP_METRICS] = Poll(
            workers.poll_metrics, lambda: intervals.metrics, set_timer, metrics_visible
        )
        # The metrics first: Prometheus answers on its own, whatever the cluster's reads cost.
        # Then what the panes on screen show: the shown step and step 5 (the inspector). On
        # two cores every step's first reads at once (JSON and the client's work, under one
        # interpreter lock) made the shown step answer with the last of them (issue 12's
        # "findings"). The rollout after the checks, as before: its bar then shows the newer
        # of the two reads, which step 1's report also carries.
        now = self.first_steps = (first, Step.HARDWARE)
        self._first_out = {CHECK_GROUPS[s] for s in now}
        for group in (GROUP_METRICS, *(CHECK_GROUPS[s] for s in STEP_ORDER if s in now)):
            self._polls[group].request()
        self._held = [CHECK_GROUPS[s] for s in STEP_ORDER if s not in now] + [GROUP_ROLLOUT]
        set_timer(FIRST_ALONE_S, self._release)

    def _release(self) -> None:
        """The polls held back while the shown step's first check ran, now."""
        held, self._held = self._held, []
        for group in held:
            poll = self._polls[group]
            if poll.runs == 0:  # not asked for meanwhile (a refresh, a recheck)
                poll.request()

    def __getitem__(self, group: str) -> Poll:
        return self._polls[group]

    def __iter__(self) -> Iterator[str]:
        return iter(self._polls)

    def __len__(self) -> int:
        return len(self._polls)

    def request(self, *groups: str) -> None:
        """Read now (or right after the read in progress); nothing before `start`."""
        for group in groups:
            poll = self._polls.get(group)
            if poll is not None:
                poll.request()

    def resume_metrics(self) -> None:
        poll = self._polls.get(GROUP_METRICS)
        if poll is not None:
            poll.resume()

    def recheck_all(self) -> None:
        """Every step's checks again, each answered only by a read started after now."""
        for step in STEP_ORDER:
            poll = self._polls.get(CHECK_GROUPS[step])
            if poll is None:
                continue
            # A check already out read the cluster before this request (the old pods of a
            # rollout that just finished): only the next run, started after it, answers.
            self.board.begin_recheck(step, poll.runs + 1)
            poll.request()

    def refresh_all(self) -> None:
        """The operator asked for fresh reads of everything: every step's checks (nvidia-smi
        read again too, not step 5's remembered per-node memory), the rollout, the metrics
        and the action log. Nothing before `start`."""
        from services.smi_reads import forget_readings

        if self._session is None or self._workers is None:
            return
        forget_readings(self._session.runbook.cluster)
        self.recheck_all()
        self.request(GROUP_ROLLOUT, GROUP_METRICS)
        self._workers.fetch_log()

    def worker_ended(self, worker: Worker[Any], state: WorkerState) -> None:
        """A worker changed state: when it finished, a cancelled check still answers (no
        report will come from it), and its poll schedules the next read."""
        if state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        self._first_out.discard(worker.group or "")
        if self._held and not self._first_out:
            self._release()
        if state == WorkerState.CANCELLED:
            step = step_of_group(worker.group)
            if step is not None:
                self.board.answer(step)
        poll = self._polls.get(worker.group)
        if poll is not None:
            poll.finished()

    def stop(self) -> None:
        for poll in self._polls.values():
            poll.stop()
