"""Error messages name the real cause: a CA mismatch is the kubeconfig's CA, not "the
network/VPN"; a 429 says when to retry; a 5xx names the request (method and path). Through the
real kubernetes client over HTTP(S) to the simulator, faults injected with POST /_sim/faults."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from services.errors import CertificateError, ServerError, ThrottledError, UnreachableError
from services.kube import KubeCluster
from services.simulator.runner import Simulator
from services.simulator.tls import make_serving_cert
from tests.faults.test_gate_faults import set_faults
from tests.services.harness import connect

NS, NAME = "inference", "llm-serve"
DEPLOYMENT_PATH = f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}"


def test_a_ca_mismatch_names_the_kubeconfig_ca_not_the_network(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    """Issue 9: reported as "check the network/VPN", the real cause hidden."""
    path = shared_sim.write_kubeconfig(tmp_path / "kubeconfig")
    doc = yaml.safe_load(path.read_text())
    # A CA that did not sign the simulator's cert (its files kept out of /tmp).
    other_ca = make_serving_cert(folder=tmp_path).ca_pem
    doc["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(
        other_ca
    ).decode()
    path.write_text(yaml.safe_dump(doc))
    cluster = KubeCluster(str(path), "skewmit-sim")
    with pytest.raises(CertificateError) as failed:
        cluster.get("Deployment", NS, NAME)
    message = str(failed.value)
    assert "certificate verify failed" in message
    assert "the CA in the kubeconfig does not trust" in message
    assert f"cluster 'skewmit-sim''s certificate-authority(-data) in {path}" in message
    assert "network/VPN" not in message
    assert isinstance(failed.value, UnreachableError)  # callers that retry reads still do


def test_a_5xx_names_the_request(sim: Simulator, tmp_path: Path) -> None:
    cluster = connect(sim, tmp_path)
    set_faults(cluster, [{"verb": "patch", "resource": "deployments", "error_rate": 1.0}])
    with pytest.raises(ServerError) as failed:
        cluster.patch("Deployment", NS, NAME, {"spec": {"replicas": 5}}, "merge")
    assert failed.value.status == 500 and failed.value.request == f"PATCH {DEPLOYMENT_PATH}"
    assert f"failed the request PATCH {DEPLOYMENT_PATH} with 500" in str(failed.value)
    assert "injected fault" in str(failed.value)  # the server's own words are kept
    set_faults(cluster, [{"verb": "get", "resource": "deployments", "error_rate": 1.0}])
    with pytest.raises(ServerError, match=f"GET {DEPLOYMENT_PATH} with 500"):
        cluster.get("Deployment", NS, NAME)


def test_a_429_without_retry_after_says_to_retry_shortly(sim: Simulator, tmp_path: Path) -> None:
    cluster = connect(sim, tmp_path)
    # A proxy or an old server may throttle without saying when to come back.
    fault = {
        "verb": "get",
        "resource": "deployments",
        "error_rate": 1.0,
        "error_code": 429,
        "retry_after_s": 0,
    }
    set_faults(cluster, [fault])
    with pytest.raises(ThrottledError) as failed:
        cluster.get("Deployment", NS, NAME)
    message = str(failed.value)
    assert "429 Too Many Requests" in message and f"GET {DEPLOYMENT_PATH}" in message
    assert "retry in a few seconds" in message and failed.value.retry_after_s is None


class _Throttling(BaseHTTPRequestHandler):
    """An API server front that answers every request as kube-apiserver's max-in-flight
    filter does: 429, `Retry-After`, and a Status with details.retryAfterSeconds (the client
    itself waits and retries a few times first, so the wait is kept short)."""

    def do_GET(self) -> None:
        body = json.dumps(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": "Too many requests, please try again later.",
                "reason": "TooManyRequests",
                "details": {"retryAfterSeconds": 1},
                "code": 429,
            }
        ).encode()
        self.send_response(429)
        self.send_header("Content-Type", "application/json")
        self.send_header("Retry-After", "1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def throttling(tmp_path: Path) -> Iterator[Path]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Throttling)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "busy", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}
            ],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "busy", "context": {"cluster": "busy", "user": "u"}}],
            "current-context": "busy",
        }
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(doc))
        yield path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_429_says_when_to_retry_from_retry_after(throttling: Path) -> None:
    cluster = KubeCluster(str(throttling), "busy")
    with pytest.raises(ThrottledError) as failed:
        cluster.get("Deployment", NS, NAME)
    assert failed.value.retry_after_s == 1
    assert "retry in 1 s (the server's Retry-After)" in str(failed.value)
    assert f"GET {DEPLOYMENT_PATH}" in str(failed.value)


def test_a_strict_field_validation_error_is_shown_verbatim_in_the_preview(
    sim: Simulator, tmp_path: Path
) -> None:
    """kubectl sends fieldValidation=Strict; without it a real server only warns and drops an
    unknown field, so a preview would pass a change that never takes effect."""
    from services.gate import Gate
    from services.journal import Journal
    from services.models import Change, Plan, Step, Target

    cluster = connect(sim, tmp_path)
    live = cluster.get("Deployment", NS, NAME)
    change = Change("Deployment", NS, NAME, "patch", "merge", {"spec": {"replicaz": 4}}, live, live)
    plan = Plan(Step.LATENCY, "latency.test", "A typo'd field", (change,), ())
    journal = Journal.open_for(Target("skewmit-sim", NS, NAME), "admin", root=tmp_path / "state")
    preview = Gate(cluster, journal).preview(plan)
    assert not preview.dry_run_ok
    assert 'unknown field "spec.replicaz"' in preview.dry_run_message
    assert cluster.get("Deployment", NS, NAME)["spec"]["replicas"] == live["spec"]["replicas"]
