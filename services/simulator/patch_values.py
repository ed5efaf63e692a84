"""The errors and JSON value semantics the three patch flavours share.

`PatchError` messages quote values the way Go's `%v` prints them, and equality is JSON's
(no `True == 1`), so a patch fails here exactly where kube-apiserver would fail it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PatchError", "UnsupportedPatchError"]


class PatchError(Exception):
    """A patch that cannot be applied; the server answers 422 (or 400) with the message."""


class UnsupportedPatchError(PatchError):
    """A patch type the resource does not accept; the server answers 415."""


# --------------------------------------------------------------------------- JSON values


def _json_equal(left: Any, right: Any) -> bool:
    # Python's True == 1 would make a JSON `test` pass that a real server rejects.
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_json_equal, left, right))
    return type(left) is type(right) and bool(left == right)


def _go_repr(value: Any) -> str:
    """Render a value the way Go's %v does, so messages read like the real server's."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_repr(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_repr(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
