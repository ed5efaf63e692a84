"""Unknown fields, found and dropped as a real server's strict JSON decoding does.

The table of known fields (known_fields.json) is generated from the official `kubernetes`
client's models (tests/simulator/test_fidelity_schema.py regenerates and checks it); the
simulator reads it as data and imports nothing from the client. Custom resources are not
covered: their schemas are the CRDs', which the simulator does not model.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

Obj = dict[str, Any]
TABLE = Path(__file__).with_name("known_fields.json")


@functools.cache
def _table() -> Obj:
    data: Obj = json.loads(TABLE.read_text())
    return data


def has_schema(kind: str) -> bool:
    return kind in _table()["roots"]


def drop_unknown(kind: str, obj: Obj, *, sort_keys: bool = False) -> list[str]:
    """Remove the fields of `obj` (a `kind`) its schema does not declare, in place.

    Returns their paths in document order as sigs.k8s.io/json reports them
    (`spec.template.spec.containers[0].foo`); `sort_keys` walks each object's keys sorted,
    as a patched document re-marshalled from a Go map is. A kind without a schema is left
    alone.
    """
    table = _table()
    model = table["roots"].get(kind)
    if model is None:
        return []
    found: list[str] = []
    _walk(table["models"], model, obj, "", found, sort_keys)
    return found


def _walk(
    models: Obj, model: str, value: Any, path: str, found: list[str], sort_keys: bool
) -> None:
    if not isinstance(value, dict):
        return
    fields: dict[str, str] = models.get(model, {})
    for key in sorted(value) if sort_keys else list(value):
        where = f"{path}.{key}" if path else key
        if key not in fields:
            found.append(where)
            del value[key]
            continue
        child = fields[key]
        if not child:
            continue
        if child.startswith("[]"):
            items = value[key] if isinstance(value[key], list) else []
            for i, item in enumerate(items):
                _walk(models, child[2:], item, f"{where}[{i}]", found, sort_keys)
        else:
            _walk(models, child, value[key], where, found, sort_keys)


def strict_message(paths: list[str]) -> str:
    """runtime.NewStrictDecodingError's text for the unknown fields at `paths`."""
    return "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in paths)
