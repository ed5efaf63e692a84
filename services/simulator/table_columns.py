"""Column definitions of the built-in Tables, with the descriptions kube-apiserver sends.

The descriptions are the SwaggerDoc() strings printers.go uses; kubectl ignores them, but a
client that shows them sees what it would see against a real server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
