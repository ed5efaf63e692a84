"""Label selectors, parsed and matched the way kube-apiserver does.

The grammar, its validation messages and the canonical string form follow
k8s.io/apimachinery/pkg/labels. `SelectorError` is shared with the field selectors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "LabelSelector",
    "Operator",
    "Requirement",
    "SelectorError",
    "format_label_selector",
    "format_labels",
    "parse_label_selector",
    "selector_from_spec",
]


class SelectorError(ValueError):
    """A selector the server would reject with 400 Bad Request."""


class Operator(StrEnum):
    """Label requirement operators, spelled as Kubernetes' selection.Operator."""

    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_NAME_RE = re.compile(f"^{_NAME_FMT}$")
_VALUE_FMT = f"({_NAME_FMT})?"
_VALUE_RE = re.compile(f"^{_VALUE_FMT}$")
_DNS_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_DNS_RE = re.compile(f"^{_DNS_FMT}$")
_INTEGER_RE = re.compile(r"^[+-]?[0-9]+$")
_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character"
)


def _regex_error(message: str, fmt: str, *examples: str) -> str:
    # Same wording as validation.RegexError, double space included.
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


def _invalid(path: str, value: Any, detail: str) -> str:
    shown = json.dumps(value) if isinstance(value, str) else repr(value)
    return f"{path}: Invalid value: {shown}: {detail}"


