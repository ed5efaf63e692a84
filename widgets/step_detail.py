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

from services.models import ActionSpec, Finding, Severity, StepReport
from services.sanitize import terminal_line, terminal_text

SEVERITY_MARKS = {
    Severity.ERROR: ("✗", "$error"),
    Severity.WARNING: ("▲", "$warning"),
    Severity.INFO: ("·", "$text-muted"),
}


# A step with thousands of findings or lines (a 1,000-pod fleet) must not stall the screen:
# the rest is counted, and the journal and `skewmit check` keep every one.
MAX_FINDINGS = 50
MAX_DETAIL_LINES = 200
# An action on many objects (delete the 300 pods on the wrong GPU) has one kubectl command per
# object: shown in full they were a 300-line block measured and wrapped each time the step
# opened (issue 9). The plan's preview and the journal list every one.
MAX_COMMANDS = 20
# One annotation can be a megabyte (last-applied-configuration): a line shows its start.
MAX_LINE = 2000


def finding_line(finding: Finding) -> Content:
    """One finding as plain text (never markup), its cluster-supplied parts sanitised."""
    mark, style = SEVERITY_MARKS[finding.severity]
    return Content.assemble(
        (f"{mark} ", f"{style} bold"),
        terminal_text(finding.message, MAX_LINE),
        # Unstyled and visible: spaces alone at a styled span's edge were lost in wrapping,
        # joining the message to its subject ("last-known-gooddeployment/llm-serve").
        " · " if finding.subject else "",
        (terminal_line(finding.subject, MAX_LINE), "$text-muted"),
    )


def findings_content(findings: list[Finding]) -> Content:
    """The Findings block, at most MAX_FINDINGS findings and a count of the rest."""
    lines: list[Content | str] = [Content.styled("Findings\n", "bold")]
    for i, finding in enumerate(findings[:MAX_FINDINGS]):
        lines.append(("\n" if i else "") + finding_line(finding))
    hidden = len(findings) - MAX_FINDINGS
    if hidden > 0:
        lines.append(Content.styled(f"\n… and {hidden} more finding(s)", "$text-muted"))
    return Content.assemble(*lines)


def detail_text(lines: tuple[str, ...]) -> str:
    """What the checks read, sanitised, at most MAX_DETAIL_LINES lines."""
    shown = [terminal_text(line, MAX_LINE) for line in lines[:MAX_DETAIL_LINES]]
    if len(lines) > MAX_DETAIL_LINES:
        shown.append(f"… and {len(lines) - MAX_DETAIL_LINES} more line(s)")
    return "\n".join(shown)


class ActionEntry(Vertical):
    """One action: its key and title as a button, what it does, and its kubectl commands.
    `show(action)` makes an entry show another action in place (no widget mounted)."""

    DEFAULT_CSS = """
    ActionEntry { height: auto; margin: 0 0 1 0; }
    ActionEntry > Button { width: auto; min-width: 0; }
    ActionEntry > Static { padding-left: 2; }
    """

    def __init__(self, action: ActionSpec) -> None:
        # No id: entries are found by position in their box.
        super().__init__(classes="action-entry")
        self.action = action

    def compose(self) -> ComposeResult:
        action = self.action
        button = Button(button_label(action), compact=True, disabled=not action.available)
        button.tooltip = button_tooltip(action)
        yield button
        yield Static(action_text(action), classes="action-text")

    def show(self, action: ActionSpec) -> None:
        """Show `action` with the widgets this entry has (before it is composed, it will)."""
        if action == self.action and self.display:
            return
        self.action = action
        self.display = True
        button = next(self.query_children(Button).results(), None)
        text = next(self.query_children(Static).results(), None)
        if button is None or text is None:
            return  # not composed yet: compose draws self.action
        button.label = button_label(action)
        button.disabled = not action.available
        button.tooltip = button_tooltip(action)
        button.refresh(layout=True)  # its width is its label's (Button's label lays out nothing)
        text.update(action_text(action))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(StepDetail.ActionChosen(self, self.action))


def button_label(action: ActionSpec) -> Content:
    # Not markup ([u] is no tag); titles and descriptions quote cluster data: sanitised.
    return Content(terminal_line(f"[{action.key}] {action.title}", MAX_LINE))


def button_tooltip(action: ActionSpec) -> str:
    return terminal_text(action.reason or action.description, MAX_LINE)


