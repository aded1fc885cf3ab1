"""A relay transport over Redis Streams, for members that can only dial out.

Every member connects to one Redis server (the *relay*) and nobody listens: a sender appends
the envelope to the recipient's stream for that session, and the recipient reads its streams
through a consumer group.

Key layout (``cluster`` is a short hex id, names are ``[A-Za-z0-9._-]``, ``session_hex`` is
the 32-byte session id in lowercase hex)::

    tmpc:{cluster}:{recipient}:{session_hex}   entries {"data": <envelope bytes>}
    tmpc:{cluster}:{recipient}:sessions        entries {"stream": <session stream key>}

A recipient cannot know new session ids in advance, so the first time a transport sends into
a session stream it also appends that stream's key to the recipient's *index* stream
(duplicates there are harmless). The recipient reads the index and every session stream it
learned with ``XREADGROUP`` (group and consumer = its own name):

- a message entry is ``XACK``-ed only after ``deliver`` returned, so an entry delivered but not
  acknowledged before a crash stays in the group's pending list and is delivered again when the
  transport starts (or reconnects): at least once, possibly twice across a restart;
- an index entry stays pending until the session is :meth:`RedisRelayTransport.forget`-ten, so
  the pending list of the index *is* the set of open sessions, and a new instance learns them
  again from it;
- nothing is deleted on read (no ``XDEL`` or ``XTRIM``); a forgotten session's stream is given
  a retention period (``EXPIRE``, one day) and then disappears.

What the relay sees and can do: it sees envelope *metadata*, i.e. who talks to whom in which
session, message sizes and timing. It cannot read or forge a message: envelopes are signed and
encrypted end to end (:mod:`tmpc.wire.envelope`), so whatever it injects is rejected by the
node (and then acknowledged here, see :meth:`RedisRelayTransport.start`). It can drop, delay,
reorder or replay messages, like any transport; the node copes by re-sending until
acknowledged and dropping duplicates.

"Acknowledged" for a relay: :meth:`RedisRelayTransport.send` returns once the relay *stored*
the message (``XADD`` returned an entry id), not once the peer stored it. End-to-end
acknowledgement is the node's job (its protocol acknowledgements over this transport).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Final

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError, ResponseError
from redis.typing import KeyT, StreamIdT

from tmpc.errors import InputError, ParameterError, ProtocolError
from tmpc.transport.base import Deliver, Transport, TransportError

__all__ = ["RETENTION_SECONDS", "RedisRelayTransport"]

#: How long a forgotten session's stream is kept on the relay (``EXPIRE``), in seconds.
RETENTION_SECONDS: Final = 24 * 60 * 60

_log = logging.getLogger(__name__)

_NAME_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CLUSTER_RE: Final = re.compile(r"[0-9a-f]{1,32}")
_SESSION_LEN: Final = 32
_SESSION_HEX_RE: Final = re.compile(rb"[0-9a-f]{64}")

_DATA: Final = b"data"
_STREAM: Final = b"stream"

_BACKOFF_MIN_S: Final = 0.1
_BACKOFF_MAX_S: Final = 2.0
#: Delay before a message whose ``deliver`` failed (not with a ProtocolError) is retried.
_RETRY_DELIVER_S: Final = 1.0
#: Entries per stream per ``XREADGROUP``.
_BATCH: Final = 64
_CONNECT_TIMEOUT_S: Final = 5.0
#: Added to ``block_ms`` for the socket timeout, so a blocking read never times out by itself.
_TIMEOUT_MARGIN_S: Final = 5.0

# A parsed XREADGROUP reply: (stream key, [(entry id, fields or None if the entry is gone)]).
_Entry = tuple[bytes, dict[bytes, bytes] | None]
_Reply = list[tuple[bytes, list[_Entry]]]


def _check_name(what: str, name: str) -> None:
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        raise ParameterError(f"{what} must be 1-64 characters of [A-Za-z0-9._-]")


def _describe(exc: BaseException) -> str:
    """The error's type and text; redis-py texts name host and port, never the password."""
    return f"{type(exc).__name__}: {exc}"


def _parse_reply(reply: object) -> _Reply:
    """Parse an ``XREADGROUP`` reply (RESP2 shape), skipping anything malformed.

    The relay is untrusted, so every element's type is checked rather than assumed."""
    out: _Reply = []
    if not isinstance(reply, list):
        return out
    for item in reply:
        if not (isinstance(item, list | tuple) and len(item) == 2):
            continue
        key, raw_entries = item
        if not isinstance(key, bytes) or not isinstance(raw_entries, list):
            continue
        entries: list[_Entry] = []
        for raw in raw_entries:
            if not (isinstance(raw, list | tuple) and len(raw) == 2):
                continue
            entry_id, fields = raw
            if not isinstance(entry_id, bytes):
                continue
            if fields is None:
                entries.append((entry_id, None))
            elif isinstance(fields, dict) and all(
                isinstance(k, bytes) and isinstance(v, bytes) for k, v in fields.items()
            ):
                entries.append((entry_id, fields))
        out.append((key, entries))
    return out


