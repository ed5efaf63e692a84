"""Per-resource row printers of the built-in Tables, after printers.go line for line.

Each printer turns one stored object into the wide layout's cells (the real server always
generates every column; kubectl hides those with priority > 0 unless `-o wide`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from services.simulator.table_columns import (
    _CONFIGMAP_COLUMNS,
    _DEPLOYMENT_COLUMNS,
    _EVENT_COLUMNS,
    _NAMESPACE_COLUMNS,
    _NODE_COLUMNS,
    _POD_COLUMNS,
    _REPLICASET_COLUMNS,
    _SECRET_COLUMNS,
    _SERVICE_COLUMNS,
    _Column,
)
from services.simulator.table_format import (
    _NONE,
    _UNKNOWN,
    _containers_cells,
    _d,
    _format_label_selector,
    _format_labels,
    _i,
    _l,
    _parse_time,
    _s,
    _selector_string,
    _since,
    human_duration,
)
from services.simulator.table_system import SYSTEM_PRINTERS

_POD_SUCCEEDED = {
    "type": "Completed",
    "status": "True",
    "reason": "Succeeded",
    "message": "The pod has completed successfully.",
}
_POD_FAILED = {
    "type": "Completed",
    "status": "True",
    "reason": "Failed",
    "message": "The pod failed.",
}


def _later(current: datetime | None, state: dict[str, Any]) -> datetime | None:
    """Keep the later of `current` and the lastTerminationState's finishedAt."""
    terminated = _d(state.get("terminated")) if state.get("terminated") is not None else None
    if terminated is None:
        return current
    finished = _parse_time(terminated.get("finishedAt"))
    if finished is None or (current is not None and finished <= current):
        return current
    return finished


def _terminated_reason(term: dict[str, Any], prefix: str) -> str:
    if _s(term.get("reason")):
        return prefix + _s(term.get("reason"))
    if _i(term.get("signal")) != 0:
        return f"{prefix}Signal:{_i(term.get('signal'))}"
    return f"{prefix}ExitCode:{_i(term.get('exitCode'))}"


def _has_condition(status: dict[str, Any], kind: str) -> bool:
    conds = [_d(c) for c in _l(status.get("conditions"))]
    return any(c.get("type") == kind and c.get("status") == "True" for c in conds)


def _pod_cells(pod: dict[str, Any], now: datetime) -> list[Any]:
    """printers.go `printPod`."""
    meta, spec, status = _d(pod.get("metadata")), _d(pod.get("spec")), _d(pod.get("status"))
    restarts = sidecar_restarts = ready = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None
    phase = _s(status.get("phase"))
    reason = _s(status.get("reason")) or phase
    for cond in (_d(c) for c in _l(status.get("conditions"))):
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = {_s(_d(c).get("name")): _d(c) for c in _l(spec.get("initContainers"))}
    # Sidecars (init containers with restartPolicy Always) count towards READY's total.
    sidecars = {n for n, c in init_specs.items() if c.get("restartPolicy") == "Always"}
    total = len(_l(spec.get("containers"))) + len(sidecars)

    initializing = False
    for i, cs in enumerate(_d(c) for c in _l(status.get("initContainerStatuses"))):
        state, last_state = _d(cs.get("state")), _d(cs.get("lastState"))
        restarts += _i(cs.get("restartCount"))
        last_restart = _later(last_restart, last_state)
        is_sidecar = _s(cs.get("name")) in sidecars
        if is_sidecar:
            sidecar_restarts += _i(cs.get("restartCount"))
            last_sidecar_restart = _later(last_sidecar_restart, last_state)
        terminated = state.get("terminated")
        waiting_reason = _s(_d(state.get("waiting")).get("reason"))
        if terminated is not None and _i(_d(terminated).get("exitCode")) == 0:
            continue
        if is_sidecar and cs.get("started") is True:
            ready += 1 if cs.get("ready") is True else 0
            continue
        if terminated is not None:
            reason = _terminated_reason(_d(terminated), "Init:")
        elif waiting_reason and waiting_reason != "PodInitializing":
            reason = "Init:" + waiting_reason
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _has_condition(status, "Initialized"):
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for cs in reversed([_d(c) for c in _l(status.get("containerStatuses"))]):
            state = _d(cs.get("state"))
            restarts += _i(cs.get("restartCount"))
            last_restart = _later(last_restart, _d(cs.get("lastState")))
            waiting_reason = _s(_d(state.get("waiting")).get("reason"))
            terminated = state.get("terminated")
            if waiting_reason:
                reason = waiting_reason
            elif terminated is not None:
                reason = _terminated_reason(_d(terminated), "")
            elif cs.get("ready") is True and state.get("running") is not None:
                has_running = True
                ready += 1
        # A pod whose last container exited 0 but another still runs is not "Completed".
        if reason == "Completed" and has_running:
            reason = "Running" if _has_condition(status, "Ready") else "NotReady"

    if meta.get("deletionTimestamp") is not None:
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts != 0 and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration(now - last_restart)} ago)"

    pod_ips = [_d(p) for p in _l(status.get("podIPs"))]
    # v1 -> internal conversion fills podIPs from the legacy podIP field.
    pod_ip = _s(pod_ips[0].get("ip")) if pod_ips else _s(status.get("podIP"))
    gates = [_s(_d(g).get("conditionType")) for g in _l(spec.get("readinessGates"))]
    gates_cell = _NONE
    if gates:
        true_count = 0
        for gate in gates:
            for cond in (_d(c) for c in _l(status.get("conditions"))):
                if cond.get("type") == gate:
                    true_count += 1 if cond.get("status") == "True" else 0
                    break
        gates_cell = f"{true_count}/{len(gates)}"
    return [
        _s(meta.get("name")),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        _since(meta.get("creationTimestamp"), now),
        pod_ip or _NONE,
        _s(spec.get("nodeName")) or _NONE,
        _s(status.get("nominatedNodeName")) or _NONE,
        gates_cell,
    ]


