"""The simulator's serving world: GPUs, engine flags, nvidia-smi, the fleet model, /metrics."""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest

from services.simulator import gpus
from services.simulator.backfill import render_history
from services.simulator.cluster import Cluster
from services.simulator.exposition import render_metrics
from services.simulator.fleet import CLIENT_TIMEOUT_S, Fleet, FleetTruth, ServingPod, TrafficSpec
from services.simulator.fleet_wiring import HISTORY_STEP_S
from services.simulator.gpus import GpuReadingInput
from services.simulator.nvidia_smi import run_nvidia_smi
from services.simulator.scenario import ScenarioError
from services.simulator.scenario import load as load_scenario
from services.simulator.serving import (
    NotAServingContainer,
    ServingConfig,
    parse_container,
    runtime_dtype,
    startup_failure,
    startup_log,
)
from tests.conftest import require_tool

LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"
SCENARIOS = Path(__file__).resolve().parents[2] / "services" / "simulator" / "scenarios"
NS = "inference"

# ---------------------------------------------------------------- helpers


def vllm(*args: str, image: str = "vllm/vllm-openai:v0.10.1.1") -> ServingConfig:
    return parse_container({"name": "vllm", "image": image, "args": list(args)})


def make_pods(
    deployment: str, config: ServingConfig, gpu: gpus.GpuClass, count: int, ready: bool = True
) -> list[ServingPod]:
    return [
        ServingPod(
            name=f"{deployment}-{i}",
            namespace=NS,
            deployment=deployment,
            node_name=f"{gpu.karpenter_name}-{deployment}-{i}",
            container_name="vllm",
            config=config,
            gpu=gpu,
            gpu_count=1,
            ready=ready,
            serving_since=0.0,
        )
        for i in range(count)
    ]


def run(
    fleet: Fleet,
    pods: Sequence[ServingPod],
    traffic: dict[tuple[str, str], TrafficSpec],
    start: float,
    end: float,
    dt: float = 5.0,
) -> None:
    t = start
    while t < end - 1e-9:
        t += dt
        fleet.advance(pods, traffic, t, dt)


