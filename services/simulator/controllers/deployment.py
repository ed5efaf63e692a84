"""The Deployment controller (kube-controller-manager pkg/controller/deployment).

Follows deployment_controller.go's syncDeployment and its helpers in sync.go, rolling.go,
recreate.go and progress.go: ReplicaSets named `<deployment>-<pod-template-hash>`, revision
annotations (a rollback reuses the old ReplicaSet with a new highest revision and records
the old number in revision-history), rolling updates within maxSurge/maxUnavailable,
Recreate, pausing, proportional scaling, revisionHistoryLimit cleanup, and the status and
conditions `kubectl rollout status` reads, with the real controller's messages.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from services.simulator.clock import SimClock
from services.simulator.controllers import deployment_rules as rules
from services.simulator.controllers import deployment_status as st
from services.simulator.controllers.deployment_scaling import COMPONENT, Scaler
from services.simulator.controllers.events import NORMAL, WARNING, EventRecorder
from services.simulator.controllers.ownership import OwnerIndex, controller_ref, controller_uid
from services.simulator.controllers.replicaset import owner_reference
from services.simulator.controllers.workqueue import WorkQueue
from services.simulator.errors import ApiError
from services.simulator.selectors import LabelSelector, SelectorError, selector_from_spec
from services.simulator.store import Store, template_hash

Obj = dict[str, Any]
Key = tuple[str, str]


class DeploymentController:
    """Reconciles Deployments marked dirty by store changes or due on the simulated clock."""

    def __init__(
        self,
        store: Store,
        clock: SimClock,
        *,
        events: EventRecorder | None = None,
        replicasets: OwnerIndex | None = None,
        pods: OwnerIndex | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.events = events or EventRecorder(store, clock)
        self.replicasets = replicasets or OwnerIndex(store, "replicasets")
        self.pods = pods or OwnerIndex(store, "pods")
        self.queue: WorkQueue[Key] = WorkQueue()
        self.scaler = Scaler(store, self.events)
        self._rt_rs = store.registry.by_plural("replicasets")
        for d in store.items("deployments"):
            self.queue.add((d["metadata"]["namespace"], d["metadata"]["name"]))
        store.add_listener(self._on_change)

    # -- change feed ---------------------------------------------------------

    def _on_change(self, plural: str, event: str, obj: Obj, old: Obj | None) -> None:
        namespace = obj["metadata"].get("namespace", "")
        if plural == "deployments":
            key = (namespace, obj["metadata"]["name"])
            if event == "DELETED":
                self.queue.forget(key)
            else:
                self.queue.add(key)
        elif plural == "replicasets":
            refs = [controller_ref(obj), controller_ref(old) if old is not None else None]
            for ref in refs:
                if ref is not None and ref.get("kind") == "Deployment":
                    self.queue.add((namespace, str(ref.get("name", ""))))
            if refs[0] is None and event != "DELETED":
                for d in self.store.items("deployments", namespace):
                    self.queue.add((namespace, d["metadata"]["name"]))
        elif plural == "pods" and event == "DELETED":
            # Recreate waits for the old pods to be gone, not merely scaled away.
            ref = controller_ref(obj)
            if ref is None or ref.get("kind") != "ReplicaSet":
                return
            rs = self.store.peek("replicasets", namespace, str(ref.get("name", "")))
            owner = controller_ref(rs) if rs is not None else None
            if owner is not None and owner.get("kind") == "Deployment":
                self.queue.add((namespace, str(owner.get("name", ""))))

    # -- driving -------------------------------------------------------------

    def tick(self) -> None:
        """Reconcile every Deployment that changed or has a deadline due."""
        for namespace, name in sorted(self.queue.take(self.clock.time())):
            self.reconcile(namespace, name)

    def reconcile_all(self) -> None:
        for d in sorted(self.store.items("deployments"), key=lambda o: o["metadata"]["name"]):
            self.reconcile(d["metadata"]["namespace"], d["metadata"]["name"])

    def pending(self) -> bool:
        return self.queue.pending()

    def reconcile(self, namespace: str, name: str) -> None:
        """syncDeployment for one Deployment (a no-op when it does not exist)."""
        stored = self.store.peek("deployments", namespace, name)
        if stored is None:
            self.queue.forget((namespace, name))
            return
        d = copy.deepcopy(stored)
        d.setdefault("status", {})
        try:
            selector = selector_from_spec(d["spec"].get("selector"))
        except SelectorError:
            return
        if selector.is_everything:
            self.events.record(
                d,
                WARNING,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
                component=COMPONENT,
            )
            return
        rs_list = self._claim_replicasets(d, selector)
        if d["metadata"].get("deletionTimestamp"):
            new_rs, old_rss = self._all_replicasets(d, rs_list, create=False)
            self._sync_status(d, self._fresh([*old_rss, new_rs]), new_rs)
            return
        self._check_paused_conditions(d)
        if d["spec"].get("paused") or self._is_scaling_event(d, rs_list):
            self._sync(d, rs_list)
        elif (d["spec"].get("strategy") or {}).get("type") == "Recreate":
            self._rollout_recreate(d, rs_list)
        else:
            self._rollout_rolling(d, rs_list)

    # -- ReplicaSets of a Deployment -----------------------------------------

    def _claim_replicasets(self, d: Obj, selector: LabelSelector) -> list[Obj]:
        uid = d["metadata"]["uid"]
        namespace = d["metadata"]["namespace"]
        claimed = []
        for rs in self.replicasets.owned(uid):
            if selector.matches(rs["metadata"].get("labels")):
                claimed.append(rs)
                continue

            def release(o: Obj) -> None:
                refs = o["metadata"].get("ownerReferences") or []
                o["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]

            self.store.mutate("replicasets", namespace, rs["metadata"]["name"], release)
        if d["metadata"].get("deletionTimestamp"):
            return claimed
        for rs in self.replicasets.orphans(namespace):
            if rs["metadata"].get("deletionTimestamp") or not selector.matches(
                rs["metadata"].get("labels")
            ):
                continue
            ref = owner_reference(d)

            def adopt(o: Obj, ref: Obj = ref) -> None:
                o["metadata"].setdefault("ownerReferences", []).append(ref)

            adopted = self.store.mutate("replicasets", namespace, rs["metadata"]["name"], adopt)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    def _fresh(self, rss: Sequence[Obj | None]) -> list[Obj]:
        """The stored versions of these ReplicaSets (skipping deleted ones and None)."""
        out = []
        for rs in rss:
            if rs is None:
                continue
            now = self.store.peek(
                "replicasets", rs["metadata"]["namespace"], rs["metadata"]["name"]
            )
            if now is not None:
                out.append(now)
        return out

    def _refresh(self, rs: Obj | None) -> Obj | None:
        fresh = self._fresh([rs])
        return fresh[0] if fresh else None

    def _all_replicasets(
        self, d: Obj, rs_list: list[Obj], *, create: bool
    ) -> tuple[Obj | None, list[Obj]]:
        """getAllReplicaSetsAndSyncRevision: (new ReplicaSet or None, all the old ones)."""
        rs_list = self._fresh(list(rs_list))
        current = rules.find_new_rs(d, rs_list)
        old_rss = [rs for rs in rs_list if current is None or rs is not current]
        new_rs = self._new_replicaset(d, rs_list, old_rss, create=create)
        return new_rs, self._fresh(list(old_rss))

    def _write_deployment(self, d: Obj) -> None:
        """UpdateStatus: the controller's view of annotations and status."""
        notes = copy.deepcopy(d["metadata"].get("annotations") or {})
        status = copy.deepcopy(d.get("status") or {})

        def change(o: Obj) -> None:
            if notes:
                o["metadata"]["annotations"] = notes
            else:
                o["metadata"].pop("annotations", None)
            o["status"] = status

        self.store.mutate("deployments", d["metadata"]["namespace"], d["metadata"]["name"], change)

    def _set_revision(self, d: Obj, revision: str) -> bool:
        notes = d["metadata"].setdefault("annotations", {})
        if notes.get(rules.REVISION) == revision:
            return False
        notes[rules.REVISION] = revision
        return True

    def _new_replicaset(
        self, d: Obj, rs_list: list[Obj], old_rss: list[Obj], *, create: bool
    ) -> Obj | None:
        """getNewReplicaSet: find (and re-annotate) or create the ReplicaSet of the template."""
        now = self.clock.time()
        namespace = d["metadata"]["namespace"]
        min_ready = int(d["spec"].get("minReadySeconds", 0) or 0)
        new_revision = rules.max_revision(old_rss) + 1
        existing = rules.find_new_rs(d, rs_list)
        if existing is not None:
            rs_copy = copy.deepcopy(existing)
            changed = rules.set_new_rs_annotations(d, rs_copy, new_revision, exists=True)
            if changed or int(rs_copy["spec"].get("minReadySeconds", 0) or 0) != min_ready:
                notes = rs_copy["metadata"]["annotations"]

                def reannotate(o: Obj) -> None:
                    o["metadata"]["annotations"] = notes
                    if min_ready:
                        o["spec"]["minReadySeconds"] = min_ready
                    else:
                        o["spec"].pop("minReadySeconds", None)

                existing = (
                    self.store.mutate(
                        "replicasets", namespace, existing["metadata"]["name"], reannotate
                    )
                    or existing
                )
            needs_update = self._set_revision(
                d, rules.annotations_of(existing).get(rules.REVISION, str(new_revision))
            )
            if (
                st.has_progress_deadline(d)
                and st.get_condition(d["status"], st.PROGRESSING) is None
            ):
                msg = f'Found new replica set "{existing["metadata"]["name"]}"'
                st.set_condition(
                    d["status"], st.new_condition(st.PROGRESSING, "True", st.FOUND_NEW_RS, msg, now)
                )
                needs_update = True
            if needs_update:
                self._write_deployment(d)
            return existing
        if not create:
            return None

        collisions = int(d["status"].get("collisionCount", 0) or 0)
        template = copy.deepcopy(d["spec"].get("template") or {})
        pod_hash = template_hash(template, collisions)
        template.setdefault("metadata", {}).setdefault("labels", {})[rules.HASH_LABEL] = pod_hash
        selector = copy.deepcopy(d["spec"].get("selector") or {})
        selector.setdefault("matchLabels", {})[rules.HASH_LABEL] = pod_hash
        name = f"{d['metadata']['name']}-{pod_hash}"
        rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "ownerReferences": [owner_reference(d)],
                "labels": dict(template["metadata"]["labels"]),
            },
            "spec": {"replicas": 0, "selector": selector, "template": template},
        }
        if min_ready:
            rs["spec"]["minReadySeconds"] = min_ready
        rs["spec"]["replicas"] = rules.new_rs_new_replicas(d, [*old_rss, rs], rs)
        rules.set_new_rs_annotations(d, rs, new_revision, exists=False)

        clash = self.store.peek("replicasets", namespace, name)
        if clash is not None:
            same = rules.equal_ignore_hash(
                clash["spec"].get("template") or {}, d["spec"]["template"]
            )
            if not (same and controller_uid(clash) == d["metadata"]["uid"]):
                # A hash collision: bump collisionCount and try again with a new hash.
                d["status"]["collisionCount"] = collisions + 1
                self._write_deployment(d)
                self.queue.add((namespace, d["metadata"]["name"]))
                return None
            created = clash
        else:
            try:
                created = self.store.create(self._rt_rs, rs)
            except ApiError:
                return None
            created = self.store.peek("replicasets", namespace, name) or created
            if rules.spec_replicas(created) > 0:
                self.events.record(
                    d,
                    NORMAL,
                    "ScalingReplicaSet",
                    f"Scaled up replica set {name} from 0 to {rules.spec_replicas(created)}",
                    component=COMPONENT,
                )
        needs_update = self._set_revision(d, str(new_revision))
        if clash is None and st.has_progress_deadline(d):
            msg = f'Created new replica set "{name}"'
            st.set_condition(
                d["status"], st.new_condition(st.PROGRESSING, "True", st.NEW_RS_CREATED, msg, now)
            )
            needs_update = True
        if needs_update:
            self._write_deployment(d)
        return created

    # -- scaling -------------------------------------------------------------

    def _is_scaling_event(self, d: Obj, rs_list: list[Obj]) -> bool:
        new_rs, old_rss = self._all_replicasets(d, rs_list, create=False)
        for rs in rules.active(self._fresh([*old_rss, new_rs])):
            desired = rules.annotations_of(rs).get(rules.DESIRED_REPLICAS)
            if desired is not None and desired.isdigit() and int(desired) != rules.spec_replicas(d):
                return True
        return False

    # -- strategies ----------------------------------------------------------

    def _sync(self, d: Obj, rs_list: list[Obj]) -> None:
        """sync: scaling and status for paused Deployments and scaling events."""
        new_rs, old_rss = self._all_replicasets(d, rs_list, create=False)
        self.scaler.scale(d, new_rs, old_rss)
        if d["spec"].get("paused"):
            self.scaler.cleanup(d, self._fresh(list(old_rss)))
        self._sync_status(d, self._fresh([*old_rss, new_rs]), self._refresh(new_rs))

    def _rollout_rolling(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old_rss = self._all_replicasets(d, rs_list, create=True)
        if new_rs is None:
            return
        all_rss = [*old_rss, new_rs]
        if self.scaler.reconcile_new_rs(all_rss, new_rs, d) or self.scaler.reconcile_old_rss(
            all_rss, rules.active(old_rss), new_rs, d
        ):
            self._sync_rollout_status(d, self._fresh(all_rss), self._refresh(new_rs))
            return
        if st.deployment_complete(d, d["status"]):
            self.scaler.cleanup(d, self._fresh(list(old_rss)))
        self._sync_rollout_status(d, self._fresh(all_rss), self._refresh(new_rs))

    def _rollout_recreate(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old_rss = self._all_replicasets(d, rs_list, create=False)
        scaled_down = False
        for rs in rules.active(old_rss):
            if self.scaler.scale_and_record(rs, 0, d)[0]:
                scaled_down = True
        old_rss = self._fresh(list(old_rss))
        if scaled_down or self._old_pods_running(new_rs, old_rss):
            self._sync_rollout_status(d, self._fresh([*old_rss, new_rs]), self._refresh(new_rs))
            return
        if new_rs is None:
            new_rs, old_rss = self._all_replicasets(d, self._fresh(rs_list), create=True)
            if new_rs is None:
                return
        self.scaler.scale_and_record(new_rs, rules.spec_replicas(d), d)
        if st.deployment_complete(d, d["status"]):
            self.scaler.cleanup(d, self._fresh(list(old_rss)))
        self._sync_rollout_status(d, self._fresh([*old_rss, new_rs]), self._refresh(new_rs))

    def _old_pods_running(self, new_rs: Obj | None, old_rss: list[Obj]) -> bool:
        if rules.total_status(old_rss, "replicas") > 0:
            return True
        for rs in old_rss:
            if new_rs is not None and rs["metadata"]["uid"] == new_rs["metadata"]["uid"]:
                continue
            for pod in self.pods.owned(rs["metadata"]["uid"]):
                if (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded"):
                    return True
        return False

    # -- status --------------------------------------------------------------

    def _check_paused_conditions(self, d: Obj) -> None:
        if not st.has_progress_deadline(d):
            return
        cond = st.get_condition(d["status"], st.PROGRESSING)
        if cond is not None and cond.get("reason") == st.TIMED_OUT:
            return
        paused_shown = cond is not None and cond.get("reason") == st.PAUSED
        now = self.clock.time()
        if d["spec"].get("paused") and not paused_shown:
            new = st.new_condition(
                st.PROGRESSING, "Unknown", st.PAUSED, "Deployment is paused", now
            )
        elif not d["spec"].get("paused") and paused_shown:
            new = st.new_condition(
                st.PROGRESSING, "Unknown", st.RESUMED, "Deployment is resumed", now
            )
        else:
            return
        st.set_condition(d["status"], new)
        self._write_deployment(d)

    def _sync_status(self, d: Obj, all_rss: list[Obj], new_rs: Obj | None) -> None:
        status = st.calculate_status(d, all_rss, new_rs, self.clock.time())
        if status != d["status"]:
            d["status"] = status
            self._write_deployment(d)

    def _sync_rollout_status(self, d: Obj, all_rss: list[Obj], new_rs: Obj | None) -> None:
        now = self.clock.time()
        status = st.rollout_status(d, all_rss, new_rs, now)
        key = (d["metadata"]["namespace"], d["metadata"]["name"])
        if status != d["status"]:
            d["status"] = status
            self._write_deployment(d)
            return  # the write marks the Deployment dirty; the next sync sets the deadline
        # requeueStuckDeployment: look again when the progress deadline would pass.
        cond = st.get_condition(d["status"], st.PROGRESSING)
        deadline = st.progress_deadline_at(d, d["status"])
        if (
            deadline is None
            or cond is None
            or cond.get("reason") == st.TIMED_OUT
            or st.deployment_complete(d, status)
        ):
            self.queue.cancel(key)
        else:
            self.queue.schedule(key, max(deadline + 1.0, now))
