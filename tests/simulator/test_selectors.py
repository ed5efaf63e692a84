"""Label and field selectors as the simulated API server parses and applies them."""

from __future__ import annotations

import pytest

from services.simulator.selectors import (
    LabelSelector,
    Operator,
    Requirement,
    SelectorError,
    format_label_selector,
    format_labels,
    parse_field_selector,
    parse_label_selector,
    selector_from_spec,
)

SERVE = {"app": "llm-serve", "tier": "gpu", "track": "stable"}
CANARY = {"app": "llm-serve", "tier": "gpu", "track": "canary", "canary": "true"}
OTHER = {"app": "router"}


def _selected(text: str) -> list[str]:
    selector = parse_label_selector(text)
    pods = {"serve": SERVE, "canary": CANARY, "other": OTHER, "bare": None}
    return [name for name, labels in pods.items() if selector.matches(labels)]


# --------------------------------------------------------------------------- label parsing


@pytest.mark.parametrize(
    ("text", "selected"),
    [
        ("", ["serve", "canary", "other", "bare"]),
        ("app=llm-serve", ["serve", "canary"]),
        ("app==llm-serve", ["serve", "canary"]),
        ("app!=llm-serve", ["other", "bare"]),
        ("track in (stable,canary)", ["serve", "canary"]),
        ("track notin (canary)", ["serve", "other", "bare"]),
        ("canary", ["canary"]),
        ("!canary", ["serve", "other", "bare"]),
        ("app=llm-serve,!canary", ["serve"]),
        ("  app = llm-serve ,  track in ( stable )  ", ["serve"]),
        ("tier", ["serve", "canary"]),
        ("in in (gpu)", []),
    ],
)
def test_label_selector_matches_like_kubectl_l(text: str, selected: list[str]) -> None:
    assert _selected(text) == selected


def test_empty_value_forms_match_an_empty_label() -> None:
    labels = {"role": ""}
    assert parse_label_selector("role=").matches(labels)
    assert parse_label_selector("role in ()").matches(labels)
    assert parse_label_selector("role in (a,)").matches(labels)
    assert not parse_label_selector("role=").matches({})


def test_gt_and_lt_compare_integers_and_skip_non_numbers() -> None:
    selector = parse_label_selector("gpus>2,gpus<8")
    assert selector.matches({"gpus": "4"})
    assert not selector.matches({"gpus": "8"})
    assert not selector.matches({"gpus": "many"})
    assert not selector.matches({})


def test_to_string_is_canonical_sorted_by_key_with_sorted_values() -> None:
    selector = parse_label_selector("track in (stable,canary),app=llm-serve,!canary,tier")
    assert selector.to_string() == "app=llm-serve,!canary,tier,track in (canary,stable)"
    assert parse_label_selector("a==b,c!=d,e notin (y,x)").to_string() == "a==b,c!=d,e notin (x,y)"
    assert parse_label_selector("n>3").to_string() == "n>3"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "app llm",
            "unable to parse requirement: found 'llm', expected: in, notin, =, ==, !=, gt, lt",
        ),
        ("app in stable", "unable to parse requirement: found 'stable' expected: '('"),
        ("app in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
        ("app in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("app=(x)", "unable to parse requirement: found '(', expected: identifier"),
        ("app=a b", "found 'b', expected: ',' or 'end of string'"),
        (",app", "found ',', expected: !, identifier, or 'end of string'"),
        ("app,", "found '', expected: identifier after ','"),
        ("!=x", "found '!=', expected: !, identifier, or 'end of string'"),
        ("!!x", "unable to parse requirement: found '!', expected: identifier"),
    ],
)
def test_label_selector_syntax_errors_read_like_kube(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_label_selector(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("-bad=x", '<nil>: Invalid value: "-bad": name part must consist of alphanumeric'),
        ("a/b/c", "a qualified name must consist of alphanumeric"),
        ("Example.com/app=x", "prefix part a lowercase RFC 1123 subdomain"),
        ("app=" + "v" * 64, "values[0][app]: Invalid value:"),
        ("app=-x", "a valid label must be an empty string or consist of alphanumeric"),
        ("n>ten", "for 'Gt', 'Lt' operators, the value must be an integer"),
    ],
)
def test_invalid_keys_and_values_are_rejected(text: str, fragment: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_label_selector(text)
    assert str(info.value).startswith("unable to parse requirement: ")
    assert fragment in str(info.value)


def test_selector_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_label_selector("a b")


# --------------------------------------------------------------------------- metav1.LabelSelector


def test_nil_selector_matches_nothing_and_empty_matches_everything() -> None:
    nothing, everything = selector_from_spec(None), selector_from_spec({})
    assert nothing == LabelSelector.nothing()
    assert everything == LabelSelector.everything()
    assert everything.is_everything and not nothing.is_everything
    assert not nothing.matches(SERVE) and not nothing.matches(None)
    assert everything.matches(SERVE) and everything.matches(None)
    assert nothing.to_string() == everything.to_string() == ""


def test_match_labels_and_expressions_combine() -> None:
    selector = selector_from_spec(
        {
            "matchLabels": {"app": "llm-serve"},
            "matchExpressions": [
                {"key": "track", "operator": "In", "values": ["stable", "canary"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "tier", "operator": "Exists"},
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
            ],
        }
    )
    assert selector.matches(SERVE)
    assert not selector.matches(CANARY)
    assert not selector.matches(OTHER)
    assert (
        selector.to_string() == "app=llm-serve,!canary,tier,track in (canary,stable),zone notin (b)"
    )


def test_format_label_selector_prints_like_kubectl_wide() -> None:
    assert format_label_selector({"matchLabels": {"app": "llm-serve"}}) == "app=llm-serve"
    assert format_label_selector({}) == "<none>"
    assert format_label_selector(None) == "<none>"
    assert (
        format_label_selector({"matchExpressions": [{"key": "a", "operator": "Bad"}]}) == "<error>"
    )
    assert format_labels({"tier": "gpu", "app": "x"}) == "app=x,tier=gpu"
    assert format_labels(None) == "<none>"


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (
            {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]},
            '"Equals" is not a valid label selector operator',
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
            "values set can't be empty",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]},
            "values set must be empty",
        ),
        ({"matchLabels": {"bad key": "x"}}, 'key: Invalid value: "bad key"'),
        ({"matchLabels": {"app": "bad value"}}, 'values[0][app]: Invalid value: "bad value"'),
    ],
)
def test_invalid_selector_specs_are_rejected(spec: dict[str, object], fragment: str) -> None:
    with pytest.raises(SelectorError) as info:
        selector_from_spec(spec)
    assert fragment in str(info.value)


