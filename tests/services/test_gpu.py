"""GPU identity from labels, nvidia-smi and DCGM, and the hardware-skew rows built from them."""

from __future__ import annotations

from typing import Any

import pytest

from services.errors import InvalidError, NotFoundError
from services.gpu import (
    CLASS_MEMORY_MIB,
    expected_gpu_class,
    gpu_class_from_instance_type,
    gpu_class_from_labels,
    gpu_class_from_name,
    gpu_rows,
    node_selector_for,
    parse_nvidia_smi_csv,
    same_class,
)

H100_SMI = "name, memory.total [MiB]\nNVIDIA H100 80GB HBM3, 81559 MiB\n"
A10G_SMI = "name, memory.total [MiB]\nNVIDIA A10G, 23028 MiB\n"


def node(name: str, **labels: str) -> dict[str, Any]:
    base = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {**base, **labels}},
    }


def gfd_node(name: str, product: str, memory: str, instance_type: str) -> dict[str, Any]:
    return node(
        name,
        **{
            "nvidia.com/gpu.product": product,
            "nvidia.com/gpu.memory": memory,
            "nvidia.com/gpu.count": "1",
            "node.kubernetes.io/instance-type": instance_type,
        },
    )


NODES = [
    node("cpu-system-1", **{"node.kubernetes.io/instance-type": "m6i.4xlarge"}),
    gfd_node("gpu-h100-1", "NVIDIA-H100-80GB-HBM3", "81559", "p5.48xlarge"),
    gfd_node("gpu-h100-2", "NVIDIA-H100-80GB-HBM3", "81559", "p5.48xlarge"),
    gfd_node("gpu-a10g-1", "NVIDIA-A10G", "23028", "g5.2xlarge"),
    gfd_node("gpu-a10g-2", "NVIDIA-A10G", "23028", "g5.2xlarge"),
]


def pod(name: str, node_name: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": "vllm", "image": "vllm/vllm-openai:latest"}],
    }
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": {"name": name, "namespace": "inference"}, "spec": spec}


@pytest.mark.parametrize(
    ("name", "gpu_class"),
    [
        # nvidia-smi and DCGM modelName
        ("NVIDIA H100 80GB HBM3", "H100-80GB"),
        ("NVIDIA H100 PCIe", "H100-80GB"),
        ("NVIDIA H100 NVL", "H100-94GB"),
        ("NVIDIA H200", "H200-141GB"),
        ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
        ("NVIDIA A100-SXM4-40GB", "A100-40GB"),
        ("NVIDIA A100 80GB PCIe", "A100-80GB"),
        ("NVIDIA A10G", "A10G"),
        ("NVIDIA A10", "A10"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA L40S", "L40S"),
        ("Tesla T4", "T4"),
        ("Tesla V100-SXM2-16GB", "V100-16GB"),
        # GPU Feature Discovery product labels
        ("NVIDIA-H100-80GB-HBM3", "H100-80GB"),
        ("NVIDIA-A10G-SHARED", "A10G"),
        ("NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", "A100-40GB-MIG-1g.5gb"),
        ("NVIDIA-A100-SXM4-80GB-MIG-3g.40gb-SHARED", "A100-80GB-MIG-3g.40gb"),
        # GKE accelerators and Karpenter GPU names
        ("nvidia-h100-80gb", "H100-80GB"),
        ("nvidia-h100-mega-80gb", "H100-80GB"),
        ("nvidia-tesla-t4", "T4"),
        ("nvidia-l4", "L4"),
        ("a10g", "A10G"),
        ("l40s", "L40S"),
        # Unknown GPUs keep a comparable cleaned name
        ("NVIDIA RTX 6000 Ada Generation", "RTX-6000-ADA-GENERATION"),
        ("NVIDIA-RTX-6000-Ada-Generation", "RTX-6000-ADA-GENERATION"),
        ("", None),
    ],
)
def test_gpu_class_from_name(name: str, gpu_class: str | None) -> None:
    assert gpu_class_from_name(name) == gpu_class


def test_classes_are_stable_under_normalization() -> None:
    for gpu_class in [*CLASS_MEMORY_MIB, "A100-40GB-MIG-1g.5gb"]:
        assert gpu_class_from_name(gpu_class) == gpu_class


def test_memory_settles_an_unsized_name() -> None:
    assert gpu_class_from_name("NVIDIA A100-PCIE", 81920) == "A100-80GB"
    assert gpu_class_from_name("a100", 40960) == "A100-40GB"
    assert gpu_class_from_name("a100") == "A100"
    assert same_class("A100", "A100-80GB") and not same_class("A100-40GB", "A100-80GB")
    assert not same_class("A100", "A100-40GB-MIG-1g.5gb")


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (NODES[1]["metadata"]["labels"], ("H100-80GB", "nvidia.com/gpu.product")),
        (
            {"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"},
            ("A100-40GB", "cloud.google.com/gke-accelerator"),
        ),
        (
            {"cloud.google.com/gke-accelerator": "nvidia-a100-80gb"},
            ("A100-80GB", "cloud.google.com/gke-accelerator"),
        ),
        (
            {
                "cloud.google.com/gke-accelerator": "nvidia-tesla-a100",
                "cloud.google.com/gke-gpu-partition-size": "1g.5gb",
            },
            ("A100-40GB-MIG-1g.5gb", "cloud.google.com/gke-accelerator"),
        ),
        (
            {
                "karpenter.k8s.aws/instance-gpu-name": "a100",
                "karpenter.k8s.aws/instance-gpu-memory": "81920",
            },
            ("A100-80GB", "karpenter.k8s.aws/instance-gpu-name"),
        ),
        (
            {"node.kubernetes.io/instance-type": "g6e.xlarge"},
            ("L40S", "node.kubernetes.io/instance-type"),
        ),
        ({"node.kubernetes.io/instance-type": "m6i.4xlarge"}, (None, "")),
        ({}, (None, "")),
    ],
)
def test_gpu_class_from_labels(labels: dict[str, str], expected: tuple[str | None, str]) -> None:
    assert gpu_class_from_labels(labels) == expected


