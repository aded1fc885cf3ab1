"""EncPedPop: SimplPedPop with the partial secret shares encrypted to the host keys.

Each participant draws an ephemeral secp256k1 key (``secnonce``/``pubnonce``) and encrypts
the partial share for participant ``i`` by adding a pad derived from ECDH with ``i``'s host
(encryption) key, hashed with the index ``i``, both public keys and the session context (the
multi-recipient "hashed ElGamal" KEM of Pinto, Poettering and Schuldt). The pad to itself is
derived symmetrically from its own decryption key. The encryption is additively homomorphic,
so the coordinator sums the ciphertexts for each recipient.

ECDH is always secp256k1 (the host keys); pads are scalars of the target group.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from tmpc.errors import (
    DecodeError,
    FaultyCoordinatorError,
    FaultyParticipantError,
    ParameterError,
    StateError,
)
from tmpc.group.secp256k1 import N_ORDER, SECP256K1, SecpPoint
from tmpc.protocols.dkg import simplpedpop
from tmpc.protocols.dkg.exceptions import (
    FaultyParticipantOrCoordinatorError,
    UnknownFaultyParticipantOrCoordinatorError,
)
from tmpc.protocols.dkg.suite import DKGSuite, as_secp, be4

__all__ = [
    "CoordinatorInvestigationMsg",
    "CoordinatorMsg",
    "ParticipantInvestigationData",
    "ParticipantMsg",
    "ParticipantState",
    "coordinator_investigate",
    "coordinator_step",
    "decrypt_sum",
    "participant_investigate",
    "participant_step1",
    "participant_step2",
    "serialize_enc_context",
]

PUBNONCE_LEN = 33


###
### Encryption
###


def _secp_point(data: bytes) -> SecpPoint:
    return as_secp(SECP256K1.decode_point(data))


def _ecdh_pad(
    suite: DKGSuite,
    seckey: int,
    my_pubkey: bytes,
    their_pubkey: bytes,
    their_point: SecpPoint,
    context: bytes,
    *,
    sending: bool,
) -> int:
    # > data = ecdh_libsecp256k1(seckey, their_pubkey)   (SHA256 of the compressed point)
    shared = hashlib.sha256((their_point * seckey).encode()).digest()
    # > data += my_pubkey + their_pubkey if sending else their_pubkey + my_pubkey; += context
    keys = my_pubkey + their_pubkey if sending else their_pubkey + my_pubkey
    # > Scalar(int_from_bytes(tagged_hash_bip_dkg("encpedpop ecdh", data)))
    return suite.hash_to_scalar("encpedpop ecdh", shared + keys + context)


def _self_pad(suite: DKGSuite, symkey: bytes, nonce: bytes, context: bytes) -> int:
    # > self_pad = tagged_hash_bip_dkg("encaps_multi self_pad", symkey + nonce + context)
    return suite.hash_to_scalar("encaps_multi self_pad", symkey + nonce + context)


def encaps_multi(
    suite: DKGSuite,
    secnonce: int,
    pubnonce: bytes,
    deckey: bytes,
    enckeys: Sequence[bytes],
    enckey_points: Sequence[SecpPoint],
    context: bytes,
    participant_id: int,
) -> list[int]:
    """The ``n`` pads with which participant ``participant_id`` encrypts its shares."""
    pads = []
    for i, enckey in enumerate(enckeys):
        # > context_ = i.to_bytes(4) + context: the recipient's index is hashed in.
        context_ = be4(i) + context
        if i == participant_id:
            pads.append(_self_pad(suite, deckey, pubnonce, context_))
        else:
            pads.append(
                _ecdh_pad(
                    suite, secnonce, pubnonce, enckey, enckey_points[i], context_, sending=True
                )
            )
    return pads


def decaps_multi(
    suite: DKGSuite,
    deckey: bytes,
    enckey: bytes,
    pubnonces: Sequence[bytes],
    context: bytes,
    participant_id: int,
) -> list[int]:
    """The ``n`` pads of the shares sent to ``participant_id`` (one per sender).

    Raises :class:`FaultyParticipantOrCoordinatorError` naming a sender whose pubnonce is not a
    valid point.
    """
    context_ = be4(participant_id) + context
    d = int.from_bytes(deckey, "big")
    pads = []
    for sender, pubnonce in enumerate(pubnonces):
        if sender == participant_id:
            pads.append(_self_pad(suite, deckey, pubnonce, context_))
            continue
        try:
            point = _secp_point(pubnonce)
        except DecodeError:
            raise FaultyParticipantOrCoordinatorError(sender, "invalid public nonce") from None
        pads.append(_ecdh_pad(suite, d, enckey, pubnonce, point, context_, sending=False))
    return pads


def decrypt_sum(
    suite: DKGSuite,
    deckey: bytes,
    enckey: bytes,
    pubnonces: Sequence[bytes],
    context: bytes,
    participant_id: int,
    sum_ciphertexts: int,
) -> int:
    """Decrypt a sum of ciphertexts for ``participant_id``: subtract every sender's pad."""
    if not 0 <= participant_id < len(pubnonces):
        raise ParameterError("participant id out of range")
    pads = decaps_multi(suite, deckey, enckey, pubnonces, context, participant_id)
    return (sum_ciphertexts - sum(pads)) % suite.group.order


