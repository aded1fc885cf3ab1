"""The one result type of every chain's offline acceptance check (``check_bitcoin`` & co.)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ChainCheck"]


@dataclass(frozen=True)
class ChainCheck:
    """What a chain's own validation code said about a transaction signed by the cluster.

    Attributes:
        chain: ``"bitcoin"``, ``"ethereum"`` or ``"solana"``.
        scheme: the tmpc scheme that signed (``"ecdsa-secp256k1"``, ``"schnorr-bip340"``, ...).
        address: the cluster's address on that chain (the one that was funded and spent from).
        txid: the signed transaction's id as the chain displays it.
        accepted: the validator accepted the cluster's signed transaction.
        flipped_rejected: the validator rejected the same transaction with one signature byte
            flipped.
        detail: a one-line human account (heights, balances, the validator's reject reason).
    """

    chain: str
    scheme: str
    address: str
    txid: str
    accepted: bool
    flipped_rejected: bool
    detail: str

    @property
    def ok(self) -> bool:
        """True when the signed transaction was accepted and the flipped copy rejected."""
        return self.accepted and self.flipped_rejected
