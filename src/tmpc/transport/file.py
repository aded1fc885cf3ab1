"""Files for an air-gapped party: envelopes written to disk, carried in bundles by an operator.

An *air-gapped* node has no network at all. It runs a :class:`FileTransport`: every envelope
it sends is written to its outbox, and an operator carries the outbox out in a *bundle* file
(``tmpc session export``), and carries in the bundles of the other members
(``tmpc session import``). The *connected* members wrap their normal transport in an
:class:`AirGapRelay`, which writes what they send to an air-gapped member into their own
outbox instead of the network, and takes that member's bundles in. Each hop of a session
then costs one export, one trip and one import, so the nodes' timeouts (``--round-timeout``,
``--ready-timeout``) must be set to the time an operator needs for it.

"Acknowledged" for this transport: :meth:`FileTransport.send` returns once the envelope is
*durably in the outbox* (written to a temporary file, fsynced, linked into place, directory
fsynced), not once the peer stored it; from there on carrying it is the operator's job. A
bundle that is lost can be exported again (``again=True``), and a bundle imported twice is
harmless: the envelope layer drops duplicates (:class:`~tmpc.wire.envelope.Opener`).

Nothing secret is added: a bundle holds sealed envelopes, signed by their sender and (point
to point) encrypted to their recipient, exactly the bytes that would cross the network; a
bundle is as safe to carry, and as unsafe to trust, as the network. Whoever holds it learns
the metadata a relay would (who talks to whom, in which session, sizes); it can drop, delay
or replay bundles, like any transport, and cannot forge or read a message.

Directory layout (``ROOT`` is the node directory's ``airgap`` folder, :func:`airgap_root`)::

    ROOT/outbox/PEER/STAMP.env   one envelope this node sent to PEER, not exported yet
    ROOT/sent/PEER/STAMP.env     the same once exported in a bundle (kept for a re-export)
    ROOT/inbox/STAMP-ID.bundle   a bundle queued by ``tmpc session import``, not delivered yet
    ROOT/imported/...            bundles the running node delivered (kept for the audit)
    ROOT/rejected/...            bundles found in the inbox that do not parse (never delivered)

``STAMP`` is ``TTTTTTTTTTTTTTTTTTTT-CCCCCCCC``: the wall-clock time in nanoseconds (20 digits,
kept increasing within a process) and a per-process counter (8 digits), so names sort in
sending order. Files whose names do not have this form (temporary files) are ignored.

The running node and the CLI share the folder through files only, so both commands work
whether or not the node runs: ``export`` reads the outbox and moves what it exported to
``sent``; ``import`` checks a bundle completely and copies it into ``inbox``, which the
running node's transport polls (every 0.2 s by default, and once when it starts): it delivers
each queued bundle to its engine, then moves it to ``imported``. A bundle whose delivery
failed for a reason other than a rejected envelope stays queued and is retried (about a
second later); a delivery repeated that way is harmless too.

Bundle format (version 1; integers big endian)::

    size   field
    8      magic b"TMPCBNDL"
    1      version, 1
    32     the cluster hash (:attr:`~tmpc.node.config.Cluster.hash`)
    1      n, length of the origin's name
    n      origin: the name of the node that exported the bundle
    4      count of messages (at most MAX_MESSAGES)
    then count times:
    1      r, length of the recipient's name
    r      recipient: the member the envelope is for
    4      m, length of the envelope (1 to MAX_ENVELOPE)
    m      the envelope
    32     SHA-256 of every byte before it

Names are 1-64 characters of ``[A-Za-z0-9._-]`` (not ``.`` or ``..``). A whole bundle is at
most :data:`MAX_BUNDLE` bytes. Parsing is strict: a bundle that is larger than that, cut
short, altered (checksum), of another cluster, or not exactly in this form is refused with
:class:`BundleError` before anything in it is delivered. A node delivers only the messages
addressed to it and skips the others, so one bundle of an air-gapped party (holding its
messages to every member) is imported on each connected member alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tmpc.errors import DecodeError, KeystoreError, ParameterError
from tmpc.state import keystore
from tmpc.transport.base import Deliver, Transport, TransportError
from tmpc.transport.tcp import REJECTIONS
from tmpc.wire.envelope import MAX_ENVELOPE

__all__ = [
    "AIRGAP_DIR",
    "MAGIC",
    "MAX_BUNDLE",
    "MAX_MESSAGES",
    "VERSION",
    "AirGapFolder",
    "AirGapRelay",
    "Bundle",
    "BundleError",
    "FileTransport",
    "airgap_root",
    "read_bundle",
]

log = logging.getLogger("tmpc.transport.file")

#: The folder of a node directory that holds its air-gap files.
AIRGAP_DIR: Final = "airgap"
#: First bytes of every bundle.
MAGIC: Final = b"TMPCBNDL"
#: The only bundle format version.
VERSION: Final = 1
#: Largest bundle, in bytes (256 MiB); an export stops adding messages before it.
MAX_BUNDLE: Final = 256 << 20
#: Most messages in one bundle; an export leaves the rest for the next bundle.
MAX_MESSAGES: Final = 100_000

#: Seconds between two looks at the inbox of a running node.
POLL_INTERVAL: Final = 0.2
#: Seconds before a bundle whose delivery failed (not by a rejection) is tried again.
_RETRY_S: Final = 1.0

_NAME_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MESSAGE_RE: Final = re.compile(r"[0-9]{20}-[0-9]{8}\.env")
_BUNDLE_RE: Final = re.compile(r"[0-9]{20}-[0-9a-f]{16}\.bundle")
_DIGEST_LEN: Final = 32
_CLUSTER_LEN: Final = 32
# magic, version, cluster hash
_HEAD: Final = struct.Struct(f">{len(MAGIC)}sB{_CLUSTER_LEN}s")
_U32: Final = struct.Struct(">I")


class BundleError(DecodeError):
    """A bundle file was refused: not a bundle, cut short, altered, too large, of another
    cluster, or not exactly in the documented form. Nothing of it was delivered."""


def airgap_root(node_directory: Path) -> Path:
    """The air-gap folder of a node directory (``DIR/airgap``)."""
    return node_directory / AIRGAP_DIR


def _check_name(what: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name in (".", ".."):
        raise ParameterError(f"{what} must be 1-64 characters of [A-Za-z0-9._-]")
    return name


def _check_cluster(cluster: bytes) -> bytes:
    if not isinstance(cluster, bytes) or len(cluster) != _CLUSTER_LEN:
        raise ParameterError(f"the cluster hash must be {_CLUSTER_LEN} bytes")
    return cluster


@dataclass(frozen=True, slots=True)
class Bundle:
    """The messages one node exports in one file (format in the module docstring).

    Attributes:
        cluster: the 32-byte cluster hash.
        origin: the name of the node that exported it.
        messages: ``(recipient, envelope)`` pairs, in sending order.
    """

    cluster: bytes
    origin: str
    messages: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        _check_cluster(self.cluster)
        _check_name("the origin", self.origin)
        if len(self.messages) > MAX_MESSAGES:
            raise ParameterError(f"a bundle holds at most {MAX_MESSAGES} messages")
        for to, data in self.messages:
            _check_name("a recipient", to)
            if not isinstance(data, bytes) or not 1 <= len(data) <= MAX_ENVELOPE:
                raise ParameterError(f"an envelope must be 1 to {MAX_ENVELOPE} bytes")

    def recipients(self) -> dict[str, int]:
        """How many messages the bundle holds for each recipient."""
        out: dict[str, int] = {}
        for to, _ in self.messages:
            out[to] = out.get(to, 0) + 1
        return out

    def to_bytes(self) -> bytes:
        """The bundle file's content. Raises :class:`ParameterError` above :data:`MAX_BUNDLE`."""
        parts = [_HEAD.pack(MAGIC, VERSION, self.cluster), _name_bytes(self.origin)]
        parts.append(_U32.pack(len(self.messages)))
        for to, data in self.messages:
            parts += [_name_bytes(to), _U32.pack(len(data)), data]
        body = b"".join(parts)
        if len(body) + _DIGEST_LEN > MAX_BUNDLE:
            raise ParameterError(f"a bundle is at most {MAX_BUNDLE} bytes")
        return body + hashlib.sha256(body).digest()

    @classmethod
    def from_bytes(cls, data: bytes) -> Bundle:
        """Parse a bundle file's content, strictly.

        Raises :class:`BundleError` for anything but exactly the documented form: another
        magic or version, more than :data:`MAX_BUNDLE` bytes, a checksum that does not match
        (cut short or altered), a field out of its limits, or bytes left over."""
        if not isinstance(data, bytes):
            raise BundleError("a bundle must be bytes")
        if len(data) > MAX_BUNDLE:
            raise BundleError(f"the bundle is larger than {MAX_BUNDLE} bytes")
        if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
            raise BundleError("not a tmpc bundle (no TMPCBNDL header)")
        if len(data) < _HEAD.size + _DIGEST_LEN:
            raise BundleError("the bundle is truncated")
        _, version, cluster = _HEAD.unpack_from(data)
        if version != VERSION:
            raise BundleError(f"bundle version {version} is not supported (this tmpc reads 1)")
        body, digest = data[:-_DIGEST_LEN], data[-_DIGEST_LEN:]
        if hashlib.sha256(body).digest() != digest:
            raise BundleError("the bundle is truncated or corrupt (its checksum does not match)")
        reader = _Reader(body, _HEAD.size)
        origin = reader.name("origin")
        count = reader.u32()
        if count > MAX_MESSAGES:
            raise BundleError(f"the bundle claims {count} messages (at most {MAX_MESSAGES})")
        messages = []
        for i in range(count):
            to = reader.name(f"recipient of message {i}")
            size = reader.u32()
            if not 1 <= size <= MAX_ENVELOPE:
                raise BundleError(f"message {i} has length {size} (1 to {MAX_ENVELOPE})")
            messages.append((to, reader.take(size, f"message {i}")))
        if reader.pos != len(body):
            raise BundleError(f"{len(body) - reader.pos} bytes after the last message")
        return cls(cluster, origin, tuple(messages))


