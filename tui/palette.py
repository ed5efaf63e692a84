"""The command palette's entries: every step, every action the checks offer now (with its key
and, when it cannot run, why), the views and the panes."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

from textual.app import SystemCommand

from services.models import STEP_ORDER, STEP_TITLES
from services.sanitize import terminal_line
from tui.keymap import BY_ACTION, step_number
from tui.screens.main import PANES

if TYPE_CHECKING:
    from tui.app import SkewmitApp


def runbook_commands(app: SkewmitApp) -> Iterator[SystemCommand]:
    """The palette's skewmit entries for `app` (Textual's own come first, from the App)."""
    for i, step in enumerate(STEP_ORDER):
        yield SystemCommand(
            f"Step {i + 1}: {STEP_TITLES[step]}",
            "Show this step",
            partial(app.main.action_select_step, i + 1),
        )
    for step in STEP_ORDER:
        report = app.board.reports.get(step)
        for action in report.actions if report else ():
            why = "" if action.available else f" (unavailable: {action.reason})"
            key = BY_ACTION[action.id].key if action.id in BY_ACTION else action.key
            yield SystemCommand(
                terminal_line(action.title, 160),
                terminal_line(
                    f"step {step_number(step)}, key {key}{why}: {action.description}", 160
                ),
                partial(app.start_action, action),
            )
    yield SystemCommand(
        "Validation view", "Full-screen charts and the validation gate", app.action_validation_view
    )
    yield SystemCommand("Refresh all checks", "Run every step's checks now", app.action_refresh)
    yield SystemCommand(
        "Toggle guidance", "Show or hide the runbook's guidance", app.main.action_toggle_guidance
    )
    yield SystemCommand(
        "Skip or un-skip the selected step", "Mark the step skipped", app.action_skip_step
    )
    for pane in PANES:
        yield SystemCommand(
            f"Show pane: {pane}", "Bring the pane into view", partial(app.main.show_pane, pane)
        )
    yield SystemCommand("Help", "Keys and how the screen works", app.action_help)
