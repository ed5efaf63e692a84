"""Issues 9 and 12, scale: per-pod findings are aggregated, so a 1,000-pod fleet opens any
step at once, and the checks read pods and nodes from watches instead of re-listing them.

On `large`, step 2 had 4,004 findings (four per pod) and opening it froze the UI for 3.2-3.7 s
every time; every check journaled a 1.3 MB entry. Pods that drift alike are now one finding
that names the count and a few pods. The checks' polls then still froze the screen 200-900 ms
each: every poll re-listed 1,000 pods and 500 nodes, and a worker parsing such a list holds
the interpreter lock. The app now keeps them from watches (services.informer) and lists
neither again while it runs (the stall itself is measured by bench/ui_stall_bench.py, not
here).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

from services.drift import aggregate_pod_findings
from services.journal import Journal
from services.kube import KubeCluster
from services.models import Finding, Severity, Step, Target
from services.pin import pin_findings
from services.runbook import Runbook
from services.simulator.runner import Simulator
from widgets.step_detail import MAX_DETAIL_LINES, MAX_FINDINGS, detail_text, findings_content

NS, DEPLOY = "inference", "llm-serve"
CODES = {"image-mutable-tag", "model-revision-unpinned", "dtype-unset", "max-model-len-unset"}


def test_pods_that_drift_alike_are_one_finding_naming_the_count(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    cluster = KubeCluster(str(shared_sim.write_kubeconfig(tmp_path / "kubeconfig")))
    pods = sorted(
        p["metadata"]["name"] for p in cluster.list("Pod", NS, label_selector="app=llm-serve")
    )
    findings = pin_findings(cluster, NS, DEPLOY)
    on_pods = [f for f in findings if f.detail.get("source") == "pod"]
    # The four pods of revision 3 drift the same four ways: four findings, not sixteen.
    assert sorted(f.code for f in on_pods) == sorted(CODES)
    for finding in on_pods:
        assert finding.detail["count"] == len(pods) == 4
        assert sorted(finding.detail["pods"]) == pods
        named = [p for p in pods if f"pod/{p}" in finding.subject]
        assert len(named) == 3, finding.subject
        assert finding.subject.startswith("pod/")
        assert finding.subject.endswith(" and 1 more (4 pods) container/vllm")
    # The template's findings stay as they were.
    template = [f for f in findings if f.subject == f"deployment/{DEPLOY} container/vllm"]
    assert {f.code for f in template} == CODES


def test_a_thousand_pods_fold_into_one_finding_per_difference() -> None:
    def finding(pod: int, code: str = "dtype-unset", message: str = "dtype is unset") -> Finding:
        return Finding(
            Step.PIN,
            code,
            Severity.WARNING,
            message,
            f"pod/llm-serve-{pod:04d} container/vllm",
            {"source": "pod"},
        )

    template = Finding(Step.PIN, "dtype-unset", Severity.WARNING, "dtype is unset", "deployment/x")
    lone = finding(7, "image-mutable-tag", "image a:b is pinned only by tag b")
    folded = aggregate_pod_findings(
        [template] + [finding(i) for i in range(1000)] + [lone] + [finding(i, "x") for i in (1, 2)]
    )
    assert [f.subject for f in folded] == [
        "deployment/x",
        "pod/llm-serve-0000, pod/llm-serve-0001, pod/llm-serve-0002 and 997 more (1000 pods) "
        "container/vllm",
        "pod/llm-serve-0007 container/vllm",  # one pod: kept as it is
        "pod/llm-serve-0001, pod/llm-serve-0002 (2 pods) container/vllm",
    ]
    assert folded[1].detail["count"] == 1000 and len(folded[1].detail["pods"]) == 1000
    assert folded[1].message == "dtype is unset" and folded[1].severity == Severity.WARNING


def test_the_step_detail_renders_a_bounded_number_of_findings_and_lines() -> None:
    many = [
        Finding(
            Step.HARDWARE, "gpu-class-mismatch", Severity.ERROR, f"pod p{i} on A10G", f"pod/p{i}"
        )
        for i in range(1000)
    ]
    text = findings_content(many).plain
    assert text.count("on A10G") == MAX_FINDINGS
    assert f"… and {1000 - MAX_FINDINGS} more finding(s)" in text
    lines = detail_text(tuple(f"p{i} -> gpu-a10g-1 -> A10G" for i in range(1000)))
    assert len(lines.splitlines()) == MAX_DETAIL_LINES + 1
    assert lines.endswith(f"… and {1000 - MAX_DETAIL_LINES} more line(s)")


async def test_the_app_polls_pods_and_nodes_from_watches_and_stops_them_on_exit(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    from tui.app import SkewmitApp
    from tui.session import Intervals, Session

    cluster = KubeCluster(str(shared_sim.write_kubeconfig(tmp_path / "kubeconfig")))
    target = Target(cluster.context, NS, DEPLOY, cluster.server, cluster.whoami())
    journal = Journal.open_for(target, target.user, tmp_path / "state")
    session = Session(
        Runbook(cluster, target, journal),
        evidence_dir=tmp_path / "evidence",
        intervals=Intervals(checks=0.5, validate=0.5, rollout=0.5, rollout_active=0.5),
        metrics_note="no metrics source in this test",
    )
    app = SkewmitApp(session)

    async def until(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.05)

    async with app.run_test():
        informer = app.informer
        assert informer is not None
        reflectors = informer.reflectors.values()
        await until(lambda: all(r.synced for r in reflectors), "the watches to start")
        assert app.session is not None
        cached = app.session.runbook.cluster
        served = cached.served
        listed = cluster.request_counts()
        # Several rounds of every step's checks and the rollout poll.
        await until(lambda: cached.served >= served + 20, "checks from the cache")
        counts = cluster.request_counts()
        for kind in ("pods", "nodes"):
            assert counts.get(("list", kind), 0) == listed.get(("list", kind), 0), kind
            assert counts[("watch", kind)] == 1
    assert not [t for t in threading.enumerate() if t.name.startswith("skewmit-informer")]
