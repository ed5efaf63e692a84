"""Streaming watch responses: one JSON event per line, bookmarks, timeouts, dropped watches."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from services.simulator.resources import ResourceType
from services.simulator.store import Store, Watcher

BOOKMARK_EVERY_S = 5.0


def _bookmark(rt: ResourceType, rv: str, *, initial_end: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": rv}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {
        "type": "BOOKMARK",
        "object": {"kind": rt.kind, "apiVersion": rt.group_version, "metadata": meta},
    }


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
) -> web.StreamResponse:
    """Serve `watcher` as a chunked JSON stream until timeout, client exit or a fault."""
    response = web.StreamResponse(
        headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"}
    )
    await response.prepare(request)
    deadline = time.monotonic() + timeout_s
    sent = 0
    initial_pending = initial_events_end
    last_bookmark = time.monotonic()

    async def send(event: dict[str, Any]) -> None:
        await response.write((json.dumps(event) + "\n").encode())

    try:
        while True:
            if initial_pending and watcher.queue.empty():
                # The initial state has been sent: tell kubectl it may trust the cache.
                await send(_bookmark(rt, store.resource_version, initial_end=True))
                initial_pending = False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                event = await asyncio.wait_for(
                    watcher.queue.get(), timeout=min(remaining, BOOKMARK_EVERY_S)
                )
            except TimeoutError:
                if bookmarks and time.monotonic() - last_bookmark >= BOOKMARK_EVERY_S:
                    await send(_bookmark(rt, store.resource_version))
                    last_bookmark = time.monotonic()
                continue
            if event.type == "CLOSE":
                break
            await send({"type": event.type, "object": event.object})
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
