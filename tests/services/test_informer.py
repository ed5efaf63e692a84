"""The watch-fed pod/node cache (services.informer, services.cached_cluster) against the
simulator, through the real kubernetes client over HTTPS.

What an operator would notice if it broke: checks that disagree with the cluster (a pod that
is gone still listed, a cordon that does not show), a cache that stops following after the
API server drops its watches or compacts its history, a gate that calls its own change "not
live", and threads left running after the app exits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from services.cached_cluster import CachedCluster
from services.errors import SkewmitError
from services.informer import Informer, Reflector
from services.kube import KubeCluster
from services.models import Step, Target
from services.runbook import Runbook
from services.simulator.faults import Fault
from services.simulator.runner import Simulator

NS, DEPLOY, SELECTOR = "inference", "llm-serve", "app=llm-serve"


def eventually(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def versions(objects: list[dict[str, Any]]) -> dict[str, str]:
    return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in objects}


@pytest.fixture
def world(sim: Simulator, tmp_path: Path) -> Iterator[tuple[KubeCluster, Informer, CachedCluster]]:
    cluster = KubeCluster(str(sim.write_kubeconfig(tmp_path / "kubeconfig")))
    # Pages of two, so the skew incident's four pods take more than one page.
    informer = Informer(cluster, NS, DEPLOY, page_size=2, backoff_s=(0.05, 0.5))
    cached = CachedCluster(cluster, informer)
    informer.start()
    try:
        assert informer.wait_synced(60), informer.reflectors["Pod"].error
        yield cluster, informer, cached
    finally:
        informer.stop()


def hold_events(monkeypatch: pytest.MonkeyPatch, reflector: Reflector) -> threading.Event:
    """Hold every event of `reflector`'s watch until the returned event is set, as a slow
    stream would."""
    release = threading.Event()
    original = Reflector._apply

    def held(self: Reflector, event: dict[str, Any]) -> None:
        if self is reflector:
            release.wait()
        original(self, event)

    monkeypatch.setattr(Reflector, "_apply", held)
    return release


def same_as_server(cluster: KubeCluster, cached: CachedCluster) -> Callable[[], bool]:
    def check() -> bool:
        served = cached.served
        pods = versions(cached.list("Pod", NS, label_selector=SELECTOR))
        nodes = versions(cached.list("Node"))
        from_cache = cached.served == served + 2
        return (
            from_cache
            and pods == versions(cluster.list("Pod", NS, label_selector=SELECTOR))
            and nodes == versions(cluster.list("Node"))
        )

    return check


def test_the_cache_follows_pods_created_changed_and_deleted(
    world: tuple[KubeCluster, Informer, CachedCluster],
) -> None:
    cluster, informer, cached = world
    counts = cluster.request_counts()
    assert counts[("list", "pods")] >= 2  # paged: four pods, two a page
    assert counts[("watch", "pods")] == 1 and counts[("watch", "nodes")] == 1
    eventually(same_as_server(cluster, cached), "the first list to match the server")

    before = len(cluster.list("Pod", NS, label_selector=SELECTOR))
    cluster.patch("Deployment", NS, DEPLOY, {"spec": {"replicas": 6}}, "merge")
    matches = same_as_server(cluster, cached)
    eventually(
        lambda: len(cached.list("Pod", NS, label_selector=SELECTOR)) >= before + 2 and matches(),
        "the two new pods listed",
    )
    victim = cluster.list("Pod", NS, label_selector=SELECTOR)[0]["metadata"]["name"]
    cluster.patch("Pod", NS, victim, {"metadata": {"labels": {"skewmit-test": "x"}}}, "merge")
    labelled = "skewmit-test=x,app=llm-serve"
    eventually(
        lambda: [p["metadata"]["name"] for p in cached.list("Pod", NS, labelled)] == [victim],
        "the label change",
    )
    cluster.patch("Deployment", NS, DEPLOY, {"spec": {"replicas": 2}}, "merge")
    eventually(same_as_server(cluster, cached), "scaled down to match the server")
    # Nothing was listed again: the watch carried every change.
    assert informer.reflectors["Pod"].lists == 1


def test_the_cache_survives_a_dropped_watch_and_a_compacted_history(
    sim: Simulator, world: tuple[KubeCluster, Informer, CachedCluster]
) -> None:
    cluster, informer, cached = world
    pods = informer.reflectors["Pod"]
    store = sim.cluster.store

    # The API server restarts: every watch ends. The informer resumes from its version.
    sim.call(store.drop_all_watches)
    cluster.patch("Deployment", NS, DEPLOY, {"spec": {"replicas": 5}}, "merge")
    eventually(lambda: pods.watches >= 2, "the pod watch to be opened again")
    eventually(same_as_server(cluster, cached), "the cache to follow after the drop")
    assert pods.lists == 1

    # etcd compacts the history the informer would resume from: the watch answers an
    # ERROR event with 410 Gone, and the informer lists again.
    def compact() -> None:
        store._history.clear()
        store.drop_all_watches()

    cluster.patch("Deployment", NS, DEPLOY, {"spec": {"replicas": 3}}, "merge")
    sim.call(compact)
    eventually(lambda: pods.lists >= 2, "a new list after the 410")
    eventually(same_as_server(cluster, cached), "the cache to follow after the 410")

    # A server that answers every watch 410 outright (HTTP status, not an event).
    lists = pods.lists
    gone = Fault(verb="watch", resource="pods", error_rate=1.0, error_code=410)
    sim.call(sim.cluster.faults.set, [gone])
    sim.call(store.drop_all_watches)
    eventually(lambda: pods.lists > lists, "a new list after a 410 answer")
    assert not pods.synced and "410" in pods.error
    # While out of sync the checks read the server: still the truth. (Two reads, one after
    # the other, of a fleet scaling down: a terminating pod can be gone by the second.)
    served = cached.served
    eventually(
        lambda: (
            versions(cached.list("Pod", NS, label_selector=SELECTOR))
            == versions(cluster.list("Pod", NS, label_selector=SELECTOR))
        ),
        "the server's pods, read through the cache",
    )
    assert cached.served == served, "a read out of sync came from the cache"
    sim.call(sim.cluster.faults.clear)
    eventually(same_as_server(cluster, cached), "the cache to follow once watches work again")


def test_no_reader_ever_sees_a_half_applied_state(
    sim: Simulator, tmp_path: Path, world: tuple[KubeCluster, Informer, CachedCluster]
) -> None:
    cluster, informer, cached = world
    pods = informer.reflectors["Pod"]
    first = pods.snapshot
    assert first is not None
    start = {name: obj["metadata"]["resourceVersion"] for name, obj in first.objects.items()}

    # The oracle: the official client's own watch from the same version records every event.
    api = client.CoreV1Api(
        client.ApiClient(configuration=cluster.api.configuration)  # type: ignore[no-untyped-call]
    )
    events: list[tuple[int, str, str, str]] = []
    stop = threading.Event()
    oracle = watch.Watch()  # type: ignore[no-untyped-call]

    def record() -> None:
        stream = oracle.stream(
            api.list_namespaced_pod,
            NS,
            label_selector=SELECTOR,
            resource_version=first.resource_version,
            timeout_seconds=120,
        )
        try:
            for event in stream:
                meta = event["raw_object"]["metadata"]
                key = f"{meta.get('namespace', '')}/{meta['name']}"
                version = meta["resourceVersion"]
                events.append((int(version), event["type"], key, version))
        except Exception:  # the simulator stops under it at the end of the test
            if not stop.is_set():
                raise

    recorder = threading.Thread(target=record, daemon=True)
    recorder.start()

    samples: list[tuple[int, dict[str, str]]] = []
    errors: list[BaseException] = []

    def read() -> None:
        seen = None
        try:
            while not stop.is_set():
                snapshot = pods.snapshot
                assert snapshot is not None
                cached.list("Pod", NS, label_selector=SELECTOR)  # iterating while events land
                if snapshot is seen:
                    continue
                seen = snapshot
                state = {k: o["metadata"]["resourceVersion"] for k, o in snapshot.objects.items()}
                samples.append((int(snapshot.resource_version), state))
        except BaseException as exc:  # reported below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    for replicas in (8, 1, 4):
        cluster.patch("Deployment", NS, DEPLOY, {"spec": {"replicas": replicas}}, "merge")
        eventually(same_as_server(cluster, cached), f"{replicas} replicas to settle")
    stop.set()
    for reader in readers:
        reader.join()
    oracle.stop()  # type: ignore[no-untyped-call]
    assert not errors, errors

    events.sort()
    assert len(events) > 10, "the scaling made events"
    last_rv = max(rv for rv, *_ in events)
    checked = 0
    for rv, state in samples:
        if rv > last_rv:
            continue  # after the oracle's last event: nothing to replay it against
        expected = dict(start)
        for event_rv, kind, key, version in events:
            if event_rv > rv:
                break
            if kind == "DELETED":
                expected.pop(key, None)
            else:
                expected[key] = version
        differs = {k: (state.get(k), expected.get(k)) for k in {*state, *expected}}
        differs = {k: v for k, v in differs.items() if v[0] != v[1]}
        assert not differs, f"snapshot at {rv} is not the state the events made: {differs}"
        checked += 1
    assert checked > 10


def test_reads_after_a_write_see_the_write_and_the_gate_verifies_it(
    sim: Simulator,
    tmp_path: Path,
    world: tuple[KubeCluster, Informer, CachedCluster],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.hardware import cordon_plan
    from services.journal import Journal

    cluster, informer, cached = world
    nodes = informer.reflectors["Node"]
    eventually(same_as_server(cluster, cached), "the cache to match the server")
    release = hold_events(monkeypatch, nodes)  # the cache is now behind the server
    node = sorted(n["metadata"]["name"] for n in cluster.list("Node"))[0]
    target = Target(cluster.context, NS, DEPLOY, cluster.server, cluster.whoami())
    journal = Journal.open_for(target, target.user, tmp_path / "state")
    runbook = Runbook(cached, target, journal)
    plan = cordon_plan(cached, node)
    preview = runbook.gate.preview(plan)
    applied = runbook.gate.apply(plan, preview)
    # The gate's verify read the node live, not the cache that has not seen the cordon.
    assert applied.verified, applied.message
    listed = {n["metadata"]["name"]: n for n in cached.list("Node")}
    assert listed[node]["spec"].get("unschedulable") is True, "the list shows the cordon"
    assert cached.get("Node", "", node)["spec"].get("unschedulable") is True

    release.set()
    eventually(same_as_server(cluster, cached), "the cache to catch up with the cordon")
    served = cached.served
    listed = {n["metadata"]["name"]: n for n in cached.list("Node")}
    assert cached.served == served + 1 and listed[node]["spec"].get("unschedulable") is True


def test_stopping_leaves_no_thread_behind(sim: Simulator, tmp_path: Path) -> None:
    cluster = KubeCluster(str(sim.write_kubeconfig(tmp_path / "kubeconfig")))
    informer = Informer(cluster, NS, DEPLOY)
    informer.start()
    assert informer.wait_synced(60)
    informer.stop()
    assert not any(r.alive for r in informer.reflectors.values())
    assert not [t for t in threading.enumerate() if t.name.startswith("skewmit-informer")]


def test_a_check_through_the_cache_finds_what_the_server_finds(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    cluster = KubeCluster(str(shared_sim.write_kubeconfig(tmp_path / "kubeconfig")))
    target = Target(cluster.context, NS, DEPLOY, cluster.server, cluster.whoami())
    informer = Informer(cluster, NS, DEPLOY)
    cached = CachedCluster(cluster, informer)
    informer.start()
    try:
        assert informer.wait_synced(60)
        plain_runbook = Runbook(cluster, target)
        cached_runbook = Runbook(cached, target)

        def findings(runbook: Runbook) -> dict[Step, Any]:
            out = {}
            for step in (Step.ROLLBACK, Step.PIN, Step.LATENCY, Step.ROUTE, Step.HARDWARE):
                report = runbook.check(step)
                out[step] = (report.state, [f.as_json() for f in report.findings], report.detail)
            return out

        # The fleet settles on the fast clock: compare once two plain checks agree.
        before = findings(plain_runbook)
        for _ in range(20):
            through_cache = findings(cached_runbook)
            after = findings(plain_runbook)
            if through_cache in (before, after):
                break
            before = after
        assert through_cache in (before, after)
        assert any(report[1] for report in through_cache.values()), "the incident has findings"
        assert cached.served > 0
    finally:
        informer.stop()


@contextmanager
def faulted(
    sim: Simulator, tmp_path: Path, fault: Fault
) -> Iterator[tuple[KubeCluster, Informer, CachedCluster]]:
    """An informer on the skew incident (pages of two) started with `fault` set on the
    simulator; on exit the fault is cleared and the informer stopped."""
    cluster = KubeCluster(str(sim.write_kubeconfig(tmp_path / "kubeconfig")))
    sim.call(sim.cluster.faults.set, [fault])
    informer = Informer(cluster, NS, DEPLOY, page_size=2, backoff_s=(0.05, 0.5))
    cached = CachedCluster(cluster, informer)
    informer.start()
    try:
        yield cluster, informer, cached
    finally:
        sim.call(sim.cluster.faults.clear)
        informer.stop()


def test_a_read_during_the_first_list_waits_for_it_instead_of_listing_every_pod(
    sim: Simulator, tmp_path: Path
) -> None:
    """On `large` the checks that started before the informer's first list was in read
    every pod from the server as well: a 5.6 MB answer whose parse froze the screen for up to
    2.8 s at start-up. A read now waits for the list already coming in."""
    slow = Fault(verb="list", resource="pods", latency_s=0.3)  # each page: a busy server
    with faulted(sim, tmp_path, slow) as (cluster, informer, cached):
        pods = cached.list("Pod", NS, label_selector=SELECTOR)
        assert cached.served == 1, "answered from the informer's list, not a second one"
        pages = informer.reflectors["Pod"].lists
        assert pages == 1
        assert versions(pods) == versions(cluster.list("Pod", NS, label_selector=SELECTOR))


def test_a_read_between_the_first_list_and_its_watch_waits_instead_of_listing_every_pod(
    sim: Simulator, tmp_path: Path
) -> None:
    """Between the first list's last page and the watch's opening the cache was not in sync
    yet, and no longer 'listing': reads went to the server. On `large` with Prometheus, three
    checks landed in that gap and each listed all 1,000 pods (0.8-2.7 s each); the busy
    server then took 1.7 s to open the watch, and the inspector filled 3.4 s after start
    instead of 2.2 s. A read in that gap now waits for the watch already being opened."""
    slow = Fault(verb="watch", resource="pods", latency_s=1.0)  # a busy server opening it
    with faulted(sim, tmp_path, slow) as (cluster, informer, cached):
        reflector = informer.reflectors["Pod"]
        eventually(lambda: reflector.lists == 1, "the first list", timeout_s=30)
        assert not reflector.synced, "read before the watch is open"
        before = cluster.request_counts().get(("list", "pods"), 0)
        pods = cached.list("Pod", NS, label_selector=SELECTOR)
        assert cluster.request_counts().get(("list", "pods"), 0) == before, "no list of its own"
        assert cached.served == 1 and reflector.synced
        assert versions(pods) == versions(cluster.list("Pod", NS, label_selector=SELECTOR))


def test_a_watch_that_does_not_open_holds_reads_only_a_short_while(
    sim: Simulator, tmp_path: Path
) -> None:
    """A watch whose answer never comes (a proxy holding a stream back) must not hold the
    checks: once listed, a read waits for the watch's opening FIRST_WATCH_WAIT_S at most, then
    the server answers it."""
    held = Fault(verb="watch", resource="pods", latency_s=5.0)  # stop() waits it out
    with faulted(sim, tmp_path, held) as (cluster, informer, cached):
        cached.first_watch_wait_s = 0.5
        reflector = informer.reflectors["Pod"]
        eventually(lambda: reflector.lists == 1, "the first list", timeout_s=30)
        began = time.monotonic()
        pods = cached.list("Pod", NS, label_selector=SELECTOR)
        assert time.monotonic() - began < 3.5, "not held for the watch's 5 s"
        assert cached.served == 0 and not reflector.synced, "the server answered"
        assert versions(pods) == versions(cluster.list("Pod", NS, label_selector=SELECTOR))


def test_a_read_of_the_deployment_before_its_watch_opens_asks_the_server_at_once(
    sim: Simulator, tmp_path: Path
) -> None:
    """Waiting for the pods' first list saves a second list of every pod; for the Deployment
    it would cost more than it saves: a get is one round trip, the list and the watch's
    opening two (6 s instead of 3 on a link adding 3 s a call). Reads of the Deployment and
    its ReplicaSets before their watches are open go to the server without waiting."""
    slow = Fault(verb="watch", resource="*", latency_s=2.0)  # every watch opens late
    with faulted(sim, tmp_path, slow) as (_cluster, informer, cached):
        for kind in ("Deployment", "ReplicaSet"):
            reflector = informer.reflectors[kind]
            eventually(lambda r=reflector: r.lists == 1, f"the {kind}s' first list")  # type: ignore[misc]
            assert not reflector.synced
        began = time.monotonic()
        dep = cached.get("Deployment", NS, DEPLOY)
        sets = cached.list("ReplicaSet", NS, label_selector=SELECTOR)
        assert time.monotonic() - began < 1.5, "held for the watches' opening"
        assert cached.served == 0, "the server answered"
        assert dep["metadata"]["name"] == DEPLOY and sets


def test_a_role_without_watch_on_deployments_still_reads_them_from_the_server(
    sim: Simulator, tmp_path: Path
) -> None:
    """A role that may get and list Deployments and ReplicaSets but not watch them (a
    namespace's hand-written Role often has no `watch`): their watches are refused with 403,
    the informer keeps trying with backoff, and every read of them goes to the server, the
    same as before the watches existed. The pods' cache is untouched."""
    refused = [
        Fault(verb="watch", resource=kind, error_rate=1.0, error_code=403)
        for kind in ("deployments", "replicasets")
    ]
    cluster = KubeCluster(str(sim.write_kubeconfig(tmp_path / "kubeconfig")))
    sim.call(sim.cluster.faults.set, refused)
    informer = Informer(cluster, NS, DEPLOY, page_size=2, backoff_s=(0.05, 0.5))
    cached = CachedCluster(cluster, informer)
    informer.start()
    try:
        deployments = informer.reflectors["Deployment"]
        eventually(lambda: "403" in deployments.error or "forbidden" in deployments.error.lower(),
                   "the watch refused")  # fmt: skip
        eventually(lambda: informer.reflectors["Pod"].synced, "the pods' watch")
        dep = cached.get("Deployment", NS, DEPLOY)
        sets = cached.list("ReplicaSet", NS, label_selector=SELECTOR)
        assert cached.served == 0, "not from a cache that cannot follow them"
        assert dep["spec"] == cluster.get("Deployment", NS, DEPLOY)["spec"]
        assert {rs["metadata"]["name"] for rs in sets} == {
            rs["metadata"]["name"] for rs in cluster.list("ReplicaSet", NS, SELECTOR)
        }
        cached.list("Pod", NS, label_selector=SELECTOR)
        assert cached.served == 1, "the pods still come from their watch"
    finally:
        sim.call(sim.cluster.faults.clear)
        informer.stop()


def test_the_checks_read_the_deployment_and_its_replicasets_from_the_watch(
    world: tuple[KubeCluster, Informer, CachedCluster],
) -> None:
    """Following the rollout costs no round trip per check: a round of the checks reads the
    target Deployment and its ReplicaSets from their watches (one Deployment get and five
    ReplicaSet lists a round before, each 3 s on a slow link), and reads them as the server
    has them. Another Deployment is not in the cache: the server answers for it."""
    cluster, _informer, cached = world
    target = Target(cluster.context, NS, DEPLOY, cluster.server, cluster.whoami())
    runbook = Runbook(cached, target)
    steps = (Step.ROLLBACK, Step.PIN, Step.LATENCY, Step.ROUTE, Step.HARDWARE, Step.VALIDATE)

    def spec_and_sets() -> tuple[Any, Any]:
        dep = cached.get("Deployment", NS, DEPLOY)
        sets = cached.list("ReplicaSet", NS, label_selector=SELECTOR)
        return dep["spec"], sorted(rs["metadata"]["name"] for rs in sets)

    eventually(
        lambda: (
            spec_and_sets()
            == (
                cluster.get("Deployment", NS, DEPLOY)["spec"],
                sorted(rs["metadata"]["name"] for rs in cluster.list("ReplicaSet", NS, SELECTOR)),
            )
        ),
        "the cache to hold the server's Deployment and ReplicaSets",
    )
    before = cluster.request_counts()
    for step in steps:
        runbook.check(step)
    after = cluster.request_counts()
    sent = {
        key: after[key] - before.get(key, 0) for key in after if after[key] > before.get(key, 0)
    }
    assert ("get", "deployments") not in sent, sent
    assert ("list", "replicasets") not in sent, sent

    dep = cached.get("Deployment", NS, DEPLOY)
    assert dep["kind"] == "Deployment" and dep["apiVersion"] == "apps/v1"
    # The evidence bundle's manifests record the Deployment and its ReplicaSets with their
    # field managers, before (read from the server) and after (from here): they are kept.
    assert dep["metadata"].get("managedFields") == cluster.get("Deployment", NS, DEPLOY)[
        "metadata"
    ].get("managedFields")

    def managers(reader: Any) -> dict[str, Any]:
        sets = reader.list("ReplicaSet", NS, label_selector=SELECTOR)
        return {rs["metadata"]["name"]: rs["metadata"].get("managedFields") for rs in sets}

    assert any(managers(cluster).values()), "the simulator records who wrote each ReplicaSet"
    # Two reads one after the other: a status update may land between them.
    eventually(lambda: managers(cached) == managers(cluster), "the ReplicaSets' managers")

    served = cached.served
    with pytest.raises(SkewmitError, match="not-there"):
        cached.get("Deployment", NS, "not-there")
    assert cached.served == served


def test_the_gate_reads_the_deployment_live_while_its_watch_lags(
    sim: Simulator,
    tmp_path: Path,
    world: tuple[KubeCluster, Informer, CachedCluster],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the Deployment's watch held back (the cache a few events behind the server):
    the gate applies and verifies against the live object, the checks read the gate's own
    write at once, and a plan made before another writer changed the Deployment is refused
    rather than applied over that change."""
    from services.journal import Journal
    from services.latency import knob_plan

    cluster, informer, cached = world
    deployments = informer.reflectors["Deployment"]
    eventually(
        lambda: (
            cached.get("Deployment", NS, DEPLOY)["spec"]
            == cluster.get("Deployment", NS, DEPLOY)["spec"]
        ),
        "the cache to hold the server's Deployment",
    )
    release = hold_events(monkeypatch, deployments)
    target = Target(cluster.context, NS, DEPLOY, cluster.server, cluster.whoami())
    journal = Journal.open_for(target, target.user, tmp_path / "state")
    runbook = Runbook(cached, target, journal)
    spec_before = cluster.get("Deployment", NS, DEPLOY)["spec"]
    plan = knob_plan(cached, NS, DEPLOY, "max_num_seqs")
    applied = runbook.gate.apply(plan, runbook.gate.preview(plan))
    assert applied.verified, applied.message
    live_spec = cluster.get("Deployment", NS, DEPLOY)["spec"]
    assert live_spec != spec_before
    # The watch has delivered nothing since: the checks' read comes from the server.
    assert cached.get("Deployment", NS, DEPLOY)["spec"] == live_spec

    release.set()
    eventually(
        lambda: deployments.caught_up(
            cluster.get("Deployment", NS, DEPLOY)["metadata"]["resourceVersion"]
        ),
        "the watch to deliver the write",
    )
    # Served from the cache again, then held back again; another writer changes the spec.
    served = cached.served
    assert cached.get("Deployment", NS, DEPLOY)["spec"] == live_spec
    assert cached.served == served + 1
    release.clear()
    plan = knob_plan(cached, NS, DEPLOY, "max_num_seqs")
    cluster.patch(
        "Deployment",
        NS,
        DEPLOY,
        {"spec": {"template": {"metadata": {"annotations": {"someone/else": "was-here"}}}}},
        "merge",
    )
    preview = runbook.gate.preview(plan)
    with pytest.raises(SkewmitError, match="changed since this plan"):
        runbook.gate.apply(plan, preview)
    release.set()
    template = cluster.get("Deployment", NS, DEPLOY)["spec"]["template"]
    assert template["metadata"]["annotations"]["someone/else"] == "was-here"
