"""What each quantity skewmit watches is, per serving engine: vLLM, TGI, SGLang, and DCGM.

A quantity is described structurally (a histogram quantile, a counter rate, a gauge sum, a GPU
average) so that the Prometheus source can render it as PromQL and the simulator source can
evaluate it with the same arithmetic. Engines renamed metrics between releases: a spec lists
the alternatives newest first, and `resolve` keeps the ones a deployment actually exposes.
"""

from __future__ import annotations

import math
import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from services.errors import ConfigError

# Quantity names, as MetricSeries.name and CheckResult names carry them.
P95, P99 = "p95", "p99"
TOKENS, REQUESTS = "tokens_per_s", "request_rate"
RUNNING, WAITING = "running", "waiting"
KV_CACHE, TOKEN_LATENCY_P95 = "kv_cache", "token_latency_p95"
PROMPT_P95 = "prompt_tokens_p95"  # step 4: a surge of long prompts shows here first
GPU_UTIL, GPU_MEM = "gpu_util", "gpu_mem"

QUANTITIES: tuple[str, ...] = (
    P95, P99, TOKENS, REQUESTS, RUNNING, WAITING, KV_CACHE, TOKEN_LATENCY_P95, GPU_UTIL, GPU_MEM,
    PROMPT_P95,
)  # fmt: skip
GATE_QUANTITIES: tuple[str, ...] = (P95, P99, TOKENS, GPU_UTIL, GPU_MEM)
UNITS: Mapping[str, str] = MappingProxyType(
    {
        P95: "s",
        P99: "s",
        TOKENS: "tok/s",
        REQUESTS: "req/s",
        RUNNING: "req",
        WAITING: "req",
        KV_CACHE: "ratio",
        TOKEN_LATENCY_P95: "s",
        PROMPT_P95: "tok",
        GPU_UTIL: "%",
        GPU_MEM: "MiB",
    }
)
TITLES: Mapping[str, str] = MappingProxyType(
    {
        P95: "p95 latency",
        P99: "p99 latency",
        TOKENS: "tokens/sec",
        REQUESTS: "requests/sec",
        RUNNING: "running requests",
        WAITING: "waiting requests",
        KV_CACHE: "KV cache usage",
        TOKEN_LATENCY_P95: "p95 inter-token latency",
        PROMPT_P95: "p95 prompt length",
        GPU_UTIL: "GPU utilisation",
        GPU_MEM: "GPU framebuffer used",
    }
)

QUANTILE = "quantile"  # histogram_quantile(q, sum by (le) (rate(<family>_bucket[w])))
RATE = "rate"  # sum(rate(<counter>[w]))
GAUGE_SUM = "gauge_sum"  # sum(<gauge>)
GAUGE_AVG = "gauge_avg"  # avg(<gauge>)
GPU_AVG = "gpu_avg"  # avg by (modelName) (avg_over_time(<gauge>[w]))
KINDS = (QUANTILE, RATE, GAUGE_SUM, GAUGE_AVG, GPU_AVG)

# Placeholders a query override may use (string.Template syntax).
PLACEHOLDERS = ("selector", "gpu_selector", "window", "gpu_label")


@dataclass(frozen=True)
class QuerySpec:
    kind: str
    metrics: tuple[str, ...]  # alternatives, newest name first; histograms: the family name
    q: float = 0.0

    @property
    def sample_names(self) -> tuple[str, ...]:
        """The series names the query reads (histograms: their `_bucket` series)."""
        if self.kind == QUANTILE:
            return tuple(f"{m}_bucket" for m in self.metrics)
        return self.metrics