def serialize_enc_context(t: int, enckeys: Sequence[bytes]) -> bytes:
    """``t`` (4 bytes) ``|| enckeys`` (33 bytes each)."""
    return be4(t) + b"".join(enckeys)


###
### Messages
###


@dataclass(frozen=True, slots=True)
class ParticipantMsg:
    """SimplPedPop's message, the sender's pubnonce and its ``n`` encrypted partial shares."""

    suite: DKGSuite = field(repr=False, compare=False)
    simpl_pmsg: simplpedpop.ParticipantMsg
    pubnonce: bytes
    enc_shares: tuple[int, ...]

    @staticmethod
    def len_bytes(suite: DKGSuite, t: int, n: int) -> int:
        """SimplPedPop's length + 33 + ``scalar_len*n`` (33t + 97 + 32n on secp256k1)."""
        return simplpedpop.ParticipantMsg.len_bytes(suite, t) + PUBNONCE_LEN + suite.scalar_len * n

    @classmethod
    def from_bytes(cls, suite: DKGSuite, b: bytes, *, t: int, n: int) -> ParticipantMsg:
        """Parse; the pubnonce must be a valid secp256k1 point and the shares ``< order``.

        Raises :class:`DecodeError`.
        """
        if len(b) != cls.len_bytes(suite, t, n):
            raise DecodeError("encpedpop participant message has a wrong length")
        m = simplpedpop.ParticipantMsg.len_bytes(suite, t)
        simpl = simplpedpop.ParticipantMsg.from_bytes(suite, b[:m], t=t)
        pubnonce = bytes(b[m : m + PUBNONCE_LEN])
        _secp_point(pubnonce)  # an invalid nonce is the sender's fault: reject it here
        enc_shares = suite.decode_scalars(b[m + PUBNONCE_LEN :], n)
        return cls(suite, simpl, pubnonce, tuple(enc_shares))

    def to_bytes(self) -> bytes:
        """Serialize: ``simpl_pmsg || pubnonce || enc_shares``."""
        return (
            self.simpl_pmsg.to_bytes() + self.pubnonce + self.suite.encode_scalars(self.enc_shares)
        )


