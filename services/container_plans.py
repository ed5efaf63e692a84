"""The generic container patch behind every step's plan: which container a plan edits, the
Deployment's live pods and the digest they run, the strategic-merge patch of one container
(keyed by name) with the change-cause annotation, and the kubectl an SRE could paste instead.

Step modules (pin, latency) build their plans on `container_plan`; only the Gate applies them.
"""

from __future__ import annotations

import copy
import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from services.drift import digest_from_image_id
from services.engines import FLAGS, TGI, UNKNOWN, detect_engine, engine_containers, tgi_env
from services.errors import InvalidError, NotFoundError
from services.kube import Cluster
from services.masking import mask_object
from services.models import Change, Plan, Step
from services.rollout import owned_replicasets

Obj = dict[str, Any]
CHANGE_CAUSE = "kubernetes.io/change-cause"


# --- reads ---------------------------------------------------------------------------------


def deployment_pods(
    cluster: Cluster, deployment: Obj, sets: Sequence[Obj] | None = None
) -> list[Obj]:
    """The Deployment's pods (selected by its selector and owned by one of its ReplicaSets),
    terminating ones left out, sorted by name."""
    meta, spec = deployment["metadata"], deployment["spec"]
    owned = {
        rs["metadata"]["name"]
        for rs in (sets if sets is not None else owned_replicasets(cluster, deployment))
    }
    selector = ",".join(
        f"{k}={v}" for k, v in sorted(spec["selector"].get("matchLabels", {}).items())
    )
    pods = []
    for pod in cluster.list("Pod", meta["namespace"], label_selector=selector):
        owners = {r.get("name") for r in pod["metadata"].get("ownerReferences") or []}
        if owners & owned and not pod["metadata"].get("deletionTimestamp"):
            pods.append(pod)
    return sorted(pods, key=lambda p: str(p["metadata"]["name"]))


def _image_ids(pods: Sequence[Obj], container: str, image: str) -> dict[str, str]:
    """pod name -> imageID of `container`, for pods running that container with `image`."""
    found: dict[str, str] = {}
    for pod in pods:
        spec_images = {c.get("name"): c.get("image") for c in pod["spec"].get("containers", [])}
        if spec_images.get(container) != image:
            continue  # a pod of an older template ran another image
        for status in pod.get("status", {}).get("containerStatuses") or []:
            if status.get("name") == container and status.get("imageID"):
                found[pod["metadata"]["name"]] = str(status["imageID"])
    return found


def running_digest(pods: Sequence[Obj], container: str, image: str) -> tuple[str | None, str]:
    """(digest, why not): the one registry digest every pod running `image` in `container`
    reports in its imageID; None with the reason and what to do when they disagree or none can
    be derived. Raises nothing."""
    ids = _image_ids(pods, container, image)
    if not ids:
        return None, (
            f"no running pod reports an imageID for container {container} ({image}) yet: wait "
            "for a pod to start, or give the digest explicitly (digest=sha256:...)"
        )
    digests: dict[str, list[str]] = {}
    for pod, image_id in sorted(ids.items()):
        digest, why = digest_from_image_id(image_id, image)
        if digest is None:
            return None, f"pod {pod}: {why}; then give it explicitly (digest=sha256:...)"
        digests.setdefault(digest, []).append(pod)
    if len(digests) > 1:
        seen = "; ".join(f"{d[:19]}... on {', '.join(p)}" for d, p in sorted(digests.items()))
        return None, (
            f"the pods running {image} report different digests ({seen}): the tag moved "
            "between pulls. Decide which build is good (e.g. the one on pods that pass "
            "validation) and give that digest explicitly (digest=sha256:...)"
        )
    return next(iter(digests)), ""


# --- plans ---------------------------------------------------------------------------------


def pick_container(template: Mapping[str, Any], container: str | None = None) -> Obj:
    """The container a plan edits: the named one, else the only serving-engine container.
    Raises NotFoundError (no such container), InvalidError (no or several engine containers)."""
    containers = list(template.get("spec", {}).get("containers") or [])
    names = ", ".join(str(c.get("name")) for c in containers)
    if container:
        for c in containers:
            if c.get("name") == container:
                return dict(c)
        raise NotFoundError(f"the pod template has no container {container!r}; it has: {names}")
    engines = engine_containers(template.get("spec", {}))
    if len(engines) == 1:
        return dict(engines[0])
    if not engines and len(containers) == 1:
        return dict(containers[0])
    what = "no container runs vLLM, TGI or SGLang" if not engines else "several containers serve"
    raise InvalidError(f"{what} ({names}): name the container to change")


