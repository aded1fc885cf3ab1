"""Offline acceptance check for Solana: LiteSVM runs the cluster-signed transfers.

Which check this is: **LiteSVM** (``solders.litesvm``, solders 0.29.0), an in-process Solana
runtime (the Agave SVM, no validator, no network) with signature verification, the system
program, rent and fees. It is the strongest offline check that installs here; it runs the
transaction the way a validator's banking stage would, far beyond
``Transaction.verify_with_results()`` (signatures only).

Scenario, run once with a legacy ``Transaction`` and once with a versioned (v0)
``VersionedTransaction``:

1. airdrop 1 SOL to the cluster's address (once);
2. the cluster signs a transfer of 0.01 SOL to a fresh random address;
3. the same transaction with one signature byte flipped is sent first: it must fail with
   ``SignatureFailure`` and move no lamports;
4. the true transaction is sent: it must succeed under its own signature (the txid), the
   recipient must hold exactly the amount and the cluster must have paid amount plus fee.

Signature verification stays on (``LiteSVM`` defaults; checked, never switched off). LiteSVM is
imported inside :func:`check_solana`; solders itself is one native extension (about 40 ms to
import, already loaded by :mod:`tmpc.chains.solana`), so this costs the CLI nothing at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from tmpc.chains.check import ChainCheck
from tmpc.chains.solana import SignMessage, sign_transfer, solana_address
from tmpc.errors import CryptoError, DecodeError

if TYPE_CHECKING:
    from solders.litesvm import LiteSVM
    from solders.pubkey import Pubkey

__all__ = ["AIRDROP_LAMPORTS", "TRANSFER_LAMPORTS", "check_solana"]

#: Lamports airdropped to the cluster's address (1 SOL).
AIRDROP_LAMPORTS: Final[int] = 10**9
#: Lamports sent in each transfer (0.01 SOL; above the rent-exempt minimum of a new account).
TRANSFER_LAMPORTS: Final[int] = 10**7


@dataclass(frozen=True)
class _Outcome:
    txid: str
    accepted: bool
    flipped_rejected: bool
    note: str


def _balance(svm: LiteSVM, key: Pubkey) -> int:
    value = svm.get_balance(key)  # None for an account that does not exist
    return 0 if value is None else int(value)


def _flip_signature_byte(raw: bytes) -> bytes:
    """The same wire transaction with the first byte of the first signature flipped."""
    # raw = compact-u16 count (1 byte for one signature) || 64-byte signature || message
    return raw[:1] + bytes([raw[1] ^ 0x01]) + raw[2:]


def _send(svm: LiteSVM, raw: bytes, versioned: bool) -> Any:
    from solders.transaction import Transaction, VersionedTransaction

    tx = VersionedTransaction.from_bytes(raw) if versioned else Transaction.from_bytes(raw)
    return svm.send_transaction(tx)


def _run(
    svm: LiteSVM, cluster: Pubkey, public_key32: bytes, sign_message: SignMessage, versioned: bool
) -> _Outcome:
    from solders.keypair import Keypair
    from solders.transaction_metadata import FailedTransactionMetadata
    from solders.transaction_status import TransactionErrorFieldless

    kind = "v0" if versioned else "legacy"
    recipient = Keypair().pubkey()  # a fresh account nobody has used
    try:
        signed = sign_transfer(
            public_key32,
            str(recipient),
            TRANSFER_LAMPORTS,
            svm.latest_blockhash(),
            sign_message,
            versioned=versioned,
        )
    except CryptoError:
        return _Outcome("", False, False, f"{kind}: the signer gave no valid signature")

    # Step 3: the flipped copy first, so its rejection cannot be a duplicate-transaction reject.
    before = (_balance(svm, cluster), _balance(svm, recipient))
    bad = _send(svm, _flip_signature_byte(signed.raw), versioned)
    bad_err = bad.err() if isinstance(bad, FailedTransactionMetadata) else None
    flipped_rejected = (
        bad_err == TransactionErrorFieldless.SignatureFailure
        and (_balance(svm, cluster), _balance(svm, recipient)) == before
    )
    flipped_note = (
        "SignatureFailure"
        if flipped_rejected
        else f"not rejected with SignatureFailure ({bad_err or 'executed'})"
    )

    # Step 4: the true transaction.
    result = _send(svm, signed.raw, versioned)
    if isinstance(result, FailedTransactionMetadata):
        return _Outcome(
            signed.signature_b58,
            False,
            flipped_rejected,
            f"{kind}: rejected: {result.err()}; flipped: {flipped_note}",
        )
    fee = int(result.fee())
    moved = (
        _balance(svm, recipient) == before[1] + TRANSFER_LAMPORTS
        and _balance(svm, cluster) == before[0] - TRANSFER_LAMPORTS - fee
    )
    accepted = str(result.signature()) == signed.signature_b58 and moved
    note = "accepted" if accepted else "executed but the txid or balances are wrong"
    return _Outcome(
        signed.signature_b58,
        accepted,
        flipped_rejected,
        f"{kind}: {note} (fee {fee}); flipped: {flipped_note}",
    )


def check_solana(public_key32: bytes, sign_message: SignMessage) -> ChainCheck:
    """Run the Solana acceptance scenario (module docstring) for a cluster's Ed25519 key.

    Args:
        public_key32: the cluster's 32-byte Ed25519 public key.
        sign_message: the cluster's signer: message bytes in, 64-byte Ed25519 signature out
            (see :func:`tmpc.chains.solana.sign_transfer`). Called twice (legacy, v0).

    Returns:
        A :class:`ChainCheck` for chain ``solana``, scheme ``ed25519``: ``txid`` is the legacy
        transfer's signature (base58); ``accepted`` / ``flipped_rejected`` hold for both the
        legacy and the v0 transfer; ``detail`` says what LiteSVM reported for each.

    Raises:
        ParameterError, DecodeError: ``public_key32`` is not a 32-byte Ed25519 point.
    """
    from solders.litesvm import LiteSVM
    from solders.pubkey import Pubkey
    from solders.transaction_metadata import FailedTransactionMetadata

    address = solana_address(public_key32)
    cluster = Pubkey.from_string(address)
    if not cluster.is_on_curve():
        raise DecodeError("the cluster key is not a point on Ed25519")
    svm = LiteSVM()
    if not svm.get_sigverify():  # the whole check rests on it; never switched off here
        return ChainCheck(
            "solana", "ed25519", address, "", False, False, "LiteSVM sigverify is off"
        )
    funded = svm.airdrop(cluster, AIRDROP_LAMPORTS)
    if isinstance(funded, FailedTransactionMetadata):
        return ChainCheck(
            "solana", "ed25519", address, "", False, False, f"LiteSVM airdrop failed: {funded}"
        )
    outcomes = [_run(svm, cluster, public_key32, sign_message, v) for v in (False, True)]
    return ChainCheck(
        chain="solana",
        scheme="ed25519",
        address=address,
        txid=outcomes[0].txid,
        accepted=all(o.accepted for o in outcomes),
        flipped_rejected=all(o.flipped_rejected for o in outcomes),
        detail="LiteSVM (sigverify on): " + "; ".join(o.note for o in outcomes),
    )
