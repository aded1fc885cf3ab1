"""Errors of the pairwise checks of threshold ECDSA (DKLs23).

Every check between two parties (base OT, OT-extension consistency, the multiplication check,
the DKLs23 ``Gamma`` checks) that fails raises a :class:`PairwiseCheckError` naming the
counterparty. Such a failure is **terminal** for that counterparty: whether a check fails can
depend on the honest party's secret bits (selective failure), so each retry could leak one more
bit. The caller puts the pair on a persisted deny-list and refuses every later session with it
until the pairwise setup is redone; it **must not** retry.

Each error is constructed as ``XError(message, culprit_id)``; messages name only roles and
indices, never secret material.
"""

from __future__ import annotations

from tmpc.errors import FaultyParticipantError

__all__ = ["MulCheckError", "OTCheckError", "PairwiseCheckError"]


class PairwiseCheckError(FaultyParticipantError):
    """A pairwise check (base OT, OT-extension consistency, multiplication check, DKLs23 Gamma
    check) failed: TERMINAL for this counterparty — never retry; the caller deny-lists the pair."""


class OTCheckError(PairwiseCheckError):
    """The base OT (proof of knowledge, pad opening) or the OT-extension consistency check failed;
    ``culprits`` names the counterparty that sent the failing values."""


class MulCheckError(PairwiseCheckError):
    """The DKLs19/DKLs23 multiplication check failed: the multiplication sender (Alice) used
    inconsistent correlations; ``culprits`` names her."""
