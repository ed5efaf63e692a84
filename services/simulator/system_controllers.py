"""The control loops behind the system objects: node heartbeats and Leases, DaemonSet and
PodDisruptionBudget status, each namespace's `default` ServiceAccount and `kube-root-ca.crt`,
and the endpoints controllers. One `tick()` runs them; each works only on what changed.

Heartbeats follow the kubelet with node leases: the Lease is renewed every 10 s
(leaseDurationSeconds 40 x 0.25), the Node status only every 5 minutes when nothing changed
(nodeStatusReportFrequency). A node whose Ready condition is not True (its kubelet stopped
posting, as the drill's node-notready says) renews nothing. Node heartbeats are written in
one batch per simulated minute, so listeners that rebuild on node changes run once a minute.
"""

from __future__ import annotations

import heapq
import random
import zlib
from typing import Any

from services.simulator.clock import SimClock
from services.simulator.endpoints import EndpointsController
from services.simulator.node_objects import LEASE_NAMESPACE, micro_time, rfc3339_at
from services.simulator.selector_index import SelectorIndex
from services.simulator.selectors import selector_from_spec
from services.simulator.store import Store, template_hash
from services.simulator.system_objects import daemon_pod, own_rng

Obj = dict[str, Any]
Key = tuple[str, str]
LEASE_RENEW_S = 10.0
NODE_REPORT_S = 300.0
NODE_BATCH_S = 60.0
ROOT_CA = "kube-root-ca.crt"
_FAKE_CA = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIDBTCCAe2gAwIBAgIIZ2skZXdtaXQwDQYJKoZIhvcNAQELBQAwFTETMBEGA1UE\n"
    "AxMKa3ViZXJuZXRlczAeFw0yNjAxMDEwMDAwMDBaFw0zNjAxMDEwMDAwMDBaMBUx\n"
    "-----END CERTIFICATE-----\n"
)


def _ready_status(node: Obj) -> str:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status", "Unknown"))
    return "Unknown"


