"""Steps 3 and 4 judge the live metrics against the frozen baseline as well as the
configuration (issue 10): no step says "clear" while its symptom is on the dashboard. Through the
real kubernetes client to the simulator, and the simulator's own exposition scraped by the
metrics source the demo uses, with yesterday's last-known-good history ingested."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from types import MappingProxyType

import pytest

from services.journal import Journal
from services.kube import KubeCluster
from services.metrics import presets
from services.metrics.baseline import BaselineSpec
from services.metrics.simsource import SimMetricsSource
from services.metrics.source import Scope
from services.models import Step, Target
from services.runbook import Runbook, StepReport
from services.simulator.backfill import render_history
from services.simulator.runner import Simulator
from services.symptoms import LONG_CONTEXT_RATIO, PROMPT_P95
from tests.services.conftest import BACKFILL_FAMILIES, DAY, VLLM_FAST

SPEED = 5.0
BASELINE_S = 120.0
PROMPTS = "vllm:request_prompt_tokens"
# The vLLM preset with the prompt-length p95 that step 4 reads.
PRESET = replace(
    presets.VLLM,
    queries=MappingProxyType(
        {**presets.VLLM.queries, PROMPT_P95: presets.QuerySpec(presets.QUANTILE, (PROMPTS,), 0.95)}
    ),
)


@dataclass
class World:
    sim: Simulator
    source: SimMetricsSource
    runbook: Runbook


def wait_for_report(runbook: Runbook, step: Step, code: str, limit_s: float = 90) -> StepReport:
    """Check the step until it reports `code` (bounded; the simulated fleet gets there)."""
    deadline = time.monotonic() + limit_s
    while True:
        report = runbook.check(step)
        if any(f.code == code for f in report.findings) or time.monotonic() > deadline:
            return report
        time.sleep(0.5)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("symptoms")
    with Simulator(VLLM_FAST, speed=SPEED, seed=5) as sim:
        assert sim.cluster is not None
        clock = sim.cluster.clock.time
        cluster = KubeCluster(str(sim.write_kubeconfig(tmp / "kubeconfig")))
        target = Target(cluster.context, "inference", "llm-serve", cluster.server, cluster.whoami())
        now = clock()
        source = SimMetricsSource(
            sim.metrics_url, Scope("inference", "llm-serve"), PRESET, clock=clock,
            scrape_interval_s=2.0, rate_window_s=20.0,
            baseline_spec=BaselineSpec(mode="range", start=now - DAY - BASELINE_S, end=now - DAY),
        )  # fmt: skip
        # The demo's way to a day-old baseline: the simulator's own history of revision 2.
        history = render_history(
            VLLM_FAST,
            start=now - DAY - BASELINE_S - 60,
            end=now - DAY + 60,
            step_s=2.0,
            revision=2,
            families=(*BACKFILL_FAMILIES, "vllm:num_requests_running", PROMPTS),
        )
        source.ingest(history.text)
        source.start()
        journal = Journal.open_for(target, target.user, root=tmp / "state")
        config = {"thresholds": {"stable_window": f"{BASELINE_S:g}s", "step": "2s"}}
        runbook = Runbook(cluster, target, journal=journal, metrics=source, config=config)
        try:
            yield World(sim, source, runbook)
        finally:
            source.stop()


def test_step_3_names_the_live_tail_latency_against_the_baseline(world: World) -> None:
    # Revision 3 runs float32: p95/p99 tens of times yesterday's (the issue saw x69, "clear").
    report = wait_for_report(world.runbook, Step.LATENCY, "tail-latency-high")
    assert report.state == "findings", report.detail
    high = {f.detail["quantity"]: f for f in report.findings if f.code == "tail-latency-high"}
    assert set(high) == {"p95", "p99"}, report.detail
    p95 = high["p95"]
    baseline = world.runbook.baseline()
    assert p95.detail["baseline"] == baseline.value("p95")
    assert p95.detail["live"] > 1.1 * p95.detail["baseline"]
    # The message names both numbers, the gate's limit and the action to take.
    assert f"{p95.detail['live']:.3g} s" in p95.message
    assert f"({p95.detail['baseline']:.3g} s)" in p95.message
    assert "validation allows +10%" in p95.message
    assert p95.detail["action"] == "latency.max-num-seqs" and "latency.max-num-seqs" in p95.message
    assert any(line.startswith("p95 latency") for line in report.detail)


def test_step_4_flags_a_surge_of_long_prompts(world: World) -> None:
    # The scenario's 4% share of long prompts sits next to the p95 boundary: a 20-second window
    # sometimes holds more than 5% of them. Calm means few long prompts, as after routing them.
    world.sim.call(
        world.sim.cluster.fleet.set_traffic,  # type: ignore[union-attr]
        {"deployment": "llm-serve", "long_context_share": 0.01},
    )
    # One rate window (simulated) for the old share to leave the window.
    calm = wait_for_report(
        world.runbook, Step.ROUTE, "never", limit_s=world.source.rate_window_s / SPEED + 1
    )
    assert "long-context-surge" not in {f.code for f in calm.findings}, calm.detail
    assert any(line.startswith("prompt length p95") for line in calm.detail), calm.detail
    world.sim.call(
        world.sim.cluster.fleet.set_traffic,  # type: ignore[union-attr]
        {"deployment": "llm-serve", "long_context_share": 0.6},
    )
    report = wait_for_report(world.runbook, Step.ROUTE, "long-context-surge")
    (surge,) = [f for f in report.findings if f.code == "long-context-surge"]
    assert report.state == "findings"
    assert surge.detail["live"] > LONG_CONTEXT_RATIO * surge.detail["baseline"]
    assert f"{surge.detail['live']:,.0f} tokens" in surge.message
    assert f"({surge.detail['baseline']:,.0f} tokens)" in surge.message
    assert "route.long-context" in surge.message


def test_without_a_prompt_length_query_step_4_says_it_was_not_judged(
    world: World,
) -> None:
    # A preset without a prompt-length histogram (SGLang's, or an override that drops it).
    queries = {q: spec for q, spec in presets.VLLM.queries.items() if q != PROMPT_P95}
    without = replace(presets.VLLM, queries=MappingProxyType(queries))
    plain = SimMetricsSource(world.sim.metrics_url, Scope("inference", "llm-serve"), without)
    runbook = Runbook(world.runbook.cluster, world.runbook.target, metrics=plain)
    report = runbook.check(Step.ROUTE)
    assert "long-context-surge" not in {f.code for f in report.findings}
    assert any("vllm:request_prompt_tokens" in line for line in report.detail), report.detail
