"""Scenarios as data: nodes, objects, deployment revision histories, traffic and faults."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from services.simulator.faults import Fault

_AGE = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ScenarioError(ValueError):
    """A scenario file that cannot be loaded; the message names the file and the problem."""


@dataclass(frozen=True)
class NodeGroup:
    prefix: str
    count: int
    gpu: str = ""  # GFD product label, e.g. NVIDIA-H100-80GB-HBM3
    gpus: int = 0
    cpu: str = ""  # "" = the instance type's
    memory: str = ""
    roles: tuple[str, ...] = ()
    taints: tuple[dict[str, str], ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    zone: str = ""  # "" = the instance type's cloud's first zone


@dataclass(frozen=True)
class RevisionSpec:
    age_s: float
    template: dict[str, Any]
    change_cause: str = ""
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    namespace: str
    replicas: int
    labels: dict[str, str]
    history: tuple[RevisionSpec, ...]
    annotations: dict[str, str] = field(default_factory=dict)
    deployment_labels: dict[str, str] = field(default_factory=dict)
    strategy: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Burst:
    since_s: float  # relative to the scenario's "now"; negative = already going
    long_context_share: float
    duration_s: float = 0.0  # 0 = until stopped


@dataclass(frozen=True)
class TrafficSpec:
    namespace: str
    deployment: str
    rps: float
    long_context_share: float
    burst: Burst | None = None
    # Seconds before clients (or the gateway in front of them) give up on a request.
    client_timeout_s: float = 60.0


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    namespace: str
    deployment: str
    engine: str
    custom_resources: tuple[str, ...]
    timing: dict[str, float]
    images: dict[str, str]
    nodes: tuple[NodeGroup, ...]
    objects: tuple[dict[str, Any], ...]
    deployments: tuple[DeploymentSpec, ...]
    traffic: tuple[TrafficSpec, ...]
    faults: tuple[Fault, ...]
    namespaces: tuple[str, ...]
    # Argo CD self-heal emulation: {"application": {namespace, name},
    # "deployment": {namespace, name}, "self_heal_after_s": N}
    gitops: dict[str, Any] = field(default_factory=dict)
    # Seconds of serving the fleet has behind it when the scenario starts: what a Prometheus
    # that has been scraping all along would already hold (0: none, e.g. for `large`).
    metrics_history_s: float = 0.0


def available() -> list[str]:
    folder = resources.files("services.simulator") / "scenarios"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def parse_age(text: Any, where: str) -> float:
    match = _AGE.match(str(text).strip())
    if not match:
        raise ScenarioError(f"{where}: age {text!r} is not like 90s, 15m, 2h or 3d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def load(name_or_path: str) -> Scenario:
    """Load a built-in scenario by name, or a scenario file by path.

    Raises ScenarioError naming the scenario and what is wrong with it.
    """
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        text, origin = path.read_text(), str(path)
    else:
        if name_or_path not in available():
            raise ScenarioError(
                f"unknown scenario {name_or_path!r}; built-in scenarios: "
                f"{', '.join(available())} (or give a path to a .yaml file)"
            )
        folder = resources.files("services.simulator") / "scenarios"
        text, origin = (folder / f"{name_or_path}.yaml").read_text(), name_or_path
    try:
        # libyaml's loader where it is built in: ~40 ms less on every start (issue 12).
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise ScenarioError(f"scenario {origin}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ScenarioError(f"scenario {origin}: expected a mapping at the top level")
    try:
        return _build(data, origin)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ScenarioError):
            raise
        raise ScenarioError(f"scenario {origin}: {type(exc).__name__}: {exc}") from exc


def _timeout(value: Any, origin: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not seconds > 0:
        raise ScenarioError(
            f"scenario {origin}: traffic client_timeout_s must be a positive number of seconds"
        )
    return seconds


def _seconds(value: Any, origin: str) -> float:
    seconds = float(value)
    if not seconds >= 0:
        raise ScenarioError(f"scenario {origin}: metrics_history_s must be 0 or more seconds")
    return seconds


def _build(data: dict[str, Any], origin: str) -> Scenario:
    namespace = str(data.get("namespace", "default"))
    deployments = []
    for raw in data.get("deployments", []):
        where = f"scenario {origin}: deployment {raw.get('name')!r}"
        history = tuple(
            RevisionSpec(
                parse_age(h.get("age", "0s"), where),
                h["template"],
                str(h.get("change_cause", "")),
                dict(h.get("annotations", {})),
            )
            for h in raw["history"]
        )
        if not history:
            raise ScenarioError(f"{where}: history is empty")
        deployments.append(
            DeploymentSpec(
                name=raw["name"],
                namespace=str(raw.get("namespace", namespace)),
                replicas=int(raw.get("replicas", 1)),
                labels=dict(raw.get("labels") or {"app": raw["name"]}),
                history=history,
                annotations=dict(raw.get("annotations", {})),
                deployment_labels=dict(raw.get("deployment_labels", {})),
                strategy=dict(raw.get("strategy", {})),
            )
        )
    traffic = []
    for raw in data.get("traffic", []):
        burst = raw.get("burst")
        traffic.append(
            TrafficSpec(
                namespace=str(raw.get("namespace", namespace)),
                deployment=raw["deployment"],
                rps=float(raw["rps"]),
                long_context_share=float(raw.get("long_context_share", 0.0)),
                burst=Burst(
                    float(burst.get("since_s", 0)),
                    float(burst["long_context_share"]),
                    float(burst.get("duration_s", 0)),
                )
                if burst
                else None,
                client_timeout_s=_timeout(raw.get("client_timeout_s", 60.0), origin),
            )
        )
    nodes = tuple(
        NodeGroup(
            prefix=n["prefix"],
            count=int(n.get("count", 1)),
            gpu=str(n.get("gpu", "")),
            gpus=int(n.get("gpus", 0)),
            cpu=str(n.get("cpu", "")),
            memory=str(n.get("memory", "")),
            roles=tuple(n.get("roles", ())),
            taints=tuple(n.get("taints", ())),
            labels=dict(n.get("labels", {})),
            zone=str(n.get("zone", "")),
        )
        for n in data.get("nodes", [])
    )
    objects = tuple(data.get("objects", []))
    namespaces = {namespace, "default", "kube-system"}
    namespaces.update(d.namespace for d in deployments)
    namespaces.update(
        o.get("metadata", {}).get("namespace", namespace)
        for o in objects
        if o.get("kind") not in ("Namespace", "Node")
    )
    return Scenario(
        name=str(data.get("name", origin)),
        description=str(data.get("description", "")),
        namespace=namespace,
        deployment=str(data.get("deployment", "")),
        engine=str(data.get("engine", "vllm")),
        custom_resources=tuple(data.get("custom_resources", ())),
        timing={k: float(v) for k, v in (data.get("timing") or {}).items()},
        images={str(k): str(v) for k, v in (data.get("images") or {}).items()},
        nodes=nodes,
        objects=objects,
        deployments=tuple(deployments),
        traffic=tuple(traffic),
        faults=tuple(Fault.from_dict(f) for f in data.get("faults") or []),
        namespaces=tuple(sorted(namespaces)),
        gitops=dict(data.get("gitops") or {}),
        metrics_history_s=_seconds(data.get("metrics_history_s", 0.0), origin),
    )
