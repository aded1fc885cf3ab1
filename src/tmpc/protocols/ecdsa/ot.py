"""Base oblivious transfer for the DKLs23 pairwise setup: batched Verified Simplest OT.

The construction is the "Verified Simplest OT" (VSOT) of Doerner, Kondi, Lee and shelat
(DKLs18, eprint 2018/499, Protocol 7; used again as the base OT of DKLs19, eprint 2019/523),
in its *random OT* form, run as one batch of :data:`KAPPA` instances over secp256k1:

========  ==========================================================  =====================
flow      content                                                     function
========  ==========================================================  =====================
S -> R    ``B = b*G`` and one Schnorr proof of knowledge of ``b``     :func:`vsot_sender_1`
          (Fiat-Shamir) for the whole batch (97 bytes)
R -> S    ``A_i = a_i*G + w_i*B`` for each instance ``i`` (33 bytes   :func:`vsot_receiver_2`
          each)
S -> R    the verification opening ``H(rho^0_i), H(rho^1_i)``        :func:`vsot_sender_3`
          (64 bytes each)
R         checks ``H(rho^{w_i}_i)`` against the opening               :func:`vsot_receiver_4`
========  ==========================================================  =====================

Outputs: the sender gets both pads ``rho^0_i = H(b*A_i)``, ``rho^1_i = H(b*(A_i - B))``; the
receiver gets ``rho^{w_i}_i = H(a_i*B)`` and learns nothing of the other pad (CDH in the random
oracle model); the sender learns nothing of ``w_i`` (``A_i`` is uniform whatever ``w_i``).

**Deviation from Protocol 7, stated plainly.** The full VSOT verification has five flows: the
sender's challenge ``xi_i = H(H(rho^0_i)) xor H(H(rho^1_i))``, the receiver's response
``rho'_i = H(H(rho^{w_i}_i)) xor w_i*xi_i``, the sender's check of that response and only then
the opening. The DKLs23 pairwise setup of tmpc is fixed at three messages (contract of
``multiply.py``, wired into the key generation rounds), which cannot carry two more flows, and
the response cannot move earlier: it needs ``xi_i``, which needs ``A_i``, and it must precede the
opening (otherwise the opening reveals ``H(H(rho^0_i))`` and the response proves nothing). We
therefore keep every element that protects a party concretely -- the sender's proof of knowledge
of ``b`` (generated and verified), strict decoding of every point, the binding of the session,
both identifiers, ``B`` and ``A_i`` into every pad, and the receiver's check of the opening
(VSOT step 8) -- and omit the receiver's challenge-response (steps 5-7). That response exists
to make the receiver's choice extractable in the UC proof; it protects no secret of the sender:
a receiver who cannot compute its pad only corrupts its own OT-extension outputs, which the
DKLs19 multiplication check then rejects at first use (see ``multiply.py``). If the setup is ever
given five flows, the challenge-response should be added back.

Hashes: every hash is domain-separated (``tmpc/dkls23/vsot-...``) and binds a 32-byte context
digest of the caller's context string (which the caller derives from the session id and both
identifiers), ``B`` and the instance index. Step comments paraphrase the paper's steps.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, NoReturn

import coincurve

from tmpc.encoding import ct_equal, expect_len, lp
from tmpc.errors import DecodeError, FaultyParticipantError, ParameterError, StateError
from tmpc.group import SECP256K1
from tmpc.group.secp256k1 import SecpPoint
from tmpc.protocols.ecdsa.errors import OTCheckError

__all__ = [
    "KAPPA",
    "PAD_LEN",
    "RandBytes",
    "VsotChoices",
    "VsotOpening",
    "VsotPublicKey",
    "VsotReceiver",
    "VsotSender",
    "dlog_prove",
    "dlog_verify",
    "vsot_receiver_2",
    "vsot_receiver_4",
    "vsot_sender_1",
    "vsot_sender_3",
]

G: Final = SECP256K1
N: Final = SECP256K1.order

KAPPA: Final = 128
"""Number of base OTs in one batch: the computational security parameter of the OT extension
(see ``ote.py`` for the choice of 128)."""

PAD_LEN: Final = 32
"""Length in bytes of every pad ``rho``."""

_POINT_LEN: Final = 33
_SCALAR_LEN: Final = 32

RandBytes = Callable[[int], bytes]
"""A source of random bytes: ``rand(n)`` returns ``n`` bytes (``secrets.token_bytes``)."""


def _no_copy(self: object, *args: Any) -> NoReturn:
    raise StateError(f"{type(self).__name__} is secret single-use state: no pickle or copy")


def _tagged(tag: str) -> Callable[[bytes], bytes]:
    """BIP340-style tagged SHA-256 with the tag prefix hashed once (same output as
    :func:`tmpc.encoding.tagged_hash`)."""
    t = hashlib.sha256(tag.encode()).digest()
    prefix = hashlib.sha256(t + t)

    def h(msg: bytes) -> bytes:
        c = prefix.copy()
        c.update(msg)
        return c.digest()

    return h


_H_CTX = _tagged("tmpc/dkls23/vsot-context")
_H_PAD = _tagged("tmpc/dkls23/vsot-pad")
_H_OPEN = _tagged("tmpc/dkls23/vsot-open")


def _rand_scalars(rand: RandBytes, count: int) -> list[int]:
    """``count`` uniform non-zero scalars from 64 random bytes each (bias below 2^-256)."""
    raw = expect_len(rand(64 * count), 64 * count, "random bytes")
    out = [int.from_bytes(raw[64 * i : 64 * i + 64], "big") % (N - 1) + 1 for i in range(count)]
    return out


def _ctx_digest(context: bytes, B: bytes) -> bytes:
    return _H_CTX(lp(context) + B)


# --------------------------------------------------------------------------------------------
# Schnorr proof of knowledge of a discrete logarithm (F_ZK^{R_DL} by Fiat-Shamir)
# --------------------------------------------------------------------------------------------


def _dlog_challenge(context: bytes, statement: bytes, commitment: bytes) -> int:
    h = hashlib.sha512(lp(b"tmpc/dkls23/vsot-dlog") + lp(context) + lp(statement) + lp(commitment))
    return int.from_bytes(h.digest(), "big") % N


def dlog_prove(context: bytes, witness: int, statement: SecpPoint, rand: RandBytes) -> bytes:
    """Schnorr proof (64 bytes ``c || z``) that the prover knows ``witness`` with
    ``statement == witness * G``.

    ``k`` random, ``R = k*G``, ``c = H(context, statement, R) mod n`` (SHA-512, domain tag
    ``tmpc/dkls23/vsot-dlog``, length-prefixed parts), ``z = k + c*witness mod n``.
    The function does not check the witness: proving with a wrong one yields a proof that
    :func:`dlog_verify` rejects (the tests use this).
    """
    (k,) = _rand_scalars(rand, 1)
    c = _dlog_challenge(context, statement.encode(), G.base_mul(k).encode())
    z = (k + c * witness) % N
    return c.to_bytes(_SCALAR_LEN, "big") + z.to_bytes(_SCALAR_LEN, "big")


def dlog_verify(context: bytes, statement: SecpPoint, proof: bytes) -> bool:
    """Verify a :func:`dlog_prove` proof: ``R' = z*G - c*statement`` and ``c == H(.., R')``.

    Returns False (never raises) for a proof of the wrong length, a non-canonical ``c`` or ``z``,
    or an ``R'`` at infinity.
    """
    if len(proof) != 2 * _SCALAR_LEN:
        return False
    c = int.from_bytes(proof[:_SCALAR_LEN], "big")
    z = int.from_bytes(proof[_SCALAR_LEN:], "big")
    if c >= N or z >= N:
        return False
    R = G.base_mul(z) + statement * (N - c)
    if R.is_identity():
        return False
    return ct_equal(
        _dlog_challenge(context, statement.encode(), R.encode()).to_bytes(32, "big"),
        c.to_bytes(32, "big"),
    )


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VsotPublicKey:
    """Flow 1 (sender -> receiver): ``B`` (33 bytes) and the proof ``c || z`` (64 bytes)."""

    B: SecpPoint
    proof: bytes

    LEN: ClassVar[int] = _POINT_LEN + 2 * _SCALAR_LEN

    def to_bytes(self) -> bytes:
        """``B || c || z`` (97 bytes)."""
        return self.B.encode() + self.proof

    @classmethod
    def from_bytes(cls, data: bytes) -> VsotPublicKey:
        """Strict decode; raises :class:`~tmpc.errors.DecodeError` on a wrong length or an
        invalid point (identity, off the curve, non-canonical)."""
        data = expect_len(data, cls.LEN, "VSOT public key message")
        return cls(G.decode_point(data[:_POINT_LEN]), data[_POINT_LEN:])


@dataclass(frozen=True, slots=True)
class VsotChoices:
    """Flow 2 (receiver -> sender): the points ``A_i`` (``count * 33`` bytes)."""

    A: tuple[SecpPoint, ...]

    def to_bytes(self) -> bytes:
        """Concatenated compressed points."""
        return b"".join(p.encode() for p in self.A)

    @classmethod
    def from_bytes(cls, data: bytes, count: int = KAPPA) -> VsotChoices:
        """Strict decode of ``count`` points; raises :class:`~tmpc.errors.DecodeError` on a wrong
        length or any invalid point."""
        data = expect_len(data, count * _POINT_LEN, "VSOT choice message")
        return cls(
            tuple(G.decode_point(data[i * _POINT_LEN : (i + 1) * _POINT_LEN]) for i in range(count))
        )


@dataclass(frozen=True, slots=True)
class VsotOpening:
    """Flow 3 (sender -> receiver): ``H(rho^0_i) || H(rho^1_i)`` per instance (64 bytes each)."""

    hashes: bytes

    def to_bytes(self) -> bytes:
        """The raw ``count * 64`` bytes."""
        return self.hashes

    @classmethod
    def from_bytes(cls, data: bytes, count: int = KAPPA) -> VsotOpening:
        """Length-checked decode; raises :class:`~tmpc.errors.DecodeError`."""
        return cls(expect_len(data, count * 2 * PAD_LEN, "VSOT opening message"))


# --------------------------------------------------------------------------------------------
# Secret states
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class VsotSender:
    """The sender's secret state between flows 1 and 3 (single use; never printed or copied)."""

    context: bytes
    receiver_id: int
    count: int
    b: int = field(repr=False)
    B: SecpPoint
    used: bool = False

    __reduce_ex__ = _no_copy
    __copy__ = _no_copy
    __deepcopy__ = _no_copy

    def __repr__(self) -> str:
        return f"<VsotSender towards {self.receiver_id} (secret)>"


