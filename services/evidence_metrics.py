"""The bundle's metric files: series for the incident window, for the window after the last
change and for the baseline window (CSV and JSON, UTC wall time), queries.txt with every query
the gate and the bundle ran, and plotext charts.

A query that fails (Prometheus rejecting one query, say) is recorded as a failure and the rest
of the bundle is still written: the postmortem needs what could be read, and what could not.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from services.errors import SkewmitError
from services.evidence_clock import Clocks, utc
from services.metrics import presets
from services.metrics.baseline import Baseline
from services.metrics.charts import render_chart
from services.metrics.source import MetricsSource, QueryRecord, RangeValues
from services.models import MetricPoint

CHARTED = (presets.P95, presets.P99, presets.TOKENS, presets.GPU_UTIL, presets.GPU_MEM)
MAX_POINTS = 240
MAX_LISTED = 2000  # queries per section of queries.txt (a TUI session runs thousands)
INCIDENT_POINTS = 600  # hours of incident at a resolution that still shows minutes
MAX_INCIDENT_S = 6 * 3600.0  # a longer incident window is cut to its last six hours
LEAD_S = 300.0  # the incident window starts this long before the triggering change

Failures = list[tuple[str, str]]  # (what, error)
TITLES = {
    "incident": "the incident window",
    "postfix": "the window after the last change",
    "baseline": "the baseline window",
}


class Limits(Protocol):
    @property
    def stable_window_s(self) -> float: ...
    @property
    def latency_max_ratio(self) -> float: ...
    @property
    def tokens_min_ratio(self) -> float: ...


@dataclass(frozen=True)
class Window:
    name: str  # file stem: incident | postfix | baseline
    start: float  # the session's clock
    end: float
    why: str

    @property
    def title(self) -> str:
        return TITLES.get(self.name, f"the {self.name} window")


def windows(
    clocks: Clocks,
    *,
    trigger_at: float | None,
    opened_at: float | None,
    changes_at: Sequence[float],
    stable_window_s: float,
) -> tuple[Window, Window]:
    """The incident window (from just before the triggering change, or the incident's
    opening, to the last change) and the window after the last change (to now), all on the
    session's clock, as the journal and the cluster stamped them."""
    now = clocks.now
    last = max(changes_at, default=None)
    if last is not None and last > now:
        last = now
    starts = [t for t in (trigger_at, opened_at) if t]
    start = min(starts) - LEAD_S if starts else now - max(stable_window_s, 900.0) * 2
    end = last if last is not None else now
    start = max(min(start, end - 60.0), end - MAX_INCIDENT_S)
    incident = Window(
        "incident",
        start,
        end,
        "from before the triggering change to the last change"
        if last is not None
        else "from before the triggering change to now (no change recorded)",
    )
    if last is not None and last < now - 1.0:
        post = Window("postfix", last, now, f"after the last change ({clocks.stamp(last)})")
    else:
        length = max(stable_window_s, 900.0)
        post = Window("postfix", now - length, now, "the last stable window (no change before)")
    return incident, post


def fetch(
    source: MetricsSource, window: Window, failures: Failures, points: int = MAX_POINTS
) -> dict[str, RangeValues]:
    """Each quantity's series over the window; a failing query is recorded and skipped."""
    step = max(source.scrape_interval_s, (window.end - window.start) / points)
    out: dict[str, RangeValues] = {}
    for quantity in presets.QUANTITIES:
        if quantity not in source.preset.queries:
            continue
        try:
            # Each point covers its step (as Grafana's $__rate_interval does), so a long
            # window sampled coarsely still sees every request.
            window_s = max(source.rate_window_s, step)
            found = source.series(
                quantity, start=window.start, end=window.end, step_s=step, window_s=window_s
            )
        except SkewmitError as exc:
            failures.append((f"{quantity} over {window.title}", str(exc)))
            continue
        if found:
            out[quantity] = found
    return out


