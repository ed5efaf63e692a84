"""The real metrics source: PromQL over `prometheus-api-client`, scoped to one Deployment.

Raw Prometheus JSON and HTTP errors stop here: callers get float values, `MetricPoint`s and
the project's exceptions (UnreachableError, ForbiddenError, InvalidError, ConfigError).
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from urllib3.util.retry import Retry

from services.config import DEFAULT_RATE_WINDOW_S, DEFAULT_SCRAPE_INTERVAL_S, MetricsSettings
from services.errors import (
    ConfigError,
    ForbiddenError,
    InvalidError,
    SkewmitError,
    UnreachableError,
)
from services.metrics import discovery, presets
from services.metrics.baseline import Baseline, BaselineSpec, capture
from services.metrics.discovery import GpuLabels, PresentNames, duration
from services.metrics.presets import Detection, Preset
from services.metrics.source import QueryLog, QueryRecord, RangeValues, Scope, Values
from services.models import MetricPoint

_STATUS = re.compile(r"HTTP Status Code (\d+)")
_ERROR = re.compile(r'"error"\s*:\s*"((?:[^"\\]|\\.)*)"')


def auth_from_env(
    bearer_token_env: str = "", username: str = "", password_env: str = ""
) -> tuple[dict[str, str], tuple[str, str] | None]:
    """(headers, basic auth) from environment variables named in the config: the token and
    password themselves never sit in a file skewmit reads. Raises ConfigError when a named
    variable is unset."""
    headers: dict[str, str] = {}
    auth: tuple[str, str] | None = None
    if bearer_token_env:
        token = os.environ.get(bearer_token_env, "")
        if not token:
            raise ConfigError(
                f"the Prometheus bearer token variable ${bearer_token_env} is not set; "
                "export it or remove prometheus.bearer_token_env from the config"
            )
        headers["Authorization"] = f"Bearer {token}"
    if username:
        password = os.environ.get(password_env, "") if password_env else ""
        if password_env and not password:
            raise ConfigError(
                f"the Prometheus password variable ${password_env} is not set; export it"
            )
        auth = (username, password)
    return headers, auth


class PrometheusSource:
    """`PrometheusSource("http://prometheus:9090", Scope("inference", "llm-serve"), "vllm")`.

    Raises ConfigError at construction for an unknown preset, a missing CA file or an unset
    credential variable. Nothing is sent until the first query. The rate window is kept at
    four scrape intervals or more (`from_settings` reads the interval from Prometheus' targets
    API), and DCGM's pod labels are read as `exported_pod`/`exported_namespace` when
    Prometheus renamed them; `detect()` says both.
    """

    # Each query is a round trip to Prometheus: LiveSeries.prime sends them together.
    reads_in_parallel = True

    def __init__(
        self,
        url: str,
        scope: Scope,
        preset: str | Preset = "vllm",
        *,
        scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S,
        rate_window_s: float = DEFAULT_RATE_WINDOW_S,
        overrides: Mapping[str, str] | None = None,
        baseline_spec: BaselineSpec | None = None,
        baseline_window_s: float | None = None,
        timeout_s: float = 10.0,
        bearer_token_env: str = "",
        username: str = "",
        password_env: str = "",
        ca_file: str = "",
        insecure_skip_verify: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from prometheus_api_client import PrometheusConnect

        if not re.match(r"^https?://[^/\s]+", url):
            raise ConfigError(
                f"Prometheus URL {url!r} is not an http(s) URL; e.g. http://prometheus:9090"
            )
        self.url = url.rstrip("/")
        self.scope = scope
        self.preset = presets.preset_named(preset) if isinstance(preset, str) else preset
        self.scrape_interval_s = scrape_interval_s
        self.rate_window_s = self.configured_rate_window_s = rate_window_s
        self.rate_window_note = ""  # why the rate window is wider than configured
        self.interval_note = ""  # why the declared scrape interval is used, when it is
        self._widen_rate_window(f"the declared scrape interval {duration(scrape_interval_s)}")
        self.overrides = dict(overrides or {})
        for quantity in self.overrides:
            if quantity not in presets.QUANTITIES:
                raise ConfigError(
                    f"query override for unknown quantity {quantity!r}; known: "
                    f"{', '.join(presets.QUANTITIES)}"
                )
        self.baseline_spec = baseline_spec or BaselineSpec()
        self.baseline_window_s = baseline_window_s
        self.clock = clock
        headers, auth = auth_from_env(bearer_token_env, username, password_env)
        session = requests.Session()
        if ca_file:
            if not Path(ca_file).expanduser().is_file():
                raise ConfigError(f"Prometheus CA file {ca_file} does not exist")
            session.verify = str(Path(ca_file).expanduser())
        if insecure_skip_verify:
            session.verify = False
        # Retry only answers that say "try again"; a refused connection fails at once.
        retry = Retry(
            total=2,
            connect=0,
            read=0,
            status=2,
            backoff_factor=0.2,
            status_forcelist=(502, 503, 504),
            raise_on_status=False,
        )
        self._client = PrometheusConnect(
            url=self.url,
            headers=headers or None,
            auth=auth,
            session=session,
            retry=retry,
            timeout=timeout_s,
        )
        self._present = PresentNames()
        self._baselines: dict[float, tuple[float, Baseline]] = {}
        self.query_log = QueryLog()
        self._gpu_labels = GpuLabels(scope)  # DCGM's pod labels, as Prometheus stored them

    # -- transport -----------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        from prometheus_api_client.exceptions import PrometheusApiClientException

        try:
            return fn()
        except requests.exceptions.SSLError as exc:
            raise UnreachableError(
                f"TLS to Prometheus {self.url} failed ({_short(exc)}); set prometheus.ca_file "
                "to the CA that signed its certificate"
            ) from exc
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise UnreachableError(
                f"cannot reach Prometheus at {self.url} ({_short(exc)}); check --prometheus, "
                "the port-forward or VPN"
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise UnreachableError(f"Prometheus {self.url}: {_short(exc)}") from exc
        except ValueError as exc:  # a body that is not JSON: not a Prometheus API
            raise UnreachableError(
                f"{self.url} did not answer like a Prometheus API ({exc}); check --prometheus"
            ) from exc
        except PrometheusApiClientException as exc:
            text = str(exc)
            status = int(m.group(1)) if (m := _STATUS.search(text)) else 0
            detail = m.group(1) if (m := _ERROR.search(text)) else text[:200]
            if status in (401, 403):
                raise ForbiddenError(
                    f"Prometheus {self.url} refused the credentials ({status}); set "
                    "prometheus.bearer_token_env or basic auth in the config"
                ) from exc
            if status in (400, 422):
                raise InvalidError(
                    f"Prometheus rejected the query for {what}: {detail}. If it is an override "
                    "in the config file, fix it there"
                ) from exc
            raise UnreachableError(
                f"Prometheus {self.url} answered {status or 'an error'} for {what}: {detail}"
            ) from exc

    def check(self) -> None:
        """One cheap query. Raises UnreachableError / ForbiddenError with what to fix."""
        self._call("a connectivity check", lambda: self._client.custom_query("vector(1)"))

    def _instant(self, query: str, what: str, at: float | None) -> list[dict[str, Any]]:
        params = {"time": f"{at:.3f}"} if at is not None else None
        ran_at = self.clock()  # the session's clock, as every time in the bundle
        try:
            result = self._call(what, lambda: self._client.custom_query(query, params=params))
        except SkewmitError as exc:
            self.query_log.add(QueryRecord(what, query, ran_at, at=at, error=str(exc)))
            raise
        rows = list(result or [])
        self.query_log.add(QueryRecord(what, query, ran_at, at=at, results=len(rows)))
        return rows

    # -- queries -------------------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def describe(self) -> str:
        return f"Prometheus {self.url} (preset {self.preset.name})"

    # -- the scrape interval and the pods' GPU labels, as Prometheus has them ----

    @property
    def exported_gpu_labels(self) -> bool:
        """True once DCGM's series were found only as exported_pod/exported_namespace."""
        return self._gpu_labels.exported

    def _widen_rate_window(self, interval_from: str) -> None:
        self.rate_window_s, self.rate_window_note = discovery.widened_rate_window(
            self.configured_rate_window_s, self.scrape_interval_s, interval_from
        )

    def discover_scrape_interval(self) -> float | None:
        """The scrape interval of the job(s) scraping the Deployment's engine metrics, from
        Prometheus' targets API (/api/v1/targets). It replaces the declared interval, and the
        rate window is widened to at least four scrapes of it (`rate_window_note` says so).
        None, with the declared interval kept, when no target of those jobs is found.
        Raises UnreachableError / ForbiddenError / InvalidError."""
        query = discovery.scrape_jobs_query(self.preset.freshness, self.scope.selector())
        jobs = discovery.jobs_of(self._instant(query, "the scrape jobs of the pods", None))
        if not jobs:
            return None
        data = self._call("the scrape targets", lambda: self._client.get_targets(state="active"))
        found = discovery.job_intervals(data, jobs)
        if not found:
            self.interval_note = discovery.no_interval_note(jobs, self.scrape_interval_s)
            return None
        job = max(found, key=lambda j: found[j])
        self.scrape_interval_s = found[job]
        self._widen_rate_window(
            f'the scrape interval of job "{job}" (Prometheus scrapes it every '
            f"{duration(found[job])})"
        )
        return self.scrape_interval_s

    def _settle_gpu_labels(self) -> None:
        def has_series(gpu_selector: str) -> bool:
            return bool(self._instant(GpuLabels.probe(gpu_selector), "the GPU series", None))

        try:
            self.scope = self._gpu_labels.settle(self.scope, has_series)
        except SkewmitError:
            pass  # the query that needs the GPU series reports the failure itself

    def _spec_preset(self) -> Preset:
        # Names change with the release a rollout (or a rollback) brings: look again now and then.
        present = self._present.fresh
        if present is None:
            try:
                present = self.present_metrics()
            except (UnreachableError, InvalidError, ForbiddenError):
                return self.preset  # render() then tries each name, newest first, by `or`
        return self.preset.resolve(present)

    def query_text(self, quantity: str, window_s: float) -> str:
        spec = self.preset.spec(quantity)
        if spec.kind == presets.GPU_AVG:
            self._settle_gpu_labels()
        values = {
            "selector": self.scope.selector(),
            "gpu_selector": self.scope.selector(gpu=True),
            "window": duration(window_s),
            "gpu_label": self.scope.gpu_model_label,
        }
        if quantity in self.overrides:
            return presets.fill_template(self.overrides[quantity], quantity, values)
        if len(spec.metrics) > 1:
            spec = self._spec_preset().spec(quantity)
        return presets.render(
            spec, values["selector"], values["gpu_selector"], values["window"], values["gpu_label"]
        )

    def _key(self, quantity: str, metric: Mapping[str, str]) -> str:
        if self.preset.spec(quantity).kind == presets.GPU_AVG:
            return str(metric.get(self.scope.gpu_model_label, ""))
        labels = {k: v for k, v in metric.items() if k != "__name__"}
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))

    def instant(
        self, quantity: str, *, window_s: float | None = None, at: float | None = None
    ) -> Values:
        query = self.query_text(quantity, window_s or self.rate_window_s)
        out: Values = {}
        for item in self._instant(query, quantity, at):
            value = _float(item.get("value", [0, "NaN"])[1])
            if value is not None:
                out[self._key(quantity, item.get("metric", {}))] = value
        return out

    def series(
        self,
        quantity: str,
        *,
        start: float,
        end: float,
        step_s: float,
        window_s: float | None = None,
    ) -> RangeValues:
        query = self.query_text(quantity, window_s or self.rate_window_s)
        step = max(1.0, round(step_s))
        logged = QueryRecord(quantity, query, self.clock(), start=start, end=end, step_s=step)
        try:
            result = self._call(
                quantity,
                lambda: self._client.custom_query_range(
                    query,
                    start_time=datetime.fromtimestamp(start, UTC),
                    end_time=datetime.fromtimestamp(end, UTC),
                    step=duration(step),
                ),
            )
        except SkewmitError as exc:
            self.query_log.add(replace(logged, error=str(exc)))
            raise
        self.query_log.add(replace(logged, results=len(result or [])))
        out: RangeValues = {}
        for item in result or []:
            points = [
                MetricPoint(float(t), v)
                for t, raw in item.get("values", [])
                if (v := _float(raw)) is not None
            ]
            if points:
                out[self._key(quantity, item.get("metric", {}))] = points
        return out

    def last_scrape(self, at: float | None = None) -> float | None:
        series = presets.series_selector(self.preset.freshness, self.scope.selector())
        result = self._instant(f"max(timestamp({series}))", "the newest scrape", at)
        values = [_float(item.get("value", [0, "NaN"])[1]) for item in result]
        found = [v for v in values if v is not None]
        return max(found) if found else None

    def pod_freshness_query(self, gpu: bool = False) -> str:
        """The PromQL behind `pod_freshness`: a human can run it to see who reports."""
        if gpu:
            self._settle_gpu_labels()
            names = self.preset.queries[presets.GPU_UTIL].metrics
            series = presets.series_selector(names, self.scope.selector(gpu=True))
            return f"max by ({self.scope.gpu_pod_label}) (timestamp({series}))"
        series = presets.series_selector(self.preset.freshness, self.scope.selector())
        return f"max by ({self.scope.pod_label}) (timestamp({series}))"

    def pod_freshness(self, at: float | None = None, *, gpu: bool = False) -> dict[str, float]:
        label = self.scope.gpu_pod_label if gpu else self.scope.pod_label
        what = "the GPU metrics' newest samples" if gpu else "each pod's newest sample"
        out: dict[str, float] = {}
        for item in self._instant(self.pod_freshness_query(gpu), what, at):
            pod = str(item.get("metric", {}).get(label, ""))
            value = _float(item.get("value", [0, "NaN"])[1])
            if pod and value is not None:
                out[pod] = max(value, out.get(pod, value))
        return dict(sorted(out.items()))

    def present_metrics(self) -> frozenset[str]:
        self._settle_gpu_labels()
        selectors = {self.scope.selector(), self.scope.selector(gpu=True)}
        names: set[str] = set()
        for selector in selectors:
            result = self._instant(
                f"count by (__name__) ({{{selector}}})", "the metric names", None
            )
            names.update(str(item.get("metric", {}).get("__name__", "")) for item in result)
        return self._present.store(names)

    def histogram_bounds(self, quantity: str) -> tuple[float, ...]:
        spec = self.preset.spec(quantity)
        if spec.kind != presets.QUANTILE:
            return ()
        if len(spec.metrics) > 1:  # the buckets of the name the query reads
            spec = self._spec_preset().spec(quantity)
        matcher = "|".join(spec.sample_names)
        result = self._instant(
            f'count by (le) ({{__name__=~"{matcher}",{self.scope.selector()}}})',
            f"the buckets of {quantity}",
            None,
        )
        bounds = {_float(str(item.get("metric", {}).get("le", "NaN"))) for item in result}
        return tuple(sorted(b for b in bounds if b is not None and not math.isinf(b)))

    def dcgm_models(
        self, namespace: str | None = None, deployment: str | None = None
    ) -> dict[str, str]:
        self._settle_gpu_labels()
        scope = self.scope.retarget(namespace, deployment)
        pod, model = scope.gpu_pod_label, scope.gpu_model_label
        result = self._instant(
            f"count by ({pod}, {model}) (DCGM_FI_DEV_GPU_UTIL{{{scope.selector(gpu=True)}}})",
            "the GPU models",
            None,
        )
        out = {
            str(item["metric"].get(pod, "")): str(item["metric"].get(model, ""))
            for item in result
            if item.get("metric")
        }
        return dict(sorted(out.items()))

    def detect(self) -> Detection:
        present = self.present_metrics()
        detection = presets.detect(
            present, chosen=self.preset.name, exported_gpu_labels=self.exported_gpu_labels
        )
        if self.rate_window_note:
            detection = replace(detection, warnings=(*detection.warnings, self.rate_window_note))
        if self.interval_note:
            detection = replace(detection, notes=(*detection.notes, self.interval_note))
        return detection

    def baseline(self, window_s: float) -> Baseline:
        window_s = self.baseline_window_s or window_s
        # Yesterday's window moves by seconds between calls: reuse it for a few scrapes.
        now = self.now()
        cached = self._baselines.get(window_s)
        if cached is not None and now - cached[0] < max(60.0, 4 * self.scrape_interval_s):
            return cached[1]
        baseline = capture(self, self.baseline_spec, window_s, with_series=False, now=now)
        self._baselines[window_s] = (now, baseline)
        return baseline


