"""The header: where skewmit is pointed (context, API server, namespace, deployment, kube
user), the read-only and production badges, the incident id and how long it has been open,
and, in the demo, that the clock is simulated and how fast it runs.

Parts that do not fit at 80 columns carry the class `-wide` (at 120, `-very-wide`) so the
app's tcss can hide them.

The elapsed time ticks every second (every minute with `minutes_only`, the low-bandwidth
mode): each tick repaints that one label, never the whole header or screen.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label

from services.sanitize import terminal_line
from widgets.label_text import set_text


@dataclass(frozen=True)
class HeaderState:
    context: str = ""
    server: str = ""
    namespace: str = ""
    deployment: str = ""
    user: str = ""
    read_only: bool = False
    production: bool = False
    incident_id: str = ""
    elapsed_s: float | None = None
    clock_note: str = ""  # e.g. "simulated clock x30"


def elapsed_text(seconds: float | None, *, minutes_only: bool = False) -> str:
    """HH:MM:SS, or HH:MM when the clock moves once a minute."""
    if seconds is None:
        return "--:--" if minutes_only else "--:--:--"
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    if minutes_only:
        return f"{hours:02d}:{rest // 60:02d}"
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


class HeaderBar(Horizontal):
    DEFAULT_CSS = """
    HeaderBar { height: 1; width: 1fr; background: $panel; }
    HeaderBar > Label { width: auto; height: 1; padding: 0 1 0 0; }
    HeaderBar > .hb-title { text-style: bold; color: $text-primary; padding: 0 1; }
    HeaderBar > .hb-spacer { width: 1fr; padding: 0; }
    HeaderBar > .hb-badge { padding: 0 1; margin-right: 1; text-style: bold; display: none; }
    HeaderBar > .hb-read-only { background: $warning; color: $text; }
    HeaderBar > .hb-production { background: $error; color: $text; }
    HeaderBar.-read-only > .hb-read-only { display: block; }
    HeaderBar.-production > .hb-production { display: block; }
    HeaderBar > .hb-muted { color: $text-muted; }
    HeaderBar > .hb-clock { color: $text-warning; }
    """

    def __init__(
        self, state: HeaderState | None = None, *, minutes_only: bool = False, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.state = state or HeaderState()
        self.minutes_only = minutes_only  # low-bandwidth: the clock moves once a minute

    def compose(self) -> ComposeResult:
        yield Label("skewmit", classes="hb-title")
        yield Label("", id="hb-context", markup=False)
        yield Label("", id="hb-server", classes="hb-muted -very-wide", markup=False)
        yield Label("", id="hb-target", markup=False)
        yield Label("", id="hb-user", classes="hb-muted -wide", markup=False)
        yield Label("READ-ONLY", id="hb-read-only", classes="hb-badge hb-read-only")
        yield Label("PRODUCTION", id="hb-production", classes="hb-badge hb-production")
        yield Label("", classes="hb-spacer")
        yield Label("", id="hb-clock", classes="hb-clock", markup=False)
        yield Label("", id="hb-incident", classes="hb-muted -very-wide", markup=False)
        yield Label("", id="hb-elapsed", markup=False)

    def on_mount(self) -> None:
        self.show(self.state)

    def show(self, state: HeaderState) -> None:
        self.state = state
        if not self.children:
            return
        # Kubeconfig names and the API server's idea of the user: one safe line each.
        texts = {
            "#hb-context": terminal_line(state.context or "-"),
            "#hb-server": terminal_line(state.server),
            "#hb-target": terminal_line(
                f"{state.namespace}/{state.deployment}" if state.deployment else "-"
            ),
            "#hb-user": terminal_line(f"as {state.user}" if state.user else ""),
            "#hb-clock": terminal_line(state.clock_note),
            "#hb-incident": terminal_line(state.incident_id),
            "#hb-elapsed": self._elapsed_label(state.elapsed_s),
        }
        for selector, text in texts.items():
            set_text(self.query_one(selector, Label), text)
        self.update_classes({"-read-only": state.read_only, "-production": state.production})

    def _elapsed_label(self, seconds: float | None) -> str:
        return f"open {elapsed_text(seconds, minutes_only=self.minutes_only)}"

    def set_elapsed(self, seconds: float | None) -> None:
        """The incident's age; repaints the one label, and only when its text changes."""
        previous = self.state.elapsed_s
        self.state = replace(self.state, elapsed_s=seconds)
        if previous is not None and seconds is not None and int(seconds) == int(previous):
            return
        if self.children:
            set_text(self.query_one("#hb-elapsed", Label), self._elapsed_label(seconds))
