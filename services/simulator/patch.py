"""The three PATCH flavours kube-apiserver accepts, on plain JSON-like dicts.

JSON patch (RFC 6902), JSON merge patch (RFC 7386) and Kubernetes strategic merge
patch for the built-in kinds the simulator serves. Every function deep-copies its
inputs and returns a new object; nothing passed in is ever mutated.

The strategic merge follows k8s.io/apimachinery/pkg/util/strategicpatch as the server
runs it (parallel deletion lists merged, unmatched nulls ignored), including its
ordering rules: items the patch names keep the patch's order, and items only the
server has are woven back in by their live position.
"""

from __future__ import annotations

import copy
from typing import Any

from services.simulator.patch_values import (
    PatchError,
    UnsupportedPatchError,
    _json_equal,
)
from services.simulator.strategic_merge import (
    _SCHEMAS,
    _UNSUPPORTED_MESSAGE,
    STRATEGIC_MERGE_KINDS,
    _merge_map,
)

__all__ = [
    "STRATEGIC_MERGE_KINDS",
    "PatchError",
    "UnsupportedPatchError",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
]


# --------------------------------------------------------------------------- RFC 6902


def _pointer_tokens(pointer: Any, op: str) -> list[str]:
    if not isinstance(pointer, str):
        raise PatchError(f"jsonpatch {op} operation: path must be a string, got {pointer!r}")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"jsonpatch {op} operation: invalid JSON pointer {pointer!r}")
    tokens = []
    for raw in pointer[1:].split("/"):
        stripped = raw.replace("~0", "").replace("~1", "")
        if "~" in stripped:
            raise PatchError(
                f"jsonpatch {op} operation: invalid escape in JSON pointer {pointer!r}"
            )
        tokens.append(raw.replace("~1", "/").replace("~0", "~"))
    return tokens


def _array_index(token: str, size: int, op: str, path: str, *, insert: bool) -> int:
    if insert and token == "-":
        return size
    valid = token.isascii() and token.isdigit() and (token == "0" or not token.startswith("0"))
    if not valid or int(token) > (size if insert else size - 1):
        raise PatchError(
            f"jsonpatch {op} operation does not apply: invalid index referenced: {path}"
        )
    return int(token)


def _walk(doc: Any, tokens: list[str], op: str, path: str) -> Any:
    """Return the container that holds the last token of `path`."""
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_array_index(token, len(node), op, path, insert=False)]
        else:
            raise PatchError(
                f"jsonpatch {op} operation does not apply: doc is missing path: {path}"
            )
    return node


def _locate(doc: Any, path: Any, op: str, missing: str) -> tuple[Any, str | int]:
    """Return (container, key or index) of an existing value; `missing` words the error."""
    tokens = _pointer_tokens(path, op)
    parent = _walk(doc, tokens, op, path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent, last
    if isinstance(parent, list):
        return parent, _array_index(last, len(parent), op, path, insert=False)
    raise PatchError(f"jsonpatch {op} operation does not apply: doc is missing {missing}: {path}")


def _get(doc: Any, path: Any, op: str, missing: str = "path") -> Any:
    if _pointer_tokens(path, op) == []:
        return doc
    parent, key = _locate(doc, path, op, missing)
    return parent[key]


def _add(doc: Any, path: Any, value: Any, op: str = "add") -> Any:
    tokens = _pointer_tokens(path, op)
    if not tokens:
        return value
    parent = _walk(doc, tokens, op, path)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_array_index(tokens[-1], len(parent), op, path, insert=True), value)
    else:
        raise PatchError(f"jsonpatch {op} operation does not apply: doc is missing path: {path}")
    return doc