def _float(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _short(exc: BaseException) -> str:
    text = str(exc)
    reason = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    return reason.group(1).strip() if reason else (text[:160] or exc.__class__.__name__)


def from_settings(
    settings: MetricsSettings, namespace: str, deployment: str, preset: str | None = None
) -> PrometheusSource:
    """A source for one Deployment from the config's settings; preset "auto" (or none given
    anywhere) detects the engine from the pods' metric names. Raises ConfigError,
    UnreachableError when detection cannot reach Prometheus."""
    if not settings.url:
        raise ConfigError("no Prometheus URL: pass --prometheus URL or set prometheus.url")
    chosen = (preset or settings.preset or "auto").lower()

    def build(name: str) -> PrometheusSource:
        return PrometheusSource(
            settings.url,
            settings.scope(namespace, deployment),
            name,
            scrape_interval_s=settings.scrape_interval_s,
            rate_window_s=settings.rate_window_s,
            overrides=settings.overrides_for(name),
            baseline_spec=settings.baseline,
            baseline_window_s=settings.baseline_window_s,
            timeout_s=settings.timeout_s,
            bearer_token_env=settings.bearer_token_env,
            username=settings.username,
            password_env=settings.password_env,
            ca_file=settings.ca_file,
            insecure_skip_verify=settings.insecure_skip_verify,
        )

    if chosen != "auto":
        source = build(chosen)
    else:
        probe = build("vllm")
        fits = probe.detect().fits
        source = build(fits) if fits and fits != "vllm" else probe
    try:
        source.discover_scrape_interval()
    except SkewmitError as exc:  # e.g. a Thanos or Mimir front end without /api/v1/targets
        source.interval_note = discovery.unreadable_targets_note(exc, source.scrape_interval_s)
    return source
