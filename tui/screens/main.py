"""The main screen: header, checklist with rollout and validation beside it, and the panes
(step detail, metrics, inspector, action log).

At 120x34 and more the panes share the screen in a grid; below that they become tabs (the
checklist stays visible). The screen holds no state of its own beyond what is shown: the app
hands it reports, readings and verdicts to render.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import DataTable, Label, Tab, Tabs

from services.models import (
    STEP_ORDER,
    HardwareReport,
    JournalAction,
    MetricSeries,
    RolloutProgress,
    Verdict,
)
from services.sanitize import terminal_line, terminal_text
from tui import low_bandwidth
from tui.keymap import FIX_KEY, REVERT_KEY, STEP_KEYS
from tui.low_bandwidth import CHART_KEY
from tui.messages import PaneShown
from tui.metrics_feed import class_tags, mixed_fleet_note
from tui.screens.breakpoints import PrestyledScreen
from tui.session import (
    HIGHER_IS_WORSE,
    METRIC_LABELS,
    METRIC_NAMES,
    first_series,
    series_named,
)
from tui.step_board import SHORT_TITLES, StepBoard
from widgets.action_log import ActionLog
from widgets.baseline_chart import BaselineChart
from widgets.checklist import Checklist, ChecklistRow
from widgets.header_bar import HeaderBar, HeaderState
from widgets.inspector_table import InspectorTable
from widgets.label_text import set_text
from widgets.metric_sparkline import MetricSparkline
from widgets.quiet_footer import QuietFooter
from widgets.rollout_bar import RolloutBar
from widgets.step_detail import StepDetail
from widgets.validation_panel import ValidationPanel, VerdictLost

PANES = ("step", "metrics", "inspector", "log")
PANE_TITLES = {"step": "Step", "metrics": "Metrics", "inspector": "GPUs", "log": "Log"}


def checklist_rows(board: StepBoard) -> list[ChecklistRow]:
    """The checklist's lines for the board's states and counts, in runbook order."""
    return [
        ChecklistRow(step, i + 1, SHORT_TITLES[step], state, errors, warnings)
        for i, (step, state, errors, warnings) in enumerate(board.rows())
    ]


class MainScreen(PrestyledScreen):
    """Every key of the main screen is declared here, with an id: one letter per step action
    on every step (tui.keymap). The app's `check_action` shows the selected step's offered
    keys, dims those that cannot run and hides the rest; any of them pressed anyway says why
    on the status line, above the footer."""

    DEFAULT_CSS = """
    MainScreen #status-line {
        height: auto; max-height: 3; width: 1fr; padding: 0 1; color: $text-muted;
    }
    MainScreen #status-line.-refusal { color: $text-warning; text-style: bold; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        # The app's own keys first, so the footer keeps them at 80 columns on any step.
        Binding("q", "app.quit", "Quit", id="main.quit"),
        Binding("question_mark", "app.help", "Help", key_display="?", id="main.help"),
        Binding("v", "app.validation_view", "Validation", id="main.validation-view"),
        Binding(FIX_KEY, "app.fix_step", "Fix", id="main.fix"),
        *(
            Binding(k.key, f"app.step_action('{k.action_id}')", k.label, id=k.binding_id)
            for k in STEP_KEYS
        ),
        Binding(REVERT_KEY, "app.revert_change", "Revert", id="main.revert"),
        Binding("g", "toggle_guidance", "Guidance", show=False, id="main.guidance"),
        Binding(CHART_KEY, "toggle_chart", "Chart", show=False, id="main.chart"),
        Binding("x", "app.skip_step", "Skip step", show=False, id="main.skip-step"),
        Binding("]", "next_pane", "Next pane", show=False, id="main.next-pane"),
        Binding("[", "previous_pane", "Previous pane", show=False, id="main.previous-pane"),
        *(
            Binding(str(i), f"select_step({i})", f"Step {i}", show=False, id=f"main.step-{i}")
            for i in range(1, 7)
        ),
    ]

    def __init__(self, header: HeaderState, rows: Sequence[ChecklistRow] = ()) -> None:
        """`rows`: the checklist's first lines (default: every step pending), drawn as they
        are in the first frame rather than changed, and restyled, right after it."""
        super().__init__(id="main")
        self.header_state = header
        self.first_rows = tuple(rows) or tuple(
            ChecklistRow(step, i + 1, SHORT_TITLES[step]) for i, step in enumerate(STEP_ORDER)
        )
        self.pane = "step"
        self._status_timer: Timer | None = None  # a refusal on show until it fires
        self.hint = ""  # what the status line shows when no refusal is
        # The last metrics shown (series, now, error), redrawn when the chart is toggled.
        self.shown_metrics: tuple[Sequence[MetricSeries], float | None, str] = ((), None, "")
        self.shown_gpu_class: str | None = None  # the GPU class a mixed fleet's figures prefer
        # The app's: what to show once the widgets are mounted, before the first layout (so
        # that it is in the first frame), and what to start once that frame is drawn.
        self.first_mount: Callable[[], None] | None = None
        self.first_frame: Callable[[], None] | None = None
        # Its widgets are mounted: True from its on_mount on, where Textual's is_mounted is
        # still False (it turns True once on_mount has returned).
        self.composed = False

    def compose(self) -> ComposeResult:
        self.take_size_classes()  # the first frame restyles nothing whole (issue 12)
        yield HeaderBar(self.header_state, id="header")
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                yield Checklist(self.first_rows, id="checklist")
                yield RolloutBar(id="rollout")
                yield ValidationPanel(id="validation")
            with Vertical(id="main-area"):
                yield Tabs(*(Tab(PANE_TITLES[p], id=f"tab-{p}") for p in PANES), id="pane-tabs")
                with Container(id="panes", classes="-tab-step"):
                    detail = StepDetail(id="pane-step")
                    detail.add_class("pane", update=False)  # styled as it mounts, not twice
                    yield detail
                    with Vertical(id="pane-metrics", classes="pane"):
                        for name in METRIC_NAMES:
                            yield MetricSparkline(
                                METRIC_LABELS[name],
                                higher_is_worse=HIGHER_IS_WORSE.get(name, True),
                                id=f"spark-{name}",
                            )
                        yield Label("", id="metrics-note", markup=False)
                        yield BaselineChart("latency", unit_label="s", id="chart-latency")
                    with Vertical(id="pane-inspector", classes="pane"):
                        yield Label("", id="inspector-summary", markup=False)
                        yield InspectorTable(id="inspector")
                        yield Label("", id="inspector-detail", markup=False)
                    with Vertical(id="pane-log", classes="pane"):
                        yield Label("", id="evidence-path", markup=False)
                        yield ActionLog(id="action-log")
                        yield Label("", id="log-detail", markup=False)
        yield Label("", id="status-line", markup=False)
        yield QuietFooter()  # rebuilt only when its keys change, not after every poll

    def on_mount(self) -> None:
        self.composed = True
        self.query_one("#sidebar").border_title = "Runbook"
        self.query_one("#rollout").border_title = "Rollout"
        self.query_one("#validation").border_title = "Validation"
        self.query_one("#pane-step").border_title = "Step"
        self.query_one("#pane-metrics").border_title = "Live metrics"
        self.query_one("#pane-inspector").border_title = "Pods and GPUs"
        # The header carries the incident id; a pane title a third of the width cannot.
        self.query_one("#pane-log").border_title = "Action log"
        self.query_one(Checklist).focus()
        if self.first_mount is not None:
            self.first_mount()

    def first_shown(self) -> None:
        if self.first_frame is not None:
            self.call_after_frame(self.first_frame)  # once Textual has laid it out and drawn it
        # While the session opens, on a thread: not as the first answers come in.
        self.call_after_frame(self.query_one(StepDetail).parse_styles_ahead)

    def on_resize(self, event: events.Resize) -> None:
        if event.size == self.size:
            # A Resize to the size the screen has (tmux sends one as the app starts): nothing
            # to lay out or draw again (Textual would do both, for the whole screen).
            event.prevent_default()

    # -- panes ------------------------------------------------------------------------

    @property
    def compact(self) -> bool:
        return self.has_class("-narrow") or self.has_class("-short")

    def show_pane(self, pane: str) -> None:
        self.pane = pane
        panes = self.query_one("#panes")
        # One restyle of every pane for the switch, not one per class changed.
        panes.update_classes({f"-tab-{name}": name == pane for name in PANES})
        tabs = self.query_one(Tabs)
        if tabs.active != f"tab-{pane}":
            tabs.active = f"tab-{pane}"
        self.app.post_message(PaneShown(pane))

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        if event.tab.id:
            pane = event.tab.id.removeprefix("tab-")
            if pane != self.pane:
                self.show_pane(pane)

    def action_next_pane(self) -> None:
        self.show_pane(PANES[(PANES.index(self.pane) + 1) % len(PANES)])

    def action_previous_pane(self) -> None:
        self.show_pane(PANES[(PANES.index(self.pane) - 1) % len(PANES)])

    def action_select_step(self, number: int) -> None:
        self.query_one(Checklist).select_step(STEP_ORDER[number - 1])
        if self.compact and self.pane != "step":
            self.show_pane("step")  # one pane at a time: show the step just asked for

    def action_toggle_guidance(self) -> None:
        self.query_one(StepDetail).toggle_class("-no-guidance")

    def action_toggle_chart(self) -> None:
        """The latency chart on demand (low-bandwidth mode hides it)."""
        low_bandwidth.toggle_chart(self)
        self.show_metrics(*self.shown_metrics, self.shown_gpu_class)

    # -- the status line ---------------------------------------------------------------------

    def say(self, text: str, *, refusal: bool = False, hold_s: float = 8.0) -> None:
        """One line above the footer: why a key could not act (held `hold_s` seconds, then
        the hint comes back), or the hint: what the fix key does on the selected step."""
        lines = self.query("#status-line").results(Label)
        line = next(lines, None)
        if line is None:
            return  # the app is shutting down: the screen's widgets are gone
        if not refusal and self._status_timer is not None:
            self.hint = text  # a refusal is on show: the hint waits for it
            return
        set_text(line, terminal_line(text, 500))  # the same hint again repaints nothing
        line.set_class(refusal, "-refusal")
        if refusal:
            if self._status_timer is not None:
                self._status_timer.stop()
            self._status_timer = self.set_timer(hold_s, self._refusal_expired)
        else:
            self.hint = text

    def _refusal_expired(self) -> None:
        self._status_timer = None
        self.say(self.hint)

    @property
    def status_text(self) -> str:
        return str(self.query_one("#status-line", Label).render())

    # -- rendering what the app hands over ------------------------------------------------

    def show_rows(self, rows: Sequence[ChecklistRow]) -> None:
        # A check can answer while the app shuts down and the screen's widgets are gone.
        for checklist in self.query(Checklist):
            for row in rows:
                checklist.update_row(row)

    def show_progress(self, progress: RolloutProgress | None) -> None:
        self.query_one(RolloutBar).show(progress)

    def show_rollout_error(self, error: str) -> None:
        """Why the rollout could not be read: on the bar's tooltip, the bar keeps its state."""
        self.query_one(RolloutBar).tooltip = terminal_line(error, 500)

    def show_verdict(
        self, verdict: Verdict | None, remaining_s: float | None, lost: VerdictLost | None = None
    ) -> None:
        self.query_one(ValidationPanel).show(verdict, remaining_s, lost)

    def show_metrics(
        self,
        series: Sequence[MetricSeries],
        now: float | None,
        error: str = "",
        gpu_class: str | None = None,
    ) -> None:
        """`gpu_class`: the class the last-known-good required (step 5), whose figures a
        mixed fleet shows before the baseline says so (tui.metrics_feed.first_series)."""
        self.shown_metrics = (series, now, error)
        self.shown_gpu_class = gpu_class
        first = first_series(series, gpu_class)
        tags = class_tags(series, chosen=first)  # which GPU class a figure is of, if mixed
        for name in METRIC_NAMES:
            spark = self.query_one(f"#spark-{name}", MetricSparkline)
            spark.show(first.get(name), now, tags.get(name, ""))
        self.query_one("#chart-latency", BaselineChart).show(series_named(series, "p95", "p99"))
        notes = (mixed_fleet_note(series, tags=tags), error, low_bandwidth.chart_note(self))
        note = terminal_text("\n".join(n for n in notes if n), 500)
        set_text(self.query_one("#metrics-note", Label), note)

    def show_hardware(self, report: HardwareReport) -> None:
        self.query_one(InspectorTable).show(report.rows)
        count = len(report.mismatches)
        expected = report.expected_class or "unknown"
        summary = f"expected {expected}: "
        summary += f"{count} pod(s) on another GPU class" if count else "every pod matches"
        label = self.query_one("#inspector-summary", Label)
        set_text(label, terminal_line(summary, 300))
        label.tooltip = terminal_text(report.expected_reason, 500)
        self._show_inspector_detail()

    def show_log(self, entries: Sequence[JournalAction], read_only: bool) -> None:
        log = self.query_one(ActionLog)
        log.read_only = read_only
        log.show(entries)
        self._show_log_detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "action-log":
            self._show_log_detail()
        elif event.data_table.id == "inspector":
            self._show_inspector_detail()

    def _show_inspector_detail(self) -> None:
        detail = self.query_one(InspectorTable).selected_detail()
        set_text(self.query_one("#inspector-detail", Label), detail)

    def _show_log_detail(self) -> None:
        self.query_one("#log-detail", Label).update(self.query_one(ActionLog).selected_detail())

    def show_header(self, state: HeaderState) -> None:
        """The header once the session is open (before, it says what the opener knew)."""
        self.header_state = state
        self.query_one(HeaderBar).show(state)

    def show_waiting(self, text: str) -> None:
        """Every pane says `text` until the session is open ("connecting to …")."""
        waiting = terminal_line(text, 300)
        for pane in ("#metrics-note", "#inspector-summary", "#log-detail"):
            set_text(self.query_one(pane, Label), waiting)
        self.say(waiting)

    def show_evidence(self, text: str) -> None:
        self.query_one("#evidence-path", Label).update(terminal_line(text, 500))
