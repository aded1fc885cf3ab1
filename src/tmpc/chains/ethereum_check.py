"""Offline acceptance check for Ethereum: py-evm (through eth-tester) mines the cluster's transfer.

:func:`check_ethereum` runs the whole scenario in process, with no network: an
``EthereumTester`` on the ``PyEVMBackend`` (py-evm, current fork rules) funds the cluster's
address from a pre-funded tester account; the cluster signs an EIP-1559 transfer built with
:mod:`tmpc.chains.ethereum` (base fee read from the pending block); the raw bytes go through
``send_raw_transaction``, which validates and mines them at once. Accepted means: mined, receipt
status 1, the mined ``from`` is the cluster's address, the transaction hash is ours, the
cluster's nonce advanced and the balances moved by exactly the amount and the fee.

Then the same raw transaction with the last byte of ``s`` flipped is sent. ECDSA recovery still
succeeds with the changed ``s`` but yields another key, so py-evm sees another, unfunded sender
and refuses the transaction ("cannot afford txn gas"); the signature check is thus indirect,
which is why "rejected" here means: not executed as the cluster (the cluster's nonce and balance
are unchanged and nothing from the cluster was mined). The detail text says which of the two
ways it went (refused, or mined from another address).

eth-tester takes about 0.7 s to import, so it is imported inside the function only.
"""

from __future__ import annotations

from typing import Any, Final

from tmpc.chains.addresses import ethereum_address
from tmpc.chains.check import ChainCheck
from tmpc.chains.ethereum import (
    MIN_GAS,
    Eip1559Tx,
    SignDigest,
    recover_sender,
    sign_transaction,
)
from tmpc.errors import TmpcError

__all__ = ["FUNDING_WEI", "TRANSFER_WEI", "check_ethereum"]

#: What the tester account sends to the cluster's address (1 ether).
FUNDING_WEI: Final = 10**18
#: What the cluster then sends on (0.001 ether).
TRANSFER_WEI: Final = 10**15
_PRIORITY_FEE: Final = 10**9  # 1 gwei tip


def _fee_fields(tester: Any) -> tuple[int, int]:
    # EIP-1559: the base fee of the block that will include the transaction.
    base_fee = int(tester.get_block_by_number("pending")["base_fee_per_gas"])
    return _PRIORITY_FEE, 2 * base_fee + _PRIORITY_FEE


def _same_address(a: str, b: str) -> bool:
    # Node output may or may not carry the EIP-55 case; compare the hex digits.
    return a.lower() == b.lower()


def check_ethereum(public_key33: bytes, sign_digest: SignDigest) -> ChainCheck:
    """Fund the cluster's address in an in-process EVM, send a cluster-signed EIP-1559 transfer.

    Args:
        public_key33: the cluster's 33-byte compressed secp256k1 public key.
        sign_digest: the cluster's signer (32-byte digest in, 64-byte low-s ``r || s`` out);
            called once.

    Returns:
        A :class:`~tmpc.chains.check.ChainCheck` with chain ``ethereum``, scheme
        ``ecdsa-secp256k1``, the cluster's EIP-55 address, the ``0x`` transaction hash,
        ``accepted`` (mined from the cluster, status 1, balances moved) and
        ``flipped_rejected`` (the copy with one signature byte flipped was not executed as the
        cluster); ``detail`` says what the validator did in each case. A signing failure or a
        rejection is reported there, not raised.

    Raises:
        DecodeError: ``public_key33`` is not a compressed secp256k1 key.
    """
    from eth_tester import EthereumTester, PyEVMBackend

    address = ethereum_address(public_key33)
    backend = PyEVMBackend()
    tester = EthereumTester(backend)
    chain_id = int(backend.chain.chain_id)
    funder, recipient = tester.get_accounts()[:2]

    priority, max_fee = _fee_fields(tester)
    tester.send_transaction(
        {
            "from": funder,
            "to": address,
            "value": FUNDING_WEI,
            "gas": MIN_GAS,
            "max_fee_per_gas": max_fee,
            "max_priority_fee_per_gas": priority,
        }
    )

    def fail(txid: str, why: str) -> ChainCheck:
        return ChainCheck("ethereum", "ecdsa-secp256k1", address, txid, False, False, why)

    priority, max_fee = _fee_fields(tester)
    tx = Eip1559Tx(
        chain_id=chain_id,
        nonce=int(tester.get_nonce(address)),
        max_priority_fee_per_gas=priority,
        max_fee_per_gas=max_fee,
        gas=MIN_GAS,
        to=recipient,
        value=TRANSFER_WEI,
    )
    try:
        signed = sign_transaction(tx, sign_digest, public_key33)
    except TmpcError as exc:
        return fail("", f"signing failed: {type(exc).__name__}: {exc}")

    cluster_before = int(tester.get_balance(address))
    recipient_before = int(tester.get_balance(recipient))
    nonce_before = int(tester.get_nonce(address))
    try:
        tx_hash = str(tester.send_raw_transaction(signed.raw_hex))
    except Exception as exc:  # any exception is py-evm refusing the transaction
        return fail(signed.tx_hash, f"py-evm rejected the transaction: {exc}")
    mined = tester.get_transaction_by_hash(tx_hash)
    receipt = tester.get_transaction_receipt(tx_hash)
    fee = int(receipt["gas_used"]) * int(receipt["effective_gas_price"])
    moved = (
        int(tester.get_balance(address)) == cluster_before - TRANSFER_WEI - fee
        and int(tester.get_balance(recipient)) == recipient_before + TRANSFER_WEI
    )
    accepted = (
        tx_hash == signed.tx_hash
        and mined["block_number"] is not None
        and receipt["status"] == 1
        and int(mined["chain_id"]) == chain_id
        and _same_address(str(mined["from"]), address)
        and int(tester.get_nonce(address)) == nonce_before + 1
        and moved
    )
    detail = (
        f"py-evm mined {tx_hash[:12]}... in block {mined['block_number']}: status "
        f"{receipt['status']}, from {mined['from']}, balances moved: {moved}"
    )

    # The same raw transaction with the last byte of s flipped.
    flipped = signed.raw[:-1] + bytes([signed.raw[-1] ^ 0x01])
    try:
        other = recover_sender(flipped)
        other += f" (balance {int(tester.get_balance(other))} wei)"
    except TmpcError as exc:
        other = f"no address ({type(exc).__name__})"
    cluster_before = int(tester.get_balance(address))
    nonce_before = int(tester.get_nonce(address))
    try:
        flipped_hash = str(tester.send_raw_transaction("0x" + flipped.hex()))
    except Exception as exc:  # py-evm's refusal; its text gives the reason
        flipped_mined_from = None
        flipped_note = f"refused by py-evm: {str(exc)[:160]}"
    else:
        flipped_mined_from = str(tester.get_transaction_by_hash(flipped_hash)["from"])
        flipped_note = f"mined from {flipped_mined_from}"
    untouched = (
        int(tester.get_balance(address)) == cluster_before
        and int(tester.get_nonce(address)) == nonce_before
    )
    flipped_rejected = untouched and (
        flipped_mined_from is None or not _same_address(flipped_mined_from, address)
    )
    detail += f"; flipped copy recovers to {other}: {flipped_note}"
    return ChainCheck(
        chain="ethereum",
        scheme="ecdsa-secp256k1",
        address=address,
        txid=signed.tx_hash,
        accepted=accepted,
        flipped_rejected=flipped_rejected,
        detail=detail,
    )
