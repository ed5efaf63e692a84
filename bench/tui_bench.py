"""`skewmit demo` in a real terminal (tmux, 120x40): time to the first frame (the checklist
drawn) and to the GPU inspector filled, then the steady state while watching (CPU % of a core
from /proc/<pid>/stat, bytes/s written to the terminal via pipe-pane, RSS), each beside the
floor (bench/floor_app.py: header, 3 sparklines, 50-row table, footer at 1 Hz) measured in the
same run. Medians of --runs runs; prints a Markdown table, asserts nothing.

The demo runs its simulator (the cluster and the serving fleet at x12) inside the same process,
so its CPU figure includes the simulated cluster's work; the floor's does not. `--cluster`
runs the real-cluster mode instead: the app against `skewmit sim` (speed 1) in a process of
its own, so the figures are the app's own; with `--prometheus` a real Prometheus scrapes the
simulator every 5 s and feeds the metrics pane (issue 12's set-up), without it the pane stays
empty. `--low-bandwidth` runs the app in that mode. SKEWMIT_BENCH_TREE=DIR measures another
checkout (e.g. `git archive HEAD` unpacked) for a before/after. `--keys v` presses those keys
(tmux key names, space-separated) once the inspector is filled, before the watch: `v` watches
the validation view, `question` the help over the main screen.

    .venv/bin/python bench/tui_bench.py [--runs 3] [--watch 60] [--cluster [--prometheus]]
        [--low-bandwidth] [--no-floor] [--keys "v"]
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import (
    PYTHON,
    SKEWMIT,
    Steady,
    Terminal,
    bench_env,
    cpu_seconds,
    machine,
    median,
    row,
    rss_mib,
    steady_state,
    table_header,
    unwind_on_sigterm,
    warm_up,
)

HERE = Path(__file__).resolve().parent
# The checklist's first row inside its frame: a frame drawn in part (the widgets that changed,
# on a blank screen) does not count as the first frame.
CHROME = r"[┃│]. 1 Roll back"
# The panes, each filled by its own data (issue 12: "panes fill independently"): step 1's
# answer on the checklist, a p95 figure in "Live metrics", a pod row in "Pods and GPUs"
# (the pod's name is shortened to its last characters when the column is narrow).
FINDINGS = r"1 Roll back +(findings +\d|ok|no findings)"
METRICS = r"│ p95 +[^│]*\d(\.\d+)? ?m?s\b"
INSPECTOR = r"[✓✗] +(llm-serve-[0-9a-z]+-|…)[0-9a-z]{2,5} "
MARKS = {"chrome": CHROME, "findings": FINDINGS, "metrics": METRICS, "inspector": INSPECTOR}
FLOOR_CHROME = r"pod-0000"  # the floor's first table row (drawn with everything else)
SETTLE_S = 5.0  # after the inspector fills, before watching
MARK_TIMEOUT_S = 60.0
NAN_STEADY = Steady(float("nan"), float("nan"), float("nan"), float("nan"))


def first_seen(term: Terminal, marks: list[str], timeout: float) -> list[float]:
    """Seconds from the program's start until each regex was first on screen (nan: never
    within `timeout`). One capture serves every mark, so a pane that fills before another
    is timed as it did, whatever the order of `marks`."""
    return [seconds for seconds, _cpu in marks_seen(term, marks, timeout)]


def marks_seen(
    term: Terminal, marks: list[str], timeout: float, pid: int = 0
) -> list[tuple[float, float]]:
    """For each regex, (seconds from the program's start, CPU seconds process `pid` had used)
    when it was first on screen; nan where it never was, and for the CPU without a `pid`.
    The CPU figure leaves out time the process spent waiting (for the network, for a core):
    where it tracks the seconds, the app was CPU-bound and a slow run was a slow CPU."""
    compiled = [re.compile(mark) for mark in marks]
    seen = [(float("nan"), float("nan"))] * len(marks)
    deadline = time.perf_counter() + timeout
    while any(math.isnan(t) for t, _ in seen) and time.perf_counter() < deadline:
        screen = term.screen()
        now = time.perf_counter() - term.started
        cpu = float("nan")
        for i, pattern in enumerate(compiled):
            if math.isnan(seen[i][0]) and pattern.search(screen):
                if pid and math.isnan(cpu):
                    try:
                        cpu = cpu_seconds(pid)
                    except OSError:
                        pass  # it has exited
                seen[i] = (now, cpu)
        time.sleep(0.01)
    return seen


def child_pid(parent: int) -> int:
    """The demo's simulator child (tui.demo_child) of `parent`, else 0."""
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            argv = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if ppid == parent and b"services.simulator.runner" in argv:
            return int(entry.name)
    return 0


CHILDREN: list[Steady] = []  # the demo's simulator child over each run's watch (NaN: none)
KEYS: list[str] = []  # pressed in the app (not the floor) before its watch (--keys)


def one_run(
    argv: list[str], marks: list[str], watch: float, tag: str
) -> tuple[list[float], Steady]:
    with tempfile.TemporaryDirectory(prefix="skewmit-bench-") as tmp:
        out = Path(tmp) / "pane.out"
        out.touch()
        term = Terminal(f"skewmit-bench-{tag}-{time.monotonic_ns()}")
        try:
            term.start(argv, bench_env(Path(tmp) / "state"), pipe_to=out)
            times = first_seen(term, marks, MARK_TIMEOUT_S)
            for mark, found in zip(marks, times, strict=True):
                if math.isnan(found):  # say what was on screen instead, and go on
                    tail = "\n".join(term.screen().rstrip().splitlines()[-12:])
                    print(f"{tag}: {mark!r} not on screen after {MARK_TIMEOUT_S:g} s:\n{tail}",
                          file=sys.stderr)  # fmt: skip
            if watch > 0:
                if tag != "floor" and KEYS:
                    term.keys(*KEYS)
                time.sleep(SETTLE_S)
                child = child_pid(term.pid()) if tag == "demo" else 0
                try:
                    c0, r0 = (cpu_seconds(child), rss_mib(child)) if child else (math.nan,) * 2
                    steady = steady_state(term.pid(), out, watch)
                    c1, r1 = (cpu_seconds(child), rss_mib(child)) if child else (math.nan,) * 2
                except (ValueError, OSError):  # the program is gone
                    steady, c0, c1, r0, r1 = NAN_STEADY, *(math.nan,) * 4
                if tag == "demo":
                    CHILDREN.append(Steady(100.0 * (c1 - c0) / watch, 0.0, r0, r1))
            else:
                steady = NAN_STEADY
        finally:
            term.close()
    return times, steady


def main() -> None:
    unwind_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--watch", type=float, default=60.0, help="seconds of steady state (0: start-up only)"
    )
    parser.add_argument("--cluster", action="store_true", help="real-cluster mode on `skewmit sim`")
    parser.add_argument("--prometheus", action="store_true", help="with a real Prometheus")
    parser.add_argument("--low-bandwidth", action="store_true", help="the low-bandwidth mode")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor app's runs")
    parser.add_argument("--keys", default="", help="keys to press before watching, e.g. v")
    args = parser.parse_args()
    KEYS.extend(args.keys.split())
    if not Terminal.available():
        sys.exit("tui_bench: tmux is not installed")
    low = ["--low-bandwidth"] if args.low_bandwidth else []
    mode = (" --low-bandwidth" if low else "") + (f", keys {args.keys!r}" if args.keys else "")
    with tempfile.TemporaryDirectory(prefix="skewmit-bench-") as tmp:
        if not args.cluster:
            evidence = ["--evidence-dir", str(Path(tmp) / "evidence")]
            measure_app([*SKEWMIT, "demo", *low, *evidence], f"`skewmit demo{mode}`", args)
            return
        from cluster_world import cluster_world

        with cluster_world(Path(tmp), prometheus=args.prometheus) as world:
            label = "real-cluster mode" + (" + Prometheus" if args.prometheus else "") + mode
            # Without a Prometheus no p95 ever shows: each run waited MARK_TIMEOUT_S for it.
            marks = MARKS if args.prometheus else {k: v for k, v in MARKS.items() if k != "metrics"}
            measure_app([*world.app_argv(Path(tmp) / "evidence"), *low], label, args, marks)


