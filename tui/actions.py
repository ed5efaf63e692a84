"""Changing the cluster from the app: an action's inputs, the preview (diff, server dry run,
RBAC, GitOps), the confirmation (typed on a production context), the apply, the revert from
the action log, and the evidence capture. One change at a time; each goes through the gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING

from textual.actions import ActionParseResult
from textual.actions import parse as parse_action
from textual.dom import DOMNode
from textual.notifications import SeverityLevel

from services.models import ActionSpec, Step
from services.sanitize import terminal_line, terminal_text
from tui.keymap import step_of_action
from tui.screens.input_prompt import InputPromptScreen
from tui.screens.preview import ConfirmScreen, preview_screen
from tui.step_board import EVIDENCE_ACTION, StepBoard
from tui.workers import (
    GROUP_ROLLOUT,
    ActionApplied,
    ActionFailed,
    ActionReverted,
    EvidenceCaptured,
    Poll,
    PreviewReady,
    RevertPreviewReady,
    RunbookWorkers,
)
from widgets.action_log import ActionLog
from widgets.step_detail import StepDetail

if TYPE_CHECKING:
    from tui.screens.main import MainScreen


class ActionFlow(RunbookWorkers):
    """The action flow of SkewmitApp (which provides the state and rendering named here)."""

    board: StepBoard
    running_step: Step | None
    action_busy: ActionSpec | None
    busy_note: str
    rollout_active: bool
    evidence_path: str
    polls: dict[str, Poll]
    main: MainScreen

    @property
    def closing(self) -> bool:
        raise NotImplementedError

    def _render_rows(self) -> None:
        raise NotImplementedError

    def _render_detail(self) -> None:
        raise NotImplementedError

    @property
    def selected_step(self) -> Step:
        raise NotImplementedError

    def recheck_all(self) -> None:
        raise NotImplementedError

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

    # -- keys: each acts, or says on the status line why it cannot -----------------------------

    def find_action(self, action_id: str) -> ActionSpec | None:
        return self.board.find_action(action_id)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Footer state of the main screen's keys: shown, dimmed (None) or hidden (False).
        The selected step's offered keys show, dimmed when they cannot run; the rest hide.
        A key pressed in either case still answers (see run_action)."""
        if action == "step_action" and parameters:
            action_id = str(parameters[0])
            if step_of_action(action_id) != self.selected_step or not self.find_action(action_id):
                return False  # another step's key, or one its checks do not offer now
            return None if self.key_refusal(action, parameters) else True
        if action == "fix_step":
            return None if self.key_refusal(action, parameters) else True
        if action == "revert_change":
            # Shown only with something to revert: the footer at 80 columns is short.
            return not self.key_refusal(action, parameters)
        return True

    def key_refusal(self, action: str, parameters: tuple[object, ...]) -> str:
        """Why a key's action cannot run now ("" when it can)."""
        read_only, busy = self.session.read_only, self.action_busy
        if action == "step_action" and parameters:
            return self.board.why_not(
                str(parameters[0]), self.selected_step, read_only=read_only, busy=busy
            )
        if action == "fix_step":
            return self.board.fix_for(self.selected_step, read_only=read_only, busy=busy)[1]
        if action == "revert_change":
            return self.revert_refusal()
        return ""

    def _action_log(self) -> ActionLog | None:
        """The main screen's action log (None while the app shuts down)."""
        return next(self.main.query(ActionLog).results(ActionLog), None)

    def revert_refusal(self) -> str:
        log = self._action_log()
        if log is None:
            return "nothing to revert: the action log is not on screen"
        why: str = log.why_not_revertible()
        if not why and self.action_busy is not None:
            why = f"{self.action_busy.title} is still in progress; one change at a time"
        return why

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
            why = default_namespace.why_not_revertible()
        else:
            why = self.key_refusal(name, params)
        if not why:
            return False
        self.refuse(why)
        return True

    def refuse(self, why: str) -> None:
        """Say why a key did nothing: on the main screen's status line (a toast would cover
        the screen at 80x24), elsewhere as a toast."""
        if self.main.is_attached and self.screen is self.main:
            self.main.say(why, refusal=True)
        else:
            self.notify(why, severity="warning", timeout=6)

    def action_step_action(self, action_id: str) -> None:
        action = self.find_action(action_id)
        if action is not None:
            self.start_action(action)

    def action_fix_step(self) -> None:
        spec, why = self.board.fix_for(
            self.selected_step, read_only=self.session.read_only, busy=self.action_busy
        )
        if spec is None:
            self.refuse(why)
        else:
            self.start_action(spec)

    def action_revert_change(self) -> None:
        log = self._action_log()
        entry = log.selected if log is not None else None
        if log is not None and entry is not None and log.revertible(entry):
            self.on_action_log_revert_requested(ActionLog.RevertRequested(log, entry))

    def on_step_detail_action_chosen(self, message: StepDetail.ActionChosen) -> None:
        self.start_action(message.action)

    def start_action(self, action: ActionSpec) -> None:
        """Start an action chosen by key, button or palette: inputs, then the preview."""
        if not action.available:
            self.refuse(f"{action.title}: unavailable ({action.reason})")
            return
        if self.action_busy is not None:
            self.refuse(f"{self.action_busy.title} is still in progress; one change at a time")
            return
        if action.id == EVIDENCE_ACTION:
            self.notify("capturing the evidence bundle…")
            self.run_evidence()
            return
        if action.inputs:
            self.push_screen(InputPromptScreen(action), partial(self._inputs_given, action))
        else:
            self._inputs_given(action, {})

    def _inputs_given(self, action: ActionSpec, values: dict[str, str] | None) -> None:
        if values is None:
            return
        self._set_busy(action, "previewing: building the plan and asking the server for a dry run…")
        self.run_preview(action, values)

    def _set_busy(self, action: ActionSpec | None, note: str = "") -> None:
        """One change at a time: the action in progress, and what it is doing now."""
        self.action_busy = action
        self.busy_note = note
        self.refresh_bindings()
        self._render_detail()

    def on_preview_ready(self, message: PreviewReady) -> None:
        if self.closing:
            return
        self._set_busy(message.action, "waiting for your confirmation")
        typed = self.session.runbook.target.deployment if self.session.production else None
        self.push_screen(
            preview_screen(message.preview, typed_name=typed), partial(self._confirmed, message)
        )

    def _confirmed(self, message: PreviewReady, confirmed: bool | None) -> None:
        if not confirmed:
            self._set_busy(None)
            self.notify(f"{message.action.title}: not applied")
            return
        self.running_step = message.action.step
        self._render_rows()
        self._set_busy(message.action, "applying: journaled first, then sent to the API server")
        self.run_apply(message)

    def on_action_applied(self, message: ActionApplied) -> None:
        if self.closing:
            return
        self._set_busy(None)
        applied = message.applied
        self.board.applied(message.action.step, applied.seq, message.action.id)
        self.notify(
            f"{message.action.title}: applied (journal #{applied.seq}); {applied.message}",
            severity="information" if applied.verified else "warning",
        )
        self._after_change()

    def on_action_reverted(self, message: ActionReverted) -> None:
        if self.closing:
            return
        self._set_busy(None)
        self.board.reverted_change(message.step, message.seq)
        self.notify(f"reverted journal entry #{message.seq}: {message.applied.message}")
        self._after_change()

    def _after_change(self) -> None:
        self.rollout_active = True
        self.refresh_bindings()
        self.fetch_log()
        self.polls[GROUP_ROLLOUT].request()
        self.recheck_all()

    def on_action_failed(self, message: ActionFailed) -> None:
        if self.closing:
            return
        self.board.action_failed(message.step, message.error)
        self._render_rows()
        self._set_busy(None)
        self.fetch_log()
        if message.detail:
            self.push_screen(
                ConfirmScreen(message.title, message.error, can_confirm=False, diff=message.detail)
            )
        else:
            self.notify(
                f"{message.title} failed: {message.error}",
                severity="error",
                timeout=10,
                markup=False,
            )

    def on_evidence_captured(self, message: EvidenceCaptured) -> None:
        if self.closing:
            return
        self.evidence_path = str(message.path)
        self.main.show_evidence(f"evidence bundle: {self.evidence_path}")
        self.notify(f"evidence bundle written: {self.evidence_path}", timeout=15, markup=False)
        self._render_detail()
        self.fetch_log()

    def on_action_log_revert_requested(self, message: ActionLog.RevertRequested) -> None:
        entry = message.entry
        if self.session.read_only:
            self.refuse("read-only mode: nothing is reverted (started --read-only)")
            return
        if self.action_busy is not None:
            self.refuse(f"{self.action_busy.title} is still in progress; one change at a time")
            return
        busy = ActionSpec(f"revert.{entry.seq}", Step.ROLLBACK, f"Revert #{entry.seq}", "", "")
        self._set_busy(busy, "previewing the revert: the recorded inverse and a server dry run")
        self.run_revert_preview(entry.seq, entry.title)

    def on_revert_preview_ready(self, message: RevertPreviewReady) -> None:
        if self.closing:
            return
        self._set_busy(self.action_busy, "waiting for your confirmation")
        preview = message.preview
        typed = self.session.runbook.target.deployment if self.session.production else None
        screen = preview_screen(preview, typed_name=typed, confirm_label="Revert")
        screen.title_text = terminal_line(f"Revert: {message.title}")
        self.push_screen(screen, partial(self._revert_confirmed, message.seq, message.title))

    def _revert_confirmed(self, seq: int, title: str, confirmed: bool | None) -> None:
        if not confirmed:
            self._set_busy(None)
            self.notify(f"Revert of {title}: not applied")
            return
        self._set_busy(self.action_busy, "reverting: applying the recorded inverse")
        self.run_revert(seq, title)
