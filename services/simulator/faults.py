"""Fault injection: latency, errors, conflicts, dropped watches, failing exec.

Set by a scenario's `faults:` list and changeable at run time (tests call `FaultSet.set`;
drill trainers POST to `/_sim/faults`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Fault:
    verb: str = "*"  # get, list, watch, create, update, patch, delete, exec, log
    resource: str = "*"  # plural, or plural/subresource; "metrics": the /metrics scrape
    latency_s: float = 0.0  # wall-clock seconds added before answering
    error_rate: float = 0.0  # probability of answering `error_code` instead
    error_code: int = 500
    # A 429's Retry-After (seconds), also sent as details.retryAfterSeconds; 0 sends neither,
    # as a proxy in front of the server might.
    retry_after_s: int = 1
    conflicts: int = 0  # answer the next N matching writes with 409 Conflict
    drop_after: int = 0  # watches: close the stream after this many events
    exec_fail: bool = False  # exec: the container runtime refuses

    def matches(self, verb: str, resource: str) -> bool:
        return self.verb in ("*", verb) and self.resource in ("*", resource, resource.split("/")[0])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(
                f"unknown fault field(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**known)


@dataclass
class FaultSet:
    faults: list[Fault] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def set(self, faults: list[Fault]) -> None:
        self.faults = list(faults)

    def clear(self) -> None:
        self.faults = []

    def latency(self, verb: str, resource: str) -> float:
        return sum(f.latency_s for f in self.faults if f.matches(verb, resource))

    def error(self, verb: str, resource: str) -> Fault | None:
        """The fault whose injected error answers this request, if one fires."""
        for fault in self.faults:
            hit = fault.matches(verb, resource) and fault.error_rate > 0
            if hit and self.rng.random() < fault.error_rate:
                return fault
        return None

    def scrape_error(self) -> Fault | None:
        """The fault that fails a Prometheus scrape of /metrics, if one fires. Only a fault
        naming resource `metrics` reaches the exporter: API faults leave scrapes alone, as
        an API server's trouble leaves the pods' exporters alone."""
        for fault in self.faults:
            if fault.resource != "metrics" or fault.error_rate <= 0:
                continue
            if self.rng.random() < fault.error_rate:
                return fault
        return None

    def take_conflict(self, verb: str, resource: str) -> bool:
        for fault in self.faults:
            if fault.matches(verb, resource) and fault.conflicts > 0:
                fault.conflicts -= 1
                return True
        return False

    def drop_after(self, resource: str) -> int:
        counts = [
            f.drop_after for f in self.faults if f.matches("watch", resource) and f.drop_after
        ]
        return min(counts) if counts else 0

    def exec_fails(self) -> bool:
        return any(f.exec_fail for f in self.faults if f.matches("exec", "pods/exec"))

    def describe(self) -> list[dict[str, Any]]:
        return [dict(f.__dict__) for f in self.faults]
