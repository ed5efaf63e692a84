"""The resource types the simulated API server knows, and its discovery documents."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

READ_VERBS = ("get", "list", "watch")
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # (name, type, jsonPath, priority) columns for custom resources' Table output.
    printer_columns: tuple[tuple[str, str, str, int], ...] = ()
    builtin: bool = True
    status_subresource: bool = field(default=False)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


BUILTIN: tuple[ResourceType, ...] = (
    ResourceType(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        False,
        ("ns",),
        ("create", "delete", "get", "list", "patch", "update", "watch"),
        ("status",),
    ),
    ResourceType("", "v1", "Node", "nodes", "node", False, ("no",), ALL_VERBS, ("status",)),
    ResourceType(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        True,
        ("po",),
        ALL_VERBS,
        ("status", "exec", "log", "binding", "eviction"),
        ("all",),
        status_subresource=True,
    ),
    ResourceType(
        "",
        "v1",
        "Service",
        "services",
        "service",
        True,
        ("svc",),
        ("create", "delete", "get", "list", "patch", "update", "watch"),
        ("status",),
        ("all",),
    ),
    ResourceType("", "v1", "Event", "events", "event", True, ("ev",)),
    ResourceType("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",)),
    ResourceType("", "v1", "Secret", "secrets", "secret", True),
    ResourceType(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        True,
        ("deploy",),
        ALL_VERBS,
        ("status", "scale"),
        ("all",),
        status_subresource=True,
    ),
    ResourceType(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        True,
        ("rs",),
        ALL_VERBS,
        ("status", "scale"),
        ("all",),
        status_subresource=True,
    ),
    ResourceType(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        True,
        ("hpa",),
        ALL_VERBS,
        ("status",),
        ("all",),
    ),
    # Also served as autoscaling/v1 (`kubectl autoscale` 1.32 posts it); stored as v2, listed
    # after it so v2 stays the preferred version. hpa_versions converts; no watch through v1.
    ResourceType(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        True,
        ("hpa",),
        ("create", "delete", "get", "list", "patch", "update"),
        ("status",),
        ("all",),
    ),
    ResourceType("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, ("sa",)),
    ResourceType("", "v1", "Endpoints", "endpoints", "endpoints", True, ("ep",)),
    ResourceType(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        True,
        ("ds",),
        ALL_VERBS,
        ("status",),
        ("all",),
        status_subresource=True,
    ),
    ResourceType(
        "batch",
        "v1",
        "Job",
        "jobs",
        "job",
        True,
        (),
        ALL_VERBS,
        ("status",),
        ("all",),
        status_subresource=True,
    ),
    ResourceType(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        True,
        ("pdb",),
        ALL_VERBS,
        ("status",),
        status_subresource=True,
    ),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases", "lease", True),
    ResourceType(
        "discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", True
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        False,
        (),
        ("create",),
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        False,
        (),
        ("create",),
    ),
    ResourceType(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        "selfsubjectreview",
        False,
        (),
        ("create",),
    ),
)

# Custom resources a scenario may install, keyed by a short handle used in scenario files.
CUSTOM: dict[str, ResourceType] = {
    "httproutes": ResourceType(
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
        "httproutes",
        "httproute",
        True,
        (),
        ALL_VERBS,
        ("status",),
        ("gateway-api",),
        (
            ("Hostnames", "string", ".spec.hostnames", 0),
            ("Age", "date", ".metadata.creationTimestamp", 0),
        ),
        builtin=False,
    ),
    "virtualservices": ResourceType(
        "networking.istio.io",
        "v1",
        "VirtualService",
        "virtualservices",
        "virtualservice",
        True,
        ("vs",),
        ALL_VERBS,
        ("status",),
        ("istio-io", "networking-istio-io"),
        (
            ("Gateways", "string", ".spec.gateways", 0),
            ("Hosts", "string", ".spec.hosts", 0),
            ("Age", "date", ".metadata.creationTimestamp", 0),
        ),
        builtin=False,
    ),
    "applications": ResourceType(
        "argoproj.io",
        "v1alpha1",
        "Application",
        "applications",
        "application",
        True,
        ("app", "apps"),
        ALL_VERBS,
        ("status",),
        (),
        (
            ("Sync Status", "string", ".status.sync.status", 0),
            ("Health Status", "string", ".status.health.status", 0),
            ("Revision", "string", ".status.sync.revision", 10),
        ),
        builtin=False,
    ),
}


# Field selectors each core type converts (pkg/apis/core/v1/conversion.go); any other path is
# "field label not supported". Types without an entry take only metadata.name and
# metadata.namespace, and refuse others with the generic message.
_CORE_FIELD_LABELS: dict[str, tuple[str, ...]] = {
    "pods": (
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.podIPs",
        "status.nominatedNodeName",
    ),
    "nodes": ("metadata.name", "spec.unschedulable"),
    "namespaces": ("metadata.name", "status.phase"),
    "secrets": ("metadata.name", "metadata.namespace", "type"),
    "services": ("metadata.name", "metadata.namespace", "spec.clusterIP", "spec.type"),
    "events": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
        "metadata.namespace",
        "metadata.name",
    ),
}


# Selectable fields the real server derives from a Go bool, so an unset one reads "false".
_BOOL_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "nodes": (("spec", "unschedulable"),),
    "pods": (("spec", "hostNetwork"),),
}


def selectable_view(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` as field selectors see it: unset boolean fields read as false."""
    fields = _BOOL_FIELDS.get(rt.plural) if not rt.group else None
    if not fields:
        return obj
    view = dict(obj)
    for section, name in fields:
        part = dict(view.get(section) or {})
        part.setdefault(name, False)
        view[section] = part
    return view


