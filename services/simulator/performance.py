"""The physics of one serving engine on one GPU class: prefill, decode steps, capacity, memory.

Decode is memory-bandwidth bound (every step reads the weights once, plus each running
sequence's KV cache); prefill is compute bound (2 FLOPs per parameter per prompt token plus
attention, quadratic in the prompt). An H100 SXM is the unit; other GPUs scale by the
catalogue's compute and bandwidth factors, float32 runs without bf16/fp16 tensor cores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

from services.simulator.engine_startup import memory_plan, runtime_dtype
from services.simulator.gpus import GpuClass
from services.simulator.model_sizing import (
    kv_bytes_per_token,
    model_shape,
    weight_bytes_per_param,
)
from services.simulator.serving_config import SGLANG, TGI, ServingConfig

H100_FLOPS = 989e12 * 0.55  # achieved dense bf16 FLOP/s in prefill
H100_BANDWIDTH = 3.35e12 * 0.8  # achieved HBM bytes/s in decode
STEP_OVERHEAD_S = 0.0015  # scheduler, sampling and kernel launch per decode step
FP32_COMPUTE_FACTOR = 0.1  # no tensor cores for float32 matmuls


@dataclass(frozen=True)
class EngineCosts:
    """Per-pod constants of the performance model."""

    step_base_s: float  # one decode step with an empty batch
    step_per_seq_s: float  # added per running sequence (its share of the matmuls)
    step_per_ctx_token_s: float  # added per running sequence per context token (KV reads)
    prefill_per_token_s: float
    prefill_per_token2_s: float  # attention: quadratic in prompt length
    kv_tokens: int
    max_running: int  # the engine's running-sequence limit
    max_in_flight: int | None  # TGI answers 429 beyond --max-concurrent-requests
    fb_used_mib: int  # what nvidia-smi shows used on each active GPU
    active_gpus: int  # GPUs the engine computes on (tensor-parallel size)

    def prefill_s(self, prompt_tokens: float) -> float:
        return (
            self.prefill_per_token_s * prompt_tokens + self.prefill_per_token2_s * prompt_tokens**2
        )

    def step_s(self, running: float, ctx_tokens: float) -> float:
        per_seq = self.step_per_seq_s + ctx_tokens * self.step_per_ctx_token_s
        return self.step_base_s + running * per_seq


@lru_cache(maxsize=1024)
def engine_costs(config: ServingConfig, gpu: GpuClass, gpu_count: int) -> EngineCosts:
    dtype = runtime_dtype(config, gpu)
    shape = model_shape(config.model)
    tp = max(1, min(config.tensor_parallel_size, gpu_count))
    # Tensor parallelism splits the work but pays all-reduces each layer.
    tp_efficiency = 1.0 / (1.0 + 0.12 * (tp - 1))
    flops = H100_FLOPS * gpu.compute_factor * tp * tp_efficiency
    if dtype == "float32":
        flops *= FP32_COMPUTE_FACTOR
    bandwidth = H100_BANDWIDTH * gpu.bandwidth_factor * tp * tp_efficiency
    weights = shape.params_b * 1e9 * weight_bytes_per_param(dtype, config.quantization)
    kv_dtype = "fp8" if (config.kv_cache_dtype or "").startswith("fp8") else dtype
    plan = memory_plan(config, gpu, gpu_count)
    per_token_flops = 2.0 * shape.params_b * 1e9
    attention_flops = 2.0 * shape.layers * shape.hidden  # per prompt token squared
    fraction = config.gpu_memory_utilization
    if config.engine == TGI:
        used = gpu.memory_mib * min(0.96, fraction)
    elif config.engine == SGLANG:
        used = gpu.memory_mib * fraction + 1400
    else:
        used = gpu.memory_mib * fraction + 430
    return EngineCosts(
        step_base_s=weights / bandwidth + STEP_OVERHEAD_S,
        step_per_seq_s=per_token_flops / flops,
        step_per_ctx_token_s=kv_bytes_per_token(shape, kv_dtype) / bandwidth,
        prefill_per_token_s=per_token_flops / flops,
        prefill_per_token2_s=attention_flops / flops,
        kv_tokens=max(0, plan.kv_tokens),
        max_running=max(1, config.effective_max_num_seqs(gpu)) if config.engine != TGI else 1 << 30,
        max_in_flight=config.effective_max_num_seqs(gpu) if config.engine == TGI else None,
        fb_used_mib=int(min(used, gpu.memory_mib - gpu.reserved_mib)),
        active_gpus=tp,
    )


def lognormal_mu(mean: float, sigma: float) -> float:
    """The mu of a lognormal with this mean and sigma."""
    return math.log(max(mean, 1.0)) - sigma * sigma / 2.0


_NODES = 20
_Z = tuple(NormalDist().inv_cdf((k + 0.5) / _NODES) for k in range(_NODES))


@dataclass(frozen=True)
class Limits:
    """The request limits a pod enforces."""

    max_prompt: int  # longer prompts are rejected
    max_total: int  # prompt + output may not exceed this (output is cut: finished "length")
    max_new: int


@dataclass(frozen=True)
class MixSummary:
    """Expectations over the traffic mix a pod accepts (deterministic quadrature)."""

    accepted: float  # share of requests accepted
    long_share: float  # share of accepted requests that are long-context
    prompt: float
    output: float
    prefill_s: float  # mean prefill time
    long_accept: float  # share of long prompts that fit


@lru_cache(maxsize=4096)
def mix_summary(
    short: tuple[float, float],
    long: tuple[float, float],
    output: tuple[float, float],
    long_share: float,
    limits: Limits,
    costs: EngineCosts,
) -> MixSummary:
    """short/long/output: (mean tokens, lognormal sigma)."""
    outs = [math.exp(lognormal_mu(*output) + output[1] * z) for z in _Z]

    def one_class(mean: float, sigma: float) -> tuple[float, float, float, float]:
        mu = lognormal_mu(mean, sigma)
        kept = prompt_sum = out_sum = prefill_sum = 0.0
        for z in _Z:
            p = math.exp(mu + sigma * z)
            if p > limits.max_prompt:
                continue
            room = min(limits.max_new, limits.max_total - p)
            kept += 1.0
            prompt_sum += p
            prefill_sum += costs.prefill_s(p)
            out_sum += sum(min(o, room) for o in outs) / len(outs)
        if kept == 0:
            return 0.0, 0.0, 0.0, 0.0
        return kept / len(_Z), prompt_sum / kept, out_sum / kept, prefill_sum / kept

    s_acc, s_p, s_o, s_pf = one_class(*short)
    l_acc, l_p, l_o, l_pf = one_class(*long)
    short_w, long_w = (1.0 - long_share) * s_acc, long_share * l_acc
    total = short_w + long_w
    if total <= 0:
        return MixSummary(0.0, 0.0, 0.0, 0.0, 0.0, l_acc)
    a, b = short_w / total, long_w / total
    return MixSummary(
        accepted=total,
        long_share=b,
        prompt=a * s_p + b * l_p,
        output=a * s_o + b * l_o,
        prefill_s=a * s_pf + b * l_pf,
        long_accept=l_acc,
    )


@dataclass(frozen=True)
class Capacity:
    """A pod at saturation for one traffic mix."""

    max_running: float  # the running-sequence limit: engine setting or KV cache, the smaller
    requests_per_s: float  # the most requests per second it completes
    prefill_load: float  # share of GPU time spent in prefill at that rate
    ctx_tokens: float  # mean context of a running sequence
    ttft_s: float  # prefill plus the first decode step, without queueing


@lru_cache(maxsize=4096)
def capacity(costs: EngineCosts, mix: MixSummary) -> Capacity:
    ctx = mix.prompt + mix.output / 2.0
    kv_limit = costs.kv_tokens / max(1.0, mix.prompt + mix.output)
    max_running = max(1.0, min(float(costs.max_running), kv_limit))
    ttft = mix.prefill_s + costs.step_base_s
    step_full = costs.step_s(max_running, ctx)

    def running_needed(rate: float) -> float:
        # Little's law with a full batch; prefill of the arrivals steals decode time.
        decode_share = 1.0 - rate * mix.prefill_s
        return rate * ttft + rate * mix.output * step_full / decode_share

    high = 0.95 / mix.prefill_s if mix.prefill_s > 0 else 1e6
    if running_needed(high) <= max_running:
        rate = high
    else:
        low = 0.0
        for _ in range(48):
            mid = (low + high) / 2.0
            low, high = (mid, high) if running_needed(mid) <= max_running else (low, mid)
        rate = low
    return Capacity(max_running, rate, rate * mix.prefill_s, ctx, ttft)
