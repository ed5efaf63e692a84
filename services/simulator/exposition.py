"""The fleet's metrics in the Prometheus text format 0.0.4, names kept with their colons.

One endpoint serves the whole fleet, so every engine series carries the `namespace` and `pod`
labels that Prometheus' Kubernetes service discovery would have attached. DCGM series carry
the exporter's own labels plus the pod mapping. Families and series come out in a fixed order.
"""

from __future__ import annotations

import gc
import math
import weakref
from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate

from services.simulator.fleet import Fleet, ServingPod
from services.simulator.gpus import GpuReadingInput
from services.simulator.pod_metrics import (
    E2E,
    GEN_LEN,
    MEAN_TPOT,
    PROMPT_LEN,
    QUEUE,
    TOKEN_LATENCY,
    TTFT,
    Histogram,
    PodMetrics,
    histogram_names,
    vllm_dialect,
)
from services.simulator.serving_config import SGLANG, TGI, VLLM

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_HELP = {
    "vllm:num_requests_running": "Number of requests in model execution batches.",
    "vllm:num_requests_waiting": "Number of requests waiting to be processed.",
    "vllm:kv_cache_usage_perc": "KV-cache usage. 1 means 100 percent usage.",
    "vllm:gpu_cache_usage_perc": "GPU KV-cache usage. 1 means 100 percent usage.",
    "vllm:prompt_tokens_total": "Number of prefill tokens processed.",
    "vllm:generation_tokens_total": "Number of generation tokens processed.",
    "vllm:request_success_total": "Count of successfully processed requests.",
    "vllm:request_prompt_tokens": "Number of prefill tokens processed.",
    "vllm:request_generation_tokens": "Number of generation tokens processed.",
    "vllm:time_to_first_token_seconds": "Histogram of time to first token in seconds.",
    "vllm:inter_token_latency_seconds": "Histogram of inter-token latency in seconds.",
    "vllm:time_per_output_token_seconds": "Histogram of time per output token in seconds.",
    "vllm:e2e_request_latency_seconds": "Histogram of e2e request latency in seconds.",
    "vllm:request_queue_time_seconds": "Histogram of time spent in WAITING phase for request.",
    "tgi_request_count": "Total number of requests",
    "tgi_request_success": "Number of successful requests",
    "tgi_request_failure": "Number of failed requests",
    "tgi_queue_size": "Current queue size",
    "tgi_batch_current_size": "Current batch size",
    "tgi_request_duration": "Request duration",
    "tgi_request_queue_duration": "Time spent in the queue per request",
    "tgi_request_mean_time_per_token_duration": "Mean time per token per request",
    "tgi_request_input_length": "Input token length per request",
    "tgi_request_generated_tokens": "Generated tokens per request",
    "sglang:num_running_reqs": "The number of running requests.",
    "sglang:num_queue_reqs": "The number of requests in the waiting queue.",
    "sglang:token_usage": "The token usage.",
    "sglang:gen_throughput": "The generation throughput (token/s).",
    "sglang:prompt_tokens_total": "Number of prefill tokens processed.",
    "sglang:generation_tokens_total": "Number of generation tokens processed.",
    "sglang:num_requests_total": "Number of requests processed.",
    "sglang:time_to_first_token_seconds": "Histogram of time to first token in seconds.",
    "sglang:inter_token_latency_seconds": "Histogram of inter-token latency in seconds.",
    "sglang:e2e_request_latency_seconds": "Histogram of End-to-end request latency in seconds",
}

