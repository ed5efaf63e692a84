"""Step 3: stabilize tail latency. The engine's max output tokens, max context length and max
running sequences as they are in effect (implicit defaults included, vLLM's chosen by the GPU the
pods landed on), and one small reduction at a time, each its own plan so each reverts alone.

Smaller limits trade capacity for stability: fewer concurrent sequences or shorter contexts
leave KV-cache headroom, so a burst of long requests cannot push every pod into preemption.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from services.engine_options import set_option, validate_int
from services.engines import (
    ENGINE_NAMES,
    INT_LIMITS,
    SGLANG,
    TGI,
    VLLM,
    model_context_limit,
    parse_engine_config,
    tgi_env,
)
from services.errors import InvalidError
from services.gpu import GFD_MEMORY, class_memory_mib, expected_gpu_class, gpu_class_from_labels
from services.kube import Cluster
from services.models import EngineConfig, Knob, Plan, Step
from services.pin import container_plan, deployment_pods, engine_of, pick_container, setting_of

Obj = dict[str, Any]
KNOBS: tuple[str, ...] = ("max_output_tokens", "max_model_len", "max_num_seqs")
LABELS = {
    "max_output_tokens": "max output tokens",
    "max_model_len": "max context length",
    "max_num_seqs": "max running sequences",
}
# One step is a quarter of the current value, rounded down to a multiple that engines and
# humans handle well, never below a floor under which the server stops being useful.
REDUCTION = 0.25
STEPS: dict[str, tuple[int, int]] = {  # name -> (multiple, floor)
    "max_output_tokens": (64, 256),
    "max_model_len": (256, 2048),
    "max_num_seqs": (8, 8),
}


def action_of(name: str) -> str:
    return "latency." + name.replace("_", "-")


def next_step(name: str, current: int) -> int | None:
    """The next smaller value: 25% off, rounded down to the knob's multiple, never below its
    floor; None when `current` is already at or under the floor. Raises KeyError for an unknown
    knob."""
    multiple, floor = STEPS[name]
    proposed = max(floor, int(current * (1 - REDUCTION)) // multiple * multiple)
    return proposed if proposed < current else None


def tradeoff(engine: str, name: str, current: int | None, new: int) -> str:
    """What one change of a knob costs, in the operator's words."""
    label = LABELS[name]
    head = f"{label} {current if current is not None else 'unknown'} -> {new}"
    share = f"about {round(100 * (current - new) / current)}%" if current else "some"
    if current is not None and new > current:
        return f"{head}: more capacity per pod, at the cost of tail latency under load"
    if name == "max_num_seqs":
        where = (
            "requests over the limit get 429 (overloaded) and retry through the load balancer"
            if engine == TGI
            else "queueing moves to the engine's waiting queue and the load balancer"
        )
        return f"{head}: {share} less peak throughput per pod; {where}"
    if name == "max_model_len":
        return (
            f"{head}: requests whose prompt plus output exceed {new} tokens are refused "
            "(HTTP 400) instead of filling the KV cache; more sequences fit beside each other"
        )
    return (
        f"{head}: answers are cut at {new} tokens (finish_reason length); long generations "
        "hold decode slots for less time"
    )


# --- reads ---------------------------------------------------------------------------------


def gpu_groups(
    cluster: Cluster, pods: Sequence[Obj]
) -> list[tuple[str | None, int | None, list[str]]]:
    """(GPU class, memory MiB from the node label nvidia.com/gpu.memory, pod names) per distinct
    GPU among the nodes the pods run on; unscheduled pods are left out."""
    nodes: dict[str, tuple[str | None, int | None]] = {}
    groups: dict[tuple[str | None, int | None], list[str]] = {}
    for pod in pods:
        node = pod["spec"].get("nodeName")
        if not node:
            continue
        if node not in nodes:
            labels = cluster.get("Node", "", node)["metadata"].get("labels") or {}
            gpu_class, _key = gpu_class_from_labels(labels)
            memory = str(labels.get(GFD_MEMORY, ""))
            nodes[node] = (gpu_class, int(memory) if memory.isdigit() else None)
        groups.setdefault(nodes[node], []).append(pod["metadata"]["name"])
    return [(cls, mem, names) for (cls, mem), names in groups.items()]


