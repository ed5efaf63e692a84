"""`skewmit drill`: the app on the simulator with an incident whose name stays hidden until the
debrief, hints from the runbook on request, and `skewmit drill inject` for the trainer.

The drill is the demo's wiring (tui.demo) plus a bad rollout sent through the API server for
the variants that need one, and `drill` entries in the incident's journal (started, hint,
fault, gave-up, ended) from which services.drill computes the debrief.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.binding import Binding, BindingType

from services.drill import DRILL_ENTRY, Variant, hint, report_markdown, score
from services.models import STEP_ORDER, Step
from tui.app import SkewmitApp
from tui.drill_cli import DRILL_SPEED, side_file
from tui.messages import StepChecked
from tui.session import Intervals, MetricsFeed, Session, opened_at_of

FAST_FORWARD = 200.0  # simulated seconds per second while the bad rollout rolls out
ROLLOUT_WAIT_S = 60.0
GROUP_DRILL = "drill"


@dataclass
class Drill:
    """A running drill: what was drawn and where its files go."""

    variant: Variant
    kubeconfig: Path
    report_path: Path
    seed: int | None = None
    hints: dict[Step, int] = field(default_factory=dict)
    over: bool = False


def _fast_forward_rollout(sim: Any, runbook: Any) -> None:
    """Let the bad rollout finish before the trainee arrives, as if it shipped a while ago."""
    clock = sim.cluster.clock
    speed = clock.speed
    sim.call(clock.set_speed, FAST_FORWARD)
    try:
        deadline = time.monotonic() + ROLLOUT_WAIT_S
        while time.monotonic() < deadline and not runbook.progress().done:
            time.sleep(0.3)
    finally:
        sim.call(clock.set_speed, speed)


def open_drill_session(
    variant: Variant,
    *,
    speed: float = DRILL_SPEED,
    seed: int | None = None,
    kubeconfig: Path,
    report_path: Path = Path("drill-report.md"),
    journal_root: Path | None = None,
) -> tuple[Session, Drill]:
    """Start the simulator on the variant's scenario, send its bad rollout, open the incident
    and journal the drill's start. Raises ScenarioError, SkewmitError, OSError."""
    from services.journal import state_dir
    from services.kube import KubeCluster
    from tui.demo import open_demo

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    root = journal_root or state_dir() / "drills" / stamp
    runbook, sim = open_demo(variant.scenario, speed, journal_root=root)
    try:
        sim.write_kubeconfig(kubeconfig)
        target = runbook.target
        if variant.edits:
            from services.drill import start_bad_rollout

            admin = KubeCluster(str(kubeconfig), "skewmit-sim")
            start_bad_rollout(admin, target.namespace, target.deployment, variant)
            _fast_forward_rollout(sim, runbook)
        journal = runbook.ensure_journal()
        assert journal is not None  # the demo always has a journal to open
        journal.append(DRILL_ENTRY, {"event": "started", "variant": variant.name, "seed": seed})
        side_file(kubeconfig).write_text(
            json.dumps(
                {
                    "journal": str(journal.folder),
                    "namespace": target.namespace,
                    "deployment": target.deployment,
                    "context": target.context,
                }
            )
        )
    except BaseException:
        if runbook.metrics is not None:
            runbook.metrics.stop()
        sim.stop()
        raise
    source = runbook.metrics
    session = Session(
        runbook,
        clock_note=f"simulated clock x{speed:g}",
        intervals=Intervals(checks=5.0, validate=2.0, rollout=5.0, rollout_active=0.5, metrics=1.0),
        opened_at=opened_at_of(journal.meta()),
        simulator=sim,
        metrics_sampler=MetricsFeed(source, baseline=runbook.baseline) if source else None,
        metrics_now=source.now if source is not None else None,
    )
    return session, Drill(variant, kubeconfig, report_path, seed)


