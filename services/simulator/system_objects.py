"""What a real GPU cluster runs beside the workload: kube-system (kube-proxy on every node,
CoreDNS, the `kubernetes` and `kube-dns` Services), the NVIDIA GPU operator's DaemonSets on
GPU nodes (device plugin, DCGM exporter, GPU Feature Discovery), a PodDisruptionBudget for
CoreDNS and for the scenario's Deployment, a finished model-cache Job, and the nodes' Leases.

Built once at scenario set-up, before any history is replayed, so the system pods are as old
as their nodes and already running. Everything here draws names and uids from its own random
stream, so a scenario's own objects get the same names as in a cluster without them.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

from services.simulator.node_objects import LEASE_NAMESPACE, lease_object, rfc3339_at
from services.simulator.scenario import Scenario
from services.simulator.store import Store, random_suffix, template_hash

Obj = dict[str, Any]
GPU_OPERATOR_NS = "gpu-operator"
SYSTEM_NAMESPACES = ("kube-node-lease", "kube-public", "kube-system", GPU_OPERATOR_NS)
API_SERVER_IPS = ("10.0.255.10", "10.0.255.11")
_ECR = "602401143452.dkr.ecr.us-east-1.amazonaws.com/eks"
_NVCR = "nvcr.io/nvidia"
_DS_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]


_SERVICE_ACCOUNTS = (
    ("kube-system", "coredns"),
    ("kube-system", "kube-proxy"),
    (GPU_OPERATOR_NS, "gpu-feature-discovery"),
    (GPU_OPERATOR_NS, "nvidia-dcgm-exporter"),
    (GPU_OPERATOR_NS, "nvidia-device-plugin"),
)


@contextlib.contextmanager
def own_rng(store: Store, rng: random.Random) -> Iterator[None]:
    """Draw the store's names and uids from `rng` while inside, not the scenario's stream."""
    main = store.rng
    store.rng = rng
    try:
        yield
    finally:
        store.rng = main


def _container(name: str, image: str, **extra: Any) -> Obj:
    body: Obj = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent"}
    body.update(extra)
    return body


def _daemonset(
    namespace: str,
    name: str,
    app_label: tuple[str, str],
    containers: list[Obj],
    *,
    node_selector: dict[str, str] | None = None,
    host_network: bool = False,
    service_account: str = "",
) -> Obj:
    labels = {app_label[0]: app_label[1]}
    spec: Obj = {
        "containers": containers,
        "priorityClassName": "system-node-critical",
        "serviceAccountName": service_account or name,
        "tolerations": [{"operator": "Exists"}],
    }
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if host_network:
        spec["hostNetwork"] = True
        spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": spec},
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
            },
            "revisionHistoryLimit": 10,
        },
    }


def daemonsets() -> list[Obj]:
    gpu = "nvidia.com/gpu.deploy."
    return [
        _daemonset(
            "kube-system",
            "kube-proxy",
            ("k8s-app", "kube-proxy"),
            [
                _container(
                    "kube-proxy",
                    f"{_ECR}/kube-proxy:v1.32.0-minimal-eksbuild.2",
                    command=["kube-proxy", "--v=2", "--config=/var/lib/kube-proxy-config/config"],
                    resources={"requests": {"cpu": "100m"}},
                )
            ],
            host_network=True,
        ),
        _daemonset(
            GPU_OPERATOR_NS,
            "nvidia-device-plugin-daemonset",
            ("app", "nvidia-device-plugin-daemonset"),
            [_container("nvidia-device-plugin", f"{_NVCR}/k8s-device-plugin:v0.17.0")],
            node_selector={f"{gpu}device-plugin": "true"},
            service_account="nvidia-device-plugin",
        ),
        _daemonset(
            GPU_OPERATOR_NS,
            "nvidia-dcgm-exporter",
            ("app", "nvidia-dcgm-exporter"),
            [
                _container(
                    "nvidia-dcgm-exporter",
                    f"{_NVCR}/k8s/dcgm-exporter:3.3.9-3.6.1-ubuntu22.04",
                    ports=[{"name": "metrics", "containerPort": 9400, "protocol": "TCP"}],
                )
            ],
            node_selector={f"{gpu}dcgm-exporter": "true"},
        ),
        _daemonset(
            GPU_OPERATOR_NS,
            "gpu-feature-discovery",
            ("app", "gpu-feature-discovery"),
            [_container("gpu-feature-discovery", f"{_NVCR}/k8s-device-plugin:v0.17.0")],
            node_selector={f"{gpu}gpu-feature-discovery": "true"},
        ),
    ]


def _matches(node: Obj, selector: dict[str, str]) -> bool:
    labels = node["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def daemon_pod(
    ds: Obj, node: Obj, revision_hash: str, rng: random.Random, now: float, *, running: bool = True
) -> Obj:
    """The pod the DaemonSet controller makes for `node`: already running since `now`, or
    (`running=False`) just created, for the node's kubelet to start."""
    meta, template = ds["metadata"], ds["spec"]["template"]
    node_name = node["metadata"]["name"]
    spec = dict(template["spec"])
    spec["nodeName"] = node_name
    spec["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchFields": [
                            {"key": "metadata.name", "operator": "In", "values": [node_name]}
                        ]
                    }
                ]
            }
        }
    }
    spec["tolerations"] = [*spec.get("tolerations", []), *_DS_TOLERATIONS]
    started = rfc3339_at(now)
    pod: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{meta['name']}-{random_suffix(rng)}",
            "generateName": f"{meta['name']}-",
            "namespace": meta["namespace"],
            "labels": {
                **template["metadata"]["labels"],
                "controller-revision-hash": revision_hash,
                "pod-template-generation": "1",
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "DaemonSet",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
        "status": {}
        if not running
        else {
            "phase": "Running",
            "startTime": started,
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": rfc3339_at(now + 4)}},
                    "containerID": "containerd://" + f"{rng.getrandbits(256):064x}",
                }
                for c in spec["containers"]
            ],
        },
    }
    if running:
        pod["metadata"]["creationTimestamp"] = started
    else:
        del pod["status"]
    return pod


