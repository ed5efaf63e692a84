"""Label and field selectors, parsed and matched the way kube-apiserver does.

The label grammar, its validation messages and the canonical string form follow
k8s.io/apimachinery/pkg/labels; field selectors follow pkg/fields (with its
backslash escaping of `\\`, `,` and `=` in values).
"""

from __future__ import annotations

from services.simulator.field_selectors import (
    FieldRequirement,
    FieldSelector,
    parse_field_selector,
)
from services.simulator.label_selectors import (
    LabelSelector,
    Operator,
    Requirement,
    SelectorError,
    format_label_selector,
    format_labels,
    parse_label_selector,
    selector_from_spec,
)

__all__ = [
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Operator",
    "Requirement",
    "SelectorError",
    "format_label_selector",
    "format_labels",
    "parse_field_selector",
    "parse_label_selector",
    "selector_from_spec",
]