# (name, help) in dcgm-exporter's default-counters.csv order.
_DCGM = (
    ("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz)."),
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W)."),
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %)."),
    ("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB)."),
)
_DCGM_VALUES: dict[str, Callable[[GpuReadingInput], str]] = {
    "DCGM_FI_DEV_SM_CLOCK": lambda r: str(r.sm_clock_mhz),
    "DCGM_FI_DEV_MEM_CLOCK": lambda r: str(r.gpu.mem_clock_mhz),
    "DCGM_FI_DEV_GPU_TEMP": lambda r: str(r.temperature_c),
    "DCGM_FI_DEV_POWER_USAGE": lambda r: f"{r.power_draw_w:.3f}",
    "DCGM_FI_DEV_GPU_UTIL": lambda r: str(r.utilization_gpu),
    "DCGM_FI_DEV_MEM_COPY_UTIL": lambda r: str(r.utilization_memory),
    "DCGM_FI_DEV_FB_FREE": lambda r: str(r.memory_free_mib),
    "DCGM_FI_DEV_FB_USED": lambda r: str(r.memory_used_mib),
}


def go_float(value: float) -> str:
    """A float as prometheus_client writes it (Go's switch to exponents included)."""
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(float(value))
    dot = text.find(".")
    if value > 0 and dot > 6:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+0{dot - 1}"
    return text


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Families:
    """Sample lines grouped by family, so each family's lines stay together."""

    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = {}
        self.kinds: dict[str, str] = {}
        self._le_cache: dict[tuple[tuple[float, ...], bool], list[str]] = {}  # le=...} parts

    def add(self, name: str, kind: str, line: str) -> None:
        bucket = self.lines.get(name)
        if bucket is None:
            bucket = self.lines[name] = []
            self.kinds[name] = kind
        bucket.append(line)

    def histogram(self, name: str, labels: str, h: Histogram, python_style: bool) -> None:
        key = (h.bounds, python_style)
        suffixes = self._le_cache.get(key)
        if suffixes is None:
            fmt: Callable[[float], str] = go_float if python_style else repr
            suffixes = [f'le="{fmt(b)}"}} ' for b in h.bounds] + ['le="+Inf"} ']
            self._le_cache[key] = suffixes
        prefix = f"{name}_bucket{{{labels},"
        bucket = self.lines.get(name)
        if bucket is None:
            bucket = self.lines[name] = []
            self.kinds[name] = "histogram"
        # prometheus_client writes counts as floats ("12.0"), TGI's Rust exporter as integers.
        if python_style:
            bucket.extend(
                [f"{prefix}{s}{c}.0" for s, c in zip(suffixes, accumulate(h.counts), strict=True)]
            )
            bucket.append(f"{name}_count{{{labels}}} {h.count}.0")
            bucket.append(f"{name}_sum{{{labels}}} {go_float(h.sum)}")
        else:
            bucket.extend(
                [f"{prefix}{s}{c}" for s, c in zip(suffixes, accumulate(h.counts), strict=True)]
            )
            bucket.append(f"{name}_count{{{labels}}} {h.count}")
            bucket.append(f"{name}_sum{{{labels}}} {h.sum!r}")

    def render(self, order: Iterable[str]) -> list[str]:
        out: list[str] = []
        dcgm_help = dict(_DCGM)
        for name in order:
            lines = self.lines.get(name)
            if not lines:
                continue
            help_text = _HELP.get(name) or dcgm_help.get(name, name)
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {self.kinds[name]}")
            out.extend(lines)
        return out


