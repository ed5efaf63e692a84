"""Reading a kubeconfig the size an on-call engineer has: every cluster of the fleet, each with
its certificate authority and a client certificate and key inline (~5.4 KB a context).

The app reads it before the first frame (the header's context: tui.launchers, libyaml) and
again on the opening's thread, where the cluster is built (services.kube.KubeCluster). That
second read is on the way to the first findings and the inspector (issue 12). Measured, per
size, medians of `--runs`:
- the client's own functions, as KubeCluster called them before: `list_kube_config_contexts`
  then `new_client_from_config` (each reads the file with PyYAML's pure-Python parser), after
  the file's check (also pure Python then);
- `KubeCluster(path, context)` now;
- floor: `kubectl config get-contexts` on the same file (a Go process, its start included).
Prints figures; record them in bench/RESULTS.md with the machine and date.

    .venv/bin/python bench/kubeconfig_bench.py [--runs 7] [--contexts 1 30 100]
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kubernetes import config
from measure import machine

from services.kube import KubeCluster


def kubeconfig(path: Path, contexts: int) -> Path:
    """`contexts` clusters, users and contexts, certificates inline (random bytes the size of
    an RSA-2048 CA and client certificate, and of its key, base64 as kubeconfigs carry them)."""

    def blob(size: int) -> str:
        return base64.b64encode(os.urandom(size)).decode()

    data: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "ctx-0",
        "clusters": [
            {
                "name": f"cluster-{i}",
                "cluster": {
                    "server": f"https://10.0.{i % 250}.1:6443",
                    "certificate-authority-data": blob(1100),
                },
            }
            for i in range(contexts)
        ],
        "users": [
            {
                "name": f"user-{i}",
                "user": {"client-certificate-data": blob(1100), "client-key-data": blob(1700)},
            }
            for i in range(contexts)
        ],
        "contexts": [
            {
                "name": f"ctx-{i}",
                "context": {"cluster": f"cluster-{i}", "user": f"user-{i}", "namespace": "serving"},
            }
            for i in range(contexts)
        ],
    }
    path.write_text(yaml.safe_dump(data))
    return path


def median_ms(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def the_clients_way(path: Path, context: str) -> None:
    yaml.safe_load(path.read_text())  # the file's check, as resolve_kubeconfig read it
    config.list_kube_config_contexts(config_file=str(path))  # type: ignore[no-untyped-call]
    config.new_client_from_config(config_file=str(path), context=context)  # type: ignore[no-untyped-call]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--contexts", type=int, nargs="+", default=[1, 30, 100])
    args = parser.parse_args()
    kubectl = shutil.which("kubectl")
    print(f"# reading a kubeconfig — {machine()}")
    print("| contexts | size | the client's functions | KubeCluster | kubectl get-contexts (floor) "
          "| KubeCluster / floor |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="skewmit-bench-") as tmp:
        for count in args.contexts:
            path = kubeconfig(Path(tmp) / f"kubeconfig-{count}", count)
            context = f"ctx-{count // 2}"
            before = median_ms(lambda p=path, c=context: the_clients_way(p, c), args.runs)
            now = median_ms(lambda p=path, c=context: KubeCluster(str(p), c), args.runs)
            floor = float("nan")
            if kubectl:
                argv = [kubectl, "config", "get-contexts", "--kubeconfig", str(path)]
                floor = median_ms(
                    lambda a=argv: subprocess.run(a, capture_output=True, check=True), args.runs
                )
            size = path.stat().st_size / 1024
            print(f"| {count} | {size:.0f} KiB | {before:.1f} ms | {now:.1f} ms | {floor:.1f} ms "
                  f"| x{now / floor:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
