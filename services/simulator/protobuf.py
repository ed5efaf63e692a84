"""Just enough of Kubernetes' protobuf encoding to read what kubectl sends as protobuf.

kubectl's typed clients POST some bodies as `application/vnd.kubernetes.protobuf` (e.g.
SelfSubjectAccessReview for `kubectl auth can-i`) and never fall back to JSON. The envelope is
the magic `k8s\\0` followed by a `runtime.Unknown` message whose `raw` field holds the object.
"""

from __future__ import annotations

from typing import Any

MAGIC = b"k8s\x00"
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


def decode(body: bytes) -> dict[str, Any]:
    """Decode a protobuf request body into its JSON form. Raises ProtobufError for kinds the
    simulator cannot read (the server answers 415)."""
    _, kind, raw = unwrap(body)
    decoder = DECODERS.get(kind)
    if decoder is None:
        raise ProtobufError(f"protobuf bodies of kind {kind!r} are not simulated; send JSON")
    return decoder(raw)
