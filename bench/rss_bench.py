"""RSS over time: the app in a real terminal (tmux, 120x40), its resident memory sampled
from /proc every --every seconds for --minutes minutes (default 30), then start, peak, end
and the least-squares slope (MiB per hour) over the run after the first --settle seconds.
Asserts nothing; a flat line has a slope near zero.

    .venv/bin/python bench/rss_bench.py [--minutes 30] [--every 10] [--cluster] [--prometheus]
        [--low-bandwidth] [--csv FILE] [--mark-every 5] [--speed X]

It prints RSS at start and every --mark-every minutes as it goes (start, 5, 10, ... 30 min).
`--speed X` runs the simulator's clock X times faster (the demo's default is x12; real-cluster
mode runs `skewmit sim` at x1 unless told): an accelerated run fills the time-bounded windows
(metrics retention, fleet history) sooner, so a plateau shows within fewer wall minutes.

Default: `skewmit demo` (its in-process simulator included). `--cluster`: the app against
`skewmit sim` in its own process (with `--prometheus`, a real Prometheus scraping it).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import (
    SKEWMIT,
    Terminal,
    bench_env,
    cpu_seconds,
    machine,
    rss_mib,
    unwind_on_sigterm,
)

CHROME = r"1 Roll back"


def slope_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) in MiB per hour."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (m - mean_m) for t, m in samples)
    return cov / var * 3600.0


def watch(argv: list[str], args: argparse.Namespace, state: Path) -> None:
    term = Terminal(f"skewmit-rss-{time.monotonic_ns()}")
    if args.env:
        argv = ["env", *args.env, *argv]  # exec'd: the pane's pid is still the app's
    csv = open(args.csv, "w") if args.csv else None  # noqa: SIM115
    try:
        term.start(argv, bench_env(state))
        if term.wait_for(CHROME, timeout=120) is None:
            sys.exit("rss_bench: the app did not draw its checklist in 120 s")
        pid = term.pid()
        start = time.monotonic()
        cpu0 = cpu_seconds(pid)
        samples: list[tuple[float, float]] = []
        next_mark = 0.0
        while (elapsed := time.monotonic() - start) < args.minutes * 60:
            rss = rss_mib(pid)
            samples.append((elapsed, rss))
            if elapsed >= next_mark:
                print(f"  {elapsed / 60:5.1f} min: {rss:7.1f} MiB", flush=True)
                next_mark += args.mark_every * 60
            if csv is not None:
                csv.write(f"{elapsed:.0f},{rss:.1f}\n")
                csv.flush()
            time.sleep(args.every)
        cpu = 100.0 * (cpu_seconds(pid) - cpu0) / (time.monotonic() - start)
    finally:
        term.close()
        if csv is not None:
            csv.close()
    settled = [(t, m) for t, m in samples if t >= args.settle] or samples
    peak_t, peak = max(samples, key=lambda s: s[1])
    print(f"  {samples[-1][0] / 60:5.1f} min: {samples[-1][1]:7.1f} MiB (end)")
    print(f"samples: {len(samples)} over {samples[-1][0] / 60:.1f} min, every {args.every:g} s")
    print(
        f"RSS start {samples[0][1]:.1f} MiB, after {args.settle:g} s {settled[0][1]:.1f} MiB, "
        f"peak {peak:.1f} MiB (at {peak_t / 60:.1f} min), end {samples[-1][1]:.1f} MiB"
    )
    print(
        f"slope after {args.settle:g} s: {slope_per_hour(settled):+.2f} MiB/h; "
        f"mean CPU {cpu:.1f}% of a core"
    )


def main() -> None:
    unwind_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--settle", type=float, default=120.0, help="seconds before the slope")
    parser.add_argument("--cluster", action="store_true", help="real-cluster mode")
    parser.add_argument("--prometheus", action="store_true", help="with a real Prometheus")
    parser.add_argument("--low-bandwidth", action="store_true")
    parser.add_argument("--csv", help="also write elapsed_s,rss_mib lines here")
    parser.add_argument("--mark-every", type=float, default=5.0, help="minutes between marks")
    parser.add_argument("--speed", type=float, help="the simulator's clock speed")
    parser.add_argument(
        "--env", action="append", default=[], help="NAME=VALUE for the app (MALLOC_ARENA_MAX=2)"
    )
    args = parser.parse_args()
    if not Terminal.available():
        sys.exit("rss_bench: tmux is not installed")
    extra = ["--low-bandwidth"] if args.low_bandwidth else []
    mode = "real-cluster mode" if args.cluster else "`skewmit demo`"
    clock = f", simulated clock x{args.speed:g}" if args.speed else ""
    clock += "".join(f", {setting}" for setting in args.env)
    print(f"# RSS of {mode}{' --low-bandwidth' if extra else ''}{clock} — {machine()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="skewmit-rss-") as tmp:
        folder = Path(tmp)
        if not args.cluster:
            argv = [*SKEWMIT, "demo", *extra, "--evidence-dir", str(folder / "evidence")]
            if args.speed:
                argv += ["--speed", f"{args.speed:g}"]
            watch(argv, args, folder / "state")
            return
        from cluster_world import cluster_world

        with cluster_world(folder, prometheus=args.prometheus, speed=args.speed or 1.0) as world:
            watch([*world.app_argv(folder / "evidence"), *extra], args, folder / "state")


if __name__ == "__main__":
    main()
