"""The endpoints and EndpointSlice controllers, and the Service ClusterIP allocator.

A Service with a selector gets an Endpoints object of the same name and EndpointSlices
labelled `kubernetes.io/service-name`, holding the selected pods that have an IP: ready ones
as addresses, the others as notReadyAddresses (slices carry ready/serving/terminating
conditions instead). Target ports are resolved against each pod's named container ports.
Endpoints hold at most 1000 addresses (then the over-capacity annotation); a slice 100.

Each Service keeps an index of the pods its selector picks, updated from the store's change
feed, so a pod's change recomputes only the Services that select it.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

from services.simulator.clock import SimClock, rfc3339
from services.simulator.resources import ResourceType
from services.simulator.selector_index import SelectorIndex
from services.simulator.selectors import selector_from_spec
from services.simulator.store import Store, fast_copy, random_suffix

Obj = dict[str, Any]
Key = tuple[str, str]
SERVICE_CIDR = ipaddress.ip_network("10.100.0.0/16")
MAX_ENDPOINTS = 1000
MAX_PER_SLICE = 100
MANAGED_BY = "endpointslice-controller.k8s.io"
SERVICE_NAME = "kubernetes.io/service-name"


def allocate_cluster_ip(store: Store, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
    """A Store defaulter: give a new Service a stable ClusterIP from the service CIDR, and keep
    the allocated one when an update leaves it out (as the real registry does)."""
    if rt.plural != "services" or rt.group:
        return
    spec = obj.get("spec")
    if not isinstance(spec, dict) or spec.get("type") == "ExternalName":
        return
    old_spec = (old or {}).get("spec") or {}
    if not spec.get("clusterIP") and old_spec.get("clusterIP"):
        for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if field in old_spec:
                spec[field] = fast_copy(old_spec[field])
    if not spec.get("clusterIP"):
        spec["clusterIP"] = _free_ip(store, obj["metadata"].get("namespace", ""), obj)
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    if spec["clusterIP"] != "None":
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")


def _free_ip(store: Store, namespace: str, obj: Obj) -> str:
    used = {str((s.get("spec") or {}).get("clusterIP", "")) for s in store.items("services")}
    name = str(obj["metadata"].get("name", ""))
    size = SERVICE_CIDR.num_addresses
    # Stable across runs: the namespace/name hash picks the first candidate in the upper
    # band, where the real allocator puts dynamic addresses.
    start = int(hashlib.sha1(f"{namespace}/{name}".encode()).hexdigest(), 16) % (size // 2)
    for step in range(size // 2):
        candidate = str(SERVICE_CIDR.network_address + size // 2 + (start + step) % (size // 2))
        if candidate not in used:
            return candidate
    return "None"


def _target_port(port: Obj, pod: Obj) -> int | None:
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for cport in container.get("ports") or []:
            if cport.get("name") == target:
                return int(cport.get("containerPort", 0))
    return None


def _ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


class EndpointsController:
    """Keeps Endpoints and EndpointSlices in step with Services and their pods."""

    def __init__(self, store: Store, clock: SimClock) -> None:
        self.store = store
        self.clock = clock
        self._index = SelectorIndex(store)
        self._dirty: set[Key] = set()
        self.live = False  # the change feed is ignored until resync()
        store.add_listener(self._on_change)

    def resync(self) -> None:
        """Index every Service's pods afresh and mark them all for a sync; from now on the
        change feed keeps the index."""
        self.live = True
        self._index.clear()
        for svc in self.store.items("services"):
            self._observe_service(svc, deleted=False)

    def pending(self) -> bool:
        return bool(self._dirty)

    # -- change feed ---------------------------------------------------------

    def _on_change(self, plural: str, event: str, obj: Obj, old: Obj | None) -> None:
        if not self.live:
            return
        if plural == "services":
            self._observe_service(obj, deleted=event == "DELETED")
        elif plural == "pods":
            self._dirty.update(self._index.pod_changed(event, obj))

    def _observe_service(self, svc: Obj, *, deleted: bool) -> None:
        meta = svc["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        raw = (svc.get("spec") or {}).get("selector")
        if deleted or not raw:
            if self._index.drop(key):
                self._dirty.add(key)
            return
        self._index.set(key, selector_from_spec({"matchLabels": raw}))
        self._dirty.add(key)

    # -- reconcile -----------------------------------------------------------

    def tick(self) -> None:
        dirty, self._dirty = sorted(self._dirty), set()
        for key in dirty:
            self._sync(key)

    def _sync(self, key: Key) -> None:
        namespace, name = key
        svc = self.store.peek("services", namespace, name)
        endpoints_rt = self.store.registry.by_plural("endpoints")
        if svc is None:
            if self.store.peek("endpoints", namespace, name) is not None:
                self.store.delete(endpoints_rt, namespace, name)
            return
        if key not in self._index:
            return  # no selector: whoever made its Endpoints manages them, as on a real cluster
        pods = [
            pod
            for pod in self._index.pods(key)
            if (pod.get("status") or {}).get("podIP")
            and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        self._write_endpoints(svc, pods)
        self._write_slices(svc, pods)

    def _write_endpoints(self, svc: Obj, pods: list[Obj]) -> None:
        meta = svc["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        ports = (svc.get("spec") or {}).get("ports") or []
        ready: list[Obj] = []
        not_ready: list[Obj] = []
        resolved: list[Obj] = []
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            address = {
                "ip": pod["status"]["podIP"],
                "nodeName": pod["spec"].get("nodeName", ""),
                "targetRef": {
                    "kind": "Pod",
                    "namespace": namespace,
                    "name": pod["metadata"]["name"],
                    "uid": pod["metadata"].get("uid", ""),
                },
            }
            (ready if _ready(pod) else not_ready).append(address)
        for port in ports:
            number = _target_port(port, pods[0]) if pods else None
            if number is not None:
                entry = {"port": number, "protocol": port.get("protocol", "TCP")}
                if port.get("name"):
                    entry["name"] = port["name"]
                resolved.append(entry)
        annotations: dict[str, str] = {}
        if len(ready) + len(not_ready) > MAX_ENDPOINTS:
            annotations["endpoints.kubernetes.io/over-capacity"] = "truncated"
            ready = ready[:MAX_ENDPOINTS]
            not_ready = not_ready[: max(0, MAX_ENDPOINTS - len(ready))]
        subset: Obj = {}
        if ready:
            subset["addresses"] = sorted(ready, key=lambda a: a["ip"])
        if not_ready:
            subset["notReadyAddresses"] = sorted(not_ready, key=lambda a: a["ip"])
        if subset and resolved:
            subset["ports"] = resolved
        labels = dict(meta.get("labels") or {})
        labels["endpoints.kubernetes.io/managed-by"] = "endpoint-controller"
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
        }
        if annotations:
            body["metadata"]["annotations"] = annotations
        if subset:
            body["subsets"] = [subset]
        current = self.store.peek("endpoints", namespace, name)
        if current is None:
            self.store.create(self.store.registry.by_plural("endpoints"), body)
            return
        if (
            current.get("subsets") == body.get("subsets")
            and current["metadata"].get("labels") == labels
            and (current["metadata"].get("annotations") or {}) == annotations
        ):
            return
        stamp = rfc3339(self.clock.now())

        def change(obj: Obj) -> None:
            obj["metadata"]["labels"] = labels
            obj["metadata"]["annotations"] = {
                **annotations,
                "endpoints.kubernetes.io/last-change-trigger-time": stamp,
            }
            if subset:
                obj["subsets"] = [subset]
            else:
                obj.pop("subsets", None)

        self.store.mutate("endpoints", namespace, name, change)

    def _write_slices(self, svc: Obj, pods: list[Obj]) -> None:
        meta = svc["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        ports = []
        for port in (svc.get("spec") or {}).get("ports") or []:
            number = _target_port(port, pods[0]) if pods else None
            if number is None and pods:
                continue
            entry: Obj = {"name": port.get("name", ""), "protocol": port.get("protocol", "TCP")}
            entry["port"] = number
            ports.append(entry)
        endpoints = []
        for pod in pods:
            deleting = bool(pod["metadata"].get("deletionTimestamp"))
            ready = _ready(pod)
            node_name = pod["spec"].get("nodeName", "")
            node = self.store.peek("nodes", "", node_name) or {}
            zone = (node.get("metadata", {}).get("labels") or {}).get(
                "topology.kubernetes.io/zone", ""
            )
            endpoint: Obj = {
                "addresses": [pod["status"]["podIP"]],
                "conditions": {
                    "ready": ready and not deleting,
                    "serving": ready,
                    "terminating": deleting,
                },
                "nodeName": node_name,
                "targetRef": {
                    "kind": "Pod",
                    "namespace": namespace,
                    "name": pod["metadata"]["name"],
                    "uid": pod["metadata"].get("uid", ""),
                },
            }
            if zone:
                endpoint["zone"] = zone
            endpoints.append(endpoint)
        chunks = [endpoints[i : i + MAX_PER_SLICE] for i in range(0, len(endpoints), MAX_PER_SLICE)]
        chunks = chunks or [[]]
        existing = sorted(
            (
                s
                for s in self.store.items("endpointslices", namespace)
                if (s["metadata"].get("labels") or {}).get(SERVICE_NAME) == name
            ),
            key=lambda s: s["metadata"]["name"],
        )
        slices_rt = self.store.registry.by_plural("endpointslices")
        for i, chunk in enumerate(chunks):
            if i < len(existing):
                current = existing[i]

                def change(obj: Obj, chunk: list[Obj] = chunk) -> None:
                    obj["endpoints"] = chunk
                    obj["ports"] = ports

                if current.get("endpoints") != chunk or current.get("ports") != ports:
                    self.store.mutate(
                        "endpointslices", namespace, current["metadata"]["name"], change
                    )
                continue
            labels = {
                **(meta.get("labels") or {}),
                SERVICE_NAME: name,
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            }
            self.store.create(
                slices_rt,
                {
                    "metadata": {
                        "name": f"{name}-{random_suffix(self.store.rng)}",
                        "generateName": f"{name}-",
                        "namespace": namespace,
                        "labels": labels,
                        "ownerReferences": [
                            {
                                "apiVersion": "v1",
                                "kind": "Service",
                                "name": name,
                                "uid": meta.get("uid", ""),
                                "controller": True,
                                "blockOwnerDeletion": True,
                            }
                        ],
                    },
                    "addressType": "IPv4",
                    "endpoints": chunk,
                    "ports": ports,
                },
            )
        for extra in existing[len(chunks) :]:
            self.store.delete(slices_rt, namespace, extra["metadata"]["name"])
