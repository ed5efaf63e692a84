"""Users, bearer tokens and RBAC-like rules for the simulated API server.

The kubeconfig the simulator writes has an admin user and a read-only user, so skewmit's
permission checks (SelfSubjectAccessReview) and 403 handling meet a real refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.simulator.errors import ApiError, forbidden


@dataclass(frozen=True)
class Rule:
    verbs: frozenset[str]
    groups: frozenset[str]  # "*" for any
    resources: frozenset[str]  # "plural" or "plural/sub"; "*" for any
    # What the authorizer says when this rule allows (system:masters' bypass says nothing).
    reason: str = ""

    def allows(self, verb: str, group: str, resource: str) -> bool:
        return (
            ("*" in self.verbs or verb in self.verbs)
            and ("*" in self.groups or group in self.groups)
            and ("*" in self.resources or resource in self.resources)
        )


@dataclass(frozen=True)
class User:
    name: str
    token: str
    groups: tuple[str, ...]
    rules: tuple[Rule, ...]
    # Resources a rule's "*" does not reach (the view role's exclusions).
    denied: frozenset[str] = frozenset()

    def allowed(self, verb: str, group: str, resource: str) -> tuple[bool, str]:
        if resource in self.denied:
            return False, ""
        for rule in self.rules:
            if rule.allows(verb, group, resource):
                return True, rule.reason
        return False, ""


ADMIN = User(
    "skewmit-admin",
    "skewmit-admin-token",
    ("system:masters", "system:authenticated"),
    (Rule(frozenset({"*"}), frozenset({"*"}), frozenset({"*"})),),
)
VIEWER = User(
    "skewmit-viewer",
    "skewmit-viewer-token",
    ("system:authenticated",),
    (
        Rule(
            frozenset({"get", "list", "watch"}),
            frozenset({"*"}),
            frozenset({"*"}),
            'RBAC: allowed by ClusterRoleBinding "skewmit-viewer" of ClusterRole "view" to User '
            '"skewmit-viewer"',
        ),
        Rule(
            frozenset({"create"}),
            frozenset({"authorization.k8s.io", "authentication.k8s.io"}),
            frozenset({"*"}),
            'RBAC: allowed by ClusterRoleBinding "system:basic-user" of ClusterRole '
            '"system:basic-user" to Group "system:authenticated"',
        ),
    ),
    denied=frozenset({"secrets", "pods/exec", "pods/attach", "pods/portforward"}),
)
USERS = (ADMIN, VIEWER)


BASIC_USER = VIEWER.rules[1]  # every authenticated user may ask what it may do


def impersonated(name: str, groups: tuple[str, ...]) -> User:
    """The user a request impersonates, with the rights RBAC gives that name and groups:
    the view binding names the viewer, system:masters is the admin's group; anyone else
    gets only what system:authenticated gets. Impersonating a name does not bring that
    user's groups (a real server does not look them up)."""
    all_groups = groups if "system:authenticated" in groups else (*groups, "system:authenticated")
    rules: tuple[Rule, ...] = ()
    denied: frozenset[str] = frozenset()
    if "system:masters" in all_groups:
        rules = ADMIN.rules
    elif name == VIEWER.name:
        rules, denied = VIEWER.rules, VIEWER.denied
    else:
        rules = (BASIC_USER,)
    return User(name, "", all_groups, rules, denied)


def impersonate(requester: User, name: str, groups: tuple[str, ...]) -> User:
    """The user a request acts as under `--as`/`--as-group` (Impersonate-User and
    Impersonate-Group headers): the requester needs the impersonate verb on each user and
    group it names.

    Raises ApiError 403 in the impersonation filter's words, or 500 for groups without a user.
    """
    if not name:
        if groups:
            raise ApiError(
                500,
                "InternalError",
                "Internal error occurred: requested impersonation of groups without a user",
            )
        return requester
    for resource, value in (("users", name), *(("groups", g) for g in groups)):
        if not requester.allowed("impersonate", "", resource)[0]:
            raise forbidden(requester.name, "impersonate", resource, "", "", value)
    return impersonated(name, groups)


def user_for_token(token: str) -> User | None:
    for user in USERS:
        if user.token == token:
            return user
    return None