def _vllm(f: _Families, pod: ServingPod, m: PodMetrics) -> None:
    config = m.config
    dialect = vllm_dialect(config.engine_version)
    engine = ',engine="0"' if dialect.engine_label else ""
    base = f'model_name="{escape(config.served_model_name)}"{engine}'
    where = f'namespace="{escape(pod.namespace)}",pod="{escape(pod.name)}"'
    labels = f"{base},{where}"
    f.add(
        "vllm:num_requests_running", "gauge", f"vllm:num_requests_running{{{labels}}} {m.running}.0"
    )
    f.add(
        "vllm:num_requests_waiting", "gauge", f"vllm:num_requests_waiting{{{labels}}} {m.waiting}.0"
    )
    f.add(
        dialect.kv_usage_name,
        "gauge",
        f"{dialect.kv_usage_name}{{{labels}}} {go_float(m.kv_usage)}",
    )
    f.add(
        "vllm:prompt_tokens_total",
        "counter",
        f"vllm:prompt_tokens_total{{{labels}}} {m.prompt_tokens}.0",
    )
    f.add(
        "vllm:generation_tokens_total",
        "counter",
        f"vllm:generation_tokens_total{{{labels}}} {m.generation_tokens}.0",
    )
    aborted = m.failed.get("timeout", 0)
    for reason, value in (
        ("abort", aborted),
        ("length", m.finished["length"]),
        ("stop", m.finished["stop"]),
    ):
        f.add(
            "vllm:request_success_total",
            "counter",
            f'vllm:request_success_total{{{base},finished_reason="{reason}",{where}}} {value}.0',
        )
    names = histogram_names(config)
    for role in (PROMPT_LEN, GEN_LEN, TTFT, TOKEN_LATENCY, E2E, QUEUE):
        f.histogram(names[role][0], labels, m.histograms[role], python_style=True)


def _tgi(f: _Families, pod: ServingPod, m: PodMetrics) -> None:
    labels = f'namespace="{escape(pod.namespace)}",pod="{escape(pod.name)}"'
    failed = sum(m.failed.values())
    f.add("tgi_request_count", "counter", f"tgi_request_count{{{labels}}} {m.requests + failed}")
    f.add("tgi_request_success", "counter", f"tgi_request_success{{{labels}}} {m.requests}")
    for reason, value in sorted(m.failed.items()):
        if reason == "timeout":
            # TGI counts a request when it arrives; a client that hangs up is no InferError,
            # so it shows only as count - success - failure.
            continue
        f.add(
            "tgi_request_failure",
            "counter",
            f'tgi_request_failure{{err="{reason}",{labels}}} {value}',
        )
    f.add("tgi_queue_size", "gauge", f"tgi_queue_size{{{labels}}} {m.waiting}")
    f.add("tgi_batch_current_size", "gauge", f"tgi_batch_current_size{{{labels}}} {m.running}")
    names = histogram_names(m.config)
    for role in (E2E, QUEUE, MEAN_TPOT, PROMPT_LEN, GEN_LEN):
        f.histogram(names[role][0], labels, m.histograms[role], python_style=False)


def _sglang(f: _Families, pod: ServingPod, m: PodMetrics) -> None:
    base = f'model_name="{escape(m.config.served_model_name)}"'
    labels = f'{base},namespace="{escape(pod.namespace)}",pod="{escape(pod.name)}"'
    f.add("sglang:num_running_reqs", "gauge", f"sglang:num_running_reqs{{{labels}}} {m.running}.0")
    f.add("sglang:num_queue_reqs", "gauge", f"sglang:num_queue_reqs{{{labels}}} {m.waiting}.0")
    f.add(
        "sglang:token_usage",
        "gauge",
        f"sglang:token_usage{{{labels}}} {go_float(round(m.kv_usage, 2))}",
    )
    f.add(
        "sglang:gen_throughput",
        "gauge",
        f"sglang:gen_throughput{{{labels}}} {go_float(round(m.generation_throughput, 2))}",
    )
    for name, value in (
        ("sglang:prompt_tokens_total", m.prompt_tokens),
        ("sglang:generation_tokens_total", m.generation_tokens),
        ("sglang:num_requests_total", m.requests),
    ):
        f.add(name, "counter", f"{name}{{{labels}}} {value}.0")
    names = histogram_names(m.config)
    for role in (TTFT, TOKEN_LATENCY, E2E):
        f.histogram(names[role][0], labels, m.histograms[role], python_style=True)


