"""Configuration drift: what in a pod, template or revision can change without anyone editing it.

The runbook's drift sources: a mutable image tag, an unpinned model revision, a dtype left to
the engine's default, a context length left to the model config. Each finding names its fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from services.engine_options import validate_revision
from services.engines import (
    ENGINE_NAMES,
    FLAGS,
    TGI,
    UNKNOWN,
    is_reference,
    parse_engine_config,
    tgi_env,
)
from services.errors import InvalidError
from services.models import Finding, Severity, Step

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_LOCAL_MODEL = ("/", "./", "../", "file://", "s3://", "gs://", "pvc://")


def image_parts(image: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference; tag/digest None when absent.
    ``registry:5000/org/img:v1@sha256:...`` -> (``registry:5000/org/img``, ``v1``, ``sha256:...``).
    """
    name, _at, digest = image.strip().partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :] or None, digest or None
    return name, None, digest or None


def digest_from_image_id(image_id: str | None, image: str = "IMAGE") -> tuple[str | None, str]:
    """(registry digest, why not) from a container status ``imageID``.

    ``repo@sha256:...`` (containerd) and ``docker-pullable://repo@sha256:...`` (dockershim)
    carry the digest; a bare ``sha256:...`` is a local image id with no registry digest.
    """
    if not image_id:
        return None, "no running container reports an imageID yet"
    _scheme, _sep, rest = image_id.rpartition("://")
    if "@" in rest:
        digest = rest.rpartition("@")[2]
        if _DIGEST.fullmatch(digest):
            return digest, ""
    if rest.startswith("sha256:"):
        return None, (
            f"the node reports only a local image id ({rest[:19]}...), not a registry digest, so "
            f"the digest cannot be derived from the pod: look it up with `crane digest {image}` "
            f"or `docker buildx imagetools inspect {image}`"
        )
    return None, f"imageID {image_id!r} carries no sha256 digest"


def pinned_image(image: str, digest: str) -> str:
    """``repo:tag@sha256:...`` (the tag kept for readability; it is ignored once a digest is
    given) or ``repo@sha256:...`` without a tag. ``digest`` may also be a full imageID.
    Raises InvalidError when the digest is not ``sha256:`` + 64 hex digits."""
    found = _DIGEST.search(digest.strip().lower())
    if found is None:
        raise InvalidError(
            f"{digest!r} is not an image digest: expected sha256: followed by 64 hex digits"
        )
    repo, tag, _old = image_parts(image)
    return f"{repo}:{tag}@{found.group(0)}" if tag else f"{repo}@{found.group(0)}"


def _image_findings(
    container: Mapping[str, Any], image_id: str | None, step: Step, subject: str
) -> list[Finding]:
    image = str(container.get("image") or "")
    repo, tag, digest = image_parts(image)
    if digest or not image:
        return []
    found, why = digest_from_image_id(image_id, image)
    pinned = pinned_image(image, found) if found else None
    fix = f"pin it by digest: {pinned}" if pinned else f"pin it by digest ({why})"
    if tag is None or tag == "latest":
        severity = Severity.ERROR
        what = "has no tag, so it pulls :latest" if tag is None else "uses the mutable tag :latest"
        message = f"image {image} {what}; every pull may get a different build: {fix}"
    else:
        severity = Severity.WARNING
        message = f"image {image} is pinned only by tag {tag}, which can be moved: {fix}"
    detail = {
        "image": image,
        "repo": repo,
        "tag": tag,
        "digest": found,
        "pinned": pinned,
        "image_id": image_id,
        "digest_note": why,
    }
    return [Finding(step, "image-mutable-tag", severity, message, subject, detail)]


def _engine_findings(container: Mapping[str, Any], step: Step, subject: str) -> list[Finding]:
    config = parse_engine_config(container)
    if config.engine == UNKNOWN:
        return []
    engine = ENGINE_NAMES[config.engine]
    flags = FLAGS[config.engine]

    def knob(option: str, value: str) -> str:
        if config.engine == TGI:
            return f"{tgi_env(flags[option])}={value}"
        return f"{flags[option]} {value}"

    base = {"engine": config.engine, "container": config.container, "model": config.model}
    findings: list[Finding] = []

    def add(code: str, severity: Severity, message: str, **detail: Any) -> None:
        findings.append(Finding(step, code, severity, message, subject, {**base, **detail}))

    model = config.model or "the model"
    local = bool(config.model) and str(config.model).startswith(_LOCAL_MODEL)
    revision = config.revision
    pin = knob("revision", "<40-hex commit sha>")
    if not local and "revision" not in config.configured:
        add(
            "model-revision-unpinned",
            Severity.ERROR,
            f"model {model} has no revision: {engine} loads the repo's default branch at every "
            f"start, so a push to the model repo changes what serves; pin the commit: {pin}",
            revision=None,
        )
    elif not local and revision and not is_reference(revision):
        try:
            validate_revision(revision)
        except InvalidError as exc:
            add(
                "model-revision-unpinned",
                Severity.ERROR,
                f"model {model} does not pin its revision: {exc} ({pin})",
                revision=revision,
            )
    dtype = config.dtype
    if dtype is None or dtype.strip().lower() == "auto":
        add(
            "dtype-unset",
            Severity.WARNING,
            f"dtype is {dtype or 'unset'}: {engine} takes it from the checkpoint and its own "
            "defaults, so a new image or model revision can change the numerics; set it "
            f"explicitly, e.g. {knob('dtype', 'bfloat16')}",
            dtype=dtype,
        )
    if "max_model_len" not in config.configured:
        add(
            "max-model-len-unset",
            Severity.WARNING,
            f"max model length is unset: {engine} takes the model config's full context "
            "(e.g. 131072 tokens for Llama 3.1), which sizes the KV cache and admits very long "
            f"prompts; set it explicitly, e.g. {knob('max_model_len', '8192')}",
            max_model_len=None,
        )
    return findings


