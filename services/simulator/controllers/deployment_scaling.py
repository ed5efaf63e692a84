"""Resizing a Deployment's ReplicaSets (sync.go scale, rolling.go, cleanupDeployment).

How far the new ReplicaSet may grow and the old ones shrink on each sync of a rolling update,
how a resize in the middle of a rollout is shared out proportionally, and which drained old
ReplicaSets revisionHistoryLimit lets go. Every resize updates the desired/max-replicas
annotations and records the controller's ScalingReplicaSet event.
"""

from __future__ import annotations

from typing import Any

from services.simulator.controllers import deployment_rules as rules
from services.simulator.controllers.events import NORMAL, EventRecorder
from services.simulator.errors import ApiError
from services.simulator.store import Store

Obj = dict[str, Any]
COMPONENT = "deployment-controller"


class Scaler:
    """The Deployment controller's writes to ReplicaSet sizes."""

    def __init__(self, store: Store, events: EventRecorder) -> None:
        self.store = store
        self.events = events
        self._rt_rs = store.registry.by_plural("replicasets")

    def scale_rs(self, rs: Obj, new_scale: int, d: Obj, operation: str) -> tuple[bool, Obj]:
        """scaleReplicaSet: set replicas and the desired/max annotations, record the event."""
        desired = rules.spec_replicas(d)
        max_replicas = desired + rules.max_surge(d)
        old_scale = rules.spec_replicas(rs)
        resize = old_scale != new_scale
        if not (resize or rules.replicas_annotations_need_update(rs, desired, max_replicas)):
            return False, rs

        def change(o: Obj) -> None:
            o["spec"]["replicas"] = new_scale
            rules.set_replicas_annotations(o, desired, max_replicas)

        meta = rs["metadata"]
        updated = self.store.mutate("replicasets", meta["namespace"], meta["name"], change)
        if updated is None:
            return False, rs
        if resize:
            self.events.record(
                d,
                NORMAL,
                "ScalingReplicaSet",
                f"Scaled {operation} replica set {meta['name']} from {old_scale} to {new_scale}",
                component=COMPONENT,
            )
        return resize, updated

    def scale_and_record(self, rs: Obj, new_scale: int, d: Obj) -> tuple[bool, Obj]:
        current = rules.spec_replicas(rs)
        if current == new_scale:
            return False, rs
        return self.scale_rs(rs, new_scale, d, "up" if current < new_scale else "down")

    def scale(self, d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> None:
        """scale: one active ReplicaSet takes all; otherwise proportional during a rollout."""
        desired = rules.spec_replicas(d)
        target = rules.find_active_or_latest(new_rs, old_rss)
        if target is not None:
            if rules.spec_replicas(target) != desired:
                self.scale_and_record(target, desired, d)
            return
        if rules.is_saturated(d, new_rs):
            for old in rules.active(old_rss):
                self.scale_and_record(old, 0, d)
            return
        if not rules.is_rolling(d):
            return
        all_rss = rules.active([*old_rss, *([new_rs] if new_rs is not None else [])])
        allowed = desired + rules.max_surge(d) if desired > 0 else 0
        to_add = allowed - rules.total_replicas(all_rss)
        operation = ""
        if to_add > 0:
            # Larger first; among equals the newer grows first.
            all_rss.sort(key=rules.by_creation, reverse=True)
            all_rss.sort(key=rules.spec_replicas, reverse=True)
            operation = "up"
        elif to_add < 0:
            all_rss.sort(key=rules.by_creation)
            all_rss.sort(key=rules.spec_replicas, reverse=True)
            operation = "down"
        sizes: list[int] = []
        added = 0
        for rs in all_rss:
            share = rules.rs_proportion(rs, d, to_add, added) if to_add else 0
            sizes.append(rules.spec_replicas(rs) + share)
            added += share
        for i, rs in enumerate(all_rss):
            if i == 0 and to_add:
                sizes[0] = max(sizes[0] + to_add - added, 0)
            self.scale_rs(rs, sizes[i], d, operation)

    def reconcile_new_rs(self, all_rss: list[Obj], new_rs: Obj, d: Obj) -> bool:
        desired = rules.spec_replicas(d)
        current = rules.spec_replicas(new_rs)
        if current == desired:
            return False
        if current > desired:
            return self.scale_and_record(new_rs, desired, d)[0]
        return self.scale_and_record(new_rs, rules.new_rs_new_replicas(d, all_rss, new_rs), d)[0]

    def reconcile_old_rss(
        self, all_rss: list[Obj], old_rss: list[Obj], new_rs: Obj, d: Obj
    ) -> bool:
        if rules.total_replicas(old_rss) == 0:
            return False
        min_available = rules.spec_replicas(d) - rules.max_unavailable(d)
        new_unavailable = rules.spec_replicas(new_rs) - rules.status_int(
            new_rs, "availableReplicas"
        )
        max_scaled_down = rules.total_replicas(all_rss) - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        # Unhealthy old replicas go first, so they cannot block the rollout (kubernetes#16737).
        olds = sorted(old_rss, key=rules.by_creation)
        cleaned = 0
        for i, rs in enumerate(olds):
            if cleaned >= max_scaled_down:
                break
            size = rules.spec_replicas(rs)
            available = rules.status_int(rs, "availableReplicas")
            if size == 0 or size == available:
                continue
            down = min(max_scaled_down - cleaned, size - available)
            olds[i] = self.scale_and_record(rs, size - down, d)[1]
            cleaned += down
        return cleaned + self.scale_down_old_for_rolling([*olds, new_rs], olds, d) > 0

    def scale_down_old_for_rolling(self, all_rss: list[Obj], old_rss: list[Obj], d: Obj) -> int:
        min_available = rules.spec_replicas(d) - rules.max_unavailable(d)
        available = rules.total_status(all_rss, "availableReplicas")
        if available <= min_available:
            return 0
        budget = available - min_available
        scaled = 0
        for rs in sorted(old_rss, key=rules.by_creation):
            if scaled >= budget:
                break
            size = rules.spec_replicas(rs)
            if size == 0:
                continue
            down = min(size, budget - scaled)
            self.scale_and_record(rs, size - down, d)
            scaled += down
        return scaled

    def cleanup(self, d: Obj, old_rss: list[Obj]) -> None:
        """cleanupDeployment: delete the oldest drained ReplicaSets beyond revisionHistoryLimit."""
        limit = d["spec"].get("revisionHistoryLimit")
        if not isinstance(limit, int) or limit == 2**31 - 1:
            return
        alive = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
        surplus = len(alive) - limit
        if surplus <= 0:
            return
        for rs in sorted(alive, key=rules.by_revision)[:surplus]:
            meta = rs["metadata"]
            if (
                rules.status_int(rs, "replicas") != 0
                or rules.spec_replicas(rs) != 0
                or int(meta.get("generation", 0)) > rules.status_int(rs, "observedGeneration")
            ):
                continue
            try:
                self.store.delete(self._rt_rs, meta["namespace"], meta["name"])
            except ApiError:
                continue
