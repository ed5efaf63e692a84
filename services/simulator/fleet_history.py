"""The per-Deployment record the fleet keeps, and the exact figures computed from it."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FleetTruth:
    """What really happened to a Deployment's requests over a window (the oracle's answer)."""

    namespace: str
    deployment: str
    window_s: float  # the part of the asked window the fleet has history for
    requests: int  # completed requests
    refused: int  # rejected (too long, overloaded) or aborted after the client timeout
    timed_out: int  # of those, aborted because the client gave up (vLLM: finished "abort")
    request_rate: float
    p50_e2e_s: float | None
    p95_e2e_s: float | None
    p99_e2e_s: float | None
    p99_ttft_s: float | None
    generation_tokens: int
    tokens_per_s: float
    prompt_tokens_per_s: float
    gpu_util_by_model: dict[str, float]  # mean DCGM_FI_DEV_GPU_UTIL per modelName
    fb_used_mib_by_model: dict[str, float]  # mean DCGM_FI_DEV_FB_USED per modelName
    ready_pods: int


class Observations:
    """Values with integer weights (each sampled request stands for `weight` requests)."""

    __slots__ = ("values", "weights")

    def __init__(self) -> None:
        self.values = array("d")
        self.weights = array("q")

    def add(self, value: float, weight: int) -> None:
        self.values.append(value)
        self.weights.append(weight)

    def extend(self, other: Observations) -> None:
        self.values.extend(other.values)
        self.weights.extend(other.weights)


@dataclass
class Slot:
    """What one tick did to one Deployment."""

    end: float
    dt: float
    # Weighted observations in parallel arrays: 16 bytes each, for 5,000-pod fleets.
    e2e: Observations = field(default_factory=Observations)
    ttft: Observations = field(default_factory=Observations)
    requests: int = 0
    refused: int = 0
    timed_out: int = 0
    generation_tokens: int = 0
    prompt_tokens: int = 0
    gpu: dict[str, list[float]] = field(default_factory=dict)  # model -> [util, fb, n]
    ready_pods: int = 0


def weighted_quantile(observations: Observations, q: float) -> float | None:
    """The smallest observed value with at least a q share of the total weight at or below it."""
    values, weights = observations.values, observations.weights
    total = sum(weights)
    if total <= 0:
        return None
    target = q * total
    running = 0
    for i in sorted(range(len(values)), key=values.__getitem__):
        running += weights[i]
        if running >= target:
            return values[i]
    return max(values)


def truth_from_slots(
    namespace: str, deployment: str, window_s: float, slots: Sequence[Slot]
) -> FleetTruth:
    """Sum and rank what the given ticks recorded; rates are over the seconds they cover."""
    covered = min(window_s, sum(s.dt for s in slots)) if slots else 0.0
    e2e, ttft = Observations(), Observations()
    for s in slots:
        e2e.extend(s.e2e)
        ttft.extend(s.ttft)
    requests = sum(s.requests for s in slots)
    tokens = sum(s.generation_tokens for s in slots)
    prompt = sum(s.prompt_tokens for s in slots)
    gpu: dict[str, list[float]] = {}
    for s in slots:
        for model, (util, fb, n) in s.gpu.items():
            acc = gpu.setdefault(model, [0.0, 0.0, 0.0])
            acc[0] += util
            acc[1] += fb
            acc[2] += n

    def per_s(amount: float) -> float:
        return amount / covered if covered > 0 else 0.0

    return FleetTruth(
        namespace=namespace,
        deployment=deployment,
        window_s=covered,
        requests=requests,
        refused=sum(s.refused for s in slots),
        timed_out=sum(s.timed_out for s in slots),
        request_rate=per_s(requests),
        p50_e2e_s=weighted_quantile(e2e, 0.50),
        p95_e2e_s=weighted_quantile(e2e, 0.95),
        p99_e2e_s=weighted_quantile(e2e, 0.99),
        p99_ttft_s=weighted_quantile(ttft, 0.99),
        generation_tokens=tokens,
        tokens_per_s=per_s(tokens),
        prompt_tokens_per_s=per_s(prompt),
        gpu_util_by_model={m: a[0] / a[2] for m, a in sorted(gpu.items()) if a[2]},
        fb_used_mib_by_model={m: a[1] / a[2] for m, a in sorted(gpu.items()) if a[2]},
        ready_pods=slots[-1].ready_pods if slots else 0,
    )