@pytest.mark.parametrize(
    ("instance_type", "gpu_class"),
    [
        ("p5.48xlarge", "H100-80GB"),
        ("p5e.48xlarge", "H200-141GB"),
        ("p4d.24xlarge", "A100-40GB"),
        ("p4de.24xlarge", "A100-80GB"),
        ("g5.12xlarge", "A10G"),
        ("g6.xlarge", "L4"),
        ("g4dn.xlarge", "T4"),
        ("a3-highgpu-8g", "H100-80GB"),
        ("a2-ultragpu-1g", "A100-80GB"),
        ("a2-highgpu-1g", "A100-40GB"),
        ("g2-standard-8", "L4"),
        ("Standard_ND96isr_H100_v5", "H100-80GB"),
        ("Standard_ND96amsr_A100_v4", "A100-80GB"),
        ("Standard_NC24ads_A100_v4", "A100-80GB"),
        ("Standard_NC4as_T4_v3", "T4"),
        ("m6i.4xlarge", None),
        ("n2-standard-8", None),
    ],
)
def test_gpu_class_from_instance_type(instance_type: str, gpu_class: str | None) -> None:
    assert gpu_class_from_instance_type(instance_type) == gpu_class


# --- nvidia-smi ---------------------------------------------------------------------------------


def test_parse_nvidia_smi_csv_with_header_and_units() -> None:
    text = H100_SMI + "NVIDIA H100 80GB HBM3, 81559 MiB\n"
    assert parse_nvidia_smi_csv(text) == [("NVIDIA H100 80GB HBM3", 81559)] * 2


def test_parse_nvidia_smi_csv_noheader_nounits_and_na() -> None:
    assert parse_nvidia_smi_csv("NVIDIA A10G, 23028\r\n\nNVIDIA A100-SXM4-40GB, [N/A]\n") == [
        ("NVIDIA A10G", 23028),
        ("NVIDIA A100-SXM4-40GB", None),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "No devices were found\n",
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure "
        "that the latest NVIDIA driver is installed and running.\n",
        "name, memory.total [MiB]\n",
        "NVIDIA A10G, lots of memory\n",
        "sh: nvidia-smi: not found\n",
    ],
)
def test_parse_nvidia_smi_csv_rejects_garbage(text: str) -> None:
    with pytest.raises(InvalidError, match="nvidia-smi"):
        parse_nvidia_smi_csv(text)


# --- expected class ---------------------------------------------------------------------------


def test_expected_class_from_last_known_good_node_selector() -> None:
    lkg = {
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
            "containers": [],
        }
    }
    gpu_class, reason = expected_gpu_class(lkg, ["A10G", "A10G", "A10G"], "L4")
    assert gpu_class == "H100-80GB"
    assert "nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3" in reason


def test_expected_class_from_required_node_affinity_of_a_replicaset() -> None:
    replicaset = {
        "kind": "ReplicaSet",
        "spec": {
            "template": {
                "spec": {
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [
                                    {
                                        "matchExpressions": [
                                            {
                                                "key": "kubernetes.io/os",
                                                "operator": "In",
                                                "values": ["linux"],
                                            },
                                            {
                                                "key": "node.kubernetes.io/instance-type",
                                                "operator": "In",
                                                "values": ["p5.48xlarge"],
                                            },
                                        ]
                                    }
                                ]
                            }
                        }
                    }
                }
            }
        },
    }
    assert expected_gpu_class(replicaset, [], None)[0] == "H100-80GB"


