"""The last-known-good window: the same quantities evaluated where things were good.

Three ways to say where: an offset back from now (default one day: the same as PromQL's
`offset 1d`, evaluated with the query's `time` parameter so that overriding queries need no
change), an explicit time range, or a file captured earlier with `skewmit baseline capture`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.errors import ConfigError
from services.metrics.presets import GATE_QUANTITIES, QUANTITIES
from services.metrics.source import MetricsSource
from services.models import MetricPoint

DAY_S = 86400.0
FORMAT = "skewmit-baseline/1"
MAX_POINTS = 240  # baseline series are for charts: a few hundred points are plenty


@dataclass(frozen=True)
class BaselineSpec:
    mode: str = "offset"  # offset | range | file
    offset_s: float = DAY_S
    start: float | None = None  # range mode: unix seconds
    end: float | None = None
    path: str = ""  # file mode

    def describe(self) -> str:
        if self.mode == "range" and self.start is not None and self.end is not None:
            return f"range {utc(self.start)} .. {utc(self.end)}"
        if self.mode == "file":
            return f"file {self.path}"
        return f"offset {duration_text(self.offset_s)}"

    def window(self, now: float, window_s: float) -> tuple[float, float]:
        """(start, end) of the baseline window. Raises ConfigError for a bad range."""
        if self.mode == "range":
            if self.start is None or self.end is None or self.end <= self.start:
                raise ConfigError(
                    "baseline range needs a start before its end (--baseline-start and "
                    "--baseline-end, RFC 3339 or unix seconds)"
                )
            return self.start, self.end
        end = now - self.offset_s
        return end - window_s, end


@dataclass(frozen=True)
class Baseline:
    """Values per quantity and series key ("" or GPU model) over the window start..end."""

    values: Mapping[str, Mapping[str, float]]
    start: float
    end: float
    how: str  # "offset 1d", "range ...", "file ..."
    captured_at: float
    preset: str
    namespace: str
    deployment: str
    series: Mapping[str, Mapping[str, tuple[MetricPoint, ...]]] = field(default_factory=dict)

    def value(self, quantity: str, key: str = "") -> float | None:
        return self.values.get(quantity, {}).get(key)

    def keys(self, quantity: str) -> list[str]:
        return sorted(self.values.get(quantity, {}))

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "preset": self.preset,
            "namespace": self.namespace,
            "deployment": self.deployment,
            "how": self.how,
            "start": self.start,
            "end": self.end,
            "start_utc": utc(self.start),
            "end_utc": utc(self.end),
            "captured_at": self.captured_at,
            "values": {q: dict(v) for q, v in self.values.items()},
            "series": {
                q: {k: [[p.t, p.v] for p in pts] for k, pts in by_key.items()}
                for q, by_key in self.series.items()
            },
        }


def utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration_text(seconds: float) -> str:
    for unit, size in (("d", DAY_S), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def capture(
    source: MetricsSource,
    spec: BaselineSpec,
    window_s: float,
    quantities: Sequence[str] = QUANTITIES,
    *,
    with_series: bool = True,
    now: float | None = None,
) -> Baseline:
    """Evaluate the quantities over the baseline window (rates and quantiles over the whole
    window, so one noisy minute does not set the bar). A quantity the source has no data for
    is left out. A file spec is loaded instead.

    Raises ConfigError for a bad spec or file, and what the source raises.
    """
    if spec.mode == "file":
        return load(spec.path)
    now = source.now() if now is None else now
    start, end = spec.window(now, window_s)
    values: dict[str, dict[str, float]] = {}
    series: dict[str, dict[str, tuple[MetricPoint, ...]]] = {}
    step = max(source.scrape_interval_s, (end - start) / MAX_POINTS)
    for quantity in quantities:
        if quantity not in source.preset.queries:
            continue
        found = source.instant(quantity, window_s=end - start, at=end)
        if found:
            values[quantity] = dict(found)
        if with_series:
            points = source.series(quantity, start=start, end=end, step_s=step)
            if points:
                series[quantity] = {k: tuple(v) for k, v in points.items()}
    return Baseline(
        values=values,
        start=start,
        end=end,
        how=spec.describe(),
        captured_at=time.time(),
        preset=source.preset.name,
        namespace=source.scope.namespace,
        deployment=source.scope.deployment,
        series=series,
    )


def save(baseline: Baseline, path: Path | str) -> Path:
    """Write a baseline file. Raises ConfigError when it cannot be written."""
    target = Path(path).expanduser()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(baseline.as_json(), indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write the baseline file {target}: {exc}") from exc
    return target


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{where} is not a number")
    return float(value)


def from_json(data: Mapping[str, Any], origin: str = "baseline") -> Baseline:
    """A Baseline from its JSON form. Raises ConfigError saying what is wrong."""
    try:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a skewmit baseline (format {data.get('format')!r})")
        values = {
            str(q): {str(k): _number(v, f"values.{q}.{k}") for k, v in by_key.items()}
            for q, by_key in dict(data["values"]).items()
        }
        series = {
            str(q): {
                str(k): tuple(MetricPoint(_number(t, "t"), _number(v, "v")) for t, v in pts)
                for k, pts in by_key.items()
            }
            for q, by_key in dict(data.get("series") or {}).items()
        }
        return Baseline(
            values=values,
            start=_number(data["start"], "start"),
            end=_number(data["end"], "end"),
            how=str(data.get("how", "")),
            captured_at=_number(data.get("captured_at", 0.0), "captured_at"),
            preset=str(data.get("preset", "")),
            namespace=str(data.get("namespace", "")),
            deployment=str(data.get("deployment", "")),
            series=series,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(
            f"{origin} is not a usable baseline file ({exc}); capture one with "
            "`skewmit baseline capture`"
        ) from None


def load(path: Path | str) -> Baseline:
    """Read a baseline file written by `save`. Raises ConfigError for a missing or bad file."""
    source = Path(path).expanduser()
    try:
        data = json.loads(source.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the baseline file {source}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"baseline file {source} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"baseline file {source} does not hold a baseline object")
    baseline = from_json(data, f"baseline file {source}")
    return Baseline(
        values=baseline.values,
        start=baseline.start,
        end=baseline.end,
        how=f"file {source} ({baseline.how})",
        captured_at=baseline.captured_at,
        preset=baseline.preset,
        namespace=baseline.namespace,
        deployment=baseline.deployment,
        series=baseline.series,
    )


def check_matches(baseline: Baseline, source: MetricsSource) -> list[str]:
    """Warnings when a baseline was captured for another deployment or engine."""
    warnings = []
    scope = source.scope
    if (baseline.namespace, baseline.deployment) != (scope.namespace, scope.deployment):
        warnings.append(
            f"the baseline is of {baseline.namespace}/{baseline.deployment}, not "
            f"{scope.namespace}/{scope.deployment}"
        )
    if baseline.preset and baseline.preset != source.preset.name:
        warnings.append(f"the baseline used preset {baseline.preset}, not {source.preset.name}")
    missing = [
        q for q in GATE_QUANTITIES if q in source.preset.queries and not baseline.values.get(q)
    ]
    if missing:
        warnings.append(f"the baseline has no data for {', '.join(missing)}")
    return warnings


__all__ = [
    "DAY_S",
    "Baseline",
    "BaselineSpec",
    "capture",
    "check_matches",
    "duration_text",
    "from_json",
    "load",
    "save",
    "utc",
]
