"""Step 3, stabilize latency: the engine's knobs with their implicit defaults (vLLM's chosen by
the GPU the pods landed on), and one small reduction per plan, each applied through the Gate,
verified and reverted on its own."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from services.errors import InvalidError, SkewmitError
from services.gate import RevertRefused
from services.latency import (
    knob_plan,
    latency_actions,
    latency_knobs,
    next_step,
    vllm_seq_default,
)
from services.latency import plan as latency_plan
from services.models import Knob, Step
from services.pin import applied_config
from services.rollout import undo_plan
from services.simulator.runner import Simulator
from tests.services.test_pin import DEPLOY, NS, SPEED, Harness, flag_value, wait_for

Obj = dict[str, Any]


def knobs_by_name(h: Harness, name: str = DEPLOY) -> dict[str, Knob]:
    return {k.name: k for k in latency_knobs(h.cluster, NS, name)}


def node_gpu_memory(h: Harness, selector: str) -> list[tuple[str, int]]:
    """(GFD product, memory MiB) of each pod's node: the oracle for vLLM's default."""
    out = []
    for pod in h.cluster.list("Pod", NS, label_selector=selector):
        labels = h.cluster.get("Node", "", pod["spec"]["nodeName"])["metadata"]["labels"]
        out.append((labels["nvidia.com/gpu.product"], int(labels["nvidia.com/gpu.memory"])))
    return out


def with_flag(args: list[str], flag: str, value: str) -> list[str]:
    """args with `flag` set to `value`: replaced in place, or appended."""
    if flag not in args:
        return [*args, flag, value]
    out = list(args)
    out[out.index(flag) + 1] = value
    return out


def test_next_step_is_a_quarter_down_rounded_and_floored() -> None:
    assert next_step("max_num_seqs", 1024) == 768
    assert next_step("max_num_seqs", 256) == 192
    assert next_step("max_num_seqs", 128) == 96
    assert next_step("max_num_seqs", 12) == 8
    assert next_step("max_num_seqs", 8) is None
    assert next_step("max_model_len", 8192) == 6144
    assert next_step("max_model_len", 2500) == 2048
    assert next_step("max_model_len", 2048) is None
    assert next_step("max_output_tokens", 1024) == 768
    assert next_step("max_output_tokens", 300) == 256


def test_vllm_knobs_show_the_gpu_chosen_default(shared_sim: Simulator, tmp_path: Path) -> None:
    h = Harness(shared_sim, tmp_path)
    knobs = knobs_by_name(h)
    assert [k.action for k in knobs.values()] == [
        "latency.max-output-tokens",
        "latency.max-model-len",
        "latency.max-num-seqs",
    ]
    gpus = node_gpu_memory(h, "app=llm-serve")
    # vLLM: 1024 on a >= 70 GiB GPU that is not an A100, else 256; the smallest across pods.
    expected = min(
        1024 if memory >= 70 * 1024 and "A100" not in product else 256 for product, memory in gpus
    )
    seqs = knobs["max_num_seqs"]
    assert (seqs.setting, seqs.current, seqs.proposed) == (
        "--max-num-seqs",
        expected,
        expected * 3 // 4,
    )
    assert "nvidia.com/gpu.memory" in seqs.source
    assert f"{expected} -> {expected * 3 // 4}: about 25% less peak throughput per pod" in (
        seqs.tradeoff
    )
    # No max model len and no cap: the effective values come from the model config.
    for name in ("max_model_len", "max_output_tokens"):
        assert knobs[name].current is None and knobs[name].proposed is None
        assert "give a value explicitly" in knobs[name].tradeoff


def test_vllm_default_follows_a10g_nodes(tmp_path: Path) -> None:
    # healthy: the A10G nodes are free (in skew-incident unpinned pods hold their GPUs).
    with Simulator("healthy", speed=SPEED) as sim:
        h = Harness(sim, tmp_path)
        small = copy.deepcopy(h.deployment())
        small["metadata"] = {"name": "small", "namespace": NS, "labels": {"app": "small"}}
        small["spec"]["replicas"] = 1
        small["spec"]["selector"] = {"matchLabels": {"app": "small"}}
        small["spec"]["template"]["metadata"]["labels"] = {"app": "small"}
        small["spec"]["template"]["spec"]["nodeSelector"] = {
            "nvidia.com/gpu.product": "NVIDIA-A10G"
        }
        small.pop("status", None)
        container = small["spec"]["template"]["spec"]["containers"][0]
        at = container["args"].index("--max-num-seqs")
        del container["args"][at : at + 2]  # leave the engine's hardware default in force
        h.cluster.create("Deployment", NS, small)
        wait_for(
            lambda: any(p["spec"].get("nodeName") for p in h.cluster.list("Pod", NS, "app=small")),
            "the pod to be scheduled",
        )
        assert node_gpu_memory(h, "app=small") == [("NVIDIA-A10G", 23028)]
        seqs = knobs_by_name(h, "small")["max_num_seqs"]
        assert (seqs.current, seqs.proposed) == (256, 192)
        assert "A10G" in seqs.source and "23028 MiB" in seqs.source


def test_pods_on_mixed_gpus_show_the_smallest_default() -> None:
    container = {"name": "vllm", "image": "vllm/vllm-openai:v0.8.5", "args": ["--model", "m"]}
    groups: list[tuple[str | None, int | None, list[str]]] = [
        ("H100-80GB", 81559, ["a", "b", "c"]),
        ("A10G", 23028, ["d"]),
    ]
    value, source = vllm_seq_default(container, groups, {})
    assert value == 256
    assert "1024 on H100-80GB" in source and "256 on A10G" in source and "smallest" in source


def test_each_knob_applies_verifies_and_reverts_on_its_own(tmp_path: Path) -> None:
    with Simulator("healthy", speed=SPEED) as sim:
        h = Harness(sim, tmp_path)
        original = h.template()
        knobs = knobs_by_name(h)
        assert {n: (k.current, k.proposed) for n, k in knobs.items()} == {
            "max_output_tokens": (8192, 6144),  # no cap: bounded by the context length
            "max_model_len": (8192, 6144),
            "max_num_seqs": (256, 192),
        }
        assert knobs["max_model_len"].source == "explicit (--max-model-len)"
        expected = {
            "max_output_tokens": ("--override-generation-config", '{"max_new_tokens": 6144}'),
            "max_model_len": ("--max-model-len", "6144"),
            "max_num_seqs": ("--max-num-seqs", "192"),
        }
        for name, (flag, value) in expected.items():
            h.settle()
            before = h.template()
            plan = knob_plan(h.cluster, NS, DEPLOY, name)
            assert (plan.step, plan.action) == (Step.LATENCY, knobs[name].action)
            assert plan.tradeoff == knobs[name].tradeoff
            assert len(plan.changes) == 1
            args = plan.changes[0].patch["spec"]["template"]["spec"]["containers"][0]["args"]
            assert flag_value(args, flag) == value
            applied = h.apply(plan, f"+        - '{value}'")
            # Exactly one flag changed (or was added); everything else as it was.
            assert h.container()["args"] == with_flag(
                before["spec"]["containers"][0]["args"], flag, value
            )
            h.settle()
            after = knobs_by_name(h)[name]
            assert after.current == knobs[name].proposed
            assert after.source.startswith("explicit")
            for _subject, shown, _env in applied_config(h.cluster, NS, DEPLOY):
                assert flag_value(shown, flag) == value
            h.revert(applied, before)
        assert h.template() == original


def test_reverts_go_newest_first(tmp_path: Path) -> None:
    with Simulator("healthy", speed=SPEED) as sim:
        h = Harness(sim, tmp_path)
        original = h.template()
        first = h.apply(knob_plan(h.cluster, NS, DEPLOY, "max_num_seqs"), "192")
        h.settle()
        second = h.apply(knob_plan(h.cluster, NS, DEPLOY, "max_model_len"), "6144")
        h.settle()
        # The older change is under the newer one: the Gate refuses and shows the difference.
        with pytest.raises(RevertRefused) as refused:
            h.gate.revert(first.seq)
        assert "6144" in refused.value.diff
        h.settle()
        h.gate.revert(second.seq)
        h.settle()
        h.gate.revert(first.seq)
        assert h.template() == original


def test_tgi_knobs_and_a_context_cut_keeps_the_output_budget(tmp_path: Path) -> None:
    with Simulator("tgi", speed=SPEED) as sim:
        h = Harness(sim, tmp_path)
        knobs = knobs_by_name(h)
        seqs = knobs["max_num_seqs"]
        assert (seqs.setting, seqs.current, seqs.source, seqs.proposed) == (
            "MAX_CONCURRENT_REQUESTS",
            128,
            "TGI default",
            96,
        )
        assert "429" in seqs.tradeoff
        # Back to the last-known-good revision, which sets every limit.
        preview = h.gate.preview(undo_plan(h.cluster, NS, DEPLOY))
        h.gate.apply(preview.plan, preview)
        h.settle()
        knobs = knobs_by_name(h)
        assert {n: (k.current, k.proposed) for n, k in knobs.items()} == {
            "max_output_tokens": (1024, 768),  # MAX_TOTAL_TOKENS 8192 - MAX_INPUT_TOKENS 7168
            "max_model_len": (8192, 6144),
            "max_num_seqs": (128, 96),
        }
        cases = {
            "max_model_len": {"MAX_TOTAL_TOKENS": "6144", "MAX_INPUT_TOKENS": "5120"},
            "max_output_tokens": {"MAX_TOTAL_TOKENS": "7936", "MAX_INPUT_TOKENS": "7168"},
            "max_num_seqs": {"MAX_CONCURRENT_REQUESTS": "96"},
        }
        for name, want in cases.items():
            h.settle()
            before = h.template()
            plan = knob_plan(h.cluster, NS, DEPLOY, name)
            patched = plan.changes[0].patch["spec"]["template"]["spec"]["containers"][0]
            assert "args" not in patched
            assert {e["name"]: e["value"] for e in patched["env"]}.items() <= want.items()
            applied = h.apply(plan, f"value: '{next(iter(want.values()))}'")
            env = {e["name"]: e.get("value") for e in h.container()["env"]}
            assert {k: env[k] for k in want} == want
            old_env = {e["name"]: e.get("value") for e in before["spec"]["containers"][0]["env"]}
            assert {k: v for k, v in env.items() if k not in want} == {
                k: v for k, v in old_env.items() if k not in want
            }
            h.settle()
            for _subject, _args, shown in applied_config(h.cluster, NS, DEPLOY):
                assert want.items() <= dict(shown).items()
            h.revert(applied, before)


@pytest.mark.parametrize(
    ("knob", "value", "message"),
    [
        ("max_tokens", None, "unknown latency knob"),
        ("max_num_seqs", 0, "between 1 and 65536, got 0"),
        ("max_num_seqs", "many", "must be a whole number"),
        ("max_model_len", 8, "between 16 and 2097152"),
        # Issue 10: a context the model cannot take crash-loops every pod at start.
        (
            "max_model_len",
            999999,
            r"max context length 999999 is out of range: step 3 takes 16 to 131072 "
            r"\(meta-llama/Llama-3.1-8B-Instruct's max_position_embeddings",
        ),
        # Step 3 reduces: a value above the current one names it and the way back.
        ("max_num_seqs", 60000, r"step 3 takes 1 to \d+ \(the current value is \d+.*revert"),
        ("max_model_len", None, "no reduction to propose"),
        ("max_output_tokens", None, "give a value explicitly"),
    ],
)
def test_invalid_knob_input_is_refused_and_changes_nothing(
    shared_sim: Simulator, tmp_path: Path, knob: str, value: Any, message: str
) -> None:
    h = Harness(shared_sim, tmp_path)
    before = h.deployment()
    with pytest.raises(InvalidError, match=message):
        knob_plan(h.cluster, NS, DEPLOY, knob, value)
    assert h.deployment()["spec"] == before["spec"]


def test_unknown_container_is_named(shared_sim: Simulator, tmp_path: Path) -> None:
    h = Harness(shared_sim, tmp_path)
    with pytest.raises(SkewmitError, match="has no container 'proxy'; it has: vllm"):
        latency_knobs(h.cluster, NS, DEPLOY, container="proxy")


def test_explicit_value_plans_for_an_unknown_default(shared_sim: Simulator, tmp_path: Path) -> None:
    h = Harness(shared_sim, tmp_path)
    plan = knob_plan(h.cluster, NS, DEPLOY, "max_output_tokens", 2048)
    args = plan.changes[0].patch["spec"]["template"]["spec"]["containers"][0]["args"]
    assert json.loads(flag_value(args, "--override-generation-config") or "{}") == {
        "max_new_tokens": 2048
    }
    assert any("not a ceiling" in note for note in plan.notes)


def test_runbook_actions_offer_the_proposed_step(shared_sim: Simulator, tmp_path: Path) -> None:
    h = Harness(shared_sim, tmp_path)
    knobs = latency_knobs(h.cluster, NS, DEPLOY)
    actions = {a["id"]: a for a in latency_actions(knobs)}
    seqs = knobs[2]
    assert actions["latency.max-num-seqs"]["inputs"][0]["default"] == str(seqs.proposed)
    assert actions["latency.max-num-seqs"]["title"] == (
        f"Reduce max running sequences {seqs.current} -> {seqs.proposed}"
    )
    # Unknown effective value: still offered, the operator gives the value.
    assert actions["latency.max-model-len"]["available"]
    assert actions["latency.max-model-len"]["inputs"][0]["default"] == ""
    assert len({a["key"] for a in actions.values()}) == 3
    built = latency_plan(h.cluster, NS, DEPLOY, "latency.max-num-seqs", {"value": ""})
    args = built.changes[0].patch["spec"]["template"]["spec"]["containers"][0]["args"]
    assert flag_value(args, "--max-num-seqs") == str(seqs.proposed)
    with pytest.raises(InvalidError, match="unknown latency action"):
        latency_plan(h.cluster, NS, DEPLOY, "latency.everything", {})
