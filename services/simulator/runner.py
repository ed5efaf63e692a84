"""Run the simulator on a background thread with its own event loop.

Tests, benchmarks and `skewmit demo` use this: the synchronous `kubernetes` client and kubectl
talk to it over HTTP on 127.0.0.1 while the caller's thread goes on.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from services.simulator.cluster import Cluster
from services.simulator.kubeconfig import write_kubeconfig
from services.simulator.scenario import load
from services.simulator.server import ApiServer
from services.simulator.tls import ServingCert, make_serving_cert

T = TypeVar("T")
TICK_S = 0.05


class Simulator:
    """A simulated cluster serving the Kubernetes API on 127.0.0.1.

    `Simulator("skew-incident", speed=30).start()` builds the scenario, starts the controllers
    and the HTTP server, and returns once it is listening. Raises ScenarioError for a bad
    scenario and OSError when the port is taken.
    """

    def __init__(
        self,
        scenario: str = "skew-incident",
        *,
        speed: float = 1.0,
        seed: int = 0,
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        self.scenario = load(scenario)
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
        cluster.setup()
        self.cluster = cluster
        self.cert = make_serving_cert(self.host)
        api = ApiServer(cluster)
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


def _bound_port(site: web.TCPSite, fallback: int) -> int:
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1]) if sockets else fallback
