"""What a change is about, how to undo it, and how to undo it without the secrets.

`comparable` is the part of an object a change is about (labels, annotations but the
controllers', spec, data), `render_diff` shows two versions of it, `inverse_ops` is the JSON
patch taking an object back, and `restore_ops` puts the secrets back into a journaled (masked)
inverse from the live object or the Deployment's ReplicaSets, never from the mask;
`refuse_masked` stops a change built from a masked copy before it is sent.
"""

from __future__ import annotations

import copy
import difflib
from typing import Any

import yaml

from services.errors import InvalidError, SkewmitError
from services.kube import Cluster
from services.masking import MASK, Unrestorable, has_mask, mask_object, restore_masked
from services.models import Change

Obj = dict[str, Any]
# Fields the controllers own: never part of a diff, a verification or an inverse.
CONTROLLER_ANNOTATION_PREFIXES = ("deployment.kubernetes.io/",)
SYSTEM_TAINT_PREFIX = "node.kubernetes.io/"


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

    def key_ops(base: str, old: Obj, new: Obj, old_m: Obj, new_m: Obj) -> None:
        for key in sorted(set(old) | set(new)):
            path = f"{base}/{_escape(key)}"
            if key not in old:
                ops.append({"op": "remove", "path": path})
            elif key not in new:
                ops.append({"op": "add", "path": path, "value": old[key]})
            elif differs(old[key], new[key], old_m.get(key), new_m.get(key)):
                ops.append({"op": "replace", "path": path, "value": old[key]})

    for section in ("labels", "annotations"):
        old, new = b["metadata"][section], a["metadata"][section]
        base = f"/metadata/{section}"
        if old and not (after.get("metadata", {}).get(section)):
            ops.append({"op": "add", "path": base, "value": old})
            continue
        key_ops(base, old, new, mb["metadata"][section], ma["metadata"][section])
    key_ops("/spec", b.get("spec", {}), a.get("spec", {}), mb.get("spec", {}), ma.get("spec", {}))
    return ops


def keep_system_taints(ops: list[Obj], live: Obj) -> list[Obj]:
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


def restore_ops(cluster: Cluster, inverse: Obj, live: Obj) -> list[Obj]:
    """A journaled (masked) inverse's ops with every masked value restored: an exact recorded
    copy (a ReplicaSet's template) first, else the live object's own values. Raises
    Unrestorable (naming the path) when a secret cannot be restored: the plan changed the
    secret itself, or the live object no longer holds it."""
    plain_live, masked_live = comparable(live, masked=False), comparable(live)
    references = _references(cluster, inverse, plain_live)
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
        if len(exact) == 1:
            restored = exact[0]
        elif exact or here[1] == value:
            # Equal once masked yet different: the plan changed a secret itself, and the
            # live object holds the new one, not the old.
            raise Unrestorable(path)
        else:
            restored = restore_masked(value, [here], path)
        ops.append({**op, "value": restored})
    return ops


def _strings(node: Any) -> set[str]:
    if isinstance(node, str):
        return {node}
    if isinstance(node, dict):
        return set().union(*(_strings(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_strings(v) for v in node)) if node else set()
    return set()


def refuse_masked(change: Change) -> None:
    """Never write a masked value into the cluster: a change carrying the mask that the live
    object did not hold was built from a masked copy. Raises InvalidError."""
    payload = change.patch if change.operation == "patch" else change.after
    written = {text for text in _strings(payload) if MASK in text}
    if written - _strings(change.before):
        raise InvalidError(
            f"{change.kind.lower()}/{change.name}: the change would write a masked value "
            f"({MASK}) into the cluster; nothing was applied. This is a skewmit bug: report it."
        )


def _references(cluster: Cluster, inverse: Obj, plain_live: Obj) -> list[tuple[Obj, Obj]]:
    """Exact recorded copies of earlier states: for a Deployment, each owned ReplicaSet's
    template and annotations put in the live object's place, (plain, masked) like
    comparable's."""
    if inverse["kind"] != "Deployment" or "spec" not in plain_live:
        return []
    try:
        replicasets = cluster.list("ReplicaSet", inverse["namespace"])
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
