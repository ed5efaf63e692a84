"""Step 2: pin the configuration. Drift findings on the live pods, the Deployment's template and
the revision `rollout undo` would restore; plans that pin the image digest, the model revision,
the dtype and the max model length; and the after-apply read-back of args and env.

Every plan is one strategic-merge patch on the Deployment, keyed by container name, that only
the Gate applies. The container edit itself comes from `engine_options.set_option`, so the
flag or env var written is the one the engine reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

# The container-patch helpers live in container_plans; re-exported for existing importers.
from services.container_plans import CHANGE_CAUSE as CHANGE_CAUSE
from services.container_plans import assignment as assignment
from services.container_plans import container_patch as container_patch
from services.container_plans import container_plan as container_plan
from services.container_plans import deployment_pods as deployment_pods
from services.container_plans import engine_of as engine_of
from services.container_plans import pick_container as pick_container
from services.container_plans import running_digest as running_digest
from services.container_plans import setting_of as setting_of
from services.drift import (
    aggregate_pod_findings,
    container_drift,
    image_parts,
    pinned_image,
    pod_drift,
    template_drift,
)
from services.engine_options import (
    TAG_PREFIX,
    set_option,
    validate_max_model_len,
    validate_operator_revision,
    validate_option,
)
from services.engines import (
    ENGINE_NAMES,
    detect_engine,
    parse_engine_config,
)
from services.errors import InvalidError, NotFoundError
from services.kube import Cluster
from services.masking import mask_args, mask_env
from services.models import Finding, Plan, Severity, Step
from services.rollout import (
    equal_ignore_hash,
    history,
    owned_replicasets,
    revision_of,
    undo_target,
)

Obj = dict[str, Any]
AppliedConfig = tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]


# --- reads ---------------------------------------------------------------------------------


def _tagged(findings: list[Finding], source: str, prefix: str = "") -> list[Finding]:
    # What undo would restore is not running: worth knowing before an undo, not a live fault.
    return [
        replace(
            f,
            message=prefix + f.message,
            detail={**f.detail, "source": source},
            severity=Severity.INFO if source == "undo-target" else f.severity,
        )
        for f in findings
    ]


def pin_findings(cluster: Cluster, namespace: str, name: str) -> list[Finding]:
    """Drift findings for step 2 (codes image-mutable-tag, model-revision-unpinned, dtype-unset,
    max-model-len-unset), each with detail["source"] pod | template | undo-target: the live
    pods (subject ``pod/<p> container/<c>``; pods that drift alike are one finding, subject
    ``pod/a, pod/b, pod/c and N-3 more (N pods) container/<c>``, detail["pods"] and
    detail["count"]: see `aggregate_pod_findings`), the Deployment's template (``deployment/<name>
    container/<c>``, the digest taken from the running pods when they agree) and the revision
    `rollout undo` would restore (``revision/<n> container/<c>``, severity info: it is not
    running). Raises NotFoundError for an unknown Deployment."""
    deployment = cluster.get("Deployment", namespace, name)
    sets = owned_replicasets(cluster, deployment)
    pods = deployment_pods(cluster, deployment, sets)
    per_pod: list[Finding] = []
    for pod in pods:
        per_pod += _tagged(pod_drift(pod, Step.PIN), "pod")
    findings = aggregate_pod_findings(per_pod)
    template = deployment["spec"]["template"]
    for container in template["spec"].get("containers", []):
        image = str(container.get("image", ""))
        digest, _why = running_digest(pods, str(container.get("name", "")), image)
        # The template has no imageID: lend it the one the pods agree on, if they do.
        image_id = f"{image_parts(image)[0]}@{digest}" if digest else None
        findings += _tagged(
            container_drift(container, image_id, Step.PIN, owner=f"deployment/{name}"), "template"
        )
    try:
        target: Obj | None = undo_target(deployment, sets)
    except (NotFoundError, InvalidError):
        target = None  # no history, or paused: undo restores nothing
    if target is not None and not equal_ignore_hash(target["spec"]["template"], template):
        number = revision_of(target)
        findings += _tagged(
            template_drift(target["spec"]["template"], Step.PIN, owner=f"revision/{number}"),
            "undo-target",
            f"revision {number}, which `rollout undo` would restore, drifts too: ",
        )
    return findings


def applied_config(cluster: Cluster, namespace: str, name: str) -> list[AppliedConfig]:
    """Per pod and container (``pod/<p> container/<c>``), its args and env as the runbook's
    ``kubectl get pod -o jsonpath='{.spec.containers[*].args}'`` / ``env`` show them, secrets
    masked: a secretKeyRef shows as ``<secret name/key>``, other references as
    ``<configMap name/key>`` / ``<fieldRef>``. Pods of every live revision are listed, so a
    rollout still in progress shows both. Raises NotFoundError for an unknown Deployment."""
    deployment = cluster.get("Deployment", namespace, name)
    out: list[AppliedConfig] = []
    for pod in deployment_pods(cluster, deployment):
        for container in pod["spec"].get("containers", []):
            env: list[tuple[str, str]] = []
            for entry in mask_env(container.get("env")):
                source = entry.get("valueFrom") or {}
                if "configMapKeyRef" in source:
                    ref = source["configMapKeyRef"]
                    value = f"<configMap {ref.get('name', '')}/{ref.get('key', '')}>"
                elif source:
                    value = f"<{next(iter(source))}>"
                else:
                    value = str(entry.get("value", ""))
                env.append((str(entry.get("name", "")), value))
            out.append(
                (
                    f"pod/{pod['metadata']['name']} container/{container.get('name', '')}",
                    tuple(mask_args(container.get("args"))),
                    tuple(env),
                )
            )
    return out


# --- plans ---------------------------------------------------------------------------------


def image_digest_plan(
    cluster: Cluster,
    namespace: str,
    name: str,
    *,
    container: str | None = None,
    digest: str | None = None,
) -> Plan:
    """pin.image-digest: the container's image pinned to the digest its running pods report
    (or `digest`, given as ``sha256:<64 hex>``). Raises InvalidError when the image is already
    pinned, the pods disagree or report no registry digest (the message says what to do), or
    `digest` is malformed; NotFoundError for an unknown Deployment or container."""
    deployment = cluster.get("Deployment", namespace, name)
    old = pick_container(deployment["spec"]["template"], container)
    image = str(old.get("image", ""))
    if image_parts(image)[2]:
        raise InvalidError(f"container {old['name']} is already pinned by digest ({image})")
    if digest is None:
        digest, why = running_digest(deployment_pods(cluster, deployment), old["name"], image)
        if digest is None:
            raise InvalidError(f"cannot pin {image}: {why}")
    new = {**old, "image": pinned_image(image, digest)}
    return container_plan(
        deployment,
        new,
        step=Step.PIN,
        action="pin.image-digest",
        title=f"Pin container {old['name']} to {new['image']}",
        summary=f"{old['name']} image @{new['image'].rpartition('@')[2][:19]}",
        tradeoff=(
            "The same build the pods run now, by digest, so a moved tag can no longer change "
            "it; the rolling update replaces every pod."
        ),
    )


def _lkg_container(
    cluster: Cluster, namespace: str, name: str, old: Mapping[str, Any]
) -> tuple[Obj | None, str]:
    """(container of the last-known-good revision matching `old` by name, else by engine,
    "revision N") or (None, why there is none)."""
    lkg = next((r for r in history(cluster, namespace, name) if r.last_known_good), None)
    if lkg is None:
        return None, "there is no last-known-good revision (no older revision without drift)"
    rs = cluster.get("ReplicaSet", namespace, lkg.replicaset)
    containers = rs["spec"]["template"]["spec"].get("containers", [])
    engine = detect_engine(old)
    match = next((c for c in containers if c.get("name") == old.get("name")), None)
    match = match or next((c for c in containers if detect_engine(c) == engine), None)
    if match is None:
        return None, f"revision {lkg.number} (last-known-good) has no {old.get('name')} container"
    return dict(match), f"revision {lkg.number}"


# option -> (action id, what it is, an example value, the trade-off of setting it)
_OPTIONS: dict[str, tuple[str, str, str, str]] = {
    "revision": (
        "pin.model-revision",
        "model revision",
        "the 40-character commit sha from the model's Files and versions page",
        "The pods restart and load the model at {value}; if the default branch has moved past "
        "it, the served weights change back to that commit.",
    ),
    "dtype": (
        "pin.dtype",
        "dtype",
        "dtype=bfloat16",
        "The pods restart computing in {value}; if {engine}'s automatic choice differed, "
        "numerics change to what is now pinned.",
    ),
    "max_model_len": (
        "pin.max-model-len",
        "max model length",
        "max_model_len=8192",
        "Requests whose prompt plus output exceed {value} tokens are refused (HTTP 400); the KV "
        "cache is sized for {value} tokens per sequence.",
    ),
}


def _option_plan(
    cluster: Cluster,
    namespace: str,
    name: str,
    option: str,
    value: str | int | None,
    container: str | None,
) -> Plan:
    action, describe, example, tradeoff = _OPTIONS[option]
    deployment = cluster.get("Deployment", namespace, name)
    old = pick_container(deployment["spec"]["template"], container)
    engine = engine_of(old)
    origin = "as given"
    if value is None:
        lkg, where = _lkg_container(cluster, namespace, name, old)
        default = getattr(parse_engine_config(lkg), option) if lkg is not None else None
        if option == "dtype" and str(default or "").lower() == "auto":
            default = None
        if default is None:
            setting = setting_of(engine, option)
            why = f"{where} (last-known-good) leaves {setting} unset too" if lkg else where
            raise InvalidError(
                f"no default for the {describe}: {why}. Give the value explicitly, e.g. {example}"
            )
        value, origin = default, f"what {where}, last-known-good, ran"
    try:
        if option == "revision" and origin == "as given":
            normalized, is_tag = validate_operator_revision(str(value))
            origin = "a tag, as confirmed" if is_tag else origin
        elif option == "max_model_len":
            normalized = str(validate_max_model_len(old, str(value)))
        else:
            normalized = validate_option(engine, option, str(value))
        new = set_option(old, engine, option, normalized)
    except InvalidError as exc:
        raise InvalidError(f"{exc}; nothing was changed. Give a valid {describe}.") from exc
    setting = assignment(engine, option, normalized)
    return container_plan(
        deployment,
        new,
        step=Step.PIN,
        action=action,
        title=f"Set {setting} on container {old['name']} ({origin})",
        summary=f"{old['name']} {setting}",
        tradeoff=tradeoff.format(value=normalized, engine=ENGINE_NAMES[engine]),
    )


def model_revision_plan(
    cluster: Cluster, namespace: str, name: str, revision: str, *, container: str | None = None
) -> Plan:
    """pin.model-revision: the model pinned to `revision`: a full 40-hex commit sha, or a tag
    the operator confirms by writing it ``tag:<name>`` (see `validate_operator_revision`).
    Raises InvalidError for anything else (a branch, a short sha such as ``abc123``, a bare
    name), naming the value and the fix; NotFoundError for an unknown Deployment or
    container."""
    return _option_plan(cluster, namespace, name, "revision", revision, container)


def dtype_plan(
    cluster: Cluster,
    namespace: str,
    name: str,
    dtype: str | None = None,
    *,
    container: str | None = None,
) -> Plan:
    """pin.dtype: dtype set explicitly; default what the last-known-good revision ran.
    Raises InvalidError for a dtype the engine does not take, ``auto``, an unchanged value, or
    no value and no last-known-good dtype; NotFoundError for an unknown Deployment/container."""
    return _option_plan(cluster, namespace, name, "dtype", dtype, container)


def max_model_len_plan(
    cluster: Cluster,
    namespace: str,
    name: str,
    max_model_len: int | str | None = None,
    *,
    container: str | None = None,
) -> Plan:
    """pin.max-model-len: max model length set explicitly; default what the last-known-good
    revision ran. Raises InvalidError for a value out of range: below 16 or above the model's
    own context length where skewmit knows it (`engines.model_context_limit`; the engine would
    crash-loop every pod), the message naming the value, the range and the fix; for an
    unchanged value, or no value and no last-known-good one; NotFoundError as above."""
    return _option_plan(cluster, namespace, name, "max_model_len", max_model_len, container)


# --- the runbook's entry points ------------------------------------------------------------

# action id -> (finding code it fixes, key, title, input name, prompt)
_ACTIONS: dict[str, tuple[str, str, str, str, str]] = {
    "pin.image-digest": (
        "image-mutable-tag", "i", "Pin the image by digest", "digest", "Digest (empty = running)"
    ),
    "pin.model-revision": (
        "model-revision-unpinned", "m", "Pin the model revision", "revision",
        "Revision (40-hex commit sha, or tag:<name> to confirm a tag)"
    ),
    "pin.dtype": ("dtype-unset", "p", "Set the dtype explicitly", "dtype", "dtype"),
    "pin.max-model-len": (
        "max-model-len-unset", "w", "Set max model len", "max_model_len", "Max model len"
    ),
}  # fmt: skip


def pin_actions(
    cluster: Cluster, namespace: str, name: str, findings: Sequence[Finding]
) -> list[dict[str, Any]]:
    """The step's actions as the runbook's ActionSpec fields: available where the Deployment's
    template drifts; defaults are the running digest and what the last-known-good revision
    ran. Raises NotFoundError for an unknown Deployment."""
    template = {f.code: f for f in findings if f.detail.get("source") == "template"}
    image = template.get("image-mutable-tag")
    defaults = {"digest": str(image.detail.get("digest") or "") if image else ""}
    try:
        deployment = cluster.get("Deployment", namespace, name)
        old = pick_container(deployment["spec"]["template"])
        lkg, _where = _lkg_container(cluster, namespace, name, old)
    except InvalidError:
        lkg = None  # no single serving container: the operator names values
    if lkg is not None:
        config = parse_engine_config(lkg)
        for option in _OPTIONS:
            value = getattr(config, option)
            defaults[option] = "" if value is None or str(value) == "auto" else str(value)
        revision = defaults.get("revision", "")
        if revision and not re.fullmatch(r"[0-9a-fA-F]{40}", revision):
            # Last-known-good ran a tag: offered as one, so accepting it is the confirmation.
            defaults["revision"] = TAG_PREFIX + revision
    actions = []
    for action, (code, key, title, field, prompt) in _ACTIONS.items():
        finding = template.get(code)
        actions.append(
            {
                "id": action,
                "step": Step.PIN,
                "title": title,
                "key": key,
                "description": finding.message if finding else "already pinned in the template",
                "inputs": ({"name": field, "prompt": prompt, "default": defaults.get(field, "")},),
                "available": finding is not None,
                "reason": "" if finding else "the Deployment's template already pins it",
            }
        )
    return actions


def plan(
    cluster: Cluster, namespace: str, deployment: str, action_id: str, inputs: dict[str, str]
) -> Plan:
    """The runbook's entry: a pin plan from operator input (empty = the default). Raises
    InvalidError for an unknown action or a missing revision, and what the builders raise."""
    if action_id not in _ACTIONS:
        raise InvalidError(f"unknown pin action {action_id!r}")
    value = (inputs.get(_ACTIONS[action_id][3]) or "").strip() or None
    if action_id == "pin.image-digest":
        return image_digest_plan(cluster, namespace, deployment, digest=value)
    if action_id == "pin.model-revision":
        if value is None:
            raise InvalidError(
                "pin.model-revision needs the revision: a 40-hex commit sha (or tag:<name> for "
                "a tag you checked on the hub)"
            )
        return model_revision_plan(cluster, namespace, deployment, value)
    if action_id == "pin.dtype":
        return dtype_plan(cluster, namespace, deployment, value)
    return max_model_len_plan(cluster, namespace, deployment, value)
