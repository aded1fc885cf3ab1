"""Signed, and for point-to-point messages encrypted, envelopes for every protocol message.

Party nodes exchange protocol messages over untrusted transports (TCP, a Redis relay, files).
Each message travels in an :class:`Envelope` that its sender signs with its identity key
(:mod:`tmpc.wire.identity`) over every routing field and the body; a point-to-point payload is
also encrypted to its recipient. :func:`seal` builds one, :class:`Opener` (one per node)
checks and opens them.

What the envelope protects against — a transport, relay or network attacker, or a cluster
member forging in another's name, **cannot**:

- read a point-to-point payload (ChaCha20-Poly1305 under a key of that session and
  direction, derived from the static X25519 keys of sender and recipient);
- forge or alter any field or the payload (BIP340 signature by the sender over all of it;
  the AEAD also authenticates the header);
- redirect a message to another node (the recipient is signed, and the key is the pair's),
  reflect it back to its sender, or make a broadcast look point-to-point;
- move a message into another cluster, wallet, session, attempt, protocol or round (all are
  signed, and cluster and session are bound into the encryption key);
- replay a message into its session: identical copies are dropped and counted (``duplicate``);
- replay a message of a finished session, once the node refuses that session (``stale``,
  through ``is_known_session``: the node's policy, see :class:`Opener`);
- claim a sender outside the cluster.

A member sending two different messages for one round is caught (``equivocation``), and the
two signed envelopes are kept as transferable evidence. Broadcasts are not encrypted (every
member may read them) and are addressed to ``"*"``, so the same signed bytes can be shown to
every other member as evidence.

What it does **not** protect against:

- dropping, delaying or reordering messages (nodes re-send stored bytes; protocols time out);
- traffic analysis: sizes, timing, and every header field (cluster, wallet, session, attempt,
  protocol, round, sender, recipient) are in clear text;
- a compromised node: its secret key signs anything, and because the X25519 keys are static
  there is **no forward secrecy** — whoever later learns a node's secret key can decrypt
  every recorded point-to-point envelope to or from that node;
- replays of a forgotten session when the caller's ``is_known_session`` accepts it;
- denial of service by a member within a live session (it can make the :class:`Opener` keep
  one record per distinct attempt, protocol and round it signs, until the session is
  forgotten; the protocol machine rejects such messages and names their sender).

Wire format (all integers big-endian), :meth:`Envelope.to_bytes`::

    header = version u8 (1) || flags u8 (bit 0: encrypted) || cluster (32) || session (32)
             || attempt u32 || round u16 || len u8 || wallet (0..64)
             || len u8 || protocol (1..32, [A-Za-z0-9._-]) || len u8 || sender (1..64)
             || len u8 || recipient (1..64, or "*")
    envelope = header || len u32 || body || signature (64)

``body`` is the payload of a broadcast, or ``nonce (12) || ChaCha20-Poly1305(payload, aad =
header)`` of a point-to-point message. The signature is BIP340 under the sender's host key of
``tagged_hash("tmpc/wire/envelope/v1", header || len u32 || body)``. A point-to-point message
is encrypted exactly when its recipient is not ``"*"``. The whole envelope is at most
:data:`MAX_ENVELOPE` bytes; decoding refuses anything that is not exactly this canonical form.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tmpc.encoding import lp_join
from tmpc.errors import CryptoError, DecodeError, ParameterError, ProtocolError
from tmpc.wire.identity import NAME_PATTERN, NodeIdentity, NodePublic, verify_signature

__all__ = [
    "BROADCAST",
    "FLAG_ENCRYPTED",
    "MAX_ENVELOPE",
    "REASONS",
    "SIGNATURE_TAG",
    "VERSION",
    "Envelope",
    "EnvelopeError",
    "Opened",
    "Opener",
    "seal",
    "verify_evidence",
]

#: The only envelope format version.
VERSION: Final = 1
#: The recipient of a broadcast.
BROADCAST: Final = "*"
#: Flag bit: the body is ``nonce || ciphertext`` (point-to-point), not the payload.
FLAG_ENCRYPTED: Final = 0x01
#: Largest envelope, in bytes (16 MiB; the largest protocol message is about 1.1 MiB).
MAX_ENVELOPE: Final = 16 << 20
#: Tag of the tagged hash that the sender signs.
SIGNATURE_TAG: Final = "tmpc/wire/envelope/v1"
#: Every reason an :class:`EnvelopeError` can carry.
REASONS: Final = frozenset(
    {
        "malformed",
        "foreign",
        "unknown-sender",
        "misrouted",
        "tampered",
        "undecryptable",
        "equivocation",
        "stale",
    }
)

_MAX_WALLET: Final = 64
_MAX_PROTOCOL: Final = 32
_NONCE_LEN: Final = 12
_TAG_LEN: Final = 16
_SIG_LEN: Final = 64
_PROTOCOL_PATTERN: Final = re.compile(r"[A-Za-z0-9._-]{1,32}")
# version, flags, cluster, session, attempt, round
_FIXED: Final = struct.Struct(">BB32s32sIH")
# fixed part, four u8 lengths, the u32 body length, the signature
_OVERHEAD: Final = _FIXED.size + 4 + 4 + _SIG_LEN


class EnvelopeError(ProtocolError):
    """An envelope was refused; :attr:`reason` says why (one of :data:`REASONS`).

    :attr:`culprits` holds the sender's **name** exactly when the sender's signature verified
    and the fault is the sender's own (``undecryptable``: it signed a body that does not
    decrypt; ``equivocation``: it signed two different messages for one round); otherwise it
    is empty, since a relay can forge, alter, misroute or replay bytes. (At this layer parties
    are node names, not protocol party ids, hence ``tuple[str, ...]``.) :attr:`evidence` holds
    the signed envelopes that prove an equivocation (first seen, then the new one). Texts name
    the reason, the node names and lengths, never keys or payloads.
    """

    culprits: tuple[str, ...]  # type: ignore[assignment]  # node names at this layer

    def __init__(
        self,
        reason: str,
        detail: str = "",
        *,
        culprit: str | None = None,
        evidence: tuple[bytes, ...] = (),
    ) -> None:
        if reason not in REASONS:
            raise ParameterError("unknown envelope rejection reason")
        super().__init__(f"envelope refused ({reason})" + (f": {detail}" if detail else ""))
        self.reason: str = reason
        self.culprits = (culprit,) if culprit is not None else ()
        self.evidence: tuple[bytes, ...] = evidence


def _malformed(detail: str) -> EnvelopeError:
    return EnvelopeError("malformed", detail)


def _param_bytes(data: object, length: int, what: str) -> bytes:
    """``data`` as bytes if it is ``length`` bytes, else :class:`~tmpc.errors.ParameterError`."""
    if not isinstance(data, bytes | bytearray) or len(data) != length:
        raise ParameterError(f"{what} must be {length} bytes")
    return bytes(data)


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """One envelope (see the module docstring for the format), immutable and validated.

    Fields: ``version`` (1), ``cluster`` (32-byte cluster-file hash), ``wallet`` (0..64
    bytes), ``session`` (32 bytes), ``attempt`` (u32), ``protocol`` (1..32 characters of
    ``[A-Za-z0-9._-]``), ``round`` (u16), ``sender`` (a node name), ``recipient`` (a node name
    other than the sender, or ``"*"``), ``flags`` (:data:`FLAG_ENCRYPTED` exactly for a
    point-to-point envelope), ``body`` (payload, or nonce and ciphertext), ``signature`` (64
    bytes). Constructing an invalid one raises :class:`~tmpc.errors.ParameterError`;
    :meth:`from_bytes` raises :class:`EnvelopeError` (``malformed``) instead.
    """

    version: int = VERSION
    cluster: bytes
    wallet: bytes
    session: bytes
    attempt: int
    protocol: str
    round: int
    sender: str
    recipient: str
    flags: int
    body: bytes = field(repr=False)
    signature: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if self.version != VERSION:
            raise ParameterError(f"envelope version must be {VERSION}")
        for name, value, n in (("cluster", self.cluster, 32), ("session", self.session, 32)):
            if not isinstance(value, bytes) or len(value) != n:
                raise ParameterError(f"envelope {name} must be {n} bytes")
        if not isinstance(self.wallet, bytes) or len(self.wallet) > _MAX_WALLET:
            raise ParameterError(f"envelope wallet must be at most {_MAX_WALLET} bytes")
        for name, number, bits in (("attempt", self.attempt, 32), ("round", self.round, 16)):
            if type(number) is not int or not 0 <= number < 1 << bits:
                raise ParameterError(f"envelope {name} must be an unsigned {bits}-bit integer")
        if not isinstance(self.protocol, str) or not _PROTOCOL_PATTERN.fullmatch(self.protocol):
            raise ParameterError("envelope protocol must be 1..32 characters of [A-Za-z0-9._-]")
        if not isinstance(self.sender, str) or not NAME_PATTERN.fullmatch(self.sender):
            raise ParameterError("envelope sender must be a node name")
        if not isinstance(self.recipient, str) or not (
            self.recipient == BROADCAST or NAME_PATTERN.fullmatch(self.recipient)
        ):
            raise ParameterError('envelope recipient must be a node name or "*"')
        if self.recipient == self.sender:
            raise ParameterError("envelope sender and recipient must differ")
        expected = 0 if self.recipient == BROADCAST else FLAG_ENCRYPTED
        if type(self.flags) is not int or self.flags != expected:
            raise ParameterError("envelope must be encrypted exactly when point-to-point")
        if not isinstance(self.body, bytes):
            raise ParameterError("envelope body must be bytes")
        if self.encrypted and len(self.body) < _NONCE_LEN + _TAG_LEN:
            raise ParameterError("encrypted envelope body is shorter than nonce and tag")
        if not isinstance(self.signature, bytes) or len(self.signature) != _SIG_LEN:
            raise ParameterError("envelope signature must be 64 bytes")
        size = _OVERHEAD + len(self.wallet) + len(self.protocol) + len(self.sender)
        size += len(self.recipient) + len(self.body)
        if size > MAX_ENVELOPE:
            raise ParameterError(f"envelope larger than {MAX_ENVELOPE} bytes")

    @property
    def encrypted(self) -> bool:
        """Whether the body is ``nonce || ciphertext`` (a point-to-point envelope)."""
        return bool(self.flags & FLAG_ENCRYPTED)

    def header(self) -> bytes:
        """The encoded header: every field before the body (also the AEAD associated data)."""
        return _header(
            self.flags,
            self.cluster,
            self.session,
            self.attempt,
            self.round,
            self.wallet,
            self.protocol,
            self.sender,
            self.recipient,
        )

    def signed_bytes(self) -> bytes:
        """What the signature covers: ``header || len u32 || body``."""
        return self.header() + len(self.body).to_bytes(4, "big") + self.body

    def to_bytes(self) -> bytes:
        """The canonical encoding: :meth:`signed_bytes` followed by the 64-byte signature."""
        return self.signed_bytes() + self.signature

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        """Decode the canonical encoding of an envelope (it checks the format, not the signature).

        Raises :class:`EnvelopeError` with reason ``malformed`` for anything else: wrong type,
        more than :data:`MAX_ENVELOPE` bytes, an unknown version or flag, a length out of
        range, truncation, or trailing bytes. Never raises anything else.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise _malformed("not bytes")
        b = bytes(data)
        if len(b) > MAX_ENVELOPE:
            raise _malformed(f"longer than {MAX_ENVELOPE} bytes")
        if len(b) < _OVERHEAD:
            raise _malformed("truncated")
        version, flags, cluster, session, attempt, rnd = _FIXED.unpack_from(b, 0)
        if version != VERSION:
            raise _malformed("unknown version")
        pos = _FIXED.size
        fields: list[bytes] = []
        for limit in (_MAX_WALLET, _MAX_PROTOCOL, 64, 64):
            if pos >= len(b):
                raise _malformed("truncated")
            n = b[pos]
            if n > limit or pos + 1 + n > len(b):
                raise _malformed("field length out of range")
            fields.append(b[pos + 1 : pos + 1 + n])
            pos += 1 + n
        if pos + 4 > len(b):
            raise _malformed("truncated")
        body_len = int.from_bytes(b[pos : pos + 4], "big")
        pos += 4
        if pos + body_len + _SIG_LEN != len(b):
            raise _malformed("body length does not match the envelope size")
        wallet, protocol, sender, recipient = fields
        try:
            return cls(
                version=version,
                cluster=cluster,
                wallet=wallet,
                session=session,
                attempt=attempt,
                protocol=protocol.decode("ascii"),
                round=rnd,
                sender=sender.decode("ascii"),
                recipient=recipient.decode("ascii"),
                flags=flags,
                body=b[pos : pos + body_len],
                signature=b[pos + body_len :],
            )
        except UnicodeDecodeError:
            raise _malformed("a name is not ASCII") from None
        except ParameterError as e:
            raise _malformed(str(e)) from None


