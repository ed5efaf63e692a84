"""The part of `/openapi/v3` kubectl reads before a write: each kind's PATCH operation and
whether it takes `fieldValidation` (kubectl's query-param verifier), generated from the
registry. Without it kubectl sends no fieldValidation and validates client-side, failing with
"failed to download openapi". Schemas (`components`) are not served: `kubectl explain` and
OpenAPI-driven patch computation are not modelled.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from services.simulator.errors import no_route
from services.simulator.resources import Registry, ResourceType

Obj = dict[str, Any]
# The write options every real PATCH operation declares.
_PATCH_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force")


def _prefix(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _patch_path(rt: ResourceType) -> str:
    scope = "namespaces/{namespace}/" if rt.namespaced else ""
    return f"/{_prefix(rt.group, rt.version)}/{scope}{rt.plural}/{{name}}"


def group_versions(registry: Registry) -> list[tuple[str, str]]:
    return sorted({(rt.group, rt.version) for rt in registry.all()})


def document(registry: Registry, group: str, version: str) -> Obj | None:
    """The OpenAPI v3 document of one group version, or None when it is not served."""
    types = [rt for rt in registry.all() if (rt.group, rt.version) == (group, version)]
    if not types:
        return None
    paths: Obj = {}
    for rt in types:
        if "patch" not in rt.verbs:
            continue
        paths[_patch_path(rt)] = {
            "patch": {
                "operationId": f"patch{rt.kind}",
                "parameters": [
                    {"name": name, "in": "query", "schema": {"type": "string"}}
                    for name in _PATCH_PARAMS
                ],
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {
                    "group": rt.group,
                    "version": rt.version,
                    "kind": rt.kind,
                },
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.4"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def index(registry: Registry) -> Obj:
    """`/openapi/v3`: each group version's document, addressed with its content hash."""
    paths: Obj = {}
    for group, version in group_versions(registry):
        doc = document(registry, group, version)
        digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:128]
        prefix = _prefix(group, version)
        paths[prefix] = {"serverRelativeURL": f"/openapi/v3/{prefix}?hash={digest.upper()}"}
    return {"paths": paths}


def serve(registry: Registry, path: str) -> Obj:
    """The answer to GET `path` under /openapi/v3. Raises ApiError 404 for a path not served."""
    if path == "/openapi/v3":
        return index(registry)
    parts = path.removeprefix("/openapi/v3/").split("/")
    doc = None
    if parts[0] == "api" and len(parts) == 2:
        doc = document(registry, "", parts[1])
    elif parts[0] == "apis" and len(parts) == 3:
        doc = document(registry, parts[1], parts[2])
    if doc is None:
        raise no_route()
    return doc
