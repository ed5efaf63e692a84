"""Run every benchmark in bench/ and print their figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [["sim_bench.py", "--scenario", "large"], ["services_bench.py"]]

for bench in BENCHES:
    script = HERE / bench[0]
    if not script.exists():
        continue
    print(f"== {' '.join(bench)}", flush=True)
    subprocess.run([sys.executable, str(script), *bench[1:]], check=False)
