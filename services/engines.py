"""Serving engines (vLLM, TGI, SGLang): which one a container runs, its effective configuration,
and the edits that pin or tune it (validation and `set_option` live in engine_options and are
re-exported here).

Reads plain container dicts as the API returns them (camelCase). The vLLM hardware-dependent
defaults follow vLLM's EngineArgs (V1): 1024 seqs / 8192 batched tokens on a >= 70 GiB GPU that
is not an A100, else 256 / 2048.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

from services.gpu import class_memory_mib
from services.models import EngineConfig

VLLM = "vllm"
TGI = "tgi"
SGLANG = "sglang"
UNKNOWN = "unknown"
ENGINES: tuple[str, ...] = (VLLM, TGI, SGLANG)
ENGINE_NAMES = {VLLM: "vLLM", TGI: "TGI", SGLANG: "SGLang", UNKNOWN: "the server"}
OPTIONS = ("revision", "dtype", "max_model_len", "max_num_seqs", "max_output_tokens")
# option -> (vLLM flag, TGI launcher flag, SGLang flag); TGI also reads each flag from env.
_FLAG_TABLE = {
    "model": ("--model", "--model-id", "--model-path"),
    "revision": ("--revision", "--revision", "--revision"),
    "dtype": ("--dtype", "--dtype", "--dtype"),
    "max_model_len": ("--max-model-len", "--max-total-tokens", "--context-length"),
    "max_num_seqs": ("--max-num-seqs", "--max-concurrent-requests", "--max-running-requests"),
    "max_output_tokens": ("--override-generation-config", "", ""),
    "max_input_tokens": ("", "--max-input-tokens", ""),
}
FLAGS: dict[str, dict[str, str]] = {
    engine: {option: flags[i] for option, flags in _FLAG_TABLE.items() if flags[i]}
    for i, engine in enumerate((VLLM, TGI, SGLANG))
}
DTYPES: dict[str, tuple[str, ...]] = {
    VLLM: ("auto", "half", "float16", "bfloat16", "float", "float32"),
    SGLANG: ("auto", "half", "float16", "bfloat16", "float", "float32"),
    TGI: ("float16", "bfloat16"),
}
INT_LIMITS: dict[str, tuple[int, int]] = {
    "max_model_len": (16, 2_097_152),
    "max_num_seqs": (1, 65_536),
    "max_output_tokens": (1, 2_097_152),
}
BRANCH_NAMES = frozenset({"main", "master", "dev", "develop", "development", "trunk", "head"})
_SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh"})
# Flags that take no value, so the token after them is not their value.
_BOOLEAN = re.compile(r"^--(enable|disable|no|trust|enforce|skip|use|is|json)-|^--headless$")
_GIB = 1024


def tgi_env(flag: str) -> str:
    """The env var the TGI launcher reads for a flag: upper snake case (--dtype -> DTYPE)."""
    return flag.lstrip("-").upper().replace("-", "_")


def _basename(token: str) -> str:
    return token.rsplit("/", 1)[-1]


def _shell_script(tokens: list[str]) -> str | None:
    """The script of a ``sh -c SCRIPT`` command line, else None."""
    if not tokens or _basename(tokens[0]) not in _SHELLS:
        return None
    for i, token in enumerate(tokens[1:-1], start=1):
        if re.fullmatch(r"-[a-z]*c[a-z]*", token):
            return tokens[i + 1]
    return None


def _argv(container: Mapping[str, Any]) -> tuple[list[str], bool]:
    """The container's command line (command + args), and whether a shell script held it."""
    tokens = [str(t) for t in (container.get("command") or [])]
    tokens += [str(t) for t in (container.get("args") or [])]
    script = _shell_script(tokens)
    if script is None:
        return tokens, False
    script = script.replace("\\\n", " ")
    try:
        return shlex.split(script, comments=True), True
    except ValueError:
        return script.split(), True


def _is_option(token: str) -> bool:
    return token.startswith("-") and len(token) > 1 and not re.fullmatch(r"-\d+(\.\d+)?", token)


def _norm_flag(flag: str) -> str:
    # vLLM's parser accepts --max_model_len for --max-model-len; treat every engine alike.
    return "--" + flag.lstrip("-").replace("_", "-") if flag.startswith("--") else flag


