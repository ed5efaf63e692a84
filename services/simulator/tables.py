"""Server-side `meta.k8s.io/v1` Table output, as kube-apiserver answers `kubectl get`.

kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the cells it gets
back verbatim, so the cells here follow kubernetes `pkg/printers/internalversion/printers.go`
line for line. The real server always generates the wide layout (`GenerateOptions{Wide: true}`)
and kubectl hides columns with priority > 0 unless `-o wide`; so every row carries every cell.
Custom resources follow apiextensions-apiserver's tableconvertor (CRD additionalPrinterColumns,
defaulting to a single `Age` date column).

Objects are plain JSON dicts as stored. Fields the real API server would have defaulted before
storing (Service type and protocol, Secret type, Namespace phase, replicas) are defaulted here
the same way, so an object the simulator stored without them still prints as kubectl expects.
"""

from __future__ import annotations

import copy
import json
import math
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.simulator.table_cells import _PRINTERS, _pod_conditions, _Printer
from services.simulator.table_columns import _DOCS, _Column
from services.simulator.table_format import _UNKNOWN, _ZERO_TIME, _d, _s, human_duration

__all__ = ["build_table", "human_duration"]


# --- custom resources (apiextensions-apiserver tableconvertor) ----------------------------------

_PATH_TOKEN = re.compile(r"\.((?:[^.\[\\]|\\.)+)|\[(-?\d+)\]|\[(['\"])(.*?)\3\]")


def _parse_json_path(path: str) -> list[str | int]:
    """Steps of a simple CRD jsonPath (`.status.replicas`, `.a[0].b`, `.metadata.labels['x.y']`).

    Raises ValueError for anything else, as the real server rejects such a column.
    """
    steps: list[str | int] = []
    pos, text = 0, path.strip()
    while pos < len(text):
        match = _PATH_TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"unrecognized column definition {path!r}")
        if match.group(1) is not None:
            steps.append(re.sub(r"\\(.)", r"\1", match.group(1)))
        elif match.group(2) is not None:
            steps.append(int(match.group(2)))
        else:
            steps.append(match.group(4))
        pos = match.end()
    if not steps:
        raise ValueError(f"unrecognized column definition {path!r}")
    return steps


_MISSING = object()
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def _lookup(obj: Any, steps: list[str | int]) -> Any:
    """Follow steps; a missing key or index is _MISSING (the server allows missing keys)."""
    for step in steps:
        in_list = isinstance(step, int) and isinstance(obj, list) and -len(obj) <= step < len(obj)
        if not in_list and not (isinstance(step, str) and isinstance(obj, dict) and step in obj):
            return _MISSING
        obj = obj[step]
    return obj


def _go_float(value: float) -> str:
    """Go's fmt `%v` for a float64: shortest digits, exponent form outside [1e-4, 1e6)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    _, digits_t, exp = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(map(str, digits_t))
    sign = "-" if value < 0 else ""
    point = len(digits) + int(exp)  # position of the decimal point within `digits`
    if not -4 <= point - 1 < 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        e = point - 1
        return f"{sign}{mantissa}e{'-' if e < 0 else '+'}{abs(e):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _custom_cell(col_type: str, value: Any, now: datetime) -> Any:
    """tableconvertor's cell for one additionalPrinterColumn value."""
    if col_type == "string":
        # jsonpath PrintResults: scalars as Go prints them, maps and lists as JSON.
        if value is None:
            return "<no value>"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return _go_float(value)
        if isinstance(value, dict | list):
            text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        return str(value)
    if isinstance(value, bool):
        return value if col_type == "boolean" else None
    if col_type == "integer" and isinstance(value, int | float) and math.isfinite(value):
        return int(value)
    if col_type == "number" and isinstance(value, int | float):
        return float(value)
    if col_type == "date" and isinstance(value, str):
        # metav1.Time.UnmarshalQueryParameter: "" and "null" are the zero time, else RFC 3339.
        if value in ("", "null"):
            return _UNKNOWN
        try:
            ts = datetime.fromisoformat(value) if _RFC3339.fullmatch(value) else None
        except ValueError:
            ts = None
        if ts is None:
            return "<invalid>"
        return _UNKNOWN if ts == _ZERO_TIME else human_duration(now - ts)
    return None


def _custom_table(
    printer_columns: list[tuple[str, str, str, int]] | None,
) -> tuple[tuple[_Column, ...], _Printer]:
    specs = printer_columns or [("Age", "date", ".metadata.creationTimestamp", 0)]
    defaulted = not printer_columns
    paths = [_parse_json_path(path) for _, _, path, _ in specs]
    columns = [_Column("Name", "string", _DOCS["name"], format="name")]
    for name, col_type, path, priority in specs:
        desc = (
            _DOCS["age"]
            if defaulted
            else f"Custom resource definition column (in JSONPath format): {path}"
        )
        columns.append(_Column(name, col_type, desc, priority))

    def cells(obj: dict[str, Any], now: datetime) -> list[Any]:
        row: list[Any] = [_s(_d(obj.get("metadata")).get("name"))]
        for (_, col_type, _, _), steps in zip(specs, paths, strict=True):
            value = _lookup(obj, steps)
            row.append(None if value is _MISSING else _custom_cell(col_type, value, now))
        return row

    return tuple(columns), cells


# --- the Table ---------------------------------------------------------------------------------


def build_table(
    resource: str,
    objects: list[dict[str, Any]],
    now: datetime,
    *,
    include_object: str = "Metadata",
    resource_version: str = "",
    printer_columns: list[tuple[str, str, str, int]] | None = None,
) -> dict[str, Any]:
    """A `meta.k8s.io/v1` Table for `objects` of the plural `resource`, as kube-apiserver sends it.

    Cells are computed against `now` (the simulator's clock). Resources without a built-in
    printer are treated as custom resources: `printer_columns` are the CRD's
    additionalPrinterColumns as `(name, type, jsonPath, priority)`; without them the table has
    NAME and AGE, like a CRD that declares none.

    Raises ValueError if `include_object` is not None, Metadata or Object, or if a printer
    column's jsonPath is not a simple path.
    """
    if include_object not in ("None", "Metadata", "Object"):
        raise ValueError(f"includeObject must be None, Metadata or Object, got {include_object!r}")
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    builtin = _PRINTERS.get(resource)
    columns, printer = builtin if builtin is not None else _custom_table(printer_columns)
    rows: list[dict[str, Any]] = []
    for obj in objects:
        row: dict[str, Any] = {"cells": printer(obj, now)}
        if resource == "pods" and (conditions := _pod_conditions(obj)) is not None:
            row["conditions"] = conditions
        if include_object == "Metadata":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": copy.deepcopy(_d(obj.get("metadata"))),
            }
        elif include_object == "Object":
            row["object"] = copy.deepcopy(obj)
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version} if resource_version else {},
        "columnDefinitions": [c.to_json() for c in columns],
        "rows": rows,
    }


def event_table(
    resource: str,
    obj: dict[str, Any],
    now: datetime,
    *,
    include_object: str,
    printer_columns: list[tuple[str, str, str, int]] | None,
    headers: bool,
) -> dict[str, Any]:
    """A watch event's object as a one-row Table: the real watch encoder sends the column
    definitions with the first event only (TableOptions.NoHeaders afterwards)."""
    table = build_table(
        resource,
        [obj],
        now,
        include_object=include_object,
        resource_version=str(obj.get("metadata", {}).get("resourceVersion", "")),
        printer_columns=printer_columns,
    )
    if not headers:
        table["columnDefinitions"] = None
    return table
