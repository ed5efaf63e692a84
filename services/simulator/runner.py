"""Run the simulator on a background thread with its own event loop.

Tests, benchmarks and drills use this: the synchronous `kubernetes` client and kubectl talk
to it over HTTP on 127.0.0.1 while the caller's thread goes on. `python -m
services.simulator.runner` runs it as a child process for `skewmit demo` (see `serve_child`):
the simulator's start then runs beside the app's instead of sharing its interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Collection
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from services.simulator.backfill import render_history
from services.simulator.cluster import Cluster
from services.simulator.kubeconfig import write_kubeconfig
from services.simulator.scenario import ScenarioError, load
from services.simulator.server import ApiServer
from services.simulator.tls import ServingCert, make_serving_cert

T = TypeVar("T")
TICK_S = 0.05
SWITCH_INTERVAL_S = 0.0005  # the demo child's (CPython's default: 5 ms)


class Simulator:
    """A simulated cluster serving the Kubernetes API on 127.0.0.1.

    `Simulator("skew-incident", speed=30).start()` builds the scenario, starts the controllers
    and the HTTP server, and returns once it is listening. Raises ScenarioError for a bad
    scenario and OSError when the port is taken.

    With `serve_first` (the demo's child) it returns before the fleet's history is built:
    the API answers while it is built, a step at a time on the loop, and /metrics, the
    history readings and the fleet's controls wait for it (ApiServer.fleet_ready).
    """

    def __init__(
        self,
        scenario: str = "skew-incident",
        *,
        speed: float = 1.0,
        seed: int = 0,
        port: int = 0,
        host: str = "127.0.0.1",
        serve_first: bool = False,
    ) -> None:
        self.scenario = load(scenario)
        self.serve_first = serve_first
        self.speed = speed
        self.seed = seed
        self.host = host
        self.port = port
        self.metrics_port = 0
        self.cert: ServingCert | None = None
        self.cluster: Cluster | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        """The API server (HTTPS: kubectl sends bearer tokens only over TLS)."""
        return f"https://{self.host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        """The fleet's Prometheus exposition, plain HTTP like a pod's metrics port."""
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def start(self) -> Simulator:
        self._thread = threading.Thread(target=self._run, name="skewmit-simulator", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        cluster = Cluster(self.scenario, speed=self.speed, seed=self.seed)
        cluster.setup(history=not self.serve_first)
        self.cluster = cluster
        self.cert = make_serving_cert(self.host)
        # For a demo whose metrics source is in another process: the fleet's recent past,
        # and a day-old window rendered here, off that process's interpreter lock.
        readings = {
            "history": lambda part: history_slice(
                cluster.fleet.history_text,
                part.get("families") or (),
                part.get("since"),
                part.get("until"),
            ),
            "backfill": lambda window: render_history(self.scenario, **window).text,
        }
        api = ApiServer(cluster, readings=readings)
        if cluster.fleet.history_pending:
            api.fleet_ready.clear()
        runner = web.AppRunner(api.app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        context = self.cert.server_context()
        # Loaded into the context: the key and certificate files are not read again, so they
        # do not stay behind in /tmp (one folder per simulator ever started, key included).
        shutil.rmtree(self.cert.cert_path.parent, ignore_errors=True)
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True, ssl_context=context)
        await site.start()
        self.port = _bound_port(site, self.port)
        metrics = web.AppRunner(
            api.metrics_app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await metrics.setup()
        metrics_site = web.TCPSite(metrics, self.host, 0, reuse_address=True)
        await metrics_site.start()
        self.metrics_port = _bound_port(metrics_site, 0)
        self._ready.set()
        await _build_history(cluster, api)
        ticker = asyncio.create_task(self._tick())
        await self._stop.wait()
        ticker.cancel()
        await metrics.cleanup()
        await runner.cleanup()

    async def _tick(self) -> None:
        assert self.cluster is not None
        while True:
            try:
                self.cluster.tick()
            except Exception:  # a broken tick must not freeze the cluster
                # Keep serving and ticking; the traceback tells the simulator's maintainer.
                logging.getLogger("skewmit.simulator").exception("controller tick failed")
            await asyncio.sleep(TICK_S)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) on the simulator's loop thread and return its result."""
        assert self._loop is not None

        async def invoke() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result(timeout=60)

    def write_kubeconfig(self, path: Path | str) -> Path:
        assert self.cert is not None, "start() the simulator first"
        return write_kubeconfig(Path(path), self.url, self.scenario.namespace, self.cert.ca_pem)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def _build_history(cluster: Cluster, api: ApiServer) -> None:
    """The fleet's history, a step at a time, serving requests between steps; then what
    waited for it answers. A failure is logged: the fleet goes on without its history."""
    try:
        for _ in cluster.fleet.history_steps():
            await asyncio.sleep(0)
    except Exception:
        logging.getLogger("skewmit.simulator").exception("building the fleet's history failed")
    finally:
        api.fleet_ready.set()


def _bound_port(site: web.TCPSite, fallback: int) -> int:
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1]) if sockets else fallback


