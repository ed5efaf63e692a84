"""The skewmit config file (YAML, or TOML by its `.toml` suffix): Prometheus access, query
overrides, the baseline, the validation thresholds, the expected GPU class.

`load_config(path)` returns the checked mapping; `metrics_settings(config, ...)` and
`threshold_values(config)` turn sections into typed settings. Example (YAML):

    expected_gpu_class: H100-80GB
    prometheus:
      url: https://prometheus.example:9090
      bearer_token_env: PROM_TOKEN          # the token is read from this variable
      ca_file: /etc/ssl/prom-ca.pem
      scrape_interval: 30s
      rate_window: 2m                       # at least 4 scrape intervals
      extra_matchers: 'cluster="prod"'
      queries:                              # ${selector} ${gpu_selector} ${window} ${gpu_label}
        p99: histogram_quantile(0.99, sum by (le) (rate(my_bucket{${selector}}[${window}])))
        vllm: {tokens_per_s: 'sum(rate(vllm:generation_tokens_total{${selector}}[${window}]))'}
    baseline: {offset: 1d, window: 10m}     # or {start: ..., end: ...} or {file: path}
    thresholds:
      tokens_min_ratio: 0.9
      latency_max_ratio: 1.1
      stable_window: 10m
      gpu_util_band_points: 15
      gpu_mem_band_ratio: 0.1
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from services.errors import ConfigError
from services.metrics.baseline import DAY_S, BaselineSpec
from services.metrics.presets import PRESETS, QUANTITIES
from services.metrics.source import Scope, parse_matchers

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY_S, "w": 7 * DAY_S}
DEFAULT_SCRAPE_INTERVAL_S = 30.0
# A rate needs several scrapes in its window; four is the usual floor (a missed scrape then
# leaves three, not one). The default window holds four default intervals, so a default run
# needs no widening.
RATE_WINDOW_SCRAPES = 4
DEFAULT_RATE_WINDOW_S = RATE_WINDOW_SCRAPES * DEFAULT_SCRAPE_INTERVAL_S

_PROMETHEUS_KEYS = {
    "url": str,
    "preset": str,
    "bearer_token_env": str,
    "username": str,
    "password_env": str,
    "ca_file": str,
    "insecure_skip_verify": bool,
    "timeout": "duration",
    "scrape_interval": "duration",
    "rate_window": "duration",
    "extra_matchers": str,
    "namespace_label": str,
    "pod_label": str,
    "gpu_namespace_label": str,
    "gpu_pod_label": str,
    "gpu_model_label": str,
    "queries": dict,
}
_BASELINE_KEYS = {
    "offset": "duration",
    "start": "time",
    "end": "time",
    "file": str,
    "window": "duration",
}
_THRESHOLD_KEYS = {
    "tokens_min_ratio": float,
    "latency_max_ratio": float,
    "stable_window": "duration",
    "gpu_util_band_points": float,
    "gpu_mem_band_ratio": float,
    "min_coverage": float,
    "step": "duration",
}


def parse_duration(value: Any, where: str = "duration") -> float:
    """Seconds from `90`, `90s`, `15m`, `1h30m`, `1d`, `500ms`. Raises ConfigError."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: {value!r} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip()
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ConfigError(f"{where}: {value!r} is not a duration like 90s, 15m, 1h or 1d")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError(f"{where}: {value!r} must be longer than zero")
    return seconds


