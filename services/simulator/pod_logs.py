"""`pods/log`: container logs as the kubelet serves them, on the simulated clock.

Each container instance (a restart is a new one) keeps the lines its process writes, each at
the second after the instance's start that it writes it. A read shows only the lines written
by now, chosen the kubelet's way (the running container, else the last terminated one;
`previous` the last terminated one), with `sinceSeconds`/`sinceTime`, `tailLines`,
`limitBytes` and `timestamps` applied in the kubelet's order. `follow` keeps the response open
and writes each line when the simulated process writes it, ending when that container stops,
the pod goes, or the client leaves.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from services.simulator.clock import SimClock, parse_rfc3339
from services.simulator.errors import ApiError, bad_request, invalid
from services.simulator.store import Store

Obj = dict[str, Any]
Line = tuple[float, str]  # (seconds after the instance started, text without newline)
Render = Callable[[float], list[Line]]  # the instance's start (epoch s) -> its lines
OnStop = Callable[[float], list[str]]  # SIGTERM's time (epoch s) -> what the process prints

KEEP_INSTANCES = 2  # the kubelet keeps the current container and the one before it
# Lines a serving process appends while it runs (engine_stats_log) kept per instance: the
# last ten minutes of 10-second stats lines, so 1,000 serving pods stay within a few MiB.
KEEP_APPENDED = 60
FOLLOW_POLL_S = 0.25  # wall seconds between looks at the container while following


@dataclass
class _Instance:
    render: Render
    on_stop: OnStop | None = None
    _cache: tuple[float, list[Line]] | None = None
    appended: deque[Line] = field(default_factory=lambda: deque(maxlen=KEEP_APPENDED))
    dropped: int = 0  # appended lines no longer kept (a follower counts past them)

    def lines(self, started: float) -> list[Line]:
        if self._cache is None or self._cache[0] != started:
            self._cache = (started, self.render(started))
        return self._cache[1]


@dataclass
class _Container:
    pod_uid: str
    instances: list[_Instance] = field(default_factory=list)


class LogBook:
    """Every container's log, one entry per started instance, as the runtime started them."""

    def __init__(self) -> None:
        self._containers: dict[tuple[str, str, str], _Container] = {}

    def started(
        self, pod: Obj, container: str, render: Render, on_stop: OnStop | None = None
    ) -> None:
        """Record that a new instance of `container` started in `pod` and writes `render`'s
        lines (called with the instance's start time), and `on_stop`'s when the kubelet stops
        it after it came up."""
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"], container)
        uid = str(meta.get("uid", ""))
        held = self._containers.get(key)
        if held is None or held.pod_uid != uid:  # a new pod that reuses the name
            held = self._containers[key] = _Container(uid)
        held.instances.append(_Instance(render, on_stop))
        del held.instances[:-KEEP_INSTANCES]

    def forget(self, namespace: str, pod: str, uid: str) -> None:
        """Drop the logs of a pod that is gone (its containers' and their lines), as the
        kubelet does when it removes the pod: a simulator that rolls pods for hours keeps
        only the logs of the pods that exist. A newer pod that reuses the name keeps its own."""
        for key in [k for k in self._containers if k[0] == namespace and k[1] == pod]:
            if self._containers[key].pod_uid == uid:
                del self._containers[key]

    def held_pods(self) -> set[tuple[str, str]]:
        """(namespace, pod) of every pod whose logs are kept."""
        return {(namespace, pod) for namespace, pod, _ in self._containers}

    def append(self, namespace: str, pod: str, container: str, at: float, text: str) -> None:
        """The running instance of `container` writes `text` at `at` (epoch seconds), after
        its start-up lines (a periodic line while it serves)."""
        held = self._containers.get((namespace, pod, container))
        if held is not None and held.instances:
            instance = held.instances[-1]
            if len(instance.appended) == KEEP_APPENDED:
                instance.dropped += 1
            instance.appended.append((at, text))

    def instances(self, namespace: str, pod: str, container: str) -> list[_Instance]:
        held = self._containers.get((namespace, pod, container))
        return list(held.instances) if held else []


