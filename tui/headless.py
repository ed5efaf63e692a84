"""Headless commands for scripts and CI: `skewmit validate`, `skewmit evidence`,
`skewmit baseline capture`. No Textual here: these start fast and run anywhere.

Exit codes of `validate`: 0 pass, 1 fail, 3 insufficient data, 2 error (one message on
stderr). `evidence` and `baseline capture`: 0 written, 2 error.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from tui.cli import add_prometheus_arguments, add_target_arguments

EXIT_PASS, EXIT_FAIL, EXIT_ERROR, EXIT_INSUFFICIENT = 0, 1, 2, 3
VERDICT_EXIT = {"pass": EXIT_PASS, "fail": EXIT_FAIL, "insufficient-data": EXIT_INSUFFICIENT}
MARKS = {"pass": "ok  ", "fail": "FAIL", "insufficient-data": "n/a "}


def _metrics_arguments(p: argparse.ArgumentParser) -> None:
    add_prometheus_arguments(p)
    p.add_argument("--scrape-interval", metavar="DUR", help="Prometheus' scrape interval (30s)")
    p.add_argument("--rate-window", metavar="DUR", help="rate()/quantile window (1m)")
    group = p.add_argument_group(
        "baseline (last-known-good window; default: the one frozen in the open incident's "
        "journal, else offset 1d; refused when under 90% covered or inside the incident)"
    )
    group.add_argument("--baseline-offset", metavar="DUR", help="e.g. 1d, 7d, 3h")
    group.add_argument("--baseline-start", metavar="TIME", help="RFC 3339 or unix seconds")
    group.add_argument("--baseline-end", metavar="TIME", help="RFC 3339 or unix seconds")
    group.add_argument("--baseline-file", metavar="PATH", help="from `skewmit baseline capture`")
    group.add_argument(
        "--baseline-window", metavar="DUR", help="length of an offset baseline window"
    )


def _gate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--window", metavar="DUR", help="stability window the gate judges as a whole (default 10m)"
    )
    p.add_argument(
        "--expected-gpu-class",
        metavar="CLASS",
        help="e.g. H100-80GB, when the last-known-good revision pins none",
    )


def _state_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        help="skewmit state directory holding the journal (default: $XDG_STATE_HOME/skewmit)",
    )


def add_validate_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "validate",
        help="run the validation gate (exit 0 pass, 1 fail, 3 insufficient data, 2 error)",
        description="Read-only: judge whether the incident may be declared resolved: "
        "tokens/sec >= 90% of baseline, p95/p99 <= 110% of baseline over the stability window "
        "(at the histogram's bucket resolution), every ready pod reporting, GPU utilisation and "
        "memory like the last-known-good window, the rollout complete on the expected GPU "
        "class. Missing or stale data is never a pass.",
    )
    add_target_arguments(p)
    _metrics_arguments(p)
    _gate_arguments(p)
    p.add_argument("--json", action="store_true", help='print {"verdict": ..., "checks": [...]}')
    _state_argument(p)


def add_evidence_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "evidence",
        help="write the post-fix evidence bundle (folder and .tar.gz)",
        description="Write the evidence bundle: timeline, journal, manifests before and after, "
        "pod args and env, GPU inspector and nvidia-smi, metric series and charts, verdict, "
        "SHA-256 manifest. Secrets are masked.",
    )
    add_target_arguments(p)
    _metrics_arguments(p)
    _gate_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR", help="where to write the bundle")
    _state_argument(p)
    p.add_argument("--json", action="store_true", help="print the written paths as JSON")


def add_baseline_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("baseline", help="capture a last-known-good baseline to a file")
    actions = p.add_subparsers(dest="baseline_command", required=True)
    capture = actions.add_parser(
        "capture",
        help="evaluate the metrics over the baseline window and write them to a file",
        description="Capture the baseline now (e.g. while the deployment is healthy) for "
        "`skewmit validate --baseline-file`. Needs no cluster access.",
    )
    add_target_arguments(capture, namespace_required=True)  # no cluster: no default
    _metrics_arguments(capture)
    capture.add_argument("--window", metavar="DUR", help="window length (default 10m)")
    capture.add_argument("--out", required=True, metavar="FILE", help="baseline file to write")


# -- shared ------------------------------------------------------------------


def _fail(command: str, exc: BaseException) -> int:
    print(f"skewmit {command}: {exc}", file=sys.stderr)
    return EXIT_ERROR


def _settings(args: argparse.Namespace, config: dict[str, Any]) -> Any:
    """The metrics settings, bad input refused before anything is asked of a server.
    Raises ConfigError."""
    from services.config import metrics_settings
    from services.errors import ConfigError
    from services.metrics.baseline import duration_text

    settings = metrics_settings(
        config,
        url=args.prometheus,
        preset=args.preset,
        scrape_interval=args.scrape_interval,
        rate_window=args.rate_window,
        baseline_offset=args.baseline_offset,
        baseline_start=args.baseline_start,
        baseline_end=args.baseline_end,
        baseline_file=args.baseline_file,
        baseline_window=args.baseline_window,
    )
    rate, scrape = settings.rate_window_s, settings.scrape_interval_s
    if rate < scrape:
        # rate() over less than one scrape interval holds at most one sample: no value ever.
        raise ConfigError(
            f"the rate window {duration_text(rate)} is shorter than the scrape interval "
            f"{duration_text(scrape)}; use at least {duration_text(4 * scrape)} (--rate-window)"
        )
    return settings


def _explicit_baseline(args: argparse.Namespace) -> bool:
    """Whether the operator chose the baseline on the command line (it then replaces the
    incident's frozen one)."""
    return any(getattr(args, f"baseline_{key}", None) for key in ("offset", "start", "end", "file"))


def _thresholds(args: argparse.Namespace, config: dict[str, Any]) -> Any:
    from services.config import parse_duration
    from services.validation import Thresholds

    section = dict(config.get("thresholds") or {})
    if getattr(args, "window", None):
        section["stable_window"] = parse_duration(args.window, "--window")
    return Thresholds.from_mapping(section)


def _session(args: argparse.Namespace) -> dict[str, Any]:
    """Config, cluster, target, metrics source and thresholds. Raises SkewmitError."""
    from services.config import load_config
    from services.errors import InvalidError, UnreachableError
    from services.metrics.prometheus import from_settings
    from services.session import open_cluster
    from tui.cli import session_options

    config = load_config(args.config)
    settings = _settings(args, config)
    thresholds = _thresholds(args, config)
    cluster, target = open_cluster(session_options(args, read_only=True))
    source = from_settings(settings, target.namespace, target.deployment)
    source.check()
    expected = args.expected_gpu_class or config.get("expected_gpu_class")
    try:
        baseline = _baseline(args, cluster, target, source, settings, thresholds)
    except (InvalidError, UnreachableError):
        if args.command != "evidence":
            raise
        baseline = None  # a failed query: the bundle records it and is still written
    return {
        "config": config,
        "cluster": cluster,
        "target": target,
        "source": source,
        "thresholds": thresholds,
        "expected": expected,
        "baseline": baseline,
    }


def _baseline(
    args: argparse.Namespace,
    cluster: Any,
    target: Any,
    source: Any,
    settings: Any,
    thresholds: Any,
) -> Any:
    """The open incident's frozen baseline, or the operator's choice, checked (and journaled
    when an incident is open); evidence of a closed incident reuses that incident's. Raises
    BaselineRefused, SkewmitError."""
    from services import baseline_choice
    from services.evidence import find_journal

    root = Path(args.state_dir).expanduser() if getattr(args, "state_dir", None) else None
    journal = find_journal(target, root)
    explicit = _explicit_baseline(args)
    if journal is not None and journal.meta().get("status") != "open":
        if args.command == "evidence" and not explicit:
            found = baseline_choice.from_journal(journal)
            if found is not None:
                return found
        journal = None  # a closed incident is not written to, nor judged by a new verdict
    window = settings.baseline_window_s or thresholds.stable_window_s
    return baseline_choice.frozen(
        source, settings.baseline, window, cluster=cluster, journal=journal, explicit=explicit
    )


def _warnings(source: Any, baseline: Any) -> list[str]:
    from services.metrics.baseline import check_matches

    detection = source.detect()
    return [*detection.warnings, *detection.notes, *check_matches(baseline, source)]


def _print_verdict(verdict: Any, header: str, warnings: list[str]) -> None:
    print(f"verdict: {verdict.verdict.upper()}  ({header})")
    if verdict.remaining_s:
        print(f"  wait {math.ceil(verdict.remaining_s)} s: the stability window is still filling")
    for check in verdict.checks:
        observed = "-" if check.observed is None else f"{check.observed:.4g}"
        base = "-" if check.baseline is None else f"{check.baseline:.4g}"
        print(f"  {MARKS.get(check.status, '?   ')} {check.name}: {observed} vs baseline {base}")
        print(f"       {check.message} [{check.threshold}]")
        if check.query:  # the one query a human can run to check the figure
            print(f"       query: {check.query}")
    for warning in warnings:
        print(f"  note: {warning}")


# -- commands ----------------------------------------------------------------


def run_validate(args: argparse.Namespace) -> int:
    from services.baseline_choice import summary as baseline_summary
    from services.errors import SkewmitError
    from services.evidence import find_journal
    from services.validation import evaluate, rollout_facts, verdict_record

    try:
        s = _session(args)
        source, target = s["source"], s["target"]
        facts = rollout_facts(
            s["cluster"],
            target.namespace,
            target.deployment,
            configured_class=s["expected"],
            dcgm=source.dcgm_models(),
        )
        verdict = evaluate(source, facts, s["thresholds"], baseline=s["baseline"])
        warnings = _warnings(source, s["baseline"])
        root = Path(args.state_dir).expanduser() if args.state_dir else None
        journal = find_journal(target, root)
        if journal is not None and journal.meta().get("status") == "open":
            journal.append("validation", verdict_record(verdict))
    except SkewmitError as exc:
        return _fail("validate", exc)
    if args.json:
        doc = verdict.as_json() | {
            "preset": source.preset.name,
            "baseline": s["baseline"].how,
            "baseline_window": baseline_summary(s["baseline"]),
            "warnings": warnings,
        }
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        header = (
            f"{target.namespace}/{target.deployment}, {source.describe()}, "
            f"baseline {s['baseline'].describe_window()}"
        )
        _print_verdict(verdict, header, warnings)
    return VERDICT_EXIT[verdict.verdict]


def run_evidence(args: argparse.Namespace) -> int:
    from services.errors import SkewmitError
    from services.evidence import find_journal, write_bundle

    try:
        s = _session(args)
        target = s["target"]
        root = Path(args.state_dir).expanduser() if args.state_dir else None
        bundle = write_bundle(
            args.out,
            cluster=s["cluster"],
            target=target,
            journal=find_journal(target, root),
            source=s["source"],
            baseline=s["baseline"],
            thresholds=s["thresholds"],
            configured_gpu_class=s["expected"],
        )
    except SkewmitError as exc:
        return _fail("evidence", exc)
    verdict = bundle.verdict.verdict if bundle.verdict else "not judged"
    failures = [f"{what}: {error}" for what, error in bundle.failures]
    if args.json:
        doc = {
            "folder": str(bundle.folder),
            "tarball": str(bundle.tarball),
            "verdict": verdict,
            "failures": failures,
        }
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print(f"evidence: {bundle.folder}\ntarball:  {bundle.tarball}\nverdict:  {verdict}")
        for failure in failures:  # recorded in the bundle too (timeline.md, verdict.json)
            print(f"  not read: {failure}")
    return 0


def run_baseline(args: argparse.Namespace) -> int:
    from services.baseline_choice import check as check_baseline
    from services.config import load_config, parse_duration
    from services.errors import ConfigError, SkewmitError
    from services.metrics import baseline as baselines
    from services.metrics.prometheus import from_settings

    try:
        if args.baseline_command != "capture":
            raise ConfigError(f"unknown baseline command {args.baseline_command!r}; use capture")
        config = load_config(args.config)
        settings = _settings(args, config)
        if settings.baseline.mode == "file":
            raise ConfigError("baseline capture reads Prometheus; drop --baseline-file")
        namespace = args.namespace
        window = (
            parse_duration(args.window, "--window")
            if args.window
            else settings.baseline_window_s or 600.0
        )
        source = from_settings(settings, namespace, args.deployment)
        source.check()
        captured = baselines.capture(source, settings.baseline, window)
        if not captured.values:
            raise ConfigError(
                f"no metrics for {namespace}/{args.deployment} in the window "
                f"{baselines.utc(captured.start)} .. {baselines.utc(captured.end)}; check the "
                "preset, the namespace and the window"
            )
        # No cluster here: coverage is checked, the incident's revisions when it is used.
        captured = check_baseline(captured, source, None)
        path = baselines.save(captured, args.out)
    except SkewmitError as exc:
        return _fail("baseline capture", exc)
    quantities = ", ".join(sorted(captured.values))
    print(f"baseline: {path} ({captured.describe_window()}; {quantities})")
    return 0
