"""The simulator against the machine's real kubectl (1.32): what a user types, what they see.

Every expectation is what kubectl prints against a real cluster in the same state: `get -o
wide` columns, rollout history/undo/status, set image/env, server-side dry run, scale,
cordon, taint, websocket exec, logs, auth, events and the runbook's validation commands.
Read-only tests share one simulator; each test that changes the cluster starts its own.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.simulator.runner import Simulator
from tests.conftest import FAST, require_kubectl

pytestmark = pytest.mark.kubectl

NS = "inference"
DEPLOY = "llm-serve"
ROLLOUT_SPEED = 60.0  # rollouts take simulated minutes: run them on a faster clock
NVIDIA_SMI_CSV = {
    "NVIDIA-H100-80GB-HBM3": "name, memory.total [MiB]\nNVIDIA H100 80GB HBM3, 81559 MiB\n",
    "NVIDIA-A10G": "name, memory.total [MiB]\nNVIDIA A10G, 23028 MiB\n",
}
OCI_NOT_FOUND = re.compile(
    r"error: Internal error occurred: error executing command in container: failed to exec in "
    r'container: failed to start exec "[0-9a-f]{64}": OCI runtime exec failed: exec failed: '
    r'unable to start container process: exec: "(?P<exe>[^"]+)": executable file not found in '
    r"\$PATH: unknown\n"
)


@dataclass(frozen=True)
class Kubectl:
    """The real kubectl pointed at one simulator, with its own discovery cache."""

    binary: str
    kubeconfig: Path
    cache: Path
    version: str = "1.32"

    def __call__(
        self, *args: str, context: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.binary, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache)]
        if context:
            argv += ["--context", context]
        return subprocess.run(
            [*argv, *args], capture_output=True, text=True, timeout=timeout, check=False
        )

    def ok(self, *args: str, context: str | None = None, timeout: float = 60) -> str:
        """stdout of a command that must succeed."""
        done = self(*args, context=context, timeout=timeout)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    def json(self, *args: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.ok("get", *args, "-o", "json"))
        return data


# Every command runs with the machine's kubectl and with 1.37 (`make kubectl-1.37`).
KUBECTL_VERSIONS = ("1.32", "1.37")


def make_kubectl(sim: Simulator, folder: Path, version: str = "1.32") -> Kubectl:
    binary = require_kubectl(version)
    return Kubectl(binary, sim.write_kubeconfig(folder / "kubeconfig"), folder / "cache", version)


@pytest.fixture(scope="module", params=KUBECTL_VERSIONS)
def ro(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Kubectl]:
    """kubectl against one simulator shared by the tests that only read."""
    version = str(request.param)
    require_kubectl(version)
    with Simulator("skew-incident", speed=FAST) as sim:
        yield make_kubectl(sim, tmp_path_factory.mktemp("kubectl-ro"), version)


@pytest.fixture(params=KUBECTL_VERSIONS)
def rw(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kubectl]:
    """kubectl against a fresh simulator of the test's own, on the rollout clock."""
    version = str(request.param)
    require_kubectl(version)
    with Simulator("skew-incident", speed=ROLLOUT_SPEED) as sim:
        yield make_kubectl(sim, tmp_path, version)


