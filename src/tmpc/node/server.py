"""A running node: its HTTPS listener (operator API and peer endpoint) over the engine.

One listener per node, mutual TLS 1.3 only. The server trusts exactly the certificates of
the cluster file (members and operators); which client may call what is decided by the
fingerprint of the certificate it presented:

==========================  ==========  =====================================================
endpoint                    who         what
==========================  ==========  =====================================================
``GET  /v1/peer/ws``        members     a stream of sealed envelopes (the TCP transport)
``POST /v1/peer/message``   members     one sealed envelope (the same, one per request)
``GET  /v1/health``         operators   name, cluster, members, counters
``GET  /v1/wallets``        operators   wallets of this node (each with its public record)
``POST /v1/wallets``        operators   create a wallet by DKG across nodes (waits)
``POST /v1/sign``           operators   sign (``"wait": false`` returns the request id at once)
``POST /v1/presign``        operators   make ECDSA presignatures for the pool (waits)
``POST /v1/rotate``         operators   rotate a wallet's shares, two-phase (waits)
``POST /v1/reshare``        operators   move a wallet to new parties / threshold, same key
``POST /v1/repair``         operators   rebuild a lost party's share on another member node
``GET  /v1/lifecycle``      operators   key lifecycle events (``?wallet=ID``), epochs before/after
``GET  /v1/policy``         operators   the installed signing policy (version, signers, text)
``POST /v1/policy``         operators   install a signed policy bundle here and on every member
``POST /v1/policy/explain`` operators   which rule a signing request matches here, and why
``GET  /v1/policy/events``  operators   this node's policy decisions (refusals with their rule)
``GET  /v1/requests/{id}``  operators   a request's status and result (poll)
``GET  /v1/sessions``       operators   recent sessions with participants, status, culprits
``GET  /v1/sessions/{id}``  operators   one session; while it runs, its machine's public state
``GET  /v1/audit``          operators   audit log entries after ``?after=SEQ`` (``&limit=N``)
``POST /v1/audit/checkpoint`` operators have the other members cosign this node's audit head now
``GET  /metrics``           operators   Prometheus metrics (also on ``--metrics-listen``)
==========================  ==========  =====================================================

A client without a certificate, or with one the cluster file does not list, fails the TLS
handshake; a member calling an operator endpoint (or the reverse) gets 403.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from tmpc.errors import InputError, KeystoreError, ParameterError, TmpcError
from tmpc.node.config import (
    Cluster,
    NodeConfig,
    Unlock,
    load_cluster,
    load_config,
    open_identity,
    tls_key_password,
)
from tmpc.node.db import NodeDB
from tmpc.node.engine import Engine, EngineSettings, RequestFailedError
from tmpc.node.policy import decode_bundle_arg
from tmpc.node.wallets import WalletStore
from tmpc.state import keystore
from tmpc.transport import tls
from tmpc.transport.base import Transport
from tmpc.transport.tcp import Peer, TcpTransport

__all__ = ["NodeServer", "run_node"]

log = logging.getLogger("tmpc.node")

#: Argon2id cost of the shares a node seals (RFC 9106's second recommended set).
NODE_KDF = keystore.DEFAULT_KDF


@dataclass
class NodeServer:
    """A node's engine behind its HTTPS listener."""

    config: NodeConfig
    cluster: Cluster
    engine: Engine
    app: web.Application
    runner: web.AppRunner | None = None
    #: ``(host, port)`` of a plain-HTTP listener serving ``/metrics`` only (for Prometheus,
    #: which then needs no operator certificate); None: none.
    metrics_listen: tuple[str, int] | None = None
    metrics_runner: web.AppRunner | None = None

    async def start(self, ssl_context: Any) -> None:
        """Listen on the configured address (and the metrics address) and start the engine."""
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.config.host, self.config.port, ssl_context=ssl_context)
        await site.start()
        if self.metrics_listen is not None:
            self.metrics_runner = web.AppRunner(
                metrics_app(self.engine), access_log=None, handle_signals=False
            )
            await self.metrics_runner.setup()
            host, port = self.metrics_listen
            await web.TCPSite(self.metrics_runner, host, port).start()
        await self.engine.start()

    async def stop(self) -> None:
        """Stop the engine and the listeners."""
        await self.engine.stop()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.metrics_runner is not None:
            await self.metrics_runner.cleanup()