def _name_bytes(name: str) -> bytes:
    raw = name.encode()
    return bytes([len(raw)]) + raw


class _Reader:
    """Reads the fields of a bundle body; every overrun is a :class:`BundleError`."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise BundleError(f"the bundle ends inside {what}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u32(self) -> int:
        value: int = _U32.unpack(self.take(4, "a length"))[0]
        return value

    def name(self, what: str) -> str:
        raw = self.take(self.take(1, what)[0], what)
        try:
            return _check_name(what, raw.decode("ascii"))
        except (UnicodeDecodeError, ParameterError):
            raise BundleError(f"{what} is not a valid node name") from None


def read_bundle(path: Path) -> Bundle:
    """Read and parse a bundle file (a larger one is refused unread).

    Raises :class:`BundleError` for a bad bundle, :class:`KeystoreError` for a missing file
    or a directory, :class:`OSError` for a failure of the file system."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BUNDLE + 1)
    except (FileNotFoundError, NotADirectoryError):
        raise KeystoreError(f"bundle not found: {path}") from None
    except IsADirectoryError:
        raise KeystoreError(f"the bundle is a directory, not a file: {path}") from None
    try:
        return Bundle.from_bytes(data)
    except BundleError as exc:
        raise BundleError(f"{path}: {exc}") from None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AirGapFolder:
    """The air-gap folder of one node: files only, no event loop (layout in the module
    docstring). Used by both transports and by the ``tmpc session`` commands.

    Args:
        root: the folder (``DIR/airgap``); created when first written.
        name: this node's name (the origin of its bundles; what it imports must be for it).
        cluster: the 32-byte cluster hash.
    """

    def __init__(self, root: Path, name: str, cluster: bytes) -> None:
        self.root = Path(root)
        self.name = _check_name("the node name", name)
        self.cluster = _check_cluster(cluster)
        self._lock = threading.Lock()
        self._last = 0
        self._seq = 0

    def __repr__(self) -> str:
        return f"AirGapFolder({str(self.root)!r}, name={self.name!r})"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    def _stamp(self) -> str:
        with self._lock:
            self._last = max(time.time_ns(), self._last + 1)
            self._seq = (self._seq + 1) % 100_000_000
            return f"{self._last:020d}-{self._seq:08d}"

    # -- outgoing ---------------------------------------------------------------------------

    def put(self, peer: str, data: bytes) -> Path:
        """Write one envelope for ``peer`` into the outbox, durably (atomic, fsynced).

        Returns its path. Raises :class:`ParameterError` for a bad name or size,
        :class:`OSError` if the file system fails."""
        _check_name("the peer", peer)
        if peer == self.name:
            raise ParameterError("a node does not send to itself")
        if not isinstance(data, bytes) or not 1 <= len(data) <= MAX_ENVELOPE:
            raise ParameterError(f"an envelope must be 1 to {MAX_ENVELOPE} bytes")
        directory = self.root / "outbox" / peer
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        while True:
            path = directory / f"{self._stamp()}.env"
            try:
                keystore.write_new_file(path, data, 0o600)
                return path
            except KeystoreError:  # taken by another process writing the same folder
                continue

    def _messages(self, box: str, peer: str | None) -> list[tuple[str, str, Path]]:
        """``(file name, peer, path)`` of the messages in ``box`` (outbox or sent)."""
        base = self.root / box
        if not base.is_dir():
            return []
        found = []
        for sub in base.iterdir():
            if not sub.is_dir() or not _NAME_RE.fullmatch(sub.name) or sub.name in (".", ".."):
                continue
            if peer is not None and sub.name != peer:
                continue
            found += [(f.name, sub.name, f) for f in sub.iterdir() if _MESSAGE_RE.fullmatch(f.name)]
        return sorted(found)

    def pending(self, peer: str | None = None) -> int:
        """How many outbox messages (for ``peer``, or for anyone) await export."""
        return len(self._messages("outbox", peer))

    def export_bundle(self, path: Path, *, peer: str | None = None, again: bool = False) -> int:
        """Write the outbox messages not exported yet (for ``peer`` only, if given) into a new
        bundle file ``path``, then move them to ``sent``; returns how many.

        With ``again``, the messages already exported (in ``sent``) go in too, for a bundle
        that was lost. Stops before :data:`MAX_MESSAGES` or :data:`MAX_BUNDLE` and leaves the
        rest for the next bundle (:meth:`pending` says how many). Writes no file when there is
        nothing to export (returns 0). A crash after the bundle is written but before every
        message moved exports those messages again: harmless duplicates.

        Raises :class:`KeystoreError` if ``path`` exists, :class:`OSError` if the file system
        fails."""
        if peer is not None:
            _check_name("the peer", peer)
        found = self._messages("outbox", peer)
        if again:
            found = sorted(found + self._messages("sent", peer))
        size = _HEAD.size + 1 + len(self.name) + 4 + _DIGEST_LEN
        chosen: list[tuple[str, Path]] = []
        messages: list[tuple[str, bytes]] = []
        for _, to, f in found:
            try:
                data = keystore.read_limited(f, "outbox message", MAX_ENVELOPE)
            except KeystoreError:  # moved away meanwhile by a concurrent export
                continue
            if not data:
                continue  # cannot happen with put(); never exported
            size += 1 + len(to) + 4 + len(data)
            if len(messages) >= MAX_MESSAGES or size > MAX_BUNDLE:
                break
            messages.append((to, data))
            chosen.append((to, f))
        if not messages:
            return 0
        keystore.write_new_file(
            path, Bundle(self.cluster, self.name, tuple(messages)).to_bytes(), 0o644
        )
        touched: set[Path] = set()
        for to, f in chosen:
            if f.parent.parent.name != "outbox":
                continue  # a re-export from sent
            target = self.root / "sent" / to
            target.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                os.replace(f, target / f.name)
            except FileNotFoundError:  # a concurrent export moved it: exported twice, harmless
                continue
            touched.update((f.parent, target))
        for d in touched:
            _fsync_dir(d)
        return len(messages)

    # -- incoming ---------------------------------------------------------------------------

    def check(self, bundle: Bundle) -> int:
        """Check that ``bundle`` is of this node's cluster; returns how many of its messages
        are for this node. Raises :class:`BundleError` for another cluster's bundle."""
        if bundle.cluster != self.cluster:
            raise BundleError(
                f"the bundle is of another cluster ({bundle.cluster[:8].hex()}; "
                f"this node is in {self.cluster[:8].hex()})"
            )
        return bundle.recipients().get(self.name, 0)

    def queue_bundle(self, path: Path) -> tuple[Bundle, int]:
        """Check the bundle file ``path`` completely and, if it holds messages for this node,
        copy it into the inbox, where the running node (now, or when it next starts) picks
        it up.

        Returns the bundle and how many of its messages are for this node (0: nothing was
        queued). Raises :class:`BundleError` for a bundle refused (nothing is queued),
        :class:`KeystoreError` for a missing file, :class:`OSError` if the file system
        fails."""
        bundle = read_bundle(path)
        mine = self.check(bundle)
        if mine:
            data = bundle.to_bytes()
            digest = hashlib.sha256(data).hexdigest()[:16]
            self.inbox.mkdir(parents=True, exist_ok=True, mode=0o700)
            name = f"{self._stamp()[:20]}-{digest}.bundle"
            keystore.write_new_file(self.inbox / name, data, 0o644)
        return bundle, mine

    def queued(self) -> list[Path]:
        """The bundles in the inbox, oldest first."""
        if not self.inbox.is_dir():
            return []
        return sorted(f for f in self.inbox.iterdir() if _BUNDLE_RE.fullmatch(f.name))

    def file_away(self, path: Path, where: str) -> None:
        """Move a queued bundle to ``imported`` or ``rejected``."""
        target = self.root / where
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.replace(path, target / path.name)


