"""The first findings do not wait for the baseline (issue 12): the app's metrics feed and the
validation poll start the baseline's capture at once, and against a slow Prometheus (or the
demo's day-old history still rendering) that capture takes seconds. Step 1's check opens the
incident's journal; before the fix, opening it waited for the whole capture, so the checklist
said nothing until the metrics had answered."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from services.errors import UnreachableError
from services.journal import Journal
from services.kube import KubeCluster
from services.metrics.source import Scope
from services.models import Step, Target
from services.runbook import Runbook
from services.simulator.runner import Simulator

WAIT_S = 30.0  # a bound on a hang, never a timing assertion


class StalledSource:
    """A metrics source whose clock does not answer until `release` is set: the baseline's
    capture starts and then waits, as against a Prometheus that is slow to answer."""

    baseline_window_s = None
    baseline_spec = None

    def __init__(self, namespace: str, deployment: str) -> None:
        self.scope = Scope(namespace, deployment)
        self.capturing = threading.Event()
        self.release = threading.Event()

    def now(self) -> float:
        self.capturing.set()
        self.release.wait(WAIT_S)
        raise UnreachableError("test: Prometheus did not answer")


def test_a_check_answers_while_the_baseline_capture_is_slow(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    cluster = KubeCluster(str(shared_sim.write_kubeconfig(tmp_path / "kubeconfig")))
    target = Target(cluster.context, "inference", "llm-serve", cluster.server, cluster.whoami())
    source = StalledSource(target.namespace, target.deployment)
    runbook = Runbook(
        cluster,
        target,
        None,
        metrics=source,
        open_journal=lambda: Journal.open_for(target, target.user, root=tmp_path),
    )
    errors: list[BaseException] = []

    def capture() -> None:
        try:
            runbook.baseline()
        except UnreachableError as exc:
            errors.append(exc)

    capturing = threading.Thread(target=capture, daemon=True)
    capturing.start()
    try:
        assert source.capturing.wait(WAIT_S), "the baseline capture never started"
        answered: list[Any] = []
        checking = threading.Thread(
            target=lambda: answered.append(runbook.check(Step.ROLLBACK)), daemon=True
        )
        checking.start()
        checking.join(WAIT_S)
        # Step 1 answered with its findings, and the incident opened, during the capture.
        assert answered, "step 1 waited for the baseline capture"
        assert answered[0].state == "findings", answered[0]
        assert runbook.journal is not None
        assert not source.release.is_set()
    finally:
        source.release.set()
        capturing.join(WAIT_S)
    assert errors and "did not answer" in str(errors[0])