def history_slice(
    text: str,
    families: Collection[str] = (),
    since: float | None = None,
    until: float | None = None,
) -> str:
    """The samples of OpenMetrics history `text` whose name starts with one of `families`
    (all when empty) and whose timestamp is in [since, until), then `# EOF`: what a reader
    of a few families and of the last minutes first needs to parse (a skew-incident fleet's
    fifteen minutes are 17.7 MB). Comment lines are left out."""
    prefixes = tuple(families)
    low = -math.inf if since is None else float(since)
    high = math.inf if until is None else float(until)
    kept = []
    for line in text.splitlines():
        if not line or line.startswith("#") or (prefixes and not line.startswith(prefixes)):
            continue
        try:
            at = float(line[line.rindex(" ") + 1 :])
        except ValueError:
            at = low  # no timestamp: a sample of now, kept wherever the slice is
        if low <= at < high:
            kept.append(line)
    kept.append("# EOF")
    return "\n".join(kept)


def serve_child(argv: list[str] | None = None) -> int:
    """`python -m services.simulator.runner --scenario S --speed X --seed N --kubeconfig PATH`:
    the simulator as `skewmit demo`'s child. Once listening it writes the kubeconfig and
    prints `api: URL` then `metrics: URL` on stdout; it runs until its stdin closes (a pipe
    from the parent: closed when the parent stops it, exits or is killed, kill -9 included)
    or SIGTERM; then it removes the kubeconfig (and its folder, when left empty). A scenario,
    port or kubeconfig that fails is one line on stderr, exit 2."""
    parser = argparse.ArgumentParser(prog="skewmit-simulator")
    parser.add_argument("--scenario", default="skew-incident")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--kubeconfig", required=True)
    args = parser.parse_args(argv)
    # The API's requests wait on this process's interpreter lock while a reading (the
    # day-old window: a second of rendering) runs on a worker thread: hand it over sooner.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        # Serving first: the app's open needs the API, its metrics the history a little later.
        sim = Simulator(
            args.scenario, speed=args.speed, seed=args.seed, port=args.port, serve_first=True
        ).start()
    except (ScenarioError, ValueError) as exc:
        print(f"simulator: {exc}", file=sys.stderr, flush=True)
        return 2
    except OSError as exc:
        print(
            f"simulator: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
            flush=True,
        )
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    kubeconfig = Path(args.kubeconfig)
    try:
        if not kubeconfig.parent.is_dir():
            return 0  # the parent gave up while this started (and removed the folder)
        sim.write_kubeconfig(kubeconfig)
        print(f"api: {sim.url}\nmetrics: {sim.metrics_url}", flush=True)
        threading.Thread(target=_until_eof, args=(stop,), name="parent-pipe", daemon=True).start()
        while not stop.wait(0.5):  # a timed wait: SIGTERM's handler runs between them
            pass
    except OSError as exc:
        print(f"simulator: cannot write {kubeconfig}: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        # The kubeconfig holds the tokens: gone with the simulator, also when the parent was
        # killed before it could remove it (or removed its folder as this wrote it).
        kubeconfig.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            kubeconfig.parent.rmdir()
    return 0


def _until_eof(stop: threading.Event) -> None:
    """Set `stop` when stdin reaches end of file: the parent holds its only write end."""
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    stop.set()


if __name__ == "__main__":
    sys.exit(serve_child())