def parse_time(value: Any, where: str = "time") -> float:
    """Unix seconds from an RFC 3339 time (`2026-05-01T12:00:00Z`) or unix seconds.
    Raises ConfigError."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{where}: {value!r} is not a time; use RFC 3339 (2026-05-01T12:00:00Z) or unix seconds"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _check_section(config: Mapping[str, Any], name: str, keys: Mapping[str, Any]) -> None:
    section = config.get(name)
    if section is None:
        return
    if not isinstance(section, Mapping):
        raise ConfigError(f"config: `{name}` must be a mapping of settings")
    for key, value in section.items():
        kind = keys.get(key)
        where = f"config: {name}.{key}"
        if kind is None:
            raise ConfigError(f"{where} is not a known setting; known: {', '.join(sorted(keys))}")
        if kind == "duration":
            parse_duration(value, where)
        elif kind == "time":
            parse_time(value, where)
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where} must be a number, not {value!r}")
        elif kind is dict:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where} must be a mapping")
        elif not isinstance(value, kind):
            raise ConfigError(f"{where} must be a {kind.__name__}, not {value!r}")


def _check_queries(queries: Mapping[str, Any]) -> None:
    for key, value in queries.items():
        if key in PRESETS and isinstance(value, Mapping):
            _check_queries({f"{key}.{q}": v for q, v in value.items()})
            continue
        quantity = key.split(".")[-1]
        if quantity not in QUANTITIES:
            raise ConfigError(
                f"config: prometheus.queries.{key}: unknown quantity; known: "
                f"{', '.join(QUANTITIES)} (or a preset name holding them: {', '.join(PRESETS)})"
            )
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"config: prometheus.queries.{key} must be a PromQL string")


def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The mapping, checked where skewmit reads it. Raises ConfigError naming the key."""
    _check_section(config, "prometheus", _PROMETHEUS_KEYS)
    _check_section(config, "baseline", _BASELINE_KEYS)
    _check_section(config, "thresholds", _THRESHOLD_KEYS)
    prometheus = config.get("prometheus") or {}
    if prometheus.get("preset") and prometheus["preset"] not in (*PRESETS, "auto"):
        raise ConfigError(
            f"config: prometheus.preset {prometheus['preset']!r} is unknown; use "
            f"{', '.join(PRESETS)} or auto"
        )
    if prometheus.get("extra_matchers"):
        parse_matchers(prometheus["extra_matchers"])
    _check_queries(prometheus.get("queries") or {})
    baseline = config.get("baseline") or {}
    modes = [m for m in ("offset", "file") if m in baseline] + (
        ["range"] if "start" in baseline or "end" in baseline else []
    )
    if len(modes) > 1:
        raise ConfigError(f"config: baseline sets {' and '.join(modes)}; choose one")
    if ("start" in baseline) != ("end" in baseline):
        raise ConfigError("config: a baseline range needs both start and end")
    expected = config.get("expected_gpu_class")
    if expected is not None and not isinstance(expected, str):
        raise ConfigError("config: expected_gpu_class must be a string like H100-80GB")
    return dict(config)


