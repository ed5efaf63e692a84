"""metadata.managedFields: which field manager owns which fields, kept by every API write.

Field sets follow sigs.k8s.io/structured-merge-diff as kube-apiserver runs it. A path is a
tuple of fieldsV1 elements: `f:name` for a struct or map field, `k:{"name":"vllm"}` for an item
of an associative list (merged by key), `v:"x"` for an item of a set. Lists and maps the
schema marks atomic (every list without a merge key, a LabelSelector, a Service's selector)
are leaves. The schema is the simulator's own strategic-merge table (strategic_merge.py),
which is where kube-openapi derives list types from as well.

An Update (create, update, patch) compares the old object with the new one: the fields it
added or changed become the writer's (an `Update` entry with its manager name), and are taken
from every other manager without conflict; removed fields leave every set. On create the old
object is the kind's zero value, whose non-pointer structs (spec, template...) exist, so only
what was really added is marked with `.`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from services.simulator.strategic_merge import _SCHEMAS

Obj = dict[str, Any]
Path = tuple[str, ...]
FieldSet = set[Path]
MISSING: Any = object()
MEMBER = "."
# Fields the field manager strips before tracking (StripMetaManager): server-owned metadata.
_STRIPPED_META = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "selfLink",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
# Associative lists keyed by more than one field (x-kubernetes-list-map-keys) where the
# strategic-merge table names only the patch merge key.
_CONTAINER_PORT_KEYS = ("containerPort", "protocol")
_SERVICE_PORT_KEYS = ("port", "protocol")
_SPREAD_KEYS = ("topologyKey", "whenUnsatisfiable")
# Maps whose schema says x-kubernetes-map-type: atomic (replaced whole, owned as one field).
_ATOMIC_MAPS = {
    "Deployment": ("spec.selector", "spec.template.spec.nodeSelector"),
    "ReplicaSet": ("spec.selector", "spec.template.spec.nodeSelector"),
    "Pod": ("spec.nodeSelector",),
    "Service": ("spec.selector",),
    "PodDisruptionBudget": ("spec.selector",),
}
# The non-pointer structs of each kind's zero value (what a create is compared against).
# A field that is null there (a slice without omitempty, `containers`) was present, so adding
# it does not mark it `.`; a field absent there does.
_TEMPLATE_ZERO: Obj = {"metadata": {}, "spec": {"containers": None}}
_ZERO: dict[str, Obj] = {
    "Deployment": {
        "metadata": {},
        "spec": {"selector": None, "strategy": {}, "template": _TEMPLATE_ZERO},
        "status": {},
    },
    "ReplicaSet": {"metadata": {}, "spec": {"selector": None, "template": _TEMPLATE_ZERO}},
    "Pod": {"metadata": {}, "spec": {"containers": None}, "status": {}},
}


def list_keys(kind: str, dotted: str) -> tuple[str, ...] | None:
    """The keys of the associative list at `dotted` (list items add no segment), () for a
    set of scalars, None for an atomic list."""
    merge_key = _SCHEMAS.get(kind, {}).get(dotted)
    if merge_key is None:
        return None
    if not merge_key:
        return ()
    last = dotted.rsplit(".", 1)[-1]
    if kind == "Service" and dotted == "spec.ports":
        return _SERVICE_PORT_KEYS
    if last == "topologySpreadConstraints":
        return _SPREAD_KEYS
    if last == "ports":
        return _CONTAINER_PORT_KEYS
    return (merge_key,)


def atomic_map(kind: str, dotted: str) -> bool:
    return dotted in _ATOMIC_MAPS.get(kind, ())


# Schema defaults of list-map key fields: a key left out means its default (a port without
# a protocol is the TCP one), as structured-merge-diff fills them in.
_KEY_DEFAULTS = {"protocol": "TCP"}


def key_element(item: Any, keys: tuple[str, ...]) -> str:
    """The `k:{...}` element of an associative list's item (its keys, sorted by name)."""
    fields = item if isinstance(item, dict) else {}
    present = {
        k: fields[k] if k in fields else _KEY_DEFAULTS[k]
        for k in sorted(keys)
        if k in fields or k in _KEY_DEFAULTS
    }
    return "k:" + json.dumps(present, separators=(",", ":"))


