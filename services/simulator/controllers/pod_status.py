"""How a kubelet on containerd spells things in a pod's status and events."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from services.simulator.clock import rfc3339

Obj = dict[str, Any]


def stamp(moment: float) -> str:
    return rfc3339(datetime.fromtimestamp(moment, UTC))


def go_duration(seconds: float) -> str:
    """time.Duration.String(): "10s", "1m20s", "5m0s", "2.365s", "412ms"."""
    nanos = round(seconds * 1e9)
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)

    def with_fraction(value: int, unit: int) -> str:
        whole, fraction = divmod(value, unit)
        if not fraction:
            return str(whole)
        digits = str(fraction).rjust(len(str(unit)) - 1, "0").rstrip("0")
        return f"{whole}.{digits}"

    if nanos < 1_000:
        return f"{sign}{nanos}ns"
    if nanos < 1_000_000:
        return f"{sign}{with_fraction(nanos, 1_000)}µs"
    if nanos < 1_000_000_000:
        return f"{sign}{with_fraction(nanos, 1_000_000)}ms"
    hours, rest = divmod(nanos, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = with_fraction(rest, 10**9) + "s"
    if hours:
        text = f"{hours}h{minutes}m{text}"
    elif minutes:
        text = f"{minutes}m{text}"
    return sign + text


def _split_image(image: str) -> tuple[str, str]:
    """(repository fully qualified, "@sha256:..." or ":tag") as containerd resolves it."""
    if "@" in image:
        name, digest = image.split("@", 1)
        suffix = "@" + digest
    else:
        head, _, last = image.rpartition("/")
        if ":" in last:
            last, tag = last.split(":", 1)
        else:
            tag = "latest"
        name = f"{head}/{last}" if head else last
        suffix = ":" + tag
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return name, suffix
    if not rest:
        return f"docker.io/library/{name}", suffix
    return f"docker.io/{name}", suffix


def status_image(image: str) -> str:
    """containerStatuses[].image: "vllm/vllm-openai:v1" -> "docker.io/vllm/vllm-openai:v1"."""
    repository, suffix = _split_image(image)
    return repository + suffix


def image_id(image: str, digest: str) -> str:
    """containerStatuses[].imageID: the repository digest, "docker.io/...@sha256:<hex>"."""
    repository, _ = _split_image(image)
    return f"{repository}@{digest}"


def container_id(pod_uid: str, name: str, restart: int) -> str:
    digest = hashlib.sha256(f"{pod_uid}/{name}/{restart}".encode()).hexdigest()
    return f"containerd://{digest}"


def image_size(digest: str) -> int:
    """A stable, plausible size for the Pulled event (serving images run to gigabytes)."""
    hexpart = digest.removeprefix("sha256:")[:8] or "0"
    return 2_000_000_000 + int(hexpart, 16) % 8_000_000_000


def format_pod(pod: Obj) -> str:
    """format.Pod: "name_namespace(uid)", as kubelet messages name a pod."""
    meta = pod["metadata"]
    return f"{meta['name']}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def pod_condition(
    type_: str, status: str, since: float, reason: str = "", message: str = ""
) -> Obj:
    cond: Obj = {
        "type": type_,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": stamp(since),
    }
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def keep_transition_times(new: list[Obj], old: list[Obj]) -> list[Obj]:
    """A condition whose status did not change keeps its lastTransitionTime."""
    previous = {c.get("type"): c for c in old}
    out = []
    for cond in new:
        before = previous.get(cond["type"])
        if before is not None and before.get("status") == cond["status"]:
            cond = {**cond, "lastTransitionTime": before.get("lastTransitionTime")}
        out.append(cond)
    return out


def init_container_statuses(pod_uid: str, pod: Obj, started: float) -> list[Obj]:
    """Init containers, all run to completion when the pod was admitted."""
    out = []
    for spec in pod["spec"].get("initContainers") or []:
        name = str(spec.get("name", ""))
        image = str(spec.get("image", ""))
        cid = container_id(pod_uid, name, 0)
        out.append(
            {
                "name": name,
                "image": status_image(image),
                "imageID": "",
                "containerID": cid,
                "lastState": {},
                "ready": True,
                "restartCount": 0,
                "started": False,
                "state": {
                    "terminated": {
                        "containerID": cid,
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": stamp(started),
                        "finishedAt": stamp(started),
                    }
                },
            }
        )
    return out
