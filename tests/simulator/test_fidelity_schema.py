"""The simulator's table of known fields is generated from the official client's models.

The simulator may not import the `kubernetes` client (it is an independent oracle), so the
field table it validates requests against (services/simulator/known_fields.json) is data,
generated here from the installed client's `openapi_types`/`attribute_map` (themselves
generated from the Kubernetes OpenAPI document). This test fails when the two drift;
`.venv/bin/python -m tests.simulator.test_fidelity_schema` rewrites the file.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes import client

from services.simulator import field_schema

TABLE = Path(field_schema.__file__).with_name("known_fields.json")
# The built-in kinds the simulator serves and writes can reach, by their client model.
ROOTS = {
    "Namespace": "V1Namespace",
    "Node": "V1Node",
    "Pod": "V1Pod",
    "Service": "V1Service",
    "Event": "CoreV1Event",
    "ConfigMap": "V1ConfigMap",
    "Secret": "V1Secret",
    "Deployment": "V1Deployment",
    "ReplicaSet": "V1ReplicaSet",
    "HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler",
}
_MODEL = re.compile(r"^(?:List\[)?([A-Z]\w+)\]?$")


def _field_type(type_name: str) -> str:
    """A client type as the table spells it: "Model", "[]Model", or "" for a leaf."""
    match = _MODEL.fullmatch(type_name)
    if match is None or not hasattr(client, match[1]):
        return ""
    return ("[]" if type_name.startswith("List[") else "") + match[1]


def build_table() -> dict[str, Any]:
    models: dict[str, dict[str, str]] = {}
    todo = list(ROOTS.values())
    while todo:
        name = todo.pop()
        if name in models:
            continue
        model = getattr(client, name)
        fields = {
            model.attribute_map[attr]: _field_type(type_name)
            for attr, type_name in model.openapi_types.items()
        }
        models[name] = dict(sorted(fields.items()))
        todo += [t.removeprefix("[]") for t in fields.values() if t]
    return {
        "source": f"kubernetes Python client {kubernetes.__version__} models",
        "roots": ROOTS,
        "models": dict(sorted(models.items())),
    }


def render() -> str:
    return json.dumps(build_table(), indent=1, sort_keys=False) + "\n"


def test_known_fields_table_matches_the_installed_client() -> None:
    assert TABLE.read_text() == render(), (
        "regenerate: .venv/bin/python -m tests.simulator.test_fidelity_schema"
    )


if __name__ == "__main__":
    TABLE.write_text(render())
    sys.stdout.write(f"wrote {TABLE}\n")
