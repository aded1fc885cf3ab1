"""Step 3 of every custody rollout: prove offline that the chains accept the cluster's signatures.

:func:`local_signer` turns a wallet whose signers' shares are loaded in this process into the
``sign_digest`` callable the chain modules take (a node cluster will provide the same
callable). :func:`run_checks` runs every chain check that fits the wallet's scheme:

=====================  =================================================================
scheme                 chains checked (each with its own validation code)
=====================  =================================================================
``ecdsa-secp256k1``    Bitcoin P2WPKH spend in a regtest chain (libbitcoinkernel);
                       Ethereum EIP-1559 transfer mined by py-evm (eth-tester)
``schnorr-bip340``     Bitcoin Taproot key-path spend in a regtest chain (libbitcoinkernel)
``ed25519``            Solana legacy and v0 transfers in LiteSVM
=====================  =================================================================

Each check also sends a copy of the signed transaction with one signature byte flipped and
requires the validator to reject it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from tmpc import ecdsa_local, schemes
from tmpc.chains.check import ChainCheck
from tmpc.errors import ParameterError

__all__ = ["CHECKS_BY_SCHEME", "local_signer", "run_checks"]

Signer = Callable[[bytes], bytes]

CHECKS_BY_SCHEME: dict[str, tuple[str, ...]] = {
    "ecdsa-secp256k1": ("bitcoin", "ethereum"),
    "schnorr-bip340": ("bitcoin",),
    "ed25519": ("solana",),
}


def local_signer(
    wallet_dir: Path | None,
    record: schemes.WalletRecord,
    shares: Sequence[schemes.KeyShare],
    store_keys: dict[int, bytes] | None = None,
    path: str | None = None,
) -> Signer:
    """A ``sign_digest`` callable backed by the given parties' shares (all in this process).

    ECDSA wallets with a ``wallet_dir`` sign through :mod:`tmpc.ecdsa_local` (stored
    presignatures, deny-lists); without one, through :func:`tmpc.schemes.sign`.
    """
    if record.scheme == "ecdsa-secp256k1" and wallet_dir is not None and store_keys:

        def sign_ecdsa(digest: bytes) -> bytes:
            return ecdsa_local.sign(
                wallet_dir, record, shares, store_keys, digest, path=path
            ).compact

        return sign_ecdsa

    def sign_any(message: bytes) -> bytes:
        return schemes.sign(record, shares, message, path=path)

    return sign_any


def run_checks(
    record: schemes.WalletRecord, sign: Signer, path: str | None = None
) -> list[ChainCheck]:
    """Run every chain check that fits the wallet's scheme (see the module docstring).

    Raises :class:`ParameterError` for a scheme no chain verifies (frost-secp256k1).
    """
    chains = CHECKS_BY_SCHEME.get(record.scheme)
    if chains is None:
        raise ParameterError(
            f"no chain verifies {record.scheme} signatures natively; nothing to check"
        )
    public_key = schemes.public_key_at(record, path)
    results = []
    for chain in chains:
        if chain == "bitcoin":
            from tmpc.chains.bitcoin_check import check_bitcoin

            results.append(check_bitcoin(record.scheme, public_key, sign, network="regtest"))
        elif chain == "ethereum":
            from tmpc.chains.ethereum_check import check_ethereum

            results.append(check_ethereum(public_key, sign))
        else:
            from tmpc.chains.solana_check import check_solana

            results.append(check_solana(public_key, sign))
    return results
