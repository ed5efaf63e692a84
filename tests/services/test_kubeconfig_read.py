"""KubeCluster reads the kubeconfig once, with libyaml, and builds the client from that read
(issue 12: the client's own functions read a 160 KB kubeconfig with the pure-Python parser,
181 ms for the three reads on the way to the first findings; bench/kubeconfig_bench.py). What
the client is built from must stay exactly what the official client builds from the same
files: the server, its certificate authority, the user's credentials, relative paths against
the file that names them, a KUBECONFIG list merged with the first file's entries winning, and a
refreshed token written back to its own file."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import config

from services.errors import ConfigError
from services.kube import KubeCluster

CA_PEM = b"-----BEGIN CERTIFICATE-----\nnot a real one\n-----END CERTIFICATE-----\n"


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def fleet(folder: Path) -> Path:
    """Two clusters: one with its CA inline and a token, one with a CA file named relative to
    the kubeconfig and a client certificate and key inline."""
    (folder / "certs").mkdir()
    (folder / "certs" / "ca.crt").write_bytes(CA_PEM)
    inline = base64.b64encode(CA_PEM).decode()
    return write(
        folder / "kubeconfig",
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "prod-east",
            "clusters": [
                {
                    "name": "east",
                    "cluster": {
                        "server": "https://192.0.2.10:6443",
                        "certificate-authority-data": inline,
                    },
                },
                {
                    "name": "west",
                    "cluster": {
                        "server": "https://192.0.2.20:6443",
                        "certificate-authority": "certs/ca.crt",
                    },
                },
            ],
            "users": [
                {"name": "oncall", "user": {"token": "east-token"}},
                {
                    "name": "sre",
                    "user": {
                        "client-certificate-data": inline,
                        "client-key-data": base64.b64encode(b"key bytes").decode(),
                    },
                },
            ],
            "contexts": [
                {"name": "prod-east", "context": {"cluster": "east", "user": "oncall"}},
                {"name": "prod-west", "context": {"cluster": "west", "user": "sre"}},
            ],
        },
    )


def built(configuration: Any) -> dict[str, Any]:
    """What a client configuration connects with (certificate files by their content)."""

    def content(name: str | None) -> bytes | None:
        return Path(name).read_bytes() if name else None

    return {
        "host": configuration.host,
        "api_key": dict(configuration.api_key),
        "ca": content(configuration.ssl_ca_cert),
        "cert": content(configuration.cert_file),
        "key": content(configuration.key_file),
        "verify_ssl": configuration.verify_ssl,
    }


@pytest.mark.parametrize("context", ["prod-east", "prod-west"])
def test_the_client_is_built_as_the_official_loader_builds_it(
    context: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path.parent)  # a relative CA path resolves against the file, not here
    path = fleet(tmp_path)
    official = config.new_client_from_config(config_file=str(path), context=context)
    cluster = KubeCluster(str(path), context)
    assert built(cluster.api.configuration) == built(official.configuration)
    assert built(cluster.api.configuration)["ca"] == CA_PEM
    assert cluster.context == context
    assert cluster.server == official.configuration.host


def test_a_kubeconfig_list_merges_with_the_first_files_entries_winning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = fleet(tmp_path)
    second = write(
        tmp_path / "second",
        {
            "current-context": "staging",
            "clusters": [{"name": "east", "cluster": {"server": "https://198.51.100.1:6443"}}],
            "users": [{"name": "me", "user": {"token": "staging-token"}}],
            "contexts": [
                {"name": "staging", "context": {"cluster": "east", "user": "me"}},
                {"name": "prod-east", "context": {"cluster": "east", "user": "me"}},
            ],
        },
    )
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    official = config.new_client_from_config(config_file=f"{first}:{second}", context="staging")
    cluster = KubeCluster(None, "staging")
    assert built(cluster.api.configuration) == built(official.configuration)
    # "east" is the first file's cluster, "prod-east" the first file's context.
    assert cluster.server == "https://192.0.2.10:6443"
    assert KubeCluster(None, "prod-east").api.configuration.api_key == {
        "BearerToken": "Bearer east-token"
    }
    # The last file that names a current context sets it, as in the client.
    assert KubeCluster(None).context == "staging"


def test_a_context_named_on_the_command_line_needs_no_current_context(tmp_path: Path) -> None:
    """kubectl --context works on a kubeconfig without current-context; the client's
    list_kube_config_contexts refused it ("Expected key current-context")."""
    path = fleet(tmp_path)
    data = yaml.safe_load(path.read_text())
    del data["current-context"]
    write(path, data)
    assert KubeCluster(str(path), "prod-west").server == "https://192.0.2.20:6443"
    with pytest.raises(ConfigError, match=r"context None is not in the kubeconfig; .*--context"):
        KubeCluster(str(path))


def test_a_refreshed_token_is_written_back_to_the_file_that_holds_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gcp auth-provider whose token comes from a command: the client runs it and writes the
    new token back to the kubeconfig (persist_config, as new_client_from_config does), to the
    file of a KUBECONFIG list that holds that user, not to the first one."""
    helper = tmp_path / "token-helper"
    answer = {"credential": {"access_token": "fresh", "token_expiry": "2099-01-01T00:00:00Z"}}
    helper.write_text(f"#!/bin/sh\necho '{json.dumps(answer)}'\n")
    helper.chmod(0o755)
    first = fleet(tmp_path)
    second = write(
        tmp_path / "gke",
        {
            "clusters": [{"name": "gke", "cluster": {"server": "https://203.0.113.5"}}],
            "users": [
                {
                    "name": "gke-user",
                    "user": {"auth-provider": {"name": "gcp", "config": {"cmd-path": str(helper)}}},
                }
            ],
            "contexts": [{"name": "gke-prod", "context": {"cluster": "gke", "user": "gke-user"}}],
        },
    )
    before = first.read_text()
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    cluster = KubeCluster(None, "gke-prod")
    assert cluster.api.configuration.api_key == {"BearerToken": "Bearer fresh"}
    provider = yaml.safe_load(second.read_text())["users"][0]["user"]["auth-provider"]
    assert provider["config"]["access-token"] == "fresh"
    assert first.read_text() == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("clusters: [\n", "is not valid YAML"),
        ("kind: Config\n", "has no contexts"),
    ],
)
def test_a_broken_kubeconfig_names_the_file_and_the_fix(
    text: str, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as raised:
        KubeCluster(str(path))
    assert str(path) in str(raised.value)
