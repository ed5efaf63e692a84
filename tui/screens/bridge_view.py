"""The bridge's per-browser view: the incident's checklist, verdict, rollout and action log,
read from the journal every second. It holds no gate and no key that changes anything.

textual-serve starts one process per browser tab: `python -m tui.screens.bridge_view FOLDER`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Footer, Label

from services.models import STEP_ORDER, STEP_TITLES, JournalAction
from tui.bridge import IncidentView, incident_view
from widgets.action_log import ActionLog
from widgets.checklist import Checklist, ChecklistRow

GROUP_READ = "bridge-read"
READ_EVERY_S = 1.0


@dataclass
class BridgeSource:
    """Where the view reads from: the journal folder, and a read-only kubeconfig context for
    the rollout when given."""

    folder: Path
    kubeconfig: str = ""
    context: str = ""
    _cluster: Any = field(default=None, repr=False)

    def read(self) -> tuple[IncidentView, tuple[JournalAction, ...]]:
        """Blocking: the journal file (and the rollout when a kubeconfig is given)."""
        from services.journal import Journal
        from services.journal_actions import journal_actions
        from services.models import Target

        meta_target = Target("", "", "")
        journal = Journal(self.folder, meta_target, "bridge", read_only=True)
        meta = journal.meta()
        entries = journal.entries()
        view = incident_view(str(meta.get("id", self.folder.name)), entries)
        # The bridge never reverts: nothing in its log is revertible.
        from dataclasses import replace

        log = tuple(replace(e, revertible=False) for e in journal_actions(entries))
        return view, log

    def rollout(self) -> str:
        if not self.kubeconfig:
            return ""
        from services import rollout
        from services.errors import SkewmitError
        from services.journal import Journal
        from services.kube import KubeCluster
        from services.models import Target

        meta = Journal(self.folder, Target("", "", ""), "bridge", read_only=True).meta()
        try:
            if self._cluster is None:
                self._cluster = KubeCluster(self.kubeconfig, self.context or None)
            progress = rollout.progress(
                self._cluster, str(meta.get("namespace")), str(meta.get("deployment"))
            )
        except SkewmitError as exc:
            return f"rollout: cannot read ({exc})"
        return f"rollout: {progress.message}"


class IncidentRead(Message, bubble=False):
    """The journal (and the rollout) read again."""

    def __init__(
        self, view: IncidentView, log: tuple[JournalAction, ...], rollout: str = ""
    ) -> None:
        super().__init__()
        self.view = view
        self.log = log
        self.rollout = rollout

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, IncidentRead)


class BridgeApp(App[None]):
    """The read-only incident view a browser sees."""

    TITLE = "skewmit bridge"
    # The palette's system commands include saving screenshots on the server: none here.
    ENABLE_COMMAND_PALETTE = False
    DEFAULT_CSS = """
    #bridge-title { background: $primary; color: $text; width: 1fr; padding: 0 1; }
    #bridge-verdict { padding: 0 1; text-style: bold; height: 1; width: 1fr; }
    #bridge-verdict.-pass { background: $success; color: $text; }
    #bridge-verdict.-fail { background: $error; color: $text; }
    #bridge-notes { padding: 0 1; color: $text-muted; height: auto; max-height: 8; }
    #bridge-rollout { padding: 0 1; height: 1; }
    #bridge-left { width: 34; }
    Checklist { height: auto; }
    """
    # Nothing here changes anything; quitting closes this browser's view only.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Close view", id="bridge.quit"),
    ]

    def __init__(self, source: BridgeSource) -> None:
        super().__init__()
        self.source = source
        self.view: IncidentView | None = None

    def compose(self) -> ComposeResult:
        yield Label("skewmit bridge · READ-ONLY", id="bridge-title")
        yield Label("validation: not yet checked", id="bridge-verdict", markup=False)
        yield Label("", id="bridge-notes", markup=False)
        yield Label("", id="bridge-rollout", markup=False)
        with Horizontal():
            with Vertical(id="bridge-left"):
                yield Checklist(
                    [ChecklistRow(s, i + 1, STEP_TITLES[s]) for i, s in enumerate(STEP_ORDER)]
                )
            log = ActionLog(id="bridge-log")
            log.read_only = True
            yield log
        yield Footer()

    def on_mount(self) -> None:
        self.read_incident()
        self.set_interval(READ_EVERY_S, self.read_incident)

    @work(thread=True, exclusive=True, group=GROUP_READ, exit_on_error=False)
    def read_incident(self) -> None:
        try:
            view, log = self.source.read()
        except OSError as exc:
            unknown = IncidentView(self.source.folder.name, (), "UNKNOWN", (str(exc),))
            self.post_message(IncidentRead(unknown, ()))
            return
        self.post_message(IncidentRead(view, log, self.source.rollout()))

    def on_incident_read(self, message: IncidentRead) -> None:
        view = message.view
        self.view = view
        title = f"skewmit bridge · READ-ONLY · incident {view.incident}"
        if view.drill:
            title += f" · {view.drill}"
        if view.closed:
            title += " · closed"
        self.query_one("#bridge-title", Label).update(title)
        verdict = self.query_one("#bridge-verdict", Label)
        verdict.update(f"validation: {view.verdict}")
        verdict.update_classes({"-pass": view.verdict == "PASS", "-fail": view.verdict == "FAIL"})
        notes = self.query_one("#bridge-notes", Label)
        notes.update("\n".join(view.verdict_notes[:6]))
        notes.display = bool(view.verdict_notes)
        rollout = self.query_one("#bridge-rollout", Label)
        rollout.update(message.rollout)
        rollout.display = bool(message.rollout)
        checklist = self.query_one(Checklist)
        for row in view.rows:
            checklist.update_row(
                ChecklistRow(row.step, row.number, row.title, row.state, row.errors, row.warnings)
            )
        self.query_one(ActionLog).show(message.log)


def main_view(argv: list[str]) -> int:
    """The per-browser view process textual-serve starts."""
    p = argparse.ArgumentParser(prog="skewmit-bridge-view")
    p.add_argument("folder")
    p.add_argument("--kubeconfig", default="")
    p.add_argument("--context", default="")
    args = p.parse_args(argv)
    BridgeApp(BridgeSource(Path(args.folder), args.kubeconfig, args.context)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main_view(sys.argv[1:]))
