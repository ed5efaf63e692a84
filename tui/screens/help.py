"""`?`: every key of the app (one keymap, the same on every step), then how the screen works.

`key_rows` builds the key table from the declared bindings; the help screen shows it and the
README's key table is the same rows (a test holds them together).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from services.sanitize import terminal_line
from tui.keymap import BY_ACTION, step_number
from tui.screens.breakpoints import DrawnOnceScreen

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


# What each main-screen and app binding does, by binding id, where the footer's word is short.
HELP_TEXT = {
    "main.quit": "quit (asks first while a rollout is in flight)",
    "main.help": "this help",
    "main.validation-view": "validation view: full-screen charts and the gate",
    "main.fix": "fix: the selected step's first available action",
    "main.revert": "revert a change: the log's highlighted one, newest by default",
    "main.chart": "low-bandwidth mode: show or hide the latency chart",
    "main.guidance": "show or hide the runbook's guidance",
    "main.skip-step": "skip or un-skip the selected step",
    "app.quit": "quit (asks first while a rollout is in flight)",
    "app.help": "this help",
    "app.validation-view": "validation view: full-screen charts and the gate",
    "app.refresh": "run every check now",
}
# Keys no binding of ours declares: Textual's own, and the modals'.
OTHER_KEYS = (
    ("↑ ↓", "move in the checklist and tables"),
    ("tab", "next widget (focus shows as a heavy border)"),
    ("enter/y", "in a preview: apply what it shows; esc cancels"),
    ("ctrl+p", "command palette: every action, step and view by name"),
)


def _display(binding: Binding) -> str:
    if binding.key_display:
        return binding.key_display
    return {"question_mark": "?", "left_square_bracket": "[", "right_square_bracket": "]"}.get(
        binding.key, binding.key
    )


def key_rows(
    screen_bindings: Sequence[BindingType], app_bindings: Sequence[BindingType]
) -> list[tuple[str, str]]:
    """The key table: (keys, what they do) for every declared binding, the six step numbers
    and the two panes keys on one row each, each step action with its step."""
    rows: list[tuple[str, str]] = []
    bindings = [b for b in (*screen_bindings, *app_bindings) if isinstance(b, Binding)]
    ids = {b.id for b in bindings}
    listed: set[str] = set()
    for binding in bindings:
        bid = binding.id or ""
        if binding.key in listed:
            continue  # the screen repeats an app key so the footer shows it first
        listed.add(binding.key)
        if bid.startswith("step-action."):
            key = BY_ACTION[bid.removeprefix("step-action.")]
            rows.append((key.key, f"step {step_number(key.step)}: {key.what}"))
        elif bid == "main.step-1":
            rows.append(("1-6", "select a step (its keys act on it only)"))
        elif bid == "main.previous-pane" and "main.next-pane" in ids:
            rows.append(("[ ]", "previous / next pane (tabs at 80x24)"))
        elif bid.startswith("main.step-") or bid == "main.next-pane":
            continue
        else:
            rows.append((_display(binding), HELP_TEXT.get(bid, binding.description)))
    return [*rows, *OTHER_KEYS]


def markdown_table(rows: Sequence[tuple[str, str]]) -> str:
    """The key table as the README shows it (`make` nothing: a test compares the two)."""
    lines = ["| key | what |", "|---|---|"]
    lines += [f"| `{key}` | {what} |" for key, what in rows]
    return "\n".join(lines) + "\n"


class HelpScreen(DrawnOnceScreen, ModalScreen[None]):
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
                lines: list[Content | str] = [
                    Content.assemble(
                        ("Keys", "bold"),
                        ": the same on every step; one that cannot act says why\n",
                    )
                ]
                for key, description in self.keys:
                    lines.append(
                        Content.assemble(
                            (f"{terminal_line(key):>7}  ", "$text-accent bold"),
                            terminal_line(description, 300),
                            "\n",
                        )
                    )
                yield Static(Content.assemble(*lines), id="help-keys")
                yield Static(INTRO, id="help-intro", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        for scroll in self.query("#help-scroll"):  # none when closed before it mounted
            scroll.focus()

    def action_close(self) -> None:
        self.dismiss(None)
