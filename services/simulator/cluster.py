"""The simulated cluster: store, controllers, serving fleet, and what the API server needs."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from aiohttp import web

from services.simulator import exec as pod_exec_ws
from services.simulator import world
from services.simulator.argocd import SelfHeal
from services.simulator.auth import User
from services.simulator.clock import SimClock
from services.simulator.controllers import Controllers
from services.simulator.endpoints import allocate_cluster_ip
from services.simulator.errors import ApiError, bad_request
from services.simulator.faults import Fault, FaultSet
from services.simulator.fleet_wiring import FleetWiring
from services.simulator.resources import Registry
from services.simulator.runtime import ServingRuntime
from services.simulator.scenario import Scenario
from services.simulator.store import Store
from services.simulator.system_controllers import SystemControllers

Obj = dict[str, Any]
SETUP_MARGIN_S = 600.0


class Cluster:
    """Everything behind the simulated API server, driven by `tick()` on one event loop."""

    def __init__(self, scenario: Scenario, *, speed: float = 1.0, seed: int = 0) -> None:
        self.scenario = scenario
        self.seed = seed
        self.registry = Registry(custom=list(scenario.custom_resources))
        oldest = max((r.age_s for d in scenario.deployments for r in d.history), default=0.0)
        self._anchor_wall = time.time()
        start = datetime.fromtimestamp(self._anchor_wall - oldest - SETUP_MARGIN_S).astimezone()
        self.clock = SimClock(speed, start=start)
        self.store = Store(self.registry, self.clock, seed)
        self.faults = FaultSet(list(scenario.faults))
        self.runtime = ServingRuntime(self.store, scenario)
        self.controllers = Controllers(self.store, self.clock, self.runtime)
        self.self_heal = (
            SelfHeal(self.store, self.clock, scenario.gitops) if scenario.gitops else None
        )
        self.fleet = FleetWiring(self.store, self.clock, scenario, self.runtime, seed)
        self.system = SystemControllers(self.store, self.clock, seed)
        self.store.add_defaulter(lambda rt, obj, old: allocate_cluster_ip(self.store, rt, obj, old))

    # -- lifecycle -----------------------------------------------------------

    def setup(self, *, history: bool = True) -> None:
        """Build the scenario's world and bring the clock to the present; the fleet's
        history too, unless `history` is False (then `fleet.history_steps()` builds it)."""
        world.build(self.store, self.scenario, self.settle, self._anchor_wall, seed=self.seed)
        now = time.time()
        if self.clock.time() < now:
            self.clock.advance(now - self.clock.time())
        self.system.go_live()
        self.fleet.start(self.clock.time(), history=history)
        if self.self_heal is not None:
            self.self_heal.start()

    def settle(self, limit_s: float) -> bool:
        """Tick on simulated time, in steps, until the controllers have nothing pending."""
        waited = 0.0
        while waited < limit_s:
            self.controllers.tick()
            self.system.tick()
            if self.controllers.idle() and not self.system.pending():
                return True
            self.clock.advance(world.SETTLE_STEP_S)
            waited += world.SETTLE_STEP_S
        return False

    def tick(self) -> None:
        self.controllers.tick()
        self.system.tick()
        if self.self_heal is not None:
            self.self_heal.tick()
        self.fleet.tick()

    def now(self) -> datetime:
        return self.clock.now()

    # -- pods: exec ----------------------------------------------------------------

    def _pod_container(self, namespace: str, name: str, container: str) -> tuple[Obj, Obj]:
        pod = self.store.peek("pods", namespace, name)
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found', name=name, kind="pods")
        containers = pod["spec"]["containers"]
        if not container:
            if len(containers) > 1:
                names = " ".join(c["name"] for c in containers)
                raise bad_request(
                    f"a container name must be specified for pod {name}, choose one of: [{names}]"
                )
            container = containers[0]["name"]
        for spec in containers:
            if spec["name"] == container:
                return pod, spec
        raise bad_request(f"container {container} is not valid for pod {name}")

    async def pod_exec(
        self, request: web.Request, namespace: str, name: str, user: User
    ) -> web.StreamResponse:
        pod, spec = self._pod_container(namespace, name, request.query.get("container", ""))
        status = next(
            (
                s
                for s in pod.get("status", {}).get("containerStatuses", [])
                if s["name"] == spec["name"]
            ),
            None,
        )
        if status is None or "running" not in status.get("state", {}):
            raise bad_request(
                f'unable to upgrade connection: container not found ("{spec["name"]}")'
            )
        if self.faults.exec_fails():
            node_ip = self.runtime.node_ip(pod["spec"].get("nodeName", ""))
            # The proxy's own error: a Status with no reason ("Error from server: ...").
            raise ApiError(500, "", f"error dialing backend: dial tcp {node_ip}:10250: i/o timeout")
        programs = self.runtime.programs(pod, spec, self.fleet)
        return await pod_exec_ws.serve(
            request, lambda argv: pod_exec_ws.run_program(argv, programs)
        )

    def metrics_text(self) -> str:
        return self.fleet.exposition()

    # -- trainer controls ----------------------------------------------------

    def admin(self, op: str, payload: Obj) -> Obj:
        """`/_sim/<op>`: faults, clock, traffic and state. Raises ApiError 400 on bad input."""
        try:
            if op == "faults":
                if "faults" in payload:
                    self.faults.set([Fault.from_dict(f) for f in payload["faults"]])
                if payload.get("drop_watches"):
                    self.store.drop_all_watches()
                return {"faults": self.faults.describe()}
            if op == "clock":
                if "speed" in payload:
                    self.clock.set_speed(float(payload["speed"]))
                if "advance_s" in payload:
                    self.clock.advance(float(payload["advance_s"]))
                return {"now": self.clock.time(), "speed": self.clock.speed}
            if op == "traffic":
                return self.fleet.set_traffic(payload)
            if op == "state":
                return self.fleet.state()
        except (ValueError, TypeError, KeyError) as exc:
            raise bad_request(f"/_sim/{op}: {exc}") from exc
        raise ApiError(
            404,
            "NotFound",
            f"unknown simulator control {op!r}; known: faults, clock, traffic, state",
        )
