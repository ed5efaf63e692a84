"""Reading what a request asks: query options (dry run, selectors, watch-list options) and
bodies (JSON, protobuf, the three patch flavours), refused in the real server's words."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from services.simulator import field_schema, managed_fields, protobuf
from services.simulator.clock import rfc3339
from services.simulator.errors import (
    ApiError,
    bad_request,
    invalid,
    patch_rejected,
    unsupported_media,
)
from services.simulator.patch import (
    PatchError,
    UnsupportedPatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)
from services.simulator.resources import ResourceType, field_label_error, selectable_view
from services.simulator.selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)

Obj = dict[str, Any]
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
# What each kind of resource accepts as a PATCH body (the 415 message lists them).
BUILTIN_PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)
CUSTOM_PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH)
# The Warning headers a request's answer carries (server.py's middleware writes them).
WARNINGS = web.RequestKey("warnings", list[str])
# The body a handler reads instead of the request's (an older version's object converted).
CONVERTED_BODY = web.RequestKey("converted_body", object)


class SelectableFields:
    """A field selector applied to the fields a resource type lets clients select by."""

    def __init__(self, rt: ResourceType, selector: FieldSelector) -> None:
        self.rt = rt
        self.selector = selector

    def matches(self, obj: Obj) -> bool:
        return self.selector.matches(selectable_view(self.rt, obj))


def dry_run(request: web.Request, body: Any = None) -> bool:
    """Whether the request is a server-side dry run: `dryRun` in the query or, for a DELETE,
    in its DeleteOptions `body` (where kubectl and the official client put it).

    Raises ApiError 400 for a bad value.
    """
    values = list(request.query.getall("dryRun", []))
    if isinstance(body, dict) and isinstance(body.get("dryRun"), list):
        values += [str(v) for v in body["dryRun"]]
    for value in values:
        if value != "All":
            raise bad_request(f'Invalid dry run value: unsupported dry run value "{value}"')
    return bool(values)


def drop_unknown_fields(
    request: web.Request, kind: str, obj: Any, *, decoded: bool, api_version: str = ""
) -> None:
    """Drop the fields of `obj` a `kind` does not declare, as `fieldValidation` asks: Strict
    refuses them (400), Warn (the server's default) adds a Warning header for each, Ignore
    drops them silently. `decoded` words the 400 of a create or update (the body was decoded
    as the object) rather than a patch's.

    Raises ApiError 400.
    """
    if not isinstance(obj, dict):
        return
    # A patched document is re-marshalled from a Go map (keys sorted) before decoding.
    unknown = field_schema.drop_unknown(kind, obj, sort_keys=not decoded, api_version=api_version)
    if not unknown:
        return
    directive = request.query.get("fieldValidation") or "Warn"
    if directive == "Strict":
        message = field_schema.strict_message(unknown)
        if decoded:
            version = str(obj.get("apiVersion", "")).rsplit("/", 1)[-1]
            message = f'{kind} in version "{version}" cannot be handled as a {kind}: {message}'
        raise bad_request(message)
    if directive == "Warn":
        warnings = request.setdefault(WARNINGS, [])
        warnings += [f'unknown field "{path}"' for path in unknown]


def field_manager(request: web.Request) -> str:
    """The manager a write is recorded under: `fieldManager`, else the User-Agent's product
    (what comes before its first "/", printable characters, at most 128), as the real server
    names it: kubectl's writes say kubectl-client-side-apply, kubectl-edit, kubectl-patch...;
    the Python client's without a fieldManager say OpenAPI-Generator."""
    manager = request.query.get("fieldManager")
    if manager:
        return manager
    product = request.headers.get("User-Agent", "").split("/", 1)[0]
    return "".join(c for c in product if c.isprintable())[:128]


def manage(
    request: web.Request, rt: ResourceType, now: datetime, subresource: str = ""
) -> Callable[[Obj | None, Obj], None]:
    """The store's `manage` hook recording this request's writer in managedFields."""

    def record(old: Obj | None, new: Obj) -> None:
        managed_fields.record_update(
            rt.kind, old, new, field_manager(request), rt.group_version, rfc3339(now), subresource
        )

    return record


def warning_header(text: str) -> str:
    """An RFC 7234 Warning header value as apiserver writes it (code 299, agent "-")."""
    return "299 - " + json.dumps(text)


def wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def selectors(
    request: web.Request, rt: ResourceType, name: str = ""
) -> tuple[LabelSelector | None, SelectableFields | None]:
    """The request's label and field selectors.

    Raises ApiError 400 for a selector that does not parse or a field `rt` cannot select by.
    """
    labels = request.query.get("labelSelector")
    text = request.query.get("fieldSelector", "")
    if name:  # a watch of one object is a watch of its collection by metadata.name
        text = f"{text},metadata.name={name}" if text else f"metadata.name={name}"
    try:
        label_selector = parse_label_selector(labels) if labels else None
        field_selector = parse_field_selector(text) if text else None
    except SelectorError as exc:
        raise bad_request(str(exc)) from exc
    if field_selector is None:
        return label_selector, None
    for path in sorted(field_selector.paths()):
        refused = field_label_error(rt, path)
        if refused:
            raise bad_request(refused)
    return label_selector, SelectableFields(rt, field_selector)


def watch_list_options(request: web.Request) -> bool | None:
    """sendInitialEvents, validated as the real server validates a watch's ListOptions.

    Raises ApiError 422 for a combination it refuses.
    """
    send_initial = request.query.get("sendInitialEvents")
    match = request.query.get("resourceVersionMatch", "")
    causes: list[tuple[str, str]] = []
    if send_initial is not None and match != "NotOlderThan":
        causes.append(
            (
                "resourceVersionMatch",
                "Forbidden: sendInitialEvents requires setting resourceVersionMatch to "
                "NotOlderThan",
            )
        )
    if match and send_initial is None:
        causes.append(
            (
                "resourceVersionMatch",
                "Forbidden: resourceVersionMatch is forbidden for watch unless "
                "sendInitialEvents is provided",
            )
        )
    if match and match != "NotOlderThan":
        causes.append(
            (
                "resourceVersionMatch",
                f'Unsupported value: "{match}": supported values: "NotOlderThan"',
            )
        )
    if causes:
        raise invalid("ListOptions", "meta.k8s.io", "", causes)
    return None if send_initial is None else send_initial == "true"


async def read_body(request: web.Request) -> Any:
    """The request body as JSON data (or the one a version conversion put in its place).
    Raises ApiError 400 (bad JSON) or 415 (protobuf of a kind the simulator cannot read)."""
    if CONVERTED_BODY in request:
        return request[CONVERTED_BODY]
    if request.content_type == "application/vnd.kubernetes.protobuf":
        try:
            return protobuf.decode(await request.read())
        except protobuf.ProtobufError as exc:
            raise unsupported_media(str(exc)) from exc
    try:
        text = await request.text()
        return json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from exc


def apply_patch(target: Obj, patch: Any, content_type: str, rt: ResourceType, kind: str) -> Any:
    """`target` with a PATCH body of `content_type` applied (strategic merge keyed as `kind`).

    Raises ApiError 415 for a patch type `rt` does not take, 422 for a patch that fails.
    """
    if content_type == JSON_PATCH:
        if not isinstance(patch, list):
            # jsonpatch.DecodePatch's json.Unmarshal error, answered as a 400.
            raise bad_request(
                f"json: cannot unmarshal {_go_json_type(patch)} into Go value of type "
                "jsonpatch.Patch"
            )
        try:
            return apply_json_patch(target, patch)
        except PatchError as exc:
            raise patch_rejected() from exc
    try:
        if content_type == MERGE_PATCH:
            return apply_merge_patch(target, patch)
        if content_type == STRATEGIC_PATCH and rt.builtin:
            return apply_strategic_merge_patch(target, patch, kind)
    except UnsupportedPatchError as exc:
        raise unsupported_media(str(exc)) from exc
    except PatchError as exc:
        raise ApiError(422, "Invalid", str(exc)) from exc
    accepted = BUILTIN_PATCH_TYPES if rt.builtin else CUSTOM_PATCH_TYPES
    raise unsupported_media(
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted)
    )


def _go_json_type(value: Any) -> str:
    """The JSON type as encoding/json names it in an unmarshal error."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "null"
