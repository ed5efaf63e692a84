"""Changing the cluster from the app: an action's inputs, the preview (diff, server dry run,
RBAC, GitOps), the confirmation (typed on a production context), the apply, the revert from
the action log, and the evidence capture. One change at a time; each goes through the gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from textual.actions import ActionParseResult
from textual.actions import parse as parse_action
from textual.dom import DOMNode
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
    RevertPreviewReady,
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
            return None if self.why_unavailable(spec) else True
        return True

    def why_unavailable(self, spec: ActionSpec | None) -> str:
        """Why a step action cannot start now ("" when it can): the footer dims its key, and
        pressing the key anyway shows this."""
        if spec is None:
            return "that action is not offered now (its step's checks changed)"
        if self.session.read_only and spec.id != EVIDENCE_ACTION:
            return f"read-only mode: {spec.title} would change the cluster (started --read-only)"
        if not spec.available:
            return f"{spec.title}: unavailable: {spec.reason or 'not possible now'}"
        if self.action_busy is not None:
            return f"{self.action_busy.title} is still in progress; one change at a time"
        return ""

    async def run_action(
        self,
        action: str | ActionParseResult,
        default_namespace: DOMNode | None = None,
        namespaces: Mapping[str, DOMNode] | None = None,
    ) -> bool:
        """A dimmed key still answers: Textual skips an action whose `check_action` says no,
        silently; the operator is told why instead (the footer's dimming alone is invisible
        under NO_COLOR)."""
        if await super().run_action(action, default_namespace, namespaces):
            return True
        _, name, params = parse_action(action) if isinstance(action, str) else action
        why = ""
        if name == "step_action" and params:
            why = self.why_unavailable(self.find_action(str(params[0])))
        elif name == "revert" and isinstance(default_namespace, ActionLog):
            why = default_namespace.why_not_revertible()
        if not why:
            return False
        self.notify(why, severity="warning", timeout=6)
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
        if self.session.read_only:
            self.notify(
                "read-only mode: nothing is reverted (started --read-only)", severity="warning"
            )
            return
        if self.action_busy is not None:
            self.notify(
                f"{self.action_busy.title} is still in progress; one change at a time",
                severity="warning",
            )
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
