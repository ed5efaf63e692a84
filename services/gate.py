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
from services.masking import MASK, Unrestorable, has_mask, mask_object, mask_text, restore_masked
from services.models import Change, GitOpsInfo, Plan, Preview

Obj = dict[str, Any]
VERBS = {"patch": "patch", "create": "create", "delete": "delete"}
# Fields the controllers own: never part of a diff, a verification or an inverse.
CONTROLLER_ANNOTATION_PREFIXES = ("deployment.kubernetes.io/",)
SYSTEM_TAINT_PREFIX = "node.kubernetes.io/"
NOISE = ("resourceVersion", "generation", "managedFields", "uid", "creationTimestamp", "selfLink")
# A write answered 409 while nothing but status moved (a controller bumping the
# resourceVersion) is re-checked and retried this many times.
CONFLICT_RETRIES = 3


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


def comparable(obj: Obj | None, *, masked: bool = True) -> Obj:
    """The part of an object a change is about: labels, annotations (but the controllers'),
    spec, and data; masked so that journaled copies compare equal to live ones (``masked=False``
    keeps the secrets: what inverses and verification need)."""
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
    if not masked:
        return out
    hidden: Obj = mask_object(out, keep_refs=True)
    return hidden


def render_diff(
    before: Obj | None, after: Obj | None, label: str, *, old: str = "live", new: str = "after"
) -> str:
    """A unified diff of the masked, comparable parts of two versions of an object; `old` and
    `new` name the two sides in the ---/+++ header."""
    a = yaml.safe_dump(comparable(before), sort_keys=True, width=100).splitlines()
    b = yaml.safe_dump(comparable(after), sort_keys=True, width=100).splitlines()
    if not before:
        a = []
    if not after:
        b = []
    lines = difflib.unified_diff(a, b, f"{label} ({old})", f"{label} ({new})", lineterm="", n=3)
    return "\n".join(lines)


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def inverse_ops(before: Obj, after: Obj) -> list[Obj]:
    """JSON patch ops that take `after` back to `before` (labels and annotations key by key,
    spec field by field), with the plain values (secrets included): the journal masks them
    when it writes them, the gate keeps them in memory. A `before` that is itself a masked
    copy (a journaled one) differs from a plain `after` only by its masks where nothing
    changed: no op there."""
    ops: list[Obj] = []
    b, a = comparable(before, masked=False), comparable(after, masked=False)
    mb, ma = comparable(before), comparable(after)

    def differs(old: Any, new: Any, old_masked: Any, new_masked: Any) -> bool:
        return bool(old != new and not (has_mask(old) and old_masked == new_masked))

    for section in ("labels", "annotations"):
        old, new = b["metadata"][section], a["metadata"][section]
        old_m, new_m = mb["metadata"][section], ma["metadata"][section]
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
            elif differs(old[key], new[key], old_m.get(key), new_m.get(key)):
                ops.append({"op": "replace", "path": path, "value": old[key]})
    old_spec, new_spec = b.get("spec", {}), a.get("spec", {})
    old_spec_m, new_spec_m = mb.get("spec", {}), ma.get("spec", {})
    for key in sorted(set(old_spec) | set(new_spec)):
        path = f"/spec/{_escape(key)}"
        if key not in old_spec:
            ops.append({"op": "remove", "path": path})
        elif key not in new_spec:
            ops.append({"op": "add", "path": path, "value": old_spec[key]})
        elif differs(old_spec[key], new_spec[key], old_spec_m.get(key), new_spec_m.get(key)):
            ops.append({"op": "replace", "path": path, "value": old_spec[key]})
    return ops


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
        # seq of an apply -> (plain inverse, plain after) per object: secrets stay in memory.
        self._plain: dict[int, list[tuple[Obj, Obj]]] = {}

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
            return Preview(plan, True, "", False, mask_text(str(exc)), self._diff(plan, None))
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
        seconds; its spec, labels and annotations must not). Secrets are compared too: a
        rotated key is a change. Raises ConflictError with the diff (planned -> live)."""
        if change.operation not in ("patch", "delete") or change.before is None:
            return change
        live = self.cluster.get(change.kind, change.namespace, change.name)
        if comparable(live, masked=False) != comparable(change.before, masked=False):
            label = f"{change.kind.lower()}/{change.name}"
            diff = render_diff(change.before, live, label, old="as planned", new="live now")
            if not diff:
                diff = f"# {label}: a masked (secret) value differs"
            raise ConflictError(
                f"{change.kind.lower()}/{change.name} changed since this plan "
                f"was made; nothing was applied. Re-open the action to plan "
                f"again.\n{diff}"
            )
        return dataclasses.replace(change, resource_version=live["metadata"]["resourceVersion"])

    def _send(self, change: Change, *, dry_run: bool) -> Obj | None:
        """Send one change guarded by the live resourceVersion. A 409 while only status moved
        (the controller bumped the resourceVersion between the read and the write) is
        re-checked and retried; a real change of the object raises ConflictError."""
        _refuse_masked(change)
        retryable = change.operation in ("patch", "delete") and change.before is not None
        for attempt in range(CONFLICT_RETRIES + 1):
            guarded = self._fresh(change)
            try:
                return self._write(guarded, dry_run=dry_run)
            except (ConflictError, InvalidError) as exc:
                # A JSON patch's resourceVersion test fails as 422, a merge patch's as 409:
                # either way, only a moved resourceVersion makes it worth a re-check.
                if not retryable or attempt == CONFLICT_RETRIES:
                    raise
                if isinstance(exc, InvalidError) and not self._moved(guarded):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _moved(self, change: Change) -> bool:
        live = self.cluster.get(change.kind, change.namespace, change.name)
        return bool(live["metadata"].get("resourceVersion") != change.resource_version)

    def _write(self, change: Change, *, dry_run: bool) -> Obj | None:
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
        it, ConflictError when an object changed since it was read. A plan of several
        objects is all or nothing: when one fails, what was already applied is rolled back
        (newest first) and the error says so; if the roll-back fails too, the partial apply
        is journaled as an applied entry (`partial`) that a revert undoes."""
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
            raise self._failed(plan, intent.seq, exc, results, inverses) from exc
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
        self._remember(done.seq, inverses, results)
        return Applied(plan, done.seq, verified, message, tuple(results))

    def _remember(self, seq: int, inverses: list[Obj], results: list[Obj]) -> None:
        # The plain inverses (secrets included) never reach the journal; a revert in this
        # process uses them, a later one rebuilds them from the live object and ReplicaSets.
        plain = [comparable(r, masked=False) for r in results]
        self._plain[seq] = list(zip(copy.deepcopy(inverses), plain, strict=True))

    def _failed(
        self, plan: Plan, intent: int, exc: SkewmitError, results: list[Obj], inverses: list[Obj]
    ) -> SkewmitError:
        """Roll back the part of `plan` already applied, journal the outcome, and return the
        error to raise (the original's type, its message saying what was undone)."""
        undone, problem = 0, ""
        for inverse in reversed(inverses):
            try:
                self._undo(inverse)
            except SkewmitError as undo_exc:
                problem = str(undo_exc)
                break
            undone += 1
        rolled_back = undone == len(inverses)
        self.journal.append(
            "apply-failed",
            {
                "intent": intent,
                "error": str(exc),
                "applied": len(results),
                "inverse": inverses,
                "rolled_back": rolled_back,
                "rollback_error": problem,
            },
        )
        if not inverses:
            return exc  # nothing was applied: the error says all there is
        step = len(results) + 1
        failed = plan.changes[len(results)] if len(results) < len(plan.changes) else None
        what = f"{failed.kind.lower()}/{failed.name}" if failed else "the plan"
        if rolled_back:
            note = f"the {len(inverses)} change(s) applied before it were rolled back"
        else:
            kept = inverses[: len(inverses) - undone]
            partial = self.journal.append(
                "applied",
                {
                    "intent": intent,
                    "action": plan.action,
                    "title": f"{plan.title} (partial: {len(kept)} of {len(plan.changes)})",
                    "inverse": kept,
                    "after": [comparable(r) for r in results[: len(kept)]],
                    "verified": False,
                    "verify": f"partial apply: {what} failed and the roll-back failed too",
                    "partial": True,
                },
            )
            self._remember(partial.seq, kept, results[: len(kept)])
            note = (
                f"rolling back what was applied failed ({problem}); the partial apply is "
                f"journal entry {partial.seq}: revert it to remove it"
            )
        error = copy.copy(exc)
        error.args = (f"change {step} of {len(plan.changes)} ({what}) failed: {exc}; {note}",)
        return error

    def _undo(self, inverse: Obj) -> None:
        """Apply one plain inverse at once (a roll-back inside a failed apply)."""
        kind, namespace, name = inverse["kind"], inverse["namespace"], inverse["name"]
        if inverse["operation"] == "delete":
            self.cluster.delete(kind, namespace, name)
        elif inverse["operation"] == "patch" and inverse["ops"]:
            live = self.cluster.get(kind, namespace, name)
            self.cluster.patch(
                kind, namespace, name, _keep_system_taints(inverse["ops"], live), "json"
            )

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
        """Re-read every changed object and check the intended change is live, secrets
        included (a masked comparison would call a masked secret "live")."""
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
            if comparable(live, masked=False) != comparable(result, masked=False):
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
        """Apply the inverse of journal entry `seq`, restoring the objects exactly as they
        were, secrets included: from this process's plain copy of the inverse, else from the
        live object and the Deployment's ReplicaSets; never from a masked value. Raises
        RevertRefused (with the diff) when an object changed since or a secret cannot be
        restored, NotFound/Forbidden as the cluster says."""
        entry = next(
            (e for e in self.journal.entries() if e.seq == seq and e.type == "applied"), None
        )
        if entry is None:
            raise InvalidError(f"journal entry {seq} is not an applied change")
        if self.read_only:
            raise ForbiddenError("read-only mode: skewmit makes no changes")
        data = entry.data
        inverses, afters = data.get("inverse", []), data.get("after", [])
        remembered = self._plain.get(seq)
        changes: list[Change] = []
        # Undo newest first: restore a route before deleting what it pointed at.
        pairs = list(enumerate(zip(inverses, afters, strict=False)))[::-1]
        for index, (inverse, after) in pairs:
            if inverse["operation"] == "none":
                continue
            live = self.cluster.get(inverse["kind"], inverse["namespace"], inverse["name"])
            plain = remembered[index] if remembered and index < len(remembered) else None
            secret_moved = plain is not None and comparable(live, masked=False) != plain[1]
            if comparable(live) != after or secret_moved:
                self._refuse(seq, inverse, after, live)
            rv = live["metadata"]["resourceVersion"]
            kind, namespace, name = inverse["kind"], inverse["namespace"], inverse["name"]
            if inverse["operation"] == "patch":
                ops = plain[0]["ops"] if plain else self._restore(seq, inverse, live)
                ops = _keep_system_taints(ops, live)
                changes.append(Change(kind, namespace, name, "patch", "json", ops, live, None, rv))
            else:
                changes.append(Change(kind, namespace, name, "delete", "", None, live, None, rv))
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
        self._plain.pop(seq, None)
        return Applied(plan, done.seq, verified, message, tuple(results))

    def _refuse(self, seq: int, inverse: Obj, after: Obj, live: Obj) -> None:
        diff = "\n".join(
            difflib.unified_diff(
                yaml.safe_dump(after, sort_keys=True).splitlines(),
                yaml.safe_dump(comparable(live), sort_keys=True).splitlines(),
                "as skewmit left it",
                "live now",
                lineterm="",
            )
        )
        diff = diff or "# a masked (secret) value differs from what skewmit left"
        self.journal.append("revert-refused", {"reverts": seq, "diff": diff})
        raise RevertRefused(
            f"{inverse['kind'].lower()}/{inverse['name']} changed since "
            f"skewmit applied entry {seq}; not reverting",
            diff,
        )

    def _restore(self, seq: int, inverse: Obj, live: Obj) -> list[Obj]:
        """The journaled (masked) inverse ops with every masked value restored: an exact
        recorded copy (a ReplicaSet's template) first, else the live object's own values.
        Raises RevertRefused when a secret cannot be restored (the plan changed the secret
        itself, or the live object no longer holds it)."""
        plain_live, masked_live = comparable(live, masked=False), comparable(live)
        references = self._references(inverse, plain_live)
        ops = []
        for op in inverse["ops"]:
            value = op.get("value")
            if "value" not in op or not has_mask(value):
                ops.append(op)
                continue
            path = op["path"]
            here = (_resolve(plain_live, path), _resolve(masked_live, path))
            exact = []
            for plain_ref, masked_ref in references:
                candidate = _resolve(plain_ref, path)
                # An op exists only where the old value differs from the one now live.
                if candidate == here[0] or candidate in exact:
                    continue
                if _resolve(masked_ref, path) == value:
                    exact.append(candidate)
            try:
                if len(exact) == 1:
                    restored = exact[0]
                elif exact or here[1] == value:
                    # Equal once masked yet different: the plan changed a secret itself, and
                    # the live object holds the new one, not the old.
                    raise Unrestorable(path)
                else:
                    restored = restore_masked(value, [here], path)
            except Unrestorable as exc:
                where = f"{inverse['kind'].lower()}/{inverse['name']}"
                message = (
                    f"cannot restore a masked (secret) value of {where} at {exc.path}: skewmit "
                    f"keeps no secrets, and neither the live object nor a ReplicaSet holds it; "
                    f"not reverting entry {seq}. Restore it by hand from your secret store."
                )
                self.journal.append("revert-refused", {"reverts": seq, "why": message})
                raise RevertRefused(message, "") from None
            ops.append({**op, "value": restored})
        return ops

    def _references(self, inverse: Obj, plain_live: Obj) -> list[tuple[Obj, Obj]]:
        """Exact recorded copies of earlier states: for a Deployment, each owned ReplicaSet's
        template and annotations put in the live object's place, (plain, masked) like
        comparable's."""
        if inverse["kind"] != "Deployment" or "spec" not in plain_live:
            return []
        try:
            replicasets = self.cluster.list("ReplicaSet", inverse["namespace"])
        except SkewmitError:
            return []
        out = []
        for rs in replicasets:
            owners = rs.get("metadata", {}).get("ownerReferences") or []
            if not any(
                o.get("kind") == "Deployment" and o.get("name") == inverse["name"] for o in owners
            ):
                continue
            template = copy.deepcopy(rs.get("spec", {}).get("template") or {})
            (template.get("metadata") or {}).get("labels", {}).pop("pod-template-hash", None)
            doc = copy.deepcopy(plain_live)
            doc["spec"]["template"] = template
            # The controller copies the Deployment's annotations (change-cause) to its
            # ReplicaSet: the record of what they were when that template was live.
            notes = rs.get("metadata", {}).get("annotations") or {}
            doc["metadata"]["annotations"] = {
                k: v for k, v in notes.items() if not k.startswith(CONTROLLER_ANNOTATION_PREFIXES)
            }
            out.append((doc, mask_object(doc, keep_refs=True)))
        return out


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


def _strings(node: Any) -> set[str]:
    if isinstance(node, str):
        return {node}
    if isinstance(node, dict):
        return set().union(*(_strings(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_strings(v) for v in node)) if node else set()
    return set()


def _refuse_masked(change: Change) -> None:
    """Never write a masked value into the cluster: a change carrying the mask that the live
    object did not hold was built from a masked copy. Raises InvalidError."""
    payload = change.patch if change.operation == "patch" else change.after
    written = {text for text in _strings(payload) if MASK in text}
    if written - _strings(change.before):
        raise InvalidError(
            f"{change.kind.lower()}/{change.name}: the change would write a masked value "
            f"({MASK}) into the cluster; nothing was applied. This is a skewmit bug: report it."
        )