def load_config(path: str | Path | None = None) -> dict[str, Any]:
    """Read and check a config file (YAML, or TOML when it ends in .toml); without a path,
    $SKEWMIT_CONFIG if set, else no config ({}).

    Raises ConfigError for a missing or unreadable file and for bad settings.
    """
    chosen = path or os.environ.get("SKEWMIT_CONFIG")
    if not chosen:
        return {}
    file = Path(chosen).expanduser()
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {file}: {exc.strerror or exc}; fix --config"
        ) from exc
    try:
        data = tomllib.loads(text) if file.suffix == ".toml" else yaml.safe_load(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"config file {file} is not valid TOML: {exc}; fix it or pass another --config"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"config file {file} is not valid YAML{_yaml_where(exc)}; "
            "fix it or pass another --config"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {file} must hold a mapping of settings")
    try:
        return check_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from None


def _yaml_where(exc: yaml.YAMLError) -> str:
    """Where and what, on one line: libyaml's own report is eight lines with the source
    quoted twice, which wraps and scrolls the one line a failed start should print."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return f": {' '.join(str(exc).split())}"
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = " ".join(str(exc.problem or exc.context or "").split())
    context = exc.context if exc.problem and exc.context else None
    if context and exc.context_mark is not None:
        opened = exc.context_mark
        context += f" from line {opened.line + 1}, column {opened.column + 1}"
    return where + (f": {what}" if what else "") + (f" ({context})" if context else "")


@dataclass(frozen=True)
class MetricsSettings:
    """Where metrics come from and how they are queried (the `prometheus` and `baseline`
    sections, with command-line flags on top)."""

    url: str = ""
    preset: str = ""  # "" or "auto": detect
    bearer_token_env: str = ""
    username: str = ""
    password_env: str = ""
    ca_file: str = ""
    insecure_skip_verify: bool = False
    timeout_s: float = 10.0
    scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S
    rate_window_s: float = DEFAULT_RATE_WINDOW_S
    extra_matchers: str = ""
    namespace_label: str = "namespace"
    pod_label: str = "pod"
    gpu_namespace_label: str = "namespace"
    gpu_pod_label: str = "pod"
    gpu_model_label: str = "modelName"
    queries: Mapping[str, Any] = field(default_factory=dict)
    baseline: BaselineSpec = field(default_factory=BaselineSpec)
    baseline_window_s: float | None = None  # None: the validation's stable window

    def overrides_for(self, preset: str) -> dict[str, str]:
        """Query overrides for a preset: the general ones, then the preset's own."""
        general = {k: str(v) for k, v in self.queries.items() if isinstance(v, str)}
        own = self.queries.get(preset)
        if isinstance(own, Mapping):
            general.update({k: str(v) for k, v in own.items()})
        return general

    def scope(self, namespace: str, deployment: str) -> Scope:
        return Scope(
            namespace,
            deployment,
            parse_matchers(self.extra_matchers) if self.extra_matchers else (),
            namespace_label=self.namespace_label,
            pod_label=self.pod_label,
            gpu_pod_label=self.gpu_pod_label,
            gpu_namespace_label=self.gpu_namespace_label,
            gpu_model_label=self.gpu_model_label,
        )


def baseline_spec(section: Mapping[str, Any]) -> BaselineSpec:
    """A BaselineSpec from the `baseline` section (or the flags in the same shape)."""
    if section.get("file"):
        return BaselineSpec(mode="file", path=str(section["file"]))
    if section.get("start") is not None or section.get("end") is not None:
        start = parse_time(section.get("start"), "baseline start")
        end = parse_time(section.get("end"), "baseline end")
        if end <= start:
            raise ConfigError("the baseline range must end after it starts")
        return BaselineSpec(mode="range", start=start, end=end)
    offset = section.get("offset")
    return BaselineSpec(
        mode="offset", offset_s=parse_duration(offset, "baseline offset") if offset else DAY_S
    )


def metrics_settings(config: Mapping[str, Any], **flags: Any) -> MetricsSettings:
    """Settings from the config with non-None `flags` on top (url, preset, scrape_interval,
    rate_window, baseline_offset, baseline_start, baseline_end, baseline_file,
    baseline_window). Raises ConfigError."""
    section = dict(config.get("prometheus") or {})
    baseline = dict(config.get("baseline") or {})
    given = {k: v for k, v in flags.items() if v is not None and v != ""}
    for key in ("url", "preset", "scrape_interval", "rate_window"):
        if key in given:
            section[key] = given[key]
    cli_baseline = {
        key: given[f"baseline_{key}"]
        for key in ("offset", "start", "end", "file")
        if f"baseline_{key}" in given
    }
    if cli_baseline:
        window = baseline.get("window")
        baseline = cli_baseline | ({"window": window} if window else {})
    if "baseline_window" in given:
        baseline["window"] = given["baseline_window"]
    check_config({"prometheus": section, "baseline": baseline})

    def seconds(key: str, default: float) -> float:
        value = section.get(key)
        return parse_duration(value, f"prometheus.{key}") if value is not None else default

    window = baseline.get("window")
    return MetricsSettings(
        url=str(section.get("url", "")),
        preset=str(section.get("preset", "")),
        bearer_token_env=str(section.get("bearer_token_env", "")),
        username=str(section.get("username", "")),
        password_env=str(section.get("password_env", "")),
        ca_file=str(section.get("ca_file", "")),
        insecure_skip_verify=bool(section.get("insecure_skip_verify", False)),
        timeout_s=seconds("timeout", 10.0),
        scrape_interval_s=seconds("scrape_interval", DEFAULT_SCRAPE_INTERVAL_S),
        rate_window_s=seconds("rate_window", DEFAULT_RATE_WINDOW_S),
        extra_matchers=str(section.get("extra_matchers", "")),
        namespace_label=str(section.get("namespace_label", "namespace")),
        pod_label=str(section.get("pod_label", "pod")),
        gpu_namespace_label=str(section.get("gpu_namespace_label", "namespace")),
        gpu_pod_label=str(section.get("gpu_pod_label", "pod")),
        gpu_model_label=str(section.get("gpu_model_label", "modelName")),
        queries=dict(section.get("queries") or {}),
        baseline=baseline_spec(baseline),
        baseline_window_s=parse_duration(window, "baseline window") if window else None,
    )


def threshold_values(config: Mapping[str, Any]) -> dict[str, float]:
    """The `thresholds` section with durations in seconds. Raises ConfigError."""
    check_config({"thresholds": config.get("thresholds") or {}})
    out: dict[str, float] = {}
    for key, value in (config.get("thresholds") or {}).items():
        kind = _THRESHOLD_KEYS[key]
        out[key] = (
            parse_duration(value, f"thresholds.{key}") if kind == "duration" else float(value)
        )
    return out
