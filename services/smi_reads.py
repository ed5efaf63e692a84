"""Step 5's nvidia-smi reads, bounded: one exec per node, remembered per node.

Running nvidia-smi in every serving pod on every check cost a 1,000-pod fleet ~600 execs a
minute (API server, kubelets, and the garbage behind the UI's stalls). Pods on one node share
its GPU class and driver, so nvidia-smi runs in one running pod per node (a ready one first)
and every pod on the node is shown that reading. A reading is kept until the node is replaced
(new uid) or rebooted (new bootID), its labels change, the pod it was read in is gone from the
node, or TTL_S passes; a failed exec is retried after FAILED_TTL_S. At most MAX_NEW_NODES
nodes are read per check, new and changed nodes first: pods on a new or changed node left for
a later check say NOT_READ_YET (never a pass); a reading that is only old stays shown until
its node's turn comes.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from services.errors import SkewmitError
from services.models import SMI_NOT_READ_YET

if TYPE_CHECKING:
    from services.kube import Cluster

Obj = dict[str, Any]
# The only command skewmit ever runs in a container. Nothing from the operator, the cluster or
# the configuration is added to it: no shell, no interpolation.
NVIDIA_SMI_ARGV: Final[tuple[str, ...]] = (
    "nvidia-smi",
    "--query-gpu=name,memory.total",
    "--format=csv",
)
TTL_S: Final = 600.0  # a GPU does not change under a running node; a swap means a reboot
FAILED_TTL_S: Final = 60.0  # a forbidden or failing exec is not retried on every check
MAX_NEW_NODES: Final = 40  # execs per check at most (a check runs every 15 s in the app)
# Execs in flight at once: each waits mostly on its own websocket (a TLS handshake and the
# command's run), so a check's 40 take about a fifth of the time they take one by one
# (bench/RESULTS.md, stop 16); kubectl's own parallel commands use a handful too.
PARALLEL_EXECS: Final = 8
NOT_READ_YET: Final = SMI_NOT_READ_YET


def gpu_container(pod: Mapping[str, Any]) -> str:
    """The container that holds the GPU: the first requesting nvidia.com/gpu, else the first."""
    containers = pod.get("spec", {}).get("containers") or []
    for container in containers:
        resources = container.get("resources") or {}
        for section in ("limits", "requests"):
            if str((resources.get(section) or {}).get("nvidia.com/gpu", "0")) not in ("0", ""):
                return str(container["name"])
    return str(containers[0]["name"]) if containers else ""


def is_ready(pod: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions") or []
    )


def not_running(pod: Mapping[str, Any]) -> str:
    """Why nvidia-smi cannot run in the pod's GPU container now, "" when it can."""
    container = gpu_container(pod)
    if pod["metadata"].get("deletionTimestamp"):
        return "terminating: nvidia-smi not read"
    status = next(
        (
            s
            for s in pod.get("status", {}).get("containerStatuses") or []
            if s.get("name") == container
        ),
        None,
    )
    state = (status or {}).get("state") or {}
    if "running" in state:
        return ""
    kind = next(iter(state), "")
    reason = (state.get(kind) or {}).get("reason", "")
    shown = f"{kind}:{reason}" if reason else kind or pod.get("status", {}).get("phase", "?")
    return f"container {container} is not running ({shown}): nvidia-smi not read"


def node_fingerprint(node: Mapping[str, Any] | None) -> str:
    """What a reading depends on besides the node's uid: its labels and its boot."""
    if node is None:
        return ""
    labels = (node.get("metadata") or {}).get("labels") or {}
    boot = ((node.get("status") or {}).get("nodeInfo") or {}).get("bootID", "")
    return json.dumps([sorted(labels.items()), boot])


@dataclass(frozen=True)
class NodeRead:
    """One node's nvidia-smi answer (or why there is none), and what it was read against."""

    node_uid: str
    fingerprint: str
    pod: str  # the pod nvidia-smi ran in
    pod_uid: str
    text: str | None
    error: str
    at: float  # the cache's clock


@dataclass(frozen=True)
class SmiReads:
    """One check's nvidia-smi readings: text per pod (its own or its node's) and notes."""

    by_pod: dict[str, str]
    notes: dict[str, str]
    execs: int  # execs this check ran
    pending_nodes: int  # nodes with running pods left for a later check


