"""Responsiveness while the API server is slow: the app against `skewmit sim` (a process of its
own) with the simulator adding --latency seconds to every API call (its fault API, POST
/_sim/faults), in a real terminal (tmux, 120x40). Presses the step keys 1-6 round after round
while the checks keep polling, and times each key press to the step pane's new heading on
screen (tmux capture-pane polled every ~10 ms, so figures carry that resolution). The longest
of these is an upper bound on the event loop's longest stall in that window, as the operator
feels it. Prints medians and maxima beside the same keys with no latency, and beside the
floor: the same keys in bench/floor_app.py (a minimal Textual app whose header's title a key
changes), drawn and polled the same way first, so that the figure is also a ratio to what
tmux, the polling and Textual cost on this machine at that moment; asserts nothing.

    .venv/bin/python bench/latency_bench.py [--latency 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from measure import (  # noqa: E402
    PYTHON,
    SKEWMIT,
    Terminal,
    bench_env,
    machine,
    median,
    unwind_on_sigterm,
    wait_until,
)

NS, NAME = "inference", "llm-serve"
CHROME = r"1 Roll back"
FLOOR_CHROME = r"pod-0000"  # the floor app's first table row


def set_faults(kubeconfig: Path, faults: list[dict[str, object]]) -> None:
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(kubeconfig))
    params = api.param_serialize(
        method="POST",
        resource_path="/_sim/faults",
        header_params={"Accept": "application/json", "Content-Type": "application/json"},
        body={"faults": faults},
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*params)
    response.read()
    api.close()
    if response.status != 200:
        sys.exit(f"latency_bench: POST /_sim/faults answered {response.status}")


def key_times(term: Terminal, rounds: int, shown: str = r"│ {key} · ") -> list[float]:
    """Seconds from each step key to its step's heading on screen (nan when it never shows);
    `shown`: the heading's regex, {key} the key pressed."""
    times = []
    for _ in range(rounds):
        for key in "234561":
            heading = re.compile(shown.format(key=key))
            start = time.perf_counter()
            term.keys(key)
            found = wait_until(lambda h=heading: bool(h.search(term.screen())), 30, poll=0.002)
            times.append(float("nan") if found is None else time.perf_counter() - start)
            time.sleep(0.3)
    return times


def summary(values: list[float]) -> str:
    seen = [v for v in values if v == v]
    missed = len(values) - len(seen)
    text = f"median {median(seen) * 1000:.0f} ms, max {max(seen) * 1000:.0f} ms" if seen else "-"
    return text + (f", {missed} never shown" if missed else "")


def floor_key_times(folder: Path, rounds: int) -> list[float]:
    """The same keys in the floor app (bench/floor_app.py, its header's title changed by a
    key), drawn in the same kind of terminal: what tmux, the polling and Textual cost."""
    term = Terminal(f"skewmit-bench-latency-floor-{time.monotonic_ns()}")
    try:
        term.start([PYTHON, str(ROOT / "bench" / "floor_app.py")], bench_env(folder / "floor"))
        if term.wait_for(FLOOR_CHROME, timeout=60) is None:
            sys.exit("latency_bench: the floor app never drew:\n" + term.screen())
        time.sleep(1)
        return key_times(term, rounds, r"{key} · bench floor")
    finally:
        term.close()


def ratios(times: list[float], floor: list[float]) -> str:
    seen, floor_seen = [v for v in times if v == v], [v for v in floor if v == v]
    if not seen or not floor_seen:
        return "-"
    return (
        f"x{median(seen) / median(floor_seen):.2f} median, x{max(seen) / max(floor_seen):.2f} max"
    )


def main() -> None:
    unwind_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=3.0, help="seconds added per API call")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not Terminal.available():
        sys.exit("latency_bench: tmux is not installed")
    print(f"# key press -> screen with a slow API server — {machine()}")
    with tempfile.TemporaryDirectory(prefix="skewmit-bench-") as tmp:
        folder = Path(tmp)
        floor = floor_key_times(folder, args.rounds)
        kubeconfig = folder / "kubeconfig"
        sim = subprocess.Popen(
            [*SKEWMIT, "sim", "--kubeconfig", str(kubeconfig), "--speed", "10"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
        )  # fmt: skip
        assert sim.stdout is not None
        for line in sim.stdout:
            if line.startswith("metrics:"):
                break
        term = Terminal(f"skewmit-bench-latency-{time.monotonic_ns()}")
        try:
            app = [*SKEWMIT, "--kubeconfig", str(kubeconfig), "-n", NS, "--deployment", NAME]
            term.start(app, bench_env(folder / "state"))
            if term.wait_for(CHROME, timeout=60) is None:
                sys.exit("latency_bench: the app never drew its checklist:\n" + term.screen())
            time.sleep(5)  # the first checks done
            fast = key_times(term, args.rounds)
            set_faults(kubeconfig, [{"verb": "*", "resource": "*", "latency_s": args.latency}])
            time.sleep(1)
            slow = key_times(term, args.rounds)
            set_faults(kubeconfig, [])
        finally:
            term.close()
            sim.terminate()
            sim.wait(timeout=30)
    print("| API latency added | key -> step heading on screen | floor (same run) | ratio |")
    print("|---|---|---|---|")
    for label, times in (("none", fast), (f"{args.latency:g} s on every call", slow)):
        print(f"| {label} | {summary(times)} | {summary(floor)} | {ratios(times, floor)} |")


if __name__ == "__main__":
    main()
