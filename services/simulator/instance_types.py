"""Cloud instance types the simulated nodes run on, with the GPUs, CPUs and memory each carries.

Figures are the providers' published shapes (AWS EC2 accelerated-computing and general-purpose
families, GCP accelerator-optimized A2/A3 machine types). A node's instance-type label, its GPU
count and its capacity come from one row here, so they never contradict each other (a
p5.48xlarge has 8 H100s; 4 H100s on one machine is GCP's a3-highgpu-4g).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Cloud = Literal["aws", "gcp"]


@dataclass(frozen=True)
class InstanceType:
    name: str
    cloud: Cloud
    gpus: int
    vcpus: int
    memory_gib: int
    product_label: str = ""  # GFD nvidia.com/gpu.product of its GPUs, "" for CPU-only types

    @property
    def machine(self) -> str:
        """What GFD's `nvidia.com/gpu.machine` reads from the DMI product name (spaces as -)."""
        return self.name if self.cloud == "aws" else "Google-Compute-Engine"

    @property
    def region(self) -> str:
        return "us-east-1" if self.cloud == "aws" else "us-central1"

    def zone(self, wanted: str) -> str:
        """The zone a node of this type sits in: `wanted` when it is this cloud's."""
        if wanted and wanted.startswith(self.region):
            return wanted
        return "us-east-1a" if self.cloud == "aws" else "us-central1-a"


def _aws(name: str, gpus: int, vcpus: int, memory_gib: int, product: str = "") -> InstanceType:
    return InstanceType(name, "aws", gpus, vcpus, memory_gib, product)


def _gcp(name: str, gpus: int, vcpus: int, memory_gib: int, product: str) -> InstanceType:
    return InstanceType(name, "gcp", gpus, vcpus, memory_gib, product)


_H100 = "NVIDIA-H100-80GB-HBM3"
_A100_80 = "NVIDIA-A100-SXM4-80GB"
_A100_40 = "NVIDIA-A100-SXM4-40GB"

# Per GPU product, AWS shapes first (the simulated fleet is an EKS one where AWS has the shape).
GPU_INSTANCES: tuple[InstanceType, ...] = (
    _aws("p5.48xlarge", 8, 192, 2048, _H100),
    _aws("p5.4xlarge", 1, 16, 256, _H100),
    _gcp("a3-highgpu-1g", 1, 26, 218, _H100),
    _gcp("a3-highgpu-2g", 2, 52, 436, _H100),
    _gcp("a3-highgpu-4g", 4, 104, 872, _H100),
    _gcp("a3-highgpu-8g", 8, 208, 1743, _H100),
    _aws("p5en.48xlarge", 8, 192, 2048, "NVIDIA-H200"),
    _aws("p4de.24xlarge", 8, 96, 1152, _A100_80),
    _gcp("a2-ultragpu-1g", 1, 12, 158, _A100_80),
    _gcp("a2-ultragpu-2g", 2, 24, 317, _A100_80),
    _gcp("a2-ultragpu-4g", 4, 48, 633, _A100_80),
    _aws("p4d.24xlarge", 8, 96, 1152, _A100_40),
    _gcp("a2-highgpu-1g", 1, 12, 79, _A100_40),
    _gcp("a2-highgpu-2g", 2, 24, 158, _A100_40),
    _gcp("a2-highgpu-4g", 4, 48, 317, _A100_40),
    _aws("g5.8xlarge", 1, 32, 128, "NVIDIA-A10G"),
    _aws("g5.xlarge", 1, 4, 16, "NVIDIA-A10G"),
    _aws("g5.2xlarge", 1, 8, 32, "NVIDIA-A10G"),
    _aws("g5.12xlarge", 4, 48, 192, "NVIDIA-A10G"),
    _aws("g5.48xlarge", 8, 192, 768, "NVIDIA-A10G"),
    _aws("g6.8xlarge", 1, 32, 128, "NVIDIA-L4"),
    _aws("g6.12xlarge", 4, 48, 192, "NVIDIA-L4"),
    _aws("g6.48xlarge", 8, 192, 768, "NVIDIA-L4"),
    _aws("g6e.8xlarge", 1, 32, 256, "NVIDIA-L40S"),
    _aws("g6e.12xlarge", 4, 48, 384, "NVIDIA-L40S"),
    _aws("g6e.48xlarge", 8, 192, 1536, "NVIDIA-L40S"),
    _aws("g4dn.8xlarge", 1, 32, 128, "Tesla-T4"),
    _aws("g4dn.12xlarge", 4, 48, 192, "Tesla-T4"),
)

# General purpose (m6i, 4 GiB per vCPU), memory optimised (r6i, 8) and compute optimised (c6i, 2).
_CPU_SIZES = {2: "large", 4: "xlarge", 8: "2xlarge", 16: "4xlarge", 32: "8xlarge", 48: "12xlarge"}
_CPU_SIZES.update({64: "16xlarge", 96: "24xlarge", 128: "32xlarge"})


def gpu_instance(product_label: str, count: int, *, gke: bool = False) -> InstanceType | None:
    """The instance type carrying `count` GPUs of `product_label`; None when no cloud sells one.

    AWS is preferred unless `gke`; the other cloud's shape is used when only it has the count.
    """
    fits = [it for it in GPU_INSTANCES if it.product_label == product_label and it.gpus == count]
    preferred = "gcp" if gke else "aws"
    return next((it for it in fits if it.cloud == preferred), fits[0] if fits else None)


def cpu_instance(vcpus: int, memory_gib: float) -> InstanceType:
    """The AWS general-purpose shape nearest `vcpus` and `memory_gib` (m6i, r6i or c6i)."""
    size = min(_CPU_SIZES, key=lambda n: (abs(n - vcpus), n))
    per_cpu = memory_gib / max(vcpus, 1)
    family, ratio = min((("c6i", 2), ("m6i", 4), ("r6i", 8)), key=lambda f: abs(f[1] - per_cpu))
    return _aws(f"{family}.{_CPU_SIZES[size]}", 0, size, size * ratio)
