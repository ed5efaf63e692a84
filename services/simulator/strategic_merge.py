"""Kubernetes strategic merge patch machinery for the built-in kinds the simulator serves.

It follows k8s.io/apimachinery/pkg/util/strategicpatch as the server runs it (parallel
deletion lists merged, unmatched nulls ignored), including its ordering rules: items the patch
names keep the patch's order, and items only the server has are woven back in by their live
position. The public entry point is `patch.apply_strategic_merge_patch`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.simulator.patch_values import PatchError, _go_repr, _json_equal

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