Labels = dict[str, str]
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def parse_exposition(text: str) -> tuple[dict[str, str], dict[str, list[tuple[Labels, float]]]]:
    """A strict little text-format 0.0.4 reader: (type by family, samples by series name).

    Fails the test on a malformed line, a family split in two, a sample before its TYPE,
    or the same series twice.
    """
    types: dict[str, str] = {}
    samples: dict[str, list[tuple[Labels, float]]] = defaultdict(list)
    seen_series: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    current = None
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in types, f"family {name} appears twice"
            current = name
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == current and kind in ("counter", "gauge", "histogram"), line
            types[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match, f"malformed sample line: {line!r}"
        name, raw_labels, value = match.groups()
        labels: Labels = {}
        if raw_labels:
            consumed = "".join(m.group(0) for m in _LABEL.finditer(raw_labels))
            assert consumed == raw_labels, f"malformed labels: {raw_labels!r}"
            labels = {m.group(1): m.group(2) for m in _LABEL.finditer(raw_labels)}
        assert current is not None and current in types, f"sample before TYPE: {line!r}"
        family = name
        if types[current] == "histogram":
            family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert family == current, f"{name} inside family {current}"
        key = (name, tuple(sorted(labels.items())))
        assert key not in seen_series, f"duplicate series {line!r}"
        seen_series.add(key)
        samples[name].append((labels, float(value)))
    return types, samples


def total(
    samples: dict[str, list[tuple[Labels, float]]],
    name: str,
    where: Callable[[Labels], bool] = lambda labels: True,
) -> float:
    return sum(value for labels, value in samples.get(name, []) if where(labels))


def buckets(
    samples: dict[str, list[tuple[Labels, float]]], name: str, deployment: str
) -> dict[float, float]:
    """sum by (le) of one Deployment's pods' `name_bucket` series."""
    out: dict[float, float] = defaultdict(float)
    for labels, value in samples[f"{name}_bucket"]:
        if labels["pod"].startswith(f"{deployment}-"):
            out[float(labels["le"])] += value
    return dict(out)


def quantile_bucket(cumulative: dict[float, float], q: float) -> tuple[float, float]:
    """(lower, upper] bounds of the bucket the q-quantile falls in, from cumulative counts."""
    bounds = sorted(cumulative)
    rank = q * cumulative[float("inf")]
    lower = 0.0
    for bound in bounds:
        if cumulative[bound] >= rank:
            return lower, bound
        lower = bound
    raise AssertionError("no bucket")


# ---------------------------------------------------------------- GPU catalogue


def test_gpu_product_labels_resolve_to_their_nvml_names_and_memory() -> None:
    h100 = gpus.gpu_by_product("NVIDIA-H100-80GB-HBM3")
    assert (h100.nvml_name, h100.memory_mib, h100.family) == (
        "NVIDIA H100 80GB HBM3",
        81559,
        "hopper",
    )
    assert gpus.gpu_by_product("NVIDIA-A100-SXM4-80GB").memory_mib == 81920
    assert gpus.gpu_by_product("NVIDIA-A10G-SHARED") is gpus.A10G
    with pytest.raises(KeyError, match=r"unknown GPU product label 'NVIDIA-B300'.*NVIDIA-A10G"):
        gpus.gpu_by_product("NVIDIA-B300")


def test_node_labels_are_gfd_and_aws_style_by_default() -> None:
    labels = gpus.node_labels(gpus.A10G, 4)
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A10G"
    assert labels["nvidia.com/gpu.memory"] == "23028"
    assert labels["nvidia.com/gpu.count"] == "4"
    assert labels["nvidia.com/gpu.family"] == "ampere"
    assert labels["node.kubernetes.io/instance-type"] == "g5.12xlarge"
    assert labels["karpenter.k8s.aws/instance-gpu-name"] == "a10g"
    assert "cloud.google.com/gke-accelerator" not in labels
    gke = gpus.node_labels(gpus.H100, 8, gke=True)
    assert gke["cloud.google.com/gke-accelerator"] == "nvidia-h100-80gb"


# ---------------------------------------------------------------- nvidia-smi


def reading(gpu: gpus.GpuClass, index: int, used: int, util: int, power: float) -> GpuReadingInput:
    return GpuReadingInput(
        gpu=gpu,
        index=index,
        node_index=index,
        node_name="gpu-node-1",
        uuid=gpus.gpu_uuid("gpu-node-1", index),
        serial=gpus.gpu_serial("gpu-node-1", index),
        pci_bus_id=gpu.pci_bus_id(index),
        utilization_gpu=util,
        utilization_memory=20,
        memory_used_mib=used,
        temperature_c=61,
        power_draw_w=power,
        sm_clock_mhz=1980,
    )


TWO_H100 = [reading(gpus.H100, 0, 73833, 37, 312.45), reading(gpus.H100, 1, 0, 0, 71.8)]


def test_query_gpu_csv_prints_nvidia_smi_headers_units_and_separators() -> None:
    fields = (
        "name,memory.total,memory.used,memory.free,utilization.gpu,power.draw,clocks.sm,"
        "temperature.gpu,index"
    )
    code, out, err = run_nvidia_smi([f"--query-gpu={fields}", "--format=csv"], TWO_H100)
    assert (code, err) == (0, "")
    assert out == (
        "name, memory.total [MiB], memory.used [MiB], memory.free [MiB], utilization.gpu [%], "
        "power.draw [W], clocks.current.sm [MHz], temperature.gpu, index\n"
        "NVIDIA H100 80GB HBM3, 81559 MiB, 73833 MiB, 7164 MiB, 37 %, 312.45 W, 1980 MHz, 61, 0\n"
        "NVIDIA H100 80GB HBM3, 81559 MiB, 0 MiB, 80997 MiB, 0 %, 71.80 W, 1980 MHz, 61, 1\n"
    )


def test_query_gpu_noheader_nounits_matches_the_reference_example() -> None:
    a10g = [reading(gpus.A10G, 0, 100, 5, 60.0)]
    code, out, _ = run_nvidia_smi(
        ["--query-gpu=name,memory.total", "--format=csv,noheader,nounits"], a10g
    )
    assert (code, out) == (0, "NVIDIA A10G, 23028\n")
    code, out, _ = run_nvidia_smi(["--query-gpu=gpu_name,memory.total", "--format=csv"], a10g)
    assert out == "name, memory.total [MiB]\nNVIDIA A10G, 23028 MiB\n"


def test_query_gpu_identity_fields_and_id_selection() -> None:
    code, out, _ = run_nvidia_smi(
        [
            "-i",
            "1",
            "--query-gpu=index,uuid,pci.bus_id,compute_cap,driver_version,count",
            "--format=csv,noheader",
        ],
        TWO_H100,
    )
    index, uuid, bus, cap, driver, count = out.strip().split(", ")
    assert (code, index, bus, cap, count) == (0, "1", "00000000:64:00.0", "9.0", "2")
    assert re.fullmatch(r"GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", uuid)
    assert uuid == gpus.gpu_uuid("gpu-node-1", 1) != gpus.gpu_uuid("gpu-node-2", 1)
    assert re.fullmatch(r"\d+\.\d+\.\d+", driver)


def test_unknown_field_is_refused_with_nvidia_smis_message_and_no_rows() -> None:
    code, out, _ = run_nvidia_smi(["--query-gpu=name,cuda_version", "--format=csv"], TWO_H100)
    assert code == 2
    assert out == 'Field "cuda_version" is not a valid field to query.\n\n'


def test_bad_command_lines_exit_2_with_the_help_hint() -> None:
    code, out, _ = run_nvidia_smi(["--bogus"], TWO_H100)
    assert (code, out) == (
        2,
        "ERROR: Option --bogus is not recognized. Please run 'nvidia-smi -h' for help.\n",
    )
    code, out, _ = run_nvidia_smi(["--query-gpu=name"], TWO_H100)
    assert code == 2 and out.startswith('"--format=" switch is missing.')


def test_list_and_summary_table() -> None:
    code, out, _ = run_nvidia_smi(["-L"], TWO_H100)
    first = out.splitlines()[0]
    assert code == 0 and len(out.splitlines()) == 2
    assert first == f"GPU 0: NVIDIA H100 80GB HBM3 (UUID: {gpus.gpu_uuid('gpu-node-1', 0)})"
    code, out, _ = run_nvidia_smi([], TWO_H100, now=0.0)
    boxed = [line for line in out.splitlines() if line.startswith(("|", "+"))]
    assert code == 0 and {len(line) for line in boxed} == {91}
    assert "73833MiB /  81559MiB" in out and "312W /  700W" in out


# ---------------------------------------------------------------- engine configuration


def test_vllm_serve_args_in_both_flag_forms() -> None:
    config = vllm(
        "vllm", "serve", "Qwen/Qwen2.5-7B-Instruct", "--dtype=half", "--max-model-len", "16384",
        "--served-model-name", "qwen", "qwen-alias", "--revision=abc123",
        "--override-generation-config", '{"max_new_tokens": 512}', "--enforce-eager",
        "--tensor-parallel-size", "2", "--gpu-memory-utilization=0.85",
    )  # fmt: skip
    assert (config.engine, config.model, config.served_model_name) == (
        "vllm",
        "Qwen/Qwen2.5-7B-Instruct",
        "qwen",
    )
    assert (config.dtype, config.effective_dtype, config.revision) == ("half", "float16", "abc123")
    assert (config.max_model_len, config.max_new_tokens, config.tensor_parallel_size) == (
        16384,
        512,
        2,
    )
    assert config.gpu_memory_utilization == 0.85
    assert config.engine_version == "0.10.1.1"


def test_vllm_model_flag_env_expansion_and_shell_scripts() -> None:
    api = parse_container(
        {
            "image": "registry.example/llm:1",
            "command": ["python3", "-m", "vllm.entrypoints.openai.api_server"],
            "args": ["--model", "$(MODEL)", "--dtype", "float"],
            "env": [{"name": "MODEL", "value": LLAMA_8B}, {"name": "HF_TOKEN", "valueFrom": {}}],
        }
    )
    assert (api.engine, api.model, api.effective_dtype) == ("vllm", LLAMA_8B, "float32")
    script = parse_container(
        {
            "image": "vllm/vllm-openai:v0.9.2",
            "command": ["/bin/sh", "-c", f"exec vllm serve {LLAMA_8B} --max_model_len 32k"],
        }
    )
    assert (script.model, script.max_model_len, script.engine_version) == (LLAMA_8B, 32000, "0.9.2")


def test_vllm_defaults_depend_on_the_gpu_class() -> None:
    config = vllm("--model", LLAMA_8B)
    assert (config.dtype, config.effective_dtype, config.max_model_len) == (None, "bfloat16", None)
    assert (config.effective_max_model_len, config.effective_max_new_tokens) == (32768, 4096)
    assert config.served_model_name == LLAMA_8B
    assert config.effective_max_num_seqs(gpus.H100) == 1024
    assert config.effective_max_num_seqs(gpus.A100_80GB) == 256
    assert config.effective_max_num_seqs(gpus.A10G) == 256
    assert vllm("--model", LLAMA_8B, "--max-num-seqs", "64").effective_max_num_seqs(gpus.H100) == 64


def test_tgi_reads_env_and_lets_args_win() -> None:
    container = {
        "image": "ghcr.io/huggingface/text-generation-inference:2.4.1",
        "args": ["--max-concurrent-requests", "32"],
        "env": [
            {"name": "MODEL_ID", "value": "mistralai/Mistral-7B-Instruct-v0.3"},
            {"name": "REVISION", "value": "rev-1"},
            {"name": "DTYPE", "value": "float16"},
            {"name": "MAX_INPUT_TOKENS", "value": "3072"},
            {"name": "MAX_TOTAL_TOKENS", "value": "4096"},
            {"name": "MAX_CONCURRENT_REQUESTS", "value": "64"},
        ],
    }
    config = parse_container(container)
    assert (config.engine, config.model, config.revision) == (
        "tgi",
        "mistralai/Mistral-7B-Instruct-v0.3",
        "rev-1",
    )
    assert (config.effective_dtype, config.max_model_len, config.max_new_tokens) == (
        "float16",
        4096,
        1024,
    )
    assert config.effective_max_num_seqs(gpus.H100) == 32
    bare = parse_container(
        {
            "image": "ghcr.io/huggingface/text-generation-inference:3.3.4",
            "args": ["--model-id", LLAMA_8B],
        }
    )
    assert bare.effective_max_num_seqs(gpus.A10G) == 128 and bare.dtype is None


def test_sglang_args_and_metrics_switch() -> None:
    args = [
        "--model-path",
        LLAMA_8B,
        "--revision",
        "r1",
        "--dtype",
        "bfloat16",
        "--context-length",
        "65536",
    ]
    config = parse_container(
        {
            "image": "lmsysorg/sglang:v0.4.9.post2-cu126",
            "command": ["python3", "-m", "sglang.launch_server"],
            "args": args,
        }
    )
    assert (config.engine, config.model, config.revision, config.max_model_len) == (
        "sglang",
        LLAMA_8B,
        "r1",
        65536,
    )
    assert config.effective_max_num_seqs(gpus.H100) == 256 and not config.metrics_enabled
    capped = parse_container(
        {
            "image": "lmsysorg/sglang:latest",
            "args": [*args, "--max-running-requests", "48", "--enable-metrics"],
        }
    )
    assert capped.effective_max_num_seqs(gpus.H100) == 48 and capped.metrics_enabled


def test_a_container_without_an_engine_is_refused() -> None:
    with pytest.raises(NotAServingContainer):
        parse_container(
            {"name": "proxy", "image": "envoyproxy/envoy:v1.31", "args": ["-c", "/etc/envoy.yaml"]}
        )


# ---------------------------------------------------------------- start-up


def test_oversize_max_model_len_fails_on_a10g_but_starts_on_h100() -> None:
    config = vllm("--model", LLAMA_8B, "--max-model-len", "131072")
    failure = startup_failure(config, gpus.A10G, 1)
    assert failure is not None
    assert failure.startswith(
        "ValueError: To serve at least one request with the models's max seq len (131072)"
    )
    assert "decreasing `max_model_len`" in failure
    assert startup_failure(config, gpus.H100, 1) is None
    old = vllm("--model", LLAMA_8B, "--max-model-len", "131072", image="vllm/vllm-openai:v0.6.3")
    assert (startup_failure(old, gpus.A10G, 1) or "").startswith(
        "ValueError: The model's max seq len (131072) is larger than the maximum number of tokens "
        "that can be stored in KV cache ("
    )
    beyond = vllm("--model", LLAMA_8B, "--max-model-len", "262144")
    assert "greater than the derived max_model_len" in (startup_failure(beyond, gpus.H100, 1) or "")


def test_dtype_and_size_failures() -> None:
    fp32 = vllm("--model", LLAMA_8B, "--dtype", "float32")
    assert (startup_failure(fp32, gpus.A10G, 1) or "").startswith(
        "torch.OutOfMemoryError: CUDA out of memory."
    )
    assert startup_failure(fp32, gpus.H100, 1) is None
    seventy = vllm("--model", "meta-llama/Llama-3.3-70B-Instruct")
    assert startup_failure(seventy, gpus.H100, 1) is not None
    assert (
        startup_failure(
            vllm("--model", "meta-llama/Llama-3.3-70B-Instruct", "-tp", "2"), gpus.H100, 2
        )
        is None
    )
    small = "meta-llama/Llama-3.2-3B-Instruct"
    assert "Bfloat16 is only supported" in (
        startup_failure(vllm("--model", small, "--dtype", "bfloat16"), gpus.T4, 1) or ""
    )
    assert startup_failure(vllm("--model", small), gpus.T4, 1) is None
    assert runtime_dtype(vllm("--model", small), gpus.T4) == "float16"
    tgi = parse_container(
        {
            "image": "ghcr.io/huggingface/text-generation-inference:3.3.4",
            "env": [{"name": "DTYPE", "value": "float32"}],
        }
    )
    assert (
        startup_failure(tgi, gpus.H100, 1) == "error: invalid value 'float32' for '--dtype <DTYPE>'"
    )


def test_startup_logs_say_what_the_engine_runs_and_end_with_the_error() -> None:
    lines = startup_log(vllm("--model", LLAMA_8B, "--max-model-len", "8192"), gpus.H100)
    text = "\n".join(lines)
    assert "vLLM API server version 0.10.1.1" in text
    assert f"Initializing a V1 LLM engine (v0.10.1.1) with config: model='{LLAMA_8B}'" in text
    assert "dtype=torch.bfloat16, max_seq_len=8192" in text
    assert lines[-1] == "INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)"
    failing = vllm("--model", LLAMA_8B, "--max-model-len", "131072")
    failed = startup_log(failing, gpus.A10G)
    assert startup_failure(failing, gpus.A10G, 1) in "\n".join(failed)
    assert not any("Uvicorn running" in line for line in failed)
    tgi = parse_container(
        {
            "image": "ghcr.io/huggingface/text-generation-inference:3.3.4",
            "args": ["--model-id", LLAMA_8B],
        }
    )
    assert "text_generation_router::server" in startup_log(tgi, gpus.H100)[-1]
    sgl = parse_container({"image": "lmsysorg/sglang:v0.4.9", "args": ["--model-path", LLAMA_8B]})
    assert startup_log(sgl, gpus.H100)[-1].endswith("The server is fired up and ready to roll!")


# ---------------------------------------------------------------- fleet model


def test_h100_pods_beat_a10g_pods_on_p99_and_tokens_per_second() -> None:
    config = vllm("--model", LLAMA_8B, "--max-model-len", "8192")
    pods = make_pods("on-h100", config, gpus.H100, 2) + make_pods("on-a10g", config, gpus.A10G, 2)
    load = TrafficSpec(requests_per_second=6.0, long_context_share=0.0)
    fleet = Fleet(seed=7)
    run(fleet, pods, {(NS, "on-h100"): load, (NS, "on-a10g"): load}, 0, 600)
    h100 = fleet.ground_truth(NS, "on-h100", 300)
    a10g = fleet.ground_truth(NS, "on-a10g", 300)
    assert h100.p99_e2e_s is not None and a10g.p99_e2e_s is not None
    assert h100.p99_e2e_s * 3 < a10g.p99_e2e_s
    assert h100.tokens_per_s > 1.5 * a10g.tokens_per_s
    assert h100.request_rate == pytest.approx(6.0, rel=0.15)


def test_float32_is_slower_than_bfloat16_and_half_is_like_bfloat16() -> None:
    fleet = Fleet(seed=3)
    traffic = {}
    pods: list[ServingPod] = []
    for name, dtype in (("bf16", "bfloat16"), ("fp16", "half"), ("fp32", "float32")):
        pods += make_pods(
            name,
            vllm("--model", LLAMA_8B, "--dtype", dtype, "--max-model-len", "8192"),
            gpus.H100,
            2,
        )
        traffic[(NS, name)] = TrafficSpec(requests_per_second=2.0, long_context_share=0.0)
    run(fleet, pods, traffic, 0, 300)
    p50 = {
        name: fleet.ground_truth(NS, name, 300).p50_e2e_s or 0.0
        for name in ("bf16", "fp16", "fp32")
    }
    assert p50["fp32"] > 1.5 * p50["bf16"]
    assert p50["fp16"] == pytest.approx(p50["bf16"], rel=0.2)


def test_long_context_burst_raises_p99() -> None:
    config = vllm("--model", LLAMA_8B)
    pods = make_pods("llm", config, gpus.H100, 2)
    traffic = {
        (NS, "llm"): TrafficSpec(
            requests_per_second=8.0,
            long_context_share=0.02,
            burst_start=600.0,
            burst_long_context_share=0.3,
        )
    }
    fleet = Fleet(seed=11)
    run(fleet, pods, traffic, 0, 600)
    calm = fleet.ground_truth(NS, "llm", 300)
    run(fleet, pods, traffic, 600, 900)
    burst = fleet.ground_truth(NS, "llm", 300)
    assert calm.p99_e2e_s is not None and burst.p99_e2e_s is not None
    assert burst.p99_e2e_s > 1.5 * calm.p99_e2e_s
    assert burst.p99_ttft_s is not None and calm.p99_ttft_s is not None
    assert burst.p99_ttft_s > calm.p99_ttft_s


def test_long_prompts_beyond_max_model_len_are_refused_not_served() -> None:
    pinned = make_pods("pinned", vllm("--model", LLAMA_8B, "--max-model-len", "8192"), gpus.H100, 1)
    fleet = Fleet(seed=5)
    run(fleet, pinned, {(NS, "pinned"): TrafficSpec(4.0, long_context_share=0.5)}, 0, 300)
    truth = fleet.ground_truth(NS, "pinned", 300)
    assert truth.refused > 0.3 * (truth.requests + truth.refused)
    metrics = fleet.pod_metrics(NS, "pinned-0")
    assert metrics is not None and metrics.failed.get("validation", 0) == truth.refused


def test_ground_truth_matches_the_exposed_histograms_exactly() -> None:
    config = vllm("--model", LLAMA_8B, "--served-model-name", "llama-3.1-8b")
    pods = make_pods("llm", config, gpus.H100, 3) + make_pods("other", config, gpus.A10G, 1)
    traffic = {(NS, "llm"): TrafficSpec(9.0, 0.05), (NS, "other"): TrafficSpec(0.5, 0.0)}
    fleet = Fleet(seed=1)
    run(fleet, pods, traffic, 0, 300)
    _, before = parse_exposition(render_metrics(fleet, pods))
    run(fleet, pods, traffic, 300, 600)
    _, after = parse_exposition(render_metrics(fleet, pods))
    truth = fleet.ground_truth(NS, "llm", 300)

    def ours(labels: Labels) -> bool:
        return labels["pod"].startswith("llm-")

    def grew(name: str, where: Callable[[Labels], bool] = ours) -> float:
        return total(after, name, where) - total(before, name, where)

    assert truth.requests > 1000
    assert grew("vllm:e2e_request_latency_seconds_count") == truth.requests
    assert (
        grew("vllm:request_success_total", lambda lb: ours(lb) and lb["finished_reason"] != "abort")
        == truth.requests
    )
    assert grew("vllm:generation_tokens_total") == truth.generation_tokens
    assert grew("vllm:prompt_tokens_total") == pytest.approx(truth.prompt_tokens_per_s * 300)
    e2e_before = buckets(before, "vllm:e2e_request_latency_seconds", "llm")
    e2e_after = buckets(after, "vllm:e2e_request_latency_seconds", "llm")
    increase = {le: e2e_after[le] - e2e_before[le] for le in e2e_after}
    for q, truth_value in ((0.95, truth.p95_e2e_s), (0.99, truth.p99_e2e_s)):
        lower, upper = quantile_bucket(increase, q)
        assert truth_value is not None and lower < truth_value <= upper
    assert all(label["model_name"] == "llama-3.1-8b" and label["engine"] == "0"
               for label, _ in after["vllm:num_requests_running"])  # fmt: skip


def test_exposition_is_valid_text_format_for_every_engine_and_dcgm() -> None:
    env = [{"name": "MODEL_ID", "value": LLAMA_8B}, {"name": "MAX_TOTAL_TOKENS", "value": "8192"}]
    tgi = parse_container(
        {"image": "ghcr.io/huggingface/text-generation-inference:3.3.4", "env": env}
    )
    sgl = parse_container(
        {"image": "lmsysorg/sglang:v0.4.9", "args": ["--model-path", LLAMA_8B, "--enable-metrics"]}
    )
    pods = (
        make_pods(
            "v", vllm("--model", LLAMA_8B, "--served-model-name", 'odd "name"\\'), gpus.H100, 2
        )
        + make_pods("old", vllm("--model", LLAMA_8B, image="vllm/vllm-openai:v0.8.5"), gpus.H100, 1)
        + make_pods("t", tgi, gpus.L40S, 2)
        + make_pods("s", sgl, gpus.A100_80GB, 1)
        + make_pods("down", vllm("--model", LLAMA_8B), gpus.A10G, 1, ready=False)
    )
    fleet = Fleet(seed=2)
    traffic = {(NS, d): TrafficSpec(2.0, 0.02) for d in ("v", "old", "t", "s", "down")}
    run(fleet, pods, traffic, 0, 120)
    page = render_metrics(fleet, pods)
    types, samples = parse_exposition(page)
    assert page == render_metrics(fleet, pods)
    for name, kind in types.items():
        if kind != "histogram":
            continue
        for labels, count in samples[f"{name}_count"]:
            series = [
                (float(lb["le"]), v)
                for lb, v in samples[f"{name}_bucket"]
                if {k: x for k, x in lb.items() if k != "le"} == labels
            ]
            values = [v for _, v in sorted(series)]
            assert values == sorted(values) and values[-1] == count, name
    assert types["vllm:e2e_request_latency_seconds"] == "histogram"
    assert types["vllm:generation_tokens_total"] == "counter"
    assert "vllm:gpu_cache_usage_perc" in types and "vllm:time_per_output_token_seconds" in types
    assert "vllm:kv_cache_usage_perc" in types and "vllm:inter_token_latency_seconds" in types
    assert {lb["model_name"] for lb, _ in samples["vllm:num_requests_running"]} >= {
        'odd \\"name\\"\\\\'
    }
    assert (
        'tgi_request_duration_bucket{namespace="inference",pod="t-0",le="0.00015000000000000001"}'
        in page
    )
    tgi_tokens = sum(
        m.generation_tokens for m in (fleet.pod_metrics(NS, f"t-{i}") for i in range(2)) if m
    )
    assert total(samples, "tgi_request_generated_tokens_sum") == tgi_tokens > 0
    assert types["tgi_request_duration"] == "histogram" and types["tgi_queue_size"] == "gauge"
    assert (
        types["sglang:e2e_request_latency_seconds"] == "histogram" and "sglang:token_usage" in types
    )
    assert not any(lb["pod"] == "down-0" for lb, _ in samples["vllm:num_requests_running"])
    e2e_les = {
        lb["le"]
        for lb, _ in samples["vllm:e2e_request_latency_seconds_bucket"]
        if lb["pod"] == "v-0"
    }
    assert {"0.3", "60.0", "7680.0", "+Inf"} <= e2e_les
    down = [(lb, v) for lb, v in samples["DCGM_FI_DEV_FB_USED"] if lb["pod"] == "down-0"]
    assert len(down) == 1 and down[0][1] == 0 and down[0][0]["modelName"] == "NVIDIA A10G"
    dcgm = samples["DCGM_FI_DEV_GPU_UTIL"]
    assert len(dcgm) == len(pods)
    assert set(dcgm[0][0]) >= {
        "gpu",
        "UUID",
        "device",
        "modelName",
        "Hostname",
        "pod",
        "namespace",
        "container",
    }


def test_promtool_parses_the_exposition() -> None:
    promtool = require_tool("promtool")
    pods = make_pods("v", vllm("--model", LLAMA_8B), gpus.H100, 2)
    fleet = Fleet(seed=4)
    run(fleet, pods, {(NS, "v"): TrafficSpec(3.0)}, 0, 60)
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=render_metrics(fleet, pods),
        capture_output=True,
        text=True,
        check=False,
    )
    report = done.stdout + done.stderr
    # Exit 3 is lint advice (colons in names, camelCase DCGM labels): the real exporters get it too.
    assert done.returncode in (0, 3), report
    assert "parsing error" not in report and "error while linting" not in report


