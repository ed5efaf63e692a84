"""What the server answers itself rather than from the store: the Scale view of a workload
and the self-subject reviews (`kubectl auth can-i`, `kubectl auth whoami`)."""

from __future__ import annotations

from typing import Any

from services.simulator.auth import User
from services.simulator.errors import invalid

Obj = dict[str, Any]


def scale_of(obj: Obj) -> Obj:
    """The autoscaling/v1 Scale of a Deployment or ReplicaSet."""
    selector = obj.get("spec", {}).get("selector", {}).get("matchLabels", {})
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: obj["metadata"][k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in obj["metadata"]
        },
        "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
        "status": {
            "replicas": obj.get("status", {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
        },
    }


def scale_replicas(scale: Obj, name: str) -> int:
    """The replicas a Scale asks for. Raises ApiError 422 for a negative or missing count."""
    replicas = scale.get("spec", {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise invalid(
            "Scale",
            "autoscaling",
            name,
            [("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")],
        )
    return replicas


def deleted(plural: str, group: str, name: str, uid: str) -> Obj:
    """The Status Success a DELETE answers for a kind that does not return the object."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": group, "kind": plural, "uid": uid},
    }


def access_review(body: Obj, user: User) -> Obj:
    """A SelfSubjectAccessReview answered for `user`."""
    spec = body.get("spec", {})
    attrs = spec.get("resourceAttributes")
    if attrs is None:
        allowed, reason = False, "only resourceAttributes are simulated"
    else:
        resource = attrs.get("resource", "")
        if attrs.get("subresource"):
            resource = f"{resource}/{attrs['subresource']}"
        allowed, reason = user.allowed(attrs.get("verb", ""), attrs.get("group", ""), resource)
    status: Obj = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": status,
    }


def self_subject_review(user: User) -> Obj:
    """What `kubectl auth whoami` asks: the user the request authenticated as."""
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "status": {"userInfo": {"username": user.name, "groups": list(user.groups)}},
    }


# What every authenticated user may GET outside resources (system:discovery and
# system:public-info-viewer); system:masters may do anything.
_DISCOVERY_URLS = ["/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*"]
_PUBLIC_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]


def rules_review(body: Obj, user: User) -> Obj:
    """A SelfSubjectRulesReview (`kubectl auth can-i --list`) answered from `user`'s rules."""
    resource_rules = [
        {
            "verbs": sorted(rule.verbs),
            "apiGroups": sorted(rule.groups),
            "resources": sorted(rule.resources),
        }
        for rule in user.rules
    ]
    if "system:masters" in user.groups:
        non_resource = [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
    else:
        non_resource = [
            {"verbs": ["get"], "nonResourceURLs": _DISCOVERY_URLS},
            {"verbs": ["get"], "nonResourceURLs": _PUBLIC_URLS},
        ]
    return {
        "kind": "SelfSubjectRulesReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": body.get("spec", {}),
        "status": {
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource,
            "incomplete": False,
        },
    }