def _label_key_problems(key: str) -> list[str]:
    parts = key.split("/")
    problems: list[str] = []
    if len(parts) > 2:
        return [
            "a qualified name "
            + _regex_error(_NAME_MSG, _NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.append("prefix part must be non-empty")
        elif len(prefix) > 253:
            problems.append("prefix part must be no more than 253 characters")
        elif not _DNS_RE.match(prefix):
            dns_msg = (
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character"
            )
            problems.append("prefix part " + _regex_error(dns_msg, _DNS_FMT, "example.com"))
    name = parts[-1]
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if not _NAME_RE.match(name):
        problems.append(
            "name part " + _regex_error(_NAME_MSG, _NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return problems


def _label_value_problem(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _VALUE_RE.match(value):
        message = (
            "a valid label must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character"
        )
        return _regex_error(message, _VALUE_FMT, "MyValue", "my_value", "12345")
    return None


def _aggregate(errors: list[str]) -> str:
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


@dataclass(frozen=True)
class Requirement:
    """One clause of a label selector, e.g. `tier in (a,b)`."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    @classmethod
    def create(cls, key: str, operator: Operator, values: tuple[str, ...] = ()) -> Requirement:
        """Build a validated requirement (labels.NewRequirement).

        Raises:
            SelectorError: bad key or value, or the wrong number of values for `operator`.
        """
        errors: list[str] = []
        if problems := _label_key_problems(key):
            errors.append(_invalid("key", key, "; ".join(problems)))
        if operator in (Operator.IN, Operator.NOT_IN) and not values:
            errors.append(
                _invalid("values", [], "for 'in', 'notin' operators, values set can't be empty")
            )
        exact = (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS)
        if operator in exact and len(values) != 1:
            errors.append(
                _invalid(
                    "values", list(values), "exact-match compatibility requires one single value"
                )
            )
        if operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and values:
            errors.append(
                _invalid(
                    "values", list(values), "values set must be empty for exists and does not exist"
                )
            )
        if operator in (Operator.GREATER_THAN, Operator.LESS_THAN):
            if len(values) != 1:
                errors.append(
                    _invalid(
                        "values",
                        list(values),
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    )
                )
            for index, value in enumerate(values):
                if not _INTEGER_RE.match(value):
                    errors.append(
                        _invalid(
                            f"values[{index}]",
                            value,
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        )
                    )
        for index, value in enumerate(values):
            if problem := _label_value_problem(value):
                errors.append(_invalid(f"values[{index}][{key}]", value, problem))
        if errors:
            raise SelectorError(_aggregate(errors))
        return cls(key, operator, tuple(values))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies this requirement."""
        op = self.operator
        if op in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.IN):
            return self.key in labels and labels[self.key] in self.values
        if op in (Operator.NOT_EQUALS, Operator.NOT_IN):
            return self.key not in labels or labels[self.key] not in self.values
        if op == Operator.EXISTS:
            return self.key in labels
        if op == Operator.DOES_NOT_EXIST:
            return self.key not in labels
        have = labels.get(self.key)
        if have is None or not _INTEGER_RE.match(have) or len(self.values) != 1:
            return False
        if not _INTEGER_RE.match(self.values[0]):
            return False
        if op == Operator.GREATER_THAN:
            return int(have) > int(self.values[0])
        return int(have) < int(self.values[0])

    def to_string(self) -> str:
        """The canonical form kubectl prints, e.g. `app=llm`, `tier in (a,b)`, `!canary`."""
        op = self.operator
        if op == Operator.EXISTS:
            return self.key
        if op == Operator.DOES_NOT_EXIST:
            return f"!{self.key}"
        joined = ",".join(sorted(self.values))
        if op in (Operator.IN, Operator.NOT_IN):
            return f"{self.key} {op.value} ({joined})"
        symbol = {Operator.GREATER_THAN: ">", Operator.LESS_THAN: "<"}.get(op, op.value)
        return f"{self.key}{symbol}{joined}"


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements.

    No requirements matches every object (`LabelSelector.everything()`, an empty `{}`
    spec); `match_nothing` is the nil selector, which matches no object at all.
    """

    requirements: tuple[Requirement, ...] = ()
    match_nothing: bool = False

    @classmethod
    def everything(cls) -> LabelSelector:
        """The selector of an empty `{}` spec or an empty query string."""
        return cls()

    @classmethod
    def nothing(cls) -> LabelSelector:
        """The selector of a nil (absent) spec."""
        return cls(match_nothing=True)

    @property
    def is_everything(self) -> bool:
        return not self.match_nothing and not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object carrying `labels` (None meaning no labels) is selected."""
        if self.match_nothing:
            return False
        present = labels or {}
        return all(requirement.matches(present) for requirement in self.requirements)

    def to_string(self) -> str:
        """Comma-joined requirements, sorted by key; "" for everything and for nothing."""
        return ",".join(requirement.to_string() for requirement in self.requirements)


# --------------------------------------------------------------------------- label parser

_SPECIAL = "=!(),<>"
_SYMBOLS = {"!=", "==", "=", "!", "(", ")", ",", ">", "<"}
_END = ""  # token kind of the end of input; its literal is "" too


def _lex(text: str) -> list[tuple[str, str]]:
    """Tokens as (kind, literal); kind is the symbol, a keyword, "id" or _END."""
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char in " \t\r\n":
            position += 1
        elif char in _SPECIAL:
            symbol = text[position : position + 2]
            symbol = symbol if symbol in _SYMBOLS else char
            tokens.append((symbol, symbol))
            position += len(symbol)
        else:
            start = position
            while position < len(text) and text[position] not in _SPECIAL + " \t\r\n":
                position += 1
            word = text[start:position]
            tokens.append((word if word in ("in", "notin") else "id", word))
    tokens.append((_END, _END))
    return tokens


_OPERATOR_TOKENS = {
    "in": Operator.IN,
    "notin": Operator.NOT_IN,
    "=": Operator.EQUALS,
    "==": Operator.DOUBLE_EQUALS,
    "!=": Operator.NOT_EQUALS,
    ">": Operator.GREATER_THAN,
    "<": Operator.LESS_THAN,
}


class _LabelParser:
    def __init__(self, text: str) -> None:
        self._tokens = _lex(text)
        self._position = 0

    def _peek(self, *, as_value: bool = True) -> tuple[str, str]:
        kind, literal = self._tokens[self._position]
        # Outside operator position the keywords are plain identifiers (a label named "in").
        return ("id", literal) if as_value and kind in ("in", "notin") else (kind, literal)

    def _next(self, *, as_value: bool = True) -> tuple[str, str]:
        token = self._peek(as_value=as_value)
        self._position = min(self._position + 1, len(self._tokens) - 1)
        return token

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            kind, literal = self._peek()
            if kind == _END:
                return requirements
            if kind not in ("id", "!"):
                raise SelectorError(
                    f"found '{literal}', expected: !, identifier, or 'end of string'"
                )
            try:
                requirements.append(self._requirement())
            except SelectorError as err:
                raise SelectorError(f"unable to parse requirement: {err}") from None
            kind, literal = self._next()
            if kind == _END:
                return requirements
            if kind != ",":
                raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            kind, literal = self._peek()
            if kind not in ("id", "!"):
                raise SelectorError(f"found '{literal}', expected: identifier after ','")

    def _requirement(self) -> Requirement:
        negated = self._peek()[0] == "!"
        if negated:
            self._next()
        kind, key = self._next()
        if kind != "id":
            raise SelectorError(f"found '{key}', expected: identifier")
        if problems := _label_key_problems(key):
            raise SelectorError(_invalid("<nil>", key, "; ".join(problems)))
        if negated:
            return Requirement.create(key, Operator.DOES_NOT_EXIST)
        if self._peek()[0] in (_END, ","):
            return Requirement.create(key, Operator.EXISTS)
        kind, literal = self._next(as_value=False)
        operator = _OPERATOR_TOKENS.get(kind)
        if operator is None:
            raise SelectorError(f"found '{literal}', expected: in, notin, =, ==, !=, gt, lt")
        if operator in (Operator.IN, Operator.NOT_IN):
            values = self._value_set()
        else:
            values = self._exact_value()
        return Requirement.create(key, operator, tuple(sorted(values)))

    def _exact_value(self) -> set[str]:
        if self._peek()[0] in (_END, ","):
            return {""}
        kind, literal = self._next()
        if kind != "id":
            raise SelectorError(f"found '{literal}', expected: identifier")
        return {literal}

    def _value_set(self) -> set[str]:
        kind, literal = self._next()
        if kind != "(":
            raise SelectorError(f"found '{literal}' expected: '('")
        values: set[str] = set()
        expect_value = True  # "(,a)" and "(a,)" and "()" each carry an empty value
        while True:
            kind, literal = self._next()
            if kind == ")":
                if expect_value:
                    values.add("")
                return values
            if not expect_value and kind != ",":
                raise SelectorError(f"found '{literal}', expected: ',' or ')'")
            if kind == ",":
                if expect_value:
                    values.add("")
                expect_value = True
            elif kind == "id":
                values.add(literal)
                expect_value = False
            else:
                raise SelectorError(f"found '{literal}', expected: ',', or identifier")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a `-l`/`labelSelector=` string such as `app=llm,tier in (a,b),!canary`.

    The empty string selects everything.

    Raises:
        SelectorError: the syntax is invalid or a key/value is not a valid label.
    """
    requirements = _LabelParser(text).parse()
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


_SPEC_OPERATORS = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
}


def selector_from_spec(spec: Mapping[str, Any] | None) -> LabelSelector:
    """Convert a metav1.LabelSelector object (`matchLabels`, `matchExpressions`).

    None (a nil selector) matches nothing; `{}` matches everything.

    Raises:
        SelectorError: an unknown operator, or a requirement that fails validation.
    """
    if spec is None:
        return LabelSelector.nothing()
    match_labels = spec.get("matchLabels") or {}
    expressions = spec.get("matchExpressions") or []
    requirements = [
        Requirement.create(str(key), Operator.EQUALS, (str(value),))
        for key, value in match_labels.items()
    ]
    for expression in expressions:
        name = expression.get("operator")
        operator = _SPEC_OPERATORS.get(name) if isinstance(name, str) else None
        if operator is None:
            raise SelectorError(
                f"{json.dumps(str(name or ''))} is not a valid label selector operator"
            )
        values = tuple(str(v) for v in expression.get("values") or ())
        requirements.append(Requirement.create(str(expression.get("key", "")), operator, values))
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


def format_label_selector(spec: Mapping[str, Any] | None) -> str:
    """What kubectl prints in a SELECTOR column: the selector string, or `<none>`."""
    try:
        text = selector_from_spec(spec).to_string()
    except SelectorError:
        return "<error>"
    return text or "<none>"


def format_labels(labels: Mapping[str, str] | None) -> str:
    """What kubectl prints for a label map (`--show-labels`, a Service's selector)."""
    present = labels or {}
    return ",".join(f"{key}={present[key]}" for key in sorted(present)) or "<none>"
