"""The serving fleet's performance model: requests in, latencies, tokens and GPU readings out.

Each tick every ready pod of a Deployment gets an equal share of its traffic. A pod's state
follows from Little's law on its running sequences: decode steps slow as the batch grows,
prefill of long prompts steals GPU time, and beyond capacity (running-sequence limit, KV cache,
prefill) requests queue and latency climbs sharply until clients give up: a request not
finished within the traffic's client timeout is aborted (an error, counted as vLLM counts
`finished_reason="abort"`) and never shows up as an end-to-end latency. A bounded number of
requests per pod per tick are drawn with seeded noise and observed with integer weights, so
counters and histograms add up exactly while 5,000 pods stay cheap. The same weighted
observations are kept per Deployment for `ground_truth`.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.simulator.fleet_history import FleetTruth, Slot, truth_from_slots
from services.simulator.gpus import GpuClass, GpuReadingInput, gpu_serial, gpu_uuid, idle_reading
from services.simulator.performance import (
    EngineCosts,
    Limits,
    MixSummary,
    capacity,
    engine_costs,
    mix_summary,
)
from services.simulator.pod_metrics import (
    E2E,
    GEN_LEN,
    MEAN_TPOT,
    PROMPT_LEN,
    QUEUE,
    TOKEN_LATENCY,
    TTFT,
    PodMetrics,
)
from services.simulator.serving_config import TGI, ServingConfig

__all__ = ["DeploymentKey", "Fleet", "FleetTruth", "ServingPod", "TrafficSpec"]

DeploymentKey = tuple[str, str]  # (namespace, deployment name)
# ingress-nginx's proxy-read-timeout and an AWS ALB's idle timeout both default to 60 s: a
# non-streaming completion sends nothing until it is done, so the gateway cuts it at 60 s.
CLIENT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ServingPod:
    """One serving pod as the fleet model needs it."""

    name: str
    namespace: str
    deployment: str
    node_name: str
    container_name: str
    config: ServingConfig
    gpu: GpuClass
    gpu_count: int
    ready: bool
    serving_since: float  # sim time the engine started serving; a change resets its counters
    gpu_indices: tuple[int, ...] = ()  # device indices on the node; default 0..gpu_count-1

    @property
    def node_gpu_indices(self) -> tuple[int, ...]:
        return self.gpu_indices or tuple(range(self.gpu_count))


@dataclass(frozen=True)
class TrafficSpec:
    """The load offered to one Deployment (its Service)."""

    requests_per_second: float
    long_context_share: float = 0.02
    prompt_tokens_mean: float = 800.0
    prompt_tokens_sigma: float = 0.7
    long_prompt_tokens_mean: float = 14000.0
    long_prompt_tokens_sigma: float = 0.45
    output_tokens_mean: float = 250.0
    output_tokens_sigma: float = 0.6
    burst_start: float | None = None  # sim time; None = no burst
    burst_end: float | None = None  # None = until changed
    burst_long_context_share: float | None = None  # absolute share during the burst
    burst_long_context_factor: float = 1.0  # or: multiply the share during the burst
    client_timeout_s: float = CLIENT_TIMEOUT_S  # a request not done by then is aborted

    def long_share_at(self, now: float) -> float:
        share = self.long_context_share
        started = self.burst_start is not None and now >= self.burst_start
        if started and (self.burst_end is None or now < self.burst_end):
            if self.burst_long_context_share is not None:
                share = self.burst_long_context_share
            else:
                share *= self.burst_long_context_factor
        return min(1.0, max(0.0, share))


class Fleet:
    """The serving fleet's state, advanced tick by tick on the simulated clock."""

    def __init__(
        self,
        seed: int = 0,
        *,
        samples_per_deployment: int = 600,
        max_samples_per_pod: int = 16,
        history_s: float = 1800.0,
    ) -> None:
        self._rng = random.Random(seed)
        self._samples_per_deployment = samples_per_deployment
        self._max_samples_per_pod = max_samples_per_pod
        self._history_s = history_s
        self._pods: dict[tuple[str, str], PodMetrics] = {}
        self._history: dict[DeploymentKey, deque[Slot]] = {}
        self.now = 0.0
        self.generation = 0  # advances so far: whatever was derived from the state is stale

    def pod_metrics(self, namespace: str, name: str) -> PodMetrics | None:
        return self._pods.get((namespace, name))

    def gpu_readings(self, pod: ServingPod) -> list[GpuReadingInput]:
        """The pod's GPUs as its nvidia-smi and DCGM see them now (idle if it is not serving)."""
        state = self._pods.get((pod.namespace, pod.name))
        if state is not None and state.readings and len(state.readings) == pod.gpu_count:
            return list(state.readings)
        return [
            idle_reading(pod.gpu, pod.node_name, node_index, index)
            for index, node_index in enumerate(pod.node_gpu_indices)
        ]

    def advance(
        self,
        pods: Sequence[ServingPod],
        traffic_by_deployment: Mapping[DeploymentKey, TrafficSpec],
        now: float,
        dt: float,
    ) -> None:
        """Simulate the `dt` seconds of traffic ending at sim time `now`.

        Pods missing from `pods` are forgotten (their series disappear, as a deleted pod's do);
        a pod whose `serving_since` changed starts from zero counters (a restarted engine).
        Raises ValueError when `dt` is not positive.
        """
        if dt <= 0:
            raise ValueError(f"a tick must cover some time, got dt={dt}")
        self.now = now
        self.generation += 1
        present = {(p.namespace, p.name) for p in pods}
        for key in [k for k in self._pods if k not in present]:
            del self._pods[key]
        groups: dict[DeploymentKey, list[ServingPod]] = {}
        for pod in sorted(pods, key=lambda p: (p.namespace, p.deployment, p.name)):
            groups.setdefault((pod.namespace, pod.deployment), []).append(pod)
        for key, members in groups.items():
            slot = Slot(end=now, dt=dt)
            ready = {p.name for p in members if p.ready and p.serving_since <= now}
            slot.ready_pods = len(ready)
            spec = traffic_by_deployment.get(key)
            rate = spec.requests_per_second / len(ready) if spec and ready else 0.0
            per_pod = self._samples_per_deployment // max(1, len(ready))
            per_pod = max(1, min(self._max_samples_per_pod, per_pod))
            for pod in members:
                pod_rate = rate if pod.name in ready else 0.0
                self._advance_pod(pod, spec, pod_rate, now, dt, per_pod, slot)
            history = self._history.setdefault(key, deque())
            history.append(slot)
            while history and history[0].end < now - self._history_s:
                history.popleft()

    def _state(self, pod: ServingPod) -> PodMetrics:
        key = (pod.namespace, pod.name)
        state = self._pods.get(key)
        if state is None or state.serving_since != pod.serving_since or state.config != pod.config:
            state = PodMetrics.fresh(pod.config, pod.serving_since)
            self._pods[key] = state
        return state

    def _advance_pod(
        self,
        pod: ServingPod,
        spec: TrafficSpec | None,
        rate: float,
        now: float,
        dt: float,
        samples: int,
        slot: Slot,
    ) -> None:
        state = self._state(pod)
        costs = engine_costs(pod.config, pod.gpu, pod.gpu_count)
        serving = pod.ready and pod.serving_since <= now
        load = (0.0, 0.0)
        if serving and spec is not None:
            load = self._serve(pod, state, costs, spec, rate, now, dt, samples, slot)
        else:
            state.running = state.waiting = 0
            state.kv_usage = state.generation_throughput = 0.0
            state.backlog = 0
        state.readings = self._readings(pod, costs, load if serving else None)
        for reading in state.readings:
            acc = slot.gpu.setdefault(reading.gpu.nvml_name, [0.0, 0.0, 0.0])
            acc[0] += reading.utilization_gpu
            acc[1] += reading.memory_used_mib
            acc[2] += 1

    def _poisson(self, mean: float) -> int:
        if mean <= 0:
            return 0
        if mean > 40:
            return max(0, round(self._rng.gauss(mean, math.sqrt(mean))))
        limit, k, product = math.exp(-mean), 0, self._rng.random()
        while product > limit:
            k += 1
            product *= self._rng.random()
        return k

    def _binomial(self, n: int, p: float) -> int:
        if n <= 0 or p <= 0:
            return 0
        if p >= 1:
            return n
        if n <= 60:
            return sum(1 for _ in range(n) if self._rng.random() < p)
        draw = round(self._rng.gauss(n * p, math.sqrt(n * p * (1 - p))))
        return min(n, max(0, draw))

    def _limits(self, config: ServingConfig) -> Limits:
        max_total = config.effective_max_model_len
        max_prompt = max_total - 1
        if config.engine == TGI and config.max_input_tokens is not None:
            max_prompt = config.max_input_tokens
        return Limits(max_prompt, max_total, config.effective_max_new_tokens)

    def _serve(
        self,
        pod: ServingPod,
        state: PodMetrics,
        costs: EngineCosts,
        spec: TrafficSpec,
        rate: float,
        now: float,
        dt: float,
        samples: int,
        slot: Slot,
    ) -> tuple[float, float]:
        """One tick of one serving pod; returns (share of time the GPU is busy, share of its
        capacity in use)."""
        limits = self._limits(pod.config)
        short = (spec.prompt_tokens_mean, spec.prompt_tokens_sigma)
        long = (spec.long_prompt_tokens_mean, spec.long_prompt_tokens_sigma)
        output = (spec.output_tokens_mean, spec.output_tokens_sigma)
        share = spec.long_share_at(now - dt / 2)  # the tick covers (now - dt, now]
        mix = mix_summary(short, long, output, share, limits, costs)
        arrivals = self._poisson(rate * dt)
        accepted = self._binomial(arrivals, mix.accepted)
        too_long = arrivals - accepted

        lam = accepted / dt
        cap = capacity(costs, mix)
        max_running = cap.max_running
        per_seq = costs.step_per_seq_s + cap.ctx_tokens * costs.step_per_ctx_token_s
        saturated = lam >= cap.requests_per_s
        if saturated:
            prefill_load, running = cap.prefill_load, max_running
        else:
            # Little's law on running sequences, solved for the batch size.
            prefill_load = lam * mix.prefill_s
            share = 1.0 - prefill_load
            denominator = 1.0 - lam * mix.output * per_seq / share
            running = max_running
            if denominator > 0:
                running = lam * (cap.ttft_s + mix.output * costs.step_base_s / share) / denominator
            running = min(running, max_running)
        decode_share = 1.0 - prefill_load
        step = costs.step_s(running, cap.ctx_tokens) / decode_share
        service = cap.ttft_s + mix.output * step
        throughput = cap.requests_per_s

        # Queueing: Sakasegawa's M/G/c wait below capacity, a growing backlog above it,
        # bounded by clients giving up after their timeout.
        mean_wait = 0.0
        if not saturated and lam > 0:
            rho = min(lam / throughput, 0.98)
            servers = max(1.0, max_running)
            exponent = math.sqrt(2 * (servers + 1)) - 1
            mean_wait = service * rho**exponent / (servers * (1 - rho))
        # Whole requests throughout, so completions + queue + refusals add up to arrivals.
        backlog_before = state.backlog
        backlog = max(0, math.floor(backlog_before + accepted - throughput * dt))
        overloaded = 0
        if costs.max_in_flight is not None:  # TGI answers 429 beyond its concurrency limit
            overloaded = max(0, backlog - math.floor(max(0.0, costs.max_in_flight - running)))
            backlog -= overloaded
        # A queued request that cannot finish before its client's timeout is abandoned: the
        # connection closes and the engine aborts it before it is scheduled.
        room = throughput * max(0.0, spec.client_timeout_s - service)
        abandoned = max(0, backlog - math.floor(room))
        backlog -= abandoned
        completed = backlog_before + accepted - backlog - overloaded - abandoned
        backlog_wait = (backlog_before + backlog) / 2.0 / throughput if throughput > 0 else 0.0
        state.backlog = backlog

        aborted = abandoned + self._observe(
            pod, state, costs, spec, mix, limits, share, completed, samples, slot,
            backlog_wait, mean_wait, step, prefill_load,
        )  # fmt: skip
        for reason, count in (
            ("validation", too_long),
            ("overloaded", overloaded),
            ("timeout", aborted),
        ):
            if count:
                state.failed[reason] = state.failed.get(reason, 0) + count
        slot.refused += too_long + overloaded + aborted
        slot.timed_out += aborted
        state.running = max(0, round(running + self._rng.gauss(0, math.sqrt(running) * 0.3)))
        state.waiting = round(backlog)
        state.kv_usage = (
            min(1.0, running * cap.ctx_tokens / costs.kv_tokens) if costs.kv_tokens else 0.0
        )
        if lam <= 0 and backlog <= 0:
            return 0.0, 0.0
        # Continuous batching keeps kernels running whenever a sequence is: utilisation
        # reads near 100 % long before the GPU's capacity is used up (power tells those apart).
        busy = min(1.0, prefill_load + decode_share * (1.0 - math.exp(-running / 2.0)))
        return busy, min(1.0, lam / throughput) if throughput > 0 else 1.0

    def _draw_prompt(self, spec: TrafficSpec, long: bool, limits: Limits) -> int:
        mean, sigma = (
            (spec.long_prompt_tokens_mean, spec.long_prompt_tokens_sigma)
            if long
            else (spec.prompt_tokens_mean, spec.prompt_tokens_sigma)
        )
        mu = math.log(max(mean, 1.0)) - sigma * sigma / 2
        for _ in range(8):
            p = int(self._rng.lognormvariate(mu, sigma)) + 1
            if p <= limits.max_prompt:
                return p
        return limits.max_prompt

    def _observe(
        self,
        pod: ServingPod,
        state: PodMetrics,
        costs: EngineCosts,
        spec: TrafficSpec,
        mix: MixSummary,
        limits: Limits,
        share: float,
        completed: int,
        samples: int,
        slot: Slot,
        backlog_wait: float,
        mean_wait: float,
        step: float,
        prefill_load: float,
    ) -> int:
        """Draw the `completed` requests that left the queue this tick; returns how many of
        them the client gave up on before the last token."""
        if completed <= 0:
            state.generation_throughput = 0.0
            return 0
        timeout = spec.client_timeout_s
        aborted = 0
        k = min(completed, samples)
        base, extra = divmod(completed, k)
        out_mu = math.log(max(spec.output_tokens_mean, 1.0)) - spec.output_tokens_sigma**2 / 2
        hist = state.histograms
        tokens_this_tick = 0
        for i in range(k):
            weight = base + (1 if i < extra else 0)
            long = share > 0 and self._rng.random() < mix.long_share
            prompt = self._draw_prompt(spec, long, limits)
            wanted = int(self._rng.lognormvariate(out_mu, spec.output_tokens_sigma)) + 1
            room = min(limits.max_new, limits.max_total - prompt)
            out = max(1, min(wanted, room))
            reason = "length" if wanted > room else "stop"
            wait = backlog_wait * (0.8 + 0.4 * self._rng.random())
            if mean_wait > 0:
                wait += self._rng.expovariate(1.0 / mean_wait)
            itl = step * self._rng.lognormvariate(0.0, 0.08)
            ttft = wait + costs.prefill_s(prompt) / (1.0 - 0.5 * prefill_load) + itl
            e2e = (ttft + (out - 1) * itl) * self._rng.lognormvariate(0.0, 0.04)
            if e2e > timeout:
                # The client hung up first and the engine aborted the request: no end-to-end
                # latency is recorded, but what happened before the abort was (the wait, the
                # first token, the tokens made so far).
                made = 0
                if wait < timeout and QUEUE in hist:
                    hist[QUEUE].observe(wait, weight)
                if ttft <= timeout:
                    made = min(out - 1, 1 + int((timeout - ttft) / itl))
                    if TTFT in hist:
                        hist[TTFT].observe(ttft, weight)
                    if TOKEN_LATENCY in hist and made > 1:
                        hist[TOKEN_LATENCY].observe(itl, weight * (made - 1))
                    state.prompt_tokens += prompt * weight
                    slot.prompt_tokens += prompt * weight
                    slot.ttft.add(ttft, weight)
                state.generation_tokens += made * weight
                tokens_this_tick += made * weight
                aborted += weight
                continue
            hist[E2E].observe(e2e, weight)
            if TTFT in hist:
                hist[TTFT].observe(ttft, weight)
            if QUEUE in hist:
                hist[QUEUE].observe(wait, weight)
            if TOKEN_LATENCY in hist and out > 1:
                hist[TOKEN_LATENCY].observe(itl, weight * (out - 1))
            if MEAN_TPOT in hist:
                hist[MEAN_TPOT].observe((e2e - ttft) / max(1, out - 1) if out > 1 else itl, weight)
            if PROMPT_LEN in hist:
                hist[PROMPT_LEN].observe(prompt, weight)
            if GEN_LEN in hist:
                hist[GEN_LEN].observe(out, weight)
            state.finished[reason] += weight
            state.prompt_tokens += prompt * weight
            state.generation_tokens += out * weight
            tokens_this_tick += out * weight
            slot.e2e.add(e2e, weight)
            slot.ttft.add(ttft, weight)
            slot.prompt_tokens += prompt * weight
        slot.requests += completed - aborted
        slot.generation_tokens += tokens_this_tick
        state.generation_throughput = tokens_this_tick / slot.dt if slot.dt > 0 else 0.0
        return aborted

    def _readings(
        self, pod: ServingPod, costs: EngineCosts, load: tuple[float, float] | None
    ) -> tuple[GpuReadingInput, ...]:
        gpu = pod.gpu
        out = []
        for index, node_index in enumerate(pod.node_gpu_indices):
            active = load is not None and index < costs.active_gpus
            busy, used = load if (active and load is not None) else (0.0, 0.0)
            noise = self._rng.gauss(0, 1.5) if busy > 0 else 0.0
            util = min(100, max(0, round(100 * busy + noise)))
            mem_util = min(100, round(util * (0.35 + 0.5 * used)))
            draw = gpu.idle_power_w + (gpu.power_limit_w - gpu.idle_power_w) * (
                0.25 * busy + 0.65 * used
            )
            if active:
                draw = draw * (1.0 + self._rng.gauss(0, 0.015)) + 12.0  # weights resident
            draw = min(draw, gpu.power_limit_w * 0.995)
            heat = draw / gpu.power_limit_w
            temp = round(30 + 42 * heat + self._rng.gauss(0, 0.6)) + node_index % 3
            if busy > 0.05:
                throttle = max(0.0, heat - 0.85) / 0.15 * 0.08
                clock = int(gpu.sm_clock_mhz * (1 - throttle) / 15) * 15
            else:
                clock = gpu.idle_sm_clock_mhz
            out.append(
                GpuReadingInput(
                    gpu=gpu,
                    index=index,
                    node_index=node_index,
                    node_name=pod.node_name,
                    uuid=gpu_uuid(pod.node_name, node_index),
                    serial=gpu_serial(pod.node_name, node_index),
                    pci_bus_id=gpu.pci_bus_id(node_index),
                    utilization_gpu=util,
                    utilization_memory=mem_util,
                    memory_used_mib=costs.fb_used_mib if active else 0,
                    temperature_c=temp,
                    power_draw_w=round(draw, 2),
                    sm_clock_mhz=clock,
                )
            )
        return tuple(out)

    def ground_truth(self, namespace: str, deployment: str, window_s: float) -> FleetTruth:
        """Exact figures for a Deployment over the last `window_s` seconds of sim time.

        Quantiles are over the very weighted observations the exposed histograms were built
        from. A Deployment the fleet never saw gives zeros and None quantiles.
        """
        history = self._history.get((namespace, deployment), deque())
        slots = [s for s in history if s.end > self.now - window_s + 1e-9]
        return truth_from_slots(namespace, deployment, window_s, slots)
