"""A watch-fed cache of the target's pods, Deployment and ReplicaSets and the cluster's nodes,
shared by every check.

On a large fleet each check used to list 1,000 pods and 500 nodes every poll; parsing such a
list (2.9 MB of JSON) holds the interpreter lock for a fifth of a second, and the screen froze
with it. Here one thread per collection lists once in pages of PAGE_SIZE (no single parse is
long), then watches from the list's resourceVersion with bookmarks, applying each event to a
copy of the map and publishing the copy whole: a reader gets a `Snapshot` in which every event
up to its resourceVersion is applied and none half-way. A 410 (the version was compacted) lists
again; a dropped stream reconnects from the last version with backoff.

The checks read it through services.cached_cluster.CachedCluster.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from services.errors import SkewmitError
from services.kube import KubeCluster, Obj
from services.watch_stream import WatchExpired, WatchStream

# Objects per list page: a 1,000-pod list (5.6 MB) parses in 10 pieces of 0.56 MB (json.loads
# 9 ms each on this 2-core machine). 50 a page made it 20 round trips, each a pass of the
# server over the namespace: 0.8-1.1 s against 0.6 s on `large`, and the inspector's first
# rows wait for that list (bench/RESULTS.md).
PAGE_SIZE = 100
WATCH_TIMEOUT_S = 240  # the server ends each watch after this; it is resumed at once
BACKOFF_S = (0.5, 30.0)  # first and longest wait before reconnecting a failed watch
log = logging.getLogger("skewmit.informer")


class Snapshot:
    """One state of a watched collection: `objects` by "namespace/name", every event up to
    `resource_version` applied. Never changed once published."""

    __slots__ = ("_sorted", "objects", "resource_version")

    def __init__(self, objects: dict[str, Obj], resource_version: str) -> None:
        self.objects = objects
        self.resource_version = resource_version
        self._sorted: tuple[Obj, ...] | None = None

    def items(self) -> tuple[Obj, ...]:
        """The objects in the server's list order (namespace, then name)."""
        if self._sorted is None:
            self._sorted = tuple(self.objects[key] for key in sorted(self.objects))
        return self._sorted


