"""`kubectl logs`, `kubectl exec ... sh -c` and nvidia-smi's detail views against the simulator
(issue 11, items 6 and 8), with the real kubectl 1.32 and 1.37.

Logs: lines appear when the simulated engine writes them (a follow stays open and streams them
as the clock reaches them, and ends when the container stops), with the kubelet's
`--timestamps`, `--since`/`--since-time`, `--tail`, `--limit-bytes`, `--previous` of a
crash-looping container and the API server's errors. Exec: dash's `sh -c` with `$VAR`, pipes
into grep/head/wc, `;`/`&&`/`||` and 127 for an unknown command. nvidia-smi: `-q -d MEMORY`,
`topo -m`, `-L` and the driver's /proc entry. One simulator serves the module; the follow test
freezes its clock and steps it, so nothing here waits on wall time.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from services.simulator.runner import Simulator
from tests.conftest import FAST, api_client
from tests.simulator.test_kubectl import KUBECTL_VERSIONS, Kubectl, make_kubectl, running_pod

pytestmark = pytest.mark.kubectl

NS = "inference"
DEPLOY = "llm-serve"
H100 = "NVIDIA-H100-80GB-HBM3"
STAMPED = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (.*)")
FROZEN = 0.001  # simulated seconds per wall second while a test steps the clock by hand


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator("skew-incident", speed=FAST) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def api(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> client.ApiClient:
    return api_client(sim, tmp_path_factory.mktemp("logs-exec-admin"))


@pytest.fixture(scope="module", params=KUBECTL_VERSIONS)
def k(
    request: pytest.FixtureRequest, sim: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Kubectl:
    version = str(request.param)
    return make_kubectl(sim, tmp_path_factory.mktemp(f"logs-exec-{version}"), version)


def wait_until(what: str, check: Callable[[], bool], sim: Simulator, step_s: float = 0.0) -> None:
    """Poll `check` until true; with step_s, advance the simulated clock each round (for a
    frozen clock)."""
    for _ in range(600):
        if check():
            return
        if step_s:
            sim.call(sim.cluster.clock.advance, step_s)
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def probe_pod(name: str, gpus: int, args: list[str] | None = None) -> client.V1Pod:
    """A bare pod on an H100 node: the serving container with `args`, or a sleeper."""
    if args is None:
        container = client.V1Container(
            name="probe", image="busybox:1.36", command=["sleep", "infinity"]
        )
    else:
        container = client.V1Container(name="vllm", image="vllm/vllm-openai:latest", args=args)
    container.resources = client.V1ResourceRequirements(
        limits={"nvidia.com/gpu": str(gpus)}, requests={"nvidia.com/gpu": str(gpus)}
    )
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            containers=[container], node_selector={"nvidia.com/gpu.product": H100}
        ),
    )


def container_status(api: client.ApiClient, pod: str) -> client.V1ContainerStatus | None:
    statuses = client.CoreV1Api(api).read_namespaced_pod(pod, NS).status.container_statuses
    return statuses[0] if statuses else None


@pytest.fixture(scope="module")
def crash_looping(sim: Simulator, api: client.ApiClient) -> str:
    """A vLLM pod whose --max-model-len exceeds the model's: it dies at start, over and over."""
    name = "crashloop-probe"
    args = ["--model", "meta-llama/Llama-3.1-8B-Instruct", "--max-model-len", "999999"]
    client.CoreV1Api(api).create_namespaced_pod(NS, probe_pod(name, 1, args))

    def restarted_twice() -> bool:
        status = container_status(api, name)
        return status is not None and status.restart_count >= 2

    wait_until("the probe to crash twice", restarted_twice, sim)
    return name


@pytest.fixture(scope="module")
def two_gpu_pod(sim: Simulator, api: client.ApiClient) -> str:
    name = "topo-probe"
    client.CoreV1Api(api).create_namespaced_pod(NS, probe_pod(name, 2))

    def running() -> bool:
        status = container_status(api, name)
        return status is not None and status.state.running is not None

    wait_until("the two-GPU probe to run", running, sim)
    return name


