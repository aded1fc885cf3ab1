"""Party-to-party transport: HTTPS POSTs over mutual TLS 1.3, peers pinned to the cluster file.

One message is one ``POST /v1/peer/message`` whose body is the sealed envelope; the answer
``200`` is the acknowledgement, sent only after the receiving node's ``deliver`` returned.

What the channel protects:

- **confidentiality and integrity on the link**: TLS 1.3 only (no downgrade to 1.2), with
  forward secrecy; a passive or active network attacker learns message sizes and timing only;
- **who may connect**: the listener requires a client certificate trusted by the cluster
  file (the peers', plus the operators' for the node's other endpoints), and this endpoint
  answers ``403`` to any certificate that is not a peer's;
- **who we talk to**: every connection the client opens or reuses is checked, before a byte
  of the request is written, to present exactly the certificate pinned for the peer it is
  addressed to (:func:`tmpc.transport.tls.check_peer`) — host names and system CAs play no
  part, and another member's certificate at a peer's address is refused.

What it does **not** protect: end-to-end authenticity and secrecy between parties. TLS ends
at the node's listener (and at any proxy in front of it); the sealed envelope
(:mod:`tmpc.wire.envelope`) is what binds a message to its sender, its recipient, the
cluster and the session. A stolen TLS key therefore lets its holder pose as that node on
the network (receive, drop, replay what it is sent) but not read or forge a party's
messages. Nor does TLS hide which nodes talk, when, and how much. And the transport may
lose, duplicate and reorder messages (see :mod:`tmpc.transport.base`); the node re-sends
until acknowledged and drops duplicates.

Answers of the endpoint, and what :meth:`TcpTransport.send` makes of them:

=======  ==========================================  =====================================
status   meaning                                     ``send``
=======  ==========================================  =====================================
200      stored (``deliver`` returned)               returns
400      ``deliver`` rejected the message            :class:`RejectedError` (do not retry)
403      the client certificate is not a peer's      :class:`TransportError`
413      body larger than the limit (16 MiB)         :class:`RejectedError` (do not retry)
503      the transport is not started or closed      :class:`TransportError`
500      ``deliver`` failed otherwise (e.g. disk)    :class:`TransportError`
=======  ==========================================  =====================================

``deliver`` rejects a message by raising one of :data:`REJECTIONS` (a
:class:`~tmpc.errors.ProtocolError` naming the sender, a malformed envelope's
:class:`~tmpc.errors.InputError`, or an opaque :class:`~tmpc.errors.CryptoError`). Any other
exception means "not stored now": the peer answers 500 and the sender retries later.
"""

from __future__ import annotations

import asyncio
import io
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from yarl import URL

from tmpc.errors import CryptoError, InputError, ParameterError, ProtocolError
from tmpc.transport import tls
from tmpc.transport.base import Deliver, Transport, TransportError

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_BODY",
    "PEER_PATH",
    "REJECTIONS",
    "Peer",
    "RejectedError",
    "TcpTransport",
]

#: The path of the peer-message endpoint on every node's listener.
PEER_PATH = "/v1/peer/message"

#: The largest message body accepted, in bytes (16 MiB).
MAX_BODY = 16 * 1024 * 1024

#: Seconds one :meth:`TcpTransport.send` attempt may take, connection included.
DEFAULT_TIMEOUT = 5.0

# Bodies above this size are posted from a BytesIO: aiohttp warns (ResourceWarning) that large
# raw bytes are written in one piece, blocking the event loop meanwhile.
_STREAM_ABOVE = 1 << 20

#: The exceptions by which ``deliver`` rejects a message for good (answered 400).
REJECTIONS: tuple[type[Exception], ...] = (ProtocolError, InputError, CryptoError)


class RejectedError(TransportError):
    """The peer received the message and refused it for good (HTTP 400 or 413).

    Re-sending the same bytes cannot succeed, so the node **must** stop re-sending them (and
    should record the refusal); every other :class:`TransportError` is worth a retry."""


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a peer listens and the certificate pinned for it (both from the cluster file).

    Attributes:
        url: ``https://HOST:PORT`` of the peer's listener, without a path.
        cert_pem: the peer's TLS certificate (PEM); its fingerprint is the pin.
    """

    url: str
    cert_pem: bytes


def _parse_url(name: str, url: str) -> URL:
    """The peer's base URL, checked: https, a host, no path, query or credentials."""
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        raise ParameterError(f"peer {name!r}: malformed URL") from None
    if (
        parsed.scheme != "https"
        or not parsed.raw_host
        or parsed.path not in ("", "/")
        or parsed.query_string
        or parsed.fragment
        or parsed.user is not None
    ):
        raise ParameterError(f"peer {name!r}: the URL must be https://HOST:PORT")
    return parsed