def _apply_operation(doc: Any, operation: Any) -> Any:
    if not isinstance(operation, dict):
        raise PatchError(f"jsonpatch: operation must be a JSON object, got {operation!r}")
    op = operation.get("op")
    if op not in ("add", "remove", "replace", "move", "copy", "test"):
        raise PatchError(f"jsonpatch: unexpected operation {op!r}")
    for field in ("path", "from") if op in ("move", "copy") else ("path",):
        if field not in operation:
            raise PatchError(f'jsonpatch {op} operation is missing "{field}"')
    if op in ("add", "replace", "test") and "value" not in operation:
        raise PatchError(f'jsonpatch {op} operation is missing "value"')
    path, value = operation["path"], copy.deepcopy(operation.get("value"))
    if op == "add":
        return _add(doc, path, value)
    if op == "test":
        if not _json_equal(_get(doc, path, op), value):
            raise PatchError(
                f"jsonpatch test operation does not apply: testing value {path} failed: test failed"
            )
        return doc
    if op in ("remove", "replace") and _pointer_tokens(path, op) == []:
        if op == "replace":
            return value
        raise PatchError(
            "jsonpatch remove operation does not apply: cannot remove the whole document"
        )
    if op == "remove":
        parent, key = _locate(doc, path, op, "path")
        del parent[key]
        return doc
    if op == "replace":
        parent, key = _locate(doc, path, op, "key")
        parent[key] = value
        return doc
    source = operation["from"]
    moved = _get(doc, source, op, "from path")
    if op == "copy":
        return _add(doc, path, copy.deepcopy(moved), op)
    if source == path:
        return doc
    if isinstance(path, str) and path.startswith(f"{source}/"):
        raise PatchError(
            f"jsonpatch move operation does not apply: cannot move {source} into its child {path}"
        )
    parent, key = _locate(doc, source, op, "from path")
    del parent[key]
    return _add(doc, path, moved, op)


def apply_json_patch(doc: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    """Apply an RFC 6902 JSON patch and return the patched copy of `doc`.

    Operations run in order and all-or-nothing: `doc` is never modified.

    Raises:
        PatchError: the patch is malformed, a path or index is missing, a `test`
            fails, or the result is not a JSON object.
    """
    if not isinstance(ops, list):
        raise PatchError("jsonpatch: the patch must be a JSON array of operations")
    result: Any = copy.deepcopy(doc)
    for operation in ops:
        result = _apply_operation(result, operation)
    if not isinstance(result, dict):
        raise PatchError("jsonpatch: the patched document is not a JSON object")
    return result


# --------------------------------------------------------------------------- RFC 7386


def _merge_patch_value(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch_value(result.get(key), value)
    return result


def apply_merge_patch(doc: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply an RFC 7386 JSON merge patch and return the patched copy of `doc`.

    `null` deletes a key, objects merge recursively, anything else (lists
    included) replaces the old value.

    Raises:
        PatchError: the patch is not a JSON object.
    """
    if not isinstance(patch, dict):
        raise PatchError("merge patch must be a JSON object")
    result: dict[str, Any] = _merge_patch_value(copy.deepcopy(doc), patch)
    return result


def apply_strategic_merge_patch(doc: dict[str, Any], patch: Any, kind: str) -> dict[str, Any]:
    """Apply a Kubernetes strategic merge patch to an object of `kind`.

    Lists with a patch merge key (containers, env, ports, conditions...) merge by that
    key; other lists are replaced. Honours `$patch`, `$setElementOrder/`,
    `$deleteFromPrimitiveList/`, `$retainKeys` and `null`. Returns a new object.

    Raises:
        UnsupportedPatchError: `kind` is not a built-in kind (e.g. a custom resource).
        PatchError: the patch is not a JSON object or is malformed (unknown `$patch`
            value, missing merge key, `$setElementOrder` disagreeing with the list).
    """
    schema = _SCHEMAS.get(kind)
    if schema is None:
        raise UnsupportedPatchError(_UNSUPPORTED_MESSAGE)
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    return _merge_map(copy.deepcopy(doc), copy.deepcopy(patch), "", schema)
