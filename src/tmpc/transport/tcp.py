"""Party-to-party transport: one WebSocket stream per peer over mutual TLS 1.3, peers pinned.

Each node keeps one persistent stream to each peer it sends to: a WebSocket
(``GET`` :data:`STREAM_PATH`, upgraded) on the peer's HTTPS listener, carrying binary frames
(:class:`DataFrame`, :class:`Ack`)::

    data frame   0x01 || msg_id (u64, big-endian) || envelope
    ack          0x02 || msg_id (u64, big-endian) || status (u8: 0 ok, 1 rejected, 2 retry)

The receiver hands each data frame's envelope to the node's ``deliver`` and sends the ack
only after ``deliver`` returned; it processes one stream's frames in order, one at a time,
so a stream keeps the order of its messages (which nothing relies on). The sender keeps many
messages in flight on one stream, matched to their acks by ``msg_id``. Replacing one HTTPS
request per message by a frame on an open stream is what keeps a node's CPU for the
signing protocols, not for HTTP.

The older endpoint, one message per ``POST`` :data:`PEER_PATH`, is still served (answered
``200`` once ``deliver`` returned), for senders that do not speak the stream;
:meth:`TcpTransport.send` uses the stream only.

What the channel protects:

- **confidentiality and integrity on the link**: TLS 1.3 only (no downgrade to 1.2), with
  forward secrecy; a passive or active network attacker learns message sizes and timing only;
- **who may connect**: the listener requires a client certificate trusted by the cluster
  file (the peers', plus the operators' for the node's other endpoints), and both peer
  endpoints answer ``403`` to any certificate that is not a peer's, before the upgrade;
- **who we talk to**: every connection the client opens is checked, before a byte of the
  upgrade request is written, to present exactly the certificate pinned for the peer it is
  addressed to (:func:`tmpc.transport.tls.check_peer`) — host names and system CAs play no
  part, and another member's certificate at a peer's address is refused;
- **what a connected peer can make the receiver hold**: a frame over ``max_body`` (plus
  its 9-byte header) closes the stream before its payload is buffered, a malformed frame
  closes the stream, and each stream is read by its own task, so a slow or stuck stream
  delays no other.

What it does **not** protect: end-to-end authenticity and secrecy between parties. TLS ends
at the node's listener (and at any proxy in front of it); the sealed envelope
(:mod:`tmpc.wire.envelope`) is what binds a message to its sender, its recipient, the
cluster and the session. A stolen TLS key therefore lets its holder pose as that node on
the network (receive, drop, replay what it is sent) but not read or forge a party's
messages. Nor does TLS hide which nodes talk, when, and how much. And the transport may
lose, duplicate and reorder messages (see :mod:`tmpc.transport.base`); the node re-sends
until acknowledged and drops duplicates.

What :meth:`TcpTransport.send` makes of the answers:

==============================================  ==========  ==================  ===========
the peer                                        stream      POST (compat.)      ``send``
==============================================  ==========  ==================  ===========
stored the message (``deliver`` returned)       ack 0       200                 returns
rejected it (``deliver`` raised a rejection)    ack 1       400                 Rejected
failed otherwise (e.g. disk; logged)            ack 2       500                 Transport
got a message over ``max_body``                 closes      413                 see below
got a malformed frame                           closes      —                   Transport
refused the certificate (not a peer's)          403         403                 Transport
is not started, or closed                       503/closes  503                 Transport
did not answer within ``timeout``               —           —                   Transport
==============================================  ==========  ==================  ===========

(Rejected: :class:`RejectedError`, **must not** be re-sent; Transport:
:class:`TransportError`, retry later.) ``send`` refuses a message over ``max_body`` itself,
with :class:`RejectedError`, before it is written; every member uses :data:`MAX_BODY`. A
timeout or a lost connection fails every send awaiting an ack on that stream and drops it,
so the next send opens a new one.

``deliver`` rejects a message by raising one of :data:`REJECTIONS` (a
:class:`~tmpc.errors.ProtocolError` naming the sender, a malformed envelope's
:class:`~tmpc.errors.InputError`, or an opaque :class:`~tmpc.errors.CryptoError`). Any other
exception means "not stored now": the receiver logs it, answers "retry", and the sender
retries later.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import ssl
import struct
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from yarl import URL

from tmpc.errors import CryptoError, DecodeError, InputError, ParameterError, ProtocolError
from tmpc.transport import tls
from tmpc.transport.base import Deliver, Transport, TransportError

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_BODY",
    "PEER_PATH",
    "REJECTIONS",
    "STREAM_PATH",
    "Ack",
    "AckStatus",
    "DataFrame",
    "Peer",
    "RejectedError",
    "TcpTransport",
]

log = logging.getLogger("tmpc.transport.tcp")

#: The path of the one-message-per-request endpoint (``POST``) on every node's listener.
PEER_PATH = "/v1/peer/message"

#: The path of the stream endpoint (``GET``, upgraded to a WebSocket).
STREAM_PATH = "/v1/peer/ws"

#: The largest message (envelope) accepted, in bytes (16 MiB).
MAX_BODY = 16 * 1024 * 1024

#: Seconds one :meth:`TcpTransport.send` attempt may take, connection included.
DEFAULT_TIMEOUT = 5.0

#: The exceptions by which ``deliver`` rejects a message for good (answered 400 / ack 1).
REJECTIONS: tuple[type[Exception], ...] = (ProtocolError, InputError, CryptoError)

# Frame types (the first byte of a frame) and the fixed header: type (u8) || msg_id (u64).
_DATA = 0x01
_ACK = 0x02
_HEAD = struct.Struct(">BQ")
_ACK_LEN = _HEAD.size + 1

# Seconds a closing handshake may take (either side) before the connection is just dropped.
_CLOSE_TIMEOUT = 1.0

# The receiver pings an idle stream this often (seconds) and drops it when no pong comes
# within half of it, so streams of crashed or cut-off senders do not pile up.
_HEARTBEAT = 30.0

# What a send's waiter is resolved with when its stream is lost before the ack came.
_LOST = -1


class RejectedError(TransportError):
    """The peer received the message and refused it for good (ack 1, HTTP 400 or 413).

    Re-sending the same bytes cannot succeed, so the node **must** stop re-sending them (and
    should record the refusal); every other :class:`TransportError` is worth a retry."""


class AckStatus(enum.IntEnum):
    """What the receiver made of a data frame (the last byte of an :class:`Ack`)."""

    OK = 0  #: stored: ``deliver`` returned
    REJECTED = 1  #: ``deliver`` raised one of :data:`REJECTIONS`; do not re-send
    RETRY = 2  #: not stored now (``deliver`` failed otherwise); re-send later


@dataclass(frozen=True, slots=True)
class DataFrame:
    """One message on a stream: ``0x01 || msg_id (u64, big-endian) || envelope``.

    Attributes:
        msg_id: the sender's number for the message on this stream, echoed by its ack.
        envelope: the sealed envelope (opaque here), at most ``max_body`` bytes.
    """

    msg_id: int
    envelope: bytes

    def to_bytes(self) -> bytes:
        """The frame's 9 + ``len(envelope)`` bytes."""
        return _HEAD.pack(_DATA, self.msg_id) + self.envelope

    @classmethod
    def from_bytes(cls, data: bytes) -> DataFrame:
        """Parse a frame; raises :class:`DecodeError` if shorter than 9 bytes or not type 1."""
        if len(data) < _HEAD.size or data[0] != _DATA:
            raise DecodeError("not a data frame")
        return cls(_HEAD.unpack_from(data)[1], data[_HEAD.size :])