class DrillApp(SkewmitApp):
    """The app with a hidden incident, hints on request, and a debrief at the end."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *SkewmitApp.BINDINGS,
        Binding("H", "hint", "Hint", key_display="H", id="drill.hint"),
        Binding("G", "give_up", "Give up", key_display="G", id="drill.give-up"),
    ]

    def __init__(self, session: Session, drill: Drill) -> None:
        super().__init__(session)
        self.drill = drill
        self.drill_runbook = session.runbook  # its journal records the drill's own events
        self.debrief_markdown = ""
        self._end_lock = threading.Lock()

    @property
    def hints_used(self) -> int:
        return sum(self.drill.hints.values())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("hint", "give_up") and self.drill.over:
            return None  # the drill is over: no hints, nothing to give up
        return super().check_action(action, parameters)

    def action_hint(self) -> None:
        step = self.selected_step
        used = self.drill.hints.get(step, 0)
        text = hint(step, used)
        self.drill.hints[step] = used + 1
        self.notify(text, title=f"Hint {self.hints_used}", timeout=20, markup=False)
        self.run_record("hint", {"step": step.value, "text": text})

    def action_give_up(self) -> None:
        if self._claim_end():
            self.run_end("gave-up")

    def on_step_checked(self, message: StepChecked) -> None:
        # SkewmitApp's own handler runs as well (Textual calls each class's handler).
        report = message.report
        if message.step == Step.VALIDATE and report.state == "ok" and not self.drill.over:
            self.run_end_if_mitigated()

    @work(thread=True, group=GROUP_DRILL, exit_on_error=False)
    def run_record(self, event: str, data: dict[str, Any]) -> None:
        journal = self.drill_runbook.journal
        if journal is not None:
            journal.append(DRILL_ENTRY, {"event": event, **data})

    @work(thread=True, group=GROUP_DRILL + "-end", exit_on_error=False)
    def run_end_if_mitigated(self) -> None:
        journal = self.drill_runbook.journal
        if journal is None:
            return
        entries = journal.entries()
        started = [e for e in entries if e.type == DRILL_ENTRY and e.data.get("event") == "started"]
        first = started[0].seq if started else 0
        # A pass before any change is the fleet warming up, not a mitigation.
        if any(e.type == "applied" and e.seq > first for e in entries) and self._claim_end():
            self._finish("ended")

    def _claim_end(self) -> bool:
        """True for the one caller that ends the drill (validate passes arrive every poll)."""
        with self._end_lock:
            if self.drill.over:
                return False
            self.drill.over = True
            return True

    @work(thread=True, group=GROUP_DRILL + "-end", exit_on_error=False)
    def run_end(self, event: str) -> None:
        self._finish(event)

    def _finish(self, event: str) -> None:
        """Journal the end, score the journal, write the report, show the debrief (blocking:
        from a worker). Raises JournalError when the journal cannot be written."""
        journal = self.drill_runbook.journal
        if journal is None:
            return
        if event == "ended":
            self._settle_findings()
        journal.append(DRILL_ENTRY, {"event": event})
        result = score(journal.entries(), self.drill.variant)
        markdown = report_markdown(result, self.drill.variant)
        where = str(self.drill.report_path)
        try:
            self.drill.report_path.write_text(markdown)
        except OSError as exc:
            where = f"not written: {exc}"
        self.call_from_thread(self.show_debrief, markdown, where)

    def _settle_findings(self) -> None:
        """Check every step once more before the debrief is scored, so the journal's last
        findings are the fleet's as the drill ended. Validation can pass while the checks
        the finished rollout started are still out; a rollout's passing warnings (pods being
        replaced) they would have cleared then stood at the end, scored as the trainee making
        things worse (services.drill._made_worse)."""
        for step in STEP_ORDER:
            if step != Step.VALIDATE:
                self.drill_runbook.check(step)  # a failed check is a report, not a raise

    def show_debrief(self, markdown: str, where: str) -> None:
        from tui.screens.debrief import DebriefScreen

        self.debrief_markdown = markdown
        self.refresh_bindings()
        self.push_screen(DebriefScreen(markdown, where))
