"""The cluster edge: the official `kubernetes` client, translated into plain dicts and the
project's own exceptions.

Everything above this module sees JSON-shaped dicts exactly as the API server sent them (no
client model objects) and `SkewmitError`s whose message says what to do.
"""

from __future__ import annotations

import builtins
import copy
import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import urllib3
import yaml
from kubernetes import config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException
from kubernetes.config.kube_config import ConfigNode, KubeConfigLoader, KubeConfigMerger
from kubernetes.stream import ws_client
from websocket import WebSocketException

from services.errors import (
    CertificateError,
    ConfigError,
    ConflictError,
    InvalidError,
    NotFoundError,
    SkewmitError,
    UnreachableError,
    from_status,
    tls_failure,
)
from services.field_owners import FieldOwnedError, conflicts_in, owned_message
from services.names import check_name, check_namespace
from services.watch_stream import (
    ListPage,
    WatchStream,
    gone_or,
    request_kind,
)

Obj = dict[str, Any]
TIMEOUT_S = 15.0
# A watch's read timeout beyond the server's own timeoutSeconds: a stream that says nothing
# for that long (no event, no bookmark, no end) is taken as dead.
WATCH_GRACE_S = 30.0
# The name skewmit writes under in managedFields (a real server records every writer).
FIELD_MANAGER = "skewmit"

PATCH_TYPES = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}
# Server-side apply: a PATCH with this content type and a fieldManager. The client's REST
# layer sends a dict body for any +yaml type as JSON, which is valid YAML.
APPLY_PATCH = "application/apply-patch+yaml"


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str = "", name: str = "", sub: str = "") -> str:
        """The resource path. Segments are percent-quoted (no '/' survives); callers check the
        names first (KubeCluster does), so quoting is the second line, not the first."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        if sub:
            base += f"/{sub}"
        return base


KINDS: dict[str, Kind] = {
    "Namespace": Kind("", "v1", "namespaces", False),
    "Node": Kind("", "v1", "nodes", False),
    "Pod": Kind("", "v1", "pods"),
    "Service": Kind("", "v1", "services"),
    "Event": Kind("", "v1", "events"),
    "ConfigMap": Kind("", "v1", "configmaps"),
    "Secret": Kind("", "v1", "secrets"),
    "Deployment": Kind("apps", "v1", "deployments"),
    "ReplicaSet": Kind("apps", "v1", "replicasets"),
    "HorizontalPodAutoscaler": Kind("autoscaling", "v2", "horizontalpodautoscalers"),
    "HTTPRoute": Kind("gateway.networking.k8s.io", "v1", "httproutes"),
    "VirtualService": Kind("networking.istio.io", "v1", "virtualservices"),
    "Application": Kind("argoproj.io", "v1alpha1", "applications"),
    "Kustomization": Kind("kustomize.toolkit.fluxcd.io", "v1", "kustomizations"),
}


class Cluster(Protocol):
    """What the runbook's services need from a cluster. `KubeCluster` is the real one."""

    context: str
    server: str
    user: str

    def get(self, kind: str, namespace: str, name: str) -> Obj: ...
    def list(
        self, kind: str, namespace: str = "", label_selector: str = "", field_selector: str = ""
    ) -> builtins.list[Obj]: ...
    def patch(
        self,
        kind: str,
        namespace: str,
        name: str,
        patch: Any,
        patch_type: str,
        *,
        dry_run: bool = False,
    ) -> Obj: ...
    def create(self, kind: str, namespace: str, body: Obj, *, dry_run: bool = False) -> Obj: ...
    def delete(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        dry_run: bool = False,
        resource_version: str = "",
    ) -> Obj: ...
    def apply(
        self,
        kind: str,
        namespace: str,
        obj: Obj,
        field_manager: str = FIELD_MANAGER,
        force: bool = False,
        dry_run: bool = False,
    ) -> Obj: ...
    def can_i(
        self, verb: str, kind: str, namespace: str, name: str = "", subresource: str = ""
    ) -> tuple[bool, str]: ...
    def exec(self, namespace: str, pod: str, container: str, argv: builtins.list[str]) -> str: ...
    def whoami(self) -> str: ...


