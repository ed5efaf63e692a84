"""The one gate every mutation goes through.

plan -> RBAC check (SelfSubjectAccessReview) -> GitOps check -> server-side dry run -> diff ->
(confirmation, by the caller) -> journal entry written and fsync'd -> apply with a
resourceVersion precondition -> verify -> journal entry closed. Revert applies the recorded
inverse, and refuses (showing the diff) when the object changed since. What a change is
about and how it is undone live in inverse.py; sending one change guarded by its
resourceVersion in guarded_write.py.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from services.cached_cluster import live_reads
from services.errors import ConflictError, ForbiddenError, GitOpsError, InvalidError, SkewmitError
from services.field_owners import OWNED_BY_ANOTHER
from services.gitops import gitops_markers
from services.guarded_apply import APPLY, applied_view, send_apply, taken_over
from services.guarded_write import CONFLICT_RETRIES, send
from services.inverse import (
    CONTROLLER_ANNOTATION_PREFIXES,
    SYSTEM_TAINT_PREFIX,
    comparable,
    inverse_ops,
    keep_system_taints,
    render_diff,
    restore_ops,
)
from services.journal import Entry, Journal
from services.journal_actions import reverted_by
from services.json_patch import patched
from services.kube import Cluster
from services.masking import Unrestorable, mask_text
from services.models import Change, GitOpsInfo, Plan, Preview

# Names callers import from here, some now held by inverse.py and guarded_write.py.
__all__ = [
    "CONFLICT_RETRIES",
    "CONTROLLER_ANNOTATION_PREFIXES",
    "SYSTEM_TAINT_PREFIX",
    "Applied",
    "Gate",
    "RevertRefused",
    "comparable",
    "inverse_ops",
    "render_diff",
]

Obj = dict[str, Any]
VERBS = {"patch": "patch", "create": "create", "delete": "delete", APPLY: "patch"}
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


class Gate:
    def __init__(
        self,
        cluster: Cluster,
        journal: Journal,
        *,
        read_only: bool = False,
        gitops_override: bool = False,
        force_conflicts: bool = False,
    ) -> None:
        # Reads from the server, never a watch-fed cache (services.cached_cluster).
        self.cluster = live_reads(cluster)
        self.journal = journal
        self.read_only = read_only
        self.gitops_override = gitops_override
        # A server-side apply takes fields another manager owns only when the operator said
        # so (after agreeing with the owner); never by default.
        self.force_conflicts = force_conflicts
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
            refused = self._not_permitted(plan, change)
            if refused is not None:
                return refused
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
        return self._dry_run(plan)

    def _not_permitted(self, plan: Plan, change: Change) -> Preview | None:
        """The refusal when RBAC does not let this user make `change` (SSAR). An apply
        that creates its object needs create as well as patch, as the API server checks."""
        verbs = [VERBS[change.operation]]
        if change.operation == APPLY and change.before is None:
            verbs.append("create")
        for verb in verbs:
            allowed, reason = self.cluster.can_i(verb, change.kind, change.namespace, change.name)
            if not allowed:
                denied = f"not permitted: {reason}"
                return Preview(plan, False, denied, False, "", self._diff(plan, None))
        return None

    def _send(self, change: Change, *, dry_run: bool) -> Obj | None:
        if change.operation == APPLY:
            return send_apply(self.cluster, change, dry_run=dry_run, force=self.force_conflicts)
        return send(self.cluster, change, dry_run=dry_run)

    def _dry_run(self, plan: Plan) -> Preview:
        """The server's dry run of every change in order, and the diff of what it returned."""
        results: list[Obj | None] = []
        forced: list[str] = []  # what force takes from other managers: said, never silent
        try:
            for change in plan.changes:
                if self.force_conflicts:
                    forced.append(taken_over(self.cluster, change))
                results.append(self._send(change, dry_run=True))
        except SkewmitError as exc:
            return Preview(plan, True, "", False, mask_text(str(exc)), self._diff(plan, None))
        message = "server dry run accepted every change"
        if any(forced):
            message += "; forced, taking from other managers: " + ", ".join(filter(None, forced))
        return Preview(plan, True, "", True, mask_text(message), self._diff(plan, results))

    def _diff(self, plan: Plan, results: list[Obj | None] | None) -> str:
        parts = []
        for i, change in enumerate(plan.changes):
            after = results[i] if results is not None else change.after
            if results is None and change.operation == APPLY:
                after = applied_view(change)
            if change.operation == "delete":
                after = None
            label = f"{change.kind.lower()}/{change.name}"
            parts.append(render_diff(change.before, after, label) or f"# {label}: no change")
        return "\n".join(parts)

    # -- apply ---------------------------------------------------------------

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
            refused = f"the server's dry run refused it: {preview.dry_run_message}"
            owned = OWNED_BY_ANOTHER in preview.dry_run_message
            raise (ConflictError if owned else InvalidError)(refused)
        intent = self.journal.append(
            "apply-intent",
            {
                "action": plan.action,
                "title": plan.title,
                "kubectl": list(plan.kubectl),
                "changes": [_change_record(c) for c in plan.changes],
                **({"force_conflicts": True} if self._forcing(plan) else {}),
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

    def _forcing(self, plan: Plan) -> bool:
        return self.force_conflicts and any(c.operation == APPLY for c in plan.changes)

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
                kind, namespace, name, keep_system_taints(inverse["ops"], live), "json"
            )

    def _inverse(self, change: Change, result: Obj | None) -> Obj:
        target = {"kind": change.kind, "namespace": change.namespace, "name": change.name}
        # An apply to an existing object is undone by a JSON patch back to what it was; one
        # that created its object, by deleting it.
        if change.operation in ("patch", APPLY) and change.before is not None and result:
            return {**target, "operation": "patch", "ops": inverse_ops(change.before, result)}
        if change.operation in ("create", APPLY) and result:
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
        """Applies not yet reverted, newest first: (journal seq, entry data). What counts as
        reverted is journal_actions' rule, the one the action log and the bridge show."""
        entries = self.journal.entries()
        reverted = reverted_by(entries)
        return [
            (e.seq, e.data)
            for e in reversed(entries)
            if e.type == "applied" and e.seq not in reverted
        ]

    def _revert_plan(self, seq: int, *, journal_refusals: bool) -> Plan:
        """The plan that undoes journal entry `seq`: its recorded inverse made concrete
        against the live objects, secrets restored (see `revert`). Raises what `revert`
        raises before it sends anything; refusals are journaled only with
        `journal_refusals` (a preview writes nothing)."""
        matches = [e for e in self.journal.entries() if e.seq == seq and e.type == "applied"]
        if not matches:
            raise InvalidError(f"journal entry {seq} is not an applied change")
        if len(matches) > 1:
            raise InvalidError(_ambiguous(seq, matches, self.journal.path))
        data = matches[0].data
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
                self._refuse(seq, inverse, after, live, journal=journal_refusals)
            rv = live["metadata"]["resourceVersion"]
            kind, namespace, name = inverse["kind"], inverse["namespace"], inverse["name"]
            if inverse["operation"] == "patch":
                ops = (
                    plain[0]["ops"]
                    if plain
                    else self._restore(seq, inverse, live, journal=journal_refusals)
                )
                ops = keep_system_taints(ops, live)
                after_revert = patched(live, ops)
                changes.append(
                    Change(kind, namespace, name, "patch", "json", ops, live, after_revert, rv)
                )
            else:
                changes.append(Change(kind, namespace, name, "delete", "", None, live, None, rv))
        return Plan(
            step=_step_of(data),
            action=f"revert.{data.get('action', '')}",
            title=f"Revert: {data.get('title', '')}",
            changes=tuple(changes),
            kubectl=(),
        )

    def preview_revert(self, seq: int) -> Preview:
        """What reverting journal entry `seq` will write, shown like every other change: the
        recorded inverse made concrete against the live objects (secrets restored as `revert`
        restores them, never shown), a server-side dry run of it, and the diff live -> after
        the revert, masked. Refusals are reported in the Preview (allowed False, the reason,
        and for an object changed since, the diff live vs. as skewmit left it), never raised:
        read-only mode, a seq naming no applied change or several, an object changed since,
        a secret that cannot be restored, RBAC. Mutates nothing and journals nothing."""
        empty = Plan(_step_of({}), "revert", f"Revert journal entry {seq}", (), ())
        if self.read_only:
            return Preview(empty, False, "read-only mode: skewmit makes no changes", False, "", "")
        try:
            plan = self._revert_plan(seq, journal_refusals=False)
        except RevertRefused as exc:
            return Preview(empty, False, str(exc), False, "", exc.diff)
        except SkewmitError as exc:
            return Preview(empty, False, mask_text(str(exc)), False, "", "")
        if not plan.changes:
            return Preview(
                plan, True, "", True, "nothing to revert: the change left nothing to undo", ""
            )
        for change in plan.changes:
            refused = self._not_permitted(plan, change)
            if refused is not None:
                return refused
        return self._dry_run(plan)

    def revert(self, seq: int) -> Applied:
        """Apply the inverse of journal entry `seq`, restoring the objects exactly as they
        were, secrets included: from this process's plain copy of the inverse, else from the
        live object and the Deployment's ReplicaSets; never from a masked value. Raises
        RevertRefused (with the diff) when an object changed since or a secret cannot be
        restored, NotFound/Forbidden as the cluster says, InvalidError when `seq` names no
        applied change, or several (a journal numbered before seqs were unique)."""
        matches = [e for e in self.journal.entries() if e.seq == seq and e.type == "applied"]
        if len(matches) == 1 and self.read_only:
            raise ForbiddenError("read-only mode: skewmit makes no changes")
        plan = self._revert_plan(seq, journal_refusals=True)
        changes = plan.changes
        self.journal.append("revert-intent", {"reverts": seq})
        results = [self._send(c, dry_run=False) or {} for c in changes]
        verified, message = self.verify(plan, results)
        done = self.journal.append(
            "reverted",
            {"reverts": seq, "title": plan.title, "verified": verified, "verify": message},
        )
        self._plain.pop(seq, None)
        return Applied(plan, done.seq, verified, message, tuple(results))

    def _refuse(
        self, seq: int, inverse: Obj, after: Obj, live: Obj, *, journal: bool = True
    ) -> None:
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
        if journal:
            self.journal.append("revert-refused", {"reverts": seq, "diff": diff})
        raise RevertRefused(
            f"{inverse['kind'].lower()}/{inverse['name']} changed since "
            f"skewmit applied entry {seq}; not reverting",
            diff,
        )

    def _restore(self, seq: int, inverse: Obj, live: Obj, *, journal: bool = True) -> list[Obj]:
        """The journaled (masked) inverse ops with every masked value restored (see
        `restore_ops`). Raises RevertRefused, journaled, when a secret cannot be restored."""
        try:
            return restore_ops(self.cluster, inverse, live)
        except Unrestorable as exc:
            where = f"{inverse['kind'].lower()}/{inverse['name']}"
            message = (
                f"cannot restore a masked (secret) value of {where} at {exc.path}: skewmit "
                f"keeps no secrets, and neither the live object nor a ReplicaSet holds it; "
                f"not reverting entry {seq}. Restore it by hand from your secret store."
            )
            if journal:
                self.journal.append("revert-refused", {"reverts": seq, "why": message})
            raise RevertRefused(message, "") from None


def _ambiguous(seq: int, entries: list[Entry], journal: Path) -> str:
    """Why an old journal's seq shared by applied changes is not reverted: guessing reverted
    the wrong change (issue 9 #3), and every entry under that seq would be marked reverted."""
    named = "; ".join(f'#{seq} "{e.data.get("title", "?")}" applied {e.ts}' for e in entries)
    return (
        f"journal entry #{seq} is ambiguous: {len(entries)} applied changes share that number "
        f"(a journal written before sequence numbers were unique): {named}. skewmit will not "
        f"guess which one you mean and reverts neither; undo the one you mean by hand (each "
        f"entry's inverse is in {journal})"
    )


def _step_of(data: Obj) -> Any:
    from services.models import Step

    action = str(data.get("action", "rollback.undo"))
    try:
        return Step(action.split(".")[0])
    except ValueError:
        return Step.ROLLBACK


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
