"""A node's audit log on disk: append-only, hash-chained, signed; its head signed beside it.

Files, in the node directory (``DIR``)::

    DIR/audit/audit.log          one entry per line (:mod:`tmpc.audit.entry`), only ever
                                 appended to (O_APPEND), fsync'd after each batch of entries
    DIR/audit/head.json          the last entry's seq and hash, signed by the node
                                 (:func:`tmpc.audit.entry.sign_head`), replaced atomically
                                 after each batch: removing the last lines of the log is
                                 detected without any other node
    DIR/audit/audit.log.torn-*   a torn final line set aside at recovery (see below)

Writing. :meth:`AuditLog.append` writes one entry and returns once it is on disk.
:meth:`AuditLog.submit` is for the node's request path, which must not wait for the disk: it
checks the event at once (a bad one raises there, and nothing is queued), stamps it with the
time of the call, and queues it for the log's writer thread (:meth:`AuditLog.start_writer`, or
``open(..., background=True)``). Woken by an event, the writer lets more gather for 10 ms
(group commit; not when a thread waits in :meth:`AuditLog.flush` or :meth:`AuditLog.append`),
then takes what is queued (up to 64) as one batch: it builds and signs the entries in queue
order (seq order is submit order, across threads), writes their lines with one ``write``,
``fsync``s once, then replaces the head once. :meth:`AuditLog.flush` waits for what was
submitted before it; :meth:`AuditLog.close` drains the queue. At most ``queue_limit`` entries
wait for the disk (queued or being written); beyond that, :meth:`AuditLog.submit` does not
wait: it drops the event, counts it (:attr:`AuditLog.dropped`), and the writer records the
drops where the lost events stood (a ``log.dropped`` entry: count, types, time of the last).

Crash safety. A batch is one ``write`` of its lines (each with its newline), then ``fsync``,
then the head is replaced (temporary file, ``fsync``, rename, directory ``fsync``): the head
never names an entry that is not on disk. A crash can leave:

- the events still queued or in the batch being written (when the disk keeps up: those of
  the last 10-20 ms): lost like any work in flight (the node had not waited for them;
  :meth:`AuditLog.flush` is the point after which they are safe);
- the head one batch behind the log: harmless (only the key can add an entry); the head is
  rewritten when the log is next opened;
- the first lines of a batch complete and the next one without its newline (a write cut
  short): the complete lines are valid entries; when the log is next opened, the torn bytes
  are moved to ``audit.log.torn-<unix time>-<hex>``, the log is cut back to its last newline,
  and a ``log.recovered`` entry records the file's name, length and SHA-256. Nothing is dropped
  silently, and ``tmpc audit verify`` reports both the torn line (before recovery) and the
  set-aside file (after).

A failed write (disk full, I/O error) cuts the log back to where it was, so a partial line
never sits in the middle of the log. :meth:`AuditLog.append` without a writer thread raises the
error and the log stays usable (unless even the cut failed). In the writer thread it marks the
log broken: the batch and everything queued are lost and counted in :attr:`AuditLog.dropped`,
:attr:`AuditLog.last_error` holds the error, and every later write raises StateError; the node
alerts on it, and a restart recovers the log.

The node refuses to append to a log it cannot vouch for: :meth:`AuditLog.open` checks the whole
chain, every signature and the head, and raises :class:`~tmpc.errors.KeystoreError` naming the
first bad entry. It also holds an exclusive ``flock`` on the log for as long as it is open, so
two processes never append to one log.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from tmpc.audit.checkpoint import CheckpointBody, CheckpointSchedule, cosign, verify_cosign
from tmpc.audit.entry import (
    CHECKPOINT,
    COSIGN,
    COSIGN_REFUSED,
    LOG_CREATED,
    LOG_DROPPED,
    LOG_RECOVERED,
    RESERVED_TYPES,
    Entry,
    check_data,
    check_event,
    check_type,
    make_checked_entry,
    sign_head,
)
from tmpc.audit.verify import (
    AUDIT_DIR,
    HEAD_FILE,
    LOG_FILE,
    LOG_FORMAT,
    TORN_PREFIX,
    ChainChecker,
    Head,
    iter_lines,
    read_head,
)
from tmpc.errors import DecodeError, KeystoreError, ParameterError, StateError
from tmpc.state.keystore import write_new_file
from tmpc.state.store import fsync_dir
from tmpc.wire.identity import NodeIdentity, check_name

if TYPE_CHECKING:  # only the type: the audit layer does not depend on the node's files
    from tmpc.node.config import Cluster

__all__ = ["DEFAULT_QUEUE_LIMIT", "AuditLog"]

_FILE_MODE: Final = 0o640
_DIR_MODE: Final = 0o750
#: Entries :meth:`AuditLog.submit` queues before it drops (about 100 s of a busy node's events).
DEFAULT_QUEUE_LIMIT: Final = 100_000
# Entries the writer takes at most in one batch: bounds one batch's time (each entry costs a
# signature, ~0.1 ms) and its memory.
_BATCH_LIMIT: Final = 64
# How long the writer waits, after the first event it wakes for, for more to batch with it
# (group commit), unless someone waits for the disk (flush, append). A batch costs a head
# signature and four file operations besides its entries, and a node's events trickle in
# (8 or so over a 10 ms signature): without the wait most batches would hold one or two.
# 50 ms gathers a whole signing session's events in one batch (one fsync) on a busy node.
_LINGER: Final = 0.050
# The writer thread replaces head.json at most this often (seconds), and whenever someone
# waits for the disk (flush, append) or the log closes: a head behind the log is harmless (only
# the key can add entries), and each replacement costs a signature and three fsyncs, which on
# a busy node compete with its request path. Truncating the entries of the last interval is
# then caught by the checkpoints and the peers' records, not by the head alone.
_HEAD_EVERY: Final = 0.5
# The distinct types a log.dropped entry counts one by one (the rest only in its count), so
# that the entry stays short whatever was dropped.
_DROPPED_TYPES: Final = 32
# The writer thread offers the GIL to other threads after this much work (seconds): a node
# thread that wants it waits about this long at most. Behind by more than a few batches, it
# takes longer slices: a node thread that never lets go of the GIL still leaves the writer a
# slice of every switch interval (5 ms), ~1/6 of the GIL with 1 ms: some 1300 entries a
# second, more than a saturated node's sessions log.
_YIELD_AFTER: Final = 0.00025
_YIELD_AFTER_BEHIND: Final = 0.001
_BEHIND: Final = 4 * _BATCH_LIMIT
# How long the interpreter's exit waits for the writer to drain (then it is a crash).
_EXIT_WAIT: Final = 10.0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _Drops:
    """Events dropped in a row because the queue was full; queued where they would have been,
    and written as one ``log.dropped`` entry."""

    __slots__ = ("at", "count", "types", "until")

    def __init__(self, event_type: str, at: float) -> None:
        self.at = at
        self.until = at
        self.count = 1
        self.types: dict[str, int] = {event_type: 1}

    def add(self, event_type: str, at: float) -> None:
        self.count += 1
        self.until = at
        if event_type in self.types or len(self.types) < _DROPPED_TYPES:
            self.types[event_type] = self.types.get(event_type, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "types": dict(self.types), "until": self.until}


# A queued event: (type, checked data, time of submit, where append() wants its entry or None).
_Event = tuple[str, dict[str, Any], float, list[Entry] | None]
_Item = _Event | _Drops


class AuditLog:
    """A node's open audit log (see the module docstring for the files, batching and crash
    safety).

    Open one with :meth:`open`; write with :meth:`submit` (queued, for the request path) or
    :meth:`append` (returns once on disk); read with :meth:`read`; cross-sign with
    :meth:`checkpoint_body` / :meth:`cosign` / :meth:`add_checkpoint`; :meth:`close` it (or
    use it as a context manager). Every method is thread-safe.

    Without a writer thread (the default), :meth:`submit` writes before it returns, as
    :meth:`append` does, blocking for the ``fsync`` calls (about 2 ms). A node starts the writer
    (``open(..., background=True)`` or :meth:`start_writer`) so that :meth:`submit` costs a
    few microseconds and never waits for the disk, and watches :attr:`broken` /
    :attr:`last_error` and :attr:`dropped`.
    """

    def __init__(
        self,
        path: Path,
        fd: int,
        node: str,
        identity: NodeIdentity,
        checker: ChainChecker,
        offsets: array[int],
        size: int,
        head_seq: int,
        *,
        sync: bool,
        clock: Callable[[], float],
        queue_limit: int,
    ) -> None:
        """Internal: use :meth:`open`."""
        self._path = path
        self._node = node
        self._identity = identity
        self._sync = sync
        self._clock = clock
        self._queue_limit = queue_limit
        # Lock order: _oplock, then _wlock, then _rlock; _qlock is taken alone (it is never
        # held while waiting for the disk, so submit() never waits for it).
        #
        # _oplock: one checkpoint/cosign operation at a time (check, then write).
        self._oplock = threading.Lock()
        # _wlock: the chain on disk: _state, _size, _head_seq, _unsound, writes to _fd.
        self._wlock = threading.Lock()
        self._state = checker  # the valid chain so far: hashes, checkpoints, cosign records
        self._size = size
        self._unsound = False  # a failed write could not be undone: the file is in doubt
        self._head_seq = head_seq  # the seq head.json names
        self._cosigned: dict[str, tuple[int, bytes]] = {}
        for rec in checker.cosigns:
            self._cosigned[rec.owner] = (rec.seq, rec.head)
        # _rlock: what read() sees: _fd, the line offsets of the entries on disk, their end.
        self._rlock = threading.Lock()
        self._fd: int | None = fd
        self._offsets = offsets  # seq -> file offset of its line is _offsets[seq - 1]
        self._end = size
        # Read without a lock (one tuple, replaced whole): the last entry on disk.
        self._last: tuple[int, bytes] = (checker.seq, checker.head)
        # _qlock: the queue and its counters. Tickets number the queued items from 1; _done
        # counts those written (in order), so "ticket t is on disk" is "_done >= t".
        self._qlock = threading.Lock()
        self._wake = threading.Condition(self._qlock)  # the writer waits for items
        self._progress = threading.Condition(self._qlock)  # flush() and append() wait
        self._queue: deque[_Item] = deque()
        self._queued = 0  # entries queued or being written (not _Drops): what queue_limit bounds
        self._issued = 0
        self._done = 0
        self._waiting = 0  # threads in flush() or append(): the writer does not linger
        self._head_dirty = False  # entries on disk that head.json does not name yet
        self._head_written = time.monotonic()
        self._dropped = 0
        self._closed = False
        self._broken = False
        self._last_error: BaseException | None = None
        self._writer: threading.Thread | None = None

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        node: str,
        identity: NodeIdentity,
        sync: bool = True,
        clock: Callable[[], float] = time.time,
        background: bool = False,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
    ) -> AuditLog:
        """Open (or create) the audit log of the node in ``directory`` (``DIR/audit/``).

        Checks the whole log (chain, signatures, ``head.json``) before anything is appended;
        sets a torn final line aside and records that (``log.recovered``); creates the log with
        a ``log.created`` entry if there is none.

        Args:
            directory: the node directory.
            node: the node's name (every entry names it).
            identity: the node's identity: signs entries and the head.
            sync: ``fsync`` each batch (default). False only for tests and benchmarks: a power
                loss may then lose the last entries, and the head may name an entry that did not
                reach the disk.
            clock: the time source of entries' ``at`` (Unix seconds).
            background: start the writer thread (:meth:`start_writer`) before returning.
            queue_limit: how many submitted entries may be waiting to reach the disk, queued
                or being written (at least 1); :meth:`submit` drops (and counts) events beyond
                it.

        Raises:
            KeystoreError: the log is in use by another process; or it, or ``head.json``, is
                bad (naming the first bad entry): the node **must not** write on in a log it
                cannot vouch for: an operator checks it (``tmpc audit verify``) and moves the
                ``audit`` directory aside (a new log then starts, and the old one stays
                evidence); or the log is missing while ``head.json`` says it had entries.
            ParameterError: a bad ``node`` or ``queue_limit``.
            OSError: the file system failed.
        """
        check_name(node)
        if not isinstance(queue_limit, int) or isinstance(queue_limit, bool) or queue_limit < 1:
            raise ParameterError("audit queue_limit must be a positive integer")
        audit_dir = directory / AUDIT_DIR
        audit_dir.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        path = audit_dir / LOG_FILE
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, _FILE_MODE)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise KeystoreError(
                        f"audit log {path} is in use by another process (is the node running?)"
                    ) from None
                raise
            log, torn = cls._recover(
                path, fd, node, identity, clock, sync=sync, queue_limit=queue_limit
            )
        except BaseException:
            os.close(fd)
            raise
        try:
            if log._state.seq == 0:
                if sync:  # the new log's (and audit directory's) name survives a crash
                    fsync_dir(audit_dir)
                    fsync_dir(directory)
                log._append(
                    LOG_CREATED,
                    {
                        "format": LOG_FORMAT,
                        "version": 1,
                        "host_pubkey": identity.host_pubkey.hex(),
                    },
                )
            if torn is not None:
                log._append(LOG_RECOVERED, torn)
            if log._state.seq != log._head_seq:
                with log._wlock:
                    log._write_head()
            if background:
                log.start_writer()
        except BaseException:
            log.close()
            raise
        return log

    @classmethod
    def _recover(
        cls,
        path: Path,
        fd: int,
        node: str,
        identity: NodeIdentity,
        clock: Callable[[], float],
        *,
        sync: bool,
        queue_limit: int,
    ) -> tuple[AuditLog, dict[str, Any] | None]:
        """Check the log and its head; set a torn final line aside. Returns the log and what
        the ``log.recovered`` entry should say (None: nothing was torn)."""
        head_path = path.parent / HEAD_FILE
        try:
            head = read_head(head_path)
        except DecodeError as exc:
            raise KeystoreError(f"{head_path}: {exc}; check it with tmpc audit verify") from None
        if head is not None and (head.node != node or not head.verifies(identity.host_pubkey)):
            raise KeystoreError(
                f"{head_path} does not verify under this node's key; check the log with "
                "tmpc audit verify"
            )
        checker = ChainChecker(node, identity.host_pubkey)
        size = 0
        offsets = array("Q")
        torn_bytes: bytes | None = None
        with open(path, "rb") as fh:
            for n, line, complete in iter_lines(fh):
                if not complete:
                    torn_bytes = line
                    break
                checker.add(n, line)
                if checker.problem is not None:
                    raise KeystoreError(
                        f"audit log {path}: {checker.problem}; the node does not append to a log "
                        "it cannot vouch for: check it with tmpc audit verify, then move "
                        f"{path.parent} aside"
                    )
                offsets.append(size)
                size += len(line) + 1
        if head is not None and head.seq > checker.seq:
            raise KeystoreError(
                f"audit log {path} ends at entry {checker.seq} but {HEAD_FILE} names entry "
                f"{head.seq} (truncated): check it with tmpc audit verify"
            )
        if head is not None and checker.hash_at(head.seq) != head.hash:
            raise KeystoreError(
                f"audit log {path}: entry {head.seq} differs from the one {HEAD_FILE} names "
                "(rewritten): check it with tmpc audit verify"
            )
        if head is None and checker.seq > 1:
            raise KeystoreError(
                f"audit log {path} has {checker.seq} entries but no {HEAD_FILE}: check it with "
                "tmpc audit verify"
            )
        torn: dict[str, Any] | None = None
        if torn_bytes is not None:
            name = f"{TORN_PREFIX}{int(clock())}-{secrets.token_hex(4)}"
            write_new_file(path.parent / name, torn_bytes, _FILE_MODE)
            os.ftruncate(fd, size)
            os.fsync(fd)
            torn = {
                "file": name,
                "bytes": len(torn_bytes),
                "sha256": hashlib.sha256(torn_bytes).hexdigest(),
                "after": checker.seq,
            }
        head_seq = head.seq if head is not None else 0
        log = cls(
            path,
            fd,
            node,
            identity,
            checker,
            offsets,
            size,
            head_seq,
            sync=sync,
            clock=clock,
            queue_limit=queue_limit,
        )
        return log, torn

    def start_writer(self) -> None:
        """Start the writer thread: from now on :meth:`submit` only queues, and the thread
        writes the queue in batches (module docstring). Idempotent.

        The thread is a daemon; :meth:`close` drains and stops it. At interpreter exit an
        unclosed log is drained for up to 10 s (then what is still queued is lost, as in a
        crash); ``os._exit`` and signals skip that.

        Raises:
            StateError: the log is closed or broken.
        """
        with self._qlock:
            self._check_usable()
            if self._writer is not None:
                return
            self._writer = threading.Thread(
                target=self._run, name=f"tmpc-audit-writer-{self._node}", daemon=True
            )
            self._writer.start()
        atexit.register(self._at_exit)

    # -- state ----------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The log file (``DIR/audit/audit.log``)."""
        return self._path

    @property
    def node(self) -> str:
        """The node's name."""
        return self._node

    @property
    def seq(self) -> int:
        """The seq of the last entry on disk (entries still queued are not counted)."""
        return self._last[0]

    @property
    def head(self) -> bytes:
        """The 32-byte hash of the last entry on disk."""
        return self._last[1]

    @property
    def pending(self) -> int:
        """How many submitted entries are not on disk yet: queued, or in the batch being
        written (a gauge for the node's metrics; at most ``queue_limit``)."""
        with self._qlock:
            return self._queued

    @property
    def dropped(self) -> int:
        """How many events submitted since the log was opened never reached it: dropped when
        the queue was full (each run of drops is recorded by a ``log.dropped`` entry), or
        queued when the writer failed (see :attr:`last_error`)."""
        with self._qlock:
            return self._dropped

    @property
    def broken(self) -> bool:
        """Whether a write failed in a way that stops the log (:attr:`last_error` says how):
        every later write raises StateError; reopening the log (a node restart) recovers it."""
        with self._qlock:
            return self._broken

    @property
    def last_error(self) -> BaseException | None:
        """The error that broke the log (usually an OSError: disk full, I/O error), or None."""
        with self._qlock:
            return self._last_error

    def close(self) -> None:
        """Write what is queued, stop the writer thread, release the log (and its lock).

        Later writes raise StateError. Idempotent. If the log is broken, what was queued is
        already lost (:attr:`dropped`); close does not raise for it.
        """
        with self._qlock:
            self._closed = True
            self._wake.notify_all()
            writer = self._writer
        if writer is not None and writer is not threading.current_thread():
            writer.join()
            atexit.unregister(self._at_exit)
        with self._wlock, self._rlock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _at_exit(self) -> None:
        try:
            if self.flush(_EXIT_WAIT):
                self.close()
        except StateError:  # broken: nothing left to write
            self.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AuditLog(node={self._node!r}, seq={self.seq}, path={str(self._path)!r})"

    # -- writing --------------------------------------------------------------------------------

    def submit(self, event_type: str, data: Mapping[str, object] | None = None) -> None:
        """Log one event without waiting for the disk (with the writer thread running).

        The event is checked now, stamped with the current time (its entry's ``at``), and
        queued; the writer gives it the next seq in queue order. Once :meth:`flush` returns
        True, it is on disk. If the queue is full (``queue_limit``), the event is dropped
        without waiting: :attr:`dropped` counts it and the log gets a ``log.dropped`` entry
        where it would have been. Without the writer thread, this writes the entry before it
        returns, as :meth:`append`.

        Args:
            event_type: as for :meth:`append`.
            data: as for :meth:`append`; copied, so the caller may change it afterwards.

        Raises:
            ParameterError: a bad or reserved type, or ``data`` the scrubber refuses, or an
                entry that would be too long (nothing is queued).
            StateError: the log is closed, or broken (:attr:`last_error`).
            OSError: (without the writer thread) as :meth:`append`.
        """
        if check_type(event_type) in RESERVED_TYPES:
            raise ParameterError(f"audit event type {event_type} is written by the log itself")
        clean = check_event(event_type, data, node=self._node)
        if self._writer is None:
            self._write_now(event_type, clean)
            return
        with self._qlock:
            self._check_usable()
            at = self._clock()  # taken in queue order: ``at`` follows seq (clock permitting)
            queue = self._queue
            if self._queued >= self._queue_limit:
                self._dropped += 1
                last = queue[-1] if queue else None
                if isinstance(last, _Drops):
                    last.add(event_type, at)
                    return
                item: _Item = _Drops(event_type, at)
            else:
                item = (event_type, clean, at, None)
                self._queued += 1
            queue.append(item)
            self._issued += 1
            if len(queue) == 1 or len(queue) == _BATCH_LIMIT:  # the writer may be waiting
                self._wake.notify()

    def append(self, event_type: str, data: Mapping[str, object] | None = None) -> Entry:
        """Append one event; returns its entry once it is on disk (``fsync``'d).

        With the writer thread running, the event is queued as by :meth:`submit` (so it takes
        its seq in the same order; it is never dropped) and this waits for its batch.

        Args:
            event_type: a well-formed type (:func:`tmpc.audit.entry.check_type`), e.g.
                :data:`~tmpc.audit.entry.REQUEST_REFUSED`; not one of
                :data:`~tmpc.audit.entry.RESERVED_TYPES`, which only this class writes.
            data: the event's public details (ids, parties, rule names, hashes as hex). It
                **must not** hold a secret; :func:`tmpc.audit.entry.check_data` refuses bytes
                and keys named like one.

        Raises:
            ParameterError: a bad or reserved type, or ``data`` the scrubber refuses, or an
                entry that would be too long (nothing is written).
            StateError: the log is closed, or broken (:attr:`last_error`; with the writer
                thread, also when the failure hit this entry's batch).
            OSError: (without the writer thread) the write failed (the log is cut back: the
                entry is not in it), or the entry is in the log but ``head.json`` could not be
                replaced (it is at the next append or open).
            KeystoreError: (a bug) the log refused its own entry; the log is broken.
        """
        if check_type(event_type) in RESERVED_TYPES:
            raise ParameterError(f"audit event type {event_type} is written by the log itself")
        return self._append(event_type, data)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every entry submitted before this call is on disk.

        Returns True then, False if ``timeout`` seconds passed first. Without the writer thread
        nothing is ever queued: True at once.

        Raises:
            StateError: the log broke before those entries were written (:attr:`last_error`);
                they are lost and counted in :attr:`dropped`.
        """
        with self._qlock:
            return self._wait_for(self._issued, timeout)

    def _check_usable(self) -> None:
        """Raise StateError if the log is closed or broken (caller holds _qlock)."""
        if self._closed:
            raise StateError("the audit log is closed")
        if self._broken:
            raise StateError(
                f"audit log {self._path} is broken by a failed write ({self._last_error}); "
                "restart the node (it recovers the log when it opens it)"
            ) from self._last_error

    def _wait_for(self, ticket: int, timeout: float | None) -> bool:
        """Wait (holding _qlock) until queue item ``ticket`` is written."""
        if self._done >= ticket:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        self._waiting += 1
        self._wake.notify()  # cut the writer's batching wait short
        try:
            while self._done < ticket:
                if self._broken:
                    raise StateError(
                        f"audit log {self._path} is broken by a failed write "
                        f"({self._last_error}); the entries still queued are lost"
                    ) from self._last_error
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._progress.wait(remaining)
            return True
        finally:
            self._waiting -= 1

    def _append(self, event_type: str, data: Mapping[str, object] | None) -> Entry:
        """Append any event (reserved types too) and wait until it is on disk."""
        clean = check_event(event_type, data, node=self._node)
        if self._writer is None:
            return self._write_now(event_type, clean)
        box: list[Entry] = []
        with self._qlock:
            self._check_usable()
            self._queue.append((event_type, clean, self._clock(), box))
            self._queued += 1
            self._issued += 1
            self._wait_for(self._issued, None)
        return box[0]

    def _write_now(self, event_type: str, clean: dict[str, Any]) -> Entry:
        """Without the writer thread: write one entry on the caller's thread."""
        with self._qlock:
            self._check_usable()
            at = self._clock()
        with self._wlock:
            try:
                return self._write([(event_type, clean, at, None)])[0]
            except Exception as exc:
                if self._unsound:
                    self._mark_broken(exc)
                raise

    def _mark_broken(self, exc: Exception) -> None:
        with self._qlock:
            self._broken = True
            self._last_error = exc
            self._progress.notify_all()

    def _run(self) -> None:
        """The writer thread: wait for events, let more gather (:data:`_LINGER`), write what
        is queued as one batch, repeat."""
        while True:
            with self._qlock:
                while not self._queue and not self._closed:
                    if not self._head_dirty:
                        self._wake.wait()
                        continue
                    remaining = self._head_written + _HEAD_EVERY - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wake.wait(remaining)
                if not self._queue:
                    closed = self._closed
                    self._qlock.release()
                    try:
                        self._head_due()  # a deferred head, now due (or the log closes)
                    finally:
                        self._qlock.acquire()
                    if closed:
                        return  # closed and drained
                    continue
                deadline = time.monotonic() + _LINGER
                while len(self._queue) < _BATCH_LIMIT and not self._closed and not self._waiting:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wake.wait(remaining)
                n = min(len(self._queue), _BATCH_LIMIT)
                batch = [self._queue.popleft() for _ in range(n)]
            with self._wlock:
                seq = self._state.seq
                try:
                    self._write(batch, polite=True)
                    error = None
                except Exception as exc:  # disk full, I/O error, or a bug: stop, and say so
                    error = exc
                written = self._state.seq - seq
            if error is not None:
                self._fail(error, batch[written:])
                return
            with self._qlock:
                self._queued -= sum(1 for item in batch if not isinstance(item, _Drops))
                self._done += n
                self._progress.notify_all()

    def _fail(self, exc: Exception, lost: Sequence[_Item]) -> None:
        """The writer failed: ``lost`` (the unwritten rest of its batch) and the queue are
        lost; count them, mark the log broken, wake the waiters."""
        with self._qlock:
            rest = list(self._queue)
            self._queue.clear()
            gone = [item for item in (*lost, *rest) if not isinstance(item, _Drops)]
            self._dropped += len(gone)
            self._queued = 0
            self._broken = True
            self._last_error = exc
            # Entries of the batch that reached the disk before the failure count as done.
            self._done = self._issued - len(lost) - len(rest)
            self._progress.notify_all()

    def _write(self, items: Sequence[_Item], *, polite: bool = False) -> list[Entry]:
        """Sign ``items`` as the next entries, write them with one ``write`` and one ``fsync``,
        then replace the head once (caller holds _wlock). Returns the entries, and hands each
        to the :meth:`append` waiting for it.

        On an error before the ``fsync`` returned, the file is cut back and no entry is in
        the chain; after it (the head), all are. ``polite`` (the writer thread): let other
        threads run between entries."""
        fd = self._fd
        if fd is None:
            raise StateError("the audit log is closed")
        if self._unsound:
            raise StateError(f"audit log {self._path} is broken by a failed write")
        seq, prev = self._state.seq, self._state.head
        entries: list[Entry] = []
        lines: list[bytes] = []
        # (A hint, read without _qlock.)
        work = _YIELD_AFTER_BEHIND if self._queued > _BEHIND else _YIELD_AFTER
        next_yield = time.monotonic() + work
        for item in items:
            if isinstance(item, _Drops):
                event_type, data, at = LOG_DROPPED, check_data(item.to_json()), item.at
            else:  # checked by submit (check_event), or by _write_now
                event_type, data, at, _box = item
            seq += 1
            entry, line = make_checked_entry(
                self._identity,
                node=self._node,
                seq=seq,
                prev=prev,
                at=float(at),
                event_type=event_type,
                clean=data,
            )
            entries.append(entry)
            lines.append(line + b"\n")
            prev = entry.hash
            if polite and time.monotonic() >= next_yield:
                # Signing holds the GIL (~0.1 ms an entry): release it now and then, so that a
                # node thread that wants it waits for a slice, not for a whole batch.
                time.sleep(0)
                next_yield = time.monotonic() + work
        try:
            _write_all(fd, b"".join(lines))
            if self._sync:
                os.fsync(fd)
        except OSError:
            self._undo(fd)
            raise
        offsets = array("Q")
        for line in lines:
            offsets.append(self._size)
            self._size += len(line)
        # The checker keeps the hashes, the checkpoints and the cosign records. It does not
        # verify our own signatures again: coincurve verified each one as it made it.
        for entry in entries:
            if self._state.add_own(entry) is None:  # pragma: no cover (a bug)
                self._unsound = True
                raise KeystoreError(f"audit log {self._path}: {self._state.problem}")
        with self._rlock:
            self._offsets.extend(offsets)
            self._end = self._size
        self._last = (self._state.seq, self._state.head)
        for item, entry in zip(items, entries, strict=True):
            if not isinstance(item, _Drops) and item[3] is not None:
                item[3].append(entry)
        # Only now, with the lines on disk, may the head name them (the writer thread defers it
        # to once every _HEAD_EVERY unless someone waits for the disk: see _run).
        self._head_dirty = True
        if not polite or self._waiting or self._closed:
            self._write_head()
        elif time.monotonic() - self._head_written >= _HEAD_EVERY:
            self._write_head()
        return entries

    def _head_due(self) -> None:
        """Write a deferred head (writer thread, without _qlock)."""
        with self._wlock:
            if not self._head_dirty or self._fd is None:
                return
            try:
                self._write_head()
            except OSError as exc:
                self._mark_broken(exc)

    def _undo(self, fd: int) -> None:
        """Cut the log back to its last whole entry after a failed write."""
        try:
            os.ftruncate(fd, self._size)
            if self._sync:
                os.fsync(fd)
        except OSError:
            self._unsound = True

    def _write_head(self) -> None:
        seq, h = self._state.seq, self._state.head
        content = Head(self._node, seq, h, sign_head(self._identity, self._node, seq, h)).to_bytes()
        target = self._path.parent / HEAD_FILE
        tmp = self._path.parent / f".{HEAD_FILE}.{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
            try:
                _write_all(fd, content)
                if self._sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if self._sync:
            fsync_dir(self._path.parent)
        self._head_seq = seq
        self._head_dirty = False
        self._head_written = time.monotonic()

    # -- reading --------------------------------------------------------------------------------

    def read(self, after: int, limit: int) -> list[dict[str, Any]]:
        """The entries with seq greater than ``after``, oldest first, at most ``limit`` of them,
        each the JSON object of its line as it is on disk (for the node's ``GET /v1/audit``).

        Only entries on disk (``fsync``'d) are read; nothing is verified (the log was verified
        when it was opened, and ``tmpc audit verify`` checks it). One ``pread`` from an index
        of line offsets kept in memory: a tail read costs the same however long the log is.

        Raises:
            ParameterError: ``after`` is negative, or ``limit`` is not positive.
            StateError: the log is closed.
            OSError: the file could not be read.
        """
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise ParameterError("audit read: after must be a non-negative integer")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ParameterError("audit read: limit must be a positive integer")
        with self._rlock:
            if self._fd is None:
                raise StateError("the audit log is closed")
            count = len(self._offsets)
            if after >= count:
                return []
            stop = min(count, after + limit)
            begin = self._offsets[after]
            end = self._offsets[stop] if stop < count else self._end
            chunks: list[bytes] = []
            pos = begin
            while pos < end:
                chunk = os.pread(self._fd, end - pos, pos)
                if not chunk:  # pragma: no cover (the file is only ever appended to)
                    raise OSError(errno.EIO, f"audit log {self._path} is shorter than indexed")
                chunks.append(chunk)
                pos += len(chunk)
        blob = b"".join(chunks)
        return [json.loads(line) for line in blob.split(b"\n")[:-1]]

    # -- checkpoints ----------------------------------------------------------------------------

    def checkpoint_body(self) -> CheckpointBody:
        """The current head, for the other nodes to cosign (:meth:`cosign` on their logs).

        Flushes first: the head covers every entry submitted before the call.

        Raises:
            StateError: the log is broken (:attr:`last_error`).
        """
        self.flush()
        seq, head = self._last
        return CheckpointBody(self._node, seq, head)

    def checkpoint_due(self, now: float, schedule: CheckpointSchedule | None = None) -> bool:
        """Whether ``schedule`` (default :class:`CheckpointSchedule`'s defaults) calls for a
        checkpoint at Unix time ``now`` (never waits for the disk)."""
        schedule = schedule or CheckpointSchedule()
        last_seq, last_at = self._state.last_checkpoint
        return schedule.due(
            seq=self.seq,
            last_checkpoint_seq=last_seq,
            last_checkpoint_at=last_at,
            now=now,
        )

    def add_checkpoint(
        self, cluster: Cluster, body: CheckpointBody, cosignatures: Mapping[str, bytes]
    ) -> Entry:
        """Record a checkpoint of this log: ``body`` (from :meth:`checkpoint_body`) and the
        other nodes' cosignatures of it (name -> 64 bytes, from their :meth:`cosign`).

        Every cosignature is verified under the cosigner's host key in ``cluster`` first; the
        entry (``checkpoint``: seq, head, cluster hash, cosigners) is appended only if all do.
        Entries submitted meanwhile may come before it: the checkpoint names ``body.seq``.

        Raises:
            ParameterError: ``body`` is not a head of this log, no cosignature was given, a
                cosigner is this node or not a member, or a cosignature does not verify (the
                message names the cosigner); nothing is written.
            (and what :meth:`append` raises.)
        """
        with self._oplock:
            if body.node != self._node:
                raise ParameterError(f"checkpoint of node {body.node}, not of {self._node}")
            with self._wlock:
                known = body.seq <= self._state.seq and self._state.hash_at(body.seq) == body.head
            if not known:
                raise ParameterError(f"checkpoint head is not entry {body.seq} of this log")
            if not cosignatures:
                raise ParameterError("a checkpoint needs at least one cosignature")
            out: dict[str, str] = {}
            for name, sig in sorted(cosignatures.items()):
                if name == self._node:
                    raise ParameterError("a node does not cosign its own checkpoint")
                key = cluster.member(name).host_pubkey  # ParameterError if not a member
                if not verify_cosign(key, cluster.hash, body, sig):
                    raise ParameterError(f"the checkpoint cosignature of {name} does not verify")
                out[name] = sig.hex()
            return self._append(
                CHECKPOINT,
                {
                    "seq": body.seq,
                    "head": body.head.hex(),
                    "cluster": cluster.hash.hex(),
                    "cosigners": out,
                },
            )

    def cosign(self, cluster_hash: bytes, body: CheckpointBody) -> bytes:
        """Cosign another node's head: record it here (a ``cosign`` entry, on disk before this
        returns), then return the 64-byte cosignature (:func:`tmpc.audit.checkpoint.cosign`).

        Refuses a head that contradicts one this node cosigned before for the same node: an
        earlier seq, or the same seq with another hash, is a rolled-back or rewritten log. The
        refusal is itself recorded (``cosign.refused``) before it is raised. The same head
        twice is signed again without a second record. A node **must** run one checkpoint at a
        time: two in flight can reach a cosigner out of order and be refused.

        Raises:
            ParameterError: ``body`` is this node's own head, or contradicts an earlier
                cosigned head (a possible rewrite: the message says so), or ``cluster_hash``
                is not 32 bytes.
            (and what :meth:`append` raises.)
        """
        with self._oplock:
            if body.node == self._node:
                raise ParameterError("a node does not cosign its own log")
            sig = cosign(self._identity, cluster_hash, body)  # checks the hash's length first
            before = self._cosigned.get(body.node)
            if before is not None:
                seq, head = before
                if body.seq < seq or (body.seq == seq and body.head != head):
                    self._append(
                        COSIGN_REFUSED,
                        {
                            **body.to_json(),
                            "cosigned_seq": seq,
                            "cosigned_head": head.hex(),
                        },
                    )
                    raise ParameterError(
                        f"refusing to cosign node {body.node}'s entry {body.seq}: this node "
                        f"cosigned its entry {seq} with another history (a rolled-back or "
                        "rewritten audit log)"
                    )
                if body.seq == seq:
                    return sig
            self._append(COSIGN, body.to_json())
            self._cosigned[body.node] = (body.seq, body.head)
            return sig