async def _metrics(engine: Engine, request: web.Request) -> web.Response:
    data, content_type = engine.prom.render(request.headers.get("Accept"))
    return web.Response(body=data, headers={"Content-Type": content_type})


def metrics_app(engine: Engine) -> web.Application:
    """The plain-HTTP application of ``--metrics-listen``: ``GET /metrics`` only. Metrics
    hold counts, names of nodes and rules, wallet ids and timings, never a secret; bind it to
    loopback or a monitoring network."""

    async def metrics(request: web.Request) -> web.Response:
        return await _metrics(engine, request)

    app = web.Application()
    app.add_routes([web.get("/metrics", metrics)])
    return app


def _json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def build_app(engine: Engine, transport: TcpTransport, cluster: Cluster) -> web.Application:
    """The aiohttp application of a node (routes in the module docstring)."""
    operators = {o.fingerprint for o in cluster.operators}

    @web.middleware
    async def operators_only(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/v1/peer/"):
            response: web.StreamResponse = await handler(request)  # the transport checks
            return response
        fp = tls.peer_fingerprint(request.transport.get_extra_info("ssl_object"))  # type: ignore[union-attr]
        if fp is None or fp not in operators:
            return _json_error(403, "this endpoint is for operators of the cluster")
        answer: web.StreamResponse = await handler(request)
        return answer

    async def body_of(request: web.Request) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > 1 << 20:
            raise web.HTTPRequestEntityTooLarge(
                max_size=1 << 20, actual_size=request.content_length
            )
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest(text='{"error": "the body is not JSON"}') from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text='{"error": "the body must be a JSON object"}')
        return body

    async def submit(kind: str, body: dict[str, Any]) -> web.Response:
        rid = body.pop("request_id", None)
        wait = body.pop("wait", True)
        if rid is not None and not isinstance(rid, str):
            return _json_error(400, "request_id must be a string")
        rid = rid or secrets.token_hex(16)
        try:
            if wait:
                return web.json_response(await engine.submit(kind, body, rid))
            task = engine._spawn(engine.submit(kind, body, rid))
            await asyncio.sleep(0.01)
            if task.done():
                return web.json_response(task.result())
            return web.json_response({"request_id": rid, "status": "pending"}, status=202)
        except RequestFailedError as exc:
            return _json_error(409, str(exc), culprits=list(exc.culprits))
        except (InputError, KeyError, TypeError, ValueError) as exc:
            return _json_error(400, str(exc))
        except TmpcError as exc:
            return _json_error(409, str(exc))

    async def health(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "name": engine.name,
                "status": "ok",
                "cluster": cluster.id,
                "members": list(cluster.names),
                "counters": dict(engine.metrics, **engine.opener.counters),
            }
        )

    async def wallets(request: web.Request) -> web.Response:
        out: list[dict[str, Any]] = []
        for wid in engine.wallets.ids():
            try:
                w = engine.wallets.get(wid)
            except TmpcError as exc:
                out.append({"wallet_id": wid, "error": str(exc)})
                continue
            out.append(
                {
                    "wallet_id": wid,
                    # The key's id (every signing group of one key shares it) and this
                    # sharing's group ("default": the DKG's own).
                    "key_id": w.record.key_id,
                    "group": w.record.group_name,
                    "scheme": w.record.scheme,
                    "threshold": w.record.threshold,
                    "parties": [w.names[i] for i in w.record.party_ids],
                    "public_key": w.record.public_key.hex(),
                    "party": w.share.identifier if w.share is not None else None,
                    "epoch": w.record.epoch,
                    # Unused pooled presignatures this node holds (ECDSA, unhardened path m).
                    "presignatures": engine.pool_size(w),
                    # The whole public record, so a client checks its DKG certificate itself.
                    "record": w.record.to_json(),
                }
            )
        return web.json_response({"wallets": out})

    def submitting(kind: str) -> Any:
        """The handler of a request endpoint: its JSON body submitted as a ``kind`` request."""

        async def handler(request: web.Request) -> web.Response:
            return await submit(kind, await body_of(request))

        return handler

    async def policy_status(request: web.Request) -> web.Response:
        return web.json_response(engine.policy.status())

    async def policy_install(request: web.Request) -> web.Response:
        body = await body_of(request)
        try:
            bundle = decode_bundle_arg(body.get("bundle"))
            return web.json_response(engine.install_policy(bundle))
        except TmpcError as exc:
            return _json_error(400, str(exc))

    async def policy_explain(request: web.Request) -> web.Response:
        body = await body_of(request)
        try:
            wallet = engine.wallets.get(str(body.get("wallet")))
            return web.json_response(engine.policy.explain(wallet, body))
        except TmpcError as exc:
            return _json_error(400, str(exc))

    async def policy_events(request: web.Request) -> web.Response:
        return web.json_response({"events": engine.db.policy_events()})

    async def lifecycle(request: web.Request) -> web.Response:
        wallet = request.query.get("wallet")
        return web.json_response({"events": engine.db.lifecycle(wallet)})

    async def get_request(request: web.Request) -> web.Response:
        req = engine.db.request(request.match_info["rid"])
        if req is None:
            return _json_error(404, "unknown request")
        out = {"request_id": req["id"], "status": req["status"], "attempt": req["attempt"]}
        if req["result"] is not None:
            out["result"] = req["result"]
        if req["error"]:
            out["error"] = req["error"]
        return web.json_response(out)

    async def sessions(request: web.Request) -> web.Response:
        return web.json_response({"sessions": engine.sessions()})

    async def audit(request: web.Request) -> web.Response:
        log_ = engine.observe.audit
        if log_ is None:
            return _json_error(404, "this node keeps no audit log")
        try:
            after = int(request.query.get("after", "0"))
            limit = int(request.query.get("limit", "500"))
        except ValueError:
            return _json_error(400, "after and limit are integers")
        if after < 0 or not 1 <= limit <= 5000:
            return _json_error(400, "after >= 0 and 1 <= limit <= 5000")
        entries = await asyncio.to_thread(log_.read, after, limit)
        return web.json_response({"node": engine.name, "seq": log_.seq, "entries": entries})

    async def checkpoint(request: web.Request) -> web.Response:
        try:
            return web.json_response(await engine.checkpoint())
        except RequestFailedError as exc:
            return _json_error(502, str(exc))
        except TmpcError as exc:
            return _json_error(409, str(exc))

    async def metrics(request: web.Request) -> web.Response:
        return await _metrics(engine, request)

    async def session_detail(request: web.Request) -> web.Response:
        try:
            sid = bytes.fromhex(request.match_info["sid"])
        except ValueError:
            return _json_error(400, "a session id is hex")
        detail = engine.session_detail(sid)
        if detail is None:
            return _json_error(404, "unknown session")
        return web.json_response(detail)

    app = web.Application(middlewares=[operators_only], client_max_size=17 << 20)
    app.add_routes(
        [
            *transport.routes(),  # the peer endpoints: stream and single POST
            web.get("/v1/health", health),
            web.get("/v1/wallets", wallets),
            web.post("/v1/wallets", submitting("keygen")),
            web.post("/v1/sign", submitting("sign")),
            web.post("/v1/presign", submitting("presign")),
            web.post("/v1/rotate", submitting("refresh")),
            web.post("/v1/reshare", submitting("reshare")),
            web.post("/v1/repair", submitting("repair")),
            web.get("/v1/lifecycle", lifecycle),
            web.get("/v1/policy", policy_status),
            web.post("/v1/policy", policy_install),
            web.post("/v1/policy/explain", policy_explain),
            web.get("/v1/policy/events", policy_events),
            web.get("/v1/requests/{rid}", get_request),
            web.get("/v1/sessions", sessions),
            web.get("/v1/sessions/{sid}", session_detail),
            web.get("/v1/audit", audit),
            web.post("/v1/audit/checkpoint", checkpoint),
            web.get("/metrics", metrics),
        ]
    )
    return app