# ---------------------------------------------------------------- choosing the container


@dataclass(frozen=True)
class _Chosen:
    instance: _Instance | None
    container_id: str
    started: float
    finished: float | None  # None while the instance runs


def _when(stamp: object, default: float) -> float:
    return parse_rfc3339(stamp).timestamp() if isinstance(stamp, str) else default


def container_name(pod: Obj, wanted: str) -> str:
    """The container a log request reads, as the API server validates it.

    Raises ApiError 400 with the API server's message when none or a wrong one is named.
    """
    spec = pod.get("spec") or {}
    names = [
        c["name"]
        for part in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(part) or []
    ]
    name = pod["metadata"]["name"]
    if not wanted:
        regular = spec.get("containers") or []
        if len(regular) == 1:
            return str(regular[0]["name"])
        if not regular:
            raise bad_request(f"a container name must be specified for pod {name}")
        raise bad_request(
            f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
        )
    if wanted not in names:
        raise bad_request(f"container {wanted} is not valid for pod {name}")
    return wanted


def _choose(book: LogBook, pod: Obj, container: str, previous: bool) -> _Chosen:
    """The instance the kubelet reads (its validateContainerLogStatus), by container status.

    Raises ApiError 400 with the kubelet's message when there is none to read.
    """
    meta = pod["metadata"]
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    status = next((s for s in statuses if s.get("name") == container), None)
    found = book.instances(meta["namespace"], meta["name"], container)
    state = (status or {}).get("state") or {}
    last = ((status or {}).get("lastState") or {}).get("terminated")
    where = f'container "{container}" in pod "{meta["name"]}"'
    if previous:
        if not last or not last.get("containerID"):
            raise bad_request(f"previous terminated {where} not found")
        # While crash-looping the last instance is the terminated one; while running, the one
        # before it.
        index = -1 if "running" not in state else -2
        instance = found[index] if len(found) >= -index else None
        return _terminated(instance, last)
    if "running" in state:
        running = state["running"]
        return _Chosen(
            found[-1] if found else None,
            str(status.get("containerID", "") if status else ""),
            _when(running.get("startedAt"), 0.0),
            None,
        )
    if "terminated" in state and state["terminated"].get("containerID"):
        return _terminated(found[-1] if found else None, state["terminated"])
    if last and last.get("containerID"):
        return _terminated(found[-1] if found else None, last)
    if "terminated" in state or last:
        raise bad_request(f"{where} is terminated")
    reason = (state.get("waiting") or {}).get("reason", "ContainerCreating")
    raise bad_request(f"{where} is waiting to start: {reason}")


def _terminated(instance: _Instance | None, terminated: Obj) -> _Chosen:
    started = _when(terminated.get("startedAt"), 0.0)
    return _Chosen(
        instance,
        str(terminated.get("containerID", "")),
        started,
        _when(terminated.get("finishedAt"), started),
    )


# ---------------------------------------------------------------- options


@dataclass(frozen=True)
class LogOptions:
    """The query of a log request (PodLogOptions)."""

    container: str = ""
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    since_seconds: int | None = None
    since_time: float | None = None
    tail_lines: int | None = None
    limit_bytes: int | None = None


def _int(query: Any, key: str) -> int | None:
    raw = query.get(key)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f'strconv.ParseInt: parsing "{raw}": invalid syntax') from None


