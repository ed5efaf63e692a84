"""The metrics source every consumer talks to (validation, live series, evidence, the TUI), and
the scope that ties a source to one Deployment's pods.

Two implementations: `PrometheusSource` (PromQL over prometheus-api-client) and
`SimMetricsSource` (scrapes an exposition endpoint itself and evaluates the same quantities
with Prometheus' arithmetic), so the demo shows the figures the real queries would.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from services.errors import ConfigError
from services.models import MetricPoint

if TYPE_CHECKING:
    from services.metrics.baseline import Baseline
    from services.metrics.presets import Detection, Preset

# Series keys: "" for a deployment-wide quantity, the GPU model name for GPU quantities.
Values = dict[str, float]
RangeValues = dict[str, list[MetricPoint]]

_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_SEGMENT = "[a-z0-9]+"


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str  # = != =~ !~
    value: str

    def promql(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.label}{self.op}"{escaped}"'

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        # PromQL regexes are fully anchored.
        hit = re.fullmatch(self.value, actual) is not None
        return hit if self.op == "=~" else not hit


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """`cluster="prod",job=~"vllm.*"` as matchers. Raises ConfigError for anything else."""
    out: list[Matcher] = []
    rest = text.strip().strip("{}").strip()
    while rest:
        match = _MATCHER.match(rest)
        if match is None:
            raise ConfigError(
                f"cannot read label matchers {text!r}: write them as PromQL matchers, "
                'e.g. cluster="prod",job=~"vllm.*"'
            )
        label, op, raw = match.groups()
        value = re.sub(r"\\(.)", r"\1", raw)
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ConfigError(f"label matcher {label}{op}{raw!r}: bad regex: {exc}") from None
        out.append(Matcher(label, op, value))
        rest = rest[match.end() :].strip()
    return tuple(out)


@dataclass(frozen=True)
class Scope:
    """One Deployment's pods, as label matchers on engine and DCGM series."""

    namespace: str
    deployment: str
    extra: tuple[Matcher, ...] = ()  # e.g. cluster="prod" on a multi-cluster Prometheus
    namespace_label: str = "namespace"
    pod_label: str = "pod"  # DCGM without honorLabels renames it: exported_pod
    gpu_pod_label: str = "pod"
    gpu_namespace_label: str = "namespace"
    gpu_model_label: str = "modelName"

    @property
    def pod_regex(self) -> str:
        """Pods of the Deployment, whatever their ReplicaSet: <name>-<hash>-<suffix>. A
        baseline from yesterday had other pod names, so current names cannot be used."""
        return re.sub(r"([.+*?()\[\]{}|^$\\])", r"\\\1", self.deployment) + (
            f"-{_SEGMENT}-{_SEGMENT}"
        )

    def matchers(self, gpu: bool = False) -> tuple[Matcher, ...]:
        ns_label = self.gpu_namespace_label if gpu else self.namespace_label
        pod_label = self.gpu_pod_label if gpu else self.pod_label
        return (
            Matcher(ns_label, "=", self.namespace),
            Matcher(pod_label, "=~", self.pod_regex),
            *self.extra,
        )

    def retarget(self, namespace: str | None = None, deployment: str | None = None) -> Scope:
        """The same label layout for another namespace and/or Deployment."""
        return replace(
            self, namespace=namespace or self.namespace, deployment=deployment or self.deployment
        )

    def selector(self, gpu: bool = False) -> str:
        return ",".join(m.promql() for m in self.matchers(gpu))

    def contains(self, labels: Mapping[str, str], gpu: bool = False) -> bool:
        return all(m.matches(labels) for m in self.matchers(gpu))

    def pod_of(self, labels: Mapping[str, str], gpu: bool = False) -> str:
        return labels.get(self.gpu_pod_label if gpu else self.pod_label, "")


@dataclass(frozen=True, slots=True)  # thousands are kept (QueryLog): no __dict__ each
class QueryRecord:
    """One query a source ran: what for, the PromQL (or, for the simulator source, the PromQL
    it evaluates in-process), when it ran and for which time, both on the source's clock
    (`at` for an instant query, None meaning "now"; start/end/step for a range)."""

    what: str
    query: str
    ran_at: float  # the source's clock (simulated in the demo, wall time on a cluster)
    at: float | None = None
    start: float | None = None
    end: float | None = None
    step_s: float | None = None
    results: int = 0  # series returned
    error: str = ""  # "" when it succeeded


