"""An in-memory object store with resource versions, watches and garbage collection.

Everything runs on the simulator's event loop thread; nothing here locks. Objects are plain
JSON-like dicts. Reads that leave the store are deep copies, so a caller can never change
stored state behind the store's back (and so every change gets a resourceVersion and an event).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

from services.simulator import admission
from services.simulator.clock import SimClock, rfc3339
from services.simulator.errors import (
    already_exists,
    conflict,
    gone,
    invalid,
    not_found,
)
from services.simulator.resources import Registry, ResourceType
from services.simulator.selectors import LabelSelector

Obj = dict[str, Any]
T = TypeVar("T")
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped
Listener = Callable[[str, str, Obj, Obj | None], None]
Defaulter = Callable[[ResourceType, Obj, Obj | None], None]
Manage = Callable[[Obj | None, Obj], None]  # (old or None on create, new) -> None

HISTORY = 50_000  # watch events kept at most
# Events older than this (simulated seconds) are compacted, as etcd compacts every 5 minutes
# (a watch from an older version gets 410 Gone), once more than HISTORY_FLOOR are kept: each
# event holds a copy of its object, and a long-running simulator must stay the same size. The
# floor lets a client that reconnects a few wall seconds late on a fast clock resume.
COMPACTION_S = 300.0
HISTORY_FLOOR = 1_000
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class FieldMatcher(Protocol):
    """A field selector as the store applies it."""

    def matches(self, obj: Obj) -> bool: ...


@dataclass
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
    object: Obj


@dataclass
class Watcher:
    plural: str
    namespace: str
    labels: LabelSelector | None
    fields: FieldMatcher | None
    queue: asyncio.Queue[WatchEvent] = field(default_factory=asyncio.Queue)
    closed: bool = False

    def wants(self, obj: Obj) -> bool:
        meta = obj.get("metadata", {})
        if self.namespace and meta.get("namespace", "") != self.namespace:
            return False
        if self.labels is not None and not self.labels.matches(meta.get("labels")):
            return False
        return self.fields is None or self.fields.matches(obj)


# Built-in kinds with a spec whose registry strategy keeps no metadata.generation (kube-apiserver
# 1.32: only workloads, PDBs, HPAs... count their spec changes; pods do from 1.33 on).
_NO_GENERATION = frozenset({"Service", "Node", "Namespace", "Lease", "Pod"})


def fast_copy(value: T) -> T:
    """A deep copy of JSON-shaped data (dicts, lists, scalars): several times faster than
    copy.deepcopy, which matters with thousands of pods."""
    return cast(T, _copy(value))


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def random_suffix(rng: random.Random, n: int = 5) -> str:
    return "".join(rng.choice(_NAME_ALPHABET) for _ in range(n))


def safe_encode(number: int) -> str:
    """apimachinery's SafeEncodeString of a decimal number: no vowels, no look-alikes."""
    return "".join(_NAME_ALPHABET[ord(c) % len(_NAME_ALPHABET)] for c in str(number))


def template_hash(template: Obj, collision_count: int = 0) -> str:
    """A pod-template-hash: stable for equal templates (ignoring the hash label itself)."""
    clean = fast_copy(template)
    clean.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
    digest = hashlib.sha256(admission.canonical(clean).encode()).digest()
    value = int.from_bytes(digest[:4], "big") ^ collision_count
    return safe_encode(value)


