"""The validation gate, live: the verdict, each criterion with what was observed against the
baseline, and a countdown for the stability window.

Renders a `Verdict`; fails closed in its wording too: no verdict yet reads "not judged yet",
"insufficient-data" is shown as such, never as a pass, and a verdict whose data can no longer
be read (Prometheus answers 500, a read never comes back) is replaced by "unknown since
HH:MM:SS": a room watching the screen must never see a PASS that is no longer true.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Label, ProgressBar, Static

from services.models import CheckResult, Verdict
from services.sanitize import terminal_line, terminal_text
from widgets.label_text import PULSE_AFTER_S, set_content, set_text, waiting_bar

CHECK_MARKS = {"pass": ("✓", "$success"), "fail": ("✗", "$error")}


@dataclass(frozen=True)
class VerdictLost:
    """Why the last verdict no longer stands: `since` is the wall time (HH:MM:SS UTC) the
    first read failed or went stale; `reason` what failed."""

    since: str
    reason: str


VERDICT_WORDS = {
    "pass": "PASS: the incident can be declared resolved",
    "fail": "FAIL: not resolved",
    "insufficient-data": "NOT YET: insufficient data",
}


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def duration(seconds: float) -> str:
    whole = max(0, round(seconds))
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def check_line(check: CheckResult, *, marks_only: bool = False) -> Content:
    """`✗ p95: above the limit: ...`; `marks_only`: the mark and the name only (the message's
    figures change with every read)."""
    mark, style = CHECK_MARKS.get(check.status, ("…", "$warning"))
    if marks_only:
        return Content.assemble((f"{mark} ", f"{style} bold"), (terminal_line(check.name), "bold"))
    return Content.assemble(
        (f"{mark} ", f"{style} bold"),
        (terminal_line(check.name), "bold"),
        ": ",
        (terminal_text(check.message, 500), "$text-muted"),
    )


def check_tooltip(check: CheckResult) -> str:
    return terminal_text(
        f"{check.name}: {check.status}; observed {_number(check.observed)}, baseline "
        f"{_number(check.baseline)} ({check.threshold})",
        500,
    )


class ValidationPanel(Vertical):
    """`show(verdict, remaining_s, lost)`; classes `-pass`, `-fail`, `-waiting`, `-empty`,
    `-unknown`."""

    DEFAULT_CSS = """
    ValidationPanel { height: auto; }
    ValidationPanel > .vp-verdict { text-style: bold; width: 1fr; }
    ValidationPanel.-pass > .vp-verdict { color: $success; }
    ValidationPanel.-fail > .vp-verdict { color: $error; }
    ValidationPanel.-waiting > .vp-verdict { color: $warning; }
    ValidationPanel.-unknown > .vp-verdict { color: $warning; text-style: bold reverse; }
    ValidationPanel > ProgressBar { width: 1fr; }
    ValidationPanel > ProgressBar > Bar { width: 1fr; }
    ValidationPanel > .vp-countdown { color: $text-muted; width: 1fr; }
    ValidationPanel > .vp-checks { width: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="-empty")  # not on mount: a restyle (issue 12)
        self.verdict: Verdict | None = None
        self.lost: VerdictLost | None = None
        self._shown: tuple[object, ...] | None = None
        # Low-bandwidth, so that a read repaints a line or two: each check as its mark and name
        # (the figures are in the tooltip and the validation view, which keeps them) ...
        self.marks_only = False
        # ... and the stability countdown by the minute (both views).
        self.countdown_by_minute = False
        self._pulse = False  # a wait shown as a pulse: only PULSE_AFTER_S after the mount

    def compose(self) -> ComposeResult:
        yield Label("validation: not judged yet", classes="vp-verdict", markup=False)
        yield ProgressBar(total=1, show_eta=False, show_percentage=False)
        yield Label("", classes="vp-countdown", markup=False)
        yield Static("", classes="vp-checks")

    def on_mount(self) -> None:
        # The bar starts still (composed so); it pulses if the wait outlasts PULSE_AFTER_S.
        self.set_timer(PULSE_AFTER_S, self._pulse_if_waiting)

    def _pulse_if_waiting(self) -> None:
        self._pulse = True
        if self.verdict is None and self.lost is None:
            waiting_bar(self.query_one(ProgressBar))

    def show(
        self,
        verdict: Verdict | None,
        remaining_s: float | None = None,
        lost: VerdictLost | None = None,
    ) -> None:
        """`remaining_s`: how long the metrics must stay in band before a pass (None: not
        counting, e.g. a criterion already fails). `lost`: the verdict's data can no longer
        be read; the verdict and its checks are replaced by "unknown since"."""
        step = 60.0 if self.countdown_by_minute else 1.0
        left = None if remaining_s is None else math.ceil(remaining_s / step)
        shown_key = (verdict, left, lost, self.marks_only, self.countdown_by_minute)
        if shown_key == self._shown:
            return  # a poll that changed nothing repaints nothing
        self._shown = shown_key
        self.verdict = verdict
        self.lost = lost
        shown = None if lost is not None else verdict
        named = shown.verdict if shown is not None else None
        # One restyle of the panel for all its classes, not one per class (issue 12).
        self.update_classes(
            {
                "-empty": verdict is None and lost is None,
                "-unknown": lost is not None,
                "-pass": named == "pass",
                "-fail": named == "fail",
                "-waiting": named == "insufficient-data",
            }
        )
        verdict_label = self.query_one(".vp-verdict", Label)
        bar = self.query_one(ProgressBar)
        countdown = self.query_one(".vp-countdown", Label)
        checks = self.query_one(".vp-checks", Static)
        if lost is not None:
            set_text(verdict_label, f"unknown since {lost.since} UTC")
            bar.update(total=1, progress=0)
            was = VERDICT_WORDS.get(verdict.verdict, verdict.verdict) if verdict else "none"
            set_text(countdown, terminal_line(f"not current; the last verdict was {was}"))
            countdown.tooltip = None
            set_content(checks, Content(terminal_text(lost.reason, 500)))
            checks.tooltip = None
            return
        if verdict is None:
            set_text(verdict_label, "validation: not judged yet")
            waiting_bar(bar, pulse=self._pulse)
            set_text(countdown, "")
            set_content(checks, Content(""))
            return
        set_text(verdict_label, VERDICT_WORDS.get(verdict.verdict, verdict.verdict))
        window = max(verdict.window_s, 1.0)
        if verdict.verdict == "pass":
            bar.update(total=window, progress=window)
            set_text(countdown, f"stable for the whole {duration(window)} window")
        elif remaining_s is not None:
            if self.countdown_by_minute:
                remaining_s = 60.0 * math.ceil(remaining_s / 60.0)  # moves once a minute
            bar.update(total=window, progress=max(0.0, window - remaining_s))
            set_text(
                countdown, f"stability window {duration(window)}: {duration(remaining_s)} to go"
            )
            countdown.tooltip = "until the window holds only samples from after the last change"
        else:
            bar.update(total=window, progress=0)
            set_text(countdown, f"stability window {duration(window)}: waiting for every criterion")
        lines: list[Content | str] = []
        for i, check in enumerate(verdict.checks):
            lines.append(("\n" if i else "") + check_line(check, marks_only=self.marks_only))
        set_content(checks, Content.assemble(*lines))
        checks.tooltip = "\n".join(check_tooltip(c) for c in verdict.checks)
