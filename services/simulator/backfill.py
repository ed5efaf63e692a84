"""History for a Prometheus that was not there: the fleet model run over a past window with a
revision's configuration (by default the one `rollout undo` restores: the last-known-good),
written as OpenMetrics with timestamps for `promtool tsdb create-blocks-from openmetrics`.

The demo feeds the same text to its in-process metrics source, so both have a day-old
baseline. Series carry the labels the live exposition carries (pod names follow
`<deployment>-<hash>-<suffix>`), so the same scoped queries find them.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from services.simulator.exposition import escape, render_metrics
from services.simulator.fleet import Fleet, ServingPod, TrafficSpec
from services.simulator.gpus import GpuClass, gpu_by_product
from services.simulator.runtime import gpu_request
from services.simulator.scenario import DeploymentSpec, Scenario, ScenarioError, load
from services.simulator.serving_config import NotAServingContainer, parse_container
from services.simulator.store import random_suffix, safe_encode

GPU_PRODUCT = "nvidia.com/gpu.product"
MAX_TICK_S = 5.0  # the fleet model advances at most this far per step here


@dataclass(frozen=True)
class History:
    """The rendered history and what it stands for."""

    text: str  # OpenMetrics, ending in "# EOF"
    namespace: str
    deployment: str
    revision: int  # 1-based, in the scenario's history order
    pods: tuple[str, ...]
    start: float
    end: float
    samples: int
    # Fleet sums stand for this many times the rendered pods' (a sample of a big fleet).
    scale: float = 1.0


def _deployment(scenario: Scenario, name: str | None) -> DeploymentSpec:
    wanted = name or scenario.deployment
    for spec in scenario.deployments:
        if spec.name == wanted or not wanted:
            return spec
    raise ScenarioError(f"scenario {scenario.name}: no deployment {wanted!r}")


def _gpu(scenario: Scenario, template: dict[str, object]) -> GpuClass:
    spec = template.get("spec") or {}
    selector = (spec.get("nodeSelector") if isinstance(spec, dict) else None) or {}
    product = selector.get(GPU_PRODUCT) if isinstance(selector, dict) else None
    if not product:
        # Without a selector the pods ran where most of the GPUs are: a stray node of another
        # class (the hardware-only story) is what went wrong later, not the history.
        totals: dict[str, int] = {}
        for group in scenario.nodes:
            if group.gpu:
                totals[group.gpu] = totals.get(group.gpu, 0) + group.count * max(1, group.gpus)
        product = max(totals, key=lambda g: totals[g], default="")
    if not product:
        raise ScenarioError(f"scenario {scenario.name}: no GPU nodes to run a history on")
    return gpu_by_product(str(product))


def _pods(
    scenario: Scenario,
    spec: DeploymentSpec,
    index: int,
    start: float,
    seed: int,
    pod_hash: str | None = None,
) -> list[ServingPod]:
    template = spec.history[index].template
    gpu = _gpu(scenario, template)
    rng = random.Random(seed)
    if not pod_hash:
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
        pod_hash = safe_encode(int.from_bytes(digest[:4], "big"))
    nodes = [
        (f"{group.prefix}-{i + 1}", group.gpus)
        for group in scenario.nodes
        if group.gpu == gpu.product_label
        for i in range(group.count)
    ] or [(f"{gpu.karpenter_name}-1", 8)]
    used = dict.fromkeys((n for n, _ in nodes), 0)
    out: list[ServingPod] = []
    for replica in range(spec.replicas):
        name = f"{spec.name}-{pod_hash}-{random_suffix(rng)}"
        for container in template["spec"]["containers"]:
            count = gpu_request(container)
            if count == 0:
                continue
            try:
                config = parse_container(container)
            except NotAServingContainer:
                continue
            node, capacity = nodes[replica % len(nodes)]
            for candidate, cap in nodes:
                if used[candidate] + count <= cap:
                    node, capacity = candidate, cap
                    break
            first = used[node] % max(1, capacity)
            used[node] += count
            out.append(
                ServingPod(
                    name=name,
                    namespace=spec.namespace,
                    deployment=spec.name,
                    node_name=node,
                    container_name=str(container["name"]),
                    config=config,
                    gpu=gpu,
                    gpu_count=count,
                    ready=True,
                    serving_since=start - 1.0,
                    gpu_indices=tuple(range(first, first + count)),
                )
            )
    return out


def render_history(
    scenario: str | Scenario,
    *,
    start: float,
    end: float,
    step_s: float = 5.0,
    revision: int | None = None,
    deployment: str | None = None,
    families: Collection[str] | None = None,
    target_labels: Mapping[str, str] | None = None,
    seed: int = 0,
    pod_template_hash: str | None = None,
    sample_pods: int | None = None,
    summed: Collection[str] = (),
) -> History:
    """Run the fleet from `start` to `end` (unix seconds) with revision `revision` (1-based;
    default: the second newest, what `rollout undo` restores) under the scenario's steady
    traffic (no burst: that belongs to the incident), sampling the exposition every `step_s`.
    `families` keeps only series whose name starts with one of them; `target_labels` are
    added to every series, as a scrape adds `job` and `instance`. `pod_template_hash` names
    the pods as that revision's ReplicaSet would (default: a hash of the scenario's template),
    so a reader can tell which revision served the window.

    `sample_pods` renders only that many of the revision's pods, spread evenly over the fleet,
    each serving the share of traffic it would in the whole fleet; the series named in
    `summed` (names or families: counters, histograms, gauges a query adds up) are scaled by the
    fleet's size over the sample's, so fleet sums, rates and quantiles read as the whole
    fleet's while the text is a fraction of it (a thousand pods: 786 MB and over a minute to
    render in full). Per-GPU gauges are averages and are left as they are.

    Raises ScenarioError for an unknown scenario, deployment or revision, ValueError for an
    empty window.
    """
    world = load(scenario) if isinstance(scenario, str) else scenario
    spec = _deployment(world, deployment)
    index = (revision - 1) if revision is not None else max(0, len(spec.history) - 2)
    if not 0 <= index < len(spec.history):
        raise ScenarioError(
            f"scenario {world.name}: deployment {spec.name} has revisions 1..{len(spec.history)}"
        )
    if end <= start or step_s <= 0:
        raise ValueError(f"empty history window {start}..{end} (step {step_s})")
    pods = _pods(world, spec, index, start, seed, pod_template_hash)
    share = 1.0
    if sample_pods is not None and 0 < sample_pods < len(pods):
        pods = representative(pods, sample_pods)
        share = len(pods) / spec.replicas
    traffic = {
        (t.namespace, t.deployment): TrafficSpec(
            requests_per_second=t.rps * share,
            long_context_share=t.long_context_share,
            client_timeout_s=t.client_timeout_s,
        )
        for t in world.traffic
        if (t.namespace, t.deployment) == (spec.namespace, spec.name)
    }
    fleet = Fleet(seed)
    writer = HistoryWriter(families, target_labels, scaled=summed, scale=1.0 / share)
    run_and_sample(fleet, pods, lambda _t: traffic, start, end, step_s, writer)
    return History(
        text=writer.text(),
        namespace=spec.namespace,
        deployment=spec.name,
        revision=index + 1,
        pods=tuple(p.name for p in pods),
        start=start,
        end=end,
        samples=writer.samples,
        scale=1.0 / share,
    )


def representative(pods: Sequence[ServingPod], count: int) -> list[ServingPod]:
    """`count` of the pods' names, spread evenly over the list (so over its nodes), with
    every container of a chosen pod."""
    names = list(dict.fromkeys(p.name for p in pods))
    stride = len(names) / count
    chosen = {names[int(i * stride)] for i in range(count)}
    return [p for p in pods if p.name in chosen]


class HistoryWriter:
    """Exposition pages sampled at given times, written out as OpenMetrics with timestamps.
    `families` keeps only series whose name starts with one of them; `target_labels` are
    added to every series."""

    def __init__(
        self,
        families: Collection[str] | None = None,
        target_labels: Mapping[str, str] | None = None,
        *,
        scaled: Collection[str] = (),
        scale: float = 1.0,
    ) -> None:
        self._wanted = tuple(families or ())
        # Exact family names: a summed family's name may begin another that is averaged.
        self._scaled = frozenset(scaled) if scale != 1.0 else frozenset()
        self._scale = scale
        self._extra = ",".join(
            f'{k}="{escape(v)}"' for k, v in sorted((target_labels or {}).items())
        )
        self._series: dict[str, list[str]] = {}
        self.samples = 0

    def sample(self, page: str, at: float) -> None:
        stamp = f"{at:.3f}"
        extra = self._extra
        for line in page.splitlines():
            if not line or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            if self._wanted and not head.startswith(self._wanted):
                continue
            if self._scaled and not self._scaled.isdisjoint(_families(head)):
                value = repr(float(value) * self._scale)
            if extra:
                head = (
                    head[:-1] + "," + extra + "}"
                    if head.endswith("}")
                    else head + "{" + extra + "}"
                )
            self._series.setdefault(head, []).append(f"{head} {value} {stamp}")
            self.samples += 1

    def text(self) -> str:
        # Every family's samples together, each series in time order: what the parser wants.
        lines = [
            line for head in sorted(self._series, key=_family_key) for line in self._series[head]
        ]
        return "\n".join([*lines, "# EOF"]) + "\n"


def run_and_sample(
    fleet: Fleet,
    pods: Sequence[ServingPod],
    traffic: Callable[[float], Mapping[tuple[str, str], TrafficSpec]],
    start: float,
    end: float,
    step_s: float,
    writer: HistoryWriter,
) -> None:
    """Advance `fleet` from `start` to `end` under `traffic(t)`, sampling its exposition into
    `writer` every `step_s` (and at `end`). Raises ValueError for an empty window."""
    if end <= start or step_s <= 0:
        raise ValueError(f"empty history window {start}..{end} (step {step_s})")
    now, next_sample = start, start + step_s
    tick = min(step_s, MAX_TICK_S)
    while now < end - 1e-9:
        dt = min(tick, end - now)
        now += dt
        fleet.advance(pods, traffic(now), now, dt)
        if now + 1e-9 < next_sample and now < end - 1e-9:
            continue
        next_sample += step_s
        writer.sample(render_metrics(fleet, pods), now)


def _families(head: str) -> tuple[str, str]:
    """A series' name, and its family: the name less a histogram's or counter's suffix."""
    name = head.split("{", 1)[0]
    for suffix in ("_bucket", "_count", "_sum", "_total"):
        if name.endswith(suffix):
            return name, name[: -len(suffix)]
    return name, name


def _family_key(head: str) -> tuple[str, str]:
    name = head.split("{", 1)[0]
    return name, head
