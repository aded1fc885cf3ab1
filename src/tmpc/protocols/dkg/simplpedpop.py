"""SimplPedPop: Pedersen's DKG with proofs of possession, the innermost ChillDKG layer.

Each participant deals a random polynomial: it sends its VSS commitment and a proof of
possession (pop) of the constant term to the coordinator, and the partial secret share
``f(i+1)`` to each participant ``i`` (through EncPedPop's encryption). The coordinator sums
the commitments; each participant checks every other pop and its summed share against the
summed commitment. No equality check here: ChillDKG adds CertEq on top.

The functions take typed messages; parsing (and naming the sender of bytes that do not
parse) happens in the layer that receives the bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from tmpc.errors import (
    DecodeError,
    FaultyCoordinatorError,
    FaultyParticipantError,
    ParameterError,
    ProtocolError,
    StateError,
)
from tmpc.group.base import Point
from tmpc.protocols.dkg import vss
from tmpc.protocols.dkg.exceptions import (
    FaultyParticipantOrCoordinatorError,
    UnknownFaultyParticipantOrCoordinatorError,
)
from tmpc.protocols.dkg.suite import DKGSuite, be4

__all__ = [
    "CoordinatorInvestigationMsg",
    "CoordinatorMsg",
    "DKGOutput",
    "ParticipantInvestigationData",
    "ParticipantMsg",
    "ParticipantState",
    "SecshareSumError",
    "coordinator_investigate",
    "coordinator_step",
    "participant_investigate",
    "participant_step1",
    "participant_step2",
]


class SecshareSumError(StateError):
    """The partial secret shares given to the investigation do not sum to the secret share."""


###
### Messages
###


@dataclass(frozen=True, slots=True)
class ParticipantMsg:
    """A dealer's VSS commitment (``t`` points, identity allowed) and its pop."""

    suite: DKGSuite = field(repr=False, compare=False)
    com: tuple[Point, ...]
    pop: bytes

    @staticmethod
    def len_bytes(suite: DKGSuite, t: int) -> int:
        """``point_len*t + pop_len`` bytes (33t + 64 on secp256k1)."""
        return suite.point_len * t + suite.pop_len

    @classmethod
    def from_bytes(cls, suite: DKGSuite, b: bytes, *, t: int) -> ParticipantMsg:
        """Parse; raises :class:`DecodeError` on a wrong length or an invalid point."""
        if len(b) != cls.len_bytes(suite, t):
            raise DecodeError("simplpedpop participant message has a wrong length")
        m = suite.point_len * t
        com = suite.decode_points(b[:m], t)
        return cls(suite, tuple(com), bytes(b[m:]))

    def to_bytes(self) -> bytes:
        """Serialize: ``com || pop``."""
        return b"".join(self.suite.encode_point(P) for P in self.com) + self.pop


@dataclass(frozen=True, slots=True)
class CoordinatorMsg:
    """The coordinator's broadcast: every commitment to a secret, the summed commitments to
    the non-constant terms, and every pop."""

    suite: DKGSuite = field(repr=False, compare=False)
    coms_to_secrets: tuple[Point, ...]
    sum_coms_to_nonconst_terms: tuple[Point, ...]
    pops: tuple[bytes, ...]

    @staticmethod
    def len_bytes(suite: DKGSuite, t: int, n: int) -> int:
        """``(point_len + pop_len)*n + point_len*(t-1)`` bytes (97n + 33(t-1) on secp256k1)."""
        return (suite.point_len + suite.pop_len) * n + suite.point_len * (t - 1)

    @classmethod
    def from_bytes(cls, suite: DKGSuite, b: bytes, *, t: int, n: int) -> CoordinatorMsg:
        """Parse; raises :class:`DecodeError` on a wrong length or an invalid point."""
        if len(b) != cls.len_bytes(suite, t, n):
            raise DecodeError("simplpedpop coordinator message has a wrong length")
        m, p = suite.point_len, suite.pop_len
        coms_to_secrets = suite.decode_points(b[: m * n], n)
        rest = b[m * n :]
        sum_coms = suite.decode_points(rest[: m * (t - 1)], t - 1)
        rest = rest[m * (t - 1) :]
        pops = tuple(bytes(rest[i : i + p]) for i in range(0, p * n, p))
        return cls(suite, tuple(coms_to_secrets), tuple(sum_coms), pops)

    def to_bytes(self) -> bytes:
        """Serialize: ``coms_to_secrets || sum_coms_to_nonconst_terms || pops``."""
        enc = self.suite.encode_point
        return b"".join(
            enc(P) for P in self.coms_to_secrets + self.sum_coms_to_nonconst_terms
        ) + b"".join(self.pops)


