"""The simulator against the real kubectl 1.32 and 1.37: the write commands an SRE types.

Every expectation is what kubectl prints and what a real kube-apiserver 1.3x stores:
client-side `apply -f` (the last-applied annotation), `create -f`, `replace -f`, `edit`, the
typed creates that kubectl sends as protobuf, `explain` from the served OpenAPI schemas,
server-side apply with managedFields, conflicts and `--force-conflicts`, `diff
--server-side`, the `kubectl apply -f` that skewmit's routing preview prints, and `drain`.
Each kubectl version gets one simulator; tests write objects of their own names.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from services import routing
from services.kube import KubeCluster
from services.simulator.runner import Simulator
from tests.conftest import FAST, api_client, require_kubectl
from tests.services.harness import wait_for
from tests.simulator.test_kubectl import DEPLOY, KUBECTL_VERSIONS, NS, Kubectl, make_kubectl

pytestmark = pytest.mark.kubectl


@pytest.fixture(scope="module", params=KUBECTL_VERSIONS)
def k(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Kubectl]:
    """kubectl against one simulator per version; each test writes objects of its own."""
    version = str(request.param)
    require_kubectl(version)
    with Simulator("skew-incident", speed=FAST) as sim:
        yield make_kubectl(sim, tmp_path_factory.mktemp(f"kubectl-write-{version}"), version)


def deployment(name: str, image: str = "nginx:1.27", replicas: int = 1, **labels: str) -> str:
    """A Deployment manifest as a user writes it."""
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name, **labels}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }
    return yaml.safe_dump(body)


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


def edit(k: Kubectl, editor: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl edit` with EDITOR set (kubectl runs it on the file it wrote)."""
    argv = [k.binary, "--kubeconfig", str(k.kubeconfig), "--cache-dir", str(k.cache), "edit"]
    env = {**os.environ, "EDITOR": editor, "KUBE_EDITOR": editor}
    return subprocess.run(
        [*argv, *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


def managers(k: Kubectl, kind: str, name: str) -> dict[tuple[str, str], dict[str, Any]]:
    """{(manager, operation): fieldsV1} of an object, asked for as kubectl users do."""
    obj = json.loads(k.ok("get", kind, name, "-n", NS, "-o", "json", "--show-managed-fields"))
    return {(e["manager"], e["operation"]): e["fieldsV1"] for e in obj["metadata"]["managedFields"]}


# ---------------------------------------------------------------- client-side writes


def test_apply_create_replace_and_edit(k: Kubectl, tmp_path: Path) -> None:
    first = write(tmp_path, "web.yaml", deployment("web-csa"))
    assert k.ok("apply", "-f", first) == "deployment.apps/web-csa created\n"
    assert k.ok("apply", "-f", first) == "deployment.apps/web-csa unchanged\n"
    second = write(tmp_path, "web2.yaml", deployment("web-csa", image="nginx:1.28"))
    diff = k("diff", "-f", second)
    assert diff.returncode == 1, diff.stderr
    assert "-      - image: nginx:1.27\n+      - image: nginx:1.28\n" in diff.stdout
    # The patch is computed from the served OpenAPI v3 schemas, without a warning.
    configured = k("apply", "-f", second)
    assert (configured.stdout, configured.stderr) == ("deployment.apps/web-csa configured\n", "")
    live = k.json("deploy", "web-csa", "-n", NS)
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
    last = json.loads(
        live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert last["spec"]["template"]["spec"]["containers"] == [
        {"image": "nginx:1.28", "name": "web"}
    ]
    # kubectl hides managedFields unless asked, as against a real server.
    assert "managedFields" not in live["metadata"]

    created = write(tmp_path, "other.yaml", deployment("web-create"))
    assert k.ok("create", "-f", created) == "deployment.apps/web-create created\n"
    again = k("create", "-f", created)
    assert again.returncode == 1
    assert 'deployments.apps "web-create" already exists' in again.stderr
    replaced = write(tmp_path, "replaced.yaml", deployment("web-create", replicas=2))
    assert k.ok("replace", "-f", replaced) == "deployment.apps/web-create replaced\n"

    cancelled = edit(k, "true", "deploy/web-create", "-n", NS)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stderr.strip() == "Edit cancelled, no changes made."
    edited = edit(k, "sed -i s/replicas:\\ 2/replicas:\\ 3/", "deploy/web-create", "-n", NS)
    assert edited.returncode == 0, edited.stderr
    assert edited.stdout == "deployment.apps/web-create edited\n"
    assert k.json("deploy", "web-create", "-n", NS)["spec"]["replicas"] == 3

    owners = managers(k, "deploy", "web-create")
    assert set(owners) == {("kubectl-create", "Update"), ("kubectl-edit", "Update")}
    # The edit took .spec.replicas from the replace (which changed nothing else it kept).
    assert owners[("kubectl-edit", "Update")] == {"f:spec": {"f:replicas": {}}}
    container = owners[("kubectl-create", "Update")]["f:spec"]["f:template"]["f:spec"]
    assert container["f:containers"]['k:{"name":"web"}']["."] == {}
    assert "f:imagePullPolicy" in container["f:containers"]['k:{"name":"web"}']


def test_created_objects_carry_a_real_servers_managed_fields(k: Kubectl) -> None:
    k.ok("create", "deployment", "mf-web", "--image=nginx", "--port=80", "-n", NS)
    (fields,) = managers(k, "deploy", "mf-web").values()
    assert list(managers(k, "deploy", "mf-web")) == [("kubectl-create", "Update")]
    assert fields["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}
    spec = fields["f:spec"]
    # Non-pointer structs existed in the zero value: only what was added is marked ".".
    assert spec["f:strategy"] == {
        "f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}},
        "f:type": {},
    }
    assert spec["f:selector"] == {}
    item = spec["f:template"]["f:spec"]["f:containers"]['k:{"name":"nginx"}']
    assert item["f:ports"] == {
        ".": {},
        'k:{"containerPort":80,"protocol":"TCP"}': {
            ".": {},
            "f:containerPort": {},
            "f:protocol": {},
        },
    }
    assert item["f:resources"] == {}


def test_typed_creates_sent_as_protobuf(k: Kubectl) -> None:
    assert k.ok(
        "create", "deployment", "pb-web", "--image=nginx:1.27", "--replicas=0", "--port=8000",
        "-n", NS, "--", "vllm", "serve", "m",
    ) == "deployment.apps/pb-web created\n"  # fmt: skip
    dep = k.json("deploy", "pb-web", "-n", NS)
    assert dep["spec"]["replicas"] == 0
    assert dep["spec"]["selector"] == {"matchLabels": {"app": "pb-web"}}
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["vllm", "serve", "m"]
    assert container["ports"] == [{"containerPort": 8000, "protocol": "TCP"}]

    assert k.ok("create", "service", "clusterip", "pb-svc", "--tcp=80:8080", "-n", NS) == (
        "service/pb-svc created\n"
    )
    svc = k.json("svc", "pb-svc", "-n", NS)
    assert svc["spec"]["ports"] == [
        {"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}
    ]
    assert svc["spec"]["selector"] == {"app": "pb-svc"}

    assert k.ok("run", "pb-pod", "--image=curlimages/curl", "--env=X=1", "-n", NS, "--",
                "sleep", "60") == "pod/pb-pod created\n"  # fmt: skip
    (container,) = k.json("pod", "pb-pod", "-n", NS)["spec"]["containers"]
    assert (container["args"], container["env"]) == (["sleep", "60"], [{"name": "X", "value": "1"}])
    k.ok("create", "job", "pb-job", "--image=busybox", "-n", NS, "--", "echo", "hi")
    job_spec = k.json("job", "pb-job", "-n", NS)["spec"]["template"]["spec"]
    assert job_spec["containers"][0]["command"] == ["echo", "hi"]
    assert job_spec["restartPolicy"] == "Never"

    k.ok("create", "configmap", "pb-cm", "--from-literal=max_model_len=8192", "-n", NS)
    assert k.json("cm", "pb-cm", "-n", NS)["data"] == {"max_model_len": "8192"}
    k.ok("create", "secret", "generic", "pb-secret", "--from-literal=token=hf_x", "-n", NS)
    assert k.json("secret", "pb-secret", "-n", NS)["data"] == {"token": "aGZfeA=="}


def test_force_delete_sends_a_zero_grace_period(k: Kubectl) -> None:
    """kubectl sends DeleteOptions as protobuf; a grace period of 0 is a pointer's zero and
    means now, not the pod's default 30 s."""
    pod = k.json("pods", "-n", NS, "-l", f"app={DEPLOY}")["items"][0]["metadata"]["name"]
    done = k("delete", "pod", pod, "-n", NS, "--grace-period=0", "--force")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f'pod "{pod}" force deleted')
    gone = k("get", "pod", pod, "-n", NS)
    assert gone.stderr == f'Error from server (NotFound): pods "{pod}" not found\n'


def test_openapi_v2_is_served_as_json(k: Kubectl) -> None:
    """`get --raw` asks for JSON; kubectl's own protobuf request gets 406 and it carries on
    with /openapi/v3 (explain and apply above)."""
    swagger = json.loads(k.ok("get", "--raw", "/openapi/v2"))
    assert swagger["swagger"] == "2.0"
    deployment = swagger["definitions"]["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}
    ]
    containers = swagger["definitions"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["items"] == {"$ref": "#/definitions/io.k8s.api.core.v1.Container"}


def test_explain_reads_the_served_schemas(k: Kubectl) -> None:
    out = k.ok("explain", "deployment.spec.template.spec.containers")
    assert out.startswith("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n")
    assert "FIELD: containers <[]Container>" in out
    assert "List of containers belonging to the pod." in out
    assert "  image\t<string>\n" in out
    assert "  ports\t<[]ContainerPort>\n" in out
    labels = k.ok("explain", "pod.metadata.labels")
    assert "FIELD: labels <map[string]string>" in labels
    assert "Map of string keys and values" in labels


# ---------------------------------------------------------------- server-side apply


def test_server_side_apply_conflicts_and_force(k: Kubectl, tmp_path: Path) -> None:
    mine = write(tmp_path, "ssa.yaml", deployment("web-ssa", replicas=1))
    assert (
        k.ok("apply", "--server-side", "-f", mine) == "deployment.apps/web-ssa serverside-applied\n"
    )
    owners = managers(k, "deploy", "web-ssa")
    assert list(owners) == [("kubectl", "Apply")]
    assert owners[("kubectl", "Apply")]["f:spec"]["f:replicas"] == {}

    theirs = write(tmp_path, "theirs.yaml", deployment("web-ssa", replicas=3))
    refused = k("apply", "--server-side", "--field-manager=argocd-controller", "-f", theirs)
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        'error: Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas\n'
    )
    assert k.json("deploy", "web-ssa", "-n", NS)["spec"]["replicas"] == 1

    # The same values from another manager are no conflict: both own them.
    same = write(tmp_path, "same.yaml", deployment("web-ssa", replicas=1))
    k.ok("apply", "--server-side", "--field-manager=argocd-controller", "-f", same)

    k.ok("apply", "--server-side", "--field-manager=argocd-controller", "--force-conflicts",
         "-f", theirs)  # fmt: skip
    assert k.json("deploy", "web-ssa", "-n", NS)["spec"]["replicas"] == 3
    owners = managers(k, "deploy", "web-ssa")
    assert "f:replicas" in owners[("argocd-controller", "Apply")]["f:spec"]
    assert "f:replicas" not in owners[("kubectl", "Apply")]["f:spec"]

    # diff asks the server for the apply's result: the same conflict, unless forced.
    conflicted = k("diff", "--server-side", "-f", mine)
    assert conflicted.returncode > 1
    assert conflicted.stderr.endswith(
        "Error from server (Conflict): Apply failed with 1 conflict: conflict with "
        '"argocd-controller": .spec.replicas\n'
    )
    diff = k("diff", "--server-side", "--force-conflicts", "-f", mine)
    assert diff.returncode == 1, diff.stderr  # 1: differences found (0 none, >1 an error)
    assert "-  replicas: 3\n+  replicas: 1\n" in diff.stdout
    assert k.json("deploy", "web-ssa", "-n", NS)["spec"]["replicas"] == 3  # a dry run


def test_server_side_apply_drops_what_the_manager_stops_sending(k: Kubectl, tmp_path: Path) -> None:
    with_tier = write(tmp_path, "a.yaml", deployment("web-prune", tier="gpu"))
    k.ok("apply", "--server-side", "-f", with_tier)
    assert k.json("deploy", "web-prune", "-n", NS)["metadata"]["labels"]["tier"] == "gpu"
    k.ok("apply", "--server-side", "-f", write(tmp_path, "b.yaml", deployment("web-prune")))
    assert k.json("deploy", "web-prune", "-n", NS)["metadata"]["labels"] == {"app": "web-prune"}


def test_client_side_apply_moves_to_server_side_apply(k: Kubectl, tmp_path: Path) -> None:
    manifest = write(tmp_path, "m.yaml", deployment("web-move"))
    k.ok("apply", "-f", manifest)
    moved = k("apply", "--server-side", "-f", manifest)
    assert moved.returncode == 0, moved.stderr
    assert moved.stderr == ""  # kubectl's managedFields migration went through
    owners = managers(k, "deploy", "web-move")
    assert ("kubectl-client-side-apply", "Update") not in owners
    assert "f:replicas" in owners[("kubectl", "Apply")]["f:spec"]


def test_routing_preview_command_applies(k: Kubectl, tmp_path: Path) -> None:
    """The `kubectl apply --server-side --field-manager=skewmit -n NS -f NAME.yaml` that
    skewmit's routing preview prints, run as printed on the Deployment and Service its diff
    shows; a second run changes nothing, and both objects name skewmit's apply."""
    cluster = KubeCluster(str(k.kubeconfig), "skewmit-sim")
    plan = routing.long_context_plan(cluster, NS, DEPLOY)
    command = plan.kubectl[0].split(" #")[0].split()  # less its comment, a shell's way
    assert command[:4] == ["kubectl", "apply", "--server-side", "--field-manager=skewmit"]
    name = command[-1].removesuffix(".yaml")
    docs = [c.after for c in plan.changes if c.operation == "apply"]
    path = write(tmp_path, f"{name}.yaml", yaml.safe_dump_all(docs))
    args = [*command[1:-1], path]
    out = k.ok(*args)
    assert out == f"deployment.apps/{name} serverside-applied\nservice/{name} serverside-applied\n"
    before = k.json("deployment", name, "-n", NS)["metadata"]["generation"]
    assert k.ok(*args) == out
    after = k.json("deployment", name, "-n", NS, "--show-managed-fields")
    assert after["metadata"]["generation"] == before  # the spec did not change
    managers = {(m["manager"], m["operation"]) for m in after["metadata"]["managedFields"]}
    assert ("skewmit", "Apply") in managers


# ---------------------------------------------------------------- drain and eviction


@pytest.fixture(params=KUBECTL_VERSIONS)
def drained(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kubectl]:
    version = str(request.param)
    require_kubectl(version)
    with Simulator("skew-incident", speed=FAST) as sim:
        yield make_kubectl(sim, tmp_path, version)


def test_drain_cordons_and_evicts(drained: Kubectl) -> None:
    k = drained
    pods = k.json("pods", "-n", NS, "-l", f"app={DEPLOY}")["items"]
    node = pods[0]["spec"]["nodeName"]
    on_node = sorted(p["metadata"]["name"] for p in pods if p["spec"]["nodeName"] == node)
    done = k("drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=90s",
             timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"node/{node} cordoned"
    assert lines[-1] == f"node/{node} drained"
    # kubectl evicts only when discovery lists pods/eviction with its group (policy/v1), as a
    # real server does; without it kubectl falls back to deleting the pods.
    resources = json.loads(k.ok("get", "--raw", "/api/v1"))["resources"]
    (sub,) = [r for r in resources if r["name"] == "pods/eviction"]
    assert (sub.get("group"), sub.get("version")) == ("policy", "v1")
    for pod in on_node:
        assert f"pod/{pod} evicted" in lines
    assert k.json("node", node)["spec"]["unschedulable"] is True
    left = k.json("pods", "-n", NS, "--field-selector", f"spec.nodeName={node}")["items"]
    assert [p["metadata"]["name"] for p in left if p["metadata"]["name"] in on_node] == []


def test_eviction_honours_a_disruption_budget(tmp_path: Path) -> None:
    """policy/v1 Eviction through the official client: the first eviction the budget allows
    deletes the pod; the next one is refused with the real 429 and its cause."""
    with Simulator("skew-incident", speed=FAST) as sim:
        api = api_client(sim, tmp_path)
        core, policy = client.CoreV1Api(api), client.PolicyV1Api(api)
        pods = core.list_namespaced_pod(NS, label_selector=f"app={DEPLOY}").items
        budgets = policy.list_namespaced_pod_disruption_budget(NS).items
        if not budgets:  # the scenario's own budget for the serving Deployment, if it has none
            policy.create_namespaced_pod_disruption_budget(
                NS,
                {
                    "apiVersion": "policy/v1",
                    "kind": "PodDisruptionBudget",
                    "metadata": {"name": DEPLOY},
                    "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": DEPLOY}}},
                },
            )
        (budget,) = policy.list_namespaced_pod_disruption_budget(NS).items
        assert budget.spec.max_unavailable == 1
        first, second = (p.metadata.name for p in pods[:2])

        def eviction(name: str) -> dict[str, Any]:
            return {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}}

        core.create_namespaced_pod_eviction(first, NS, eviction(first))
        assert core.read_namespaced_pod(first, NS).metadata.deletion_timestamp is not None
        with pytest.raises(ApiException) as refused:
            core.create_namespaced_pod_eviction(second, NS, eviction(second))
        assert refused.value.status == 429
        status = json.loads(refused.value.body)
        assert status["message"] == (
            "Cannot evict pod as it would violate the pod's disruption budget."
        )
        (cause,) = status["details"]["causes"]
        assert cause["reason"] == "DisruptionBudget"
        assert re.fullmatch(
            rf"The disruption budget {budget.metadata.name} needs {len(pods) - 1} healthy pods "
            r"and has \d+ currently",
            cause["message"],
        )
        assert core.read_namespaced_pod(second, NS).metadata.deletion_timestamp is None
        wait_for(
            "the evicted pod to go",
            lambda: first not in {p.metadata.name for p in core.list_namespaced_pod(NS).items},
        )
