"""What a serving engine writes to its container log while it starts (or fails to)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from services.simulator.engine_startup import MIB_PER_GIB, memory_plan, runtime_dtype, startup_stage
from services.simulator.gpus import GpuClass
from services.simulator.serving_config import SGLANG, TGI, VLLM, ServingConfig, version_tuple


class _Line(str):
    """A log line that knows when the engine wrote it: `dt` seconds after the start, unscaled."""

    dt: float


@dataclass(frozen=True)
class _Timeline:
    """Maps the engine's own start-up offsets onto the container's: `scale` stretches them
    so the last line lands when the kubelet sees the container ready (or crash)."""

    t0: float
    scale: float = 1.0

    def at(self, dt: float) -> float:
        return self.t0 + dt * self.scale

    def mark(self, dt: float, text: str) -> _Line:
        line = _Line(text)
        line.dt = dt
        return line


def _stamp(engine: str, t: float) -> str:
    tm = time.gmtime(t)
    if engine == VLLM:
        return time.strftime("%m-%d %H:%M:%S", tm)
    if engine == TGI:
        return time.strftime("%Y-%m-%dT%H:%M:%S", tm) + f".{round(t * 1e6) % 1_000_000:06d}Z"
    return time.strftime("%Y-%m-%d %H:%M:%S", tm)


def _vllm_log(
    config: ServingConfig, gpu: GpuClass, tl: _Timeline, stage: str | None, error: str | None
) -> list[str]:
    v1 = version_tuple(config.engine_version) >= (0, 8)
    dtype = runtime_dtype(config, gpu)
    max_len = config.effective_max_model_len
    port = config.port

    def info(dt: float, where: str, text: str) -> str:
        return tl.mark(dt, f"INFO {_stamp(VLLM, tl.at(dt))} [{where}] {text}")

    non_default: dict[str, object] = {"model": config.model}
    for key, value in (
        ("max_model_len", config.max_model_len),
        ("dtype", config.dtype),
        ("revision", config.revision),
        ("max_num_seqs", config.max_num_seqs),
        (
            "tensor_parallel_size",
            config.tensor_parallel_size if config.tensor_parallel_size > 1 else None,
        ),
    ):
        if value is not None:
            non_default[key] = value
    engine = "a V1 LLM engine" if v1 else "an LLM engine"
    settings = (
        f"Initializing {engine} (v{config.engine_version}) with config: model='{config.model}', "
        f"speculative_config=None, tokenizer='{config.model}', skip_tokenizer_init=False, "
        f"tokenizer_mode=auto, revision={config.revision}, "
        f"tokenizer_revision={config.tokenizer_revision}, trust_remote_code=False, "
        f"dtype=torch.{dtype}, max_seq_len={max_len}, download_dir=None, load_format=auto, "
        f"tensor_parallel_size={config.tensor_parallel_size}, pipeline_parallel_size=1, "
        f"quantization={config.quantization}, enforce_eager=False, "
        f"kv_cache_dtype={config.kv_cache_dtype or 'auto'}, device_config=cuda, seed=0, "
        f"served_model_name={config.served_model_name}, enable_prefix_caching={v1}"
    )
    lines = [
        info(0.0, "__init__.py:241", "Automatically detected platform cuda."),
        info(3.9, "api_server.py:1805", f"vLLM API server version {config.engine_version}"),
        info(3.9, "utils.py:326", f"non-default args: {non_default}"),
    ]
    failed_at = 4.2
    if stage != "args":
        lines += [
            info(11.6, "config.py:1750", f"Using max model len {max_len}"),
            info(12.1, "core.py:74" if v1 else "llm_engine.py:237", settings),
            info(13.0, "gpu_model_runner.py:1953", f"Starting to load model {config.model}..."),
        ]
        failed_at = 18.0
    if stage not in ("args", "load"):
        plan = memory_plan(config, gpu)
        weights = plan.weights_mib / config.tensor_parallel_size / MIB_PER_GIB
        lines.append(
            info(
                17.9,
                "gpu_model_runner.py:2007",
                f"Model loading took {weights:.4f} GiB and 4.87 seconds",
            )
        )
        if v1:
            lines.append(
                info(
                    24.3,
                    "gpu_worker.py:276",
                    f"Available KV cache memory: {plan.kv_mib / MIB_PER_GIB:.2f} GiB",
                )
            )
        else:
            blocks = max(0, plan.kv_tokens // 16)
            lines.append(
                info(24.3, "executor_base.py:111", f"# cuda blocks: {blocks}, # CPU blocks: 2048")
            )
        failed_at = 24.6
    if stage is None:
        if v1:
            lines += [
                info(
                    24.6, "kv_cache_utils.py:849", f"GPU KV cache size: {plan.kv_tokens:,} tokens"
                ),
                info(
                    24.6,
                    "kv_cache_utils.py:853",
                    f"Maximum concurrency for {max_len:,} tokens per request: "
                    f"{plan.kv_tokens / max_len:.2f}x",
                ),
                info(
                    31.2,
                    "core.py:214",
                    "init engine (profile, create kv cache, warmup model) took 18.07 seconds",
                ),
            ]
        lines += [
            info(32.0, "api_server.py:1880", f"Starting vLLM API server on http://0.0.0.0:{port}"),
            "INFO:     Started server process [1]",
            "INFO:     Waiting for application startup.",
            "INFO:     Application startup complete.",
            f"INFO:     Uvicorn running on http://0.0.0.0:{port} (Press CTRL+C to quit)",
        ]
    if error is not None and v1 and stage != "args":
        where = f"ERROR {_stamp(VLLM, tl.at(failed_at))} [core.py:700]"
        lines += [
            tl.mark(failed_at, f"{where} EngineCore failed to start."),
            f"{where} Traceback (most recent call last):",
            f"{where} {error}",
            "RuntimeError: Engine core initialization failed. See root cause above. "
            "Failed core proc(s): {}",
        ]
    elif error is not None:
        lines += ["Traceback (most recent call last):", error]
    return lines


def _tgi_log(
    config: ServingConfig, gpu: GpuClass, tl: _Timeline, stage: str | None, error: str | None
) -> list[str]:
    if stage == "args" and error is not None and error.startswith("error:"):
        return [
            error,
            "  [possible values: float16, bfloat16]",
            "",
            "For more information, try '--help'.",
        ]

    def info(dt: float, target: str, text: str) -> str:
        return tl.mark(dt, f"{_stamp(TGI, tl.at(dt))}  INFO {target}: {text}")

    dtype = {"float16": "Float16", "bfloat16": "BFloat16"}.get(config.dtype or "", "")
    shards = config.tensor_parallel_size if config.tensor_parallel_size > 1 else None
    args = (
        f'Args {{ model_id: "{config.model}", revision: {_some(config.revision)}, '
        f"sharded: None, num_shard: {_some(shards)}, "
        f"quantize: {_some(config.quantization)}, dtype: {f'Some({dtype})' if dtype else 'None'}, "
        f"max_concurrent_requests: {config.max_num_seqs or 128}, "
        f"max_input_tokens: {_some(config.max_input_tokens)}, "
        f"max_total_tokens: {_some(config.max_model_len)}, "
        f'hostname: "0.0.0.0", port: {config.port}, '
        f"cuda_memory_fraction: {config.gpu_memory_utilization}, "
        "json_output: false }"
    )
    lines = [info(0.0, "text_generation_launcher", args)]
    if stage != "args":
        lines += [
            info(
                0.4,
                "download: text_generation_launcher",
                f"Starting check and download process for {config.model}",
            ),
            info(
                6.1,
                "download: text_generation_launcher",
                f"Successfully downloaded weights for {config.model}",
            ),
            info(6.2, "shard-manager: text_generation_launcher", "Starting shard rank=0"),
        ]
    if stage is None or stage == "kv":
        plan = memory_plan(config, gpu)
        lines += [
            info(17.5, "shard-manager: text_generation_launcher", "Shard ready in 11.3s rank=0"),
            info(17.6, "text_generation_launcher", "Starting Webserver"),
            info(17.9, "text_generation_router_v3", "backends/v3/src/lib.rs:125: Warming up model"),
            info(
                21.4,
                "text_generation_launcher",
                f"KV-cache blocks: {plan.kv_tokens // 16}, size: 16",
            ),
        ]
        if stage is None:
            lines += [
                info(
                    21.4,
                    "text_generation_router_v3",
                    "backends/v3/src/lib.rs:137: Setting max batch total tokens to "
                    f"{plan.kv_tokens}",
                ),
                info(
                    21.9, "text_generation_router::server", "router/src/server.rs:2419: Connected"
                ),
            ]
    if error is not None:
        if stage == "load":
            lines += [
                tl.mark(
                    12.0,
                    f"{_stamp(TGI, tl.at(12.0))} ERROR shard-manager: text_generation_launcher: "
                    "Shard complete standard error output:",
                ),
                error,
                f"{_stamp(TGI, tl.at(12.0))} ERROR text_generation_launcher: "
                "Shard 0 failed to start",
                "Error: ShardCannotStart",
            ]
        else:
            lines.append(error)
    return lines


def _some(value: object) -> str:
    if value is None:
        return "None"
    return f'Some("{value}")' if isinstance(value, str) else f"Some({value})"


def _sglang_log(
    config: ServingConfig, gpu: GpuClass, tl: _Timeline, stage: str | None, error: str | None
) -> list[str]:
    def line(dt: float, text: str, tp: bool = True) -> str:
        return tl.mark(dt, f"[{_stamp(SGLANG, tl.at(dt))}{' TP0' if tp else ''}] {text}")

    dtype = runtime_dtype(config, gpu)
    lines = [
        line(
            0.0,
            f"server_args=ServerArgs(model_path='{config.model}', tokenizer_path='{config.model}', "
            f"revision={_repr(config.revision)}, dtype='{config.dtype or 'auto'}', "
            f"context_length={config.max_model_len}, "
            f"mem_fraction_static={config.gpu_memory_utilization}, "
            f"max_running_requests={config.max_num_seqs}, tp_size={config.tensor_parallel_size}, "
            f"port={config.port}, served_model_name='{config.served_model_name}', "
            f"enable_metrics={config.metrics_enabled})",
            tp=False,
        )
    ]
    if stage != "args":
        avail = gpu.memory_mib / MIB_PER_GIB - 0.7
        lines.append(line(5.2, f"Load weight begin. avail mem={avail:.2f} GB"))
    if stage is None or stage == "kv":
        plan = memory_plan(config, gpu)
        per_gpu_weights = plan.weights_mib / config.tensor_parallel_size / MIB_PER_GIB
        avail = gpu.memory_mib / MIB_PER_GIB - 0.7
        lines.append(
            line(
                11.4,
                f"Load weight end. type=LlamaForCausalLM, dtype=torch.{dtype}, "
                f"avail mem={avail - per_gpu_weights:.2f} GB, mem usage={per_gpu_weights:.2f} GB.",
            )
        )
        if stage is None:
            half = max(plan.kv_mib, 0.0) / 2 / MIB_PER_GIB
            running = config.max_num_seqs or 256
            lines += [
                line(
                    11.9,
                    f"KV Cache is allocated. #tokens: {plan.kv_tokens}, "
                    f"K size: {half:.2f} GB, V size: {half:.2f} GB",
                ),
                line(
                    19.0,
                    f"max_total_num_tokens={plan.kv_tokens}, chunked_prefill_size=8192, "
                    "max_prefill_tokens=16384, "
                    f"max_running_requests={running}, context_len={config.effective_max_model_len}",
                ),
                line(19.8, "INFO:     Started server process [1]", tp=False),
                line(19.8, "INFO:     Waiting for application startup.", tp=False),
                line(19.8, "INFO:     Application startup complete.", tp=False),
                line(
                    19.8,
                    f"INFO:     Uvicorn running on http://0.0.0.0:{config.port} "
                    "(Press CTRL+C to quit)",
                    tp=False,
                ),
                line(20.9, "The server is fired up and ready to roll!", tp=False),
            ]
    if error is not None:
        lines += [
            line(12.0, "Scheduler hit an exception: Traceback (most recent call last):"),
            error,
            line(
                12.1,
                "Received sigquit from a child process. It usually means the child failed.",
                tp=False,
            ),
        ]
    return lines


def _repr(value: str | None) -> str:
    return "None" if value is None else f"'{value}'"


def startup_log(
    config: ServingConfig, gpu: GpuClass, *, gpu_count: int | None = None, start_time: float = 0.0
) -> list[str]:
    """The lines the engine writes to its container log while starting on `gpu`.

    A start that fails (see `startup_failure`) logs up to the failure and ends with the error;
    `gpu_count` defaults to the tensor-parallel size. `start_time` is the epoch second the
    container started, for the timestamps. Never raises.
    """
    return _lines(config, gpu, gpu_count, _Timeline(start_time))


def timed_startup_log(
    config: ServingConfig,
    gpu: GpuClass,
    *,
    gpu_count: int | None = None,
    start_time: float = 0.0,
    last_line_s: float | None = None,
) -> list[tuple[float, str]]:
    """`startup_log` with the second (after `start_time`) at which each line is written.

    With `last_line_s`, the engine's start-up is stretched or squeezed so its last line comes
    that long after the start: the container is ready (or dies) when its log says so. The
    engine's own timestamps inside the lines follow. Never raises.
    """
    raw = _lines(config, gpu, gpu_count, _Timeline(start_time))
    end = max(_offsets(raw), default=0.0)
    scale = last_line_s / end if last_line_s is not None and end > 0 else 1.0
    lines = _lines(config, gpu, gpu_count, _Timeline(start_time, scale))
    return [(dt * scale, line) for dt, line in zip(_offsets(lines), lines, strict=True)]


def _offsets(lines: list[str]) -> list[float]:
    """Each line's offset: its own, or the line's before it (a traceback prints at once);
    never earlier than a line above it."""
    out: list[float] = []
    last = 0.0
    for line in lines:
        last = max(last, getattr(line, "dt", last))
        out.append(last)
    return out


def _lines(config: ServingConfig, gpu: GpuClass, gpu_count: int | None, tl: _Timeline) -> list[str]:
    count = config.tensor_parallel_size if gpu_count is None else gpu_count
    found = startup_stage(config, gpu, count)
    stage, error = found if found else (None, None)
    if config.engine == VLLM:
        return _vllm_log(config, gpu, tl, stage, error)
    if config.engine == TGI:
        return _tgi_log(config, gpu, tl, stage, error)
    return _sglang_log(config, gpu, tl, stage, error)


_UVICORN_SHUTDOWN = (
    "INFO:     Shutting down",
    "INFO:     Waiting for application shutdown.",
    "INFO:     Application shutdown complete.",
    "INFO:     Finished server process [1]",
)


def shutdown_log(config: ServingConfig, at: float) -> list[str]:
    """What a running engine prints when the kubelet sends SIGTERM at `at` (epoch seconds):
    uvicorn's goodbye for vLLM and SGLang, the launcher's for TGI. Never raises."""
    if config.engine == VLLM:
        return list(_UVICORN_SHUTDOWN)
    if config.engine == SGLANG:
        return [f"[{_stamp(SGLANG, at)}] {line}" for line in _UVICORN_SHUTDOWN]
    stamp = _stamp(TGI, at)
    return [
        f"{stamp}  INFO text_generation_launcher: Terminating webserver",
        f"{stamp}  INFO text_generation_launcher: Waiting for webserver to gracefully shutdown",
        f"{stamp}  INFO text_generation_launcher: webserver terminated",
        f"{stamp}  INFO text_generation_launcher: Shutting down shards",
        f"{stamp}  INFO shard-manager: text_generation_launcher: Terminating shard rank=0",
        f"{stamp}  INFO shard-manager: text_generation_launcher: shard terminated rank=0",
    ]