class _FileEndpoint(Transport):
    """What both file transports share: the folder, the inbox poll and bundle import."""

    def __init__(
        self, name: str, root: Path, cluster: bytes, *, poll_interval: float = POLL_INTERVAL
    ) -> None:
        if poll_interval <= 0:
            raise ParameterError("the poll interval must be positive")
        self.name = name
        self.folder = AirGapFolder(root, name, cluster)
        self.poll_interval = poll_interval
        #: ``imported`` (handed to the node), ``rejected`` (refused by it), ``skipped``
        #: (addressed to another member), ``written`` (to the outbox).
        self.counters: dict[str, int] = dict.fromkeys(
            ("imported", "rejected", "skipped", "written"), 0
        )
        self._deliver: Deliver | None = None
        self._poll: asyncio.Task[None] | None = None
        self._retry_at: dict[Path, float] = {}
        self._closed = False

    async def _start_files(self, deliver: Deliver) -> None:
        if self._closed or self._deliver is not None:
            raise TransportError(f"the file transport of {self.name!r} is started once")
        self._deliver = deliver
        self._poll = asyncio.get_running_loop().create_task(
            self._poll_inbox(), name=f"airgap-{self.name}"
        )

    async def _close_files(self) -> None:
        self._closed = True
        self._deliver = None
        task, self._poll = self._poll, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    async def _write(self, peer: str, data: bytes) -> None:
        try:
            await asyncio.to_thread(self.folder.put, peer, bytes(data))
        except OSError as exc:
            raise TransportError(f"could not write the message to {peer!r}: {exc}") from exc
        self.counters["written"] += 1

    async def import_bundle(self, path: Path) -> int:
        """Hand every message of the bundle file ``path`` addressed to this node to the
        node's ``deliver``; returns how many were handed over.

        The whole bundle is read and checked first: a bad one raises :class:`BundleError`
        and nothing of it is delivered. Messages for other members are skipped; a message the
        node refuses (one of :data:`~tmpc.transport.tcp.REJECTIONS`: a replay of a finished
        session, a forgery) is counted and skipped; a duplicate is dropped by the node. Any
        other exception of ``deliver`` propagates (the messages before it were delivered;
        importing the bundle again is harmless). Raises :class:`TransportError` before
        ``start`` or after ``close``."""
        bundle = await asyncio.to_thread(read_bundle, path)
        self.folder.check(bundle)
        deliver = self._deliver
        if deliver is None:
            raise TransportError(f"the transport of {self.name!r} is not started")
        n = 0
        for to, data in bundle.messages:
            if to != self.name:
                self.counters["skipped"] += 1
                continue
            n += 1
            try:
                await deliver(data)
            except REJECTIONS as exc:
                self.counters["rejected"] += 1
                log.info("%s: a message of bundle %s refused: %s", self.name, path.name, exc)
            else:
                self.counters["imported"] += 1
        return n

    async def _poll_inbox(self) -> None:
        while not self._closed:
            for path in self.folder.queued():
                if self._closed:
                    return
                if self._retry_at.get(path, 0.0) > time.monotonic():
                    continue
                try:
                    n = await self.import_bundle(path)
                except BundleError as exc:
                    log.warning("%s: inbox bundle refused: %s", self.name, exc)
                    self._file_away(path, "rejected")
                except (KeystoreError, FileNotFoundError):
                    pass  # removed meanwhile
                except Exception as exc:  # any other failure of the node: retry later
                    log.warning(
                        "%s: delivering bundle %s failed (%s); retrying",
                        self.name,
                        path.name,
                        type(exc).__name__,
                    )
                    self._retry_at[path] = time.monotonic() + _RETRY_S
                else:
                    log.info("%s: delivered %d messages of bundle %s", self.name, n, path.name)
                    self._retry_at.pop(path, None)
                    self._file_away(path, "imported")
            await asyncio.sleep(self.poll_interval)

    def _file_away(self, path: Path, where: str) -> None:
        try:
            self.folder.file_away(path, where)
        except OSError as exc:
            log.warning("%s: could not move %s to %s: %s", self.name, path.name, where, exc)
            self._retry_at[path] = float("inf")  # delivered; not again in this process


