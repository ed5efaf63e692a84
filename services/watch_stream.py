"""The watch side of the cluster edge: a streamed watch (`WatchStream`), one page of a
chunked list (`ListPage`), the 410 that says "list again" (`WatchExpired`), and the
(verb, resource) name of a request that KubeCluster counts by.

Kept apart from services.kube so the request/response code there stays readable; only
services.kube builds these objects.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from services.errors import SkewmitError, UnreachableError, from_status

Obj = dict[str, Any]


@dataclass(frozen=True)
class ListPage:
    items: list[Obj]
    resource_version: str  # the list's: a watch from it misses nothing
    continue_token: str  # "" on the last page


class WatchExpired(SkewmitError):
    """The resourceVersion a list or watch continued from is gone (410: compacted, or the
    watch cache moved on). The caller lists again."""


def gone_or(error: SkewmitError, exc: ApiException) -> SkewmitError:
    """410 Gone as WatchExpired (a list or watch continued from a compacted version)."""
    return WatchExpired(str(error)) if exc.status == 410 else error


class WatchStream:
    """An open watch: iterate it for events; `abort()` (from any thread) ends it at once.

    Iterating raises WatchExpired for an ERROR event with code 410, the project's exception
    for another ERROR event, UnreachableError when the stream breaks or stays silent past its
    read timeout. The connection is closed when iteration ends.
    """

    def __init__(
        self, raw: Any, plural: str, transport_error: Callable[[BaseException], SkewmitError]
    ) -> None:
        self._raw = raw  # urllib3's response, body unread: read as it arrives
        self._plural = plural
        self._transport_error = transport_error
        self._aborted = False

    def __iter__(self) -> Iterator[Obj]:
        try:
            for line in stream_lines(self._raw):
                event: Obj = json.loads(line)
                if event.get("type") == "ERROR":
                    raise self._error(event.get("object") or {})
                yield event
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if self._aborted:
                return
            if isinstance(exc, ValueError):  # a line cut short: the stream broke mid-event
                raise UnreachableError(f"watch {self._plural}: the stream broke ({exc})") from exc
            raise self._transport_error(exc) from exc
        finally:
            self.close()

    def _error(self, status: Obj) -> SkewmitError:
        message = str(status.get("message", "watch failed"))
        if status.get("code") == 410:
            return WatchExpired(f"watch {self._plural}: {message}")
        code = int(status.get("code") or 500)
        return from_status(code, "", json.dumps(status), None, f"watch {self._plural}")

    def abort(self) -> None:
        """End the stream from another thread: its reader stops without an error."""
        self._aborted = True
        sock = getattr(getattr(self._raw, "connection", None), "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a reader blocked in recv
            except OSError:
                pass

    def close(self) -> None:
        self._raw.close()
        self._raw.release_conn()


def stream_lines(raw: Any) -> Iterator[bytes]:
    """Complete lines of a streamed body, as they arrive."""
    buffer = b""
    for chunk in raw.stream(amt=None, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer


def request_kind(method: str, path: str, query: dict[str, Any] | None = None) -> tuple[str, str]:
    """(verb, resource) of an API request, as the API server's audit log names them:
    ("list", "pods"), ("get", "deployments"), ("watch", "nodes"), ("patch", "nodes/status");
    ("get", "discovery") for the group documents."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:] if parts[:1] == ["apis"] else []
    if parts[:1] not in (["api"], ["apis"]):
        return method.lower(), path  # the simulator's own controls, say
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    if not rest:
        return "get", "discovery"
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    named = len(rest) > 1
    verbs = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}
    if method == "GET":
        if (query or {}).get("watch") in ("true", True, "1"):
            return "watch", resource
        return ("get" if named else "list"), resource
    return verbs.get(method, method.lower()), resource
