"""What the app's screens show, and when: the readings the workers posted (metrics, rollout,
verdict and whether it still stands), the checklist and the selected step's detail, the
status line's hint, and the header's clock.

`Dashboard` keeps what it was told (by messages: the selected step, the readings) and never
reads it back from the widgets; the App hands it each message and asks it to render.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual.widgets import Label

from services.models import (
    STEP_ORDER,
    STEP_TITLES,
    MetricSeries,
    RolloutProgress,
    Step,
    Verdict,
)
from tui import low_bandwidth
from tui.keymap import FIX_KEY
from tui.messages import (
    JournalRead,
    MetricsSampled,
    PodsListed,
    RolloutProgressed,
    StepChecked,
)
from tui.screens.main import MainScreen
from tui.screens.preview import ConfirmScreen
from tui.screens.validation_view import ValidationScreen
from tui.session import Intervals, Session, opened_at_of
from tui.step_board import SHORT_TITLES, StepBoard
from tui.verdict_state import VerdictState
from widgets.baseline_chart import BaselineChart
from widgets.checklist import ChecklistRow
from widgets.header_bar import HeaderBar, HeaderState
from widgets.inspector_table import InspectorTable
from widgets.label_text import set_text
from widgets.step_detail import StepDetail

if TYPE_CHECKING:
    from tui.action_controller import ActionController

# The latency chart is plotted once the opening's first checks have answered, or this long
# after the first frame at the latest (a cluster that answers slowly).
CHART_HOLD_MAX_S = 3.0


class Dashboard:
    """The display state of one app and its rendering onto the main screen and, when it is
    open, the validation view (`views()` lists the screens on the stack that show it)."""

    def __init__(
        self,
        main: MainScreen,
        board: StepBoard,
        views: Callable[[], list[Any]],
        session: Session | None,
        waiting: str = "",
        opener_header: HeaderState | None = None,
    ) -> None:
        self.main = main
        self.board = board
        self.views = views
        self.waiting = waiting  # what the panes say until the session is open
        self.opener_header = opener_header or HeaderState()  # the header until then
        self.session: Session | None = None
        self.actions: ActionController | None = None  # the change in progress, once open
        self.selected_step: Step = STEP_ORDER[0]
        self.pane = "step"
        self.low_bandwidth = False  # tui.low_bandwidth: on for this session
        self.chart_interval_s: float | None = None  # the main screen's charts' pace, once set
        self.metrics: list[MetricSeries] = []
        self.metrics_error = ""
        self.progress: RolloutProgress | None = None
        self._rollout_read_at = 0.0  # when the read shown started (time.monotonic)
        self.verdict: Verdict | None = None
        self.rollout_active = False
        self.settled_at: float | None = None  # when the last change's rollout finished
        self.opened_at: float | None = None
        self.incident_id = ""  # the one the headers show
        # Whether the verdict still stands: a failed or stale read replaces it on screen.
        self.verdict_state = VerdictState(self._now, Intervals().validate)
        if session is not None:
            self.open(session)

    def open(self, session: Session) -> None:
        """The session is open: its clocks and the incident it reopened."""
        self.session = session
        self.opened_at = session.opened_at
        self.incident_id = session.incident_id
        self.verdict_state = VerdictState(self._now, session.intervals.validate)
        if session.metrics_note and not self.metrics and self.main.composed:
            # Why there are no metrics (yet), in place of "connecting to" the API server. (A
            # session given at the start is opened before the screen exists: its first
            # metrics poll says it.)
            self.main.show_metrics([], None, session.metrics_note)

    def _now(self) -> float:
        return self.session.now() if self.session is not None else 0.0

    # -- the header and its clock ---------------------------------------------------------

    def header_state(self) -> HeaderState:
        session = self.session
        if session is None:
            return self.opener_header
        target = session.runbook.target
        return HeaderState(
            context=target.context,
            server=target.server,
            namespace=target.namespace,
            deployment=target.deployment,
            user=target.user,
            read_only=session.read_only,
            production=session.production,
            incident_id=session.incident_id,
            elapsed_s=self.elapsed(),
            clock_note=session.clock_note,
        )

    def show_waiting(self) -> None:
        """Before the session is open: the checklist, and every pane saying why it waits.
        The latency chart is held until the opening's first checks have answered (issue 12):
        Prometheus often answers first, and loading plotext and building the plot then took
        60-70 ms of the one interpreter lock the cluster's client import and those checks
        need, so the findings and the GPU inspector came that much later."""
        self.render_rows()
        self.main.show_waiting(self.waiting)
        self.render_detail()
        chart = self.main.query_one("#chart-latency", BaselineChart)
        chart.hold()
        self.main.set_timer(CHART_HOLD_MAX_S, chart.release)

    def opening_answered(self, steps: tuple[Step, ...]) -> None:
        """Once every one of `steps` (the checks the opening ran first) has answered, the
        latency chart held since the first frame is plotted, after the frame that shows
        them."""
        if not self.main.composed or not steps or not set(steps) <= self.board.reports.keys():
            return
        chart = self.main.query_one("#chart-latency", BaselineChart)
        if chart.held:
            self.main.call_after_frame(chart.release)

    def show_header(self) -> None:
        """The session is open: every screen's header says what it knows (a validation view
        opened while connecting still showed the opener's)."""
        state = self.header_state()
        for screen in self.views():
            screen.show_header(state)

    def elapsed(self) -> float | None:
        session = self.session
        if session is None:
            return None
        journal = session.runbook.journal
        if self.opened_at is None and journal is not None:
            # The incident opens at the first finding or change, after the session was built.
            self.opened_at = opened_at_of(journal.meta())
        # On the journal's clock (the metrics source's: simulated in the demo), as opened_at.
        now = session.metrics_now or session.now
        return None if self.opened_at is None else now() - self.opened_at

    def tick(self, screens: list[Any]) -> None:
        """Once a second: the verdict's age and the header's clock on every screen."""
        if self.verdict_state.expire():
            self.render_verdict()
        if self.session is None:
            return
        elapsed = self.elapsed()
        incident_id = self.session.incident_id
        opened = incident_id != self.incident_id  # the incident opened since
        self.incident_id = incident_id
        state = self.header_state() if opened else None
        for screen in screens:
            for header in screen.query(HeaderBar):
                if state is not None:
                    header.show(state)
                header.set_elapsed(elapsed)

    def clock(self) -> float:
        """The clock the metrics (and so the stability window) run on: simulated in the demo."""
        session = self.session
        if session is None:
            return 0.0
        return float(session.metrics_now() if session.metrics_now else session.now())

    # -- results ------------------------------------------------------------------------

    def step_checked(self, message: StepChecked) -> None:
        step, report = message.step, message.report
        self.board.checked(report)
        if report.progress is not None and self._newest_rollout_read(message.read_at):
            self.show_progress(report.progress)
        if report.hardware is not None:
            self.main.show_hardware(report.hardware)
            expected = report.hardware.expected_class
            if self.main.shown_metrics[0] and expected != self.main.shown_gpu_class:
                # The figures already shown were of the first class listed on a mixed fleet.
                self.main.show_metrics(*self.main.shown_metrics, expected)
        if report.verdict is not None:
            self.show_verdict(report.verdict)
        elif step == Step.VALIDATE and self.verdict_state.failed(report.error):
            self.render_verdict()
        self.render_rows()
        if step == self.selected_step:
            self.render_detail()

    def pods_listed(self, message: PodsListed) -> None:
        """The inspector's rows before step 5's first answer: pods, nodes and GPU labels, each
        row marked as still checking, the summary saying no verdict is in yet. Once step 5
        has answered (or failed: it says why), its answer stands and this list is dropped."""
        if Step.HARDWARE in self.board.reports or not self.main.composed:
            return
        rows = message.report.rows
        table = self.main.query_one(InspectorTable)
        table.show(rows)
        nodes = len({row.node for row in rows if row.node})
        summary = f"checking GPUs: {len(rows)} pod(s) on {nodes} node(s), classes from node labels"
        set_text(self.main.query_one("#inspector-summary", Label), summary)
        set_text(self.main.query_one("#inspector-detail", Label), table.selected_detail())

    def check_crashed(self, step: Step, error: str) -> None:
        self.board.check_crashed(step, error)
        self.render_rows()
        if step == self.selected_step:
            self.render_detail()
        if step == Step.VALIDATE and self.verdict_state.failed(error):
            self.render_verdict()

    def rollout_progressed(self, message: RolloutProgressed) -> bool:
        """Show the rollout; True when a rollout skewmit started has just finished. A read
        older than the one shown (step 1's check carries the rollout too) is dropped."""
        if not self._newest_rollout_read(message.read_at):
            return False
        if message.progress is None:
            self.main.show_rollout_error(message.error)
            return False
        self.show_progress(message.progress)
        if self.rollout_active and message.progress.done:
            self.rollout_active = False
            self.board.running_step = None
            self.settled_at = self.clock()
            self.render_rows()
            return True
        return False

    def metrics_sampled(self, message: MetricsSampled, top: Any) -> None:
        """New readings (or why none came), shown on the main screen and, when `top`, the
        screen on top, is the validation view, on it too."""
        validation = top if isinstance(top, ValidationScreen) else None
        if message.error and message.series == [] and self.metrics:
            # Keep the last readings on screen; they go stale visibly.
            self.metrics_error = message.error
        else:
            self.metrics = list(message.series)
            self.metrics_error = message.error
        session = self.session
        # The gate reads the same source: after a failed read its verdict no longer stands.
        sampled = session is not None and session.metrics_sampler is not None
        if message.error and sampled and self.verdict_state.failed(f"metrics: {message.error}"):
            self.render_verdict()
        now = session.metrics_now() if session is not None and session.metrics_now else None
        if not message.error:
            # A new reading is judged as of when it was read (its newest point): how long the
            # UI took to show it is not the source's age. At the demo's x12 clock the opening's
            # busy second made every first figure read "stale". Kept readings (above) are
            # judged now, so a source that stopped answering shows.
            read_at = max((s.points[-1].t for s in self.metrics if s.points), default=None)
            if now is not None and read_at is not None:
                now = min(now, read_at)
            self.pace_charts(validation)
        self.main.show_metrics(self.metrics, now, self.metrics_error, self.expected_class())
        if validation is not None:
            validation.show_metrics(self.metrics)

    def pace_charts(self, validation: ValidationScreen | None) -> None:
        """The charts at the source's scrape interval once it is known: a Prometheus reached
        after the session opened (tui.launchers.PendingFeed) gives it with its first reading,
        and the charts were paced when the session opened, at the 5 s default."""
        every = low_bandwidth.session_chart_interval(self.session)
        if every != self.chart_interval_s:
            self.chart_interval_s = every
            low_bandwidth.pace_charts(self.main, every)
        if validation is not None and validation.chart_interval_s != every:
            validation.pace_charts(every)

    def journal_read(self, message: JournalRead) -> None:
        self.main.show_log(message.entries, self.session.read_only if self.session else False)
        self.board.journal_read(message.standing, message.reverted)
        self.render_rows()

    def remaining_s(self, verdict: Verdict | None) -> float | None:
        """Seconds until the stability window holds only samples taken after the last change
        settled: the gate's own figure when it gives one."""
        if verdict is None or verdict.verdict == "pass":
            return None
        given = getattr(verdict, "remaining_s", None)
        if given is not None:
            return float(given)
        if self.settled_at is None:
            return None
        left = verdict.window_s - (self.clock() - self.settled_at)
        return left if left > 0 else None

    def metrics_visible(self, top: Any) -> bool:
        """Whether the metrics are on screen under `top`, the screen on top: the validation
        view, or the main screen with its metrics pane (always shown when wide)."""
        if isinstance(top, ValidationScreen):
            return True
        return self.main in self.views() and (not self.main.compact or self.pane == "metrics")

    # -- the validation view ------------------------------------------------------------------

    def validation_view(self) -> ValidationScreen:
        """A new validation view, in the session's low-bandwidth mode and chart pacing."""
        every = low_bandwidth.session_chart_interval(self.session)
        return ValidationScreen(
            self.header_state(), quiet=self.low_bandwidth, chart_interval_s=every
        )

    def fill_view(self, view: ValidationScreen) -> None:
        """What a view just opened shows from the readings so far (the next reads update it)."""
        if self.session is not None:  # a view kept from before the scrape interval was known
            view.pace_charts(low_bandwidth.session_chart_interval(self.session))
        view.show_metrics(self.metrics)
        view.show_verdict(self.verdict, self.remaining_s(self.verdict), self.verdict_state.lost)
        view.show_progress(self.progress)

    def _newest_rollout_read(self, read_at: float) -> bool:
        """True (and remembered) when a read of the rollout that started at `read_at` is not
        older than the one on screen."""
        if read_at < self._rollout_read_at:
            return False
        self._rollout_read_at = read_at
        return True

    def show_progress(self, progress: RolloutProgress) -> None:
        self.progress = progress
        for screen in self.views():
            screen.show_progress(progress)

    def show_verdict(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.board.verdict = verdict
        self.verdict_state.fresh(verdict)
        self.render_verdict()

    def render_verdict(self) -> None:
        verdict, lost = self.verdict, self.verdict_state.lost
        remaining = self.remaining_s(verdict)
        for screen in self.views():
            screen.show_verdict(verdict, remaining, lost)

    # -- the checklist, the selected step and the status line -----------------------------

    def expected_class(self) -> str | None:
        """The GPU class the last-known-good required, once step 5 has said (else None)."""
        report = self.board.reports.get(Step.HARDWARE)
        hardware = report.hardware if report is not None else None
        return hardware.expected_class if hardware is not None else None

    def render_rows(self) -> None:
        if not self.main.composed:
            return
        self.main.show_rows(
            [
                ChecklistRow(step, i + 1, SHORT_TITLES[step], state, errors, warnings)
                for i, (step, state, errors, warnings) in enumerate(self.board.rows())
            ]
        )

    def render_detail(self) -> None:
        if not self.main.composed:
            return
        step = self.selected_step
        detail = self.main.query_one(StepDetail)
        title = f"{STEP_ORDER.index(step) + 1} · {STEP_TITLES[step]}"
        report = self.board.reports.get(step)
        notes = []
        actions = self.actions
        busy = actions.busy if actions is not None else None
        if actions is not None and busy is not None and busy.step == step and actions.busy_note:
            notes.append(f"{busy.title}: {actions.busy_note}")
        note = self.board.note_for(step)
        if note:
            notes.append(note)
        if step in self.board.failed:
            notes.append(f"failed: {self.board.failed[step]}")
        if step == Step.VALIDATE and actions is not None and actions.evidence_path:
            notes.append(f"evidence bundle: {actions.evidence_path}")
        self.render_hint()
        if report is None:
            pending = self.waiting if self.session is None else "checking…"
            detail.show_pending(title, "\n".join(notes) or pending)
            return
        detail.show(report, title, "\n".join(notes))

    def render_hint(self) -> None:
        """The status line's resting text: what the fix key does on the selected step now,
        or what the change in progress is doing."""
        actions, session = self.actions, self.session
        if actions is not None and actions.busy is not None:
            self.main.say(f"{actions.busy.title}: {actions.busy_note or 'in progress'}")
            return
        if session is None:
            self.main.say(self.waiting)
            return
        spec, why = self.board.fix_for(self.selected_step, read_only=session.read_only, busy=None)
        self.main.say(f"{FIX_KEY}: {spec.title}" if spec is not None else why)

    def toggle_skip(self, step: Step) -> None:
        """The operator marks `step` skipped, or not any more."""
        self.board.toggle_skip(step)
        self.render_rows()
        self.render_detail()

    def show_evidence(self, path: str) -> None:
        self.main.show_evidence(f"evidence bundle: {path}")
        self.render_detail()

    def quit_question(self) -> ConfirmScreen | None:
        """What `q` asks first when quitting now would leave something unwatched (None: it
        quits at once)."""
        why = self.quit_warning()
        return ConfirmScreen("Quit skewmit?", why, confirm_label="Quit") if why else None

    def quit_warning(self) -> str:
        """What quitting now would leave unwatched ("" when nothing is in flight)."""
        progress = self.progress
        if self.rollout_active or (progress is not None and not progress.done):
            detail = f" ({progress.message})" if progress is not None else ""
            return (
                f"A rollout is in flight{detail}. Quitting stops watching it; the change stays "
                "applied and journaled, and skewmit reopens this incident when started again."
            )
        crashing = [p for p in progress.problems if p.code == "crashloop"] if progress else []
        if crashing:
            return (
                f"Pods are crash-looping: {crashing[0].message}. Quitting leaves them so; "
                "the journal keeps the incident open."
            )
        return ""