def field_label_error(rt: ResourceType, path: str) -> str | None:
    """Why the server refuses to select `rt` by `path`, in its words; None when it may."""
    if not rt.group and rt.plural in _CORE_FIELD_LABELS:
        if path in _CORE_FIELD_LABELS[rt.plural]:
            return None
        return f"field label not supported: {path}"
    if path in ("metadata.name", "metadata.namespace"):
        return None
    return f'"{path}" is not a known field selector: only "metadata.name", "metadata.namespace"'


class Registry:
    """The resource types served, by (group, version, plural)."""

    def __init__(self, custom: list[str] | None = None) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for rt in BUILTIN:
            self.add(rt)
        for handle in custom or []:
            self.add(CUSTOM[handle])

    def add(self, rt: ResourceType) -> None:
        self._types[(rt.group, rt.version, rt.plural)] = rt

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_plural(self, plural: str) -> ResourceType:
        for rt in self._types.values():
            if rt.plural == plural:
                return rt
        raise KeyError(plural)

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        for rt in self._types.values():
            if rt.group_version == api_version and rt.kind == kind:
                return rt
        return None

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for rt in self._types.values():
            if rt.group:
                versions = out.setdefault(rt.group, [])
                if rt.version not in versions:
                    versions.append(rt.version)
        return out

    # -- discovery documents -------------------------------------------------

    def api_versions(self, server_address: str) -> dict[str, Any]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
            ],
        }

    def api_group(self, group: str) -> dict[str, Any] | None:
        versions = self.groups().get(group)
        if not versions:
            return None
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": entries,
            "preferredVersion": entries[0],
        }

    def api_group_list(self) -> dict[str, Any]:
        groups = []
        for group in self.groups():
            doc = self.api_group(group)
            assert doc is not None
            doc.pop("kind")
            doc.pop("apiVersion")
            groups.append(doc)
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        members = [rt for rt in self._types.values() if (rt.group, rt.version) == (group, version)]
        if not members:
            return None
        resources: list[dict[str, Any]] = []
        for rt in members:
            entry: dict[str, Any] = {
                "name": rt.plural,
                "singularName": rt.singular,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": list(rt.verbs),
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            resources.append(entry)
            for sub in rt.subresources:
                sub_entry: dict[str, Any] = {
                    "name": f"{rt.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": ["get", "patch", "update"],
                }
                if sub == "exec":
                    sub_entry.update(kind="PodExecOptions", verbs=["create", "get"])
                elif sub == "log":
                    sub_entry.update(kind="Pod", verbs=["get"])
                elif sub == "binding":
                    sub_entry.update(kind="Binding", verbs=["create"])
                elif sub == "eviction":
                    # As a real server lists it: kubectl drain evicts only when discovery names
                    # policy/v1 here, and falls back to deleting the pods otherwise.
                    sub_entry.update(
                        group="policy", version="v1", kind="Eviction", verbs=["create"]
                    )
                elif sub == "scale":
                    sub_entry.update(group="autoscaling", version="v1", kind="Scale")
                resources.append(sub_entry)
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }
