"""Building a scenario's world in the store: namespaces, nodes, objects, revision histories.

Histories are replayed on the simulated clock, starting days in the past: each revision is
applied at its age and the real controllers roll it out, so ReplicaSets, revisions, events and
timestamps are exactly what a cluster that lived through those rollouts would show.
"""

from __future__ import annotations

import base64
import copy
import random
from collections.abc import Callable
from typing import Any

from services.simulator import seeded_managers, system_objects
from services.simulator.clock import rfc3339
from services.simulator.node_objects import node_objects
from services.simulator.scenario import DeploymentSpec, Scenario
from services.simulator.store import Store

Obj = dict[str, Any]
CHANGE_CAUSE = "kubernetes.io/change-cause"
SETTLE_STEP_S = 5.0
SETTLE_LIMIT_S = 900.0


def deployment_object(spec: DeploymentSpec, revision_index: int) -> Obj:
    rev = spec.history[revision_index]
    annotations = dict(spec.annotations)
    annotations.update(rev.annotations)
    if rev.change_cause:
        annotations[CHANGE_CAUSE] = rev.change_cause
    body: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "labels": dict(spec.deployment_labels or spec.labels),
            "annotations": annotations,
        },
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": dict(spec.labels)},
            "template": copy.deepcopy(rev.template),
        },
    }
    if spec.strategy:
        body["spec"]["strategy"] = copy.deepcopy(spec.strategy)
    return body


def build(
    store: Store,
    scenario: Scenario,
    settle: Callable[[float], bool],
    anchor: float,
    *,
    seed: int = 0,
) -> None:
    """Create the scenario's state, its history ending at `anchor` (simulated epoch seconds).

    `settle(limit_s)` ticks the controllers on simulated time until every rollout has settled
    (returning False when the limit passed first: a revision that never becomes ready). The
    cluster's own objects (system_objects) come first, named from a stream of their own.
    """
    registry = store.registry
    for ns in scenario.namespaces:
        store.create(registry.by_plural("namespaces"), {"metadata": {"name": ns}})
    index = 0
    for group in scenario.nodes:
        for node in node_objects(group, index, store.clock.time()):
            store.create(registry.by_plural("nodes"), node)
        index += group.count
    system_rng = random.Random(f"system:{seed}")
    system_objects.build(store, scenario, system_rng)
    with system_objects.own_rng(store, system_rng):
        settle(SETTLE_LIMIT_S)
    for obj in scenario.objects:
        rt = registry.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if rt is None:
            raise ValueError(
                f"scenario {scenario.name}: no resource type for "
                f"{obj.get('apiVersion')} {obj.get('kind')}; add it to "
                "custom_resources"
            )
        obj = copy.deepcopy(obj)
        if rt.kind == "Secret" and "stringData" in obj:
            data = obj.setdefault("data", {})
            for key, value in obj.pop("stringData").items():
                data[key] = base64.b64encode(str(value).encode()).decode()
        obj.setdefault("metadata", {}).setdefault("namespace", scenario.namespace)
        created = store.create(rt, obj)
        if rt.builtin:
            stored = store.peek(
                rt.plural, created["metadata"].get("namespace", ""), obj["metadata"]["name"]
            )
            if stored is not None:
                seeded_managers.record_applied(rt.kind, stored, obj, gitops=bool(scenario.gitops))
    # Replay every deployment's history in age order across deployments.
    steps = sorted(
        ((rev.age_s, d, i) for d in scenario.deployments for i, rev in enumerate(d.history)),
        key=lambda step: -step[0],
    )
    deploys = registry.by_plural("deployments")
    for age_s, spec, i in steps:
        target = anchor - age_s
        if store.clock.time() < target:
            store.clock.advance(target - store.clock.time())
        body = deployment_object(spec, i)
        if store.peek("deployments", spec.namespace, spec.name) is None:
            store.create(deploys, body)
        else:
            current = store.get(deploys, spec.namespace, spec.name)
            current["metadata"]["annotations"] = {
                **{
                    k: v
                    for k, v in current["metadata"].get("annotations", {}).items()
                    if k.startswith("deployment.kubernetes.io/")
                },
                **body["metadata"]["annotations"],
            }
            current["spec"]["template"] = body["spec"]["template"]
            store.update(deploys, current)
        settle(SETTLE_LIMIT_S)
    _record_writers(store, scenario)


def _record_writers(store: Store, scenario: Scenario) -> None:
    """Seeded objects carry the managedFields of the writers a real cluster would show
    (seeded_managers): the workload's owner for its manifests, then the controllers."""
    gitops = bool(scenario.gitops)
    for spec in scenario.deployments:
        stored = store.peek("deployments", spec.namespace, spec.name)
        if stored is not None and not stored["metadata"].get("managedFields"):
            manifest = deployment_object(spec, len(spec.history) - 1)
            seeded_managers.record_applied("Deployment", stored, manifest, gitops=gitops)
    now = rfc3339(store.clock.now())
    plurals = {rt.plural for rt in store.registry.all() if rt.builtin and rt.kind != "Event"}
    for plural in sorted(plurals):  # a kind served in two versions has one bucket
        seeded_managers.stamp_all(store.items(plural), now)