@dataclass(frozen=True, slots=True)
class Ack:
    """The receiver's answer to one data frame: ``0x02 || msg_id (u64) || status (u8)``.

    Attributes:
        msg_id: the ``msg_id`` of the data frame answered.
        status: what became of it.
    """

    msg_id: int
    status: AckStatus

    def to_bytes(self) -> bytes:
        """The frame's 10 bytes."""
        return _HEAD.pack(_ACK, self.msg_id) + bytes((self.status,))

    @classmethod
    def from_bytes(cls, data: bytes) -> Ack:
        """Parse a frame; raises :class:`DecodeError` unless it is 10 bytes, type 2, with a
        known status."""
        if len(data) != _ACK_LEN or data[0] != _ACK or data[-1] > AckStatus.RETRY:
            raise DecodeError("not an acknowledgement")
        return cls(_HEAD.unpack_from(data)[1], AckStatus(data[-1]))


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
    (for a stream: the upgrade request) is written to it."""

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


async def _close_ws(ws: aiohttp.ClientWebSocketResponse | web.WebSocketResponse, code: int) -> None:
    """Close a WebSocket within :data:`_CLOSE_TIMEOUT`, else drop its connection.

    The bound matters: a peer that stopped reading leaves the closing frame unwritten."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_CLOSE_TIMEOUT):
            await ws.close(code=code)


