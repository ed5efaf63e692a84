"""Confirmation before any change: the preview of a plan (diff, server dry run, RBAC, GitOps)
and the question; on a production context the operator types the deployment's name.

`ConfirmScreen` dismisses with True (go ahead) or False. `preview_screen()` builds one for a
gate `Preview`; a refused preview can only be closed.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Static

from services.models import Preview
from services.sanitize import terminal_line, terminal_text
from tui.screens.breakpoints import DrawnOnceScreen


def diff_content(diff: str) -> Content:
    """A unified diff with added lines in the success colour and removed ones in error."""
    parts: list[Content | str] = []
    for line in terminal_text(diff).splitlines():
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("+"):
            style = "$success"
        elif line.startswith("-"):
            style = "$error"
        elif line.startswith("@@"):
            style = "$text-accent"
        else:
            style = ""
        parts.append(Content.styled(line + "\n", style) if style else line + "\n")
    return Content.assemble(*parts) if parts else Content.styled("(no diff)", "$text-muted")


class ConfirmScreen(DrawnOnceScreen, ModalScreen[bool]):
    """A yes/no question with a body; `typed_name` makes the operator type that name."""

    # The modal's own footer shows these, not the main screen's keys. Enter confirms unless
    # a button has focus (Tab to Cancel, then Enter, cancels); it is armed only once the
    # preview has been painted, so an Enter typed ahead (from the input prompt, say) never
    # applies an unseen change. `y` is deliberate and always answers.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "confirm_enter", "Confirm", key_display="enter/y", id="confirm.enter"),
        Binding("y", "confirm", "Confirm", show=False, id="confirm.apply"),
        Binding("escape", "cancel", "Cancel", key_display="esc", id="confirm.cancel"),
        Binding("n", "cancel", "No", show=False, id="confirm.no"),
    ]

    def __init__(
        self,
        title: str,
        body: Content | str,
        *,
        can_confirm: bool = True,
        confirm_label: str = "Apply",
        typed_name: str | None = None,
        warning: str = "",
        diff: str = "",
    ) -> None:
        super().__init__(classes="confirm")
        # The body is plain text or Content built here (never markup); what the cluster said
        # (an error, a name) is sanitised on the way in.
        self.title_text = terminal_line(title)
        self.body = body if isinstance(body, Content) else Content(terminal_text(body))
        self.can_confirm = can_confirm
        self.confirm_label = confirm_label
        self.typed_name = typed_name
        self.warning = terminal_text(warning)
        self.diff = diff
        self.armed = False  # set once the preview is on screen

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Label(self.title_text, id="confirm-title", markup=False)
            if self.warning:
                yield Static(self.warning, id="confirm-warning", markup=False)
            with VerticalScroll(id="confirm-scroll"):
                yield Static(self.body, id="confirm-body")
                if self.diff:
                    yield Static(diff_content(self.diff), id="confirm-diff")
            if self.can_confirm and self.typed_name:
                yield Label(
                    f"Production context: type the deployment name ({self.typed_name}) to confirm",
                    id="confirm-typed-label",
                    markup=False,
                )
                yield Input(placeholder=self.typed_name, id="confirm-typed")
            with Horizontal(id="confirm-buttons"):
                if self.can_confirm:
                    # Content, not markup: a str label would swallow "[y]" as a style tag.
                    yield Button(
                        Content(
                            f"{self.confirm_label} [y]"
                            if not self.typed_name
                            else self.confirm_label
                        ),
                        variant="error" if self.typed_name else "primary",
                        id="confirm-apply",
                        disabled=bool(self.typed_name),
                    )
                yield Button(
                    Content("Cancel [esc]" if self.can_confirm else "Close [esc]"),
                    id="confirm-cancel",
                )
        yield Footer()

    def on_mount(self) -> None:
        # A query, not query_one: the app can close the screen before it mounts (a fix key
        # and `q` in one keystroke read), and then there is nothing to focus, not a crash.
        typed = list(self.query("#confirm-typed").results(Input))
        for widget in typed or self.query("#confirm-scroll"):
            if isinstance(widget, Input):
                widget.cursor_blink = not self.app.is_headless
            widget.focus()
        self.call_after_refresh(self._arm)

    def _arm(self) -> None:
        self.armed = True
        self.refresh_bindings()

    def _typed_ok(self) -> bool:
        if not self.typed_name:
            return True
        return self.query_one("#confirm-typed", Input).value.strip() == self.typed_name

    @on(Input.Changed, "#confirm-typed")
    def _typed_changed(self) -> None:
        self.query_one("#confirm-apply", Button).disabled = not self._typed_ok()
        self.refresh_bindings()

    @on(Input.Submitted, "#confirm-typed")
    def _typed_submitted(self) -> None:
        self.action_confirm()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("confirm", "confirm_enter"):
            if not self.can_confirm:
                return False
            # A typed confirmation is the Input's job; `y` would land in the Input anyway.
            if self.typed_name or (action == "confirm_enter" and not self.armed):
                return None
        return True

    def action_confirm(self) -> None:
        if self.can_confirm and self._typed_ok():
            self.dismiss(True)

    def action_confirm_enter(self) -> None:
        if self.armed:
            self.action_confirm()

    def action_cancel(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed, "#confirm-apply")
    def _apply_pressed(self) -> None:
        self.action_confirm()

    @on(Button.Pressed, "#confirm-cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(False)


def preview_body(preview: Preview) -> Content:
    plan = preview.plan
    parts: list[Content | str] = []
    dry_run = terminal_text(preview.dry_run_message)
    if preview.allowed and preview.dry_run_ok:
        parts.append(Content.assemble(("✓ server dry run: ", "$success bold"), dry_run, "\n"))
    elif preview.allowed:
        parts.append(
            Content.assemble(("✗ server dry run refused it: ", "$error bold"), dry_run, "\n")
        )
    elif preview.denied_reason.startswith("GitOps"):
        parts.append(Content.styled("✗ not allowed: see the GitOps warning above\n", "$error bold"))
    else:
        parts.append(
            Content.assemble(
                ("✗ not allowed: ", "$error bold"), terminal_text(preview.denied_reason), "\n"
            )
        )
    if plan.tradeoff:
        parts.append(Content.assemble(("Trade-off: ", "bold"), terminal_text(plan.tradeoff), "\n"))
    for note in plan.notes:
        parts.append(Content.assemble(("Note: ", "$text-warning bold"), terminal_text(note), "\n"))
    if plan.kubectl:
        parts.append(Content.styled("Equivalent kubectl:\n", "bold"))
        for command in plan.kubectl:
            parts.append(
                Content.assemble(
                    ("  $ ", "$text-muted"), (terminal_text(command), "$text-accent"), "\n"
                )
            )
    changes = terminal_text(
        ", ".join(f"{c.operation} {c.kind.lower()}/{c.name}" for c in plan.changes)
    )
    parts.append(Content.assemble(("Changes: ", "bold"), changes or "none", "\n"))
    return Content.assemble(*parts)


def preview_screen(
    preview: Preview, *, typed_name: str | None = None, confirm_label: str = ""
) -> ConfirmScreen:
    """The confirmation for a previewed plan; `typed_name` on a production context."""
    warning = ""
    if not preview.allowed and preview.denied_reason.startswith("GitOps"):
        warning = f"⚠ {preview.denied_reason}"
    can = preview.allowed and preview.dry_run_ok
    return ConfirmScreen(
        f"Preview: {preview.plan.title}",
        preview_body(preview),
        can_confirm=can,
        typed_name=typed_name if can else None,
        warning=warning,
        diff=preview.diff,
        confirm_label=confirm_label
        or ("Destroy and apply" if preview.plan.destructive else "Apply"),
    )
