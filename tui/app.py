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
(tui.opening). Tests and tools read state from its owner: `app.board` (reports, rechecks,
the running step), `app.dashboard` (metrics, rollout, verdict), `app.actions` (the change in
progress, the evidence path; None until the session is open).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any, ClassVar, Self

from textual import events, on
from textual.actions import ActionParseResult
from textual.actions import parse as parse_action
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from services.models import ActionSpec, Step
from services.sanitize import terminal_line, terminal_text
from tui import low_bandwidth
from tui.action_controller import ActionController, footer_before_open, key_refusal
from tui.dashboard import Dashboard
from tui.heap import HeapKeeper, start_up_over
from tui.messages import (
    ActionApplied,
    ActionFailed,
    ActionReverted,
    EvidenceCaptured,
    JournalRead,
    MetricsSampled,
    PaneShown,
    PodsListed,
    PreviewReady,
    RevertPreviewReady,
    RolloutProgressed,
    SessionOpened,
    StepChecked,
)
from tui.opening import SessionOpening
from tui.palette import runbook_commands
from tui.polls import RunbookPolls, step_of_group
from tui.screens.breakpoints import DrawnOnceScreen
from tui.screens.help import HelpScreen, key_rows
from tui.screens.main import MainScreen, checklist_rows
from tui.screens.preview import ConfirmScreen
from tui.screens.validation_view import ValidationScreen
from tui.session import Session, SessionOpener
from tui.step_board import StepBoard
from tui.style_cache import KeptStylesheet, cache_path
from tui.workers import (
    GROUP_ACTION,
    GROUP_EVIDENCE,
    GROUP_ROLLOUT,
    RunbookWorkers,
    use_worker_threads,
)
from widgets.action_log import ActionLog
from widgets.checklist import Checklist
from widgets.header_bar import HeaderState
from widgets.step_detail import StepDetail

EXIT_ERROR = 2  # the session could not be opened (tui.launchers' code)
KEPT_VIEW = "validation-view"  # the installed validation view's name


class SkewmitApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "skewmit"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide"), (170, "-very-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("v", "validation_view", "Validation", id="app.validation-view"),
        Binding("ctrl+r", "refresh", "Refresh all", show=False, id="app.refresh"),
    ]

    def __init__(self, session_or_opener: Session | SessionOpener) -> None:
        super().__init__()
        # The stylesheets parsed in an earlier run are read back (tui.style_cache): 15-20 ms
        # of the first frame (issue 12). Nothing has been added to Textual's yet.
        self.stylesheet = KeptStylesheet(variables=self.get_css_variables(), path=cache_path())
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
        opener = self.opener
        header, waiting = (opener.header, opener.waiting) if opener else (HeaderState(), "")
        self.main = MainScreen(header, checklist_rows(self.board))  # as the dashboard shows them
        self.dashboard = Dashboard(
            self.main, self.board, self._views, self.session, waiting, header
        )
        self.main.header_state = self.dashboard.header_state()
        self.runbook_workers: RunbookWorkers | None = None
        self.actions: ActionController | None = None
        self.polls = RunbookPolls(self.board)
        self.informer: Any = None  # services.informer.Informer: pods and nodes from watches
        # The collector's policy (tui.heap): freeze start-up's heap, then each round's, and
        # what survives the interpreter's own full collections while no screen is over ours.
        self.heap = HeapKeeper(covered=lambda: self.screen is not self.main)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key | events.MouseDown):
            stack = self.screen_stack
            if stack and isinstance(stack[-1], DrawnOnceScreen):
                stack[-1].input_arrived()  # drawn as soon as it has been handled
        await super().on_event(event)

    def refresh(
        self, *, repaint: bool = True, layout: bool = False, recompose: bool = False
    ) -> Self:
        """App.refresh, with its whole repaint kept: the screens drop the repaint that comes
        with a layout (tui.screens.breakpoints.PrestyledScreen.refresh), and after
        App.suspend or a theme change every cell must be drawn again."""
        super().refresh(repaint=repaint, layout=layout, recompose=recompose)
        if repaint and layout and not recompose and self.screen_stack:
            self.screen_stack[-1].refresh()
        return self

    def run(self, *args: Any, **kwargs: Any) -> int | None:
        """App.run; when the opener failed, "skewmit: <why>" on stderr and 2 returned."""
        result = super().run(*args, **kwargs)
        if self.open_error:
            print(f"{getattr(self.opener, 'prog', 'skewmit')}: {self.open_error}", file=sys.stderr)
        return result

    @property
    def connecting(self) -> str:
        """What a key that needs the session says while it is being opened ("" once open)."""
        return "" if self.session is not None or self.opening is None else self.opening.connecting

    @property
    def selected_step(self) -> Step:
        """The checklist's cursor itself. Keys typed together ("2a", "↓a") reach the app
        before the StepHighlighted that the first one causes: the dashboard's copy would
        still name the step before, and `a` would act on it."""
        if self.main.composed:
            step = self.main.query_one(Checklist).selected_step
            if step is not None:
                return step
        return self.dashboard.selected_step

    @property
    def closing(self) -> bool:
        """Results still arrive while the app shuts down (its screens' widgets are being
        removed): there is nothing to show them on."""
        return not self.is_running or not self.main.is_attached

    def _views(self) -> list[Any]:
        return [s for s in self.screen_stack if isinstance(s, MainScreen | ValidationScreen)]

    # -- lifecycle ----------------------------------------------------------------------

    async def on_mount(self) -> None:
        use_worker_threads()  # before any worker: see tui.workers.WORKER_THREADS
        self.set_interval(1.0, self._tick)
        if self.session is not None:  # a session opened before the app (screenshots, tests)
            await self.push_screen(self.main)
            # Drawn inside Textual's start-up batch, whose frame is dropped: draw it again.
            self.call_later(self.main.refresh)
            self._start_session(self.session)
            return
        assert self.opener is not None and self.opening is not None
        # The main screen is pushed once Textual's start-up batch is over, so that the frame
        # its first layout draws is the one the terminal shows. Pushed inside the batch (from
        # here, awaited), it was laid out and drawn, the frame dropped, and then all of it
        # drawn again: 50-130 ms more to the first frame (issue 12). The panes say why they
        # wait from its mount on, before that first layout; the session is opened once the
        # first frame is out.
        self.main.first_mount = self.dashboard.show_waiting
        self.main.first_frame = partial(self.opening.start, self)
        self.call_later(self.push_screen, self.main)

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
        self.dashboard.show_header()
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
        actions = ActionController(self, session, self.board, workers, self.dashboard)
        self.actions = self.dashboard.actions = actions
        # Chart pacing; the quiet mode, which the validation view follows too.
        on = self.dashboard.low_bandwidth = low_bandwidth.setup(self, self.main, session)
        every = low_bandwidth.session_chart_interval(session)
        for view in self.screen_stack:  # a validation view opened while connecting
            if isinstance(view, ValidationScreen):
                view.follow_session(on, every)
        self.polls.start(
            session,
            workers,
            self.set_timer,
            rollout_active=lambda: self.dashboard.rollout_active,
            # screen_stack, not self.screen: a poll's callback can land while the app exits,
            # with no screen left (self.screen raises then).
            metrics_visible=lambda: (
                bool(self.screen_stack) and self.dashboard.metrics_visible(self.screen_stack[-1])
            ),
            first=self.selected_step,
        )
        workers.fetch_log()
        if self.informer is not None:
            # The inspector's pods, nodes and GPU labels from the informer's first list,
            # before step 5's nvidia-smi and DCGM reads answer.
            workers.fetch_pod_rows()
        self.dashboard.render_rows()
        for notice in session.notices:  # held by another instance; reconciled intents
            self.notify(terminal_line(notice, 500), severity="warning", timeout=30, markup=False)

    async def on_unmount(self) -> None:
        self.heap.stop_following()
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

    def recheck_all(self) -> None:
        self.polls.recheck_all()
        self.dashboard.render_rows()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
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
        self.dashboard.opening_answered(self.polls.first_steps)
        self.refresh_bindings()
        informer = self.informer
        synced = informer is None or all(r.synced for r in informer.reflectors.values())
        self.heap.answered(message.step, synced=synced, overlay=self.screen is not self.main)
        if self.heap.frozen_once:
            start_up_over()  # the launcher's pause of the collector (tui.heap)

    def on_pods_listed(self, message: PodsListed) -> None:
        if not self.closing:
            self.dashboard.pods_listed(message)

    def on_rollout_progressed(self, message: RolloutProgressed) -> None:
        if not self.closing and self.dashboard.rollout_progressed(message):
            self.recheck_all()  # the rollout skewmit started finished: every step again

    def on_metrics_sampled(self, message: MetricsSampled) -> None:
        if self.closing:
            return
        self.dashboard.metrics_sampled(message, self.screen)

    def on_journal_read(self, message: JournalRead) -> None:
        if not self.closing:
            self.dashboard.journal_read(message)

    def on_pane_shown(self, message: PaneShown) -> None:
        self.dashboard.pane = message.pane
        if message.pane == "metrics":
            self.polls.resume_metrics()

    def on_checklist_step_highlighted(self, message: Checklist.StepHighlighted) -> None:
        if self.closing:
            return  # posted as the screens were removed: nothing to show the step on
        self.dashboard.selected_step = message.step
        self.dashboard.render_detail()
        self.refresh_bindings()  # the footer shows the selected step's keys only

    # -- what the action controller asks of the app (tui.action_controller.ActionHost) -----

    def show_modal(self, screen: Screen[Any], then: Any = None) -> None:
        self.push_screen(screen, then)

    def busy_changed(self) -> None:
        self.refresh_bindings()
        self.dashboard.render_detail()

    def change_made(self) -> None:
        self.dashboard.rollout_active = True
        self.refresh_bindings()
        self.polls.request(GROUP_ROLLOUT)
        self.recheck_all()

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
            if self.screen_stack:  # none once the app is exiting: no keys to show
                self.refresh_bindings()  # `r` is shown only with something to revert

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
        from_log = isinstance(default_namespace, ActionLog)
        why = key_refusal(
            self.actions, self.connecting, name, params, self.selected_step, from_log=from_log
        )
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
        if self.session is None:
            self.refuse(self.connecting)
            return
        self.polls.refresh_all()
        self.dashboard.render_rows()

    def action_skip_step(self) -> None:
        if self.session is None:
            self.refuse(self.connecting)
            return
        self.dashboard.toggle_skip(self.selected_step)

    # -- quitting ---------------------------------------------------------------------------

    async def action_quit(self) -> None:
        question = self.dashboard.quit_question()
        if question is None:
            self.exit()
        elif not isinstance(self.screen, ConfirmScreen):  # else already asked, or another
            self.push_screen(question, lambda confirmed: self.exit() if confirmed else None)

    # -- screens and the command palette ------------------------------------------------

    def action_help(self) -> None:
        self.push_screen(HelpScreen(key_rows(MainScreen.BINDINGS, self.BINDINGS)))

    def action_validation_view(self) -> None:
        if isinstance(self.screen, ValidationScreen):
            self.pop_screen()
            return
        # Built once the session is open, then kept (installed): reopening it shows the same
        # widgets and charts instead of composing, styling and drawing them again (issue 9).
        kept = self.get_screen(KEPT_VIEW) if self.is_screen_installed(KEPT_VIEW) else None
        view = kept if isinstance(kept, ValidationScreen) else self.dashboard.validation_view()
        if kept is None and self.session is not None:
            self.install_screen(view, KEPT_VIEW)

        def fill() -> None:
            view.show_header(self.dashboard.header_state())  # it missed the ticks while away
            self.dashboard.fill_view(view)
            self.polls.resume_metrics()

        self.push_screen(view, lambda _: self.polls.resume_metrics())
        self.call_after_refresh(fill)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from runbook_commands(self)