def test_requirement_create_validates_value_count() -> None:
    with pytest.raises(SelectorError, match="exact-match compatibility requires one single value"):
        Requirement.create("app", Operator.EQUALS, ("a", "b"))
    assert Requirement.create("app", Operator.IN, ("b", "a")).to_string() == "app in (a,b)"


# --------------------------------------------------------------------------- field selectors

POD_ON_GPU1 = {
    "metadata": {"name": "llm-0", "namespace": "serving"},
    "spec": {"nodeName": "gpu-1"},
    "status": {"phase": "Running"},
}
PENDING_POD = {
    "metadata": {"name": "llm-1", "namespace": "serving"},
    "spec": {},
    "status": {"phase": "Pending"},
}
EVENT = {
    "metadata": {"name": "llm-0.17f", "namespace": "serving"},
    "involvedObject": {"kind": "Pod", "name": "llm-0"},
    "type": "Warning",
    "reason": "BackOff",
}


def test_field_selector_equality_and_inequality() -> None:
    assert parse_field_selector("spec.nodeName=gpu-1").matches(POD_ON_GPU1)
    assert parse_field_selector("spec.nodeName==gpu-1").matches(POD_ON_GPU1)
    assert not parse_field_selector("spec.nodeName=gpu-1").matches(PENDING_POD)
    selector = parse_field_selector("metadata.namespace=serving,status.phase!=Running")
    assert not selector.matches(POD_ON_GPU1)
    assert selector.matches(PENDING_POD)


def test_field_selector_missing_field_compares_as_empty_string() -> None:
    assert parse_field_selector("spec.nodeName=").matches(PENDING_POD)
    assert parse_field_selector("spec.nodeName!=").matches(POD_ON_GPU1)


def test_field_selector_on_events_and_booleans() -> None:
    assert parse_field_selector("involvedObject.kind=Pod,involvedObject.name=llm-0").matches(EVENT)
    assert parse_field_selector("type=Warning,reason=BackOff").matches(EVENT)
    assert not parse_field_selector("type=Normal").matches(EVENT)
    node = {"metadata": {"name": "gpu-1"}, "spec": {"unschedulable": True}}
    assert parse_field_selector("spec.unschedulable=true").matches(node)
    assert parse_field_selector("spec.unschedulable!=true").matches({"spec": {}})


def test_field_selector_empty_matches_everything_and_reports_its_paths() -> None:
    assert parse_field_selector("").matches(EVENT)
    selector = parse_field_selector("status.phase=Running,metadata.name!=x")
    assert selector.paths() == frozenset({"status.phase", "metadata.name"})
    assert selector.to_string() == "metadata.name!=x,status.phase=Running"


def test_field_selector_values_may_escape_commas_and_equals() -> None:
    selector = parse_field_selector(r"metadata.name=a\,b\=c")
    assert selector.matches({"metadata": {"name": "a,b=c"}})
    assert selector.to_string() == r"metadata.name=a\,b\=c"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("status.phase", "invalid selector: 'status.phase'; can't understand 'status.phase'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        ("a=b=c", "invalid field selector: unescaped character in value: ="),
        (r"a=b\x", r"invalid field selector: invalid escape sequence: \x"),
    ],
)
def test_field_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_field_selector(text)
    assert str(info.value) == message
