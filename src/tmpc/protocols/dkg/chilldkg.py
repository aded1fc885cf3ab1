"""ChillDKG: EncPedPop plus the CertEq equality check, with host keys and recovery data.

Follows the ChillDKG draft (BlockstreamResearch/bip-frost-dkg) step by step; for secp256k1
every message, hash and output is byte for byte the draft's, and its test vectors pass. The
target group of the VSS is ``SessionParams.group`` (default secp256k1); host keys, ECDH and
the CertEq signatures always stay secp256k1 / BIP340.

Flow (one coordinator relays everything; it is untrusted)::

    participant_step1 -> pmsg1 -> coordinator_step1 -> cmsg1 -> participant_step2 -> pmsg2
    -> coordinator_finalize -> cmsg2 -> participant_finalize -> (DKGOutput, recovery data)

If ``participant_step2`` raises :class:`UnknownFaultyParticipantOrCoordinatorError`, the
coordinator may answer with ``coordinator_investigate`` and the participant calls
``participant_investigate``, which names the dealer of the bad share (or the coordinator).

Every function takes and returns wire bytes; a received message that does not parse is
blamed on its sender (a participant for ``pmsg1``/``pmsg2``, the coordinator otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from tmpc.encoding import tagged_hash
from tmpc.errors import (
    DecodeError,
    FaultyCoordinatorError,
    FaultyParticipantError,
    ParameterError,
    ProtocolError,
    StateError,
)
from tmpc.group.base import Group, Point
from tmpc.group.secp256k1 import N_ORDER, SECP256K1, SecpPoint
from tmpc.primitives import bip340
from tmpc.protocols.dkg import encpedpop, simplpedpop
from tmpc.protocols.dkg.exceptions import (
    DuplicateHostPubkeyError,
    HostSeckeyError,
    InvalidHostPubkeyError,
    RandomnessError,
    RecoveryDataError,
    SessionParamsError,
    ThresholdOrCountError,
    UnknownFaultyParticipantOrCoordinatorError,
)
from tmpc.protocols.dkg.simplpedpop import DKGOutput
from tmpc.protocols.dkg.suite import DKGSuite, as_secp, be4, suite_for

__all__ = [
    "CoordinatorInvestigationMsg",
    "CoordinatorMsg1",
    "CoordinatorMsg2",
    "CoordinatorState",
    "DKGOutput",
    "ParticipantMsg1",
    "ParticipantMsg2",
    "ParticipantState1",
    "ParticipantState2",
    "SessionParams",
    "coordinator_finalize",
    "coordinator_investigate",
    "coordinator_recover",
    "coordinator_step1",
    "hostpubkey_gen",
    "params_hash",
    "params_id",
    "params_validate",
    "participant_finalize",
    "participant_investigate",
    "participant_recover",
    "participant_step1",
    "participant_step2",
    "recover_output",
]

CERT_SIG_LEN = 64


###
### Equality check protocol CertEq
###


def certeq_message(suite: DKGSuite, x: bytes, participant_id: int) -> bytes:
    """``prefix(33) || id(4) || x``: the prefix is the zero-padded tag (BIP340 domain
    separation for variable-length messages)."""
    return suite.certeq_prefix + be4(participant_id) + x


def certeq_participant_step(
    suite: DKGSuite, hostseckey: bytes, participant_id: int, x: bytes, aux_rand: bytes
) -> bytes:
    """This participant's 64-byte BIP340 signature on ``x``."""
    return bip340.schnorr_sign(certeq_message(suite, x, participant_id), hostseckey, aux_rand)


def certeq_verify(
    suite: DKGSuite, hostpubkeys: Sequence[bytes], x: bytes, cert: bytes
) -> int | None:
    """The index of the first invalid signature in ``cert`` (``64*n`` bytes), or None."""
    return _certeq_verify(suite.certeq_prefix, tuple(hostpubkeys), bytes(x), bytes(cert))


def _certeq_verify(
    prefix: bytes, hostpubkeys: tuple[bytes, ...], x: bytes, cert: bytes
) -> int | None:
    if len(cert) != CERT_SIG_LEN * len(hostpubkeys):
        return 0
    for i, hostpubkey in enumerate(hostpubkeys):
        # Dropping the sign byte is fine: x commits to the full host public keys.
        sig = cert[i * CERT_SIG_LEN : (i + 1) * CERT_SIG_LEN]
        if not bip340.schnorr_verify(prefix + be4(i) + x, hostpubkey[1:33], sig):
            return i
    return None


