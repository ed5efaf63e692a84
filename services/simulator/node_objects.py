"""Node objects as a kubelet registers them on EKS (or GKE, for shapes only GCP sells): labels
from the cloud, Node Feature Discovery and GPU Feature Discovery, capacity from the instance
type, the kubelet's full condition set with heartbeat times, and the node's Lease.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from services.simulator import gpus
from services.simulator.clock import rfc3339
from services.simulator.instance_types import InstanceType, cpu_instance, gpu_instance
from services.simulator.scenario import NodeGroup

Obj = dict[str, Any]
KUBELET_VERSION = "v1.32.4"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_S = 40
OS_IMAGE = "Ubuntu 22.04.5 LTS"

# The kubelet's conditions in its order: (type, status, reason, message) when healthy.
HEALTHY_CONDITIONS: tuple[tuple[str, str, str, str], ...] = (
    ("MemoryPressure", "False", "KubeletHasSufficientMemory",
     "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)  # fmt: skip
# GCE's route controller sets this one; on EKS (VPC CNI) nobody does.
GCE_NETWORK = ("NetworkUnavailable", "False", "RouteCreated", "RouteController created a route")


def _memory(value: str) -> float:
    """GiB from a Kubernetes quantity like 64Gi, 512Mi or 1Ti (other forms: as bytes)."""
    units = {"Ki": 2**-20, "Mi": 2**-10, "Gi": 1.0, "Ti": 1024.0}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value) / 2**30


def _instance(group: NodeGroup) -> InstanceType:
    if group.gpu:
        found = gpu_instance(group.gpu.removesuffix("-SHARED"), group.gpus)
        if found is not None:
            return found
    return cpu_instance(int(float(group.cpu or "16")), _memory(group.memory or "64Gi"))


def _kernel(instance: InstanceType) -> str:
    return "6.8.0-1021-aws" if instance.cloud == "aws" else "6.8.0-1019-gcp"


def _nfd_labels(kernel: str, has_gpu: bool) -> dict[str, str]:
    """Node Feature Discovery's labels (the GPU operator deploys NFD on every node)."""
    release, _, _ = kernel.partition("-")
    major, minor, revision = release.split(".")
    labels = {
        "feature.node.kubernetes.io/kernel-version.full": kernel,
        "feature.node.kubernetes.io/kernel-version.major": major,
        "feature.node.kubernetes.io/kernel-version.minor": minor,
        "feature.node.kubernetes.io/kernel-version.revision": revision,
        "feature.node.kubernetes.io/system-os_release.ID": "ubuntu",
        "feature.node.kubernetes.io/system-os_release.VERSION_ID": "22.04",
        "feature.node.kubernetes.io/system-os_release.VERSION_ID.major": "22",
        "feature.node.kubernetes.io/system-os_release.VERSION_ID.minor": "04",
        "feature.node.kubernetes.io/cpu-cpuid.AVX2": "true",
    }
    if has_gpu:
        labels["feature.node.kubernetes.io/pci-10de.present"] = "true"
    return labels


def conditions(at: float, since: float, instance: InstanceType) -> list[Obj]:
    """The kubelet's healthy condition set, heartbeat at `at`, unchanged since `since`."""
    rows = ((GCE_NETWORK,) if instance.cloud == "gcp" else ()) + HEALTHY_CONDITIONS
    return [
        {
            "type": kind,
            "status": status,
            "lastHeartbeatTime": rfc3339_at(at),
            "lastTransitionTime": rfc3339_at(since),
            "reason": reason,
            "message": message,
        }
        for kind, status, reason, message in rows
    ]


def rfc3339_at(epoch: float) -> str:
    return rfc3339(datetime.fromtimestamp(int(epoch), UTC))


def _provider_id(instance: InstanceType, zone: str, name: str) -> str:
    digest = hashlib.sha1(f"instance:{name}".encode()).hexdigest()
    if instance.cloud == "aws":
        return f"aws:///{zone}/i-0{digest[:16]}"
    return f"gce://skewmit-prod/{zone}/{name}"


