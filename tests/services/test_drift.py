"""Drift findings on pods, templates and revisions, as the pin step shows them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from services.drift import (
    container_drift,
    digest_from_image_id,
    image_parts,
    pinned_image,
    pod_drift,
    template_drift,
)
from services.errors import InvalidError
from services.models import Finding, Severity, Step

LATEST_DIGEST = "sha256:e7a4d9c2b1f0e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3"
V085_DIGEST = "sha256:9f2b6c1e0d8a7b5c4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d"
SHA = "0e9e39f249a16976918f6564b8830bc894c89659"
HF_TOKEN_ENV = {
    "name": "HF_TOKEN",
    "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}},
}


def drifted_container() -> dict[str, Any]:
    return {
        "name": "vllm",
        "image": "vllm/vllm-openai:latest",
        "args": [
            "--model",
            "meta-llama/Llama-3.1-8B-Instruct",
            "--served-model-name",
            "llama-3.1-8b",
        ],
        "env": [HF_TOKEN_ENV],
    }


def pinned_container() -> dict[str, Any]:
    return {
        "name": "vllm",
        "image": f"vllm/vllm-openai:v0.8.5@{V085_DIGEST}",
        "args": [
            "--model", "meta-llama/Llama-3.1-8B-Instruct", "--revision", SHA,
            "--served-model-name", "llama-3.1-8b",
            "--dtype", "bfloat16", "--max-model-len", "8192", "--max-num-seqs", "256",
        ],
        "env": [HF_TOKEN_ENV],
    }  # fmt: skip


def template(container: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "llm-serve"}},
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
            "containers": [container],
        },
    }


def pod(container: dict[str, Any], image_id: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "llm-serve-6c9f7d8b5-x2k4q", "namespace": "inference"},
        "spec": {"nodeName": "gpu-a10g-1", "containers": [container]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": f"docker.io/{container['image']}",
                    "imageID": image_id,
                    "ready": True,
                    "restartCount": 0,
                }
            ],
        },
    }


def by_code(findings: list[Finding]) -> dict[str, Finding]:
    return {f.code: f for f in findings}


def test_drifted_pod_has_every_drift_finding_with_the_fix() -> None:
    findings = by_code(
        pod_drift(pod(drifted_container(), f"docker.io/vllm/vllm-openai@{LATEST_DIGEST}"))
    )
    assert set(findings) == {
        "image-mutable-tag",
        "model-revision-unpinned",
        "dtype-unset",
        "max-model-len-unset",
    }
    image = findings["image-mutable-tag"]
    assert image.severity is Severity.ERROR
    assert image.step is Step.PIN
    assert image.subject == "pod/llm-serve-6c9f7d8b5-x2k4q container/vllm"
    assert image.detail["digest"] == LATEST_DIGEST
    assert image.detail["pinned"] == f"vllm/vllm-openai:latest@{LATEST_DIGEST}"
    assert image.detail["pinned"] in image.message
    revision = findings["model-revision-unpinned"]
    assert revision.severity is Severity.ERROR
    assert (
        "--revision" in revision.message and "meta-llama/Llama-3.1-8B-Instruct" in revision.message
    )
    assert "--dtype bfloat16" in findings["dtype-unset"].message
    assert "--max-model-len" in findings["max-model-len-unset"].message
    assert findings["dtype-unset"].severity is Severity.WARNING


def test_pinned_template_has_no_findings() -> None:
    assert template_drift(template(pinned_container()), owner="revision/2") == []


def test_docker_pullable_image_id_gives_the_digest() -> None:
    findings = pod_drift(
        pod(drifted_container(), f"docker-pullable://vllm/vllm-openai@{LATEST_DIGEST}")
    )
    assert by_code(findings)["image-mutable-tag"].detail["digest"] == LATEST_DIGEST


def test_bare_local_image_id_says_the_digest_cannot_be_derived() -> None:
    finding = by_code(pod_drift(pod(drifted_container(), LATEST_DIGEST)))["image-mutable-tag"]
    assert finding.detail["digest"] is None
    assert finding.detail["pinned"] is None
    assert "local image id" in finding.message
    assert "crane digest vllm/vllm-openai:latest" in finding.message


def test_tag_without_digest_is_a_warning_and_no_tag_an_error() -> None:
    container = pinned_container()
    container["image"] = "vllm/vllm-openai:v0.8.5"
    (tagged,) = container_drift(container, f"vllm/vllm-openai@{V085_DIGEST}", owner="pod/p")
    assert (tagged.code, tagged.severity) == ("image-mutable-tag", Severity.WARNING)
    assert tagged.detail["pinned"] == f"vllm/vllm-openai:v0.8.5@{V085_DIGEST}"
    assert "v0.8.5" in tagged.message
    container["image"] = "vllm/vllm-openai"
    (untagged,) = container_drift(container, None)
    assert untagged.severity is Severity.ERROR
    assert "no tag" in untagged.message
    assert untagged.subject == "container/vllm"


def test_template_subjects_for_deployments_and_revisions() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llm-serve", "namespace": "inference"},
        "spec": {"template": template(drifted_container())},
    }
    replicaset = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "llm-serve-6c9f7d8b5",
            "annotations": {"deployment.kubernetes.io/revision": "3"},
        },
        "spec": {"template": template(drifted_container())},
    }
    assert {f.subject for f in template_drift(deployment)} == {
        "deployment/llm-serve container/vllm"
    }
    assert {f.subject for f in template_drift(replicaset)} == {"revision/3 container/vllm"}
    rollback = template_drift(replicaset, Step.ROLLBACK)
    assert {f.step for f in rollback} == {Step.ROLLBACK}
    image = by_code(rollback)["image-mutable-tag"]
    assert image.detail["digest"] is None  # a template has no imageID


def test_sidecar_gets_image_checks_only() -> None:
    envoy = {
        "name": "envoy",
        "image": "envoyproxy/envoy:v1.31.0",
        "args": ["-c", "/etc/envoy.yaml"],
    }
    findings = container_drift(envoy, "docker.io/envoyproxy/envoy@" + LATEST_DIGEST)
    assert [f.code for f in findings] == ["image-mutable-tag"]


@pytest.mark.parametrize(
    ("revision", "flagged"),
    [("main", True), ("refs/heads/main", True), ("0e9e39f", True), (SHA, False), ("v2.0", False)],
)
def test_revision_that_does_not_pin_is_flagged(revision: str, flagged: bool) -> None:
    container = pinned_container()
    container["args"][container["args"].index(SHA)] = revision
    codes = [f.code for f in container_drift(container, None)]
    assert ("model-revision-unpinned" in codes) is flagged


def test_dtype_auto_counts_as_unset() -> None:
    container = pinned_container()
    container["args"][container["args"].index("bfloat16")] = "auto"
    (finding,) = container_drift(container, None)
    assert finding.code == "dtype-unset"
    assert "dtype is auto" in finding.message


def test_model_from_a_local_path_needs_no_revision() -> None:
    container = pinned_container()
    args = container["args"]
    del args[args.index("--revision") : args.index("--revision") + 2]
    args[args.index("meta-llama/Llama-3.1-8B-Instruct")] = "/models/llama-3.1-8b-instruct"
    assert container_drift(container, None) == []


def test_tgi_findings_name_the_env_vars() -> None:
    tgi = {
        "name": "tgi",
        "image": "ghcr.io/huggingface/text-generation-inference:2.4.1",
        "env": [{"name": "MODEL_ID", "value": "mistralai/Mistral-7B-Instruct-v0.3"}],
    }
    findings = by_code(container_drift(tgi, None, owner="deployment/tgi"))
    assert "REVISION=" in findings["model-revision-unpinned"].message
    assert "DTYPE=bfloat16" in findings["dtype-unset"].message
    assert "MAX_TOTAL_TOKENS=" in findings["max-model-len-unset"].message
    assert findings["dtype-unset"].subject == "deployment/tgi container/tgi"


def test_drift_never_mutates_its_input() -> None:
    original = pod(drifted_container(), LATEST_DIGEST)
    before = copy.deepcopy(original)
    pod_drift(original)
    assert original == before


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("vllm/vllm-openai:latest", ("vllm/vllm-openai", "latest", None)),
        ("vllm/vllm-openai", ("vllm/vllm-openai", None, None)),
        ("registry.local:5000/llm/vllm:v1", ("registry.local:5000/llm/vllm", "v1", None)),
        ("registry.local:5000/llm/vllm", ("registry.local:5000/llm/vllm", None, None)),
        (f"vllm/vllm-openai@{V085_DIGEST}", ("vllm/vllm-openai", None, V085_DIGEST)),
    ],
)
def test_image_parts(image: str, parts: tuple[str, str | None, str | None]) -> None:
    assert image_parts(image) == parts


def test_pinned_image() -> None:
    assert (
        pinned_image("vllm/vllm-openai:v0.8.5", V085_DIGEST)
        == f"vllm/vllm-openai:v0.8.5@{V085_DIGEST}"
    )
    assert (
        pinned_image("registry.local:5000/vllm", V085_DIGEST)
        == f"registry.local:5000/vllm@{V085_DIGEST}"
    )
    # An old digest is replaced; a full imageID is accepted as the digest.
    assert (
        pinned_image(
            f"vllm/vllm-openai:latest@{V085_DIGEST}", f"docker.io/vllm/vllm-openai@{LATEST_DIGEST}"
        )
        == f"vllm/vllm-openai:latest@{LATEST_DIGEST}"
    )
    with pytest.raises(InvalidError, match="64 hex"):
        pinned_image("vllm/vllm-openai:latest", "sha256:abc")


def test_digest_from_image_id_explains_missing_digests() -> None:
    assert digest_from_image_id(f"docker.io/vllm/vllm-openai@{LATEST_DIGEST}") == (
        LATEST_DIGEST,
        "",
    )
    assert digest_from_image_id(None)[0] is None
    assert "imageID" in digest_from_image_id("")[1]
    assert "local image id" in digest_from_image_id(LATEST_DIGEST)[1]
