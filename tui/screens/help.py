"""`?`: how the screen works, the flow of a step, and every key that is bound right now."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from services.sanitize import terminal_line

INTRO = (
    "skewmit walks the training-serving skew runbook: roll back, pin the configuration, "
    "stabilise tail latency, route long-context traffic, fix hardware skew, then validate "
    "and capture evidence.\n\n"
    "Every step's checks run in the background from launch and refresh on their own. Pick "
    "a step in the checklist (arrows, 1-6 or the mouse); its detail shows the runbook's "
    "guidance, the findings, and the actions with their keys and the equivalent kubectl. "
    "An action shows a preview (diff and server dry run) and asks before it changes "
    "anything; each applied change can be reverted from the action log. Everything is "
    "journaled: starting skewmit again for the same deployment reopens the incident.\n"
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", key_display="esc", id="help.close"),
        Binding("question_mark,q", "close", "Close", show=False, id="help.close-keys"),
    ]

    def __init__(self, keys: Iterable[tuple[str, str]]) -> None:
        super().__init__(classes="help")
        self.keys = tuple(keys)

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Label("skewmit help  (esc closes)", id="help-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(INTRO, id="help-intro", markup=False)
                lines: list[Content | str] = [Content.styled("Keys\n", "bold")]
                for key, description in self.keys:
                    lines.append(
                        Content.assemble(
                            (f"{terminal_line(key):>9}  ", "$text-accent bold"),
                            terminal_line(description, 300),  # action titles quote the cluster
                            "\n",
                        )
                    )
                lines.append(
                    Content.assemble(
                        ("\n", ""),
                        ("ctrl+p", "$text-accent bold"),
                        " opens the command palette: every action, step and view by name.",
                    )
                )
                yield Static(Content.assemble(*lines), id="help-keys")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()

    def action_close(self) -> None:
        self.dismiss(None)