def _gpu_text(gpu_class: str | None, memory: int | None) -> str:
    if memory is not None:
        return f"{gpu_class or 'GPU'} ({memory} MiB per node label {GFD_MEMORY})"
    return gpu_class or "an unknown GPU"


def vllm_seq_default(
    container: Mapping[str, Any],
    groups: list[tuple[str | None, int | None, list[str]]],
    template: Mapping[str, Any],
) -> tuple[int | None, str]:
    """(value, source) of vLLM's max-num-seqs when unset, from the GPUs the pods run on
    (`gpu_groups`); the smallest when they differ, so that a reduction lowers it on every pod.
    Raises nothing."""
    if not groups:
        # Nothing scheduled yet: the template's GPU selector, if any, says where pods will go.
        gpu_class, _why = expected_gpu_class(template, [], None)
        groups = [(gpu_class, class_memory_mib(gpu_class), [])]
    found: list[tuple[int | None, str, str]] = []
    for gpu_class, memory, pods in groups:
        value, source = parse_engine_config(container, memory, gpu_class).effective["max_num_seqs"]
        count = f", {len(pods)} pod{'s' if len(pods) != 1 else ''}" if pods else ""
        found.append((value, source, f"{value} on {_gpu_text(gpu_class, memory)}{count}"))
    if len(found) == 1:
        value, source, where = found[0]
        return value, f"{source}: {where}"
    known = [v for v, _s, _w in found if isinstance(v, int)]
    spread = "; ".join(w for _v, _s, w in found)
    return (min(known) if known else None), (
        f"vLLM default chosen per GPU, and the pods run on several ({spread}): the smallest is "
        "shown, so that a reduction lowers it everywhere"
    )


def _setting(engine: str, name: str) -> str:
    if name == "max_output_tokens" and engine == TGI:
        return f"{tgi_env('--max-total-tokens')} - {tgi_env('--max-input-tokens')}"
    if name == "max_output_tokens" and engine == SGLANG:
        return "(none: SGLang has no server-side cap)"
    return setting_of(engine, name)


def _knob(engine: str, name: str, cfg: EngineConfig, seq: tuple[int | None, str] | None) -> Knob:
    value, source = cfg.effective.get(name, (None, "unknown"))
    if name in cfg.configured and isinstance(value, int):
        source = f"explicit ({source})"
    elif name == "max_num_seqs" and engine == VLLM and seq is not None:
        value, source = seq
    length = cfg.effective.get("max_model_len", (None, ""))[0]
    if name == "max_output_tokens" and engine != TGI and isinstance(length, int):
        # No answer outlives the context: the context length bounds an absent or larger cap.
        if not isinstance(value, int):
            value, source = length, f"unset: bounded only by the max context length {length}"
        elif value > length:
            value, source = length, f"{source} is above the max context length {length}"
    current = value if isinstance(value, int) else None
    proposed = next_step(name, current) if current is not None else None
    if engine == SGLANG and name == "max_output_tokens":
        proposed = None
        text = (
            "SGLang has no server-side cap on output tokens: cap max_tokens at the gateway or "
            "client, or lower the max context length"
        )
    elif current is None:
        text = (
            f"{LABELS[name]} is not known here ({source}): give a value explicitly, or pin it "
            "first (step 2)"
        )
    elif proposed is None:
        text = f"{LABELS[name]} is already at its floor ({current}): reduce another knob instead"
    else:
        text = tradeoff(engine, name, current, proposed)
    return Knob(
        name=name,
        label=LABELS[name],
        setting=_setting(engine, name),
        current=current,
        source=str(source),
        proposed=proposed,
        tradeoff=text,
        action=action_of(name),
        container=cfg.container,
    )


