"""The `skewmit` command: the full-screen app, the demo, the simulator and headless commands.

Headless subcommands import neither Textual nor the app, so scripts and CI start fast.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.session import SessionOptions

EXIT_ERROR = 2


def kube_name(kind: str) -> Callable[[str], str]:
    """An argparse type: a valid Kubernetes name for `kind` (DNS-1123), checked before any
    URL or path is built from it; argparse reports a bad one and exits 2."""

    def parse(value: str) -> str:
        from services.errors import ConfigError
        from services.names import check_name

        try:
            return check_name(kind, value)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = f"{kind.lower()} name"
    return parse


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


def add_target_arguments(
    p: argparse.ArgumentParser,
    *,
    deployment_required: bool = True,
    namespace_required: bool = False,
) -> None:
    """The flags that name a target, resolved as kubectl resolves them, and the config file:
    one definition for the app, `check` and the headless commands."""
    p.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)"
    )
    p.add_argument("--context", help="kubeconfig context (default: the current context)")
    p.add_argument(
        "-n",
        "--namespace",
        required=namespace_required,
        type=kube_name("Namespace"),
        help="namespace (default: the context's namespace)",
    )
    p.add_argument(
        "--deployment",
        required=deployment_required,
        type=kube_name("Deployment"),
        help="the serving Deployment's name",
    )
    p.add_argument(
        "--config",
        help="skewmit config file, YAML or .toml: thresholds, query overrides, production "
        "contexts, expected GPU class (default: $SKEWMIT_CONFIG)",
    )


def add_prometheus_arguments(p: argparse.ArgumentParser) -> None:
    """Where the metrics come from: the app's and the headless commands' flags."""
    p.add_argument(
        "--prometheus",
        metavar="URL",
        help="Prometheus base URL for the live metrics and the validation gate "
        "(default: the config's prometheus.url)",
    )
    p.add_argument(
        "--preset",
        choices=("vllm", "tgi", "sglang", "auto"),
        help="which engine's metrics to query (default: the config's prometheus.preset, "
        "else detected)",
    )


def session_options(args: argparse.Namespace, *, read_only: bool | None = None) -> SessionOptions:
    """The target and session flags as services.session takes them (`read_only` overrides
    the flag: `check` and the headless commands change nothing). Without --config, the file
    $SKEWMIT_CONFIG names, as for the headless commands."""
    from services.session import SessionOptions

    return SessionOptions(
        kubeconfig=args.kubeconfig,
        context=args.context,
        namespace=args.namespace,
        deployment=args.deployment,
        read_only=args.read_only if read_only is None else read_only,
        prometheus=getattr(args, "prometheus", None),
        preset=getattr(args, "preset", None),
        config=args.config or os.environ.get("SKEWMIT_CONFIG") or None,
        take_over=getattr(args, "take_over", False),
        force_conflicts=getattr(args, "force_conflicts", False),
    )


def _check_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "check",
        help="print every step's findings (exit 0 none, 1 findings, 2 error)",
        description="Read-only: run the checks of every runbook step and print the findings. "
        "Exit 0 with no findings, 1 with findings, 2 on error; teams run it in CI to stop drift "
        "before it ships.",
    )
    add_target_arguments(p)
    p.add_argument("--json", action="store_true", help='print {"findings": [...]}')
    p.add_argument("--all", action="store_true", help="include info-level findings")


def run_check(args: argparse.Namespace) -> int:
    import json

    from services.config import load_config
    from services.errors import SkewmitError
    from services.runbook import Runbook
    from services.session import open_cluster

    try:
        config = load_config(args.config)
        cluster, target = open_cluster(session_options(args, read_only=True))
        runbook = Runbook(cluster, target, None, read_only=True, config=config)
        findings = runbook.findings(include_info=args.all)
    except SkewmitError as exc:
        print(f"skewmit check: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps({"findings": [f.as_json() for f in findings]}, indent=2))
    elif not findings:
        print(
            f"no findings for deployment/{target.deployment} in {target.namespace} "
            f"({target.context})"
        )
    else:
        for f in findings:
            print(
                f"{f.severity.value.upper():7} {f.step.value:8} {f.code:26} {f.subject}: "
                f"{f.message}"
            )
    return 1 if findings else 0


# The app's and the demo's flags live here rather than beside run_app in tui.launchers: that
# module imports the runbook and so the kubernetes client (~0.3 s), which `skewmit --help`
# must not pay.
DEMO_SPEED = 12.0  # simulated seconds per second: the whole walkthrough in about five minutes


def add_app_arguments(parser: argparse.ArgumentParser) -> None:
    """The full-screen app's flags; the kubeconfig is resolved as kubectl resolves it."""
    add_target_arguments(parser, deployment_required=False)  # `demo` needs none
    add_prometheus_arguments(parser)
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="show everything, change nothing (actions are unavailable)",
    )
    parser.add_argument(
        "--take-over",
        action="store_true",
        help="take the incident from the skewmit session holding it (it turns read-only)",
    )
    parser.add_argument(
        "--force-conflicts",
        action="store_true",
        help="let a server-side apply take fields another field manager owns (as kubectl's "
        "flag); the preview names each field taken and from whom. Agree with the owner first",
    )
    parser.add_argument(
        "--low-bandwidth",
        action="store_true",
        help="for slow links: no animation, the chart on demand (b), the clock by the "
        "minute (also SKEWMIT_LOW_BANDWIDTH=1 or `low_bandwidth: true` in the config)",
    )
    parser.add_argument(
        "--evidence-dir",
        default="evidence",
        help="where evidence bundles go (default: %(default)s)",
    )


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's flags (on top of the app's)."""
    parser.add_argument(
        "--scenario", default="skew-incident", help="simulator scenario (default: %(default)s)"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=DEMO_SPEED,
        help="simulated seconds per second (default: %(default)s)",
    )
    # SUPPRESS: `skewmit --read-only demo` keeps the top-level value instead of resetting it.
    parser.add_argument(
        "--read-only",
        action="store_true",
        default=argparse.SUPPRESS,
        help="use the simulator's read-only user",
    )
    parser.add_argument(
        "--force-conflicts",
        action="store_true",
        help="let a server-side apply take fields another field manager owns (as kubectl's "
        "flag); the preview names each field taken and from whom. Agree with the owner first",
    )
    parser.add_argument(
        "--low-bandwidth",
        action="store_true",
        default=argparse.SUPPRESS,
        help="for slow links: no animation, the chart on demand, the clock by the minute",
    )
    parser.add_argument(
        "--evidence-dir",
        default=argparse.SUPPRESS,
        help="where evidence bundles go (default: evidence)",
    )


# `skewmit drill` lists its scenarios and faults as choices, which imports services.drill and
# the journal (~0.1 s). Unless the command line names it, a stub with the same one-line help
# stands in: the top-level help needs nothing more, and argparse never enters the stub.
DRILL_HELP = "a training drill on the simulator: a hidden incident, hints, a debrief"


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `argv`, subcommands it does not name may be stubs."""
    from tui import headless

    parser = argparse.ArgumentParser(
        prog="skewmit",
        description="Walk the training-serving skew mitigation runbook against a live cluster. "
        "Without a subcommand: the full-screen app (needs --deployment).",
    )
    add_app_arguments(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="the full-screen app against the built-in simulator",
        description="Run the whole app against the built-in cluster simulator: no cluster needed.",
    )
    add_demo_arguments(demo)
    _sim_parser(sub)
    _check_parser(sub)
    headless.add_validate_parser(sub)
    headless.add_evidence_parser(sub)
    headless.add_baseline_parser(sub)
    if argv is None or "drill" in argv:
        from tui import drill_cli

        drill_cli.add_drill_parser(sub)
    else:
        sub.add_parser("drill", help=DRILL_HELP, add_help=False)
    from tui import bridge

    bridge.add_bridge_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command == "sim":
        return run_sim(args)
    if args.command == "check":
        return run_check(args)
    if args.command == "drill":
        from tui import drill_cli

        return drill_cli.run_drill(args)
    if args.command == "bridge":
        from tui import bridge

        return bridge.run_bridge(args)
    if args.command in ("validate", "evidence", "baseline"):
        from tui import headless

        runner = {
            "validate": headless.run_validate,
            "evidence": headless.run_evidence,
            "baseline": headless.run_baseline,
        }[args.command]
        return int(runner(args))
    from tui.launchers import run_app, run_demo

    if getattr(args, "low_bandwidth", False):
        # The app reads it where it reads the config (tui.low_bandwidth): one switch, three
        # ways to set it.
        os.environ["SKEWMIT_LOW_BANDWIDTH"] = "1"

    if args.command == "demo":
        return int(run_demo(args))
    if not args.deployment:
        parser.print_usage(sys.stderr)
        print(
            "skewmit: pass --deployment NAME (and --kubeconfig/--context/-n as with "
            "kubectl), or run `skewmit demo` to try it on the built-in simulator",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return int(run_app(args))


if __name__ == "__main__":
    sys.exit(main())
