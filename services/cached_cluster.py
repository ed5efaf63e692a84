"""The Cluster the checks see: pod, node, Deployment and ReplicaSet reads from the watch-fed
cache (services.informer) while it is in sync, everything else from the API server.

Pod and node lists (and gets), the target Deployment's gets and its ReplicaSets' come from
the informer's snapshots; every read the cache cannot vouch for (out of sync, another
namespace, a field selector, a selector wider than the watch's, another Deployment) goes to
the server. Writes go to the server and keep reads honest:
- after a write to an object of a cached kind, reads of that kind come from the server until
  the watch has delivered the write's resourceVersion (read-your-writes);
- the gate reads through `live` (LiveReads): its reads before a write (is the object still
  as planned?), its verify after one and its undo never see the cache, while its writes are
  still recorded here.
While the informer's first list is still coming in, a read of a cached kind waits for it
(up to FIRST_LIST_WAIT_S) rather than listing the same objects from the server: on `large`
that second, unpaged list was a 5.6 MB answer whose parse held the interpreter's lock, and
so froze the screen, for 0.8-2.8 s at start-up (bench/ui_stall_bench.py, "start"). The same
holds between that list and the first watch's opening, for up to FIRST_WATCH_WAIT_S. Reads of
the Deployment and its ReplicaSets do not wait: a get or a selected list of a few objects costs
one round trip, where the list and the watch's opening are two.
Objects served from the cache are shared between readers (callers copy before they change
one, as the services already do); pods and nodes carry no `metadata.managedFields` (see
services.informer.without_managed_fields).
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from services.errors import SkewmitError
from services.informer import Informer, Reflector, rv_number
from services.kube import KubeCluster, Obj

if TYPE_CHECKING:
    from services.runbook import Runbook

UNKNOWN_RV_BYPASS_S = 10.0  # a write whose resourceVersion is no number: server reads this long
# The kinds the informer keeps, and the apiVersion a get's answer carries (a list's items
# carry none).
API_VERSIONS = {"Pod": "v1", "Node": "v1", "Deployment": "apps/v1", "ReplicaSet": "apps/v1"}
# How long a read waits for the informer's first list (50 objects a page: a 1,000-pod
# Deployment lists in a few seconds) before it asks the server itself.
FIRST_LIST_WAIT_S = 20.0
# How long after the first list a read waits for the first watch to open (5-50 ms on `large`,
# 1.7 s under a herd of full lists, the API latency itself on a slow link).
FIRST_WATCH_WAIT_S = 5.0


def equality_terms(selector: str) -> set[tuple[str, str]] | None:
    """A label selector's `key=value` / `key==value` terms; None when it has any other kind
    of term (set-based, inequality, existence): such lists go to the server."""
    terms: set[tuple[str, str]] = set()
    for part in selector.split(","):
        part = part.strip()
        if not part:
            continue
        if "!" in part or " " in part or "=" not in part:
            return None
        key, _, value = part.partition("=")
        terms.add((key.strip(), value.lstrip("=").strip()))
    return terms


def _matches(obj: Obj, terms: Iterable[tuple[str, str]]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in terms)


class CachedCluster:
    """A Cluster (services.kube) whose pod and node reads come from an Informer while it is in
    sync, and from `cluster` otherwise; writes, other kinds, exec and the rest go to `cluster`.
    See the module's docstring for what keeps reads fresh after writes."""

    def __init__(self, cluster: KubeCluster, informer: Informer) -> None:
        self.cluster = cluster
        self.informer = informer
        self.context = cluster.context
        self.server = cluster.server
        self.user = cluster.user
        self.served = 0  # reads answered from the cache (the bench and tests count them)
        self._lock = threading.Lock()
        self._pending_rv: dict[str, str] = {}  # kind -> the newest write's resourceVersion
        self._bypass_until: dict[str, float] = {}  # kind -> monotonic time
        self.first_list_wait_s = FIRST_LIST_WAIT_S
        self.first_watch_wait_s = FIRST_WATCH_WAIT_S
        self.live = LiveReads(self)

    def __getattr__(self, name: str) -> Any:
        # exists, whoami's cache, default_namespace, request_counts...: the real cluster's.
        return getattr(self.cluster, name)

    # -- reads -----------------------------------------------------------------------------

    def _fresh_reflector(self, kind: str, namespace: str) -> Reflector | None:
        """The reflector that may answer a read of `kind` in `namespace` now, if any."""
        reflector = self.informer.reflectors.get(kind)
        if reflector is None:
            return None
        if not reflector.synced and reflector.readers_wait and self._first_list_pending(reflector):
            # Until in sync (listed and watching) or failed: then the server answers. Once
            # listed, the watch's opening is waited for a short while only: a proxy that holds
            # a watch's answer back must not hold every read with it.
            listed_at = reflector.listed_at
            wait_s = self.first_list_wait_s
            if listed_at is not None:
                wait_s = max(listed_at + self.first_watch_wait_s - time.monotonic(), 0.0)
            reflector.wait(
                lambda: reflector.synced or bool(reflector.error) or not reflector.alive,
                wait_s,
            )
        if not reflector.synced:
            return None
        if reflector.namespace and namespace != reflector.namespace:
            return None
        with self._lock:
            pending = self._pending_rv.get(kind)
            bypass = self._bypass_until.get(kind, 0.0)
        if time.monotonic() < bypass:
            return None
        if pending is not None:
            if not reflector.caught_up(pending):
                return None
            with self._lock:
                if self._pending_rv.get(kind) == pending:
                    del self._pending_rv[kind]
        return reflector

    @staticmethod
    def _first_list_pending(reflector: Reflector) -> bool:
        """The reflector is making its first list or opening its first watch, and nothing has
        failed yet: its answer is coming. After a failure (or once it has watched) reads go to
        the server at once. The gap between the list and the watch counts: on `large` the
        checks that read in it each listed all 1,000 pods, and the server those lists kept
        busy took 1.7 s to open the watch."""
        return reflector.alive and reflector.watches == 0 and not reflector.error

    def list(
        self, kind: str, namespace: str = "", label_selector: str = "", field_selector: str = ""
    ) -> builtins.list[Obj]:
        reflector = None if field_selector else self._fresh_reflector(kind, namespace)
        if reflector is not None and reflector.field_selector:
            reflector = None  # it holds one object, not the list asked for
        terms = equality_terms(label_selector)
        cached = equality_terms(reflector.selector or "") if reflector is not None else None
        snapshot = reflector.snapshot if reflector is not None else None
        # Served only when every object the selector asks for is in the cache.
        if snapshot is None or terms is None or cached is None or not cached <= terms:
            return self.cluster.list(kind, namespace, label_selector, field_selector)
        self._count_served()
        extra = terms - cached
        return [obj for obj in snapshot.items() if _matches(obj, extra)]

    def get(self, kind: str, namespace: str, name: str) -> Obj:
        reflector = self._fresh_reflector(kind, namespace)
        snapshot = reflector.snapshot if reflector is not None else None
        namespace = namespace if kind != "Node" else ""
        obj = snapshot.objects.get(f"{namespace}/{name}") if snapshot is not None else None
        if obj is None:  # not watched here (outside the selector) or gone: the server says
            return self.cluster.get(kind, namespace, name)
        self._count_served()
        if "kind" in obj:
            return obj
        # A list's items carry no kind; a get's answer does (the evidence bundle and the
        # gate's plans keep it).
        return {"kind": kind, "apiVersion": API_VERSIONS[kind], **obj}

    def _count_served(self) -> None:
        with self._lock:
            self.served += 1

    # -- writes: to the server, remembered ----------------------------------------------

    def _wrote(self, kind: str, namespace: str, name: str, result: Any, dry_run: bool) -> None:
        """After a write: reads of `kind` from the server until the watch delivered it. A
        dry run or a refused write changed nothing; a write to an object the kind's watch
        does not hold (another Deployment) is not waited for."""
        reflector = self.informer.reflectors.get(kind)
        if dry_run or reflector is None:
            return
        if reflector.field_selector and reflector.field_selector != f"metadata.name={name}":
            return
        with self._lock:
            meta = result.get("metadata") if isinstance(result, dict) else None
            rv = str((meta or {}).get("resourceVersion") or "")
            if rv_number(rv) is None:
                self._bypass_until[kind] = time.monotonic() + UNKNOWN_RV_BYPASS_S
                return
            pending = self._pending_rv.get(kind)
            if pending is None or int(rv) > int(pending):
                self._pending_rv[kind] = rv

    def patch(
        self,
        kind: str,
        namespace: str,
        name: str,
        patch: Any,
        patch_type: str,
        *,
        dry_run: bool = False,
    ) -> Obj:
        try:
            result = self.cluster.patch(kind, namespace, name, patch, patch_type, dry_run=dry_run)
        except SkewmitError:
            self._wrote(kind, namespace, name, None, True)  # nothing changed; read it live
            raise
        self._wrote(kind, namespace, name, result, dry_run)
        return result

    def create(self, kind: str, namespace: str, body: Obj, *, dry_run: bool = False) -> Obj:
        try:
            result = self.cluster.create(kind, namespace, body, dry_run=dry_run)
        except SkewmitError:
            self._wrote(kind, namespace, str(body.get("metadata", {}).get("name", "")), None, True)
            raise
        name = str((result.get("metadata") or {}).get("name", ""))
        self._wrote(kind, namespace, name, result, dry_run)
        return result

    def delete(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        dry_run: bool = False,
        resource_version: str = "",
    ) -> Obj:
        try:
            result = self.cluster.delete(
                kind, namespace, name, dry_run=dry_run, resource_version=resource_version
            )
        except SkewmitError:
            self._wrote(kind, namespace, name, None, True)  # nothing changed; read it live
            raise
        self._wrote(kind, namespace, name, result, dry_run)
        return result

    # -- the rest: the server's ----------------------------------------------------------

    def can_i(
        self, verb: str, kind: str, namespace: str, name: str = "", subresource: str = ""
    ) -> tuple[bool, str]:
        return self.cluster.can_i(verb, kind, namespace, name, subresource)

    def exec(self, namespace: str, pod: str, container: str, argv: builtins.list[str]) -> str:
        return self.cluster.exec(namespace, pod, container, argv)

    def whoami(self) -> str:
        return self.cluster.whoami()


