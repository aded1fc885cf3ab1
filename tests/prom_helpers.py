"""Helpers for metrics tests: a real Prometheus server (Debian's ``prometheus``) scraping
targets on this machine, and a tiny ``/metrics`` server for a :class:`NodeMetrics`.

``start_prometheus`` starts ``prometheus`` as a subprocess on a free loopback port with a
generated configuration (scrape interval 1 s, job ``tmpc``), waits until it is ready, and
stops it on exit. Its :meth:`PrometheusServer.wait_for` polls the query API. Everything is
synchronous: a node under test must answer scrapes on its own thread or process
(:func:`serve_metrics` runs its aiohttp app on a thread of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = ["PrometheusServer", "free_port", "serve_metrics", "start_prometheus"]

#: Bound on every wait here (start, readiness, a query's answer), seconds.
WAIT = 30.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class PrometheusServer:
    """A running Prometheus: its base URL, its process and its log file."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, n: int = 30) -> str:
        """The last ``n`` lines of its log (for assertion messages)."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/PATH`` with ``params``; the ``data`` of a successful answer."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=5) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant query: ``(labels, value)`` of every series in the result vector."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def wait_for(
        self,
        expr: str,
        done: Callable[[list[tuple[dict[str, str], float]]], bool],
        timeout: float = WAIT,
    ) -> list[tuple[dict[str, str], float]]:
        """Poll ``expr`` until ``done(result)``; the result, or AssertionError after
        ``timeout`` seconds (with the last result, the targets' health and the log)."""
        deadline = time.monotonic() + timeout
        result: list[tuple[dict[str, str], float]] = []
        while True:
            result = self.query(expr)
            if done(result):
                return result
            if time.monotonic() > deadline:
                targets = self.api("targets")["activeTargets"]
                health = [(t["scrapeUrl"], t["health"], t["lastError"]) for t in targets]
                raise AssertionError(
                    f"{expr!r} gave {result} after {timeout} s; targets {health}\n"
                    + self.log_tail()
                )
            time.sleep(0.25)


def _wait_ready(server: PrometheusServer) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        if server.process.poll() is not None:
            raise AssertionError(
                f"prometheus exited ({server.process.returncode})\n" + server.log_tail()
            )
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError("prometheus did not become ready\n" + server.log_tail())
        time.sleep(0.1)


@contextlib.contextmanager
def start_prometheus(
    targets: Sequence[str],
    workdir: Path,
    *,
    scheme: str = "http",
    metrics_path: str = "/metrics",
    tls_config: Mapping[str, str] | None = None,
    rule_files: Sequence[Path] = (),
    interval: str = "1s",
) -> Iterator[PrometheusServer]:
    """A Prometheus server scraping ``targets`` (``host:port``) as job ``tmpc``.

    Args:
        targets: what to scrape, every ``interval``.
        workdir: an empty directory for its configuration, data and log.
        scheme, metrics_path, tls_config: as in Prometheus's ``scrape_config`` (a real node
            needs ``https`` and a ``tls_config`` with ``ca_file``, ``cert_file``,
            ``key_file``, ``server_name``).
        rule_files: rule files to load (evaluated every ``interval``).

    The server listens on a free port of 127.0.0.1 and is stopped (then killed, if it does not
    stop within 10 s) on exit.
    """
    binary = shutil.which("prometheus")
    assert binary is not None, "prometheus is not installed (make prometheus)"
    job: dict[str, Any] = {
        "job_name": "tmpc",
        "scheme": scheme,
        "metrics_path": metrics_path,
        "static_configs": [{"targets": list(targets)}],
    }
    if tls_config is not None:
        job["tls_config"] = dict(tls_config)
    config = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [job],
    }
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "prometheus.yml"
    config_file.write_text(json.dumps(config, indent=2))  # JSON is YAML
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_ready(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def serve_metrics(render: Callable[[str | None], tuple[bytes, str]]) -> Iterator[str]:
    """Serve ``GET /metrics`` on a free port of 127.0.0.1 from a thread of its own; yields
    ``host:port``. ``render(accept header)`` gives the body and its content type
    (:meth:`tmpc.node.metrics.NodeMetrics.render`)."""

    async def metrics(request: web.Request) -> web.Response:
        body, content_type = render(request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)

    async def up() -> int:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        bound: int = runner.addresses[0][1]
        return bound

    port = loop.run_until_complete(up())
    thread = threading.Thread(target=loop.run_forever, name="metrics-server", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
