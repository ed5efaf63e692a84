"""Chunked lists (`limit`/`continue`) as the etcd-backed registry serves them.

A walk's pages all come from the snapshot taken by its first page: the list resourceVersion
is the same on every page, and objects created, changed or deleted meanwhile are not seen.
The continue token is the real server's: base64 (URL alphabet, no padding) of
`{"v":"meta.k8s.io/v1","rv":N,"start":"<namespace>/<name>\\u0000"}`. A token whose snapshot
was compacted away (five simulated minutes, etcd's default compaction interval) is a 410,
a token that does not decode a 400.
"""

from __future__ import annotations

import base64
import binascii
import json
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Any

from services.simulator.errors import ApiError, bad_request

Obj = dict[str, Any]
COMPACTION_S = 300.0
KEEP = 32  # snapshots held at once; older walks expire as if compacted
TOO_OLD = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted "
    "between the time the first chunk was returned and now may show up in the list."
)


@dataclass(frozen=True)
class Page:
    items: list[Obj]  # stored objects (not copies): the caller copies what it sends
    resource_version: str
    continue_token: str
    remaining: int | None


def object_key(obj: Obj) -> str:
    """The object's key under its resource prefix, as etcd orders it."""
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace", "")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


def encode_token(rv: int, start: str) -> str:
    data = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def decode_token(token: str) -> tuple[int, str]:
    """(resourceVersion, start key) of a continue token. Raises ApiError 400."""

    def invalid(why: str) -> ApiError:
        return bad_request(f"invalid continue token: continue key is not valid{why}")

    bad = next((i for i, c in enumerate(token) if not (c.isalnum() or c in "-_")), None)
    if bad is not None or len(token) % 4 == 1:
        return_at = bad if bad is not None else len(token) - 1
        raise invalid(f": illegal base64 data at input byte {return_at}")
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise invalid(": invalid character looking for beginning of value") from exc
    if not isinstance(data, dict) or data.get("v") != "meta.k8s.io/v1":
        version = data.get("v", "") if isinstance(data, dict) else ""
        raise invalid(f": server does not recognize this encoded version {version}")
    rv, start = data.get("rv"), data.get("start")
    if not isinstance(rv, int) or rv == 0:
        raise invalid(": incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    if not isinstance(start, str) or not start:
        raise invalid(": encoded start key empty (version meta.k8s.io/v1)")
    return rv, start


class Snapshots:
    """The lists a paginated walk reads, kept by (resource, resourceVersion)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        # (resource, resourceVersion) -> (when taken, the objects in key order, their keys)
        self._held: OrderedDict[tuple[str, int], tuple[float, list[Obj], list[str]]] = OrderedDict()

    def _expire(self) -> None:
        now = self._now()
        for key in [k for k, (taken, *_) in self._held.items() if now - taken > COMPACTION_S]:
            del self._held[key]
        while len(self._held) > KEEP:
            self._held.popitem(last=False)

    def page(
        self,
        plural: str,
        rv: int,
        stored: Callable[[], list[Obj]],
        matches: Callable[[Obj], bool],
        *,
        limit: int,
        token: str,
        filtered: bool,
    ) -> Page:
        """One page of a list. `stored()` gives the resource's stored objects now (taken as the
        snapshot on a walk's first page), `matches` applies namespace and selectors, `filtered`
        says whether selectors apply (a real server then sends no remainingItemCount).

        Raises ApiError 400 (a token that does not decode) or 410 (a compacted snapshot).
        """
        self._expire()
        begin = 0
        if token:
            rv, start = decode_token(token)
            held = self._held.get((plural, rv))
            if held is None:
                raise ApiError(410, "Expired", TOO_OLD)
            _, snapshot, keys = held
            begin = bisect_left(keys, start)
        else:
            snapshot = sorted(stored(), key=object_key)
            keys = [object_key(obj) for obj in snapshot]
        # Each page reads on from where the last one ended, not from the first key: a walk of
        # a 1,000-pod Deployment's pages among 5,000 pods scanned and keyed the whole snapshot
        # for every page (kube-apiserver seeks to the key in etcd or its watch cache).
        chosen: list[Obj] = []
        remaining = 0
        for obj in islice(snapshot, begin, None):
            if not matches(obj):
                continue
            if limit and len(chosen) >= limit:
                remaining += 1
                if filtered:
                    break  # no count is sent with selectors: one more is enough for a token
                continue
            chosen.append(obj)
        next_token = ""
        if remaining:
            next_token = encode_token(rv, object_key(chosen[-1]) + "\x00")
            if not token:
                self._held[(plural, rv)] = (self._now(), snapshot, keys)
        return Page(
            chosen,
            str(rv),
            next_token,
            remaining if remaining and not filtered else None,
        )
