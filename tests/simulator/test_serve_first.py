"""The demo's child simulator serves the API before the fleet's metrics history is built
(issue 12: the app's open waits on the API, its metrics on the history a little later):
the API answers while the history is held back; /metrics and the history reading answer
once it is built, and the live counters go on from where the history ends (no reset a rate
would show as a spike). Through the real client and a plain HTTP scrape."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.kube import KubeCluster
from services.simulator.fleet_wiring import FleetWiring
from services.simulator.runner import Simulator

COUNTER = "vllm:generation_tokens_total{"


def samples(text: str, prefix: str) -> dict[str, float]:
    """The last value of each series starting with `prefix` (history or a live page)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            head, _, rest = line.partition("} ")
            out[head + "}"] = float(rest.split()[0])
    return out


def test_the_api_answers_before_the_history_and_the_history_once_it_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    build = FleetWiring.history_steps

    def held(self: FleetWiring) -> Iterator[None]:
        while not release.is_set():  # each step hands the loop back to the API
            time.sleep(0.01)
            yield
        yield from build(self)

    monkeypatch.setattr(FleetWiring, "history_steps", held)
    with Simulator("skew-incident", speed=30.0, serve_first=True) as sim:
        assert sim.cluster is not None
        kube = KubeCluster(str(sim.write_kubeconfig(tmp_path / "kubeconfig")), None)
        deployment = kube.get("Deployment", "inference", "llm-serve")
        assert deployment["spec"]["replicas"] == 4  # the API answers, history or not
        assert "now" in kube._request("GET", "/_sim/clock")  # not one of the fleet's
        assert sim.cluster.fleet.history_pending
        answers: dict[str, str] = {}

        def read_history() -> None:
            reply = kube._open("GET", "/_sim/history", what="read the history")
            answers["history"] = bytes(reply.read()).decode()

        def scrape() -> None:
            with urllib.request.urlopen(sim.metrics_url, timeout=60) as reply:
                answers["metrics"] = reply.read().decode()

        readers = [threading.Thread(target=read_history), threading.Thread(target=scrape)]
        for reader in readers:
            reader.start()
        readers[0].join(1.0)
        assert answers == {}  # they wait for the history, not answer from a still fleet
        release.set()
        for reader in readers:
            reader.join(60)
        assert not sim.cluster.fleet.history_pending
        history = samples(answers["history"], COUNTER)
        live = samples(answers["metrics"], COUNTER)
        assert history and set(history) == set(live), (history, live)
        # The live fleet went on from the history's end: every counter at least as high.
        assert all(live[head] >= history[head] > 0 for head in history), (history, live)
