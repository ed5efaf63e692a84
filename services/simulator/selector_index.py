"""Which pods each selector-bearing object (a Service, a PodDisruptionBudget) picks, kept up to
date from the store's change feed so a pod's change touches only the objects selecting it."""

from __future__ import annotations

from typing import Any

from services.simulator.selectors import LabelSelector
from services.simulator.store import Store

Obj = dict[str, Any]
Key = tuple[str, str]


class SelectorIndex:
    """Owner (namespace, name) -> its selector and the pods it currently selects."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._selectors: dict[Key, LabelSelector] = {}
        self._members: dict[Key, set[Key]] = {}

    def __contains__(self, owner: Key) -> bool:
        return owner in self._selectors

    def owners(self) -> list[Key]:
        return list(self._selectors)

    def set(self, owner: Key, selector: LabelSelector) -> bool:
        """Index `owner` with `selector`; True when that changed what it selects."""
        if self._selectors.get(owner) == selector:
            return False
        self._selectors[owner] = selector
        self._members[owner] = {
            (owner[0], p["metadata"]["name"])
            for p in self.store.items("pods", owner[0])
            if selector.matches(p["metadata"].get("labels"))
        }
        return True

    def drop(self, owner: Key) -> bool:
        """Forget `owner`; True when it was indexed."""
        self._members.pop(owner, None)
        return self._selectors.pop(owner, None) is not None

    def clear(self) -> None:
        self._selectors.clear()
        self._members.clear()

    def pod_changed(self, event: str, pod: Obj) -> list[Key]:
        """Update the index for one pod event; the owners whose selection it touched."""
        meta = pod["metadata"]
        namespace = meta.get("namespace", "")
        pod_key = (namespace, meta["name"])
        labels = meta.get("labels") or {}
        touched = []
        for owner, selector in self._selectors.items():
            if owner[0] != namespace:
                continue
            members = self._members[owner]
            if event != "DELETED" and selector.matches(labels):
                members.add(pod_key)
                touched.append(owner)
            elif pod_key in members:
                members.discard(pod_key)
                touched.append(owner)
        return touched

    def pods(self, owner: Key) -> list[Obj]:
        """The stored pods `owner` selects, by name (no copies: do not change them)."""
        out = []
        for pod_key in sorted(self._members.get(owner, ())):
            pod = self.store.peek("pods", *pod_key)
            if pod is not None:
                out.append(pod)
        return out