@dataclass(frozen=True, slots=True)
class CoordinatorMsg:
    """SimplPedPop's broadcast and every participant's pubnonce (unparsed, 33 bytes each)."""

    suite: DKGSuite = field(repr=False, compare=False)
    simpl_cmsg: simplpedpop.CoordinatorMsg
    pubnonces: tuple[bytes, ...]

    @staticmethod
    def len_bytes(suite: DKGSuite, t: int, n: int) -> int:
        """SimplPedPop's broadcast + ``33*n`` bytes."""
        return simplpedpop.CoordinatorMsg.len_bytes(suite, t, n) + PUBNONCE_LEN * n

    @classmethod
    def from_bytes(cls, suite: DKGSuite, b: bytes, *, t: int, n: int) -> CoordinatorMsg:
        """Parse; pubnonces stay bytes (a bad one is blamed on its sender when used).

        Raises :class:`DecodeError`.
        """
        if len(b) != cls.len_bytes(suite, t, n):
            raise DecodeError("encpedpop coordinator message has a wrong length")
        m = simplpedpop.CoordinatorMsg.len_bytes(suite, t, n)
        simpl = simplpedpop.CoordinatorMsg.from_bytes(suite, b[:m], t=t, n=n)
        rest = b[m:]
        pubnonces = tuple(bytes(rest[i : i + PUBNONCE_LEN]) for i in range(0, len(rest), 33))
        return cls(suite, simpl, pubnonces)

    def to_bytes(self) -> bytes:
        """Serialize: ``simpl_cmsg || pubnonces``."""
        return self.simpl_cmsg.to_bytes() + b"".join(self.pubnonces)


@dataclass(frozen=True, slots=True)
class CoordinatorInvestigationMsg:
    """For one participant: every dealer's encrypted partial share and partial pubshare."""

    suite: DKGSuite = field(repr=False, compare=False)
    enc_partial_secshares: tuple[int, ...]
    simpl_cinv: simplpedpop.CoordinatorInvestigationMsg

    @staticmethod
    def len_bytes(suite: DKGSuite, n: int) -> int:
        """``(scalar_len + point_len)*n`` bytes (65n on secp256k1)."""
        return suite.scalar_len * n + simplpedpop.CoordinatorInvestigationMsg.len_bytes(suite, n)

    @classmethod
    def from_bytes(cls, suite: DKGSuite, b: bytes, *, n: int) -> CoordinatorInvestigationMsg:
        """Parse; raises :class:`DecodeError`."""
        if len(b) != cls.len_bytes(suite, n):
            raise DecodeError("encpedpop investigation message has a wrong length")
        m = suite.scalar_len * n
        enc = suite.decode_scalars(b[:m], n)
        simpl = simplpedpop.CoordinatorInvestigationMsg.from_bytes(suite, b[m:], n=n)
        return cls(suite, tuple(enc), simpl)

    def to_bytes(self) -> bytes:
        """Serialize: ``enc_partial_secshares || partial_pubshares``."""
        return self.suite.encode_scalars(self.enc_partial_secshares) + self.simpl_cinv.to_bytes()


###
### Participant
###


@dataclass(frozen=True, slots=True)
class ParticipantState:
    """A participant's EncPedPop state between its two steps."""

    simpl_state: simplpedpop.ParticipantState
    pubnonce: bytes
    enckeys: tuple[bytes, ...]
    participant_id: int


@dataclass(frozen=True, slots=True)
class ParticipantInvestigationData:
    """SimplPedPop's investigation data plus the encrypted share and the pads."""

    simpl_inv_data: simplpedpop.ParticipantInvestigationData
    enc_secshare: int = field(repr=False)
    pads: tuple[int, ...] = field(repr=False)