def _pod_conditions(pod: dict[str, Any]) -> list[dict[str, str]] | None:
    phase = _d(pod.get("status")).get("phase")
    if phase == "Succeeded":
        return [dict(_POD_SUCCEEDED)]
    if phase == "Failed":
        return [dict(_POD_FAILED)]
    return None


def _deployment_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    """printers.go `printDeployment`."""
    meta, spec, status = _d(obj.get("metadata")), _d(obj.get("spec")), _d(obj.get("status"))
    selector = _selector_string(spec.get("selector"))
    return [
        _s(meta.get("name")),
        f"{_i(status.get('readyReplicas'))}/{_i(spec.get('replicas'), 1)}",
        _i(status.get("updatedReplicas")),
        _i(status.get("availableReplicas")),
        _since(meta.get("creationTimestamp"), now),
        *_containers_cells(_d(_d(spec.get("template")).get("spec"))),
        "<invalid>" if selector is None else selector,
    ]


def _replicaset_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    """printers.go `printReplicaSet`."""
    meta, spec, status = _d(obj.get("metadata")), _d(obj.get("spec")), _d(obj.get("status"))
    return [
        _s(meta.get("name")),
        _i(spec.get("replicas"), 1),
        _i(status.get("replicas")),
        _i(status.get("readyReplicas")),
        _since(meta.get("creationTimestamp"), now),
        *_containers_cells(_d(_d(spec.get("template")).get("spec"))),
        _format_label_selector(spec.get("selector")),
    ]


def _node_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    """printers.go `printNode`: only the Ready condition feeds STATUS."""
    meta, spec, status = _d(obj.get("metadata")), _d(obj.get("spec")), _d(obj.get("status"))
    ready_cond: dict[str, Any] | None = None
    for cond in (_d(c) for c in _l(status.get("conditions"))):
        if cond.get("type") == "Ready":
            ready_cond = cond
    states = ["Unknown"] if ready_cond is None else []
    if ready_cond is not None:
        states.append("Ready" if ready_cond.get("status") == "True" else "NotReady")
    if spec.get("unschedulable") is True:
        states.append("SchedulingDisabled")
    roles: set[str] = set()
    for key, value in _d(meta.get("labels")).items():
        if key.startswith("node-role.kubernetes.io/") and key != "node-role.kubernetes.io/":
            roles.add(key.removeprefix("node-role.kubernetes.io/"))
        elif key == "kubernetes.io/role" and value:
            roles.add(_s(value))
    info = _d(status.get("nodeInfo"))
    addresses = [_d(a) for a in _l(status.get("addresses"))]

    def address(kind: str) -> str:
        return next((_s(a.get("address")) for a in addresses if a.get("type") == kind), _NONE)

    return [
        _s(meta.get("name")),
        ",".join(states),
        ",".join(sorted(roles)) or _NONE,
        _since(meta.get("creationTimestamp"), now),
        _s(info.get("kubeletVersion")),
        address("InternalIP"),
        address("ExternalIP"),
        _s(info.get("osImage")) or _UNKNOWN,
        _s(info.get("kernelVersion")) or _UNKNOWN,
        _s(info.get("containerRuntimeVersion")) or _UNKNOWN,
    ]


