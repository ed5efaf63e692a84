"""Field selectors, parsed and matched the way kube-apiserver does.

They follow k8s.io/apimachinery/pkg/fields, with its backslash escaping of `\\`, `,` and `=`
in values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.simulator.label_selectors import SelectorError

__all__ = ["FieldRequirement", "FieldSelector", "parse_field_selector"]


@dataclass(frozen=True)
class FieldRequirement:
    """One `path=value` or `path!=value` clause of a field selector."""

    path: str
    value: str
    negated: bool = False

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether the object's field at `path` equals (or, negated, differs from) `value`."""
        return (_field_text(obj, self.path) == self.value) != self.negated

    def to_string(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        return f"{self.path}{'!=' if self.negated else '='}{escaped}"


@dataclass(frozen=True)
class FieldSelector:
    """A conjunction of field requirements; none at all matches everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(requirement.matches(obj) for requirement in self.requirements)

    def paths(self) -> frozenset[str]:
        """The field paths used, so a server can refuse ones a resource does not index."""
        return frozenset(requirement.path for requirement in self.requirements)

    def to_string(self) -> str:
        return ",".join(requirement.to_string() for requirement in self.requirements)


def _field_text(obj: Mapping[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return ""
        node = node[part]
    if isinstance(node, bool):
        return "true" if node else "false"
    if node is None or isinstance(node, Mapping | list):
        return ""
    return str(node)


def _split_unescaped(text: str) -> list[str]:
    terms, start, escaped = [], 0, False
    for position, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:position])
            start = position + 1
    terms.append(text[start:])
    return terms


def _unescape(value: str) -> str:
    out: list[str] = []
    escaped = False
    for char in value:
        if escaped:
            if char not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{char}")
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            raise SelectorError(f"invalid field selector: unescaped character in value: {char}")
        else:
            out.append(char)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def parse_field_selector(text: str) -> FieldSelector:
    """Parse a `--field-selector` string such as `spec.nodeName=gpu-1,status.phase!=Running`.

    The empty string selects everything. Values may escape `\\`, `,` and `=` with `\\`.

    Raises:
        SelectorError: a term has no `=`, `==` or `!=`, or a value is badly escaped.
    """
    requirements: list[FieldRequirement] = []
    for term in sorted(_split_unescaped(text)) if text else []:
        if not term:
            continue
        match = re.search("!=|==|=", term)
        if match is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        path, value = term[: match.start()], term[match.end() :]
        requirements.append(FieldRequirement(path, _unescape(value), match.group() == "!="))
    return FieldSelector(tuple(requirements))
