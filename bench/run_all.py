"""Run every benchmark in bench/ and print their figures (`make bench`).

Each script prints its figures beside a floor measured in the same run; copy them into
bench/RESULTS.md with the machine line each prints. About 25 minutes on 2 cores; with
`--rss`, also the 30-minute RSS run of the demo (bench/rss_bench.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ["startup_bench.py", "--runs", "3"],
    ["tui_bench.py", "--runs", "3", "--watch", "60"],
    ["tui_bench.py", "--runs", "3", "--watch", "60", "--cluster"],
    ["tui_bench.py", "--runs", "3", "--watch", "60", "--cluster", "--prometheus"],
    [
        "tui_bench.py",
        "--runs",
        "1",
        "--watch",
        "60",
        "--cluster",
        "--prometheus",
        "--low-bandwidth",
        "--no-floor",
    ],
    ["tui_bench.py", "--runs", "1", "--watch", "60", "--low-bandwidth", "--no-floor"],
    ["kubectl_bench.py", "--runs", "3"],
    ["latency_bench.py", "--latency", "3", "--rounds", "3"],
    ["services_bench.py"],
    ["kubeconfig_bench.py", "--runs", "5"],
    ["sim_bench.py", "--scenario", "large"],
]

if "--rss" in sys.argv[1:]:
    BENCHES.append(["rss_bench.py", "--minutes", "30"])

for bench in BENCHES:
    script = HERE / bench[0]
    if not script.exists():
        continue
    print(f"== {' '.join(bench)}", flush=True)
    subprocess.run([sys.executable, str(script), *bench[1:]], check=False)
