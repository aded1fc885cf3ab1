"""Addresses of a wallet's public key: Taproot (BIP341/BIP350) and Solana (base58)."""

from __future__ import annotations

from tmpc.chains.addresses import solana_address
from tmpc.errors import ParameterError
from tmpc.protocols import taproot
from tmpc.schemes import WalletRecord, get_scheme

__all__ = ["solana_address", "wallet_address"]


def wallet_address(record: WalletRecord, network: str) -> tuple[str, str]:
    """``(address, kind)`` for a wallet on ``network`` (mainnet, testnet, regtest).

    Raises :class:`ParameterError` for a scheme with no address format (frost-secp256k1 is a
    generic RFC 9591 key that no chain verifies natively).
    """
    scheme = get_scheme(record.scheme)
    if scheme.taproot:
        return taproot.taproot_address(record.public_key, network), "bitcoin-taproot"
    if "solana" in scheme.chains:
        return solana_address(record.public_key), "solana"
    raise ParameterError(
        f"scheme {record.scheme} has no chain address (use schnorr-bip340 or ed25519)"
    )
