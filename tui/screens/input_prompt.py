"""Ask the operator for an action's inputs (a revision, a new limit...), defaults filled in.

Dismisses with {name: value} or None when cancelled. Enter in the last field submits.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Static

from services.models import ActionSpec
from services.sanitize import terminal_line, terminal_text
from tui.screens.breakpoints import DrawnOnceScreen


class InputPromptScreen(DrawnOnceScreen, ModalScreen[dict[str, str] | None]):
    # Shown in the modal's own footer. An Input submits on Enter itself (on to the next
    # field, then the preview); the binding answers Enter anywhere else in the prompt.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "submit", "Preview", id="prompt.submit"),
        Binding("escape", "cancel", "Cancel", key_display="esc", id="prompt.cancel"),
    ]

    def __init__(self, action: ActionSpec) -> None:
        super().__init__(classes="prompt")
        self.action_spec = action

    def compose(self) -> ComposeResult:
        action = self.action_spec
        with Vertical(id="prompt-box"):
            # Titles, descriptions and defaults (a digest, a revision) come from the cluster.
            yield Label(terminal_line(action.title), id="prompt-title", markup=False)
            yield Static(
                terminal_text(action.description, 2000), id="prompt-description", markup=False
            )
            for spec in action.inputs:
                yield Label(terminal_line(spec.prompt), classes="prompt-label", markup=False)
                yield Input(
                    value=terminal_line(spec.default, 500),
                    id=f"input-{spec.name}",
                    classes="prompt-input",
                )
            with Horizontal(id="prompt-buttons"):
                # Content, not markup: a str label would swallow "[enter]" as a style tag.
                yield Button(Content("Preview [enter]"), variant="primary", id="prompt-ok")
                yield Button(Content("Cancel [esc]"), id="prompt-cancel")
        yield Footer()

    def on_mount(self) -> None:
        inputs = list(self.query(Input))
        for field in inputs:
            field.cursor_blink = not self.app.is_headless
        if inputs:
            inputs[0].focus()

    def values(self) -> dict[str, str]:
        return {
            spec.name: self.query_one(f"#input-{spec.name}", Input).value.strip()
            for spec in self.action_spec.inputs
        }

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        inputs = list(self.query(Input))
        if event.input is inputs[-1]:
            self.dismiss(self.values())
        else:
            inputs[inputs.index(event.input) + 1].focus()

    @on(Button.Pressed, "#prompt-ok")
    def _ok(self) -> None:
        self.dismiss(self.values())

    @on(Button.Pressed, "#prompt-cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        self.dismiss(self.values())

    def action_cancel(self) -> None:
        self.dismiss(None)
