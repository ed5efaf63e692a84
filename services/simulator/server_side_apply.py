"""Server-side apply: PATCH with `application/apply-patch+yaml`, as kube-apiserver runs it.

The applied configuration is merged into the live object (maps field by field, associative
lists item by item, atomic lists and maps replaced); the applier then owns exactly the fields
it sent (its `Apply` entry); fields it owned before and no longer sends are removed unless
another manager owns them. Changing a field another manager owns is a conflict: 409 with the
real message listing each manager and field, unless `force=true` takes the fields over. An
object that has never been applied (no managedFields) is first given to "before-first-apply",
as the real server does. kubectl's own upgrade from client-side apply follows the server:
conflicts with kubectl-client-side-apply on fields the last-applied annotation holds are
forgiven for manager "kubectl", which also keeps the annotation up to date.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from aiohttp import web

from services.simulator import field_schema
from services.simulator.errors import ApiError, bad_request, invalid, not_found
from services.simulator.managed_fields import (
    MISSING,
    Entry,
    FieldSet,
    Path,
    children,
    compare,
    decode,
    encode,
    leaves,
    tracked,
    zero_value,
)
from services.simulator.request_parsing import dry_run
from services.simulator.resources import ResourceType
from services.simulator.store import Store

Obj = dict[str, Any]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
BEFORE_FIRST_APPLY = "before-first-apply"
CLIENT_SIDE_APPLY = "kubectl-client-side-apply"


def parse(text: str) -> Obj:
    """The applied configuration (YAML or JSON). Raises ApiError 400."""
    try:
        config = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise bad_request(f"error decoding YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise bad_request("error decoding YAML: the applied configuration is not an object")
    meta = config.get("metadata")
    if isinstance(meta, dict) and meta.get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")
    return config


def _path_text(path: Path) -> str:
    """A field path as structured-merge-diff prints it (.spec.containers[name="vllm"])."""
    out = ""
    for element in path:
        prefix, _, rest = element.partition(":")
        if prefix == "f":
            out += f".{rest}"
        elif prefix == "k":
            keys = json.loads(rest)
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]"
        elif prefix == "v":
            out += f"[={rest}]"
        else:
            out += f"[{rest}]"
    return out


def _manager_text(entry: Entry) -> str:
    text = json.dumps(entry.manager)
    if entry.subresource:
        text += f" with subresource {json.dumps(entry.subresource)}"
    if entry.operation == "Update":
        # The conflict names the manager's identifier, which carries no time.
        text += f" using {entry.api_version}"
    return text


def conflict_error(conflicts: list[tuple[Entry, Path]]) -> ApiError:
    """409 Conflict as NewConflictError words it (one line for one conflict, else grouped by
    manager)."""
    causes = [
        {"reason": "FieldManagerConflict", "message": f"conflict with {_manager_text(e)}",
         "field": _path_text(p)}
        for e, p in conflicts
    ]  # fmt: skip
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        message = (
            f"Apply failed with 1 conflict: conflict with {_manager_text(entry)}: "
            f"{_path_text(path)}"
        )
    else:
        by_manager: dict[str, list[str]] = {}
        for entry, path in conflicts:
            by_manager.setdefault(_manager_text(entry), []).append(_path_text(path))
        lines = []
        for manager in sorted(by_manager):
            lines.append(f"conflicts with {manager}:")
            lines += [f"- {p}" for p in by_manager[manager]]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, causes=causes, with_details=True)


# --------------------------------------------------------------------------- merge and prune


def merge(kind: str, live: Any, config: Any, dotted: str = "") -> Any:
    """`config` merged into `live` as structured-merge-diff merges an apply."""
    if live is MISSING or live is None:
        return json.loads(json.dumps(config))
    config_items = children(kind, config, dotted)
    live_items = children(kind, live, dotted)
    if config_items is None or live_items is None or type(live) is not type(config):
        return json.loads(json.dumps(config))
    if isinstance(config, dict):
        out = dict(live)
        for key, value in config.items():
            child = f"{dotted}.{key}" if dotted else key
            out[key] = merge(kind, live.get(key, MISSING), value, child)
        return out
    by_element = {element: item for element, item, _ in live_items}
    merged = dict(by_element)
    for element, item, _ in config_items:
        merged[element] = merge(kind, by_element.get(element, MISSING), item, dotted)
    return list(merged.values())


def remove(kind: str, obj: Any, path: Path, dotted: str = "") -> None:
    """Delete the field or item at `path` from `obj`, in place."""
    if not path:
        return
    element, rest = path[0], path[1:]
    if isinstance(obj, dict) and element.startswith("f:"):
        key = element[2:]
        if key not in obj:
            return
        if rest:
            remove(kind, obj[key], rest, f"{dotted}.{key}" if dotted else key)
        else:
            del obj[key]
        return
    items = children(kind, obj, dotted)
    if not isinstance(obj, list) or items is None:
        return
    for index, (candidate, item, _) in enumerate(list(items)):
        if candidate == element:
            if rest:
                remove(kind, item, rest, dotted)
            else:
                del obj[index]
            return


def _owned_below(path: Path, sets: list[FieldSet]) -> bool:
    size = len(path)
    return any(p[:size] == path for fields in sets for p in fields)


# --------------------------------------------------------------------------- apply


def _first_apply_entries(kind: str, live: Obj, api_version: str, now: str) -> list[Entry]:
    """An object nobody has applied yet: its fields go to "before-first-apply"."""
    diff = compare(kind, zero_value(kind), tracked(live))
    if not diff.changed:
        return []
    return [Entry(BEFORE_FIRST_APPLY, "Update", api_version, diff.changed, now)]


def _forgiven(live: Obj, manager: str, kind: str) -> FieldSet:
    """Conflicts kubectl may take over from its own client-side apply when it moves to
    server-side apply: fields the last-applied annotation holds."""
    if manager != "kubectl":
        return set()
    annotations = live.get("metadata", {}).get("annotations") or {}
    try:
        last = json.loads(annotations.get(LAST_APPLIED, ""))
    except ValueError:
        return set()
    return leaves(kind, tracked(last)) if isinstance(last, dict) else set()


def apply(
    kind: str,
    live: Obj | None,
    config: Obj,
    manager: str,
    api_version: str,
    now: str,
    *,
    force: bool,
) -> Obj:
    """The object after `manager` applies `config` to `live` (None: the apply creates it),
    with its managedFields. Raises ApiError 409 for conflicts when not `force`."""
    applied = tracked(config)
    new_set = leaves(kind, applied)
    identity = (manager, "Apply", api_version, "")
    if live is None:
        base: Obj = {}
        entries: list[Entry] = []
    else:
        base = json.loads(json.dumps(live))
        entries = decode(live.get("metadata", {}).get("managedFields"))
        if not entries:
            entries = _first_apply_entries(kind, live, api_version, now)
    own = next((e for e in entries if e.identity == identity), None)
    others = [e for e in entries if e.identity != identity]
    merged: Obj = merge(kind, base, applied) if base else json.loads(json.dumps(applied))
    for key in ("apiVersion", "kind"):
        if key in config:
            merged[key] = config[key]
    # Fields this manager applied before and no longer sends, that nobody else owns, go.
    dropped = (own.fields if own else set()) - new_set
    still_owned = [new_set, *(e.fields for e in others)]
    for path in sorted(dropped, key=len, reverse=True):
        if not _owned_below(path, still_owned):
            remove(kind, merged, path)
    diff = compare(kind, tracked(base) if live is not None else zero_value(kind), tracked(merged))
    conflicts = [(entry, path) for entry in others for path in sorted(entry.fields & diff.changed)]
    if conflicts and not force and live is not None:
        forgiven = _forgiven(live, manager, kind)
        remaining = [
            (e, p) for e, p in conflicts if e.manager != CLIENT_SIDE_APPLY or p not in forgiven
        ]
        if remaining:
            raise conflict_error(remaining)
    for entry in others:
        entry.fields -= diff.changed | diff.removed
    unchanged = own is not None and own.fields == new_set and not diff.changed and not diff.removed
    if own is None:
        own = Entry(manager, "Apply", api_version, set(), now)
    own.fields = new_set
    if not unchanged:
        own.time = now
    if manager == "kubectl" and live is not None:
        annotations = (live.get("metadata", {}).get("annotations")) or {}
        if LAST_APPLIED in annotations:
            _set_last_applied(merged, config)
    merged.setdefault("metadata", {})["managedFields"] = encode([own, *others])
    return merged


def _set_last_applied(merged: Obj, config: Obj) -> None:
    """buildLastApplied: the applied configuration without the annotation itself."""
    last = json.loads(json.dumps(config))
    annotations = last.get("metadata", {}).get("annotations") or {}
    annotations.pop(LAST_APPLIED, None)
    if not annotations:
        last.get("metadata", {}).pop("annotations", None)
    text = json.dumps(last, separators=(",", ":"), sort_keys=True)
    merged.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = text


def check_options(apply_patch: bool, manager: str, force: str | None) -> None:
    """ValidatePatchOptions: apply needs a fieldManager, only apply takes `force`.

    Raises ApiError 422.
    """
    causes = []
    if not apply_patch and force is not None:
        causes.append(("force", "Forbidden: may not be specified for non-apply patch"))
    if apply_patch and not manager:
        causes.append(("fieldManager", "Required value: is required for apply patch"))
    if len(manager) > 128:
        causes.append(
            ("fieldManager", f"Too long: may not be more than 128 bytes: {json.dumps(manager)}")
        )
    if causes:
        raise invalid("PatchOptions", "meta.k8s.io", "", causes)


async def serve(
    request: web.Request, store: Store, rt: ResourceType, namespace: str, name: str, now: str
) -> tuple[Obj, int]:
    """PATCH NAME with an apply patch: (the object, 200) or (the created object, 201).

    Raises ApiError 400 (a bad body), 409 (conflicts), 422 (bad options or an invalid result),
    500 (a field the schema does not declare, as the real server's typed conversion fails).
    """
    config = parse(await request.text())
    manager = request.query.get("fieldManager", "")
    check_options(True, manager, request.query.get("force"))
    raw_meta = config.get("metadata")
    meta: Obj = raw_meta if isinstance(raw_meta, dict) else {}
    if meta.get("name") and meta["name"] != name:
        raise bad_request(
            f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
        )
    if rt.builtin:
        unknown = field_schema.drop_unknown(rt.kind, json.loads(json.dumps(config)))
        if unknown:
            where = f"{namespace}/{name}" if namespace else name
            raise ApiError(
                500,
                "",
                f"failed to create typed patch object ({where}; {rt.group_version}, "
                f"Kind={rt.kind}): .{unknown[0]}: field not declared in schema",
            )
    try:
        live: Obj | None = store.get(rt, namespace, name)
    except ApiError as err:
        if err.code != 404:
            raise
        live = None
    force = request.query.get("force") == "true"
    merged = apply(rt.kind, live, config, manager, rt.group_version, now, force=force)
    merged_meta = merged.setdefault("metadata", {})
    merged_meta["name"] = name
    if rt.namespaced:
        merged_meta["namespace"] = namespace
    dry = dry_run(request)
    if live is None:
        if rt.namespaced and store.peek("namespaces", "", namespace) is None:
            raise not_found("namespaces", "", namespace)
        return store.create(rt, merged, dry_run=dry), 201
    merged_meta["resourceVersion"] = live["metadata"]["resourceVersion"]
    return store.update(rt, merged, dry_run=dry), 200