# Starts a background task that TcpTransport.close() awaits.
_Spawn = Callable[[Coroutine[Any, Any, None]], None]


class _Stream:
    """The sending end of one stream: the WebSocket, its ack reader, the sends awaiting acks.

    Once failed (connection lost, malformed ack, dropped by a send that timed out) it stays
    failed; every send still awaiting an ack gets :class:`TransportError` and the transport
    opens a new stream for the next one."""

    def __init__(self, peer: str, ws: aiohttp.ClientWebSocketResponse, spawn: _Spawn) -> None:
        self.peer = peer
        self.failure: str | None = None
        self._ws = ws
        self._spawn = spawn
        self._next_id = 0
        self._waiting: dict[int, asyncio.Future[int]] = {}
        self._closing = False
        spawn(self._read())

    async def send(self, envelope: bytes) -> AckStatus:
        """Write ``envelope`` as a data frame and wait for its ack (no time limit here).

        Raises :class:`TransportError` if the stream has failed or fails meanwhile, and what
        writing raises (a :class:`ConnectionError` on a closing connection)."""
        if self.failure is not None:
            raise TransportError(self.failure)
        msg_id = self._next_id
        self._next_id += 1
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[msg_id] = waiter
        try:
            await self._ws.send_bytes(DataFrame(msg_id, envelope).to_bytes())
            status = await waiter
        finally:
            del self._waiting[msg_id]
        if status == _LOST:
            raise TransportError(self.failure or f"the stream to {self.peer!r} was lost")
        return AckStatus(status)

    def fail(self, reason: str, code: int = WSCloseCode.GOING_AWAY) -> None:
        """Mark the stream failed (the first reason stays), fail its waiting sends, close it."""
        if self.failure is None:
            self.failure = reason
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_result(_LOST)
        if not self._closing:
            # Closing ends the reader's receive() too (aiohttp feeds it a CLOSING message).
            self._closing = True
            self._spawn(_close_ws(self._ws, code))

    async def _read(self) -> None:
        """Match acks to waiting sends until the stream closes or breaks the protocol."""
        code: int = WSCloseCode.OK
        reason = f"the stream to {self.peer!r} closed"
        try:
            while True:
                msg = await self._ws.receive()
                if msg.type is not WSMsgType.BINARY:
                    if msg.type is WSMsgType.TEXT:
                        code, reason = WSCloseCode.UNSUPPORTED_DATA, f"{self.peer!r} sent text"
                    else:  # closed by the peer, or by aiohttp on an error (e.g. 1009)
                        reason += f" (code {self._ws.close_code})"
                    break
                try:
                    ack = Ack.from_bytes(msg.data)
                except DecodeError:
                    code = WSCloseCode.PROTOCOL_ERROR
                    reason = f"{self.peer!r} sent a malformed acknowledgement"
                    break
                waiter = self._waiting.get(ack.msg_id)
                # No waiter: its send was cancelled; a duplicate or unknown id is harmless.
                if waiter is not None and not waiter.done():
                    waiter.set_result(ack.status)
        finally:
            self.fail(reason, code)