def test_gpu_readings_agree_between_nvidia_smi_dcgm_and_ground_truth() -> None:
    config = vllm("--model", LLAMA_8B)
    pods = make_pods("llm", config, gpus.H100, 1) + make_pods("small", config, gpus.A10G, 1)
    fleet = Fleet(seed=9)
    run(fleet, pods, {(NS, "llm"): TrafficSpec(4.0), (NS, "small"): TrafficSpec(0.5)}, 0, 120)
    readings = fleet.gpu_readings(pods[0])
    code, out, _ = run_nvidia_smi(
        ["--query-gpu=memory.used,utilization.gpu", "--format=csv,noheader,nounits"], readings
    )
    assert code == 0
    used, util = (int(x) for x in out.strip().split(", "))
    _, samples = parse_exposition(render_metrics(fleet, pods))
    assert total(samples, "DCGM_FI_DEV_FB_USED", lambda lb: lb["pod"] == "llm-0") == used
    assert total(samples, "DCGM_FI_DEV_GPU_UTIL", lambda lb: lb["pod"] == "llm-0") == util
    assert 0.85 * 81559 < used < 81559 and 0 < util <= 100
    truth = fleet.ground_truth(NS, "llm", 60)
    assert truth.fb_used_mib_by_model == {"NVIDIA H100 80GB HBM3": used}
    assert 0 < truth.gpu_util_by_model["NVIDIA H100 80GB HBM3"] <= 100
    assert fleet.gpu_readings(pods[1])[0].memory_used_mib < 23028