def measure_app(
    demo: list[str], label: str, args: argparse.Namespace, marks: dict[str, str] = MARKS
) -> None:
    print(f"# {label}, 120x40 in tmux — {machine()}")
    floor = [PYTHON, str(HERE / "floor_app.py")]
    d_times: list[list[float]] = []
    f_times: list[float] = []
    d_steady: list[Steady] = []
    f_steady: list[Steady] = []
    with tempfile.TemporaryDirectory(prefix="skewmit-bench-") as tmp:
        warm_up(demo, CHROME, Path(tmp) / "state")
    for i in range(args.runs):
        if args.no_floor:
            f_times.append(float("nan"))
            f_steady.append(NAN_STEADY)
        else:
            times, steady = one_run(floor, [FLOOR_CHROME], args.watch, "floor")
            f_times.append(times[0])
            f_steady.append(steady)
        times, steady = one_run(demo, list(marks.values()), args.watch, "demo")
        d_times.append(times)
        d_steady.append(steady)
        print(f"run {i + 1}: app {'/'.join(marks)} {'/'.join(f'{t:.2f}' for t in times)} s, "
              f"{steady.cpu_percent:.1f}% CPU, {steady.bytes_per_s / 1024:.1f} KiB/s, "
              f"RSS {steady.rss_end_mib:.0f} MiB; floor {f_times[-1]:.2f} s, "
              f"{f_steady[-1].cpu_percent:.1f}% CPU, {f_steady[-1].bytes_per_s / 1024:.1f} KiB/s",
              flush=True)  # fmt: skip
        if len(CHILDREN) > i and not math.isnan(CHILDREN[i].cpu_percent):
            print(f"       simulator child: {CHILDREN[i].cpu_percent:.1f}% CPU, "
                  f"RSS {CHILDREN[i].rss_end_mib:.0f} MiB", flush=True)  # fmt: skip
    fl = median(f_times)
    print(table_header())
    what = {
        "chrome": "chrome (checklist drawn)",
        "findings": "findings (step 1 answered)",
        "metrics": "live metrics filled",
        "inspector": "GPU inspector filled",
    }
    for i, mark in enumerate(marks):
        print(row(f"{label}: {what[mark]}", median([t[i] for t in d_times]),
                  "minimal Textual app drawn", fl))  # fmt: skip
    if args.watch <= 0:
        return
    name = f"watching {args.watch:g} s"
    print(row(f"{name}: CPU (% of a core)", median([s.cpu_percent for s in d_steady]),
              "3 sparklines + 50-row table at 1 Hz", median([s.cpu_percent for s in f_steady]),
              "%"))  # fmt: skip
    print(row(f"{name}: to the terminal", median([s.bytes_per_s / 1024 for s in d_steady]),
              "same floor", median([s.bytes_per_s / 1024 for s in f_steady]), "KiB/s"))  # fmt: skip
    print(row(f"{name}: RSS at the end", median([s.rss_end_mib for s in d_steady]),
              "same floor", median([s.rss_end_mib for s in f_steady]), "MiB"))  # fmt: skip
    growth = median([s.rss_end_mib - s.rss_start_mib for s in d_steady])
    print(f"app RSS change over the {args.watch:g} s watched: {growth:+.1f} MiB (median)")
    if CHILDREN and not math.isnan(median([c.cpu_percent for c in CHILDREN])):
        # The demo's simulator as a child process: the cluster's and the fleet's work.
        print(row(f"{name}: simulator child CPU", median([c.cpu_percent for c in CHILDREN]),
                  "same floor", median([s.cpu_percent for s in f_steady]), "%"))  # fmt: skip
        print(row(f"{name}: simulator child RSS at the end",
                  median([c.rss_end_mib for c in CHILDREN]), "same floor",
                  median([s.rss_end_mib for s in f_steady]), "MiB"))  # fmt: skip


if __name__ == "__main__":
    main()
