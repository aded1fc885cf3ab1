"""Checking an audit log: the chain, the signatures, the signed head, the cross-signed
checkpoints and the other nodes' records, with the first bad entry named.

What each check catches (the threat is a node's own log file edited by whoever can write it,
including the node itself):

- an entry's content edited: its hash no longer matches (:class:`ChainChecker`);
- an entry's hash edited to match: its signature no longer verifies;
- entries removed, duplicated or reordered: an entry's ``seq`` is not its line's number, or
  its ``prev`` does not link to the entry before;
- the last entries removed (truncation): ``head.json``, signed under its own tag, names a
  later entry; and if ``head.json`` is replaced too, its signature does not verify;
- the node rewrites its log with its own key (a consistent new chain): a ``checkpoint``
  entry's cosigned head no longer matches the entry it names; and if the rewrite drops the
  checkpoints too, the other nodes' ``cosign`` entries (``peer_logs``) name heads the log no
  longer has.

What no check here catches: a node that rewrites or drops entries written since the head the
other nodes last cosigned (bound it with ``max_unanchored``); a log cut back together with an
older, genuine ``head.json`` (or deleted with it) when no checkpoint or peer record is newer;
a node colluding with every one of its cosigners.

:class:`ChainChecker` is the sans-I/O core (lines in, a verdict out); :func:`verify` reads
the files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeGuard

from tmpc.audit.checkpoint import CheckpointBody, verify_cosign
from tmpc.audit.entry import (
    CHECKPOINT,
    COSIGN,
    COSIGN_REFUSED,
    GENESIS_PREV,
    LOG_CREATED,
    LOG_DROPPED,
    MAX_LINE_BYTES,
    Entry,
    canonical_json,
    check_type,
    verify_head,
)
from tmpc.encoding import parse_json
from tmpc.errors import DecodeError, ParameterError
from tmpc.wire.identity import check_name

if TYPE_CHECKING:  # only the type: the audit layer does not depend on the node's files
    from tmpc.node.config import Cluster

__all__ = [
    "AUDIT_DIR",
    "HEAD_FILE",
    "LOG_FILE",
    "TORN_PREFIX",
    "ChainChecker",
    "CosignRecord",
    "Head",
    "Problem",
    "VerifyReport",
    "iter_lines",
    "log_paths",
    "read_head",
    "verify",
]

#: Where a node keeps its audit log: ``DIR/audit/audit.log`` and ``DIR/audit/head.json``.
AUDIT_DIR: Final = "audit"
LOG_FILE: Final = "audit.log"
HEAD_FILE: Final = "head.json"
#: A torn final line set aside at recovery: ``DIR/audit/audit.log.torn-<unix time>-<hex>``.
TORN_PREFIX: Final = "audit.log.torn-"
HEAD_FORMAT: Final = "tmpc-audit-head"
LOG_FORMAT: Final = "tmpc-audit-log"
_HEX32: Final = re.compile(r"[0-9a-f]{64}")
_HEX64: Final = re.compile(r"[0-9a-f]{128}")
_MAX_HEAD_BYTES: Final = 4096


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a log.

    ``seq``: the entry at fault (for a truncation, the first missing one), or None when the
    fault is not one entry's (a missing log, a forged ``head.json``); ``line``: the line of the
    file it was found on, when that is not ``seq``'s; ``reason``: what is wrong, in words.
    """

    seq: int | None
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        if self.seq is None:
            return self.reason
        where = f"entry {self.seq}"
        if self.line is not None and self.line != self.seq:
            where += f" (line {self.line})"
        return f"{where}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        """``{"seq", "line", "reason", "message"}`` (message: :func:`str` of the problem)."""
        return {"seq": self.seq, "line": self.line, "reason": self.reason, "message": str(self)}


@dataclass(frozen=True, slots=True)
class Head:
    """A parsed ``head.json``: the node says its log's last entry is ``seq`` with hash
    ``hash`` (``sig``: its signature, :func:`tmpc.audit.entry.sign_head`)."""

    node: str
    seq: int
    hash: bytes
    sig: bytes

    def to_json(self) -> dict[str, Any]:
        """The ``head.json`` document."""
        return {
            "format": HEAD_FORMAT,
            "version": 1,
            "node": self.node,
            "seq": self.seq,
            "hash": self.hash.hex(),
            "sig": self.sig.hex(),
        }

    def to_bytes(self) -> bytes:
        """The file's content: canonical JSON and a newline."""
        return canonical_json(self.to_json()) + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> Head:
        """Parse a ``head.json``; raises :class:`~tmpc.errors.DecodeError`."""
        doc = parse_json(data, "audit head.json", max_bytes=_MAX_HEAD_BYTES)
        try:
            if doc["format"] != HEAD_FORMAT or doc["version"] != 1:
                raise DecodeError("audit head.json: not a tmpc audit head of version 1")
            seq, h, sig = doc["seq"], doc["hash"], doc["sig"]
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
                raise DecodeError("audit head.json: seq is not a positive integer")
            if not (isinstance(h, str) and _HEX32.fullmatch(h)):
                raise DecodeError("audit head.json: hash is not 64 hex digits")
            if not (isinstance(sig, str) and _HEX64.fullmatch(sig)):
                raise DecodeError("audit head.json: sig is not 128 hex digits")
            return cls(check_name(doc["node"]), seq, bytes.fromhex(h), bytes.fromhex(sig))
        except (KeyError, TypeError, ParameterError):
            raise DecodeError("audit head.json is malformed") from None

    def verifies(self, host_pubkey: bytes) -> bool:
        """Whether the signature is the node's (33-byte ``host_pubkey``)."""
        return verify_head(host_pubkey, self.node, self.seq, self.hash, self.sig)


