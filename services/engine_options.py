"""Operator input for the serving engines: validation of a model revision, a dtype and the
integer limits, and `set_option`, the one edit of a container's flags or env vars that every
plan uses, so the setting written is the one the engine reads.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

from services.engines import (
    BRANCH_NAMES,
    DTYPES,
    ENGINE_NAMES,
    ENGINES,
    FLAGS,
    INT_LIMITS,
    OPTIONS,
    SGLANG,
    TGI,
    VLLM,
    _argv,
    _generation_override,
    _is_option,
    _norm_flag,
    model_context_limit,
    parse_engine_config,
    parse_flags,
    tgi_env,
)
from services.errors import InvalidError

_DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
_SHA = re.compile(r"[0-9a-fA-F]{40}")


# --- validation of operator input --------------------------------------------------------


def validate_dtype(value: str, engine: str = VLLM) -> str:
    """The dtype normalized to the engine's spelling. Raises InvalidError for a dtype the
    engine does not take, and for ``auto``, which is the very default that drifts."""
    dtype = value.strip().lower()
    allowed = DTYPES.get(engine, DTYPES[VLLM])
    name = ENGINE_NAMES.get(engine, engine)
    if dtype == "auto":
        raise InvalidError(
            "dtype auto follows the checkpoint and can change with a new image or model revision; "
            "pin an explicit dtype such as bfloat16"
        )
    if dtype in _DTYPE_ALIASES and _DTYPE_ALIASES[dtype] in allowed:
        raise InvalidError(f"{name} spells dtype {dtype!r} as {_DTYPE_ALIASES[dtype]!r}: use that")
    if dtype not in allowed:
        choices = ", ".join(d for d in allowed if d != "auto")
        raise InvalidError(f"{name} does not accept dtype {value!r}; choose one of: {choices}")
    return dtype


def validate_revision(value: str) -> str:
    """A model revision that pins: a full 40-hex commit sha (lower-cased) or a tag.
    Raises InvalidError for branch names (main, master, refs/heads/...), PR refs, short shas
    and names that are not git refs. A name that is not a well-known branch is taken as a tag:
    check on the hub that it is one."""
    revision = value.strip()
    if _SHA.fullmatch(revision):
        return revision.lower()
    fix = "pin the 40-character commit sha shown on the model's Files and versions page"
    if not revision:
        raise InvalidError(f"the model revision is empty: {fix}")
    if re.fullmatch(r"[0-9a-fA-F]{7,39}", revision):
        raise InvalidError(f"revision {revision!r} looks like a short commit sha: {fix}")
    if revision.lower() in BRANCH_NAMES or revision.startswith(("refs/heads/", "refs/pr/")):
        raise InvalidError(f"revision {revision!r} is a branch, which moves with every push: {fix}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", revision) or ".." in revision:
        raise InvalidError(f"revision {revision!r} is not a git tag or commit sha: {fix}")
    return revision


TAG_PREFIX = "tag:"


def validate_operator_revision(value: str) -> tuple[str, bool]:
    """A model revision an operator typed: (revision, whether it is a tag). Only a full 40-hex
    commit sha pins without question; a tag must be confirmed by writing it ``tag:<name>``,
    because a name alone cannot tell a tag from a branch or a short sha (``abc123``), and a
    wrong guess leaves the model unpinned. Raises InvalidError naming the value and the fix."""
    revision = value.strip()
    if _SHA.fullmatch(revision):
        return revision.lower(), False
    if revision.lower().startswith(TAG_PREFIX):
        tag = revision[len(TAG_PREFIX) :].strip()
        if _SHA.fullmatch(tag):
            return tag.lower(), False
        return validate_revision(tag), True
    if re.fullmatch(r"[0-9a-fA-F]{1,39}", revision):
        raise InvalidError(
            f"revision {revision!r} looks like a short commit sha ({len(revision)} of 40 hex "
            "digits): pin the 40-character commit sha shown on the model's Files and versions "
            "page"
        )
    checked = validate_revision(revision)  # branches, refs and non-names say why
    raise InvalidError(
        f"revision {checked!r} is not a 40-hex commit sha, and skewmit cannot tell a tag from a "
        "branch by its name: pin the 40-character commit sha from the model's Files and versions "
        f"page, or, if {checked!r} is a tag you checked on the hub, confirm it as "
        f"{TAG_PREFIX}{checked}"
    )


def validate_max_model_len(container: Mapping[str, Any], value: str | int) -> int:
    """A max model len the container's model can take: a whole number in INT_LIMITS and no
    more than the model's own context length (`model_context_limit`), which the engine
    enforces at start by crash-looping. Raises InvalidError naming the value, the allowed
    range and the fix."""
    number = validate_int("max_model_len", value)
    limit, where = model_context_limit(container)
    low = INT_LIMITS["max_model_len"][0]
    if limit is not None and number > limit:
        raise InvalidError(
            f"max-model-len {number} is above {where} ({limit} tokens): the engine refuses it at "
            f"start and every pod crash-loops. Give a value from {low} to {limit}"
        )
    return number


def validate_int(option: str, value: str | int) -> int:
    """A whole number inside the option's sane range (INT_LIMITS). Raises InvalidError."""
    low, high = INT_LIMITS.get(option, (1, 2**31 - 1))
    label = option.replace("_", "-")
    text = str(value).strip().replace("_", "")
    if not re.fullmatch(r"\d+", text):
        raise InvalidError(f"{label} must be a whole number, got {value!r}")
    number = int(text)
    if not low <= number <= high:
        raise InvalidError(f"{label} must be between {low} and {high}, got {number}")
    return number


