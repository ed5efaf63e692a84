"""Serving-engine detection, configuration parsing and the edits the pin/latency steps make."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from services.engine_options import set_option, validate_dtype, validate_int, validate_revision
from services.engines import (
    SGLANG,
    TGI,
    UNKNOWN,
    VLLM,
    detect_engine,
    engine_containers,
    parse_engine_config,
    parse_int,
)
from services.errors import InvalidError

SHA = "0e9e39f249a16976918f6564b8830bc894c89659"
HF_TOKEN_ENV = {
    "name": "HF_TOKEN",
    "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}},
}


def vllm_latest() -> dict[str, Any]:
    """The drifted revision of the incident: :latest, no pins."""
    return {
        "name": "vllm",
        "image": "vllm/vllm-openai:latest",
        "args": [
            "--model",
            "meta-llama/Llama-3.1-8B-Instruct",
            "--served-model-name",
            "llama-3.1-8b",
        ],
        "env": [HF_TOKEN_ENV, {"name": "HF_HUB_OFFLINE", "value": "0"}],
        "ports": [{"containerPort": 8000, "name": "http"}],
        "resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}},
    }


def vllm_pinned() -> dict[str, Any]:
    container = vllm_latest()
    container["image"] = "vllm/vllm-openai:v0.8.5@sha256:" + "9f2b6c1e" * 8
    container["args"] = [
        "--model", "meta-llama/Llama-3.1-8B-Instruct",
        "--revision", SHA,
        "--served-model-name", "llama-3.1-8b",
        "--dtype", "bfloat16", "--max-model-len", "8192", "--max-num-seqs", "256",
    ]  # fmt: skip
    return container


def tgi_container() -> dict[str, Any]:
    return {
        "name": "tgi",
        "image": "ghcr.io/huggingface/text-generation-inference:2.4.1",
        "env": [
            {"name": "MODEL_ID", "value": "mistralai/Mistral-7B-Instruct-v0.3"},
            {"name": "REVISION", "value": "e0bc86c23ce5aae1db576c8cca6f06f1f73af2db"},
            {"name": "DTYPE", "value": "bfloat16"},
            {"name": "MAX_INPUT_TOKENS", "value": "4096"},
            {"name": "MAX_TOTAL_TOKENS", "value": "8192"},
            {"name": "MAX_CONCURRENT_REQUESTS", "value": "64"},
            HF_TOKEN_ENV,
        ],
        "ports": [{"containerPort": 80, "name": "http"}],
    }


def sglang_container() -> dict[str, Any]:
    return {
        "name": "sglang",
        "image": "lmsysorg/sglang:v0.4.6.post1-cu124",
        "command": ["python3", "-m", "sglang.launch_server"],
        "args": [
            "--model-path", "Qwen/Qwen2.5-7B-Instruct",
            "--revision", "a09a35458c702b33eeacc393d103063234e8bc28",
            "--context-length", "32768",
            "--max-running-requests", "128",
            "--host", "0.0.0.0", "--port", "30000", "--enable-metrics",
        ],
    }  # fmt: skip


# --- detection -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("container", "engine"),
    [
        (vllm_latest(), VLLM),
        (tgi_container(), TGI),
        (sglang_container(), SGLANG),
        (
            {
                "name": "s",
                "image": "registry.local/llm/server:1.2",
                "command": ["vllm", "serve", "m"],
            },
            VLLM,
        ),
        (
            {
                "name": "s",
                "image": "registry.local/llm/server:1.2",
                "command": ["python3", "-m", "vllm.entrypoints.openai.api_server"],
                "args": ["--model", "m"],
            },
            VLLM,
        ),
        (
            {"name": "s", "image": "registry.local/llm/server:1.2", "args": ["serve", "org/model"]},
            VLLM,
        ),
        (
            {"name": "s", "image": "registry.local/llm/server:1.2", "args": ["--model", "org/m"]},
            VLLM,
        ),
        (
            {"name": "s", "image": "registry.local/tgi:3", "command": ["text-generation-launcher"]},
            TGI,
        ),
        ({"name": "s", "image": "registry.local/x:1", "args": ["--model-id", "org/m"]}, TGI),
        ({"name": "s", "image": "registry.local/x:1", "args": ["--model-path", "org/m"]}, SGLANG),
        (
            {
                "name": "envoy",
                "image": "envoyproxy/envoy:v1.31.0",
                "args": ["-c", "/etc/envoy.yaml"],
            },
            UNKNOWN,
        ),
        (
            {
                "name": "exporter",
                "image": "python:3.11-slim",
                "command": ["python", "/app/vllm_exporter.py"],
            },
            UNKNOWN,
        ),
        (
            {
                "name": "tgi",
                "image": "registry.local/mirror/tgi:2.4.1",
                "env": [{"name": "MODEL_ID", "value": "m"}],
            },
            TGI,
        ),
        (
            {
                "name": "s",
                "image": "registry.local/llm:1",
                "command": ["python3", "-m", "sglang.launch_server"],
            },
            SGLANG,
        ),
    ],
)
def test_detect_engine(container: dict[str, Any], engine: str) -> None:
    assert detect_engine(container) == engine


def test_engine_containers_skips_sidecars() -> None:
    spec = {"containers": [{"name": "envoy", "image": "envoyproxy/envoy:v1.31.0"}, vllm_latest()]}
    assert [c["name"] for c in engine_containers(spec)] == ["vllm"]


# --- vLLM ------------------------------------------------------------------------------------


def test_vllm_unpinned_container_reports_defaults_and_their_sources() -> None:
    config = parse_engine_config(vllm_latest(), gpu_class="A10G")
    assert config.engine == VLLM
    assert config.model == "meta-llama/Llama-3.1-8B-Instruct"
    assert config.served_model_name == "llama-3.1-8b"
    assert (config.revision, config.dtype, config.max_model_len, config.max_num_seqs) == (None,) * 4
    assert config.effective["dtype"] == ("auto", "default: follows the checkpoint")
    assert config.effective["max_num_seqs"] == (256, "vLLM default for this GPU class (<70 GiB)")
    assert config.effective["max_num_batched_tokens"][0] == 2048
    assert "unpinned" in config.effective["revision"][1]
    assert config.configured == {"model", "served_model_name"}


@pytest.mark.parametrize(
    ("memory", "gpu_class", "seqs", "batched"),
    [
        (81559, None, 1024, 8192),  # an H100 by memory alone
        (None, "H100-80GB", 1024, 8192),
        (None, "H200-141GB", 1024, 8192),
        (81920, "A100-80GB", 256, 2048),  # >= 70 GiB but an A100: vLLM keeps the small default
        (23028, "A10G", 256, 2048),
        (46068, "L40S", 256, 2048),
    ],
)
def test_vllm_default_concurrency_follows_the_gpu(
    memory: int | None, gpu_class: str | None, seqs: int, batched: int
) -> None:
    config = parse_engine_config(vllm_latest(), gpu_memory_mib=memory, gpu_class=gpu_class)
    assert config.effective["max_num_seqs"][0] == seqs
    assert config.effective["max_num_batched_tokens"][0] == batched


def test_vllm_default_concurrency_unknown_without_gpu_says_why() -> None:
    value, source = parse_engine_config(vllm_latest()).effective["max_num_seqs"]
    assert value is None
    assert "70 GiB" in source and "A100" in source


def test_vllm_explicit_flags_win_over_gpu_defaults() -> None:
    config = parse_engine_config(vllm_pinned(), gpu_class="H100-80GB")
    assert config.revision == SHA
    assert config.dtype == "bfloat16"
    assert config.max_model_len == 8192
    assert config.max_num_seqs == 256
    assert config.effective["max_num_seqs"] == (256, "--max-num-seqs")
    assert {"revision", "dtype", "max_model_len", "max_num_seqs"} <= config.configured


def test_vllm_serve_positional_model_equals_form_and_underscores() -> None:
    container = {
        "name": "vllm",
        "image": "vllm/vllm-openai:v0.9.1",
        "command": ["vllm", "serve"],
        "args": [
            "Qwen/Qwen2.5-7B-Instruct",
            "--trust-remote-code",
            "--dtype=half",
            "--max_model_len",
            "32k",
            "--max-num-seqs",
            "64",
            "--max-num-seqs",
            "48",  # argparse: the last one wins
        ],
    }
    config = parse_engine_config(container)
    assert config.model == "Qwen/Qwen2.5-7B-Instruct"
    assert config.dtype == "half"
    assert config.max_model_len == 32000
    assert config.max_num_seqs == 48


def test_vllm_entrypoint_serve_image_args_start_with_the_model() -> None:
    container = {
        "name": "v",
        "image": "vllm/vllm-openai:v0.10.0",
        "args": ["org/model", "--dtype", "bfloat16"],
    }
    assert parse_engine_config(container).model == "org/model"


def test_vllm_max_output_tokens_from_generation_config_override() -> None:
    container = vllm_pinned()
    container["args"] += [
        "--override-generation-config",
        '{"temperature": 0.6, "max_new_tokens": 1024}',
    ]
    config = parse_engine_config(container)
    assert config.max_output_tokens == 1024
    assert config.effective["max_output_tokens"] == (1024, "--override-generation-config")


def test_vllm_started_from_a_shell_script_is_read_but_not_editable() -> None:
    container = {
        "name": "vllm",
        "image": "vllm/vllm-openai:v0.8.5",
        "command": ["/bin/sh", "-c"],
        "args": [
            "pip install -q hf_transfer && exec vllm serve meta-llama/Llama-3.1-8B-Instruct \\\n"
            "  --dtype bfloat16 --max-model-len 8192"
        ],
    }
    config = parse_engine_config(container)
    assert (config.engine, config.model, config.dtype, config.max_model_len) == (
        VLLM,
        "meta-llama/Llama-3.1-8B-Instruct",
        "bfloat16",
        8192,
    )
    assert any("shell script" in note for note in config.notes)
    with pytest.raises(InvalidError, match="shell script"):
        set_option(container, VLLM, "dtype", "float16")


@pytest.mark.parametrize(
    ("text", "value"),
    [("8192", 8192), ("32k", 32000), ("32K", 32768), ("1M", 1048576), ("x", None)],
)
def test_parse_int_human_readable(text: str, value: int | None) -> None:
    assert parse_int(text) == value


# --- TGI and SGLang -------------------------------------------------------------------------


def test_tgi_configured_by_env() -> None:
    config = parse_engine_config(tgi_container())
    assert config.engine == TGI
    assert config.model == "mistralai/Mistral-7B-Instruct-v0.3"
    assert config.revision == "e0bc86c23ce5aae1db576c8cca6f06f1f73af2db"
    assert config.dtype == "bfloat16"
    assert config.max_model_len == 8192  # MAX_TOTAL_TOKENS: prompt + output
    assert config.max_num_seqs == 64
    assert config.max_output_tokens == 8192 - 4096
    assert config.effective["max_model_len"] == (8192, "env MAX_TOTAL_TOKENS")


def test_tgi_args_win_over_env_as_in_the_launcher() -> None:
    container = tgi_container()
    container["args"] = ["--max-total-tokens", "6144", "--dtype", "float16"]
    config = parse_engine_config(container)
    assert config.max_model_len == 6144
    assert config.dtype == "float16"
    assert config.effective["dtype"] == ("float16", "--dtype (overrides env DTYPE)")


def test_tgi_defaults_and_legacy_max_input_length() -> None:
    container = {
        "name": "tgi",
        "image": "ghcr.io/huggingface/text-generation-inference:1.4",
        "env": [
            {"name": "MODEL_ID", "value": "tiiuae/falcon-7b-instruct"},
            {"name": "MAX_INPUT_LENGTH", "value": "1024"},
        ],
    }
    config = parse_engine_config(container)
    assert config.effective["max_input_tokens"] == (1024, "env MAX_INPUT_LENGTH")
    assert config.effective["max_num_seqs"] == (128, "TGI default")
    assert config.effective["dtype"][0] == "auto"
    assert config.max_model_len is None and config.max_output_tokens is None


def test_tgi_setting_from_a_configmap_counts_as_set_but_unread() -> None:
    container = tgi_container()
    container["env"][2] = {
        "name": "DTYPE",
        "valueFrom": {"configMapKeyRef": {"name": "serving-config", "key": "dtype"}},
    }
    config = parse_engine_config(container)
    assert "dtype" in config.configured
    assert config.dtype == "<configMap serving-config/dtype>"
    assert any("serving-config/dtype" in note for note in config.notes)


def test_sglang_configured_by_args() -> None:
    config = parse_engine_config(sglang_container())
    assert config.engine == SGLANG
    assert config.model == "Qwen/Qwen2.5-7B-Instruct"
    assert config.revision == "a09a35458c702b33eeacc393d103063234e8bc28"
    assert config.max_model_len == 32768
    assert config.max_num_seqs == 128
    assert config.effective["dtype"] == ("auto", "default: follows the checkpoint")


def test_unknown_container_has_no_knobs() -> None:
    config = parse_engine_config({"name": "envoy", "image": "envoyproxy/envoy:v1.31.0"})
    assert config.engine == UNKNOWN
    assert config.effective == {} and config.configured == frozenset()


# --- edits ------------------------------------------------------------------------------------


def test_set_option_vllm_adds_flags_at_the_end_and_keeps_everything_else() -> None:
    original = vllm_latest()
    before = copy.deepcopy(original)
    pinned = set_option(original, VLLM, "revision", SHA.upper())
    pinned = set_option(pinned, VLLM, "dtype", "BFloat16")
    pinned = set_option(pinned, VLLM, "max_model_len", "8192")
    assert original == before  # never mutates its input
    assert pinned["args"] == [
        *before["args"],
        "--revision",
        SHA,
        "--dtype",
        "bfloat16",
        "--max-model-len",
        "8192",
    ]
    assert pinned["env"] == before["env"] and pinned["ports"] == before["ports"]
    config = parse_engine_config(pinned)
    assert (config.revision, config.dtype, config.max_model_len) == (SHA, "bfloat16", 8192)


def test_set_option_vllm_replaces_in_place_keeping_the_equals_form() -> None:
    container = vllm_pinned()
    container["args"][container["args"].index("--max-num-seqs")] = "--max-num-seqs=256"
    container["args"].remove("256")
    edited = set_option(container, VLLM, "max_num_seqs", "64")
    edited = set_option(edited, VLLM, "max_model_len", "4096")
    assert "--max-num-seqs=64" in edited["args"]
    position = container["args"].index("--max-model-len")
    assert edited["args"][position : position + 2] == ["--max-model-len", "4096"]
    assert len(edited["args"]) == len(container["args"])


def test_set_option_none_removes_flag_and_value() -> None:
    edited = set_option(vllm_pinned(), VLLM, "max_num_seqs", None)
    assert "--max-num-seqs" not in edited["args"] and "256" not in edited["args"]
    assert parse_engine_config(edited).max_num_seqs is None


def test_set_option_vllm_max_output_tokens_merges_generation_override() -> None:
    container = vllm_pinned()
    container["args"] += ["--override-generation-config", '{"temperature": 0.6}']
    edited = set_option(container, VLLM, "max_output_tokens", "512")
    override = json.loads(edited["args"][edited["args"].index("--override-generation-config") + 1])
    assert override == {"temperature": 0.6, "max_new_tokens": 512}
    assert parse_engine_config(edited).max_output_tokens == 512
    fresh = set_option(vllm_latest(), VLLM, "max_output_tokens", "512")
    assert fresh["args"][-2:] == ["--override-generation-config", '{"max_new_tokens": 512}']
    cleared = set_option(fresh, VLLM, "max_output_tokens", None)
    assert cleared["args"] == vllm_latest()["args"]
    broken = vllm_latest()
    broken["args"] += ["--override-generation-config", "{max_new_tokens: 512"]
    with pytest.raises(InvalidError, match="not a JSON object"):
        set_option(broken, VLLM, "max_output_tokens", "256")


def test_set_option_tgi_edits_env_in_place() -> None:
    container = tgi_container()
    edited = set_option(container, TGI, "max_num_seqs", "32")
    assert edited["env"][5] == {"name": "MAX_CONCURRENT_REQUESTS", "value": "32"}
    assert [e["name"] for e in edited["env"]] == [e["name"] for e in container["env"]]
    assert "args" not in edited


def test_set_option_tgi_max_output_tokens_sets_total_from_input() -> None:
    edited = set_option(tgi_container(), TGI, "max_output_tokens", "512")
    config = parse_engine_config(edited)
    assert config.max_model_len == 4096 + 512
    assert config.max_output_tokens == 512


def test_set_option_tgi_needs_max_input_tokens_for_an_output_cap() -> None:
    container = tgi_container()
    container["env"] = [e for e in container["env"] if e["name"] != "MAX_INPUT_TOKENS"]
    with pytest.raises(InvalidError, match="MAX_INPUT_TOKENS"):
        set_option(container, TGI, "max_output_tokens", "512")


def test_set_option_tgi_total_must_exceed_input() -> None:
    with pytest.raises(InvalidError, match="MAX_TOTAL_TOKENS > MAX_INPUT_TOKENS"):
        set_option(tgi_container(), TGI, "max_model_len", "2048")


def test_set_option_tgi_edits_the_flag_when_the_container_passes_one() -> None:
    container = tgi_container()
    container["args"] = ["--max-total-tokens", "8192", "--port", "80"]
    edited = set_option(container, TGI, "max_model_len", "6144")
    assert edited["args"] == ["--max-total-tokens", "6144", "--port", "80"]
    assert {"name": "MAX_TOTAL_TOKENS", "value": "6144"} in edited["env"]
    assert parse_engine_config(edited).max_model_len == 6144


def test_set_option_tgi_adds_missing_env_and_replaces_a_reference() -> None:
    container = tgi_container()
    container["env"][2] = {
        "name": "DTYPE",
        "valueFrom": {"configMapKeyRef": {"name": "c", "key": "d"}},
    }
    edited = set_option(container, TGI, "dtype", "float16")
    assert edited["env"][2] == {"name": "DTYPE", "value": "float16"}
    container["env"].pop(2)
    added = set_option(container, TGI, "dtype", "bfloat16")
    assert added["env"][-1] == {"name": "DTYPE", "value": "bfloat16"}


def test_set_option_sglang() -> None:
    edited = set_option(sglang_container(), SGLANG, "max_model_len", "8192")
    assert edited["args"][edited["args"].index("--context-length") + 1] == "8192"
    with pytest.raises(InvalidError, match="no server-side cap"):
        set_option(sglang_container(), SGLANG, "max_output_tokens", "512")


@pytest.mark.parametrize(
    ("engine", "option", "value", "match"),
    [
        (VLLM, "dtype", "auto", "auto follows the checkpoint"),
        (VLLM, "revision", "main", "branch"),
        (VLLM, "max_model_len", "0", "between"),
        (VLLM, "max_num_seqs", "lots", "whole number"),
        (VLLM, "tensor_parallel_size", "2", "unknown option"),
        (TGI, "dtype", "half", "does not accept"),
        (UNKNOWN, "dtype", "bfloat16", "cannot edit"),
    ],
)
def test_set_option_rejects_bad_input(engine: str, option: str, value: str, match: str) -> None:
    with pytest.raises(InvalidError, match=match):
        set_option(vllm_latest(), engine, option, value)


# --- validation -------------------------------------------------------------------------------


def test_validate_revision() -> None:
    assert validate_revision(f" {SHA.upper()} ") == SHA
    assert validate_revision("v1.0.2") == "v1.0.2"
    for bad in ("main", "master", "refs/heads/main", "refs/pr/12", "0e9e39f", "", "my branch"):
        with pytest.raises(InvalidError, match="commit sha"):
            validate_revision(bad)


def test_validate_dtype_per_engine() -> None:
    assert validate_dtype("BFloat16", VLLM) == "bfloat16"
    assert validate_dtype("half", SGLANG) == "half"
    assert validate_dtype("float16", TGI) == "float16"
    with pytest.raises(InvalidError, match="bfloat16"):
        validate_dtype("bf16", VLLM)
    with pytest.raises(InvalidError, match="float16, bfloat16"):
        validate_dtype("float32", TGI)


def test_validate_int_ranges() -> None:
    assert validate_int("max_model_len", "8_192") == 8192
    assert validate_int("max_num_seqs", 1) == 1
    with pytest.raises(InvalidError, match="max-num-seqs must be between 1 and 65536"):
        validate_int("max_num_seqs", "100000")
    with pytest.raises(InvalidError, match="whole number"):
        validate_int("max_output_tokens", "-5")


def test_domain_modules_stand_alone() -> None:
    """The engine room's domain logic imports neither the UI nor the simulator (the oracle)."""
    code = (
        "import sys, services.engines, services.drift, services.gpu, services.gitops, "
        "services.masking; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich') "
        "or m.startswith('services.simulator')))"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert result.stdout.strip() == "[]"
