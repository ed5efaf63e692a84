"""The validation gate: may the incident be declared resolved?

Runbook step 6: tokens/sec back near baseline, p95/p99 stable, GPU utilisation and memory like
the last-known-good window, and the rollout complete on the expected GPU class. The gate fails
closed: a premature "resolved" is the costliest mistake here, so missing or stale data, or
fewer pods reporting than are ready, gives `insufficient-data`, never `pass`.

How each criterion is judged (window-level estimates, the histogram's bucket resolution, a
clear fail at once and a pass only over the whole window): `services.judgement`; the metric
criteria themselves: `services.criteria`. This module gathers the rollout facts and puts the
verdict together.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from services import gpu, rollout
from services.config import parse_duration
from services.criteria import metric_checks
from services.errors import ConfigError, ForbiddenError
from services.judgement import FAIL, INSUFFICIENT, PASS, judge_statuses
from services.kube import Cluster
from services.metrics.baseline import Baseline
from services.metrics.source import MetricsSource
from services.models import CheckResult, GpuReading, RolloutProgress, Target, Verdict

__all__ = [
    "FAIL",
    "INSUFFICIENT",
    "PASS",
    "RolloutFacts",
    "Thresholds",
    "evaluate",
    "judge",
    "metric_checks",
    "rollout_checks",
    "rollout_facts",
    "validate",
    "verdict_record",
]

NO_SOURCE_FIX = "pass --prometheus URL or set prometheus.url"  # when no reason is known


@dataclass(frozen=True)
class Thresholds:
    tokens_min_ratio: float = 0.90  # tokens/sec at least this share of baseline
    latency_max_ratio: float = 1.10  # p95/p99 over the window at most this multiple of baseline
    stable_window_s: float = 600.0  # "stable": judged over the last N seconds, all of them
    gpu_util_band_points: float = 15.0  # GPU utilisation within +- this many points
    gpu_mem_band_ratio: float = 0.10  # framebuffer used within +- this share of baseline
    min_coverage: float = 0.8  # share of the window's samples that must exist for a pass
    step_s: float | None = None  # coverage sample spacing; None: the scrape interval
    stale_intervals: float = 2.0  # data older than this many scrape intervals is stale

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> Thresholds:
        """From the config's `thresholds` section. Raises ConfigError for a bad value."""
        if not values:
            return cls()
        names = {
            "stable_window": "stable_window_s",
            "step": "step_s",
            "stable_window_s": "stable_window_s",
            "step_s": "step_s",
        }
        kwargs: dict[str, float] = {}
        for key, value in values.items():
            field_name = names.get(key, key)
            if field_name not in cls.__dataclass_fields__:
                raise ConfigError(f"thresholds.{key} is not a known threshold")
            if field_name in ("stable_window_s", "step_s"):
                kwargs[field_name] = parse_duration(value, f"thresholds.{key}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"thresholds.{key} must be a number, not {value!r}")
            else:
                kwargs[field_name] = float(value)
        thresholds = cls(**kwargs)
        if not 0 < thresholds.tokens_min_ratio <= 1.5 or thresholds.latency_max_ratio < 1:
            raise ConfigError(
                "thresholds: tokens_min_ratio must be in (0, 1.5] and latency_max_ratio >= 1"
            )
        if not 0 < thresholds.min_coverage <= 1:
            raise ConfigError("thresholds.min_coverage must be in (0, 1]")
        return thresholds


@dataclass(frozen=True)
class RolloutFacts:
    """What the cluster says about the rollout and the GPUs under it."""

    progress: RolloutProgress
    rows: tuple[GpuReading, ...]
    expected_class: str | None
    expected_reason: str
    # Ready pods of the Deployment (not terminating): each must report fresh metrics.
    ready_pods: tuple[str, ...] = ()


def rollout_facts(
    cluster: Cluster,
    namespace: str,
    deployment: str,
    *,
    configured_class: str | None = None,
    dcgm: Mapping[str, str] | None = None,
) -> RolloutFacts:
    """Read the rollout's progress and each pod's GPU class against the expected one (the
    last-known-good revision's GPU selector, else the healthy pods' majority, else
    `configured_class`). Raises NotFoundError for an unknown Deployment, UnreachableError."""
    progress = rollout.progress(cluster, namespace, deployment)
    live = cluster.get("Deployment", namespace, deployment)
    selector = ",".join(
        f"{k}={v}" for k, v in sorted(live["spec"]["selector"].get("matchLabels", {}).items())
    )
    pods = [
        p
        for p in cluster.list("Pod", namespace, label_selector=selector)
        if not p["metadata"].get("deletionTimestamp")
    ]
    try:
        nodes = cluster.list("Node")
    except ForbiddenError:
        nodes = []  # the DCGM model or nvidia-smi still tells the class
    lkg_template = None
    revisions = rollout.history(cluster, namespace, deployment)
    lkg = next((r for r in revisions if r.last_known_good), None)
    if lkg is not None:
        for rs in rollout.owned_replicasets(cluster, live):
            if rs["metadata"]["name"] == lkg.replicaset:
                lkg_template = rs["spec"]["template"]
    by_node = {n["metadata"]["name"]: n for n in nodes}
    healthy = []
    ready_pods: list[str] = []
    for pod in pods:
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in pod.get("status", {}).get("conditions", [])
        )
        if ready:
            ready_pods.append(pod["metadata"]["name"])
        node = by_node.get(pod["spec"].get("nodeName", ""))
        if ready and node is not None:
            healthy.append(gpu.gpu_class_from_labels(node["metadata"].get("labels"))[0])
    expected, reason = gpu.expected_gpu_class(lkg_template, healthy, configured_class)
    rows = gpu.gpu_rows(pods, nodes, {}, dict(dcgm or {}), expected)
    return RolloutFacts(progress, tuple(rows), expected, reason, tuple(sorted(ready_pods)))