def translate(exc: ApiException, what: str, request: str = "") -> SkewmitError:
    """Turn an API error into the project's exception, keeping the server's own words.
    `request` ("PATCH /apis/apps/v1/...") is named in server errors and throttling."""
    return from_status(
        exc.status or 0, exc.reason or "", exc.body, getattr(exc, "headers", None), what, request
    )


# libyaml when present. The client reads a kubeconfig with PyYAML's pure-Python parser: 73 ms
# for a 160 KB file (30 contexts with their certificates; bench/kubeconfig_bench.py), and a
# cluster was read three times on the way to the first findings (issue 12). libyaml: 3.4 ms.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
KUBECONFIG_ITEMS = ("clusters", "contexts", "users")


class KubeconfigFiles(KubeConfigMerger):
    """The client's merge of the kubeconfig files (a KUBECONFIG list; each entry remembers its
    file, for relative certificate paths; refreshed tokens are written back to their file, as
    the client's `new_client_from_config` does), each file read with YAML_LOADER."""

    def load_config(self, path: str) -> None:
        # The client's KubeConfigMerger.load_config (kubernetes 37), with YAML_LOADER.
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=YAML_LOADER)
        if data is None:
            raise config.ConfigException(f"Invalid kube-config. {path} file is empty")
        if self.config_merged is None:
            rest = {key: value for key, value in data.items() if key not in KUBECONFIG_ITEMS}
            merged = {**copy.deepcopy(rest), **{item: [] for item in KUBECONFIG_ITEMS}}
            self.config_merged = ConfigNode(path, merged, path)  # type: ignore[no-untyped-call]
        for item in KUBECONFIG_ITEMS:
            self._merge(item, data.get(item, []) or [], path)  # type: ignore[no-untyped-call]
        if "current-context" in data:
            self.config_merged.value["current-context"] = data["current-context"]
        self.config_files[path] = data


def resolve_kubeconfig(path: str | None) -> str | None:
    """The kubeconfig file kubectl would use: --kubeconfig, else $KUBECONFIG, else ~/.kube/config.

    Returns None when $KUBECONFIG lists several files (the client merges them itself).
    Raises ConfigError when the chosen file does not exist or is not valid YAML.
    """
    if path:
        chosen = Path(path).expanduser()
    elif os.environ.get("KUBECONFIG"):
        parts = [p for p in os.environ["KUBECONFIG"].split(os.pathsep) if p]
        if len(parts) > 1:
            return None
        chosen = Path(parts[0]).expanduser()
    else:
        chosen = Path("~/.kube/config").expanduser()
    if not chosen.is_file():
        raise ConfigError(
            f"kubeconfig {chosen} does not exist; pass --kubeconfig PATH or set KUBECONFIG"
        )
    try:
        data = yaml.load(chosen.read_text(), Loader=YAML_LOADER)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"kubeconfig {chosen} is not valid YAML ({exc.__class__.__name__}); "
            "fix the file or pass another with --kubeconfig"
        ) from exc
    if not isinstance(data, dict) or not data.get("contexts"):
        raise ConfigError(f"kubeconfig {chosen} has no contexts; is it a kubeconfig file?")
    return str(chosen)


# Per thread: the answers of the GETs sent inside `reads_once()` (None outside it).
_reads = threading.local()


@contextmanager
def reads_once() -> Iterator[None]:
    """Inside the block, on this thread, a GET already sent in it is answered from its first
    answer, parsed again (the caller gets its own copy): one check reads one state of each
    object. A step's check read the Deployment up to three times (steps 1, 2 and 6), each a
    round trip: 9 s on a link adding 3 s a call, and half the API's 'get deployments' a
    minute while watching. Writes, watches and exec are never answered this way. Nests."""
    outer = getattr(_reads, "answers", None)
    if outer is None:
        _reads.answers = {}
    try:
        yield
    finally:
        if outer is None:
            _reads.answers = None