class RedisRelayTransport(Transport):
    """A :class:`~tmpc.transport.base.Transport` through a Redis relay (see the module docs).

    Args:
        name: this member's name, ``[A-Za-z0-9._-]``, 1-64 characters; it is also the consumer
            group and consumer name on this member's streams, so two live instances **must
            not** share a name (a restarted instance with the same name resumes the first's
            pending messages, which is the point).
        url: the relay, e.g. ``redis://user:pass@relay:6379/0`` or ``rediss://...``.
        cluster: a short lowercase hex id (1-32 digits) namespacing the keys.
        block_ms: how long one blocking read waits for new entries, in milliseconds (> 0).

    Raises:
        ParameterError: a malformed name, cluster, url or ``block_ms``.
    """

    def __init__(self, name: str, url: str, *, cluster: str, block_ms: int = 1000) -> None:
        _check_name("name", name)
        if not isinstance(cluster, str) or _CLUSTER_RE.fullmatch(cluster) is None:
            raise ParameterError("cluster must be 1-32 lowercase hex digits")
        if not isinstance(block_ms, int) or isinstance(block_ms, bool) or block_ms <= 0:
            raise ParameterError("block_ms must be a positive integer")
        self.name: Final = name
        self.cluster: Final = cluster
        self._block_ms = block_ms
        self._prefix = f"tmpc:{cluster}:"
        self._index = self._index_key(name)
        self._inbox_prefix = f"{self._prefix}{name}:".encode()
        # protocol=2 pins the reply shape _parse_reply expects. One retry with a short backoff
        # lets a pooled connection that died with a relay restart reconnect once; anything
        # more is the caller's retry (send) or the loop's backoff (receive).
        try:
            self._redis: Redis = Redis.from_url(
                url,
                protocol=2,
                socket_timeout=block_ms / 1000 + _TIMEOUT_MARGIN_S,
                socket_connect_timeout=_CONNECT_TIMEOUT_S,
                retry=Retry(ExponentialBackoff(cap=0.05, base=0.02), 1),
            )
        except ValueError:
            # Not chained: the URL may hold a password.
            raise ParameterError("url must be a redis://, rediss:// or unix:// URL") from None
        # Sending side: session streams this instance already announced in their index.
        self._announced: set[bytes] = set()
        self._announce_locks: dict[bytes, asyncio.Lock] = {}
        # Receiving side: learned session streams -> ids of the index entries announcing them
        # (kept pending in the index group until forget()).
        self._streams: dict[bytes, set[bytes]] = {}
        self._forgotten: set[bytes] = set()
        # Streams holding an entry whose deliver failed, and when to retry them.
        self._failed: set[bytes] = set()
        self._retry_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def _index_key(self, recipient: str) -> bytes:
        return f"{self._prefix}{recipient}:sessions".encode()

    def _stream_key(self, recipient: str, session: bytes) -> bytes:
        return f"{self._prefix}{recipient}:{session.hex()}".encode()

    # -- sending -------------------------------------------------------------------------

    async def send(self, peer: str, data: bytes, *, session: bytes) -> None:
        """Append ``data`` to ``peer``'s stream for ``session``; returns once the relay stored it.

        The first send of this instance into a (peer, session) stream also appends the stream
        key to the peer's index stream. Returning means the relay acknowledged storage (it
        returned an entry id), **not** that the peer received it: end-to-end acknowledgement
        is the node's job.

        Args:
            peer: the recipient's name (``[A-Za-z0-9._-]``).
            data: the envelope bytes, opaque here.
            session: the 32-byte session id.

        Raises:
            ParameterError: a malformed peer name or a session id that is not 32 bytes.
            TransportError: the relay is unreachable, timed out or refused the command, or the
                transport is closed; the caller retries later (a retry may duplicate).
        """
        _check_name("peer", peer)
        if not isinstance(session, bytes) or len(session) != _SESSION_LEN:
            raise ParameterError(f"session must be {_SESSION_LEN} bytes")
        if self._closed:
            raise TransportError(f"relay transport {self.name} is closed")
        key = self._stream_key(peer, session)
        try:
            if key not in self._announced:
                await self._announce(peer, key)
            await self._redis.xadd(key, {_DATA: bytes(data)})
        except (RedisError, OSError) as exc:
            raise TransportError(f"relay: send to {peer} failed: {_describe(exc)}") from exc

    async def _announce(self, peer: str, key: bytes) -> None:
        """Append ``key`` to ``peer``'s index once, however many sends race for it."""
        lock = self._announce_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self._announced:
                return
            await self._redis.xadd(self._index_key(peer), {_STREAM: key})
            self._announced.add(key)
            self._announce_locks.pop(key, None)

    # -- receiving -----------------------------------------------------------------------

    async def start(self, deliver: Deliver) -> None:
        """Start the receiving loop in the background; returns at once.

        The loop first re-delivers this member's pending entries (delivered before a crash
        but never acknowledged), then reads new ones. For each message it awaits
        ``deliver(data)`` and acknowledges (``XACK``) only after that returned:

        - if ``deliver`` raises :class:`~tmpc.errors.ProtocolError` (a rejected envelope), the
          entry is acknowledged anyway: it will never become valid;
        - any other exception leaves it pending; it is retried about a second later (and again
          on every restart) until ``deliver`` returns.

        Relay failures (connection refused or lost, timeouts, a restarted relay) are logged
        at warning level and retried with backoff (0.1 s doubling to 2 s); they never end the
        loop.

        Raises:
            InputError: the transport was already started, or is closed.
        """
        if self._closed or self._task is not None:
            raise InputError("a relay transport is started once, before close()")
        self._task = asyncio.create_task(self._run(deliver), name=f"relay-{self.name}")
        self._task.add_done_callback(self._loop_ended)

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        # Only a bug ends the loop (relay failures are retried); say so rather than go quiet.
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            _log.error("relay %s: receive loop stopped: %s", self.name, type(exc).__name__)

    async def _run(self, deliver: Deliver) -> None:
        loop = asyncio.get_running_loop()
        backoff = _BACKOFF_MIN_S
        recover = True  # (re)create the groups and re-deliver pending entries first
        # The _closed checks back up task.cancel(): Python 3.11's asyncio.wait_for (which
        # redis-py uses to send each command) drops a cancellation that arrives just as the
        # wrapped write completes, and the loop would then run on.
        while not self._closed:
            try:
                if recover:
                    await self._recover(deliver)
                    recover = False
                    if backoff > _BACKOFF_MIN_S:
                        _log.info("relay %s: relay reachable again", self.name)
                    backoff = _BACKOFF_MIN_S
                block = self._block_ms
                if self._retry_at is not None:
                    left = self._retry_at - loop.time()
                    if left <= 0:
                        self._retry_at = None
                        failed, self._failed = self._failed, set()
                        await self._sweep_pending(
                            deliver, [k for k in failed if k in self._streams]
                        )
                        continue
                    # BLOCK 0 would mean "forever", hence at least 1 ms.
                    block = max(1, min(block, int(left * 1000) + 1))
                await self._read_new(deliver, block)
            except (RedisError, OSError) as exc:
                # Also a ResponseError such as NOGROUP (the relay lost its data): recover()
                # recreates the groups.
                _log.warning("relay %s: %s; retrying in %.1f s", self.name, _describe(exc), backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
                recover = True

    async def _ensure_group(self, key: bytes) -> None:
        """``XGROUP CREATE key name 0 MKSTREAM``; an existing group is fine.

        From id 0, so entries appended before the group existed are read too."""
        try:
            await self._redis.xgroup_create(key, self.name, id="0", mkstream=True)
        except ResponseError as exc:
            # redis-py has no exception class for it; BUSYGROUP is the server's error code.
            if not str(exc).startswith("BUSYGROUP"):
                raise

    async def _recover(self, deliver: Deliver) -> None:
        """On start and after a relay failure: groups exist, pending entries re-delivered."""
        await self._ensure_group(self._index)
        for key in list(self._streams):
            await self._ensure_group(key)
        await self._sweep_pending(deliver, [self._index])
        self._failed.clear()
        self._retry_at = None
        await self._sweep_pending(deliver, list(self._streams))

    async def _sweep_pending(self, deliver: Deliver, keys: list[bytes]) -> None:
        """Handle every pending entry of this consumer on ``keys`` (``XREADGROUP`` from 0)."""
        cursors: dict[bytes, bytes] = dict.fromkeys(keys, b"0")
        while cursors and not self._closed:
            streams: dict[KeyT, StreamIdT] = dict(cursors.items())
            reply = _parse_reply(
                await self._redis.xreadgroup(self.name, self.name, streams, count=_BATCH)
            )
            got = {key: entries for key, entries in reply if key in cursors and entries}
            for key in list(cursors):
                if key not in got:
                    del cursors[key]
            for key, entries in got.items():
                await self._handle(deliver, key, entries)
                cursors[key] = entries[-1][0]

    async def _read_new(self, deliver: Deliver, block: int) -> None:
        """One blocking ``XREADGROUP >`` over the index and every learned session stream."""
        streams: dict[KeyT, StreamIdT] = {self._index: ">"}
        streams.update(dict.fromkeys(self._streams, ">"))
        reply = _parse_reply(
            await self._redis.xreadgroup(self.name, self.name, streams, count=_BATCH, block=block)
        )
        # Index first: a session learned here is read in the same round as its messages.
        reply.sort(key=lambda item: item[0] != self._index)
        for key, entries in reply:
            await self._handle(deliver, key, entries)

    async def _handle(self, deliver: Deliver, key: bytes, entries: list[_Entry]) -> None:
        if key == self._index:
            for entry_id, fields in entries:
                await self._learn(entry_id, fields)
            return
        if key in self._forgotten:
            # Read by a blocking XREADGROUP issued before forget(): not delivered, and left
            # pending, to expire with the stream.
            return
        for entry_id, fields in entries:
            if self._closed:
                return  # left pending: delivered again after a restart
            data = None if fields is None else fields.get(_DATA)
            if data is not None:
                try:
                    await deliver(data)
                except ProtocolError:
                    # Rejected by the node: it will never become valid, so it is acked too.
                    _log.info("relay %s: entry %s of %r rejected", self.name, entry_id, key)
                except Exception as exc:  # any other failure of the node: retry later
                    _log.warning(
                        "relay %s: deliver failed (%s) for entry %s of %r; retrying later",
                        self.name,
                        type(exc).__name__,
                        entry_id,
                        key,
                    )
                    self._failed.add(key)
                    if self._retry_at is None:
                        self._retry_at = asyncio.get_running_loop().time() + _RETRY_DELIVER_S
                    continue
            # A trimmed or malformed entry (data is None) has nothing to deliver: acked.
            await self._redis.xack(key, self.name, entry_id)

    async def _learn(self, entry_id: bytes, fields: dict[bytes, bytes] | None) -> None:
        """An index entry: start reading the stream it names (if it is ours and still open)."""
        key = None if fields is None else fields.get(_STREAM)
        if (
            key is None
            or not key.startswith(self._inbox_prefix)
            or _SESSION_HEX_RE.fullmatch(key[len(self._inbox_prefix) :]) is None
            or key in self._forgotten
        ):
            if key is not None and key not in self._forgotten:
                _log.warning(
                    "relay %s: index entry %s names no stream of ours", self.name, entry_id
                )
            await self._redis.xack(self._index, self.name, entry_id)
            return
        if key not in self._streams:
            await self._ensure_group(key)
            self._streams[key] = set()
        # Left pending on purpose: the index's pending list is the set of open sessions.
        self._streams[key].add(entry_id)

    async def forget(self, session: bytes) -> None:
        """Stop reading this member's stream of a finished session, and let it expire.

        Locally effective at once. On the relay: the index entries announcing the session
        are acknowledged (so a restarted instance does not learn it again) and the stream
        gets a retention period of :data:`RETENTION_SECONDS` (``EXPIRE``; retention, not
        delete-on-read). Also forgets which peer streams of this session were announced.
        Idempotent.

        Raises:
            ParameterError: ``session`` is not 32 bytes.
            TransportError: the relay could not be updated (the local part is done; a retry
                is safe, and the index entries are also acknowledged on the next reconnect).
        """
        if not isinstance(session, bytes) or len(session) != _SESSION_LEN:
            raise ParameterError(f"session must be {_SESSION_LEN} bytes")
        key = self._stream_key(self.name, session)
        suffix = f":{session.hex()}".encode()
        self._announced = {k for k in self._announced if not k.endswith(suffix)}
        self._forgotten.add(key)
        self._failed.discard(key)
        index_ids = self._streams.pop(key, set())
        try:
            if index_ids:
                await self._redis.xack(self._index, self.name, *sorted(index_ids))
            await self._redis.expire(key, RETENTION_SECONDS)
        except (RedisError, OSError) as exc:
            raise TransportError(f"relay: forget failed: {_describe(exc)}") from exc

    async def close(self) -> None:
        """Cancel the receiving loop (an unacknowledged delivery stays pending) and close the
        connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()  # if the cancellation is dropped, _closed still ends it (see _run)
            # wait() rather than await: the loop's own outcome is not close()'s error.
            await asyncio.wait([task])
        await self._redis.aclose()