def table(text: str) -> list[dict[str, str]]:
    """Rows of one kubectl table, cut at the header's column offsets (values may hold spaces)."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"(?:(?<=  )|^)\S", header)]
    names = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return [
        {
            name: line[a:b].strip() if b is not None else line[a:].strip()
            for name, a, b in zip(names, starts, [*starts[1:], None], strict=True)
        }
        for line in lines[1:]
    ]


def blocks(text: str) -> list[str]:
    return [block for block in text.split("\n\n") if block.strip()]


def running_pod(k: Kubectl) -> tuple[str, str]:
    """(name, GPU product of its node) of a ready serving pod."""
    rows = table(k.ok("get", "pods", "-l", f"app={DEPLOY}", "-o", "wide"))
    row = next(r for r in rows if r["STATUS"] == "Running" and r["READY"] == "1/1")
    product = k.ok(
        "get", "node", row["NODE"], "-o", r"jsonpath={.metadata.labels.nvidia\.com/gpu\.product}"
    )
    return row["NAME"], product


def wait_rolled_out(k: Kubectl) -> str:
    done = k("rollout", "status", f"deploy/{DEPLOY}", "--timeout=60s", timeout=90)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f'deployment "{DEPLOY}" successfully rolled out'
    return done.stdout


def template_image(k: Kubectl) -> str:
    return k.ok("get", "deploy", DEPLOY, "-o", "jsonpath={.spec.template.spec.containers[0].image}")


# ---------------------------------------------------------------- reads


def test_get_wide_columns_and_values(ro: Kubectl) -> None:
    out = ro.ok("get", "deploy,rs,pods,nodes", "-o", "wide")
    deploys, replicasets, pods, nodes = blocks(out)

    assert deploys.splitlines()[0].split() == [
        "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR",
    ]  # fmt: skip
    (deploy,) = table(deploys)
    assert deploy == {
        "NAME": "deployment.apps/llm-serve",
        "READY": "4/4",
        "UP-TO-DATE": "4",
        "AVAILABLE": "4",
        "AGE": "9d",
        "CONTAINERS": "vllm",
        "IMAGES": "vllm/vllm-openai:latest",
        "SELECTOR": "app=llm-serve",
    }

    assert replicasets.splitlines()[0].split() == [
        "NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR",
    ]  # fmt: skip
    rs_rows = table(replicasets)
    assert len(rs_rows) == 3
    by_image = {r["IMAGES"].split("@")[0]: r for r in rs_rows}
    assert sorted(by_image) == [
        "vllm/vllm-openai:latest",
        "vllm/vllm-openai:v0.8.4",
        "vllm/vllm-openai:v0.8.5",
    ]
    current = by_image["vllm/vllm-openai:latest"]
    assert (current["DESIRED"], current["CURRENT"], current["READY"]) == ("4", "4", "4")
    for image in ("vllm/vllm-openai:v0.8.4", "vllm/vllm-openai:v0.8.5"):
        old = by_image[image]
        assert (old["DESIRED"], old["CURRENT"], old["READY"]) == ("0", "0", "0")
        assert old["IMAGES"].startswith(f"{image}@sha256:")
    assert by_image["vllm/vllm-openai:v0.8.4"]["AGE"] == "9d"
    assert by_image["vllm/vllm-openai:v0.8.5"]["AGE"] == "5d"
    assert re.fullmatch(r"1[12]\dm", current["AGE"])  # two hours ago, as minutes
    for row in rs_rows:
        pod_hash = row["NAME"].removeprefix("replicaset.apps/llm-serve-")
        assert row["SELECTOR"] == f"app=llm-serve,pod-template-hash={pod_hash}"

    assert pods.splitlines()[0].split() == [
        "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE",
        "READINESS", "GATES",
    ]  # fmt: skip
    pod_rows = table(pods)
    assert len(pod_rows) == 4
    node_names = {r["NAME"].removeprefix("node/") for r in table(nodes)}
    current_hash = current["NAME"].removeprefix("replicaset.apps/")
    for row in pod_rows:
        assert row["NAME"].startswith(f"pod/{current_hash}-")
        assert (row["READY"], row["STATUS"], row["RESTARTS"]) == ("1/1", "Running", "0")
        assert re.fullmatch(r"10\.244\.\d+\.\d+", row["IP"])
        assert row["NODE"] in node_names
        assert (row["NOMINATED NODE"], row["READINESS GATES"]) == ("<none>", "<none>")

    assert nodes.splitlines()[0].split() == [
        "NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE",
        "KERNEL-VERSION", "CONTAINER-RUNTIME",
    ]  # fmt: skip
    node_rows = {r["NAME"]: r for r in table(nodes)}
    assert sorted(node_rows) == [
        "node/cpu-system-1",
        "node/gpu-a10g-1",
        "node/gpu-a10g-2",
        "node/gpu-h100-1",
        "node/gpu-h100-2",
    ]
    assert node_rows["node/cpu-system-1"]["ROLES"] == "control-plane"
    for row in node_rows.values():
        assert row["STATUS"] == "Ready"
        assert row["VERSION"] == "v1.32.4"
        assert re.fullmatch(r"10\.0\.\d+\.\d+", row["INTERNAL-IP"])
        assert row["EXTERNAL-IP"] == "<none>"
        assert row["OS-IMAGE"] == "Ubuntu 22.04.5 LTS"
        assert row["CONTAINER-RUNTIME"] == "containerd://1.7.24"


def test_rollout_history(ro: Kubectl) -> None:
    assert ro.ok("rollout", "history", f"deploy/{DEPLOY}") == (
        "deployment.apps/llm-serve \n"
        "REVISION  CHANGE-CAUSE\n"
        "1         vllm v0.8.4, llama-3.1-8b pinned\n"
        "2         vllm v0.8.5 (last-known-good)\n"
        "3         bump to latest vllm\n"
        "\n"
    )
    detail = ro.ok("rollout", "history", f"deploy/{DEPLOY}", "--revision=2")
    assert detail.startswith("deployment.apps/llm-serve with revision #2\nPod Template:\n")
    for line in (
        "  Annotations:\tkubernetes.io/change-cause: vllm v0.8.5 (last-known-good)",
        "    Image:\tvllm/vllm-openai:v0.8.5@sha256:"
        "9f2b6c1e0d8a7b5c4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d",
        "      --max-model-len",
        "    Readiness:\thttp-get http://:8000/health delay=0s timeout=1s period=5s "
        # kubectl 1.37 spells the thresholds out.
        + (
            "#success=1 #failure=3"
            if ro.version == "1.32"
            else "successThreshold=1 failureThreshold=3"
        ),
        "      HF_TOKEN:\t<set to the key 'token' in secret 'hf-token'>\tOptional: false",
        "  Node-Selectors:\tnvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3",
    ):
        assert line in detail.splitlines()
    missing = ro("rollout", "history", f"deploy/{DEPLOY}", "--revision=7")
    assert missing.returncode == 1
    assert missing.stderr == "error: unable to find the specified revision\n"


def test_auth_can_i_for_both_users(ro: Kubectl) -> None:
    viewer = "skewmit-sim-readonly"
    for args, admin_answer, viewer_answer in (
        (("patch", "deployments"), "yes", "no"),
        (("get", "pods"), "yes", "yes"),
        (("create", "pods", "--subresource=exec"), "yes", "no"),
        (("get", "secrets"), "yes", "no"),
        (("patch", "nodes"), "yes", "no"),
    ):
        admin = ro("auth", "can-i", *args)
        assert (admin.stdout, admin.returncode) == (f"{admin_answer}\n", 0)
        seen = ro("auth", "can-i", *args, context=viewer)
        assert seen.stdout == f"{viewer_answer}\n"
        assert seen.returncode == (0 if viewer_answer == "yes" else 1)


def test_auth_whoami(ro: Kubectl) -> None:
    assert ro.ok("auth", "whoami") == (
        "ATTRIBUTE   VALUE\n"
        "Username    skewmit-admin\n"
        "Groups      [system:masters system:authenticated]\n"
    )
    assert ro.ok("auth", "whoami", context="skewmit-sim-readonly") == (
        "ATTRIBUTE   VALUE\nUsername    skewmit-viewer\nGroups      [system:authenticated]\n"
    )


def test_viewer_patch_is_forbidden(ro: Kubectl) -> None:
    done = ro("scale", f"deploy/{DEPLOY}", "--replicas=1", context="skewmit-sim-readonly")
    assert done.returncode == 1
    assert done.stderr == (
        'Error from server (Forbidden): deployments.apps "llm-serve" is forbidden: User '
        '"skewmit-viewer" cannot patch resource "deployments/scale" in API group "apps" in the '
        'namespace "inference"\n'
    )


def test_exec_nvidia_smi_over_websocket(ro: Kubectl) -> None:
    pod, product = running_pod(ro)
    done = ro(
        "exec", "-v=8", pod, "--", "nvidia-smi", "--query-gpu=name,memory.total", "--format=csv"
    )
    assert done.returncode == 0
    assert done.stdout == NVIDIA_SMI_CSV[product]
    negotiated = (
        "The subprotocol is v5.channel.k8s.io"
        if ro.version == "1.32"
        else '"Subprotocol negotiated" protocol="v5.channel.k8s.io"'
    )
    assert negotiated in done.stderr
    node = ro.ok("get", f"pod/{pod}", "-o", 'jsonpath={.spec.nodeName}{"\\n"}')
    assert re.fullmatch(r"gpu-(h100|a10g)-\d\n", node)


def test_exec_of_a_missing_binary(ro: Kubectl) -> None:
    pod, _ = running_pod(ro)
    direct = ro("exec", pod, "--", "nvidia-smii", "-L")
    # containerd cannot start the process: an InternalError, not an exit code.
    assert direct.returncode == 1
    assert direct.stdout == ""
    match = OCI_NOT_FOUND.fullmatch(direct.stderr)
    assert match and match["exe"] == "nvidia-smii"
    shell = ro("exec", pod, "--", "sh", "-c", "nvidia-smii -L")
    assert shell.returncode == 127
    assert shell.stderr == "sh: 1: nvidia-smii: not found\ncommand terminated with exit code 127\n"
    # The websocket GET is refused, kubectl falls back to a SPDY POST, refused as "create".
    viewer = ro("exec", pod, "--", "true", context="skewmit-sim-readonly")
    assert viewer.returncode == 1
    # kubectl 1.37 words the same refused SPDY upgrade differently.
    prefix = (
        "Error from server (Forbidden): "
        if ro.version == "1.32"
        else "error: unable to upgrade connection: "
    )
    assert viewer.stderr == (
        f'{prefix}pods "{pod}" is forbidden: User "skewmit-viewer" cannot '
        'create resource "pods/exec" in API group "" in the namespace "inference"\n'
    )


def test_logs(ro: Kubectl) -> None:
    pod, _ = running_pod(ro)
    text = ro.ok("logs", pod)
    assert "vLLM API server version" in text
    # The engine appends a stats line every 10 simulated seconds (a third of a wall second on
    # the fast clock), so the log may grow between reads: --tail=2 must be the two lines that
    # were last when it was read, found together in a later read, at or after the end of an
    # earlier one.
    before = ro.ok("logs", pod).splitlines()
    tail = ro.ok("logs", pod, "--tail=2").splitlines()
    after = ro.ok("logs", pod).splitlines()
    assert after[: len(before)] == before  # a log only grows
    assert len(tail) == 2
    ends = [i + 2 for i in range(len(after) - 1) if after[i : i + 2] == tail]
    assert any(end >= len(before) for end in ends), (tail, before[-2:], after[-3:])
    missing = ro("logs", "llm-serve-nope")
    assert missing.returncode == 1
    assert missing.stderr == (
        'error: error from server (NotFound): pods "llm-serve-nope" not found in namespace '
        '"inference"\n'
    )


def test_get_httproutes(ro: Kubectl) -> None:
    assert table(ro.ok("get", "httproutes")) == [
        {"NAME": "llm-serve", "HOSTNAMES": '["llm.example.internal"]', "AGE": "9d"}
    ]


def test_runbook_validation_commands(ro: Kubectl) -> None:
    pod, _ = running_pod(ro)
    args = ro.ok("get", f"pod/{pod}", "-n", NS, "-o", "jsonpath={.spec.containers[0].args}")
    assert json.loads(args) == [
        "--model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--served-model-name",
        "llama-3.1-8b",
    ]
    env = ro.ok("get", f"pod/{pod}", "-n", NS, "-o", "jsonpath={.spec.containers[0].env}")
    assert json.loads(env) == [
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"key": "token", "name": "hf-token"}}},
        {"name": "HF_HUB_OFFLINE", "value": "0"},
    ]
    manifest = ro.ok("get", f"pod/{pod}", "-o", "yaml")
    assert "  - --served-model-name\n    - llama-3.1-8b\n" in manifest
    assert "imageID: docker.io/vllm/vllm-openai@sha256:" in manifest


def test_unknown_resource_and_missing_object(ro: Kubectl) -> None:
    missing = ro("get", "deploy", "nope")
    assert missing.returncode == 1
    assert missing.stderr == ('Error from server (NotFound): deployments.apps "nope" not found\n')
    unknown = ro("get", "virtualservices")
    assert unknown.returncode == 1
    assert unknown.stderr == ('error: the server doesn\'t have a resource type "virtualservices"\n')


# ---------------------------------------------------------------- rollouts


def test_rollout_undo_then_status_then_undo_again_toggles(rw: Kubectl) -> None:
    assert rw.ok("rollout", "undo", f"deploy/{DEPLOY}") == "deployment.apps/llm-serve rolled back\n"
    wait_rolled_out(rw)
    assert template_image(rw).startswith("vllm/vllm-openai:v0.8.5@sha256:")
    assert rw.ok("rollout", "history", f"deploy/{DEPLOY}").splitlines()[2:-1] == [
        "1         vllm v0.8.4, llama-3.1-8b pinned",
        "3         bump to latest vllm",
        "4         vllm v0.8.5 (last-known-good)",
    ]
    pods = table(rw.ok("get", "pods", "-l", f"app={DEPLOY}"))
    assert len(pods) == 4
    assert all(p["STATUS"] == "Running" and p["READY"] == "1/1" for p in pods)
    # Undo again: back to revision 3's template, now revision 5.
    rw.ok("rollout", "undo", f"deploy/{DEPLOY}")
    wait_rolled_out(rw)
    assert template_image(rw) == "vllm/vllm-openai:latest"
    history = rw.ok("rollout", "history", f"deploy/{DEPLOY}").splitlines()[2:-1]
    assert [line.split()[0] for line in history] == ["1", "4", "5"]


def test_rollout_undo_to_revision(rw: Kubectl) -> None:
    skipped = rw.ok("rollout", "undo", f"deploy/{DEPLOY}", "--to-revision=3")
    assert skipped == (
        "deployment.apps/llm-serve skipped rollback (current template already matches revision 3)\n"
    )
    missing = rw("rollout", "undo", f"deploy/{DEPLOY}", "--to-revision=9")
    assert missing.returncode == 1
    assert missing.stderr == "error: unable to find specified revision 9 in history\n"
    rw.ok("rollout", "undo", f"deploy/{DEPLOY}", "--to-revision=1")
    assert template_image(rw).startswith("vllm/vllm-openai:v0.8.4@sha256:")
    wait_rolled_out(rw)
    assert (
        rw.json("deploy", DEPLOY)["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        == "4"
    )


def test_rollout_pause_refuses_undo(rw: Kubectl) -> None:
    assert rw.ok("rollout", "pause", f"deploy/{DEPLOY}") == "deployment.apps/llm-serve paused\n"
    refused = rw("rollout", "undo", f"deploy/{DEPLOY}")
    assert refused.returncode == 1
    assert refused.stderr == (
        "error: you cannot rollback a paused deployment; resume it first with "
        "'kubectl rollout resume' and try again\n"
    )
    assert template_image(rw) == "vllm/vllm-openai:latest"
    assert rw.ok("rollout", "resume", f"deploy/{DEPLOY}") == "deployment.apps/llm-serve resumed\n"
    assert rw.ok("rollout", "undo", f"deploy/{DEPLOY}") == "deployment.apps/llm-serve rolled back\n"


def test_rollout_status_reports_progress_deadline_exceeded(rw: Kubectl) -> None:
    rw.ok("patch", f"deploy/{DEPLOY}", "-p", '{"spec":{"progressDeadlineSeconds":30}}')
    patch = [
        {
            "op": "add",
            "path": "/spec/template/spec/containers/0/args/-",
            "value": "--max-model-len",
        },
        {"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "262144"},
    ]
    rw.ok("patch", f"deploy/{DEPLOY}", "--type=json", "-p", json.dumps(patch))
    done = rw("rollout", "status", f"deploy/{DEPLOY}", "--timeout=60s", timeout=90)
    assert done.returncode == 1
    assert done.stderr == f'error: deployment "{DEPLOY}" exceeded its progress deadline\n'
    assert done.stdout.startswith(f'Waiting for deployment "{DEPLOY}" rollout to finish: ')
    conditions = {c["type"]: c for c in rw.json("deploy", DEPLOY)["status"]["conditions"]}
    assert conditions["Progressing"]["status"] == "False"
    assert conditions["Progressing"]["reason"] == "ProgressDeadlineExceeded"
    # The old pods keep serving; the new ones cannot start on their GPU.
    rows = table(rw.ok("get", "pods", "-l", f"app={DEPLOY}"))
    assert sum(r["STATUS"] == "Running" and r["READY"] == "1/1" for r in rows) >= 3
    failing = [r for r in rows if r["READY"] == "0/1"]
    assert failing
    assert {r["STATUS"] for r in failing} <= {"CrashLoopBackOff", "Error", "Running"}
    log = rw("logs", failing[0]["NAME"], "--previous")
    assert "max_model_len (262144)" in log.stdout + log.stderr


# ---------------------------------------------------------------- edits


def test_set_image_and_env(rw: Kubectl) -> None:
    pinned = "vllm/vllm-openai:v0.8.5"
    assert rw.ok("set", "image", f"deploy/{DEPLOY}", f"vllm={pinned}") == (
        "deployment.apps/llm-serve image updated\n"
    )
    assert template_image(rw) == pinned
    assert rw.ok("set", "env", f"deploy/{DEPLOY}", "VLLM_LOGGING_LEVEL=DEBUG") == (
        "deployment.apps/llm-serve env updated\n"
    )
    rw.ok("set", "env", f"deploy/{DEPLOY}", "HF_HUB_OFFLINE=1")
    assert rw.ok("set", "env", f"deploy/{DEPLOY}", "--list") == (
        "# Deployment llm-serve, container vllm\n"
        "# HF_TOKEN from secret hf-token, key token\n"
        "HF_HUB_OFFLINE=1\n"
        "VLLM_LOGGING_LEVEL=DEBUG\n"
    )
    rw.ok("set", "env", f"deploy/{DEPLOY}", "VLLM_LOGGING_LEVEL-")
    env = rw.ok("get", "deploy", DEPLOY, "-o", "jsonpath={.spec.template.spec.containers[0].env}")
    assert json.loads(env) == [
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"key": "token", "name": "hf-token"}}},
        {"name": "HF_HUB_OFFLINE", "value": "1"},
    ]


def test_patch_dry_run_server_changes_nothing(rw: Kubectl) -> None:
    before = rw.json("deploy", DEPLOY)
    out = rw.ok(
        "patch", f"deploy/{DEPLOY}", "--dry-run=server", "-p", '{"spec":{"replicas":7}}',
        "-o", "jsonpath={.spec.replicas}",
    )  # fmt: skip
    assert out == "7"
    after = rw.json("deploy", DEPLOY)
    assert after["spec"]["replicas"] == 4
    assert after["metadata"] == before["metadata"]


def test_scale_and_events(rw: Kubectl) -> None:
    assert rw.ok("scale", f"deploy/{DEPLOY}", "--replicas=5") == (
        "deployment.apps/llm-serve scaled\n"
    )
    wait_rolled_out(rw)
    deploy = table(rw.ok("get", "deploy", DEPLOY))[0]
    assert (deploy["READY"], deploy["UP-TO-DATE"], deploy["AVAILABLE"]) == ("5/5", "5", "5")
    events = table(rw.ok("get", "events", "--field-selector", "reason=ScalingReplicaSet"))
    assert [e["TYPE"] for e in events] == ["Normal"]
    assert events[0]["OBJECT"] == "deployment/llm-serve"
    assert re.fullmatch(
        r"Scaled up replica set llm-serve-[a-z0-9]+ from 4 to 5", events[0]["MESSAGE"]
    )
    started = table(rw.ok("get", "events", "--field-selector", "reason=Started"))
    assert started and started[0]["MESSAGE"] == "Started container vllm"


def test_cordon_uncordon_and_taint(rw: Kubectl) -> None:
    assert rw.ok("cordon", "gpu-a10g-1") == "node/gpu-a10g-1 cordoned\n"
    nodes = {r["NAME"]: r for r in table(rw.ok("get", "nodes"))}
    assert nodes["gpu-a10g-1"]["STATUS"] == "Ready,SchedulingDisabled"
    assert nodes["gpu-a10g-2"]["STATUS"] == "Ready"
    assert rw.ok("cordon", "gpu-a10g-1") == "node/gpu-a10g-1 already cordoned\n"
    assert rw.ok("uncordon", "gpu-a10g-1") == "node/gpu-a10g-1 uncordoned\n"
    nodes = {r["NAME"]: r for r in table(rw.ok("get", "nodes"))}
    assert nodes["gpu-a10g-1"]["STATUS"] == "Ready"

    assert rw.ok("taint", "nodes", "gpu-a10g-2", "gpu=a10g:NoSchedule") == (
        "node/gpu-a10g-2 tainted\n"
    )
    taints = rw.ok("get", "node", "gpu-a10g-2", "-o", "jsonpath={.spec.taints}")
    assert json.loads(taints) == [{"effect": "NoSchedule", "key": "gpu", "value": "a10g"}]
    assert rw.ok("taint", "nodes", "gpu-a10g-2", "gpu=a10g:NoSchedule-") == (
        "node/gpu-a10g-2 untainted\n"
    )
    assert rw.ok("get", "node", "gpu-a10g-2", "-o", "jsonpath={.spec.taints}") == ""
    missing = rw("taint", "nodes", "gpu-a10g-2", "gpu:NoSchedule-")
    assert missing.returncode == 1
    assert missing.stderr == 'error: taint "gpu:NoSchedule" not found\n'
