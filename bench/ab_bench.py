"""Before and after, alternated: the real-cluster mode's start-up figures (chrome, findings,
live metrics, GPU inspector: bench/tui_bench.py's marks) for an earlier commit and this
checkout, run by turns against one `skewmit sim` and one Prometheus, so that a moment when the
shared machine is slow falls on both. This machine's load moves a figure by 10-20 % from one
minute to the next (bench/RESULTS.md): a change worth 50 ms shows only in runs taken together.

The earlier commit is `git archive`d into a temporary folder and run with this checkout's
virtualenv (its dependencies must be the same); the simulator is this checkout's for both, so
the comparison is the app's alone. Prints each run and the medians; asserts nothing.

    .venv/bin/python bench/ab_bench.py --before REV [--runs 8] [--scenario large]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure
from cluster_world import cluster_world
from measure import Terminal, bench_env, machine, median, unwind_on_sigterm, warm_up
from tui_bench import MARK_TIMEOUT_S, MARKS, marks_seen

ROOT = Path(__file__).resolve().parents[1]
PAUSE_S = 1.0  # between runs: the last one's process and tmux server are gone


def unpack(rev: str, into: Path) -> None:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def main() -> None:
    unwind_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", required=True, help="the earlier commit (any git revision)")
    parser.add_argument("--runs", type=int, default=8, help="runs of each tree")
    parser.add_argument("--scenario", default="skew-incident")
    args = parser.parse_args()
    if not Terminal.available():
        sys.exit("ab_bench: tmux is not installed")
    names = list(MARKS)
    with tempfile.TemporaryDirectory(prefix="skewmit-ab-") as tmp:
        before = Path(tmp) / "before"
        unpack(args.before, before)
        trees = {f"before ({args.before})": before, "after (this checkout)": ROOT}
        seen: dict[str, list[list[tuple[float, float]]]] = {label: [] for label in trees}
        print(f"# real-cluster mode + Prometheus on `{args.scenario}`, 120x40 — {machine()}")
        with cluster_world(
            Path(tmp), prometheus=True, scenario=args.scenario, scrape_wait_s=120
        ) as world:
            for tree in trees.values():  # the caches the app writes, as after a first start
                measure.TREE = tree
                warm_up(world.app_argv(Path(tmp) / "ev"), MARKS["inspector"], Path(tmp) / "st")
            for i in range(args.runs):
                order = list(trees.items())
                for label, tree in order if i % 2 == 0 else order[::-1]:
                    measure.TREE = tree  # Terminal.start runs the program from there
                    term = Terminal(f"skewmit-ab-{time.monotonic_ns()}")
                    try:
                        term.start(world.app_argv(Path(tmp) / "ev"), bench_env(Path(tmp) / "st"))
                        found = marks_seen(
                            term, [MARKS[n] for n in names], MARK_TIMEOUT_S, term.pid()
                        )
                    finally:
                        term.close()
                    seen[label].append(found)
                    shown = " ".join(
                        f"{n} {t:.3f} ({cpu:.2f} CPU)"
                        for n, (t, cpu) in zip(names, found, strict=True)
                    )
                    print(f"run {i + 1}, {label}: {shown} s", flush=True)
                    time.sleep(PAUSE_S)
    print("| figure (median s; CPU s of the app by then) | " + " | ".join(trees) + " |")
    print("|---|" + "---|" * len(trees))
    for k, name in enumerate(names):
        cells = " | ".join(
            f"{median([r[k][0] for r in seen[label]]):.3f} "
            f"({median([r[k][1] for r in seen[label]]):.2f} CPU)"
            for label in trees
        )
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
