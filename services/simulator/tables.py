"""Server-side `meta.k8s.io/v1` Table output, as kube-apiserver answers `kubectl get`.

kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the cells it gets
back verbatim, so the cells here follow kubernetes `pkg/printers/internalversion/printers.go`
line for line. The real server always generates the wide layout (`GenerateOptions{Wide: true}`)
and kubectl hides columns with priority > 0 unless `-o wide`; so every row carries every cell.
Custom resources follow apiextensions-apiserver's tableconvertor (CRD additionalPrinterColumns,
defaulting to a single `Age` date column).

Objects are plain JSON dicts as stored. Fields the real API server would have defaulted before
storing (Service type and protocol, Secret type, Namespace phase, replicas) are defaulted here
the same way, so an object the simulator stored without them still prints as kubectl expects.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

__all__ = ["build_table", "human_duration"]

_NONE = "<none>"
_UNKNOWN = "<unknown>"
_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


def _trunc_div(a: int, b: int) -> int:
    """Integer division truncating toward zero, as Go's `/` and `int(float)` do."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def human_duration(d: timedelta) -> str:
    """apimachinery `duration.HumanDuration`: ~2-3 significant figures, e.g. `5m30s`, `2d3h`.

    Up to 2 s in the future still reads `0s` (clock skew); beyond that it is `<invalid>`.
    """
    us = (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
    seconds = _trunc_div(us, 1_000_000)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{hours // 24 // 365}y"


# --- small accessors over JSON dicts ---------------------------------------------------------


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _i(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _parse_time(value: Any) -> datetime | None:
    """A metav1.Time / MicroTime as stored; None stands for Go's zero time."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value and value != "null":
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return None if parsed == _ZERO_TIME else parsed


def _since(value: Any, now: datetime) -> str:
    """printers.go `translateTimestampSince`."""
    ts = _parse_time(value)
    return _UNKNOWN if ts is None else human_duration(now - ts)


# --- label formatting (apimachinery labels / metav1.LabelSelectorAsSelector) ------------------

_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SELECTOR_OPS = {"In": " in ", "NotIn": " notin ", "Exists": "", "DoesNotExist": ""}


def _valid_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return 0 < len(name) <= 63 and _NAME_PART.fullmatch(name) is not None


def _valid_value(value: str) -> bool:
    return value == "" or (len(value) <= 63 and _NAME_PART.fullmatch(value) is not None)


def _format_labels(labels: Any) -> str:
    """labels.FormatLabels: sorted `k=v` joined by commas, `<none>` when empty."""
    pairs = sorted(_d(labels).items())
    return ",".join(f"{k}={v}" for k, v in pairs) or _NONE


def _selector_string(selector: Any) -> str | None:
    """LabelSelectorAsSelector(sel).String(); None where the Go code returns an error."""
    if not isinstance(selector, dict):
        return ""  # labels.Nothing() prints as ""
    reqs: list[tuple[str, str]] = []
    for key, value in _d(selector.get("matchLabels")).items():
        if not _valid_key(key) or not isinstance(value, str) or not _valid_value(value):
            return None
        reqs.append((key, f"{key}={value}"))
    for expr in _l(selector.get("matchExpressions")):
        key, op = _s(_d(expr).get("key")), _s(_d(expr).get("operator"))
        values = [v for v in _l(_d(expr).get("values")) if isinstance(v, str)]
        if op not in _SELECTOR_OPS or not _valid_key(key):
            return None
        if op in ("In", "NotIn"):
            if not values or not all(_valid_value(v) for v in values):
                return None
            reqs.append((key, f"{key}{_SELECTOR_OPS[op]}({','.join(sorted(values))})"))
        elif values:
            return None
        else:
            reqs.append((key, key if op == "Exists" else f"!{key}"))
    reqs.sort(key=lambda r: r[0])
    return ",".join(text for _, text in reqs)


def _format_label_selector(selector: Any) -> str:
    """metav1.FormatLabelSelector."""
    text = _selector_string(selector)
    if text is None:
        return "<error>"
    return text or _NONE


def _containers_cells(spec: dict[str, Any]) -> list[str]:
    """printers.go `layoutContainerCells`: names and images, comma-joined."""
    containers = [_d(c) for c in _l(spec.get("containers"))]
    return [
        ",".join(_s(c.get("name")) for c in containers),
        ",".join(_s(c.get("image")) for c in containers),
    ]


# --- column definitions ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    name: str
    type: str
    description: str
    priority: int = 0
    format: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


_K8S_DOCS = "https://kubernetes.io/docs/concepts/"
_RC_INFO = (
    f"More info: {_K8S_DOCS}workloads/controllers/replicationcontroller/"
    "#what-is-a-replicationcontroller"
)
_SVC_INFO = f"More info: {_K8S_DOCS}services-networking/service/"
_NODE_REPORTED = "reported by the node"
# The SwaggerDoc() strings the real printers use as column descriptions (kubectl ignores them).
_DOCS: dict[str, str] = {
    "name": "Name must be unique within a namespace. Is required when creating resources, although"
    " some resources may allow a client to request the generation of an appropriate name"
    " automatically. Name is primarily intended for creation idempotence and configuration"
    " definition. Cannot be updated. More info:"
    f" {_K8S_DOCS}overview/working-with-objects/names#names",
    "age": "CreationTimestamp is a timestamp representing the server time when this object was"
    " created. It is not guaranteed to be set in happens-before order across separate operations."
    " Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated"
    " by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/"
    "contributors/devel/sig-architecture/api-conventions.md#metadata",
    "containers": "Names of each container in the template.",
    "images": "Images referenced by each container in the template.",
    "pod.ready": "The aggregate readiness state of this pod for accepting traffic.",
    "pod.status": "The aggregate status of the containers in this pod.",
    "pod.restarts": "The number of times the containers in this pod have been restarted and when"
    " the last container in this pod has restarted.",
    "pod.ip": "podIP address allocated to the pod. Routable at least within the cluster. Empty if"
    " not yet allocated.",
    "pod.node": "NodeName indicates in which node this pod is scheduled. If empty, this pod is a"
    " candidate for scheduling by the scheduler defined in schedulerName. Once this field is set,"
    " the kubelet for this node becomes responsible for the lifecycle of this pod. This field"
    " should not be used to express a desire for the pod to be scheduled on a specific node."
    f" {_K8S_DOCS}scheduling-eviction/assign-pod-node/#nodename",
    "pod.nominated": "nominatedNodeName is set only when this pod preempts other pods on the node,"
    " but it cannot be scheduled right away as preemption victims receive their graceful"
    " termination periods. This field does not guarantee that the pod will be scheduled on this"
    " node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner."
    " Scheduler may also decide to give the resources on this node to a higher priority pod that is"
    " created after preemption. As a result, this field may be different than PodSpec.nodeName when"
    " the pod is scheduled.",
    "pod.gates": "If specified, all readiness gates will be evaluated for pod readiness. A pod is"
    " ready when all its containers are ready AND all conditions specified in the readiness gates"
    ' have status equal to "True" More info:'
    " https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates",
    "deploy.ready": "Number of the pod with ready state",
    "deploy.updated": "Total number of non-terminating pods targeted by this deployment that have"
    " the desired template spec.",
    "deploy.available": "Total number of available non-terminating pods (ready for at least"
    " minReadySeconds) targeted by this deployment.",
    "deploy.selector": "Label selector for pods. Existing ReplicaSets whose pods are selected by"
    " this will be the ones affected by this deployment.",
    "rs.desired": "Replicas is the number of desired replicas. This is a pointer to distinguish"
    f" between explicit zero and unspecified. Defaults to 1. {_RC_INFO}",
    "rs.current": "Replicas is the most recently observed number of non-terminating pods."
    f" {_RC_INFO}",
    "rs.ready": "The number of non-terminating pods targeted by this ReplicaSet with a Ready"
    " Condition.",
    "rs.selector": "Selector is a label query over pods that should match the replica count. If the"
    " selector is empty, it is defaulted to the labels present on the pod template. Label keys and"
    " values that must match in order to be controlled by this replica set. More info:"
    f" {_K8S_DOCS}overview/working-with-objects/labels/#label-selectors",
    "node.status": "The status of the node",
    "node.roles": "The roles of the node",
    "node.version": f"Kubelet Version {_NODE_REPORTED}.",
    "node.addresses": "List of addresses reachable to the node. Queried from cloud provider, if"
    " available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note:"
    " This field is declared as mergeable, but the merge key is not sufficiently unique, which can"
    " cause data corruption when it is merged. Callers should instead use a full-replacement patch."
    " See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change"
    " during the lifetime of a Node. However, there are some exceptions where this may not be"
    " possible, such as Pods that inherit a Node's address in its own status or consumers of the"
    " downward API (status.hostIP).",
    "node.os": f"OS Image {_NODE_REPORTED} from /etc/os-release (e.g. Debian GNU/Linux 7"
    " (wheezy)).",
    "node.kernel": f"Kernel Version {_NODE_REPORTED} from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
    "node.runtime": f"ContainerRuntime Version {_NODE_REPORTED} through runtime remote API (e.g."
    " containerd://1.4.2).",
    "svc.type": "type determines how the Service is exposed. Defaults to ClusterIP. Valid options"
    ' are ExternalName, ClusterIP, NodePort, and LoadBalancer. "ClusterIP" allocates a'
    " cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the"
    " selector or if that is not specified, by manual construction of an Endpoints object or"
    ' EndpointSlice objects. If clusterIP is "None", no virtual IP is allocated and the endpoints'
    ' are published as a set of endpoints rather than a virtual IP. "NodePort" builds on ClusterIP'
    " and allocates a port on every node which routes to the same endpoints as the clusterIP."
    ' "LoadBalancer" builds on NodePort and creates an external load-balancer (if supported in the'
    ' current cloud) which routes to the same endpoints as the clusterIP. "ExternalName" aliases'
    " this service to the specified externalName. Several other fields do not apply to ExternalName"
    f" services. {_SVC_INFO}#publishing-services-service-types",
    "svc.clusterip": "clusterIP is the IP address of the service and is usually assigned randomly."
    " If an address is specified manually, is in-range (as per system configuration), and is not in"
    " use, it will be allocated to the service; otherwise creation of the service will fail. This"
    " field may not be changed through updates unless the type field is also being changed to"
    " ExternalName (which requires this field to be blank) or the type field is being changed from"
    " ExternalName (in which case this field may optionally be specified, as describe above). "
    ' Valid values are "None", empty string (""), or a valid IP address. Setting this to "None"'
    ' makes a "headless service" (no virtual IP), which is useful when direct endpoint connections'
    " are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and"
    " LoadBalancer. If this field is specified when creating a Service of type ExternalName,"
    " creation will fail. This field will be wiped when updating a Service to type ExternalName."
    f" {_SVC_INFO}#virtual-ips-and-service-proxies",
    "svc.externalips": "externalIPs is a list of IP addresses for which nodes in the cluster will"
    " also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is"
    " responsible for ensuring that traffic arrives at a node with this IP.  A common example is"
    " external load-balancers that are not part of the Kubernetes system.",
    "svc.ports": "The list of ports that are exposed by this service."
    f" {_SVC_INFO}#virtual-ips-and-service-proxies",
    "svc.selector": "Route service traffic to pods with label keys and values matching this"
    " selector. If empty or not present, the service is assumed to have an external process"
    " managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP,"
    f" NodePort, and LoadBalancer. Ignored if type is ExternalName. {_SVC_INFO}",
    "ns.status": "The status of the namespace",
    "ev.last": "The time at which the most recent occurrence of this event was recorded.",
    "ev.type": "Type of this event (Normal, Warning), new types could be added in the future",
    "ev.reason": "This should be a short, machine understandable string that gives the reason for"
    " the transition into the object's current status.",
    "ev.object": "The object that this event is about.",
    "ev.subobject": "If referring to a piece of an object instead of an entire object, this string"
    " should contain a valid JSON/Go field access statement, such as"
    " desiredState.manifest.containers[2]. For example, if the object reference is to a container"
    ' within a pod, this would take on a value like: "spec.containers{name}" (where "name" refers'
    " to the name of the container that triggered the event) or if no container name is specified"
    ' "spec.containers[2]" (container with index 2 in this pod). This syntax is chosen only to have'
    " some well-defined way of referencing a part of an object.",
    "ev.source": "The component reporting this event. Should be a short machine understandable"
    " string.",
    "ev.message": "A human-readable description of the status of this operation.",
    "ev.first": "The time at which the event was first recorded. (Time of server receipt is in"
    " TypeMeta.)",
    "ev.count": "The number of times this event has occurred.",
    "cm.data": "Data contains the configuration data. Each key must consist of alphanumeric"
    " characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData"
    " field. The keys stored in Data must not overlap with the keys in the BinaryData field, this"
    " is enforced during validation process.",
    "secret.type": "Used to facilitate programmatic handling of secret data. More info:"
    f" {_K8S_DOCS}configuration/secret/#secret-types",
    "secret.data": "Data contains the secret data. Each key must consist of alphanumeric"
    " characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded"
    " string, representing the arbitrary (possibly non-string) data value here. Described in"
    " https://tools.ietf.org/html/rfc4648#section-4",
}


def _columns(*specs: tuple[str, str, str, int]) -> tuple[_Column, ...]:
    """(name, type, doc key, priority) rows; every table starts with the Name column."""
    named = [_Column("Name", "string", _DOCS["name"], format="name")]
    return (*named, *(_Column(n, t, _DOCS[doc], p) for n, t, doc, p in specs))


_AGE = ("Age", "string", "age", 0)
_TEMPLATE = (("Containers", "string", "containers", 1), ("Images", "string", "images", 1))

_POD_COLUMNS = _columns(
    ("Ready", "string", "pod.ready", 0),
    ("Status", "string", "pod.status", 0),
    ("Restarts", "string", "pod.restarts", 0),
    _AGE,
    ("IP", "string", "pod.ip", 1),
    ("Node", "string", "pod.node", 1),
    ("Nominated Node", "string", "pod.nominated", 1),
    ("Readiness Gates", "string", "pod.gates", 1),
)
_DEPLOYMENT_COLUMNS = _columns(
    ("Ready", "string", "deploy.ready", 0),
    ("Up-to-date", "string", "deploy.updated", 0),
    ("Available", "string", "deploy.available", 0),
    _AGE,
    *_TEMPLATE,
    ("Selector", "string", "deploy.selector", 1),
)
_REPLICASET_COLUMNS = _columns(
    ("Desired", "integer", "rs.desired", 0),
    ("Current", "integer", "rs.current", 0),
    ("Ready", "integer", "rs.ready", 0),
    _AGE,
    *_TEMPLATE,
    ("Selector", "string", "rs.selector", 1),
)
_NODE_COLUMNS = _columns(
    ("Status", "string", "node.status", 0),
    ("Roles", "string", "node.roles", 0),
    _AGE,
    ("Version", "string", "node.version", 0),
    ("Internal-IP", "string", "node.addresses", 1),
    ("External-IP", "string", "node.addresses", 1),
    ("OS-Image", "string", "node.os", 1),
    ("Kernel-Version", "string", "node.kernel", 1),
    ("Container-Runtime", "string", "node.runtime", 1),
)
_SERVICE_COLUMNS = _columns(
    ("Type", "string", "svc.type", 0),
    ("Cluster-IP", "string", "svc.clusterip", 0),
    ("External-IP", "string", "svc.externalips", 0),
    ("Port(s)", "string", "svc.ports", 0),
    _AGE,
    ("Selector", "string", "svc.selector", 1),
)
_NAMESPACE_COLUMNS = _columns(("Status", "string", "ns.status", 0), _AGE)
# Events are the one table whose first column is not Name; Name comes last and wide-only.
_EVENT_COLUMNS = (
    *(
        _Column(n, "string", _DOCS[doc], p)
        for n, doc, p in (
            ("Last Seen", "ev.last", 0),
            ("Type", "ev.type", 0),
            ("Reason", "ev.reason", 0),
            ("Object", "ev.object", 0),
            ("Subobject", "ev.subobject", 1),
            ("Source", "ev.source", 1),
            ("Message", "ev.message", 0),
            ("First Seen", "ev.first", 1),
            ("Count", "ev.count", 1),
        )
    ),
    _Column("Name", "string", _DOCS["name"], 1, "name"),
)
_CONFIGMAP_COLUMNS = _columns(("Data", "string", "cm.data", 0), _AGE)
_SECRET_COLUMNS = _columns(
    ("Type", "string", "secret.type", 0), ("Data", "string", "secret.data", 0), _AGE
)


# --- row printers ------------------------------------------------------------------------------

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
}


# --- custom resources (apiextensions-apiserver tableconvertor) ----------------------------------

_PATH_TOKEN = re.compile(r"\.((?:[^.\[\\]|\\.)+)|\[(-?\d+)\]|\[(['\"])(.*?)\3\]")


def _parse_json_path(path: str) -> list[str | int]:
    """Steps of a simple CRD jsonPath (`.status.replicas`, `.a[0].b`, `.metadata.labels['x.y']`).

    Raises ValueError for anything else, as the real server rejects such a column.
    """
    steps: list[str | int] = []
    pos, text = 0, path.strip()
    while pos < len(text):
        match = _PATH_TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"unrecognized column definition {path!r}")
        if match.group(1) is not None:
            steps.append(re.sub(r"\\(.)", r"\1", match.group(1)))
        elif match.group(2) is not None:
            steps.append(int(match.group(2)))
        else:
            steps.append(match.group(4))
        pos = match.end()
    if not steps:
        raise ValueError(f"unrecognized column definition {path!r}")
    return steps


_MISSING = object()
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def _lookup(obj: Any, steps: list[str | int]) -> Any:
    """Follow steps; a missing key or index is _MISSING (the server allows missing keys)."""
    for step in steps:
        in_list = isinstance(step, int) and isinstance(obj, list) and -len(obj) <= step < len(obj)
        if not in_list and not (isinstance(step, str) and isinstance(obj, dict) and step in obj):
            return _MISSING
        obj = obj[step]
    return obj


def _go_float(value: float) -> str:
    """Go's fmt `%v` for a float64: shortest digits, exponent form outside [1e-4, 1e6)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    _, digits_t, exp = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(map(str, digits_t))
    sign = "-" if value < 0 else ""
    point = len(digits) + int(exp)  # position of the decimal point within `digits`
    if not -4 <= point - 1 < 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        e = point - 1
        return f"{sign}{mantissa}e{'-' if e < 0 else '+'}{abs(e):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _custom_cell(col_type: str, value: Any, now: datetime) -> Any:
    """tableconvertor's cell for one additionalPrinterColumn value."""
    if col_type == "string":
        # jsonpath PrintResults: scalars as Go prints them, maps and lists as JSON.
        if value is None:
            return "<no value>"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return _go_float(value)
        if isinstance(value, dict | list):
            text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        return str(value)
    if isinstance(value, bool):
        return value if col_type == "boolean" else None
    if col_type == "integer" and isinstance(value, int | float) and math.isfinite(value):
        return int(value)
    if col_type == "number" and isinstance(value, int | float):
        return float(value)
    if col_type == "date" and isinstance(value, str):
        # metav1.Time.UnmarshalQueryParameter: "" and "null" are the zero time, else RFC 3339.
        if value in ("", "null"):
            return _UNKNOWN
        try:
            ts = datetime.fromisoformat(value) if _RFC3339.fullmatch(value) else None
        except ValueError:
            ts = None
        if ts is None:
            return "<invalid>"
        return _UNKNOWN if ts == _ZERO_TIME else human_duration(now - ts)
    return None


def _custom_table(
    printer_columns: list[tuple[str, str, str, int]] | None,
) -> tuple[tuple[_Column, ...], _Printer]:
    specs = printer_columns or [("Age", "date", ".metadata.creationTimestamp", 0)]
    defaulted = not printer_columns
    paths = [_parse_json_path(path) for _, _, path, _ in specs]
    columns = [_Column("Name", "string", _DOCS["name"], format="name")]
    for name, col_type, path, priority in specs:
        desc = (
            _DOCS["age"]
            if defaulted
            else f"Custom resource definition column (in JSONPath format): {path}"
        )
        columns.append(_Column(name, col_type, desc, priority))

    def cells(obj: dict[str, Any], now: datetime) -> list[Any]:
        row: list[Any] = [_s(_d(obj.get("metadata")).get("name"))]
        for (_, col_type, _, _), steps in zip(specs, paths, strict=True):
            value = _lookup(obj, steps)
            row.append(None if value is _MISSING else _custom_cell(col_type, value, now))
        return row

    return tuple(columns), cells


# --- the Table ---------------------------------------------------------------------------------


def build_table(
    resource: str,
    objects: list[dict[str, Any]],
    now: datetime,
    *,
    include_object: str = "Metadata",
    resource_version: str = "",
    printer_columns: list[tuple[str, str, str, int]] | None = None,
) -> dict[str, Any]:
    """A `meta.k8s.io/v1` Table for `objects` of the plural `resource`, as kube-apiserver sends it.

    Cells are computed against `now` (the simulator's clock). Resources without a built-in
    printer are treated as custom resources: `printer_columns` are the CRD's
    additionalPrinterColumns as `(name, type, jsonPath, priority)`; without them the table has
    NAME and AGE, like a CRD that declares none.

    Raises ValueError if `include_object` is not None, Metadata or Object, or if a printer
    column's jsonPath is not a simple path.
    """
    if include_object not in ("None", "Metadata", "Object"):
        raise ValueError(f"includeObject must be None, Metadata or Object, got {include_object!r}")
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    builtin = _PRINTERS.get(resource)
    columns, printer = builtin if builtin is not None else _custom_table(printer_columns)
    rows: list[dict[str, Any]] = []
    for obj in objects:
        row: dict[str, Any] = {"cells": printer(obj, now)}
        if resource == "pods" and (conditions := _pod_conditions(obj)) is not None:
            row["conditions"] = conditions
        if include_object == "Metadata":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": copy.deepcopy(_d(obj.get("metadata"))),
            }
        elif include_object == "Object":
            row["object"] = copy.deepcopy(obj)
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version} if resource_version else {},
        "columnDefinitions": [c.to_json() for c in columns],
        "rows": rows,
    }
