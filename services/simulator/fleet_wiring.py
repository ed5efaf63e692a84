"""Connects the store's pods to the serving fleet model: which pods serve, on which GPUs, what
traffic each Deployment receives (after routing), and the /metrics exposition."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from services.simulator.backfill import HistoryWriter, run_and_sample
from services.simulator.clock import SimClock, parse_rfc3339
from services.simulator.engine_stats_log import StatsLog
from services.simulator.exposition import render_metrics
from services.simulator.fleet import Fleet, ServingPod, TrafficSpec
from services.simulator.gpus import GpuReadingInput, idle_reading
from services.simulator.runtime import ServingRuntime, gpu_request, node_gpu
from services.simulator.scenario import Scenario
from services.simulator.serving_config import NotAServingContainer, parse_container
from services.simulator.store import Store

Obj = dict[str, Any]
ADVANCE_MIN_S = 1.0  # simulated seconds between fleet advances
ADVANCE_MAX_S = 15.0  # the longest single advance; longer gaps advance in steps
HISTORY_STEP_S = 5.0  # spacing of the samples in `history_text`: scrape at this interval
# Simulated seconds of history per step of its build (a multiple of HISTORY_STEP_S): a demo's
# child simulator serves API requests between steps while it builds (runner.serve_child).
# A step is a few milliseconds of work, so a request waits no longer: the demo's mirrored
# clock takes its round trip's middle for the child's now (60 s steps put it 3 s ahead at x30).
HISTORY_CHUNK_S = 10.0
ROUTE_HEADER = "x-context-class"


class FleetWiring:
    def __init__(
        self, store: Store, clock: SimClock, scenario: Scenario, runtime: ServingRuntime, seed: int
    ) -> None:
        self.store = store
        self.clock = clock
        self.scenario = scenario
        self.runtime = runtime
        self.fleet = Fleet(seed)
        self._last = 0.0
        self._pods: list[ServingPod] | None = None
        self._traffic: dict[tuple[str, str], Obj] = {}
        # The history still to build (start, end), if any: the fleet does not advance live
        # until it is built, so the live series go on from where the history ends.
        self._history_window: tuple[float, float] | None = None
        # The fleet's exposition over the scenario's `metrics_history_s` before start, as
        # OpenMetrics with timestamps (empty without): what a Prometheus scraping all along
        # would hold. The demo ingests it; tests can backfill a real Prometheus with it.
        self.history_text = ""
        self._stats_log = StatsLog(runtime.logbook)
        store.add_listener(self._changed)

    def _changed(self, plural: str, _type: str, obj: Obj, old: Obj | None) -> None:
        if plural == "pods":
            self._pods = None
        elif plural == "nodes" and (
            old is None or obj["metadata"].get("labels") != old["metadata"].get("labels")
        ):
            # Only a node's GPU labels matter here, not its heartbeats.
            self._pods = None

    def start(self, now: float, *, history: bool = True) -> None:
        """Begin simulating traffic at `now`; the scenario's burst times are relative to it.
        With `metrics_history_s`, the fleet first serves that long up to `now` (the pods as
        they are now), sampled into `history_text`: here, or with `history=False` later,
        step by step (`history_steps`), the fleet standing still until it is built."""
        self._last = now
        for t in self.scenario.traffic:
            spec: Obj = {
                "rps": t.rps,
                "long_context_share": t.long_context_share,
                "client_timeout_s": t.client_timeout_s,
            }
            if t.burst is not None:
                spec["burst_start"] = now + t.burst.since_s
                spec["burst_end"] = (
                    now + t.burst.since_s + t.burst.duration_s if t.burst.duration_s else None
                )
                spec["burst_share"] = t.burst.long_context_share
            self._traffic[(t.namespace, t.deployment)] = spec
        history_s = self.scenario.metrics_history_s
        if history_s > 0:
            self._history_window = (now - history_s, now)
        if history:
            for _ in self.history_steps():
                pass

    @property
    def history_pending(self) -> bool:
        """Whether the history is still to be built (the fleet stands still meanwhile)."""
        return self._history_window is not None

    def history_steps(self) -> Iterator[None]:
        """Build `history_text`, yielding after each HISTORY_CHUNK_S of it (the same samples
        as one run: the chunks end on sample times). The pods are those of the start."""
        if self._history_window is None:
            return
        start, end = self._history_window
        pods, writer = self.serving_pods(), HistoryWriter()
        at = start
        try:
            while at < end - 1e-9:
                upto = min(at + HISTORY_CHUNK_S, end)
                run_and_sample(self.fleet, pods, self.traffic, at, upto, HISTORY_STEP_S, writer)
                at = upto
                yield
            self.history_text = writer.text()
        finally:
            self._history_window = None  # built, or given up: the fleet goes on live

    # -- pods ----------------------------------------------------------------

    def serving_pods(self) -> list[ServingPod]:
        if self._pods is None:
            self._pods = self._build_pods()
        return self._pods

    def _build_pods(self) -> list[ServingPod]:
        out: list[ServingPod] = []
        next_index: dict[str, int] = {}
        pods = sorted(
            self.store.items("pods"),
            key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"]),
        )
        for pod in pods:
            node_name = pod["spec"].get("nodeName")
            if not node_name:
                continue
            node = self.store.peek("nodes", "", node_name)
            gpu = node_gpu(node)
            for container in pod["spec"]["containers"]:
                count = gpu_request(container)
                if gpu is None or count == 0:
                    continue
                first = next_index.get(node_name, 0)
                next_index[node_name] = first + count
                try:
                    config = parse_container(container)
                except NotAServingContainer:
                    continue
                ready, since = _serving(pod, container["name"])
                out.append(
                    ServingPod(
                        name=pod["metadata"]["name"],
                        namespace=pod["metadata"]["namespace"],
                        deployment=_deployment_of(pod),
                        node_name=node_name,
                        container_name=container["name"],
                        config=config,
                        gpu=gpu,
                        gpu_count=count,
                        ready=ready,
                        serving_since=since,
                        gpu_indices=tuple(range(first, first + count)),
                    )
                )
        return out

    def gpu_readings_for(self, pod: Obj, container: Obj) -> list[GpuReadingInput]:
        for serving in self.serving_pods():
            if (serving.namespace, serving.name, serving.container_name) == (
                pod["metadata"]["namespace"],
                pod["metadata"]["name"],
                container["name"],
            ):
                return self.fleet.gpu_readings(serving)
        node_name = pod["spec"].get("nodeName", "")
        gpu = node_gpu(self.store.peek("nodes", "", node_name))
        if gpu is None:
            return []
        return [idle_reading(gpu, node_name, i, i) for i in range(gpu_request(container))]

    # -- traffic -------------------------------------------------------------

    def _route_target(self, namespace: str, deployment: str) -> str | None:
        """The Deployment that a header route for long-context requests sends them to, if any."""
        services: list[str] = []
        for route in self.store.items("httproutes", namespace):
            for rule in route.get("spec", {}).get("rules") or []:
                for match in rule.get("matches") or []:
                    for header in match.get("headers") or []:
                        if (
                            header.get("name", "").lower() == ROUTE_HEADER
                            and header.get("value") == "long"
                            and header.get("type", "Exact") == "Exact"
                        ):
                            services += [b.get("name", "") for b in rule.get("backendRefs") or []]
        for vs in self.store.items("virtualservices", namespace):
            for http in vs.get("spec", {}).get("http") or []:
                for match in http.get("match") or []:
                    header = (match.get("headers") or {}).get(ROUTE_HEADER) or {}
                    if header.get("exact") == "long":
                        services += [
                            str(r.get("destination", {}).get("host", "")).split(".")[0]
                            for r in http.get("route") or []
                        ]
        for service_name in services:
            service = self.store.peek("services", namespace, service_name)
            if service is None:
                continue
            selector = service.get("spec", {}).get("selector") or {}
            if not selector:
                continue
            for deploy in self.store.items("deployments", namespace):
                labels = deploy["spec"]["template"].get("metadata", {}).get("labels") or {}
                name = deploy["metadata"]["name"]
                matches = all(labels.get(k) == v for k, v in selector.items())
                ready = deploy.get("status", {}).get("readyReplicas", 0) > 0
                if name != deployment and matches and ready:
                    return str(name)
        return None

    def traffic(self, now: float) -> dict[tuple[str, str], TrafficSpec]:
        out: dict[tuple[str, str], TrafficSpec] = {}
        for (namespace, deployment), spec in self._traffic.items():
            base = TrafficSpec(
                requests_per_second=float(spec["rps"]),
                long_context_share=float(spec["long_context_share"]),
                burst_start=spec.get("burst_start"),
                burst_end=spec.get("burst_end"),
                burst_long_context_share=spec.get("burst_share"),
                client_timeout_s=float(spec["client_timeout_s"]),
            )
            target = self._route_target(namespace, deployment)
            if target is None:
                out[(namespace, deployment)] = base
                continue
            share = base.long_share_at(now)
            out[(namespace, deployment)] = TrafficSpec(
                requests_per_second=base.requests_per_second * (1 - share),
                long_context_share=0.0,
                client_timeout_s=base.client_timeout_s,
            )
            out[(namespace, target)] = TrafficSpec(
                requests_per_second=base.requests_per_second * share,
                long_context_share=1.0,
                client_timeout_s=base.client_timeout_s,
            )
        return out

    def tick(self) -> None:
        now = self.clock.time()
        if self._history_window is not None or now - self._last < ADVANCE_MIN_S:
            return
        pods = self.serving_pods()
        while now - self._last >= ADVANCE_MIN_S:
            step = min(ADVANCE_MAX_S, now - self._last)
            self._last += step
            self.fleet.advance(pods, self.traffic(self._last), self._last, step)
            self._stats_log.observe(self.fleet, pods, self._last)

    def exposition(self) -> str:
        return render_metrics(self.fleet, self.serving_pods())

    # -- trainer controls ----------------------------------------------------

    def set_traffic(self, payload: Obj) -> Obj:
        """Change a Deployment's offered load: rps, long_context_share, client_timeout_s,
        burst_share (None ends the burst). Raises KeyError for a Deployment with no traffic,
        ValueError for a value out of range."""
        key = (str(payload.get("namespace", self.scenario.namespace)), str(payload["deployment"]))
        spec = self._traffic[key]
        for field in ("rps", "long_context_share", "client_timeout_s"):
            if field in payload:
                value = float(payload[field])
                if (
                    not value >= 0
                    or (field == "long_context_share" and value > 1)
                    or (field == "client_timeout_s" and value == 0)
                ):
                    raise ValueError(f"{field}={value} is out of range")
                spec[field] = value
        if "burst_share" in payload:
            if payload["burst_share"] is None:
                spec["burst_end"] = self.clock.time()
            else:
                spec["burst_share"] = float(payload["burst_share"])
                spec["burst_start"] = self.clock.time()
                spec["burst_end"] = None
        return {"deployment": key[1], "namespace": key[0], **spec}

    def state(self) -> Obj:
        out: Obj = {"now": self.clock.time(), "speed": self.clock.speed, "deployments": {}}
        for namespace, deployment in self._traffic:
            truth = self.fleet.ground_truth(namespace, deployment, 300.0)
            out["deployments"][f"{namespace}/{deployment}"] = {
                k: v
                for k, v in truth.__dict__.items()
                if isinstance(v, (int, float, str)) or v is None
            }
        return out


def _deployment_of(pod: Obj) -> str:
    """The Deployment owning a pod: its ReplicaSet owner's name minus the template hash."""
    labels = pod["metadata"].get("labels") or {}
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "ReplicaSet":
            name = str(ref.get("name", ""))
            suffix = labels.get("pod-template-hash")
            if suffix and name.endswith("-" + suffix):
                return name[: -len(suffix) - 1]
            return name.rsplit("-", 1)[0]
    return str(pod["metadata"]["name"])


def _serving(pod: Obj, container: str) -> tuple[bool, float]:
    """Whether the container serves (pod Ready, not terminating) and since when."""
    if pod["metadata"].get("deletionTimestamp"):
        return False, 0.0
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            since = condition.get("lastTransitionTime")
            return True, parse_rfc3339(since).timestamp() if since else 0.0
    return False, 0.0