def _service_external_ip(spec: dict[str, Any], status: dict[str, Any], svc_type: str) -> str:
    """printers.go `getServiceExternalIP` in its wide form (the server never truncates)."""
    external_ips = [_s(ip) for ip in _l(spec.get("externalIPs"))]
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) or _NONE
    if svc_type == "LoadBalancer":
        ingress = [_d(i) for i in _l(_d(status.get("loadBalancer")).get("ingress"))]
        lb = sorted({_s(i.get("ip")) or _s(i.get("hostname")) for i in ingress} - {""})
        if external_ips:
            return ",".join(lb + external_ips)
        return ",".join(lb) or "<pending>"
    if svc_type == "ExternalName":
        return _s(spec.get("externalName"))
    return _UNKNOWN


def _service_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    """printers.go `printService`."""
    meta, spec, status = _d(obj.get("metadata")), _d(obj.get("spec")), _d(obj.get("status"))
    svc_type = _s(spec.get("type")) or "ClusterIP"
    cluster_ips = _l(spec.get("clusterIPs")) or (
        [spec["clusterIP"]] if spec.get("clusterIP") else []
    )
    ports = []
    for port in (_d(p) for p in _l(spec.get("ports"))):
        proto = _s(port.get("protocol")) or "TCP"
        node_port = _i(port.get("nodePort"))
        middle = f":{node_port}" if node_port > 0 else ""
        ports.append(f"{_i(port.get('port'))}{middle}/{proto}")
    return [
        _s(meta.get("name")),
        svc_type,
        _s(cluster_ips[0]) if cluster_ips else _NONE,
        _service_external_ip(spec, status, svc_type),
        ",".join(ports) or _NONE,
        _since(meta.get("creationTimestamp"), now),
        _format_labels(spec.get("selector")),
    ]


def _namespace_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    meta = _d(obj.get("metadata"))
    phase = _s(_d(obj.get("status")).get("phase")) or "Active"
    return [_s(meta.get("name")), phase, _since(meta.get("creationTimestamp"), now)]


def _event_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    """printers.go `printEvent` (wide layout, which the server always sends)."""
    meta, involved = _d(obj.get("metadata")), _d(obj.get("involvedObject"))
    first = _since(obj.get("firstTimestamp"), now)
    if _parse_time(obj.get("firstTimestamp")) is None:
        first = _since(obj.get("eventTime"), now)
    last = _since(obj.get("lastTimestamp"), now)
    if _parse_time(obj.get("lastTimestamp")) is None:
        last = first
    count = _i(obj.get("count"))
    series = obj.get("series")
    if series is not None:
        last = _since(_d(series).get("lastObservedTime"), now)
        count = _i(_d(series).get("count"))
    elif count == 0:
        count = 1  # singleton events from the events.k8s.io API carry no count
    kind, name = _s(involved.get("kind")).lower(), _s(involved.get("name"))
    source = _d(obj.get("source"))
    component = _s(source.get("component")) or _s(obj.get("reportingComponent"))
    instance = _s(source.get("host")) or _s(obj.get("reportingInstance"))
    return [
        last,
        _s(obj.get("type")),
        _s(obj.get("reason")),
        f"{kind}/{name}" if name else kind,
        _s(involved.get("fieldPath")),
        f"{component}, {instance}" if instance else component,
        _s(obj.get("message")).strip(),
        first,
        count,
        _s(meta.get("name")),
    ]


def _configmap_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    meta = _d(obj.get("metadata"))
    keys = len(_d(obj.get("data"))) + len(_d(obj.get("binaryData")))
    return [_s(meta.get("name")), keys, _since(meta.get("creationTimestamp"), now)]


def _secret_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    meta = _d(obj.get("metadata"))
    # The real server folds write-only stringData into data before storing.
    keys = set(_d(obj.get("data"))) | set(_d(obj.get("stringData")))
    secret_type = _s(obj.get("type")) or "Opaque"
    return [
        _s(meta.get("name")),
        secret_type,
        len(keys),
        _since(meta.get("creationTimestamp"), now),
    ]


_Printer = Callable[[dict[str, Any], datetime], list[Any]]

_PRINTERS: dict[str, tuple[tuple[_Column, ...], _Printer]] = {
    "pods": (_POD_COLUMNS, _pod_cells),
    "deployments": (_DEPLOYMENT_COLUMNS, _deployment_cells),
    "replicasets": (_REPLICASET_COLUMNS, _replicaset_cells),
    "nodes": (_NODE_COLUMNS, _node_cells),
    "services": (_SERVICE_COLUMNS, _service_cells),
    "namespaces": (_NAMESPACE_COLUMNS, _namespace_cells),
    "events": (_EVENT_COLUMNS, _event_cells),
    "configmaps": (_CONFIGMAP_COLUMNS, _configmap_cells),
    "secrets": (_SECRET_COLUMNS, _secret_cells),
    **SYSTEM_PRINTERS,
}
