"""Changing the cluster from the app: an action's inputs, the preview (diff, server dry run,
RBAC, GitOps), the confirmation (typed on a production context), the apply, the revert from
the action log, and the evidence capture. One change at a time; each goes through the gate.

`ActionController` owns the flow's state (the change in progress, what it is doing, the
action log's highlighted entry, the evidence path) and says why a key cannot act; the app
hands it the messages of the flow and gives it a few things to do on screen (`ActionHost`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import Screen

from services.models import ActionSpec, JournalAction, Step
from services.sanitize import terminal_line
from tui.keymap import step_of_action
from tui.messages import (
    ActionApplied,
    ActionFailed,
    ActionReverted,
    EvidenceCaptured,
    PreviewReady,
    RevertPreviewReady,
)
from tui.screens.input_prompt import InputPromptScreen
from tui.screens.preview import ConfirmScreen, preview_screen
from tui.session import Session
from tui.step_board import EVIDENCE_ACTION, StepBoard
from tui.workers import RunbookWorkers

if TYPE_CHECKING:
    from tui.dashboard import Dashboard

# Keys that act on the session: refused while it is being opened (q, ?, v work).
NEEDS_SESSION = frozenset({"step_action", "fix_step", "revert_change", "refresh", "skip_step"})
NOTHING_APPLIED = "nothing to revert: no change has been applied in this incident"
READ_ONLY = "read-only mode: nothing is reverted (started --read-only)"


def footer_before_open(action: str) -> bool | None:
    """A key's footer state while the session is being opened: those that need it are
    hidden (step keys, revert) or dimmed (the fix key, refresh, skip)."""
    if action not in NEEDS_SESSION:
        return True
    return False if action in ("step_action", "revert_change") else None


def key_refusal(
    actions: ActionController | None,
    connecting: str,
    action: str,
    parameters: tuple[object, ...],
    step: Step,
    *,
    from_log: bool = False,
) -> str:
    """Why a key's action cannot run now on the selected `step` ("" when it can): before the
    session is open (`actions` None) the keys that need it say `connecting`; the action log's
    own `r` (`from_log`) says what the log said when its highlighted entry changed."""
    if from_log and action == "revert":
        return actions.log_why_not if actions is not None else connecting
    if actions is None:
        return connecting if footer_before_open(action) is not True else ""
    return actions.key_refusal(action, parameters, step)


class ActionHost(Protocol):
    """What the controller asks of the app."""

    def show_modal(self, screen: Screen[Any], then: Callable[[Any], None] | None = None) -> None:
        """Push `screen`; `then` gets what it is dismissed with."""

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None: ...

    def refuse(self, why: str) -> None:
        """Say why a key did nothing."""

    def busy_changed(self) -> None:
        """The change in progress or its note changed: redraw the keys and the step."""

    def change_made(self) -> None:
        """A change was applied or reverted: follow its rollout, recheck every step."""


class ActionController:
    """The action flow: start_action -> inputs -> preview -> confirmation -> apply (or
    revert), with the refusals and the one-change-at-a-time rule."""

    def __init__(
        self,
        host: ActionHost,
        session: Session,
        board: StepBoard,
        workers: RunbookWorkers,
        dashboard: Dashboard,
    ) -> None:
        self.host = host
        self.session = session
        self.board = board
        self.workers = workers
        self.dashboard = dashboard  # the checklist and the evidence note
        self.busy: ActionSpec | None = None  # the change in progress
        self.busy_note = ""  # what it is doing now
        self.evidence_path = ""
        # The action log's highlighted entry and why `r` cannot revert it, as the log said.
        self.log_entry: JournalAction | None = None
        self.log_why_not = NOTHING_APPLIED
        # The flow's results as the workers post them (tui.messages), by message class.
        self._handlers: dict[type[Message], Callable[[Any], None]] = {
            PreviewReady: self.preview_ready,
            ActionApplied: self.applied,
            ActionFailed: self.failed,
            ActionReverted: self.reverted,
            RevertPreviewReady: self.revert_preview_ready,
            EvidenceCaptured: self.evidence_captured,
        }

    def handle(self, message: Message) -> None:
        """Act on one of the flow's results (the app hands over the six classes above)."""
        self._handlers[type(message)](message)

    @property
    def read_only(self) -> bool:
        return self.session.read_only

    def _typed_name(self) -> str | None:
        """On a production context the operator types the deployment's name to confirm."""
        return self.session.runbook.target.deployment if self.session.production else None

    # -- keys: each acts, or says why it cannot ------------------------------------------------

    def footer_state(self, action: str, parameters: tuple[object, ...], step: Step) -> bool | None:
        """Shown (True), dimmed (None) or hidden (False) in the footer on the selected `step`:
        its offered keys show, dimmed when they cannot run; the rest hide."""
        if action == "step_action" and parameters:
            action_id = str(parameters[0])
            if step_of_action(action_id) != step or not self.board.find_action(action_id):
                return False  # another step's key, or one its checks do not offer now
            return None if self.key_refusal(action, parameters, step) else True
        if action == "fix_step":
            return None if self.key_refusal(action, parameters, step) else True
        if action == "revert_change":
            # Shown only with something to revert: the footer at 80 columns is short.
            return not self.key_refusal(action, parameters, step)
        return True

    def key_refusal(self, action: str, parameters: tuple[object, ...], step: Step) -> str:
        """Why a key's action cannot run now on the selected `step` ("" when it can)."""
        if action == "step_action" and parameters:
            return self.board.why_not(
                str(parameters[0]), step, read_only=self.read_only, busy=self.busy
            )
        if action == "fix_step":
            return self.board.fix_for(step, read_only=self.read_only, busy=self.busy)[1]
        if action == "revert_change":
            return self.revert_refusal()
        return ""

    def revert_refusal(self) -> str:
        why = self.log_why_not
        if not why and self.busy is not None:
            why = self._one_at_a_time()
        return why

    def _one_at_a_time(self) -> str:
        title = self.busy.title if self.busy is not None else "a change"
        return f"{title} is still in progress; one change at a time"

    def log_highlighted(self, entry: JournalAction | None, why_not: str) -> None:
        self.log_entry = entry
        self.log_why_not = why_not

    def fix(self, step: Step) -> None:
        spec, why = self.board.fix_for(step, read_only=self.read_only, busy=self.busy)
        if spec is None:
            self.host.refuse(why)
        else:
            self.start(spec)

    def step_action(self, action_id: str) -> None:
        action = self.board.find_action(action_id)
        if action is not None:
            self.start(action)

    def revert_highlighted(self) -> None:
        entry = self.log_entry
        if entry is not None and not self.log_why_not:
            self.request_revert(entry)

    # -- apply ----------------------------------------------------------------------------------

    def start(self, action: ActionSpec) -> None:
        """Start an action chosen by key, button or palette: inputs, then the preview."""
        if not action.available:
            self.host.refuse(f"{action.title}: unavailable ({action.reason})")
            return
        if self.busy is not None:
            self.host.refuse(self._one_at_a_time())
            return
        if action.id == EVIDENCE_ACTION:
            self.host.notify("capturing the evidence bundle…")
            self.workers.run_evidence()
            return
        if action.inputs:
            self.host.show_modal(InputPromptScreen(action), partial(self._inputs_given, action))
        else:
            self._inputs_given(action, {})

    def _inputs_given(self, action: ActionSpec, values: dict[str, str] | None) -> None:
        if values is None:
            return
        self._set_busy(action, "previewing: building the plan and asking the server for a dry run…")
        self.workers.run_preview(action, values)

    def _set_busy(self, action: ActionSpec | None, note: str = "") -> None:
        """One change at a time: the action in progress, and what it is doing now."""
        self.busy = action
        self.busy_note = note
        self.host.busy_changed()

    def preview_ready(self, message: PreviewReady) -> None:
        self._set_busy(message.action, "waiting for your confirmation")
        screen = preview_screen(message.preview, typed_name=self._typed_name())
        self.host.show_modal(screen, partial(self._confirmed, message))

    def _confirmed(self, message: PreviewReady, confirmed: bool | None) -> None:
        if not confirmed:
            self._set_busy(None)
            self.host.notify(f"{message.action.title}: not applied")
            return
        self.board.running_step = message.action.step
        self.dashboard.render_rows()
        self._set_busy(message.action, "applying: journaled first, then sent to the API server")
        self.workers.run_apply(message)

    def applied(self, message: ActionApplied) -> None:
        self._set_busy(None)
        applied = message.applied
        self.board.applied(message.action.step, applied.seq, message.action.id)
        self.host.notify(
            f"{message.action.title}: applied (journal #{applied.seq}); {applied.message}",
            severity="information" if applied.verified else "warning",
        )
        self.workers.fetch_log()
        self.host.change_made()

    def failed(self, message: ActionFailed) -> None:
        self.board.action_failed(message.step, message.error)
        self.dashboard.render_rows()
        self._set_busy(None)
        self.workers.fetch_log()
        if message.detail:
            self.host.show_modal(
                ConfirmScreen(message.title, message.error, can_confirm=False, diff=message.detail)
            )
        else:
            self.host.notify(
                f"{message.title} failed: {message.error}", severity="error", timeout=10
            )

    def evidence_captured(self, message: EvidenceCaptured) -> None:
        self.evidence_path = str(message.path)
        self.dashboard.show_evidence(self.evidence_path)
        self.host.notify(f"evidence bundle written: {self.evidence_path}", timeout=15)
        self.workers.fetch_log()

    # -- revert ---------------------------------------------------------------------------------

    def request_revert(self, entry: JournalAction) -> None:
        if self.read_only:
            self.host.refuse(READ_ONLY)
            return
        if self.busy is not None:
            self.host.refuse(self._one_at_a_time())
            return
        busy = ActionSpec(f"revert.{entry.seq}", Step.ROLLBACK, f"Revert #{entry.seq}", "", "")
        self._set_busy(busy, "previewing the revert: the recorded inverse and a server dry run")
        self.workers.run_revert_preview(entry.seq, entry.title)

    def revert_preview_ready(self, message: RevertPreviewReady) -> None:
        self._set_busy(self.busy, "waiting for your confirmation")
        screen = preview_screen(
            message.preview, typed_name=self._typed_name(), confirm_label="Revert"
        )
        screen.title_text = terminal_line(f"Revert: {message.title}")
        self.host.show_modal(screen, partial(self._revert_confirmed, message.seq, message.title))

    def _revert_confirmed(self, seq: int, title: str, confirmed: bool | None) -> None:
        if not confirmed:
            self._set_busy(None)
            self.host.notify(f"Revert of {title}: not applied")
            return
        self._set_busy(self.busy, "reverting: applying the recorded inverse")
        self.workers.run_revert(seq, title)

    def reverted(self, message: ActionReverted) -> None:
        self._set_busy(None)
        self.board.reverted_change(message.step, message.seq)
        self.host.notify(f"reverted journal entry #{message.seq}: {message.applied.message}")
        self.workers.fetch_log()
        self.host.change_made()
