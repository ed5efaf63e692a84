"""Rollout progress: a bar of available replicas, with updated / ready / available counts and
the rollout's own message (kubectl's rule, plus crash loops, Pending pods, deadlines)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Label, ProgressBar

from services.models import RolloutProgress
from services.sanitize import terminal_text
from widgets.label_text import PULSE_AFTER_S, set_text, waiting_bar


class RolloutBar(Vertical):
    """`show(progress)`; classes `-done`, `-rolling`, `-problem`, `-empty`."""

    DEFAULT_CSS = """
    RolloutBar { height: auto; }
    RolloutBar > ProgressBar { width: 1fr; }
    RolloutBar > ProgressBar > Bar { width: 1fr; }
    RolloutBar > .rb-counts, RolloutBar > .rb-message { width: 1fr; }
    RolloutBar > .rb-message { color: $text-muted; }
    RolloutBar.-problem > .rb-message { color: $error; }
    RolloutBar.-done > .rb-message { color: $success; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="-empty")  # not on mount: a restyle (issue 12)
        self.progress: RolloutProgress | None = None
        self._shown = False
        self._pulse = False  # a wait shown as a pulse: only PULSE_AFTER_S after the mount

    def compose(self) -> ComposeResult:
        yield ProgressBar(total=1, show_eta=False, show_percentage=False)
        yield Label("", classes="rb-counts")
        yield Label("rollout: not read yet", classes="rb-message", markup=False)

    def on_mount(self) -> None:
        # The bar starts still (composed so); it pulses if the wait outlasts PULSE_AFTER_S.
        self.set_timer(PULSE_AFTER_S, self._pulse_if_waiting)

    def _pulse_if_waiting(self) -> None:
        self._pulse = True
        if self.progress is None:
            waiting_bar(self.query_one(ProgressBar))

    def show(self, progress: RolloutProgress | None) -> None:
        if progress == self.progress and self._shown:
            return  # a poll that changed nothing repaints nothing
        self._shown = True
        self.progress = progress
        bar = self.query_one(ProgressBar)
        counts = self.query_one(".rb-counts", Label)
        message = self.query_one(".rb-message", Label)
        if progress is None:
            # One restyle of the bar and its labels for all its classes, not one per class.
            self.update_classes(
                {"-empty": True, "-done": False, "-problem": False, "-rolling": False}
            )
            waiting_bar(bar, pulse=self._pulse)
            set_text(counts, "")
            set_text(message, "rollout: not read yet")
            return
        desired = max(progress.desired, 1)
        bar.update(total=desired, progress=min(progress.available, desired))
        counts.update(
            Content.assemble(
                ("upd ", "$text-muted"),
                f"{progress.updated}/{progress.desired} ",
                ("ready ", "$text-muted"),
                f"{progress.ready}/{progress.desired} ",
                ("avail ", "$text-muted"),
                f"{progress.available}/{progress.desired}",
                (f" old {progress.old_pods}", "$text-muted") if progress.old_pods else "",
            )
        )
        lines = [progress.message] + [p.message for p in progress.problems]
        # Problems quote pod and event messages from the cluster.
        set_text(message, "\n".join(terminal_text(line, 500) for line in lines if line))
        self.update_classes(
            {
                "-empty": False,
                "-done": progress.done and not progress.problems,
                "-problem": bool(progress.problems),
                "-rolling": not progress.done and not progress.problems,
            }
        )