class Store:
    """Objects by resource, with a global resourceVersion and a bounded event history."""

    def __init__(self, registry: Registry, clock: SimClock, seed: int = 0) -> None:
        self.registry = registry
        self.clock = clock
        self.rng = random.Random(seed)
        self._rv = itertools.count(1000)
        self._last_rv = 999
        self._data: dict[str, dict[Key, Obj]] = {rt.plural: {} for rt in registry.all()}
        self._history: deque[tuple[int, str, WatchEvent]] = deque(maxlen=HISTORY)
        self._history_at: deque[float] = deque(maxlen=HISTORY)  # simulated time of each
        self._watchers: list[Watcher] = []
        self._listeners: list[Listener] = []
        # owner uid -> dependents (plural, (namespace, name)), for the garbage collector.
        self._dependents: dict[str, set[tuple[str, Key]]] = {}
        # Registry-level defaulting beyond admission's (a Service's ClusterIP allocation).
        self._defaulters: list[Defaulter] = []

    # -- bookkeeping ---------------------------------------------------------

    @property
    def resource_version(self) -> str:
        return str(self._last_rv)

    def _next_rv(self) -> str:
        self._last_rv = next(self._rv)
        return str(self._last_rv)

    def add_defaulter(self, defaulter: Defaulter) -> None:
        """Called as defaulter(rt, new_obj, old_obj_or_None) on every create and spec update,
        after admission's defaults and before validation; it may fill in fields in place."""
        self._defaulters.append(defaulter)

    def add_listener(self, listener: Listener) -> None:
        """Called as listener(plural, event_type, new_or_deleted_obj, old_obj) after each change."""
        self._listeners.append(listener)

    def _bucket(self, plural: str) -> dict[Key, Obj]:
        return self._data.setdefault(plural, {})

    def _read_bucket(self, plural: str) -> dict[Key, Obj]:
        """A bucket for reading: asking about a type the scenario does not serve (a
        VirtualService in a Gateway API cluster) finds nothing and creates nothing."""
        return self._data.get(plural, {})

    def _index_owners(self, plural: str, type_: str, obj: Obj, old: Obj | None) -> None:
        meta = obj["metadata"]
        entry = (plural, (meta.get("namespace", ""), meta["name"]))
        for ref in (old or {}).get("metadata", {}).get("ownerReferences") or []:
            self._dependents.get(ref.get("uid", ""), set()).discard(entry)
        if type_ != "DELETED":
            for ref in meta.get("ownerReferences") or []:
                self._dependents.setdefault(ref.get("uid", ""), set()).add(entry)

    def _emit(self, rt: ResourceType, type_: str, obj: Obj, old: Obj | None) -> None:
        self._index_owners(rt.plural, type_, obj, old)
        rv = int(obj["metadata"]["resourceVersion"])
        event = WatchEvent(type_, obj)
        self._history.append((rv, rt.plural, event))
        now = self.clock.time()
        self._history_at.append(now)
        while len(self._history) > HISTORY_FLOOR and now - self._history_at[0] > COMPACTION_S:
            self._history.popleft()
            self._history_at.popleft()
        for watcher in self._watchers:
            if watcher.closed or watcher.plural != rt.plural:
                continue
            now_in = watcher.wants(obj)
            was_in = old is not None and watcher.wants(old)
            if type_ == "MODIFIED" and now_in != was_in:
                # Moving in or out of a selector reads as ADDED / DELETED, as on a real server.
                watcher.queue.put_nowait(WatchEvent("ADDED" if now_in else "DELETED", obj))
            elif now_in or (type_ == "DELETED" and was_in):
                watcher.queue.put_nowait(event)
        for listener in self._listeners:
            listener(rt.plural, type_, obj, old)

    # -- reads ---------------------------------------------------------------

    def peek(self, plural: str, namespace: str, name: str) -> Obj | None:
        """The stored object itself (no copy): callers must not mutate it."""
        return self._read_bucket(plural).get((namespace, name))

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        """A copy of one object. Raises ApiError 404."""
        obj = self._bucket(rt.plural).get((namespace if rt.namespaced else "", name))
        if obj is None:
            raise not_found(rt.plural, rt.group, name)
        return fast_copy(obj)

    def items(self, plural: str, namespace: str = "") -> list[Obj]:
        """Stored objects (no copies), optionally in one namespace."""
        bucket = self._read_bucket(plural)
        if not namespace:
            return list(bucket.values())
        return [o for (ns, _), o in bucket.items() if ns == namespace]

    def list(
        self,
        rt: ResourceType,
        namespace: str = "",
        labels: LabelSelector | None = None,
        fields: FieldMatcher | None = None,
    ) -> list[Obj]:
        """Copies of matching objects, sorted by namespace and name as the real server does."""
        out = []
        for key in sorted(self._bucket(rt.plural)):
            obj = self._bucket(rt.plural)[key]
            if namespace and key[0] != namespace:
                continue
            if labels is not None and not labels.matches(obj["metadata"].get("labels")):
                continue
            if fields is not None and not fields.matches(obj):
                continue
            out.append(obj)
        return fast_copy(out)

    # -- writes --------------------------------------------------------------

    def create(
        self, rt: ResourceType, obj: Obj, *, dry_run: bool = False, manage: Manage | None = None
    ) -> Obj:
        """Create an object. Raises ApiError 404 (namespace), 409 (exists), 422 (invalid).

        `manage(None, obj)` records the writer in managedFields once the object is defaulted.
        """
        obj = fast_copy(obj)
        meta = obj.setdefault("metadata", {})
        obj["apiVersion"] = rt.group_version
        obj["kind"] = rt.kind
        if rt.namespaced:
            namespace = meta.get("namespace") or "default"
            meta["namespace"] = namespace
            if self.peek("namespaces", "", namespace) is None:
                raise not_found("namespaces", "", namespace)
        else:
            meta.pop("namespace", None)
            namespace = ""
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + random_suffix(self.rng)
        name = meta.get("name", "")
        if not name:
            raise invalid(
                rt.kind,
                rt.group,
                "",
                [("metadata.name", "Required value: name or generateName is required")],
            )
        if (namespace, name) in self._bucket(rt.plural):
            raise already_exists(rt.plural, rt.group, name)
        admission.default(rt.kind, obj)
        for defaulter in self._defaulters:
            defaulter(rt, obj, None)
        admission.validate(rt, obj, None)
        if manage is not None:
            manage(None, obj)
        meta["uid"] = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        meta.setdefault("creationTimestamp", rfc3339(self.clock.now()))
        if ("spec" in obj and rt.kind not in _NO_GENERATION) or not rt.builtin:
            meta["generation"] = 1
        if dry_run:
            return obj
        meta["resourceVersion"] = self._next_rv()
        self._bucket(rt.plural)[(namespace, name)] = obj
        self._emit(rt, "ADDED", obj, None)
        return fast_copy(obj)

    def update(
        self,
        rt: ResourceType,
        obj: Obj,
        *,
        subresource: str = "",
        dry_run: bool = False,
        manage: Manage | None = None,
    ) -> Obj:
        """Replace an object, honouring a resourceVersion precondition when one is given.

        `manage(old, obj)` records the writer in managedFields once the object is defaulted.
        Raises ApiError 404, 409 (conflict), 422 (invalid).
        """
        obj = fast_copy(obj)
        meta = obj.setdefault("metadata", {})
        namespace = (meta.get("namespace") or "default") if rt.namespaced else ""
        name = meta.get("name", "")
        key = (namespace, name)
        old = self._bucket(rt.plural).get(key)
        if old is None:
            raise not_found(rt.plural, rt.group, name)
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, rt.group, name)
        obj["apiVersion"] = rt.group_version
        obj["kind"] = rt.kind
        if rt.namespaced:
            meta["namespace"] = namespace
        # Server-owned metadata survives whatever the client sent.
        for owned in (
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ):
            if owned in old["metadata"]:
                meta[owned] = old["metadata"][owned]
            else:
                meta.pop(owned, None)
        if subresource == "status":
            new = fast_copy(old)
            new["status"] = obj.get("status", {})
            obj = new
            meta = obj["metadata"]
        else:
            if rt.status_subresource or (rt.builtin and "status" in old):
                if "status" in old:
                    obj["status"] = fast_copy(old["status"])
                else:
                    obj.pop("status", None)
            admission.default(rt.kind, obj)
            for defaulter in self._defaulters:
                defaulter(rt, obj, old)
            admission.validate(rt, obj, old)
            if obj.get("spec") != old.get("spec") and "generation" in meta:
                meta["generation"] = int(meta["generation"]) + 1
        if manage is not None:
            manage(old, obj)
        if obj == old:
            return fast_copy(old)  # a no-op write keeps the resourceVersion, as on a real server
        if dry_run:
            return obj
        meta["resourceVersion"] = self._next_rv()
        self._bucket(rt.plural)[key] = obj
        if old["metadata"].get("deletionTimestamp") and not meta.get("finalizers"):
            return self._remove(rt, key)
        self._emit(rt, "MODIFIED", obj, old)
        return fast_copy(obj)

    def mutate(
        self, plural: str, namespace: str, name: str, change: Callable[[Obj], None]
    ) -> Obj | None:
        """Controllers' write path: apply `change` to a copy and store it if it differs.

        Skips admission (controllers write status and server-owned fields). Returns the stored
        object, or None when it does not exist.
        """
        key = (namespace, name)
        old = self._bucket(plural).get(key)
        if old is None:
            return None
        new = fast_copy(old)
        change(new)
        if new == old:
            return old
        rt = self.registry.by_plural(plural)
        if new.get("spec") != old.get("spec") and "generation" in new["metadata"]:
            new["metadata"]["generation"] = int(old["metadata"]["generation"]) + 1
        new["metadata"]["resourceVersion"] = self._next_rv()
        self._bucket(plural)[key] = new
        self._emit(rt, "MODIFIED", new, old)
        return new

    def touch(self, rt: ResourceType, namespace: str, name: str) -> None:
        """Another writer's no-news write (a controller's status update): the object gets a
        new resourceVersion and a MODIFIED event. A missing object is left alone."""
        key = (namespace if rt.namespaced else "", name)
        old = self._bucket(rt.plural).get(key)
        if old is None:
            return
        new = fast_copy(old)
        new["metadata"]["resourceVersion"] = self._next_rv()
        self._bucket(rt.plural)[key] = new
        self._emit(rt, "MODIFIED", new, old)

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        dry_run: bool = False,
        grace_seconds: int | None = None,
        propagation: str = "Background",
        precondition_rv: str = "",
        precondition_uid: str = "",
    ) -> Obj:
        """Delete an object (gracefully for pods). Raises ApiError 404, 409."""
        namespace = namespace if rt.namespaced else ""
        key = (namespace, name)
        old = self._bucket(rt.plural).get(key)
        if old is None:
            raise not_found(rt.plural, rt.group, name)
        if precondition_rv and precondition_rv != old["metadata"]["resourceVersion"]:
            raise conflict(
                rt.plural,
                rt.group,
                name,
                "the ResourceVersion in the precondition "
                f"({precondition_rv}) does not match the ResourceVersion in record "
                f"({old['metadata']['resourceVersion']}). The object might have been modified",
            )
        if precondition_uid and precondition_uid != old["metadata"]["uid"]:
            raise conflict(rt.plural, rt.group, name, "the UID in the precondition does not match")
        if rt.plural == "pods":
            grace = (
                int(old["spec"].get("terminationGracePeriodSeconds", 30))
                if grace_seconds is None
                else grace_seconds
            )
            if grace > 0 and old["spec"].get("nodeName"):
                if old["metadata"].get("deletionTimestamp") or dry_run:
                    # A dry run answers the pod as the graceful delete would mark it.
                    shown = fast_copy(old)
                    shown["metadata"].setdefault("deletionTimestamp", rfc3339(self.clock.now()))
                    shown["metadata"].setdefault("deletionGracePeriodSeconds", grace)
                    return shown

                def mark(pod: Obj) -> None:
                    pod["metadata"]["deletionTimestamp"] = rfc3339(self.clock.now())
                    pod["metadata"]["deletionGracePeriodSeconds"] = grace

                marked = self.mutate("pods", namespace, name, mark)
                return fast_copy(marked) if marked else {}
        if dry_run:
            return fast_copy(old)
        if old["metadata"].get("finalizers"):
            marked = self.mutate(
                rt.plural,
                namespace,
                name,
                lambda o: o["metadata"].setdefault("deletionTimestamp", rfc3339(self.clock.now())),
            )
            return fast_copy(marked) if marked else {}
        removed = self._remove(rt, key)
        self._collect_dependents(
            removed["metadata"]["uid"], namespace, orphan=propagation == "Orphan"
        )
        return removed

    def _remove(self, rt: ResourceType, key: Key) -> Obj:
        old = self._bucket(rt.plural).pop(key)
        gone_obj = fast_copy(old)
        gone_obj["metadata"]["resourceVersion"] = self._next_rv()
        self._emit(rt, "DELETED", gone_obj, old)
        return gone_obj

    def _collect_dependents(self, owner_uid: str, namespace: str, *, orphan: bool) -> None:
        """The garbage collector: dependents of a deleted owner are deleted or orphaned."""
        for plural, (ns, name) in sorted(self._dependents.pop(owner_uid, set())):
            if namespace and ns != namespace:
                continue
            if orphan:

                def drop(o: Obj) -> None:
                    refs = o["metadata"].get("ownerReferences") or []
                    o["metadata"]["ownerReferences"] = [
                        r for r in refs if r.get("uid") != owner_uid
                    ]

                self.mutate(plural, ns, name, drop)
            else:
                try:
                    self.delete(self.registry.by_plural(plural), ns, name)
                except Exception:
                    pass

    def finalize_pod(self, namespace: str, name: str) -> None:
        """The kubelet's last word on a terminated pod: remove it from the store."""
        if (namespace, name) in self._bucket("pods"):
            self._remove(self.registry.by_plural("pods"), (namespace, name))

    # -- watches -------------------------------------------------------------

    def watch(
        self,
        rt: ResourceType,
        namespace: str,
        resource_version: str,
        labels: LabelSelector | None,
        fields: FieldMatcher | None,
        *,
        send_initial: bool | None = None,
    ) -> Watcher:
        """Open a watch. Raises ApiError 410 when resourceVersion is older than the history.

        With no resourceVersion (or "0") the watch starts with synthetic ADDED events for the
        current state, as the real server does; sendInitialEvents forces that.
        """
        watcher = Watcher(rt.plural, namespace, labels, fields)
        initial = send_initial if send_initial is not None else resource_version in ("", "0")
        if initial:
            for obj in self.list(rt, namespace, labels, fields):
                watcher.queue.put_nowait(WatchEvent("ADDED", obj))
        else:
            since = int(resource_version)
            oldest = self._history[0][0] if self._history else self._last_rv + 1
            if since < oldest - 1 and since < self._last_rv:
                raise gone(f"too old resource version: {since} ({oldest - 1})")
            for rv, plural, event in self._history:
                if rv > since and plural == rt.plural and watcher.wants(event.object):
                    watcher.queue.put_nowait(event)
        self._watchers.append(watcher)
        return watcher

    def close_watch(self, watcher: Watcher) -> None:
        watcher.closed = True
        if watcher in self._watchers:
            self._watchers.remove(watcher)

    def drop_all_watches(self) -> int:
        """Fault injection: end every open watch, as an API server restart would."""
        count = 0
        for watcher in list(self._watchers):
            watcher.queue.put_nowait(WatchEvent("CLOSE", {}))
            self.close_watch(watcher)
            count += 1
        return count
