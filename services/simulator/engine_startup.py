"""Whether a serving engine starts on a GPU class, and how its memory splits if it does.

The errors are the engines' own final lines, so an operator reading `kubectl logs` of a
crash-looping pod sees what they would see in a real cluster.
"""

from __future__ import annotations

from services.simulator.gpus import GpuClass
from services.simulator.model_sizing import (
    MODEL_MAX_CONTEXT,
    MemoryPlan,
    kv_bytes_per_token,
    model_shape,
    plan_memory,
)
from services.simulator.serving_config import TGI, VLLM, ServingConfig, version_tuple

MIB_PER_GIB = 1024.0


def runtime_dtype(config: ServingConfig, gpu: GpuClass) -> str:
    """The dtype the engine really computes in on `gpu`.

    `auto` on a GPU without bfloat16 (Turing) falls back to float16, as the engines do.
    """
    auto = config.dtype in (None, "auto")
    if config.effective_dtype == "bfloat16" and not gpu.supports_bfloat16 and auto:
        return "float16"
    return config.effective_dtype


def _kv_dtype(config: ServingConfig, dtype: str) -> str:
    kv = (config.kv_cache_dtype or "auto").lower()
    return "fp8" if kv.startswith("fp8") else dtype


def memory_plan(config: ServingConfig, gpu: GpuClass, gpu_count: int | None = None) -> MemoryPlan:
    """How the engine's memory splits into weights and KV cache on its tensor-parallel GPUs."""
    dtype = runtime_dtype(config, gpu)
    gpus = (
        config.tensor_parallel_size
        if gpu_count is None
        else min(gpu_count, config.tensor_parallel_size)
    )
    # TGI takes its fraction of what is left after a safety margin; never the whole card.
    fraction = (
        min(config.gpu_memory_utilization, 0.95)
        if config.engine == TGI
        else config.gpu_memory_utilization
    )
    return plan_memory(
        gpu_memory_mib=gpu.memory_mib,
        gpus=gpus,
        fraction=fraction,
        shape=model_shape(config.model),
        weight_dtype=dtype,
        quantization=config.quantization,
        kv_dtype=_kv_dtype(config, dtype),
    )


def _oom(gpu: GpuClass, plan: MemoryPlan, gpus: int) -> str:
    capacity = gpu.memory_mib / MIB_PER_GIB
    in_use = capacity - 0.3
    want = plan.weights_mib / gpus - gpu.memory_mib * 0.9
    return (
        "torch.OutOfMemoryError: CUDA out of memory. "
        f"Tried to allocate {max(want, 112.0):.2f} MiB. "
        f"GPU 0 has a total capacity of {capacity:.2f} GiB of which 301.06 MiB is free. "
        f"Including non-PyTorch memory, this process has {in_use:.2f} GiB memory in use."
    )


def _vllm_failure(config: ServingConfig, gpu: GpuClass, gpu_count: int) -> tuple[str, str] | None:
    """(stage, error) where stage is 'args', 'load' or 'kv'."""
    tp = config.tensor_parallel_size
    if tp > gpu_count:
        return "args", (
            f"ValueError: Tensor parallel size ({tp}) cannot be larger than the number of "
            f"available GPUs ({gpu_count})."
        )
    dtype = runtime_dtype(config, gpu)
    if dtype == "bfloat16" and not gpu.supports_bfloat16:
        return "args", (
            "ValueError: Bfloat16 is only supported on GPUs with compute capability of at least "
            f"8.0. Your {gpu.nvml_name} GPU has compute capability {gpu.compute_cap}. You can use "
            "float16 instead by explicitly setting the `dtype` flag in CLI, for example: "
            "--dtype=half."
        )
    max_len = config.effective_max_model_len
    if max_len > MODEL_MAX_CONTEXT and not config.allow_long_context:
        return "args", (
            f"ValueError: User-specified max_model_len ({max_len}) is greater than the derived "
            f"max_model_len (max_position_embeddings={MODEL_MAX_CONTEXT} or model_max_length=None "
            "in model's config.json). This may lead to incorrect model outputs or CUDA errors. To "
            "allow overriding this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1"
        )
    plan = memory_plan(config, gpu, gpu_count)
    if not plan.weights_fit:
        return "load", _oom(gpu, plan, tp)
    if plan.kv_tokens <= 0:
        return "kv", (
            "ValueError: No available memory for the cache blocks. Try increasing "
            "`gpu_memory_utilization` when initializing the engine."
        )
    if plan.kv_tokens < max_len:
        if version_tuple(config.engine_version) < (0, 8):
            return "kv", (
                f"ValueError: The model's max seq len ({max_len}) is larger than the maximum "
                f"number of tokens that can be stored in KV cache ({plan.kv_tokens}). Try "
                "increasing `gpu_memory_utilization` or decreasing `max_model_len` when "
                "initializing the engine."
            )
        per_token = kv_bytes_per_token(model_shape(config.model), _kv_dtype(config, dtype))
        needed = max_len * per_token / 1024**3
        available = plan.kv_mib / MIB_PER_GIB
        return "kv", (
            "ValueError: To serve at least one request with the models's max seq len "
            f"({max_len}), ({needed:.2f} GiB KV cache is needed, which is larger than the "
            f"available KV cache memory ({available:.2f} GiB). Based on the available memory, the "
            f"estimated maximum model length is {plan.kv_tokens}. Try increasing "
            "`gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine."
        )
    return None


