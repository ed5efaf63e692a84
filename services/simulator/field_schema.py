"""Unknown fields, found and dropped as a real server's strict JSON decoding does.

The fields each kind declares come from openapi_models.json, the one table generated from the
official `kubernetes` client's models that also gives /openapi/v2 and /openapi/v3 their
schemas (tests/simulator/test_openapi_models.py regenerates it;
tests/simulator/test_fidelity_schema.py checks the fields read here against the client's). The
simulator reads it as data and imports nothing from the client. Custom resources are not
covered: their schemas are the CRDs', which the simulator does not model.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

Obj = dict[str, Any]
TABLE = Path(__file__).with_name("openapi_models.json")
# Kinds whose schema is not an object written through a resource's own route.
_NOT_WRITTEN = frozenset({"Scale", "DeleteOptions", "Status"})


@functools.cache
def _table() -> Obj:
    data: Obj = json.loads(TABLE.read_text())
    return data


def _model_of(type_: str) -> str:
    """The model a property's type refers to ("io.k8s..." or "[]io.k8s..."), else ""."""
    name = type_.removeprefix("[]")
    return name if name.startswith("io.k8s.") else ""


@functools.cache
def fields(model: str) -> dict[str, str]:
    """The properties of a definition (`io.k8s.api.core.v1.Pod`) by their JSON name: the model
    a property holds ("[]" before it for a list of them) or "" for a scalar or a map."""
    properties: dict[str, list[str]] = _table()["models"].get(model, {}).get("properties", {})
    out: dict[str, str] = {}
    for name, (type_, _description) in properties.items():
        inner = _model_of(type_)
        out[name] = ("[]" if inner and type_.startswith("[]") else "") + inner
    return out


def roots() -> dict[str, str]:
    """The kinds strict decoding checks, by kind: their definition names."""
    table: dict[str, str] = _table()["roots"]
    return {kind: model for kind, model in table.items() if kind not in _NOT_WRITTEN}


def has_schema(kind: str) -> bool:
    return kind in roots()


def drop_unknown(
    kind: str, obj: Obj, *, sort_keys: bool = False, api_version: str = ""
) -> list[str]:
    """Remove the fields of `obj` (a `kind`) its schema does not declare, in place.

    Returns their paths in document order as sigs.k8s.io/json reports them
    (`spec.template.spec.containers[0].foo`); `sort_keys` walks each object's keys sorted,
    as a patched document re-marshalled from a Go map is. A kind without a schema is left
    alone. A kind served in two versions is checked against `api_version`'s schema.
    """
    known = roots()
    model = known.get(f"{api_version}/{kind}") or known.get(kind)
    if model is None:
        return []
    found: list[str] = []
    _walk(model, obj, "", found, sort_keys)
    return found


def _walk(model: str, value: Any, path: str, found: list[str], sort_keys: bool) -> None:
    if not isinstance(value, dict):
        return
    known = fields(model)
    for key in sorted(value) if sort_keys else list(value):
        where = f"{path}.{key}" if path else key
        if key not in known:
            found.append(where)
            del value[key]
            continue
        child = known[key]
        if not child:
            continue
        if child.startswith("[]"):
            items = value[key] if isinstance(value[key], list) else []
            for i, item in enumerate(items):
                _walk(child[2:], item, f"{where}[{i}]", found, sort_keys)
        else:
            _walk(child, value[key], where, found, sort_keys)


def strict_message(paths: list[str]) -> str:
    """runtime.NewStrictDecodingError's text for the unknown fields at `paths`."""
    return "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in paths)