@dataclass(frozen=True)
class Preset:
    name: str  # vllm | tgi | sglang
    title: str
    queries: Mapping[str, QuerySpec]
    freshness: tuple[str, ...]  # gauges every serving pod exposes on every scrape
    markers: tuple[str, ...]  # names only this engine exposes
    # name -> what its presence says about the engine release
    generations: Mapping[str, str] = field(default_factory=dict)

    def spec(self, quantity: str) -> QuerySpec:
        """Raises ConfigError for a quantity this preset does not know."""
        try:
            return self.queries[quantity]
        except KeyError:
            raise ConfigError(
                f"preset {self.name} has no query for {quantity!r}; known: "
                f"{', '.join(self.queries)}"
            ) from None

    def resolve(self, present: Collection[str]) -> Preset:
        """The preset narrowed to the newest metric name a deployment exposes for each
        quantity. One name, never several: vLLM 0.11 serves both the new
        `vllm:inter_token_latency_seconds` and the deprecated
        `vllm:time_per_output_token_seconds` with the same labels, and a query over both makes
        Prometheus refuse it ("vector cannot contain metrics with the same labelset"). A spec
        none of whose names are present is kept whole (`render` then prefers the newest
        name that has data, per evaluation)."""
        narrowed: dict[str, QuerySpec] = {}
        for quantity, spec in self.queries.items():
            keep = next(
                (m for m, s in zip(spec.metrics, spec.sample_names, strict=True) if s in present),
                None,
            )
            narrowed[quantity] = replace(spec, metrics=(keep,)) if keep else spec
        fresh = tuple(m for m in self.freshness if m in present) or self.freshness
        return replace(self, queries=MappingProxyType(narrowed), freshness=fresh)


def _dcgm() -> dict[str, QuerySpec]:
    return {
        GPU_UTIL: QuerySpec(GPU_AVG, ("DCGM_FI_DEV_GPU_UTIL",)),
        GPU_MEM: QuerySpec(GPU_AVG, ("DCGM_FI_DEV_FB_USED",)),
    }


# Newest name first. vLLM 0.11 serves both ITL names (the old one deprecated, same buckets and
# labels: vllm/v1/metrics/loggers.py); 0.9.2 renamed the KV-cache gauge and 0.10 still serves both.
_VLLM_ITL = ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")
_VLLM_KV = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")

VLLM = Preset(
    name="vllm",
    title="vLLM",
    queries=MappingProxyType(
        {
            P95: QuerySpec(QUANTILE, ("vllm:e2e_request_latency_seconds",), 0.95),
            P99: QuerySpec(QUANTILE, ("vllm:e2e_request_latency_seconds",), 0.99),
            TOKENS: QuerySpec(RATE, ("vllm:generation_tokens_total",)),
            REQUESTS: QuerySpec(RATE, ("vllm:e2e_request_latency_seconds_count",)),
            RUNNING: QuerySpec(GAUGE_SUM, ("vllm:num_requests_running",)),
            WAITING: QuerySpec(GAUGE_SUM, ("vllm:num_requests_waiting",)),
            KV_CACHE: QuerySpec(GAUGE_AVG, _VLLM_KV),
            TOKEN_LATENCY_P95: QuerySpec(QUANTILE, _VLLM_ITL, 0.95),
            PROMPT_P95: QuerySpec(QUANTILE, ("vllm:request_prompt_tokens",), 0.95),
            **_dcgm(),
        }
    ),
    freshness=("vllm:num_requests_running",),
    markers=("vllm:num_requests_running", "vllm:generation_tokens_total"),
    generations=MappingProxyType(
        {
            "vllm:kv_cache_usage_perc": "vLLM 0.9 or later (vllm:kv_cache_usage_perc)",
            "vllm:gpu_cache_usage_perc": "vLLM before 0.9 (vllm:gpu_cache_usage_perc)",
            # The first release with the new name is 0.11; 0.10 still served only the old one.
            "vllm:inter_token_latency_seconds_bucket": (
                "vLLM 0.11 or later (vllm:inter_token_latency_seconds)"
            ),
            "vllm:time_per_output_token_seconds_bucket": (
                "vLLM before 0.11 (vllm:time_per_output_token_seconds)"
            ),
        }
    ),
)

