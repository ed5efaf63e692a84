"""What the app can say before it connects (issue 12: the first frame before any network
call): services.session.local_target reads the kubeconfig kubectl would use without the
Kubernetes client, and a fault in it reads exactly as the client-backed KubeCluster says it,
so bad input is refused the same way before and after the app starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.errors import ConfigError
from services.kube import KubeCluster
from services.session import SessionOptions, local_target

CA = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"  # never used: nothing here connects


def kubeconfig(
    path: Path, contexts: dict[str, tuple[str, str]], current: str = "", server: str = ""
) -> Path:
    """A kubeconfig with one cluster ("c") and contexts name -> (namespace, user)."""
    data = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": server or "https://10.0.0.1:6443",
                    "certificate-authority-data": CA,
                },
            }
        ],
        "users": [{"name": user, "user": {"token": "t"}} for _, user in contexts.values()],
        "contexts": [
            {"name": name, "context": {"cluster": "c", "user": user, "namespace": ns}}
            for name, (ns, user) in contexts.items()
        ],
        "current-context": current,
    }
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_header_facts_come_from_the_kubeconfig_alone(tmp_path: Path) -> None:
    # A server nobody listens on: reading it must not need the network.
    path = kubeconfig(
        tmp_path / "kc",
        {"prod-east": ("serving", "oncall"), "dev": ("default", "me")},
        current="prod-east",
        server="https://192.0.2.1:6443",
    )
    found = local_target(SessionOptions(kubeconfig=str(path), deployment="llm-serve"))
    assert (found.context, found.server, found.namespace, found.deployment, found.user) == (
        "prod-east",
        "https://192.0.2.1:6443",
        "serving",
        "llm-serve",
        "oncall",
    )
    chosen = local_target(
        SessionOptions(kubeconfig=str(path), context="dev", namespace="ml", deployment="x")
    )
    assert (chosen.context, chosen.namespace, chosen.user) == ("dev", "ml", "me")


def test_kubeconfig_lists_merge_with_the_first_files_entries_winning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = kubeconfig(tmp_path / "a", {"shared": ("from-a", "ua")}, current="shared")
    second = kubeconfig(tmp_path / "b", {"shared": ("from-b", "ub"), "only-b": ("nb", "ub")})
    missing = tmp_path / "not-there"
    monkeypatch.setenv("KUBECONFIG", f"{first}:{missing}:{second}")
    found = local_target(SessionOptions(deployment="d"))
    assert (found.context, found.namespace, found.kubeconfig) == ("shared", "from-a", None)
    assert local_target(SessionOptions(context="only-b", deployment="d")).namespace == "nb"


def faults(tmp_path: Path) -> dict[str, SessionOptions]:
    good = kubeconfig(tmp_path / "good", {"a": ("ns", "u")}, current="a")
    broken = tmp_path / "broken"
    broken.write_text("clusters: [unclosed\n")
    empty = tmp_path / "empty"
    empty.write_text("just: text\n")
    return {
        "missing file": SessionOptions(kubeconfig=str(tmp_path / "nope"), deployment="d"),
        "invalid YAML": SessionOptions(kubeconfig=str(broken), deployment="d"),
        "no contexts": SessionOptions(kubeconfig=str(empty), deployment="d"),
        "unknown context": SessionOptions(kubeconfig=str(good), context="b", deployment="d"),
    }


@pytest.mark.parametrize(
    "fault", ["missing file", "invalid YAML", "no contexts", "unknown context"]
)
def test_a_bad_kubeconfig_reads_as_the_client_says_it(fault: str, tmp_path: Path) -> None:
    options = faults(tmp_path)[fault]
    with pytest.raises(ConfigError) as local:
        local_target(options)
    with pytest.raises(ConfigError) as client:
        KubeCluster(options.kubeconfig, options.context)
    assert str(local.value) == str(client.value)


def test_names_are_checked_before_anything_is_built_from_them(tmp_path: Path) -> None:
    path = str(kubeconfig(tmp_path / "kc", {"a": ("ns", "u")}, current="a"))
    with pytest.raises(ConfigError, match="no deployment given"):
        local_target(SessionOptions(kubeconfig=path))
    with pytest.raises(ConfigError, match="--deployment"):
        local_target(SessionOptions(kubeconfig=path, deployment="x/../../secrets"))
    with pytest.raises(ConfigError, match="-n/--namespace"):
        local_target(SessionOptions(kubeconfig=path, namespace="Bad_NS", deployment="d"))


def test_a_context_whose_cluster_is_missing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    data = {
        "clusters": [],
        "users": [],
        "contexts": [{"name": "a", "context": {"cluster": "gone", "user": "u"}}],
        "current-context": "a",
    }
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="context 'a' is unusable: its cluster 'gone'"):
        local_target(SessionOptions(kubeconfig=str(path), deployment="d"))