@dataclass(frozen=True, slots=True)
class CosignRecord:
    """A ``cosign`` entry: the log's node cosigned ``owner``'s head ``(seq, head)`` in its
    entry ``at_seq``."""

    owner: str
    seq: int
    head: bytes
    at_seq: int


class ChainChecker:
    """The sans-I/O checker of one node's log: feed it the lines in order (:meth:`add`).

    It checks that each line is a canonical entry of ``node`` numbered by its position, linked
    to the one before, with a correct hash and a valid signature under ``host_pubkey``; that
    entry 1 is the log's creation; and that each ``checkpoint`` entry names an earlier entry by
    its true hash, with at least ``min_cosigners`` valid cosignatures of cluster members (the
    signatures are checked only when ``cluster`` is given). It stops at the first problem
    (:attr:`problem`); everything before it is the valid prefix (:attr:`seq`, :meth:`hash_at`).
    """

    def __init__(
        self,
        node: str,
        host_pubkey: bytes,
        *,
        cluster: Cluster | None = None,
        min_cosigners: int = 1,
    ) -> None:
        self.node = check_name(node)
        self.host_pubkey = host_pubkey
        self.cluster = cluster
        self.min_cosigners = min_cosigners
        #: The first problem found (then :meth:`add` ignores further lines).
        self.problem: Problem | None = None
        #: The valid prefix's last entry.
        self.last: Entry | None = None
        self._hashes = bytearray()
        #: Valid ``checkpoint`` entries seen, and the highest entry one of them vouches for.
        self.checkpoints = 0
        self.anchored_seq = 0
        #: The last ``checkpoint`` entry (seq, time); (0, creation time) before the first one.
        self.last_checkpoint: tuple[int, float] = (0, 0.0)
        #: Every ``cosign`` entry, in order.
        self.cosigns: list[CosignRecord] = []
        #: Things worth knowing that do not make the log bad.
        self.warnings: list[str] = []

    @property
    def seq(self) -> int:
        """The number of valid entries so far (the valid prefix's last seq)."""
        return len(self._hashes) // 32

    @property
    def head(self) -> bytes:
        """The hash of the last valid entry (:data:`GENESIS_PREV` if none)."""
        return self.hash_at(self.seq) if self.seq else GENESIS_PREV

    def hash_at(self, seq: int) -> bytes:
        """The hash of valid entry ``seq`` (1-based); IndexError outside the valid prefix."""
        if not 1 <= seq <= self.seq:
            raise IndexError(seq)
        return bytes(self._hashes[32 * (seq - 1) : 32 * seq])

    def fail(self, problem: Problem) -> None:
        """Record ``problem`` unless an earlier one was recorded."""
        if self.problem is None:
            self.problem = problem

    def add(self, line_no: int, line: bytes) -> Entry | None:
        """Check the next line (``line_no`` counts from 1; ``line`` without its newline).

        Returns the entry if it is good, None if it is bad (then :attr:`problem` says why) or
        an earlier line was bad.
        """
        if self.problem is not None:
            return None
        expected = self.seq + 1
        try:
            entry = Entry.from_line(line)
        except DecodeError as exc:
            self.fail(Problem(expected, f"not a valid audit entry ({exc}): corrupt or edited"))
            return None
        problem = self._check(entry, expected, crypto=True)
        if problem is not None:
            if problem.seq == expected and line_no != expected:
                problem = Problem(problem.seq, problem.reason, line_no)
            self.fail(problem)
            return None
        self._hashes += entry.hash
        self.last = entry
        return entry

    def add_own(self, entry: Entry) -> Entry | None:
        """Add an entry the log's owner has just made with
        :func:`~tmpc.audit.entry.make_entry` (so its line is canonical, its hash is its
        content's, and its signature was verified when it was made) and written.

        Checks everything :meth:`add` does but the parse, the hash and the signature: its place
        in the chain and the structure of the log's own types. Returns as :meth:`add`. It
        **must not** be given an entry read from anywhere.
        """
        if self.problem is not None:
            return None
        problem = self._check(entry, self.seq + 1, crypto=False)
        if problem is not None:
            self.fail(problem)
            return None
        self._hashes += entry.hash
        self.last = entry
        return entry

    def _check(self, entry: Entry, expected: int, *, crypto: bool) -> Problem | None:
        reason = self._check_chain(entry, expected, crypto=crypto)
        if reason is not None:
            return Problem(expected, reason)
        if entry.type == LOG_CREATED:
            reason = self._check_created(entry)
        elif entry.type == CHECKPOINT:
            return self._check_checkpoint(entry)
        elif entry.type in (COSIGN, COSIGN_REFUSED):
            reason = self._check_cosign(entry)
        elif entry.type == LOG_DROPPED:
            reason = self._check_dropped(entry)
        return None if reason is None else Problem(expected, reason)

    def _check_chain(self, entry: Entry, expected: int, *, crypto: bool) -> str | None:
        if entry.seq != expected:
            return (
                f"seq {entry.seq} follows {expected - 1} (entries removed, duplicated or reordered)"
            )
        if entry.node != self.node:
            return f"written by node {entry.node}, not {self.node}"
        if crypto and not entry.hash_ok():
            return "hash does not match its content (edited)"
        if crypto and not entry.signature_ok(self.host_pubkey):
            return f"signature does not verify under node {self.node}'s host key (forged or edited)"
        if entry.prev != self.head:
            return (
                f"does not link to entry {expected - 1} (prev hash differs: reordered or spliced)"
            )
        if entry.seq == 1 and entry.type != LOG_CREATED:
            return "entry 1 is not the log's creation (the log's start was removed)"
        if entry.seq != 1 and entry.type == LOG_CREATED:
            return "a second log creation inside the log (logs spliced)"
        return None

    def _check_created(self, entry: Entry) -> str | None:
        d = entry.data
        if d.get("format") != LOG_FORMAT or d.get("version") != 1:
            return "not a tmpc audit log of version 1"
        if d.get("host_pubkey") != self.host_pubkey.hex():
            return "created under another host key"
        self.last_checkpoint = (0, entry.at)
        return None

    def _check_checkpoint(self, entry: Entry) -> Problem | None:
        d = entry.data
        seq, head, cluster_hex, cosigners = (
            d.get("seq"),
            d.get("head"),
            d.get("cluster"),
            d.get("cosigners"),
        )
        if (
            set(d) != {"seq", "head", "cluster", "cosigners"}
            or not isinstance(seq, int)
            or isinstance(seq, bool)
            or not 1 <= seq < entry.seq
            or not (isinstance(head, str) and _HEX32.fullmatch(head))
            or not (isinstance(cluster_hex, str) and _HEX32.fullmatch(cluster_hex))
            or not isinstance(cosigners, dict)
            or not all(isinstance(s, str) and _HEX64.fullmatch(s) for s in cosigners.values())
        ):
            return Problem(entry.seq, "a malformed checkpoint")
        if self.hash_at(seq) != bytes.fromhex(head):
            # The fault is in the entries the checkpoint vouches for, not in the checkpoint:
            # somewhere after the last head that still matches, up to ``seq``.
            names = ", ".join(sorted(cosigners)) or "nobody"
            after = f" after entry {self.anchored_seq}" if self.anchored_seq else ""
            return Problem(
                seq,
                f"differs from the head cosigned by {names} (checkpoint in entry {entry.seq}): "
                f"history rewritten{after}",
            )
        if self.cluster is not None:
            reason = self._check_cosigners(
                self.cluster, entry, seq, bytes.fromhex(head), cluster_hex, cosigners
            )
            if reason is not None:
                return Problem(entry.seq, reason)
        self.checkpoints += 1
        self.anchored_seq = max(self.anchored_seq, seq)
        self.last_checkpoint = (entry.seq, entry.at)
        return None

    def _check_cosigners(
        self,
        cluster: Cluster,
        entry: Entry,
        seq: int,
        head: bytes,
        cluster_hex: str,
        cosigners: Mapping[str, str],
    ) -> str | None:
        cluster_hash = bytes.fromhex(cluster_hex)
        if cluster_hash != cluster.hash:
            self.warnings.append(
                f"entry {entry.seq}: checkpoint cosigned in cluster {cluster_hex[:16]}, not in "
                f"the cluster file's ({cluster.hash.hex()[:16]})"
            )
        body = CheckpointBody(self.node, seq, head)
        for name, sig in sorted(cosigners.items()):
            if name == self.node:
                return "checkpoint cosigned by the node itself"
            try:
                key = cluster.member(name).host_pubkey
            except ParameterError:
                return f"checkpoint cosigned by {name!r}, not a member of the cluster"
            if not verify_cosign(key, cluster_hash, body, bytes.fromhex(sig)):
                return f"checkpoint: the cosignature of {name} does not verify (forged or edited)"
        if len(cosigners) < self.min_cosigners:
            return f"checkpoint has {len(cosigners)} cosignature(s); {self.min_cosigners} required"
        return None

    def _check_dropped(self, entry: Entry) -> str | None:
        d = entry.data
        count, types, until = d.get("count"), d.get("types"), d.get("until")
        if (
            set(d) != {"count", "types", "until"}
            or not _positive_int(count)
            or not isinstance(types, dict)
            or not all(_positive_int(n) for n in types.values())
            or not isinstance(until, float | int)
            or isinstance(until, bool)
        ):
            return f"a malformed {LOG_DROPPED} record"
        try:
            for t in types:
                check_type(t)
        except ParameterError:
            return f"a malformed {LOG_DROPPED} record"
        if sum(types.values()) > count:
            return f"a malformed {LOG_DROPPED} record (more typed events than its count)"
        self.warnings.append(
            f"entry {entry.seq}: {count} event(s) were not logged here (the node's audit queue "
            "was full)"
        )
        return None

    def _check_cosign(self, entry: Entry) -> str | None:
        d = entry.data
        try:
            body = CheckpointBody.from_json(
                {"node": d.get("node"), "seq": d.get("seq"), "head": d.get("head")}
            )
        except DecodeError:
            return f"a malformed {entry.type} record"
        if body.node == self.node:
            return f"a {entry.type} record about the node's own log"
        if entry.type == COSIGN:
            self.cosigns.append(CosignRecord(body.node, body.seq, body.head, entry.seq))
        return None