###
### Host keys and session parameters
###


def _host_scalar(hostseckey: bytes) -> int:
    if not isinstance(hostseckey, bytes | bytearray) or len(hostseckey) != 32:
        raise HostSeckeyError("host secret key must be 32 bytes")
    d = int.from_bytes(hostseckey, "big")
    if not 1 <= d < N_ORDER:
        raise HostSeckeyError("host secret key is out of range")
    return d


def hostpubkey_gen(hostseckey: bytes) -> bytes:
    """The 33-byte compressed host public key of a 32-byte host secret key.

    The host key is the participant's long-term identity; the secret key **must** be 32
    bytes of fresh cryptographic randomness and **must** be kept (with the recovery data it
    restores every DKG output). Raises :class:`HostSeckeyError` for a key that is not 32 bytes
    or not in ``1..n-1``.
    """
    # > return pubkey_gen_plain(hostseckey)   (HostSeckeyError if invalid)
    return SECP256K1.base_mul(_host_scalar(hostseckey)).encode()


@dataclass(frozen=True, slots=True)
class SessionParams:
    """The common parameters of a DKG session.

    ``hostpubkeys``: the ordered host public keys (33 bytes each) of all ``n`` participants;
    participant ``i`` is ``hostpubkeys[i]``. ``t``: the threshold, ``1 <= t <= n < 2**32``.
    ``group``: the target group of the shares (default secp256k1, the draft).
    Every participant **must** hold authentic copies of all host public keys (compare
    :func:`params_hash` out of band).
    """

    hostpubkeys: tuple[bytes, ...]
    t: int
    group: Group = SECP256K1
    _points: tuple[SecpPoint, ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        keys = tuple(self.hostpubkeys)
        if not all(isinstance(k, bytes | bytearray) for k in keys):
            raise ParameterError("host public keys must be bytes")
        object.__setattr__(self, "hostpubkeys", tuple(bytes(k) for k in keys))
        if not isinstance(self.t, int) or isinstance(self.t, bool):
            raise ThresholdOrCountError("threshold must be an integer")

    @property
    def n(self) -> int:
        """The number of participants."""
        return len(self.hostpubkeys)

    @property
    def suite(self) -> DKGSuite:
        """The target group's DKG suite."""
        return suite_for(self.group)


def params_validate(params: SessionParams) -> tuple[SecpPoint, ...]:
    """Validate ``params``; return the decoded host public keys (cached on ``params``).

    Raises :class:`ThresholdOrCountError`, :class:`InvalidHostPubkeyError` (naming the first
    invalid key) or :class:`DuplicateHostPubkeyError`.
    """
    if params._points is not None:
        return params._points
    hostpubkeys, t = params.hostpubkeys, params.t
    if not 1 <= t <= len(hostpubkeys) <= 2**32 - 1:
        raise ThresholdOrCountError("need 1 <= t <= n <= 2**32 - 1")
    points = []
    for i, hostpubkey in enumerate(hostpubkeys):
        try:
            points.append(as_secp(SECP256K1.decode_point(hostpubkey)))
        except DecodeError:
            raise InvalidHostPubkeyError(i) from None
    seen: dict[bytes, int] = {}
    for i, hostpubkey in enumerate(hostpubkeys):
        if hostpubkey in seen:
            raise DuplicateHostPubkeyError(seen[hostpubkey], i)
        seen[hostpubkey] = i
    result = tuple(points)
    object.__setattr__(params, "_points", result)
    return result


def params_hash(params: SessionParams) -> bytes:
    """A 32-byte hash of the session parameters, for out-of-band comparison.

    If all participants got the same hash, they agree on all host public keys, their order,
    ``t`` (and, off secp256k1, the group). Raises like :func:`params_validate`.
    """
    params_validate(params)
    # > tagged_hash_bip_dkg("params_hash", t.to_bytes(4) + b"".join(hostpubkeys))
    tag = params.suite.tag("params_hash")
    return tagged_hash(tag, be4(params.t) + b"".join(params.hostpubkeys))


params_id = params_hash
"""The earlier drafts' name of :func:`params_hash`."""


###
### Messages
###


@dataclass(frozen=True, slots=True)
class ParticipantMsg1:
    """A participant's first message (``point_len*t + 161 + 32*n`` bytes; 33t + 97 + 32n on
    secp256k1)."""

    enc_pmsg: encpedpop.ParticipantMsg

    @staticmethod
    def len_bytes(group: Group, t: int, n: int) -> int:
        """The serialized length."""
        return encpedpop.ParticipantMsg.len_bytes(suite_for(group), t, n)

    @classmethod
    def from_bytes(cls, b: bytes, *, group: Group, t: int, n: int) -> ParticipantMsg1:
        """Parse; raises :class:`DecodeError`."""
        return cls(encpedpop.ParticipantMsg.from_bytes(suite_for(group), b, t=t, n=n))

    def to_bytes(self) -> bytes:
        """Serialize."""
        return self.enc_pmsg.to_bytes()


@dataclass(frozen=True, slots=True)
class ParticipantMsg2:
    """A participant's CertEq signature (64 bytes)."""

    sig: bytes

    @classmethod
    def from_bytes(cls, b: bytes) -> ParticipantMsg2:
        """Parse; raises :class:`DecodeError` unless 64 bytes."""
        if len(b) != CERT_SIG_LEN:
            raise DecodeError("pmsg2 must be 64 bytes")
        return cls(bytes(b))

    def to_bytes(self) -> bytes:
        """Serialize."""
        return self.sig


@dataclass(frozen=True, slots=True)
class CoordinatorMsg1:
    """The coordinator's first broadcast: EncPedPop's message and all ``n`` summed encrypted
    shares (``162*n + 33*(t-1)`` bytes on secp256k1)."""

    enc_cmsg: encpedpop.CoordinatorMsg
    enc_secshares: tuple[int, ...]

    @staticmethod
    def len_bytes(group: Group, t: int, n: int) -> int:
        """The serialized length."""
        suite = suite_for(group)
        return encpedpop.CoordinatorMsg.len_bytes(suite, t, n) + suite.scalar_len * n

    @classmethod
    def from_bytes(cls, b: bytes, *, group: Group, t: int, n: int) -> CoordinatorMsg1:
        """Parse; raises :class:`DecodeError`."""
        suite = suite_for(group)
        if len(b) != cls.len_bytes(group, t, n):
            raise DecodeError("cmsg1 has a wrong length")
        m = encpedpop.CoordinatorMsg.len_bytes(suite, t, n)
        enc_cmsg = encpedpop.CoordinatorMsg.from_bytes(suite, b[:m], t=t, n=n)
        return cls(enc_cmsg, tuple(suite.decode_scalars(b[m:], n)))

    def to_bytes(self) -> bytes:
        """Serialize."""
        return self.enc_cmsg.to_bytes() + self.enc_cmsg.suite.encode_scalars(self.enc_secshares)


@dataclass(frozen=True, slots=True)
class CoordinatorMsg2:
    """The coordinator's second broadcast: the certificate (``64*n`` bytes)."""

    cert: bytes

    @classmethod
    def from_bytes(cls, b: bytes, *, n: int) -> CoordinatorMsg2:
        """Parse; raises :class:`DecodeError` unless ``64*n`` bytes."""
        if len(b) != CERT_SIG_LEN * n:
            raise DecodeError("cmsg2 has a wrong length")
        return cls(bytes(b))

    def to_bytes(self) -> bytes:
        """Serialize."""
        return self.cert


@dataclass(frozen=True, slots=True)
class CoordinatorInvestigationMsg:
    """The investigation message for one participant (``65*n`` bytes on secp256k1)."""

    enc_cinv: encpedpop.CoordinatorInvestigationMsg

    @staticmethod
    def len_bytes(group: Group, n: int) -> int:
        """The serialized length."""
        return encpedpop.CoordinatorInvestigationMsg.len_bytes(suite_for(group), n)

    @classmethod
    def from_bytes(cls, b: bytes, *, group: Group, n: int) -> CoordinatorInvestigationMsg:
        """Parse; raises :class:`DecodeError`."""
        return cls(encpedpop.CoordinatorInvestigationMsg.from_bytes(suite_for(group), b, n=n))

    def to_bytes(self) -> bytes:
        """Serialize."""
        return self.enc_cinv.to_bytes()


def deserialize_recovery_data(
    suite: DKGSuite, b: bytes
) -> tuple[int, list[Point], list[bytes], list[bytes], list[int], bytes]:
    """``(t, sum_coms, hostpubkeys, pubnonces, enc_secshares, cert)``; :class:`DecodeError`."""
    if len(b) < 4:
        raise DecodeError("recovery data too short")
    t, rest = int.from_bytes(b[:4], "big"), b[4:]
    m = suite.point_len * t
    if len(rest) < m:
        raise DecodeError("recovery data too short")
    sum_coms, rest = suite.decode_points(rest[:m], t), rest[m:]
    record = 33 + 33 + suite.scalar_len + CERT_SIG_LEN
    n, remainder = divmod(len(rest), record)
    if remainder != 0:
        raise DecodeError("recovery data has a wrong length")
    hostpubkeys = [rest[i : i + 33] for i in range(0, 33 * n, 33)]
    rest = rest[33 * n :]
    pubnonces = [rest[i : i + 33] for i in range(0, 33 * n, 33)]
    rest = rest[33 * n :]
    s = suite.scalar_len * n
    enc_secshares, cert = suite.decode_scalars(rest[:s], n), rest[s:]
    return t, sum_coms, hostpubkeys, pubnonces, enc_secshares, cert


###
### Participant
###


@dataclass(frozen=True, slots=True)
class ParticipantState1:
    """State between ``participant_step1`` and ``participant_step2``; pass it to exactly one
    ``participant_step2`` call."""

    params: SessionParams
    participant_id: int
    enc_state: encpedpop.ParticipantState = field(repr=False)


@dataclass(frozen=True, slots=True)
class ParticipantState2:
    """State between ``participant_step2`` and ``participant_finalize``."""

    params: SessionParams
    eq_input: bytes = field(repr=False)
    dkg_output: DKGOutput


@dataclass(frozen=True, slots=True)
class ParticipantInvestigationData:
    """ChillDKG's investigation data: the session and EncPedPop's data."""

    params: SessionParams
    enc_inv_data: encpedpop.ParticipantInvestigationData = field(repr=False)


def participant_step1(
    hostseckey: bytes, params: SessionParams, random: bytes
) -> tuple[ParticipantState1, bytes]:
    """A participant's first step.

    Args: ``hostseckey`` (32 bytes), ``params``, ``random`` (32 FRESH random bytes).
    Returns the state (for exactly one ``participant_step2``) and ``pmsg1`` for the
    coordinator (``33*t + 97 + 32*n`` bytes on secp256k1, ``32*t + 161 + 32*n`` on ed25519).
    Raises :class:`HostSeckeyError` (invalid key, or matching no host public key),
    :class:`SessionParamsError` subclasses, :class:`ParameterError` (``random`` not 32
    bytes) or :class:`RandomnessError` (``random`` all zero).
    """
    # > hostpubkey = hostpubkey_gen(hostseckey); params_validate(params)
    hostpubkey = hostpubkey_gen(hostseckey)
    points = params_validate(params)
    # > participant_id = hostpubkeys.index(hostpubkey)
    try:
        participant_id = params.hostpubkeys.index(hostpubkey)
    except ValueError:
        raise HostSeckeyError("Host secret key does not match any host public key") from None
    # > if len(random) != 32: raise ValueError; if random == b"\x00" * 32: raise RandomnessError
    if not isinstance(random, bytes | bytearray) or len(random) != 32:
        raise ParameterError("random must be 32 bytes")
    if random == bytes(32):
        raise RandomnessError("random is all zero")
    # > encpedpop.participant_step1(seed=hostseckey, deckey=hostseckey, enckeys=hostpubkeys..)
    # The seed is only hashed, so the host secret key serves as seed.
    enc_state, enc_pmsg = encpedpop.participant_step1(
        params.suite,
        seed=bytes(hostseckey),
        deckey=bytes(hostseckey),
        enckeys=params.hostpubkeys,
        enckey_points=points,
        t=params.t,
        participant_id=participant_id,
        random=bytes(random),
    )
    return ParticipantState1(params, participant_id, enc_state), enc_pmsg.to_bytes()


def participant_step2(
    hostseckey: bytes, state1: ParticipantState1, cmsg1: bytes, aux_rand: bytes
) -> tuple[ParticipantState2, bytes]:
    """A participant's second step: check ``cmsg1``, derive the output, sign the transcript.

    After sending ``pmsg2`` the caller **must not** erase ``hostseckey``: another participant
    may deem the session successful and later present the recovery data.
    Returns the state (for ``participant_finalize``) and ``pmsg2`` (64 bytes).
    Raises :class:`HostSeckeyError`, :class:`ParameterError` (``aux_rand`` not 32 bytes),
    :class:`FaultyCoordinatorError`, :class:`FaultyParticipantOrCoordinatorError`, or
    :class:`UnknownFaultyParticipantOrCoordinatorError` (then see
    :func:`participant_investigate`).
    """
    hostpubkey = hostpubkey_gen(hostseckey)
    if not isinstance(aux_rand, bytes | bytearray) or len(aux_rand) != 32:
        raise ParameterError("aux_rand must be 32 bytes")
    params, me, enc_state = state1.params, state1.participant_id, state1.enc_state
    # > if hostpubkey != params.hostpubkeys[participant_id]: raise HostSeckeyError
    if hostpubkey != params.hostpubkeys[me]:
        raise HostSeckeyError("Host secret key does not match the one used in participant_step1")
    try:
        parsed = CoordinatorMsg1.from_bytes(cmsg1, group=params.group, t=params.t, n=params.n)
    except DecodeError as e:
        raise FaultyCoordinatorError(f"Coordinator sent an invalid cmsg1: {e}") from None
    # > encpedpop.participant_step2(enc_state, hostseckey, enc_cmsg, enc_secshares[id])
    try:
        dkg_output, eq_input = encpedpop.participant_step2(
            enc_state, bytes(hostseckey), parsed.enc_cmsg, parsed.enc_secshares[me]
        )
    except UnknownFaultyParticipantOrCoordinatorError as e:
        inv = e.inv_data
        assert isinstance(inv, encpedpop.ParticipantInvestigationData)  # raised by encpedpop
        raise UnknownFaultyParticipantOrCoordinatorError(
            ParticipantInvestigationData(params, inv), str(e)
        ) from None
    # > eq_input += b"".join(enc_secshares): all participants agree on all encrypted shares,
    # > so every participant's recovery data is right.
    eq_input += params.suite.encode_scalars(parsed.enc_secshares)
    sig = certeq_participant_step(params.suite, bytes(hostseckey), me, eq_input, bytes(aux_rand))
    return ParticipantState2(params, eq_input, dkg_output), ParticipantMsg2(sig).to_bytes()


def participant_finalize(state2: ParticipantState2, cmsg2: bytes) -> tuple[DKGOutput, bytes]:
    """A participant's final step: verify the certificate.

    If this returns, the participant deems the session successful. If it raises, the caller
    **must not** conclude that the session failed (others may have succeeded; recovery data
    from them restores the output with :func:`participant_recover`).
    Returns the output and the recovery data. Raises :class:`FaultyCoordinatorError`.
    """
    params, eq_input = state2.params, state2.eq_input
    try:
        cert = CoordinatorMsg2.from_bytes(cmsg2, n=params.n).cert
    except DecodeError as e:
        raise FaultyCoordinatorError(f"Coordinator sent an invalid cmsg2: {e}") from None
    # > certeq_verify(hostpubkeys, eq_input, cert) or raise FaultyCoordinatorError
    if certeq_verify(params.suite, params.hostpubkeys, eq_input, cert) is not None:
        raise FaultyCoordinatorError(
            "Coordinator has provided a certificate with an invalid signature"
        )
    return state2.dkg_output, eq_input + cert


def participant_investigate(
    error: UnknownFaultyParticipantOrCoordinatorError, cinv: bytes
) -> NoReturn:
    """Narrow down who is to blame after ``participant_step2`` raised ``error``.

    ``cinv`` is this participant's message from :func:`coordinator_investigate` (``65*n``
    bytes on secp256k1). Always raises: :class:`FaultyParticipantOrCoordinatorError` naming
    the dealer of an invalid partial share, or :class:`FaultyCoordinatorError`.
    """
    inv = error.inv_data
    if not isinstance(inv, ParticipantInvestigationData):
        raise StateError("error does not come from chilldkg.participant_step2")
    params = inv.params
    n = inv.enc_inv_data.simpl_inv_data.n
    try:
        parsed = CoordinatorInvestigationMsg.from_bytes(cinv, group=params.group, n=n)
    except DecodeError as e:
        raise FaultyCoordinatorError(f"Coordinator sent an invalid cinv: {e}") from None
    encpedpop.participant_investigate(
        UnknownFaultyParticipantOrCoordinatorError(inv.enc_inv_data, str(error)), parsed.enc_cinv
    )


###
### Coordinator
###


@dataclass(frozen=True, slots=True)
class CoordinatorState:
    """State between ``coordinator_step1`` and ``coordinator_finalize``."""

    params: SessionParams
    eq_input: bytes = field(repr=False)
    dkg_output: DKGOutput


def _parse_pmsgs1(pmsgs1: Sequence[bytes], params: SessionParams) -> list[ParticipantMsg1]:
    if len(pmsgs1) != params.n:
        raise ParameterError(f"expected {params.n} pmsg1, got {len(pmsgs1)}")
    parsed = []
    for i, pmsg1 in enumerate(pmsgs1):
        try:
            parsed.append(
                ParticipantMsg1.from_bytes(pmsg1, group=params.group, t=params.t, n=params.n)
            )
        except DecodeError as e:
            raise FaultyParticipantError(f"Participant sent an invalid pmsg1: {e}", i) from None
    return parsed


def coordinator_step1(
    pmsgs1: Sequence[bytes], params: SessionParams
) -> tuple[CoordinatorState, bytes]:
    """The coordinator's first step: aggregate the ``n`` first messages into ``cmsg1``.

    Returns the state (for ``coordinator_finalize``) and ``cmsg1`` for all participants.
    Raises :class:`SessionParamsError` subclasses, :class:`ParameterError` (not ``n``
    messages) or :class:`FaultyParticipantError` naming the sender of an invalid message.
    """
    params_validate(params)
    # > pmsgs1_parsed = [ParticipantMsg1.from_bytes(pmsg1, t=t, n=n)]  (blame the sender)
    parsed = _parse_pmsgs1(pmsgs1, params)
    # > encpedpop.coordinator_step(pmsgs, t, enckeys=hostpubkeys)
    enc_cmsg, dkg_output, eq_input, enc_secshares = encpedpop.coordinator_step(
        params.suite, [p.enc_pmsg for p in parsed], params.t, params.hostpubkeys
    )
    # > eq_input += b"".join(enc_secshares)
    eq_input += params.suite.encode_scalars(enc_secshares)
    cmsg1 = CoordinatorMsg1(enc_cmsg, tuple(enc_secshares)).to_bytes()
    return CoordinatorState(params, eq_input, dkg_output), cmsg1


def coordinator_finalize(
    state: CoordinatorState, pmsgs2: Sequence[bytes]
) -> tuple[bytes, DKGOutput, bytes]:
    """The coordinator's final step: assemble and verify the certificate.

    Returns ``cmsg2`` (``64*n`` bytes, for all participants), the output (no secret share)
    and the recovery data. Raises :class:`ParameterError` (not ``n`` messages) or
    :class:`FaultyParticipantError` naming a participant whose signature is malformed or
    invalid.
    """
    params = state.params
    if len(pmsgs2) != params.n:
        raise ParameterError(f"expected {params.n} pmsg2, got {len(pmsgs2)}")
    sigs = []
    for i, pmsg2 in enumerate(pmsgs2):
        try:
            sigs.append(ParticipantMsg2.from_bytes(pmsg2).sig)
        except DecodeError as e:
            raise FaultyParticipantError(f"Participant sent an invalid pmsg2: {e}", i) from None
    # > cert = certeq_coordinator_step([pmsg2.sig for pmsg2 in pmsgs2_parsed])
    cert = b"".join(sigs)
    # > certeq_verify(hostpubkeys, eq_input, cert); blame the participant of a bad signature
    bad = certeq_verify(params.suite, params.hostpubkeys, state.eq_input, cert)
    if bad is not None:
        raise FaultyParticipantError(
            "Participant has provided an invalid signature for the certificate", bad
        )
    return cert, state.dkg_output, state.eq_input + cert


def coordinator_investigate(pmsgs1: Sequence[bytes], params: SessionParams) -> list[bytes]:
    """Investigation messages, one per participant (``65*n`` bytes each on secp256k1).

    They hold nothing confidential and may be broadcast. Raises :class:`ParameterError` or
    :class:`FaultyParticipantError` for a message that does not parse.
    """
    params_validate(params)
    parsed = _parse_pmsgs1(pmsgs1, params)
    # > encpedpop.coordinator_investigate(pmsgs, t): per participant, all enc partial shares
    # > and all partial pubshares
    cinvs = encpedpop.coordinator_investigate([p.enc_pmsg for p in parsed], params.n)
    return [CoordinatorInvestigationMsg(c).to_bytes() for c in cinvs]


###
### Recovery
###


def recover_output(
    group: Group, hostseckey: bytes | None, recovery_data: bytes
) -> tuple[DKGOutput, SessionParams, int | None]:
    """Recover a session's output from its recovery data (the draft's ``recover``).

    Returns the output (no secret share if ``hostseckey`` is None), the session parameters
    and this participant's index (None for the coordinator).
    Raises :class:`RecoveryDataError` or :class:`HostSeckeyError`.
    """
    suite = suite_for(group)
    try:
        t, sum_coms, hostpubkeys, pubnonces, enc_secshares, cert = deserialize_recovery_data(
            suite, bytes(recovery_data)
        )
        params = SessionParams(tuple(hostpubkeys), t, group)
    except (DecodeError, ParameterError):
        raise RecoveryDataError("Failed to deserialize recovery data") from None
    try:
        params_validate(params)
    except SessionParamsError:
        raise RecoveryDataError("Invalid session parameters in recovery data") from None
    # > eq_input = recovery_data[: -len(cert)]; certeq_verify(hostpubkeys, eq_input, cert)
    eq_input = bytes(recovery_data[: len(recovery_data) - len(cert)])
    if certeq_verify(suite, params.hostpubkeys, eq_input, cert) is not None:
        raise RecoveryDataError("Invalid certificate in recovery data")
    try:
        tweak, _, tweaked, pubshares = simplpedpop._tweaked_output(suite, sum_coms, params.n)
    except DecodeError:
        raise RecoveryDataError("Invalid commitments in recovery data") from None
    participant_id: int | None = None
    secshare: int | None = None
    if hostseckey is not None:
        hostpubkey = hostpubkey_gen(hostseckey)
        try:
            participant_id = params.hostpubkeys.index(hostpubkey)
        except ValueError:
            raise HostSeckeyError(
                "Host secret key does not match any host public key in the recovery data"
            ) from None
        enc_context = encpedpop.serialize_enc_context(t, params.hostpubkeys)
        try:
            secshare = encpedpop.decrypt_sum(
                suite,
                bytes(hostseckey),
                params.hostpubkeys[participant_id],
                pubnonces,
                enc_context,
                participant_id,
                enc_secshares[participant_id],
            )
        except ProtocolError:
            raise RecoveryDataError("Invalid public nonce in recovery data") from None
        secshare = (secshare + tweak) % group.order
        # Our own signature is in the certificate, so this held during the session.
        if group.base_mul(secshare) != pubshares[participant_id]:
            raise RecoveryDataError("Recovered secret share does not match its pubshare")
    return DKGOutput(secshare, tweaked[0], tuple(pubshares)), params, participant_id


def participant_recover(
    hostseckey: bytes, recovery_data: bytes, *, group: Group = SECP256K1
) -> tuple[DKGOutput, SessionParams]:
    """Recover a participant's output (after a failed ``participant_finalize``, or from a
    backup). Raises :class:`HostSeckeyError` or :class:`RecoveryDataError`."""
    if hostseckey is None:
        raise HostSeckeyError("a participant needs its host secret key")
    output, params, _ = recover_output(group, hostseckey, recovery_data)
    return output, params


def coordinator_recover(
    recovery_data: bytes, *, group: Group = SECP256K1
) -> tuple[DKGOutput, SessionParams]:
    """Recover the coordinator's output (no secret share). Raises :class:`RecoveryDataError`."""
    output, params, _ = recover_output(group, None, recovery_data)
    return output, params
