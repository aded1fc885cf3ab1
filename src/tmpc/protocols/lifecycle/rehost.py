"""Rehosting: a party keeps its share but gets a new host (identity) key.

A party whose machine was lost is repaired on a new one (:mod:`tmpc.protocols.lifecycle.repair`
gives it its old share back); its old host key is gone with the old machine, so the wallet
record replaces it. The replacement is certified by BIP340 signatures of at least ``t`` *other*
current parties' host keys over :func:`certificate_message`, which binds the wallet, the epoch
the rehost starts from, the party and its new 33-byte host key. The party itself cannot sign:
its old key is the one being replaced (and may be in an attacker's hands).

The wallet record keeps the rehost as a history entry
(:func:`tmpc.schemes.rehosted_record`); it changes no share.

:class:`RehostMachine` collects the certificate in one broadcast round among the members of a
repair session: each certifying party broadcasts its signature, the rehosted party an empty
message (the round framework wants one message from every member); every member checks every
signature (a bad one names its signer), so all of them build the same record.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence

from tmpc.encoding import lp_join, tagged_hash
from tmpc.errors import FaultyParticipantError, ParameterError
from tmpc.primitives.bip340 import pubkey_gen, schnorr_sign, schnorr_verify
from tmpc.protocols.machine import Message, RandBytes, RoundMachine

__all__ = ["RehostMachine", "certificate_message"]

_SIG_LEN = 64

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


class RehostMachine(RoundMachine):
    """One member's side of collecting a rehost certificate (one round, ``rehost``).

    Args:
        me: this member's party id.
        participants: every member (the signers and the rehosted party).
        signers: the certifying parties (at least the wallet's threshold, not the rehosted
            party; the record's check of the certificate enforces both).
        message: :func:`certificate_message` of the rehost (32 bytes).
        host_pubkeys: each signer's current 33-byte host key.
        hostseckey: this member's 32-byte host key if it signs, else None.
        rand: randomness source (``secrets.token_bytes`` if None).

    The result is the certificate: signer id -> 64-byte BIP340 signature, each verified.
    Raises :class:`ParameterError` for bad ids, keys or message."""

    protocol = "rehost"
    rounds = 1

    def __init__(
        self,
        me: int,
        participants: Sequence[int],
        signers: Sequence[int],
        message: bytes,
        host_pubkeys: Mapping[int, bytes],
        hostseckey: bytes | None = None,
        *,
        rand: RandBytes | None = None,
    ) -> None:
        super().__init__(me, sorted(participants))
        self._signers = sorted(set(signers))
        if not set(self._signers) < set(self.participants):
            raise ParameterError("the signers are members, and not all of them")
        if not isinstance(message, bytes) or len(message) != 32:
            raise ParameterError("the rehost message is 32 bytes")
        self._message = message
        self._hosts: dict[int, bytes] = {}
        for j in self._signers:
            key = host_pubkeys.get(j)
            if not isinstance(key, bytes) or len(key) != 33:
                raise ParameterError(f"party {j}'s 33-byte host key is missing")
            self._hosts[j] = key
        if (me in self._signers) != (hostseckey is not None):
            raise ParameterError("a signer gives its host secret key, the rehosted party none")
        if hostseckey is not None and pubkey_gen(hostseckey) != self._hosts[me][1:]:
            raise ParameterError(f"the host secret key is not party {me}'s")
        self._hostseckey = hostseckey
        self._rand = rand or secrets.token_bytes
        self._own = b""

    def __repr__(self) -> str:
        return f"<RehostMachine of {self.me}, round {self.round}>"

    def _start(self) -> list[Message]:
        if self._hostseckey is not None:
            self._own = schnorr_sign(self._message, self._hostseckey, self._rand(32))
        return self._broadcast(self._own)

    def _on_round(self, r: int, payloads: dict[int, bytes]) -> list[Message]:
        certificate = {self.me: self._own} if self._own else {}
        for j in self.peers:
            sig = payloads[j]
            if j not in self._hosts:
                if sig:
                    raise FaultyParticipantError(f"party {j} is not a signer of the rehost", j)
                continue
            if len(sig) != _SIG_LEN or not schnorr_verify(self._message, self._hosts[j][1:], sig):
                raise FaultyParticipantError(f"party {j} signed the rehost wrongly", j)
            certificate[j] = sig
        self._finish(dict(sorted(certificate.items())))
        return []