def parse_options(query: Any, pod_name: str) -> LogOptions:
    """PodLogOptions from the query, checked as the API server checks them.

    Raises ApiError 400 for a value that does not parse, 422 for one out of range.
    """
    since_time = None
    raw_time = query.get("sinceTime")
    if raw_time:
        try:
            moment = datetime.fromisoformat(raw_time.replace("Z", "+00:00"))
        except ValueError:
            raise bad_request(
                f'parsing time "{raw_time}" as "2006-01-02T15:04:05Z07:00": cannot parse '
                f'"{raw_time}" as "2006"'
            ) from None
        since_time = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    options = LogOptions(
        container=query.get("container", ""),
        follow=query.get("follow") in ("true", "1"),
        previous=query.get("previous") in ("true", "1"),
        timestamps=query.get("timestamps") in ("true", "1"),
        since_seconds=_int(query, "sinceSeconds"),
        since_time=since_time,
        tail_lines=_int(query, "tailLines"),
        limit_bytes=_int(query, "limitBytes"),
    )
    causes: list[tuple[str, str]] = []
    if options.tail_lines is not None and options.tail_lines < 0:
        causes.append(
            (
                "tailLines",
                f"Invalid value: {options.tail_lines}: must be greater than or equal to 0",
            )
        )
    if options.limit_bytes is not None and options.limit_bytes < 1:
        causes.append(
            ("limitBytes", f"Invalid value: {options.limit_bytes}: must be greater than 0")
        )
    if options.since_seconds is not None and options.since_time is not None:
        causes.append(
            ("", "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified")
        )
    elif options.since_seconds is not None and options.since_seconds < 1:
        causes.append(
            ("sinceSeconds", f"Invalid value: {options.since_seconds}: must be greater than 0")
        )
    if causes:
        raise invalid("PodLogOptions", "", pod_name, causes)
    return options