class TcpTransport(Transport):
    """Mutual-TLS transport between the nodes of a cluster (see the module docstring).

    The transport does not own a listener: the node mounts :meth:`routes` on its own
    :class:`aiohttp.web.Application` and serves it with :meth:`server_ssl_context`. Sending
    uses one :class:`aiohttp.ClientSession` holding one stream per peer, opened on first use
    and re-opened after a failure.

    Args:
        name: this node's name (for error texts; **must not** be among ``peers``).
        cert_pem: this node's TLS certificate (PEM), presented to peers in both directions.
        key_pem: its private key (PEM; encrypted if ``password`` is given).
        peers: every other member, by name: its URL and pinned certificate.
        password: the passphrase of ``key_pem``, if encrypted.
        timeout: seconds one :meth:`send` may take, connecting included.
        max_body: the largest message received (stream or POST) or sent, in bytes.

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
            self._urls[peer_name] = base.with_path(STREAM_PATH)
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
        self._streams: dict[str, _Stream] = {}
        self._connecting = {p: asyncio.Lock() for p in self._urls}
        self._inbound: set[web.WebSocketResponse] = set()
        # Ack readers and closing handshakes of outgoing streams, awaited by close().
        self._tasks: set[asyncio.Task[None]] = set()

    # -- server side ------------------------------------------------------------------------

    def server_ssl_context(self, extra_trusted: Sequence[bytes] = ()) -> ssl.SSLContext:
        """The TLS context for the node's listener.

        It presents this node's certificate and accepts clients presenting a peer's
        certificate or one of ``extra_trusted`` (the operators' client certificates, for the
        node's other endpoints; the peer endpoints still answer 403 to those)."""
        return tls.server_context(
            self._cert_pem,
            self._key_pem,
            [*self._peer_certs, *extra_trusted],
            password=self._password,
        )

    def routes(self) -> list[web.RouteDef]:
        """The routes to add to the node's application: ``GET`` :data:`STREAM_PATH` (the
        stream) and ``POST`` :data:`PEER_PATH` (one message per request)."""
        return [web.get(STREAM_PATH, self.stream_handler), web.post(PEER_PATH, self.handler)]

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

    async def stream_handler(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp handler of ``GET`` :data:`STREAM_PATH`: one peer's incoming stream.

        Before the upgrade: 403 if the client certificate is not a peer's, 503 before
        :meth:`start` or after :meth:`close`. Then, frame by frame in order: ``deliver`` the
        envelope, and only once it returned send the :class:`Ack` (``REJECTED`` if it raised
        one of :data:`REJECTIONS`, ``RETRY`` if it raised anything else, which is logged).
        A frame over ``max_body`` + 9 bytes, a malformed or a text frame closes the stream
        (codes 1009, 1002, 1003), as does :meth:`close` (1001)."""
        peer = self.peer_of(request)
        if peer is None:
            return web.Response(status=403, text="not a peer of this node\n")
        if self._deliver is None or self._closed:
            return web.Response(status=503, text="not accepting messages\n")
        ws = web.WebSocketResponse(
            timeout=_CLOSE_TIMEOUT,
            heartbeat=_HEARTBEAT,
            compress=False,
            # aiohttp refuses a message of max_msg_size bytes or more.
            max_msg_size=_HEAD.size + self._max_body + 1,
        )
        await ws.prepare(request)
        if self._closed:  # closed while upgrading
            await _close_ws(ws, WSCloseCode.GOING_AWAY)
            return ws
        self._inbound.add(ws)
        try:
            await self._serve_stream(ws, peer)
        finally:
            self._inbound.discard(ws)
        return ws

    async def _serve_stream(self, ws: web.WebSocketResponse, peer: str) -> None:
        while True:
            msg = await ws.receive()  # answers pings and the closing handshake itself
            if msg.type is not WSMsgType.BINARY:
                # CLOSE, CLOSING, CLOSED: over; ERROR: aiohttp closed it (e.g. 1009).
                if msg.type is WSMsgType.TEXT:
                    await _close_ws(ws, WSCloseCode.UNSUPPORTED_DATA)
                return
            try:
                frame = DataFrame.from_bytes(msg.data)
            except DecodeError:
                await _close_ws(ws, WSCloseCode.PROTOCOL_ERROR)
                return
            deliver = self._deliver
            if deliver is None:  # closed meanwhile; close() closes the stream
                return
            try:
                await deliver(frame.envelope)
                status = AckStatus.OK
            except REJECTIONS:
                status = AckStatus.REJECTED
            except Exception:
                log.exception("storing a message from %r failed; it will be re-sent", peer)
                status = AckStatus.RETRY
            if ws.closed:
                return
            try:
                await ws.send_bytes(Ack(frame.msg_id, status).to_bytes())
            except ConnectionError:  # the sender went away: it re-sends what was not acked
                return

    # -- Transport --------------------------------------------------------------------------

    async def start(self, deliver: Deliver) -> None:
        """Accept messages from now on (handing each to ``deliver``) and open the client.

        Raises :class:`TransportError` if the transport was closed or already started."""
        if self._closed:
            raise TransportError("the transport is closed")
        if self._session is not None:
            raise TransportError("the transport is already started")
        self._deliver = deliver
        # No session-wide timeout: it would also run over the streams' lifetime; send()
        # bounds each attempt, connecting included.
        self._session = aiohttp.ClientSession(
            connector=_PinnedConnector(self._client_ssl, self._pins),
            timeout=aiohttp.ClientTimeout(),
        )

    async def send(self, peer: str, data: bytes, *, session: bytes) -> None:
        """Send ``data`` to ``peer`` on its stream; returns once acked (the peer stored it).

        One attempt, at most ``timeout`` seconds, opening the stream if needed; the node
        retries. Many sends may wait on one stream at once. ``session`` is unused.

        Raises:
            ParameterError: ``peer`` is not a member.
            RejectedError: the peer refused the message for good, or ``data`` is over
                ``max_body``; **must not** be re-sent.
            PinningError: the server at the peer's address is not the pinned peer (a
                :class:`TransportError`: the address may be taken over only for a while).
            TransportError: anything else (refused, timed out, TLS failure, upgrade refused,
                stream lost, the peer could not store it now). After a timeout or a lost
                connection the stream is dropped and the next send opens a new one.
        """
        if peer not in self._urls:
            raise ParameterError(f"{peer!r} is not a peer of {self.name!r}")
        client = self._session
        if client is None or self._closed:
            raise TransportError("the transport is not started or is closed")
        if len(data) > self._max_body:
            raise RejectedError(f"message of {len(data)} bytes is over the limit for {peer!r}")
        stream: _Stream | None = None
        try:
            async with asyncio.timeout(self._timeout):
                stream = await self._stream(peer, client)
                status = await stream.send(data)
        except TransportError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            if stream is not None:
                stream.fail(f"sending to {peer!r} failed: {type(exc).__name__}")
            raise TransportError(f"sending to {peer!r} failed: {type(exc).__name__}") from exc
        if status is AckStatus.OK:
            return
        if status is AckStatus.REJECTED:
            raise RejectedError(f"{peer!r} refused the message")
        raise TransportError(f"{peer!r} could not store the message now")

    async def _stream(self, peer: str, client: aiohttp.ClientSession) -> _Stream:
        """The open stream to ``peer``, opened first if there is none (one opener at a time)."""
        stream = self._streams.get(peer)
        if stream is not None and stream.failure is None:
            return stream
        async with self._connecting[peer]:
            stream = self._streams.get(peer)
            if stream is not None and stream.failure is None:
                return stream
            if self._closed:  # closed while this send waited for the lock
                raise TransportError("the transport is closed")
            try:
                ws = await client.ws_connect(
                    self._urls[peer],
                    autoping=True,
                    compress=0,
                    max_msg_size=_ACK_LEN + 1,
                    timeout=aiohttp.ClientWSTimeout(ws_close=_CLOSE_TIMEOUT),
                )
            except aiohttp.WSServerHandshakeError as exc:
                raise TransportError(f"{peer!r} refused the stream (HTTP {exc.status})") from exc
            if self._closed:  # closed while connecting: close() did not see this one
                await _close_ws(ws, WSCloseCode.GOING_AWAY)
                raise TransportError("the transport is closed")
            stream = self._streams[peer] = _Stream(peer, ws, self._spawn)
            return stream

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop accepting messages, close every stream (both ways) and the client; idempotent.

        Sends awaiting an ack fail with :class:`TransportError`; a peer's stream opened from
        now on is answered 503."""
        self._closed = True
        self._deliver = None
        for stream in self._streams.values():
            stream.fail("the transport is closed")
        self._streams.clear()
        inbound, self._inbound = list(self._inbound), set()
        await asyncio.gather(*(_close_ws(ws, WSCloseCode.GOING_AWAY) for ws in inbound))
        while self._tasks:
            for result in await asyncio.gather(*self._tasks, return_exceptions=True):
                if isinstance(result, BaseException):
                    log.warning("closing a stream failed: %r", result)
        client, self._session = self._session, None
        if client is not None:
            await client.close()
            # Let the TLS transports of the closed connections finish closing, so none is
            # garbage-collected open (a ResourceWarning).
            await asyncio.sleep(0)
