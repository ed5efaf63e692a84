"""Validation rules worded as apimachinery and pkg/apis/core/validation word them: label keys
and values, and the integer, requests-equal-limits rule of extended resources (GPUs)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

Causes = list[tuple[str, str]]
_QUALIFIED_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED = re.compile(f"^{_QUALIFIED_FMT}$")
_LABEL_VALUE_FMT = f"({_QUALIFIED_FMT})?"
_LABEL_VALUE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_DNS1123_SUBDOMAIN_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_DNS1123_SUBDOMAIN = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")
_QUALIFIED_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character"
)
_DNS1123_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character"
)
# Resources the kubelet and scheduler may overcommit; every other one (nvidia.com/gpu...)
# must have requests equal to limits.
_OVERCOMMIT = {"cpu", "memory", "ephemeral-storage"}
_SUFFIX_EXP = {"": 0, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_QUANTITY = re.compile(r"^([+-]?[0-9]*\.?[0-9]*)([a-zA-Z]*)$")


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """validation.RegexError, its double spaces between examples included."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def qualified_name_errors(value: str) -> list[str]:
    """validation.IsQualifiedName."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) > 2:
        return [
            "a qualified name "
            + regex_error(_QUALIFIED_MSG, _QUALIFIED_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                errs.append("prefix part must be no more than 253 characters")
            if not _DNS1123_SUBDOMAIN.match(prefix):
                errs.append(
                    "prefix part "
                    + regex_error(_DNS1123_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com")
                )
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if not _QUALIFIED.match(name):
        errs.append(
            "name part "
            + regex_error(_QUALIFIED_MSG, _QUALIFIED_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def label_value_errors(value: str) -> list[str]:
    """validation.IsValidLabelValue."""
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _LABEL_VALUE.match(value):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def validate_labels(labels: Any, path: str, causes: Causes) -> None:
    """ValidateLabels: every cause is on the map's path, not the key's."""
    if not isinstance(labels, dict):
        return
    for key, value in labels.items():
        for msg in qualified_name_errors(str(key)):
            causes.append((path, f'Invalid value: "{key}": {msg}'))
        for msg in label_value_errors(str(value)):
            causes.append((path, f'Invalid value: "{value}": {msg}'))


def _quantity(raw: Any) -> tuple[int, int, Decimal] | None:
    """(unscaled value, scale, exact amount) as resource.ParseQuantity keeps a decimal
    quantity in an int64Amount; None for a form this does not read (binary suffixes)."""
    match = _QUANTITY.match(str(raw).strip())
    if match is None or match[2] not in _SUFFIX_EXP:
        return None
    number, suffix = match[1], match[2]
    try:
        amount = Decimal(number) * (Decimal(10) ** _SUFFIX_EXP[suffix])
    except InvalidOperation:
        return None
    whole, _, fraction = number.lstrip("+-").partition(".")
    digits = int((whole + fraction) or "0") * (-1 if number.startswith("-") else 1)
    return digits, _SUFFIX_EXP[suffix] - len(fraction), amount


def _canonical(amount: Decimal) -> str:
    """Quantity.String() for a decimal amount: whole numbers plain, fractions in milli."""
    if amount == amount.to_integral_value():
        return str(int(amount))
    return f"{int(amount * 1000)}m"


def _go_quantity(digits: int, scale: int) -> str:
    """A parsed resource.Quantity as Go's %#v prints it (field.Invalid of a Quantity)."""
    return (
        f"resource.Quantity{{i:resource.int64Amount{{value:{digits}, scale:{scale}}}, "
        'd:resource.infDecAmount{Dec:(*inf.Dec)(nil)}, s:"", Format:"DecimalSI"}'
    )


def validate_resources(resources: Any, path: str, causes: Causes) -> None:
    """ValidateResourceRequirements' rules for extended resources: integer quantities, and
    requests equal to limits (a request alone needs a limit)."""
    if not isinstance(resources, dict):
        return
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    for section, values in (("limits", limits), ("requests", requests)):
        for name, raw in values.items():
            parsed = _quantity(raw)
            if name in _OVERCOMMIT or "/" not in name or parsed is None:
                continue
            digits, scale, amount = parsed
            if amount != amount.to_integral_value():
                causes.append(
                    (
                        f"{path}.{section}[{name}]",
                        f"Invalid value: {_go_quantity(digits, scale)}: must be an integer",
                    )
                )
    for name, raw in requests.items():
        if name in _OVERCOMMIT or "/" not in name:
            continue
        if name not in limits:
            causes.append(
                (
                    f"{path}.limits",
                    "Required value: Limit must be set for non overcommitable resources",
                )
            )
            continue
        wanted, limit = _quantity(raw), _quantity(limits[name])
        if wanted is not None and limit is not None and wanted[2] != limit[2]:
            causes.append(
                (
                    f"{path}.requests",
                    f'Invalid value: "{_canonical(wanted[2])}": must be equal to {name} limit '
                    f"of {_canonical(limit[2])}",
                )
            )
