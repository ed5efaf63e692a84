"""Secret masking for everything skewmit shows, journals or bundles.

Secret references are shown, never resolved; values of secret-looking env vars and flags,
Secret data and the last-applied annotation (which repeats all of them) are replaced. Every
function returns new objects, never mutates its input, and is idempotent.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

MASK = "********"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
# TOKENS / TOKENIZER are counts and settings (MAX_TOTAL_TOKENS, TOKENIZERS_PARALLELISM): masking
# them would hide the very knobs the latency step changes.
_SECRET_ENV = re.compile(r"SECRET|PASSWORD|PASSWD|CREDENTIAL|KEY|TOKEN(?!S|IZER)", re.IGNORECASE)
_SECRET_FLAG_WORDS = {"token", "key", "keys", "apikey", "secret", "secrets", "password"}
_SECRET_FLAG_WORDS |= {"passwd", "credential", "credentials"}
_PLACEHOLDER = re.compile(r"<secret [^<>]*>")
_FLAG_IN_TEXT = re.compile(
    r"(?<![\w-])(--?[A-Za-z][\w-]*)(=|\s+)(\"[^\"]*\"|'[^']*'|[^\s\"'-][^\s\"']*)"
)
# `&` ends a value so that `?token=X&page=2` keeps its other parameters readable.
_ENV_IN_TEXT = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)=(\"[^\"]*\"|'[^']*'|[^\s\"'&]+)")
# `password: X` / `"api_key": "X"` (YAML, JSON, prose): only unambiguous secret words, as
# "token: 512" is as likely a count as a credential.
_COLON_IN_TEXT = re.compile(
    r"\b((?:[A-Za-z0-9]+[_-])*(?:password|passwd|api[_-]?key|secret[_-]?key|client[_-]?secret"
    r"|access[_-]?token|auth[_-]?token))(\"?\s*:\s*)(\"[^\"]*\"|'[^']*'|[^\s\"',}&]+)",
    re.IGNORECASE,
)
_TOKEN_PATTERNS = (
    re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),  # Hugging Face access token
    re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"),  # OpenAI-style API key
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),  # GitHub token
    # Authorization headers: any length, as a short token is still a token.
    re.compile(r"(?<=Bearer )[A-Za-z0-9._~+/=-]+", re.IGNORECASE),
    re.compile(r"(?<=Basic )[A-Za-z0-9+/=]{4,}", re.IGNORECASE),
)
# scheme://user:password@host: the password goes, the user and host stay (they say where).
_URL_CREDENTIALS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*):([^\s/?#@]+)@")


def is_secret_name(name: str) -> bool:
    """Whether an env var name looks secret (TOKEN, KEY, SECRET, PASSWORD as substrings)."""
    return bool(_SECRET_ENV.search(name))


def is_secret_flag(flag: str) -> bool:
    """Whether a command-line flag carries a secret (``--api-key``, ``--hf-token``, ``--token``);
    ``--max-num-batched-tokens`` and ``--tokenizer`` do not."""
    words = re.split(r"[-_]", flag.lstrip("-").partition("=")[0].lower())
    return any(word in _SECRET_FLAG_WORDS for word in words)


def _is_masked(value: str) -> bool:
    return value == MASK or bool(_PLACEHOLDER.fullmatch(value))


def _scrub_patterns(text: str) -> str:
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(MASK, text)
    if "://" in text:
        text = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
    return text


def _mask_colon_match(match: re.Match[str]) -> str:
    name, sep, value = match.groups()
    quote = value[0] if value[:1] in ("'", '"') else ""
    return match.group(0) if _is_masked(value.strip("'\"")) else f"{name}{sep}{quote}{MASK}{quote}"


def mask_env(
    env_list: Sequence[Mapping[str, Any]] | None, *, keep_refs: bool = False
) -> list[dict[str, Any]]:
    """A masked copy of a container's ``env``: a ``secretKeyRef`` shows as
    ``<secret NAME/KEY>`` (never resolved; with ``keep_refs`` the reference itself is kept, as
    it holds no secret and a journaled copy must stay re-appliable); the value of a
    secret-looking name is ``********``; token-shaped strings in other values are masked too.
    Raises nothing."""
    masked: list[dict[str, Any]] = []
    for entry in env_list or []:
        item = _mask_tree(entry, keep_refs)
        ref = (item.get("valueFrom") or {}).get("secretKeyRef")
        name = str(item.get("name", ""))
        if isinstance(ref, Mapping) and keep_refs:
            pass
        elif isinstance(ref, Mapping):
            item = {"name": name, "value": f"<secret {ref.get('name', '')}/{ref.get('key', '')}>"}
        elif isinstance(item.get("value"), str) and item["value"] and not _is_masked(item["value"]):
            item["value"] = MASK if is_secret_name(name) else mask_text(item["value"], [])
        masked.append(item)
    return masked


def mask_args(args: Sequence[Any] | None) -> list[str]:
    """A masked copy of a command line: the value after a secret flag (``--api-key X``,
    ``--token=X``, ``--hf-token X``), inside shell scripts too, and token-shaped strings.
    Raises nothing."""
    tokens = [str(t) for t in args or []]
    masked: list[str] = []
    hide_next = False
    for token in tokens:
        if hide_next and not token.startswith("-"):
            masked.append(MASK)
            hide_next = False
            continue
        hide_next = False
        if token.startswith("-") and is_secret_flag(token):
            flag, eq, _value = token.partition("=")
            masked.append(f"{flag}={MASK}" if eq else token)
            hide_next = not eq
            continue
        masked.append(mask_text(token, []))
    return masked


def _mask_flag_match(match: re.Match[str]) -> str:
    flag, sep, value = match.groups()
    return (
        f"{flag}{sep}{MASK}" if is_secret_flag(flag) and not _is_masked(value) else match.group(0)
    )


def _mask_env_match(match: re.Match[str]) -> str:
    name, value = match.groups()
    return f"{name}={MASK}" if is_secret_name(name) and not _is_masked(value) else match.group(0)


def mask_text(text: str, secrets: Sequence[str] = ()) -> str:
    """Free text (logs, command output, errors, annotations) with every known secret value,
    its base64 form, secret flags (``--api-key X``), secret assignments (``HF_TOKEN=X``,
    ``password=X``, ``api_key: X``), URL credentials (``postgres://user:X@host``), bearer
    tokens and token-shaped strings masked. Secrets shorter than 4 characters are not
    searched for, as they would mangle ordinary words. Raises nothing."""
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
        encoded = base64.b64encode(secret.encode()).decode()
        text = text.replace(encoded, MASK)
    return _mask_free_text(text)


def _mask_free_text(text: str) -> str:
    """Secret flags, `name=value` and `password: value` with a secret-looking name, URL
    credentials, bearer tokens and token-shaped strings in any text."""
    if "-" in text:
        text = _FLAG_IN_TEXT.sub(_mask_flag_match, text)
    if "=" in text:
        text = _ENV_IN_TEXT.sub(_mask_env_match, text)
    if ":" in text:
        text = _COLON_IN_TEXT.sub(_mask_colon_match, text)
    return _scrub_patterns(text)


def _mask_container(container: Mapping[str, Any], keep_refs: bool) -> dict[str, Any]:
    masked: dict[str, Any] = dict(_mask_tree(container, keep_refs))
    if "env" in masked:
        masked["env"] = mask_env(masked["env"], keep_refs=keep_refs)
    for field in ("command", "args"):
        if isinstance(masked.get(field), list):
            masked[field] = mask_args(masked[field])
    return masked


def _mask_annotations(annotations: Mapping[str, Any], keep_refs: bool) -> dict[str, Any]:
    masked = {key: _mask_tree(value, keep_refs) for key, value in annotations.items()}
    applied = annotations.get(LAST_APPLIED)
    if isinstance(applied, str):
        try:
            parsed = json.loads(applied)
        except ValueError:
            masked[LAST_APPLIED] = MASK  # unreadable, so it cannot be shown safely
        else:
            newline = "\n" if applied.endswith("\n") else ""
            text = json.dumps(mask_object(parsed, keep_refs=keep_refs), separators=(",", ":"))
            masked[LAST_APPLIED] = text + newline
    return masked


def _is_secret_object(node: Mapping[str, Any]) -> bool:
    # Items of a SecretList come without kind; only Secrets have both metadata and a type.
    return node.get("kind") == "Secret" or (
        "kind" not in node and "metadata" in node and isinstance(node.get("type"), str)
    )


def _mask_tree(node: Any, keep_refs: bool = False) -> Any:
    if isinstance(node, str):
        # Any text may carry a credential: an annotation's `password=...`, a URL's user:pass@.
        return _mask_free_text(node)
    if isinstance(node, list):
        return [_mask_tree(item, keep_refs) for item in node]
    if not isinstance(node, Mapping):
        return node
    masked: dict[str, Any] = {}
    for key, value in node.items():
        if key in _CONTAINER_LISTS and isinstance(value, list):
            masked[key] = [
                _mask_container(c, keep_refs) if isinstance(c, Mapping) else c for c in value
            ]
        elif key == "annotations" and isinstance(value, Mapping):
            masked[key] = _mask_annotations(value, keep_refs)
        else:
            masked[key] = _mask_tree(value, keep_refs)
    if _is_secret_object(node):
        for field in ("data", "stringData"):
            if isinstance(masked.get(field), Mapping):
                masked[field] = dict.fromkeys(masked[field], MASK)
    return masked


def mask_object(obj: Any, *, keep_refs: bool = False) -> Any:
    """A masked deep copy of any Kubernetes object or list of them: container and
    initContainer env and args in pods, templates, ReplicaSets, Deployments...; Secret data
    and stringData; the last-applied-configuration annotation, parsed and masked the same
    way. ``keep_refs`` keeps secretKeyRef entries as references (for stored copies that must
    stay re-appliable; they hold no secret). Raises nothing."""
    return _mask_tree(obj, keep_refs)


# --- back from a masked copy -----------------------------------------------------------------


class Unrestorable(ValueError):
    """A masked value whose plain value no source holds; `path` says where."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no plain value for the masked value at {path or '/'}")
        self.path = path