def validate_option(engine: str, option: str, value: str) -> str:
    """The value of an option normalized for ``set_option``. Raises InvalidError."""
    if option == "revision":
        return validate_revision(value)
    if option == "dtype":
        return validate_dtype(value, engine)
    if option in INT_LIMITS:
        return str(validate_int(option, value))
    raise InvalidError(f"unknown option {option!r}; choose one of: {', '.join(OPTIONS)}")


# --- edits -------------------------------------------------------------------------------


def _flag_positions(tokens: list[str], flag: str) -> list[int]:
    return [
        i for i, t in enumerate(tokens) if _is_option(t) and _norm_flag(t.partition("=")[0]) == flag
    ]


def _edit_flag(tokens: list[str], flag: str, value: str | None) -> tuple[list[str], bool]:
    """Set (in place of every occurrence, keeping its ``=`` form) or remove a flag."""
    out: list[str] = []
    positions = set(_flag_positions(tokens, flag))
    found = False
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if i in positions:
            found = True
            name, eq, _old = token.partition("=")
            takes_next = not eq and i + 1 < len(tokens) and not _is_option(tokens[i + 1])
            if value is not None:
                out += [f"{name}={value}"] if eq else [name, value]
            i += 2 if takes_next else 1
            continue
        out.append(token)
        i += 1
    return out, found


def _set_arg(container: dict[str, Any], flag: str, value: str | None, add: bool) -> bool:
    """Edit a flag where it is (command or args); append it to args when absent and ``add``.
    Whether the flag was present."""
    present = False
    for field in ("command", "args"):
        tokens = [str(t) for t in container.get(field) or []]
        edited, found = _edit_flag(tokens, flag, value)
        if found:
            present = True
            container[field] = edited
    if not present and add and value is not None:
        container["args"] = [*(str(t) for t in container.get("args") or []), flag, value]
    return present


def _set_env(container: dict[str, Any], name: str, value: str | None) -> None:
    env = [dict(e) for e in container.get("env") or []]
    if value is None:
        env = [e for e in env if e.get("name") != name]
    elif any(e.get("name") == name for e in env):
        env = [{"name": name, "value": value} if e.get("name") == name else e for e in env]
    else:
        env.append({"name": name, "value": value})
    if env or "env" in container:
        container["env"] = env


def set_option(
    container: Mapping[str, Any], engine: str, option: str, value: str | None
) -> dict[str, Any]:
    """A new container dict with one option set, replaced or removed (``value`` None), other
    args and env untouched and in order. vLLM and SGLang take flags; TGI takes env vars, or the
    flag where the container already passes it (the launcher prefers flags). ``max_output_tokens``
    is ``--override-generation-config {"max_new_tokens": N}`` on vLLM and
    ``MAX_TOTAL_TOKENS = input + N`` on TGI.

    Raises InvalidError for an unknown engine or option, an invalid value, an option the engine
    lacks (SGLang has no output cap), a command held in a shell script, or a TGI length that
    does not fit MAX_INPUT_TOKENS.
    """
    if engine not in ENGINES:
        raise InvalidError(f"cannot edit a {engine} server: skewmit edits vLLM, TGI and SGLang")
    if option not in OPTIONS:
        raise InvalidError(f"unknown option {option!r}; choose one of: {', '.join(OPTIONS)}")
    new = copy.deepcopy(dict(container))
    if _argv(new)[1]:
        raise InvalidError(
            f"container {new.get('name', '')} starts {ENGINE_NAMES[engine]} from a shell script; "
            "edit the script in the manifest by hand"
        )
    normalized = validate_option(engine, option, value) if value is not None else None
    if engine == TGI:
        return _set_tgi(new, option, normalized)
    if engine == SGLANG and option == "max_output_tokens":
        raise InvalidError(
            "SGLang has no server-side cap on output tokens: cap max_tokens at the gateway or "
            "client, or lower --context-length"
        )
    flag = FLAGS[engine][option]
    if option == "max_output_tokens":
        current = parse_flags(_argv(new)[0])[0].get(flag)
        override = _generation_override(current) if current else {}
        if override is None:
            raise InvalidError(f"{flag} is not a JSON object ({current!r}): fix it by hand first")
        override.pop("max_new_tokens", None)
        if normalized is not None:
            override["max_new_tokens"] = int(normalized)
        normalized = json.dumps(override) if override else None
    _set_arg(new, flag, normalized, add=True)
    return new


def _set_tgi(container: dict[str, Any], option: str, value: str | None) -> dict[str, Any]:
    max_input = parse_engine_config(container).effective["max_input_tokens"][0]
    if not isinstance(max_input, int):
        max_input = None
    if option == "max_output_tokens":
        if value is None or max_input is None:
            raise InvalidError(
                "TGI caps output only as MAX_TOTAL_TOKENS - MAX_INPUT_TOKENS"
                + ("" if value is None else ", and MAX_INPUT_TOKENS is unset or unreadable")
                + ": set max_model_len (MAX_TOTAL_TOKENS) and MAX_INPUT_TOKENS instead"
            )
        option, value = "max_model_len", str(max_input + int(value))
    if option == "max_model_len" and value and max_input is not None and int(value) <= max_input:
        raise InvalidError(
            f"TGI needs MAX_TOTAL_TOKENS > MAX_INPUT_TOKENS ({max_input}); got {value}: "
            "lower MAX_INPUT_TOKENS too, or choose a larger total"
        )
    flag = FLAGS[TGI][option]
    present = _set_arg(container, flag, value, add=False)
    # Without the flag the env var is the setting; with it, keep a shadowed env var in step.
    if not present or any(e.get("name") == tgi_env(flag) for e in container.get("env") or []):
        _set_env(container, tgi_env(flag), value)
    return container