def open_node(
    directory: Path,
    unlock: Unlock,
    settings: EngineSettings | None = None,
    *,
    relay: str | None = None,
    airgap: bool = False,
    airgap_peers: tuple[str, ...] = (),
) -> tuple[NodeServer, Any]:
    """Load a node directory and build its server (not started) and server TLS context.

    ``unlock`` opens the node's sealed files: its passphrase, or (a token node) the data key
    :func:`~tmpc.node.config.unlock_with_token` had its token unwrap.

    With ``relay`` (a ``redis://HOST:PORT`` URL) peer messages go through a Redis Streams
    relay (:mod:`tmpc.transport.relay`) instead of direct mutual-TLS connections; the
    operator API is served over mutual TLS either way.

    With ``airgap`` the node has no peer network: it sends through files in ``DIR/airgap``
    (:class:`~tmpc.transport.file.FileTransport`, carried by ``tmpc session export`` /
    ``import``). ``airgap_peers`` names the air-gapped members for a connected node: what it
    sends them goes to those files instead (:class:`~tmpc.transport.file.AirGapRelay`).
    Raises :class:`InputError` for both at once, or a name that is not another member."""
    config = load_config(directory)
    identity = open_identity(config, unlock)
    cluster = load_cluster(directory)
    if airgap and (airgap_peers or relay is not None):
        raise ParameterError("an air-gapped node has no relay and no air-gapped peers")
    cert = keystore.read_limited(directory / "tls" / "cert.pem", "TLS certificate", 1 << 16)
    key = keystore.read_limited(directory / "tls" / "key.pem", "TLS key", 1 << 16)
    peers = {c.name: Peer(c.url, c.tls_cert) for c in cluster.members if c.name != config.name}
    tcp = TcpTransport(config.name, cert, key, peers, password=tls_key_password(unlock))
    transport: Transport = tcp
    if relay is not None:
        from tmpc.transport.relay import RedisRelayTransport

        transport = RedisRelayTransport(config.name, relay, cluster=cluster.id)
    if airgap or airgap_peers:
        from tmpc.transport import file

        for p in airgap_peers:
            cluster.member(p)  # raises for a name that is not a member
            if p == config.name:
                raise ParameterError(f"{p!r} is this node, not an air-gapped peer")
        root = file.airgap_root(directory)
        if airgap:
            transport = file.FileTransport(config.name, root, cluster.hash)
        else:
            transport = file.AirGapRelay(transport, config.name, root, cluster.hash, airgap_peers)
    db = NodeDB(directory / "node.db", node=config.name)
    wallets = WalletStore(directory, cluster, unlock, NODE_KDF)
    engine = Engine(config, identity, cluster, db, wallets, transport, settings)
    app = build_app(engine, tcp, cluster)
    ssl_ctx = tcp.server_ssl_context(extra_trusted=[o.cert for o in cluster.operators])
    return NodeServer(config, cluster, engine, app), ssl_ctx