@dataclass(slots=True)
class VsotReceiver:
    """The receiver's secret state between flows 2 and 4 (single use; never printed or copied):
    its choice bits and pads."""

    context: bytes
    sender_id: int
    choices: tuple[int, ...] = field(repr=False)
    pads: list[bytes] = field(repr=False)
    ctx_digest: bytes
    used: bool = False

    __reduce_ex__ = _no_copy
    __copy__ = _no_copy
    __deepcopy__ = _no_copy

    def __repr__(self) -> str:
        return f"<VsotReceiver from {self.sender_id} (secret)>"


def _take(state: VsotSender | VsotReceiver) -> None:
    if state.used:
        raise StateError("VSOT state used twice")
    state.used = True


def _check_count(count: int) -> int:
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 65535:
        raise ParameterError("the VSOT batch size must be in [1, 65535]")
    return count


# --------------------------------------------------------------------------------------------
# The protocol
# --------------------------------------------------------------------------------------------


def vsot_sender_1(
    context: bytes,
    *,
    receiver_id: int,
    count: int = KAPPA,
    rand: RandBytes | None = None,
) -> tuple[VsotSender, VsotPublicKey]:
    """VSOT flow 1: the sender's public key and its proof of knowledge.

    Args:
        context: bytes that bind this batch (session id and both identifiers); the same on both
            sides; **must not** be reused for another batch.
        receiver_id: the receiver's identifier (named in errors).
        count: number of OT instances in the batch (default :data:`KAPPA`).
        rand: randomness source (``secrets.token_bytes`` if None).

    Returns:
        the sender's secret state and the message (97 bytes when encoded).
    """
    count = _check_count(count)
    rand = rand or secrets.token_bytes
    # Protocol 7, Public Key, step 1: "the sender samples b <- Z_q and computes B = b*G"
    (b,) = _rand_scalars(rand, 1)
    B = G.base_mul(b)
    # step 1 (cont.): "and sends B together with a proof of knowledge of b (F_ZK^{R_DL})";
    # one proof for the whole batch, since b is reused by every instance
    proof = dlog_prove(context, b, B, rand)
    return VsotSender(context, receiver_id, count, b, B), VsotPublicKey(B, proof)