def value_element(item: Any) -> str:
    return "v:" + json.dumps(item, separators=(",", ":"))


def _child_dotted(dotted: str, name: str) -> str:
    return f"{dotted}.{name}" if dotted else name


def children(kind: str, value: Any, dotted: str) -> Iterator[tuple[str, Any, str]] | None:
    """(element, child value, child dotted path) of a granular map or list, or None when
    `value` is a leaf (a scalar, an atomic map or list)."""
    if isinstance(value, dict):
        if atomic_map(kind, dotted):
            return None
        return ((f"f:{k}", v, _child_dotted(dotted, k)) for k, v in value.items())
    if isinstance(value, list):
        keys = list_keys(kind, dotted)
        if keys is None:
            return None
        if keys:
            return ((key_element(item, keys), item, dotted) for item in value)
        return ((value_element(item), item, dotted) for item in value)
    return None


def tracked(obj: Obj, subresource: str = "") -> Obj:
    """The part of an object field managers own: no server-owned metadata; the status only
    through the status subresource, the rest only through the main resource."""
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")}
    if subresource == "status":
        out = {"status": obj["status"]} if "status" in obj else {}
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        out["metadata"] = {k: v for k, v in meta.items() if k not in _STRIPPED_META}
        if not out["metadata"]:
            out.pop("metadata")
    return out


def leaves(kind: str, value: Any, path: Path = (), dotted: str = "") -> FieldSet:
    """ToFieldSet of an applied configuration: every leaf, and every item of an associative
    list or set (which its owner owns as a member too)."""
    out: FieldSet = set()
    items = children(kind, value, dotted)
    if items is None or (isinstance(value, dict) and not value and path):
        if path:
            out.add(path)
        return out
    in_list = isinstance(value, list)
    for element, child, child_dotted in items:
        child_path = (*path, element)
        if in_list:
            out.add(child_path)
        out |= leaves(kind, child, child_path, child_dotted)
    return out


def _keyed(kind: str, value: Any, dotted: str) -> dict[str, tuple[Any, str]]:
    items = children(kind, value, dotted)
    return {} if items is None else {e: (c, d) for e, c, d in items}


@dataclass
class Comparison:
    added: FieldSet = field(default_factory=set)
    modified: FieldSet = field(default_factory=set)
    removed: FieldSet = field(default_factory=set)

    @property
    def changed(self) -> FieldSet:
        return self.added | self.modified


def compare(kind: str, old: Any, new: Any) -> Comparison:
    """What an Update changed, as structured-merge-diff's Compare reports it."""
    out = Comparison()
    _compare(kind, old, new, (), "", out)
    return out


def _compare(kind: str, old: Any, new: Any, path: Path, dotted: str, out: Comparison) -> None:
    old_missing = old is MISSING or old is None
    new_missing = new is MISSING or new is None
    absent = old is MISSING  # a null was there: its path is not "added"
    if new_missing:
        if not old_missing and path:
            out.removed.add(path)
            out.removed |= leaves(kind, old, path, dotted)
        return
    new_items = children(kind, new, dotted)
    old_items = None if old_missing else children(kind, old, dotted)
    if new_items is None or (old_items is None and not old_missing) or (not new and not old):
        if absent:
            out.added.add(path)
        elif old != new:
            out.modified.add(path)
        return
    if absent and path:
        out.added.add(path)
    old_keyed = {} if old_missing else _keyed(kind, old, dotted)
    for element, child, child_dotted in new_items:
        child_path = (*path, element)
        before, _ = old_keyed.pop(element, (MISSING, child_dotted))
        _compare(kind, before, child, child_path, child_dotted, out)
    for element, (child, child_dotted) in old_keyed.items():
        _compare(kind, child, MISSING, (*path, element), child_dotted, out)


def zero_value(kind: str) -> Obj:
    """The object a create is compared against: the kind's zero value."""
    zero: Obj = json.loads(json.dumps(_ZERO.get(kind, {"metadata": {}, "spec": {}, "status": {}})))
    return zero