@dataclass(frozen=True, slots=True)
class CoordinatorInvestigationMsg:
    """For one participant: every dealer's partial pubshare for it (identity allowed)."""

    suite: DKGSuite = field(repr=False, compare=False)
    partial_pubshares: tuple[Point, ...]

    @staticmethod
    def len_bytes(suite: DKGSuite, n: int) -> int:
        """``point_len*n`` bytes."""
        return suite.point_len * n

    @classmethod
    def from_bytes(cls, suite: DKGSuite, b: bytes, *, n: int) -> CoordinatorInvestigationMsg:
        """Parse; raises :class:`DecodeError` on a wrong length or an invalid point."""
        if len(b) != cls.len_bytes(suite, n):
            raise DecodeError("simplpedpop investigation message has a wrong length")
        return cls(suite, tuple(suite.decode_points(b, n)))

    def to_bytes(self) -> bytes:
        """Serialize: the concatenated points."""
        return b"".join(self.suite.encode_point(P) for P in self.partial_pubshares)


###
### Other common definitions
###


@dataclass(frozen=True, slots=True)
class DKGOutput:
    """A DKG output: the secret share (None for the coordinator), the threshold public key and
    every participant's public share (participant ``i`` at index ``i``)."""

    secshare: int | None = field(repr=False)
    threshold_pubkey: Point
    pubshares: tuple[Point, ...]


def assemble_sum_coms(
    coms_to_secrets: Sequence[Point], sum_coms_to_nonconst_terms: Sequence[Point]
) -> list[Point]:
    """The summed VSS commitment: ``[sum(coms_to_secrets)] + sum_coms_to_nonconst_terms``."""
    first = coms_to_secrets[0]
    for c in coms_to_secrets[1:]:
        first = first + c
    return [first, *sum_coms_to_nonconst_terms]


def _tweaked_output(
    suite: DKGSuite, sum_coms: list[Point], n: int
) -> tuple[int, Point, list[Point], list[Point]]:
    # (tweak, pubtweak, tweaked commitment, tweaked pubshares of all n participants)
    tweak, pubtweak = suite.tweak(sum_coms[0])  # DecodeError if the sum is the identity
    tweaked = [sum_coms[0] + pubtweak, *sum_coms[1:]]
    return tweak, pubtweak, tweaked, vss.pubshares(tweaked, n)


###
### Participant
###


@dataclass(frozen=True, slots=True)
class ParticipantState:
    """A participant's SimplPedPop state between its two steps."""

    suite: DKGSuite = field(repr=False)
    t: int
    n: int
    participant_id: int
    com_to_secret: Point
    context: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class ParticipantInvestigationData:
    """What ``participant_investigate`` needs after an invalid secret share."""

    n: int
    participant_id: int
    secshare: int = field(repr=False)
    pubshare: Point


def participant_step1(
    suite: DKGSuite,
    seed: bytes,
    t: int,
    n: int,
    participant_id: int,
    aux_rand: bytes,
    context: bytes,
) -> tuple[ParticipantState, ParticipantMsg, list[int]]:
    """Deal: commit to a seeded polynomial and prove possession of its constant term.

    Args: ``seed`` and ``aux_rand`` 32 bytes each; ``context`` is bound into the pop off
    secp256k1 (the session's ``t || hostpubkeys``).
    Returns the state, the message to the coordinator, and the ``n`` partial secret shares
    (entry ``i`` for participant ``i``, to be sent privately).
    Raises :class:`ParameterError` on bad arguments.
    """
    if not 1 <= t <= n or not 0 <= participant_id < n:
        raise ParameterError("simplpedpop: need 1 <= t <= n and 0 <= participant_id < n")
    if len(seed) != 32 or len(aux_rand) != 32:
        raise ParameterError("simplpedpop: seed and aux_rand must be 32 bytes")
    g = suite.group
    # > vss = VSS.generate(seed, t); partial_secshares_from_me = vss.secshares(n)
    coeffs = vss.generate(suite, seed, t)
    partial_secshares = vss.secshares(g, coeffs, n)
    # > com = vss.commit(); pop = pop_prove(vss.secret(), participant_id, aux_rand)
    com = vss.commit(g, coeffs)
    pop = suite.pop_prove(coeffs[0], com[0], participant_id, aux_rand, context)
    msg = ParticipantMsg(suite, tuple(com), pop)
    state = ParticipantState(suite, t, n, participant_id, com[0], context)
    return state, msg, partial_secshares


