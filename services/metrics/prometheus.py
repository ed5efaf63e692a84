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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from urllib3.util.retry import Retry

from services.config import MetricsSettings
from services.errors import ConfigError, ForbiddenError, InvalidError, UnreachableError
from services.metrics import presets
from services.metrics.baseline import Baseline, BaselineSpec, capture
from services.metrics.presets import Detection, Preset
from services.metrics.source import RangeValues, Scope, Values
from services.models import MetricPoint

_STATUS = re.compile(r"HTTP Status Code (\d+)")
_ERROR = re.compile(r'"error"\s*:\s*"((?:[^"\\]|\\.)*)"')


def duration(seconds: float) -> str:
    """A PromQL duration: whole seconds, else milliseconds (no fractions in 2.x)."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


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
    credential variable. Nothing is sent until the first query.
    """

    def __init__(
        self,
        url: str,
        scope: Scope,
        preset: str | Preset = "vllm",
        *,
        scrape_interval_s: float = 30.0,
        rate_window_s: float = 60.0,
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
        self.rate_window_s = rate_window_s
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
        self._present: frozenset[str] | None = None
        self._baselines: dict[float, tuple[float, Baseline]] = {}

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
        result = self._call(what, lambda: self._client.custom_query(query, params=params))
        return list(result or [])

    # -- queries -------------------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def describe(self) -> str:
        return f"Prometheus {self.url} (preset {self.preset.name})"

    def _spec_preset(self) -> Preset:
        if self._present is None:
            try:
                self._present = self.present_metrics()
            except (UnreachableError, InvalidError, ForbiddenError):
                return self.preset  # the regex over every generation's names still works
        return self.preset.resolve(self._present)

    def query_text(self, quantity: str, window_s: float) -> str:
        spec = self.preset.spec(quantity)
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
        result = self._call(
            quantity,
            lambda: self._client.custom_query_range(
                query,
                start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(end, UTC),
                step=duration(max(1.0, round(step_s))),
            ),
        )
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

    def present_metrics(self) -> frozenset[str]:
        selectors = {self.scope.selector(), self.scope.selector(gpu=True)}
        names: set[str] = set()
        for selector in selectors:
            result = self._instant(
                f"count by (__name__) ({{{selector}}})", "the metric names", None
            )
            names.update(str(item.get("metric", {}).get("__name__", "")) for item in result)
        names.discard("")
        self._present = frozenset(names)
        return self._present

    def histogram_bounds(self, quantity: str) -> tuple[float, ...]:
        spec = self.preset.spec(quantity)
        if spec.kind != presets.QUANTILE:
            return ()
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
        return presets.detect(self.present_metrics(), chosen=self.preset.name)

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
        return build(chosen)
    probe = build("vllm")
    fits = probe.detect().fits
    return build(fits) if fits and fits != "vllm" else probe
