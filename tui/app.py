"""The skewmit app: one screen that says where the incident stands, what to do next and
whether it worked, and never waits on the cluster.

The App wires parts that each have one job and are handed what they need (no mixins):
`RunbookWorkers` (tui.workers) runs every Runbook call on a thread and posts the result
(tui.messages); `RunbookPolls` (tui.polls) schedules each read when the previous one
finished and pauses hidden panes; `ActionController` (tui.action_controller) runs a change
through the gate (plan -> preview -> confirmation -> apply -> journal) and says why a key
cannot act; `Dashboard` (tui.dashboard) keeps what the messages said and renders it;
`StepBoard` (tui.step_board) holds the reports and the state rules. Given a SessionOpener,
the App draws its first frame before any network call and opens the session in a worker
(tui.opening).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from textual import on
from textual.actions import ActionParseResult
from textual.actions import parse as parse_action
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from services.models import (
    STEP_ORDER,
    ActionSpec,
    MetricSeries,
    RolloutProgress,
    Step,
    StepReport,
    Verdict,
)
from services.sanitize import terminal_line, terminal_text
from tui import low_bandwidth
from tui.action_controller import ActionController, footer_before_open
from tui.dashboard import Dashboard
from tui.messages import (
    ActionApplied,
    ActionFailed,
    ActionReverted,
    EvidenceCaptured,
    JournalRead,
    MetricsSampled,
    PaneShown,
    PreviewReady,
    RevertPreviewReady,
    RolloutProgressed,
    SessionOpened,
    StepChecked,
)
from tui.opening import SessionOpening
from tui.palette import runbook_commands
from tui.polls import RunbookPolls, step_of_group
from tui.screens.help import HelpScreen, key_rows
from tui.screens.main import MainScreen
from tui.screens.preview import ConfirmScreen
from tui.screens.validation_view import ValidationScreen
from tui.session import Session, SessionOpener
from tui.step_board import StepBoard
from tui.verdict_state import VerdictState
from tui.workers import (
    GROUP_ACTION,
    GROUP_EVIDENCE,
    GROUP_METRICS,
    GROUP_ROLLOUT,
    RunbookWorkers,
)
from widgets.action_log import ActionLog
from widgets.checklist import Checklist
from widgets.header_bar import HeaderState
from widgets.step_detail import StepDetail

EXIT_ERROR = 2  # the session could not be opened (tui.launchers' code)


class SkewmitApp(App[int]):
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

    def __init__(self, session_or_opener: Session | SessionOpener) -> None:
        super().__init__()
        # With an opener the first frame is drawn before any network call (issue 12): the
        # session is opened in a worker and installed when it answers.
        self.opener: SessionOpener | None = None
        self.session: Session | None = None
        if isinstance(session_or_opener, SessionOpener):
            self.opener = session_or_opener
        else:
            self.session = session_or_opener
        self.open_error = ""  # why the session could not be opened (the app exited 2)
        self.opening = SessionOpening(self.opener) if self.opener is not None else None
        # Reports, the operator's doing and the state rules: tui.step_board, no App needed.
        self.board = StepBoard()
        waiting = self.opener.waiting if self.opener is not None else ""
        self.main = MainScreen(self.opener.header if self.opener is not None else HeaderState())
        self.dashboard = Dashboard(self.main, self.board, self._views, self.session, waiting)
        self.main.header_state = self._header_state()
        self.runbook_workers: RunbookWorkers | None = None
        self.actions: ActionController | None = None
        self.polls = RunbookPolls(self.board)
        self.informer: Any = None  # services.informer.Informer: pods and nodes from watches
        self.heap_frozen = False  # see _freeze_start_up_heap

    def run(self, *args: Any, **kwargs: Any) -> int | None:
        """App.run; when the opener failed, "skewmit: <why>" on stderr and 2 returned."""
        result = super().run(*args, **kwargs)
        if self.open_error:
            print(f"skewmit: {self.open_error}", file=sys.stderr)
        return result

    @property
    def connecting(self) -> str:
        """What a key that needs the session says while it is being opened ("" once open)."""
        if self.session is not None:
            return ""
        context = self.opener.header.context if self.opener is not None else ""
        return f"still connecting to {context or 'the cluster'}…"

    # The action controller's state, read by tests and tools under their old names.
    @property
    def action_busy(self) -> ActionSpec | None:
        return self.actions.busy if self.actions is not None else None

    @property
    def evidence_path(self) -> str:
        return self.actions.evidence_path if self.actions is not None else ""

    # The board's and the dashboard's facts, read by tests and tools under their old names.
    @property
    def runbook(self) -> Any:
        if self.session is None:
            raise RuntimeError("the session is not open yet")
        return self.session.runbook

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

    @property
    def selected_step(self) -> Step:
        """The checklist's cursor itself. Keys typed together ("2a", "↓a") reach the app
        before the StepHighlighted that the first one causes: the dashboard's copy would
        still name the step before, and `a` would act on it."""
        if self.main.is_mounted:
            step = self.main.query_one(Checklist).selected_step
            if step is not None:
                return step
        return self.dashboard.selected_step

    @property
    def metrics(self) -> list[MetricSeries]:
        return self.dashboard.metrics

    @property
    def progress(self) -> RolloutProgress | None:
        return self.dashboard.progress

    @property
    def verdict(self) -> Verdict | None:
        return self.dashboard.verdict

    @property
    def verdict_state(self) -> VerdictState:
        return self.dashboard.verdict_state

    @property
    def closing(self) -> bool:
        """Results still arrive while the app shuts down (its screens' widgets are being
        removed): there is nothing to show them on."""
        return not self.is_running or not self.main.is_attached

    def _header_state(self) -> HeaderState:
        before = self.opener.header if self.opener is not None else HeaderState()
        return self.dashboard.header_state(before)

    def _views(self) -> list[Any]:
        return [s for s in self.screen_stack if isinstance(s, MainScreen | ValidationScreen)]

    # -- lifecycle ----------------------------------------------------------------------

    async def on_mount(self) -> None:
        await self.push_screen(self.main)
        self.set_interval(1.0, self._tick)
        if self.session is not None:
            self._start_session(self.session)
            return
        assert self.opener is not None and self.opening is not None
        self.dashboard.render_rows()
        self.main.show_waiting(self.opener.waiting)
        self.dashboard.render_detail()
        self.opening.start(self)

    def on_session_opened(self, message: SessionOpened) -> None:
        if message.session is None:
            # Printed by `run` once the terminal is back: one line, never wrapped or cropped.
            self.open_error = terminal_text(message.error, 2000)
            self.exit(EXIT_ERROR, return_code=EXIT_ERROR)
            return
        if self.closing or self._exit:
            return  # quit while opening: the launcher closes what was opened
        self.session = message.session
        self.dashboard.open(message.session)
        self.main.show_header(self._header_state())
        self._start_session(message.session)
        self.dashboard.render_detail()
        self.refresh_bindings()

    def _start_session(self, session: Session) -> None:
        """What starts once the session is open: the watches, the polls, the notices."""
        # The checks' pod and node reads come from watches, not a re-list each poll (a
        # 1,000-pod list froze the screen while a worker parsed it); stopped on unmount.
        from services.cached_cluster import cache_reads

        self.informer = cache_reads(session.runbook)
        workers = self.runbook_workers = RunbookWorkers(self, session)
        self.actions = self.dashboard.actions = ActionController(self, session, self.board, workers)
        # Chart pacing; the quiet mode, which the validation view follows too.
        self.dashboard.low_bandwidth = low_bandwidth.setup(self, self.main, session)
        self.polls.start(
            session,
            workers,
            self.set_timer,
            rollout_active=lambda: self.dashboard.rollout_active,
            metrics_visible=self._metrics_visible,
        )
        workers.fetch_log()
        self.dashboard.render_rows()
        for notice in session.notices:  # held by another instance; reconciled intents
            self.notify(terminal_line(notice, 500), severity="warning", timeout=30, markup=False)

    async def on_unmount(self) -> None:
        self.polls.stop()
        if self.informer is not None:
            self.informer.stop()
        if self.opening is not None:
            # Quit while opening: wait for open() so that what it opened can be closed.
            opened = await self.opening.wait()
            if self.session is None:
                self.session = opened

    def _tick(self) -> None:
        self.dashboard.tick(list(self.screen_stack))

    # -- polls: each read is scheduled when the previous one finished --------------------------

    def _metrics_visible(self) -> bool:
        if isinstance(self.screen, ValidationScreen):
            return True
        return self.main in self.screen_stack and (
            not self.main.compact or self.dashboard.pane == "metrics"
        )

    def fetch_log(self) -> None:
        if self.runbook_workers is not None:
            self.runbook_workers.fetch_log()

    def recheck_all(self) -> None:
        self.polls.recheck_all()
        self.dashboard.render_rows()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        if event.state == WorkerState.ERROR:
            # Not one of the project's errors: a bug or an unexpected client failure. Say so
            # and keep going; the poll tries again on schedule.
            error = f"{type(worker.error).__name__}: {worker.error}"
            step = step_of_group(worker.group)
            if step is not None:
                self.dashboard.check_crashed(step, error)
            elif worker.group in (GROUP_ACTION, GROUP_EVIDENCE):
                self.post_message(ActionFailed(worker.name or "action", error))
            self.log.error(f"worker {worker.name} failed: {error}")
        self.polls.worker_ended(worker, event.state)

    # -- results (UI thread) --------------------------------------------------------------

    def on_step_checked(self, message: StepChecked) -> None:
        if self.closing:
            return
        self.dashboard.step_checked(message)
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
        if not self.closing and self.dashboard.rollout_progressed(message):
            self.recheck_all()  # the rollout skewmit started finished: every step again

    def on_metrics_sampled(self, message: MetricsSampled) -> None:
        if self.closing:
            return
        view = self.screen if isinstance(self.screen, ValidationScreen) else None
        self.dashboard.metrics_sampled(message, view)

    def on_journal_read(self, message: JournalRead) -> None:
        if not self.closing:
            self.dashboard.journal_read(message)

    def on_pane_shown(self, message: PaneShown) -> None:
        self.dashboard.pane = message.pane
        if message.pane == "metrics":
            self.polls.resume_metrics()

    def on_checklist_step_highlighted(self, message: Checklist.StepHighlighted) -> None:
        self.dashboard.selected_step = message.step
        self.dashboard.render_detail()
        self.refresh_bindings()  # the footer shows the selected step's keys only

    # -- what the action controller asks of the app (tui.action_controller.ActionHost) -----

    def show_modal(self, screen: Screen[Any], then: Any = None) -> None:
        self.push_screen(screen, then)

    def busy_changed(self) -> None:
        self.refresh_bindings()
        self.dashboard.render_detail()

    def render_rows(self) -> None:
        self.dashboard.render_rows()

    def change_made(self) -> None:
        self.dashboard.rollout_active = True
        self.refresh_bindings()
        self.fetch_log()
        self.polls.request(GROUP_ROLLOUT)
        self.recheck_all()

    def evidence_written(self, path: str) -> None:
        self.main.show_evidence(f"evidence bundle: {path}")
        self.dashboard.render_detail()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every toast as plain, sanitised text: messages quote the cluster (errors, titles,
        verify results), so none is parsed as markup or reaches the terminal raw."""
        super().notify(
            terminal_text(message, 2000),
            title=terminal_line(title),
            severity=severity,
            timeout=timeout,
            markup=False,
        )

    def refuse(self, why: str) -> None:
        """Say why a key did nothing: on the main screen's status line (a toast would cover
        the screen at 80x24), elsewhere as a toast."""
        if self.main.is_attached and self.screen is self.main:
            self.main.say(why, refusal=True)
        else:
            self.notify(why, severity="warning", timeout=6)

    # -- the action flow's messages, handed to the controller -------------------------------

    @on(PreviewReady)
    @on(ActionApplied)
    @on(ActionFailed)
    @on(ActionReverted)
    @on(RevertPreviewReady)
    @on(EvidenceCaptured)
    def _action_result(self, message: Message) -> None:
        if self.actions is not None and not self.closing:
            self.actions.handle(message)

    def on_action_log_entry_highlighted(self, message: ActionLog.EntryHighlighted) -> None:
        if self.actions is not None:
            self.actions.log_highlighted(message.entry, message.why_not)

    def on_action_log_revert_requested(self, message: ActionLog.RevertRequested) -> None:
        if self.actions is None:
            self.refuse(self.connecting)
        else:
            self.actions.request_revert(message.entry)

    def on_step_detail_action_chosen(self, message: StepDetail.ActionChosen) -> None:
        self.start_action(message.action)

    # -- keys: each acts, or says on the status line why it cannot ----------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Footer state of the main screen's keys: shown, dimmed (None) or hidden (False).
        A key pressed in either case still answers (see run_action)."""
        if self.actions is None:
            return footer_before_open(action)
        return self.actions.footer_state(action, parameters, self.selected_step)

    def key_refusal(self, action: str, parameters: tuple[object, ...]) -> str:
        """Why a key's action cannot run now ("" when it can)."""
        if self.actions is None:
            return self.connecting if footer_before_open(action) is not True else ""
        return self.actions.key_refusal(action, parameters, self.selected_step)

    async def run_action(
        self,
        action: str | ActionParseResult,
        default_namespace: DOMNode | None = None,
        namespaces: Mapping[str, DOMNode] | None = None,
    ) -> bool:
        """A key whose `check_action` says no still answers: Textual would skip it silently,
        and the footer's dimming is invisible under NO_COLOR, so the status line says why."""
        if await super().run_action(action, default_namespace, namespaces):
            return True
        _, name, params = parse_action(action) if isinstance(action, str) else action
        if name == "revert" and isinstance(default_namespace, ActionLog):
            # The log's own `r`: why, as the log said when its highlighted entry changed.
            why = self.actions.log_why_not if self.actions is not None else self.connecting
        else:
            why = self.key_refusal(name, params)
        if not why:
            return False
        self.refuse(why)
        return True

    def start_action(self, action: ActionSpec) -> None:
        """Start an action chosen by key, button or palette: inputs, then the preview."""
        if self.actions is None:
            self.refuse(self.connecting)
        else:
            self.actions.start(action)

    def action_step_action(self, action_id: str) -> None:
        if self.actions is not None:
            self.actions.step_action(action_id)

    def action_fix_step(self) -> None:
        if self.actions is None:
            self.refuse(self.connecting)
        else:
            self.actions.fix(self.selected_step)

    def action_revert_change(self) -> None:
        if self.actions is not None:
            self.actions.revert_highlighted()

    def action_refresh(self) -> None:
        from services.smi_reads import forget_readings

        if self.session is None:
            self.refuse(self.connecting)
            return
        # The operator asked for fresh reads: nvidia-smi too, not step 5's per-node memory.
        forget_readings(self.session.runbook.cluster)
        self.recheck_all()
        self.polls.request(GROUP_ROLLOUT, GROUP_METRICS)
        self.fetch_log()

    def action_skip_step(self) -> None:
        if self.session is None:
            self.refuse(self.connecting)
            return
        self.board.toggle_skip(self.selected_step)
        self.dashboard.render_rows()
        self.dashboard.render_detail()

    # -- quitting ---------------------------------------------------------------------------

    async def action_quit(self) -> None:
        why = self.dashboard.quit_warning()
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
        every = low_bandwidth.session_chart_interval(self.session)
        quiet = self.dashboard.low_bandwidth
        view = ValidationScreen(self._header_state(), quiet=quiet, chart_interval_s=every)

        def fill() -> None:
            view.show_metrics(self.metrics)
            remaining = self.dashboard.remaining_s(self.verdict)
            view.show_verdict(self.verdict, remaining, self.verdict_state.lost)
            view.show_progress(self.progress)
            self.polls.resume_metrics()

        self.push_screen(view, lambda _: self.polls.resume_metrics())
        self.call_after_refresh(fill)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from runbook_commands(self)
