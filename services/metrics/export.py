"""Metric series of the baseline and post-fix windows as evidence files: CSV, JSON, the queries
evaluated, and plotext charts of post-fix against baseline."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from services.metrics import presets
from services.metrics.baseline import Baseline, utc
from services.metrics.charts import render_chart
from services.metrics.source import MetricsSource, RangeValues
from services.models import MetricPoint

CHARTED = (presets.P95, presets.P99, presets.TOKENS, presets.GPU_UTIL, presets.GPU_MEM)
MAX_POINTS = 240


class _Limits(Protocol):
    @property
    def stable_window_s(self) -> float: ...
    @property
    def latency_max_ratio(self) -> float: ...
    @property
    def tokens_min_ratio(self) -> float: ...


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _csv(series: Mapping[str, RangeValues]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["quantity", "series", "unit", "t_unix", "t_utc", "value"])
    for quantity, by_key in series.items():
        for key, points in sorted(by_key.items()):
            for p in points:
                writer.writerow(
                    [
                        quantity,
                        key,
                        presets.UNITS.get(quantity, ""),
                        f"{p.t:.3f}",
                        _iso(p.t),
                        repr(p.v),
                    ]
                )
    return out.getvalue()


def _json(
    series: Mapping[str, RangeValues], window: tuple[float, float], extra: Mapping[str, Any]
) -> str:
    doc = {
        "window": {
            "start": window[0],
            "end": window[1],
            "start_utc": utc(window[0]),
            "end_utc": utc(window[1]),
        },
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


def _fetch(source: MetricsSource, start: float, end: float) -> dict[str, RangeValues]:
    step = max(source.scrape_interval_s, (end - start) / MAX_POINTS)
    out: dict[str, RangeValues] = {}
    for quantity in presets.QUANTITIES:
        if quantity in source.preset.queries:
            found = source.series(quantity, start=start, end=end, step_s=step)
            if found:
                out[quantity] = found
    return out


def metric_files(
    source: MetricsSource, baseline: Baseline | None, limits: _Limits, now: float
) -> dict[str, str]:
    """Evidence files (relative path -> text) for the post-fix window (the stable window, at
    least 15 minutes) and the baseline window. Raises what the source raises."""
    post_start = now - max(limits.stable_window_s, 900.0)
    post = _fetch(source, post_start, now)
    files = {
        "metrics/postfix.csv": _csv(post),
        "metrics/postfix.json": _json(post, (post_start, now), {"source": source.describe()}),
    }
    base_series: dict[str, RangeValues] = {}
    if baseline is not None:
        base_series = {q: {k: list(v) for k, v in s.items()} for q, s in baseline.series.items()}
        if (
            not base_series
            and baseline.end > baseline.start
            and not baseline.how.startswith("file")
        ):
            base_series = _fetch(source, baseline.start, baseline.end)
        extra = {"how": baseline.how, "values": {q: dict(v) for q, v in baseline.values.items()}}
        files["metrics/baseline.csv"] = _csv(base_series)
        files["metrics/baseline.json"] = _json(base_series, (baseline.start, baseline.end), extra)
    queries = [f"# {source.describe()}"]
    for quantity in presets.QUANTITIES:
        if quantity in source.preset.queries:
            queries.append(f"{quantity}: {source.query_text(quantity, source.rate_window_s)}")
    files["metrics/queries.txt"] = "\n".join(queries) + "\n"
    for quantity in CHARTED:
        files[f"charts/{quantity}.txt"] = _chart(quantity, post, base_series, baseline, limits, now)
    return files


def _chart(
    quantity: str,
    post: Mapping[str, RangeValues],
    base_series: Mapping[str, RangeValues],
    baseline: Baseline | None,
    limits: _Limits,
    now: float,
) -> str:
    lines: list[tuple[str, Sequence[MetricPoint]]] = []
    for key, points in sorted(post.get(quantity, {}).items()):
        lines.append((f"post-fix {key}".strip(), points))
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
        mine = [(label, pts) for label, pts in lines if not key or label.endswith(key)]
        parts.append(render_chart(quantity, mine, now=now, references=references))
    # The baseline window itself, shifted onto the same clock, for the shape of a good day.
    for key, points in sorted(base_series.get(quantity, {}).items()):
        if points and baseline is not None:
            shift = now - baseline.end
            moved = [MetricPoint(p.t + shift, p.v) for p in points]
            parts.append(
                render_chart(quantity, [(f"baseline window {key}".strip(), moved)], now=now)
            )
    return "\n".join(parts)