TGI = Preset(
    name="tgi",
    title="Text Generation Inference",
    queries=MappingProxyType(
        {
            P95: QuerySpec(QUANTILE, ("tgi_request_duration",), 0.95),
            P99: QuerySpec(QUANTILE, ("tgi_request_duration",), 0.99),
            # TGI has no token counter: the per-request histogram's _sum counts them.
            TOKENS: QuerySpec(RATE, ("tgi_request_generated_tokens_sum",)),
            REQUESTS: QuerySpec(RATE, ("tgi_request_duration_count",)),
            RUNNING: QuerySpec(GAUGE_SUM, ("tgi_batch_current_size",)),
            WAITING: QuerySpec(GAUGE_SUM, ("tgi_queue_size",)),
            TOKEN_LATENCY_P95: QuerySpec(
                QUANTILE, ("tgi_request_mean_time_per_token_duration",), 0.95
            ),
            PROMPT_P95: QuerySpec(QUANTILE, ("tgi_request_input_length",), 0.95),
            **_dcgm(),
        }
    ),
    freshness=("tgi_queue_size",),
    markers=("tgi_queue_size", "tgi_batch_current_size"),
)

# SGLang renamed things too (python/sglang/srt/metrics/collector.py): inter-token latency was
# `sglang:time_per_output_token_seconds` in older releases; the first metrics release (0.3.x)
# counted `sglang:num_requests_running` / `_waiting`; and for a while (0.3.6 - 0.4.0)
# `sglang:generation_tokens_total` was a Gauge set to the running total, not a Counter. rate()
# reads a running total the same whatever its TYPE line says, so one query serves both.
SGLANG = Preset(
    name="sglang",
    title="SGLang",
    queries=MappingProxyType(
        {
            P95: QuerySpec(QUANTILE, ("sglang:e2e_request_latency_seconds",), 0.95),
            P99: QuerySpec(QUANTILE, ("sglang:e2e_request_latency_seconds",), 0.99),
            TOKENS: QuerySpec(RATE, ("sglang:generation_tokens_total",)),
            REQUESTS: QuerySpec(RATE, ("sglang:e2e_request_latency_seconds_count",)),
            RUNNING: QuerySpec(
                GAUGE_SUM, ("sglang:num_running_reqs", "sglang:num_requests_running")
            ),
            WAITING: QuerySpec(GAUGE_SUM, ("sglang:num_queue_reqs", "sglang:num_requests_waiting")),
            KV_CACHE: QuerySpec(GAUGE_AVG, ("sglang:token_usage",)),
            TOKEN_LATENCY_P95: QuerySpec(
                QUANTILE,
                ("sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds"),
                0.95,
            ),
            **_dcgm(),
        }
    ),
    freshness=("sglang:num_running_reqs", "sglang:num_requests_running"),
    markers=(
        "sglang:num_running_reqs",
        "sglang:num_requests_running",
        "sglang:generation_tokens_total",
    ),
    generations=MappingProxyType(
        {
            "sglang:inter_token_latency_seconds_bucket": (
                "SGLang with current names (sglang:inter_token_latency_seconds)"
            ),
            "sglang:time_per_output_token_seconds_bucket": (
                "an older SGLang (sglang:time_per_output_token_seconds)"
            ),
            "sglang:num_requests_running": "SGLang 0.3 (sglang:num_requests_running)",
        }
    ),
)

PRESETS: Mapping[str, Preset] = MappingProxyType({p.name: p for p in (VLLM, TGI, SGLANG)})


def preset_named(name: str) -> Preset:
    """Raises ConfigError for an unknown preset, naming the known ones."""
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise ConfigError(
            f"unknown metrics preset {name!r}; use one of: {', '.join(PRESETS)}"
        ) from None


def _string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def series_selector(names: tuple[str, ...], selector: str) -> str:
    if len(names) == 1:
        return f"{names[0]}{{{selector}}}"
    matchers = [f"__name__=~{_string('|'.join(names))}"] + ([selector] if selector else [])
    return "{" + ",".join(matchers) + "}"