def _header(
    flags: int,
    cluster: bytes,
    session: bytes,
    attempt: int,
    rnd: int,
    wallet: bytes,
    protocol: str,
    sender: str,
    recipient: str,
) -> bytes:
    out = [_FIXED.pack(VERSION, flags, cluster, session, attempt, rnd)]
    for part in (wallet, protocol.encode(), sender.encode(), recipient.encode()):
        out.append(bytes([len(part)]) + part)
    return b"".join(out)


def seal(
    identity: NodeIdentity,
    sender_name: str,
    recipient: NodePublic | None,
    *,
    cluster: bytes,
    wallet: bytes,
    session: bytes,
    attempt: int,
    protocol: str,
    round: int,
    payload: bytes,
) -> bytes:
    """Seal ``payload`` into envelope bytes from ``sender_name`` (the node of ``identity``).

    ``recipient``: the member to encrypt to, or None for a broadcast (signed, not encrypted,
    addressed to ``"*"``). ``cluster`` and ``session`` are 32 bytes, ``wallet`` at most 64,
    ``attempt`` a u32, ``round`` a u16, ``protocol`` 1..32 characters of ``[A-Za-z0-9._-]``.
    The nonce (12 bytes) and the BIP340 auxiliary randomness (32 bytes) are fresh from
    :mod:`secrets`, so sealing the same content twice gives different bytes: a node **must**
    store the sealed bytes and re-send exactly those, never re-seal a message it already sent.

    Returns the canonical envelope bytes. Raises :class:`~tmpc.errors.ParameterError` for
    invalid fields (or a payload that makes the envelope larger than :data:`MAX_ENVELOPE`)
    and :class:`~tmpc.errors.CryptoError` if the key agreement fails.
    """
    return _seal(
        identity,
        sender_name,
        recipient,
        cluster=cluster,
        wallet=wallet,
        session=session,
        attempt=attempt,
        protocol=protocol,
        round=round,
        payload=payload,
        nonce=secrets.token_bytes(_NONCE_LEN),
        aux_rand=secrets.token_bytes(32),
    )