def _tgi_failure(config: ServingConfig, gpu: GpuClass, gpu_count: int) -> tuple[str, str] | None:
    if config.dtype is not None and config.dtype not in ("float16", "bfloat16"):
        return "args", f"error: invalid value '{config.dtype}' for '--dtype <DTYPE>'"
    if config.tensor_parallel_size > gpu_count:
        return "args", (
            f'Error: ArgumentValidation("`num_shard` cannot be > than the number of visible GPUs: '
            f'{config.tensor_parallel_size} > {gpu_count}")'
        )
    if (
        config.max_input_tokens is not None
        and config.max_input_tokens >= config.effective_max_model_len
    ):
        return (
            "args",
            'Error: ArgumentValidation("`max_input_tokens` must be < `max_total_tokens`")',
        )
    plan = memory_plan(config, gpu, gpu_count)
    if not plan.weights_fit:
        return "load", _oom(gpu, plan, config.tensor_parallel_size)
    if plan.kv_tokens < config.effective_max_model_len:
        need = config.effective_max_model_len
        return "kv", (
            'Error: WebServer(Warmup(Generation("Not enough memory to handle '
            f"{need} prefill tokens. "
            'You need to decrease `--max-batch-prefill-tokens`")))'
        )
    return None


def _sglang_failure(config: ServingConfig, gpu: GpuClass, gpu_count: int) -> tuple[str, str] | None:
    if config.tensor_parallel_size > gpu_count:
        return "args", "RuntimeError: CUDA error: invalid device ordinal"
    max_len = config.effective_max_model_len
    if max_len > MODEL_MAX_CONTEXT and not config.allow_long_context:
        return "args", (
            f"ValueError: User-specified context_length ({max_len}) is greater than the derived "
            f"context_length ({MODEL_MAX_CONTEXT}). This may lead to incorrect model outputs or "
            "CUDA errors. To allow overriding this maximum, set the env var "
            "SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1"
        )
    plan = memory_plan(config, gpu, gpu_count)
    if not plan.weights_fit:
        return "load", _oom(gpu, plan, config.tensor_parallel_size)
    if plan.kv_tokens <= 0:
        return (
            "kv",
            "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.",
        )
    return None


def startup_stage(config: ServingConfig, gpu: GpuClass, gpu_count: int) -> tuple[str, str] | None:
    """(stage, error) for an engine that cannot start, None for one that can.

    The stage is where the start stops: "args" (configuration refused), "load" (weights do not
    fit) or "kv" (no room for the KV cache the configuration needs).
    """
    if config.argument_error is not None:
        return "args", config.argument_error
    if config.engine == VLLM:
        return _vllm_failure(config, gpu, gpu_count)
    if config.engine == TGI:
        return _tgi_failure(config, gpu, gpu_count)
    return _sglang_failure(config, gpu, gpu_count)


def startup_failure(config: ServingConfig, gpu: GpuClass, gpu_count: int) -> str | None:
    """Why the engine cannot start on `gpu_count` GPUs of class `gpu`, or None when it starts.

    The reason is the engine's own final error line (argument errors, bf16 on Turing, weights
    that do not fit, a KV cache too small for the max model length). Never raises.
    """
    found = startup_stage(config, gpu, gpu_count)
    return found[1] if found else None
