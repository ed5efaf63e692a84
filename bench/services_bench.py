"""Engine-room speed: each step's checks, a gate preview, journal appends.

Against the simulator over HTTPS with the official client, as the app runs them in workers.
Prints figures; record them in bench/RESULTS.md with the machine and date.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services import rollout
from services.journal import Journal
from services.kube import KubeCluster
from services.models import Step, Target
from services.runbook import Runbook
from services.simulator.runner import Simulator


def median_ms(fn, repeat: int = 7) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), max(samples)


def main() -> None:
    folder = Path(tempfile.mkdtemp())
    with Simulator("skew-incident", speed=1) as sim:
        cluster = KubeCluster(str(sim.write_kubeconfig(folder / "kubeconfig")))
        target = Target(cluster.context, "inference", "llm-serve", cluster.server, cluster.whoami())
        journal = Journal.open_for(target, target.user, folder / "state")
        runbook = Runbook(cluster, target, journal)
        for step in (Step.ROLLBACK, Step.PIN, Step.LATENCY, Step.ROUTE, Step.HARDWARE):
            median, worst = median_ms(lambda s=step: runbook.check(s))
            print(f"check {step.value:9}: median {median:7.1f} ms, max {worst:7.1f} ms")
        plan = rollout.undo_plan(cluster, "inference", "llm-serve")
        median, worst = median_ms(lambda: runbook.gate.preview(plan))
        print(
            f"gate preview (RBAC + GitOps + dry run + diff): median {median:.1f} ms, "
            f"max {worst:.1f} ms"
        )
        median, worst = median_ms(lambda: journal.append("note", {"text": "x" * 200}), 50)
        print(f"journal append (fsync): median {median:.2f} ms, max {worst:.2f} ms")


if __name__ == "__main__":
    main()