def test_restarted_engine_starts_counting_from_zero_and_same_seed_same_story() -> None:
    config = vllm("--model", LLAMA_8B)
    pods = make_pods("llm", config, gpus.H100, 1)
    traffic = {(NS, "llm"): TrafficSpec(3.0)}
    first, second = Fleet(seed=21), Fleet(seed=21)
    run(first, pods, traffic, 0, 200)
    run(second, pods, traffic, 0, 200)
    assert render_metrics(first, pods) == render_metrics(second, pods)
    served = first.pod_metrics(NS, "llm-0")
    assert served is not None and served.requests > 300
    restarted = [replace(pods[0], serving_since=200.0)]
    run(first, restarted, traffic, 200, 230)
    after = first.pod_metrics(NS, "llm-0")
    assert after is not None and 0 < after.requests < 150


# ---------------------------------------------------------------- client timeout, healthy fleet

SKEWED_CONFIG = ("--model", LLAMA_8B, "--served-model-name", "llama-3.1-8b")  # no pins


@pytest.mark.parametrize("timeout_s", [CLIENT_TIMEOUT_S, 120.0])
def test_overloaded_pods_abort_at_the_client_timeout_instead_of_queueing_for_minutes(
    timeout_s: float,
) -> None:
    """The skew's story: unpinned pods on A10G take the same share as pods on H100, fall
    behind, and their clients give up at the timeout. p95 rises a few to a few tens of times,
    never past the timeout, and the aborted requests are counted where vLLM counts them."""
    config = vllm(*SKEWED_CONFIG)
    pods = make_pods("good", config, gpus.H100, 2) + make_pods("skewed", config, gpus.A10G, 2)
    load = TrafficSpec(6.0, long_context_share=0.04, client_timeout_s=timeout_s)
    traffic = {(NS, "good"): load, (NS, "skewed"): load}
    fleet = Fleet(seed=8)
    run(fleet, pods, traffic, 0, 600)
    _, before = parse_exposition(render_metrics(fleet, pods))
    run(fleet, pods, traffic, 600, 1200)
    _, after = parse_exposition(render_metrics(fleet, pods))
    good = fleet.ground_truth(NS, "good", 600)
    skewed = fleet.ground_truth(NS, "skewed", 600)
    assert good.p95_e2e_s is not None and skewed.p95_e2e_s is not None
    assert good.timed_out == 0 and good.p95_e2e_s < 10.0
    assert 3 * good.p95_e2e_s < skewed.p95_e2e_s <= timeout_s
    assert skewed.p95_e2e_s > timeout_s / 2  # the backlog fills up to what clients tolerate
    assert skewed.timed_out > 0.2 * (skewed.requests + skewed.refused)

    def aborted(labels: Labels) -> bool:
        return labels["pod"].startswith("skewed-") and labels["finished_reason"] == "abort"

    grew = total(after, "vllm:request_success_total", aborted) - total(
        before, "vllm:request_success_total", aborted
    )
    assert grew == skewed.timed_out
    # Not one latency past the timeout reaches the histogram, so no 800 s p95 either.
    e2e = buckets(after, "vllm:e2e_request_latency_seconds", "skewed")
    within = max(le for le in e2e if le <= timeout_s)
    assert e2e[within] == e2e[float("inf")] > 0
    waiting = total(after, "vllm:num_requests_waiting", lambda lb: lb["pod"] == "skewed-0")
    assert waiting < 3.0 * timeout_s  # the queue holds what clients wait for, not hours of it


