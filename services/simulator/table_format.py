"""Go-compatible rendering of the values in Table cells: durations, timestamps, labels.

Shared by the built-in row printers (`table_cells`) and the custom-resource columns (`tables`);
each helper follows the apimachinery or printers.go function its docstring names.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

_NONE = "<none>"
_UNKNOWN = "<unknown>"
_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


def _trunc_div(a: int, b: int) -> int:
    """Integer division truncating toward zero, as Go's `/` and `int(float)` do."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def human_duration(d: timedelta) -> str:
    """apimachinery `duration.HumanDuration`: ~2-3 significant figures, e.g. `5m30s`, `2d3h`.

    Up to 2 s in the future still reads `0s` (clock skew); beyond that it is `<invalid>`.
    """
    us = (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
    seconds = _trunc_div(us, 1_000_000)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{hours // 24 // 365}y"


# --- small accessors over JSON dicts ---------------------------------------------------------


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _i(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _parse_time(value: Any) -> datetime | None:
    """A metav1.Time / MicroTime as stored; None stands for Go's zero time."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value and value != "null":
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return None if parsed == _ZERO_TIME else parsed


def _since(value: Any, now: datetime) -> str:
    """printers.go `translateTimestampSince`."""
    ts = _parse_time(value)
    return _UNKNOWN if ts is None else human_duration(now - ts)


# --- label formatting (apimachinery labels / metav1.LabelSelectorAsSelector) ------------------

_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SELECTOR_OPS = {"In": " in ", "NotIn": " notin ", "Exists": "", "DoesNotExist": ""}


def _valid_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return 0 < len(name) <= 63 and _NAME_PART.fullmatch(name) is not None


def _valid_value(value: str) -> bool:
    return value == "" or (len(value) <= 63 and _NAME_PART.fullmatch(value) is not None)


def _format_labels(labels: Any) -> str:
    """labels.FormatLabels: sorted `k=v` joined by commas, `<none>` when empty."""
    pairs = sorted(_d(labels).items())
    return ",".join(f"{k}={v}" for k, v in pairs) or _NONE


def _selector_string(selector: Any) -> str | None:
    """LabelSelectorAsSelector(sel).String(); None where the Go code returns an error."""
    if not isinstance(selector, dict):
        return ""  # labels.Nothing() prints as ""
    reqs: list[tuple[str, str]] = []
    for key, value in _d(selector.get("matchLabels")).items():
        if not _valid_key(key) or not isinstance(value, str) or not _valid_value(value):
            return None
        reqs.append((key, f"{key}={value}"))
    for expr in _l(selector.get("matchExpressions")):
        key, op = _s(_d(expr).get("key")), _s(_d(expr).get("operator"))
        values = [v for v in _l(_d(expr).get("values")) if isinstance(v, str)]
        if op not in _SELECTOR_OPS or not _valid_key(key):
            return None
        if op in ("In", "NotIn"):
            if not values or not all(_valid_value(v) for v in values):
                return None
            reqs.append((key, f"{key}{_SELECTOR_OPS[op]}({','.join(sorted(values))})"))
        elif values:
            return None
        else:
            reqs.append((key, key if op == "Exists" else f"!{key}"))
    reqs.sort(key=lambda r: r[0])
    return ",".join(text for _, text in reqs)


def _format_label_selector(selector: Any) -> str:
    """metav1.FormatLabelSelector."""
    text = _selector_string(selector)
    if text is None:
        return "<error>"
    return text or _NONE


def _containers_cells(spec: dict[str, Any]) -> list[str]:
    """printers.go `layoutContainerCells`: names and images, comma-joined."""
    containers = [_d(c) for c in _l(spec.get("containers"))]
    return [
        ",".join(_s(c.get("name")) for c in containers),
        ",".join(_s(c.get("image")) for c in containers),
    ]
