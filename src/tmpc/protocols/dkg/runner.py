"""Run a whole ChillDKG session in one process: one :class:`DkgMachine` per participant.

For tests and library users. :func:`run_dkg` is a driver over the per-party machines of
:mod:`tmpc.protocols.dkg.machine` (each participant its own coordinator, as a node runs it),
through :func:`tmpc.local.run_machines`; so a session in one process and a session between
nodes execute the same code, investigation of an invalid share included. The DKG's output
types (:class:`DKGResult`, :class:`DKGPublicResult`) and :func:`recover` live here too.

Party ids are 1-based (:mod:`tmpc.ids`): ChillDKG's participant ``index`` is ``party id - 1``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import overload

from tmpc.errors import ParameterError, StateError
from tmpc.group.base import Group, Point
from tmpc.ids import from_index
from tmpc.protocols.dkg import chilldkg

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
        from_index(index),
        output.secshare,
        output.threshold_pubkey,
        output.pubshares,
        recovery_data,
    )


def _feed(chunks: list[bytes]) -> Callable[[int], bytes]:
    """A ``rand`` that hands out ``chunks`` in order (one party's share of a random stream)."""
    it = iter(chunks)

    def rand(k: int) -> bytes:
        chunk = next(it, None)
        if chunk is None:
            raise StateError("chilldkg: a participant asked for more randomness than drawn")
        return chunk

    return rand


def run_dkg(
    group: Group,
    hostseckeys: Sequence[bytes],
    t: int,
    *,
    random: Callable[[int], bytes] | None = None,
) -> list[DKGResult]:
    """Run ChillDKG t-of-n over ``group`` with all ``n = len(hostseckeys)`` participants here.

    One :class:`~tmpc.protocols.dkg.machine.DkgMachine` per participant, driven by
    :func:`tmpc.local.run_machines` (peer to peer: every participant runs the coordinator's
    steps itself, exactly as party nodes do).

    Args: ``group`` the target group (SECP256K1 or ED25519); ``hostseckeys`` the 32-byte host
    secret keys (the order fixes the party ids: ``hostseckeys[x - 1]`` is party ``x``'s);
    ``t`` the threshold; ``random(k)`` returns ``k`` random bytes (default: every machine draws
    from :func:`secrets.token_bytes`; tests pass a deterministic one, of which 32 bytes are
    drawn for each participant's ``participant_step1``, in party order, then 32 for each
    ``participant_step2``).
    Returns one :class:`DKGResult` per participant, in party order.
    Raises :class:`~tmpc.errors.ParameterError` (threshold, keys) and, if a participant
    receives an invalid share, :class:`~tmpc.errors.FaultyParticipantError` naming its dealer
    (a 1-based party id) after the investigation; any other
    :class:`~tmpc.errors.ProtocolError` a machine raises, its culprits party ids.
    """
    # Imported here: the machine module imports DKGResult from this one, and tmpc.local
    # (the in-process driver) sits above the protocol modules.
    from tmpc.local import run_machines
    from tmpc.protocols.dkg.machine import DkgMachine

    hostpubkeys = tuple(chilldkg.hostpubkey_gen(sk) for sk in hostseckeys)
    # Checked once here too, so that an empty key list fails like any other bad parameter.
    chilldkg.params_validate(chilldkg.SessionParams(hostpubkeys, t, group))
    n = len(hostpubkeys)
    rands: list[Callable[[int], bytes] | None] = [None] * n
    if random is not None:
        # The same stream as a coordinator-based run: every step-1 randomness, then step 2's.
        step1 = [random(32) for _ in range(n)]
        step2 = [random(32) for _ in range(n)]
        rands = [_feed([a, b]) for a, b in zip(step1, step2, strict=True)]
    machines = {
        x: DkgMachine(group, hostseckeys[x - 1], hostpubkeys, t, x, rand=rands[x - 1])
        for x in range(1, n + 1)
    }
    run_machines(machines)
    return [machines[x].output for x in sorted(machines)]


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
