"""How big a served model is: parameters, shape, weight and KV-cache memory.

Only proportions matter here; the figures are those of the usual dense decoder families
(Llama, Qwen, Mistral) so that what fits and what does not matches what operators see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIB = 1024 * 1024
DEFAULT_PARAMS_B = 8.0
# The context length an unset --max-model-len resolves to (the checkpoint's config), and the
# longest the checkpoint supports at all (rope scaling) before the engines refuse.
DEFAULT_CONTEXT = 32768
MODEL_MAX_CONTEXT = 131072
# Activations, CUDA graphs and the CUDA context, per GPU, that the engines hold back.
RUNTIME_OVERHEAD_MIB = 1024

_PARAMS = re.compile(r"(?<![0-9.])(?:(\d+)x)?(\d+(?:\.\d+)?)\s*([bBmM])(?![a-zA-Z0-9])")


@dataclass(frozen=True)
class ModelShape:
    params_b: float
    layers: int
    hidden: int
    kv_heads: int
    head_dim: int


# (largest parameter count in billions, layers, hidden, kv heads, head dim)
_SHAPES = (
    (1.0, 16, 2048, 8, 64),
    (2.0, 28, 1536, 2, 128),
    (4.0, 28, 3072, 8, 128),
    (10.0, 32, 4096, 8, 128),
    (20.0, 48, 5120, 8, 128),
    (40.0, 64, 5120, 8, 128),
    (90.0, 80, 8192, 8, 128),
    (1e9, 126, 16384, 8, 128),
)


def parameter_count_b(model: str) -> float:
    """Billions of parameters read from a model name (`Llama-3.1-70B`, `Mixtral-8x7B`, `opt-125m`).

    Names that state no size are taken as 8B models.
    """
    best: float | None = None
    for match in _PARAMS.finditer(model.rsplit("/", 1)[-1]):
        experts = int(match.group(1)) if match.group(1) else 1
        scale = 0.001 if match.group(3) in "mM" else 1.0
        value = experts * float(match.group(2)) * scale
        best = value if best is None else max(best, value)
    return best if best is not None else DEFAULT_PARAMS_B


def model_shape(model: str) -> ModelShape:
    params = parameter_count_b(model)
    for limit, layers, hidden, kv_heads, head_dim in _SHAPES:
        if params <= limit:
            return ModelShape(params, layers, hidden, kv_heads, head_dim)
    raise AssertionError("unreachable: the last shape has no upper limit")


def dtype_bytes(dtype: str) -> float:
    """Bytes per element of an (effective) dtype name."""
    if dtype in ("float32",):
        return 4.0
    if dtype.startswith("fp8") or dtype in ("int8", "float8"):
        return 1.0
    return 2.0


def weight_bytes_per_param(dtype: str, quantization: str | None) -> float:
    if quantization:
        q = quantization.lower()
        if q in ("awq", "gptq", "awq_marlin", "gptq_marlin", "bitsandbytes", "bnb", "marlin"):
            return 0.55  # 4-bit weights plus scales
        if q in ("fp8", "eetq", "int8", "compressed-tensors", "fbgemm_fp8"):
            return 1.0
    return dtype_bytes(dtype)


def kv_bytes_per_token(shape: ModelShape, kv_dtype: str) -> float:
    """KV-cache bytes one token occupies across all layers (summed over tensor-parallel ranks)."""
    return 2.0 * shape.layers * shape.kv_heads * shape.head_dim * dtype_bytes(kv_dtype)


@dataclass(frozen=True)
class MemoryPlan:
    """How an engine's memory budget splits, summed over its tensor-parallel GPUs."""

    budget_mib: float  # memory the engine may use: total * fraction * GPUs
    weights_mib: float
    overhead_mib: float
    kv_mib: float  # what is left for the KV cache (negative: does not fit)
    kv_tokens: int  # tokens the KV cache can hold
    per_gpu_free_after_weights_mib: float  # negative when the weights alone do not fit

    @property
    def weights_fit(self) -> bool:
        return self.per_gpu_free_after_weights_mib >= 0


def plan_memory(
    *,
    gpu_memory_mib: int,
    gpus: int,
    fraction: float,
    shape: ModelShape,
    weight_dtype: str,
    quantization: str | None,
    kv_dtype: str,
) -> MemoryPlan:
    gpus = max(1, gpus)
    budget = gpu_memory_mib * fraction * gpus
    weights = shape.params_b * 1e9 * weight_bytes_per_param(weight_dtype, quantization) / MIB
    overhead = RUNTIME_OVERHEAD_MIB * gpus
    kv = budget - weights - overhead
    per_token = kv_bytes_per_token(shape, kv_dtype)
    tokens = int(kv * MIB / per_token) // 16 * 16 if kv > 0 else 0  # whole 16-token blocks
    free_after_weights = gpu_memory_mib * fraction - weights / gpus
    return MemoryPlan(budget, weights, overhead, kv, tokens, free_after_weights)
