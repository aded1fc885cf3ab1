"""Rehosting: a party keeps its share but gets a new host (identity) key.

A party whose machine was lost is repaired on a new one (:mod:`tmpc.protocols.lifecycle.repair`
gives it its old share back); its old host key is gone with the old machine, so the wallet
record replaces it. The replacement is certified by BIP340 signatures of at least ``t`` *other*
current parties' host keys over :func:`certificate_message`, which binds the wallet, the epoch
the rehost starts from, the party and its new 33-byte host key. The party itself cannot sign:
its old key is the one being replaced (and may be in an attacker's hands).

The wallet record keeps the rehost as a history entry
(:func:`tmpc.schemes.rehosted_record`); it changes no share.
"""

from __future__ import annotations

from tmpc.encoding import lp_join, tagged_hash
from tmpc.errors import ParameterError

__all__ = ["certificate_message"]

_TAG = "tmpc/rehost/certificate/v1"


def certificate_message(wallet_id: str, epoch: int, party: int, new_host_pubkey: bytes) -> bytes:
    """The 32-byte message the certifying parties sign for replacing ``party``'s host key with
    ``new_host_pubkey`` (33 bytes) in the wallet ``wallet_id`` at ``epoch`` (the record's epoch
    before the rehost). Raises :class:`ParameterError` for a negative epoch or a bad party id
    or key length."""
    if not isinstance(epoch, int) or not 0 <= epoch < 1 << 64:
        raise ParameterError("the epoch is out of range")
    if not isinstance(party, int) or isinstance(party, bool) or not 1 <= party < 1 << 32:
        raise ParameterError("the party id is out of range")
    if not isinstance(new_host_pubkey, bytes) or len(new_host_pubkey) != 33:
        raise ParameterError("a host public key is 33 bytes")
    return tagged_hash(
        _TAG,
        lp_join([wallet_id.encode(), epoch.to_bytes(8, "big"), party.to_bytes(4, "big"),
                 new_host_pubkey]),
    )  # fmt: skip
