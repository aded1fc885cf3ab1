"""The DKG's exceptions: ChillDKG's error classes mapped onto the tmpc error tree.

* ``HostSeckeyError``, ``SessionParamsError`` (``ThresholdOrCountError``,
  ``InvalidHostPubkeyError``, ``DuplicateHostPubkeyError``), ``RandomnessError``: the classes
  of the same name here, all :class:`~tmpc.errors.ParameterError` (nobody blamed).
* ``RecoveryDataError``: :class:`RecoveryDataError`, an :class:`~tmpc.errors.InputError`.
* ``FaultyParticipantError`` / ``FaultyCoordinatorError``: the tmpc classes of that name.
* ``FaultyParticipantOrCoordinatorError``: :class:`FaultyParticipantOrCoordinatorError`, a
  :class:`~tmpc.errors.FaultyParticipantError` naming the suspected participant.
* ``UnknownFaultyParticipantOrCoordinatorError``: the class of that name here, a
  :class:`~tmpc.errors.ProtocolError` without culprits carrying the investigation data.
* ``ValueError`` on a local argument: :class:`~tmpc.errors.ParameterError`.
* ``ValueError`` / ``MsgParseError`` on a received message (wrong length, invalid point or
  scalar): a :class:`~tmpc.errors.ProtocolError` naming the sender, i.e. the participant for
  ``pmsg1``/``pmsg2`` and the coordinator for ``cmsg1``/``cmsg2``/``cinv``.
* ``RuntimeError`` (an investigation without a fault): :class:`~tmpc.errors.StateError`.

Participants are named by their 0-based index in ``SessionParams.hostpubkeys`` (ChillDKG's
``participant_id``); the Shamir x-coordinate of participant ``i`` is ``i + 1``.
"""

from __future__ import annotations

from typing import Any

from tmpc.errors import FaultyParticipantError, InputError, ParameterError, ProtocolError

__all__ = [
    "DuplicateHostPubkeyError",
    "FaultyParticipantOrCoordinatorError",
    "HostSeckeyError",
    "InvalidHostPubkeyError",
    "RandomnessError",
    "RecoveryDataError",
    "SessionParamsError",
    "ThresholdOrCountError",
    "UnknownFaultyParticipantOrCoordinatorError",
]


class HostSeckeyError(ParameterError):
    """The host secret key is not 32 bytes, out of range, or matches no host public key."""


class SessionParamsError(ParameterError):
    """Invalid ``SessionParams`` (threshold, count, or host public keys)."""


class ThresholdOrCountError(SessionParamsError):
    """``1 <= t <= len(hostpubkeys) <= 2**32 - 1`` does not hold."""


class InvalidHostPubkeyError(SessionParamsError):
    """Host public key number ``participant_id`` is not a valid compressed secp256k1 point.

    If the key was transmitted correctly, that participant is faulty.
    """

    def __init__(self, participant_id: int, message: str = "") -> None:
        super().__init__(message or f"host public key of participant {participant_id} is invalid")
        self.participant_id = participant_id


class DuplicateHostPubkeyError(SessionParamsError):
    """Participants ``participant_id1`` and ``participant_id2`` have the same host public key."""

    def __init__(self, participant_id1: int, participant_id2: int) -> None:
        super().__init__(
            f"participants {participant_id1} and {participant_id2} have the same host public key"
        )
        self.participant_id1 = participant_id1
        self.participant_id2 = participant_id2


class RandomnessError(ParameterError):
    """The 32 bytes of randomness are all zero (a broken random number generator)."""


class RecoveryDataError(InputError):
    """Recovery data that cannot be parsed, has invalid parameters or an invalid certificate."""


class FaultyParticipantOrCoordinatorError(FaultyParticipantError):
    """Participant ``culprits[0]`` sent invalid data, unless the coordinator tampered with it.

    ChillDKG's coordinator relays every message, and participant messages are not signed, so a
    participant that receives an invalid contribution of participant ``i`` cannot tell whether
    ``i`` or the coordinator is faulty. This error names ``i``; callers **must not** conclude
    that ``i`` is faulty if the coordinator may be malicious (ChillDKG's semantics).
    """

    def __init__(self, participant_id: int, message: str) -> None:
        super().__init__(message, (participant_id,))

    @property
    def participant_id(self) -> int:
        """The suspected participant (0-based index)."""
        return self.culprits[0]


class UnknownFaultyParticipantOrCoordinatorError(ProtocolError):
    """A received secret share is invalid; some participant or the coordinator is faulty.

    ``inv_data`` carries what ``participant_investigate`` needs to narrow the fault down to
    one participant or the coordinator. It holds secret material and is never printed.
    """

    def __init__(self, inv_data: Any, message: str) -> None:
        super().__init__(message, ())
        self.inv_data = inv_data
