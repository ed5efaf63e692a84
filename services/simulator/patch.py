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
from collections.abc import Mapping
from typing import Any

__all__ = [
    "STRATEGIC_MERGE_KINDS",
    "PatchError",
    "UnsupportedPatchError",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
]


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


# --------------------------------------------------------------------------- strategic merge

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder/"
_DELETE_FROM = "$deleteFromPrimitiveList/"

# Merge keys of the lists that merge instead of being replaced, by dotted field path
# (list elements add no path segment). "" marks a merged list of scalars.
_META_LISTS = {"ownerReferences": "uid", "finalizers": ""}
_POD_SPEC_LISTS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "schedulingGates": "name",
}
_CONTAINER_LISTS = {
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
}


def _prefixed(prefix: str, lists: Mapping[str, str]) -> dict[str, str]:
    return {f"{prefix}.{field}": key for field, key in lists.items()}


def _pod_spec_lists(prefix: str) -> dict[str, str]:
    lists = _prefixed(prefix, _POD_SPEC_LISTS)
    for field in ("containers", "initContainers", "ephemeralContainers"):
        lists.update(_prefixed(f"{prefix}.{field}", _CONTAINER_LISTS))
    return lists


_OBJECT = _prefixed("metadata", _META_LISTS)
_CONDITIONS = {"status.conditions": "type"}
_WORKLOAD = {
    **_OBJECT,
    **_prefixed("spec.template.metadata", _META_LISTS),
    **_pod_spec_lists("spec.template.spec"),
    **_CONDITIONS,
}
_SCHEMAS: dict[str, Mapping[str, str]] = {
    "Pod": {
        **_OBJECT,
        **_pod_spec_lists("spec"),
        **_CONDITIONS,
        "status.podIPs": "ip",
        "status.hostIPs": "ip",
    },
    "Deployment": _WORKLOAD,
    "ReplicaSet": _WORKLOAD,
    "Node": {**_OBJECT, **_CONDITIONS, "spec.podCIDRs": "", "status.addresses": "type"},
    "Service": {**_OBJECT, **_CONDITIONS, "spec.ports": "port"},
    "Namespace": {**_OBJECT, **_CONDITIONS},
    "ConfigMap": _OBJECT,
    "Secret": _OBJECT,
    "Event": _OBJECT,
    # Also served by the simulator: the HPA and the scale subresource's autoscaling/v1 Scale.
    "HorizontalPodAutoscaler": {**_OBJECT, **_CONDITIONS},
    "Scale": _OBJECT,
}

STRATEGIC_MERGE_KINDS: frozenset[str] = frozenset(_SCHEMAS)
"""Kinds that accept `application/strategic-merge-patch+json`."""

_UNSUPPORTED_MESSAGE = (
    "the body of the request was in an unknown format - accepted media types include: "
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
)


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _no_merge_key(item: Any, merge_key: str) -> PatchError:
    return PatchError(f"map: {_go_repr(item)} does not contain declared merge key: {merge_key}")


def _index(items: list[Any], item: Any, merge_key: str) -> int:
    """Position of `item` in `items`, by merge key for maps and by value for scalars."""
    wanted = item.get(merge_key) if merge_key and isinstance(item, dict) else item
    for position, candidate in enumerate(items):
        value = candidate.get(merge_key) if merge_key and isinstance(candidate, dict) else candidate
        if _json_equal(value, wanted):
            return position
    return -1


def _normalize_order(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str,
) -> list[Any]:
    """Weave server-only items back among the patch's items by their live position.

    Mirrors strategicpatch.mergeSortedSlice: an item the server does not know (a new
    one) goes before the server-only item being compared, which is why a new list
    element lands in front of the existing ones, as on a real cluster.
    """
    patch_items = sorted(patch_items, key=lambda item: _index(patch_order, item, merge_key))
    server_only = sorted(server_only, key=lambda item: _index(server_order, item, merge_key))
    woven: list[Any] = []
    left, right = 0, 0
    while left < len(server_only) or right < len(patch_items):
        if left >= len(server_only):
            woven.append(patch_items[right])
            right += 1
        elif right >= len(patch_items):
            woven.append(server_only[left])
            left += 1
        else:
            live_left = _index(server_order, server_only[left], merge_key)
            live_right = _index(server_order, patch_items[right], merge_key)
            if live_left >= 0 and live_right >= 0 and live_left < live_right:
                woven.append(server_only[left])
                left += 1
            else:
                woven.append(patch_items[right])
                right += 1
    return woven