def participant_step2(
    state: ParticipantState, cmsg: CoordinatorMsg, secshare: int
) -> tuple[DKGOutput, bytes]:
    """Check the coordinator's broadcast and the summed secret share; output the DKG result.

    Returns the output and ``eq_input`` (``t || sum_coms``) for the equality check.
    Raises :class:`FaultyCoordinatorError`, :class:`FaultyParticipantOrCoordinatorError`
    (an identity commitment or invalid pop of that participant), or
    :class:`UnknownFaultyParticipantOrCoordinatorError` (invalid share; investigate).
    """
    suite, t, n, me = state.suite, state.t, state.n, state.participant_id
    g = suite.group
    if (
        len(cmsg.coms_to_secrets) != n
        or len(cmsg.sum_coms_to_nonconst_terms) != t - 1
        or len(cmsg.pops) != n
    ):
        raise FaultyCoordinatorError("Coordinator sent lists of wrong lengths")
    # > if coms_to_secrets[participant_id] != com_to_secret: raise FaultyCoordinatorError
    if cmsg.coms_to_secrets[me] != state.com_to_secret:
        raise FaultyCoordinatorError(
            "Coordinator sent unexpected first group element for local participant id"
        )
    # > for i != participant_id: reject the identity, then verify pops[i]
    for i in range(n):
        if i == me:
            continue
        A = cmsg.coms_to_secrets[i]
        if A.is_identity():
            raise FaultyParticipantOrCoordinatorError(i, "Participant sent invalid commitment")
        if not suite.pop_verify(cmsg.pops[i], A, i, state.context):
            raise FaultyParticipantOrCoordinatorError(
                i, "Participant sent invalid proof-of-knowledge"
            )
    # > sum_coms = assemble_sum_coms(...); sum_coms_tweaked, tweak, pubtweak = ...
    sum_coms = assemble_sum_coms(cmsg.coms_to_secrets, cmsg.sum_coms_to_nonconst_terms)
    try:
        tweak, pubtweak, tweaked, pubshares = _tweaked_output(suite, sum_coms, n)
    except DecodeError:
        # Every other commitment to a secret carries a valid pop, so a sum equal to the
        # identity cannot come from the participants.
        raise FaultyCoordinatorError(
            "Coordinator sent commitments summing to the identity"
        ) from None
    # > if not VSSCommitment.verify_secshare(secshare_tweaked, pubshare_tweaked): investigate
    secshare_tweaked = (secshare + tweak) % g.order
    if not vss.verify_secshare(g, secshare_tweaked, pubshares[me]):
        pubshare = pubshares[me] - pubtweak
        raise UnknownFaultyParticipantOrCoordinatorError(
            ParticipantInvestigationData(n, me, secshare % g.order, pubshare),
            "Received invalid secshare; consider using participant_investigate() "
            "to determine a faulty party",
        )
    output = DKGOutput(secshare_tweaked, tweaked[0], tuple(pubshares))
    # > eq_input = t.to_bytes(4) + sum_coms.to_bytes()
    eq_input = be4(t) + b"".join(suite.encode_point(P) for P in sum_coms)
    return output, eq_input


