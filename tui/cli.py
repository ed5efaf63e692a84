"""The `skewmit` command: the full-screen app, the demo, the simulator and headless commands.

Headless subcommands import neither Textual nor the app, so scripts and CI start fast.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

EXIT_ERROR = 2


def _sim_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sim",
        help="run the cluster simulator in the foreground (for kubectl, Prometheus and drills)",
        description="Serve a simulated GPU serving cluster on 127.0.0.1 until interrupted. "
        "Writes a kubeconfig with an admin context (skewmit-sim) and a read-only context "
        "(skewmit-sim-readonly).",
    )
    p.add_argument(
        "--scenario",
        default="skew-incident",
        help="built-in scenario name or path to a scenario .yaml (default: %(default)s)",
    )
    p.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig")
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: any free)")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per wall-clock second (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")


def run_sim(args: argparse.Namespace) -> int:
    from services.simulator.runner import Simulator
    from services.simulator.scenario import ScenarioError

    if args.speed <= 0 or args.speed > 1000:
        print(
            f"skewmit sim: --speed {args.speed} is out of range; use a value in (0, 1000]",
            file=sys.stderr,
        )
        return EXIT_ERROR
    if not 0 <= args.port <= 65535:
        print(
            f"skewmit sim: --port {args.port} is out of range; use 0 (any) to 65535",
            file=sys.stderr,
        )
        return EXIT_ERROR
    try:
        sim = Simulator(args.scenario, speed=args.speed, seed=args.seed, port=args.port).start()
    except ScenarioError as exc:
        print(f"skewmit sim: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(
            f"skewmit sim: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}; "
            "choose another --port or 0 for any free port",
            file=sys.stderr,
        )
        return EXIT_ERROR
    try:
        path = sim.write_kubeconfig(args.kubeconfig)
    except OSError as exc:
        sim.stop()
        print(f"skewmit sim: cannot write kubeconfig {args.kubeconfig}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(
        f"scenario: {sim.scenario.name} (speed x{args.speed:g}); kubeconfig: {path}; api: {sim.url}"
    )
    print(f"metrics: {sim.metrics_url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skewmit",
        description="Walk the training-serving skew mitigation runbook against a live cluster.",
    )
    sub = parser.add_subparsers(dest="command")
    _sim_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "sim":
        return run_sim(args)
    parser.print_help()
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
