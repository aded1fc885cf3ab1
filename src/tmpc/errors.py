"""The one exception tree of tmpc.

Every error tmpc raises on purpose is a :class:`TmpcError`::

    TmpcError
    ├── InputError              the caller's mistake; nobody is blamed
    │   ├── DecodeError         bytes that are not a valid encoding (point, scalar, message)
    │   ├── ParameterError      bad protocol parameters (threshold, party ids, signer set)
    │   ├── StateError          misuse of secret state: a nonce or state used twice
    │   ├── KeystoreError       a share file that is missing, corrupt, or would be overwritten
    │   └── PolicyRefusedError  the signing policy refuses a request; ``rule`` names the rule
    │                           (defined in :mod:`tmpc.policy.rules`)
    ├── ProtocolError           a party sent something invalid; ``culprits`` names it
    │   ├── FaultyParticipantError   ``culprits`` are participant indices
    │   └── FaultyCoordinatorError   the coordinator (relay of broadcasts) misbehaved
    └── CryptoError             an opaque failure: bad tag, bad signature, wrong passphrase;
                                deliberately carries no detail

Protocol code never raises a bare ``Exception``, never asserts on received data, and never
puts secret material into an error message: texts only name indices, lengths and roles.
A parse error in a received message becomes a :class:`ProtocolError` naming its sender at the
boundary where the message was received.
"""

from __future__ import annotations

__all__ = [
    "CryptoError",
    "DecodeError",
    "FaultyCoordinatorError",
    "FaultyParticipantError",
    "InputError",
    "KeystoreError",
    "ParameterError",
    "ProtocolError",
    "StateError",
    "TmpcError",
]


class TmpcError(Exception):
    """Base class of every error tmpc raises on purpose."""


class InputError(TmpcError):
    """The caller's input is invalid; no party is blamed."""


class DecodeError(InputError):
    """Bytes are not a valid canonical encoding of the expected object."""


class ParameterError(InputError):
    """Protocol parameters (threshold, party ids, signer set, lengths) are invalid."""


class StateError(InputError):
    """Secret state was misused, e.g. a signing nonce used a second time."""


class KeystoreError(InputError):
    """A key-share file is missing, corrupt, of the wrong wallet, or would be overwritten."""


class ProtocolError(TmpcError):
    """A party deviated from the protocol.

    ``culprits`` holds the indices (participant identifiers as used by the protocol in
    question) of the parties proven or suspected to be at fault. It is never empty for a
    participant fault; a coordinator fault has no participant culprits.
    """

    def __init__(self, message: str, culprits: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.culprits: tuple[int, ...] = tuple(culprits)


class FaultyParticipantError(ProtocolError):
    """One or more participants (``culprits``) sent invalid data."""

    def __init__(self, message: str, culprits: tuple[int, ...] | int) -> None:
        if isinstance(culprits, int):
            culprits = (culprits,)
        super().__init__(message, culprits)


class FaultyCoordinatorError(ProtocolError):
    """The coordinator, which relays and aggregates broadcasts, sent invalid data."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ())


class CryptoError(TmpcError):
    """An opaque cryptographic failure (bad tag, bad signature, wrong passphrase).

    The message is fixed by the raiser and never says which check failed, so that the error
    itself leaks nothing an attacker could use as an oracle.
    """