def _seal(
    identity: NodeIdentity,
    sender_name: str,
    recipient: NodePublic | None,
    *,
    cluster: bytes,
    wallet: bytes,
    session: bytes,
    attempt: int,
    protocol: str,
    round: int,
    payload: bytes,
    nonce: bytes,
    aux_rand: bytes,
) -> bytes:
    """:func:`seal` with its randomness as arguments (deterministic; for tests and vectors).

    ``nonce`` **must not** repeat under one key: only :func:`seal` may be used by a node."""
    if not isinstance(payload, bytes):
        raise ParameterError("payload must be bytes")
    _param_bytes(nonce, _NONCE_LEN, "nonce")
    to = BROADCAST if recipient is None else recipient.name
    flags = 0 if recipient is None else FLAG_ENCRYPTED
    # A placeholder body and signature of the right shape validate every field first, so
    # nothing is encrypted under a key derived from invalid inputs.
    draft = Envelope(
        cluster=cluster,
        wallet=wallet,
        session=session,
        attempt=attempt,
        protocol=protocol,
        round=round,
        sender=sender_name,
        recipient=to,
        flags=flags,
        body=bytes(len(payload) + (0 if recipient is None else _NONCE_LEN + _TAG_LEN)),
        signature=bytes(_SIG_LEN),
    )
    header = draft.header()
    if recipient is None:
        body = payload
    else:
        key = identity.channel_key(
            sender_name, recipient, cluster=cluster, session=session, outgoing=True
        )
        body = nonce + ChaCha20Poly1305(key).encrypt(nonce, payload, header)
    signed = header + len(body).to_bytes(4, "big") + body
    signature = identity.sign(SIGNATURE_TAG, signed, aux_rand=aux_rand)
    return signed + signature


