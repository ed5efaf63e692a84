"""Building a scenario's world in the store: namespaces, nodes, objects, revision histories.

Histories are replayed on the simulated clock, starting days in the past: each revision is
applied at its age and the real controllers roll it out, so ReplicaSets, revisions, events and
timestamps are exactly what a cluster that lived through those rollouts would show.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import uuid
from collections.abc import Callable
from typing import Any

from services.simulator import gpus
from services.simulator.scenario import DeploymentSpec, NodeGroup, Scenario
from services.simulator.store import Store

Obj = dict[str, Any]
CHANGE_CAUSE = "kubernetes.io/change-cause"
SETTLE_STEP_S = 5.0
SETTLE_LIMIT_S = 900.0


def node_objects(group: NodeGroup, first_index: int) -> list[Obj]:
    out = []
    for i in range(group.count):
        name = f"{group.prefix}-{i + 1}"
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "topology.kubernetes.io/zone": group.zone,
        }
        capacity = {
            "cpu": group.cpu,
            "memory": group.memory,
            "pods": "110",
            "ephemeral-storage": "500Gi",
        }
        if group.gpu:
            gpu = gpus.gpu_by_product(group.gpu)
            labels.update(gpus.node_labels(gpu, group.gpus))
            capacity["nvidia.com/gpu"] = str(group.gpus)
        else:
            labels["node.kubernetes.io/instance-type"] = "m6i.4xlarge"
        for role in group.roles:
            labels[f"node-role.kubernetes.io/{role}"] = ""
        labels.update(group.labels)
        index = first_index + i
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": labels},
                "spec": {"taints": [dict(t) for t in group.taints]} if group.taints else {},
                "status": {
                    "capacity": capacity,
                    "allocatable": dict(capacity),
                    "addresses": [
                        {"type": "InternalIP", "address": f"10.0.{index // 250}.{index % 250 + 4}"},
                        {"type": "Hostname", "address": name},
                    ],
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                        }
                    ],
                    "nodeInfo": {
                        "machineID": hashlib.md5(f"machine:{name}".encode()).hexdigest(),
                        "systemUUID": str(
                            uuid.UUID(hashlib.md5(f"system:{name}".encode()).hexdigest())
                        ),
                        "bootID": str(uuid.UUID(hashlib.md5(f"boot:{name}".encode()).hexdigest())),
                        "kubeletVersion": "v1.32.4",
                        "kubeProxyVersion": "v1.32.4",
                        "osImage": "Ubuntu 22.04.5 LTS",
                        "kernelVersion": "6.8.0-1021-aws",
                        "containerRuntimeVersion": "containerd://1.7.24",
                        "operatingSystem": "linux",
                        "architecture": "amd64",
                    },
                },
            }
        )
    return out


def deployment_object(spec: DeploymentSpec, revision_index: int) -> Obj:
    rev = spec.history[revision_index]
    annotations = dict(spec.annotations)
    annotations.update(rev.annotations)
    if rev.change_cause:
        annotations[CHANGE_CAUSE] = rev.change_cause
    body: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "labels": dict(spec.deployment_labels or spec.labels),
            "annotations": annotations,
        },
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": dict(spec.labels)},
            "template": copy.deepcopy(rev.template),
        },
    }
    if spec.strategy:
        body["spec"]["strategy"] = copy.deepcopy(spec.strategy)
    return body


def build(store: Store, scenario: Scenario, settle: Callable[[float], bool], anchor: float) -> None:
    """Create the scenario's state, its history ending at `anchor` (simulated epoch seconds).

    `settle(limit_s)` ticks the controllers on simulated time until every rollout has settled
    (returning False when the limit passed first: a revision that never becomes ready).
    """
    registry = store.registry
    for ns in scenario.namespaces:
        store.create(registry.by_plural("namespaces"), {"metadata": {"name": ns}})
    index = 0
    for group in scenario.nodes:
        for node in node_objects(group, index):
            store.create(registry.by_plural("nodes"), node)
        index += group.count
    for obj in scenario.objects:
        rt = registry.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if rt is None:
            raise ValueError(
                f"scenario {scenario.name}: no resource type for "
                f"{obj.get('apiVersion')} {obj.get('kind')}; add it to "
                "custom_resources"
            )
        obj = copy.deepcopy(obj)
        if rt.kind == "Secret" and "stringData" in obj:
            data = obj.setdefault("data", {})
            for key, value in obj.pop("stringData").items():
                data[key] = base64.b64encode(str(value).encode()).decode()
        obj.setdefault("metadata", {}).setdefault("namespace", scenario.namespace)
        store.create(rt, obj)
    # Replay every deployment's history in age order across deployments.
    steps = sorted(
        ((rev.age_s, d, i) for d in scenario.deployments for i, rev in enumerate(d.history)),
        key=lambda step: -step[0],
    )
    deploys = registry.by_plural("deployments")
    for age_s, spec, i in steps:
        target = anchor - age_s
        if store.clock.time() < target:
            store.clock.advance(target - store.clock.time())
        body = deployment_object(spec, i)
        if store.peek("deployments", spec.namespace, spec.name) is None:
            store.create(deploys, body)
        else:
            current = store.get(deploys, spec.namespace, spec.name)
            current["metadata"]["annotations"] = {
                **{
                    k: v
                    for k, v in current["metadata"].get("annotations", {}).items()
                    if k.startswith("deployment.kubernetes.io/")
                },
                **body["metadata"]["annotations"],
            }
            current["spec"]["template"] = body["spec"]["template"]
            store.update(deploys, current)
        settle(SETTLE_LIMIT_S)
