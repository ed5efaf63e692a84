"""core/v1 Events as the controllers, scheduler and kubelet record them.

client-go's event correlator folds an identical event (same object, reason, message, type and
source) into the existing one: `count` goes up and `lastTimestamp` moves, which is what
`kubectl describe` shows as `(x5 over 3m)`. Events expire after an hour, as with the API
server's default `--event-ttl`.
"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime
from typing import Any

from services.simulator.clock import SimClock, parse_rfc3339, rfc3339
from services.simulator.errors import ApiError
from services.simulator.store import Store

Obj = dict[str, Any]
EVENT_TTL_S = 3600.0
NORMAL = "Normal"
WARNING = "Warning"
_AggKey = tuple[str, str, str, str, str, str, str, str]


def _stamp(moment: float) -> str:
    return rfc3339(datetime.fromtimestamp(moment, UTC))


class EventRecorder:
    """Records events in the involved object's namespace ("default" for cluster objects)."""

    def __init__(self, store: Store, clock: SimClock) -> None:
        self._store = store
        self._clock = clock
        self._rt = store.registry.by_plural("events")
        self._names: dict[_AggKey, tuple[str, str]] = {}
        self._keys: dict[tuple[str, str], _AggKey] = {}
        self._expiry: list[tuple[float, str, str]] = []
        self._last_nanos = 0

    def record(
        self,
        obj: Obj,
        type_: str,
        reason: str,
        message: str,
        *,
        component: str,
        host: str = "",
        field_path: str = "",
        at: float | None = None,
    ) -> None:
        """Record (or fold into an identical earlier) event about `obj` at simulated time `at`."""
        when = self._clock.time() if at is None else at
        meta = obj.get("metadata", {})
        namespace = str(meta.get("namespace") or "default")
        key: _AggKey = (
            namespace,
            str(meta.get("uid", "")),
            field_path,
            type_,
            reason,
            message,
            component,
            host,
        )
        existing = self._names.get(key)
        if existing is not None:
            stamp = _stamp(when)

            def bump(event: Obj) -> None:
                event["count"] = int(event.get("count", 1)) + 1
                event["lastTimestamp"] = stamp

            if self._store.mutate("events", existing[0], existing[1], bump) is not None:
                return
        name = f"{meta.get('name', '')}.{self._unique_nanos(when):x}"
        involved: Obj = {
            "apiVersion": obj.get("apiVersion", ""),
            "kind": obj.get("kind", ""),
            "name": meta.get("name", ""),
            "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if meta.get("namespace"):
            involved["namespace"] = meta["namespace"]
        if field_path:
            involved["fieldPath"] = field_path
        source: Obj = {"component": component}
        if host:
            source["host"] = host
        event: Obj = {
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": _stamp(when),
            "lastTimestamp": _stamp(when),
            "count": 1,
            "type": type_,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": host,
        }
        try:
            self._store.create(self._rt, event)
        except ApiError:
            return  # the namespace is being torn down; a real recorder drops the event too
        self._names[key] = (namespace, name)
        self._keys[(namespace, name)] = key
        heapq.heappush(self._expiry, (when + EVENT_TTL_S, namespace, name))

    def _unique_nanos(self, when: float) -> int:
        # client-go names events `<object>.<UnixNano in hex>`; keep them unique within a tick.
        nanos = max(int(when * 1e9), self._last_nanos + 1)
        self._last_nanos = nanos
        return nanos

    def prune(self) -> int:
        """Delete events whose last occurrence is older than the TTL; returns how many."""
        now = self._clock.time()
        removed = 0
        while self._expiry and self._expiry[0][0] <= now:
            _, namespace, name = heapq.heappop(self._expiry)
            event = self._store.peek("events", namespace, name)
            if event is None:
                self._forget(namespace, name)
                continue
            last = parse_rfc3339(str(event.get("lastTimestamp"))).timestamp()
            if last + EVENT_TTL_S > now:
                heapq.heappush(self._expiry, (last + EVENT_TTL_S, namespace, name))
                continue
            self._forget(namespace, name)
            try:
                self._store.delete(self._rt, namespace, name)
                removed += 1
            except ApiError:
                pass
        return removed

    def _forget(self, namespace: str, name: str) -> None:
        key = self._keys.pop((namespace, name), None)
        if key is not None and self._names.get(key) == (namespace, name):
            del self._names[key]
