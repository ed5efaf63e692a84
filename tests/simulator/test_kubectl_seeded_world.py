"""The simulator's seeded world as the real kubectl 1.32 and 1.37 see it: who manages what
(managedFields a real cluster would show, so a first server-side apply meets Argo CD's fields),
strict decoding of the system kinds, hostNetwork pods' addresses, Services without a
generation, and vLLM's periodic stats lines in `kubectl logs`.

One gitops-managed simulator per kubectl version; tests write objects of their own names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from services.simulator.runner import Simulator
from tests.conftest import FAST, api_client, require_kubectl
from tests.services.harness import wait_for
from tests.simulator.test_kubectl import DEPLOY, KUBECTL_VERSIONS, NS, Kubectl, make_kubectl

pytestmark = pytest.mark.kubectl

STATS = re.compile(
    r"^INFO \d\d-\d\d \d\d:\d\d:\d\d \[loggers\.py:\d+\] Engine 000: "
    r"Avg prompt throughput: (\d+\.\d) tokens/s, Avg generation throughput: (\d+\.\d) tokens/s, "
    r"Running: (\d+) reqs, Waiting: (\d+) reqs, GPU KV cache usage: (\d+\.\d)%, "
    r"Prefix cache hit rate: \d+\.\d%$"
)


@pytest.fixture(scope="module", params=KUBECTL_VERSIONS)
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Kubectl, Simulator]]:
    version = str(request.param)
    require_kubectl(version)
    with Simulator("gitops-managed", speed=FAST) as sim:
        yield make_kubectl(sim, tmp_path_factory.mktemp(f"kubectl-seeded-{version}"), version), sim


def managers(k: Kubectl, *what: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """{(manager, operation, subresource): fieldsV1} of an object, as kubectl users ask."""
    obj = json.loads(k.ok("get", *what, "-o", "json", "--show-managed-fields"))
    return {
        (e["manager"], e["operation"], e.get("subresource", "")): e["fieldsV1"]
        for e in obj["metadata"]["managedFields"]
    }


def write(folder: Path, name: str, body: dict[str, Any]) -> str:
    path = folder / name
    path.write_text(json.dumps(body))
    return str(path)


def test_first_server_side_apply_meets_argo_cds_fields(
    seeded: tuple[Kubectl, Simulator], tmp_path: Path
) -> None:
    k, _ = seeded
    live = k.json("deploy", DEPLOY, "-n", NS)
    container = live["spec"]["template"]["spec"]["containers"][0]["name"]
    owners = managers(k, "deploy", DEPLOY, "-n", NS)
    assert set(owners) == {
        ("argocd-controller", "Apply", ""),
        ("kube-controller-manager", "Update", ""),
        ("kube-controller-manager", "Update", "status"),
    }
    applied = owners[("argocd-controller", "Apply", "")]
    assert (
        f'k:{{"name":"{container}"}}' in applied["f:spec"]["f:template"]["f:spec"]["f:containers"]
    )
    assert (
        "f:deployment.kubernetes.io/revision"
        in (owners[("kube-controller-manager", "Update", "")]["f:metadata"]["f:annotations"])
    )
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOY, "namespace": NS},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": container, "image": "vllm/vllm-openai:v0.8.5"}]}
            }
        },
    }
    refused = k("apply", "--server-side", "-f", write(tmp_path, "pin.json", manifest))
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        'error: Apply failed with 1 conflict: conflict with "argocd-controller": '
        f'.spec.template.spec.containers[name="{container}"].image\n'
    )


def test_pods_and_nodes_name_their_controllers_and_kubelet(
    seeded: tuple[Kubectl, Simulator],
) -> None:
    k, _ = seeded
    pod = k.ok("get", "pods", "-n", NS, "-l", f"app={DEPLOY}", "-o", "name").split()[0]
    owners = managers(k, pod, "-n", NS)
    assert ("kube-controller-manager", "Update", "") in owners
    status = owners[("kubelet", "Update", "status")]["f:status"]
    ip = k.json(pod, "-n", NS)["status"]["podIP"]
    assert f'k:{{"ip":"{ip}"}}' in status["f:podIPs"]
    node = k.ok("get", "nodes", "-o", "name").split()[0]
    assert ("kubelet", "Update", "status") in managers(k, node)


# The kinds the system-resources work added, each with one field no schema has.
UNKNOWN_FIELD = [
    ("policy/v1", "PodDisruptionBudget", {"spec": {"minAvailable": 1, "maxUnavailabel": 1}},
     "spec.maxUnavailabel"),
    ("coordination.k8s.io/v1", "Lease", {"spec": {"holderIdentity": "me", "ttl": 5}},
     "spec.ttl"),
    ("batch/v1", "Job", {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "busybox", "cmd": ["true"]}], "restartPolicy": "Never"}}}},
     "spec.template.spec.containers[0].cmd"),
    ("apps/v1", "DaemonSet", {"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
        "metadata": {"labels": {"a": "b"}}, "spec": {"containers": [
            {"name": "c", "image": "busybox"}]}}, "updateStrategy": {"maxSurge": 1}}},
     "spec.updateStrategy.maxSurge"),
    ("v1", "ServiceAccount", {"secret": []}, "secret"),
    ("v1", "Endpoints", {"subset": []}, "subset"),
    ("discovery.k8s.io/v1", "EndpointSlice", {"addressType": "IPv4", "endpoints": [
        {"addresses": ["10.0.0.9"], "ready": True}]}, "endpoints[0].ready"),
]  # fmt: skip


@pytest.mark.parametrize(("api_version", "kind", "body", "path"), UNKNOWN_FIELD)
def test_strict_validation_of_the_system_kinds(
    seeded: tuple[Kubectl, Simulator],
    tmp_path: Path,
    api_version: str,
    kind: str,
    body: dict[str, Any],
    path: str,
) -> None:
    k, _ = seeded
    name = f"strict-{kind.lower()}"
    manifest = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, **body}
    done = k("create", "--validate=strict", "-n", NS, "-f", write(tmp_path, "m.json", manifest))
    assert done.returncode == 1
    version = api_version.rsplit("/", 1)[-1]
    assert (
        f'{kind} in version "{version}" cannot be handled as a {kind}: strict decoding error: '
        f'unknown field "{path}"'
    ) in done.stderr
    assert k("get", kind.lower(), name, "-n", NS).returncode == 1  # nothing was created


def test_an_eviction_with_an_unknown_field_is_refused(
    seeded: tuple[Kubectl, Simulator], tmp_path: Path
) -> None:
    _, sim = seeded
    api = api_client(sim, tmp_path)
    pod = client.CoreV1Api(api).list_namespaced_pod(NS, label_selector=f"app={DEPLOY}").items[0]
    name = pod.metadata.name
    response = api.call_api(
        *api.param_serialize(
            method="POST",
            resource_path=f"/api/v1/namespaces/{NS}/pods/{name}/eviction",
            query_params=[("dryRun", "All"), ("fieldValidation", "Strict")],
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
            body={
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": name, "namespace": NS},
                "deleteOption": {"gracePeriodSeconds": 0},
            },
            auth_settings=["BearerToken"],
        )
    )
    assert response.status == 400
    assert json.loads(response.read())["message"] == (
        'Eviction in version "v1" cannot be handled as a Eviction: strict decoding error: '
        'unknown field "deleteOption"'
    )


def test_host_network_pods_have_their_nodes_address(seeded: tuple[Kubectl, Simulator]) -> None:
    k, _ = seeded
    nodes = {
        n["metadata"]["name"]: next(
            a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP"
        )
        for n in k.json("nodes")["items"]
    }
    pods = k.json("pods", "-A", "--field-selector=spec.hostNetwork=true")["items"]
    assert any(p["metadata"]["name"].startswith("kube-proxy-") for p in pods)
    for pod in pods:
        node = nodes[pod["spec"]["nodeName"]]
        assert (pod["status"]["podIP"], pod["status"]["podIPs"]) == (node, [{"ip": node}])
    others = k.json("pods", "-n", NS)["items"]
    assert all(p["status"].get("podIP") not in nodes.values() for p in others)


def test_services_have_no_generation(seeded: tuple[Kubectl, Simulator]) -> None:
    k, _ = seeded
    services = k.json("services", "-A")["items"]
    assert services
    assert [s["metadata"]["name"] for s in services if "generation" in s["metadata"]] == []
    assert k.json("deploy", DEPLOY, "-n", NS)["metadata"]["generation"] >= 1


def test_logs_show_vllms_stats_every_ten_seconds(seeded: tuple[Kubectl, Simulator]) -> None:
    k, _ = seeded
    rows = k.json("pods", "-n", NS, "-l", f"app={DEPLOY}")["items"]
    ready = next(
        p["metadata"]["name"]
        for p in rows
        if all(s.get("ready") for s in p["status"].get("containerStatuses", []))
    )

    def stats() -> list[re.Match[str]]:
        text = k.ok("logs", ready, "-n", NS, "--tail=3")
        found = [m for line in text.splitlines() if (m := STATS.match(line))]
        return found if len(found) >= 2 else []

    lines = wait_for("two stats lines", stats, timeout_s=60)
    # The incident's traffic reaches every ready pod: tokens flow and requests run.
    assert any(float(m[2]) > 0 for m in lines)
    stamped = k.ok("logs", ready, "-n", NS, "--tail=2", "--timestamps").splitlines()
    times = [line.split(" ", 1)[0] for line in stamped]
    seconds = [int(t[17:19]) + 60 * int(t[14:16]) for t in times]
    assert (seconds[1] - seconds[0]) % 3600 == 10


def test_autoscale_through_either_autoscaling_version(
    seeded: tuple[Kubectl, Simulator], tmp_path: Path
) -> None:
    """kubectl 1.32 posts autoscaling/v1 (protobuf), 1.37 autoscaling/v2: both are served, and
    a v1 write keeps what only v2 can say."""
    k, _ = seeded
    done = k("autoscale", f"deploy/{DEPLOY}", "-n", NS, "--min=2", "--max=5", "--cpu-percent=80")
    assert (done.returncode, done.stdout) == (
        0,
        f"horizontalpodautoscaler.autoscaling/{DEPLOY} autoscaled\n",
    ), done.stderr
    rows = k.ok("get", "hpa", "-n", NS).splitlines()
    assert rows[0].split() == [
        "NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE",
    ]  # fmt: skip
    assert rows[1].split()[:7] == [
        DEPLOY, f"Deployment/{DEPLOY}", "cpu:", "<unknown>/80%", "2", "5", "0",
    ]  # fmt: skip
    v1 = k.json("horizontalpodautoscalers.v1.autoscaling", DEPLOY, "-n", NS)
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 80
    memory = {
        "type": "Resource",
        "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "40Gi"}},
    }
    k.ok("patch", "horizontalpodautoscalers.v2.autoscaling", DEPLOY, "-n", NS, "--type=json",
         "-p", json.dumps([{"op": "add", "path": "/spec/metrics/-", "value": memory}]))  # fmt: skip
    k.ok("patch", "horizontalpodautoscalers.v1.autoscaling", DEPLOY, "-n", NS, "--type=merge",
         "-p", '{"spec":{"targetCPUUtilizationPercentage":60}}')  # fmt: skip
    v2 = k.json("horizontalpodautoscalers.v2.autoscaling", DEPLOY, "-n", NS)
    assert v2["spec"]["metrics"] == [
        {"type": "Resource",
         "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
        memory,
    ]  # fmt: skip
    # A v1 manifest is checked against v1's schema: `metrics` is v2's.
    manifest = {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "strict-hpa"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                    "name": DEPLOY}, "maxReplicas": 3, "metrics": []},
    }  # fmt: skip
    strict = k("create", "--validate=strict", "-n", NS, "-f", write(tmp_path, "h.json", manifest))
    assert strict.returncode == 1
    assert (
        'HorizontalPodAutoscaler in version "v1" cannot be handled as a HorizontalPodAutoscaler: '
        'strict decoding error: unknown field "spec.metrics"'
    ) in strict.stderr
    k.ok("delete", "hpa", DEPLOY, "-n", NS)