def _service(namespace: str, name: str, labels: dict[str, str], spec: Obj) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    }


def _coredns() -> list[Obj]:
    labels = {"k8s-app": "kube-dns"}
    prefer_cpu_nodes = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "preference": {
                        "matchExpressions": [
                            {"key": "nvidia.com/gpu.present", "operator": "DoesNotExist"}
                        ]
                    },
                }
            ]
        }
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "coredns",
            "namespace": "kube-system",
            "labels": {**labels, "eks.amazonaws.com/component": "coredns"},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": dict(labels)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "serviceAccountName": "coredns",
                    "priorityClassName": "system-cluster-critical",
                    "affinity": prefer_cpu_nodes,
                    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
                    "containers": [
                        _container(
                            "coredns",
                            f"{_ECR}/coredns:v1.11.4-eksbuild.2",
                            args=["-conf", "/etc/coredns/Corefile"],
                            ports=[
                                {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                {"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
                            ],
                            resources={
                                "limits": {"memory": "170Mi"},
                                "requests": {"cpu": "100m", "memory": "70Mi"},
                            },
                        )
                    ],
                },
            },
        },
    }
    dns = _service(
        "kube-system",
        "kube-dns",
        {**labels, "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
        {
            "selector": dict(labels),
            "clusterIP": "10.100.0.10",
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
            ],
        },
    )
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": dict(labels)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(labels)}},
    }
    return [deployment, dns, pdb]