class QueryLog:
    """The newest queries a source ran, for the evidence bundle's queries.txt. Bounded (a TUI
    polls for hours) and thread-safe (workers query from threads)."""

    def __init__(self, limit: int = 5000) -> None:
        self._records: deque[QueryRecord] = deque(maxlen=limit)
        self._count = 0
        self._lock = threading.Lock()
        # The same few queries are logged over and over: each text is kept once.
        self._texts: dict[str, str] = {}
        self._limit = limit

    def add(self, record: QueryRecord) -> None:
        with self._lock:
            text = self._texts.setdefault(record.query, record.query)
            if text is not record.query:
                record = replace(record, query=text)
            if len(self._texts) > self._limit:  # texts that vary (a config's override)
                self._texts.clear()
            self._records.append(record)
            self._count += 1

    def mark(self) -> int:
        """A position: `since(mark)` returns what was logged after it."""
        with self._lock:
            return self._count

    def since(self, mark: int = 0) -> tuple[QueryRecord, ...]:
        with self._lock:
            dropped = self._count - len(self._records)
            return tuple(list(self._records)[max(0, mark - dropped) :])


class MetricsSource(Protocol):
    """Metrics for one Deployment. Every method raises UnreachableError when the source cannot
    be reached, ForbiddenError when it refuses the credentials, InvalidError for a query it
    rejects (an override in the config file, say)."""

    scope: Scope
    preset: Preset
    scrape_interval_s: float
    rate_window_s: float
    baseline_window_s: float | None  # None: the caller's window (the stable window)
    query_log: QueryLog  # every query run, for the evidence bundle

    def now(self) -> float:
        """The source's clock (simulated time for the simulator source)."""
        ...

    def describe(self) -> str:
        """One line for people: where the numbers come from."""
        ...

    def query_text(self, quantity: str, window_s: float) -> str:
        """The PromQL (or its equivalent) evaluated for `quantity`."""
        ...

    def instant(
        self, quantity: str, *, window_s: float | None = None, at: float | None = None
    ) -> Values:
        """Values of `quantity` at `at` (default now), keyed "" or by GPU model; rates and
        averages over `window_s` (default the rate window). Missing data: an empty dict."""
        ...

    def series(
        self,
        quantity: str,
        *,
        start: float,
        end: float,
        step_s: float,
        window_s: float | None = None,
    ) -> RangeValues:
        """Points of `quantity` every `step_s` from `start` to `end`; NaN points left out."""
        ...

    def last_scrape(self, at: float | None = None) -> float | None:
        """When the newest sample of the Deployment's engine metrics was scraped (None: none
        within Prometheus' 5-minute lookback, or the series went stale)."""
        ...

    def pod_freshness(self, at: float | None = None, *, gpu: bool = False) -> dict[str, float]:
        """Pod name -> when its newest sample was scraped: engine series (the preset's
        freshness gauges), or DCGM series with `gpu`. Pods whose series went stale or left
        the lookback are absent: the validation gate compares these with the ready pods."""
        ...

    def present_metrics(self) -> frozenset[str]:
        """Metric names the Deployment's pods expose now (engine and DCGM)."""
        ...

    def histogram_bounds(self, quantity: str) -> tuple[float, ...]:
        """Finite bucket bounds of a quantile quantity's histogram, () when unknown."""
        ...

    def dcgm_models(
        self, namespace: str | None = None, deployment: str | None = None
    ) -> dict[str, str]:
        """Pod name -> the DCGM modelName of its GPU, for the GPU inspector."""
        ...

    def detect(self) -> Detection:
        """Which preset fits the pods' metrics and which metric generation they use."""
        ...

    def baseline(self, window_s: float) -> Baseline:
        """The last-known-good values, as the source's baseline spec says (offset, explicit
        range or file), over the source's configured baseline window, else `window_s`.
        Raises ConfigError for a bad file or range."""
        ...