def participant_step1(
    suite: DKGSuite,
    seed: bytes,
    deckey: bytes,
    enckeys: Sequence[bytes],
    enckey_points: Sequence[SecpPoint],
    t: int,
    participant_id: int,
    random: bytes,
) -> tuple[ParticipantState, ParticipantMsg]:
    """Deal as SimplPedPop and encrypt the partial shares to the ``n`` encryption keys.

    Args: ``seed`` (high entropy, hashed only), ``deckey`` (32-byte secp256k1 secret key whose
    public key is ``enckeys[participant_id]``), ``random`` (32 fresh bytes).
    Raises :class:`ParameterError` on bad arguments.
    """
    if not 1 <= t < 2**32 or len(random) != 32:
        raise ParameterError("encpedpop: t out of range or random not 32 bytes")
    n = len(enckeys)
    # > enc_context = serialize_enc_context(t, enckeys)
    enc_context = serialize_enc_context(t, enckeys)
    # > simpl_seed = tagged_hash_bip_dkg("encpedpop seed", seed + random + enc_context)
    simpl_seed = suite.hash("encpedpop seed", seed + random + enc_context)
    # > simpl_aux_rand = tagged_hash_bip_dkg("simplpedpop aux", simpl_seed)
    simpl_aux_rand = suite.hash("simplpedpop aux", simpl_seed)
    # > secnonce = tagged_hash_bip_dkg("encpedpop secnonce", simpl_seed); pubnonce = pubkey(.)
    secnonce = int.from_bytes(suite.hash("encpedpop secnonce", simpl_seed), "big")
    if not 1 <= secnonce < N_ORDER:
        raise ParameterError("encryption nonce out of range (negligible probability)")
    pubnonce = SECP256K1.base_mul(secnonce).encode()

    simpl_state, simpl_pmsg, shares = simplpedpop.participant_step1(
        suite, simpl_seed, t, n, participant_id, simpl_aux_rand, enc_context
    )
    # > enc_shares = encrypt_multi(secnonce, pubnonce, deckey, enckeys, enc_context, id, shares)
    pads = encaps_multi(
        suite, secnonce, pubnonce, deckey, enckeys, enckey_points, enc_context, participant_id
    )
    q = suite.group.order
    enc_shares = tuple((s + p) % q for s, p in zip(shares, pads, strict=True))
    pmsg = ParticipantMsg(suite, simpl_pmsg, pubnonce, enc_shares)
    state = ParticipantState(simpl_state, pubnonce, tuple(enckeys), participant_id)
    return state, pmsg


def participant_step2(
    state: ParticipantState, deckey: bytes, cmsg: CoordinatorMsg, enc_secshare: int
) -> tuple[simplpedpop.DKGOutput, bytes]:
    """Decrypt the summed share and run SimplPedPop's second step.

    Returns the output and ``eq_input`` (SimplPedPop's ``|| enckeys || pubnonces``).
    Raises :class:`FaultyCoordinatorError`, :class:`FaultyParticipantOrCoordinatorError`, or
    :class:`UnknownFaultyParticipantOrCoordinatorError` (with EncPedPop investigation data).
    """
    simpl_state = state.simpl_state
    suite, me = simpl_state.suite, state.participant_id
    if len(cmsg.pubnonces) != len(state.enckeys):
        raise FaultyCoordinatorError("Coordinator sent a pubnonce list of wrong length")
    # > if pubnonces[participant_id] != pubnonce: raise FaultyCoordinatorError
    if cmsg.pubnonces[me] != state.pubnonce:
        raise FaultyCoordinatorError("Coordinator replied with wrong pubnonce")
    enc_context = serialize_enc_context(simpl_state.t, state.enckeys)
    # > pads = decaps_multi(...); secshare = enc_secshare - Scalar.sum(*pads)
    pads = decaps_multi(suite, deckey, state.enckeys[me], cmsg.pubnonces, enc_context, me)
    secshare = (enc_secshare - sum(pads)) % suite.group.order
    try:
        dkg_output, eq_input = simplpedpop.participant_step2(simpl_state, cmsg.simpl_cmsg, secshare)
    except UnknownFaultyParticipantOrCoordinatorError as e:
        inv = e.inv_data
        assert isinstance(inv, simplpedpop.ParticipantInvestigationData)  # raised just above
        raise UnknownFaultyParticipantOrCoordinatorError(
            ParticipantInvestigationData(inv, enc_secshare, tuple(pads)), str(e)
        ) from None
    # > eq_input += b"".join(enckeys) + b"".join(pubnonces)
    eq_input += b"".join(state.enckeys) + b"".join(cmsg.pubnonces)
    return dkg_output, eq_input