def rfc3339_nano(moment: float) -> str:
    """The kubelet's --timestamps prefix: RFC3339 with nine fixed fraction digits, UTC."""
    whole = int(moment // 1)
    nanos = round((moment - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    base = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{nanos:09d}Z"


def render(lines: list[tuple[float, str]], options: LogOptions, now: float) -> bytes:
    """Written lines (absolute time, text) cut as the kubelet cuts them: the last `tail`
    lines, of those the ones since `since`, with timestamps, to the byte limit."""
    since = options.since_time
    if options.since_seconds is not None:
        since = now - options.since_seconds
    chosen = lines
    if options.tail_lines is not None:
        chosen = chosen[len(chosen) - options.tail_lines :] if options.tail_lines else []
    chosen = [(at, text) for at, text in chosen if since is None or at >= since]
    out = b"".join(_line(at, text, options.timestamps) for at, text in chosen)
    return out if options.limit_bytes is None else out[: options.limit_bytes]


def _line(at: float, text: str, timestamps: bool) -> bytes:
    prefix = f"{rfc3339_nano(at)} " if timestamps else ""
    return f"{prefix}{text}\n".encode()


# ---------------------------------------------------------------- the endpoint


def _written(
    chosen: _Chosen, upto: float, stopping: float | None = None
) -> list[tuple[float, str]]:
    """The instance's lines written by `upto`; a stopped instance has written them all. From
    `stopping` (SIGTERM) on it writes nothing more of its start, and a process that had come
    up says goodbye."""
    if chosen.instance is None:
        return []
    lines = chosen.instance.lines(chosen.started)
    appended = list(chosen.instance.appended)
    if chosen.finished is not None:
        return [(chosen.started + at, text) for at, text in lines] + appended
    cut = upto if stopping is None else min(upto, stopping)
    out = [(chosen.started + at, text) for at, text in lines if chosen.started + at <= cut]
    started_up = len(out) == len(lines)
    out += [(at, text) for at, text in appended if at <= cut]
    on_stop = chosen.instance.on_stop
    if stopping is not None and stopping <= upto and on_stop and started_up:
        out += [(stopping, text) for text in on_stop(stopping)]
    return out


def _stopping(pod: Obj) -> float | None:
    """When the kubelet sent SIGTERM: the deletion request (deletionTimestamp less the grace)."""
    meta = pod["metadata"]
    deadline = meta.get("deletionTimestamp")
    if not isinstance(deadline, str):
        return None
    grace = meta.get("deletionGracePeriodSeconds")
    return _when(deadline, 0.0) - (float(grace) if isinstance(grace, int | float) else 0.0)


def _pod(store: Store, namespace: str, name: str) -> Obj:
    pod = store.peek("pods", namespace, name)
    if pod is None:
        raise ApiError(404, "NotFound", f'pods "{name}" not found', name=name, kind="pods")
    return pod


async def serve(
    request: web.Request, store: Store, book: LogBook, namespace: str, name: str
) -> web.StreamResponse:
    """Answer GET pods/NAME/log. Raises ApiError as the API server and kubelet answer."""
    pod = _pod(store, namespace, name)
    options = parse_options(request.query, name)
    container = container_name(pod, options.container)
    if not (pod.get("spec") or {}).get("nodeName"):
        # The API server has no kubelet to ask yet: an empty log, not an error.
        return web.Response(body=b"", content_type="text/plain")
    chosen = _choose(book, pod, container, options.previous)
    clock: SimClock = store.clock
    now = clock.time()
    written = _written(chosen, now, _stopping(pod))
    if not options.follow or chosen.finished is not None:
        return web.Response(body=render(written, options, now), content_type="text/plain")
    return await _follow(request, store, book, pod, container, chosen, options, written)


async def _follow(
    request: web.Request,
    store: Store,
    book: LogBook,
    pod: Obj,
    container: str,
    chosen: _Chosen,
    options: LogOptions,
    written: list[tuple[float, str]],
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    clock: SimClock = store.clock
    budget = options.limit_bytes
    first = render(written, options, clock.time())
    sent = len(written) + _dropped(chosen)  # lines written so far, kept or not
    # Later lines pass no tail and no since: they are newer than both.
    later = LogOptions(timestamps=options.timestamps)
    stopping = _stopping(pod)
    seen = clock.time()
    try:
        budget = await _send(response, first, budget)
        while budget is None or budget > 0:
            await asyncio.sleep(FOLLOW_POLL_S)
            if request.transport is None or request.transport.is_closing():
                return response  # the client went away
            now = clock.time()
            meta = pod["metadata"]
            current = store.peek("pods", meta["namespace"], meta["name"])
            gone = current is None or current["metadata"].get("uid") != meta.get("uid")
            if current is not None and not gone:
                stopping, seen = _stopping(current), now
            elif stopping is None:
                stopping = seen  # deleted and removed between two looks: stopped since then
            running = not gone and _still_running(current, container, chosen.container_id)
            # A container that exited wrote all its lines; a pod removed mid-start did not.
            lines = _written(chosen, now, stopping) if running or gone else _all(chosen)
            dropped = _dropped(chosen)
            if len(lines) + dropped > sent:
                fresh = lines[max(0, sent - dropped) :]
                budget = await _send(response, render(fresh, later, now), budget)
                sent = len(lines) + dropped
            if not running:
                break
    except ConnectionResetError:
        return response  # the client went away mid-write
    await response.write_eof()
    return response


def _dropped(chosen: _Chosen) -> int:
    return chosen.instance.dropped if chosen.instance is not None else 0


def _all(chosen: _Chosen) -> list[tuple[float, str]]:
    if chosen.instance is None:
        return []
    lines = chosen.instance.lines(chosen.started)
    return [(chosen.started + at, text) for at, text in lines] + list(chosen.instance.appended)


def _still_running(pod: Obj | None, container: str, container_id: str) -> bool:
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
    status = next((s for s in statuses if s.get("name") == container), None)
    return bool(
        status
        and "running" in (status.get("state") or {})
        and status.get("containerID") == container_id
    )


async def _send(response: web.StreamResponse, data: bytes, budget: int | None) -> int | None:
    if budget is not None:
        data = data[:budget]
        budget -= len(data)
    if data:
        await response.write(data)
    return budget
