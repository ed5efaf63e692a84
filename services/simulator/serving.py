"""Serving engines in the simulated cluster: configuration, whether they start, what they log.

One import for callers: the parts live in `serving_config` (reading a container),
`engine_startup` (memory and start-up failures) and `startup_logs` (container logs).
"""

from __future__ import annotations

from services.simulator.engine_startup import (
    memory_plan,
    runtime_dtype,
    startup_failure,
    startup_stage,
)
from services.simulator.serving_config import (
    SGLANG,
    TGI,
    VLLM,
    NotAServingContainer,
    ServingConfig,
    detect_engine,
    normalize_dtype,
    parse_container,
)
from services.simulator.startup_logs import startup_log

__all__ = [
    "SGLANG",
    "TGI",
    "VLLM",
    "NotAServingContainer",
    "ServingConfig",
    "detect_engine",
    "memory_plan",
    "normalize_dtype",
    "parse_container",
    "runtime_dtype",
    "startup_failure",
    "startup_log",
    "startup_stage",
]
