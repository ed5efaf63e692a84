"""`nvidia-smi topo -m` (and `-mp`) as printed inside a serving container.

The matrix covers the GPUs the container sees (the device plugin exposes only the pod's), in
the real layout: tab-separated columns GPU0..N, then NIC0..M, then CPU Affinity, NUMA
Affinity and GPU NUMA ID, then the legend and the NIC legend. SXM boards are joined by
NVSwitch (H100/H200: NV18, A100: NV12); AWS's P instances carry an EFA device beside each GPU
(one per GPU here; a p5 has four). The machine's shape comes from its node: the 8-GPU,
two-socket machines split their GPUs between NUMA nodes 0 and 1 (NODE within, SYS across);
smaller VMs are one NUMA node they do not report (N/A), their PCIe cards behind one host
bridge (PHB).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.simulator.gpus import GpuReadingInput

LEGEND = """
Legend:

  X    = Self
  SYS  = Connection traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI)
  NODE = Connection traversing PCIe as well as the interconnect between PCIe Host Bridges within a NUMA node
  PHB  = Connection traversing PCIe as well as a PCIe Host Bridge (typically the CPU)
  PXB  = Connection traversing multiple PCIe bridges (without traversing the PCIe Host Bridge)
  PIX  = Connection traversing at most a single PCIe bridge
  NV#  = Connection traversing a bonded set of # NVLinks
"""  # noqa: E501 - the tool's own line lengths

_NVLINKS = {"hopper": 18, "ampere": 12}


@dataclass(frozen=True)
class NodeShape:
    """The machine under the container, from its node: instance type, GPUs and vCPUs."""

    instance_type: str
    gpus: int
    vcpus: int

    @property
    def numa_nodes(self) -> int:
        # The 8-GPU machines are two-socket; the smaller shapes are one NUMA node to the VM.
        return 2 if self.gpus >= 8 and self.vcpus >= 96 else 1

    def cpus(self, numa: int | None) -> str:
        """The vCPU list of a NUMA node as Linux numbers them on these VMs: each socket's
        cores, then their hyperthread siblings."""
        if numa is None or self.numa_nodes == 1:
            return f"0-{self.vcpus - 1}"
        quarter = self.vcpus // 4
        first, sibling = numa * quarter, self.vcpus // 2 + numa * quarter
        return f"{first}-{first + quarter - 1},{sibling}-{sibling + quarter - 1}"

    @property
    def rdma_nics(self) -> bool:
        """AWS's P instances put an EFA device beside each GPU; GCP's A3/A2 have none."""
        return self.instance_type.startswith("p")


_VCPUS = {"p5.48xlarge": 192, "p5en.48xlarge": 192, "p4d.24xlarge": 96, "p4de.24xlarge": 96}


def default_shape(g: GpuReadingInput) -> NodeShape:
    """The shape of the GPU class's usual instance, when the node says nothing."""
    count = g.gpu.gpus_per_instance
    return NodeShape(g.gpu.instance_type, count, _VCPUS.get(g.gpu.instance_type, 12 * count))


def _nvlinks(g: GpuReadingInput) -> int | None:
    """NVLinks bonded between two GPUs of this board, None for PCIe cards."""
    if "SXM" in g.gpu.nvml_name or g.gpu.family == "hopper":
        return _NVLINKS.get(g.gpu.family)
    return None


def _numa(g: GpuReadingInput, shape: NodeShape) -> int | None:
    if shape.numa_nodes == 1:
        return None  # the VM reports no NUMA node for its devices
    return 0 if g.node_index < shape.gpus // 2 else 1


def _pcie(a: GpuReadingInput, b: GpuReadingInput, shape: NodeShape) -> str:
    """The PCIe path between two devices of one machine."""
    numa_a, numa_b = _numa(a, shape), _numa(b, shape)
    if numa_a is None or numa_b is None:
        return "PHB"
    return "NODE" if numa_a == numa_b else "SYS"


def _gpu_link(a: GpuReadingInput, b: GpuReadingInput, shape: NodeShape, nvlink: bool) -> str:
    if a.index == b.index:
        return " X "
    links = _nvlinks(a)
    if nvlink and links:
        return f"NV{links}"
    return _pcie(a, b, shape)


def _nic_name(g: GpuReadingInput) -> str:
    bus = int(g.pci_bus_id.split(":")[1], 16)
    return f"rdmap{bus - 1}s0"  # the EFA device on the PCIe switch beside the GPU


def _tabbed(value: str, header: str) -> str:
    """A value followed by the tabs that bring the next column under the header's."""
    target = (len(header) // 8 + 1) * 8
    end = (len(value) // 8 + 1) * 8
    tabs = 1
    while end < target:
        end += 8
        tabs += 1
    return value + "\t" * tabs


def topo_matrix(
    gpus: Sequence[GpuReadingInput], node: NodeShape | None = None, *, nvlink: bool = True
) -> str:
    """What `nvidia-smi topo -m` prints (`-mp` with nvlink=False: PCIe paths only)."""
    if not gpus:
        return ""
    shape = node or default_shape(gpus[0])
    nics = list(gpus) if shape.rdma_nics and any(_nvlinks(g) for g in gpus) else []
    gpu_names = [f"GPU{g.index}" for g in gpus]
    nic_names = [f"NIC{i}" for i in range(len(nics))]
    header = "\t" + "".join(f"{n}\t" for n in gpu_names + nic_names)
    header += "CPU Affinity\tNUMA Affinity\tGPU NUMA ID"
    lines = [header]
    for g in gpus:
        cells = [_gpu_link(g, other, shape, nvlink) for other in gpus]
        cells += ["PIX" if nic.index == g.index else _pcie(g, nic, shape) for nic in nics]
        numa = _numa(g, shape)
        row = f"GPU{g.index}\t" + "".join(f"{c}\t" for c in cells)
        row += _tabbed(shape.cpus(numa), "CPU Affinity")
        row += _tabbed("N/A" if numa is None else str(numa), "NUMA Affinity") + "N/A"
        lines.append(row)
    for i, nic in enumerate(nics):
        cells = ["PIX" if g.index == nic.index else _pcie(nic, g, shape) for g in gpus]
        cells += [" X " if j == i else _pcie(nic, other, shape) for j, other in enumerate(nics)]
        lines.append(f"NIC{i}\t" + "\t".join(cells))
    out = "\n".join(lines) + "\n" + LEGEND
    if nics:
        out += "\nNIC Legend:\n\n"
        out += "".join(f"  NIC{i}: {_nic_name(nic)}\n" for i, nic in enumerate(nics))
    return out


def run_topo(
    argv: Sequence[str], gpus: Sequence[GpuReadingInput], node: NodeShape | None = None
) -> tuple[int, str, str]:
    """`nvidia-smi topo ARGV`: the matrix for -m/--matrix and -mp/--matrix_pci, else the
    tool's refusal on stdout with exit code 2. Never raises."""
    if list(argv) in (["-m"], ["--matrix"]):
        return 0, topo_matrix(gpus, node), ""
    if list(argv) in (["-mp"], ["--matrix_pci"]):
        return 0, topo_matrix(gpus, node, nvlink=False), ""
    shown = argv[0] if argv else "topo"
    return (
        2,
        f"ERROR: Option {shown} is not recognized. Please run 'nvidia-smi topo -h' for help.\n",
        "",
    )