def vsot_receiver_2(
    context: bytes,
    msg1: VsotPublicKey | bytes,
    choices: Sequence[int],
    *,
    sender_id: int,
    rand: RandBytes | None = None,
) -> tuple[VsotReceiver, VsotChoices]:
    """VSOT flow 2: check the sender's proof, then encode each choice bit.

    Args:
        context: as given to :func:`vsot_sender_1`.
        msg1: the sender's flow-1 message (typed or 97 bytes).
        choices: the choice bits ``w_i`` (each 0 or 1), one per instance.
        sender_id: the sender's identifier (named in errors).
        rand: randomness source (``secrets.token_bytes`` if None).

    Returns:
        the receiver's secret state and the message (``33 * len(choices)`` bytes).

    Raises:
        FaultyParticipantError: ``msg1`` is malformed (names the sender).
        OTCheckError: the proof of knowledge of ``b`` is invalid (names the sender).
        ParameterError: bad choice bits.
    """
    count = _check_count(len(choices))
    if any(w not in (0, 1) or isinstance(w, bool) for w in choices):
        raise ParameterError("VSOT choice bits must be the integers 0 or 1")
    rand = rand or secrets.token_bytes
    if isinstance(msg1, bytes | bytearray):
        try:
            msg1 = VsotPublicKey.from_bytes(bytes(msg1))
        except DecodeError as exc:
            raise FaultyParticipantError(
                f"party {sender_id} sent a malformed VSOT public key: {exc}", sender_id
            ) from None
    B = msg1.B
    # Protocol 7, Public Key, step 2: "the receiver verifies the proof of knowledge of b"
    if not dlog_verify(context, B, msg1.proof):
        raise OTCheckError(
            f"party {sender_id}'s proof of knowledge in the base OT is invalid", sender_id
        )
    B_enc = B.encode()
    ctx = _ctx_digest(context, B_enc)
    # raw libsecp256k1 calls in this loop (it dominates the pairwise setup); B was validated by
    # decode_point above
    B_pk = coincurve.PublicKey(B_enc)
    a = _rand_scalars(rand, count)
    A: list[SecpPoint] = []
    pads: list[bytes] = []
    for i in range(count):
        # Pad Transfer, step 3: "the receiver samples a_i <- Z_q, computes
        # A_i = a_i*G + w_i*B and rho^{w_i}_i = H(a_i*B)"; both candidates are computed so the
        # work does not depend on w_i
        a_i = a[i].to_bytes(_SCALAR_LEN, "big")
        P0 = coincurve.PublicKey.from_valid_secret(a_i)
        P1 = coincurve.PublicKey.combine_keys([P0, B_pk])
        Ai = (P0, P1)[choices[i]]
        Ai_enc = Ai.format(True)
        A.append(SecpPoint(Ai, Ai_enc))
        pads.append(_H_PAD(ctx + i.to_bytes(2, "big") + Ai_enc + B_pk.multiply(a_i).format(True)))
    a.clear()
    return VsotReceiver(context, sender_id, tuple(choices), pads, ctx), VsotChoices(tuple(A))