def participant_investigate(
    error: UnknownFaultyParticipantOrCoordinatorError, cinv: CoordinatorInvestigationMsg
) -> NoReturn:
    """Decrypt the partial shares with the recorded pads and run SimplPedPop's investigation.

    Raises :class:`FaultyParticipantOrCoordinatorError` or :class:`FaultyCoordinatorError`
    (or :class:`StateError` if there is nothing to investigate).
    """
    inv = error.inv_data
    if not isinstance(inv, ParticipantInvestigationData):
        raise StateError("not an EncPedPop investigation")
    n = inv.simpl_inv_data.n
    if len(cinv.enc_partial_secshares) != n:
        raise FaultyCoordinatorError("Coordinator sent an investigation message of wrong length")
    q = cinv.suite.group.order
    # > partial_secshares = [enc_partial_secshare - pad for ...]
    partial_secshares = [
        (c - p) % q for c, p in zip(cinv.enc_partial_secshares, inv.pads, strict=True)
    ]
    try:
        simplpedpop.participant_investigate(
            UnknownFaultyParticipantOrCoordinatorError(inv.simpl_inv_data, str(error)),
            cinv.simpl_cinv,
            partial_secshares,
        )
    except simplpedpop.SecshareSumError:
        # The encryption is additively homomorphic, so the decrypted partial shares only fail
        # to sum to the share if the encrypted ones do not sum to the encrypted share: the
        # coordinator summed (or relayed) them wrongly.
        raise FaultyCoordinatorError(
            "Sum of encrypted partial secshares not equal to encrypted secshare"
        ) from None


###
### Coordinator
###


def coordinator_step(
    suite: DKGSuite, pmsgs: Sequence[ParticipantMsg], t: int, enckeys: Sequence[bytes]
) -> tuple[CoordinatorMsg, simplpedpop.DKGOutput, bytes, list[int]]:
    """Run SimplPedPop's coordinator step and sum the encrypted shares per recipient.

    Returns the broadcast, the output, ``eq_input`` and ``enc_secshares`` (entry ``i`` for
    participant ``i``; ChillDKG broadcasts them all).
    Raises :class:`ParameterError` or :class:`FaultyParticipantError`.
    """
    n = len(enckeys)
    if len(pmsgs) != n:
        raise ParameterError(f"expected {n} participant messages, got {len(pmsgs)}")
    for i, pmsg in enumerate(pmsgs):
        if len(pmsg.enc_shares) != n:
            raise FaultyParticipantError(f"participant {i} sent {len(pmsg.enc_shares)} shares", i)
    enc_context = serialize_enc_context(t, enckeys)
    simpl_cmsg, dkg_output, eq_input = simplpedpop.coordinator_step(
        suite, [pmsg.simpl_pmsg for pmsg in pmsgs], t, n, enc_context
    )
    pubnonces = tuple(pmsg.pubnonce for pmsg in pmsgs)
    q = suite.group.order
    # > enc_secshares = [Scalar.sum(*(pmsg.enc_shares[i] for pmsg in pmsgs)) for i in range(n)]
    enc_secshares = [sum(pmsg.enc_shares[i] for pmsg in pmsgs) % q for i in range(n)]
    eq_input += b"".join(enckeys) + b"".join(pubnonces)
    return CoordinatorMsg(suite, simpl_cmsg, pubnonces), dkg_output, eq_input, enc_secshares


def coordinator_investigate(
    pmsgs: Sequence[ParticipantMsg], n: int
) -> list[CoordinatorInvestigationMsg]:
    """For each participant ``i``: every dealer's encrypted share for ``i`` and its partial
    pubshare. Contains nothing secret; may be broadcast."""
    simpl_cinvs = simplpedpop.coordinator_investigate([p.simpl_pmsg for p in pmsgs], n)
    suite = pmsgs[0].suite
    return [
        CoordinatorInvestigationMsg(suite, tuple(p.enc_shares[i] for p in pmsgs), simpl_cinvs[i])
        for i in range(n)
    ]