def test_expected_class_from_healthy_majority_then_configuration() -> None:
    assert expected_gpu_class(None, ["H100-80GB", "H100-80GB", "A10G", None], None) == (
        "H100-80GB",
        "2 of 3 healthy pods run on H100-80GB",
    )
    gpu_class, reason = expected_gpu_class({"spec": {}}, ["H100-80GB", "A10G"], "nvidia-h100-80gb")
    assert gpu_class == "H100-80GB"
    assert "configured" in reason
    gpu_class, reason = expected_gpu_class(None, ["H100-80GB", "A10G"], None)
    assert gpu_class is None
    assert "split evenly" in reason and "set the expected GPU class" in reason


# --- rows -------------------------------------------------------------------------------------


def test_gpu_rows_flag_pods_on_the_wrong_class() -> None:
    pods = [
        pod("llm-serve-a", "gpu-h100-1"),
        pod("llm-serve-b", "gpu-a10g-1"),
        pod("llm-serve-c", None),
    ]
    rows = gpu_rows(
        pods,
        NODES,
        {"llm-serve-a": H100_SMI, "llm-serve-b": [("NVIDIA A10G", 23028)]},
        {"llm-serve-a": "NVIDIA H100 80GB HBM3", "llm-serve-b": "NVIDIA A10G"},
        "H100-80GB",
    )
    good, bad, pending = rows
    assert (good.gpu_class, good.mismatch, good.node) == ("H100-80GB", False, "gpu-h100-1")
    assert good.smi_memory_mib == 81559 and good.label_source == "nvidia.com/gpu.product"
    assert (bad.gpu_class, bad.mismatch) == ("A10G", True)
    assert bad.note.startswith("on A10G, expected H100-80GB")
    assert bad.dcgm_model == "NVIDIA A10G"
    assert (pending.gpu_class, pending.mismatch, pending.note) == (None, False, "not scheduled yet")


def test_gpu_rows_trust_the_container_over_a_wrong_label() -> None:
    mislabeled = gfd_node("gpu-x-1", "NVIDIA-H100-80GB-HBM3", "81559", "p5.48xlarge")
    (row,) = gpu_rows([pod("p", "gpu-x-1")], [mislabeled], {"p": A10G_SMI}, {}, "H100-80GB")
    assert row.label_product == "H100-80GB"
    assert row.gpu_class == "A10G"
    assert row.mismatch
    assert (
        "node label nvidia.com/gpu.product says H100-80GB but nvidia-smi reports A10G" in row.note
    )


def test_gpu_rows_note_unreadable_smi_shared_gpus_and_mig() -> None:
    shared = gfd_node("gpu-a10g-s", "NVIDIA-A10G-SHARED", "23028", "g5.2xlarge")
    mig = gfd_node("gpu-mig", "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", "4864", "p4d.24xlarge")
    rows = gpu_rows(
        [pod("s", "gpu-a10g-s"), pod("m", "gpu-mig")],
        [shared, mig],
        {"s": "Failed to initialize NVML: Unknown Error", "m": "NVIDIA A100-SXM4-40GB, 40960 MiB"},
        {},
        "A10G",
    )
    assert rows[0].gpu_class == "A10G" and not rows[0].mismatch
    assert "time-sliced" in rows[0].note and "not a name,memory.total CSV row" in rows[0].note
    # nvidia-smi names the MIG slice's parent; the label keeps the slice.
    assert rows[1].gpu_class == "A100-40GB-MIG-1g.5gb" and rows[1].mismatch


# --- node selector ----------------------------------------------------------------------------


def test_node_selector_prefers_the_gfd_label_the_nodes_carry() -> None:
    assert node_selector_for("H100-80GB", NODES) == {
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"
    }
    assert node_selector_for("NVIDIA H100 80GB HBM3", NODES) == {
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"
    }
    assert node_selector_for("a10g", NODES) == {"nvidia.com/gpu.product": "NVIDIA-A10G"}


def test_node_selector_falls_back_to_cloud_labels_and_avoids_shared_gpus() -> None:
    gke = [
        node("gke-pool-h100-1", **{"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}),
        node("gke-pool-l4-1", **{"cloud.google.com/gke-accelerator": "nvidia-l4"}),
    ]
    assert node_selector_for("H100-80GB", gke) == {
        "cloud.google.com/gke-accelerator": "nvidia-h100-80gb"
    }
    eks = [node("ip-10-0-1-7", **{"node.kubernetes.io/instance-type": "g6e.2xlarge"})]
    assert node_selector_for("L40S", eks) == {"node.kubernetes.io/instance-type": "g6e.2xlarge"}
    mixed = [
        gfd_node("a", "NVIDIA-A10G-SHARED", "23028", "g5.xlarge"),
        gfd_node("b", "NVIDIA-A10G", "23028", "g5.xlarge"),
    ]
    assert node_selector_for("A10G", mixed) == {"nvidia.com/gpu.product": "NVIDIA-A10G"}


def test_node_selector_for_a_class_no_node_has() -> None:
    with pytest.raises(
        NotFoundError, match=r"no node carries GPU class L40S .*A10G x2, H100-80GB x2"
    ):
        node_selector_for("L40S", NODES)
    with pytest.raises(InvalidError):
        node_selector_for(" ", NODES)
