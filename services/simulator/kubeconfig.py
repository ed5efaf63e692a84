"""The kubeconfig the simulator writes: one cluster, an admin and a read-only user."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml

from services.simulator.auth import ADMIN, VIEWER

CLUSTER = "skewmit-sim"
ADMIN_CONTEXT = "skewmit-sim"
VIEWER_CONTEXT = "skewmit-sim-readonly"


def kubeconfig(server: str, namespace: str, ca_pem: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": CLUSTER,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [
            {"name": ADMIN.name, "user": {"token": ADMIN.token}},
            {"name": VIEWER.name, "user": {"token": VIEWER.token}},
        ],
        "contexts": [
            {
                "name": ADMIN_CONTEXT,
                "context": {"cluster": CLUSTER, "user": ADMIN.name, "namespace": namespace},
            },
            {
                "name": VIEWER_CONTEXT,
                "context": {"cluster": CLUSTER, "user": VIEWER.name, "namespace": namespace},
            },
        ],
        "current-context": ADMIN_CONTEXT,
    }


def write_kubeconfig(path: Path, server: str, namespace: str, ca_pem: bytes) -> Path:
    """Write the kubeconfig with owner-only permissions (it holds tokens)."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(kubeconfig(server, namespace, ca_pem), sort_keys=False)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path
