"""`nvidia-smi topo -m` for the machine shapes the fleet runs on (issue 11, item 8): the real
tab layout, NVSwitch links between SXM GPUs, the NUMA split of two-socket machines and the
PCIe host bridge of the g-family cards."""

from __future__ import annotations

from services.simulator import gpus
from services.simulator.gpus import GpuClass, GpuReadingInput
from services.simulator.nvidia_smi import NodeShape, run_nvidia_smi


def readings(gpu: GpuClass, count: int) -> list[GpuReadingInput]:
    return [
        GpuReadingInput(
            gpu, i, i, "node", f"GPU-{i:08d}", "1", gpu.pci_bus_id(i), 0, 0, 0, 30, 70.0, 1980
        )
        for i in range(count)
    ]


def matrix(out: str) -> list[list[str]]:
    return [row.split("\t") for row in out.split("\n\nLegend:\n\n")[0].splitlines()]


def test_a_p5_splits_its_h100s_between_two_numa_nodes() -> None:
    p5 = NodeShape("p5.48xlarge", 8, 192)
    code, out, _ = run_nvidia_smi(["topo", "-m"], readings(gpus.H100, 8), node=p5)
    assert code == 0
    rows = matrix(out)
    assert rows[0] == [
        "", *[f"GPU{i}" for i in range(8)], *[f"NIC{i}" for i in range(8)],
        "CPU Affinity", "NUMA Affinity", "GPU NUMA ID",
    ]  # fmt: skip
    assert rows[1][:10] == ["GPU0", " X ", *["NV18"] * 7, "PIX"]
    assert rows[1][10:17] == ["NODE", "NODE", "NODE", "SYS", "SYS", "SYS", "SYS"]
    assert rows[1][17:] == ["0-47,96-143", "0", "", "N/A"]
    assert rows[8][-4:] == ["48-95,144-191", "1", "", "N/A"]
    assert rows[9][:2] == ["NIC0", "PIX"]
    assert out.endswith("  NIC7: rdmap201s0\n")
    # -mp: the PCIe path instead of the NVLinks.
    pci = matrix(run_nvidia_smi(["topo", "-mp"], readings(gpus.H100, 8), node=p5)[1])
    assert pci[1][1:9] == [" X ", "NODE", "NODE", "NODE", "SYS", "SYS", "SYS", "SYS"]


def test_a10g_cards_sit_behind_one_host_bridge() -> None:
    g5 = NodeShape("g5.12xlarge", 4, 48)
    out = run_nvidia_smi(["topo", "-m"], readings(gpus.A10G, 4), node=g5)[1]
    rows = matrix(out)
    assert rows[0] == [
        "", "GPU0", "GPU1", "GPU2", "GPU3", "CPU Affinity", "NUMA Affinity", "GPU NUMA ID",
    ]  # fmt: skip
    assert rows[2] == ["GPU1", "PHB", " X ", "PHB", "PHB", "0-47", "", "N/A", "", "N/A"]
    assert "NIC Legend" not in out
    assert out.splitlines()[-1] == "  NV#  = Connection traversing a bonded set of # NVLinks"


def test_topo_refuses_what_it_does_not_know() -> None:
    code, out, _ = run_nvidia_smi(["topo", "-p2p", "r"], readings(gpus.H100, 1))
    assert code == 2
    assert out.startswith("ERROR: Option -p2p is not recognized.")
