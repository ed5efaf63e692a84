"""The validation gate's judgement on a synthetic fleet fed to the simulator source on a clock
the test drives: the bucket-resolution rule, a clear fail before the window fills, a pass
only over the whole window, pods reporting against pods ready, DCGM freshness on its own, and
GPU figures judged for the expected class. The same cases on a real Prometheus:
test_gate_prometheus.py."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from services.judgement import bucket_of, compare_latency
from services.metrics.simsource import SimMetricsSource
from services.models import CheckResult
from services.validation import evaluate
from tests.services.test_validation import (
    A10G,
    BOUNDS,
    H100,
    POD_NAMES,
    T0,
    THRESHOLDS,
    Fleet,
    _facts,
    _source,
    world,
)

__all__ = ["world"]  # the fixture, shared with test_validation


def _check(verdict: object, name: str) -> CheckResult:
    return next(c for c in verdict.checks if c.name == name)  # type: ignore[attr-defined]


def test_quantiles_in_the_same_bucket_cannot_be_told_apart_and_do_not_fail() -> None:
    clock = [T0]
    source = _source(clock)
    fleet = Fleet(source, clock)
    # Baseline: 6% of requests at 3 s. Now: 8%. Both p95s lie between 2.5 and 5 s, where
    # the interpolated figures differ by more than 10% (2.92 s vs 3.44 s): noise of the
    # 2.5 -> 5 s bucket, not a measured regression.
    fleet.run(600, latency=0.8, slow=(0.06, 3.0))
    fleet.run(70, latency=0.8, slow=(0.08, 3.0))
    verdict = evaluate(source, _facts(), THRESHOLDS)
    p95 = _check(verdict, "p95")
    assert p95.observed > p95.baseline * 1.1  # type: ignore[operator]
    assert p95.status == "pass", p95.message
    assert "cannot be told apart at this resolution" in p95.message
    assert "between 2.5 and 5 s" in p95.message
    # Twice as many slow requests pushes p95 past the 5 s bound: a higher bucket, a fail.
    fleet.run(70, latency=0.8, slow=(0.08, 7.0))
    p95 = _check(evaluate(source, _facts(), THRESHOLDS), "p95")
    assert p95.status == "fail"
    assert "between 5 and 10 s" in p95.message


def test_a_clear_fail_shows_before_the_window_fills() -> None:
    clock = [T0]
    source = _source(clock)
    fleet = Fleet(source, clock)
    fleet.run(70, latency=0.8)  # the baseline window, 8 minutes before "now"
    clock[0] += 470  # the fix went out; the window starts afresh
    fleet.run(10, latency=8.0)
    verdict = evaluate(source, _facts(), THRESHOLDS)
    assert verdict.verdict == "fail"
    p95 = _check(verdict, "p95")
    assert p95.status == "fail" and "above the limit" in p95.message
    assert p95.observed is not None and p95.observed > 5


def test_a_quantile_on_the_top_bucket_gives_the_engines_own_reason() -> None:
    """vLLM V0's e2e buckets stop at 60 s: the warning names vLLM (the preset in use) and
    what to do, not a guess between vLLM and SGLang."""
    clock = [T0]
    source = _source(clock)
    fleet = Fleet(source, clock)
    fleet.run(70, latency=0.8)
    clock[0] += 470
    fleet.run(10, latency=0.8, slow=(0.05, 90.0))  # 5% of requests past the top bucket
    p99 = _check(evaluate(source, _facts(), THRESHOLDS), "p99")
    assert p99.observed == 60.0 and p99.status == "fail"
    assert "top histogram bucket (60 s)" in p99.message
    assert "vLLM V0 releases stop e2e latency buckets at 60 s" in p99.message
    assert "SGLang" not in p99.message


def test_a_good_start_waits_for_the_whole_window_and_says_how_long() -> None:
    clock = [T0]
    source = _source(clock)
    fleet = Fleet(source, clock)
    fleet.run(150, latency=0.8)  # covers the baseline window while this test runs
    clock[0] += 400
    fleet.run(20, latency=0.8)
    verdict = evaluate(source, _facts(), THRESHOLDS)
    assert verdict.verdict == "insufficient-data"
    assert verdict.remaining_s is not None and 30 < verdict.remaining_s < 60
    tokens = _check(verdict, "tokens_per_s")
    assert tokens.status == "insufficient-data" and "so far in band" in tokens.message
    assert f"wait {math.ceil(verdict.remaining_s)} s" in tokens.message
    fleet.run(int(verdict.remaining_s) + 1, latency=0.8)
    assert evaluate(source, _facts(), THRESHOLDS).verdict == "pass"


def test_fewer_pods_reporting_than_ready_is_never_a_pass(
    world: tuple[Fleet, SimMetricsSource, list[float]],
) -> None:
    fleet, source, _ = world
    assert evaluate(source, _facts(), THRESHOLDS).verdict == "pass"
    fleet.silent.add(fleet.pods[1])  # its series dropped (relabelling, a failing scrape)
    fleet.run(1, latency=0.8)
    verdict = evaluate(source, _facts(), THRESHOLDS)
    assert verdict.verdict == "insufficient-data"
    reporting = _check(verdict, "pods-reporting")
    assert reporting.status == "insufficient-data"
    assert reporting.message.startswith("1 of 2 ready pods reporting")
    assert fleet.pods[1] in reporting.message
    # A third ready pod that never reported at all counts the same way.
    fleet.silent.clear()
    fleet.run(1, latency=0.8)
    three = (*POD_NAMES, "llm-serve-5d8f7c9b4-klmno")
    verdict = evaluate(source, _facts(ready=three), THRESHOLDS)
    assert verdict.verdict == "insufficient-data"
    assert "2 of 3 ready pods reporting" in _check(verdict, "pods-reporting").message


def test_dcgm_that_stopped_is_judged_on_its_own_freshness(
    world: tuple[Fleet, SimMetricsSource, list[float]],
) -> None:
    fleet, source, _ = world
    fleet.dcgm = False
    fleet.run(3, latency=0.8)
    # The window's averages still hold a minute of DCGM data: they must not say "ok".
    assert source.instant("gpu_util", window_s=60)
    verdict = evaluate(source, _facts(), THRESHOLDS)
    assert verdict.verdict == "insufficient-data"
    assert _check(verdict, "gpu-data-fresh").status == "insufficient-data"
    assert not [c for c in verdict.checks if c.name.startswith("gpu_") and c.status == "pass"]


def test_gpu_checks_judge_the_expected_class_not_the_set_of_classes() -> None:
    clock = [T0]
    source = _source(clock)
    fleet = Fleet(source, clock)
    # The last-known-good window already had one pod on an A10G (hardware-only's history):
    # what the fix must restore is H100 figures on every pod, not the A10G.
    fleet.gpu[fleet.pods[1]] = A10G
    fleet.run(600, latency=0.8)
    before = evaluate(source, _facts(classes=("H100-80GB", "A10G-24GB")), THRESHOLDS)
    assert before.verdict == "fail"
    assert _check(before, f"gpu_util[{A10G}]").status == "fail"
    assert "expected class is H100-80GB" in _check(before, f"gpu_util[{A10G}]").message
    fleet.gpu[fleet.pods[1]] = H100  # the fix: the pod back on an H100
    fleet.run(70, latency=0.8)
    after = evaluate(source, _facts(), THRESHOLDS)
    assert after.verdict == "pass", [(c.name, c.status, c.message) for c in after.checks]
    assert not [c for c in after.checks if A10G in c.name]


def test_a_badly_covered_baseline_is_never_a_pass(
    world: tuple[Fleet, SimMetricsSource, list[float]],
) -> None:
    _, source, _ = world
    full = source.baseline(60)
    assert evaluate(source, _facts(), THRESHOLDS, baseline=full).verdict == "pass"
    # Two minutes of data in a ten-minute window: its rate reads a fifth of the truth, and
    # tokens/sec "passes at 302%" against it.
    thin = replace(full, coverage={"tokens_per_s": 0.2, "gpu_util": 1.0})
    verdict = evaluate(source, _facts(), THRESHOLDS, baseline=thin)
    assert verdict.verdict == "insufficient-data"
    tokens = _check(verdict, "tokens_per_s")
    assert tokens.status == "insufficient-data"
    assert "only 20% covered (needs 90%)" in tokens.message
    assert _check(verdict, f"gpu_util[{H100}]").status == "pass"


@pytest.mark.parametrize(
    ("live", "base", "outcome"),
    [
        (0.85, 0.8, "within"),  # under the 110% limit
        (0.95, 0.8, "indistinguishable"),  # above it, but both between 0.5 and 1 s
        (1.2, 0.8, "above"),  # a higher bucket
        (9.9, 5.5, "indistinguishable"),  # 5 -> 10 s: the histogram cannot say more
        (5.5, 4.9, "above"),  # past the 5 s bound that the baseline was under
        (5.3, 4.9, "within"),  # past the bound, but within 110% all the same
        (25.0, 21.0, "indistinguishable"),  # both between 20 and 60 s
    ],
)
def test_bucket_resolution_rule(live: float, base: float, outcome: str) -> None:
    result = compare_latency(live, base, 1.1, BOUNDS)
    assert result.outcome == outcome
    assert result.passes == (outcome != "above")
    assert result.limit == pytest.approx(base * 1.1)


def test_buckets_are_upper_inclusive_and_open_at_the_top() -> None:
    assert bucket_of(0.5, BOUNDS) == (0.0, 0.5)
    assert bucket_of(0.51, BOUNDS) == (0.5, 1.0)
    assert bucket_of(60.0, BOUNDS) == (20.0, 60.0)
    assert bucket_of(61.0, BOUNDS) == (60.0, math.inf)
    # Without bucket bounds (a summary, an override) the estimates decide alone.
    assert compare_latency(0.95, 0.8, 1.1, ()).outcome == "above"
