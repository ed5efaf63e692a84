"""The managedFields a seeded world carries: who wrote each object on a real cluster.

A scenario's objects are created straight into the store, so without this they would carry no
managedFields and a first `kubectl apply --server-side` would meet only "before-first-apply".
On a real cluster the workload's manifests were applied by someone (kubectl's client-side
apply, an `Update` entry; or Argo CD applying server-side, an `Apply` entry that owns exactly
what its manifest sets), kube-controller-manager wrote what controllers own (ReplicaSets, the
pods they create, Endpoints, the revision annotation, every status but the pods'), and the
kubelet wrote its Node and its pods' status. Objects controllers create or change after set-up
keep what they were created with (the controllers do not record their own writes).
"""

from __future__ import annotations

from typing import Any

from services.simulator import managed_fields
from services.simulator.managed_fields import Entry, FieldSet

Obj = dict[str, Any]
CONTROLLER_MANAGER = "kube-controller-manager"
KUBELET = "kubelet"
CLIENT_SIDE_APPLY = "kubectl-client-side-apply"
ARGOCD = "argocd-controller"
# Kinds a controller creates (or the API server itself): nobody applied a manifest for them.
_CONTROLLER_MADE = frozenset(
    {"ReplicaSet", "Endpoints", "EndpointSlice", "ServiceAccount", "Event", "Lease"}
)
# Annotations the Deployment controller writes on the Deployment it rolls out.
_CONTROLLER_ANNOTATIONS = "f:deployment.kubernetes.io/"


def _api_version(obj: Obj) -> str:
    return str(obj.get("apiVersion", "v1"))


def _created(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("creationTimestamp", ""))


def _status_fields(kind: str, obj: Obj) -> FieldSet:
    if not obj.get("status"):
        return set()
    return managed_fields.compare(kind, {"status": {}}, {"status": obj["status"]}).changed


def _main_fields(kind: str, obj: Obj) -> FieldSet:
    zero = managed_fields.zero_value(kind)
    return managed_fields.compare(kind, zero, managed_fields.tracked(obj)).changed


def _controller_owned(path: tuple[str, ...]) -> bool:
    return (
        len(path) >= 3
        and path[:2] == ("f:metadata", "f:annotations")
        and path[2].startswith(_CONTROLLER_ANNOTATIONS)
    )


def record_applied(kind: str, obj: Obj, manifest: Obj, *, gitops: bool) -> None:
    """Mark `obj` (stored, changed in place) as written from `manifest` by the workload's
    owner: Argo CD applying server-side when `gitops`, else kubectl's client-side apply.
    `stamp` later gives the rest to the controllers."""
    if gitops:
        fields = managed_fields.leaves(kind, managed_fields.tracked(manifest))
        entry = Entry(ARGOCD, "Apply", _api_version(obj), fields, _created(obj))
    else:
        fields = {p for p in _main_fields(kind, obj) if not _controller_owned(p)}
        entry = Entry(CLIENT_SIDE_APPLY, "Update", _api_version(obj), fields, _created(obj))
    obj.setdefault("metadata", {})["managedFields"] = managed_fields.encode([entry])


def _owner(obj: Obj) -> str:
    kind = obj.get("kind", "")
    meta = obj.get("metadata", {})
    if kind == "Node" or (kind == "Lease" and meta.get("namespace") == "kube-node-lease"):
        return KUBELET
    if kind == "Pod" and not meta.get("ownerReferences"):
        return KUBELET  # a static (mirror) pod
    if kind in _CONTROLLER_MADE or meta.get("ownerReferences"):
        return CONTROLLER_MANAGER
    return CLIENT_SIDE_APPLY


def stamp(obj: Obj, now: str) -> None:
    """Give `obj` (stored, changed in place) the managedFields of the writers a real cluster
    would show, keeping an entry `record_applied` made."""
    kind = str(obj.get("kind", ""))
    meta = obj.setdefault("metadata", {})
    entries = managed_fields.decode(meta.get("managedFields"))
    main = _main_fields(kind, obj)
    version = _api_version(obj)
    if entries:
        controller = {p for p in main if _controller_owned(p)}
        if controller:
            entries.append(Entry(CONTROLLER_MANAGER, "Update", version, controller, now))
    elif main:
        entries.append(Entry(_owner(obj), "Update", version, main, _created(obj)))
    status = _status_fields(kind, obj)
    if status:
        writer = KUBELET if kind in ("Pod", "Node") else CONTROLLER_MANAGER
        entries.append(Entry(writer, "Update", version, status, now, "status"))
    encoded = managed_fields.encode(entries)
    if encoded:
        meta["managedFields"] = encoded


def stamp_all(objects: list[Obj], now: str) -> None:
    """`stamp` every object; pods of one owner in one shape share their entries (the 5,000
    pods of `large` are a few dozen shapes), each with its own IPs, saving set-up time."""
    shared: dict[tuple[str, ...], list[Obj]] = {}
    for obj in objects:
        meta = obj.get("metadata", {})
        key = _shape(obj)
        if key is not None and key in shared:
            meta["managedFields"] = _with_own_ips(shared[key], obj)
            continue
        stamp(obj, now)
        if key is not None and "managedFields" in meta:
            shared[key] = meta["managedFields"]


def _with_own_ips(entries: list[Obj], pod: Obj) -> list[Obj]:
    """A shape's entries with the kubelet's podIPs/hostIPs items keyed by `pod`'s own IPs
    (the rest of each entry is shared, not copied: stored objects are never changed in
    place)."""
    out: list[Obj] = []
    status = pod.get("status") or {}
    for entry in entries:
        owned = entry.get("fieldsV1", {}).get("f:status")
        if entry.get("subresource") != "status" or not isinstance(owned, dict):
            out.append(entry)
            continue
        owned = dict(owned)
        for field in ("podIPs", "hostIPs"):
            template = owned.get(f"f:{field}")
            if not isinstance(template, dict):
                continue
            item: Any = next((v for k, v in template.items() if k.startswith("k:")), {})
            rebuilt = {k: v for k, v in template.items() if not k.startswith("k:")}
            for ip in status.get(field) or []:
                rebuilt[managed_fields.key_element(ip, ("ip",))] = item
            owned[f"f:{field}"] = rebuilt
        out.append({**entry, "fieldsV1": {**entry["fieldsV1"], "f:status": owned}})
    return out


def _shape(obj: Obj) -> tuple[str, ...] | None:
    """What decides a controller-made pod's field sets, or None for other objects."""
    meta = obj.get("metadata", {})
    refs = meta.get("ownerReferences") or []
    if obj.get("kind") != "Pod" or not refs or meta.get("managedFields"):
        return None
    status = obj.get("status") or {}
    states = [
        ",".join(sorted(s.get("state") or {}) + sorted(s.get("lastState") or {}) + sorted(s))
        for s in status.get("containerStatuses") or []
    ]
    conditions = ",".join(
        str(c.get("type")) + str(sorted(c)) for c in status.get("conditions") or []
    )
    return (
        str(refs[0].get("uid")),
        str(sorted(meta)),
        str(sorted(meta.get("labels") or {})),
        str(sorted(meta.get("annotations") or {})),
        str(sorted(obj.get("spec") or {})),
        str(sorted(status)),
        conditions,
        *states,
    )