def container_drift(
    container: Mapping[str, Any],
    image_id: str | None,
    step: Step = Step.PIN,
    *,
    owner: str = "",
) -> list[Finding]:
    """Drift findings for one container: image-mutable-tag, model-revision-unpinned,
    dtype-unset, max-model-len-unset (engine checks only for vLLM, TGI and SGLang).
    ``image_id`` is the container status imageID, the source of the digest to pin; ``owner``
    prefixes the subject (``pod/<name>``, ``deployment/<name>``, ``revision/<n>``).
    Raises nothing."""
    name = str(container.get("name", ""))
    subject = f"{owner} container/{name}" if owner else f"container/{name}"
    return _image_findings(container, image_id, step, subject) + _engine_findings(
        container, step, subject
    )


def _owner_and_template(obj: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    metadata = obj.get("metadata") or {}
    kind = obj.get("kind", "")
    template = (obj.get("spec") or {}).get("template")
    if kind == "ReplicaSet" and template is not None:
        revision = (metadata.get("annotations") or {}).get("deployment.kubernetes.io/revision")
        owner = f"revision/{revision}" if revision else f"replicaset/{metadata.get('name', '')}"
        return owner, template
    if kind and template is not None:
        return f"{kind.lower()}/{metadata.get('name', '')}", template
    return "", obj


def template_drift(
    template: Mapping[str, Any], step: Step = Step.PIN, *, owner: str = ""
) -> list[Finding]:
    """Drift findings for every container of a pod template. ``template`` is a pod template
    (``{"metadata", "spec"}``) with ``owner`` naming it, or a Deployment (subject
    ``deployment/<name>``) or ReplicaSet (``revision/<n>``). A template has no imageID, so
    image findings carry no digest. Raises nothing."""
    found_owner, pod_template = _owner_and_template(template)
    owner = owner or found_owner
    spec = pod_template.get("spec") or {}
    findings: list[Finding] = []
    for container in spec.get("containers") or []:
        findings += container_drift(container, None, step, owner=owner)
    return findings


# How many pods an aggregated finding names; detail["pods"] keeps every one.
PODS_NAMED = 3


def aggregate_pod_findings(findings: Sequence[Finding], named: int = PODS_NAMED) -> list[Finding]:
    """Per-pod findings that say the same thing about the same container, folded into one:
    a 1,000-pod fleet on one drifted revision has four findings, not 4,000. The folded
    finding's subject names the first `named` pods and the count (``pod/a, pod/b, pod/c and
    997 more (1000 pods) container/vllm``); detail["pods"] lists every pod and
    detail["count"] their number. Findings about one pod, or not about pods, are kept as
    they are, in their first occurrence's order. Raises nothing."""
    groups: dict[tuple[Any, ...], list[Finding]] = {}
    order: list[tuple[Any, ...] | Finding] = []
    for finding in findings:
        pod, _sep, rest = finding.subject.partition(" ")
        if not pod.startswith("pod/"):
            order.append(finding)
            continue
        key = (
            finding.step,
            finding.code,
            finding.severity,
            finding.message,
            rest,
            str(finding.detail.get("source", "")),
        )
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(finding)
    out: list[Finding] = []
    for item in order:
        if isinstance(item, Finding):
            out.append(item)
            continue
        group = groups[item]
        if len(group) == 1:
            out.append(group[0])
            continue
        pods = [f.subject.partition(" ")[0] for f in group]
        more = f" and {len(pods) - named} more" if len(pods) > named else ""
        container = f" {item[4]}" if item[4] else ""
        subject = f"{', '.join(pods[:named])}{more} ({len(pods)} pods){container}"
        detail = {**group[0].detail, "pods": [p.removeprefix("pod/") for p in pods]}
        out.append(replace(group[0], subject=subject, detail={**detail, "count": len(pods)}))
    return out


def pod_drift(pod: Mapping[str, Any], step: Step = Step.PIN) -> list[Finding]:
    """Drift findings for every container of a pod, with digests from its container statuses
    (subject ``pod/<name> container/<c>``). Raises nothing."""
    owner = f"pod/{(pod.get('metadata') or {}).get('name', '')}"
    statuses = {
        s.get("name"): s.get("imageID")
        for s in (pod.get("status") or {}).get("containerStatuses") or []
    }
    findings: list[Finding] = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        findings += container_drift(
            container, statuses.get(container.get("name")), step, owner=owner
        )
    return findings