class LiveReads:
    """The cached cluster with every read from the server, for the gate: a plan is checked
    against the object as it is now, never against a cache a watch's delay behind. Writes go
    through the cached cluster, so its reads after them stay honest."""

    def __init__(self, cached: CachedCluster) -> None:
        self.cached = cached

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cached, name)

    def get(self, kind: str, namespace: str, name: str) -> Obj:
        return self.cached.cluster.get(kind, namespace, name)

    def list(
        self, kind: str, namespace: str = "", label_selector: str = "", field_selector: str = ""
    ) -> builtins.list[Obj]:
        return self.cached.cluster.list(kind, namespace, label_selector, field_selector)


def live_reads(cluster: Any) -> Any:
    """What the gate reads and writes through: a cached cluster's `live` view, any other
    cluster itself."""
    return cluster.live if isinstance(cluster, CachedCluster) else cluster


def cache_reads(runbook: Runbook) -> Informer | None:
    """Serve the runbook's pod, node, Deployment and ReplicaSet reads from a started Informer
    on its target; None (nothing started) when it has no KubeCluster (a test double, or one
    already cached).
    The caller stops the informer when it is done. Raises nothing: the informer's own reads
    happen on its threads, and until they succeed every read goes to the server."""
    cluster = getattr(runbook, "cluster", None)  # the app's test doubles may have none
    if not isinstance(cluster, KubeCluster):
        return None
    informer = Informer(cluster, runbook.target.namespace, runbook.target.deployment)
    runbook.cluster = cached = CachedCluster(cluster, informer)
    gate = runbook._gate
    if gate is not None:  # made before: its writes must be recorded, its reads stay live
        gate.cluster = cached.live
    informer.start()
    return informer
