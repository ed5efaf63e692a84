"""Resource quantities and what a pod asks for, as the scheduler and kubelet count them."""

from __future__ import annotations

import re
from typing import Any

Obj = dict[str, Any]
GPU = "nvidia.com/gpu"
# The scheduler's non-zero defaults for containers that request nothing (scoring only).
DEFAULT_CPU = 0.1
DEFAULT_MEMORY = 200 * 1024 * 1024

_SUFFIXES = {
    "": 1.0,
    "m": 1e-3,
    "u": 1e-6,
    "n": 1e-9,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


def parse_quantity(value: Any) -> float:
    """A resource.Quantity as a float ("500m" -> 0.5, "16Gi" -> 17179869184.0).

    Raises ValueError for text that is not a quantity.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(str(value).strip())
    if match is None or match.group(2) not in _SUFFIXES:
        raise ValueError(f"not a quantity: {value!r}")
    return float(match.group(1)) * _SUFFIXES[match.group(2)]


def _quantities(mapping: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(mapping, dict):
        for name, value in mapping.items():
            try:
                out[str(name)] = parse_quantity(value)
            except ValueError:
                continue
    return out


def container_requests(container: Obj) -> dict[str, float]:
    """Requests, with limits standing in for requests left out (the API server's defaulting)."""
    resources = container.get("resources") or {}
    out = _quantities(resources.get("limits"))
    out.update(_quantities(resources.get("requests")))
    return out


def pod_requests(pod: Obj) -> dict[str, float]:
    """What the scheduler reserves: containers summed, at least any init container, + overhead."""
    spec = pod.get("spec") or {}
    total: dict[str, float] = {}
    for container in spec.get("containers") or []:
        for name, amount in container_requests(container).items():
            total[name] = total.get(name, 0.0) + amount
    for container in spec.get("initContainers") or []:
        for name, amount in container_requests(container).items():
            total[name] = max(total.get(name, 0.0), amount)
    for name, amount in _quantities(spec.get("overhead")).items():
        total[name] = total.get(name, 0.0) + amount
    return total


def allocatable(node: Obj) -> dict[str, float]:
    status = node.get("status") or {}
    return _quantities(status.get("allocatable") or status.get("capacity"))


def qos_class(pod: Obj) -> str:
    """v1.PodQOSClass from cpu and memory requests/limits (pkg/apis/core/helper/qos)."""
    containers = list((pod.get("spec") or {}).get("containers") or [])
    containers += list((pod.get("spec") or {}).get("initContainers") or [])
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        limits = _quantities(resources.get("limits"))
        requests = dict(limits)
        requests.update(_quantities(resources.get("requests")))
        for name in ("cpu", "memory"):
            if name in requests or name in limits:
                any_set = True
            if name not in limits or requests.get(name) != limits[name]:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
