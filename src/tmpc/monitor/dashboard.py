"""The monitor's dashboard: one web page and the JSON it polls.

Routes (all ``GET``):

====================  ======================================================================
``/``                 the page (``static/index.html``): nodes, wallets and addresses, live
                      sessions and their round, recent signatures, alerts, charts of signing
                      latency and volume; it polls ``/api/state`` every 2 seconds
``/app.js``           its script (vanilla JavaScript, SVG charts drawn in the page)
``/app.css``          its style sheet
``/favicon.svg``      its icon
``/api/state``        :meth:`tmpc.monitor.service.Monitor.snapshot`
====================  ======================================================================

Nothing is loaded from elsewhere (no CDN: a monitor often runs where nothing else is
reachable), and the Content-Security-Policy says so: scripts, styles and requests from the
monitor only. The dashboard has **no authentication**: it listens on loopback by default. No
secret is ever on it (none is in an audit entry), but it shows confidential operational data
(wallets, amounts, destinations, who signed): put it behind an authenticating proxy before
exposing it anywhere else. While it listens on loopback
it answers only requests whose ``Host`` is a loopback name, so a web page elsewhere cannot
read it through a DNS name rebound to 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from tmpc.errors import ParameterError

if TYPE_CHECKING:
    from tmpc.monitor.service import Monitor

__all__ = ["is_loopback", "make_app", "parse_listen", "start_dashboard"]

_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_FILES: Final = {
    "/": ("index.html", "text/html"),
    "/app.js": ("app.js", "text/javascript"),
    "/app.css": ("app.css", "text/css"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is loopback."""
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8470`` for IPv6) as ``(host, port)``; ValueError if malformed."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"--listen must be HOST:PORT, not {text!r}")
    return host, int(port)


def _host_name(host: str) -> str:
    """The name in a ``Host`` header: ``[::1]:8470`` -> ``::1``, ``localhost:8470`` ->
    ``localhost``."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _asset(name: str) -> bytes:
    return resources.files("tmpc.monitor").joinpath("static", name).read_bytes()


def make_app(monitor: Monitor, *, loopback_only: bool) -> web.Application:
    """The dashboard's application over ``monitor``; with ``loopback_only`` a request whose
    ``Host`` is not a loopback name is refused (421)."""
    assets = {path: (_asset(name), ctype) for path, (name, ctype) in _FILES.items()}

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if loopback_only:
            if not is_loopback(_host_name(request.host)):
                return web.Response(status=421, text="this dashboard answers loopback names only")
        response: web.StreamResponse = await handler(request)
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    def asset(path: str) -> Any:
        body, ctype = assets[path]

        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type=ctype, charset="utf-8")

        return handler

    async def state(request: web.Request) -> web.Response:
        return web.json_response(monitor.snapshot())

    app = web.Application(middlewares=[guard])
    app.add_routes([web.get(path, asset(path)) for path in _FILES])
    app.add_routes([web.get("/api/state", state)])
    return app


async def start_dashboard(monitor: Monitor, host: str, port: int) -> tuple[web.AppRunner, str]:
    """Serve the dashboard on ``host:port`` (port 0: any free port); returns the runner (call
    its ``cleanup``) and the page's URL.

    Raises:
        ParameterError: the address cannot be bound (in use, not an address of this machine).
    """
    runner = web.AppRunner(make_app(monitor, loopback_only=is_loopback(host)), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ParameterError(
            f"the dashboard cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0]
    shown = f"[{host}]" if ":" in host else host
    return runner, f"http://{shown}:{bound[1]}/"
