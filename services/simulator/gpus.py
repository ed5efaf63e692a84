"""The GPU classes the simulated cluster can hold, and the labels and identities they carry.

Names, memory sizes and label values follow what GPU Feature Discovery, NVML and the cloud
providers report (see /work/shared/REFERENCE.md). Speed factors are relative to an H100 SXM
and only need to be right in proportion: they drive the serving performance model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from services.simulator.instance_types import gpu_instance

DEFAULT_DRIVER_VERSION = "550.127.05"
DEFAULT_CUDA_VERSION = "12.4"


@dataclass(frozen=True)
class GpuClass:
    """One GPU model as a node and nvidia-smi describe it."""

    product_label: str  # GFD nvidia.com/gpu.product
    nvml_name: str  # what nvidia-smi and DCGM's modelName print
    memory_mib: int  # nvidia-smi memory.total
    reserved_mib: int  # memory.reserved: held by the driver, never free
    family: str  # nvidia.com/gpu.family
    compute_cap: str  # nvidia-smi compute_cap
    gke_accelerator: str | None  # cloud.google.com/gke-accelerator, None where GKE has none
    karpenter_name: str  # karpenter.k8s.aws/instance-gpu-name
    instance_type: str  # the AWS instance type that carries it
    gpus_per_instance: int
    compute_factor: float  # dense bf16 tensor throughput relative to H100 SXM
    bandwidth_factor: float  # memory bandwidth relative to H100 SXM
    power_limit_w: float
    idle_power_w: float
    sm_clock_mhz: int  # maximum SM clock
    idle_sm_clock_mhz: int
    mem_clock_mhz: int
    driver_version: str
    cuda_version: str
    pci_bus_ids: tuple[str, ...]  # in device order on the instance type

    @property
    def memory_gib(self) -> float:
        return self.memory_mib / 1024.0

    @property
    def supports_bfloat16(self) -> bool:
        # bf16 tensor cores arrived with Ampere (compute capability 8.0).
        return float(self.compute_cap) >= 8.0

    def pci_bus_id(self, node_index: int) -> str:
        """The PCI bus id of device `node_index` on one instance of this type."""
        if 0 <= node_index < len(self.pci_bus_ids):
            return self.pci_bus_ids[node_index]
        return f"00000000:{0x10 + node_index:02X}:00.0"


def _p5_bus_ids() -> tuple[str, ...]:
    return tuple(
        f"00000000:{bus:02X}:00.0" for bus in (0x53, 0x64, 0x75, 0x86, 0x97, 0xA8, 0xB9, 0xCA)
    )


def _p4_bus_ids() -> tuple[str, ...]:
    return tuple(
        f"00000000:{bus:02X}:{dev:02X}.0"
        for bus in (0x10, 0x20, 0x90, 0xA0)
        for dev in (0x1C, 0x1D)
    )


def _g_bus_ids(count: int) -> tuple[str, ...]:
    # g4dn/g5/g6/g6e put their GPUs on bus 00, devices 1B.. upwards.
    return tuple(f"00000000:00:{0x1B + i:02X}.0" for i in range(count))


def _gpu(
    product_label: str,
    nvml_name: str,
    memory_mib: int,
    reserved_mib: int,
    family: str,
    compute_cap: str,
    gke_accelerator: str | None,
    karpenter_name: str,
    instance_type: str,
    gpus_per_instance: int,
    compute_factor: float,
    bandwidth_factor: float,
    power: tuple[float, float],
    clocks: tuple[int, int, int],
    pci_bus_ids: tuple[str, ...],
) -> GpuClass:
    return GpuClass(
        product_label=product_label,
        nvml_name=nvml_name,
        memory_mib=memory_mib,
        reserved_mib=reserved_mib,
        family=family,
        compute_cap=compute_cap,
        gke_accelerator=gke_accelerator,
        karpenter_name=karpenter_name,
        instance_type=instance_type,
        gpus_per_instance=gpus_per_instance,
        compute_factor=compute_factor,
        bandwidth_factor=bandwidth_factor,
        power_limit_w=power[0],
        idle_power_w=power[1],
        sm_clock_mhz=clocks[0],
        idle_sm_clock_mhz=clocks[1],
        mem_clock_mhz=clocks[2],
        driver_version=DEFAULT_DRIVER_VERSION,
        cuda_version=DEFAULT_CUDA_VERSION,
        pci_bus_ids=pci_bus_ids,
    )


# Factors: H100 SXM 989 TFLOPS bf16 dense and 3.35 TB/s are the unit (datasheet figures).
H100 = _gpu(
    "NVIDIA-H100-80GB-HBM3", "NVIDIA H100 80GB HBM3", 81559, 562, "hopper", "9.0",
    "nvidia-h100-80gb", "h100", "p5.48xlarge", 8, 1.0, 1.0,
    (700.0, 72.0), (1980, 345, 2619), _p5_bus_ids(),
)  # fmt: skip
H200 = _gpu(
    "NVIDIA-H200", "NVIDIA H200", 143771, 562, "hopper", "9.0",
    "nvidia-h200-141gb", "h200", "p5en.48xlarge", 8, 1.0, 1.43,
    (700.0, 78.0), (1980, 345, 3201), _p5_bus_ids(),
)  # fmt: skip
A100_80GB = _gpu(
    "NVIDIA-A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB", 81920, 524, "ampere", "8.0",
    "nvidia-a100-80gb", "a100", "p4de.24xlarge", 8, 0.315, 0.61,
    (400.0, 62.0), (1410, 210, 1593), _p4_bus_ids(),
)  # fmt: skip
A100_40GB = _gpu(
    "NVIDIA-A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB", 40960, 524, "ampere", "8.0",
    "nvidia-tesla-a100", "a100", "p4d.24xlarge", 8, 0.315, 0.46,
    (400.0, 55.0), (1410, 210, 1215), _p4_bus_ids(),
)  # fmt: skip
A10G = _gpu(
    "NVIDIA-A10G", "NVIDIA A10G", 23028, 260, "ampere", "8.6",
    None, "a10g", "g5.12xlarge", 4, 0.1, 0.179,
    (300.0, 25.0), (1710, 210, 6251), _g_bus_ids(4),
)  # fmt: skip
L4 = _gpu(
    "NVIDIA-L4", "NVIDIA L4", 23034, 305, "ada-lovelace", "8.9",
    "nvidia-l4", "l4", "g6.12xlarge", 4, 0.122, 0.09,
    (72.0, 16.0), (2040, 210, 6251), _g_bus_ids(4),
)  # fmt: skip
L40S = _gpu(
    "NVIDIA-L40S", "NVIDIA L40S", 46068, 590, "ada-lovelace", "8.9",
    None, "l40s", "g6e.12xlarge", 4, 0.37, 0.26,
    (350.0, 35.0), (2520, 210, 9001), _g_bus_ids(4),
)  # fmt: skip
T4 = _gpu(
    "Tesla-T4", "Tesla T4", 15360, 256, "turing", "7.5",
    "nvidia-tesla-t4", "t4", "g4dn.12xlarge", 4, 0.066, 0.096,
    (70.0, 14.0), (1590, 300, 5001), _g_bus_ids(4),
)  # fmt: skip

CATALOGUE: tuple[GpuClass, ...] = (H100, H200, A100_80GB, A100_40GB, A10G, L4, L40S, T4)

_BY_PRODUCT = {gpu.product_label: gpu for gpu in CATALOGUE}


def gpu_by_product(label: str) -> GpuClass:
    """The GPU class for a GFD `nvidia.com/gpu.product` label value.

    A `-SHARED` suffix (time-slicing) is accepted. Raises KeyError naming the known labels
    when the product is not in the catalogue.
    """
    key = label.removesuffix("-SHARED")
    try:
        return _BY_PRODUCT[key]
    except KeyError:
        known = ", ".join(sorted(_BY_PRODUCT))
        raise KeyError(f"unknown GPU product label {label!r}; known: {known}") from None


def gpu_by_name(name: str) -> GpuClass:
    """The GPU class for an NVML name (`NVIDIA H100 80GB HBM3`) or a Karpenter GPU name (`a10g`).

    Raises KeyError when nothing matches; `a100` resolves to the 80 GB part.
    """
    for gpu in CATALOGUE:
        if name in (gpu.nvml_name, gpu.karpenter_name, gpu.product_label):
            return gpu
    raise KeyError(f"unknown GPU name {name!r}")


def node_labels(
    gpu: GpuClass, count: int, *, gke: bool = False, timestamp: int = 0
) -> dict[str, str]:
    """The labels a node with `count` GPUs of class `gpu` carries: its instance type's (AWS
    with Karpenter, or GKE where only GCP sells that many), GPU Feature Discovery's and the
    GPU operator's.

    With `gke=True` a GCP shape is preferred and the GKE accelerator label is added where GKE
    offers the part. `timestamp` is GFD's labelling time (epoch seconds).
    """
    instance = gpu_instance(gpu.product_label, count, gke=gke)
    labels = {
        "node.kubernetes.io/instance-type": instance.name if instance else gpu.instance_type,
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": gpu.product_label,
        "nvidia.com/gpu.memory": str(gpu.memory_mib),
        "nvidia.com/gpu.count": str(count),
        "nvidia.com/gpu.family": gpu.family,
    }
    if instance is None or instance.cloud == "aws":
        labels.update(
            {
                "karpenter.k8s.aws/instance-gpu-name": gpu.karpenter_name,
                "karpenter.k8s.aws/instance-gpu-count": str(count),
                "karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia",
                "karpenter.k8s.aws/instance-gpu-memory": str(gpu.memory_mib),
            }
        )
    if (gke or (instance is not None and instance.cloud == "gcp")) and gpu.gke_accelerator:
        labels["cloud.google.com/gke-accelerator"] = gpu.gke_accelerator
    labels.update(gfd_labels(gpu, count, instance.machine if instance else "", timestamp))
    return labels


def gfd_labels(gpu: GpuClass, count: int, machine: str, timestamp: int) -> dict[str, str]:
    """GPU Feature Discovery's labels beyond product/memory/count/family, and the operator's
    deploy markers its DaemonSets select on (NVIDIA k8s-device-plugin's gpu-feature-discovery)."""
    major, minor, rev = [*gpu.driver_version.split("."), "", ""][:3]
    cuda_major, cuda_minor = [*gpu.cuda_version.split("."), ""][:2]
    compute_major, compute_minor = gpu.compute_cap.split(".")
    mig = gpu.product_label.startswith(("NVIDIA-A100", "NVIDIA-H100", "NVIDIA-H200"))
    labels = {
        "nvidia.com/cuda.driver-version.full": gpu.driver_version,
        "nvidia.com/cuda.driver-version.major": major,
        "nvidia.com/cuda.driver-version.minor": minor,
        "nvidia.com/cuda.driver-version.revision": rev,
        "nvidia.com/cuda.driver.major": major,
        "nvidia.com/cuda.driver.minor": minor,
        "nvidia.com/cuda.driver.rev": rev,
        "nvidia.com/cuda.runtime-version.full": gpu.cuda_version,
        "nvidia.com/cuda.runtime-version.major": cuda_major,
        "nvidia.com/cuda.runtime-version.minor": cuda_minor,
        "nvidia.com/cuda.runtime.major": cuda_major,
        "nvidia.com/cuda.runtime.minor": cuda_minor,
        "nvidia.com/gfd.timestamp": str(timestamp),
        "nvidia.com/gpu.compute.major": compute_major,
        "nvidia.com/gpu.compute.minor": compute_minor,
        "nvidia.com/gpu.mode": "compute",
        "nvidia.com/gpu.replicas": "1",
        "nvidia.com/gpu.sharing-strategy": "none",
        "nvidia.com/mig.capable": "true" if mig else "false",
        "nvidia.com/mps.capable": "false",
        "nvidia.com/gpu.deploy.device-plugin": "true",
        "nvidia.com/gpu.deploy.dcgm-exporter": "true",
        "nvidia.com/gpu.deploy.gpu-feature-discovery": "true",
    }
    if mig:
        labels["nvidia.com/mig.strategy"] = "single"
    if machine:
        labels["nvidia.com/gpu.machine"] = machine
    return labels


def gpu_uuid(node_name: str, node_index: int) -> str:
    """A stable NVML-style UUID for device `node_index` of node `node_name`."""
    digest = hashlib.sha1(f"{node_name}/{node_index}".encode()).hexdigest()
    return f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def gpu_serial(node_name: str, node_index: int) -> str:
    """A stable 13-digit board serial number, as nvidia-smi prints for data-centre parts."""
    digest = hashlib.sha1(f"serial:{node_name}/{node_index}".encode()).digest()
    return "1" + str(int.from_bytes(digest[:8], "big") % 10**12).zfill(12)


@dataclass(frozen=True)
class GpuReadingInput:
    """One GPU as seen at one moment: identity plus the live values nvidia-smi and DCGM report."""

    gpu: GpuClass
    index: int  # as nvidia-smi inside the container numbers it (0..n-1)
    node_index: int  # the device's index on the node (DCGM's `gpu` label, /dev/nvidiaN)
    node_name: str
    uuid: str
    serial: str
    pci_bus_id: str
    utilization_gpu: int  # %
    utilization_memory: int  # %
    memory_used_mib: int
    temperature_c: int
    power_draw_w: float
    sm_clock_mhz: int

    @property
    def memory_free_mib(self) -> int:
        return max(0, self.gpu.memory_mib - self.gpu.reserved_mib - self.memory_used_mib)


def idle_reading(gpu: GpuClass, node_name: str, node_index: int, index: int = 0) -> GpuReadingInput:
    """A GPU with nothing running on it."""
    return GpuReadingInput(
        gpu=gpu,
        index=index,
        node_index=node_index,
        node_name=node_name,
        uuid=gpu_uuid(node_name, node_index),
        serial=gpu_serial(node_name, node_index),
        pci_bus_id=gpu.pci_bus_id(node_index),
        utilization_gpu=0,
        utilization_memory=0,
        memory_used_mib=0,
        temperature_c=29 + node_index % 3,
        power_draw_w=gpu.idle_power_w,
        sm_clock_mhz=gpu.idle_sm_clock_mhz,
    )
