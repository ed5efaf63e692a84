"""OpenAPI schemas of the built-in kinds, built from openapi_models.json.

The table (generated from the official client's models; see tests/simulator/
test_openapi_models.py) gives each model's description, required fields and properties. Here
they become OpenAPI v3 (`components.schemas`, references wrapped in `allOf` as the real
server writes them) or v2 (`definitions`) schemas, with what the client's models do not
carry: the group-version-kind of each served kind, and the list and map semantics from the
simulator's strategic-merge table (the same table the simulator patches and tracks managed
fields with), so `kubectl apply` computes the patch the simulator will apply.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from services.simulator.managed_fields import list_keys
from services.simulator.resources import ResourceType
from services.simulator.strategic_merge import _SCHEMAS

Obj = dict[str, Any]
MODELS = Path(__file__).with_name("openapi_models.json")
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
LABEL_SELECTOR = "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"
_SCALARS = {"string": "string", "integer": "integer", "boolean": "boolean", "number": "number"}
# Maps written whole (x-kubernetes-map-type: atomic on the field), by (model, property).
_ATOMIC_FIELDS = {
    ("io.k8s.api.core.v1.ServiceSpec", "selector"),
    ("io.k8s.api.core.v1.PodSpec", "nodeSelector"),
}


@functools.cache
def _table() -> Obj:
    data: Obj = json.loads(MODELS.read_text())
    return data


def _ref(name: str, v3: bool) -> str:
    return f"#/components/schemas/{name}" if v3 else f"#/definitions/{name}"


def _type(type_: str, v3: bool, out: set[str]) -> Obj:
    """The schema of a property type ("string", "[]X", "map[X]", a definition name...);
    definitions it refers to are added to `out`."""
    if type_ in _SCALARS:
        return {"type": _SCALARS[type_]}
    if type_ == "date-time":
        return {"type": "string", "format": "date-time"}
    if type_ == "object":
        return {"type": "object"}
    if type_.startswith("[]"):
        return {"type": "array", "items": _type(type_[2:], v3, out)}
    if type_.startswith("map["):
        return {"type": "object", "additionalProperties": _type(type_[4:-1], v3, out)}
    name = INT_OR_STRING if type_ == "int-or-string" else type_
    out.add(name)
    return {"$ref": _ref(name, v3)}


def _property(type_: str, description: str, v3: bool, out: set[str]) -> Obj:
    schema = _type(type_, v3, out)
    if "$ref" in schema and v3:
        # v3 keeps sibling keywords off a $ref: the reference goes into allOf.
        schema = (
            {"allOf": [schema]} if type_ == "int-or-string" else {"allOf": [schema], "default": {}}
        )
    if description:
        schema["description"] = description
    return schema


def _model_schema(name: str, v3: bool, out: set[str]) -> Obj:
    if name == INT_OR_STRING:
        return {
            "description": "IntOrString is a type that can hold an int32 or a string.",
            "format": "int-or-string",
            "type": "string",
            "x-kubernetes-int-or-string": True,
        }
    model = _table()["models"].get(name, {"properties": {}})
    schema: Obj = {"description": model.get("description", ""), "type": "object"}
    schema["properties"] = {
        prop: _property(type_, description, v3, out)
        for prop, (type_, description) in model["properties"].items()
    }
    if model.get("required"):
        schema["required"] = list(model["required"])
    if name == LABEL_SELECTOR:
        schema["x-kubernetes-map-type"] = "atomic"
    for prop in schema["properties"]:
        if (name, prop) in _ATOMIC_FIELDS:
            schema["properties"][prop]["x-kubernetes-map-type"] = "atomic"
    return schema


def _annotate_lists(schemas: Obj, kind: str, root: str) -> None:
    """Put the strategic-merge table's list semantics on the properties they belong to."""
    for dotted, merge_key in _SCHEMAS.get(kind, {}).items():
        model, prop = root, ""
        for segment in dotted.split("."):
            if prop:
                model = _target(model, prop)
            prop = segment
        schema = schemas.get(model, {}).get("properties", {}).get(prop)
        if schema is None or schema.get("type") != "array":
            continue
        keys = list_keys(kind, dotted)
        schema["x-kubernetes-patch-strategy"] = "merge"
        if merge_key:
            schema["x-kubernetes-patch-merge-key"] = merge_key
            schema["x-kubernetes-list-type"] = "map"
            schema["x-kubernetes-list-map-keys"] = list(keys or (merge_key,))
        else:
            schema["x-kubernetes-list-type"] = "set"


def _target(model: str, prop: str) -> str:
    """The model a property refers to (through arrays), or "" for a scalar."""
    type_ = _table()["models"].get(model, {}).get("properties", {}).get(prop, [""])[0]
    return str(type_).removeprefix("[]")


def _build(kinds: tuple[tuple[str, str, str], ...], v3: bool) -> Obj:
    roots = _table()["roots"]
    schemas: Obj = {}
    todo: set[str] = set()
    for group, version, kind in kinds:
        root = _root(roots, group, version, kind)
        if root is not None:
            todo.add(root)
    while todo:
        name = todo.pop()
        if name in schemas:
            continue
        found: set[str] = set()
        schemas[name] = _model_schema(name, v3, found)
        todo |= found - set(schemas)
    for group, version, kind in kinds:
        root = _root(roots, group, version, kind)
        if root is None:
            continue
        schemas[root].setdefault("x-kubernetes-group-version-kind", []).append(
            {"group": group, "kind": kind, "version": version}
        )
        _annotate_lists(schemas, kind, root)
    return dict(sorted(schemas.items()))


def _root(roots: dict[str, str], group: str, version: str, kind: str) -> str | None:
    """A kind's definition: one served in two versions is keyed by its apiVersion too."""
    group_version = f"{group}/{version}" if group else version
    return roots.get(f"{group_version}/{kind}") or roots.get(kind)


@functools.lru_cache(maxsize=64)
def _cached(kinds: tuple[tuple[str, str, str], ...], v3: bool) -> str:
    return json.dumps(_build(kinds, v3))


def schemas(types: Iterable[ResourceType], v3: bool) -> Obj:
    """The schemas of `types` and every model they reach (v3 components or v2 definitions)."""
    kinds = tuple(sorted({(rt.group, rt.version, rt.kind) for rt in types if rt.builtin}))
    built: Obj = json.loads(_cached(kinds, v3))
    return built