def has_mask(node: Any) -> bool:
    """Whether a masked copy hides anything in `node` (the mask or a secret placeholder)."""
    if isinstance(node, str):
        return MASK in node or bool(_PLACEHOLDER.search(node))
    if isinstance(node, Mapping):
        return any(has_mask(v) for v in node.values())
    if isinstance(node, list):
        return any(has_mask(v) for v in node)
    return False


def _anchored(item: Any, masked: Any) -> bool:
    """Whether a masked candidate can be the masked form of `item`: equal strings, or a
    mapping with the same keys whose unmasked parts are equal (an env entry's name)."""
    if isinstance(item, str):
        return bool(masked == item)
    if isinstance(item, Mapping):
        return (
            isinstance(masked, Mapping)
            and set(masked) == set(item)
            and all(masked[k] == v for k, v in item.items() if not has_mask(v))
        )
    return isinstance(item, list) and isinstance(masked, list)


def restore_masked(value: Any, sources: Sequence[tuple[Any, Any]], path: str = "") -> Any:
    """`value`, a masked copy, with each masked part replaced by the plain value it hides,
    taken from `sources`: (plain, masked) pairs for the same place, best first. A source
    whose masked form equals `value` is taken whole; otherwise mappings are matched by key
    and unmasked fields, lists item by item (same index and same preceding item first, so
    ``--token X`` keeps its own value). Never returns a masked value.

    Raises Unrestorable when some masked part matches nothing in the sources."""
    if not has_mask(value):
        return json.loads(json.dumps(value))
    for plain, masked in sources:
        if masked == value and not has_mask(plain):
            return json.loads(json.dumps(plain))
    if isinstance(value, Mapping):
        fits = [
            (plain, masked)
            for plain, masked in sources
            if isinstance(plain, Mapping) and _anchored(value, masked) and set(plain) == set(value)
        ]
        if not fits:
            raise Unrestorable(path)
        return {
            k: restore_masked(v, [(p[k], m[k]) for p, m in fits], f"{path}/{k}")
            for k, v in value.items()
        }
    if isinstance(value, list):
        lists = [
            (p, m)
            for p, m in sources
            if isinstance(p, list) and isinstance(m, list) and len(p) == len(m)
        ]
        out = []
        for i, item in enumerate(value):
            if not has_mask(item):
                out.append(json.loads(json.dumps(item)))
                continue
            ranked = []
            for plain, masked in lists:
                for j, candidate in enumerate(masked):
                    if not _anchored(item, candidate):
                        continue
                    same_before = (i == 0 and j == 0) or (
                        i > 0 and j > 0 and masked[j - 1] == value[i - 1]
                    )
                    ranked.append((not same_before, j != i, plain[j], candidate))
            ranked.sort(key=lambda r: (r[0], r[1]))
            out.append(restore_masked(item, [(r[2], r[3]) for r in ranked], f"{path}/{i}"))
        return out
    raise Unrestorable(path)
