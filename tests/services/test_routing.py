"""Step 4 against the simulator through the real client: router detection, the long-context
plan previewed, applied, verified, routed by the fleet, and reverted to exactly what was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from services import routing, simulator
from services.errors import InvalidError, NotFoundError
from services.gate import Gate, comparable
from services.kube import KubeCluster
from services.models import Severity, Step
from services.simulator.runner import Simulator
from tests.services import harness
from tests.services.harness import connect, wait_for

NS, NAME, LONG = "inference", "llm-serve", "llm-serve-long"
SPEED = 60.0


def gate_for(cluster: Any, tmp_path: Path) -> Gate:
    return harness.gate_for(cluster, tmp_path, NS, NAME)


def traffic(sim: Simulator) -> dict[str, Any]:
    assert sim.cluster is not None
    cluster = sim.cluster
    spec = sim.call(lambda: cluster.fleet.traffic(cluster.clock.time()))
    return {deployment: t for (_ns, deployment), t in spec.items()}


def absent(cluster: KubeCluster, kind: str, name: str) -> bool:
    try:
        cluster.get(kind, NS, name)
    except NotFoundError:
        return True
    return False


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Simulator]:
    with Simulator("skew-incident", speed=SPEED) as sim:
        yield sim


def test_detects_the_httproute_and_reports_long_context_unrouted(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    cluster = connect(shared_sim, tmp_path)
    info = routing.detect_router(cluster, NS, NAME)
    assert (info.kind, info.name, info.service, info.port) == ("httproute", NAME, NAME, 8000)
    assert info.rule_index == 0 and info.rule["backendRefs"][0]["name"] == NAME
    assert info.long_context_backend == ""
    (finding,) = routing.route_findings(cluster, NS, NAME, info)
    assert (finding.code, finding.severity, finding.step) == (
        "long-context-unrouted",
        Severity.INFO,
        Step.ROUTE,
    )


def test_plan_builds_a_separate_long_context_deployment_from_last_known_good(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    cluster = connect(shared_sim, tmp_path)
    plan = routing.long_context_plan(cluster, NS, NAME)
    assert (plan.step, plan.action) == (Step.ROUTE, "route.long-context")
    assert [(c.kind, c.operation) for c in plan.changes] == [
        ("Deployment", "apply"),
        ("Service", "apply"),
        ("HTTPRoute", "patch"),
    ]
    deployment, service, route = (c.after for c in plan.changes)
    assert deployment is not None and service is not None and route is not None
    template = deployment["spec"]["template"]
    args = template["spec"]["containers"][0]["args"]
    # Revision 2 (last-known-good) pins 8192; the long pool gets 4x that, the default cap.
    assert args[args.index("--max-model-len") + 1] == "32768"
    assert "vllm/vllm-openai:v0.8.5@sha256:" in template["spec"]["containers"][0]["image"]
    assert template["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert template["metadata"]["labels"]["app"] == LONG
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": LONG}
    assert deployment["spec"]["replicas"] == 1  # 4 main replicas // 4
    main_selector = cluster.get("Service", NS, NAME)["spec"]["selector"]
    labels = template["metadata"]["labels"]
    assert not all(labels.get(k) == v for k, v in main_selector.items())
    assert service["spec"]["selector"] == {"app": LONG}
    assert service["spec"]["ports"][0]["port"] == 8000
    first = route["spec"]["rules"][0]
    assert first == {
        "matches": [{"headers": [{"type": "Exact", "name": "x-context-class", "value": "long"}]}],
        "backendRefs": [{"name": LONG, "port": 8000}],
    }
    assert any(line.startswith("kubectl patch httproute/llm-serve") for line in plan.kubectl)


def test_plan_refuses_a_length_above_the_model_limit_and_zero_replicas(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    cluster = connect(shared_sim, tmp_path)
    with pytest.raises(InvalidError, match="above the model limit"):
        routing.long_context_plan(cluster, NS, NAME, max_model_len=65536)
    with pytest.raises(InvalidError, match="replicas"):
        routing.long_context_plan(cluster, NS, NAME, replicas=0)
    with pytest.raises(InvalidError, match="whole number"):
        routing.plan(cluster, NS, NAME, "route.long-context", {"replicas": "two"})
    # The runbook's entry: operator input as text.
    inputs = {"max_model_len": "16384", "replicas": "2"}
    plan = routing.plan(cluster, NS, NAME, "route.long-context", inputs)
    deployment = plan.changes[0].after
    assert deployment is not None and deployment["spec"]["replicas"] == 2
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--max-model-len") + 1] == "16384"


def test_route_plan_previews_applies_routes_and_reverts(fresh: Simulator, tmp_path: Path) -> None:
    cluster = connect(fresh, tmp_path)
    gate = gate_for(cluster, tmp_path)
    route_before = cluster.get("HTTPRoute", NS, NAME)
    plan = routing.long_context_plan(cluster, NS, NAME)

    # The equivalent command an operator could run is the server-side apply skewmit sends.
    assert plan.kubectl[0].startswith(
        f"kubectl apply --server-side --field-manager=skewmit -n {NS} -f {LONG}.yaml"
    )
    preview = gate.preview(plan)
    assert preview.allowed and preview.dry_run_ok, preview.dry_run_message
    assert "x-context-class" in preview.diff
    assert absent(cluster, "Deployment", LONG) and absent(cluster, "Service", LONG)
    assert comparable(cluster.get("HTTPRoute", NS, NAME)) == comparable(route_before)

    applied = gate.apply(plan, preview)
    assert applied.verified, applied.message
    assert cluster.get("Service", NS, LONG)["spec"]["selector"] == {"app": LONG}
    for kind in ("Deployment", "Service"):
        fields = cluster.get(kind, NS, LONG)["metadata"]["managedFields"]
        assert ("skewmit", "Apply") in {(f["manager"], f["operation"]) for f in fields}
    wait_for(
        "the long-context deployment to have a ready pod",
        lambda: cluster.get("Deployment", NS, LONG).get("status", {}).get("readyReplicas"),
    )
    # The fleet now sends every long-context request to the new pool and none to the main one.
    routed = wait_for(
        "long-context traffic to move", lambda: LONG in traffic(fresh) and traffic(fresh)
    )
    assert routed[LONG].long_context_share == 1.0 and routed[LONG].requests_per_second > 0
    assert routed[NAME].long_context_share == 0.0
    info = routing.detect_router(cluster, NS, NAME)
    assert info.long_context_backend == LONG
    assert [f.code for f in routing.route_findings(cluster, NS, NAME)] == ["long-context-routed"]
    (action,) = routing.route_actions(cluster, NS, NAME, info)
    assert action["id"] == "route.long-context" and not action["available"]
    with pytest.raises(InvalidError, match="already sends"):
        routing.long_context_plan(cluster, NS, NAME)

    reverted = gate.revert(applied.seq)
    assert reverted.verified, reverted.message
    assert absent(cluster, "Deployment", LONG) and absent(cluster, "Service", LONG)
    assert comparable(cluster.get("HTTPRoute", NS, NAME)) == comparable(route_before)
    assert LONG not in traffic(fresh)


def test_without_a_router_only_the_deployment_and_service_and_instructions(
    tmp_path: Path,
) -> None:
    # The TGI fleet with no Gateway API or Istio installed.
    with Simulator(str(derived_scenario(tmp_path, "tgi", [], [])), speed=SPEED) as sim:
        cluster = connect(sim, tmp_path)
        info = routing.detect_router(cluster, NS, NAME)
        assert info.kind == "none" and info.service == NAME
        findings = routing.route_findings(cluster, NS, NAME, info)
        assert [(f.code, f.severity) for f in findings] == [("router-none", Severity.INFO)]
        plan = routing.long_context_plan(cluster, NS, NAME)
        assert [c.kind for c in plan.changes] == ["Deployment", "Service"]
        text = "\n".join(plan.notes)
        assert "x-context-class: long" in text
        assert "llm-serve-long.inference.svc.cluster.local:80" in text
        deployment = plan.changes[0].after
        assert deployment is not None
        env = {
            e["name"]: e.get("value")
            for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        # TGI: total 8192 -> 32768, input raised by as much, keeping 1024 tokens for output.
        assert (env["MAX_TOTAL_TOKENS"], env["MAX_INPUT_TOKENS"]) == ("32768", "31744")

        gate = gate_for(cluster, tmp_path)
        applied = gate.apply(plan, gate.preview(plan))
        assert applied.verified, applied.message
        wait_for(
            "the TGI long-context pod to be ready",
            lambda: cluster.get("Deployment", NS, LONG).get("status", {}).get("readyReplicas"),
        )
        assert gate.revert(applied.seq).verified
        assert absent(cluster, "Deployment", LONG) and absent(cluster, "Service", LONG)


VIRTUAL_SERVICE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "llm", "namespace": NS},
    "spec": {
        "hosts": ["llm.example.internal"],
        "http": [
            {
                "match": [{"uri": {"prefix": "/v1"}}],
                "route": [
                    {
                        "destination": {
                            "host": "llm-serve.inference.svc.cluster.local",
                            "port": {"number": 8000},
                        }
                    }
                ],
            }
        ],
    },
}


def derived_scenario(tmp_path: Path, base: str, custom: list[str], extra: list[Any]) -> Path:
    """A built-in scenario with its HTTPRoute replaced by `extra` and `custom` as its CRDs."""
    source = Path(simulator.__file__).parent / "scenarios" / f"{base}.yaml"
    data = yaml.safe_load(source.read_text())
    data["name"] = f"{base}-derived"
    data["custom_resources"] = custom
    data["objects"] = [o for o in data["objects"] if o["kind"] != "HTTPRoute"] + extra
    path = tmp_path / f"{base}-derived.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_virtualservice_rule_routes_long_context_and_reverts(tmp_path: Path) -> None:
    with Simulator(
        str(derived_scenario(tmp_path, "skew-incident", ["virtualservices"], [VIRTUAL_SERVICE])),
        speed=SPEED,
    ) as sim:
        cluster = connect(sim, tmp_path)
        info = routing.detect_router(cluster, NS, NAME)
        assert (info.kind, info.name, info.service, info.port) == (
            "virtualservice",
            "llm",
            NAME,
            8000,
        )
        vs_before = cluster.get("VirtualService", NS, "llm")
        plan = routing.long_context_plan(cluster, NS, NAME)
        route = plan.changes[2].after
        assert route is not None
        first = route["spec"]["http"][0]
        # The header joins the existing match, so the /v1 prefix still applies.
        assert first["match"] == [
            {"uri": {"prefix": "/v1"}, "headers": {"x-context-class": {"exact": "long"}}}
        ]
        assert first["route"][0]["destination"] == {
            "host": "llm-serve-long.inference.svc.cluster.local",
            "port": {"number": 8000},
        }
        gate = gate_for(cluster, tmp_path)
        applied = gate.apply(plan, gate.preview(plan))
        assert applied.verified, applied.message
        wait_for(
            "long-context traffic to move to the VirtualService's new destination",
            lambda: LONG in traffic(sim),
        )
        assert gate.revert(applied.seq).verified
        assert comparable(cluster.get("VirtualService", NS, "llm")) == comparable(vs_before)
        assert absent(cluster, "Deployment", LONG) and absent(cluster, "Service", LONG)


def test_a_healthy_fleet_copies_its_live_revision(tmp_path: Path) -> None:
    with Simulator("healthy", speed=SPEED) as sim:
        cluster = connect(sim, tmp_path)
        plan = routing.long_context_plan(cluster, NS, NAME)
        live = cluster.get("Deployment", NS, NAME)["spec"]["template"]["spec"]["containers"][0]
    assert plan.notes[0].endswith("the live revision (no drift found in it)")
    deployment = plan.changes[0].after
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == live["image"]
