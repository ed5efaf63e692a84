"""Streaming watch responses: one JSON event per line, bookmarks, timeouts, dropped watches."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from services.simulator.resources import ResourceType
from services.simulator.store import Store, Watcher

# The watch cache sends a bookmark about once a minute (of simulated time here) and one more
# two seconds before the watch's own timeout, so a client may resume from a fresh version.
BOOKMARK_EVERY_SIM_S = 60.0
PRE_TIMEOUT_S = 2.0
# How often a quiet stream looks whether its client has gone (aiohttp does not cancel it).
LIVENESS_S = 1.0
HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-cache, private"}


def _bookmark(rt: ResourceType, rv: str, *, initial_end: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": rv}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {
        "type": "BOOKMARK",
        "object": {"kind": rt.kind, "apiVersion": rt.group_version, "metadata": meta},
    }


def _line(event: dict[str, Any]) -> bytes:
    return (json.dumps(event) + "\n").encode()


async def error(request: web.Request, status: dict[str, Any]) -> web.StreamResponse:
    """A watch that fails after its request was accepted (a too-old resourceVersion): HTTP 200
    and a single ERROR event carrying the Status, as the real watch cache answers."""
    response = web.StreamResponse(headers=HEADERS)
    await response.prepare(request)
    try:
        await response.write(_line({"type": "ERROR", "object": status}))
        await response.write_eof()
    except ConnectionResetError:
        pass
    return response


class _Bookmarks:
    """When the next bookmark is due, in wall-clock seconds."""

    def __init__(self, enabled: bool, start: float, deadline: float, every: float) -> None:
        self.enabled = enabled
        self.deadline = deadline
        self.every = every
        self.pre_timeout_sent = False
        self.due = self._next(start) if enabled else math.inf

    def _next(self, now: float) -> float:
        heartbeat = now + self.every
        if not self.pre_timeout_sent:
            heartbeat = min(heartbeat, self.deadline - PRE_TIMEOUT_S)
        # Too late for the pre-timeout bookmark (a watch of under two seconds): none at all.
        return heartbeat if heartbeat >= now else math.inf

    def sent(self, now: float) -> None:
        if now >= self.deadline - PRE_TIMEOUT_S:
            self.pre_timeout_sent = True
        self.due = self._next(now)


async def stream(
    request: web.Request,
    store: Store,
    watcher: Watcher,
    rt: ResourceType,
    *,
    timeout_s: float,
    bookmarks: bool,
    initial_events_end: bool,
    drop_after: int,
    as_table: Callable[[dict[str, Any], bool], dict[str, Any]] | None = None,
) -> web.StreamResponse:
    """Serve `watcher` as a chunked JSON stream until timeout, client exit or a fault.

    `as_table(obj, headers)` turns each event's object into a Table (kubectl get -w), with
    column definitions on the first only, as the real watch encoder's NoHeaders does.
    """
    response = web.StreamResponse(headers=HEADERS)
    await response.prepare(request)
    start = time.monotonic()
    deadline = start + timeout_s
    every = BOOKMARK_EVERY_SIM_S / max(store.clock.speed, 1e-6)
    due = _Bookmarks(bookmarks, start, deadline, every)
    sent = 0
    initial_pending = initial_events_end

    async def send(event: dict[str, Any]) -> None:
        await response.write(_line(event))

    try:
        while True:
            if initial_pending and watcher.queue.empty():
                # The initial state has been sent: tell the client it may trust its cache.
                await send(_bookmark(rt, store.resource_version, initial_end=True))
                initial_pending = False
            now = time.monotonic()
            if now >= deadline:
                break
            # A bookmark says every event up to its version was sent: never one while events
            # wait in the queue (a client resuming from it would lose them, as no real
            # API server's bookmark does).
            quiet = watcher.queue.empty()
            if now >= due.due and quiet:
                await send(_bookmark(rt, store.resource_version))
                due.sent(now)
                continue
            transport = request.transport
            if transport is None or transport.is_closing():
                break
            wait = (min(deadline, due.due) if quiet else deadline) - now
            try:
                event = await asyncio.wait_for(watcher.queue.get(), timeout=min(wait, LIVENESS_S))
            except TimeoutError:
                continue
            if event.type == "CLOSE":
                break
            shown = event.object
            if as_table is not None:
                shown = as_table(shown, sent == 0)
            await send({"type": event.type, "object": shown})
            sent += 1
            if drop_after and sent >= drop_after:
                break
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        store.close_watch(watcher)
    try:
        await response.write_eof()
    except ConnectionResetError:
        pass
    return response
