"""Generate services/simulator/protobuf_schema.json from Kubernetes' own generated.proto files.

kubectl's typed clients send request bodies as protobuf (`kubectl create deployment`, the
Eviction and DeleteOptions of `kubectl drain`). The simulator decodes them with a small
wire-format reader driven by this table: for each message reachable from the kinds it reads,
field number -> (JSON name, type, label). The table is data taken from the maintained source,
k8s.io/api and k8s.io/apimachinery at one release tag (written into the file), never written by
hand. Proto field names are the JSON names in these files.

    .venv/bin/python -m tests.simulator.gen_protobuf_schema API_CHECKOUT APIMACHINERY_CHECKOUT TAG

reads `git show TAG:path` from the two git directories (e.g. clones of kubernetes/api and
kubernetes/apimachinery) and rewrites the table.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from services.simulator import protobuf

API_FILES = (
    "core/v1/generated.proto",
    "apps/v1/generated.proto",
    "batch/v1/generated.proto",
    "autoscaling/v2/generated.proto",
    "autoscaling/v1/generated.proto",
    "policy/v1/generated.proto",
    "authorization/v1/generated.proto",
)
MACHINERY_FILES = (
    "pkg/apis/meta/v1/generated.proto",
    "pkg/api/resource/generated.proto",
    "pkg/runtime/generated.proto",
    "pkg/util/intstr/generated.proto",
)
# The kinds whose protobuf bodies the simulator reads, by their message.
ROOTS = {
    "Deployment": "k8s.io.api.apps.v1.Deployment",
    "ReplicaSet": "k8s.io.api.apps.v1.ReplicaSet",
    "DaemonSet": "k8s.io.api.apps.v1.DaemonSet",
    "Job": "k8s.io.api.batch.v1.Job",
    "HorizontalPodAutoscaler": "k8s.io.api.autoscaling.v2.HorizontalPodAutoscaler",
    # A kind served in two versions is keyed by its apiVersion too (`kubectl autoscale` 1.32).
    "autoscaling/v1/HorizontalPodAutoscaler": "k8s.io.api.autoscaling.v1.HorizontalPodAutoscaler",
    "Pod": "k8s.io.api.core.v1.Pod",
    "Service": "k8s.io.api.core.v1.Service",
    "ConfigMap": "k8s.io.api.core.v1.ConfigMap",
    "Secret": "k8s.io.api.core.v1.Secret",
    "Namespace": "k8s.io.api.core.v1.Namespace",
    "Node": "k8s.io.api.core.v1.Node",
    "ServiceAccount": "k8s.io.api.core.v1.ServiceAccount",
    "Eviction": "k8s.io.api.policy.v1.Eviction",
    "PodDisruptionBudget": "k8s.io.api.policy.v1.PodDisruptionBudget",
    "DeleteOptions": "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "SelfSubjectAccessReview": "k8s.io.api.authorization.v1.SelfSubjectAccessReview",
    "SelfSubjectRulesReview": "k8s.io.api.authorization.v1.SelfSubjectRulesReview",
}
_PACKAGE = re.compile(r"^package ([\w.]+);", re.M)
_MESSAGE = re.compile(r"^message (\w+) \{\n(.*?)^\}", re.M | re.S)
_FIELD = re.compile(
    r"^\s*(?:(optional|repeated) ([.\w]+)|map<(\w+), ([.\w]+)>) (\w+) = (\d+);", re.M
)
_SCALARS = {"string", "bytes", "bool", "int32", "int64", "double", "float", "uint32", "uint64"}


def parse(text: str) -> dict[str, dict[str, list[Any]]]:
    """{qualified message: {number: [name, type, label, optional]}} of one proto file."""
    package = _PACKAGE.search(text)
    assert package is not None
    out: dict[str, dict[str, list[Any]]] = {}
    for match in _MESSAGE.finditer(text):
        fields: dict[str, list[Any]] = {}
        body = match[2]
        for field in _FIELD.finditer(body):
            label, type_, key, value, name, number = field.groups()
            if key is not None:
                label, type_ = f"map:{key}", value
            # "+optional" in the comment just above: the JSON field is omitempty.
            comment = body[: field.start()].rsplit("\n\n", 1)[-1]
            optional = "+optional" in comment
            if type_ in _SCALARS:
                qualified = type_
            elif type_.startswith("."):
                qualified = type_[1:]
            else:  # a message of the same package
                qualified = f"{package[1]}.{type_}"
            fields[number] = [name, qualified, label, optional]
        out[f"{package[1]}.{match[1]}"] = fields
    return out


def build(api: Path, machinery: Path, tag: str) -> dict[str, Any]:
    messages: dict[str, dict[str, list[Any]]] = {}
    for repo, files in ((api, API_FILES), (machinery, MACHINERY_FILES)):
        for path in files:
            text = subprocess.run(
                ["git", "--git-dir", str(repo), "show", f"{tag}:{path}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            messages.update(parse(text))
    reachable: dict[str, dict[str, list[Any]]] = {}
    todo = list(ROOTS.values())
    while todo:
        name = todo.pop()
        if name in reachable or name not in messages:
            continue
        reachable[name] = messages[name]
        todo += [f[1] for f in messages[name].values() if f[1] not in _SCALARS]
    return {
        "source": f"k8s.io/api and k8s.io/apimachinery {tag} generated.proto",
        "roots": ROOTS,
        "messages": dict(sorted(reachable.items())),
    }


if __name__ == "__main__":
    table = build(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
    protobuf.SCHEMA.write_text(json.dumps(table, separators=(",", ":"), sort_keys=False) + "\n")
    sys.stdout.write(f"wrote {protobuf.SCHEMA}: {len(table['messages'])} messages\n")
