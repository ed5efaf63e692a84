"""The last-known-good window: the same quantities evaluated where things were good.

Three ways to say where: an offset back from now (default one day: the same as PromQL's
`offset 1d`, evaluated with the query's `time` parameter so that overriding queries need no
change), an explicit time range, or a file captured earlier with `skewmit baseline capture`.

Coverage: a baseline evaluated over a window the data only partly covers is wrong without
saying so (rate() over ten minutes of which two hold samples reads a fifth of the truth). The
window is cut into `SLICES` slices, each at least four scrape intervals long (rate() needs two
samples; four intervals is the usual floor), and coverage is the share of slices whose rate can
be computed: a hole of a slice or more shows, the scrape jitter of a healthy target does not.
Less than `MIN_COVERAGE` of tokens/sec (or of GPU utilisation, when the window has any) is
refused by `services.baseline_choice`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.errors import ConfigError
from services.metrics.presets import GATE_QUANTITIES, GPU_UTIL, QUANTITIES, TOKENS
from services.metrics.source import MetricsSource
from services.models import MetricPoint

DAY_S = 86400.0
FORMAT = "skewmit-baseline/1"
MAX_POINTS = 240  # baseline series are for charts: a few hundred points are plenty
SLICES = 20  # coverage resolution: a twentieth of the window (5%)
MIN_COVERAGE = 0.9  # a baseline window must be at least this share covered
COVERAGE_QUANTITIES = (TOKENS, GPU_UTIL)


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
    # Share of the window's slices holding data, per quantity (see the module docstring);
    # empty when unknown (a file written before coverage was recorded).
    coverage: Mapping[str, float] = field(default_factory=dict)
    # Which ReplicaSet served the window: replicaset, pod_template_hash, revision, how.
    served_by: Mapping[str, Any] = field(default_factory=dict)
    frozen: str = ""  # where it was frozen: "journal <incident> #<seq>", "" when not

    def value(self, quantity: str, key: str = "") -> float | None:
        return self.values.get(quantity, {}).get(key)

    def keys(self, quantity: str) -> list[str]:
        return sorted(self.values.get(quantity, {}))

    @property
    def judged_coverage(self) -> float | None:
        """The coverage the baseline is judged on: tokens/sec's, and GPU utilisation's when
        the window has any GPU data (the lower one). None when unknown."""
        tokens = self.coverage.get(TOKENS)
        if tokens is None:
            return None
        gpu = self.coverage.get(GPU_UTIL)
        return min(tokens, gpu) if gpu else tokens  # no GPU data at all: the gate says so

    def describe_window(self) -> str:
        covered = self.judged_coverage
        cover = "" if covered is None else f", {covered * 100:.0f}% covered"
        return f"{utc(self.start)} .. {utc(self.end)} ({self.how}{cover})"

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
            "coverage": dict(self.coverage),
            "served_by": dict(self.served_by),
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


def slice_s(window_s: float, scrape_interval_s: float) -> float:
    """The coverage slice for a window: a `SLICES`th of it, at least four scrape intervals,
    whole seconds (Prometheus' range step)."""
    return float(math.ceil(max(window_s / SLICES, 4 * scrape_interval_s, 1.0)))


def slice_presence(
    source: MetricsSource, quantity: str, start: float, end: float, piece_s: float
) -> set[int]:
    """Indexes i of the slices (end - (i+1)*piece_s, end - i*piece_s] that hold enough samples
    for the quantity (two for a rate), counted back from `end`. Raises what the source
    raises."""
    first = end - piece_s * math.floor((end - start) / piece_s + 1e-9)
    points = source.series(quantity, start=first, end=end, step_s=piece_s, window_s=piece_s)
    present: set[int] = set()
    for by_key in points.values():
        for point in by_key:
            present.add(round((end - point.t) / piece_s))
    return present


def coverage(
    source: MetricsSource,
    start: float,
    end: float,
    quantities: Sequence[str] = COVERAGE_QUANTITIES,
) -> dict[str, float]:
    """Share of the window's slices holding data, per quantity the preset has (0.0 for one
    with no data at all). Raises what the source raises."""
    piece = slice_s(end - start, source.scrape_interval_s)
    expected = max(1, math.floor((end - start) / piece + 1e-9))
    out: dict[str, float] = {}
    for quantity in quantities:
        if quantity not in source.preset.queries:
            continue
        present = slice_presence(source, quantity, start, end, piece)
        out[quantity] = min(1.0, len({i for i in present if 0 <= i < expected}) / expected)
    return out


def capture(
    source: MetricsSource,
    spec: BaselineSpec,
    window_s: float,
    quantities: Sequence[str] = QUANTITIES,
    *,
    with_series: bool = True,
    with_coverage: bool = True,
    now: float | None = None,
) -> Baseline:
    """Evaluate the quantities over the baseline window (rates and quantiles over the whole
    window, so one noisy minute does not set the bar), and the window's coverage. A quantity
    the source has no data for is left out. A file spec is loaded instead.

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
    covered = coverage(source, start, end) if with_coverage else {}
    return Baseline(
        values=values,
        start=start,
        end=end,
        how=spec.describe(),
        captured_at=source.now(),  # the session's clock, as the window it describes
        preset=source.preset.name,
        namespace=source.scope.namespace,
        deployment=source.scope.deployment,
        series=series,
        coverage=covered,
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
        covered = {
            str(q): _number(v, f"coverage.{q}") for q, v in dict(data.get("coverage") or {}).items()
        }
        served_by = {str(k): v for k, v in dict(data.get("served_by") or {}).items()}
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
            coverage=covered,
            served_by=served_by,
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
    return replace(baseline, how=f"file {source} ({baseline.how})")


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
    "MIN_COVERAGE",
    "Baseline",
    "BaselineSpec",
    "capture",
    "check_matches",
    "coverage",
    "duration_text",
    "from_json",
    "load",
    "save",
    "slice_presence",
    "slice_s",
    "utc",
]