def vsot_sender_3(
    state: VsotSender, msg2: VsotChoices | bytes
) -> tuple[list[bytes], list[bytes], VsotOpening]:
    """VSOT flow 3: the sender's pads and the verification opening.

    Args:
        state: the state of :func:`vsot_sender_1` (consumed).
        msg2: the receiver's flow-2 message (typed or ``33 * count`` bytes).

    Returns:
        ``(rho0, rho1, opening)``: the sender's two pads per instance (32 bytes each) and the
        message (``64 * count`` bytes).

    Raises:
        StateError: the state was used before.
        FaultyParticipantError: ``msg2`` is malformed: wrong length, an invalid point, or
            ``A_i == B`` (names the receiver).
    """
    _take(state)
    rid = state.receiver_id
    if isinstance(msg2, bytes | bytearray):
        try:
            msg2 = VsotChoices.from_bytes(bytes(msg2), state.count)
        except DecodeError as exc:
            raise FaultyParticipantError(
                f"party {rid} sent a malformed VSOT choice message: {exc}", rid
            ) from None
    if len(msg2.A) != state.count:
        raise FaultyParticipantError(f"party {rid} sent a VSOT choice message of wrong size", rid)
    B, b = state.B, state.b
    ctx = _ctx_digest(state.context, B.encode())
    minus_bB = -(B * b)
    rho0: list[bytes] = []
    rho1: list[bytes] = []
    opening: list[bytes] = []
    for i, Ai in enumerate(msg2.A):
        if Ai == B:
            # b*(A_i - B) would be the identity: not an honest message (probability 2^-256)
            raise FaultyParticipantError(f"party {rid} sent A_i equal to B in the base OT", rid)
        # Pad Transfer, step 4: "the sender computes rho^0_i = H(b*A_i) and
        # rho^1_i = H(b*(A_i - B))"; b*(A_i - B) = b*A_i - b*B costs one addition
        P0 = Ai * b
        P1 = P0 + minus_bB
        prefix = ctx + i.to_bytes(2, "big") + Ai.encode()
        r0, r1 = _H_PAD(prefix + P0.encode()), _H_PAD(prefix + P1.encode())
        rho0.append(r0)
        rho1.append(r1)
        # Verify, step 7 (opening half): "the sender sends H(rho^0_i) and H(rho^1_i)"
        idx = i.to_bytes(2, "big")
        opening.append(_H_OPEN(ctx + idx + r0) + _H_OPEN(ctx + idx + r1))
    state.b = 0
    return rho0, rho1, VsotOpening(b"".join(opening))


