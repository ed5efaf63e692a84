"""The long-context Deployment's pod template for step 4: every serving container's max model
len raised (4x by default, capped at the model's limit), with TGI's input and prefill limits
kept consistent with it.
"""

from __future__ import annotations

import copy
from typing import Any

from services.engine_options import set_option
from services.engines import (
    SGLANG,
    TGI,
    VLLM,
    engine_containers,
    parse_engine_config,
    parse_flags,
    parse_int,
    tgi_env,
)
from services.errors import InvalidError

Obj = dict[str, Any]
LENGTH_FACTOR = 4
_LENGTH_FLAG = {VLLM: "--max-model-len", TGI: "MAX_TOTAL_TOKENS", SGLANG: "--context-length"}


def _tgi_int(container: Obj, flag: str) -> int | None:
    """A TGI launcher setting as the launcher reads it: the flag, else its env var."""
    value = parse_flags([str(a) for a in container.get("args") or []])[0].get(flag)
    if value is None:
        env = {e.get("name"): e.get("value") for e in container.get("env") or []}
        value = env.get(tgi_env(flag))
    return parse_int(value) if isinstance(value, str) else None


def _set_tgi_value(container: Obj, flags: tuple[str, ...], value: str) -> None:
    """Set a TGI launcher setting where it is (flag, else env var); add the env var if unset."""
    args = [str(a) for a in container.get("args") or []]
    for i, token in enumerate(args):
        name, eq, _old = token.partition("=")
        if name in flags:
            if eq:
                args[i] = f"{name}={value}"
            elif i + 1 < len(args):
                args[i + 1] = value
            container["args"] = args
            return
    env = [dict(e) for e in container.get("env") or []]
    names = [tgi_env(f) for f in flags]
    for entry in env:
        if entry.get("name") in names:
            entry.pop("valueFrom", None)
            entry["value"] = value
            container["env"] = env
            return
    container["env"] = [*env, {"name": names[0], "value": value}]


def _raise_length(container: Obj, wanted: int | None, limit: int) -> tuple[Obj, int, list[str]]:
    """The container with its max model len raised; the new length and notes."""
    cfg = parse_engine_config(container)
    current = cfg.max_model_len
    notes: list[str] = []
    if wanted is not None:
        if wanted > limit:
            raise InvalidError(
                f"max model len {wanted} is above the model limit {limit}; give a smaller one, "
                "or raise the limit if the model really supports it"
            )
        new = wanted
    elif current is None:
        new = limit
        notes.append(
            f"the copied template leaves the max model len to the model's default; the "
            f"long-context Deployment sets {new} explicitly"
        )
    else:
        new = max(current, min(current * LENGTH_FACTOR, limit))
        if new == current:
            notes.append(f"max model len stays {current}: already at the limit {limit}")
    edited = set_option(container, cfg.engine, "max_model_len", str(new))
    if cfg.engine == TGI:
        max_input = cfg.effective.get("max_input_tokens", (None, ""))[0]
        if isinstance(max_input, int) and current is not None:
            new_input = new - (current - max_input)  # keep the room for output tokens
            _set_tgi_value(edited, ("--max-input-tokens", "--max-input-length"), str(new_input))
            prefill = _tgi_int(container, "--max-batch-prefill-tokens")
            # The launcher refuses MAX_BATCH_PREFILL_TOKENS below MAX_INPUT_TOKENS.
            if prefill is not None and prefill < new_input:
                _set_tgi_value(edited, ("--max-batch-prefill-tokens",), str(new_input))
            notes.append(f"TGI MAX_INPUT_TOKENS {max_input} -> {new_input}")
    flag = _LENGTH_FLAG.get(cfg.engine, "max model len")
    notes.insert(0, f"{cfg.container}: {flag} {current or 'unset'} -> {new}")
    return edited, new, notes


def _long_template(template: Obj, wanted: int | None, limit: int) -> tuple[Obj, int, list[str]]:
    out = copy.deepcopy(template)
    spec = out.setdefault("spec", {})
    engines = {c.get("name") for c in engine_containers(spec)}
    if not engines:
        raise InvalidError(
            "no vLLM, TGI or SGLang container in the template: cannot raise its max model len"
        )
    notes: list[str] = []
    length = 0
    containers = []
    for container in spec.get("containers") or []:
        if container.get("name") in engines:
            container, length, more = _raise_length(container, wanted, limit)
            notes += more
        containers.append(container)
    spec["containers"] = containers
    return out, length, notes