def rollout_checks(facts: RolloutFacts | None) -> list[CheckResult]:
    """`rollout-complete` and `gpu-class`. Without facts both are insufficient-data."""
    if facts is None:
        why = "no cluster to read the rollout from"
        return [
            CheckResult("rollout-complete", INSUFFICIENT, None, None, "no old pods", why),
            CheckResult("gpu-class", INSUFFICIENT, None, None, "expected class", why),
        ]
    p = facts.progress
    problems = "; ".join(f.message for f in p.problems)
    complete = p.done and p.old_pods == 0 and not p.problems
    message = p.message + (f"; {problems}" if problems else "")
    out = [
        CheckResult(
            "rollout-complete",
            PASS if complete else FAIL,
            float(p.updated),
            float(p.desired),
            "all replicas updated and available, no old pods, no crash loops",
            message,
        )
    ]
    threshold = f"every pod on {facts.expected_class or '?'}"
    rows = facts.rows
    if facts.expected_class is None:
        out.append(
            CheckResult("gpu-class", INSUFFICIENT, None, None, threshold, facts.expected_reason)
        )
    elif any(r.mismatch for r in rows):
        wrong = ", ".join(f"{r.pod} on {r.gpu_class}" for r in rows if r.mismatch)
        out.append(
            CheckResult(
                "gpu-class", FAIL, None, None, threshold, f"{wrong} ({facts.expected_reason})"
            )
        )
    elif not rows or any(r.gpu_class is None for r in rows):
        unknown = ", ".join(r.pod for r in rows if r.gpu_class is None) or "no pods"
        out.append(
            CheckResult(
                "gpu-class", INSUFFICIENT, None, None, threshold, f"GPU class unknown: {unknown}"
            )
        )
    else:
        out.append(
            CheckResult(
                "gpu-class",
                PASS,
                float(len(rows)),
                None,
                threshold,
                f"all {len(rows)} pods on {facts.expected_class} ({facts.expected_reason})",
            )
        )
    return out


def judge(
    checks: Sequence[CheckResult], at: float, window_s: float, remaining_s: float | None = None
) -> Verdict:
    """fail if any check fails; else insufficient-data if any lacks data (or there are none),
    with how long until the window fills when that is what is missing; pass only when every
    check passes."""
    verdict = judge_statuses([c.status for c in checks])
    wait = remaining_s if verdict == INSUFFICIENT and remaining_s else None
    return Verdict(verdict, tuple(checks), at, window_s, wait)


def evaluate(
    metrics: MetricsSource | None,
    facts: RolloutFacts | None,
    thresholds: Thresholds | Mapping[str, Any] | None = None,
    *,
    baseline: Baseline | None = None,
    now: float | None = None,
    no_source: str = "",
) -> Verdict:
    """The verdict from a metrics source and rollout facts (either may be missing: its
    checks are then insufficient-data; `no_source` says why there is no source, when it is
    known). Raises what the source raises, ConfigError."""
    t = thresholds if isinstance(thresholds, Thresholds) else Thresholds.from_mapping(thresholds)
    checks: list[CheckResult] = []
    remaining: float | None = None
    if metrics is None:
        why = f"no metrics source: {no_source or NO_SOURCE_FIX}"
        checks.append(CheckResult("metrics", INSUFFICIENT, None, None, "-", why))
        at = time.time() if now is None else now
    else:
        at = metrics.now() if now is None else now
        found, remaining = metric_checks(metrics, baseline, t, at, facts)
        checks += found
    checks += rollout_checks(facts)
    return judge(checks, at, t.stable_window_s, remaining)


def validate(
    cluster: Cluster | None,
    target: Target,
    metrics: MetricsSource | None,
    thresholds: Thresholds | Mapping[str, Any] | None = None,
    *,
    baseline: Baseline | None = None,
    configured_gpu_class: str | None = None,
    now: float | None = None,
    no_source: str = "",
) -> Verdict:
    """The gate's verdict for `target` (`no_source`: why `metrics` is None, when known).
    Raises NotFoundError for an unknown Deployment, UnreachableError, ForbiddenError,
    InvalidError from the cluster or the metrics source, ConfigError for bad thresholds or a
    bad baseline file."""
    t = thresholds if isinstance(thresholds, Thresholds) else Thresholds.from_mapping(thresholds)
    facts = None
    if cluster is not None:
        dcgm = metrics.dcgm_models(target.namespace, target.deployment) if metrics else None
        facts = rollout_facts(
            cluster,
            target.namespace,
            target.deployment,
            configured_class=configured_gpu_class,
            dcgm=dcgm,
        )
    return evaluate(metrics, facts, t, baseline=baseline, now=now, no_source=no_source)


def verdict_record(verdict: Verdict) -> dict[str, Any]:
    """The verdict as the journal and the evidence bundle store it."""
    return {
        "verdict": verdict.verdict,
        "at": verdict.at,
        "window_s": verdict.window_s,
        "remaining_s": verdict.remaining_s,
        "checks": [asdict(c) for c in verdict.checks],
    }