def object_key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def without_managed_fields(obj: Obj) -> Obj:
    """The object as kept: `metadata.managedFields` dropped (in place: the object was just
    parsed and is ours), as controller-runtime's caches do. No check reads them (the gate
    compares objects without them), and on a fleet with server-side apply they are half of
    each object's size, and most of the objects the garbage collector has to walk."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


def rv_number(resource_version: str) -> int | None:
    """A resourceVersion as a number (etcd's revision), None when it is not one."""
    return int(resource_version) if resource_version.isdigit() else None


class Reflector:
    """List, then watch, one collection (`kind` in `namespace`, label-selected), on a thread of
    its own. `selector` may be a function, called on that thread before the first list (it
    may read the cluster; an error there is retried like a failed watch)."""

    def __init__(
        self,
        cluster: KubeCluster,
        kind: str,
        namespace: str = "",
        selector: str | Callable[[], str] = "",
        *,
        field_selector: str = "",
        keep_managed_fields: bool = False,
        readers_wait: bool = True,
        page_size: int = PAGE_SIZE,
        watch_timeout_s: int = WATCH_TIMEOUT_S,
        backoff_s: tuple[float, float] = BACKOFF_S,
    ) -> None:
        self.cluster = cluster
        self.kind = kind
        self.namespace = namespace
        self._selector = selector
        self.selector: str | None = selector if isinstance(selector, str) else None
        self.field_selector = field_selector  # "metadata.name=x": one object, gets only
        self.keep_managed_fields = keep_managed_fields
        # Whether a read before the first list and watch waits for them (services.
        # cached_cluster): worth it for a big collection, not for what one get answers.
        self.readers_wait = readers_wait
        self.page_size = page_size
        self.watch_timeout_s = watch_timeout_s
        self.backoff_s = backoff_s
        self.snapshot: Snapshot | None = None
        self.error = ""  # why the cache is out of sync, while it is
        self.lists = 0  # full lists made (the first, then one per 410)
        self.listed_at: float | None = None  # time.monotonic() when the first list was in
        self.watches = 0  # watches opened
        self._watching = False
        self._fresh_list = False  # no event applied since the last list
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._stream: WatchStream | None = None
        self._thread: threading.Thread | None = None

    # -- readers ---------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        """Listed, and a watch is open: the snapshot trails the server by the stream's delay."""
        return self._watching and self.snapshot is not None

    def caught_up(self, resource_version: str) -> bool:
        """Whether the watch has delivered everything up to `resource_version`."""
        wanted = rv_number(resource_version)
        snapshot = self.snapshot
        have = rv_number(snapshot.resource_version) if snapshot is not None else None
        return wanted is not None and have is not None and have >= wanted

    def wait(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until `condition()` holds after a change (or at once); False on timeout."""
        with self._changed:
            return self._changed.wait_for(condition, timeout_s)

    # -- the thread ------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            name = f"skewmit-informer-{self.kind.lower()}s"
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """End the watch and the thread (waits up to `timeout_s` for it)."""
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.abort()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._set_watching(False, "stopped")

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        delay = self.backoff_s[0]
        must_list = True
        while not self._stop.is_set():
            try:
                if self.selector is None:
                    assert callable(self._selector)
                    self.selector = self._selector()
                if must_list:
                    self._list()
                    must_list = False
                self._watch()
                delay = self.backoff_s[0]  # the server ended the watch: resume at once
            except WatchExpired as exc:
                # The version was compacted: events were missed, only a new list tells. A
                # server that expires the version of a list just made is not asked again
                # at once.
                self._set_watching(False, str(exc))
                if not must_list and self._fresh_list:
                    self._stop.wait(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, self.backoff_s[1])
                must_list = True
            except Exception as exc:  # the thread must outlive any failure
                if self._stop.is_set():
                    break
                if not isinstance(exc, SkewmitError):
                    log.exception("informer for %ss failed", self.kind.lower())
                self._set_watching(False, str(exc))
                # Jittered, so many clients of one server do not come back together.
                self._stop.wait(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.backoff_s[1])
        self._set_watching(False, "stopped")

    def _list(self) -> None:
        objects: dict[str, Obj] = {}
        token = ""
        while True:
            page = self.cluster.list_page(
                self.kind,
                self.namespace,
                self.selector or "",
                field_selector=self.field_selector,
                limit=self.page_size,
                continue_token=token,
            )
            if self._stop.is_set():
                return  # a part of a list is no state of the collection: publish nothing
            for obj in page.items:
                objects[object_key(obj)] = self._kept(obj)
            token = page.continue_token
            if not token:
                break
        self.lists += 1
        if self.listed_at is None:
            self.listed_at = time.monotonic()
        self._fresh_list = True
        self._publish(Snapshot(objects, page.resource_version))

    def _watch(self) -> None:
        assert self.snapshot is not None
        stream = self.cluster.watch(
            self.kind,
            self.namespace,
            self.selector or "",
            field_selector=self.field_selector,
            resource_version=self.snapshot.resource_version,
            timeout_s=self.watch_timeout_s,
        )
        self._stream = stream
        if self._stop.is_set():
            stream.abort()
        self.watches += 1
        self._set_watching(True, "")
        try:
            for event in stream:
                self._fresh_list = False
                self._apply(event)
        finally:
            self._stream = None

    def _apply(self, event: Obj) -> None:
        current = self.snapshot
        assert current is not None
        obj = event.get("object") or {}
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        kind = event.get("type")
        if kind == "BOOKMARK":  # nothing changed: the same objects, a newer version
            snapshot = Snapshot(current.objects, rv or current.resource_version)
            snapshot._sorted = current._sorted
            self._publish(snapshot)
            return
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            return
        objects = dict(current.objects)  # copy on write: readers keep the map they hold
        if kind == "DELETED":
            objects.pop(object_key(obj), None)
        else:
            objects[object_key(obj)] = self._kept(obj)
        self._publish(Snapshot(objects, rv or current.resource_version))

    def _kept(self, obj: Obj) -> Obj:
        return obj if self.keep_managed_fields else without_managed_fields(obj)

    def _publish(self, snapshot: Snapshot) -> None:
        with self._changed:
            self.snapshot = snapshot
            self._changed.notify_all()

    def _set_watching(self, watching: bool, error: str) -> None:
        with self._changed:
            self._watching = watching
            self.error = error
            self._changed.notify_all()


def deployment_selector(cluster: KubeCluster, namespace: str, deployment: str) -> str:
    """The Deployment's matchLabels as a label selector ("" when it also has expressions:
    then the whole namespace is watched). Raises what `cluster.get` raises."""
    spec = cluster.get("Deployment", namespace, deployment).get("spec") or {}
    selector = spec.get("selector") or {}
    if selector.get("matchExpressions"):
        return ""
    labels = selector.get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


class SelectorOnce:
    """A selector function called once for the reflectors that share it (the pods' and the
    ReplicaSets' both read the Deployment's): the first caller reads, the others wait for
    its answer; a failed read is tried again by the next caller."""

    def __init__(self, read: Callable[[], str]) -> None:
        self._read = read
        self._lock = threading.Lock()
        self._value: str | None = None

    def __call__(self) -> str:
        with self._lock:
            if self._value is None:
                self._value = self._read()
            return self._value


class Informer:
    """The target's pods (label-selected by its Deployment) and the cluster's nodes, each
    kept by a Reflector; with a Deployment named, also the Deployment itself (field-selected
    by name) and its ReplicaSets (label-selected like its pods): what every check reads to
    follow the rollout, each of them a round trip per check before. These two keep their
    managedFields: the evidence bundle's manifests (before and after) record them, and they
    are a dozen objects, not a fleet. `start()` returns at once; `stop()` ends the
    threads."""

    def __init__(
        self,
        cluster: KubeCluster,
        namespace: str,
        deployment: str = "",
        *,
        page_size: int = PAGE_SIZE,
        watch_timeout_s: int = WATCH_TIMEOUT_S,
        backoff_s: tuple[float, float] = BACKOFF_S,
    ) -> None:
        options: dict[str, Any] = {
            "page_size": page_size,
            "watch_timeout_s": watch_timeout_s,
            "backoff_s": backoff_s,
        }
        pods: str | Callable[[], str] = ""
        if deployment:
            pods = SelectorOnce(lambda: deployment_selector(cluster, namespace, deployment))
        self.reflectors = {
            "Pod": Reflector(cluster, "Pod", namespace, pods, **options),
            "Node": Reflector(cluster, "Node", "", "", **options),
        }
        if deployment:
            self.reflectors["Deployment"] = Reflector(
                cluster,
                "Deployment",
                namespace,
                field_selector=f"metadata.name={deployment}",
                keep_managed_fields=True,
                readers_wait=False,
                **options,
            )
            self.reflectors["ReplicaSet"] = Reflector(
                cluster,
                "ReplicaSet",
                namespace,
                pods,
                keep_managed_fields=True,
                readers_wait=False,
                **options,
            )

    def start(self) -> None:
        for reflector in self.reflectors.values():
            reflector.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        for reflector in self.reflectors.values():
            reflector.stop(timeout_s)

    def wait_synced(self, timeout_s: float) -> bool:
        """Wait until every collection is listed and watched; False on timeout."""
        deadline = time.monotonic() + timeout_s
        for reflector in self.reflectors.values():
            left = max(deadline - time.monotonic(), 0.0)
            if not reflector.wait(lambda r=reflector: r.synced, left):  # type: ignore[misc]
                return False
        return True
