"""Who controls what: an index from a controller's uid to the objects it controls.

The ReplicaSet controller needs "the pods of this ReplicaSet" and the Deployment controller
"the ReplicaSets of this Deployment" on every sync; scanning 5,000 pods for each would make a
tick cost grow with the cluster, so the index follows the store's change feed instead.
"""

from __future__ import annotations

from typing import Any

from services.simulator.store import Store

Obj = dict[str, Any]
Key = tuple[str, str]


def controller_ref(obj: Obj) -> Obj | None:
    """The ownerReference with `controller: true`, as metav1.GetControllerOf finds it."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def controller_uid(obj: Obj) -> str:
    ref = controller_ref(obj)
    return str(ref.get("uid", "")) if ref else ""


def object_key(obj: Obj) -> Key:
    meta = obj.get("metadata", {})
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


class OwnerIndex:
    """Objects of one resource by controller uid, and the orphans of each namespace."""

    def __init__(self, store: Store, plural: str) -> None:
        self._store = store
        self._plural = plural
        self._by_owner: dict[str, set[Key]] = {}
        self._owner_of: dict[Key, str] = {}
        self._orphans: dict[str, set[Key]] = {}
        for obj in store.items(plural):
            self._put(object_key(obj), controller_uid(obj))
        store.add_listener(self._on_change)

    def _put(self, key: Key, owner: str) -> None:
        self._drop(key)
        self._owner_of[key] = owner
        if owner:
            self._by_owner.setdefault(owner, set()).add(key)
        else:
            self._orphans.setdefault(key[0], set()).add(key)

    def _drop(self, key: Key) -> None:
        owner = self._owner_of.pop(key, None)
        if owner is None:
            return
        bucket = self._by_owner.get(owner) if owner else self._orphans.get(key[0])
        if bucket is not None:
            bucket.discard(key)
            if not bucket:
                if owner:
                    del self._by_owner[owner]
                else:
                    del self._orphans[key[0]]

    def _on_change(self, plural: str, event: str, obj: Obj, old: Obj | None) -> None:
        if plural != self._plural:
            return
        key = object_key(obj)
        if event == "DELETED":
            self._drop(key)
            return
        owner = controller_uid(obj)
        if self._owner_of.get(key) != owner:
            self._put(key, owner)

    def owned(self, owner_uid: str) -> list[Obj]:
        """The stored objects (not copies) controlled by `owner_uid`, sorted by key."""
        out = []
        for ns, name in sorted(self._by_owner.get(owner_uid, ())):
            obj = self._store.peek(self._plural, ns, name)
            if obj is not None and controller_uid(obj) == owner_uid:
                out.append(obj)
        return out

    def count(self, owner_uid: str) -> int:
        return len(self._by_owner.get(owner_uid, ()))

    def orphans(self, namespace: str) -> list[Obj]:
        """Stored objects in `namespace` that no controller owns, sorted by name."""
        out = []
        for ns, name in sorted(self._orphans.get(namespace, ())):
            obj = self._store.peek(self._plural, ns, name)
            if obj is not None:
                out.append(obj)
        return out