def _partition(merged: list[Any], by: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    inside: list[Any] = []
    outside: list[Any] = []
    for item in merged:
        if merge_key and (not isinstance(item, dict) or merge_key not in item):
            raise _no_merge_key(item, merge_key)
        (inside if _index(by, item, merge_key) >= 0 else outside).append(item)
    return inside, outside


def _element_kind(items: list[Any]) -> str:
    kinds = {
        "map" if isinstance(v, dict) else "list" if isinstance(v, list) else "scalar" for v in items
    }
    if "list" in kinds:
        raise PatchError("lists of lists are not supported")
    if len(kinds) > 1:
        raise PatchError(f"list element types are not identical: {_go_repr(items)}")
    return kinds.pop() if kinds else "scalar"


def _fresh(value: Any, path: str, schema: Mapping[str, str]) -> Any:
    """A patch value with no live counterpart: merged into nothing, so directives go."""
    if isinstance(value, dict):
        return _merge_map({}, value, path, schema)
    if isinstance(value, list):
        return _merge_list([], value, path, schema)
    return value


def _merge_list(
    original: list[Any], patch: list[Any], path: str, schema: Mapping[str, str]
) -> list[Any]:
    merge_key = schema.get(path)
    if merge_key is None:
        return [_fresh(item, path, schema) for item in patch]
    if not original and not patch:
        return original
    if _element_kind(original + patch) != "map":
        merged: list[Any] = []
        for item in original + patch:
            if _index(merged, item, "") < 0:
                merged.append(item)
        patch_items, server_only = _partition(merged, patch, "")
        return _normalize_order(patch_items, server_only, patch, original, "")
    if not merge_key:
        raise PatchError(f"cannot merge lists without merge key for {path}")
    plain: list[Any] = []
    replace = False
    for item in patch:
        directive = item.get(_DIRECTIVE)
        if _DIRECTIVE not in item:
            plain.append(item)
        elif directive == "delete":
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            original = [o for o in original if not _json_equal(o.get(merge_key), item[merge_key])]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError("merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(f"unknown patch type: {_go_repr(directive)} in map: {_go_repr(item)}")
    if replace:
        return [_fresh(item, path, schema) for item in plain]
    merged = list(original)
    for item in plain:
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        position = _index(merged, item, merge_key)
        if position >= 0:
            merged[position] = _merge_map(merged[position], item, path, schema)
        else:
            merged.append(_fresh(item, path, schema))
    patch_items, server_only = _partition(merged, plain, merge_key)
    return _normalize_order(patch_items, server_only, plain, original, merge_key)


def _directive_key(key: str, prefix: str) -> str:
    name = key[len(prefix) :]
    if not name:
        raise PatchError(f"invalid patch format: {key!r} names no field")
    return name


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    retain = patch.pop(_RETAIN_KEYS)
    if not isinstance(retain, list):
        raise PatchError("invalid patch format of retainKeys")
    for key, value in patch.items():
        if value is None or key.startswith((_SET_ORDER, _DELETE_FROM)):
            continue
        if key not in retain:
            raise PatchError("invalid patch format of retainKeys")
    for key in [k for k in original if k not in retain]:
        del original[key]


def _apply_element_order(
    original: dict[str, Any], patch: dict[str, Any], key: str, path: str, schema: Mapping[str, str]
) -> None:
    """Merge the list `$setElementOrder/<field>` names, then put it in that order."""
    order = patch.pop(key)
    field = _directive_key(key, _SET_ORDER)
    if not isinstance(order, list):
        raise PatchError("invalid patch format of setElementOrder list")
    field_path = _child(path, field)
    merge_key = schema.get(field_path)
    live, patch_list = original.get(field), patch.pop(field, None)
    if (live is not None and not isinstance(live, list)) or (
        patch_list is not None and not isinstance(patch_list, list)
    ):
        raise PatchError(f"invalid patch format of setElementOrder list: {field} is not a list")
    if live is None and patch_list is None:
        return
    if merge_key is None:  # an atomic list: the order of what is sent is the order kept
        original[field] = _fresh(patch_list, field_path, schema) if patch_list is not None else live
        return
    _check_element_order(patch_list or [], order, merge_key)
    merged = _merge_list(live or [], patch_list or [], field_path, schema)
    patch_items, server_only = _partition(merged, order, merge_key)
    original[field] = _normalize_order(patch_items, server_only, order, live or [], merge_key)


def _check_element_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    if merge_key and not all(isinstance(item, dict) and merge_key in item for item in order):
        raise PatchError(f"invalid patch format of setElementOrder list for merge key {merge_key}")
    named = [i for i in patch_list if not (isinstance(i, dict) and _DIRECTIVE in i)]
    position = 0
    for item in named:
        while position < len(order) and _index([order[position]], item, merge_key) < 0:
            position += 1
        if position == len(order):
            raise PatchError(
                f"The order in patch list:\n{_go_repr(patch_list)}\n doesn't match "
                f"$setElementOrder list:\n{_go_repr(order)}\n"
            )
        position += 1


def _merge_map(
    original: dict[str, Any], patch: dict[str, Any], path: str, schema: Mapping[str, str]
) -> dict[str, Any]:
    """Merge `patch` into `original`; both are private copies and both get consumed."""
    if _DIRECTIVE in patch:
        directive = patch.pop(_DIRECTIVE)
        if directive == "replace":
            return _merge_map({}, patch, path, schema)
        if directive == "delete":
            return {}
        patch[_DIRECTIVE] = directive
        raise PatchError(f"unknown patch type: {_go_repr(directive)} in map: {_go_repr(patch)}")
    if _RETAIN_KEYS in patch:
        _apply_retain_keys(original, patch)
    for key in [k for k in patch if k.startswith(_SET_ORDER)]:
        _apply_element_order(original, patch, key, path, schema)
    for key, value in patch.items():
        if key.startswith(_DELETE_FROM):
            _delete_from_list(original, _directive_key(key, _DELETE_FROM), value)
            continue
        if key.startswith("$"):  # an unknown directive: the typed decode would drop it
            continue
        if value is None:
            original.pop(key, None)
            continue
        live = original.get(key)
        if isinstance(live, dict) and isinstance(value, dict):
            original[key] = _merge_map(live, value, _child(path, key), schema)
        elif isinstance(live, list) and isinstance(value, list):
            original[key] = _merge_list(live, value, _child(path, key), schema)
        else:
            original[key] = _fresh(value, _child(path, key), schema)
    return original


def _delete_from_list(original: dict[str, Any], field: str, doomed: Any) -> None:
    if not isinstance(doomed, list):
        raise PatchError(f"invalid patch format of deleteFromPrimitiveList for {field}")
    live = original.get(field)
    if isinstance(live, list):
        original[field] = [item for item in live if _index(doomed, item, "") < 0]


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