def _selects(node_selector: dict[str, str], node: Obj) -> bool:
    labels = node["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in node_selector.items())


def _pod_ready(pod: Obj) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


class SystemControllers:
    """Leases, node heartbeats, DaemonSet/PDB status, namespace defaults and endpoints."""

    def __init__(self, store: Store, clock: SimClock, seed: int) -> None:
        self.store = store
        self.clock = clock
        self.rng = random.Random(f"system-controllers:{seed}")
        self.endpoints = EndpointsController(store, clock)
        self._leases: list[tuple[float, str]] = []  # (next renewal, node)
        self._next_batch = 0.0
        self._namespaces: set[str] = {n["metadata"]["name"] for n in store.items("namespaces")}
        self._ds_dirty: set[Key] = set()
        self._pdb_dirty: set[Key] = set()
        self._budgets = SelectorIndex(store)
        # Off while a scenario's days of history are replayed: nobody reads the heartbeats,
        # endpoints or budgets of the past, and `go_live()` computes them once at the end.
        self.live = False
        store.add_listener(self._on_change)

    def go_live(self) -> None:
        """End of set-up: index every Service and budget and bring all status up to date."""
        self.live = True
        self.endpoints.resync()
        for ds in self.store.items("daemonsets"):
            self._ds_dirty.add((ds["metadata"]["namespace"], ds["metadata"]["name"]))
        self._budgets.clear()
        for pdb in self.store.items("poddisruptionbudgets"):
            key = (pdb["metadata"]["namespace"], pdb["metadata"]["name"])
            self._budgets.set(key, selector_from_spec((pdb.get("spec") or {}).get("selector")))
            self._pdb_dirty.add(key)
        self.tick()

    def _on_change(self, plural: str, event: str, obj: Obj, old: Obj | None) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace", "")
        if plural == "namespaces" and event == "ADDED":
            self._namespaces.add(meta["name"])
        elif plural == "leases" and event == "ADDED" and namespace == LEASE_NAMESPACE:
            # Kubelets start at different moments: spread the renewals over the interval.
            offset = zlib.crc32(meta["name"].encode()) % int(LEASE_RENEW_S)
            heapq.heappush(self._leases, (self.clock.time() + offset + 1, meta["name"]))
        elif not self.live:
            return
        elif plural == "pods":
            self._pdb_dirty.update(self._budgets.pod_changed(event, obj))
            for ref in meta.get("ownerReferences") or []:
                if ref.get("kind") == "DaemonSet":
                    self._ds_dirty.add((namespace, str(ref.get("name", ""))))
        elif plural in ("nodes", "daemonsets"):
            for ds in self.store.items("daemonsets"):
                self._ds_dirty.add((ds["metadata"]["namespace"], ds["metadata"]["name"]))
        elif plural == "poddisruptionbudgets":
            key = (namespace, meta["name"])
            if event == "DELETED":
                self._budgets.drop(key)
            elif old is None or obj.get("spec") != old.get("spec"):
                self._budgets.set(key, selector_from_spec((obj.get("spec") or {}).get("selector")))
                self._pdb_dirty.add(key)

    def pending(self) -> bool:
        return bool(self._namespaces or self._ds_dirty or self._pdb_dirty) or (
            self.endpoints.pending()
        )

    def tick(self) -> None:
        with own_rng(self.store, self.rng):
            self._namespace_defaults()
            if not self.live:
                return
            self.endpoints.tick()
            self._daemonset_status()
            self._pdb_status()
            self._heartbeats()

    # -- namespaces ----------------------------------------------------------

    def _namespace_defaults(self) -> None:
        """The service-account and root-CA publisher controllers: what every namespace holds."""
        registry = self.store.registry
        for ns in sorted(self._namespaces):
            if self.store.peek("namespaces", "", ns) is None:
                continue
            if self.store.peek("serviceaccounts", ns, "default") is None:
                self.store.create(
                    registry.by_plural("serviceaccounts"),
                    {"metadata": {"name": "default", "namespace": ns}},
                )
            if self.store.peek("configmaps", ns, ROOT_CA) is None:
                self.store.create(
                    registry.by_plural("configmaps"),
                    {
                        "metadata": {
                            "name": ROOT_CA,
                            "namespace": ns,
                            "annotations": {
                                "kubernetes.io/description": "Contains a CA bundle that can be "
                                "used to verify the kube-apiserver when using internal endpoints "
                                "such as the internal service IP or kubernetes.default.svc. No "
                                "other usage is guaranteed across distributions of Kubernetes "
                                "clusters."
                            },
                        },
                        "data": {"ca.crt": _FAKE_CA},
                    },
                )
        self._namespaces.clear()

    # -- heartbeats ----------------------------------------------------------

    def _heartbeats(self) -> None:
        now = self.clock.time()
        while self._leases and self._leases[0][0] <= now:
            due, name = heapq.heappop(self._leases)
            node = self.store.peek("nodes", "", name)
            if node is None:
                continue
            # Catch up to the last renewal before now (a clock jump renews once).
            due += (now - due) // LEASE_RENEW_S * LEASE_RENEW_S
            heapq.heappush(self._leases, (due + LEASE_RENEW_S, name))
            if _ready_status(node) != "True":
                continue
            stamp = micro_time(due)

            def renew(lease: Obj, stamp: str = stamp) -> None:
                lease["spec"]["renewTime"] = stamp

            self.store.mutate("leases", LEASE_NAMESPACE, name, renew)
        if now < self._next_batch:
            return
        self._next_batch = (now // NODE_BATCH_S + 1) * NODE_BATCH_S
        for node in list(self.store.items("nodes")):
            if _ready_status(node) != "True":
                continue
            conditions = (node.get("status") or {}).get("conditions") or []
            last = max((c.get("lastHeartbeatTime", "") for c in conditions), default="")
            if last and last > rfc3339_at(now - NODE_REPORT_S):
                continue
            # Each kubelet reports on its own phase (once per interval), so batches stay small.
            name = node["metadata"]["name"]
            phase = zlib.crc32(name.encode()) % NODE_REPORT_S
            stamp = rfc3339_at(now - (now - phase) % NODE_REPORT_S)

            def beat(obj: Obj, stamp: str = stamp) -> None:
                for cond in obj["status"].get("conditions") or []:
                    if cond.get("reason", "").startswith(("Kubelet", "RouteCreated")):
                        cond["lastHeartbeatTime"] = stamp

            self.store.mutate("nodes", "", name, beat)

    # -- DaemonSets ----------------------------------------------------------

    def _daemonset_status(self) -> None:
        if not self._ds_dirty:
            return
        dirty, self._ds_dirty = sorted(self._ds_dirty), set()
        nodes = self.store.items("nodes")
        for namespace, name in dirty:
            ds = self.store.peek("daemonsets", namespace, name)
            if ds is None:
                continue
            wanted = (ds["spec"]["template"].get("spec") or {}).get("nodeSelector") or {}
            desired = sum(1 for n in nodes if _selects(wanted, n))
            uid = ds["metadata"].get("uid")
            pods = [
                p
                for p in self.store.items("pods", namespace)
                if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])
                and p["spec"].get("nodeName")
            ]
            self._fill_nodes(ds, pods, [n for n in nodes if _selects(wanted, n)])
            ready = sum(1 for p in pods if _pod_ready(p))
            status = {
                "currentNumberScheduled": len(pods),
                "desiredNumberScheduled": desired,
                "numberAvailable": ready,
                "numberMisscheduled": 0,
                "numberReady": ready,
                "observedGeneration": ds["metadata"].get("generation", 1),
                "updatedNumberScheduled": len(pods),
            }
            if desired - ready:
                status["numberUnavailable"] = desired - ready

            def write(obj: Obj, status: Obj = status) -> None:
                obj["status"] = status

            self.store.mutate("daemonsets", namespace, name, write)

    def _fill_nodes(self, ds: Obj, pods: list[Obj], nodes: list[Obj]) -> None:
        """The DaemonSet controller's one job here: a node that should run the daemon and has
        no pod of it (one was deleted) gets a new one, which its kubelet then starts."""
        placed = {p["spec"].get("nodeName") for p in pods}
        revision = template_hash(ds["spec"]["template"])
        for node in nodes:
            if node["metadata"]["name"] not in placed:
                pod = daemon_pod(ds, node, revision, self.rng, self.clock.time(), running=False)
                self.store.create(self.store.registry.by_plural("pods"), pod)

    # -- PodDisruptionBudgets ------------------------------------------------

    def _expected(self, namespace: str, pods: list[Obj]) -> int:
        """The scale of the pods' controllers (Deployment replicas), as the disruption
        controller reads it; pods without one count themselves."""
        total, seen = 0, set()
        for pod in pods:
            ref = next(
                (r for r in pod["metadata"].get("ownerReferences") or [] if r.get("controller")),
                None,
            )
            owner: Obj | None = None
            if ref is not None and ref.get("kind") == "ReplicaSet":
                rs = self.store.peek("replicasets", namespace, str(ref.get("name", ""))) or {}
                up = next(
                    (r for r in rs.get("metadata", {}).get("ownerReferences") or []),
                    None,
                )
                owner = (
                    self.store.peek("deployments", namespace, str(up.get("name", ""))) if up else rs
                )
            if owner is None:
                total += 1
                continue
            uid = owner["metadata"].get("uid")
            if uid not in seen:
                seen.add(uid)
                total += int((owner.get("spec") or {}).get("replicas", 1))
        return total

    def _pdb_status(self) -> None:
        if not self._pdb_dirty:
            return
        dirty, self._pdb_dirty = sorted(self._pdb_dirty), set()
        for namespace, name in dirty:
            pdb = self.store.peek("poddisruptionbudgets", namespace, name)
            if pdb is not None:
                self._sync_pdb(namespace, pdb)

    def _sync_pdb(self, namespace: str, pdb: Obj) -> None:
        spec = pdb.get("spec") or {}
        pods = [
            p
            for p in self._budgets.pods((namespace, pdb["metadata"]["name"]))
            if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        healthy = sum(1 for p in pods if _pod_ready(p))
        expected = self._expected(namespace, pods)

        def amount(value: Any) -> int:
            if isinstance(value, str) and value.endswith("%"):
                return -(-expected * int(value[:-1]) // 100)
            return int(value)

        if spec.get("maxUnavailable") is not None:
            desired = max(0, expected - amount(spec["maxUnavailable"]))
        else:
            desired = amount(spec.get("minAvailable", 1))
            if not (isinstance(spec.get("minAvailable"), str)):
                expected = len(pods)
        allowed = max(0, healthy - desired)
        old = pdb.get("status") or {}
        condition = {
            "type": "DisruptionAllowed",
            "status": "True" if allowed else "False",
            "reason": "SufficientPods" if allowed else "InsufficientPods",
            "message": "",
            "observedGeneration": pdb["metadata"].get("generation", 1),
            "lastTransitionTime": rfc3339_at(self.clock.time()),
        }
        for cond in old.get("conditions") or []:
            if (
                cond.get("type") == "DisruptionAllowed"
                and cond.get("status") == condition["status"]
            ):
                condition["lastTransitionTime"] = cond.get("lastTransitionTime")
        status = {
            "conditions": [condition],
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "disruptionsAllowed": allowed,
            "expectedPods": expected,
            "observedGeneration": pdb["metadata"].get("generation", 1),
        }

        def write(obj: Obj) -> None:
            obj["status"] = status

        self.store.mutate("poddisruptionbudgets", namespace, pdb["metadata"]["name"], write)
