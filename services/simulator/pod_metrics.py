"""What one serving pod has counted since its engine started: histograms, counters, gauges.

Metric names, bucket boundaries and help texts are the engines' own (vLLM's
`vllm/v1/metrics/loggers.py`, TGI's router `server.rs`, SGLang's `metrics/collector.py`),
chosen per engine version where the engines renamed things.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

from services.simulator.gpus import GpuReadingInput
from services.simulator.serving_config import SGLANG, TGI, VLLM, ServingConfig, version_tuple

VLLM_REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
    40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
# Releases before 0.6 stopped at 60 s, which pins any worse p99 to the top bucket.
VLLM_OLD_REQUEST_LATENCY_BUCKETS = (1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)
VLLM_TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
VLLM_TOKEN_LATENCY_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
SGLANG_TTFT_BUCKETS = (
    0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0,
    200.0, 400.0,
)  # fmt: skip
SGLANG_E2E_BUCKETS = (*SGLANG_TTFT_BUCKETS, 600.0, 1200.0, 1800.0, 2400.0)
SGLANG_ITL_BUCKETS = (
    0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060,
    0.080, 0.100, 0.200, 0.400, 0.600, 0.800, 1.000, 2.000, 4.000, 6.000, 8.000,
)  # fmt: skip


def _tgi_duration_buckets() -> tuple[float, ...]:
    # TGI's router: 35 buckets, a geometric sequence from 0.0001 * 1.5.
    value, out = 0.0001, []
    for _ in range(35):
        value *= 1.5
        out.append(value)
    return tuple(out)


TGI_DURATION_BUCKETS = _tgi_duration_buckets()


def one_two_five_buckets(maximum: int) -> tuple[float, ...]:
    """vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... up to `maximum`."""
    out: list[float] = []
    exponent = 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > maximum:
                return tuple(out)
            out.append(float(value))
        exponent += 1


def tgi_length_buckets(maximum: int) -> tuple[float, ...]:
    return tuple(maximum / 100.0 * (x + 1) for x in range(100))


class Histogram:
    """A Prometheus histogram's state: per-bucket counts (last one is +Inf), sum and count."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float, weight: int = 1) -> None:
        # Prometheus buckets are upper-inclusive (le), which bisect_left gives.
        self.counts[bisect_left(self.bounds, value)] += weight
        self.sum += value * weight
        self.count += weight

    def cumulative(self) -> list[int]:
        out, running = [], 0
        for c in self.counts:
            running += c
            out.append(running)
        return out


@dataclass(frozen=True)
class VllmDialect:
    """The metric names one vLLM release exposes."""

    engine_label: bool
    kv_usage_name: str
    token_latency_name: str
    e2e_buckets: tuple[float, ...]


def vllm_dialect(version: str) -> VllmDialect:
    v = version_tuple(version)
    return VllmDialect(
        engine_label=v >= (0, 9),
        kv_usage_name="vllm:kv_cache_usage_perc" if v >= (0, 9) else "vllm:gpu_cache_usage_perc",
        token_latency_name=(
            "vllm:inter_token_latency_seconds"
            if v >= (0, 10)
            else "vllm:time_per_output_token_seconds"
        ),
        e2e_buckets=VLLM_REQUEST_LATENCY_BUCKETS
        if v >= (0, 6)
        else VLLM_OLD_REQUEST_LATENCY_BUCKETS,
    )


# Histogram families each engine keeps, by the role the fleet model observes into them.
E2E, TTFT, QUEUE, TOKEN_LATENCY, PROMPT_LEN, GEN_LEN, MEAN_TPOT = (
    "e2e", "ttft", "queue", "token_latency", "prompt_len", "gen_len", "mean_tpot",
)  # fmt: skip


def histogram_names(config: ServingConfig) -> dict[str, tuple[str, tuple[float, ...]]]:
    """role -> (metric family name, bucket upper bounds) for the pod's engine and version."""
    max_len = config.effective_max_model_len
    if config.engine == VLLM:
        d = vllm_dialect(config.engine_version)
        return {
            E2E: ("vllm:e2e_request_latency_seconds", d.e2e_buckets),
            QUEUE: ("vllm:request_queue_time_seconds", d.e2e_buckets),
            TTFT: ("vllm:time_to_first_token_seconds", VLLM_TTFT_BUCKETS),
            TOKEN_LATENCY: (d.token_latency_name, VLLM_TOKEN_LATENCY_BUCKETS),
            PROMPT_LEN: ("vllm:request_prompt_tokens", one_two_five_buckets(max_len)),
            GEN_LEN: ("vllm:request_generation_tokens", one_two_five_buckets(max_len)),
        }
    if config.engine == TGI:
        max_input = config.max_input_tokens or max_len - 1
        return {
            E2E: ("tgi_request_duration", TGI_DURATION_BUCKETS),
            QUEUE: ("tgi_request_queue_duration", TGI_DURATION_BUCKETS),
            MEAN_TPOT: ("tgi_request_mean_time_per_token_duration", TGI_DURATION_BUCKETS),
            PROMPT_LEN: ("tgi_request_input_length", tgi_length_buckets(max_input)),
            GEN_LEN: ("tgi_request_generated_tokens", tgi_length_buckets(max_len)),
        }
    assert config.engine == SGLANG
    return {
        E2E: ("sglang:e2e_request_latency_seconds", SGLANG_E2E_BUCKETS),
        TTFT: ("sglang:time_to_first_token_seconds", SGLANG_TTFT_BUCKETS),
        TOKEN_LATENCY: ("sglang:inter_token_latency_seconds", SGLANG_ITL_BUCKETS),
    }


@dataclass
class PodMetrics:
    """Everything one pod's engine has counted since it (re)started serving."""

    config: ServingConfig
    serving_since: float
    histograms: dict[str, Histogram]  # by role (E2E, TTFT, ...)
    finished: dict[str, int] = field(default_factory=lambda: {"stop": 0, "length": 0})
    failed: dict[str, int] = field(default_factory=dict)  # reason -> requests refused or aborted
    prompt_tokens: int = 0
    generation_tokens: int = 0
    running: int = 0
    waiting: int = 0
    kv_usage: float = 0.0
    generation_throughput: float = 0.0  # tokens/s over the last tick
    backlog: int = 0  # queued requests carried into the next tick
    readings: tuple[GpuReadingInput, ...] = ()

    @classmethod
    def fresh(cls, config: ServingConfig, serving_since: float) -> PodMetrics:
        hists = {role: Histogram(bounds) for role, (_, bounds) in histogram_names(config).items()}
        return cls(config=config, serving_since=serving_since, histograms=hists)

    @property
    def requests(self) -> int:
        return sum(self.finished.values())
