"""The kubelets of every node: pod lifecycles driven on simulated time.

A bound pod goes ContainerCreating -> Running -> Ready as the runtime model says (start delay,
then model-load delay). A container the model says cannot start runs for `ready_delay_s`,
exits with code 1 and is restarted on the kubelet's real back-off (first restart at once,
then 10s, 20s, 40s ... capped at 5m, reset after 10 minutes without a crash), showing
CrashLoopBackOff in between. Deleted pods turn unready and are removed after
min(grace period, runtime stop delay). Transitions are replayed at their exact simulated
times, so a coarse tick or a clock jump shows the same history as a fine one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from services.simulator.clock import SimClock, parse_rfc3339
from services.simulator.controllers import pod_status as ps
from services.simulator.controllers.events import NORMAL, WARNING, EventRecorder
from services.simulator.controllers.quantities import qos_class
from services.simulator.controllers.workqueue import WorkQueue
from services.simulator.store import Store

Obj = dict[str, Any]
Key = tuple[str, str]
COMPONENT = "kubelet"
BACKOFF_INITIAL_S = 10.0
BACKOFF_MAX_S = 300.0


@dataclass(frozen=True)
class StartOutcome:
    start_delay_s: float  # simulated seconds from scheduling to Running
    ready_delay_s: float  # further seconds until Ready (model load); a failing container's lifetime
    failure: str | None  # None, or the message the container dies with (CrashLoopBackOff)
    image_digest: str  # sha256:<64 hex>


class RuntimeModel(Protocol):
    stop_delay_s: float

    def start(
        self, pod: dict[str, Any], node: dict[str, Any], container: dict[str, Any]
    ) -> StartOutcome: ...


@dataclass
class _Container:
    spec: Obj
    outcome: StartOutcome
    since: float  # start of the current state
    state: str = "creating"  # creating | running | backoff | terminated
    restarts: int = 0
    ready: bool = False
    ready_changed: float = 0.0
    started_at: float = 0.0
    container_id: str = ""
    last_terminated: Obj | None = None
    backoff_s: float = 0.0
    backoff_updated: float = 0.0
    pulling: bool = False  # the image was not on the node (or pullPolicy Always) at admission

    @property
    def name(self) -> str:
        return str(self.spec.get("name", ""))

    def next_transition(self) -> float | None:
        if self.state == "creating":
            return self.since + self.outcome.start_delay_s
        if self.state == "backoff":
            return self.since + self.backoff_s
        if self.state == "running" and (self.outcome.failure or not self.ready):
            return self.since + self.outcome.ready_delay_s
        return None


@dataclass
class _Run:
    uid: str
    node: str
    bound_at: float
    host_ip: str
    ip: str
    containers: list[_Container] = field(default_factory=list)
    deleting_since: float | None = None
    finalize_at: float | None = None


class Kubelet:
    """Every node's kubelet; `tick()` syncs the pods that changed or have a transition due."""

    def __init__(
        self,
        store: Store,
        clock: SimClock,
        runtime: RuntimeModel,
        *,
        events: EventRecorder | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.runtime = runtime
        self.events = events or EventRecorder(store, clock)
        self.queue: WorkQueue[Key] = WorkQueue()
        self._runs: dict[Key, _Run] = {}
        self._images: dict[str, set[str]] = {}
        self._node_index: dict[str, int] = {}
        self._ips_used: dict[str, set[int]] = {}
        self._writing = False
        for pod in store.items("pods"):
            if (pod.get("spec") or {}).get("nodeName"):
                self.queue.add((pod["metadata"]["namespace"], pod["metadata"]["name"]))
        store.add_listener(self._on_change)

    def _on_change(self, plural: str, event: str, obj: Obj, old: Obj | None) -> None:
        if plural != "pods" or self._writing:
            return
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if event == "DELETED":
            self._drop(key)
        elif (obj.get("spec") or {}).get("nodeName"):
            self.queue.add(key)

    def pending(self) -> bool:
        return self.queue.pending()

    def tick(self) -> None:
        """Sync every pod with a change or a lifecycle transition due by now."""
        now = self.clock.time()
        for key in sorted(self.queue.take(now)):
            self._sync(key, now)

    # -- one pod -------------------------------------------------------------

    def _sync(self, key: Key, now: float) -> None:
        pod = self.store.peek("pods", *key)
        if pod is None:
            self._drop(key)
            return
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = self.store.peek("nodes", "", node_name) if node_name else None
        if node is None:
            return
        run = self._runs.get(key)
        if run is not None and run.uid != pod["metadata"].get("uid"):
            self._drop(key)
            run = None
        if run is None:
            run = self._admit(key, pod, node, now)
        if pod["metadata"].get("deletionTimestamp") and run.deleting_since is None:
            self._begin_termination(run, pod, now)
        if run.finalize_at is not None and run.finalize_at <= now:
            self._drop(key)
            self.store.finalize_pod(*key)
            return
        for container in run.containers:
            self._advance(run, container, pod, node, now)
        self._write_status(key, pod, run)
        due = [t for t in (c.next_transition() for c in run.containers) if t is not None]
        if run.finalize_at is not None:
            due = [run.finalize_at]
        if due:
            self.queue.schedule(key, min(due))
        else:
            self.queue.cancel(key)

    def _admit(self, key: Key, pod: Obj, node: Obj, now: float) -> _Run:
        status = pod.get("status") or {}
        started = status.get("startTime")
        bound_at = parse_rfc3339(started).timestamp() if isinstance(started, str) else now
        host_ip = self._host_ip(node)
        run = _Run(
            uid=str(pod["metadata"].get("uid", "")),
            node=node["metadata"]["name"],
            bound_at=bound_at,
            host_ip=host_ip,
            # A hostNetwork pod (kube-proxy, the GPU daemons) shares its node's address.
            ip=host_ip if pod["spec"].get("hostNetwork") else self._allocate_ip(node),
        )
        previous = {s.get("name"): s for s in status.get("containerStatuses") or []}
        for spec in pod["spec"].get("containers") or []:
            outcome = self.runtime.start(pod, node, spec)
            container = _Container(
                spec=spec, outcome=outcome, since=bound_at, ready_changed=bound_at
            )
            seen = previous.get(spec.get("name"))
            if seen is not None and seen.get("ready") and "running" in (seen.get("state") or {}):
                # A pod that was already running before this kubelet saw it stays as it is.
                started_at = seen["state"]["running"].get("startedAt")
                container.state = "running"
                container.ready = True
                container.since = container.started_at = (
                    parse_rfc3339(started_at).timestamp() if started_at else now
                )
                container.ready_changed = container.since
                container.restarts = int(seen.get("restartCount", 0))
                container.container_id = str(seen.get("containerID", ""))
                container.outcome = StartOutcome(0.0, 0.0, None, outcome.image_digest)
            else:
                image = str(spec.get("image", ""))
                cached = image in self._images.get(run.node, set())
                container.pulling = spec.get("imagePullPolicy") == "Always" or not cached
                if container.pulling:
                    self._event(
                        run, pod, container, NORMAL, "Pulling", f'Pulling image "{image}"', now
                    )
            run.containers.append(container)
        self._runs[key] = run
        return run

    def _begin_termination(self, run: _Run, pod: Obj, now: float) -> None:
        grace = pod["metadata"].get("deletionGracePeriodSeconds")
        grace_s = float(grace) if isinstance(grace, int | float) else 30.0
        run.deleting_since = now
        run.finalize_at = now + min(grace_s, float(self.runtime.stop_delay_s))
        for container in run.containers:
            if container.ready:
                container.ready = False
                container.ready_changed = now
            if container.state == "running":
                self._event(
                    run,
                    pod,
                    container,
                    NORMAL,
                    "Killing",
                    f"Stopping container {container.name}",
                    now,
                )

    # -- container lifecycle -------------------------------------------------

    def _advance(self, run: _Run, c: _Container, pod: Obj, node: Obj, now: float) -> None:
        """Apply every transition due by `now`, each at its own simulated time."""
        while run.deleting_since is None:
            at = c.next_transition()
            if at is None or at > now:
                return
            if c.state == "creating":
                self._start(run, c, pod, at)
            elif c.state == "backoff":
                c.backoff_s = min(c.backoff_s * 2, BACKOFF_MAX_S)
                c.backoff_updated = at
                self._restart(run, c, pod, node, at)
            elif c.outcome.failure:
                self._crash(run, c, pod, node, at)
            else:
                c.ready = True
                c.ready_changed = at

    def _start(self, run: _Run, c: _Container, pod: Obj, at: float) -> None:
        c.state = "running"
        c.since = c.started_at = at
        c.container_id = ps.container_id(run.uid, c.name, c.restarts)
        if c.restarts == 0:
            self._pulled(run, pod, c, at)
        self._event(run, pod, c, NORMAL, "Created", f"Created container: {c.name}", at)
        self._event(run, pod, c, NORMAL, "Started", f"Started container {c.name}", at)

    def _crash(self, run: _Run, c: _Container, pod: Obj, node: Obj, at: float) -> None:
        terminated: Obj = {
            "containerID": c.container_id,
            "exitCode": 1,
            "finishedAt": ps.stamp(at),
            "reason": "Error",
            "startedAt": ps.stamp(c.started_at),
        }
        if c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError" and c.outcome.failure:
            terminated["message"] = c.outcome.failure
        c.last_terminated = terminated
        if c.ready:
            c.ready = False
            c.ready_changed = at
        if pod["spec"].get("restartPolicy", "Always") == "Never":
            c.state = "terminated"
            c.since = at
            return
        expired = c.backoff_s == 0 or at - c.backoff_updated > 2 * BACKOFF_MAX_S
        if expired:
            c.backoff_s = BACKOFF_INITIAL_S
            c.backoff_updated = at
            self._restart(run, c, pod, node, at)
            return
        c.state = "backoff"
        c.since = at
        self._event(
            run,
            pod,
            c,
            WARNING,
            "BackOff",
            f"Back-off restarting failed container {c.name} in pod {ps.format_pod(pod)}",
            at,
        )

    def _restart(self, run: _Run, c: _Container, pod: Obj, node: Obj, at: float) -> None:
        c.restarts += 1
        c.outcome = self.runtime.start(pod, node, c.spec)
        c.state = "running"
        c.since = c.started_at = at
        c.container_id = ps.container_id(run.uid, c.name, c.restarts)
        image = str(c.spec.get("image", ""))
        self._event(
            run,
            pod,
            c,
            NORMAL,
            "Pulled",
            f'Container image "{image}" already present on machine',
            at,
        )
        self._event(run, pod, c, NORMAL, "Created", f"Created container: {c.name}", at)
        self._event(run, pod, c, NORMAL, "Started", f"Started container {c.name}", at)

    def _pulled(self, run: _Run, pod: Obj, c: _Container, at: float) -> None:
        image = str(c.spec.get("image", ""))
        if c.pulling:
            took = ps.go_duration(round(c.outcome.start_delay_s, 3))
            size = ps.image_size(c.outcome.image_digest)
            message = (
                f'Successfully pulled image "{image}" in {took} ({took} including waiting). '
                f"Image size: {size} bytes."
            )
            self._images.setdefault(run.node, set()).add(image)
        else:
            message = f'Container image "{image}" already present on machine'
        self._event(run, pod, c, NORMAL, "Pulled", message, at)

    def _event(
        self, run: _Run, pod: Obj, c: _Container, type_: str, reason: str, message: str, at: float
    ) -> None:
        self.events.record(
            pod,
            type_,
            reason,
            message,
            component=COMPONENT,
            host=run.node,
            field_path=f"spec.containers{{{c.name}}}",
            at=at,
        )

    # -- status --------------------------------------------------------------

    def _container_status(self, run: _Run, c: _Container, pod: Obj) -> Obj:
        image = str(c.spec.get("image", ""))
        status: Obj = {
            "name": c.name,
            "image": image,
            "imageID": "",
            "lastState": {"terminated": dict(c.last_terminated)} if c.last_terminated else {},
            "ready": c.ready,
            "restartCount": c.restarts,
            "started": c.state == "running",
        }
        if c.state == "creating":
            status["state"] = {"waiting": {"reason": "ContainerCreating"}}
            return status
        status["image"] = ps.status_image(image)
        status["imageID"] = ps.image_id(image, c.outcome.image_digest)
        status["containerID"] = c.container_id
        if c.state == "running":
            status["state"] = {"running": {"startedAt": ps.stamp(c.started_at)}}
        elif c.state == "backoff":
            message = (
                f"back-off {ps.go_duration(c.backoff_s)} restarting failed container={c.name} "
                f"pod={ps.format_pod(pod)}"
            )
            status["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
        else:
            status["state"] = {"terminated": dict(c.last_terminated or {})}
            status["lastState"] = {}
        return status

    def _write_status(self, key: Key, pod: Obj, run: _Run) -> None:
        old = pod.get("status") or {}
        containers = run.containers
        unready = [c for c in containers if not c.ready]
        if unready:
            names = " ".join(sorted(c.name for c in unready))
            since = min(c.ready_changed for c in unready)
            ready_args = (
                "False",
                since,
                "ContainersNotReady",
                f"containers with unready status: [{names}]",
            )
        else:
            ready_args = (
                "True",
                max((c.ready_changed for c in containers), default=run.bound_at),
                "",
                "",
            )
        scheduled = next(
            (c for c in old.get("conditions") or [] if c.get("type") == "PodScheduled"), None
        )
        conditions = [
            ps.pod_condition("PodReadyToStartContainers", "True", run.bound_at),
            ps.pod_condition("Initialized", "True", run.bound_at),
            ps.pod_condition("Ready", *ready_args),
            ps.pod_condition("ContainersReady", *ready_args),
            dict(scheduled)
            if scheduled
            else ps.pod_condition("PodScheduled", "True", run.bound_at),
        ]
        if all(c.state == "terminated" for c in containers) and containers:
            phase = "Failed"
        elif all(c.state == "creating" for c in containers):
            phase = "Pending"
        else:
            phase = "Running"
        status = dict(old)
        status.update(
            phase=phase,
            conditions=ps.keep_transition_times(conditions, old.get("conditions") or []),
            hostIP=run.host_ip,
            hostIPs=[{"ip": run.host_ip}],
            podIP=run.ip,
            podIPs=[{"ip": run.ip}],
            startTime=ps.stamp(run.bound_at),
            qosClass=qos_class(pod),
            containerStatuses=sorted(
                (self._container_status(run, c, pod) for c in containers), key=lambda s: s["name"]
            ),
        )
        if pod["spec"].get("initContainers"):
            status["initContainerStatuses"] = ps.init_container_statuses(run.uid, pod, run.bound_at)
        if status == old:
            return
        self._writing = True
        try:
            self.store.mutate("pods", key[0], key[1], lambda p: p.__setitem__("status", status))
        finally:
            self._writing = False

    # -- addresses -----------------------------------------------------------

    def _index(self, node: Obj) -> int:
        name = node["metadata"]["name"]
        if name not in self._node_index:
            names = sorted(n["metadata"]["name"] for n in self.store.items("nodes"))
            self._node_index[name] = names.index(name) if name in names else len(self._node_index)
        return self._node_index[name]

    def _host_ip(self, node: Obj) -> str:
        for address in (node.get("status") or {}).get("addresses") or []:
            if address.get("type") == "InternalIP":
                return str(address.get("address"))
        index = self._index(node)
        return f"172.18.{index // 250}.{index % 250 + 2}"

    def _allocate_ip(self, node: Obj) -> str:
        name = node["metadata"]["name"]
        used = self._ips_used.setdefault(name, set())
        host = next((h for h in range(2, 255) if h not in used), 2 + len(used) % 253)
        used.add(host)
        cidr = (node.get("spec") or {}).get("podCIDR")
        if isinstance(cidr, str) and cidr.count(".") == 3:
            return ".".join(cidr.split("/")[0].split(".")[:3]) + f".{host}"
        index = self._index(node)
        return f"10.{244 + index // 256}.{index % 256}.{host}"

    def _drop(self, key: Key) -> None:
        run = self._runs.pop(key, None)
        self.queue.forget(key)
        if run is None:
            return
        octet = run.ip.rsplit(".", 1)[-1]
        if octet.isdigit() and run.ip != run.host_ip:
            self._ips_used.get(run.node, set()).discard(int(octet))