@dataclass(frozen=True, slots=True)
class Opened:
    """An envelope that passed every check of :meth:`Opener.open`.

    ``recipient`` is this node's name or ``"*"``; ``payload`` the decrypted payload (secret
    for a point-to-point message: not in :func:`repr`); ``raw`` the envelope bytes as
    received, signed by ``sender``, kept as evidence.
    """

    sender: str
    recipient: str
    session: bytes
    attempt: int
    protocol: str
    round: int
    wallet: bytes
    payload: bytes = field(repr=False)
    raw: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class _Seen:
    """What the replay window keeps of one opened envelope."""

    digest: bytes  # SHA-256 of the recipient, wallet and payload
    raw: bytes


#: Counter key of an identical re-delivery (not a rejection).
_DUPLICATE: Final = "duplicate"


class Opener:
    """Checks and opens the envelopes addressed to one node (sans I/O; not thread-safe).

    Args:
        identity: this node's identity (to decrypt point-to-point envelopes).
        name: this node's name; ``members[name]`` **must** be this identity's public side.
        cluster: the 32-byte hash of the cluster file; envelopes of another cluster are
            refused.
        members: every cluster member by name (this node included), from the cluster file.
        is_known_session: the node's policy for which sessions it takes messages of now
            (``session -> bool``); envelopes of a session it refuses are ``stale``. It
            **must** return False for every session the node has finished, aborted or
            :meth:`forget`-ten (from its durable record, so that a replay of an old session
            is refused across restarts too), True for its live sessions, and, so that a new
            session's first message (the ``propose`` / ``ready`` control messages) gets
            through, True for a session id it has never seen; messages of such a session
            other than those control messages are the node's to buffer or drop. Without a
            callback, the Opener itself remembers every session passed to :meth:`forget`
            (32 bytes each, for as long as it lives) and refuses those.

    :meth:`open` checks, in this order, and raises :class:`EnvelopeError` with the reason:
    the format (``malformed``), the cluster (``foreign``), the sender is a member
    (``unknown-sender``), the recipient is this node or ``"*"`` and the sender is not this
    node (``misrouted``), the sender's signature (``tampered``), the session policy
    (``stale``), decryption (``undecryptable``), and against every envelope opened before in
    the session: a message of one sender for one (session, attempt, protocol, round) with the
    same recipient, wallet and payload is a ``duplicate`` (None is returned), with anything
    different an ``equivocation``. :attr:`counters` counts every outcome but success.
    Point-to-point messages are compared by their decrypted payload, so a message re-sealed
    with a fresh nonce (e.g. recomputed after a restart) is a duplicate, not an equivocation.
    """

    def __init__(
        self,
        identity: NodeIdentity,
        name: str,
        cluster: bytes,
        members: Mapping[str, NodePublic],
        *,
        is_known_session: Callable[[bytes], bool] | None = None,
    ) -> None:
        for key, pub in members.items():
            if not isinstance(pub, NodePublic) or pub.name != key:
                raise ParameterError("members must map each name to that member's NodePublic")
        me = members.get(name)
        if me is None or me != identity.public(name):
            raise ParameterError(f"{name!r} is not this identity's entry in the member map")
        self._identity = identity
        self._name = name
        self._cluster = _param_bytes(cluster, 32, "cluster hash")
        self._members = dict(members)
        self._is_known_session = is_known_session
        self._forgotten: set[bytes] = set()
        self._seen: dict[bytes, dict[tuple[str, int, str, int], _Seen]] = {}
        self._counters: dict[str, int] = dict.fromkeys(sorted(REASONS | {_DUPLICATE}), 0)

    def __repr__(self) -> str:
        return f"Opener(name={self._name!r}, members={len(self._members)})"

    @property
    def name(self) -> str:
        """This node's name."""
        return self._name

    @property
    def counters(self) -> dict[str, int]:
        """A copy of the counts by reason (every :data:`REASONS` entry and ``duplicate``)."""
        return dict(self._counters)

    def forget(self, session: bytes) -> None:
        """Drop the replay records of a finished ``session`` (32 bytes), freeing their memory.

        Later envelopes of that session are refused as ``stale`` only if ``is_known_session``
        refuses it (or, without a callback, because the Opener remembers the id)."""
        session = _param_bytes(session, 32, "session id")
        self._seen.pop(session, None)
        if self._is_known_session is None:
            self._forgotten.add(session)

    def open(self, data: bytes) -> Opened | None:
        """Check and open one received envelope (see the class docstring for the checks).

        Returns the :class:`Opened` message, or None for a duplicate of one already opened.
        Raises :class:`EnvelopeError` (reason and, for a sender's own fault, its name in
        ``culprits``); every rejection is counted in :attr:`counters`.
        """
        try:
            return self._open(data)
        except EnvelopeError as e:
            self._counters[e.reason] += 1
            raise

    def _open(self, data: bytes) -> Opened | None:
        env = Envelope.from_bytes(data)
        raw = bytes(data)
        if env.cluster != self._cluster:
            raise EnvelopeError("foreign", "another cluster")
        sender = self._members.get(env.sender)
        if sender is None:
            raise EnvelopeError("unknown-sender", f"{env.sender!r} is not a member")
        if env.sender == self._name:
            raise EnvelopeError("misrouted", "an envelope of this node came back to it")
        if env.recipient not in (self._name, BROADCAST):
            raise EnvelopeError("misrouted", f"addressed to {env.recipient!r}")
        signed = raw[:-_SIG_LEN]
        if not verify_signature(sender.host_pubkey, SIGNATURE_TAG, signed, env.signature):
            raise EnvelopeError("tampered", f"bad signature of {env.sender!r}")
        # From here on the sender provably signed these bytes.
        if self._is_known_session is not None:
            known = self._is_known_session(env.session)
        else:
            known = env.session not in self._forgotten
        if not known:
            raise EnvelopeError("stale", f"{env.sender!r}: a session this node does not take")
        payload = self._decrypt(env, sender)
        digest = hashlib.sha256(lp_join([env.recipient.encode(), env.wallet, payload])).digest()
        window = self._seen.setdefault(env.session, {})
        slot = (env.sender, env.attempt, env.protocol, env.round)
        prior = window.get(slot)
        if prior is not None:
            if prior.digest == digest:
                self._counters[_DUPLICATE] += 1
                return None
            raise EnvelopeError(
                "equivocation",
                f"{env.sender!r} signed two different messages for {env.protocol} "
                f"round {env.round} (attempt {env.attempt})",
                culprit=env.sender,
                evidence=(prior.raw, raw),
            )
        window[slot] = _Seen(digest, raw)
        return Opened(
            sender=env.sender,
            recipient=env.recipient,
            session=env.session,
            attempt=env.attempt,
            protocol=env.protocol,
            round=env.round,
            wallet=env.wallet,
            payload=payload,
            raw=raw,
        )

    def _decrypt(self, env: Envelope, sender: NodePublic) -> bytes:
        if not env.encrypted:
            return env.body
        # One opaque reason for every failure (pyca: decryption errors leak nothing).
        try:
            key = self._identity.channel_key(
                self._name, sender, cluster=env.cluster, session=env.session, outgoing=False
            )
            nonce, ct = env.body[:_NONCE_LEN], env.body[_NONCE_LEN:]
            return ChaCha20Poly1305(key).decrypt(nonce, ct, env.header())
        except (InvalidTag, CryptoError, DecodeError):
            raise EnvelopeError(
                "undecryptable", f"from {env.sender!r}", culprit=env.sender
            ) from None


def verify_evidence(data: bytes, cluster: bytes, members: Mapping[str, NodePublic]) -> Envelope:
    """Check a *broadcast* envelope shown as evidence by a third party (e.g. a coordinator
    showing the signed readiness answers it chose a quorum from).

    Unlike :meth:`Opener.open` it keeps no replay state: the same evidence may be checked any
    number of times. Checks the format, the cluster, that the sender is a member, that the
    envelope is a signed, unencrypted broadcast, and the sender's signature.
    Returns the :class:`Envelope` (its ``body`` is the payload). Raises :class:`EnvelopeError`.
    """
    env = Envelope.from_bytes(data)
    if env.cluster != cluster:
        raise EnvelopeError("foreign", "evidence from another cluster")
    sender = members.get(env.sender)
    if sender is None:
        raise EnvelopeError("unknown-sender", f"{env.sender!r} is not a member")
    if env.recipient != BROADCAST or env.encrypted:
        raise EnvelopeError("misrouted", "evidence must be a signed broadcast")
    if not verify_signature(
        sender.host_pubkey, SIGNATURE_TAG, bytes(data)[:-_SIG_LEN], env.signature
    ):
        raise EnvelopeError("tampered", f"bad signature of {env.sender!r}")
    return env