async def _serve(
    directory: Path,
    unlock: Unlock,
    settings: EngineSettings | None,
    relay: str | None,
    airgap: bool = False,
    airgap_peers: tuple[str, ...] = (),
    metrics_listen: tuple[str, int] | None = None,
) -> None:
    server, ssl_ctx = open_node(
        directory, unlock, settings, relay=relay, airgap=airgap, airgap_peers=airgap_peers
    )
    server.metrics_listen = metrics_listen
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start(ssl_ctx)
    ready: dict[str, Any] = {"ready": server.config.name, "url": server.config.url}
    if metrics_listen is not None:
        ready["metrics_url"] = f"http://{metrics_listen[0]}:{metrics_listen[1]}/metrics"
    print(json.dumps(ready), flush=True)
    await stop.wait()
    log.info("stopping %s", server.config.name)
    await server.stop()


def run_node(
    directory: Path,
    unlock: Unlock,
    settings: EngineSettings | None = None,
    *,
    relay: str | None = None,
    airgap: bool = False,
    airgap_peers: tuple[str, ...] = (),
    metrics_listen: tuple[str, int] | None = None,
) -> None:
    """Run a node until SIGTERM or SIGINT (then it stops its sessions and exits cleanly).

    ``relay``, ``airgap`` and ``airgap_peers`` choose the peer transport (see
    :func:`open_node`); ``metrics_listen`` a plain-HTTP ``/metrics`` listener.

    Raises :class:`KeystoreError` / :class:`~tmpc.errors.CryptoError` for a bad directory,
    passphrase or data key before anything listens."""
    if not directory.is_dir():
        raise KeystoreError(f"{directory} is not a node directory")
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    asyncio.run(_serve(directory, unlock, settings, relay, airgap, airgap_peers, metrics_listen))