class FileTransport(_FileEndpoint):
    """The transport of an air-gapped node: sends go to the outbox, receives come from the
    bundles imported (see the module docstring).

    Args:
        name: this node's name.
        root: its air-gap folder (:func:`airgap_root` of the node directory).
        cluster: the 32-byte cluster hash.
        poll_interval: seconds between two looks at the inbox.
    """

    def __repr__(self) -> str:
        return f"FileTransport({self.name!r}, {str(self.folder.root)!r})"

    async def start(self, deliver: Deliver) -> None:
        """Receive from now on: the inbox is polled and its bundles delivered (the ones
        queued while the node was down first). Raises :class:`TransportError` if started
        twice or after :meth:`close`."""
        await self._start_files(deliver)

    async def send(self, peer: str, data: bytes, *, session: bytes) -> None:
        """Write ``data`` for ``peer`` durably into the outbox; that is the acknowledgement
        (the operator carries it on). ``session`` is not used.

        Raises :class:`ParameterError` for a bad peer name or size, :class:`TransportError`
        if the file system fails (the node retries)."""
        await self._write(peer, data)

    def export_bundle(self, path: Path, *, peer: str | None = None, again: bool = False) -> int:
        """Export the outbox into a new bundle file ``path``; see
        :meth:`AirGapFolder.export_bundle`. Returns the number of messages (0: no file)."""
        return self.folder.export_bundle(path, peer=peer, again=again)

    async def close(self) -> None:
        """Stop polling the inbox; idempotent."""
        await self._close_files()