def vsot_receiver_4(state: VsotReceiver, msg3: VsotOpening | bytes) -> list[bytes]:
    """VSOT flow 3, receiver side: check the opening against its own pads.

    Args:
        state: the state of :func:`vsot_receiver_2` (consumed).
        msg3: the sender's opening (typed or ``64 * count`` bytes).

    Returns:
        the receiver's pad ``rho^{w_i}_i`` (32 bytes) for each instance.

    Raises:
        StateError: the state was used before.
        FaultyParticipantError: ``msg3`` has the wrong length (names the sender).
        OTCheckError: an opening does not match the receiver's pad (names the sender).
    """
    _take(state)
    sid = state.sender_id
    count = len(state.pads)
    if isinstance(msg3, bytes | bytearray):
        try:
            msg3 = VsotOpening.from_bytes(bytes(msg3), count)
        except DecodeError as exc:
            raise FaultyParticipantError(
                f"party {sid} sent a malformed VSOT opening: {exc}", sid
            ) from None
    data = msg3.hashes
    if len(data) != count * 2 * PAD_LEN:
        raise FaultyParticipantError(f"party {sid} sent a VSOT opening of wrong size", sid)
    ok = True
    for i, (w, pad) in enumerate(zip(state.choices, state.pads, strict=True)):
        # Verify, step 8: "the receiver aborts if the purported H(rho^{w_i}_i) does not match
        # the one it computes"; all instances are checked before deciding
        start = (2 * i + w) * PAD_LEN
        mine = _H_OPEN(state.ctx_digest + i.to_bytes(2, "big") + pad)
        ok &= ct_equal(mine, data[start : start + PAD_LEN])
    if not ok:
        raise OTCheckError(f"party {sid}'s base-OT opening does not match its pads", sid)
    pads = list(state.pads)
    state.pads = []
    return pads
