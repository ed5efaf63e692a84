"""The simulated kube-apiserver's HTTP face (aiohttp).

Routes follow the real server's paths: discovery, `/api/v1/...`, `/apis/GROUP/VERSION/...`,
namespaced and cluster-scoped collections, subresources (status, scale, log, exec), watches,
Table output for kubectl, server-side dry run and Status errors. `/metrics` serves the fleet's
Prometheus exposition, `/_sim/...` the trainer's controls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web

from services.simulator import (
    eviction,
    hpa_versions,
    openapi,
    pod_logs,
    request_parsing,
    server_side_apply,
    subresources,
    watchstream,
)
from services.simulator.auth import User, impersonate, user_for_token
from services.simulator.clock import rfc3339
from services.simulator.errors import (
    ApiError,
    bad_request,
    forbidden,
    injected,
    method_not_allowed,
    no_route,
    not_found,
)
from services.simulator.faults import FaultSet
from services.simulator.pagination import Snapshots
from services.simulator.request_parsing import dry_run, read_body, selectors, wants_table
from services.simulator.resources import Registry, ResourceType
from services.simulator.runtime import ServingRuntime
from services.simulator.store import Manage, Store, Watcher, fast_copy
from services.simulator.tables import build_table, event_table

Obj = dict[str, Any]
GIT_VERSION = "v1.32.4"
LOG = logging.getLogger(__name__)
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Backend(Protocol):
    """What the HTTP layer needs from the simulated cluster."""

    registry: Registry
    store: Store
    faults: FaultSet
    runtime: ServingRuntime  # keeps the containers' logs

    def now(self) -> datetime: ...
    async def pod_exec(
        self, request: web.Request, namespace: str, name: str, user: User
    ) -> web.StreamResponse: ...
    def metrics_text(self) -> str: ...
    def admin(self, op: str, payload: Obj) -> Obj: ...


def status_response(err: ApiError) -> web.Response:
    headers = {"Retry-After": str(err.retry_after_s)} if err.retry_after_s else None
    return web.json_response(err.status(), status=err.code, headers=headers)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


class Route:
    """A parsed resource path."""

    def __init__(self, rt: ResourceType, namespace: str, name: str, sub: str) -> None:
        self.rt = rt
        self.namespace = namespace
        self.name = name
        self.sub = sub

    @property
    def resource(self) -> str:
        return f"{self.rt.plural}/{self.sub}" if self.sub else self.rt.plural


class ApiServer:
    """`readings`: texts `/_sim/<name>` answers (admin only, like every `/_sim/` control),
    each made from the request's JSON body (GET: `{}`) on a worker thread so the API keeps
    serving meanwhile: e.g. the fleet's recent metrics history, or a day-old window rendered
    for a demo whose simulator runs in a process of its own.

    `fleet_ready`: set while the serving fleet is up to date. A demo's child simulator serves
    the API while it builds the fleet's history (runner.serve_child); until then /metrics,
    the readings and the fleet's controls (traffic, state) wait for it, the rest answers."""

    # The /_sim/ controls that read or change the serving fleet.
    FLEET_CONTROLS = frozenset({"traffic", "state"})

    def __init__(
        self, backend: Backend, *, readings: Mapping[str, Callable[[Obj], str]] | None = None
    ) -> None:
        self.backend = backend
        self.readings = dict(readings or {})
        self.fleet_ready = asyncio.Event()
        self.fleet_ready.set()
        self.snapshots = Snapshots(lambda: backend.now().timestamp())
        self.app = web.Application(middlewares=[self._errors])
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self.metrics_app = web.Application()
        self.metrics_app.router.add_get("/metrics", self._metrics)

    async def _metrics(self, request: web.Request) -> web.Response:
        fault = self.backend.faults.scrape_error()
        if fault is not None:  # a drill's "metrics down": Prometheus records a failed scrape
            return web.Response(status=fault.error_code, text="exporter unavailable\n")
        await self.fleet_ready.wait()
        # Set whole: aiohttp's content_type argument would drop the format version.
        return web.Response(
            text=self.backend.metrics_text(),
            headers={"Content-Type": METRICS_TYPE, "X-Content-Type-Options": "nosniff"},
        )

    @property
    def registry(self) -> Registry:
        return self.backend.registry

    @property
    def store(self) -> Store:
        return self.backend.store

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            if not response.prepared:
                for text in request.get(request_parsing.WARNINGS, []):
                    response.headers.add("Warning", request_parsing.warning_header(text))
            return response
        except ApiError as err:
            return status_response(err)
        except web.HTTPException:
            raise
        except Exception as exc:
            # A bug in the simulator still answers as an API server would: a Status, not HTML.
            LOG.exception("simulator error serving %s %s", request.method, request.path)
            return status_response(
                ApiError(500, "InternalError", f"Internal error occurred: {exc!r}")
            )

    # -- routing -------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path == "/metrics":
            return await self._metrics(request)
        if path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok")
        user = self._authenticate(request)
        if path.startswith("/_sim/"):
            if user.name != "skewmit-admin":
                raise forbidden(user.name, "use", "_sim", "", "")
            payload = await request.json() if request.can_read_body else {}
            control = path[len("/_sim/") :]
            if control in self.readings or control in self.FLEET_CONTROLS:
                await self.fleet_ready.wait()
            reading = self.readings.get(control)
            if reading is not None:
                try:
                    text = await asyncio.get_running_loop().run_in_executor(None, reading, payload)
                except (ValueError, TypeError, KeyError) as exc:
                    raise bad_request(f"{path}: {exc}") from exc
                return web.Response(text=text, content_type="text/plain")
            return _json(self.backend.admin(control, payload))
        if path == "/version":
            return _json(
                {
                    "major": "1",
                    "minor": "32",
                    "gitVersion": GIT_VERSION,
                    "gitCommit": "skewmit-simulator",
                    "gitTreeState": "clean",
                    "buildDate": "2026-01-01T00:00:00Z",
                    "goVersion": "go1.23.8",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                }
            )
        if path == "/api":
            return _json(self.registry.api_versions(request.host))
        if path == "/apis":
            return _json(self.registry.api_group_list())
        if path.startswith("/openapi/v3"):
            return openapi.serve(self.registry, path)
        if path == "/openapi/v2":
            return openapi.serve_v2(self.registry, request.headers.get("Accept", ""))
        if path.startswith("/openapi"):
            raise not_found("openapi", "", path)
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) == 2:
            doc = self.registry.api_group(parts[1])
            if doc is None:
                raise no_route()
            return _json(doc)
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise no_route()
        if not rest:
            doc = self.registry.resource_list(group, version)
            if doc is None:
                raise no_route()
            return _json(doc)
        route = self._route(group, version, rest)
        return await self._serve(request, route, user)

    def _route(self, group: str, version: str, rest: list[str]) -> Route:
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        rt = self.registry.lookup(group, version, rest[0])
        if rt is None or (namespace and not rt.namespaced):
            raise no_route()
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if sub and sub not in rt.subresources:
            raise no_route()
        return Route(rt, namespace, name, sub)

    def _authenticate(self, request: web.Request) -> User:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        user = user_for_token(token)
        if user is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return impersonate(
            user,
            request.headers.get("Impersonate-User", ""),
            tuple(request.headers.getall("Impersonate-Group", [])),
        )

    def _verb(self, request: web.Request, route: Route) -> str:
        method = request.method
        if route.sub == "exec":
            # A websocket exec is a GET, authorized as "get" on pods/exec in v1.32 (the
            # create check for websocket upgrades arrived later); SPDY POSTs are "create".
            return "get" if method == "GET" else "create"
        if method == "GET":
            if request.query.get("watch") in ("true", "1"):
                return "watch"
            return "get" if route.name else "list"
        return {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if route.name else "deletecollection",
        }.get(method, "")

    async def _serve(self, request: web.Request, route: Route, user: User) -> web.StreamResponse:
        verb = self._verb(request, route)
        if not verb:
            raise method_not_allowed(
                f"the server does not allow this method on the requested "
                f"resource ({request.method})"
            )
        allowed, _ = user.allowed(verb, route.rt.group, route.resource)
        if not allowed:
            raise forbidden(
                user.name,
                verb,
                route.rt.plural,
                route.rt.group,
                route.namespace,
                route.name,
                route.sub,
            )
        faults = self.backend.faults
        fault_verb = "exec" if route.sub == "exec" else ("log" if route.sub == "log" else verb)
        delay = faults.latency(fault_verb, route.resource)
        if delay:
            await asyncio.sleep(delay)
        fault = faults.error(fault_verb, route.resource)
        if fault is not None:
            raise injected(fault.error_code, fault.retry_after_s)
        if verb in ("update", "patch") and faults.take_conflict(verb, route.resource):
            # The injected race is another writer landing first: the object moves on, and
            # the request meets it as a real server's would (409, 422 or applied).
            self.store.touch(route.rt, route.namespace, route.name)
        if route.sub == "exec":
            return await self.backend.pod_exec(request, route.namespace, route.name, user)
        if route.sub == "log":
            return await pod_logs.serve(
                request, self.store, self.backend.runtime.logbook, route.namespace, route.name
            )
        if route.rt.plural == "selfsubjectaccessreviews":
            return _json(subresources.access_review(await read_body(request), user), 201)
        if route.rt.plural == "selfsubjectrulesreviews":
            return _json(subresources.rules_review(await read_body(request), user), 201)
        if route.rt.plural == "selfsubjectreviews":
            return _json(subresources.self_subject_review(user), 201)
        if route.sub == "eviction":
            body = await read_body(request)
            request_parsing.drop_unknown_fields(request, "Eviction", body, decoded=True)
            return _json(
                eviction.evict(
                    self.store,
                    route.rt,
                    route.namespace,
                    route.name,
                    body,
                    self.backend.now(),
                    dry_run=dry_run(request),
                ),
                201,
            )
        if hpa_versions.is_v1(route.rt):
            return await self._serve_hpa_v1(request, route, verb)
        handler = getattr(self, f"_do_{verb}")
        response: web.StreamResponse = await handler(request, route)
        return response

    async def _serve_hpa_v1(
        self, request: web.Request, route: Route, verb: str
    ) -> web.StreamResponse:
        """autoscaling/v1 HPAs: converted to and from the stored autoscaling/v2."""
        v2 = self.registry.lookup("autoscaling", "v2", route.rt.plural)
        assert v2 is not None

        def handle(rt: ResourceType, run: str) -> Any:
            return getattr(self, f"_do_{run}")(request, Route(rt, route.namespace, route.name, ""))

        return await hpa_versions.serve(
            request,
            route.rt,
            v2,
            verb,
            lambda: self.store.get(v2, route.namespace, route.name),
            handle,
        )

    # -- helpers -------------------------------------------------------------

    def _manage(self, request: web.Request, route: Route) -> Manage:
        """Records the request's field manager in the written object's managedFields."""
        return request_parsing.manage(request, route.rt, self.backend.now(), route.sub)

    def _now_text(self) -> str:
        return rfc3339(self.backend.now())

    def _table(
        self, request: web.Request, route: Route, objs: list[Obj], meta: Obj | None = None
    ) -> web.Response:
        include = request.query.get("includeObject", "Metadata")
        table = build_table(
            route.rt.plural,
            objs,
            self.backend.now(),
            include_object=include,
            resource_version=self.store.resource_version,
            printer_columns=list(route.rt.printer_columns) or None,
        )
        if meta:  # a list's page: its snapshot's resourceVersion and continue token
            table["metadata"] = meta
        return _json(table)

    # -- verbs ---------------------------------------------------------------

    async def _do_get(self, request: web.Request, route: Route) -> web.StreamResponse:
        obj = self.store.get(route.rt, route.namespace, route.name)
        if route.sub == "scale":
            return _json(subresources.scale_of(obj))
        if wants_table(request):
            return self._table(request, route, [obj])
        return _json(obj)

    async def _do_list(self, request: web.Request, route: Route) -> web.StreamResponse:
        labels, fields = selectors(request, route.rt)
        limit = max(int(request.query.get("limit", "0") or 0), 0)
        token = request.query.get("continue", "")
        meta: Obj = {"resourceVersion": self.store.resource_version}
        if limit or token:
            page = self.snapshots.page(
                route.rt.plural,
                int(self.store.resource_version),
                lambda: self.store.items(route.rt.plural),
                Watcher(route.rt.plural, route.namespace, labels, fields).wants,
                limit=limit,
                token=token,
                filtered=labels is not None or fields is not None,
            )
            # Not copied: serialised below on this loop, so no write can come in between
            # (copying a 1,000-pod Deployment's pages was half the time spent serving them).
            items, shared = page.items, True
            meta = {"resourceVersion": page.resource_version}
            if page.continue_token:
                meta["continue"] = page.continue_token
            if page.remaining is not None:
                meta["remainingItemCount"] = page.remaining
        else:
            items, shared = self.store.list(route.rt, route.namespace, labels, fields), False
        if wants_table(request):  # the table's printers read the objects they are given
            return self._table(request, route, fast_copy(items) if shared else items, meta)
        return _json(
            {
                "kind": route.rt.list_kind,
                "apiVersion": route.rt.group_version,
                "metadata": meta,
                "items": items,
            }
        )

    async def _do_watch(self, request: web.Request, route: Route) -> web.StreamResponse:
        labels, fields = selectors(request, route.rt, route.name)
        send_initial = request_parsing.watch_list_options(request)
        try:
            watcher = self.store.watch(
                route.rt,
                route.namespace,
                request.query.get("resourceVersion", ""),
                labels,
                fields,
                send_initial=send_initial,
            )
        except ApiError as err:
            if err.code != 410:
                raise
            return await watchstream.error(request, err.status())
        timeout = float(request.query.get("timeoutSeconds") or random.uniform(1800, 3600))
        bookmarks = request.query.get("allowWatchBookmarks") == "true"
        return await watchstream.stream(
            request,
            self.store,
            watcher,
            route.rt,
            timeout_s=timeout,
            bookmarks=bookmarks,
            # Like every bookmark, the end of the initial events goes only to those asking.
            initial_events_end=bool(send_initial) and bookmarks,
            drop_after=self.backend.faults.drop_after(route.rt.plural),
            as_table=(
                lambda obj, headers: event_table(
                    route.rt.plural,
                    obj,
                    self.backend.now(),
                    include_object=request.query.get("includeObject", "Metadata"),
                    printer_columns=list(route.rt.printer_columns) or None,
                    headers=headers,
                )
            )
            if wants_table(request)
            else None,
        )

    async def _do_create(self, request: web.Request, route: Route) -> web.StreamResponse:
        if route.name:
            raise method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        body = await read_body(request)
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        body.setdefault("metadata", {})
        if route.rt.builtin:
            request_parsing.drop_unknown_fields(request, route.rt.kind, body, decoded=True)
        if route.rt.namespaced:
            ns_in_body = body["metadata"].get("namespace")
            if ns_in_body and ns_in_body != route.namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the "
                    "namespace sent on the request"
                )
            body["metadata"]["namespace"] = route.namespace
        created = self.store.create(
            route.rt, body, dry_run=dry_run(request), manage=self._manage(request, route)
        )
        return _json(created, 201)

    async def _do_update(self, request: web.Request, route: Route) -> web.StreamResponse:
        body = await read_body(request)
        if route.sub == "scale":
            return _json(self._set_scale(request, route, body))
        if route.rt.builtin:
            request_parsing.drop_unknown_fields(request, route.rt.kind, body, decoded=True)
        meta = body.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != route.name:
            raise bad_request("the name of the object does not match the name on the URL")
        meta["name"] = route.name
        if route.rt.namespaced:
            meta["namespace"] = route.namespace
        updated = self.store.update(
            route.rt,
            body,
            subresource=route.sub,
            dry_run=dry_run(request),
            manage=self._manage(request, route),
        )
        return _json(updated)

    async def _do_patch(self, request: web.Request, route: Route) -> web.StreamResponse:
        if request.content_type == request_parsing.APPLY_PATCH and not route.sub:
            applied, code = await server_side_apply.serve(
                request, self.store, route.rt, route.namespace, route.name, self._now_text()
            )
            return _json(applied, code)
        server_side_apply.check_options(False, "", request.query.get("force"))
        patch = await read_body(request)
        current = self.store.get(route.rt, route.namespace, route.name)
        if route.sub == "scale":
            target: Obj = subresources.scale_of(current)
        else:
            target = current
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        kind = "Scale" if route.sub == "scale" else route.rt.kind
        patched = request_parsing.apply_patch(target, patch, content_type, route.rt, kind)
        if route.sub == "scale":
            return _json(self._set_scale(request, route, patched))
        if not isinstance(patched, dict):
            raise bad_request("the patch does not produce an object")
        if route.rt.builtin:
            request_parsing.drop_unknown_fields(request, route.rt.kind, patched, decoded=False)
        meta = patched.setdefault("metadata", {})
        meta["name"] = route.name
        if route.rt.namespaced:
            meta["namespace"] = route.namespace
        meta.setdefault("resourceVersion", current["metadata"]["resourceVersion"])
        updated = self.store.update(
            route.rt,
            patched,
            subresource=route.sub,
            dry_run=dry_run(request),
            manage=self._manage(request, route),
        )
        return _json(updated)

    async def _do_delete(self, request: web.Request, route: Route) -> web.StreamResponse:
        body = await read_body(request) if request.can_read_body else {}
        grace_q = request.query.get("gracePeriodSeconds")
        grace = body.get("gracePeriodSeconds") if isinstance(body, dict) else None
        if grace_q is not None:
            grace = int(grace_q)
        preconditions = body.get("preconditions", {}) if isinstance(body, dict) else {}
        propagation = (
            request.query.get("propagationPolicy")
            or (body.get("propagationPolicy") if isinstance(body, dict) else None)
            or "Background"
        )
        deleted = self.store.delete(
            route.rt,
            route.namespace,
            route.name,
            dry_run=dry_run(request, body),
            grace_seconds=grace,
            propagation=propagation,
            precondition_rv=preconditions.get("resourceVersion", "") or "",
            precondition_uid=preconditions.get("uid", "") or "",
        )
        if route.rt.plural in ("pods",) or deleted.get("metadata", {}).get("deletionTimestamp"):
            return _json(deleted)
        uid = str(deleted.get("metadata", {}).get("uid", ""))
        return _json(subresources.deleted(route.rt.plural, route.rt.group, route.name, uid))

    async def _do_deletecollection(self, request: web.Request, route: Route) -> web.StreamResponse:
        labels, fields = selectors(request, route.rt)
        items = self.store.list(route.rt, route.namespace, labels, fields)
        dry = dry_run(request, await read_body(request) if request.can_read_body else None)
        for item in items:
            self.store.delete(
                route.rt,
                item["metadata"].get("namespace", ""),
                item["metadata"]["name"],
                dry_run=dry,
            )
        return _json(
            {
                "kind": route.rt.list_kind,
                "apiVersion": route.rt.group_version,
                "metadata": {"resourceVersion": self.store.resource_version},
                "items": items,
            }
        )

    # -- subresources ----------------------------------------------------------

    def _set_scale(self, request: web.Request, route: Route, scale: Obj) -> Obj:
        replicas = subresources.scale_replicas(scale, route.name)
        current = self.store.get(route.rt, route.namespace, route.name)
        wanted_rv = scale.get("metadata", {}).get("resourceVersion")
        if wanted_rv:
            current["metadata"]["resourceVersion"] = wanted_rv
        current["spec"]["replicas"] = replicas
        updated = self.store.update(
            route.rt, current, dry_run=dry_run(request), manage=self._manage(request, route)
        )
        return subresources.scale_of(updated)
