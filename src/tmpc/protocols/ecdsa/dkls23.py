"""DKLs23 threshold ECDSA signing on secp256k1 (Protocol 3.6 of eprint 2023/765).

Doerner, Kondi, Lee, shelat, "Threshold ECDSA in Three Rounds" (IEEE S&P 2024). Any set ``P``
of at least ``t`` parties of a t-of-n key signs; party ``i`` holds the Shamir share ``x_i`` of
the key ``x`` (``PK = x*G``) from tmpc's DKG and the pairwise material of
:class:`EcdsaPairwise`. The layout follows the paper and 0xCarbon's ``protocols/signing.rs``:

Pairwise setup (once per key, redone after any failed pairwise check; separate from the key
share so that a share refresh can keep or redo it independently):

- zero-sharing seeds ``seed_ij`` (F_Zero, Functionality 3.4) by commit-then-reveal, so neither
  party of a pair picks the seed alone (:mod:`tmpc.protocols.ecdsa.zero_share`);
- two OT-based multiplication setups per unordered pair ``{i, j}``: ``i`` as Alice (sender)
  towards ``j`` and ``j`` as Alice towards ``i`` (:mod:`tmpc.protocols.ecdsa.multiply`).

Sans-I/O steps, each party with all its peers at once (or with one peer to redo a pair, then
:meth:`EcdsaPairwise.merged`); every message is per recipient:

==========================================  ===================================================
:func:`pairwise_setup_round1` (``i -> j``)  seed commitment; Bob's setup message 1 of the
                                            instance (Alice = j, Bob = i)  (96 + 97 bytes)
:func:`pairwise_setup_round2` (``i -> j``)  seed contribution (revealed only after j's
                                            commitment arrived); Alice's setup message 2 of
                                            (Alice = i, Bob = j)  (96 + 4224 bytes)
:func:`pairwise_setup_round3` (``i -> j``)  seed check; Bob's setup message 3 of
                                            (Alice = j, Bob = i)  (64 + 8192 bytes)
:func:`pairwise_setup_finish` (local)       Alice's check of message 3; the seeds are combined
==========================================  ===================================================

All parties in one process: :func:`pairwise_setup_local`.

Presigning, message independent (Protocol 3.6 steps 4-9; :func:`presign_round1`,
:func:`presign_round2`, :func:`presign_round3`; all parties: :func:`presign_local`):

1. Round 1: ``P_i`` samples the instance key ``r_i`` and the inversion mask ``phi_i``, sets
   ``R_i = r_i*G``, commits to ``R_i`` (one commitment for all peers, salted and bound to the
   session, the signer set and ``i``), and sends Bob's first multiplication message to every
   peer ``j`` (the F_RVOLE instance in which ``j`` is Alice and ``i`` samples ``chi_{i,j}``).
2. Round 2: ``sk_i = lambda_i*x_i + zeta_i`` (Lagrange coefficient over ``P``, zero share),
   ``pk_i = sk_i*G``; as Alice towards ``j`` with inputs ``(r_i, sk_i)`` it obtains
   ``(c^u_{i,j}, c^v_{i,j})`` and sends ``Gamma^u = c^u*G``, ``Gamma^v = c^v*G``,
   ``psi_{i,j} = phi_i - chi_{i,j}``, ``pk_i``, the decommitment ``(R_i, salt_i)``, an echo of
   the round-1 commitments it saw, and Alice's multiplication message.
3. Round 3 (local): every check of the paper and ``R = sum R_j``, then the presignature
   shares ``u_i = r_i*(phi_i + sum psi_{j,i}) + sum(c^u + d^u)`` and
   ``v_i = sk_i*(phi_i + sum psi_{j,i}) + sum(c^v + d^v)``, with
   ``sum u_i = r*phi`` and ``sum v_i = x*phi`` (``r = sum r_i``, ``phi = sum phi_i``).

Message sizes per ordered pair: round 1 ``96 + 13338`` bytes, round 2 ``292 + 53408`` bytes
(the multiplication messages of :mod:`~tmpc.protocols.ecdsa.multiply` dominate).

Online, one message per signer (step 10; :func:`sign_share`, :func:`combine_signature_shares`;
all parties: :func:`sign_with_presignatures`): ``w_i = m*phi_i + r_x*v_i`` and
``s = sum w_i / sum u_i = (m + r_x*x)/r``; low-s; recovery id; the final signature is verified
with libsecp256k1 before it is returned.

Groth-Shoup re-randomisation (eprint 2021/1330) and additive (HD) tweaks
---------------------------------------------------------------------------
A presignature is never finished as it stands. At use, with the 32-byte digest (``m`` is
``int(digest) mod n``) and the additive key tweak ``e`` (the key becomes ``x' = x + e``,
``PK' = PK + e*G``), every party derives the same public

    ``delta = H("tmpc/dkls23/rerandomize", presig_id, PK, signers, R, digest, e)``

and uses the nonce ``k' = r + delta``, i.e. ``R' = R + delta*G``. Because
``sum phi_i = phi``, the shares adjust locally and linearly:

- ``u_i' = u_i + delta*phi_i``: ``sum u_i' = r*phi + delta*phi = k'*phi``;
- ``v_i' = v_i + e*phi_i``: ``sum v_i' = x*phi + e*phi = x'*phi``;
- ``w_i = m*phi_i + r_x'*v_i'`` with ``r_x' = x(R') mod n``: ``sum w_i = (m + r_x'*x')*phi``;

so ``s = sum w_i / sum u_i' = (m + r_x'*x') / k'``, an ordinary ECDSA signature under ``PK'``
with nonce point ``R' = k'*G``. Since ``delta`` is a hash of the presignature, the digest and
the tweak, an attacker who chooses the digest or the derivation path after the presignature
exists cannot choose the final nonce relation (the CVE-2025-66017 class of attacks on
un-randomised presignatures over raw digests and late HD paths).

Blame (see also ``docs/security.md``):

- attributable, terminal for the pair (:class:`~tmpc.protocols.ecdsa.errors.PairwiseCheckError`
  subclasses, the caller deny-lists the pair and redoes its setup; this code never retries):
  a decommitment that does not open (:class:`CommitmentCheckError`), a failed ``Gamma^u`` or
  ``Gamma^v`` check (:class:`GammaCheckError`), and the OT-extension / multiplication checks of
  :mod:`tmpc.protocols.ecdsa.multiply` (``OTCheckError``, ``MulCheckError``);
- attributable, not pairwise: a malformed or misaddressed message names its sender
  (:class:`~tmpc.errors.FaultyParticipantError`);
- **not attributable** (:class:`~tmpc.errors.ProtocolError` with empty ``culprits``): echoes of
  the round-1 commitments that disagree (an equivocating sender and a peer lying about what it
  saw look the same at this layer: the signed broadcasts of the wire layer attribute it),
  ``sum pk_j != PK`` (a party that ran with a wrong but self-consistent ``sk_j``: the
  ``pk_j`` are masked by the zero shares, so no single one can be checked), and a final
  signature that does not verify (a wrong ``psi``, ``u_i`` or ``w_i`` is indistinguishable from
  any other: none of them is committed to).

Scalars are Python ints (not constant time); point arithmetic runs in libsecp256k1.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn, TypeVar

import coincurve
from coincurve.ecdsa import cdata_to_der, deserialize_compact

from tmpc.encoding import ct_equal, expect_len, lp, tagged_hash
from tmpc.errors import (
    DecodeError,
    FaultyParticipantError,
    ParameterError,
    ProtocolError,
    StateError,
)
from tmpc.group import SECP256K1
from tmpc.group.base import Point
from tmpc.protocols.ecdsa.errors import PairwiseCheckError
from tmpc.protocols.ecdsa.multiply import (
    MulReceiver,
    MulReceiverKeep,
    MulSender,
    MulSetupReceiverState,
    MulSetupSenderState,
    mul_setup_receiver_1,
    mul_setup_receiver_3,
    mul_setup_sender_2,
    mul_setup_sender_4,
)
from tmpc.protocols.ecdsa.zero_share import (
    SEED_LEN,
    combine_seeds,
    seed_commitment,
    zero_share,
)
from tmpc.secret import OneTime
from tmpc.sharing import check_ids, derive_interpolating_value

__all__ = [
    "CommitmentCheckError",
    "EcdsaPairwise",
    "GammaCheckError",
    "PairwiseSetupMsg1",
    "PairwiseSetupMsg2",
    "PairwiseSetupMsg3",
    "PairwiseSetupState",
    "PresignRound1Msg",
    "PresignRound2Msg",
    "PresignState1",
    "PresignState2",
    "Presignature",
    "PresignatureInfo",
    "SignatureShare",
    "combine_signature_shares",
    "pairwise_setup_finish",
    "pairwise_setup_local",
    "pairwise_setup_round1",
    "pairwise_setup_round2",
    "pairwise_setup_round3",
    "presign_local",
    "presign_round1",
    "presign_round2",
    "presign_round3",
    "rerandomizer",
    "sign_local",
    "sign_share",
    "sign_with_presignatures",
]

G: Final = SECP256K1
N: Final = SECP256K1.order
HALF_N: Final = N // 2
ID_LEN: Final = 32  # identifiers travel as 32-byte scalars, like FROST's
POINT_LEN: Final = 33
SCALAR_LEN: Final = 32
HASH_LEN: Final = 32
SALT_LEN: Final = 32
MIN_SESSION_ID_LEN: Final = 16

RandBytes = Callable[[int], bytes]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class CommitmentCheckError(PairwiseCheckError):
    """A peer's decommitment (of ``R_j`` or of its zero-share seed contribution) does not open
    its commitment. Terminal for that pair: deny-list it, never retry."""


class GammaCheckError(PairwiseCheckError):
    """A peer's ``Gamma^u`` or ``Gamma^v`` check of DKLs23 round 3 failed (its ``R_j``, ``pk_j``
    or multiplication output is inconsistent). Terminal for that pair: deny-list it, never
    retry."""


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _id(x: int) -> bytes:
    return x.to_bytes(ID_LEN, "big")


def _decode_id(data: bytes, what: str) -> int:
    x = int.from_bytes(expect_len(data, ID_LEN, what), "big")
    if not 0 < x < N:
        raise DecodeError(f"{what}: identifier is zero or not below the group order")
    return x


def _h32(tag: str, *parts: bytes) -> bytes:
    """32-byte tagged hash of length-prefixed parts."""
    return tagged_hash(tag, b"".join(lp(p) for p in parts))


def _h_scalar(tag: str, *parts: bytes) -> int:
    """Hash to a scalar: SHA-512 (64 bytes, negligible bias) of the tag and parts, mod n."""
    h = hashlib.sha512(lp(tag.encode()) + b"".join(lp(p) for p in parts))
    return int.from_bytes(h.digest(), "big") % N


def _rand_scalar(rand: RandBytes) -> int:
    """A uniformly random non-zero scalar from 64 random bytes (bias below 2^-256)."""
    while True:
        k = int.from_bytes(expect_len(rand(64), 64, "random bytes"), "big") % N
        if k:
            return k


def _check_int_id(x: object, what: str) -> int:
    if not isinstance(x, int) or isinstance(x, bool) or not 0 < x < N:
        raise ParameterError(f"{what} must be an integer in [1, n-1]")
    return x


def _check_scalar(k: object, what: str) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < N:
        raise ParameterError(f"{what} must be an integer in [0, n-1]")
    return k


def _check_point(p: object, what: str) -> Point:
    if not isinstance(p, Point) or p.group is not G or p.is_identity():
        raise ParameterError(f"{what} must be a non-identity secp256k1 point")
    return p


def _check_signers(signers: Sequence[int]) -> tuple[int, ...]:
    if isinstance(signers, bytes | str) or len(signers) < 1:
        raise ParameterError("the signer set must be a non-empty sequence of identifiers")
    check_ids(G, list(signers))
    return tuple(sorted(signers))


def _signers_bytes(signers: tuple[int, ...]) -> bytes:
    return b"".join(_id(j) for j in signers)


def _no_copy(self: object, protocol: Any) -> NoReturn:
    raise StateError(f"{type(self).__name__} is secret single-use state: no pickle or copy")


M = TypeVar("M")
T = TypeVar("T")


def _from_peer(peer: int, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a multiplication step on data from ``peer``; a parse error there names the peer.

    Failed OT / multiplication checks already raise PairwiseCheckError naming the peer and
    pass through unchanged.
    """
    try:
        return fn(*args, **kwargs)
    except DecodeError as exc:
        raise FaultyParticipantError(f"party {peer} sent a malformed {what}: {exc}", peer) from None