def node_objects(group: NodeGroup, first_index: int, now: float) -> list[Obj]:
    """The Node objects of `group` (named prefix-1..N), registered at `now` (epoch seconds)."""
    instance = _instance(group)
    zone = instance.zone(group.zone)
    kernel = _kernel(instance)
    out = []
    for i in range(group.count):
        name = f"{group.prefix}-{i + 1}"
        index = first_index + i
        labels = {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/instance-type": instance.name,
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "node.kubernetes.io/instance-type": instance.name,
            "topology.kubernetes.io/region": instance.region,
            "topology.kubernetes.io/zone": zone,
        }
        if instance.cloud == "aws":
            family, _, size = instance.name.partition(".")
            labels.update(
                {
                    "karpenter.sh/capacity-type": "on-demand",
                    "karpenter.sh/nodepool": group.prefix,
                    "karpenter.k8s.aws/instance-family": family,
                    "karpenter.k8s.aws/instance-size": size,
                    "karpenter.k8s.aws/instance-cpu": str(instance.vcpus),
                }
            )
        else:
            labels["cloud.google.com/gke-nodepool"] = group.prefix
            labels["cloud.google.com/machine-family"] = instance.name.split("-")[0]
            labels["cloud.google.com/gke-os-distribution"] = "ubuntu"
        labels.update(_nfd_labels(kernel, bool(group.gpu)))
        capacity = {
            "cpu": group.cpu or str(instance.vcpus),
            "ephemeral-storage": "500Gi",
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
            "memory": group.memory or f"{instance.memory_gib}Gi",
            "pods": "110",
        }
        if group.gpu:
            gpu = gpus.gpu_by_product(group.gpu)
            labels.update(gpus.node_labels(gpu, group.gpus, timestamp=int(now) + 95))
            labels["node.kubernetes.io/instance-type"] = instance.name
            capacity["nvidia.com/gpu"] = str(group.gpus)
        for role in group.roles:
            labels[f"node-role.kubernetes.io/{role}"] = ""
        labels.update(group.labels)
        ip = f"10.0.{index // 250}.{index % 250 + 4}"
        addresses = [{"type": "InternalIP", "address": ip}]
        if instance.cloud == "aws":
            addresses.append(
                {"type": "InternalDNS", "address": f"ip-{ip.replace('.', '-')}.ec2.internal"}
            )
        addresses.append({"type": "Hostname", "address": name})
        spec: Obj = {"providerID": _provider_id(instance, zone, name)}
        if group.taints:
            spec["taints"] = [dict(t) for t in group.taints]
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": labels,
                    "annotations": {
                        "node.alpha.kubernetes.io/ttl": "0",
                        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                    },
                },
                "spec": spec,
                "status": {
                    "capacity": capacity,
                    "allocatable": dict(capacity),
                    "conditions": conditions(now, now + 12, instance),
                    "addresses": addresses,
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                    "nodeInfo": _node_info(name, kernel),
                },
            }
        )
    return out


def _node_info(name: str, kernel: str) -> Obj:
    return {
        "machineID": hashlib.md5(f"machine:{name}".encode()).hexdigest(),
        "systemUUID": str(uuid.UUID(hashlib.md5(f"system:{name}".encode()).hexdigest())),
        "bootID": str(uuid.UUID(hashlib.md5(f"boot:{name}".encode()).hexdigest())),
        "kubeletVersion": KUBELET_VERSION,
        "kubeProxyVersion": KUBELET_VERSION,
        "osImage": OS_IMAGE,
        "kernelVersion": kernel,
        "containerRuntimeVersion": "containerd://1.7.24",
        "operatingSystem": "linux",
        "architecture": "amd64",
    }


def micro_time(epoch: float) -> str:
    """A MicroTime as the API server writes it: RFC 3339 with microseconds."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_object(node: Obj, now: float) -> Obj:
    """The node's heartbeat Lease in kube-node-lease, owned by the Node, acquired at `now`."""
    meta = node["metadata"]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": meta["name"],
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": meta["name"], "uid": meta["uid"]}
            ],
        },
        "spec": {
            "holderIdentity": meta["name"],
            "leaseDurationSeconds": LEASE_DURATION_S,
            "renewTime": micro_time(now),
        },
    }
