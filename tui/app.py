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
    HardwareReport,
    MetricSeries,
    RolloutProgress,
    Step,
    Verdict,
)
from services.runbook import ActionSpec, StepReport
from services.sanitize import terminal_line
from tui.actions import ActionFlow
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.screens.preview import ConfirmScreen
from tui.screens.validation_view import ValidationScreen
from tui.session import Session, opened_at_of
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
        self.reports: dict[Step, StepReport] = {}
        self.rechecking: set[Step] = set(STEP_ORDER)
        # Checks answered per step, and the answer a re-check waits for (see recheck_all).
        self.answered: dict[Step, int] = dict.fromkeys(STEP_ORDER, 0)
        self.recheck_answer: dict[Step, int] = {}
        self.failed: dict[Step, str] = {}  # an action of the step failed: shown until re-check
        self.skipped: set[Step] = set()
        # Steps whose action was applied here: "done" once clear, not merely "clear".
        self.acted: set[Step] = set()
        self.running_step: Step | None = None
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
        return None if self.opened_at is None else self.session.now() - self.opened_at

    async def on_mount(self) -> None:
        await self.push_screen(self.main)
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
            self._answered(worker.group)
            self.failed[step] = error
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
        self.reports[step] = report
        self._answered(CHECK_GROUPS[step])
        self.failed.pop(step, None)
        if step == Step.ROLLBACK and isinstance(report.data, dict):
            progress = report.data.get("progress")
            if isinstance(progress, RolloutProgress):
                self._show_progress(progress)
        if step == Step.HARDWARE and isinstance(report.data, HardwareReport):
            self.main.show_hardware(report.data)
        if step == Step.VALIDATE and isinstance(report.data, Verdict):
            self._show_verdict(report.data)
        elif step == Step.VALIDATE and self.verdict_state.failed(report.error):
            self._render_verdict()
        self._render_rows()
        if step == self.selected_step:
            self._render_detail()
        self.refresh_bindings()

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

    def _views(self) -> list[Any]:
        return [s for s in self.screen_stack if isinstance(s, MainScreen | ValidationScreen)]

    # -- the checklist and the selected step ------------------------------------------------

    @property
    def selected_step(self) -> Step:
        if not self.main.is_mounted:
            return STEP_ORDER[0]
        return self.main.query_one(Checklist).selected_step or STEP_ORDER[0]

    def state_of(self, step: Step) -> str:
        report = self.reports.get(step)
        if step in self.skipped:
            return "skipped"
        if step == self.running_step:
            return "running"
        if step in self.failed:
            return "failed"
        if report is None or step in self.rechecking:
            return "checking"
        if report.state == "failed":
            return "failed"
        if report.state == "findings":
            return "findings"
        return "done" if step in self.acted else "clear"

    def _render_rows(self) -> None:
        if not self.main.is_mounted:
            return
        rows = []
        for i, step in enumerate(STEP_ORDER):
            report = self.reports.get(step)
            counts = report.counts if report else {}
            rows.append(
                ChecklistRow(
                    step,
                    i + 1,
                    self.main.query_one(Checklist).row(step).title,
                    self.state_of(step),
                    counts.get("error", 0),
                    counts.get("warning", 0),
                )
            )
        self.main.show_rows(rows)

    def on_checklist_step_highlighted(self, message: Checklist.StepHighlighted) -> None:
        self._render_detail()

    def _render_detail(self) -> None:
        step = self.selected_step
        detail = self.main.query_one(StepDetail)
        title = f"{STEP_ORDER.index(step) + 1} · {STEP_TITLES[step]}"
        report = self.reports.get(step)
        notes = []
        if self.action_busy is not None and self.action_busy.step == step and self.busy_note:
            notes.append(f"{self.action_busy.title}: {self.busy_note}")
        state = self.state_of(step)
        if state == "running":
            notes.append("running: an action of this step is being applied or rolled out")
        if step in self.failed:
            notes.append(f"failed: {self.failed[step]}")
        if state == "skipped":
            notes.append("skipped by the operator (x to un-skip)")
        if step == Step.VALIDATE and self.evidence_path:
            notes.append(f"evidence bundle: {self.evidence_path}")
        if report is None:
            detail.show_pending(title, "\n".join(notes) or "checking…")
            self.main.set_step_actions(())
            return
        detail.show(report, title, "\n".join(notes))
        self.main.set_step_actions(report.actions)

    def recheck_all(self) -> None:
        self.rechecking.update(STEP_ORDER)
        self._render_rows()
        for step in STEP_ORDER:
            poll = self.polls[CHECK_GROUPS[step]]
            running = poll.running
            poll.request()
            # A check already out read the cluster before this request (the old pods of a
            # rollout that just finished): only the run after it answers the re-check.
            self.recheck_answer[step] = poll.runs + (1 if running else 0)

    def _answered(self, group: str | None) -> None:
        """A check came back: it ends the step's re-check when it started after it."""
        step = next((s for s, g in CHECK_GROUPS.items() if g == group), None)
        if step is None:
            return
        self.answered[step] += 1
        if self.answered[step] >= self.recheck_answer.get(step, 0):
            self.rechecking.discard(step)

    def action_refresh(self) -> None:
        self.recheck_all()
        self.polls[GROUP_ROLLOUT].request()
        self.polls[GROUP_METRICS].request()
        self.fetch_log()

    def action_skip_step(self) -> None:
        step = self.selected_step
        self.skipped ^= {step}
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
        keys = [
            (self.get_key_display(b), b.description)
            for b in self.BINDINGS
            if isinstance(b, Binding)
        ]
        keys += [
            (b.key_display or b.key, b.description)
            for b in MainScreen.BINDINGS
            if isinstance(b, Binding)
        ]
        keys += [
            ("↑ ↓", "move in the checklist / tables"),
            ("tab", "next pane or widget"),
            ("r", "revert the highlighted action log entry (previewed first)"),
            ("enter / y", "in a preview: apply (esc cancels)"),
        ]
        for action in self.main.step_actions:
            keys.append((action.key, f"{action.title} (this step)"))
        return keys

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
                yield SystemCommand(
                    terminal_line(action.title, 160),
                    terminal_line(
                        f"step {step.value}, key {action.key}{why}: {action.description}", 160
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
