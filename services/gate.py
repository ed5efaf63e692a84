"""The one gate every mutation goes through.

plan -> RBAC check (SelfSubjectAccessReview) -> GitOps check -> server-side dry run -> diff ->
(confirmation, by the caller) -> journal entry written and fsync'd -> apply with a
resourceVersion precondition -> verify -> journal entry closed. Revert applies the recorded
inverse, and refuses (showing the diff) when the object changed since.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

import yaml

from services.errors import ConflictError, ForbiddenError, GitOpsError, InvalidError, SkewmitError
from services.gitops import gitops_markers
from services.journal import Journal
from services.kube import Cluster
from services.masking import MASK, mask_object
from services.models import Change, GitOpsInfo, Plan, Preview

Obj = dict[str, Any]
VERBS = {"patch": "patch", "create": "create", "delete": "delete"}
# Fields the controllers own: never part of a diff, a verification or an inverse.
CONTROLLER_ANNOTATION_PREFIXES = ("deployment.kubernetes.io/",)
SYSTEM_TAINT_PREFIX = "node.kubernetes.io/"
NOISE = ("resourceVersion", "generation", "managedFields", "uid", "creationTimestamp", "selfLink")


@dataclass(frozen=True)
class Applied:
    plan: Plan
    seq: int  # the journal entry of the apply: the key a revert names
    verified: bool
    message: str
    results: tuple[Obj, ...] = ()


class RevertRefused(ConflictError):
    """The object changed since skewmit changed it; the diff says how."""

    def __init__(self, message: str, diff: str) -> None:
        super().__init__(message)
        self.diff = diff


def comparable(obj: Obj | None) -> Obj:
    """The part of an object a change is about: labels, annotations (but the controllers'),
    spec, and data; masked so that journaled copies compare equal to live ones."""
    if not obj:
        return {}
    meta = obj.get("metadata", {})
    out: Obj = {
        "metadata": {
            "labels": dict(meta.get("labels") or {}),
            "annotations": {
                k: v
                for k, v in (meta.get("annotations") or {}).items()
                if not k.startswith(CONTROLLER_ANNOTATION_PREFIXES)
            },
        },
    }
    for key in ("spec", "data", "stringData", "type"):
        if key in obj:
            out[key] = copy.deepcopy(obj[key])
    taints = out.get("spec", {}).get("taints") if obj.get("kind") == "Node" else None
    if taints:
        # The node lifecycle controller adds node.kubernetes.io/* taints (unschedulable on
        # cordon, not-ready...): they are the cluster's, not part of anyone's change.
        kept = [t for t in taints if not str(t.get("key", "")).startswith(SYSTEM_TAINT_PREFIX)]
        if kept:
            out["spec"]["taints"] = kept
        else:
            del out["spec"]["taints"]
    masked: Obj = mask_object(out, keep_refs=True)
    return masked


def render_diff(before: Obj | None, after: Obj | None, label: str) -> str:
    """A unified diff of the masked, comparable parts of two versions of an object."""
    a = yaml.safe_dump(comparable(before), sort_keys=True, width=100).splitlines()
    b = yaml.safe_dump(comparable(after), sort_keys=True, width=100).splitlines()
    if not before:
        a = []
    if not after:
        b = []
    lines = difflib.unified_diff(a, b, f"{label} (live)", f"{label} (after)", lineterm="", n=3)
    return "\n".join(lines)


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def inverse_ops(before: Obj, after: Obj) -> list[Obj]:
    """JSON patch ops that take `after` back to `before` (labels and annotations key by key,
    spec field by field)."""
    ops: list[Obj] = []
    b, a = comparable(before), comparable(after)
    for section in ("labels", "annotations"):
        old, new = b["metadata"][section], a["metadata"][section]
        base = f"/metadata/{section}"
        if old and not (after.get("metadata", {}).get(section)):
            ops.append({"op": "add", "path": base, "value": old})
            continue
        for key in sorted(set(old) | set(new)):
            path = f"{base}/{_escape(key)}"
            if key not in old:
                ops.append({"op": "remove", "path": path})
            elif key not in new:
                ops.append({"op": "add", "path": path, "value": old[key]})
            elif old[key] != new[key]:
                ops.append({"op": "replace", "path": path, "value": old[key]})
    old_spec, new_spec = b.get("spec", {}), a.get("spec", {})
    for key in sorted(set(old_spec) | set(new_spec)):
        path = f"/spec/{_escape(key)}"
        if key not in old_spec:
            ops.append({"op": "remove", "path": path})
        elif key not in new_spec:
            ops.append({"op": "add", "path": path, "value": old_spec[key]})
        elif old_spec[key] != new_spec[key]:
            ops.append({"op": "replace", "path": path, "value": old_spec[key]})
    return ops


def unmask(value: Any, live: Any) -> Any:
    """Put live secret values back where a journaled (masked) copy has the mask: env entries
    are matched by name, everything else by position."""
    if isinstance(value, str):
        return live if value == MASK and isinstance(live, str) else value
    if isinstance(value, dict):
        return {
            k: unmask(v, live.get(k) if isinstance(live, dict) else None) for k, v in value.items()
        }
    if isinstance(value, list):
        by_name = {}
        if isinstance(live, list):
            by_name = {
                item.get("name"): item for item in live if isinstance(item, dict) and "name" in item
            }
        out = []
        for i, item in enumerate(value):
            match = by_name.get(item.get("name")) if isinstance(item, dict) else None
            if match is None and isinstance(live, list) and i < len(live):
                match = live[i]
            out.append(unmask(item, match))
        return out
    return value


def _resolve(doc: Any, path: str) -> Any:
    node = doc
    for token in path.strip("/").split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            node = node.get(token)
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


class Gate:
    def __init__(
        self,
        cluster: Cluster,
        journal: Journal,
        *,
        read_only: bool = False,
        gitops_override: bool = False,
    ) -> None:
        self.cluster = cluster
        self.journal = journal
        self.read_only = read_only
        self.gitops_override = gitops_override

    # -- preview -------------------------------------------------------------

    def gitops(self, obj: Obj | None) -> GitOpsInfo | None:
        if not obj:
            return None
        info = gitops_markers(obj)
        if info is None or info.tool != "argocd" or not info.app:
            return info
        try:
            app = self.cluster.get("Application", info.namespace or "argocd", info.app)
        except SkewmitError:
            return info
        return gitops_markers(obj, app)

    def preview(self, plan: Plan) -> Preview:
        """RBAC, GitOps and a server-side dry run of every change, and the diff. Never
        mutates. A refusal is reported in the Preview, not raised."""
        self.journal.append(
            "plan", {"action": plan.action, "title": plan.title, "kubectl": list(plan.kubectl)}
        )
        if self.read_only:
            return Preview(
                plan,
                False,
                "read-only mode: skewmit makes no changes (restart without --read-only to act)",
                False,
                "",
                self._diff(plan, None),
            )
        for change in plan.changes:
            allowed, reason = self.cluster.can_i(
                VERBS[change.operation], change.kind, change.namespace, change.name
            )
            if not allowed:
                return Preview(
                    plan, False, f"not permitted: {reason}", False, "", self._diff(plan, None)
                )
            info = self.gitops(change.before)
            if info is not None and info.reverts is not False and not self.gitops_override:
                return Preview(
                    plan,
                    False,
                    f"GitOps ({info.tool} {info.app}): {info.guidance}",
                    False,
                    "",
                    self._diff(plan, None),
                )
        results: list[Obj | None] = []
        try:
            for change in plan.changes:
                results.append(self._send(change, dry_run=True))
        except SkewmitError as exc:
            return Preview(plan, True, "", False, str(exc), self._diff(plan, None))
        return Preview(
            plan, True, "", True, "server dry run accepted every change", self._diff(plan, results)
        )

    def _diff(self, plan: Plan, results: list[Obj | None] | None) -> str:
        parts = []
        for i, change in enumerate(plan.changes):
            after = results[i] if results is not None else change.after
            if change.operation == "delete":
                after = None
            label = f"{change.kind.lower()}/{change.name}"
            parts.append(render_diff(change.before, after, label) or f"# {label}: no change")
        return "\n".join(parts)

    # -- apply ---------------------------------------------------------------

    def _fresh(self, change: Change) -> Change:
        """Guard a change with the live resourceVersion, after checking that nothing but
        status moved since it was planned (a rolling Deployment's status changes every few
        seconds; its spec, labels and annotations must not)."""
        if change.operation not in ("patch", "delete") or change.before is None:
            return change
        live = self.cluster.get(change.kind, change.namespace, change.name)
        if comparable(live) != comparable(change.before):
            diff = render_diff(change.before, live, f"{change.kind.lower()}/{change.name}")
            raise ConflictError(
                f"{change.kind.lower()}/{change.name} changed since this plan "
                f"was made; nothing was applied. Re-open the action to plan "
                f"again.\n{diff}"
            )
        return dataclasses.replace(change, resource_version=live["metadata"]["resourceVersion"])

    def _send(self, change: Change, *, dry_run: bool) -> Obj | None:
        change = self._fresh(change)
        if change.operation == "patch":
            return self.cluster.patch(
                change.kind,
                change.namespace,
                change.name,
                _with_precondition(change),
                change.patch_type,
                dry_run=dry_run,
            )
        if change.operation == "create":
            assert change.after is not None
            return self.cluster.create(change.kind, change.namespace, change.after, dry_run=dry_run)
        if change.operation == "delete":
            self.cluster.delete(
                change.kind,
                change.namespace,
                change.name,
                dry_run=dry_run,
                resource_version=change.resource_version,
            )
            return None
        raise InvalidError(f"unknown operation {change.operation!r}")

    def apply(self, plan: Plan, preview: Preview) -> Applied:
        """Apply a previewed plan. Raises ForbiddenError/GitOpsError when the preview refused
        it, ConflictError when an object changed since it was read (nothing applied after the
        first failure is attempted; what was applied is journaled and revertible)."""
        if not preview.allowed:
            error = GitOpsError if preview.denied_reason.startswith("GitOps") else ForbiddenError
            raise error(preview.denied_reason)
        if not preview.dry_run_ok:
            raise InvalidError(f"the server's dry run refused it: {preview.dry_run_message}")
        intent = self.journal.append(
            "apply-intent",
            {
                "action": plan.action,
                "title": plan.title,
                "kubectl": list(plan.kubectl),
                "changes": [_change_record(c) for c in plan.changes],
            },
        )
        results: list[Obj] = []
        inverses: list[Obj] = []
        try:
            for change in plan.changes:
                result = self._send(change, dry_run=False)
                results.append(result or {})
                inverses.append(self._inverse(change, result))
        except SkewmitError as exc:
            self.journal.append(
                "apply-failed",
                {
                    "intent": intent.seq,
                    "error": str(exc),
                    "applied": len(results),
                    "inverse": inverses,
                },
            )
            raise
        verified, message = self.verify(plan, results)
        done = self.journal.append(
            "applied",
            {
                "intent": intent.seq,
                "action": plan.action,
                "title": plan.title,
                "inverse": inverses,
                "after": [comparable(r) for r in results],
                "verified": verified,
                "verify": message,
            },
        )
        return Applied(plan, done.seq, verified, message, tuple(results))

    def _inverse(self, change: Change, result: Obj | None) -> Obj:
        target = {"kind": change.kind, "namespace": change.namespace, "name": change.name}
        if change.operation == "patch" and change.before is not None and result:
            return {**target, "operation": "patch", "ops": inverse_ops(change.before, result)}
        if change.operation == "create" and result:
            return {**target, "operation": "delete", "name": result["metadata"]["name"]}
        return {
            **target,
            "operation": "none",
            "why": "a deleted pod is recreated by its ReplicaSet; nothing to restore",
        }

    def verify(self, plan: Plan, results: list[Obj]) -> tuple[bool, str]:
        """Re-read every changed object and check the intended change is live."""
        problems = []
        for change, result in zip(plan.changes, results, strict=False):
            if change.operation == "delete":
                continue
            try:
                live = self.cluster.get(
                    change.kind,
                    change.namespace,
                    result.get("metadata", {}).get("name", change.name),
                )
            except SkewmitError as exc:
                problems.append(f"{change.kind.lower()}/{change.name}: {exc}")
                continue
            if comparable(live) != comparable(result):
                problems.append(
                    f"{change.kind.lower()}/{change.name} differs from what was "
                    "applied (another writer?)"
                )
        if problems:
            return False, "; ".join(problems)
        return True, "re-read: every change is live"

    # -- revert --------------------------------------------------------------

    def applied_entries(self) -> list[tuple[int, Obj]]:
        """Applies not yet reverted, newest first: (journal seq, entry data)."""
        reverted = {e.data.get("reverts") for e in self.journal.entries() if e.type == "reverted"}
        return [
            (e.seq, e.data)
            for e in reversed(self.journal.entries())
            if e.type == "applied" and e.seq not in reverted
        ]

    def revert(self, seq: int) -> Applied:
        """Apply the inverse of journal entry `seq`. Raises RevertRefused (with the diff) when
        an object changed since, NotFound/Forbidden as the cluster says."""
        entry = next(
            (e for e in self.journal.entries() if e.seq == seq and e.type == "applied"), None
        )
        if entry is None:
            raise InvalidError(f"journal entry {seq} is not an applied change")
        if self.read_only:
            raise ForbiddenError("read-only mode: skewmit makes no changes")
        data = entry.data
        inverses, afters = data.get("inverse", []), data.get("after", [])
        changes: list[Change] = []
        # Undo newest first: restore a route before deleting what it pointed at.
        pairs = list(zip(inverses, afters, strict=False))[::-1]
        for inverse, after in pairs:
            if inverse["operation"] == "none":
                continue
            live = self.cluster.get(inverse["kind"], inverse["namespace"], inverse["name"])
            if comparable(live) != after:
                diff = "\n".join(
                    difflib.unified_diff(
                        yaml.safe_dump(after, sort_keys=True).splitlines(),
                        yaml.safe_dump(comparable(live), sort_keys=True).splitlines(),
                        "as skewmit left it",
                        "live now",
                        lineterm="",
                    )
                )
                self.journal.append("revert-refused", {"reverts": seq, "diff": diff})
                raise RevertRefused(
                    f"{inverse['kind'].lower()}/{inverse['name']} changed since "
                    f"skewmit applied entry {seq}; not reverting",
                    diff,
                )
            rv = live["metadata"]["resourceVersion"]
            if inverse["operation"] == "patch":
                ops = unmask(inverse["ops"], _live_values(inverse["ops"], live))
                ops = _keep_system_taints(ops, live)
                changes.append(
                    Change(
                        inverse["kind"],
                        inverse["namespace"],
                        inverse["name"],
                        "patch",
                        "json",
                        ops,
                        live,
                        None,
                        rv,
                    )
                )
            else:
                changes.append(
                    Change(
                        inverse["kind"],
                        inverse["namespace"],
                        inverse["name"],
                        "delete",
                        "",
                        None,
                        live,
                        None,
                        rv,
                    )
                )
        plan = Plan(
            step=_step_of(data),
            action=f"revert.{data.get('action', '')}",
            title=f"Revert: {data.get('title', '')}",
            changes=tuple(changes),
            kubectl=(),
        )
        self.journal.append("revert-intent", {"reverts": seq})
        results = [self._send(c, dry_run=False) or {} for c in changes]
        verified, message = self.verify(plan, results)
        done = self.journal.append(
            "reverted",
            {"reverts": seq, "title": plan.title, "verified": verified, "verify": message},
        )
        return Applied(plan, done.seq, verified, message, tuple(results))


def _keep_system_taints(ops: list[Obj], live: Obj) -> list[Obj]:
    """An inverse that rewrites a node's taints keeps the taints the cluster itself added."""
    system = [
        t
        for t in (live.get("spec", {}).get("taints") or [])
        if str(t.get("key", "")).startswith(SYSTEM_TAINT_PREFIX)
    ]
    if not system:
        return ops
    out = []
    for op in ops:
        if op.get("path") == "/spec/taints" and op.get("op") in ("add", "replace"):
            op = {**op, "value": list(op["value"]) + system}
        elif op.get("path") == "/spec/taints" and op.get("op") == "remove":
            op = {"op": "replace", "path": "/spec/taints", "value": system}
        out.append(op)
    return out


def _live_values(ops: list[Obj], live: Obj) -> list[Obj]:
    """For each op, the live value at its path: the source of unmasked secrets."""
    return [{"op": op["op"], "path": op["path"], "value": _resolve(live, op["path"])} for op in ops]


def _step_of(data: Obj) -> Any:
    from services.models import Step

    action = str(data.get("action", "rollback.undo"))
    try:
        return Step(action.split(".")[0])
    except ValueError:
        return Step.ROLLBACK


def _with_precondition(change: Change) -> Any:
    """The patch guarded by the resourceVersion it was checked against."""
    if not change.resource_version:
        return change.patch
    if change.patch_type == "json":
        guard = {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": change.resource_version,
        }
        return [guard] + [
            op
            for op in change.patch
            if not (op.get("op") == "test" and op.get("path") == "/metadata/resourceVersion")
        ]
    patch = copy.deepcopy(change.patch)
    patch.setdefault("metadata", {})["resourceVersion"] = change.resource_version
    return patch


def _change_record(change: Change) -> Obj:
    return {
        "kind": change.kind,
        "namespace": change.namespace,
        "name": change.name,
        "operation": change.operation,
        "patch_type": change.patch_type,
        "patch": change.patch,
        "before": comparable(change.before),
        "after": comparable(change.after),
        "resource_version": change.resource_version,
    }
