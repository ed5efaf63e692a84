"""The selected step's detail: the runbook's guidance, findings, what the checks read, and the
step's actions with their keys and the equivalent kubectl commands.

Renders a `StepReport` it is given; the parts update in place so a refresh keeps the scroll
position. Pressing an action's button (or its key, bound by the app) posts `ActionChosen`.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Button, Static

from services.models import Finding, Severity
from services.runbook import ActionSpec, StepReport

SEVERITY_MARKS = {
    Severity.ERROR: ("✗", "$error"),
    Severity.WARNING: ("▲", "$warning"),
    Severity.INFO: ("·", "$text-muted"),
}


def finding_line(finding: Finding) -> Content:
    mark, style = SEVERITY_MARKS[finding.severity]
    return Content.assemble(
        (f"{mark} ", f"{style} bold"), finding.message, (f"  {finding.subject}", "$text-muted")
    )


class ActionEntry(Vertical):
    """One action: its key and title as a button, what it does, and its kubectl commands."""

    DEFAULT_CSS = """
    ActionEntry { height: auto; margin: 0 0 1 0; }
    ActionEntry > Button { width: auto; min-width: 0; }
    ActionEntry > Static { padding-left: 2; }
    """

    def __init__(self, action: ActionSpec) -> None:
        # No id: a refresh replaces entries while the old ones are still being removed.
        super().__init__(classes="action-entry")
        self.action = action

    def compose(self) -> ComposeResult:
        action = self.action
        label = Content(f"[{action.key}] {action.title}")  # not markup: [u] is no tag
        button = Button(label, compact=True, disabled=not action.available)
        button.tooltip = action.reason or action.description
        yield button
        parts: list[Content | str] = []
        if not action.available:
            parts.append(
                Content.assemble(("unavailable: ", "$warning bold"), action.reason or "-", "\n")
            )
        if action.destructive:
            parts.append(Content.styled("destructive: asks for confirmation\n", "$error"))
        parts.append(Content(action.description))
        for command in action.kubectl:
            parts.append(Content.assemble("\n", ("$ ", "$text-muted"), (command, "$text-accent")))
        yield Static(Content.assemble(*parts), classes="action-text")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(StepDetail.ActionChosen(self, self.action))


class StepDetail(VerticalScroll):
    """Everything about one step. Call `show(report)`; `show_pending(step title)` before the
    first check has come back."""

    DEFAULT_CSS = """
    StepDetail { height: 1fr; padding: 0 1; }
    StepDetail > Static { margin-bottom: 1; }
    StepDetail > #sd-actions { height: auto; }
    StepDetail.-no-guidance > #sd-guidance { display: none; }
    """

    @dataclass
    class ActionChosen(Message):
        entry: ActionEntry
        action: ActionSpec

        @property
        def control(self) -> ActionEntry:
            return self.entry

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.report: StepReport | None = None
        self._action_ids: tuple[tuple[str, bool, str], ...] = ()

    def compose(self) -> ComposeResult:
        yield Static("", id="sd-title")
        yield Static("", id="sd-status")
        # Findings and actions first: at 80x24 they are what a responder needs in view.
        yield Static("", id="sd-findings")
        yield Vertical(id="sd-actions")
        yield Static("", id="sd-guidance")
        yield Static("", id="sd-detail")

    def show_pending(self, title: str, note: str = "checking…") -> None:
        self.report = None
        self.query_one("#sd-title", Static).update(Content.styled(title, "bold"))
        self.query_one("#sd-status", Static).update(Content.styled(note, "$text-muted"))
        for part in ("#sd-guidance", "#sd-findings", "#sd-detail"):
            self.query_one(part, Static).update("")
        self._set_actions(())

    def show(self, report: StepReport, title: str, note: str = "") -> None:
        """Render a step's report; `note` is the app's word on it (checking, running...)."""
        self.report = report
        self.query_one("#sd-title", Static).update(Content.styled(title, "bold"))
        status: list[Content | str] = []
        if report.error:
            status.append(Content.assemble(("check failed: ", "$error bold"), report.error))
        if note:
            status.append(Content.styled(("\n" if status else "") + note, "$text-muted"))
        self.query_one("#sd-status", Static).update(Content.assemble(*status))
        self.query_one("#sd-status", Static).display = bool(status)
        guide = report.guidance
        self.query_one("#sd-guidance", Static).update(
            Content.assemble(
                ("Why: ", "$text-primary bold"),
                guide.why,
                "\n",
                ("Look for: ", "$text-primary bold"),
                guide.look_for,
                "\n",
                ("Trade-off: ", "$text-primary bold"),
                guide.tradeoff,
            )
        )
        findings = [f for f in report.findings if f.severity != Severity.INFO] or [
            f for f in report.findings
        ]
        if findings:
            lines: list[Content | str] = [Content.styled("Findings\n", "bold")]
            for i, finding in enumerate(findings):
                lines.append(("\n" if i else "") + finding_line(finding))
            findings_content = Content.assemble(*lines)
        elif report.error:
            findings_content = Content("")
        else:
            findings_content = Content.styled("✓ no findings", "$success")
        self.query_one("#sd-findings", Static).update(findings_content)
        detail = "\n".join(report.detail)
        self.query_one("#sd-detail", Static).update(
            Content.assemble(Content.styled("What the checks read\n", "bold"), detail)
            if detail
            else ""
        )
        self._set_actions(report.actions)

    def _set_actions(self, actions: tuple[ActionSpec, ...]) -> None:
        # Rebuild the buttons only when the actions change, so focus and scroll survive a poll.
        key = tuple((a.id, a.available, a.title) for a in actions)
        if key == self._action_ids:
            return
        self._action_ids = key
        box = self.query_one("#sd-actions", Vertical)
        box.remove_children()
        if actions:
            box.mount(Static(Content.styled("Actions", "bold")))
            box.mount_all(ActionEntry(a) for a in actions)
