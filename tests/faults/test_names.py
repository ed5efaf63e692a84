"""Names are checked as Kubernetes names before any URL or path is built from them, and URL
segments are quoted: `cordon gpu-a10g-1/../gpu-h100-1` reached gpu-h100-1, and
`--deployment 'x/../../deployments/llm-serve'` escaped its URL and the bundle folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services import hardware
from services.errors import ConfigError
from services.kube import KINDS
from services.names import check_name, check_namespace
from services.session import SessionOptions, open_cluster
from services.simulator.runner import Simulator
from tests.services.harness import connect

TRAVERSAL_NODE = "gpu-a10g-1/../gpu-h100-1"
TRAVERSAL_DEPLOYMENT = "x/../../deployments/llm-serve"


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("Deployment", "llm-serve"),
        ("Deployment", "llm.serve-v2"),
        ("Node", "ip-10-0-1-2.ec2.internal"),
        ("Namespace", "inference"),
        ("Service", "llm-serve-long"),
        ("Deployment", "a" * 253),
    ],
)
def test_real_names_pass(kind: str, name: str) -> None:
    assert check_name(kind, name) == name


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("Node", TRAVERSAL_NODE),
        ("Deployment", TRAVERSAL_DEPLOYMENT),
        ("Deployment", ".."),
        ("Deployment", "LLM-Serve"),
        ("Deployment", "llm-serve?dryRun=All"),
        ("Deployment", "llm%2Fserve"),
        ("Deployment", "llm-serve\x1b]0;pwned\x07"),
        ("Deployment", ""),
        ("Deployment", "a" * 254),
        ("Namespace", "a.b"),
        ("Namespace", "a" * 64),
        ("Service", "9-starts-with-a-digit"),
        ("Service", "a" * 59 + "-long"),
    ],
)
def test_names_no_object_can_have_are_refused(kind: str, name: str) -> None:
    with pytest.raises(ConfigError, match=f"is not a valid {kind.lower()} name") as refused:
        check_name(kind, name)
    assert "\x1b" not in str(refused.value)  # shown escaped, never raw on a terminal


def test_url_segments_are_quoted_as_a_second_line() -> None:
    path = KINDS["Node"].path("", "a/../b")
    assert path == "/api/v1/nodes/a%2F..%2Fb"
    assert KINDS["Deployment"].path("in/../x", "d") == (
        "/apis/apps/v1/namespaces/in%2F..%2Fx/deployments/d"
    )


def test_cordon_with_a_traversal_never_reaches_the_other_node(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    """Issue 9: the dry run went to gpu-h100-1."""
    cluster = connect(shared_sim, tmp_path)
    with pytest.raises(ConfigError, match="not a valid node name"):
        hardware.cordon_plan(cluster, TRAVERSAL_NODE)
    with pytest.raises(ConfigError, match="not a valid node name"):
        cluster.patch(
            "Node", "", TRAVERSAL_NODE, {"spec": {"unschedulable": True}}, "merge", dry_run=True
        )
    with pytest.raises(ConfigError, match="not a valid deployment name"):
        cluster.get("Deployment", "inference", TRAVERSAL_DEPLOYMENT)
    with pytest.raises(ConfigError, match="not a valid namespace name"):
        cluster.list("Pod", "../kube-system")
    assert not cluster.get("Node", "", "gpu-h100-1")["spec"].get("unschedulable")


def test_a_session_refuses_a_traversal_deployment(shared_sim: Simulator, tmp_path: Path) -> None:
    kubeconfig = str(shared_sim.write_kubeconfig(tmp_path / "kubeconfig"))
    options = SessionOptions(kubeconfig, "skewmit-sim", "inference", TRAVERSAL_DEPLOYMENT)
    with pytest.raises(ConfigError, match="--deployment"):
        open_cluster(options)
    with pytest.raises(ConfigError, match="-n/--namespace"):
        open_cluster(SessionOptions(kubeconfig, "skewmit-sim", "Inference", "llm-serve"))
    assert check_namespace("inference") == "inference"


@pytest.mark.parametrize("command", ["evidence", "validate", "check"])
def test_headless_commands_refuse_a_traversal_before_touching_anything(
    command: str, tmp_path: Path
) -> None:
    """Issue 9: `skewmit evidence --deployment 'x/../../deployments/llm-serve'` wrote the
    bundle outside --out."""
    out = tmp_path / "out"
    args = [command, "--kubeconfig", str(tmp_path / "none"), "--deployment", TRAVERSAL_DEPLOYMENT]
    if command == "evidence":
        args += ["--out", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 2, result.stderr
    assert "argument --deployment" in result.stderr
    assert "is not a valid deployment name" in result.stderr
    assert not out.exists() and sorted(tmp_path.iterdir()) == []
