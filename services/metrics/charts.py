"""Metric series rendered to plain text with plotext, for the evidence bundle.

plotext keeps one global figure, so rendering is serialised by a lock; colours are stripped
so the text reads the same in a terminal, an editor and a postmortem document.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

from services.metrics import presets
from services.models import MetricPoint

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_LOCK = threading.Lock()
WIDTH, HEIGHT = 100, 22


def render_chart(
    quantity: str,
    lines: Sequence[tuple[str, Sequence[MetricPoint]]],
    *,
    now: float,
    references: Sequence[tuple[str, float]] = (),
) -> str:
    """A chart of one quantity: each (label, points) as a line, time in minutes before
    `now`, each reference (label, value: the baseline, a limit) as a horizontal line named in
    the title. Raises nothing: a quantity without points renders as a one-line note."""
    title = f"{presets.TITLES.get(quantity, quantity)} ({presets.UNITS.get(quantity, '')})"
    drawn = [(label, pts) for label, pts in lines if pts]
    if not drawn:
        return f"{title}: no data\n"
    # Here, not at the top: opening an incident imports the evidence modules (its "before"
    # snapshot) on the way to step 1's first findings, and plotext takes 40 ms to import.
    import plotext

    with _LOCK:
        plotext.clear_figure()
        plotext.plotsize(WIDTH, HEIGHT)
        plotext.theme("clear")
        for label, points in drawn:
            plotext.plot([(p.t - now) / 60.0 for p in points], [p.v for p in points], label=label)
        notes = []
        for label, value in references:
            plotext.hline(value)
            notes.append(f"{label} {value:.4g}")
        plotext.title(title + (f"; {', '.join(notes)}" if notes else ""))
        plotext.xlabel("minutes before capture")
        text = str(plotext.build())
        plotext.clear_figure()
    return _ANSI.sub("", text).rstrip() + "\n"