def _env_patch(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list[Obj]:
    """Env entries merged by name: changed and added entries, deletions as directives."""
    before = {str(e.get("name")): e for e in old}
    after_names = {str(e.get("name")) for e in new}
    out: list[Obj] = []
    for entry in new:
        prior = before.get(str(entry.get("name")))
        if prior == entry:
            continue
        item = dict(entry)
        # Merging by name keeps the old entry's other fields: clear the one that no longer
        # applies, or the server sees both value and valueFrom.
        for key in ("value", "valueFrom"):
            if prior is not None and key in prior and key not in entry:
                item[key] = None
        out.append(item)
    out += [{"name": n, "$patch": "delete"} for n in before if n not in after_names]
    return out


def container_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> Obj:
    """The strategic-merge patch of one container (keyed by name): image as is, command and
    args whole (atomic lists), env merged by name with kubectl's ``$setElementOrder/env``.
    Raises InvalidError when nothing changes."""
    patch: Obj = {"name": new["name"]}
    for field in ("image", "command", "args"):
        if old.get(field) != new.get(field):
            patch[field] = new.get(field)
    env_items = _env_patch(old.get("env") or [], new.get("env") or [])
    if env_items:
        patch["$setElementOrder/env"] = [{"name": e.get("name")} for e in new.get("env") or []]
        patch["env"] = env_items
    if len(patch) == 1:
        raise InvalidError(f"container {new['name']} already has that setting: nothing to change")
    return patch


def _kubectl(ref: str, namespace: str, cpatch: Obj, cause: str) -> list[str]:
    """What an SRE could paste: set image / set env where they say it all, else a patch.
    Secret values in args and env show masked (the screen and the journal see these)."""
    cpatch = mask_object({"containers": [cpatch]})["containers"][0]
    name = cpatch["name"]
    plain_env = all(
        "value" in e and "valueFrom" not in e and "$patch" not in e for e in cpatch.get("env", [])
    )
    commands: list[str] = []
    if set(cpatch) <= {"name", "image", "env", "$setElementOrder/env"} and plain_env:
        if "image" in cpatch:
            commands.append(f"kubectl set image {ref} {name}={cpatch['image']} -n {namespace}")
        if "env" in cpatch:
            pairs = " ".join(shlex.quote(f"{e['name']}={e['value']}") for e in cpatch["env"])
            commands.append(f"kubectl set env {ref} -c {name} {pairs} -n {namespace}")
    else:
        body = {"spec": {"template": {"spec": {"containers": [cpatch]}}}}
        commands.append(
            f"kubectl patch {ref} -n {namespace} --type=strategic -p "
            + shlex.quote(json.dumps(body, separators=(",", ":")))
        )
    commands.append(
        f"kubectl annotate {ref} -n {namespace} {CHANGE_CAUSE}={shlex.quote(cause)} --overwrite"
    )
    commands.append(f"kubectl rollout status {ref} -n {namespace}")
    return commands


def container_plan(
    deployment: Obj,
    new_container: Mapping[str, Any],
    *,
    step: Step,
    action: str,
    title: str,
    summary: str,
    tradeoff: str = "",
    notes: Sequence[str] = (),
) -> Plan:
    """A Plan that replaces one container of the Deployment's template (matched by name) with
    `new_container`: a strategic-merge patch plus the change-cause annotation (``skewmit
    <action>: <summary>``), so the rollout history says what skewmit changed. Raises
    InvalidError when nothing changes, NotFoundError for an unknown container."""
    meta = deployment["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    template = deployment["spec"]["template"]
    old = pick_container(template, str(new_container["name"]))
    cpatch = container_patch(old, new_container)
    cause = f"skewmit {action}: {summary}"
    patch: Obj = {
        "metadata": {"annotations": {CHANGE_CAUSE: cause}},
        "spec": {"template": {"spec": {"containers": [cpatch]}}},
    }
    after = copy.deepcopy(deployment)
    after["metadata"].setdefault("annotations", {})[CHANGE_CAUSE] = cause
    after["spec"]["template"]["spec"]["containers"] = [
        copy.deepcopy(dict(new_container)) if c.get("name") == new_container["name"] else c
        for c in after["spec"]["template"]["spec"]["containers"]
    ]
    all_notes = list(notes)
    if deployment["spec"].get("paused"):
        all_notes.append(
            f"deployment/{name} is paused: the change rolls out only after "
            f"`kubectl rollout resume deployment/{name} -n {namespace}`"
        )
    change = Change(
        "Deployment",
        namespace,
        name,
        "patch",
        "strategic",
        patch,
        deployment,
        after,
        str(meta.get("resourceVersion", "")),
    )
    return Plan(
        step=step,
        action=action,
        title=title,
        changes=(change,),
        kubectl=tuple(_kubectl(f"deployment/{name}", namespace, cpatch, cause)),
        tradeoff=tradeoff,
        notes=tuple(all_notes),
    )


def engine_of(container: Mapping[str, Any]) -> str:
    engine = detect_engine(container)
    if engine == UNKNOWN:
        raise InvalidError(
            f"container {container.get('name')} does not run vLLM, TGI or SGLang as far as "
            "skewmit can tell: change its flags in the manifest by hand"
        )
    return engine


def setting_of(engine: str, option: str) -> str:
    """The flag (vLLM, SGLang) or env var (TGI) an engine reads an option from."""
    flag = FLAGS[engine][option]
    return tgi_env(flag) if engine == TGI else flag


def assignment(engine: str, option: str, value: object) -> str:
    """``--dtype bfloat16`` or, for TGI, ``DTYPE=bfloat16``."""
    sep = "=" if engine == TGI else " "
    return f"{setting_of(engine, option)}{sep}{value}"
