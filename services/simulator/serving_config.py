"""Reading a serving container (vLLM, TGI, SGLang) the way the engine itself would.

The simulator keeps its own reading of the serving flags, independent of the product's
drift checks, so that a parsing bug in one cannot hide behind the same bug in the other.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.simulator.gpus import GpuClass
from services.simulator.model_sizing import DEFAULT_CONTEXT

VLLM = "vllm"
TGI = "tgi"
SGLANG = "sglang"

DEFAULT_MAX_NEW_TOKENS = 4096
_DEFAULT_VERSIONS = {VLLM: "0.10.1.1", TGI: "3.3.4", SGLANG: "0.4.9.post2"}
_DEFAULT_PORTS = {VLLM: 8000, TGI: 80, SGLANG: 30000}
_DEFAULT_MEMORY_FRACTION = {VLLM: 0.9, TGI: 1.0, SGLANG: 0.88}
# The models the engines load when none is named.
_DEFAULT_MODELS = {VLLM: "facebook/opt-125m", TGI: "bigscience/bloom-560m", SGLANG: ""}

# Flags that take no value; without this list `--enforce-eager MODEL` would eat the model.
_BOOLEAN_FLAGS = frozenset(
    {
        "trust-remote-code", "enforce-eager", "enable-prefix-caching", "no-enable-prefix-caching",
        "disable-log-requests", "enable-log-requests", "disable-log-stats",
        "enable-chunked-prefill", "no-enable-chunked-prefill", "enable-auto-tool-choice",
        "disable-custom-all-reduce",
        "enable-lora", "disable-frontend-multiprocessing", "async-scheduling", "enable-metrics",
        "disable-radix-cache", "enable-torch-compile", "disable-cuda-graph", "enable-mixed-chunk",
        "skip-tokenizer-init", "disable-custom-kernels", "json-output", "disable-grammar-support",
        "disable-usage-stats", "enable-sleep-mode", "skip-server-warmup",
    }
)  # fmt: skip
_MULTI_VALUE_FLAGS = frozenset({"served-model-name"})
_SHORT_FLAGS = {"-tp": "tensor-parallel-size", "-q": "quantization", "-O": "compilation-config"}
_LAUNCHER_WORDS = frozenset(
    {"python", "python3", "-m", "vllm", "serve", "sh", "bash", "-c", "exec"}
)
_SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh"})
_ENV_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


class NotAServingContainer(ValueError):
    """The container runs none of the serving engines the simulator knows."""


@dataclass(frozen=True)
class ServingConfig:
    """What a serving container asks its engine for; `None` means left to the engine's default."""

    engine: str  # "vllm" | "tgi" | "sglang"
    image: str
    engine_version: str
    model: str
    served_model_name: str  # vLLM's metrics label model_name
    revision: str | None
    tokenizer_revision: str | None
    dtype: str | None  # as configured ("auto", "half", ...)
    effective_dtype: str  # float16 | bfloat16 | float32
    quantization: str | None
    kv_cache_dtype: str | None
    max_model_len: int | None
    max_num_seqs: int | None
    max_num_batched_tokens: int | None
    max_new_tokens: int | None
    max_input_tokens: int | None  # TGI only
    tensor_parallel_size: int
    gpu_memory_utilization: float  # configured or the engine's default fraction
    port: int
    metrics_enabled: bool  # SGLang serves /metrics only with --enable-metrics
    allow_long_context: bool  # VLLM_ALLOW_LONG_MAX_MODEL_LEN / SGLang's equivalent
    argument_error: str | None  # what the engine's argument parser would refuse, if anything

    @property
    def effective_max_model_len(self) -> int:
        return self.max_model_len if self.max_model_len is not None else DEFAULT_CONTEXT

    @property
    def effective_max_new_tokens(self) -> int:
        return self.max_new_tokens if self.max_new_tokens is not None else DEFAULT_MAX_NEW_TOKENS

    def effective_max_num_seqs(self, gpu: GpuClass) -> int:
        """The concurrency limit the engine runs with on `gpu`.

        vLLM picks its default from the hardware (1024 on a >=70 GiB GPU that is not an A100,
        else 256), so moving a Deployment to another GPU class silently changes it.
        """
        if self.max_num_seqs is not None:
            return self.max_num_seqs
        if self.engine == VLLM:
            big = gpu.memory_mib >= 70 * 1024 and "A100" not in gpu.nvml_name
            return 1024 if big else 256
        if self.engine == TGI:
            return 128
        return 256

    def effective_max_num_batched_tokens(self, gpu: GpuClass) -> int:
        if self.max_num_batched_tokens is not None:
            return self.max_num_batched_tokens
        big = gpu.memory_mib >= 70 * 1024 and "A100" not in gpu.nvml_name
        return 8192 if big else 2048


def version_tuple(version: str) -> tuple[int, ...]:
    """The numeric release of an engine version string ("0.9.2.post1" -> (0, 9, 2))."""
    parts = []
    for piece in version.split("."):
        digits = "".join(c for c in piece if c.isdigit())
        if not digits or piece.startswith("post"):
            break
        parts.append(int(digits))
    return tuple(parts)


