"""Just enough of Kubernetes' protobuf encoding to read what kubectl sends as protobuf.

kubectl's typed clients send bodies as `application/vnd.kubernetes.protobuf` and never fall
back to JSON: SelfSubjectAccessReview (`kubectl auth can-i`), the objects of `kubectl create
deployment|service|configmap|secret|namespace`, and `kubectl drain`'s Eviction and
DeleteOptions. The envelope is the magic `k8s\\0` followed by a `runtime.Unknown` message
whose `raw` field holds the object. Objects are read by a wire-format reader driven by
protobuf_schema.json, a table of field numbers generated from Kubernetes' own generated.proto
files (tests/simulator/gen_protobuf_schema.py), and come out as the JSON the same request
would have sent.
"""

from __future__ import annotations

import base64
import functools
import json
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MAGIC = b"k8s\x00"
SCHEMA = Path(__file__).with_name("protobuf_schema.json")
_META = "k8s.io.apimachinery.pkg.apis.meta.v1."
Fields = dict[int, list[Any]]


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> Fields:
    """Decode one message into {field number: [values]}; length-delimited values stay bytes."""
    out: Fields = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def _text(f: Fields, number: int) -> str:
    values = f.get(number)
    return values[-1].decode() if values else ""


def unwrap(body: bytes) -> tuple[str, str, bytes]:
    """(apiVersion, kind, raw object bytes) from a protobuf envelope."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    unknown = fields(body[len(MAGIC) :])
    type_meta = fields(unknown.get(1, [b""])[-1])
    return _text(type_meta, 1), _text(type_meta, 2), unknown.get(2, [b""])[-1]


def self_subject_access_review(raw: bytes) -> dict[str, Any]:
    """authorization.k8s.io/v1 SelfSubjectAccessReview (generated.proto field numbers)."""
    review = fields(raw)
    spec = fields(review.get(2, [b""])[-1])
    out: dict[str, Any] = {}
    if 1 in spec:
        attrs = fields(spec[1][-1])
        names = ("namespace", "verb", "group", "version", "resource", "subresource", "name")
        out["resourceAttributes"] = {
            n: _text(attrs, i + 1) for i, n in enumerate(names) if i + 1 in attrs
        }
    if 2 in spec:
        attrs = fields(spec[2][-1])
        out["nonResourceAttributes"] = {"path": _text(attrs, 1), "verb": _text(attrs, 2)}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": out}


def self_subject_rules_review(raw: bytes) -> dict[str, Any]:
    """authorization.k8s.io/v1 SelfSubjectRulesReview: its spec holds only the namespace."""
    spec = fields(fields(raw).get(2, [b""])[-1])
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": _text(spec, 1)} if 1 in spec else {},
    }


DECODERS = {
    "SelfSubjectAccessReview": self_subject_access_review,
    "SelfSubjectRulesReview": self_subject_rules_review,
}


@functools.cache
def _schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA.read_text())
    return data


def _signed(value: int) -> int:
    """A varint read back as the two's-complement int64 Go wrote."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _time(message: bytes, micro: bool) -> str | None:
    """meta/v1 Time or MicroTime as JSON writes it; the zero time is null."""
    f = fields(message)
    seconds = _signed(f.get(1, [0])[-1])
    nanos = f.get(2, [0])[-1]
    if not seconds and not nanos:
        return None
    moment = datetime.fromtimestamp(seconds, UTC)
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{nanos // 1000:06d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _special(type_: str, raw: bytes) -> tuple[bool, Any]:
    """The JSON form of the types that do not marshal as their fields do."""
    if type_ in (f"{_META}Time", f"{_META}MicroTime"):
        return True, _time(raw, type_.endswith("MicroTime"))
    if type_ == "k8s.io.apimachinery.pkg.api.resource.Quantity":
        return True, _text(fields(raw), 1)
    if type_ == "k8s.io.apimachinery.pkg.util.intstr.IntOrString":
        f = fields(raw)
        return True, (_text(f, 3) if f.get(1, [0])[-1] == 1 else _signed(f.get(2, [0])[-1]))
    if type_ in ("k8s.io.apimachinery.pkg.runtime.RawExtension", f"{_META}FieldsV1"):
        data = fields(raw).get(1, [b""])[-1]
        return True, json.loads(data) if data else None
    if type_ == f"{_META}Duration":
        return True, f"{_signed(fields(raw).get(1, [0])[-1]) / 1e9:g}s"
    return False, None


def _scalar(type_: str, value: Any) -> Any:
    if type_ == "string":
        return value.decode()
    if type_ == "bytes":
        return base64.b64encode(value).decode()
    if type_ == "bool":
        return bool(value)
    if type_ == "double":
        return struct.unpack("<d", value)[0]
    if type_ == "float":
        return struct.unpack("<f", value)[0]
    return _signed(value) if type_ in ("int32", "int64") else value


_NUMBERS = ("int32", "int64", "uint32", "uint64", "bool")


def _packed(type_: str, data: bytes) -> list[Any]:
    """A packed repeated number field's values."""
    out, pos = [], 0
    while pos < len(data):
        value, pos = _varint(data, pos)
        out.append(_scalar(type_, value))
    return out


def _value(type_: str, value: Any) -> Any:
    special, decoded = _special(type_, value)
    if special:
        return decoded
    return message(type_, value) if type_ in _schema()["messages"] else _scalar(type_, value)


def _empty(value: Any) -> bool:
    return (
        value is None
        or value is False
        or value == ""
        or (type(value) in (int, float) and not value)
    )


def message(name: str, raw: bytes) -> dict[str, Any]:
    """Decode message `name` (its qualified proto name) into its JSON form: omitted optional
    zero values stay omitted, as the Go object's JSON would have them.

    Raises ProtobufError for a malformed body.
    """
    spec: dict[str, list[Any]] = _schema()["messages"].get(name, {})
    out: dict[str, Any] = {}
    for number, values in fields(raw).items():
        known = spec.get(str(number))
        if known is None:
            continue  # a field newer than the table: the server's decoder would drop it too
        json_name, type_, label, optional = known
        if label.startswith("map:"):
            entries: dict[str, Any] = {}
            for entry in values:
                f = fields(entry)
                key = _scalar(label[4:], f.get(1, [b"" if label[4:] == "string" else 0])[-1])
                raw_value = f.get(2, [b""])[-1]
                entries[str(key)] = _value(type_, raw_value)
            out[json_name] = entries
        elif label == "repeated":
            items: list[Any] = []
            for value in values:
                if isinstance(value, bytes) and type_ in _NUMBERS:
                    items += _packed(type_, value)
                else:
                    items.append(_value(type_, value))
            out[json_name] = items
        else:
            decoded = _value(type_, values[-1])
            if optional and _empty(decoded) and json_name not in _POINTERS.get(name, ()):
                continue
            out[json_name] = decoded
    return out


# Optional numbers that are pointers in Go, written only when set, so a zero means zero
# (`kubectl create deployment --replicas=0`, `kubectl delete --grace-period=0`); other
# optional zeros are Go's omitempty zero values.
_POINTERS = {
    "k8s.io.api.apps.v1.DeploymentSpec": ("replicas", "revisionHistoryLimit"),
    "k8s.io.api.apps.v1.ReplicaSetSpec": ("replicas",),
    f"{_META}DeleteOptions": ("gracePeriodSeconds",),
    f"{_META}ObjectMeta": ("deletionGracePeriodSeconds",),
    "k8s.io.api.core.v1.PodSpec": ("terminationGracePeriodSeconds",),
}


def decode(body: bytes) -> dict[str, Any]:
    """Decode a protobuf request body into its JSON form. Raises ProtobufError for kinds the
    simulator cannot read (the server answers 415)."""
    api_version, kind, raw = unwrap(body)
    decoder = DECODERS.get(kind)
    if decoder is not None:
        return decoder(raw)
    roots = _schema()["roots"]
    root = roots.get(f"{api_version}/{kind}") or roots.get(kind)
    if root is None:
        raise ProtobufError(f"protobuf bodies of kind {kind!r} are not simulated; send JSON")
    try:
        obj = message(root, raw)
    except (ValueError, IndexError, struct.error) as exc:  # UnicodeDecodeError is a ValueError
        raise ProtobufError(f"malformed protobuf body of kind {kind!r}: {exc}") from exc
    return {"apiVersion": api_version, "kind": kind, **obj} if api_version else obj
