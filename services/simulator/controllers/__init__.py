"""The control loops that make the simulated cluster behave like a real one.

`Controllers.tick()` runs, once each and in this order, the Deployment controller, the
ReplicaSet controller, the scheduler and the kubelets. Each keeps a work queue fed by the
store's change feed plus simulated-time timers (start delays, back-offs, progress deadlines),
so a tick over a large, quiet cluster touches nothing.
"""

from __future__ import annotations

from services.simulator.clock import SimClock
from services.simulator.controllers.deployment import DeploymentController
from services.simulator.controllers.events import EventRecorder
from services.simulator.controllers.kubelet import Kubelet, RuntimeModel, StartOutcome
from services.simulator.controllers.ownership import OwnerIndex
from services.simulator.controllers.replicaset import ReplicaSetController
from services.simulator.controllers.scheduler import Scheduler
from services.simulator.store import Store

__all__ = [
    "Controllers",
    "DeploymentController",
    "EventRecorder",
    "Kubelet",
    "ReplicaSetController",
    "RuntimeModel",
    "Scheduler",
    "StartOutcome",
]


class Controllers:
    """kube-controller-manager, kube-scheduler and the kubelets, sharing one event recorder."""

    def __init__(self, store: Store, clock: SimClock, runtime: RuntimeModel) -> None:
        self.store = store
        self.clock = clock
        self.events = EventRecorder(store, clock)
        replicasets = OwnerIndex(store, "replicasets")
        pods = OwnerIndex(store, "pods")
        self.deployments = DeploymentController(
            store, clock, events=self.events, replicasets=replicasets, pods=pods
        )
        self.replicasets = ReplicaSetController(store, clock, events=self.events, pods=pods)
        self.scheduler = Scheduler(store, clock, events=self.events)
        self.kubelet = Kubelet(store, clock, runtime, events=self.events)

    def tick(self) -> None:
        """One pass of every loop over whatever changed or fell due since the last tick."""
        self.deployments.tick()
        self.replicasets.tick()
        self.scheduler.schedule_pending()
        self.kubelet.tick()
        self.events.prune()

    def idle(self) -> bool:
        """Nothing dirty and no timer set: every rollout, pod start and retry has settled.

        A crash-looping pod, an unschedulable pod or an unfinished rollout keeps a timer, so
        the cluster is not idle while any of them lasts.
        """
        return not (
            self.deployments.pending()
            or self.replicasets.pending()
            or self.scheduler.pending()
            or self.kubelet.pending()
        )

    def next_deadline(self) -> float | None:
        """The earliest simulated time at which some loop has work scheduled (None: none)."""
        deadlines = [
            q.next_deadline()
            for q in (
                self.deployments.queue,
                self.replicasets.queue,
                self.scheduler.queue,
                self.kubelet.queue,
            )
        ]
        known = [d for d in deadlines if d is not None]
        return min(known) if known else None
