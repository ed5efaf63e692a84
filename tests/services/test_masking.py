"""Secrets never reach the screen, the journal or the evidence bundle."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from services.masking import MASK, is_secret_flag, mask_args, mask_env, mask_object, mask_text

HF_TOKEN = "hf_sImUlAtEdSeCrEtT0kEnD0NotLeak1234"
OPENAI_KEY = "sk-proj-Zx81kQw2mN4bV6cX8zL0pO9iU7yT5rE3"


def serving_env() -> list[dict[str, Any]]:
    return [
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}},
        {"name": "HF_HUB_OFFLINE", "value": "0"},
        {"name": "API_KEY", "value": "k3y-vAlue-123"},
        {"name": "AWS_SECRET_ACCESS_KEY", "value": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
        {"name": "db_password", "value": "hunter2hunter2"},
        {"name": "MAX_TOTAL_TOKENS", "value": "8192"},
        {"name": "TOKENIZERS_PARALLELISM", "value": "false"},
        {"name": "MODEL_ID", "valueFrom": {"configMapKeyRef": {"name": "serving", "key": "model"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "EMPTY_TOKEN", "value": ""},
    ]


def serving_container() -> dict[str, Any]:
    return {
        "name": "vllm",
        "image": "vllm/vllm-openai:latest",
        "args": [
            "--model", "meta-llama/Llama-3.1-8B-Instruct",
            "--api-key", "s3cr3t-api-key",
            "--max-num-batched-tokens", "8192",
        ],
        "env": serving_env(),
    }  # fmt: skip


def pod() -> dict[str, Any]:
    init = {
        "name": "download",
        "image": "python:3.11-slim",
        "command": [
            "sh",
            "-c",
            f"huggingface-cli download --token {HF_TOKEN} meta-llama/Llama-3.1-8B",
        ],
        "env": [{"name": "HUGGING_FACE_HUB_TOKEN", "value": HF_TOKEN}],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "llm-serve-6c9f7d8b5-x2k4q", "namespace": "inference"},
        "spec": {"initContainers": [init], "containers": [serving_container()]},
    }


def secret() -> dict[str, Any]:
    applied = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "hf-token", "namespace": "inference"},
        "stringData": {"token": HF_TOKEN},
        "type": "Opaque",
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "hf-token",
            "namespace": "inference",
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": json.dumps(applied) + "\n",
            },
        },
        "data": {"token": base64.b64encode(HF_TOKEN.encode()).decode()},
        "type": "Opaque",
    }


def test_mask_env_shows_references_and_hides_secret_values() -> None:
    env = serving_env()
    masked = {e["name"]: e for e in mask_env(env)}
    assert masked["HF_TOKEN"] == {"name": "HF_TOKEN", "value": "<secret hf-token/token>"}
    for name in ("API_KEY", "AWS_SECRET_ACCESS_KEY", "db_password"):
        assert masked[name]["value"] == MASK
    assert masked["HF_HUB_OFFLINE"]["value"] == "0"
    # Token counts and tokenizer settings are configuration, not secrets.
    assert masked["MAX_TOTAL_TOKENS"]["value"] == "8192"
    assert masked["TOKENIZERS_PARALLELISM"]["value"] == "false"
    assert masked["MODEL_ID"] == env[7] and masked["POD_IP"] == env[8]
    assert masked["EMPTY_TOKEN"]["value"] == ""
    assert env == serving_env()  # input untouched
    assert mask_env(mask_env(env)) == mask_env(env)


def test_mask_env_catches_token_shaped_values_under_innocent_names() -> None:
    (entry,) = mask_env(
        [{"name": "EXTRA_ARGS", "value": f"--download-dir /data --hf-token {HF_TOKEN}"}]
    )
    assert HF_TOKEN not in entry["value"]
    assert entry["value"].startswith("--download-dir /data --hf-token ")


@pytest.mark.parametrize(
    ("args", "masked"),
    [
        (["--api-key", "abc123", "--port", "8000"], ["--api-key", MASK, "--port", "8000"]),
        (["--token=abc123"], [f"--token={MASK}"]),
        (["--hf-token", "abc123"], ["--hf-token", MASK]),
        (["--ssl-keyfile-password", "pw"], ["--ssl-keyfile-password", MASK]),
        (["--max-num-batched-tokens", "8192", "--tokenizer", "org/tok"], None),
        (["--kv-cache-dtype", "fp8", "--api-key"], None),
        (
            ["serve", "org/model", f"--model-loader-extra-config={OPENAI_KEY}"],
            ["serve", "org/model", f"--model-loader-extra-config={MASK}"],
        ),
    ],
)
def test_mask_args(args: list[str], masked: list[str] | None) -> None:
    assert mask_args(args) == (masked if masked is not None else args)
    assert mask_args(mask_args(args)) == mask_args(args)


def test_mask_args_inside_shell_scripts() -> None:
    script = (
        f"HF_TOKEN={HF_TOKEN} exec vllm serve org/model --api-key 'my secret' --max-model-len 8192"
    )
    (masked,) = mask_args([script])
    assert HF_TOKEN not in masked and "my secret" not in masked
    assert (
        masked == f"HF_TOKEN={MASK} exec vllm serve org/model --api-key {MASK} --max-model-len 8192"
    )


def test_is_secret_flag() -> None:
    assert is_secret_flag("--api-key") and is_secret_flag("--hf_token=x")
    assert not is_secret_flag("--max-num-batched-tokens") and not is_secret_flag(
        "--tokenizer-revision"
    )


def test_mask_object_pod_masks_every_container() -> None:
    original = pod()
    masked = mask_object(original)
    text = json.dumps(masked)
    assert HF_TOKEN not in text and "s3cr3t-api-key" not in text and "hunter2" not in text
    container = masked["spec"]["containers"][0]
    assert container["args"][3] == MASK
    assert container["env"][0]["value"] == "<secret hf-token/token>"
    init = masked["spec"]["initContainers"][0]
    assert init["env"][0]["value"] == MASK
    assert init["command"][2].startswith("huggingface-cli download --token ")
    assert original == pod()  # never mutates
    assert mask_object(masked) == masked  # idempotent


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
def test_mask_object_templates(kind: str) -> None:
    obj = {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": "llm-serve", "namespace": "inference"},
        "spec": {"template": {"spec": {"containers": [serving_container()]}}},
    }
    masked = mask_object(obj)
    container = masked["spec"]["template"]["spec"]["containers"][0]
    assert container["env"][2]["value"] == MASK
    assert "s3cr3t-api-key" not in json.dumps(masked)
    assert masked["metadata"] == obj["metadata"]


def test_mask_object_cronjob_and_lists() -> None:
    cronjob = {
        "kind": "CronJob",
        "spec": {
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [serving_container()]}}}}
        },
    }
    listing = {"apiVersion": "v1", "kind": "List", "items": [cronjob, pod()]}
    assert "s3cr3t-api-key" not in json.dumps(mask_object(listing))


def test_mask_object_secret_and_its_last_applied_annotation() -> None:
    original = secret()
    masked = mask_object(original)
    assert masked["data"] == {"token": MASK}
    applied_text = masked["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"
    ]
    assert applied_text.endswith("\n")
    applied = json.loads(applied_text)
    assert applied["stringData"] == {"token": MASK}
    assert applied["metadata"]["name"] == "hf-token"
    text = json.dumps(masked)
    assert HF_TOKEN not in text and original["data"]["token"] not in text
    assert mask_object(masked) == masked
    assert original == secret()


def test_mask_object_secret_list_items_without_kind() -> None:
    item = secret()
    del item["kind"], item["apiVersion"]
    masked = mask_object({"apiVersion": "v1", "kind": "SecretList", "items": [item]})
    assert masked["items"][0]["data"] == {"token": MASK}


def test_last_applied_of_a_deployment_is_masked_and_unreadable_one_hidden() -> None:
    deployment = {
        "kind": "Deployment",
        "spec": {"template": {"spec": {"containers": [serving_container()]}}},
    }
    obj = {
        "kind": "Deployment",
        "metadata": {
            "name": "llm-serve",
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": json.dumps(deployment)
            },
        },
    }
    applied = mask_object(obj)["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"
    ]
    assert "s3cr3t-api-key" not in applied and "k3y-vAlue-123" not in applied
    assert (
        json.loads(applied)["spec"]["template"]["spec"]["containers"][0]["env"][2]["value"] == MASK
    )
    obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = (
        '{"truncated'
    )
    broken = mask_object(obj)["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"
    ]
    assert broken == MASK


def test_mask_text_scrubs_known_values_their_base64_and_shapes() -> None:
    encoded = base64.b64encode(b"hunter2hunter2").decode()
    log = (
        "INFO loading with password hunter2hunter2\n"
        f"secret data: {encoded}\n"
        f"HF_TOKEN={HF_TOKEN} MAX_TOTAL_TOKENS=8192\n"
        "curl -H 'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc' --api-key zz9 http://x\n"
        f"key={OPENAI_KEY}\n"
    )
    masked = mask_text(log, ["hunter2hunter2", "ab"])
    for leaked in ("hunter2hunter2", encoded, HF_TOKEN, "eyJhbGciOiJIUzI1NiJ9", "zz9", OPENAI_KEY):
        assert leaked not in masked
    assert "MAX_TOTAL_TOKENS=8192" in masked
    assert "loading with password" in masked  # short secrets like "ab" are not searched for
    assert mask_text(masked, ["hunter2hunter2"]) == masked