# --------------------------------------------------------------------------- fieldsV1


def to_fields_v1(paths: FieldSet) -> Obj:
    """A set of paths as the fieldsV1 tree the API shows."""
    tree: Obj = {}
    members: set[Path] = set(paths)
    for path in paths:
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    return _render(tree, (), members)


def _render(node: Obj, path: Path, members: set[Path]) -> Obj:
    out: Obj = {}
    if node and path in members:
        out[MEMBER] = {}
    for element in sorted(node):
        out[element] = _render(node[element], (*path, element), members)
    return out


def from_fields_v1(tree: Any, path: Path = ()) -> FieldSet:
    """The set of paths a fieldsV1 tree holds."""
    out: FieldSet = set()
    if not isinstance(tree, dict):
        return out
    if path and (not tree or MEMBER in tree):
        out.add(path)
    for element, child in tree.items():
        if element != MEMBER:
            out |= from_fields_v1(child, (*path, element))
    return out


@dataclass
class Entry:
    """One managedFields entry."""

    manager: str
    operation: str  # "Apply" or "Update"
    api_version: str
    fields: FieldSet
    time: str
    subresource: str = ""

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return (self.manager, self.operation, self.api_version, self.subresource)

    def encode(self) -> Obj:
        out: Obj = {
            "apiVersion": self.api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(self.fields),
            "manager": self.manager,
            "operation": self.operation,
        }
        if self.subresource:
            out["subresource"] = self.subresource
        out["time"] = self.time
        return out


def decode(raw: Any) -> list[Entry]:
    """The entries of a managedFields list (malformed entries are dropped)."""
    out = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or (not item.get("manager") and not item.get("fieldsV1")):
            continue
        out.append(
            Entry(
                str(item.get("manager", "")),
                str(item.get("operation", "Update")),
                str(item.get("apiVersion", "")),
                from_fields_v1(item.get("fieldsV1") or {}),
                str(item.get("time", "")),
                str(item.get("subresource", "")),
            )
        )
    return out


def encode(entries: list[Entry]) -> list[Obj]:
    """Entries in the API server's order: Apply before Update, then by time and manager."""
    ordered = sorted(
        (e for e in entries if e.fields),
        key=lambda e: (e.operation, e.time, e.manager, e.api_version, e.subresource),
    )
    return [e.encode() for e in ordered]


def base_entries(old: Obj | None, new: Obj) -> list[Entry]:
    """The entries an Update starts from: the ones the request sent when it sent any (a
    client may rewrite managedFields; an empty list resets them), else the live object's."""
    sent = new.get("metadata", {}).get("managedFields", MISSING)
    if sent == [] or sent == [{}]:
        return []
    entries = decode(sent) if sent is not MISSING else []
    if entries:
        return entries
    return decode((old or {}).get("metadata", {}).get("managedFields"))


def record_update(
    kind: str,
    old: Obj | None,
    new: Obj,
    manager: str,
    api_version: str,
    now: str,
    subresource: str = "",
) -> None:
    """Write `new`'s managedFields after an Update by `manager` (`old` None: a create).

    The writer gains what it added or changed and keeps its earlier fields; nobody keeps a
    removed field; its entry's time moves only when it took something.
    """
    entries = base_entries(old, new)
    before = tracked(old, subresource) if old is not None else zero_value(kind)
    diff = compare(kind, before, tracked(new, subresource))
    identity = (manager, "Update", api_version, subresource)
    own: Entry | None = None
    for entry in entries:
        if entry.identity == identity:
            own = entry
            entry.fields -= diff.removed
        else:
            entry.fields -= diff.changed | diff.removed
    if diff.changed:
        if own is None:
            own = Entry(manager, "Update", api_version, set(), now, subresource)
            entries.append(own)
        own.fields |= diff.changed
        own.time = now
    encoded = encode(entries)
    meta = new.setdefault("metadata", {})
    if encoded:
        meta["managedFields"] = encoded
    else:  # omitempty: an object nobody manages shows no managedFields
        meta.pop("managedFields", None)
