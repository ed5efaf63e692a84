"""A real Prometheus for tests: the Debian package's server on a free loopback port, scraping
the simulators every second, with history backfilled by promtool before it starts.

Also a switchable proxy in front of a metrics endpoint, so a test can make a target go down
(Prometheus then marks its series stale) and come back.
"""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def backfill(promtool: str, openmetrics: str, data_dir: Path) -> None:
    """Write TSDB blocks for the OpenMetrics history into `data_dir` (before the server
    starts, so it loads them at once)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    source = data_dir.parent / "backfill.om"
    source.write_text(openmetrics)
    result = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"promtool backfill failed: {result.stderr[-2000:]}")
    source.unlink()


class SwitchableProxy:
    """GET /metrics forwarded to `upstream`; with `up = False` it answers 503, a failed scrape;
    with `hidden` set, the lines of the metric families it names are left out."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.up = True
        self.hidden: tuple[str, ...] = ()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not proxy.up:
                    self.send_error(503, "switched off by the test")
                    return
                try:
                    with urllib.request.urlopen(proxy.upstream, timeout=5) as response:
                        body = response.read()
                        kind = response.headers.get("Content-Type", "text/plain")
                except (urllib.error.URLError, OSError):
                    self.send_error(502)
                    return
                if proxy.hidden:
                    body = hide_families(body, proxy.hidden)
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def hide_families(body: bytes, families: tuple[str, ...]) -> bytes:
    """An exposition without the samples (and HELP/TYPE lines) of `families`."""

    def hidden(line: str) -> bool:
        name = line.split(" ")[2] if line.startswith("# ") and line.count(" ") >= 2 else line
        return any(name.startswith(family) for family in families)

    lines = body.decode().splitlines()
    return ("\n".join(line for line in lines if not hidden(line)) + "\n").encode()


class PrometheusServer:
    """`PrometheusServer(binary, workdir, {"job": "http://host:port/metrics"}).start()`."""

    def __init__(
        self, binary: str, workdir: Path, jobs: Mapping[str, str], scrape_interval: str = "1s"
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.jobs = dict(jobs)
        self.scrape_interval = scrape_interval
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def _config(self) -> dict[str, Any]:
        jobs = []
        for job, url in self.jobs.items():
            parts = urllib.parse.urlsplit(url)
            jobs.append(
                {
                    "job_name": job,
                    "metrics_path": parts.path or "/metrics",
                    "static_configs": [{"targets": [parts.netloc]}],
                }
            )
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "scrape_configs": jobs,
        }

    def start(self, timeout_s: float = 30.0) -> PrometheusServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self._config()))
        log = (self.workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started_at = time.time()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited {self.process.returncode}: "
                    f"{(self.workdir / 'prometheus.log').read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"prometheus did not become ready in {timeout_s:g} s")

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as response:
            result: list[dict[str, Any]] = json.loads(response.read())["data"]["result"]
        return result

    def wait_for(self, promql: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Poll until the query returns something (e.g. the first scrapes landed)."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query(promql)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.25)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
