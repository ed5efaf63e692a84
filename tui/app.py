"""The skewmit app: one screen that says where the incident stands, what to do next and
whether it worked, and never waits on the cluster.

Every Runbook call runs in a thread worker and comes back as a message (tui.workers); each
periodic read is a `Poll`, so reads never overlap and hidden panes are not polled. Changes go
through the gate only: plan -> preview (diff, dry run) -> confirmation -> apply -> journal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from functools import partial
from typing import Any, ClassVar

from textual.app import SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from services.models import (
    STEP_ORDER,
    STEP_TITLES,
    ActionSpec,
    MetricSeries,
    RolloutProgress,
    Step,
    StepReport,
    Verdict,
)
from services.sanitize import terminal_line
from tui import low_bandwidth
from tui.actions import ActionFlow
from tui.keymap import BY_ACTION, FIX_KEY, step_number
from tui.screens.help import HelpScreen, key_rows
from tui.screens.main import MainScreen
from tui.screens.preview import ConfirmScreen
from tui.screens.validation_view import ValidationScreen
from tui.session import Session, opened_at_of
from tui.step_board import SHORT_TITLES, StepBoard
from tui.verdict_state import VerdictState
from tui.workers import (
    CHECK_GROUPS,
    GROUP_ACTION,
    GROUP_EVIDENCE,
    GROUP_METRICS,
    GROUP_ROLLOUT,
    ActionFailed,
    JournalRead,
    MetricsSampled,
    PaneShown,
    Poll,
    RolloutProgressed,
    StepChecked,
)
from widgets.checklist import Checklist, ChecklistRow
from widgets.header_bar import HeaderBar, HeaderState
from widgets.step_detail import StepDetail


class SkewmitApp(ActionFlow):
    CSS_PATH = "app.tcss"
    TITLE = "skewmit"
    HORIZONTAL_BREAKPOINTS = [
        (0, "-narrow"),
        (120, "-wide"),
        (170, "-very-wide"),
    ]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("v", "validation_view", "Validation", id="app.validation-view"),
        Binding("ctrl+r", "refresh", "Refresh all", show=False, id="app.refresh"),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.runbook = session.runbook
        # Reports, the operator's doing and the state rules: tui.step_board, no App needed.
        self.board = StepBoard()
        self.action_busy: ActionSpec | None = None
        self.busy_note = ""
        self.rollout_active = False
        self.metrics: list[MetricSeries] = []
        self.metrics_error = ""
        self.progress: RolloutProgress | None = None
        self.verdict: Verdict | None = None
        # Whether that verdict still stands: a failed or stale read replaces it on screen.
        self.verdict_state = VerdictState(session.now, session.intervals.validate)
        self.evidence_path: str = ""
        self.settled_at: float | None = None  # when the last change's rollout finished
        self.opened_at = session.opened_at
        self.main = MainScreen(self._header_state())
        self.polls: dict[str, Poll] = {}
        self.informer: Any = None  # services.informer.Informer: pods and nodes from watches
        self.heap_frozen = False  # see _freeze_start_up_heap

    # The board's facts, read by tests and tools under their old names.
    @property
    def reports(self) -> dict[Step, StepReport]:
        return self.board.reports

    @property
    def rechecking(self) -> set[Step]:
        return self.board.rechecking

    @property
    def answered(self) -> dict[Step, int]:
        return self.board.answered

    @property
    def failed(self) -> dict[Step, str]:
        return self.board.failed

    @property
    def running_step(self) -> Step | None:
        return self.board.running_step

    @running_step.setter
    def running_step(self, step: Step | None) -> None:
        self.board.running_step = step

    # -- lifecycle ----------------------------------------------------------------------

    def _header_state(self) -> HeaderState:
        target = self.runbook.target
        return HeaderState(
            context=target.context,
            server=target.server,
            namespace=target.namespace,
            deployment=target.deployment,
            user=target.user,
            read_only=self.session.read_only,
            production=self.session.production,
            incident_id=self.session.incident_id,
            elapsed_s=self._elapsed(),
            clock_note=self.session.clock_note,
        )

    def _elapsed(self) -> float | None:
        journal = self.runbook.journal
        if self.opened_at is None and journal is not None:
            # The incident opens at the first finding or change, after the session was built.
            self.opened_at = opened_at_of(journal.meta())
        # On the journal's clock (the metrics source's: simulated in the demo), as opened_at.
        now = self.session.metrics_now or self.session.now
        return None if self.opened_at is None else now() - self.opened_at

    async def on_mount(self) -> None:
        # The checks' pod and node reads come from watches, not a re-list each poll (a
        # 1,000-pod list froze the screen while a worker parsed it); stopped on unmount.
        from services.cached_cluster import cache_reads

        self.informer = cache_reads(self.runbook)
        await self.push_screen(self.main)
        low_bandwidth.setup(self, self.main, self.session)  # chart pacing; the quiet mode
        intervals = self.session.intervals
        for step in STEP_ORDER:
            every = intervals.validate if step == Step.VALIDATE else intervals.checks
            self.polls[CHECK_GROUPS[step]] = Poll(
                partial(self.fetch_step, step), partial(float, every), self.set_timer
            )
        self.polls[GROUP_ROLLOUT] = Poll(
            self.poll_rollout,
            lambda: intervals.rollout_active if self.rollout_active else intervals.rollout,
            self.set_timer,
        )
        self.polls[GROUP_METRICS] = Poll(
            self.poll_metrics, lambda: intervals.metrics, self.set_timer, self._metrics_visible
        )
        for poll in self.polls.values():
            poll.request()
        self.fetch_log()
        self.set_interval(1.0, self._tick)
        self._render_rows()
        for notice in self.session.notices:  # held by another instance; reconciled intents
            self.notify(terminal_line(notice, 500), severity="warning", timeout=30, markup=False)

    def _tick(self) -> None:
        if self.verdict_state.expire():
            self._render_verdict()
        elapsed = self._elapsed()
        incident_id = self.session.incident_id
        for screen in self.screen_stack:
            for header in screen.query(HeaderBar):
                if header.state.incident_id != incident_id:  # the incident opened since
                    header.show(replace(header.state, incident_id=incident_id))
                header.set_elapsed(elapsed)

    @property
    def closing(self) -> bool:
        """Results still arrive while the app shuts down; there is nothing to show them on."""
        return not self.main.is_attached

    def on_unmount(self) -> None:
        for poll in self.polls.values():
            poll.stop()
        if self.informer is not None:
            self.informer.stop()

    def _metrics_visible(self) -> bool:
        if isinstance(self.screen, ValidationScreen):
            return True
        return self.main in self.screen_stack and (
            not self.main.compact or self.main.pane == "metrics"
        )

    def on_pane_shown(self, message: PaneShown) -> None:
        if message.pane == "metrics":
            self.polls[GROUP_METRICS].resume()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        if event.state == WorkerState.ERROR:
            # Not one of the project's errors: a bug or an unexpected client failure. Say so
            # and keep going; the poll tries again on schedule.
            self._worker_crashed(worker)
        elif event.state == WorkerState.CANCELLED:
            self._answered(worker.group)  # no answer will come from it
        poll = self.polls.get(worker.group)
        if poll is not None:
            poll.finished()

    def _worker_crashed(self, worker: Worker[Any]) -> None:
        error = f"{type(worker.error).__name__}: {worker.error}"
        step = next((s for s, g in CHECK_GROUPS.items() if g == worker.group), None)
        if step is not None:
            self.board.check_crashed(step, error)
            self._render_rows()
            if step == self.selected_step:
                self._render_detail()
            if step == Step.VALIDATE and self.verdict_state.failed(error):
                self._render_verdict()
        elif worker.group in (GROUP_ACTION, GROUP_EVIDENCE):
            self.post_message(ActionFailed(worker.name or "action", error))
        self.log.error(f"worker {worker.name} failed: {error}")

    # -- results (UI thread) --------------------------------------------------------------

    def on_step_checked(self, message: StepChecked) -> None:
        if self.closing:
            return
        step, report = message.step, message.report
        self.board.checked(report)
        if report.progress is not None:
            self._show_progress(report.progress)
        if report.hardware is not None:
            self.main.show_hardware(report.hardware)
        if report.verdict is not None:
            self._show_verdict(report.verdict)
        elif step == Step.VALIDATE and self.verdict_state.failed(report.error):
            self._render_verdict()
        self._render_rows()
        if step == self.selected_step:
            self._render_detail()
        self.refresh_bindings()
        self._freeze_start_up_heap()

    def _freeze_start_up_heap(self) -> None:
        """Once the pod/node cache is listed and most steps have answered, move what start-up
        built out of the cyclic collector's reach (gc.freeze). Its full collections walked
        that whole heap on the UI thread: 0.3-2.3 s stalls on a 1,000-pod fleet, the only
        stalls left after the cache (bench/ui_stall_bench.py). Later garbage is collected as
        before; what is frozen is the long-lived start-up state, freed at exit."""
        if self.heap_frozen or len(self.reports) < len(STEP_ORDER) - 2:
            return
        informer = self.informer
        if informer is not None and not all(r.synced for r in informer.reflectors.values()):
            return
        import gc

        gc.collect()  # start-up's own garbage first, so it is not frozen with the rest
        gc.freeze()
        self.heap_frozen = True

    def on_rollout_progressed(self, message: RolloutProgressed) -> None:
        if self.closing:
            return
        if message.progress is None:
            self.main.query_one("#rollout").tooltip = terminal_line(message.error, 500)
            return
        self._show_progress(message.progress)
        if self.rollout_active and message.progress.done:
            self.rollout_active = False
            self.running_step = None
            self.settled_at = self._clock()
            self._render_rows()
            self.recheck_all()

    def _clock(self) -> float:
        """The clock the metrics (and so the stability window) run on: simulated in the demo."""
        return float(self.session.metrics_now() if self.session.metrics_now else self.session.now())

    def remaining_s(self, verdict: Verdict | None) -> float | None:
        """Seconds until the stability window holds only samples taken after the last change
        settled: the gate's own figure when it gives one."""
        if verdict is None or verdict.verdict == "pass":
            return None
        given = getattr(verdict, "remaining_s", None)
        if given is not None:
            return float(given)
        if self.settled_at is None:
            return None
        left = verdict.window_s - (self._clock() - self.settled_at)
        return left if left > 0 else None

    def _show_progress(self, progress: RolloutProgress) -> None:
        self.progress = progress
        for screen in self._views():
            screen.show_progress(progress)

    def _show_verdict(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.board.verdict = verdict
        self.verdict_state.fresh(verdict)
        self._render_verdict()

    def _render_verdict(self) -> None:
        verdict, lost = self.verdict, self.verdict_state.lost
        remaining = self.remaining_s(verdict)
        for screen in self._views():
            screen.show_verdict(verdict, remaining, lost)

    def on_metrics_sampled(self, message: MetricsSampled) -> None:
        if self.closing:
            return
        if message.error and message.series == [] and self.metrics:
            # Keep the last readings on screen; they go stale visibly.
            self.metrics_error = message.error
        else:
            self.metrics = list(message.series)
            self.metrics_error = message.error
        # The gate reads the same source: after a failed read its verdict no longer stands.
        sampled = self.session.metrics_sampler is not None
        if message.error and sampled and self.verdict_state.failed(f"metrics: {message.error}"):
            self._render_verdict()
        now = self.session.metrics_now() if self.session.metrics_now else None
        self.main.show_metrics(self.metrics, now, self.metrics_error)
        if isinstance(self.screen, ValidationScreen):
            self.screen.show_metrics(self.metrics)

    def on_journal_read(self, message: JournalRead) -> None:
        if self.closing:
            return
        self.main.show_log(message.entries, self.session.read_only)
        self.board.journal_read(message.standing, message.reverted)
        self._render_rows()

    def _views(self) -> list[Any]:
        return [s for s in self.screen_stack if isinstance(s, MainScreen | ValidationScreen)]

    # -- the checklist and the selected step ------------------------------------------------

    @property
    def selected_step(self) -> Step:
        if not self.main.is_mounted:
            return STEP_ORDER[0]
        return self.main.query_one(Checklist).selected_step or STEP_ORDER[0]

    def state_of(self, step: Step) -> str:
        return self.board.state_of(step)

    def _render_rows(self) -> None:
        if not self.main.is_mounted:
            return
        self.main.show_rows(
            [
                ChecklistRow(step, i + 1, SHORT_TITLES[step], state, errors, warnings)
                for i, (step, state, errors, warnings) in enumerate(self.board.rows())
            ]
        )

    def on_checklist_step_highlighted(self, message: Checklist.StepHighlighted) -> None:
        self._render_detail()
        self.refresh_bindings()  # the footer shows the selected step's keys only

    def _render_detail(self) -> None:
        step = self.selected_step
        detail = self.main.query_one(StepDetail)
        title = f"{STEP_ORDER.index(step) + 1} · {STEP_TITLES[step]}"
        report = self.reports.get(step)
        notes = []
        if self.action_busy is not None and self.action_busy.step == step and self.busy_note:
            notes.append(f"{self.action_busy.title}: {self.busy_note}")
        note = self.board.note_for(step)
        if note:
            notes.append(note)
        if step in self.failed:
            notes.append(f"failed: {self.failed[step]}")
        if step == Step.VALIDATE and self.evidence_path:
            notes.append(f"evidence bundle: {self.evidence_path}")
        self._render_hint()
        if report is None:
            detail.show_pending(title, "\n".join(notes) or "checking…")
            return
        detail.show(report, title, "\n".join(notes))

    def _render_hint(self) -> None:
        """The status line's resting text: what the fix key does on the selected step now,
        or what the change in progress is doing."""
        if self.action_busy is not None:
            self.main.say(f"{self.action_busy.title}: {self.busy_note or 'in progress'}")
            return
        spec, why = self.board.fix_for(
            self.selected_step, read_only=self.session.read_only, busy=self.action_busy
        )
        self.main.say(f"{FIX_KEY}: {spec.title}" if spec is not None else why)

    def recheck_all(self) -> None:
        for step in STEP_ORDER:
            poll = self.polls[CHECK_GROUPS[step]]
            # A check already out read the cluster before this request (the old pods of a
            # rollout that just finished): only the next run, started after it, answers.
            self.board.begin_recheck(step, poll.runs + 1)
            poll.request()
        self._render_rows()

    def _answered(self, group: str | None) -> None:
        """A check came back that posts no report (cancelled): it still answers."""
        step = next((s for s, g in CHECK_GROUPS.items() if g == group), None)
        if step is not None:
            self.board.answer(step)

    def action_refresh(self) -> None:
        from services.smi_reads import forget_readings

        # The operator asked for fresh reads: nvidia-smi too, not step 5's per-node memory.
        forget_readings(self.runbook.cluster)
        self.recheck_all()
        self.polls[GROUP_ROLLOUT].request()
        self.polls[GROUP_METRICS].request()
        self.fetch_log()

    def action_skip_step(self) -> None:
        self.board.toggle_skip(self.selected_step)
        self._render_rows()
        self._render_detail()

    # -- quitting ---------------------------------------------------------------------------

    def quit_warning(self) -> str:
        """What quitting now would leave unwatched ("" when nothing is in flight)."""
        progress = self.progress
        if self.rollout_active or (progress is not None and not progress.done):
            detail = f" ({progress.message})" if progress is not None else ""
            return (
                f"A rollout is in flight{detail}. Quitting stops watching it; the change stays "
                "applied and journaled, and skewmit reopens this incident when started again."
            )
        crashing = [p for p in progress.problems if p.code == "crashloop"] if progress else []
        if crashing:
            return (
                f"Pods are crash-looping: {crashing[0].message}. Quitting leaves them so; "
                "the journal keeps the incident open."
            )
        return ""

    async def action_quit(self) -> None:
        why = self.quit_warning()
        if not why:
            self.exit()
            return
        if isinstance(self.screen, ConfirmScreen):
            return  # the question is already asked (or another one is pending)
        self.push_screen(
            ConfirmScreen("Quit skewmit?", why, confirm_label="Quit"),
            lambda confirmed: self.exit() if confirmed else None,
        )

    # -- screens and the command palette ------------------------------------------------

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_help()))

    def key_help(self) -> list[tuple[str, str]]:
        return key_rows(MainScreen.BINDINGS, self.BINDINGS)

    def action_validation_view(self) -> None:
        if isinstance(self.screen, ValidationScreen):
            self.pop_screen()
            return
        view = ValidationScreen(self._header_state())

        def fill() -> None:
            view.show_metrics(self.metrics)
            view.show_verdict(self.verdict, self.remaining_s(self.verdict), self.verdict_state.lost)
            view.show_progress(self.progress)
            self.polls[GROUP_METRICS].resume()

        self.push_screen(view, lambda _: self.polls[GROUP_METRICS].resume())
        self.call_after_refresh(fill)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for i, step in enumerate(STEP_ORDER):
            yield SystemCommand(
                f"Step {i + 1}: {STEP_TITLES[step]}",
                "Show this step",
                partial(self.main.action_select_step, i + 1),
            )
        for step in STEP_ORDER:
            report = self.reports.get(step)
            for action in report.actions if report else ():
                why = "" if action.available else f" (unavailable: {action.reason})"
                key = BY_ACTION[action.id].key if action.id in BY_ACTION else action.key
                yield SystemCommand(
                    terminal_line(action.title, 160),
                    terminal_line(
                        f"step {step_number(step)}, key {key}{why}: {action.description}", 160
                    ),
                    partial(self.start_action, action),
                )
        yield SystemCommand(
            "Validation view",
            "Full-screen charts and the validation gate",
            self.action_validation_view,
        )
        yield SystemCommand(
            "Refresh all checks", "Run every step's checks now", self.action_refresh
        )
        yield SystemCommand(
            "Toggle guidance",
            "Show or hide the runbook's guidance",
            self.main.action_toggle_guidance,
        )
        yield SystemCommand(
            "Skip or un-skip the selected step", "Mark the step skipped", self.action_skip_step
        )
        for pane in ("step", "metrics", "inspector", "log"):
            yield SystemCommand(
                f"Show pane: {pane}", "Bring the pane into view", partial(self.main.show_pane, pane)
            )
        yield SystemCommand("Help", "Keys and how the screen works", self.action_help)