class NodeSmiCache:
    """The per-node readings of one cluster connection. Thread-safe: the checks and the plans
    read from worker threads."""

    def __init__(
        self,
        *,
        ttl_s: float = TTL_S,
        failed_ttl_s: float = FAILED_TTL_S,
        max_new_nodes: int = MAX_NEW_NODES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.failed_ttl_s = failed_ttl_s
        self.max_new_nodes = max_new_nodes
        self._clock = clock
        self._lock = threading.Lock()
        self._reads: dict[str, NodeRead] = {}

    def forget(self) -> None:
        """Drop every reading: the next checks exec again (the operator's explicit refresh)."""
        with self._lock:
            self._reads.clear()

    def _state(self, read: NodeRead | None, uid: str, fingerprint: str, pods: set[str]) -> str:
        """ "fresh"; "stale" (only old: still shown until re-read); "changed" (never shown)."""
        if read is None or (read.node_uid, read.fingerprint) != (uid, fingerprint):
            return "changed"
        if read.pod_uid not in pods:
            return "changed"
        ttl = self.ttl_s if read.text is not None else self.failed_ttl_s
        return "fresh" if self._clock() - read.at < ttl else "stale"

    def read(
        self, cluster: Cluster, pods: Sequence[Mapping[str, Any]], nodes: Sequence[Obj]
    ) -> SmiReads:
        """nvidia-smi per pod, from at most one exec per node; raises nothing (an exec that
        fails becomes the note of its node's pods)."""
        notes: dict[str, str] = {}
        on_node: dict[str, list[Mapping[str, Any]]] = {}
        for pod in pods:
            why = not_running(pod)
            if why:
                notes[pod["metadata"]["name"]] = why
            else:
                on_node.setdefault(str(pod["spec"].get("nodeName") or ""), []).append(pod)
        by_name = {str(n["metadata"]["name"]): n for n in nodes}
        by_pod: dict[str, str] = {}
        on_node_reads: dict[str, NodeRead] = {}  # read this check on a node not listed
        execs = 0
        with self._lock:
            for gone in set(self._reads) - set(by_name):
                del self._reads[gone]
            states: dict[str, tuple[str, str, str]] = {}  # node -> (state, uid, fingerprint)
            for node_name, candidates in on_node.items():
                node = by_name.get(node_name)
                uid = str(((node or {}).get("metadata") or {}).get("uid", ""))
                fingerprint = node_fingerprint(node)
                uids = {str(p["metadata"].get("uid", "")) for p in candidates}
                state = self._state(self._reads.get(node_name), uid, fingerprint, uids)
                states[node_name] = (state, uid, fingerprint)
            # New and changed nodes first; a reading that is only old is shown until its turn.
            due = sorted(n for n, (state, _u, _f) in states.items() if state == "changed")
            due += sorted(
                (n for n, (state, _u, _f) in states.items() if state == "stale"),
                key=lambda n: self._reads[n].at,
            )
            batch = due[: self.max_new_nodes]
            read = self._exec_all(cluster, batch, on_node, states)
            for node_name, fresh in zip(batch, read, strict=True):
                execs += 1
                if node_name in by_name:
                    self._reads[node_name] = fresh
                else:  # no Node object to key it by: shown this check only
                    on_node_reads[node_name] = fresh
            pending = sorted(n for n in due[self.max_new_nodes :] if states[n][0] == "changed")
            for node_name in sorted(on_node):
                shown = on_node_reads.get(node_name) or self._reads.get(node_name)
                if node_name in pending or shown is None:
                    continue
                for pod in on_node[node_name]:
                    name = str(pod["metadata"]["name"])
                    via = "" if name == shown.pod else f" in pod {shown.pod} on the same node"
                    if shown.text is not None:
                        by_pod[name] = shown.text
                        if via:
                            notes[name] = f"nvidia-smi: node {node_name}'s reading,{via}"
                    else:
                        notes[name] = f"nvidia-smi could not run{via}: {shown.error}"
        waiting = sum(len(on_node[n]) for n in pending)
        for node_name in pending:
            for pod in on_node[node_name]:
                notes[str(pod["metadata"]["name"])] = (
                    f"{NOT_READ_YET}: {len(pending)} node(s), {waiting} pod(s) wait for a later "
                    f"check (at most {self.max_new_nodes} nodes are read per check)"
                )
        return SmiReads(by_pod, notes, execs, len(pending))

    def _exec_all(
        self,
        cluster: Cluster,
        batch: Sequence[str],
        on_node: Mapping[str, Sequence[Mapping[str, Any]]],
        states: Mapping[str, tuple[str, str, str]],
    ) -> list[NodeRead]:
        """One exec per node of `batch`, PARALLEL_EXECS at a time, in the batch's order."""

        def one(node_name: str) -> NodeRead:
            _state, uid, fingerprint = states[node_name]
            return self._exec(cluster, on_node[node_name], uid, fingerprint)

        if len(batch) <= 1:
            return [one(n) for n in batch]
        with ThreadPoolExecutor(min(PARALLEL_EXECS, len(batch)), "nvidia-smi") as pool:
            return list(pool.map(one, batch))

    def _exec(
        self, cluster: Cluster, candidates: Sequence[Mapping[str, Any]], uid: str, fp: str
    ) -> NodeRead:
        # A ready pod first: its container is past start-up, the likeliest to answer.
        pod = sorted(candidates, key=lambda p: (not is_ready(p), str(p["metadata"]["name"])))[0]
        meta = pod["metadata"]
        text: str | None = None
        error = ""
        try:
            text = cluster.exec(
                meta["namespace"], meta["name"], gpu_container(pod), list(NVIDIA_SMI_ARGV)
            )
        except SkewmitError as exc:
            error = str(exc)
        return NodeRead(
            uid, fp, str(meta["name"]), str(meta.get("uid", "")), text, error, self._clock()
        )


# One cache per cluster connection, dropped with it: readings never cross clusters (two
# simulators of one scenario even share uids).
_CACHES: weakref.WeakKeyDictionary[Any, NodeSmiCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def cache_for(cluster: Cluster) -> NodeSmiCache:
    """The cluster connection's reading cache (a fresh one per call for an object that cannot
    be weakly referenced). A CachedCluster shares its connection's: the demo reads nvidia-smi
    ahead on the connection while the app opens, before the app wraps it in the watch-fed
    cache (tui.demo). Raises nothing."""
    from services.cached_cluster import CachedCluster  # here: it loads the informer

    if isinstance(cluster, CachedCluster):
        cluster = cluster.cluster
    with _CACHES_LOCK:
        try:
            cache = _CACHES.get(cluster)
            if cache is None:
                cache = _CACHES[cluster] = NodeSmiCache()
        except TypeError:
            return NodeSmiCache()
        return cache


def forget_readings(cluster: Cluster) -> None:
    """Drop the connection's remembered nvidia-smi readings (an explicit re-check). Raises
    nothing."""
    cache_for(cluster).forget()
