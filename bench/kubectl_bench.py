"""skewmit beside kubectl on the same simulator (`skewmit sim` in a process of its own), in one
run, medians of --runs:

- undo + wait: skewmit's undo through the gate (plan, RBAC review, server dry run, diff,
  journaled apply) then polling `rollout.progress` at the app's active-rollout interval,
  against `kubectl rollout undo` + `kubectl rollout status` (a watch). Undo toggles between the
  last two revisions, so each side rolls both ways per run (the figure is the mean of the two)
  and each is a full rollout.
- pods with GPU labels: the Deployment's pods with their nodes' GPU labels (what the inspector
  lists before it runs nvidia-smi: Deployment, pods by its selector, nodes, `gpu_rows`)
  against `kubectl get pods -o wide` + `kubectl get nodes -L nvidia.com/gpu.product`.

kubectl's figures include its process start (that is what an operator waits for); skewmit's
are in-process calls of a running app with a fresh client. Prints a table; asserts nothing.

    .venv/bin/python bench/kubectl_bench.py [--runs 3] [--speed 10]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from measure import (  # noqa: E402
    SKEWMIT,
    machine,
    median,
    row,
    table_header,
    unwind_on_sigterm,
)

NS, NAME = "inference", "llm-serve"


def start_sim(folder: Path, speed: float) -> tuple[subprocess.Popen[str], Path]:
    kubeconfig = folder / "kubeconfig"
    proc = subprocess.Popen(
        [*SKEWMIT, "sim", "--scenario", "skew-incident", "--kubeconfig", str(kubeconfig),
         "--speed", str(speed)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("metrics:"):
            return proc, kubeconfig
    proc.kill()
    sys.exit("kubectl_bench: the simulator did not start")


def kubectl(kubeconfig: Path, cache: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache), "-n", NS, *args],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300,
    )  # fmt: skip
    return time.perf_counter() - start


def skewmit_undo(kubeconfig: Path, state: Path, poll_s: float) -> float:
    from services import rollout
    from services.gate import Gate
    from services.journal import Journal
    from services.kube import KubeCluster
    from services.models import Target

    start = time.perf_counter()
    cluster = KubeCluster(str(kubeconfig))
    target = Target(cluster.context, NS, NAME, cluster.server, cluster.whoami())
    journal = Journal.open_for(target, target.user, root=state)
    gate = Gate(cluster, journal)
    plan = rollout.undo_plan(cluster, NS, NAME)
    gate.apply(plan, gate.preview(plan))
    while not rollout.progress(cluster, NS, NAME).done:
        time.sleep(poll_s)
    return time.perf_counter() - start


def skewmit_pods(kubeconfig: Path) -> float:
    from services.gpu import gpu_rows
    from services.kube import KubeCluster

    start = time.perf_counter()
    cluster = KubeCluster(str(kubeconfig))
    dep = cluster.get("Deployment", NS, NAME)
    labels = dep["spec"]["selector"].get("matchLabels", {})
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    pods = cluster.list("Pod", NS, label_selector=selector)
    nodes = cluster.list("Node")
    rows = gpu_rows(pods, nodes, {}, {}, None)
    elapsed = time.perf_counter() - start
    assert rows, "no pods"
    return elapsed


def main() -> None:
    unwind_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--speed", type=float, default=10.0, help="the simulator's clock")
    args = parser.parse_args()
    if shutil.which("kubectl") is None:
        sys.exit("kubectl_bench: kubectl is not installed")
    from tui.session import Intervals

    poll_s = Intervals().rollout_active
    version = subprocess.run(["kubectl", "version", "--client"], capture_output=True, text=True)
    found = re.search(r"v\d+\.\d+\.\d+", version.stdout)
    print(f"# skewmit vs kubectl {found.group(0) if found else ''}, skewmit sim x{args.speed:g} — "
          f"{machine()}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="skewmit-bench-") as tmp:
        folder = Path(tmp)
        sim, kubeconfig = start_sim(folder, args.speed)
        cache = folder / "kube-cache"
        try:
            kubectl(kubeconfig, cache, "get", "deployment", NAME)  # discovery cache, as a user has
            k_undo, s_undo, k_pods, s_pods = [], [], [], []

            def kubectl_undo() -> float:
                return kubectl(kubeconfig, cache, "rollout", "undo", f"deployment/{NAME}") + (
                    kubectl(kubeconfig, cache, "rollout", "status", f"deployment/{NAME}")
                )

            for i in range(args.runs):
                # Each side rolls both ways (A->B and B->A) per run, since the two templates'
                # rollouts need not take equally long; a journal of its own per run.
                k_first = kubectl_undo()
                s_both = skewmit_undo(kubeconfig, folder / f"state-{i}", poll_s)
                s_both += skewmit_undo(kubeconfig, folder / f"state-{i}b", poll_s)
                k_undo.append((k_first + kubectl_undo()) / 2)
                s_undo.append(s_both / 2)
                k_pods.append(
                    kubectl(kubeconfig, cache, "get", "pods", "-o", "wide")
                    + kubectl(kubeconfig, cache, "get", "nodes", "-L", "nvidia.com/gpu.product")
                )
                s_pods.append(skewmit_pods(kubeconfig))
                print(f"undo+wait kubectl {k_undo[-1]:.2f} s, skewmit {s_undo[-1]:.2f} s; "
                      f"pods+labels kubectl {k_pods[-1]:.3f} s, skewmit {s_pods[-1]:.3f} s",
                      flush=True)  # fmt: skip
        finally:
            sim.terminate()
            sim.wait(timeout=30)
    print(table_header())
    print(row(f"skewmit undo + rollout wait (poll {poll_s:g} s)", median(s_undo),
              "`kubectl rollout undo` + `rollout status`", median(k_undo)))  # fmt: skip
    print(row("skewmit: the Deployment's pods + nodes' GPU labels", median(s_pods),
              "`kubectl get pods -o wide` + `get nodes -L nvidia.com/gpu.product`",
              median(k_pods)))  # fmt: skip


if __name__ == "__main__":
    main()
