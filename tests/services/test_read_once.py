"""One check, one read of each object (services.kube.reads_once): steps 1, 2 and 6 read the
Deployment three times a check and their ReplicaSets twice, each a round trip, 9 s on a link
adding 3 s a call. Through the real Kubernetes client to the simulator."""

from __future__ import annotations

from pathlib import Path

from services.kube import KubeCluster, reads_once
from services.models import Step
from services.session import SessionOptions, open_session
from services.simulator.runner import Simulator

NS, DEPLOY = "inference", "llm-serve"


def sent(cluster: KubeCluster, before: dict[tuple[str, str], int]) -> dict[str, int]:
    return {
        f"{verb} {resource}": count - before.get((verb, resource), 0)
        for (verb, resource), count in cluster.request_counts().items()
        if count > before.get((verb, resource), 0)
    }


def test_each_check_reads_the_deployment_once_and_finds_the_same(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    kubeconfig = str(shared_sim.write_kubeconfig(tmp_path / "kubeconfig"))
    options = SessionOptions(
        kubeconfig=kubeconfig, namespace=NS, deployment=DEPLOY, read_only=True,
        journal_root=tmp_path / "state",
    )  # fmt: skip
    runbook = open_session(options)
    cluster = runbook.cluster
    assert isinstance(cluster, KubeCluster)
    for step in (Step.ROLLBACK, Step.PIN, Step.VALIDATE):
        before = dict(cluster.request_counts())
        report = runbook.check(step)
        requests = sent(cluster, before)
        assert requests["get deployments"] == 1, (step, requests)
        assert requests.get("list replicasets", 0) <= 1, (step, requests)
        assert report.state != "failed", report.error
    # The same findings as reads sent one by one: step 1 still finds the skewed rollout.
    assert runbook.check(Step.ROLLBACK).findings


def test_a_read_outside_a_check_or_on_another_thread_goes_to_the_server(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    import threading

    cluster = KubeCluster(str(shared_sim.write_kubeconfig(tmp_path / "kubeconfig")))
    before = dict(cluster.request_counts())
    with reads_once():
        first = cluster.get("Deployment", NS, DEPLOY)
        first["spec"]["replicas"] = 99  # the caller's own copy: a later read is not changed
        again = cluster.get("Deployment", NS, DEPLOY)
        other = threading.Thread(target=cluster.get, args=("Deployment", NS, DEPLOY))
        other.start()
        other.join()
    cluster.get("Deployment", NS, DEPLOY)
    assert again["spec"]["replicas"] != 99
    assert sent(cluster, before) == {"get deployments": 3}  # in the block, other thread, after