def test_scenario_traffic_declares_the_client_timeout(tmp_path: Path) -> None:
    assert [t.client_timeout_s for t in load_scenario("skew-incident").traffic] == [60.0]
    text = (SCENARIOS / "healthy.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("rps: 12", "rps: 12\n  client_timeout_s: 0"))
    with pytest.raises(ScenarioError, match="client_timeout_s must be a positive number"):
        load_scenario(str(bad))


def _history_counters(text: str, start: float, end: float) -> dict[str, float]:
    """Increase over (start, end] of each series in backfill OpenMetrics text, by series."""
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, value, stamp = line.rsplit(" ", 2)
        at = float(stamp)
        if at <= start:
            first[head] = float(value)
        elif at <= end:
            last[head] = float(value)
    return {head: value - first.get(head, 0.0) for head, value in last.items()}


def test_healthy_fleet_stays_healthy_and_matches_its_baseline_history() -> None:
    """`healthy` runs for 30 simulated minutes with nothing to find: no request times out,
    every pod stays ready, each ten-minute window looks like the next, and the day-old
    history the demo uses as its baseline tells the same story within the histogram's
    resolution."""
    cluster = Cluster(load_scenario("healthy"), speed=1.0, seed=0)
    cluster.setup()
    windows: list[FleetTruth] = []
    for _ in range(3):
        for _ in range(120):
            cluster.clock.advance(5.0)
            cluster.tick()
        windows.append(cluster.fleet.fleet.ground_truth(NS, "llm-serve", 600))
    tokens = [w.tokens_per_s for w in windows]
    p95 = [w.p95_e2e_s or 0.0 for w in windows]
    assert all(w.timed_out == 0 and w.ready_pods == 4 for w in windows)
    assert max(tokens) < 1.1 * min(tokens) and max(p95) < 1.2 * min(p95)
    assert max(p95) < 10.0  # far from the client timeout

    now = cluster.clock.time()
    history = render_history("healthy", start=now - 1200, end=now, step_s=15.0)
    grew = _history_counters(history.text, now - 600, now)
    baseline_tokens = sum(v for k, v in grew.items() if k.startswith("vllm:generation_tokens"))
    assert baseline_tokens / 600 == pytest.approx(tokens[-1], rel=0.1)
    e2e: dict[float, float] = defaultdict(float)
    for head, value in grew.items():
        if head.startswith("vllm:e2e_request_latency_seconds_bucket"):
            e2e[float(re.search(r'le="([^"]+)"', head).group(1))] += value  # type: ignore[union-attr]
    # Prometheus' histogram_quantile: linear inside the bucket the rank falls in. The true p95
    # sits near the 5 s bound here, so this is as close as the buckets allow.
    lower, upper = quantile_bucket(e2e, 0.95)
    below = max((e2e[le] for le in e2e if le <= lower), default=0.0)
    share = (0.95 * e2e[float("inf")] - below) / (e2e[upper] - below)
    assert lower + (upper - lower) * share == pytest.approx(p95[-1], rel=0.1)
    aborts = sum(v for k, v in grew.items() if 'finished_reason="abort"' in k)
    assert aborts == 0


def test_scenario_starts_with_the_history_a_prometheus_scraping_all_along_would_hold() -> None:
    """skew-incident declares 15 minutes of history: the fleet has served them when the
    cluster starts, sampled every 5 s up to now, and the live page carries on from the last
    sample (same series, same counters): a reader sees the incident at once, aborts
    included."""
    cluster = Cluster(load_scenario("skew-incident"), speed=1.0, seed=0)
    cluster.setup()
    now = cluster.clock.time()
    history: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for line in cluster.fleet.history_text.splitlines():
        if line.startswith("#"):
            continue
        head, value, stamp = line.rsplit(" ", 2)
        history[head].append((float(stamp), float(value)))
    stamps = sorted({t for points in history.values() for t, _ in points})
    assert stamps[0] == pytest.approx(now - 900 + HISTORY_STEP_S)
    assert stamps[-1] == pytest.approx(now)
    assert all(b - a == pytest.approx(HISTORY_STEP_S) for a, b in pairwise(stamps))
    live = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in cluster.metrics_text().splitlines()
        if line and not line.startswith("#")
    }
    assert set(live) == set(history)
    assert all(history[head][-1][1] == value for head, value in live.items())
    aborts = [
        points[-1][1] - points[0][1]
        for head, points in history.items()
        if head.startswith("vllm:request_success_total") and 'finished_reason="abort"' in head
    ]
    assert sum(aborts) > 0
    truth = cluster.fleet.fleet.ground_truth(NS, "llm-serve", 600)
    assert truth.window_s == pytest.approx(600) and truth.timed_out > 0
    assert load_scenario("large").metrics_history_s == 0