def a_pod_on(k: Kubectl, product: str) -> str:
    rows = k.ok("get", "pods", "-l", f"app={DEPLOY}", "-o", "wide").splitlines()[1:]
    for row in rows:
        name, ready, status, *_, node = row.split()[:7]
        labels = k.ok("get", "node", node, "-o", "jsonpath={.metadata.labels}")
        if ready == "1/1" and status == "Running" and product in labels:
            return name
    raise AssertionError(f"no ready serving pod on {product}")


# ---------------------------------------------------------------- logs


def oldest_ready_pod(k: Kubectl) -> str:
    """A serving pod that started with the scenario, hours ago (the follow test makes new ones)."""
    out = k.ok(
        "get", "pods", "-l", f"app={DEPLOY}", "--sort-by=.metadata.creationTimestamp",
        "-o", "custom-columns=NAME:.metadata.name,READY:.status.containerStatuses[0].ready",
    )  # fmt: skip
    return next(row.split()[0] for row in out.splitlines()[1:] if row.split()[1] == "true")


def test_logs_options_cut_the_log_as_the_kubelet_does(k: Kubectl, sim: Simulator) -> None:
    pod = oldest_ready_pod(k)
    clock = sim.cluster.clock
    # The stats lines start with the simulator: on a loaded machine this test can come
    # before the first one (10 simulated seconds in).
    wait_until("the first stats line", lambda: "Avg prompt throughput" in k.ok("logs", pod), sim)
    # A serving engine logs its stats every 10 s: hold the clock so every read sees one log.
    sim.call(clock.set_speed, FROZEN)
    try:
        check_log_options(k, pod)
    finally:
        sim.call(clock.set_speed, FAST)