class _PinnedConnector(aiohttp.TCPConnector):
    """A connection pool that checks each connection's server certificate against the pin.

    aiohttp's own :class:`aiohttp.Fingerprint` cannot be combined with a context that
    presents a client certificate (it replaces the context by an unverified one), so the
    check is done here, on every connection handed out, new or reused, before the request
    is written to it."""

    def __init__(
        self, ssl_context: ssl.SSLContext, pins: Mapping[tuple[str, int], tuple[str, str]]
    ):
        super().__init__(ssl=ssl_context)
        self._pins = dict(pins)

    async def connect(
        self, req: aiohttp.ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        """The pooled or new connection for ``req``, after checking its server's pin."""
        conn = await super().connect(req, traces, timeout)
        try:
            host, port = req.url.raw_host or "", req.url.port or 0
            name, pin = self._pins.get((host, port), (f"{host}:{port}", ""))
            transport = conn.transport
            ssl_object = None if transport is None else transport.get_extra_info("ssl_object")
            tls.check_peer(ssl_object, pin, name)
        except BaseException:
            conn.close()
            raise
        return conn


class TcpTransport(Transport):
    """Mutual-TLS HTTPS transport between the nodes of a cluster (see the module docstring).

    The transport does not own a listener: the node mounts :meth:`routes` (or
    :meth:`handler` at :data:`PEER_PATH`) on its own :class:`aiohttp.web.Application` and
    serves it with :meth:`server_ssl_context`. Sending uses one pooled
    :class:`aiohttp.ClientSession` (keep-alive connections, one per peer as needed).

    Args:
        name: this node's name (for error texts; **must not** be among ``peers``).
        cert_pem: this node's TLS certificate (PEM), presented to peers in both directions.
        key_pem: its private key (PEM; encrypted if ``password`` is given).
        peers: every other member, by name: its URL and pinned certificate.
        password: the passphrase of ``key_pem``, if encrypted.
        timeout: seconds one :meth:`send` may take, connecting included.
        max_body: the largest body accepted by :meth:`handler` or sent by :meth:`send`.

    Raises:
        ParameterError: no peers, this node among them, a bad URL, two peers at one
            address or with one certificate, or a key not matching the certificate.
        DecodeError: a certificate or key that cannot be parsed.
    """

    def __init__(
        self,
        name: str,
        cert_pem: bytes,
        key_pem: bytes,
        peers: Mapping[str, Peer],
        *,
        password: bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_body: int = MAX_BODY,
    ) -> None:
        if not peers:
            raise ParameterError("a transport needs at least one peer")
        if name in peers:
            raise ParameterError(f"{name!r} is this node; peers lists the other members only")
        if timeout <= 0 or max_body <= 0:
            raise ParameterError("timeout and max_body must be positive")
        self.name = name
        self._timeout = timeout
        self._max_body = max_body
        self._urls: dict[str, URL] = {}
        self._pins: dict[tuple[str, int], tuple[str, str]] = {}
        self._peer_by_fingerprint: dict[str, str] = {}
        for peer_name, peer in peers.items():
            base = _parse_url(peer_name, peer.url)
            address = (base.raw_host or "", base.port or 443)
            pin = tls.fingerprint(peer.cert_pem)
            if address in self._pins or pin in self._peer_by_fingerprint:
                raise ParameterError(f"peer {peer_name!r} shares its address or certificate")
            self._urls[peer_name] = base.with_path(PEER_PATH)
            self._pins[address] = (peer_name, pin)
            self._peer_by_fingerprint[pin] = peer_name
        self._peer_certs = [peers[p].cert_pem for p in peers]
        self._cert_pem = cert_pem
        self._key_pem = key_pem
        self._password = password
        # Built now so a bad key or certificate fails at construction, not at first send.
        self._client_ssl = tls.client_context(
            cert_pem, key_pem, self._peer_certs, password=password
        )
        self._deliver: Deliver | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    # -- server side ------------------------------------------------------------------------

    def server_ssl_context(self, extra_trusted: Sequence[bytes] = ()) -> ssl.SSLContext:
        """The TLS context for the node's listener.

        It presents this node's certificate and accepts clients presenting a peer's
        certificate or one of ``extra_trusted`` (the operators' client certificates, for the
        node's other endpoints; :meth:`handler` still answers 403 to those)."""
        return tls.server_context(
            self._cert_pem,
            self._key_pem,
            [*self._peer_certs, *extra_trusted],
            password=self._password,
        )

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the node's application: ``POST`` :data:`PEER_PATH`."""
        return [web.post(PEER_PATH, self.handler)]

    def peer_of(self, request: web.BaseRequest) -> str | None:
        """The name of the peer whose certificate the request's TLS client presented, if any."""
        fp = tls.peer_fingerprint(request.get_extra_info("ssl_object"))
        return None if fp is None else self._peer_by_fingerprint.get(fp)

    async def handler(self, request: web.Request) -> web.Response:
        """The aiohttp handler of ``POST`` :data:`PEER_PATH`: one received message.

        Answers 200 only after ``deliver`` returned (the acknowledgement), 400 if ``deliver``
        raised one of :data:`REJECTIONS`, 403 if the client certificate is not a peer's, 413
        for a body over ``max_body`` and 503 before :meth:`start` or after :meth:`close`.
        Any other exception of ``deliver`` propagates (aiohttp answers 500 and logs it)."""
        if self.peer_of(request) is None:
            return web.Response(status=403, text="not a peer of this node\n")
        deliver = self._deliver
        if deliver is None or self._closed:
            return web.Response(status=503, text="not accepting messages\n")
        if request.content_length is not None and request.content_length > self._max_body:
            return web.Response(status=413, text="message too large\n")
        body = bytearray()
        # Read the stream ourselves so the limit holds whatever client_max_size the node's
        # application has, and for chunked bodies too.
        while chunk := await request.content.readany():
            body += chunk
            if len(body) > self._max_body:
                return web.Response(status=413, text="message too large\n")
        try:
            await deliver(bytes(body))
        except REJECTIONS:
            return web.Response(status=400, text="message rejected\n")
        return web.Response(status=200)

    # -- Transport --------------------------------------------------------------------------

    async def start(self, deliver: Deliver) -> None:
        """Accept messages from now on (handing each to ``deliver``) and open the client pool.

        Raises :class:`TransportError` if the transport was closed or already started."""
        if self._closed:
            raise TransportError("the transport is closed")
        if self._session is not None:
            raise TransportError("the transport is already started")
        self._deliver = deliver
        self._session = aiohttp.ClientSession(
            connector=_PinnedConnector(self._client_ssl, self._pins),
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            headers={"Content-Type": "application/octet-stream"},
        )

    async def send(self, peer: str, data: bytes, *, session: bytes) -> None:
        """POST ``data`` to ``peer``; returns once it answered 200 (it stored the message).

        One attempt, at most ``timeout`` seconds; the node retries. ``session`` is unused.

        Raises:
            ParameterError: ``peer`` is not a member.
            RejectedError: the peer refused the message for good (400, 413), or ``data`` is
                over ``max_body``; **must not** be re-sent.
            PinningError: the server at the peer's address is not the pinned peer (a
                :class:`TransportError`: the address may be taken over only for a while).
            TransportError: anything else (refused, timed out, TLS failure, other status).
        """
        url = self._urls.get(peer)
        if url is None:
            raise ParameterError(f"{peer!r} is not a peer of {self.name!r}")
        client = self._session
        if client is None or self._closed:
            raise TransportError("the transport is not started or is closed")
        if len(data) > self._max_body:
            raise RejectedError(f"message of {len(data)} bytes is over the limit for {peer!r}")
        body = io.BytesIO(data) if len(data) > _STREAM_ABOVE else data
        try:
            async with client.post(url, data=body, allow_redirects=False) as response:
                status = response.status
        except TransportError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransportError(f"sending to {peer!r} failed: {type(exc).__name__}") from exc
        if status == 200:
            return
        if status in (400, 413):
            raise RejectedError(f"{peer!r} refused the message (HTTP {status})")
        raise TransportError(f"{peer!r} answered HTTP {status}")

    async def close(self) -> None:
        """Stop accepting messages (503 from now on) and close the client pool; idempotent."""
        self._closed = True
        self._deliver = None
        client, self._session = self._session, None
        if client is not None:
            await client.close()
            # Let the TLS transports of the closed connections finish closing, so none is
            # garbage-collected open (a ResourceWarning).
            await asyncio.sleep(0)