def _positive_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class VerifyReport:
    """The verdict of :func:`verify` on one node's log.

    ``entries`` / ``head``: the valid prefix (all entries if :attr:`ok`); ``checkpoints``: the
    valid cosigned checkpoints; ``anchored_seq``: the highest entry a cosigned head (a
    checkpoint or a peer's ``cosign`` record that matched) vouches for; ``problems``: every
    problem found, the first bad entry first (:attr:`first`); ``warnings``: what does not make
    the log bad (a torn final line, a peer log that could not be used, events the node
    dropped when its queue was full: ``log.dropped`` entries).
    """

    log: Path
    node: str
    entries: int
    head: bytes
    checkpoints: int
    anchored_seq: int
    problems: tuple[Problem, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    @property
    def first(self) -> Problem | None:
        """The first problem (the earliest bad entry), or None."""
        return self.problems[0] if self.problems else None

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON object (what ``tmpc audit verify --json`` prints)."""
        return {
            "ok": self.ok,
            "log": str(self.log),
            "node": self.node,
            "entries": self.entries,
            "head": self.head.hex(),
            "checkpoints": self.checkpoints,
            "anchored_seq": self.anchored_seq,
            "first_problem": self.first.to_json() if self.first else None,
            "problems": [p.to_json() for p in self.problems],
            "warnings": list(self.warnings),
        }


def log_paths(path: Path) -> tuple[Path, Path]:
    """``(audit.log, head.json)`` for a node directory, its ``audit`` directory or a log file.

    A directory holding ``audit/`` or ``node.json`` is a node directory; any other directory is
    taken to be the audit directory itself; a file is the log, with ``head.json`` beside it.
    """
    if path.is_dir():
        if (path / AUDIT_DIR).is_dir() or (path / "node.json").exists():
            path = path / AUDIT_DIR
        return path / LOG_FILE, path / HEAD_FILE
    return path, path.parent / HEAD_FILE


def read_head(path: Path) -> Head | None:
    """The ``head.json`` at ``path``, None if there is none; DecodeError if malformed."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_HEAD_BYTES + 1)
    except FileNotFoundError:
        return None
    return Head.from_bytes(data)


def iter_lines(fh: Any) -> Iterable[tuple[int, bytes, bool]]:
    """``(line number, line without newline, complete)`` of a binary file; the last item may
    be incomplete (no newline: a torn write). A line longer than :data:`MAX_LINE_BYTES` is
    yielded cut short (it then fails to parse) and the rest of the file is not read."""
    n = 0
    while True:
        raw = fh.readline(MAX_LINE_BYTES + 2)
        if not raw:
            return
        n += 1
        if raw.endswith(b"\n"):
            yield n, raw[:-1], True
        elif len(raw) > MAX_LINE_BYTES:
            yield n, raw, True
            return
        else:
            yield n, raw, False
            return


def _scan(log: Path, checker: ChainChecker) -> tuple[bool, bytes | None]:
    """Feed the log's lines to ``checker``; returns (the file exists, a torn final line)."""
    try:
        fh = open(log, "rb")
    except FileNotFoundError:
        return False, None
    with fh:
        for n, line, complete in iter_lines(fh):
            if not complete:
                return True, line
            checker.add(n, line)
            if checker.problem is not None:
                break
    return True, None


def _peer_records(
    paths: Iterable[Path], cluster: Cluster, node: str, warnings: list[str]
) -> list[tuple[str, CosignRecord]]:
    """The ``cosign`` records about ``node`` in the valid prefixes of the peers' logs."""
    out: list[tuple[str, CosignRecord]] = []
    for path in paths:
        log, _head = log_paths(path)
        try:
            with open(log, "rb") as fh:
                first = fh.readline(MAX_LINE_BYTES + 2).rstrip(b"\n")
            peer = Entry.from_line(first).node
        except FileNotFoundError:
            warnings.append(f"peer log {log}: not found")
            continue
        except DecodeError:
            warnings.append(f"peer log {log}: its first entry is unreadable; not used")
            continue
        if peer == node:
            warnings.append(f"peer log {log} is node {node}'s own log; not used")
            continue
        try:
            key = cluster.member(peer).host_pubkey
        except ParameterError:
            warnings.append(f"peer log {log}: node {peer} is not in the cluster; not used")
            continue
        checker = ChainChecker(peer, key, cluster=cluster, min_cosigners=0)
        _scan(log, checker)
        if checker.problem is not None:
            warnings.append(
                f"peer log {log} (node {peer}): {checker.problem}; only its entries up to "
                f"{checker.seq} were used"
            )
        out.extend((peer, r) for r in checker.cosigns if r.owner == node)
    return out


def verify(
    path: Path,
    cluster: Cluster,
    node: str,
    *,
    min_cosigners: int = 1,
    peer_logs: Iterable[Path] = (),
    max_unanchored: int | None = None,
) -> VerifyReport:
    """Check node ``node``'s audit log against ``cluster`` and name the first bad entry.

    Args:
        path: the node directory, its ``audit`` directory, or the log file (:func:`log_paths`).
        cluster: the cluster file; gives the node's and the cosigners' host keys.
        node: the node whose log it is.
        min_cosigners: cosignatures each ``checkpoint`` entry needs.
        peer_logs: other nodes' logs (directories or files, as ``path``): their ``cosign``
            records about ``node`` must match its log (each peer log is itself checked, and
            only its valid prefix is used).
        max_unanchored: if given, more entries than this after the last cosigned head is a
            problem (a node that stopped asking for checkpoints).

    Returns:
        A :class:`VerifyReport`; its ``problems`` are sorted by entry (problems about no one
        entry first), so :attr:`VerifyReport.first` names the first bad entry.

    Raises:
        ParameterError: ``node`` is not a member of ``cluster``.
        OSError: a file could not be read (other than missing).

    ``head.json`` is read before the log, so a node appending meanwhile makes the log longer
    than its head, never shorter (a longer log is fine: only the key can add entries).
    """
    host_pubkey = cluster.member(node).host_pubkey
    log, head_path = log_paths(path)
    problems: list[Problem] = []
    warnings: list[str] = []
    head: Head | None = None
    try:
        head = read_head(head_path)
    except DecodeError as exc:
        problems.append(Problem(None, f"{HEAD_FILE}: {exc}"))
    if head is not None and (head.node != node or not head.verifies(host_pubkey)):
        problems.append(
            Problem(
                None,
                f"{HEAD_FILE} does not verify under node {node}'s host key (forged or "
                "edited): the log's end is unconfirmed",
            )
        )
        head = None
    checker = ChainChecker(node, host_pubkey, cluster=cluster, min_cosigners=min_cosigners)
    exists, torn = _scan(log, checker)
    if not exists:
        problems.append(Problem(None, f"no audit log at {log}"))
        return VerifyReport(log, node, 0, GENESIS_PREV, 0, 0, tuple(problems), ())
    complete = checker.problem is None
    if checker.problem is not None:
        problems.append(checker.problem)
    warnings.extend(checker.warnings)
    last = checker.seq
    if torn is not None:
        warnings.append(
            f"entry {last + 1}: the final line is incomplete ({len(torn)} bytes, no newline): "
            "a write cut short, e.g. by a crash; the node sets it aside when it next opens the log"
        )
    if complete and last == 0:
        problems.append(Problem(None, f"the audit log {log} is empty"))
    if head is not None:
        if head.seq > last and complete:
            problems.append(
                Problem(
                    last + 1,
                    f"missing: the log ends at entry {last} but its signed {HEAD_FILE} names "
                    f"entry {head.seq} (truncated)",
                )
            )
        elif head.seq <= last and checker.hash_at(head.seq) != head.hash:
            problems.append(
                Problem(head.seq, f"differs from the one its signed {HEAD_FILE} names (rewritten)")
            )
    elif complete and last > 1 and not any(p.seq is None for p in problems):
        problems.append(
            Problem(None, f"{HEAD_FILE} is missing: the log's end (entry {last}) is unconfirmed")
        )
    anchored = checker.anchored_seq
    for peer, rec in _peer_records(peer_logs, cluster, node, warnings):
        if rec.seq > last:
            if complete:
                problems.append(
                    Problem(
                        last + 1,
                        f"missing: the log ends at entry {last} but {peer} cosigned entry "
                        f"{rec.seq} (its entry {rec.at_seq}): truncated or rewritten",
                    )
                )
        elif checker.hash_at(rec.seq) != rec.head:
            problems.append(
                Problem(
                    rec.seq,
                    f"differs from the head {peer} cosigned (its entry {rec.at_seq}): "
                    "history rewritten",
                )
            )
        else:
            anchored = max(anchored, rec.seq)
    if max_unanchored is not None and complete and last - anchored > max_unanchored:
        problems.append(
            Problem(
                anchored + max_unanchored + 1,
                f"not covered by a cosigned checkpoint: {last - anchored} entries follow the "
                f"last cosigned head (entry {anchored}); at most {max_unanchored} allowed",
            )
        )
    problems.sort(key=lambda p: -1 if p.seq is None else p.seq)
    unique = tuple(dict.fromkeys(problems))
    torn_files = sorted(q.name for q in log.parent.glob(f"{TORN_PREFIX}*"))
    if torn_files:
        warnings.append(f"torn final lines set aside at recovery: {', '.join(torn_files)}")
    return VerifyReport(
        log,
        node,
        last,
        checker.head,
        checker.checkpoints,
        anchored,
        unique,
        tuple(warnings),
    )
