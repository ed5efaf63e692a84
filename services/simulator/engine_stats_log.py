"""The lines a serving engine logs every 10 seconds while it serves, from the fleet's figures.

vLLM's stat logger prints the average prompt and generation throughput over the last
interval, the running and waiting requests and the KV-cache usage (V1 engines, 0.8 on, name
the engine and add the prefix-cache hit rate; V0 ones also count swapped requests and the CPU
cache). TGI and SGLang print no periodic line of this kind (TGI logs each request; SGLang's
"Decode batch" lines come per batch), so only vLLM pods get them. Lines are written when the
fleet has simulated the interval they report on, so a line once read never changes; an engine
serving since before the simulator started has none for that time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from services.simulator.fleet import Fleet, ServingPod
from services.simulator.pod_logs import LogBook
from services.simulator.serving_config import VLLM, version_tuple

INTERVAL_S = 10.0  # vLLM's VLLM_LOG_STATS_INTERVAL default


@dataclass
class _Counter:
    serving_since: float
    due: float
    prompt_tokens: int
    generation_tokens: int


def stats_line(
    pod: ServingPod, at: float, prompt_tps: float, generation_tps: float, running: int,
    waiting: int, kv_usage: float,
) -> str:  # fmt: skip
    """vLLM's periodic stats line at `at` (epoch seconds)."""
    stamp = time.strftime("%m-%d %H:%M:%S", time.gmtime(at))
    if version_tuple(pod.config.engine_version) >= (0, 8):
        return (
            f"INFO {stamp} [loggers.py:116] Engine 000: Avg prompt throughput: "
            f"{prompt_tps:.1f} tokens/s, Avg generation throughput: {generation_tps:.1f} "
            f"tokens/s, Running: {running} reqs, Waiting: {waiting} reqs, GPU KV cache usage: "
            f"{kv_usage * 100:.1f}%, Prefix cache hit rate: 0.0%"
        )
    return (
        f"INFO {stamp} metrics.py:351] Avg prompt throughput: {prompt_tps:.1f} tokens/s, "
        f"Avg generation throughput: {generation_tps:.1f} tokens/s, Running: {running} reqs, "
        f"Swapped: 0 reqs, Pending: {waiting} reqs, GPU KV cache usage: {kv_usage * 100:.1f}%, "
        "CPU KV cache usage: 0.0%."
    )


class StatsLog:
    """Writes each serving vLLM pod's stats line into the log book every INTERVAL_S."""

    def __init__(self, book: LogBook) -> None:
        self._book = book
        self._counters: dict[tuple[str, str], _Counter] = {}

    def observe(self, fleet: Fleet, pods: list[ServingPod], now: float) -> None:
        """Called after the fleet simulated up to `now`: write the lines due by then."""
        seen: set[tuple[str, str]] = set()
        for pod in pods:
            if pod.config.engine != VLLM or not pod.ready or pod.serving_since > now:
                continue
            key = (pod.namespace, pod.name)
            state = fleet.pod_metrics(*key)
            if state is None:
                continue
            seen.add(key)
            counter = self._counters.get(key)
            if counter is None or counter.serving_since != pod.serving_since:
                # Start counting from here: an interval before it was not simulated.
                self._counters[key] = _Counter(
                    pod.serving_since,
                    max(now, pod.serving_since) + INTERVAL_S,
                    state.prompt_tokens,
                    state.generation_tokens,
                )
                continue
            if now < counter.due:
                continue
            span = INTERVAL_S + (now - counter.due) // INTERVAL_S * INTERVAL_S
            at = counter.due + (now - counter.due) // INTERVAL_S * INTERVAL_S
            line = stats_line(
                pod,
                at,
                (state.prompt_tokens - counter.prompt_tokens) / span,
                (state.generation_tokens - counter.generation_tokens) / span,
                state.running,
                state.waiting,
                state.kv_usage,
            )
            self._book.append(pod.namespace, pod.name, pod.container_name, at, line)
            counter.due = at + INTERVAL_S
            counter.prompt_tokens = state.prompt_tokens
            counter.generation_tokens = state.generation_tokens
        for key in [k for k in self._counters if k not in seen]:
            del self._counters[key]