class AirGapRelay(_FileEndpoint):
    """The transport of a *connected* node with air-gapped peers: wraps its normal transport
    and sends to the air-gapped peers through the outbox instead (see the module docstring).

    Args:
        inner: the node's network transport (TCP, relay, memory); started and closed with
            this one, and used for every peer that is not air-gapped.
        name: this node's name.
        root: its air-gap folder (:func:`airgap_root` of the node directory).
        cluster: the 32-byte cluster hash.
        airgapped: the names of the air-gapped members (this node not among them).
        poll_interval: seconds between two looks at the inbox.
    """

    def __init__(
        self,
        inner: Transport,
        name: str,
        root: Path,
        cluster: bytes,
        airgapped: Iterable[str],
        *,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        super().__init__(name, root, cluster, poll_interval=poll_interval)
        self.inner = inner
        self.airgapped = frozenset(_check_name("an air-gapped peer", p) for p in airgapped)
        if name in self.airgapped:
            raise ParameterError("a node with air-gapped peers is not air-gapped itself")

    def __repr__(self) -> str:
        return f"AirGapRelay({self.inner!r}, airgapped={sorted(self.airgapped)})"

    async def start(self, deliver: Deliver) -> None:
        """Start the inner transport, then poll the inbox (bundles of the air-gapped peers)."""
        await self.inner.start(deliver)
        await self._start_files(deliver)

    async def send(self, peer: str, data: bytes, *, session: bytes) -> None:
        """To an air-gapped ``peer``: write ``data`` durably into its outbox (the
        acknowledgement). To any other: the inner transport's ``send``."""
        if peer in self.airgapped:
            await self._write(peer, data)
        else:
            await self.inner.send(peer, data, session=session)

    async def forget(self, session: bytes) -> None:
        """Pass a finished session on to the inner transport, if it keeps state per session."""
        forget = getattr(self.inner, "forget", None)
        if callable(forget):
            await forget(session)

    def export_bundle(self, peer: str, path: Path, *, again: bool = False) -> int:
        """Export the messages for the air-gapped ``peer`` into a new bundle file ``path``;
        see :meth:`AirGapFolder.export_bundle`. Returns the number of messages (0: no file)."""
        if peer not in self.airgapped:
            raise ParameterError(f"{peer!r} is not an air-gapped peer of this node")
        return self.folder.export_bundle(path, peer=peer, again=again)

    async def close(self) -> None:
        """Stop polling the inbox and close the inner transport; idempotent."""
        await self._close_files()
        await self.inner.close()