def participant_investigate(
    error: UnknownFaultyParticipantOrCoordinatorError,
    cinv: CoordinatorInvestigationMsg,
    partial_secshares: Sequence[int],
) -> NoReturn:
    """Find the dealer of the invalid share, or show the coordinator lied. Always raises.

    Raises :class:`FaultyParticipantOrCoordinatorError` naming the dealer whose partial share
    does not match its partial pubshare, :class:`FaultyCoordinatorError`,
    :class:`SecshareSumError` if ``partial_secshares`` do not sum to the share, or
    :class:`StateError` if nothing is inconsistent.
    """
    inv = error.inv_data
    if not isinstance(inv, ParticipantInvestigationData):
        raise StateError("not a SimplPedPop investigation")
    n, me = inv.n, inv.participant_id
    g = cinv.suite.group
    if len(partial_secshares) != n:
        raise ParameterError("expected one partial secret share per participant")
    partial_pubshares = cinv.partial_pubshares
    if len(partial_pubshares) != n:
        raise FaultyCoordinatorError("Coordinator sent an investigation message of wrong length")
    # > if GE.sum(*partial_pubshares) != pubshare: raise FaultyCoordinatorError
    if g.sum_points(list(partial_pubshares)) != inv.pubshare:
        raise FaultyCoordinatorError("Sum of partial pubshares not equal to pubshare")
    # > if Scalar.sum(*partial_secshares) != secshare: raise SecshareSumError
    if sum(partial_secshares) % g.order != inv.secshare:
        raise SecshareSumError("Sum of partial secshares not equal to secshare")
    # > for i: if not verify_secshare(partial_secshares[i], partial_pubshares[i]): blame i
    for i in range(n):
        if not vss.verify_secshare(g, partial_secshares[i], partial_pubshares[i]):
            if i != me:
                raise FaultyParticipantOrCoordinatorError(
                    i, "Participant sent invalid partial secshare"
                )
            # We are not faulty, so the coordinator must be.
            raise FaultyCoordinatorError("Coordinator fiddled with the share from me to myself")
    raise StateError("participant_investigate() was called, but all inputs are consistent")


###
### Coordinator
###


def coordinator_step(
    suite: DKGSuite, pmsgs: Sequence[ParticipantMsg], t: int, n: int, context: bytes
) -> tuple[CoordinatorMsg, DKGOutput, bytes]:
    """Sum the commitments to the non-constant terms; relay commitments to secrets and pops.

    Returns the broadcast, the coordinator's DKG output (no secret share) and ``eq_input``.
    Raises :class:`ParameterError` unless there are ``n`` messages, and
    :class:`FaultyParticipantError` for a commitment of wrong length or an identity
    commitment to a secret (the draft leaves both to the participants; rejecting early
    names the same participant).
    """
    if len(pmsgs) != n:
        raise ParameterError(f"expected {n} participant messages, got {len(pmsgs)}")
    for i, pmsg in enumerate(pmsgs):
        if len(pmsg.com) != t:
            raise FaultyParticipantError(f"participant {i} sent a commitment of wrong length", i)
        if pmsg.com[0].is_identity():
            raise FaultyParticipantError("Participant sent invalid commitment", i)
    g = suite.group
    # > coms_to_secrets = [pmsg.com.commitment_to_secret() for pmsg in pmsgs]
    coms_to_secrets = tuple(pmsg.com[0] for pmsg in pmsgs)
    # > sum_coms_to_nonconst_terms = [GE.sum(pmsg.com[j] for pmsg in pmsgs) for j >= 1]
    sum_nonconst = tuple(g.sum_points([pmsg.com[j] for pmsg in pmsgs]) for j in range(1, t))
    pops = tuple(pmsg.pop for pmsg in pmsgs)
    cmsg = CoordinatorMsg(suite, coms_to_secrets, sum_nonconst, pops)
    sum_coms = assemble_sum_coms(coms_to_secrets, sum_nonconst)
    try:
        _, _, tweaked, pubshares = _tweaked_output(suite, sum_coms, n)
    except DecodeError:
        # Only a participant without a valid pop can cancel the others' commitments.
        for i, pmsg in enumerate(pmsgs):
            if not suite.pop_verify(pmsg.pop, pmsg.com[0], i, context):
                raise FaultyParticipantError(
                    "Participant sent invalid proof-of-knowledge", i
                ) from None
        raise ProtocolError("commitments to the secrets sum to the identity") from None
    output = DKGOutput(None, tweaked[0], tuple(pubshares))
    eq_input = be4(t) + b"".join(suite.encode_point(P) for P in sum_coms)
    return cmsg, output, eq_input


def coordinator_investigate(
    pmsgs: Sequence[ParticipantMsg], n: int
) -> list[CoordinatorInvestigationMsg]:
    """For each participant ``i``, every dealer's commitment evaluated at ``i + 1``."""
    if len(pmsgs) != n or n == 0:
        raise ParameterError(f"expected {n} participant messages, got {len(pmsgs)}")
    suite = pmsgs[0].suite
    by_dealer = [vss.pubshares(pmsg.com, n) for pmsg in pmsgs]
    return [
        CoordinatorInvestigationMsg(suite, tuple(row[i] for row in by_dealer)) for i in range(n)
    ]
