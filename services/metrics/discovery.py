"""What Prometheus says about how a Deployment is scraped, learnt before the figures are
trusted: the scrape interval of the pods' job (from the targets API) and the rate window it
implies, the labels DCGM's series name the serving pod by (`exported_pod`/`exported_namespace`
behind a ServiceMonitor with honorLabels: false), and which metric names the pods expose
(cached for a while: names change with the release a rollout or a rollback brings).

Nothing here sends a request: `PrometheusSource` runs the queries and hands the answers in,
so this module holds the rules and the words, and raises nothing of its own.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from services.config import RATE_WINDOW_SCRAPES
from services.metrics.source import Scope

PRESENT_TTL_S = 300.0  # how long the metric names found for the pods are trusted
GPU_LABELS_RETRY_S = 60.0  # how often to look again for DCGM series that were not found
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}

__all__ = [
    "GPU_LABELS_RETRY_S",
    "PRESENT_TTL_S",
    "RATE_WINDOW_SCRAPES",
    "GpuLabels",
    "PresentNames",
    "duration",
    "job_intervals",
    "jobs_of",
    "no_interval_note",
    "prom_seconds",
    "scrape_jobs_query",
    "unreadable_targets_note",
    "widened_rate_window",
]


def duration(seconds: float) -> str:
    """A PromQL duration: whole seconds, else milliseconds (no fractions in 2.x)."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def prom_seconds(text: Any) -> float | None:
    """A Prometheus duration ("1m30s", "500ms") in seconds; None when it is not one."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|[smhdwy])", str(text or ""))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        return None
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


# -- the scrape interval and the rate window -----------------------------------


def widened_rate_window(
    configured_s: float, interval_s: float, interval_from: str
) -> tuple[float, str]:
    """(the rate window to use, why it differs from the configured one or ""). With two
    scrapes in the window one missed scrape empties rate(); four is the floor."""
    floor = RATE_WINDOW_SCRAPES * interval_s
    if configured_s >= floor - 1e-9:
        return configured_s, ""
    note = (
        f"the rate window {duration(configured_s)} cannot hold "
        f"{RATE_WINDOW_SCRAPES} scrapes at {interval_from}: rates and quantiles use "
        f"{duration(floor)} instead (set prometheus.rate_window to at least that)"
    )
    return floor, note


def scrape_jobs_query(freshness: Iterable[str], selector: str) -> str:
    """The PromQL naming the job(s) that scrape the pods' engine metrics."""
    return " or ".join(f"count by (job) ({name}{{{selector}}})" for name in freshness)


def jobs_of(rows: Iterable[Mapping[str, Any]]) -> set[str]:
    """The job names in the answer to `scrape_jobs_query`."""
    return {str(row.get("metric", {}).get("job", "")) for row in rows} - {""}


def job_intervals(targets: Mapping[str, Any] | None, jobs: set[str]) -> dict[str, float]:
    """Each job's scrape interval in seconds, from /api/v1/targets' answer; jobs without a
    readable interval are left out."""
    intervals = {
        str(target.get("labels", {}).get("job")): prom_seconds(target.get("scrapeInterval"))
        for target in (targets or {}).get("activeTargets", [])
        if target.get("labels", {}).get("job") in jobs
    }
    return {job: s for job, s in intervals.items() if s}


def no_interval_note(jobs: Iterable[str], declared_s: float) -> str:
    return (
        f"Prometheus' targets API lists no scrape interval for job(s) "
        f"{', '.join(sorted(jobs))}: rates assume the declared "
        f"{duration(declared_s)} (prometheus.scrape_interval)"
    )


def unreadable_targets_note(error: BaseException, declared_s: float) -> str:
    return (
        f"the scrape interval could not be read from Prometheus' targets API ({error}): "
        f"rates assume the declared {duration(declared_s)} (prometheus.scrape_interval)"
    )


# -- DCGM's pod labels ---------------------------------------------------------


class GpuLabels:
    """Which labels DCGM's series name the serving pod by, settled once series are found.

    Behind a ServiceMonitor with honorLabels: false the exporter's `pod`/`namespace` (the
    serving pod) collide with the target's own (the exporter pod) and are renamed
    `exported_pod`/`exported_namespace`: when only those match the Deployment, the GPU
    matchers switch to them (`exported` then says so, for the hint)."""

    def __init__(self, scope: Scope, clock: Callable[[], float] = time.monotonic) -> None:
        self.settled = scope.gpu_pod_label.startswith("exported_")
        self.exported = False
        self._tried = -math.inf
        self._clock = clock

    def settle(self, scope: Scope, has_series: Callable[[str], bool]) -> Scope:
        """The scope to query DCGM with. `has_series(selector)` answers whether any DCGM
        series matches a GPU selector; the exceptions it raises pass through (the query that
        needs the GPU series reports the failure itself)."""
        if self.settled or self._clock() - self._tried < GPU_LABELS_RETRY_S:
            return scope
        self._tried = self._clock()
        exported = replace(
            scope,
            gpu_pod_label=f"exported_{scope.gpu_pod_label}",
            gpu_namespace_label=f"exported_{scope.gpu_namespace_label}",
        )
        if has_series(scope.selector(gpu=True)):
            self.settled = True
        elif has_series(exported.selector(gpu=True)):
            self.settled = self.exported = True
            return exported
        return scope

    @staticmethod
    def probe(gpu_selector: str) -> str:
        """The PromQL counting DCGM series under a GPU selector."""
        return f'count({{__name__=~"DCGM_FI_DEV_.+",{gpu_selector}}})'


# -- the metric names the pods expose -------------------------------------------


class PresentNames:
    """The names last found for the pods, trusted for `ttl_s`."""

    def __init__(
        self, ttl_s: float = PRESENT_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self._names: frozenset[str] | None = None
        self._at = -math.inf
        self._clock = clock

    @property
    def fresh(self) -> frozenset[str] | None:
        """The cached names, or None when none are known or they are older than the TTL."""
        if self._names is None or self._clock() - self._at > self.ttl_s:
            return None
        return self._names

    def store(self, names: Iterable[str]) -> frozenset[str]:
        self._names, self._at = frozenset(n for n in names if n), self._clock()
        return self._names
