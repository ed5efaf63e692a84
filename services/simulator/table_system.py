"""Table printers of the resources a cluster runs beside the workload: DaemonSets, Jobs,
Endpoints, EndpointSlices, ServiceAccounts, PodDisruptionBudgets, Leases and
HorizontalPodAutoscalers.

Columns and cells follow kubernetes `pkg/printers/internalversion/printers.go` (1.32): the
column names, types and priorities, `formatEndpoints` and the EndpointSlice list formatting
with their "+ N more..." tails, the Job status precedence and the PDB "N/A" cells.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from services.simulator.table_columns import _DOCS, _Column
from services.simulator.table_format import (
    _containers_cells,
    _d,
    _format_label_selector,
    _format_labels,
    _i,
    _l,
    _parse_time,
    _s,
    _since,
    human_duration,
)

_NAME = _Column("Name", "string", _DOCS["name"], format="name")
_AGE = _Column("Age", "string", _DOCS["age"])
_CONTAINERS = _Column("Containers", "string", _DOCS["containers"], 1)
_IMAGES = _Column("Images", "string", _DOCS["images"], 1)


def _col(name: str, col_type: str, description: str, priority: int = 0) -> _Column:
    return _Column(name, col_type, description, priority)


_DAEMONSET_COLUMNS = (
    _NAME,
    _col("Desired", "integer", "The total number of nodes that should be running the daemon pod."),
    _col("Current", "integer", "The number of nodes that are running at least 1 daemon pod."),
    _col("Ready", "integer", "The number of nodes that should be running the daemon pod and have"
         " one or more of the daemon pod running with a Ready Condition."),
    _col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
    _col("Available", "integer", "The number of nodes that should be running the daemon pod and"
         " have one or more of the daemon pod running and available."),
    _col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to"
         " fit on a node."),
    _AGE,
    _CONTAINERS,
    _IMAGES,
    _col("Selector", "string", "A label query over pods that are managed by the daemon set.", 1),
)  # fmt: skip
_JOB_COLUMNS = (
    _NAME,
    _col("Status", "string", "Status of the job."),
    _col("Completions", "string", "The number of pods which reached phase Succeeded."),
    _col("Duration", "string", "Time required to complete the job."),
    _AGE,
    _CONTAINERS,
    _IMAGES,
    _col("Selector", "string", "A label query over pods that should match the pod count.", 1),
)
_ENDPOINTS_COLUMNS = (
    _NAME,
    _col("Endpoints", "string", "The set of all endpoints is the union of all subsets."),
    _AGE,
)
_ENDPOINTSLICE_COLUMNS = (
    _NAME,
    _col("AddressType", "string", "addressType specifies the type of address carried by this"
         " EndpointSlice."),
    _col("Ports", "string", "ports specifies the list of network ports exposed by each endpoint"
         " in this slice."),
    _col("Endpoints", "string", "endpoints is a list of unique endpoints in this slice."),
    _AGE,
)  # fmt: skip
_SERVICEACCOUNT_COLUMNS = (
    _NAME,
    _col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods"
         " running using this ServiceAccount are allowed to use."),
    _AGE,
)  # fmt: skip
_PDB_COLUMNS = (
    _NAME,
    _col("Min Available", "string", "The minimum number of pods that must be available."),
    _col("Max Unavailable", "string", "The maximum number of pods that may be unavailable."),
    _col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at"
         " this time."),
    _AGE,
)  # fmt: skip
_LEASE_COLUMNS = (
    _NAME,
    _col("Holder", "string", "holderIdentity contains the identity of the holder of a current"
         " lease."),
    _AGE,
)  # fmt: skip


def _with_more(items: list[str], count: int, limit: int = 3, empty: str = "<unset>") -> str:
    """printers.go `listWithMoreString`: the first three, then "+ N more..."."""
    text = ",".join(items[:limit])
    if count > limit:
        return f"{text} + {count - limit} more..."
    return text or empty


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _daemonset_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    """printers.go `printDaemonSet`."""
    meta, spec, status = _d(obj.get("metadata")), _d(obj.get("spec")), _d(obj.get("status"))
    pod_spec = _d(_d(spec.get("template")).get("spec"))
    return [
        _s(meta.get("name")),
        _i(status.get("desiredNumberScheduled")),
        _i(status.get("currentNumberScheduled")),
        _i(status.get("numberReady")),
        _i(status.get("updatedNumberScheduled")),
        _i(status.get("numberAvailable")),
        _format_labels(pod_spec.get("nodeSelector")),
        _since(meta.get("creationTimestamp"), now),
        *_containers_cells(pod_spec),
        _format_label_selector(spec.get("selector")),
    ]


def _job_condition(status: dict[str, Any], kind: str) -> bool:
    for cond in (_d(c) for c in _l(status.get("conditions"))):
        if cond.get("type") == kind:
            return cond.get("status") == "True"
    return False


def _job_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    """printers.go `printJob`."""
    meta, spec, status = _d(obj.get("metadata")), _d(obj.get("spec")), _d(obj.get("status"))
    succeeded = _i(status.get("succeeded"))
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{_i(spec.get('completions'))}"
    elif _i(spec.get("parallelism")) > 1:
        completions = f"{succeeded}/1 of {_i(spec.get('parallelism'))}"
    else:
        completions = f"{succeeded}/1"
    started, finished = (
        _parse_time(status.get("startTime")),
        _parse_time(status.get("completionTime")),
    )
    duration = ""
    if started is not None:
        duration = human_duration((finished or now) - started)
    state = "Running"
    for kind, shown in (("Complete", "Complete"), ("Failed", "Failed")):
        if _job_condition(status, kind):
            state = shown
            break
    else:
        if meta.get("deletionTimestamp") is not None:
            state = "Terminating"
        elif _job_condition(status, "Suspended"):
            state = "Suspended"
        elif _job_condition(status, "FailureTarget"):
            state = "FailureTarget"
    return [
        _s(meta.get("name")),
        state,
        completions,
        duration,
        _since(meta.get("creationTimestamp"), now),
        *_containers_cells(_d(_d(spec.get("template")).get("spec"))),
        _format_label_selector(spec.get("selector")),
    ]


def _endpoints_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    """printers.go `printEndpoints` with `formatEndpoints(endpoints, nil)`."""
    meta, subsets = _d(obj.get("metadata")), [_d(s) for s in _l(obj.get("subsets"))]
    if not subsets:
        shown = "<none>"
    else:
        listed: list[str] = []
        count = 0
        for subset in subsets:
            addresses = [_s(_d(a).get("ip")) for a in _l(subset.get("addresses"))]
            ports = [_d(p) for p in _l(subset.get("ports"))]
            if not ports:
                count += len(addresses)
                listed.extend(addresses[: max(0, 3 - len(listed))])
                continue
            for port in ports:
                count += len(addresses)
                for ip in addresses[: max(0, 3 - len(listed))]:
                    listed.append(_host_port(ip, _i(port.get("port"))))
        shown = _with_more(listed, count, empty="")
    return [_s(meta.get("name")), shown, _since(meta.get("creationTimestamp"), now)]


def _endpointslice_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    """printers.go `printEndpointSlice`."""
    meta = _d(obj.get("metadata"))
    ports = []
    for port in (_d(p) for p in _l(obj.get("ports"))):
        if port.get("port") is not None:
            ports.append(str(_i(port.get("port"))))
        elif port.get("name") is not None:
            ports.append(_s(port.get("name")))
        else:
            ports.append("*")
    addresses = [_s(a) for e in _l(obj.get("endpoints")) for a in _l(_d(e).get("addresses"))]
    return [
        _s(meta.get("name")),
        _s(obj.get("addressType")),
        _with_more(ports, len(ports)),
        _with_more(addresses, len(addresses)),
        _since(meta.get("creationTimestamp"), now),
    ]


def _serviceaccount_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    meta = _d(obj.get("metadata"))
    return [
        _s(meta.get("name")),
        len(_l(obj.get("secrets"))),
        _since(meta.get("creationTimestamp"), now),
    ]


def _intstr(value: Any) -> str:
    return "N/A" if value is None else str(value)


def _pdb_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    """printers.go `printPodDisruptionBudget`."""
    meta, spec, status = _d(obj.get("metadata")), _d(obj.get("spec")), _d(obj.get("status"))
    return [
        _s(meta.get("name")),
        _intstr(spec.get("minAvailable")),
        _intstr(spec.get("maxUnavailable")),
        _i(status.get("disruptionsAllowed")),
        _since(meta.get("creationTimestamp"), now),
    ]


def _lease_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    meta = _d(obj.get("metadata"))
    holder = _s(_d(obj.get("spec")).get("holderIdentity"))
    return [_s(meta.get("name")), holder, _since(meta.get("creationTimestamp"), now)]


_HPA_COLUMNS = (
    _NAME,
    _col("Reference", "string", "scaleTargetRef points to the target resource to scale, and is "
         "used to the pods for which metrics should be collected, as well as to actually change "
         "the replica count."),
    _col("Targets", "string", "metrics contains the specifications for which to use to "
         "calculate the desired replica count."),
    _col("MinPods", "string", "minReplicas is the lower limit for the number of replicas to "
         "which the autoscaler can scale down."),
    _col("MaxPods", "integer", "maxReplicas is the upper limit for the number of replicas to "
         "which the autoscaler can scale up."),
    _col("Replicas", "integer", "currentReplicas is current number of replicas of pods managed "
         "by this autoscaler, as last seen by the autoscaler."),
    _AGE,
)  # fmt: skip


def _hpa_metric(spec: dict[str, Any], status: dict[str, Any] | None) -> str:
    """One metric as printers.go `formatHPAMetrics` writes it (Resource metrics in full)."""
    kind = spec.get("type")
    source_key = {"Resource": "resource", "ContainerResource": "containerResource"}.get(str(kind))
    if source_key is None:
        if kind not in ("Pods", "Object", "External"):
            return "<unknown type>"
        # The simulator runs no metrics pipeline: the current value is never known.
        target = _d(_d(spec.get(str(kind).lower())).get("target"))
        if kind == "Pods":
            return f"<unknown>/{_s(target.get('averageValue'))}"
        if target.get("averageValue") is not None:
            return f"<unknown>/{_s(target.get('averageValue'))} (avg)"
        return f"<unknown>/{_s(target.get('value'))}"
    source = _d(spec.get(source_key))
    target = _d(source.get("target"))
    current = _d(_d(_d(status).get(source_key)).get("current"))
    name = _s(source.get("name"))
    if target.get("averageValue") is not None:
        now = _s(current.get("averageValue")) if "averageValue" in current else "<unknown>"
        return f"{name}: {now}/{target['averageValue']}"
    now = f"{current['averageUtilization']}%" if "averageUtilization" in current else "<unknown>"
    goal = f"{target['averageUtilization']}%" if "averageUtilization" in target else "<auto>"
    return f"{name}: {now}/{goal}"


def _hpa_cells(obj: dict[str, Any], now: datetime) -> list[Any]:
    """printers.go `printHorizontalPodAutoscaler` (autoscaling/v2 as stored)."""
    meta, spec, status = _d(obj.get("metadata")), _d(obj.get("spec")), _d(obj.get("status"))
    ref = _d(spec.get("scaleTargetRef"))
    metrics = [m for m in spec.get("metrics") or [] if isinstance(m, dict)]
    statuses = _l(status.get("currentMetrics"))
    shown = [
        _hpa_metric(m, statuses[i] if i < len(statuses) else None)
        for i, m in enumerate(metrics[:2])
    ]
    targets = ", ".join(shown) if metrics else "<none>"
    if len(metrics) > 2:
        targets += f" + {len(metrics) - 2} more..."
    min_pods = spec.get("minReplicas")
    return [
        _s(meta.get("name")),
        f"{_s(ref.get('kind'))}/{_s(ref.get('name'))}",
        targets,
        "<unset>" if min_pods is None else str(min_pods),
        _i(spec.get("maxReplicas")),
        _i(status.get("currentReplicas")),
        _since(meta.get("creationTimestamp"), now),
    ]


Printer = Callable[[dict[str, Any], datetime], list[Any]]

SYSTEM_PRINTERS: dict[str, tuple[tuple[_Column, ...], Printer]] = {
    "daemonsets": (_DAEMONSET_COLUMNS, _daemonset_cells),
    "jobs": (_JOB_COLUMNS, _job_cells),
    "endpoints": (_ENDPOINTS_COLUMNS, _endpoints_cells),
    "endpointslices": (_ENDPOINTSLICE_COLUMNS, _endpointslice_cells),
    "serviceaccounts": (_SERVICEACCOUNT_COLUMNS, _serviceaccount_cells),
    "poddisruptionbudgets": (_PDB_COLUMNS, _pdb_cells),
    "leases": (_LEASE_COLUMNS, _lease_cells),
    "horizontalpodautoscalers": (_HPA_COLUMNS, _hpa_cells),
}
