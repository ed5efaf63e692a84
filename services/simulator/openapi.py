"""`/openapi/v3` (per group version) and `/openapi/v2`, as kubectl reads them.

Paths: each kind's PATCH operation and whether it takes `fieldValidation` (kubectl's
query-param verifier), generated from the registry; without them kubectl validates
client-side and fails with "failed to download openapi". Schemas: every model reachable from
the built-in kinds served, from openapi_models.json (generated from the official client's
models by tests/simulator/test_openapi_models.py), with the kinds' group-version-kind and the
list and map semantics of the simulator's own strategic-merge table (patch merge keys, list
types and keys, atomic maps), which `kubectl explain` prints and client-side apply computes
its patch with. v2 is JSON only: kubectl asks for it as protobuf, gets 406 and carries on
with v3, as against a server that serves v2 only as JSON.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from aiohttp import web

from services.simulator import openapi_schemas
from services.simulator.errors import no_route
from services.simulator.resources import Registry, ResourceType

Obj = dict[str, Any]
# The write options every real PATCH operation declares.
_PATCH_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force")
# The bodies a PATCH takes (strategic merge only for built-in kinds): kubectl apply computes a
# strategic merge patch from the schemas only where the operation declares one.
_PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
_PATCH_SCHEMA = "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"


def _prefix(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _patch_path(rt: ResourceType) -> str:
    scope = "namespaces/{namespace}/" if rt.namespaced else ""
    return f"/{_prefix(rt.group, rt.version)}/{scope}{rt.plural}/{{name}}"


def group_versions(registry: Registry) -> list[tuple[str, str]]:
    return sorted({(rt.group, rt.version) for rt in registry.all()})


def document(registry: Registry, group: str, version: str) -> Obj | None:
    """The OpenAPI v3 document of one group version, or None when it is not served."""
    text = _document_text(registry, group, version)
    return None if text is None else dict(json.loads(text))


def _document_text(registry: Registry, group: str, version: str) -> str | None:
    types = tuple(rt for rt in registry.all() if (rt.group, rt.version) == (group, version))
    return _render(types) if types else None


@functools.lru_cache(maxsize=64)
def _render(types: tuple[ResourceType, ...]) -> str:
    """One group version's document as JSON text (built once per set of types: schemas are
    large and kubectl asks before every apply)."""
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
                "requestBody": {
                    "content": {
                        media: {"schema": {"$ref": _PATCH_SCHEMA}}
                        for media in (_PATCH_TYPES if rt.builtin else _PATCH_TYPES[:3])
                    },
                    "required": True,
                },
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {
                    "group": rt.group,
                    "version": rt.version,
                    "kind": rt.kind,
                },
            }
        }
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.4"},
        "paths": paths,
        "components": {"schemas": openapi_schemas.schemas(types, v3=True)},
    }
    return json.dumps(doc, sort_keys=True)


def swagger(registry: Registry) -> Obj:
    """`/openapi/v2` as JSON: every served kind's schema under `definitions`."""
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.32.4"},
        "paths": {},
        "definitions": openapi_schemas.schemas(
            [rt for rt in registry.all() if rt.builtin], v3=False
        ),
    }


def index(registry: Registry) -> Obj:
    """`/openapi/v3`: each group version's document, addressed with its content hash."""
    paths: Obj = {}
    for group, version in group_versions(registry):
        text = _document_text(registry, group, version) or ""
        digest = _digest(text)
        prefix = _prefix(group, version)
        paths[prefix] = {"serverRelativeURL": f"/openapi/v3/{prefix}?hash={digest}"}
    return {"paths": paths}


@functools.lru_cache(maxsize=64)
def _digest(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()[:128].upper()


def serve_v2(registry: Registry, accept: str) -> web.Response:
    """GET /openapi/v2: the JSON document when the client takes JSON, else 406 (the protobuf
    form is not served)."""
    if "json" not in accept and "*/*" not in accept and accept:
        return web.Response(status=406, text="406: Not Acceptable\n", content_type="text/plain")
    return web.Response(text=json.dumps(swagger(registry)), content_type="application/json")


def serve(registry: Registry, path: str) -> web.Response:
    """The answer to GET `path` under /openapi/v3. Raises ApiError 404 for a path not served."""
    if path == "/openapi/v3":
        text: str | None = json.dumps(index(registry))
    else:
        parts = path.removeprefix("/openapi/v3/").split("/")
        text = None
        if parts[0] == "api" and len(parts) == 2:
            text = _document_text(registry, "", parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            text = _document_text(registry, parts[1], parts[2])
    if text is None:
        raise no_route()
    return web.Response(text=text, content_type="application/json")
