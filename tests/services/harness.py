"""Helpers shared by the step tests that drive the simulator through the real client."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from services.gate import Gate
from services.journal import Journal
from services.kube import KubeCluster
from services.models import Target
from services.simulator.runner import Simulator


def connect(sim: Simulator, tmp_path: Path) -> KubeCluster:
    """The admin context of the simulator's kubeconfig, through the official client."""
    return KubeCluster(str(sim.write_kubeconfig(tmp_path / "kubeconfig")), "skewmit-sim")


def gate_for(cluster: Any, tmp_path: Path, namespace: str, name: str) -> Gate:
    """A gate journaling under tmp_path (never the real XDG state directory)."""
    journal = Journal.open_for(
        Target("skewmit-sim", namespace, name), "admin", root=tmp_path / "state"
    )
    return Gate(cluster, journal)


def wait_for(what: str, check: Any, timeout_s: float = 30.0) -> Any:
    """Poll until check() is truthy and return its value (bounded; not a timing test)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


class CountingCluster:
    """The real client, with every exec recorded (the pod's name): what nvidia-smi reads cost."""

    def __init__(self, inner: KubeCluster) -> None:
        self.inner = inner
        self.execs: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def exec(self, namespace: str, pod: str, container: str, argv: list[str]) -> str:
        self.execs.append(pod)
        return self.inner.exec(namespace, pod, container, argv)

    def take(self) -> list[str]:
        """The execs recorded since the last take."""
        done, self.execs = self.execs, []
        return done
