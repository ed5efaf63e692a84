"""Argo CD's self-heal, as far as a runbook meets it: a Deployment tracked by an Application
with automated sync and selfHeal is put back to git's template shortly after a manual change."""

from __future__ import annotations

import copy
from typing import Any

from services.simulator.clock import SimClock
from services.simulator.store import Store

Obj = dict[str, Any]


def _template(deployment: Obj) -> Obj:
    template: Obj = copy.deepcopy(deployment["spec"]["template"])
    template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
    return template


class SelfHeal:
    """Reverts drift of one Deployment while its Application has selfHeal on."""

    def __init__(self, store: Store, clock: SimClock, settings: dict[str, Any]) -> None:
        self.store = store
        self.clock = clock
        self.app_ns = str(settings["application"]["namespace"])
        self.app_name = str(settings["application"]["name"])
        self.ns = str(settings["deployment"]["namespace"])
        self.name = str(settings["deployment"]["name"])
        self.after_s = float(settings.get("self_heal_after_s", 20))
        self.desired: Obj | None = None
        self.drift_since: float | None = None

    def start(self) -> None:
        """Take the Deployment's template as git's desired state."""
        deployment = self.store.peek("deployments", self.ns, self.name)
        if deployment is not None:
            self.desired = _template(deployment)

    def _self_heal_on(self) -> bool:
        app = self.store.peek("applications", self.app_ns, self.app_name)
        automated = (app or {}).get("spec", {}).get("syncPolicy", {}).get("automated")
        return isinstance(automated, dict) and bool(automated.get("selfHeal"))

    def _set_sync(self, status: str) -> None:
        def change(app: Obj) -> None:
            app.setdefault("status", {}).setdefault("sync", {})["status"] = status

        self.store.mutate("applications", self.app_ns, self.app_name, change)

    def tick(self) -> None:
        deployment = self.store.peek("deployments", self.ns, self.name)
        if deployment is None or self.desired is None:
            return
        if _template(deployment) == self.desired:
            if self.drift_since is not None:
                self._set_sync("Synced")
            self.drift_since = None
            return
        now = self.clock.time()
        if self.drift_since is None:
            self.drift_since = now
            self._set_sync("OutOfSync")
        if not self._self_heal_on() or now - self.drift_since < self.after_s:
            return
        desired = copy.deepcopy(self.desired)

        def heal(d: Obj) -> None:
            d["spec"]["template"] = desired

        self.store.mutate("deployments", self.ns, self.name, heal)
        self.drift_since = None
        self._set_sync("Synced")
