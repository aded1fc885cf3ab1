"""Run a whole ChillDKG session in one process: all participants and the coordinator.

For the CLI, the demo and tests. The protocol steps are the ones of
:mod:`tmpc.protocols.dkg.chilldkg`; this module only moves the messages between them, draws
randomness, and runs the investigation when a participant receives an invalid share.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import overload

from tmpc.errors import ParameterError
from tmpc.group.base import Group, Point
from tmpc.protocols.dkg import chilldkg
from tmpc.protocols.dkg.exceptions import UnknownFaultyParticipantOrCoordinatorError

__all__ = ["DKGPublicResult", "DKGResult", "recover", "run_dkg"]


@dataclass(frozen=True, slots=True)
class DKGResult:
    """One participant's DKG output.

    ``index`` is the 0-based participant index (ChillDKG's ``participant_id``),
    ``identifier = index + 1`` the Shamir x-coordinate of ``secshare``. On secp256k1 the
    threshold key and the shares include ChillDKG's unspendable Taproot tweak.
    ``recovery_data`` restores this output with :func:`recover` and the host secret key.
    """

    index: int
    identifier: int
    secshare: int = field(repr=False)
    threshold_pubkey: Point
    pubshares: tuple[Point, ...]
    recovery_data: bytes = field(repr=False)

    @property
    def threshold(self) -> int:
        """The threshold ``t`` (the first 4 bytes of the recovery data)."""
        return int.from_bytes(self.recovery_data[:4], "big")


@dataclass(frozen=True, slots=True)
class DKGPublicResult:
    """The public part of a DKG output (the coordinator's view): no secret share."""

    threshold_pubkey: Point
    pubshares: tuple[Point, ...]
    recovery_data: bytes = field(repr=False)

    @property
    def threshold(self) -> int:
        """The threshold ``t``."""
        return int.from_bytes(self.recovery_data[:4], "big")


def _result(index: int, output: chilldkg.DKGOutput, recovery_data: bytes) -> DKGResult:
    if output.secshare is None:
        raise ParameterError("a participant output has a secret share")
    return DKGResult(
        index,
        index + 1,
        output.secshare,
        output.threshold_pubkey,
        output.pubshares,
        recovery_data,
    )


def run_dkg(
    group: Group,
    hostseckeys: Sequence[bytes],
    t: int,
    *,
    random: Callable[[int], bytes] | None = None,
) -> list[DKGResult]:
    """Run ChillDKG t-of-n over ``group`` with all ``n = len(hostseckeys)`` participants here.

    Args: ``group`` the target group (SECP256K1 or ED25519); ``hostseckeys`` the 32-byte host
    secret keys (the order fixes the indices); ``t`` the threshold; ``random(k)`` returns
    ``k`` random bytes (default :func:`secrets.token_bytes`; tests pass a deterministic one).
    Returns one :class:`DKGResult` per participant, in index order.
    Raises :class:`~tmpc.errors.ParameterError` (threshold, keys) and, if a participant
    receives an invalid share, :class:`~tmpc.errors.FaultyParticipantError` naming its dealer
    after the investigation; any other :class:`~tmpc.errors.ProtocolError` as raised.
    """
    rand = random if random is not None else secrets.token_bytes
    hostpubkeys = tuple(chilldkg.hostpubkey_gen(sk) for sk in hostseckeys)
    params = chilldkg.SessionParams(hostpubkeys, t, group)
    chilldkg.params_validate(params)

    # Round 1: every participant deals; the coordinator aggregates.
    states1, pmsgs1 = [], []
    for sk in hostseckeys:
        state1, pmsg1 = chilldkg.participant_step1(sk, params, rand(32))
        states1.append(state1)
        pmsgs1.append(pmsg1)
    cstate, cmsg1 = chilldkg.coordinator_step1(pmsgs1, params)

    # Round 2: every participant checks and signs; an invalid share is investigated.
    states2, pmsgs2 = [], []
    for i, (sk, state1) in enumerate(zip(hostseckeys, states1, strict=True)):
        try:
            state2, pmsg2 = chilldkg.participant_step2(sk, state1, cmsg1, rand(32))
        except UnknownFaultyParticipantOrCoordinatorError as e:
            cinvs = chilldkg.coordinator_investigate(pmsgs1, params)
            chilldkg.participant_investigate(e, cinvs[i])
        states2.append(state2)
        pmsgs2.append(pmsg2)
    cmsg2, _, _ = chilldkg.coordinator_finalize(cstate, pmsgs2)

    results = []
    for i, state2 in enumerate(states2):
        output, recovery_data = chilldkg.participant_finalize(state2, cmsg2)
        results.append(_result(i, output, recovery_data))
    return results


@overload
def recover(group: Group, hostseckey: bytes, recovery_data: bytes) -> DKGResult: ...
@overload
def recover(group: Group, hostseckey: None, recovery_data: bytes) -> DKGPublicResult: ...
def recover(
    group: Group, hostseckey: bytes | None, recovery_data: bytes
) -> DKGResult | DKGPublicResult:
    """Restore a DKG output from the session's recovery data.

    With the participant's 32-byte ``hostseckey``: its :class:`DKGResult` (secret share
    included). With ``None``: the :class:`DKGPublicResult` (threshold key and pubshares).
    The recovery data is checked against its certificate, signed by all participants.
    Raises :class:`~tmpc.protocols.dkg.RecoveryDataError` or
    :class:`~tmpc.protocols.dkg.HostSeckeyError`.
    """
    output, _, index = chilldkg.recover_output(group, hostseckey, recovery_data)
    if index is None:
        return DKGPublicResult(output.threshold_pubkey, output.pubshares, bytes(recovery_data))
    return _result(index, output, bytes(recovery_data))