def coverage(series: Mapping[str, RangeValues], window: Window, step_s: float) -> dict[str, float]:
    """Share of the window's evaluation steps with a value, per gate quantity."""
    expected = max(1, int((window.end - window.start) // step_s) + 1)
    out = {}
    for quantity in presets.GATE_QUANTITIES:
        points = max((len(p) for p in series.get(quantity, {}).values()), default=0)
        out[quantity] = round(min(1.0, points / expected), 3)
    return out


def _csv(series: Mapping[str, RangeValues], clocks: Clocks) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    # The column says which clock, so a spreadsheet read alone cannot mistake simulated time.
    when = "t_simulated_utc" if clocks.simulated else "t_utc"
    writer.writerow(["quantity", "series", "unit", "t_unix", when, "value"])
    for quantity, by_key in series.items():
        for key, points in sorted(by_key.items()):
            for p in points:
                unit = presets.UNITS.get(quantity, "")
                writer.writerow([quantity, key, unit, f"{p.t:.3f}", clocks.stamp(p.t), repr(p.v)])
    return out.getvalue()


def _window_json(window: Window, clocks: Clocks) -> dict[str, Any]:
    return {
        "start": window.start,
        "end": window.end,
        "start_utc": clocks.stamp(window.start),
        "end_utc": clocks.stamp(window.end),
        "why": window.why,
    }


def _json(
    series: Mapping[str, RangeValues], window: Window, clocks: Clocks, extra: Mapping[str, Any]
) -> str:
    doc = {
        "window": _window_json(window, clocks),
        "clock": clocks.as_json()["clock"],
        **extra,
        "series": [
            {
                "name": quantity,
                "series": key,
                "unit": presets.UNITS.get(quantity, ""),
                "points": [[p.t, p.v] for p in points],
            }
            for quantity, by_key in series.items()
            for key, points in sorted(by_key.items())
        ],
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def series_files(
    series: Mapping[str, RangeValues], window: Window, clocks: Clocks, extra: Mapping[str, Any]
) -> dict[str, str]:
    return {
        f"metrics/{window.name}.csv": _csv(series, clocks),
        f"metrics/{window.name}.json": _json(series, window, clocks, extra),
    }


def baseline_series(
    source: MetricsSource, baseline: Baseline, failures: Failures
) -> tuple[Window, dict[str, RangeValues]]:
    window = Window("baseline", baseline.start, baseline.end, f"baseline: {baseline.how}")
    stored = {q: {k: list(v) for k, v in s.items()} for q, s in baseline.series.items()}
    if stored or baseline.end <= baseline.start or baseline.how.startswith("file"):
        return window, stored
    return window, fetch(source, window, failures)


def _record_line(record: QueryRecord, clocks: Clocks) -> str:
    if record.start is not None and record.end is not None:
        when = f"range {clocks.stamp(record.start)} .. {clocks.stamp(record.end)}"
        when += f" step {record.step_s:g}s" if record.step_s else ""
    elif record.at is not None:
        when = f"instant at {clocks.stamp(record.at)}"
    else:
        when = "instant at the time it ran"
    outcome = f"ERROR: {record.error}" if record.error else f"{record.results} series"
    return f"- ran {utc(record.ran_at)} | {record.what} | {when} | {outcome}\n  {record.query}"


def queries_file(
    source: MetricsSource,
    clocks: Clocks,
    sections: Sequence[tuple[str, Sequence[QueryRecord]]],
) -> str:
    """Every query run, grouped (the gate's for this verdict, the bundle's own, earlier
    ones this session), then one query per quantity to rerun by hand."""
    lines = [f"# Queries: {source.describe()}", f"# {clocks.describe()}", ""]
    if getattr(source, "query_log", None) is None:
        lines += ["(this metrics source keeps no query log)", ""]
    for title, records in sections:
        lines += [f"## {title} ({len(records)})", ""]
        if len(records) > MAX_LISTED:
            lines.append(f"(the {len(records) - MAX_LISTED} oldest are not listed)")
        lines += [_record_line(r, clocks) for r in records[-MAX_LISTED:]] or ["(none)"]
        lines.append("")
    lines += [f"## Per quantity, over the rate window ({source.rate_window_s:g}s)", ""]
    for quantity in presets.QUANTITIES:
        if quantity in source.preset.queries:
            try:
                text = source.query_text(quantity, source.rate_window_s)
            except SkewmitError as exc:
                text = f"(cannot render: {exc})"
            lines.append(f"{quantity}: {text}")
    return "\n".join(lines) + "\n"


def charts(
    post: Mapping[str, RangeValues],
    base_series: Mapping[str, RangeValues],
    baseline: Baseline | None,
    limits: Limits,
    clocks: Clocks,
) -> dict[str, str]:
    """charts/<quantity>.txt: the window after the last change against the baseline."""
    now = clocks.now
    note = "(x axis: minutes on the simulated clock)\n" if clocks.simulated else ""
    files = {}
    for quantity in CHARTED:
        parts = []
        for key in sorted(post.get(quantity, {})) or [""]:
            references: list[tuple[str, float]] = []
            base = baseline.value(quantity, key) if baseline else None
            if base is not None:
                references.append(("baseline", base))
                if quantity in (presets.P95, presets.P99):
                    references.append(("limit", base * limits.latency_max_ratio))
                elif quantity == presets.TOKENS:
                    references.append(("floor", base * limits.tokens_min_ratio))
            points: Sequence[MetricPoint] = post.get(quantity, {}).get(key, [])
            label = f"after the last change {key}".strip()
            parts.append(render_chart(quantity, [(label, points)], now=now, references=references))
        for key, points in sorted(base_series.get(quantity, {}).items()):
            if points and baseline is not None:
                shift = now - baseline.end  # the good day's shape, on the same axis
                moved = [MetricPoint(p.t + shift, p.v) for p in points]
                label = f"baseline window {key}".strip()
                parts.append(render_chart(quantity, [(label, moved)], now=now))
        files[f"charts/{quantity}.txt"] = note + "\n".join(parts)
    return files