def render(spec: QuerySpec, selector: str, gpu_selector: str, window: str, gpu_label: str) -> str:
    """The PromQL for one spec, scoped by the given matchers and rate window.

    A spec with several names (not narrowed by `Preset.resolve`) becomes one expression per
    name joined by `or`, newest first: each evaluation takes the newest name that has data.
    Never a `__name__=~"a|b"` union: rate() drops the names and two names with the same
    labels (vLLM 0.11's two ITL histograms) make Prometheus reject the whole query.
    """
    if spec.kind not in KINDS:
        raise ConfigError(f"unknown query kind {spec.kind!r}")
    return " or ".join(
        _render_one(spec, i, selector, gpu_selector, window, gpu_label)
        for i in range(len(spec.metrics))
    )


def _render_one(
    spec: QuerySpec, index: int, selector: str, gpu_selector: str, window: str, gpu_label: str
) -> str:
    name, sample = spec.metrics[index], spec.sample_names[index]
    if spec.kind == QUANTILE:
        return (
            f"histogram_quantile({spec.q:g}, sum by (le) (rate({sample}{{{selector}}}[{window}])))"
        )
    if spec.kind == RATE:
        return f"sum(rate({name}{{{selector}}}[{window}]))"
    if spec.kind == GAUGE_SUM:
        return f"sum({name}{{{selector}}})"
    if spec.kind == GAUGE_AVG:
        return f"avg({name}{{{selector}}})"
    return f"avg by ({gpu_label}) (avg_over_time({name}{{{gpu_selector}}}[{window}]))"


def fill_template(template: str, quantity: str, values: Mapping[str, str]) -> str:
    """An overriding query from the config file with its ${placeholders} filled in.

    Raises ConfigError naming the quantity and the placeholders it may use.
    """
    try:
        return string.Template(template).substitute(values)
    except (KeyError, ValueError) as exc:
        raise ConfigError(
            f"query override for {quantity!r} uses an unknown placeholder ({exc}); "
            f"available: {', '.join('${' + p + '}' for p in PLACEHOLDERS)}"
        ) from None


@dataclass(frozen=True)
class Detection:
    """Which preset fits a deployment's metrics, and what its metric names say."""

    fits: str | None  # the preset whose engine metrics are present, None when none are
    present: Mapping[str, tuple[str, ...]]  # preset -> its marker names found
    gpu_metrics: bool  # DCGM series were found for the pods
    notes: tuple[str, ...]  # which metric generation (engine release) the names show
    warnings: tuple[str, ...]  # e.g. the chosen preset does not fit

    def as_json(self) -> dict[str, object]:
        return {
            "fits": self.fits,
            "present": {k: list(v) for k, v in self.present.items()},
            "gpu_metrics": self.gpu_metrics,
            "notes": list(self.notes),
            "warnings": list(self.warnings),
        }


# The note when DCGM's pod labels were renamed by Prometheus (honor_labels false: the exporter's
# own `pod`/`namespace` collide with the target's and become `exported_pod`/`exported_namespace`).
EXPORTED_GPU_LABELS_HINT = (
    "DCGM series name the serving pods in exported_pod/exported_namespace (a ServiceMonitor or "
    "scrape config with honorLabels: false, so pod/namespace are the exporter's own): skewmit "
    "reads the exported_ labels; set honorLabels: true on dcgm-exporter's ServiceMonitor, or "
    "prometheus.gpu_pod_label: exported_pod and gpu_namespace_label: exported_namespace"
)
BOTH_ITL_NOTE = (
    "vLLM 0.11 serves inter-token latency twice (vllm:inter_token_latency_seconds and the "
    "deprecated vllm:time_per_output_token_seconds): skewmit reads only the new name"
)


