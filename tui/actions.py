"""Changing the cluster from the app: an action's inputs, the preview (diff, server dry run,
RBAC, GitOps), the confirmation (typed on a production context), the apply, the revert from
the action log, and the evidence capture. One change at a time; each goes through the gate.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from textual.notifications import SeverityLevel

from services.models import Step
from services.runbook import ActionSpec, StepReport
from services.sanitize import terminal_line, terminal_text
from tui.screens.input_prompt import InputPromptScreen
from tui.screens.preview import ConfirmScreen, preview_screen
from tui.workers import (
    GROUP_ROLLOUT,
    ActionApplied,
    ActionFailed,
    ActionReverted,
    EvidenceCaptured,
    Poll,
    PreviewReady,
    RunbookWorkers,
)
from widgets.action_log import ActionLog
from widgets.step_detail import StepDetail

EVIDENCE_ACTION = "validate.evidence"


class ActionFlow(RunbookWorkers):
    """The action flow of SkewmitApp (which provides the state and rendering named here)."""

    reports: dict[Step, StepReport]
    failed: dict[Step, str]
    running_step: Step | None
    acted: set[Step]
    action_busy: ActionSpec | None
    busy_note: str
    rollout_active: bool
    evidence_path: str
    polls: dict[str, Poll]
    main: Any  # tui.screens.main.MainScreen

    @property
    def closing(self) -> bool:
        raise NotImplementedError

    def _render_rows(self) -> None:
        raise NotImplementedError

    def _render_detail(self) -> None:
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

    def find_action(self, action_id: str) -> ActionSpec | None:
        for report in self.reports.values():
            for action in report.actions:
                if action.id == action_id:
                    return action
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "step_action":
            spec = self.find_action(str(parameters[0])) if parameters else None
            if spec is None or not spec.available or self.action_busy is not None:
                return None
            if self.session.read_only and spec.id != EVIDENCE_ACTION:
                return None
        return True

    def action_step_action(self, action_id: str) -> None:
        action = self.find_action(action_id)
        if action is not None:
            self.start_action(action)

    def on_step_detail_action_chosen(self, message: StepDetail.ActionChosen) -> None:
        self.start_action(message.action)

    def start_action(self, action: ActionSpec) -> None:
        if not action.available:
            self.notify(f"{action.title}: unavailable ({action.reason})", severity="warning")
            return
        if self.action_busy is not None:
            self.notify(
                f"{self.action_busy.title} is still in progress; one change at a time",
                severity="warning",
            )
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
        self.acted.add(message.action.step)
        self.notify(
            f"{message.action.title}: applied (journal #{applied.seq}); {applied.message}",
            severity="information" if applied.verified else "warning",
        )
        self._after_change()

    def on_action_reverted(self, message: ActionReverted) -> None:
        if self.closing:
            return
        self._set_busy(None)
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
        if message.step is not None and message.step == self.running_step:
            self.running_step = None
        if message.step is not None:
            self.failed[message.step] = message.error
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
        if self.session.read_only or self.action_busy is not None:
            self.notify(
                "cannot revert now (read-only, or a change is in progress)", severity="warning"
            )
            return
        typed = self.session.runbook.target.deployment if self.session.production else None
        body = f"Apply the recorded inverse of journal entry #{entry.seq} ({entry.title})."
        self.push_screen(
            ConfirmScreen(
                f"Revert #{entry.seq}: {entry.title}",
                body,
                confirm_label="Revert",
                typed_name=typed,
            ),
            partial(self._revert_confirmed, entry.seq, entry.title),
        )

    def _revert_confirmed(self, seq: int, title: str, confirmed: bool | None) -> None:
        if confirmed:
            busy = ActionSpec(f"revert.{seq}", Step.ROLLBACK, f"Revert #{seq}", "", title)
            self._set_busy(busy, "reverting: applying the recorded inverse")
            self.run_revert(seq, title)
