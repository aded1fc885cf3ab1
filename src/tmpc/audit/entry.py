"""One audit-log entry: its canonical line, its hash, its signature, and what it may hold.

An entry is one line of canonical JSON (keys sorted, no spaces, ASCII only)::

    {"at":1767225600.25,"data":{...},"hash":"<64 hex>","node":"a","prev":"<64 hex>",
     "seq":7,"sig":"<128 hex>","type":"session.started"}

- ``seq``: 1, 2, 3, ... with no gap;
- ``at``: when the node wrote it (Unix time, a float: read-only information, never checked
  for order, since wall clocks step back);
- ``prev``: the ``hash`` of entry ``seq - 1`` (:data:`GENESIS_PREV`, 64 zeros, for entry 1);
- ``hash``: ``tagged_hash("tmpc/audit/entry/v1", canonical JSON of {at, data, node, prev, seq,
  type})``, so it commits to the entry and, through ``prev``, to every earlier one;
- ``sig``: the node's BIP340 signature (identity key, :class:`~tmpc.wire.identity.NodeIdentity`)
  of ``tagged_hash("tmpc/audit/entry-sig/v1", hash)``.

This is the linear hash chain of tamper-evident logging (Schneier and Kelsey, "Secure Audit
Logs to Support Computer Forensics", 1999; Crosby and Wallach, "Efficient Data Structures for
Tamper-Evident Logging", USENIX Security 2009, whose history tree we do not implement: a
linear chain has linear-size proofs, which is fine for logs that auditors read in full), with
each entry signed so that one entry proves who wrote it. A chain only proves that a history is
*internally* consistent: the node that holds the key can write a different consistent one,
which is why heads are cross-signed by the other nodes (:mod:`tmpc.audit.checkpoint`).

``data`` never holds a secret: :func:`check_data` refuses bytes and any key named like a
secret, share, nonce or passphrase, before anything is written.

Nothing in this module does I/O; :mod:`tmpc.audit.log` writes entries, :mod:`tmpc.audit.verify`
checks them.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tmpc.encoding import lp_join, tagged_hash
from tmpc.errors import DecodeError, ParameterError
from tmpc.wire.identity import NodeIdentity, check_name, verify_signature

__all__ = [
    "CHECKPOINT",
    "COSIGN",
    "COSIGN_REFUSED",
    "EVENT_TYPES",
    "GENESIS_PREV",
    "LIFECYCLE_SWITCHED",
    "LOG_CREATED",
    "LOG_DROPPED",
    "LOG_RECOVERED",
    "MAX_DATA_DEPTH",
    "MAX_LINE_BYTES",
    "MESSAGE_REJECTED",
    "POLICY_INSTALLED",
    "REQUEST_APPROVED",
    "REQUEST_RECEIVED",
    "REQUEST_REFUSED",
    "RESERVED_TYPES",
    "SESSION_BLAME",
    "SESSION_COMPLETED",
    "SESSION_ROUND",
    "SESSION_STARTED",
    "SESSION_TIMEOUT",
    "Entry",
    "canonical_json",
    "check_data",
    "check_event",
    "check_type",
    "head_message",
    "make_checked_entry",
    "make_entry",
    "sign_head",
    "verify_head",
]

#: Domain-separation tags (BIP340 tagged hashes); a new format is a new tag, never an edit.
ENTRY_TAG: Final = "tmpc/audit/entry/v1"
ENTRY_SIG_TAG: Final = "tmpc/audit/entry-sig/v1"
HEAD_TAG: Final = "tmpc/audit/head/v1"

#: ``prev`` of entry 1.
GENESIS_PREV: Final = bytes(32)
#: The longest entry line (newline excluded); a longer one is refused when written and read.
MAX_LINE_BYTES: Final = 64 * 1024
#: How deeply the objects and lists of ``data`` may nest.
MAX_DATA_DEPTH: Final = 8

# Event types the node writes (issue 12: every request, session, key lifecycle event, policy
# change and rejected message). Any well-formed type may be appended (``lifecycle.staged``,
# ``session.failed``, ...); these are the ones the monitor and the docs name.
REQUEST_RECEIVED: Final = "request.received"
REQUEST_REFUSED: Final = "request.refused"
REQUEST_APPROVED: Final = "request.approved"
SESSION_STARTED: Final = "session.started"
SESSION_ROUND: Final = "session.round"
SESSION_BLAME: Final = "session.blame"
SESSION_TIMEOUT: Final = "session.timeout"
SESSION_COMPLETED: Final = "session.completed"
LIFECYCLE_SWITCHED: Final = "lifecycle.switched"
POLICY_INSTALLED: Final = "policy.installed"
MESSAGE_REJECTED: Final = "message.rejected"
#: The documented event types (not a closed list: see :func:`check_type`).
EVENT_TYPES: Final = frozenset(
    {
        REQUEST_RECEIVED,
        REQUEST_REFUSED,
        REQUEST_APPROVED,
        SESSION_STARTED,
        SESSION_ROUND,
        SESSION_BLAME,
        SESSION_TIMEOUT,
        SESSION_COMPLETED,
        LIFECYCLE_SWITCHED,
        POLICY_INSTALLED,
        MESSAGE_REJECTED,
    }
)

# Written only by tmpc.audit itself, with a structure the verifier checks.
LOG_CREATED: Final = "log.created"
LOG_RECOVERED: Final = "log.recovered"
#: Entries the log could not take (its queue was full) stood here: ``{"count", "types",
#: "until"}`` (see :meth:`tmpc.audit.log.AuditLog.submit`).
LOG_DROPPED: Final = "log.dropped"
CHECKPOINT: Final = "checkpoint"
COSIGN: Final = "cosign"
COSIGN_REFUSED: Final = "cosign.refused"
#: Types :meth:`tmpc.audit.log.AuditLog.append` refuses: only the log's own methods write them.
RESERVED_TYPES: Final = frozenset(
    {LOG_CREATED, LOG_RECOVERED, LOG_DROPPED, CHECKPOINT, COSIGN, COSIGN_REFUSED}
)

_TYPE: Final = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){0,3}")
_HEX32: Final = re.compile(r"[0-9a-f]{64}")
_HEX64: Final = re.compile(r"[0-9a-f]{128}")
_FIELDS: Final = frozenset({"at", "data", "hash", "node", "prev", "seq", "sig", "type"})

# The scrubber. A key is refused if it *contains* one of these (they hardly occur by chance:
# "hostseckey", "secshare", "nonce_commitment" are all refused) ...
_SECRET_SUBSTRINGS: Final = (
    "secret",
    "seckey",
    "secshare",
    "passphrase",
    "password",
    "privkey",
    "private",
    "mnemonic",
    "nonce",
)
# ... or if one of its words is one of these (as words only: "reshare" and "pinned" pass,
# "share", "share_index" and "seed" do not).
_SECRET_WORDS: Final = frozenset({"share", "shares", "seed", "pin"})
_WORD_SPLIT: Final = re.compile(r"[^a-z0-9]+")
_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# One encoder object: json.dumps builds a new one per call when given options.
_ENCODER: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)
# For check_data's output only, which has no cycles (it is a fresh tree, at most
# MAX_DATA_DEPTH deep); key order does not change the length.
_SIZE_ENCODER: Final = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=True, allow_nan=False, check_circular=False
)


def canonical_json(value: Any) -> bytes:
    """The canonical JSON of ``value``: keys sorted, no spaces, ASCII only, no NaN/Infinity.

    The encoding every audit hash and line uses; ``json.loads`` of it re-encodes to the same
    bytes (Python's float ``repr`` round-trips). Raises :class:`ValueError` / :class:`TypeError`
    for values that are not JSON (callers check with :func:`check_data` first).
    """
    return _ENCODER.encode(value).encode()


def check_type(event_type: object) -> str:
    """Return ``event_type`` if it is a well-formed event type, else raise ParameterError.

    A type is 1 to 4 dot-separated words of ``[a-z0-9_]`` each starting with a letter, at most
    64 characters (``"session.round"``). This does not refuse :data:`RESERVED_TYPES`; the log
    does that.
    """
    if not isinstance(event_type, str) or len(event_type) > 64 or not _TYPE.fullmatch(event_type):
        raise ParameterError("audit event type must be dot-separated words of [a-z0-9_]")
    return event_type


# Keys come from a small vocabulary (the node's field names), so the verdicts are cached; the
# bound keeps a stream of distinct keys from growing the cache.
@functools.lru_cache(maxsize=4096)
def _secret_like(key: str) -> bool:
    low = key.lower()
    if any(s in low for s in _SECRET_SUBSTRINGS):
        return True
    words = _WORD_SPLIT.split(_CAMEL.sub("_", key).lower())
    return any(w in _SECRET_WORDS for w in words)


# Where a value sits in ``data`` as a chain (parent, key or index); made into text only when an
# error names it.
_Path = tuple[Any, str | int] | None


def _path_text(path: _Path) -> str:
    parts: list[str] = []
    while path is not None:
        path, step = path
        parts.append(f"[{step}]" if isinstance(step, int) else f".{step}")
    return "data" + "".join(reversed(parts))


def _check_value(value: object, path: _Path, depth: int) -> Any:
    # The common exact types first: the scrubber runs on the node's request path (submit).
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ParameterError(f"audit data: {_path_text(path)} is not a finite number")
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        raise ParameterError(
            f"audit data: {_path_text(path)} is bytes; write public values as hex text (and "
            "never a secret)"
        )
    if depth >= MAX_DATA_DEPTH:
        raise ParameterError(
            f"audit data: {_path_text(path)} nests deeper than {MAX_DATA_DEPTH} levels"
        )
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ParameterError(f"audit data: {_path_text(path)} has a key that is not text")
            if _secret_like(k):
                raise ParameterError(
                    f"audit data: {_path_text((path, k))} is named like a secret; an audit entry "
                    "never holds one (rename a public field, e.g. party instead of share)"
                )
            tv = type(v)
            if tv is str or tv is int or tv is bool or v is None:
                out[k] = v
            else:
                out[k] = _check_value(v, (path, k), depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [
            v
            if (tv := type(v)) is str or tv is int or tv is bool or v is None
            else _check_value(v, (path, i), depth + 1)
            for i, v in enumerate(value)
        ]
    raise ParameterError(
        f"audit data: {_path_text(path)} is a {type(value).__name__}, not a JSON value "
        "(text, number, boolean, null, list or object)"
    )


def check_data(data: Mapping[str, object] | None) -> dict[str, Any]:
    """The scrubber: ``data`` as a plain JSON object, or ParameterError if it may hold a secret.

    Refused, naming the offending field (never its value):

    - a key named like a secret: containing ``secret``, ``seckey``, ``secshare``,
      ``passphrase``, ``password``, ``privkey``, ``private``, ``mnemonic`` or ``nonce``, or
      with a word ``share``, ``shares``, ``seed`` or ``pin`` (``share_index``, ``keyShare``);
    - a ``bytes`` / ``bytearray`` / ``memoryview`` value: public bytes are written as hex by the
      caller, on purpose, so that no buffer of key material lands in a log by accident;
    - anything that is not JSON (other objects, non-text keys, NaN or infinite floats), or
      nesting deeper than :data:`MAX_DATA_DEPTH`.

    A name check cannot prove that a value is not secret: callers **must not** put secret
    values under innocent names. Returns a new dict (tuples become lists), detached from the
    caller's objects.
    """
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ParameterError("audit data must be a JSON object (a mapping)")
    checked: dict[str, Any] = _check_value(data, None, 0)
    return checked


# The longest line an entry of empty data can have, with the widest ``seq`` (20 digits) and
# ``at`` (``repr`` of a float: at most 24 characters) and an empty node name and type.
_LINE_OVERHEAD: Final = len(
    canonical_json(
        {
            "at": -2.2250738585072014e-308,
            "data": {},
            "hash": "0" * 64,
            "node": "",
            "prev": "0" * 64,
            "seq": 10**19,
            "sig": "0" * 128,
            "type": "",
        }
    )
) - len(b"{}")


def check_event(
    event_type: object, data: Mapping[str, object] | None, *, node: str
) -> dict[str, Any]:
    """Check an event before it is queued: everything :func:`make_entry` would refuse about it
    without signing anything. Returns :func:`check_data`'s clean copy of ``data``.

    Raises:
        ParameterError: a malformed type (:func:`check_type`), ``data`` the scrubber refuses
            (:func:`check_data`), or an event whose line could exceed :data:`MAX_LINE_BYTES`
            (the bound assumes the widest ``seq`` and time, so it may refuse an event a few
            dozen bytes short of the limit, which :func:`make_entry` would still take).
    """
    name = check_type(event_type)
    clean = check_data(data)
    size = len(_SIZE_ENCODER.encode(clean))  # node names and types are never escaped
    if _LINE_OVERHEAD + len(node) + len(name) + size > MAX_LINE_BYTES:
        raise ParameterError(f"audit entry could be longer than {MAX_LINE_BYTES} bytes")
    return clean


def _hex(value: object, pattern: re.Pattern[str], what: str) -> bytes:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise DecodeError(f"{what} is not lower-case hex of the right length")
    return bytes.fromhex(value)


def _hashed_fields(
    seq: int, at: float, node: str, event_type: str, data: Mapping[str, Any], prev: bytes
) -> dict[str, Any]:
    return {
        "seq": seq,
        "at": at,
        "node": node,
        "type": event_type,
        "data": data,
        "prev": prev.hex(),
    }


def _entry_hash(fields: Mapping[str, Any]) -> bytes:
    return tagged_hash(ENTRY_TAG, canonical_json(fields))


@dataclass(frozen=True, slots=True)
class Entry:
    """One signed audit entry (see the module docstring for the fields).

    ``prev`` and ``hash`` are 32 bytes, ``sig`` 64 bytes. Build one with :func:`make_entry`;
    parse one with :meth:`from_line`, which checks its form but neither its hash nor its
    signature (:meth:`hash_ok`, :meth:`signature_ok`). ``data`` is a plain dict: an entry is
    not hashable, and changing its ``data`` changes nothing on disk.
    """

    seq: int
    at: float
    node: str
    type: str
    data: dict[str, Any]
    prev: bytes
    hash: bytes
    sig: bytes

    def computed_hash(self) -> bytes:
        """The hash the entry's content gives (equal to :attr:`hash` unless it was edited)."""
        return _entry_hash(
            _hashed_fields(self.seq, self.at, self.node, self.type, self.data, self.prev)
        )

    def hash_ok(self) -> bool:
        """Whether :attr:`hash` is the hash of the entry's content."""
        return self.computed_hash() == self.hash

    def signature_ok(self, host_pubkey: bytes) -> bool:
        """Whether :attr:`sig` is the signature of :attr:`hash` by the 33-byte ``host_pubkey``."""
        return verify_signature(host_pubkey, ENTRY_SIG_TAG, self.hash, self.sig)

    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON object (hex for the byte fields)."""
        doc = _hashed_fields(self.seq, self.at, self.node, self.type, self.data, self.prev)
        doc["hash"] = self.hash.hex()
        doc["sig"] = self.sig.hex()
        return doc

    def to_line(self) -> bytes:
        """The entry's line in the log: its canonical JSON, without the newline."""
        return canonical_json(self.to_json())

    @classmethod
    def from_line(cls, line: bytes) -> Entry:
        """Parse one line (without its newline).

        Raises :class:`~tmpc.errors.DecodeError` if the line is longer than
        :data:`MAX_LINE_BYTES`, is not JSON, lacks a field or has an extra one, has a field of
        the wrong type or length, or is not in canonical form (so one entry has exactly one
        line, and a duplicated key cannot show one reader a value the hash does not cover).
        """
        if len(line) > MAX_LINE_BYTES:
            raise DecodeError(f"longer than {MAX_LINE_BYTES} bytes")
        try:
            doc = json.loads(line.decode("ascii"), parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise DecodeError("not a JSON line") from None
        if not isinstance(doc, dict) or set(doc) != _FIELDS:
            raise DecodeError("not an audit entry (fields missing or unknown)")
        seq, at, node, event_type, data = (doc[k] for k in ("seq", "at", "node", "type", "data"))
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise DecodeError("seq is not a positive integer")
        if not isinstance(at, float) or not math.isfinite(at):
            raise DecodeError("at is not a time")
        if not isinstance(data, dict):
            raise DecodeError("data is not an object")
        try:
            check_name(node)
            check_type(event_type)
        except ParameterError as exc:
            raise DecodeError(str(exc)) from None
        entry = cls(
            seq,
            at,
            node,
            event_type,
            data,
            _hex(doc["prev"], _HEX32, "prev"),
            _hex(doc["hash"], _HEX32, "hash"),
            _hex(doc["sig"], _HEX64, "sig"),
        )
        try:
            canonical = canonical_json(doc)
        except (TypeError, ValueError):  # pragma: no cover (json.loads output re-encodes)
            raise DecodeError("not canonical JSON") from None
        if canonical != line:
            raise DecodeError("not in canonical form")
        return entry


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def make_entry(
    identity: NodeIdentity,
    *,
    node: str,
    seq: int,
    prev: bytes,
    at: float,
    event_type: str,
    data: Mapping[str, object] | None,
) -> Entry:
    """A new signed entry (no I/O; the time is an argument).

    Args:
        identity: the node's identity; signs the entry's hash.
        node: the node's name (as in the cluster file).
        seq: the entry's number (1 for the first).
        prev: the 32-byte hash of entry ``seq - 1`` (:data:`GENESIS_PREV` for entry 1).
        at: Unix time of the event.
        event_type: a well-formed type (:func:`check_type`).
        data: the event's public details; passed through :func:`check_data`.

    Raises:
        ParameterError: bad type, name, seq, prev, or ``data`` that :func:`check_data` refuses
            or whose line would exceed :data:`MAX_LINE_BYTES`.
    """
    check_name(node)
    check_type(event_type)
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise ParameterError("audit seq must be a positive integer")
    if not isinstance(prev, bytes) or len(prev) != 32:
        raise ParameterError("audit prev must be 32 bytes")
    return make_checked_entry(  # which refuses a time that is not finite
        identity, node=node, seq=seq, prev=prev, at=float(at), event_type=event_type,
        clean=check_data(data),
    )[0]  # fmt: skip


def make_checked_entry(
    identity: NodeIdentity,
    *,
    node: str,
    seq: int,
    prev: bytes,
    at: float,
    event_type: str,
    clean: dict[str, Any],
) -> tuple[Entry, bytes]:
    """A new signed entry and its line (without the newline), from checked arguments: the
    audit log's writer, whose events :func:`check_event` checked when they were submitted.

    ``clean`` must be :func:`check_data`'s output (a fresh tree of plain JSON values, which is
    what the hash covers as it stands), ``node`` and ``event_type`` well-formed, ``seq``
    positive, ``prev`` 32 bytes and ``at`` a finite float: use :func:`make_entry` for anything
    else. The line is built from the canonical JSON of each field, in the order of their
    sorted keys, so it is byte for byte ``canonical_json(entry.to_json())``.

    Raises ParameterError if the line would exceed :data:`MAX_LINE_BYTES` (or the time is
    not finite).
    """
    if not math.isfinite(at):
        raise ParameterError("audit time must be finite")
    enc = _ENCODER.encode
    at_text, data_text = repr(at), enc(clean)
    node_text, type_text, prev_hex = enc(node), enc(event_type), prev.hex()
    # Keys in sorted order: at, data, (hash), node, prev, seq, (sig), type.
    hashed = (
        f'{{"at":{at_text},"data":{data_text},"node":{node_text},"prev":"{prev_hex}",'
        f'"seq":{seq},"type":{type_text}}}'
    )
    h = tagged_hash(ENTRY_TAG, hashed.encode())
    sig = identity.sign(ENTRY_SIG_TAG, h)
    line = (
        f'{{"at":{at_text},"data":{data_text},"hash":"{h.hex()}","node":{node_text},'
        f'"prev":"{prev_hex}","seq":{seq},"sig":"{sig.hex()}","type":{type_text}}}'
    ).encode()
    if len(line) > MAX_LINE_BYTES:
        raise ParameterError(f"audit entry longer than {MAX_LINE_BYTES} bytes")
    return Entry(seq, at, node, event_type, clean, prev, h, sig), line


def head_message(node: str, seq: int, head: bytes) -> bytes:
    """The bytes a head signature covers: ``lp_join(node, seq as 8 bytes big-endian, head)``."""
    return lp_join([node.encode(), seq.to_bytes(8, "big"), head])


def sign_head(identity: NodeIdentity, node: str, seq: int, head: bytes) -> bytes:
    """The node's signature (64 bytes) of its log's head: entry ``seq`` has hash ``head``.

    Under its own tag (``tmpc/audit/head/v1``), so an entry's signature cannot stand in for a
    head's: whoever removes the last entries of a log cannot name an earlier entry as the head
    without the key.
    """
    return identity.sign(HEAD_TAG, head_message(node, seq, head))


def verify_head(host_pubkey: bytes, node: str, seq: int, head: bytes, sig: bytes) -> bool:
    """Whether ``sig`` is ``node``'s signature (:func:`sign_head`) of head ``(seq, head)``."""
    return verify_signature(host_pubkey, HEAD_TAG, head_message(node, seq, head), sig)