class KubeCluster:
    """A cluster reached with the official client. Raises ConfigError at construction for an
    unusable kubeconfig or an unknown context."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        path = resolve_kubeconfig(kubeconfig)
        # One read of the files for the contexts and the client (the client's own functions
        # read them once each, with the slow parser).
        try:
            files = KubeconfigFiles(path or os.environ.get("KUBECONFIG", ""))  # type: ignore[no-untyped-call]
            if files.config is None:
                raise config.ConfigException("no kubeconfig file in $KUBECONFIG exists")
            contexts = [c.value for c in files.config["contexts"]]
            names = [str(c["name"]) for c in contexts]
            current = files.config.safe_get("current-context")
        except (
            config.ConfigException,
            OSError,
            TypeError,
            KeyError,
            AttributeError,
            yaml.YAMLError,
        ) as exc:
            raise ConfigError(f"cannot read kubeconfig {path or '$KUBECONFIG'}: {exc}") from exc
        chosen = context or current
        if not chosen or chosen not in names:
            raise ConfigError(
                f"context {chosen!r} is not in the kubeconfig; known contexts: "
                f"{', '.join(names) or 'none'}. Pass --context NAME."
            )
        entry = next(c for c in contexts if c["name"] == chosen)
        try:
            loader = KubeConfigLoader(  # type: ignore[no-untyped-call]
                config_dict=files.config,
                config_base_path=None,
                active_context=chosen,
                config_persister=files.save_changes,
            )
            configuration = type.__call__(Configuration)  # as the client does: not the default
            loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
            # Any, as the client's untyped new_client_from_config gave it: its responses are
            # urllib3's, which the client's types do not say.
            self.api: Any = ApiClient(configuration=configuration)
        except (config.ConfigException, ValueError, OSError, TypeError, KeyError) as exc:
            raise ConfigError(f"context {chosen!r} is unusable: {exc}") from exc
        self.context = chosen
        self.kubeconfig_path = path or ""
        self.cluster_name = str(entry.get("context", {}).get("cluster", ""))
        self.server = str(self.api.configuration.host)
        self.user = str(entry.get("context", {}).get("user", ""))
        self.default_namespace = str(entry.get("context", {}).get("namespace") or "default")
        self._identity: str | None = None
        self._counts: Counter[tuple[str, str]] = Counter()
        self._counts_lock = threading.Lock()

    # -- transport -----------------------------------------------------------

    def _open(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        what: str = "",
        timeout: float | tuple[float, float] = TIMEOUT_S,
    ) -> Any:
        """Send one request and return the client's response with its body unread (a watch
        streams it). Counts the request. Raises the project's exception for an error answer,
        CertificateError, UnreachableError."""
        self._count(method, path, query)
        params = [(k, v) for k, v in (query or {}).items() if v not in (None, "")]
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            _, url, header_params, serialized, _ = self.api.param_serialize(
                method=method,
                resource_path=path,
                query_params=params,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(
                method,
                url,
                header_params=header_params,
                body=serialized,
                _request_timeout=timeout,
            )
            if response.status >= 400:
                response.read()
        except ApiException as exc:
            tls = tls_failure(exc) if not exc.status else ""
            if tls:
                raise self._certificate_error(tls) from exc
            translated = translate(exc, what or f"{method} {path}", f"{method} {path}")
            raise gone_or(translated, exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._transport_error(exc) from exc
        if response.status >= 400:
            error = ApiException(
                status=response.status,
                reason=response.reason,
                body=response.data.decode(errors="replace"),
            )
            error.headers = response.headers
            # Chained so that a caller can read the server's Status (a server-side apply's
            # conflicts name each field's manager in details.causes).
            raise gone_or(
                translate(error, what or f"{method} {path}", f"{method} {path}"), error
            ) from error
        return response

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        what: str = "",
    ) -> Any:
        answers: dict[Any, bytes] | None = getattr(_reads, "answers", None)
        key = None
        if answers is not None and method == "GET":
            key = (id(self), path, tuple(sorted((k, str(v)) for k, v in (query or {}).items())))
            if key in answers:
                data = answers[key]
                return json.loads(data) if data else {}
        response = self._open(
            method, path, query=query, body=body, content_type=content_type, what=what
        )
        try:
            data = response.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._transport_error(exc) from exc
        if answers is not None and key is not None:
            answers[key] = data
        return json.loads(data) if data else {}

    def _transport_error(self, exc: BaseException) -> UnreachableError:
        tls = tls_failure(exc)
        if tls:
            return self._certificate_error(tls)
        return UnreachableError(
            f"cannot reach the API server {self.server} (context "
            f"{self.context}): {exc.__class__.__name__}. Check the "
            "network/VPN and that the context is right."
        )

    def _count(self, method: str, path: str, query: dict[str, Any] | None) -> None:
        verb, resource = request_kind(method, path, query)
        with self._counts_lock:
            self._counts[(verb, resource)] += 1

    def request_counts(self) -> dict[tuple[str, str], int]:
        """Requests sent so far by (verb, resource): ("list", "pods"), ("watch", "nodes"),
        ("exec", "pods")... Raises nothing."""
        with self._counts_lock:
            return dict(self._counts)

    def _certificate_error(self, detail: str) -> CertificateError:
        where = self.kubeconfig_path or "$KUBECONFIG"
        return CertificateError(
            f"the API server {self.server} (context {self.context}) presented a certificate "
            f"that the CA in the kubeconfig does not trust ({detail}). Check cluster "
            f"{self.cluster_name!r}'s certificate-authority(-data) in {where}: it must be the "
            "CA that signed this server's certificate, and the server URL must be a name the "
            "certificate covers. Not a network problem."
        )

    def _path(self, kind: str, namespace: str = "", name: str = "", sub: str = "") -> str:
        """The URL path for an object, after checking its names (DNS-1123 by kind).
        Raises ConfigError for an unknown kind or a name no object can have."""
        k = self._kind(kind)
        if namespace and k.namespaced:
            check_namespace(namespace)
        if name:
            check_name(kind, name)
        return k.path(namespace, name, sub)

    @staticmethod
    def _kind(kind: str) -> Kind:
        try:
            return KINDS[kind]
        except KeyError:
            raise ConfigError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}") from None

    # -- reads ---------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> Obj:
        result: Obj = self._request(
            "GET", self._path(kind, namespace, name), what=f"get {kind.lower()} {name}"
        )
        return result

    def list(
        self, kind: str, namespace: str = "", label_selector: str = "", field_selector: str = ""
    ) -> builtins.list[Obj]:
        k = self._kind(kind)
        result = self._request(
            "GET",
            self._path(kind, namespace),
            query={"labelSelector": label_selector, "fieldSelector": field_selector},
            what=f"list {k.plural}",
        )
        items: builtins.list[Obj] = result.get("items", [])
        return items

    def list_page(
        self,
        kind: str,
        namespace: str = "",
        label_selector: str = "",
        *,
        field_selector: str = "",
        limit: int = 100,
        continue_token: str = "",
    ) -> ListPage:
        """One page of a chunked list (`limit`/`continue`): a small body, so no single parse
        holds the interpreter long. Raises WatchExpired when the continue token's snapshot
        was compacted (list again from the start), and what `list` raises."""
        k = self._kind(kind)
        result = self._request(
            "GET",
            self._path(kind, namespace),
            query={
                "labelSelector": label_selector,
                "fieldSelector": field_selector,
                "limit": limit,
                "continue": continue_token,
            },
            what=f"list {k.plural}",
        )
        meta = result.get("metadata") or {}
        return ListPage(
            result.get("items") or [],
            str(meta.get("resourceVersion", "")),
            str(meta.get("continue") or ""),
        )

    def watch(
        self,
        kind: str,
        namespace: str = "",
        label_selector: str = "",
        *,
        field_selector: str = "",
        resource_version: str,
        timeout_s: int = 240,
        bookmarks: bool = True,
    ) -> WatchStream:
        """Open a watch of events after `resource_version`; iterate the stream for one
        `{"type", "object"}` dict per event (ADDED, MODIFIED, DELETED, BOOKMARK) until the
        server ends it (about `timeout_s`). Label- and field-selected, bookmarks asked for by
        default.

        Raises WatchExpired when the version is too old (410 Gone: list again), and what
        `_request` raises for the opening; iterating raises as WatchStream says.
        """
        k = self._kind(kind)
        query = {
            "watch": "true",
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true" if bookmarks else None,
            "timeoutSeconds": timeout_s,
        }
        response = self._open(
            "GET",
            self._path(kind, namespace),
            query=query,
            what=f"watch {k.plural}",
            timeout=(TIMEOUT_S, timeout_s + WATCH_GRACE_S),
        )
        return WatchStream(response.response, k.plural, self._transport_error)

    def exists(self, kind: str) -> bool:
        """Whether the API server serves this kind (custom resources may be absent)."""
        k = self._kind(kind)
        group_path = f"/apis/{k.group}/{k.version}" if k.group else f"/api/{k.version}"
        try:
            doc = self._request("GET", group_path)
        except (NotFoundError, InvalidError):
            return False
        return any(r.get("name") == k.plural for r in doc.get("resources", []))

    # -- writes --------------------------------------------------------------

    def patch(
        self,
        kind: str,
        namespace: str,
        name: str,
        patch: Any,
        patch_type: str,
        *,
        dry_run: bool = False,
    ) -> Obj:
        result: Obj = self._request(
            "PATCH",
            self._path(kind, namespace, name),
            query=self._write_query(dry_run),
            body=patch,
            content_type=PATCH_TYPES[patch_type],
            what=f"patch {kind.lower()} {name}" + (" (server dry run)" if dry_run else ""),
        )
        return result

    @staticmethod
    def _write_query(dry_run: bool) -> dict[str, str | None]:
        """Strict, as kubectl sends: without it a real server only warns about an unknown
        field and drops it, so a preview could pass on a change that never takes effect. The
        field manager names skewmit in managedFields, so `kubectl get -o yaml
        --show-managed-fields` and a GitOps controller's conflict say who changed what."""
        return {
            "dryRun": "All" if dry_run else None,
            "fieldValidation": "Strict",
            "fieldManager": FIELD_MANAGER,
        }

    def apply(
        self,
        kind: str,
        namespace: str,
        obj: Obj,
        field_manager: str = FIELD_MANAGER,
        force: bool = False,
        dry_run: bool = False,
    ) -> Obj:
        """Server-side apply `obj` (the whole configuration skewmit has an opinion about) as
        `field_manager`: creates the object, or merges into it and owns exactly the fields
        sent. Without `force`, fields another manager owns are never taken: the server's 409
        is raised as FieldOwnedError naming each field and manager. Raises ConfigError (bad
        kind or name), InvalidError (no metadata.name, a refused configuration), and what the
        cluster raises otherwise."""
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        if not name:
            raise InvalidError(f"apply {kind.lower()}: the configuration has no metadata.name")
        k = self._kind(kind)
        body = {"apiVersion": f"{k.group}/{k.version}" if k.group else k.version, "kind": kind}
        body.update(obj)
        what = f"apply {kind.lower()} {name}" + (" (server dry run)" if dry_run else "")
        query = {
            **self._write_query(dry_run),
            "fieldManager": field_manager,
            "force": "true" if force else None,
        }
        try:
            result: Obj = self._request(
                "PATCH",
                self._path(kind, namespace, name),
                query=query,
                body=body,
                content_type=APPLY_PATCH,
                what=what,
            )
        except ConflictError as exc:
            status = getattr(exc.__cause__, "body", None)
            conflicts = conflicts_in(status)
            if not conflicts:
                raise
            server = str((_json_or_empty(status)).get("message", ""))
            message = owned_message(f"{kind.lower()}/{name}", conflicts, server)
            raise FieldOwnedError(message, conflicts) from exc
        return result

    def create(self, kind: str, namespace: str, body: Obj, *, dry_run: bool = False) -> Obj:
        name = body.get("metadata", {}).get("name", "")
        if name:
            check_name(kind, str(name))
        result: Obj = self._request(
            "POST",
            self._path(kind, namespace),
            query=self._write_query(dry_run),
            body=body,
            what=f"create {kind.lower()} {name}" + (" (server dry run)" if dry_run else ""),
        )
        return result

    def delete(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        dry_run: bool = False,
        resource_version: str = "",
    ) -> Obj:
        path = self._path(kind, namespace, name)
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if resource_version:
            body["preconditions"] = {"resourceVersion": resource_version}
        if dry_run:
            body["dryRun"] = ["All"]
        result: Obj = self._request(
            "DELETE",
            path,
            query={"dryRun": "All" if dry_run else None},
            body=body,
            what=f"delete {kind.lower()} {name}",
        )
        return result

    # -- identity and permissions --------------------------------------------

    def can_i(
        self, verb: str, kind: str, namespace: str, name: str = "", subresource: str = ""
    ) -> tuple[bool, str]:
        """Ask the server (SelfSubjectAccessReview) whether the user may do this."""
        k = self._kind(kind)
        attrs = {
            "verb": verb,
            "group": k.group,
            "resource": k.plural,
            "namespace": namespace if k.namespaced else "",
            "name": name,
            "subresource": subresource,
        }
        review = self._request(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attrs},
            },
            what="access review",
        )
        status = review.get("status", {})
        allowed = bool(status.get("allowed"))
        full = f"{k.plural}/{subresource}" if subresource else k.plural
        reason = status.get("reason") or (
            ""
            if allowed
            else f'user "{self.whoami()}" may not {verb} {full} in namespace "{namespace}"'
        )
        return allowed, str(reason)

    def whoami(self) -> str:
        """The user the server sees (SelfSubjectReview), else the kubeconfig's user name."""
        if self._identity is None:
            try:
                review = self._request(
                    "POST",
                    "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                    body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                )
                self._identity = str(review["status"]["userInfo"]["username"])
            except (SkewmitError, KeyError):
                self._identity = self.user
        return self._identity

    # -- exec ----------------------------------------------------------------

    def exec(self, namespace: str, pod: str, container: str, argv: builtins.list[str]) -> str:
        """Run a fixed argv in a container (no shell) and return its stdout.

        Raises SkewmitError with the command's stderr when it exits non-zero.
        """
        check_namespace(namespace)
        check_name("Pod", pod)
        with self._counts_lock:
            self._counts[("exec", "pods")] += 1
        # The websocket call kubernetes.stream makes, without its CoreV1Api: importing that
        # (hundreds of generated models) cost 0.6-2 s on the first exec (issue 12). The URL is
        # the one connect_get_namespaced_pod_exec serialises: one `command` per argument.
        query: list[tuple[str, Any]] = [("command", arg) for arg in argv]
        if container:
            query.append(("container", container))
        query += [("stderr", True), ("stdin", False), ("stdout", True), ("tty", False)]
        try:
            _, url, headers, _, _ = self.api.param_serialize(
                method="GET",
                resource_path="/api/v1/namespaces/{namespace}/pods/{name}/exec",
                path_params={"namespace": namespace, "name": pod},
                query_params=query,
                header_params={"Accept": "*/*"},
                auth_settings=["BearerToken"],
            )
            ws = ws_client.websocket_call(  # type: ignore[no-untyped-call]
                self.api.configuration, "GET", url, headers=headers, _preload_content=False
            )
            ws.run_forever(timeout=TIMEOUT_S)
            out, err = ws.read_stdout(), ws.read_stderr()
            status_text = ws.read_channel(3)  # the kubelet's Status for the command
            ws.close()
        except ApiException as exc:
            raise translate(exc, f"exec in pod {pod}") from exc
        except (OSError, urllib3.exceptions.HTTPError, WebSocketException) as exc:
            # A pod that goes away mid-exec (a rollout) closes the socket under us.
            raise UnreachableError(f"exec in pod {pod}: {exc.__class__.__name__}: {exc}") from exc
        code, message = exec_status(status_text)
        if code != 0:
            detail = (err or out).strip()[:300] or message
            raise SkewmitError(f"`{' '.join(argv)}` in pod {pod} failed (exit {code}): {detail}")
        return str(out)


def _json_or_empty(body: Any) -> Obj:
    """An error body (text or dict) as a dict; {} when it is no JSON object."""
    if isinstance(body, str | bytes):
        try:
            body = json.loads(body)
        except ValueError:
            return {}
    return body if isinstance(body, dict) else {}


def exec_status(text: str) -> tuple[int, str]:
    """(exit code, message) from the exec error channel's Status. A command that never
    started (containerd: executable not found) has no exit code: -1 with the runtime's words."""
    if not text:
        return 0, ""
    try:
        status = json.loads(text)
    except ValueError:
        return -1, text.strip()
    if status.get("status") == "Success":
        return 0, ""
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message", "")), str(status.get("message", ""))
            except ValueError:
                break
    return -1, str(status.get("message", "the command failed"))