def normalize_dtype(dtype: str | None) -> str:
    """The dtype an engine computes in for a configured value (auto: the checkpoint's bf16)."""
    value = (dtype or "auto").lower()
    if value in ("half", "float16", "fp16"):
        return "float16"
    if value in ("float", "float32", "fp32"):
        return "float32"
    return "bfloat16"


def detect_engine(container: Mapping[str, Any]) -> str:
    """Which engine a container runs. Raises NotAServingContainer when it is none of them."""
    words = " ".join(
        str(t) for t in [*(container.get("command") or []), *(container.get("args") or [])]
    )
    for text in (words.lower(), str(container.get("image", "")).lower()):
        if "text-generation-launcher" in text or "text-generation-inference" in text:
            return TGI
        if "sglang" in text:
            return SGLANG
        if "vllm" in text:
            return VLLM
    raise NotAServingContainer(f"container {container.get('name', '?')!r} runs no known engine")


def _env(container: Mapping[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    raw = container.get("env") or []
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    for item in raw:
        # valueFrom (Secrets, fieldRefs) cannot be resolved here; the engines see them unset.
        if isinstance(item, Mapping) and "name" in item and item.get("value") is not None:
            env[str(item["name"])] = str(item["value"])
    return env


def _tokens(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    tokens: list[str] = []
    shell = False
    for raw in [*(container.get("command") or []), *(container.get("args") or [])]:
        # Kubernetes expands $(VAR) in command and args from the container's env.
        text = _ENV_REF.sub(lambda m: env.get(m.group(1), m.group(0)), str(raw))
        if shell and tokens and _is_script_switch(tokens[-1]):
            try:
                tokens.extend(shlex.split(text))  # sh -c "vllm serve ..."
            except ValueError:
                tokens.extend(text.split())
            continue
        shell = shell or text.rsplit("/", 1)[-1] in _SHELLS
        tokens.append(text)
    return tokens


def _is_script_switch(token: str) -> bool:
    # -c, and the combined forms people write: -lc, -ec, -xc, -euc.
    return token.startswith("-") and not token.startswith("--") and token.endswith("c")


def _flags(tokens: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    flags: dict[str, list[str]] = {}
    positionals: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in _SHORT_FLAGS:
            tok = "--" + _SHORT_FLAGS[tok]
        if tok.startswith("--") and len(tok) > 2:
            name, eq, inline = tok[2:].partition("=")
            name = name.replace("_", "-")  # vLLM and SGLang accept --max_model_len too
            if eq:
                flags[name] = [inline]
            elif name in _BOOLEAN_FLAGS:
                flags[name] = ["true"]
            elif name in _MULTI_VALUE_FLAGS:
                values = []
                while i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
                    i += 1
                    values.append(tokens[i])
                flags[name] = values or ["true"]
            elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                i += 1
                flags[name] = [tokens[i]]
            else:
                flags[name] = ["true"]
        else:
            positionals.append(tok)
        i += 1
    return flags, positionals


class _Settings:
    """Flag values with env fallbacks, collecting the first value the engine would refuse."""

    def __init__(self, engine: str, flags: dict[str, list[str]], env: Mapping[str, str]) -> None:
        self.engine = engine
        self.flags = flags
        self.env = env
        self.error: str | None = None

    def text(self, flag: str, env_name: str | None = None) -> str | None:
        if flag in self.flags:
            return self.flags[flag][0]
        if env_name is not None and env_name in self.env:
            return self.env[env_name]
        return None

    def number(self, flag: str, env_name: str | None = None) -> int | None:
        value = self.text(flag, env_name)
        if value is None:
            return None
        parsed = _parse_int(value)
        if parsed is None:
            self._refuse(flag, value, "int")
        return parsed

    def fraction(self, flag: str, env_name: str | None, default: float) -> float:
        value = self.text(flag, env_name)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            self._refuse(flag, value, "float")
            return default

    def _refuse(self, flag: str, value: str, kind: str) -> None:
        if self.error is not None:
            return
        if self.engine == TGI:
            self.error = (
                f"error: invalid value '{value}' for '--{flag} <{flag.upper().replace('-', '_')}>'"
            )
        else:
            prog = "vllm serve" if self.engine == VLLM else "launch_server.py"
            self.error = f"{prog}: error: argument --{flag}: invalid {kind} value: '{value}'"


def _parse_int(value: str) -> int | None:
    # vLLM reads 32k as 32000 and 32K as 32768.
    text = value.strip()
    multiplier = 1
    if text[-1:] in ("k", "m"):
        multiplier, text = (1000 if text[-1] == "k" else 1_000_000), text[:-1]
    elif text[-1:] in ("K", "M"):
        multiplier, text = (1024 if text[-1] == "K" else 1024 * 1024), text[:-1]
    try:
        return int(float(text) * multiplier) if multiplier != 1 else int(text)
    except ValueError:
        return None


def _version(engine: str, image: str) -> str:
    tag = image.rsplit("/", 1)[-1].split("@", 1)[0]
    if ":" in tag:
        match = re.match(r"v?(\d+\.\d+(?:\.\d+)*(?:\.?post\d+)?)", tag.split(":", 1)[1])
        if match:
            return match.group(1)
    return _DEFAULT_VERSIONS[engine]


def _model(engine: str, s: _Settings, positionals: list[str]) -> str:
    if engine == TGI:
        return s.text("model-id", "MODEL_ID") or _DEFAULT_MODELS[TGI]
    named = s.text("model-path") if engine == SGLANG else None
    named = named or s.text("model")
    if named:
        return named
    if engine == VLLM:
        if "serve" in positionals:
            after = positionals[positionals.index("serve") + 1 :]
            if after:
                return after[0]
        for word in positionals:
            base = word.rsplit("/", 1)[-1]
            if base in _LAUNCHER_WORDS or "vllm" in word or word.endswith(".py"):
                continue
            if base.startswith("python"):
                continue
            return word
    return _DEFAULT_MODELS[engine]


def _max_new_tokens(engine: str, s: _Settings, max_input: int | None) -> int | None:
    if engine == VLLM:
        raw = s.text("override-generation-config")
        if raw is None:
            return None
        try:
            overrides = json.loads(raw)
        except json.JSONDecodeError:
            s.error = s.error or (
                "vllm serve: error: argument --override-generation-config: "
                f"invalid loads value: '{raw}'"
            )
            return None
        if isinstance(overrides, dict):
            value = overrides.get("max_new_tokens", overrides.get("max_tokens"))
            return int(value) if isinstance(value, int | float) else None
        return None
    if engine == TGI:
        total = s.number("max-total-tokens", "MAX_TOTAL_TOKENS")
        if total is not None and max_input is not None:
            return total - max_input
    return None


def parse_container(container: Mapping[str, Any]) -> ServingConfig:
    """Read a PodSpec container (a plain dict: image, command, args, env) into a ServingConfig.

    Raises NotAServingContainer when the container runs no known engine. Values the engine's
    own argument parser would refuse do not raise: they land in `argument_error`, and the
    engine then fails to start (see `startup_failure`).
    """
    engine = detect_engine(container)
    env = _env(container)
    flags, positionals = _flags(_tokens(container, env))
    s = _Settings(engine, flags, env)
    model = _model(engine, s, positionals)
    tgi = engine == TGI

    dtype = s.text("dtype", "DTYPE" if tgi else None)
    if tgi:
        max_model_len = s.number("max-total-tokens", "MAX_TOTAL_TOKENS")
        max_input = s.number("max-input-tokens", "MAX_INPUT_TOKENS")
        if max_input is None:
            max_input = s.number("max-input-length", "MAX_INPUT_LENGTH")
        max_num_seqs = s.number("max-concurrent-requests", "MAX_CONCURRENT_REQUESTS")
        tp = s.number("num-shard", "NUM_SHARD")
        quantization = s.text("quantize", "QUANTIZE")
        fraction = s.fraction("cuda-memory-fraction", "CUDA_MEMORY_FRACTION", 1.0)
    else:
        max_input = None
        if engine == VLLM:
            max_model_len = s.number("max-model-len")
            max_num_seqs = s.number("max-num-seqs")
            tp = s.number("tensor-parallel-size")
            fraction = s.fraction("gpu-memory-utilization", None, 0.9)
        else:
            max_model_len = s.number("context-length")
            max_num_seqs = s.number("max-running-requests")
            tp = s.number("tp-size") or s.number("tp")
            fraction = s.fraction("mem-fraction-static", None, _DEFAULT_MEMORY_FRACTION[SGLANG])
        quantization = s.text("quantization")
    served = flags.get("served-model-name") or [
        s.text("served-model-name", "SERVED_MODEL_NAME") or model
    ]
    allow_env = (
        "VLLM_ALLOW_LONG_MAX_MODEL_LEN"
        if engine == VLLM
        else "SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN"
    )
    port = s.number("port", "PORT" if tgi else None)
    return ServingConfig(
        engine=engine,
        image=str(container.get("image", "")),
        engine_version=_version(engine, str(container.get("image", ""))),
        model=model,
        served_model_name=served[0],
        revision=s.text("revision", "REVISION" if tgi else None),
        tokenizer_revision=s.text("tokenizer-revision"),
        dtype=dtype,
        effective_dtype=normalize_dtype(dtype),
        quantization=quantization,
        kv_cache_dtype=s.text("kv-cache-dtype", "KV_CACHE_DTYPE" if tgi else None),
        max_model_len=max_model_len,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=None if tgi else s.number("max-num-batched-tokens"),
        max_new_tokens=_max_new_tokens(engine, s, max_input),
        max_input_tokens=max_input,
        tensor_parallel_size=max(1, tp or 1),
        gpu_memory_utilization=fraction,
        port=port if port is not None else _DEFAULT_PORTS[engine],
        metrics_enabled=engine != SGLANG or "enable-metrics" in flags,
        allow_long_context=env.get(allow_env, "").lower() in ("1", "true"),
        argument_error=s.error,
    )