def _receive(cls: type[M], decode: Callable[[bytes], M], sender: int, raw: object, what: str) -> M:
    """Decode a message received from ``sender``; a parse error names the sender."""
    if isinstance(raw, cls):
        return raw
    if isinstance(raw, bytes | bytearray):
        try:
            return decode(bytes(raw))
        except DecodeError as exc:
            raise FaultyParticipantError(
                f"party {sender} sent a malformed {what} message: {exc}", sender
            ) from None
    raise ParameterError(f"the {what} message of party {sender} is neither bytes nor typed")


def _check_route(msg_sender: int, msg_receiver: int, sender: int, me: int, what: str) -> None:
    if msg_sender != sender or msg_receiver != me:
        raise FaultyParticipantError(
            f"party {sender} sent a {what} message addressed from {msg_sender} to {msg_receiver}",
            sender,
        )


def _check_received_keys(received: Mapping[int, object], peers: tuple[int, ...]) -> None:
    if not isinstance(received, Mapping) or set(received) != set(peers):
        raise ParameterError(
            "expected exactly one message from each peer "
            f"{list(peers)}, got {sorted(received) if isinstance(received, Mapping) else '?'}"
        )


# --------------------------------------------------------------------------------------------
# Pairwise material
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class EcdsaPairwise:
    """One party's pairwise material for DKLs23, separate from its key share.

    Attributes:
        identifier: this party's identifier ``i``.
        zero_seeds: ``{j: seed_ij}``, the 32-byte zero-sharing seed shared with each peer
            (secret).
        senders: ``{j: MulSender}``, this party as Alice towards each peer (secret).
        receivers: ``{j: MulReceiver}``, this party as Bob towards each peer (secret).

    The three maps have the same peers. Each multiplication setup is long-lived but every
    session id is single use (enforced by the multiplication objects). After a failed
    pairwise check with ``j`` the caller **must** deny-list ``j`` and redo the setup of that
    pair (:func:`pairwise_setup_round1` with ``peers=[j]``, then :meth:`merged`).

    Wire format (:meth:`to_bytes`), for encrypted storage only::

        0x01 || i (32) || count (2) || per peer, ascending:
            j (32) || seed (32) || lp(sender.to_bytes()) || lp(receiver.to_bytes())
    """

    identifier: int
    zero_seeds: Mapping[int, bytes] = field(repr=False)
    senders: Mapping[int, MulSender] = field(repr=False)
    receivers: Mapping[int, MulReceiver] = field(repr=False)

    def __post_init__(self) -> None:
        _check_int_id(self.identifier, "identifier")
        peers = set(self.zero_seeds)
        if set(self.senders) != peers or set(self.receivers) != peers:
            raise ParameterError("pairwise material: seeds, senders and receivers differ")
        if self.identifier in peers:
            raise ParameterError("pairwise material: a party cannot be its own peer")
        check_ids(G, list(peers))
        for j in peers:
            expect_len(self.zero_seeds[j], SEED_LEN, "zero-share seed")
            s, r = self.senders[j], self.receivers[j]
            if not isinstance(s, MulSender) or not isinstance(r, MulReceiver):
                raise ParameterError("pairwise material: wrong multiplication object type")
            if (s.self_id, s.peer_id, r.self_id, r.peer_id) != (
                self.identifier,
                j,
                self.identifier,
                j,
            ):
                raise ParameterError(f"pairwise material: setup with {j} has wrong identifiers")

    @property
    def peers(self) -> tuple[int, ...]:
        """The peers this party has pairwise material with, ascending."""
        return tuple(sorted(self.zero_seeds))

    def merged(self, update: EcdsaPairwise) -> EcdsaPairwise:
        """A copy in which the pairs of ``update`` (a fresh setup) replace or add to ours.

        Raises :class:`~tmpc.errors.ParameterError` if ``update`` belongs to another party.
        """
        if update.identifier != self.identifier:
            raise ParameterError("cannot merge pairwise material of two different parties")
        return EcdsaPairwise(
            self.identifier,
            {**self.zero_seeds, **update.zero_seeds},
            {**self.senders, **update.senders},
            {**self.receivers, **update.receivers},
        )

    def to_bytes(self) -> bytes:
        """Serialise (secret: encrypt before it touches a disk)."""
        out = [b"\x01", _id(self.identifier), len(self.peers).to_bytes(2, "big")]
        for j in self.peers:
            out += [
                _id(j),
                self.zero_seeds[j],
                lp(self.senders[j].to_bytes()),
                lp(self.receivers[j].to_bytes()),
            ]
        return b"".join(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> EcdsaPairwise:
        """Strictly decode :meth:`to_bytes`; raises :class:`~tmpc.errors.DecodeError`."""
        if not isinstance(data, bytes | bytearray) or len(data) < 1 + ID_LEN + 2:
            raise DecodeError("pairwise material: too short")
        data = bytes(data)
        if data[0] != 1:
            raise DecodeError("pairwise material: unknown version")
        me = _decode_id(data[1 : 1 + ID_LEN], "pairwise material identifier")
        count = int.from_bytes(data[1 + ID_LEN : 3 + ID_LEN], "big")
        pos = 3 + ID_LEN
        seeds: dict[int, bytes] = {}
        senders: dict[int, MulSender] = {}
        receivers: dict[int, MulReceiver] = {}
        prev = 0

        def take(k: int) -> bytes:
            nonlocal pos
            if pos + k > len(data):
                raise DecodeError("pairwise material: truncated")
            chunk = data[pos : pos + k]
            pos += k
            return chunk

        def take_lp() -> bytes:
            return take(int.from_bytes(take(4), "big"))

        for _ in range(count):
            j = _decode_id(take(ID_LEN), "pairwise material peer")
            if j <= prev or j == me:
                raise DecodeError("pairwise material: peers not strictly ascending")
            prev = j
            seeds[j] = take(SEED_LEN)
            senders[j] = MulSender.from_bytes(take_lp())
            receivers[j] = MulReceiver.from_bytes(take_lp())
        if pos != len(data):
            raise DecodeError("pairwise material: trailing bytes")
        try:
            return cls(me, seeds, senders, receivers)
        except ParameterError as exc:
            raise DecodeError(f"pairwise material: {exc}") from None


# --- pairwise setup messages -----------------------------------------------------------------


def _pack_var(sender: int, receiver: int, fixed: bytes, var: bytes) -> bytes:
    return _id(sender) + _id(receiver) + fixed + var


def _unpack_var(data: bytes, fixed_len: int, what: str) -> tuple[int, int, bytes, bytes]:
    if not isinstance(data, bytes | bytearray) or len(data) < 2 * ID_LEN + fixed_len:
        raise DecodeError(f"{what}: too short")
    sender = _decode_id(data[:ID_LEN], f"{what} sender")
    receiver = _decode_id(data[ID_LEN : 2 * ID_LEN], f"{what} receiver")
    fixed = bytes(data[2 * ID_LEN : 2 * ID_LEN + fixed_len])
    return sender, receiver, fixed, bytes(data[2 * ID_LEN + fixed_len :])


def _check_setup_msg(sender: int, receiver: int, fixed: bytes, fixed_len: int, var: bytes) -> None:
    # Typed messages are checked like decoded ones: ids, the fixed part's length, bytes.
    _check_int_id(sender, "sender")
    _check_int_id(receiver, "receiver")
    expect_len(fixed, fixed_len, "pairwise setup value")
    if not isinstance(var, bytes | bytearray):
        raise DecodeError("pairwise setup message: multiplication payload must be bytes")


@dataclass(frozen=True, slots=True)
class PairwiseSetupMsg1:
    """Setup round 1, ``sender -> receiver``: the commitment to ``sender``'s seed contribution
    and Bob's first multiplication-setup message (instance: Alice = receiver, Bob = sender).

    Wire: ``sender (32) || receiver (32) || seed_commitment (32) || mul_msg``.
    """

    sender: int
    receiver: int
    seed_commitment: bytes
    mul_msg: bytes

    def __post_init__(self) -> None:
        _check_setup_msg(self.sender, self.receiver, self.seed_commitment, HASH_LEN, self.mul_msg)

    def to_bytes(self) -> bytes:
        """Encode (``96 + len(mul_msg)`` bytes)."""
        return _pack_var(self.sender, self.receiver, self.seed_commitment, self.mul_msg)

    @classmethod
    def from_bytes(cls, data: bytes) -> PairwiseSetupMsg1:
        """Strict decode; raises :class:`~tmpc.errors.DecodeError`."""
        s, r, fixed, var = _unpack_var(data, HASH_LEN, "pairwise setup message 1")
        return cls(s, r, fixed, var)


@dataclass(frozen=True, slots=True)
class PairwiseSetupMsg2:
    """Setup round 2, ``sender -> receiver``: ``sender``'s revealed seed contribution and
    Alice's multiplication-setup message (instance: Alice = sender, Bob = receiver).

    Wire: ``sender (32) || receiver (32) || seed_contribution (32) || mul_msg``.
    """

    sender: int
    receiver: int
    seed_contribution: bytes = field(repr=False)
    mul_msg: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_setup_msg(self.sender, self.receiver, self.seed_contribution, SEED_LEN, self.mul_msg)

    def to_bytes(self) -> bytes:
        """Encode (``96 + len(mul_msg)`` bytes)."""
        return _pack_var(self.sender, self.receiver, self.seed_contribution, self.mul_msg)

    @classmethod
    def from_bytes(cls, data: bytes) -> PairwiseSetupMsg2:
        """Strict decode; raises :class:`~tmpc.errors.DecodeError`."""
        s, r, fixed, var = _unpack_var(data, SEED_LEN, "pairwise setup message 2")
        return cls(s, r, fixed, var)


@dataclass(frozen=True, slots=True)
class PairwiseSetupMsg3:
    """Setup round 3, ``sender -> receiver``: Bob's last multiplication-setup message
    (instance: Alice = receiver, Bob = sender).

    Wire: ``sender (32) || receiver (32) || mul_msg``.
    """

    sender: int
    receiver: int
    mul_msg: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_setup_msg(self.sender, self.receiver, b"", 0, self.mul_msg)

    def to_bytes(self) -> bytes:
        """Encode (``64 + len(mul_msg)`` bytes)."""
        return _pack_var(self.sender, self.receiver, b"", self.mul_msg)

    @classmethod
    def from_bytes(cls, data: bytes) -> PairwiseSetupMsg3:
        """Strict decode; raises :class:`~tmpc.errors.DecodeError`."""
        s, r, _, var = _unpack_var(data, 0, "pairwise setup message 3")
        return cls(s, r, var)


class PairwiseSetupState:
    """Secret state of one party between the pairwise-setup rounds. Each round consumes it
    and returns the next; reuse, pickling and copying raise :class:`~tmpc.errors.StateError`.
    """

    __slots__ = (
        "_rounds_done",
        "identifier",
        "my_contribution",
        "peer_commitments",
        "peer_contributions",
        "peers",
        "receiver_states",
        "receivers",
        "sender_states",
        "session_id",
        "used",
    )
    __reduce_ex__ = _no_copy

    def __init__(self, identifier: int, peers: tuple[int, ...], session_id: bytes) -> None:
        self.identifier = identifier
        self.peers = peers
        self.session_id = session_id
        self.my_contribution: dict[int, bytes] = {}
        self.peer_commitments: dict[int, bytes] = {}
        self.peer_contributions: dict[int, bytes] = {}
        self.receiver_states: dict[int, MulSetupReceiverState] = {}
        self.sender_states: dict[int, MulSetupSenderState] = {}
        self.receivers: dict[int, MulReceiver] = {}
        self._rounds_done = 0
        self.used = False

    def __repr__(self) -> str:
        return f"<PairwiseSetupState of {self.identifier} (secret)>"

    def _advance(self, expected: int) -> PairwiseSetupState:
        if self.used or self._rounds_done != expected:
            raise StateError("pairwise setup state used twice or out of order")
        self.used = True
        nxt = PairwiseSetupState(self.identifier, self.peers, self.session_id)
        nxt.my_contribution = self.my_contribution
        nxt.peer_commitments = self.peer_commitments
        nxt.peer_contributions = self.peer_contributions
        nxt.receiver_states = self.receiver_states
        nxt.sender_states = self.sender_states
        nxt.receivers = self.receivers
        nxt._rounds_done = expected + 1
        # the consumed object keeps no references to secrets
        self.my_contribution, self.receiver_states, self.sender_states = {}, {}, {}
        return nxt


def _mul_setup_sid(session_id: bytes, alice: int, bob: int) -> bytes:
    """Session id of the multiplication setup in which ``alice`` sends and ``bob`` receives."""
    return _h32("tmpc/dkls23/mul-setup", session_id, _id(alice), _id(bob))


def _check_setup_args(identifier: int, peers: Sequence[int], session_id: bytes) -> tuple[int, ...]:
    _check_int_id(identifier, "identifier")
    if isinstance(peers, bytes | str) or len(peers) < 1:
        raise ParameterError("pairwise setup needs at least one peer")
    check_ids(G, [identifier, *peers])
    if not isinstance(session_id, bytes) or len(session_id) < MIN_SESSION_ID_LEN:
        raise ParameterError(f"session id must be at least {MIN_SESSION_ID_LEN} bytes")
    return tuple(sorted(peers))


def pairwise_setup_round1(
    identifier: int,
    peers: Sequence[int],
    session_id: bytes,
    *,
    rand: RandBytes | None = None,
) -> tuple[PairwiseSetupState, dict[int, PairwiseSetupMsg1]]:
    """Pairwise setup, round 1 of party ``identifier`` with each of ``peers``.

    Args:
        identifier: this party ``i``.
        peers: the parties to set up with (all others at key generation; a single peer to
            redo one pair after a failed check).
        session_id: fresh, agreed by all parties (at least 16 bytes); **must not** be reused.
        rand: randomness source (``secrets.token_bytes`` if None).

    Returns:
        the secret state and ``{j: message to j}``.

    Raises:
        ParameterError: bad identifiers or session id.
    """
    peer_t = _check_setup_args(identifier, peers, session_id)
    rand = rand or secrets.token_bytes
    st = PairwiseSetupState(identifier, peer_t, session_id)
    out: dict[int, PairwiseSetupMsg1] = {}
    for j in peer_t:
        # F_Zero setup (commit): "each party samples a seed contribution and commits to it"
        contribution = expect_len(rand(SEED_LEN), SEED_LEN, "random bytes")
        st.my_contribution[j] = contribution
        commitment = seed_commitment(session_id, identifier, j, contribution)
        # multiplication setup, instance (Alice = j, Bob = i): Bob speaks first
        rstate, msg1 = mul_setup_receiver_1(
            _mul_setup_sid(session_id, j, identifier), self_id=identifier, peer_id=j, rand=rand
        )
        st.receiver_states[j] = rstate
        out[j] = PairwiseSetupMsg1(identifier, j, commitment, msg1)
    st._rounds_done = 1
    return st, out


def pairwise_setup_round2(
    state: PairwiseSetupState,
    received: Mapping[int, PairwiseSetupMsg1 | bytes],
    *,
    rand: RandBytes | None = None,
) -> tuple[PairwiseSetupState, dict[int, PairwiseSetupMsg2]]:
    """Pairwise setup, round 2: reveal the seed contribution (only now that the peer's
    commitment is in) and answer as Alice in the instance (Alice = i, Bob = j).

    Args:
        state: the state of round 1 (consumed).
        received: ``{j: round-1 message from j}`` (typed or bytes), one per peer.
        rand: randomness source (``secrets.token_bytes`` if None).

    Returns:
        the next state and ``{j: message to j}``.

    Raises:
        StateError: the state was used before.
        ParameterError: not exactly one message per peer.
        FaultyParticipantError: a malformed or misaddressed message (names the sender).
        PairwiseCheckError: a check of the multiplication setup failed (names the peer).
    """
    st = state._advance(1)
    _check_received_keys(received, st.peers)
    out: dict[int, PairwiseSetupMsg2] = {}
    for j in st.peers:
        msg = _receive(
            PairwiseSetupMsg1, PairwiseSetupMsg1.from_bytes, j, received[j], "setup round 1"
        )
        _check_route(msg.sender, msg.receiver, j, st.identifier, "setup round 1")
        st.peer_commitments[j] = msg.seed_commitment
        sstate, msg2 = _from_peer(
            j,
            "multiplication setup message",
            mul_setup_sender_2,
            _mul_setup_sid(st.session_id, st.identifier, j),
            msg.mul_msg,
            self_id=st.identifier,
            peer_id=j,
            rand=rand,
        )
        st.sender_states[j] = sstate
        # F_Zero setup (decommit): "after all commitments are received, reveal the seeds"
        out[j] = PairwiseSetupMsg2(st.identifier, j, st.my_contribution[j], msg2)
    return st, out


def pairwise_setup_round3(
    state: PairwiseSetupState, received: Mapping[int, PairwiseSetupMsg2 | bytes]
) -> tuple[PairwiseSetupState, dict[int, PairwiseSetupMsg3]]:
    """Pairwise setup, round 3: check each peer's seed decommitment and finish Bob's side of
    the instance (Alice = j, Bob = i).

    Raises:
        StateError: the state was used before or out of order.
        ParameterError: not exactly one message per peer.
        FaultyParticipantError: a malformed or misaddressed message (names the sender).
        CommitmentCheckError: a peer's seed contribution does not open its commitment.
        PairwiseCheckError: a check of the multiplication setup failed (names the peer).
    """
    st = state._advance(2)
    _check_received_keys(received, st.peers)
    out: dict[int, PairwiseSetupMsg3] = {}
    for j in st.peers:
        msg = _receive(
            PairwiseSetupMsg2, PairwiseSetupMsg2.from_bytes, j, received[j], "setup round 2"
        )
        _check_route(msg.sender, msg.receiver, j, st.identifier, "setup round 2")
        expected = seed_commitment(st.session_id, j, st.identifier, msg.seed_contribution)
        if not ct_equal(expected, st.peer_commitments[j]):
            raise CommitmentCheckError(
                f"party {j}'s zero-share seed does not open its commitment", j
            )
        st.peer_contributions[j] = msg.seed_contribution
        receiver, msg3 = _from_peer(
            j,
            "multiplication setup message",
            mul_setup_receiver_3,
            st.receiver_states.pop(j),
            msg.mul_msg,
        )
        st.receivers[j] = receiver
        out[j] = PairwiseSetupMsg3(st.identifier, j, msg3)
    return st, out


def pairwise_setup_finish(
    state: PairwiseSetupState, received: Mapping[int, PairwiseSetupMsg3 | bytes]
) -> EcdsaPairwise:
    """Pairwise setup, last local step: finish Alice's side and assemble the material.

    Returns:
        this party's :class:`EcdsaPairwise` with every peer of the setup.

    Raises:
        StateError: the state was used before or out of order.
        ParameterError: not exactly one message per peer.
        FaultyParticipantError: a malformed or misaddressed message (names the sender).
        PairwiseCheckError: a check of the multiplication setup failed (names the peer).
    """
    st = state._advance(3)
    _check_received_keys(received, st.peers)
    senders: dict[int, MulSender] = {}
    for j in st.peers:
        msg = _receive(
            PairwiseSetupMsg3, PairwiseSetupMsg3.from_bytes, j, received[j], "setup round 3"
        )
        _check_route(msg.sender, msg.receiver, j, st.identifier, "setup round 3")
        senders[j] = _from_peer(
            j,
            "multiplication setup message",
            mul_setup_sender_4,
            st.sender_states.pop(j),
            msg.mul_msg,
        )
    seeds = {
        j: combine_seeds(
            st.session_id, st.identifier, st.my_contribution[j], j, st.peer_contributions[j]
        )
        for j in st.peers
    }
    st.my_contribution, st.peer_contributions = {}, {}
    return EcdsaPairwise(st.identifier, seeds, senders, dict(st.receivers))


def pairwise_setup_local(
    ids: Sequence[int], session_id: bytes, *, traffic: dict[int, int] | None = None
) -> dict[int, EcdsaPairwise]:
    """Run the pairwise setup for every pair of ``ids`` with all parties in one process.

    One :class:`~tmpc.protocols.ecdsa.machine.PairwiseSetupMachine` per party, driven by
    :func:`tmpc.local.run_machines`, exactly as party nodes run the setup.

    Args:
        ids: the identifiers of all n parties.
        session_id: fresh (at least 16 bytes); **must not** be reused.
        traffic: if given, ``{i: bytes party i sent}`` is added to it (benchmarks).

    Returns:
        ``{i: EcdsaPairwise of i}``.

    Raises:
        ParameterError: fewer than two or invalid identifiers, or a short session id.
    """
    # Imported here: the machine module imports this one, and tmpc.local (the in-process
    # driver) sits above the protocol modules.
    from tmpc.local import run_machines
    from tmpc.protocols.ecdsa.machine import PairwiseSetupMachine

    if isinstance(ids, bytes | str) or len(ids) < 2:
        raise ParameterError("pairwise setup needs at least two parties")
    check_ids(G, list(ids))
    parties = sorted(ids)
    machines = {i: PairwiseSetupMachine(i, parties, session_id) for i in parties}
    run_machines(machines, traffic=traffic)
    return {i: machines[i].result for i in parties}


# --------------------------------------------------------------------------------------------
# Presigning (Protocol 3.6, steps 4-9)
# --------------------------------------------------------------------------------------------


def _context(session_id: bytes, public_key: Point, signers: tuple[int, ...], tweak: int) -> bytes:
    """The session context bound into every hash of one presigning session.

    It includes the additive key tweak (the BIP32 path) the presignature is made for, so the
    presignature id, every commitment and every multiplication session differ per tweak.
    """
    return _h32(
        "tmpc/dkls23/presign-context",
        session_id,
        public_key.encode(),
        _signers_bytes(signers),
        G.encode_scalar(tweak),
    )


def _mul_sid(ctx: bytes, alice: int, bob: int) -> bytes:
    """Session id of the multiplication in which ``alice`` sends and ``bob`` receives."""
    return _h32("tmpc/dkls23/mul-session", ctx, _id(alice), _id(bob))


def _commit_R(ctx: bytes, sender: int, R: Point, salt: bytes) -> bytes:
    return _h32("tmpc/dkls23/commit-R", ctx, _id(sender), R.encode(), salt)


def _echo(ctx: bytes, commitments: Mapping[int, bytes], signers: tuple[int, ...]) -> bytes:
    return _h32("tmpc/dkls23/echo", ctx, *(commitments[k] for k in signers))


@dataclass(frozen=True, slots=True)
class PresignRound1Msg:
    """Round 1, ``sender -> receiver`` (Protocol 3.6 step 6).

    ``commitment`` is ``sender``'s commitment to ``R_sender``: a broadcast value, the same in
    every message of the sender (checked in round 3 through the echoes). ``mul_msg`` is Bob's
    multiplication message of the instance (Alice = receiver, Bob = sender).

    Wire: ``sender (32) || receiver (32) || commitment (32) || mul_msg``.
    """

    sender: int
    receiver: int
    commitment: bytes
    mul_msg: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_int_id(self.sender, "sender")
        _check_int_id(self.receiver, "receiver")
        expect_len(self.commitment, HASH_LEN, "R commitment")

    def to_bytes(self) -> bytes:
        """Encode (``96 + len(mul_msg)`` bytes)."""
        return _pack_var(self.sender, self.receiver, self.commitment, self.mul_msg)

    @classmethod
    def from_bytes(cls, data: bytes) -> PresignRound1Msg:
        """Strict decode; raises :class:`~tmpc.errors.DecodeError`."""
        s, r, fixed, var = _unpack_var(data, HASH_LEN, "presign round 1")
        return cls(s, r, fixed, var)


_R2_FIXED: Final = POINT_LEN + SALT_LEN + 3 * POINT_LEN + SCALAR_LEN + HASH_LEN


@dataclass(frozen=True, slots=True)
class PresignRound2Msg:
    """Round 2, ``sender -> receiver`` (Protocol 3.6 step 7).

    Fields: the decommitment ``(R, salt)`` of ``R_sender``; ``pk = sk_sender*G``;
    ``gamma_u = c^u*G`` and ``gamma_v = c^v*G`` of the instance (Alice = sender,
    Bob = receiver); ``psi = phi_sender - chi`` with ``chi`` the sender's Bob input of the
    instance (Alice = receiver, Bob = sender); ``echo``, the hash of all round-1 commitments
    the sender received; ``mul_msg``, Alice's multiplication message.

    Wire: ``sender (32) || receiver (32) || R (33) || salt (32) || pk (33) || gamma_u (33) ||
    gamma_v (33) || psi (32) || echo (32) || mul_msg`` (``292 + len(mul_msg)`` bytes).
    """

    sender: int
    receiver: int
    R: Point
    salt: bytes
    pk: Point
    gamma_u: Point
    gamma_v: Point
    psi: int = field(repr=False)
    echo: bytes
    mul_msg: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_int_id(self.sender, "sender")
        _check_int_id(self.receiver, "receiver")
        _check_point(self.R, "R")
        _check_point(self.pk, "pk")
        _check_point(self.gamma_u, "Gamma_u")
        _check_point(self.gamma_v, "Gamma_v")
        _check_scalar(self.psi, "psi")
        expect_len(self.salt, SALT_LEN, "salt")
        expect_len(self.echo, HASH_LEN, "echo")

    def to_bytes(self) -> bytes:
        """Encode (``292 + len(mul_msg)`` bytes)."""
        fixed = (
            self.R.encode()
            + self.salt
            + self.pk.encode()
            + self.gamma_u.encode()
            + self.gamma_v.encode()
            + G.encode_scalar(self.psi)
            + self.echo
        )
        return _pack_var(self.sender, self.receiver, fixed, self.mul_msg)

    @classmethod
    def from_bytes(cls, data: bytes) -> PresignRound2Msg:
        """Strict decode: lengths first, every point through ``decode_point`` (on the curve,
        canonical, not the identity), ``psi < n``. Raises :class:`~tmpc.errors.DecodeError`.
        """
        s, r, f, var = _unpack_var(data, _R2_FIXED, "presign round 2")
        p = 0

        def nxt(k: int) -> bytes:
            nonlocal p
            p += k
            return f[p - k : p]

        R = G.decode_point(nxt(POINT_LEN))
        salt = nxt(SALT_LEN)
        pk = G.decode_point(nxt(POINT_LEN))
        gamma_u = G.decode_point(nxt(POINT_LEN))
        gamma_v = G.decode_point(nxt(POINT_LEN))
        psi = G.decode_scalar(nxt(SCALAR_LEN))
        echo = nxt(HASH_LEN)
        return cls(s, r, R, salt, pk, gamma_u, gamma_v, psi, echo, var)


class _Secret:
    """Base of the secret per-round states: single use, never printed, copied or pickled."""

    __slots__ = ("_once",)
    __reduce_ex__ = _no_copy

    def __init__(self) -> None:
        self._once = OneTime(True, f"{type(self).__name__} (presigning state)")

    @property
    def used(self) -> bool:
        """True once the next round consumed this state."""
        return self._once.used

    def __repr__(self) -> str:
        return f"<{type(self).__name__} ({'used' if self.used else 'secret'})>"

    def _consume(self) -> None:
        # check-and-mark in one locked step (see tmpc.secret)
        self._once.take()


class PresignState1(_Secret):
    """Secret state of one signer between presigning rounds 1 and 2 (consumed by round 2)."""

    __slots__ = (
        "R_i",
        "chi",
        "commitment",
        "ctx",
        "identifier",
        "keep",
        "pairwise",
        "peers",
        "phi",
        "public_key",
        "r",
        "salt",
        "signers",
        "tweak",
        "x",
        "zeta",
    )

    def __init__(
        self,
        identifier: int,
        signers: tuple[int, ...],
        public_key: Point,
        pairwise: EcdsaPairwise,
        ctx: bytes,
        x: int,
        tweak: int,
    ) -> None:
        super().__init__()
        self.tweak = tweak
        self.identifier = identifier
        self.signers = signers
        self.peers = tuple(j for j in signers if j != identifier)
        self.public_key = public_key
        self.pairwise = pairwise
        self.ctx = ctx
        self.x = x
        self.r = 0
        self.phi = 0
        self.R_i: Point = G.identity()
        self.salt = b""
        self.commitment = b""
        self.zeta = 0
        self.chi: dict[int, int] = {}
        self.keep: dict[int, MulReceiverKeep] = {}


class PresignState2(_Secret):
    """Secret state of one signer between presigning rounds 2 and 3 (consumed by round 3)."""

    __slots__ = (
        "R_i",
        "c_u",
        "c_v",
        "chi",
        "commitments",
        "ctx",
        "echo",
        "identifier",
        "keep",
        "pairwise",
        "peers",
        "phi",
        "pk_i",
        "public_key",
        "r",
        "signers",
        "sk",
        "tweak",
    )

    def __init__(self, s1: PresignState1) -> None:
        super().__init__()
        self.tweak = s1.tweak
        self.identifier = s1.identifier
        self.signers = s1.signers
        self.peers = s1.peers
        self.public_key = s1.public_key
        self.pairwise = s1.pairwise
        self.ctx = s1.ctx
        self.r = s1.r
        self.phi = s1.phi
        self.R_i = s1.R_i
        self.chi = s1.chi
        self.keep = s1.keep
        self.sk = 0
        self.pk_i: Point = G.identity()
        self.commitments: dict[int, bytes] = {}
        self.echo = b""
        self.c_u: dict[int, int] = {}
        self.c_v: dict[int, int] = {}


def presign_round1(
    identifier: int,
    secret_share: int,
    public_key: Point,
    pairwise: EcdsaPairwise,
    signers: Sequence[int],
    session_id: bytes,
    *,
    threshold: int | None = None,
    tweak: int = 0,
    rand: RandBytes | None = None,
) -> tuple[PresignState1, dict[int, PresignRound1Msg]]:
    """Presigning round 1 of signer ``identifier`` (Protocol 3.6 steps 4-6).

    Args:
        identifier: this signer ``i``; must be in ``signers``.
        secret_share: ``x_i``, the Shamir share of the key (a scalar in ``[1, n-1]``).
        public_key: ``PK``, the (untweaked) group public key.
        pairwise: this signer's pairwise material; must cover every other signer.
        signers: the signer set ``P`` (any order; at least ``threshold`` if given).
        session_id: fresh, agreed by the signers (at least 16 bytes); **must not** be reused:
            every pairwise multiplication refuses a session id it has seen.
        threshold: the key's threshold ``t``; fewer signers are refused. Without it, a set
            smaller than ``t`` is only caught in round 3 (``sum pk_j != PK``).
        tweak: the additive key tweak ``e`` (BIP32 path) the presignature is for; bound into
            the session context, and the only tweak :func:`sign_share` accepts for it.
        rand: randomness source (``secrets.token_bytes`` if None).

    Returns:
        the secret state for round 2 and ``{j: message to j}`` for every other signer.

    Raises:
        ParameterError: bad identifiers, signer set, threshold, share, key or session id.
        StateError: a multiplication session id was used before (reused session id).
    """
    me = _check_int_id(identifier, "identifier")
    signer_t = _check_signers(signers)
    if me not in signer_t:
        raise ParameterError(f"party {me} is not in the signer set")
    if threshold is not None:
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
            raise ParameterError("threshold must be a positive integer")
        if len(signer_t) < threshold:
            raise ParameterError(f"{len(signer_t)} signers cannot sign for threshold {threshold}")
    x = _check_scalar(secret_share, "secret share")
    if x == 0:
        raise ParameterError("secret share must not be zero")
    _check_point(public_key, "public key")
    if not isinstance(pairwise, EcdsaPairwise) or pairwise.identifier != me:
        raise ParameterError(f"pairwise material does not belong to party {me}")
    missing = [j for j in signer_t if j != me and j not in pairwise.zero_seeds]
    if missing:
        raise ParameterError(f"party {me} has no pairwise setup with {missing}")
    if not isinstance(session_id, bytes) or len(session_id) < MIN_SESSION_ID_LEN:
        raise ParameterError(f"session id must be at least {MIN_SESSION_ID_LEN} bytes")
    tweak = _check_scalar(tweak, "tweak")
    _tweaked_key(public_key, tweak)
    rand = rand or secrets.token_bytes

    ctx = _context(session_id, public_key, signer_t, tweak)
    st = PresignState1(me, signer_t, public_key, pairwise, ctx, x, tweak)
    # Step 5: "sample the instance key r_i and the inversion mask phi_i; R_i = r_i * G"
    st.r = _rand_scalar(rand)
    st.phi = _rand_scalar(rand)
    st.R_i = G.base_mul(st.r)
    # Step 6 (commit): one salted commitment to R_i for all peers, bound to the session
    # context (session id, key, signer set) and the sender
    st.salt = expect_len(rand(SALT_LEN), SALT_LEN, "random bytes")
    st.commitment = _commit_R(ctx, me, st.R_i, st.salt)
    out: dict[int, PresignRound1Msg] = {}
    for j in st.peers:
        # Step 6 (multiply): start F_RVOLE as Bob in the instance (Alice = j, Bob = i),
        # sampling chi_{i,j}; the session id is unique per session and ordered pair
        keep, chi, msg = pairwise.receivers[j].run_phase1(_mul_sid(ctx, j, me), rand=rand)
        st.chi[j] = chi % N
        st.keep[j] = keep
        out[j] = PresignRound1Msg(me, j, st.commitment, msg)
    # F_Zero: "zeta_i with sum over P of zeta_i = 0", fresh for this session context
    st.zeta = zero_share(me, pairwise.zero_seeds, signer_t, ctx)
    return st, out


def presign_round2(
    state: PresignState1,
    received: Mapping[int, PresignRound1Msg | bytes],
    *,
    rand: RandBytes | None = None,
) -> tuple[PresignState2, dict[int, PresignRound2Msg]]:
    """Presigning round 2 (Protocol 3.6 step 7).

    Args:
        state: the state of round 1 (consumed; its secrets are wiped on return or error).
        received: ``{j: round-1 message from j}`` (typed or bytes), one per other signer.
        rand: randomness source (``secrets.token_bytes`` if None).

    Returns:
        the secret state for round 3 and ``{j: message to j}``.

    Raises:
        StateError: the state was used before, or a multiplication session id was reused.
        ParameterError: not exactly one message per other signer.
        FaultyParticipantError: a malformed or misaddressed message (names the sender).
        OTCheckError: a peer's OT-extension consistency check failed (names the peer;
            terminal for the pair).
    """
    state._consume()
    try:
        return _presign_round2(state, received, rand)
    finally:
        state.x = state.zeta = state.r = state.phi = 0
        state.chi, state.keep = {}, {}


def _presign_round2(
    state: PresignState1, received: Mapping[int, PresignRound1Msg | bytes], rand: RandBytes | None
) -> tuple[PresignState2, dict[int, PresignRound2Msg]]:
    st = PresignState2(state)
    me = st.identifier
    _check_received_keys(received, st.peers)
    msgs: dict[int, PresignRound1Msg] = {}
    for j in st.peers:
        msg = _receive(
            PresignRound1Msg, PresignRound1Msg.from_bytes, j, received[j], "presign round 1"
        )
        _check_route(msg.sender, msg.receiver, j, me, "presign round 1")
        msgs[j] = msg
        st.commitments[j] = msg.commitment
    st.commitments[me] = state.commitment
    st.echo = _echo(st.ctx, st.commitments, st.signers)

    # Step 7: "sk_i = Lagrange(P, i, 0) * p(i) + zeta_i and pk_i = sk_i * G"
    lam = derive_interpolating_value(G, st.signers, me)
    st.sk = (lam * state.x + state.zeta) % N
    st.pk_i = G.base_mul(st.sk)
    inputs = [st.r, st.sk]
    out: dict[int, PresignRound2Msg] = {}
    for j in st.peers:
        # Step 7 (multiply): F_RVOLE as Alice with inputs (r_i, sk_i) towards j, giving
        # (c^u_{i,j}, c^v_{i,j}) with c + d = (r_i, sk_i) * chi_{j,i}
        c, mul_msg = _from_peer(
            j,
            "multiplication message",
            st.pairwise.senders[j].run,
            _mul_sid(st.ctx, me, j),
            inputs,
            msgs[j].mul_msg,
            rand=rand,
        )
        st.c_u[j], st.c_v[j] = c[0] % N, c[1] % N
        # Step 7: "Gamma^u_{i,j} = c^u_{i,j} * G, Gamma^v_{i,j} = c^v_{i,j} * G,
        # psi_{i,j} = phi_i - chi_{i,j}"; decommit R_i; send pk_i
        out[j] = PresignRound2Msg(
            me,
            j,
            st.R_i,
            state.salt,
            st.pk_i,
            G.base_mul(st.c_u[j]),
            G.base_mul(st.c_v[j]),
            (st.phi - st.chi[j]) % N,
            st.echo,
            mul_msg,
        )
    return st, out


@dataclass(frozen=True, slots=True)
class PresignatureInfo:
    """The public part of a presignature, the same at every signer.

    ``presig_id`` (32 bytes) is a hash of the session context (which includes the tweak) and
    ``R``; ``R = sum R_j`` is the presignature's nonce point before re-randomisation;
    ``tweak`` is the additive key tweak (BIP32 path) it can be finished for, and no other.
    """

    presig_id: bytes
    signers: tuple[int, ...]
    public_key: Point
    R: Point
    tweak: int = 0


_PRESIG_VERSION: Final = 2


@dataclass(eq=False)
class Presignature:
    """One signer's presignature: secret and **single use**.

    Attributes:
        presig_id: 32 bytes, identical at all signers of this presignature.
        identifier: this signer ``i``.
        signers: the signer set, ascending; all of them must finish the signature.
        public_key: the untweaked key ``PK`` it was made for.
        R: the nonce point ``sum_j R_j``.
        tweak: the additive key tweak (BIP32 path) it was made for; :func:`sign_share`
            refuses any other.
        consumed: True once :func:`sign_share` used it (or it was serialised away).

    The secret shares ``(phi_i, u_i, v_i)`` (``sum u = r*phi``, ``sum v = x*phi``) live in a
    :class:`~tmpc.secret.OneTime` holder: :func:`sign_share` takes them out (checked and
    marked used under a lock, so two racing threads get one share at most) **before** it
    computes the signature share, and a second use raises :class:`~tmpc.errors.StateError`.
    A ``dataclasses.replace`` copy shares the holder, so it is used up with the original;
    copying and pickling raise. A durable store **must** delete the stored presignature
    **before** the signature share is released, and record its id where a restored backup
    cannot roll it back (:class:`tmpc.state.ledger.Ledger`): two signatures from one presignature
    reveal the key.

    Wire format (:meth:`to_bytes`, secret; encrypt at rest)::

        0x02 || consumed (1) || presig_id (32) || i (32) || count (2) || signers (32 each)
        || PK (33) || R (33) || tweak (32) || phi_i (32) || u_i (32) || v_i (32)
    """

    presig_id: bytes
    identifier: int
    signers: tuple[int, ...]
    public_key: Point
    R: Point
    tweak: int
    _secret: OneTime[tuple[int, int, int]] = field(repr=False)

    __reduce_ex__ = _no_copy

    @classmethod
    def new(
        cls,
        presig_id: bytes,
        identifier: int,
        signers: tuple[int, ...],
        public_key: Point,
        R: Point,
        tweak: int,
        phi_i: int,
        u_i: int,
        v_i: int,
    ) -> Presignature:
        """A fresh (unused) presignature holding the secret shares ``(phi_i, u_i, v_i)``."""
        return cls(
            presig_id,
            identifier,
            signers,
            public_key,
            R,
            tweak,
            OneTime((phi_i, u_i, v_i), f"presignature of signer {identifier}"),
        )

    @property
    def consumed(self) -> bool:
        """True once used (or moved out by :meth:`to_bytes`)."""
        return self._secret.used

    @property
    def info(self) -> PresignatureInfo:
        """The public part (what a combiner needs)."""
        return PresignatureInfo(self.presig_id, self.signers, self.public_key, self.R, self.tweak)

    def _take(self) -> tuple[int, int, int]:
        """Consume: hand the scalars out once (atomically; zero scalars are refused)."""
        phi, u, v = self._secret.take()
        if phi == 0:
            raise StateError("presignature holds no secret (zero); it cannot sign")
        return phi, u, v

    def to_bytes(self) -> bytes:
        """Serialise (``262 + 32*len(signers)`` bytes), **moving** the presignature out.

        An unused presignature is serialised with its scalars and this object is then used up,
        so the bytes are the only live copy: serialising and restoring can never yield two
        presignatures that both sign (two signatures from one presignature reveal the key,
        re-randomisation notwithstanding). A consumed one serialises as consumed (zeros).
        """
        consumed = self._secret.used
        phi, u, v = (0, 0, 0) if consumed else self._secret.take()
        return b"".join(
            [
                bytes([_PRESIG_VERSION]),
                b"\x01" if consumed else b"\x00",
                self.presig_id,
                _id(self.identifier),
                len(self.signers).to_bytes(2, "big"),
                _signers_bytes(self.signers),
                self.public_key.encode(),
                self.R.encode(),
                G.encode_scalar(self.tweak),
                G.encode_scalar(phi),
                G.encode_scalar(u),
                G.encode_scalar(v),
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Presignature:
        """Strictly decode :meth:`to_bytes`; raises :class:`~tmpc.errors.DecodeError`."""
        head = 2 + HASH_LEN + ID_LEN + 2
        if not isinstance(data, bytes | bytearray) or len(data) < head:
            raise DecodeError("presignature: too short")
        data = bytes(data)
        if data[0] != _PRESIG_VERSION:
            raise DecodeError(
                "presignature: unknown or older format (older presignatures are not bound to a "
                "derivation path; make new ones)"
            )
        if data[1] not in (0, 1):
            raise DecodeError("presignature: unknown flag")
        count = int.from_bytes(data[head - 2 : head], "big")
        expect_len(data, head + ID_LEN * count + 2 * POINT_LEN + 4 * SCALAR_LEN, "presignature")
        consumed = data[1] == 1
        presig_id = data[2 : 2 + HASH_LEN]
        me = _decode_id(data[2 + HASH_LEN : head - 2], "presignature identifier")
        p = head
        signers = []
        for _ in range(count):
            signers.append(_decode_id(data[p : p + ID_LEN], "presignature signer"))
            p += ID_LEN
        if count < 1 or any(a >= b for a, b in itertools.pairwise(signers)):
            raise DecodeError("presignature: signers not strictly ascending")
        if me not in signers:
            raise DecodeError("presignature: identifier not among the signers")
        pk = G.decode_point(data[p : p + POINT_LEN])
        R = G.decode_point(data[p + POINT_LEN : p + 2 * POINT_LEN])
        p += 2 * POINT_LEN
        tweak, phi, u, v = (G.decode_scalar(data[p + k * 32 : p + (k + 1) * 32]) for k in range(4))
        if consumed and (phi or u or v):
            raise DecodeError("presignature: consumed but still holds scalars")
        if not consumed and phi == 0:
            raise DecodeError("presignature: unused but holds no secret")
        presig = cls.new(presig_id, me, tuple(signers), pk, R, tweak, phi, u, v)
        if consumed:
            presig._secret.take()
        return presig


def presign_round3(
    state: PresignState2, received: Mapping[int, PresignRound2Msg | bytes]
) -> Presignature:
    """Presigning round 3, local (Protocol 3.6 steps 8-9 up to the message).

    Checks, for each other signer ``j``, in this order: the message parses and is addressed
    correctly; ``R_j`` opens ``j``'s round-1 commitment; Bob's multiplication check;
    ``chi * R_j == d^u*G + Gamma^u``; ``chi * pk_j == d^v*G + Gamma^v``. Then that every
    echo equals ours, that ``sum pk_j == PK`` and that ``R`` is not the identity.

    Args:
        state: the state of round 2 (consumed; its secrets are wiped on return or error).
        received: ``{j: round-2 message from j}`` (typed or bytes), one per other signer.

    Returns:
        this signer's :class:`Presignature`.

    Raises:
        StateError: the state was used before.
        ParameterError: not exactly one message per other signer.
        FaultyParticipantError: a malformed or misaddressed message (names the sender).
        CommitmentCheckError: ``R_j`` does not open ``j``'s commitment (names ``j``).
        MulCheckError: ``j``'s multiplication check failed (names ``j``).
        GammaCheckError: a ``Gamma^u`` / ``Gamma^v`` check failed (names ``j``).
        ProtocolError: (no culprits; not attributable) echoes disagree, ``sum pk_j != PK``,
            or ``R`` is the identity.
    """
    state._consume()
    try:
        return _presign_round3(state, received)
    finally:
        state.r = state.phi = state.sk = 0
        state.chi, state.c_u, state.c_v, state.keep = {}, {}, {}, {}


def _presign_round3(
    st: PresignState2, received: Mapping[int, PresignRound2Msg | bytes]
) -> Presignature:
    me = st.identifier
    _check_received_keys(received, st.peers)
    msgs: dict[int, PresignRound2Msg] = {}
    for j in st.peers:
        msg = _receive(
            PresignRound2Msg, PresignRound2Msg.from_bytes, j, received[j], "presign round 2"
        )
        _check_route(msg.sender, msg.receiver, j, me, "presign round 2")
        msgs[j] = msg

    d_u: dict[int, int] = {}
    d_v: dict[int, int] = {}
    for j in st.peers:
        msg = msgs[j]
        # Step 8: "verify that R_j opens the commitment of j"
        if not ct_equal(_commit_R(st.ctx, j, msg.R, msg.salt), st.commitments[j]):
            raise CommitmentCheckError(f"party {j}'s R_j does not open its commitment", j)
        # Step 8: finish F_RVOLE as Bob in the instance (Alice = j, Bob = i)
        d = _from_peer(
            j,
            "multiplication message",
            st.pairwise.receivers[j].run_phase2,
            _mul_sid(st.ctx, j, me),
            st.keep.pop(j),
            msg.mul_msg,
        )
        d_u[j], d_v[j] = d[0] % N, d[1] % N
        chi = st.chi[j]
        # Step 8: "chi_{i,j} * R_j = Gamma^u_{j,i} + d^u_{i,j} * G"
        if chi * msg.R != G.base_mul(d_u[j]) + msg.gamma_u:
            raise GammaCheckError(f"party {j} failed the Gamma^u check", j)
        # Step 8: "chi_{i,j} * pk_j = Gamma^v_{j,i} + d^v_{i,j} * G"
        if chi * msg.pk != G.base_mul(d_v[j]) + msg.gamma_v:
            raise GammaCheckError(f"party {j} failed the Gamma^v check", j)

    # Broadcast consistency of round 1: every peer saw the same commitments as we did
    for j in st.peers:
        if not ct_equal(msgs[j].echo, st.echo):
            raise ProtocolError(
                f"the round-1 commitments seen by party {j} differ from ours: some signer "
                "equivocated or lied about its view (not attributable at this layer)"
            )
    # Step 8: "sum over j in P of pk_j = pk"
    if G.sum_points([st.pk_i, *(msgs[j].pk for j in st.peers)]) != st.public_key:
        raise ProtocolError(
            "the signers' pk_j do not sum to the public key (wrong share or signer set; "
            "not attributable: each pk_j is masked by a zero share)"
        )
    # Step 9: "R = sum over j in P of R_j"
    R = G.sum_points([st.R_i, *(msgs[j].R for j in st.peers)])
    if R.is_identity():
        raise ProtocolError("the nonce point R is the identity (not attributable)")
    # Step 9: "u_i = r_i * (phi_i + sum psi_{j,i}) + sum (c^u_{i,j} + d^u_{i,j})" and the
    # same for v_i with sk_i
    mask = (st.phi + sum(msgs[j].psi for j in st.peers)) % N
    u = (st.r * mask + sum(st.c_u[j] + d_u[j] for j in st.peers)) % N
    v = (st.sk * mask + sum(st.c_v[j] + d_v[j] for j in st.peers)) % N
    presig = Presignature.new(
        _h32("tmpc/dkls23/presig-id", st.ctx, R.encode()),
        me,
        st.signers,
        st.public_key,
        R,
        st.tweak,
        st.phi,
        u,
        v,
    )
    return presig


def _record_sessions(
    pairwise: Mapping[int, EcdsaPairwise],
    signers: tuple[int, ...],
    session_id: bytes,
    public_key: Point,
    tweak: int,
) -> None:
    """Record every multiplication session id of one presigning session in the caller's
    pairwise objects, as :func:`presign_round1` and :func:`presign_round2` would.

    The machines run on private copies of ``pairwise`` (taken when they are built, before this
    call); recorded here too, a session id reused with the same objects is refused with
    :class:`~tmpc.errors.StateError` before any machine starts."""
    ctx = _context(session_id, public_key, signers, tweak)
    for i in signers:
        for j in signers:
            if j != i:
                # i is Bob of the instance (Alice = j, Bob = i) and Alice of (Alice = i, Bob = j)
                pairwise[i].receivers[j].record_session(_mul_sid(ctx, j, i))
                pairwise[i].senders[j].record_session(_mul_sid(ctx, i, j))


def _check_local_signers(
    secret_shares: Mapping[int, int], pairwise: Mapping[int, EcdsaPairwise], signers: Sequence[int]
) -> tuple[int, ...]:
    signer_t = _check_signers(signers)
    for i in signer_t:
        if i not in secret_shares or i not in pairwise:
            raise ParameterError(f"no key share or pairwise material for signer {i}")
    return signer_t


def presign_local(
    secret_shares: Mapping[int, int],
    public_key: Point,
    pairwise: Mapping[int, EcdsaPairwise],
    signers: Sequence[int],
    session_id: bytes | None = None,
    *,
    threshold: int | None = None,
    tweak: int = 0,
    traffic: dict[int, int] | None = None,
) -> dict[int, Presignature]:
    """Presign with every signer in one process (rounds 1-3, messages through their bytes).

    One :class:`~tmpc.protocols.ecdsa.machine.PresignMachine` per signer, driven by
    :func:`tmpc.local.run_machines`, exactly as party nodes presign. The machines work on
    private copies of ``pairwise``; the session's multiplication session ids are recorded in
    the given objects too, so reusing ``session_id`` with them raises
    :class:`~tmpc.errors.StateError`. ``traffic``, if given, gets ``{i: bytes signer i sent}``
    added to it (benchmarks).

    Args:
        secret_shares: ``{i: x_i}`` for (at least) every signer.
        public_key: ``PK``.
        pairwise: ``{i: EcdsaPairwise}`` for every signer.
        signers: the signer set.
        session_id: fresh and unique (32 random bytes if None); **must not** be reused.
        threshold: the key's threshold; fewer signers are refused.
        tweak: the additive key tweak (BIP32 path) the presignatures are for.

    Returns:
        ``{i: Presignature}``, all with the same ``presig_id`` and ``R``.

    Raises:
        everything the rounds raise (see :func:`presign_round1` .. :func:`presign_round3`),
        culprits as party ids.
    """
    # Imported here: the machine module imports this one, and tmpc.local (the in-process
    # driver) sits above the protocol modules.
    from tmpc.local import run_machines
    from tmpc.protocols.ecdsa.machine import PresignMachine

    signer_t = _check_local_signers(secret_shares, pairwise, signers)
    sid = secrets.token_bytes(32) if session_id is None else session_id
    machines = {
        i: PresignMachine(
            i,
            secret_shares[i],
            pairwise[i],
            signer_t,
            sid,
            public_key,
            tweak=tweak,
            threshold=threshold,
        )
        for i in signer_t
    }
    _record_sessions(pairwise, signer_t, sid, public_key, tweak)
    run_machines(machines, traffic=traffic)
    return {i: machines[i].result for i in signer_t}


# --------------------------------------------------------------------------------------------
# Online signing (Protocol 3.6 step 10, with Groth-Shoup re-randomisation)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignatureShare:
    """The online message of one signer: ``(u_i', w_i)`` for presignature ``presig_id``.

    Wire: ``presig_id (32) || sender (32) || u (32) || w (32)`` (128 bytes).
    """

    presig_id: bytes
    sender: int
    u: int
    w: int

    def __post_init__(self) -> None:
        expect_len(self.presig_id, HASH_LEN, "presignature id")
        _check_int_id(self.sender, "sender")
        _check_scalar(self.u, "u")
        _check_scalar(self.w, "w")

    def to_bytes(self) -> bytes:
        """Encode (128 bytes)."""
        return self.presig_id + _id(self.sender) + G.encode_scalar(self.u) + G.encode_scalar(self.w)

    @classmethod
    def from_bytes(cls, data: bytes) -> SignatureShare:
        """Strict decode of 128 bytes; raises :class:`~tmpc.errors.DecodeError`."""
        data = expect_len(data, HASH_LEN + ID_LEN + 2 * SCALAR_LEN, "signature share")
        return cls(
            data[:HASH_LEN],
            _decode_id(data[HASH_LEN : HASH_LEN + ID_LEN], "signature share sender"),
            G.decode_scalar(data[64:96]),
            G.decode_scalar(data[96:128]),
        )


def _check_digest_tweak(digest: bytes, tweak: int) -> tuple[bytes, int]:
    if not isinstance(digest, bytes | bytearray) or len(digest) != 32:
        raise ParameterError("digest must be exactly 32 bytes")
    return bytes(digest), _check_scalar(tweak, "tweak")


def _bound_tweak(info: PresignatureInfo, tweak: int | None) -> int:
    """The presignature's own tweak; a caller's tweak must be that one.

    A presignature is finished only for the key derivation it was made for: finishing it for
    a path chosen afterwards lowers security (Groth-Shoup), so any other tweak is refused.
    """
    if tweak is None:
        return info.tweak
    tweak = _check_scalar(tweak, "tweak")
    if tweak != info.tweak:
        raise ParameterError(
            "the presignature was made for another key derivation (tweak); it signs only "
            "for the BIP32 path it was made for"
        )
    return tweak


def rerandomizer(info: PresignatureInfo, digest: bytes, tweak: int = 0) -> int:
    """Groth-Shoup ``delta`` of a presignature for a digest and an additive key tweak.

    ``delta = H("tmpc/dkls23/rerandomize", presig_id, PK, signers, R, digest, tweak)`` (SHA-512
    reduced mod n); the final nonce point is ``R + delta*G``. Raises
    :class:`~tmpc.errors.ParameterError` on a digest that is not 32 bytes or a tweak outside
    ``[0, n-1]``.
    """
    digest, tweak = _check_digest_tweak(digest, tweak)
    return _h_scalar(
        "tmpc/dkls23/rerandomize",
        info.presig_id,
        info.public_key.encode(),
        _signers_bytes(info.signers),
        info.R.encode(),
        digest,
        G.encode_scalar(tweak),
    )


@dataclass(frozen=True, slots=True)
class _Online:
    delta: int
    R: Point  # re-randomised nonce point R' = R + delta*G
    r: int  # x(R') mod n
    m: int  # int(digest) mod n
    digest: bytes
    tweak: int


def _online(info: PresignatureInfo, digest: bytes, tweak: int) -> _Online:
    delta = rerandomizer(info, digest, tweak)
    R = info.R + G.base_mul(delta)
    if R.is_identity():
        raise ProtocolError("re-randomised nonce point is the identity (not attributable)")
    r = int.from_bytes(R.encode()[1:], "big") % N
    if r == 0:
        raise ProtocolError("r = 0 (not attributable; negligible probability)")
    return _Online(delta, R, r, int.from_bytes(digest, "big") % N, digest, tweak)


def _share(presig: Presignature, on: _Online) -> SignatureShare:
    # consumed (marked, scalars dropped) first, then the share is computed
    phi, u, v = presig._take()
    # Groth-Shoup: u_i' = u_i + delta*phi_i (nonce r + delta); HD: v_i' = v_i + e*phi_i
    u_prime = (u + on.delta * phi) % N
    v_prime = (v + on.tweak * phi) % N
    # Step 10: "w_i = H(m) * phi_i + r_x * v_i"
    w = (on.m * phi + on.r * v_prime) % N
    return SignatureShare(presig.presig_id, presig.identifier, u_prime, w)


def sign_share(
    presig: Presignature, public_key: Point, digest: bytes, *, tweak: int | None = None
) -> SignatureShare:
    """The online step of one signer: consume the presignature, return its share.

    Args:
        presig: this signer's presignature (consumed here, **before** the share exists).
        public_key: the untweaked key ``PK`` (must be the presignature's).
        digest: the 32-byte message hash; the ECDSA scalar is ``int(digest) mod n``.
        tweak: additive key tweak ``e`` (HD derivation); the signature verifies under
            ``PK + e*G``. It **must** be the tweak the presignature was made for (None: that
            one); any other is refused.

    Returns:
        the :class:`SignatureShare` to send to the combiner.

    Raises:
        StateError: the presignature was used before.
        ParameterError: wrong key, digest length, or a tweak the presignature was not made for.
    """
    if not isinstance(presig, Presignature):
        raise ParameterError("not a presignature")
    if presig.consumed:
        raise StateError("presignature already used: a presignature signs at most once")
    if presig.public_key != public_key:
        raise ParameterError("the presignature was made for another public key")
    info = presig.info
    digest, tweak = _check_digest_tweak(digest, _bound_tweak(info, tweak))
    return _share(presig, _online(info, digest, tweak))


def _tweaked_key(public_key: Point, tweak: int) -> Point:
    pk = public_key + G.base_mul(tweak)
    if pk.is_identity():
        raise ParameterError("the tweaked public key is the identity")
    return pk


def _finish(
    info: PresignatureInfo,
    on: _Online,
    shares: Mapping[int, SignatureShare | bytes],
) -> tuple[int, int, int]:
    _check_received_keys(shares, info.signers)
    U = W = 0
    for j in info.signers:
        sh = _receive(SignatureShare, SignatureShare.from_bytes, j, shares[j], "signature share")
        if sh.sender != j:
            raise FaultyParticipantError(f"party {j} sent a share labelled as {sh.sender}'s", j)
        if not ct_equal(sh.presig_id, info.presig_id):
            raise FaultyParticipantError(f"party {j} sent a share of another presignature", j)
        U += sh.u
        W += sh.w
    U, W = U % N, W % N
    # Step 10: "s = sum w_j / sum u_j"
    if U == 0:
        raise ProtocolError("the signature shares' u sum to zero (not attributable)")
    s = W * pow(U, -1, N) % N
    enc = on.R.encode()
    recid = (enc[0] & 1) | (2 if int.from_bytes(enc[1:], "big") >= N else 0)
    if s > HALF_N:  # low-s: (r, n - s) is the signature for -R, whose y has the other parity
        s, recid = N - s, recid ^ 1
    pk = _tweaked_key(info.public_key, on.tweak)
    if s == 0 or not _verify(pk, on.r, s, recid, on.digest):
        raise ProtocolError(
            "the combined signature does not verify: some signer sent a wrong psi, u_i or "
            "w_i (not attributable: these values are not committed to)"
        )
    return on.r, s, recid


def _verify(pk: Point, r: int, s: int, recid: int, digest: bytes) -> bool:
    """libsecp256k1: verify (strict DER, low-s) and recover the key from the recovery id."""
    compact = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    der = cdata_to_der(deserialize_compact(compact))
    pk33 = pk.encode()
    if not coincurve.PublicKey(pk33).verify(der, digest, hasher=None):
        return False
    rec = coincurve.PublicKey.from_signature_and_message(
        compact + bytes([recid]), digest, hasher=None
    )
    return bool(rec.format(True) == pk33)


def combine_signature_shares(
    info: PresignatureInfo,
    digest: bytes,
    shares: Mapping[int, SignatureShare | bytes],
    *,
    tweak: int | None = None,
) -> tuple[int, int, int]:
    """Combine the signers' shares into an ECDSA signature and verify it.

    Args:
        info: the presignature's public part (:attr:`Presignature.info`).
        digest: the 32-byte message hash the shares were made for.
        shares: ``{j: share from j}`` (typed or 128 bytes), exactly one per signer.
        tweak: the additive key tweak the shares were made with (None: the presignature's;
            any other is refused).

    Returns:
        ``(r, s, recovery_id)`` with ``s <= n/2``; verifies under ``PK + tweak*G`` over
        ``digest`` (checked with libsecp256k1 before returning, also by key recovery).

    Raises:
        ParameterError: not exactly one share per signer, bad digest or tweak.
        FaultyParticipantError: a malformed share, or a share of another presignature or
            labelled with another sender (names the sender).
        ProtocolError: (no culprits) the signature does not verify: not attributable,
            because no signer's ``u_i`` / ``w_i`` (or earlier ``psi``) can be checked alone.
    """
    digest, tweak = _check_digest_tweak(digest, _bound_tweak(info, tweak))
    return _finish(info, _online(info, digest, tweak), shares)


def sign_with_presignatures(
    presigs: Mapping[int, Presignature],
    public_key: Point,
    digest: bytes,
    *,
    tweak: int | None = None,
) -> tuple[int, int, int]:
    """The online round with every signer in one process.

    One :class:`~tmpc.protocols.ecdsa.machine.OnlineSignMachine` per signer, driven by
    :func:`tmpc.local.run_machines`, exactly as party nodes finish a pooled presignature:
    each signer's presignature is consumed before its share is computed, and every signer
    combines the shares and verifies the signature before it is returned.

    Args:
        presigs: ``{i: Presignature}`` of one presigning session, one per signer.
        public_key: the untweaked key ``PK``.
        digest: the 32-byte message hash.
        tweak: additive key tweak ``e``; the signature verifies under ``PK + e*G``. None: the
            presignatures' own; any other tweak is refused.

    Returns:
        ``(r, s, recovery_id)``, low-s.

    Raises:
        StateError: a presignature was used before (none is consumed then).
        ParameterError: presignatures of different sessions, signers missing, wrong key,
            digest or tweak.
        ProtocolError: (no culprits) the signature does not verify (see
            :func:`combine_signature_shares`).
    """
    if not isinstance(presigs, Mapping) or not presigs:
        raise ParameterError("no presignatures")
    first = next(iter(presigs.values()))
    if not isinstance(first, Presignature):
        raise ParameterError("not a presignature")
    info = first.info
    for i, p in presigs.items():
        if not isinstance(p, Presignature) or p.identifier != i or p.info != info:
            raise ParameterError("presignatures of different sessions or mislabelled")
    if set(presigs) != set(info.signers):
        raise ParameterError("every signer of the presignature must take part")
    if any(p.consumed for p in presigs.values()):
        raise StateError("presignature already used: a presignature signs at most once")
    if info.public_key != public_key:
        raise ParameterError("the presignatures were made for another public key")
    digest, tweak = _check_digest_tweak(digest, _bound_tweak(info, tweak))
    # Imported here: the machine module imports this one, and tmpc.local (the in-process
    # driver) sits above the protocol modules.
    from tmpc.local import run_machines
    from tmpc.protocols.ecdsa.machine import OnlineSignMachine

    # Every machine is built (digest and tweak checked) before any presignature is consumed.
    machines = {i: OnlineSignMachine(p, digest, tweak=tweak) for i, p in presigs.items()}
    run_machines(machines)
    return machines[info.signers[0]].result


def sign_local(
    secret_shares: Mapping[int, int],
    public_key: Point,
    pairwise: Mapping[int, EcdsaPairwise],
    signers: Sequence[int],
    digest: bytes,
    *,
    tweak: int = 0,
    threshold: int | None = None,
) -> tuple[int, int, int]:
    """Presign and sign in one session, every signer in one process.

    One :class:`~tmpc.protocols.ecdsa.machine.EcdsaSignMachine` per signer (presigning and the
    online step in three rounds, the path a node takes without a pooled presignature), driven
    by :func:`tmpc.local.run_machines`, on a fresh random session id that is recorded in
    ``pairwise`` as :func:`presign_local` does.

    Returns ``(r, s, recovery_id)`` (low-s, verified under ``PK + tweak*G``). Raises what
    :func:`presign_local` and :func:`sign_with_presignatures` raise.
    """
    # Imported here: the machine module imports this one, and tmpc.local (the in-process
    # driver) sits above the protocol modules.
    from tmpc.local import run_machines
    from tmpc.protocols.ecdsa.machine import EcdsaSignMachine

    digest, tweak = _check_digest_tweak(digest, tweak)
    signer_t = _check_local_signers(secret_shares, pairwise, signers)
    sid = secrets.token_bytes(32)
    machines = {
        i: EcdsaSignMachine(
            i,
            secret_shares[i],
            pairwise[i],
            signer_t,
            sid,
            public_key,
            digest,
            tweak=tweak,
            threshold=threshold,
        )
        for i in signer_t
    }
    _record_sessions(pairwise, signer_t, sid, public_key, tweak)
    run_machines(machines)
    return machines[signer_t[0]].result
