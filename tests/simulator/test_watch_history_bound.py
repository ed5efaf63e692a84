"""Issue 12: the simulator's watch history is compacted like etcd's, so a long-running
simulator (the demo's, in the app's own process) stays the same size.

It kept the newest 50,000 events whatever their age, each with a full copy of its object: the
demo grew about 24 MiB an hour of wall time for six hours before that bound was reached. Now
events older than the compaction interval (simulated seconds) are dropped once more than a
floor of them are kept; a watch from a compacted version gets 410 Gone, as from a real API
server, and one from a kept version resumes with every event after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from services.simulator.runner import Simulator
from services.simulator.store import COMPACTION_S, HISTORY_FLOOR
from tests.conftest import api_client
from tests.services.harness import connect

NS = "inference"
WRITES = 3 * HISTORY_FLOOR  # one a simulated second: far more than the window and the floor


@pytest.fixture(scope="module")
def churned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Simulator, list[int]]]:
    with Simulator("healthy", speed=1.0) as sim:
        cluster = connect(sim, tmp_path_factory.mktemp("history"))
        cluster.create("ConfigMap", NS, {"metadata": {"name": "churn"}, "data": {"n": "0"}})
        assert sim.cluster is not None
        store, clock = sim.cluster.store, sim.cluster.clock

        def churn() -> list[int]:
            versions = []
            for n in range(WRITES):
                clock.advance(1.0)
                obj = store.mutate(
                    "configmaps", NS, "churn", lambda o, n=n: o["data"].update(n=str(n + 1))
                )
                assert obj is not None
                versions.append(int(obj["metadata"]["resourceVersion"]))
            return versions

        yield sim, sim.call(churn)


def test_the_history_keeps_the_compaction_window_or_the_floor_not_every_event(
    churned: tuple[Simulator, list[int]],
) -> None:
    sim, _versions = churned
    assert sim.cluster is not None
    kept = sim.call(lambda: len(sim.cluster.store._history))  # type: ignore[union-attr]
    # The writes of the last COMPACTION_S simulated seconds are fewer than the floor here, so
    # the floor is what is kept (plus the cluster's own few events since).
    assert COMPACTION_S < HISTORY_FLOOR
    assert HISTORY_FLOOR <= kept < HISTORY_FLOOR + 100, kept


def _watch_from(api: client.ApiClient, rv: int) -> list[str]:
    core = client.CoreV1Api(api)
    stream = watch.Watch().stream(
        core.list_namespaced_config_map,
        NS,
        field_selector="metadata.name=churn",
        resource_version=str(rv),
        timeout_seconds=1,
    )
    return [event["object"].data["n"] for event in stream]


def test_a_watch_from_a_compacted_version_is_gone_and_from_a_kept_one_resumes(
    churned: tuple[Simulator, list[int]], tmp_path: Path
) -> None:
    sim, versions = churned
    api = api_client(sim, tmp_path, "skewmit-sim")
    with pytest.raises(ApiException) as caught:
        _watch_from(api, versions[0])
    assert caught.value.status == 410
    # From the version of the 100th-newest write: the 99 writes after it, in order.
    assert _watch_from(api, versions[-100]) == [str(n) for n in range(WRITES - 98, WRITES + 1)]