def parse_flags(tokens: list[str]) -> tuple[dict[str, str | None], list[str]]:
    """(flag -> last value, positionals) of a command line; a flag without value maps to None."""
    flags: dict[str, str | None] = {}
    positionals: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not _is_option(token):
            positionals.append(token)
        else:
            name, eq, value = token.partition("=")
            name = _norm_flag(name)
            if eq:
                flags[name] = value
            elif _BOOLEAN.match(name) or i + 1 >= len(tokens) or _is_option(tokens[i + 1]):
                flags[name] = None
            else:
                flags[name] = tokens[i + 1]
                i += 1
        i += 1
    return flags, positionals


def detect_engine(container: Mapping[str, Any]) -> str:
    """vllm | tgi | sglang | unknown, from the image, the launcher and the flags. Raises nothing."""
    image = str(container.get("image") or "").lower()
    flags, positionals = parse_flags(_argv(container)[0])
    # Whole launcher words only: a sidecar running /app/vllm_exporter.py is not vLLM.
    words = [_basename(t).lower() for t in positionals] + [str(flags.get("-m") or "").lower()]

    def launched(name: str) -> bool:
        return name in image or any(w == name or w.startswith(name + ".") for w in words)

    repo_words = re.split(r"[/:._-]", image.partition("@")[0])
    if "text-generation-inference" in image or "text-generation-launcher" in words:
        return TGI
    if "tgi" in repo_words:  # a mirrored TGI image, e.g. registry.local/mirror/tgi:2.4.1
        return TGI
    for engine in (SGLANG, VLLM):
        if launched(engine):
            return engine
    if "--model-id" in flags:
        return TGI
    if "--model-path" in flags:
        return SGLANG
    if "--model" in flags or (positionals[:1] == ["serve"] and not container.get("command")):
        return VLLM
    return UNKNOWN


def _env(container: Mapping[str, Any]) -> dict[str, str]:
    """Env name -> value; a value from a reference shows as ``<configMap name/key>``."""
    values: dict[str, str] = {}
    for entry in container.get("env") or []:
        source = entry.get("valueFrom") or {}
        kind = next((k for k in ("secretKeyRef", "configMapKeyRef") if k in source), None)
        if kind:
            ref = source[kind]
            label = kind.removesuffix("KeyRef")
            value = f"<{label} {ref.get('name', '')}/{ref.get('key', '')}>"
        else:  # fieldRef, resourceFieldRef: runtime values, not settings
            value = str(entry.get("value") or "") if not source else f"<{next(iter(source))}>"
        values[str(entry.get("name", ""))] = value
    return values


def is_reference(value: str | None) -> bool:
    """Whether a configured value is a placeholder for a ConfigMap/Secret value not read here."""
    return bool(value) and str(value).startswith("<") and str(value).endswith(">")


def parse_int(value: str | None) -> int | None:
    """An int from a flag value, with vLLM's human-readable suffixes (k=1000, K=1024, m, M).
    None when absent or unreadable. Raises nothing."""
    if value is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", value)
    if not match:
        return None
    number, suffix = float(match.group(1)), match.group(2)
    scale = {"": 1, "k": 10**3, "K": 2**10, "m": 10**6, "M": 2**20, "g": 10**9, "G": 2**30}
    return int(number * scale[suffix])