def action_text(action: ActionSpec) -> Content:
    """What the action does, whether it can run, and its first MAX_COMMANDS commands."""
    parts: list[Content | str] = []
    if not action.available:
        parts.append(
            Content.assemble(
                ("unavailable: ", "$warning bold"),
                terminal_text(action.reason or "-", MAX_LINE),
                "\n",
            )
        )
    if action.destructive:
        parts.append(Content.styled("destructive: asks for confirmation\n", "$error"))
    parts.append(Content(terminal_text(action.description, MAX_LINE)))
    for command in action.kubectl[:MAX_COMMANDS]:
        parts.append(
            Content.assemble(
                "\n", ("$ ", "$text-muted"), (terminal_text(command, MAX_LINE), "$text-accent")
            )
        )
    hidden = len(action.kubectl) - MAX_COMMANDS
    if hidden > 0:
        parts.append(Content.styled(f"\n… and {hidden} more command(s)", "$text-muted"))
    return Content.assemble(*parts)


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
        self._action_ids: tuple[ActionSpec, ...] = ()
        self._title = ""
        self._shown: tuple[object, ...] | None = None  # what show() last drew

    @property
    def title(self) -> str:
        """The step shown (its heading)."""
        return self._title

    def _set_title(self, title: str) -> None:
        # Another step starts at its top; a refresh of the same step keeps the scroll.
        if title != self._title:
            self._title = title
            self.scroll_home(animate=False, immediate=True)
            heading = Content.styled(terminal_line(title), "bold")
            self.query_one("#sd-title", Static).update(heading)

    def parse_styles_ahead(self) -> None:
        """Have the app parse the styles of the action entries this pane mounts later (a
        Button's are 7 KB of CSS: 6-10 ms with the rebuild of the rule map). Textual parses
        a widget class's styles as its first one mounts: step 1's first answer, amid the
        other first answers (issue 12: 11 ms of a 52-64 ms stall). Call once the first frame
        is out, while the session opens: the sources go in in the order that mount would
        have put them, so the styles are the same."""
        stylesheet = self.app.stylesheet
        for cls in (ActionEntry, Button):
            node = cls.__new__(cls)  # its class's styles: no widget needed, nor made
            for read_from, css, tie_breaker, scope in node._get_default_css():
                stylesheet.add_source(
                    css,
                    read_from=read_from,
                    is_default_css=True,
                    tie_breaker=tie_breaker,
                    scope=scope,
                )
        stylesheet.rules_map  # noqa: B018 - parsed now, not at the first entry's mount

    def compose(self) -> ComposeResult:
        yield Static("", id="sd-title")
        yield Static("", id="sd-status")
        # Findings and actions first: at 80x24 they are what a responder needs in view.
        yield Static("", id="sd-findings")
        yield Vertical(id="sd-actions")
        yield Static("", id="sd-guidance")
        yield Static("", id="sd-detail")

    def show_pending(self, title: str, note: str = "checking…") -> None:
        if self._shown == (None, title, note):
            return
        self._shown = (None, title, note)
        self.report = None
        self._set_title(title)
        self.query_one("#sd-status", Static).update(
            Content.styled(terminal_text(note, MAX_LINE), "$text-muted")
        )
        for part in ("#sd-guidance", "#sd-findings", "#sd-detail"):
            self.query_one(part, Static).update("")
        self._set_actions(())

    def show(self, report: StepReport, title: str, note: str = "") -> None:
        """Render a step's report; `note` is the app's word on it (checking, running...).
        The same report again (a poll that found nothing new) repaints nothing."""
        self.report = report
        # What the pane draws of a report (not `state` or `data`: a poll's new readings that
        # change none of these repaint nothing).
        parts = (report.findings, report.actions, report.detail, report.guidance, report.error)
        if self._shown == (parts, title, note):
            return
        # Only the note changed (a poll of this step began or ended): the status line alone.
        # The rest, step 5's 200 lines read on `large` among it, is not wrapped again.
        same_report = self._shown is not None and self._shown[:2] == (parts, title)
        self._shown = (parts, title, note)
        self._set_title(title)
        status: list[Content | str] = []
        if report.error:
            status.append(
                Content.assemble(
                    ("check failed: ", "$error bold"), terminal_text(report.error, MAX_LINE)
                )
            )
        if note:
            status.append(
                Content.styled(
                    ("\n" if status else "") + terminal_text(note, MAX_LINE), "$text-muted"
                )
            )
        self.query_one("#sd-status", Static).update(Content.assemble(*status))
        self.query_one("#sd-status", Static).display = bool(status)
        if same_report:
            return
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
            shown = findings_content(findings)
        elif report.error:
            shown = Content("")
        else:
            shown = Content.styled("✓ no findings", "$success")
        self.query_one("#sd-findings", Static).update(shown)
        detail = detail_text(report.detail)
        self.query_one("#sd-detail", Static).update(
            Content.assemble(Content.styled("What the checks read\n", "bold"), detail)
            if detail
            else ""
        )
        self._set_actions(report.actions)

    def _set_actions(self, actions: tuple[ActionSpec, ...]) -> None:
        # The entries this pane has show the new actions in place, and those not needed now
        # are hidden: opening a step mounts nothing once the pane has held as many actions
        # (a mount lays the whole screen out again, after the step's own text did; issue 9).
        # Focus and scroll survive a poll that changed nothing.
        key = tuple(actions)
        if key == self._action_ids:
            return
        self._action_ids = key
        box = self.query_one("#sd-actions", Vertical)
        title = next(box.query_children("#sd-actions-title").results(Static), None)
        if title is not None:
            title.display = bool(actions)
        elif actions:
            box.mount(Static(Content.styled("Actions", "bold"), id="sd-actions-title"))
        entries = list(box.query_children(ActionEntry).results(ActionEntry))
        for entry, action in zip(entries, actions, strict=False):
            entry.show(action)
        for entry in entries[len(actions) :]:
            entry.display = False
        if len(actions) > len(entries):
            box.mount_all(ActionEntry(a) for a in actions[len(entries) :])