def detect(
    present: Collection[str], chosen: str | None = None, *, exported_gpu_labels: bool = False
) -> Detection:
    """Say which preset fits from the metric names a deployment's pods expose, and which
    generation of names they use. `exported_gpu_labels`: the DCGM series were found only
    under exported_pod/exported_namespace. Raises nothing."""
    found = {p.name: tuple(m for m in p.markers if m in present) for p in PRESETS.values()}
    found = {k: v for k, v in found.items() if v}
    fits = max(found, key=lambda k: len(found[k])) if found else None
    notes: list[str] = []
    for preset in PRESETS.values():
        # An old name served beside its newer one (a deprecation period) dates nothing.
        shadowed = {
            old
            for spec in preset.queries.values()
            for i, old in enumerate(spec.sample_names)
            if any(newer in present for newer in spec.sample_names[:i])
        }
        notes += [
            text
            for name, text in preset.generations.items()
            if name in present and name not in shadowed
        ]
    if {f"{m}_bucket" for m in _VLLM_ITL} <= set(present):
        notes.append(BOTH_ITL_NOTE)
    gpu = any(name.startswith("DCGM_FI_") for name in present)
    warnings: list[str] = []
    if fits is None:
        warnings.append(
            "no vLLM, TGI or SGLang metrics found for the deployment's pods: check the scrape "
            "config (SGLang needs --enable-metrics) and the namespace/pod labels"
        )
    elif chosen and chosen != fits:
        warnings.append(
            f"preset {chosen} does not fit: the pods expose {PRESETS[fits].title} metrics "
            f"({', '.join(found[fits])}); use --preset {fits}"
        )
    if len(found) > 1:
        warnings.append(
            f"metrics of several engines found ({', '.join(sorted(found))}); "
            "the pod matcher may be too broad"
        )
    if exported_gpu_labels:
        warnings.append(EXPORTED_GPU_LABELS_HINT)
    elif not gpu:
        warnings.append(
            "no DCGM GPU metrics found for the pods: GPU utilisation and memory cannot be checked"
        )
    return Detection(fits, MappingProxyType(found), gpu, tuple(notes), tuple(warnings))


# Where each engine's latency histograms stop, from their sources: TGI's router (server.rs)
# sets 35 duration buckets, 0.0001 s times 1.5 per step, so the top is 0.0001 * 1.5**35 ~ 145.6 s
# in every release; vLLM V0 (vllm/engine/metrics.py) and SGLang's 0.3.6-0.4 collector stopped
# request latency at 60 s; vLLM V1 goes to 7680 s and current SGLang to 2400 s.
TGI_TOP_BUCKET_S = 0.0001 * 1.5**35
_CAPPED_AT_60 = {
    "vllm": "vLLM V0 releases stop e2e latency buckets at 60 s; V1 releases go to 7680 s",
    "sglang": "some older SGLang releases stop e2e latency buckets at 60 s; current ones at 2400 s",
    "": "vLLM V0 and some older SGLang releases stop e2e latency buckets at 60 s",
}


def _why_top(top: float, engine: str) -> str:
    if engine == "tgi" or (not engine and math.isclose(top, TGI_TOP_BUCKET_S, rel_tol=1e-6)):
        return (
            f"TGI's duration histograms end at {TGI_TOP_BUCKET_S:.1f} s by design (35 geometric "
            "buckets from 0.1 ms, x1.5 each); read TGI's request logs or client-side latency "
            "for anything slower"
        )
    if math.isclose(top, 60.0) and engine in _CAPPED_AT_60:
        return _CAPPED_AT_60[engine] + ": upgrade the engine to see higher latencies"
    return "requests slower than that are only counted, not measured"


def top_bucket_warning(
    quantity: str, value: float | None, bounds: tuple[float, ...], engine: str = ""
) -> str:
    """A warning when a quantile sits on the top finite bucket bound: histogram_quantile
    answers that bound for any rank in the +Inf bucket, so the true value is higher. The
    reason is the engine's own (`engine`: a preset name; "" infers it from the bound). ""
    when the value is below the top bucket or the buckets are unknown. Raises nothing."""
    if value is None or not bounds:
        return ""
    top = max(bounds)
    if value >= top * 0.999:
        return (
            f"{quantity} sits on the top histogram bucket ({top:.4g} s): the true value is "
            f"at least that and the histogram cannot show how much higher ({_why_top(top, engine)})"
        )
    return ""
