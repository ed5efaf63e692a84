"""`skewmit drill` and `skewmit drill inject`: the command line, kept free of Textual so the
trainer's inject command starts fast (the app is imported only to run the drill)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DRILL_SPEED = 12.0
EXIT_ERROR = 2


def side_file(kubeconfig: Path) -> Path:
    """Where `skewmit drill inject` finds the drill's journal, beside the kubeconfig."""
    return kubeconfig.with_name(kubeconfig.name + ".drill.json")


def add_drill_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from services.drill import CATALOGUE
    from services.drill_faults import FAULTS

    p = sub.add_parser(
        "drill",
        help="a training drill on the simulator: a hidden incident, hints, a debrief",
        description="Start an incident on the built-in simulator without saying which; fix it "
        "with the runbook. H shows a hint (counted), G gives up. When validation passes the "
        "debrief shows the score and writes drill-report.md. A trainer injects faults from a "
        "second terminal with `skewmit drill inject --kubeconfig K FAULT`.",
    )
    p.add_argument("--seed", type=int, default=None, help="seed for the random draw")
    p.add_argument(
        "--scenario",
        default="random",
        choices=["random", *sorted(CATALOGUE)],
        help="the incident (default: random; the name is shown only in the debrief)",
    )
    p.add_argument("--speed", type=float, default=DRILL_SPEED, help="simulated seconds per second")
    p.add_argument(
        "--kubeconfig",
        default="drill-kubeconfig",
        help="where to write the simulator's kubeconfig, for the trainer's `drill inject` "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--report", default="drill-report.md", help="the debrief's file (default: %(default)s)"
    )
    inner = p.add_subparsers(dest="drill_command", metavar="inject")
    inject = inner.add_parser(
        "inject",
        help="(trainer) inject a fault into a running drill",
        description="Faults: " + "; ".join(f"{f.name}: {f.what}" for f in FAULTS.values()),
    )
    inject.add_argument("--kubeconfig", required=True, help="the drill's kubeconfig")
    inject.add_argument("fault", choices=sorted(FAULTS), help="the fault to inject")


def run_drill(args: argparse.Namespace) -> int:
    from services.drill import choose
    from services.errors import SkewmitError
    from services.simulator.scenario import ScenarioError
    from tui.drill import DrillApp, open_drill_session
    from tui.launchers import close_session

    if args.drill_command == "inject":
        return run_inject(args)
    if not 0 < args.speed <= 1000:
        print(
            f"skewmit drill: --speed {args.speed} is out of range; use (0, 1000]", file=sys.stderr
        )
        return EXIT_ERROR
    try:
        variant = choose(args.scenario, args.seed)
        session, drill = open_drill_session(
            variant,
            speed=args.speed,
            seed=args.seed,
            kubeconfig=Path(args.kubeconfig),
            report_path=Path(args.report),
        )
    except (ScenarioError, SkewmitError, OSError) as exc:
        print(f"skewmit drill: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"drill kubeconfig (for `skewmit drill inject`): {drill.kubeconfig}", flush=True)
    try:
        DrillApp(session, drill).run()
    finally:
        close_session(session)
        side_file(drill.kubeconfig).unlink(missing_ok=True)  # the simulator is gone
    if drill.report_path.exists():
        print(f"drill over: debrief in {drill.report_path}")
    return 0


def run_inject(args: argparse.Namespace) -> int:
    """`skewmit drill inject --kubeconfig K FAULT`: through the simulator's fault API, and
    journaled in the drill's incident so the debrief shows it."""
    from services.drill import DRILL_ENTRY
    from services.drill_faults import fault_named, inject
    from services.errors import SkewmitError
    from services.journal import Journal
    from services.kube import KubeCluster
    from services.models import Target

    kubeconfig = Path(args.kubeconfig)
    try:
        drill = json.loads(side_file(kubeconfig).read_text())
    except (OSError, ValueError) as exc:
        print(
            f"skewmit drill inject: no running drill beside {kubeconfig} ({exc}); pass the "
            "--kubeconfig the drill was started with",
            file=sys.stderr,
        )
        return EXIT_ERROR
    fault = fault_named(args.fault)
    try:
        cluster = KubeCluster(str(kubeconfig), "skewmit-sim")
        done = inject(cluster, drill["namespace"], drill["deployment"], fault)
        target = Target(drill["context"], drill["namespace"], drill["deployment"])
        journal = Journal(Path(drill["journal"]), target, "trainer")
        journal.append(DRILL_ENTRY, {"event": "fault", "fault": fault.name, "detail": fault.what})
    except SkewmitError as exc:
        print(f"skewmit drill inject: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(done)
    return 0