def check_log_options(k: Kubectl, pod: str) -> None:
    text = k.ok("logs", pod)
    lines = text.splitlines()
    assert "vLLM API server version" in text
    # Start-up ends with uvicorn's line; since then the engine logs its stats every 10 s.
    up = next(i for i, line in enumerate(lines) if line.startswith("INFO:     Uvicorn running"))
    assert lines[up] == "INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)"
    stats = lines[up + 1 :]
    assert stats and all("Engine 000: Avg prompt throughput: " in line for line in stats)

    stamped = [STAMPED.fullmatch(line) for line in k.ok("logs", pod, "--timestamps").splitlines()]
    assert all(stamped), "every line carries the kubelet's RFC3339Nano prefix"
    times = [datetime.fromisoformat(m[1].replace("Z", "+00:00")) for m in stamped if m]
    assert [m[2] for m in stamped if m] == lines
    assert times == sorted(times)
    # vLLM's own stamp (MM-DD HH:MM:SS, UTC) agrees with the kubelet's to the second.
    for moment, line in zip(times, lines, strict=True):
        if line.startswith("INFO 1") or line.startswith("INFO 0"):
            assert line[5:19] == moment.strftime("%m-%d %H:%M:%S")

    assert k.ok("logs", pod, "--tail=2").splitlines() == lines[-2:]
    assert k.ok("logs", pod, "--tail=0") == ""
    assert k.ok("logs", pod, "--limit-bytes=40") == text[:40]
    # The serving pods started hours ago: the last hour holds only their stats lines.
    assert k.ok("logs", pod, "--since=1h").splitlines() == stats
    assert k.ok("logs", pod, "--since=24h") == text
    # --since-time keeps the lines written at or after that second.
    cut = times[up // 2].replace(microsecond=0)
    since = k.ok("logs", pod, f"--since-time={cut.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    assert since.splitlines() == [line for t, line in zip(times, lines, strict=True) if t >= cut]
    assert k.ok("logs", pod, "--all-containers") == text


def test_logs_errors_are_the_servers(k: Kubectl, api: client.ApiClient) -> None:
    pod, _ = running_pod(k)
    previous = k("logs", pod, "--previous")
    assert previous.returncode == 1
    assert previous.stderr == (
        "Error from server (BadRequest): previous terminated container "
        f'"vllm" in pod "{pod}" not found\n'
    )
    wrong = k("logs", pod, "-c", "nope")
    assert wrong.returncode == 1
    # kubectl 1.37 checks the name itself and adds "out of: vllm"; 1.32 prints the server's.
    assert f"container nope is not valid for pod {pod}" in wrong.stderr
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod_log(pod, NS, container="nope")
    assert caught.value.status == 400
    assert json.loads(caught.value.body)["message"] == f"container nope is not valid for pod {pod}"
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod_log(pod, NS, tail_lines=-1, limit_bytes=0)
    assert caught.value.status == 422
    assert json.loads(caught.value.body)["message"] == (
        f'PodLogOptions "{pod}" is invalid: [tailLines: Invalid value: -1: must be greater than '
        "or equal to 0, limitBytes: Invalid value: 0: must be greater than 0]"
    )


def test_logs_previous_of_a_crash_looping_container(k: Kubectl, crash_looping: str) -> None:
    # One read: the probe keeps crashing, so a second read may see a later instance.
    stamped = [
        STAMPED.fullmatch(line)
        for line in k.ok("logs", crash_looping, "--previous", "--timestamps").splitlines()
    ]
    assert stamped and all(stamped)
    lines = [m[2] for m in stamped if m]
    assert "non-default args: {'model': 'meta-llama/Llama-3.1-8B-Instruct'" in lines[2]
    # The container that died wrote every line up to its error, and never came up.
    assert lines[-1].startswith("ValueError: User-specified max_model_len (999999)")
    assert not any("Uvicorn running" in line for line in lines)


def test_logs_follow_streams_lines_as_the_engine_writes_them(
    k: Kubectl, sim: Simulator, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    before = {p.metadata.name for p in core.list_namespaced_pod(NS).items}
    victim, _ = running_pod(k)
    clock = sim.cluster.clock
    sim.call(clock.set_speed, FROZEN)
    try:
        k.ok("delete", "pod", victim, "--wait=false")

        def replacement() -> str | None:
            pods = core.list_namespaced_pod(NS, label_selector=f"app={DEPLOY}").items
            fresh = [p.metadata.name for p in pods if p.metadata.name not in before]
            return fresh[0] if fresh else None

        wait_until("the ReplicaSet to replace the pod", lambda: replacement() is not None, sim)
        pod = replacement()
        assert pod is not None

        def started() -> bool:
            status = container_status(api, pod)
            return status is not None and status.state.running is not None

        wait_until("the new container to start", started, sim, step_s=2.0)
        so_far = k.ok("logs", pod, "--timestamps").splitlines()
        follow = subprocess.Popen(
            [
                k.binary, "--kubeconfig", str(k.kubeconfig), "--cache-dir", str(k.cache),
                "logs", "-f", "--timestamps", pod,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        got: queue.Queue[str] = queue.Queue()
        assert follow.stdout is not None
        reader = threading.Thread(
            target=lambda: [got.put(line.rstrip("\n")) for line in follow.stdout or []],
            daemon=True,
        )
        reader.start()
        try:
            streamed = [got.get(timeout=60) for _ in so_far]
            assert streamed == so_far  # the clock stands still: only what was written yet
            assert not any("Uvicorn running" in line for line in streamed)
            # The engine finishes starting as the clock moves; the stream carries each line.
            sim.call(clock.advance, 300.0)
            while "Uvicorn running" not in streamed[-1]:
                streamed.append(got.get(timeout=60))
            # Then its stats every 10 s: what a later read holds, the stream carries too.
            snapshot = k.ok("logs", pod, "--timestamps").splitlines()
            while len(streamed) < len(snapshot):
                streamed.append(got.get(timeout=60))
            assert streamed[: len(snapshot)] == snapshot
            assert "Engine 000: Avg prompt throughput: " in streamed[-1]
            assert len(so_far) < len(streamed)
            assert follow.poll() is None, "the stream stays open while the container runs"
            # The container stops with its pod: uvicorn says goodbye, the stream ends and
            # kubectl exits 0.
            k.ok("delete", "pod", pod, "--grace-period=1", "--wait=false")
            wait_until("the follow to end", lambda: follow.poll() is not None, sim, step_s=1.0)
            assert follow.returncode == 0
            reader.join(timeout=10)
            rest = [STAMPED.fullmatch(got.get_nowait())[2] for _ in range(got.qsize())]  # type: ignore[index]
            goodbye = [line for line in rest if "Avg prompt throughput" not in line]
            assert goodbye == [
                "INFO:     Shutting down",
                "INFO:     Waiting for application shutdown.",
                "INFO:     Application shutdown complete.",
                "INFO:     Finished server process [1]",
            ]
        finally:
            follow.kill()
            follow.wait(timeout=10)
    finally:
        sim.call(clock.set_speed, FAST)


# ---------------------------------------------------------------- exec sh -c


def test_exec_shell_expands_pipes_and_lists(k: Kubectl) -> None:
    pod, product = running_pod(k)

    def sh(script: str) -> subprocess.CompletedProcess[str]:
        return k("exec", pod, "--", "sh", "-c", script)

    assert sh("echo $HF_HUB_OFFLINE").stdout == "0\n"
    assert sh("echo \"offline=${HF_HUB_OFFLINE}\" '$HF_HUB_OFFLINE'").stdout == (
        "offline=0 $HF_HUB_OFFLINE\n"
    )
    assert sh("env | grep -c ^HF_").stdout == "2\n"
    assert sh("env | grep HF_HUB | wc -l").stdout == "1\n"
    assert sh("printenv HOSTNAME; hostname").stdout == f"{pod}\n{pod}\n"
    assert sh("false && echo no; echo $?").stdout == "1\n"
    assert sh("grep -q nope /etc/hostname || echo absent").stdout == "absent\n"
    gpu_name = {H100: "NVIDIA H100 80GB HBM3", "NVIDIA-A10G": "NVIDIA A10G"}[product]
    listed = sh("nvidia-smi -L | head -n 1").stdout
    assert re.fullmatch(rf"GPU 0: {gpu_name} \(UUID: GPU-[0-9a-f-]{{36}}\)\n", listed)
    uuid = k.ok("exec", pod, "--", "nvidia-smi", "--query-gpu=uuid", "--format=csv,noheader")
    assert sh("echo $NVIDIA_VISIBLE_DEVICES").stdout == uuid  # the device plugin's GPU
    version = sh("cat /proc/driver/nvidia/version | head -1")
    assert version.stdout.startswith("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.127.05")
    assert k.ok("exec", pod, "--", "cat", "/etc/hostname") == f"{pod}\n"

    unknown = sh("kubectl version")
    assert unknown.returncode == 127
    assert unknown.stdout == ""
    assert unknown.stderr == ("sh: 1: kubectl: not found\ncommand terminated with exit code 127\n")
    missing = sh("cat /etc/nope")
    assert missing.returncode == 1
    assert missing.stderr.startswith("cat: /etc/nope: No such file or directory\n")


def test_the_server_closes_an_exec_without_stdin_once_its_status_is_sent(
    k: Kubectl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the kubelet does: a client with no stdin sends nothing more and waits for the server
    to close, so the simulator closes at once (it used to wait up to 50 ms for the client to
    close first: every step-5 nvidia-smi read took 50 ms longer). With `-i` it still reads
    what kubectl sends on stdin before closing, or kubectl 1.32 logs "websocket: close"."""
    waits: list[float | None] = []
    receive = web.WebSocketResponse.receive

    async def waited(self: web.WebSocketResponse, timeout: float | None = None) -> Any:
        waits.append(timeout)
        return await receive(self, timeout)

    monkeypatch.setattr(web.WebSocketResponse, "receive", waited)
    pod, _ = running_pod(k)
    answered = k("exec", pod, "--", "nvidia-smi", "--query-gpu=name", "--format=csv,noheader")
    assert answered.returncode == 0 and answered.stdout.startswith("NVIDIA"), answered
    assert waits == [], "the server waited on a client that has nothing to send"
    argv = [k.binary, "--kubeconfig", str(k.kubeconfig), "--cache-dir", str(k.cache)]
    piped = subprocess.run(
        [*argv, "exec", "-i", pod, "--", "true"],
        input="x\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (piped.returncode, piped.stderr) == (0, ""), piped
    assert waits, "stdin was not read before the stream closed"


# ---------------------------------------------------------------- nvidia-smi details


def test_nvidia_smi_memory_details_in_the_real_order(k: Kubectl) -> None:
    pod = a_pod_on(k, "NVIDIA-A10G")
    out = k.ok("exec", pod, "--", "nvidia-smi", "-q", "-d", "MEMORY")
    lines = out.splitlines()
    assert lines[1] == "==============NVSMI LOG=============="
    assert re.fullmatch(r"Timestamp +: \w{3} \w{3} [ 123]\d \d\d:\d\d:\d\d \d{4}", lines[3])
    sections = [line.strip() for line in lines if re.match(r"^ {4}\S", line)]
    assert sections == [
        "FB Memory Usage",
        "BAR1 Memory Usage",
        "Conf Compute Protected Memory Usage",
    ]
    assert "Product Name" not in out and "Utilization" not in out
    date = k.ok("exec", pod, "--", "sh", "-c", "nvidia-smi | head -n 1")
    assert re.fullmatch(r"\w{3} \w{3} [ 123]\d \d\d:\d\d:\d\d \d{4}\n", date)


def test_nvidia_smi_topo_matrix(k: Kubectl, two_gpu_pod: str) -> None:
    out = k.ok("exec", two_gpu_pod, "--", "nvidia-smi", "topo", "-m")
    rows = out.split("\n\nLegend:\n\n")[0].splitlines()
    header = rows[0].split("\t")
    node = k.json("node", k.ok("get", "pod", two_gpu_pod, "-o", "jsonpath={.spec.nodeName}"))
    # AWS P instances carry an EFA device beside each GPU; GCP's A3 shows no RDMA NIC.
    aws = node["metadata"]["labels"]["node.kubernetes.io/instance-type"].startswith("p")
    nics = ["NIC0", "NIC1"] if aws else []
    assert header == ["", "GPU0", "GPU1", *nics, "CPU Affinity", "NUMA Affinity", "GPU NUMA ID"]
    gpu0 = [cell for cell in rows[1].split("\t") if cell]
    assert gpu0[:3] == ["GPU0", " X ", "NV18"]  # H100 SXM through NVSwitch
    assert gpu0[-1] == "N/A"
    if int(node["status"]["capacity"]["nvidia.com/gpu"]) < 8:  # one NUMA node, unreported
        assert gpu0[-3:] == [f"0-{int(node['status']['capacity']['cpu']) - 1}", "N/A", "N/A"]
    assert "  NV#  = Connection traversing a bonded set of # NVLinks\n" in out
    assert ("NIC Legend:" in out) == aws

    a10g = a_pod_on(k, "NVIDIA-A10G")
    pcie = k.ok("exec", a10g, "--", "nvidia-smi", "topo", "-m").splitlines()
    assert pcie[0] == "\tGPU0\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID"
    assert re.fullmatch(r"GPU0\t X \t0-\d+\t+N/A\t\tN/A", pcie[1])
    assert "NIC Legend:" not in "\n".join(pcie)
    refused = k("exec", a10g, "--", "nvidia-smi", "topo", "-x")
    assert refused.returncode == 2