def _generation_override(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _vllm_model(tokens: list[str], positionals: list[str], container: Mapping[str, Any]) -> str:
    if "serve" in positionals:
        after = positionals[positionals.index("serve") + 1 :]
        return after[0] if after else ""
    # With an image entrypoint of `vllm serve`, args start with the model.
    first_is_positional = bool(tokens and positionals and tokens[0] == positionals[0])
    if not container.get("command") and first_is_positional:
        return "" if _basename(tokens[0]) in ("vllm", "python", "python3") else tokens[0]
    return ""


_BY_GPU = (
    "vLLM default chosen by the GPU at start: 1024 seqs / 8192 batched tokens on a >=70 GiB GPU "
    "that is not an A100, else 256 / 2048"
)


def _vllm_seq_defaults(memory_mib: int | None, gpu_class: str | None) -> tuple[Any, Any, str]:
    """(max_num_seqs, max_num_batched_tokens, source) vLLM picks when unset."""
    memory = memory_mib if memory_mib is not None else class_memory_mib(gpu_class)
    if memory is None:
        return None, None, _BY_GPU
    if memory < 70 * _GIB:
        return 256, 2048, "vLLM default for this GPU class (<70 GiB)"
    if gpu_class and "A100" in gpu_class.upper():
        return 256, 2048, "vLLM default for an A100 (the large-GPU default excludes A100)"
    if gpu_class is None:
        return 1024, 8192, "vLLM default for a >=70 GiB GPU (256 / 2048 if it is an A100)"
    return 1024, 8192, "vLLM default for this GPU class (>=70 GiB, not A100)"


_UNPINNED = (None, "unset: the model repo's default branch at every start (unpinned)")
_FROM_MODEL = (None, "default: the model config's maximum context length")
_DEFAULTS: dict[str, dict[str, tuple[Any, str]]] = {
    "model": {TGI: ("bigscience/bloom-560m", "TGI default (no MODEL_ID)")},
    "revision": dict.fromkeys(ENGINES, _UNPINNED),
    "dtype": dict.fromkeys(ENGINES, ("auto", "default: follows the checkpoint")),
    "max_model_len": {
        VLLM: _FROM_MODEL,
        SGLANG: _FROM_MODEL,
        TGI: (None, "TGI default: from the model config (max_position_embeddings); 2048 in 1.x"),
    },
    "max_num_seqs": {
        TGI: (128, "TGI default"),
        SGLANG: (None, "SGLang default: sized from the KV cache at start"),
    },
    "max_output_tokens": {
        VLLM: (None, "unset: up to the context length, or the request's max_tokens"),
        TGI: (None, "unset: max total tokens minus the prompt length"),
        SGLANG: (None, "SGLang has no server-side cap: up to the context length"),
    },
    "max_input_tokens": {TGI: (None, "TGI default: max total tokens - 1 (1024 in TGI 1.x)")},
}
_INT_KNOBS = frozenset(INT_LIMITS) | {"max_input_tokens", "max_num_batched_tokens"}


def _tgi_settings(flags: dict[str, str | None], env: dict[str, str]) -> dict[str, tuple[str, str]]:
    aliases: dict[str, tuple[str, ...]] = {o: (f,) for o, f in FLAGS[TGI].items()}
    aliases["max_input_tokens"] = ("--max-input-tokens", "--max-input-length")
    raw: dict[str, tuple[str, str]] = {}
    for option, names in aliases.items():
        # The launcher's clap parser: a flag on the command line wins over its env var.
        for flag in names:
            value = flags.get(flag)
            if value is not None:
                shadow = f" (overrides env {tgi_env(flag)})" if tgi_env(flag) in env else ""
                raw[option] = (value, flag + shadow)
                break
        else:
            for flag in names:
                if env.get(tgi_env(flag)):
                    raw[option] = (env[tgi_env(flag)], f"env {tgi_env(flag)}")
                    break
    return raw


def _settings(engine: str, container: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """option -> (value as written, where it was set) for every knob set explicitly."""
    tokens, _shell = _argv(container)
    flags, positionals = parse_flags(tokens)
    if engine == TGI:
        return _tgi_settings(flags, _env(container))
    raw: dict[str, tuple[str, str]] = {}
    for option, flag in FLAGS[engine].items():
        value = flags.get(flag)
        if value is not None:
            raw[option] = (value, flag)
    if engine == SGLANG and "model" not in raw and flags.get("--model"):
        raw["model"] = (str(flags["--model"]), "--model")
    if engine == VLLM:
        override = _generation_override(raw.pop("max_output_tokens", ("", ""))[0])
        if override and "max_new_tokens" in override:
            raw["max_output_tokens"] = (
                str(override["max_new_tokens"]),
                FLAGS[VLLM]["max_output_tokens"],
            )
        positional = _vllm_model(tokens, positionals, container)
        if positional:
            raw["model"] = (positional, "vllm serve MODEL")
        if flags.get("--max-num-batched-tokens"):
            raw["max_num_batched_tokens"] = (
                str(flags["--max-num-batched-tokens"]),
                "--max-num-batched-tokens",
            )
    if flags.get("--served-model-name"):
        raw["served_model_name"] = (str(flags["--served-model-name"]), "--served-model-name")
    return raw


def parse_engine_config(
    container: Mapping[str, Any],
    gpu_memory_mib: int | None = None,
    gpu_class: str | None = None,
) -> EngineConfig:
    """The engine's configuration from a container's command, args and env, with each knob's
    effective value and where it comes from. ``gpu_memory_mib`` (or ``gpu_class``) settles
    vLLM's hardware-dependent defaults. A value held in a ConfigMap or Secret shows as
    ``<configMap name/key>``. Raises nothing: an unrecognised container gives engine
    ``unknown`` and empty knobs."""
    engine = detect_engine(container)
    notes: list[str] = []
    if _argv(container)[1]:
        notes.append("the server starts from a shell script: skewmit reads it but cannot edit it")
    if container.get("envFrom"):
        notes.append("envFrom sources may set more settings; skewmit does not read them")
    raw = _settings(engine, container) if engine in ENGINES else {}
    effective: dict[str, tuple[Any, str]] = {}
    for option, (value, source) in raw.items():
        if is_reference(value):
            notes.append(f"{option} comes from {value}, which skewmit does not read")
        parsed = parse_int(value) if option in _INT_KNOBS and not is_reference(value) else None
        effective[option] = (value if parsed is None else parsed, source)
    if engine == TGI and "max_output_tokens" not in raw:
        total, max_input = effective.get("max_model_len"), effective.get("max_input_tokens")
        if total and max_input and isinstance(total[0], int) and isinstance(max_input[0], int):
            raw["max_output_tokens"] = ("", "")
            effective["max_output_tokens"] = (
                total[0] - max_input[0],
                "MAX_TOTAL_TOKENS - MAX_INPUT_TOKENS",
            )
    if engine == VLLM:
        seqs, batched, source = _vllm_seq_defaults(gpu_memory_mib, gpu_class)
        effective.setdefault("max_num_seqs", (seqs, source))
        effective.setdefault("max_num_batched_tokens", (batched, source))
    if engine in ENGINES:
        for option, defaults in _DEFAULTS.items():
            if engine in defaults:
                effective.setdefault(option, defaults[engine])

    def text(option: str) -> str | None:
        return raw[option][0] if option in raw else None

    def number(option: str) -> int | None:
        value = effective.get(option, (None, ""))[0] if option in raw else None
        return value if isinstance(value, int) else None

    model = text("model")
    return EngineConfig(
        engine=engine,
        container=str(container.get("name", "")),
        image=str(container.get("image", "")),
        model=model,
        revision=text("revision"),
        dtype=text("dtype"),
        max_model_len=number("max_model_len"),
        max_num_seqs=number("max_num_seqs"),
        max_output_tokens=number("max_output_tokens"),
        served_model_name=text("served_model_name") or (model if engine == VLLM else None),
        effective=effective,
        configured=frozenset(raw),
        notes=tuple(notes),
    )


def engine_containers(pod_spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The containers of a pod spec that run a known serving engine, in spec order."""
    return [c for c in pod_spec.get("containers") or [] if detect_engine(c) != UNKNOWN]


# --- what the model itself can take ----------------------------------------------------------

# Context length of well-known checkpoints (max_position_embeddings in their config.json),
# matched on the lower-cased model id, most specific pattern first. Engines refuse a longer
# max model len at start (vLLM: "User-specified max_model_len ... is greater than the derived
# max_model_len"), so every pod of the rollout crash-loops.
MODEL_CONTEXT: tuple[tuple[str, int], ...] = (
    (r"llama-?3\.[1-3]", 131_072),
    (r"llama-?4", 131_072),
    (r"(meta-)?llama-?3\b|llama-?3-", 8_192),
    (r"llama-?2", 4_096),
    (r"mixtral", 32_768),
    (r"mistral-7b", 32_768),
    (r"qwen3", 40_960),
    (r"qwen2\.5", 32_768),
    (r"gemma-?2", 8_192),
    (r"gemma-?3", 131_072),
    (r"phi-3.*-4k", 4_096),
    (r"phi-3.*-128k", 131_072),
)
# Env vars with which an engine starts past the model's own limit (the operator's choice).
LONG_CONTEXT_ENV = {
    VLLM: "VLLM_ALLOW_LONG_MAX_MODEL_LEN",
    SGLANG: "SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN",
}


def model_context_limit(container: Mapping[str, Any]) -> tuple[int | None, str]:
    """(longest max model len the container's model takes, where that comes from), from the
    model id (`MODEL_CONTEXT`); (None, why) when the model is not a known one or the engine
    was told to go past the limit (VLLM_ALLOW_LONG_MAX_MODEL_LEN=1). Raises nothing."""
    config = parse_engine_config(container)
    override = LONG_CONTEXT_ENV.get(config.engine)
    if override and _env(container).get(override, "").strip().lower() in ("1", "true"):
        return None, f"{override}=1 lets {ENGINE_NAMES[config.engine]} exceed the model's limit"
    model = str(config.model or "")
    name = model.lower().rsplit("/", 1)[-1]
    for pattern, limit in MODEL_CONTEXT:
        if re.search(pattern, name):
            return limit, f"{model}'s max_position_embeddings"
    return None, f"skewmit does not know the context length of {model or 'the model'}"