def latency_knobs(
    cluster: Cluster, namespace: str, name: str, *, container: str | None = None
) -> list[Knob]:
    """The three step-3 knobs (max output tokens, max context length, max running sequences)
    of the Deployment's serving container, as its template has them in effect, each with the
    next small reduction and its trade-off. vLLM's implicit max-num-seqs follows the GPU
    memory of the pods' nodes. Raises NotFoundError (Deployment or container), InvalidError
    (no serving engine recognised)."""
    deployment = cluster.get("Deployment", namespace, name)
    template = deployment["spec"]["template"]
    target = pick_container(template, container)
    engine = engine_of(target)
    cfg = parse_engine_config(target)
    seq = None
    if engine == VLLM and "max_num_seqs" not in cfg.configured:
        groups = gpu_groups(cluster, deployment_pods(cluster, deployment))
        seq = vllm_seq_default(target, groups, template)
    return [_knob(engine, knob, cfg, seq) for knob in KNOBS]


# --- plans ---------------------------------------------------------------------------------


def knob_range(
    container: Mapping[str, Any], knob: str, current: int | None
) -> tuple[int, int, str]:
    """(lowest, highest, why that highest) value step 3 takes for a knob. The lowest is the
    engine's sane minimum (engines.INT_LIMITS); the highest is the smallest of: the knob's
    current effective value (step 3 only reduces: undo a reduction by reverting it), for the
    max context length the model's own context length where skewmit knows it (the engine
    refuses more at start and every pod crash-loops), and the sane maximum. Raises KeyError
    for an unknown knob."""
    low, high = INT_LIMITS[knob]
    why = "the largest value the engine takes"
    if knob == "max_model_len":
        limit, where = model_context_limit(container)
        if limit is not None and limit < high:
            high, why = limit, f"{where}: the engine refuses more and every pod crash-loops"
    if current is not None and current < high:
        high = current
        why = (
            f"the current value is {current}, and step 3 only reduces: to go back up, revert "
            "the reduction from the action log"
        )
    return low, high, why


def _tgi_context(container: Mapping[str, Any], cfg: EngineConfig, total: int) -> Obj:
    """TGI's context is MAX_TOTAL_TOKENS, which must stay above MAX_INPUT_TOKENS: lower the
    input limit by as much, so the output budget stays as it was."""
    old_total = cfg.effective["max_model_len"][0]
    max_input, where = cfg.effective.get("max_input_tokens", (None, ""))
    new = copy.deepcopy(dict(container))
    if "max_input_tokens" in cfg.configured and isinstance(max_input, int):
        if not where.startswith("env "):
            raise InvalidError(
                f"TGI's input limit is set by {where}; lower it together with the total by hand"
            )
        budget = old_total - max_input if isinstance(old_total, int) else 0
        new_input = total - budget
        if budget <= 0 or new_input < 1:
            raise InvalidError(
                f"MAX_TOTAL_TOKENS {total} leaves no room for MAX_INPUT_TOKENS ({max_input}) "
                f"and the output budget ({budget}): choose a larger value"
            )
        var = where.removeprefix("env ").split()[0]
        new["env"] = [
            {"name": var, "value": str(new_input)} if e.get("name") == var else e
            for e in new.get("env") or []
        ]
    return set_option(new, TGI, "max_model_len", str(total))