def static_objects(scenario: Scenario) -> list[Obj]:
    """Services, CoreDNS, PDBs and the Job (everything but DaemonSets and their pods)."""
    objects: list[Obj] = [
        _service(
            "default",
            "kubernetes",
            {"component": "apiserver", "provider": "kubernetes"},
            {
                "clusterIP": "10.100.0.1",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}],
            },
        ),
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
            },
            "subsets": [
                {
                    "addresses": [{"ip": ip} for ip in API_SERVER_IPS],
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP"}],
                }
            ],
        },
        _service(
            GPU_OPERATOR_NS,
            "nvidia-dcgm-exporter",
            {"app": "nvidia-dcgm-exporter"},
            {
                "selector": {"app": "nvidia-dcgm-exporter"},
                "ports": [
                    {"name": "gpu-metrics", "port": 9400, "protocol": "TCP", "targetPort": 9400}
                ],
            },
        ),
        *_coredns(),
    ]
    main = next(
        (
            d
            for d in scenario.deployments
            if (d.namespace, d.name) == (scenario.namespace, scenario.deployment)
        ),
        None,
    )
    if main is not None and main.replicas > 1:
        objects.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": main.name, "namespace": main.namespace},
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(main.labels)}},
            }
        )
    return objects


def finished_job(namespace: str, started: float) -> Obj:
    """A model-cache warm-up Job that ran to completion when the serving stack was installed."""
    labels = {
        "batch.kubernetes.io/job-name": "model-cache-warmup",
        "job-name": "model-cache-warmup",
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "model-cache-warmup", "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": 2,
            "completions": 1,
            "parallelism": 1,
            "selector": {"matchLabels": {"batch.kubernetes.io/job-name": "model-cache-warmup"}},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        _container(
                            "warmup",
                            "python:3.12-slim",
                            command=["huggingface-cli", "download", "--cache-dir", "/models"],
                        )
                    ],
                },
            },
        },
        "status": {
            "startTime": rfc3339_at(started),
            "completionTime": rfc3339_at(started + 412),
            "succeeded": 1,
            "ready": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
            "conditions": [
                {
                    "type": "SuccessCriteriaMet",
                    "status": "True",
                    "reason": "CompletionsReached",
                    "message": "Reached expected number of succeeded pods",
                    "lastProbeTime": rfc3339_at(started + 412),
                    "lastTransitionTime": rfc3339_at(started + 412),
                },
                {
                    "type": "Complete",
                    "status": "True",
                    "reason": "CompletionsReached",
                    "message": "Reached expected number of succeeded pods",
                    "lastProbeTime": rfc3339_at(started + 412),
                    "lastTransitionTime": rfc3339_at(started + 412),
                },
            ],
        },
    }


def build(store: Store, scenario: Scenario, rng: random.Random) -> None:
    """Create the system objects; nodes and namespaces must exist. Names and uids come from
    `rng`, the system's own stream."""
    registry = store.registry
    now = store.clock.time()
    with own_rng(store, rng):
        for ns in SYSTEM_NAMESPACES:
            if store.peek("namespaces", "", ns) is None:
                store.create(registry.by_plural("namespaces"), {"metadata": {"name": ns}})
        accounts = registry.by_plural("serviceaccounts")
        for ns, name in _SERVICE_ACCOUNTS:
            store.create(accounts, {"metadata": {"name": name, "namespace": ns}})
        nodes = sorted(store.items("nodes"), key=lambda n: n["metadata"]["name"])
        leases = registry.by_plural("leases")
        for node in nodes:
            lease = store.create(leases, lease_object(node, now))
            # Leases carry no generation on a real server (their strategy sets none).
            store.mutate(
                "leases",
                LEASE_NAMESPACE,
                lease["metadata"]["name"],
                lambda o: o["metadata"].pop("generation", None),
            )
        for obj in static_objects(scenario):
            rt = registry.by_kind(obj["apiVersion"], obj["kind"])
            assert rt is not None
            store.create(rt, obj)
        job = finished_job(scenario.namespace, now + 1800)
        store.create(registry.by_plural("jobs"), job)
        pods = registry.by_plural("pods")
        for spec in daemonsets():
            ds = store.create(registry.by_plural("daemonsets"), spec)
            revision = template_hash(ds["spec"]["template"])
            selector = ds["spec"]["template"]["spec"].get("nodeSelector") or {}
            for node in nodes:
                if _matches(node, selector):
                    store.create(pods, daemon_pod(ds, node, revision, store.rng, now + 20))


__all__ = ["LEASE_NAMESPACE", "SYSTEM_NAMESPACES", "build", "own_rng"]