_FAMILY_ORDER = (
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:gpu_cache_usage_perc",
    "vllm:kv_cache_usage_perc",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:request_success_total",
    "vllm:request_prompt_tokens",
    "vllm:request_generation_tokens",
    "vllm:time_to_first_token_seconds",
    "vllm:time_per_output_token_seconds",
    "vllm:inter_token_latency_seconds",
    "vllm:e2e_request_latency_seconds",
    "vllm:request_queue_time_seconds",
    "tgi_request_count",
    "tgi_request_success",
    "tgi_request_failure",
    "tgi_queue_size",
    "tgi_batch_current_size",
    "tgi_request_duration",
    "tgi_request_queue_duration",
    "tgi_request_mean_time_per_token_duration",
    "tgi_request_input_length",
    "tgi_request_generated_tokens",
    "sglang:num_running_reqs",
    "sglang:num_queue_reqs",
    "sglang:token_usage",
    "sglang:gen_throughput",
    "sglang:prompt_tokens_total",
    "sglang:generation_tokens_total",
    "sglang:num_requests_total",
    "sglang:time_to_first_token_seconds",
    "sglang:inter_token_latency_seconds",
    "sglang:e2e_request_latency_seconds",
    *(name for name, _ in _DCGM),
)

_EMITTERS = {VLLM: _vllm, TGI: _tgi, SGLANG: _sglang}
_LAST_PAGE: weakref.WeakKeyDictionary[Fleet, tuple[object, str]] = weakref.WeakKeyDictionary()


def _dcgm(f: _Families, pod: ServingPod, readings: Sequence[GpuReadingInput]) -> None:
    for r in readings:
        labels = (
            f'gpu="{r.node_index}",UUID="{r.uuid}",pci_bus_id="{r.pci_bus_id}",'
            f'device="nvidia{r.node_index}",modelName="{r.gpu.nvml_name}",'
            f'Hostname="{escape(r.node_name)}",DCGM_FI_DRIVER_VERSION="{r.gpu.driver_version}",'
            f'container="{escape(pod.container_name)}",namespace="{escape(pod.namespace)}",'
            f'pod="{escape(pod.name)}"'
        )
        for name, _ in _DCGM:
            f.add(name, "gauge", f"{name}{{{labels}}} {_DCGM_VALUES[name](r)}")


def render_metrics(fleet: Fleet, pods: Sequence[ServingPod]) -> str:
    """The /metrics page for `pods`: engine series of ready pods that serve metrics, and DCGM
    series of every GPU the pods hold (one pod per GPU: a GPU claimed twice is shown once).

    Never raises; pods the fleet has not advanced yet show no engine series.
    """
    # Prometheus may scrape several times per tick: the page only changes when the fleet
    # advances or the set of pods (or their readiness) changes.
    key = (
        fleet.generation,
        tuple((p.namespace, p.name, p.ready, p.node_name, p.serving_since) for p in pods),
    )
    cached = _LAST_PAGE.get(fleet)
    if cached is not None and cached[0] == key:
        return cached[1]
    # A million short strings would trigger the cyclic GC over and over for nothing: none of
    # them can form a cycle.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        page = _render(fleet, pods)
    finally:
        if was_enabled:
            gc.enable()
    _LAST_PAGE[fleet] = (key, page)
    return page


def _render(fleet: Fleet, pods: Sequence[ServingPod]) -> str:
    families = _Families()
    seen_gpus: set[tuple[str, int]] = set()
    for pod in sorted(pods, key=lambda p: (p.namespace, p.name)):
        metrics = fleet.pod_metrics(pod.namespace, pod.name)
        if metrics is not None and pod.ready and metrics.config.metrics_enabled:
            _EMITTERS[metrics.config.engine](families, pod, metrics)
        if pod.gpu_count > 0:
            readings = [
                r for r in fleet.gpu_readings(pod) if (r.node_name, r.node_index) not in seen_gpus
            ]
            seen_gpus.update((r.node_name, r.node_index) for r in readings)
            _dcgm(families, pod, readings)
    return "\n".join(families.render(_FAMILY_ORDER)) + "\n"