def knob_plan(
    cluster: Cluster,
    namespace: str,
    name: str,
    knob: str,
    value: int | str | None = None,
    *,
    container: str | None = None,
) -> Plan:
    """latency.max-output-tokens | latency.max-model-len | latency.max-num-seqs: one knob set
    to `value` (default the proposed next step), as its own plan. Raises InvalidError for an
    unknown knob, a value out of range (`knob_range`: the message names the value, the range
    and the fix), no value and nothing to
    propose, or a change the engine cannot take; NotFoundError for an unknown Deployment or
    container."""
    if knob not in KNOBS:
        raise InvalidError(f"unknown latency knob {knob!r}; choose one of: {', '.join(KNOBS)}")
    deployment = cluster.get("Deployment", namespace, name)
    old = pick_container(deployment["spec"]["template"], container)
    engine = engine_of(old)
    current = next(
        k for k in latency_knobs(cluster, namespace, name, container=old["name"]) if k.name == knob
    )
    if value is None:
        if current.proposed is None:
            raise InvalidError(f"no reduction to propose: {current.tradeoff}")
        value = current.proposed
    try:
        number = validate_int(knob, value)
        low, high, why = knob_range(old, knob, current.current)
        if number > high:
            raise InvalidError(
                f"{LABELS[knob]} {number} is out of range: step 3 takes {low} to {high} ({why})"
            )
        if engine == TGI and knob == "max_model_len":
            new = _tgi_context(old, parse_engine_config(old), number)
        else:
            new = set_option(old, engine, knob, str(number))
    except InvalidError as exc:
        raise InvalidError(f"{exc}; nothing was changed") from exc
    verb = "Reduce" if current.current is not None and number < current.current else "Set"
    notes = []
    if engine == VLLM and knob == "max_output_tokens":
        notes.append(
            "in recent vLLM releases --override-generation-config max_new_tokens is the default "
            "a request's own max_tokens overrides, not a ceiling: cap it at the gateway as well"
        )
    if engine == VLLM and knob == "max_num_seqs" and "explicit" not in current.source:
        notes.append("set explicitly, it no longer follows the GPU class the pods land on")
    return container_plan(
        deployment,
        new,
        step=Step.LATENCY,
        action=action_of(knob),
        title=(
            f"{verb} {LABELS[knob]} of {ENGINE_NAMES[engine]} container {old['name']} to {number}"
        ),
        summary=f"{old['name']} {LABELS[knob]} {current.current} -> {number}",
        tradeoff=tradeoff(engine, knob, current.current, number),
        notes=notes,
    )


# --- the runbook's entry points ------------------------------------------------------------

# Letters unique across every step (tui.keymap holds the whole map).
_KEYS = {"max_output_tokens": "o", "max_model_len": "k", "max_num_seqs": "n"}


def latency_actions(knobs: Sequence[Knob]) -> list[dict[str, Any]]:
    """One action per knob, as the runbook's ActionSpec fields, the proposed step as the
    default; unavailable where the engine has no such setting or the knob is at its floor.
    Raises nothing."""
    actions = []
    for knob in knobs:
        unknown = knob.current is None
        blocked = knob.setting.startswith("(none") or (not unknown and knob.proposed is None)
        step = f"{knob.current} -> {knob.proposed}" if knob.proposed else "to a value you give"
        actions.append(
            {
                "id": knob.action,
                "step": Step.LATENCY,
                "title": f"Reduce {knob.label} {step}",
                "key": _KEYS[knob.name],
                "description": knob.tradeoff,
                "inputs": (
                    {
                        "name": "value",
                        "prompt": f"New {knob.label} ({knob.setting})",
                        "default": "" if knob.proposed is None else str(knob.proposed),
                    },
                ),
                "available": not blocked,
                "reason": knob.tradeoff if blocked else "",
            }
        )
    return actions


def plan(
    cluster: Cluster, namespace: str, deployment: str, action_id: str, inputs: dict[str, str]
) -> Plan:
    """The runbook's entry: one knob's plan from operator input (empty = the proposed step).
    Raises InvalidError for an unknown action and what knob_plan raises."""
    knob = next((k for k in KNOBS if action_of(k) == action_id), None)
    if knob is None:
        raise InvalidError(f"unknown latency action {action_id!r}")
    return knob_plan(
        cluster, namespace, deployment, knob, (inputs.get("value") or "").strip() or None
    )
