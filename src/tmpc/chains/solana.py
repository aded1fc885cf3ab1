"""Solana: addresses and SOL transfers (legacy and v0 messages) signed by an Ed25519 cluster.

A Solana transaction is ``compact-u16 signature count || 64-byte signatures || message``; each
signature is a plain RFC 8032 Ed25519 signature over the **whole serialized message** (there is
no prehash and no sighash). The fee payer's key is the first account of the message and its
signature comes first; it is also the transaction's id (base58).

Message encoding and signature placement are done by ``solders`` (the Python binding of the
Solana SDK types): ``Message.new_with_blockhash`` / ``bytes(msg)`` for legacy messages,
``MessageV0.try_compile`` / ``to_bytes_versioned`` for versioned v0 messages (prefix byte
``0x80``), and ``Transaction.populate`` / ``VersionedTransaction.populate`` to attach a
signature made elsewhere.

Signing: for Ed25519 the cluster signs the message bytes themselves, so the signer callable is
``sign_message(message: bytes) -> bytes`` (the message, 150 bytes or more, in; a 64-byte
``R || S`` signature out), the Ed25519 counterpart of the ``sign_digest`` callable of the
secp256k1 chains. This module never imports the wallet layer: a one-process wallet passes
``lambda m: schemes.sign(record, shares, m)``, a node cluster a client call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

from solders.hash import Hash, ParseHashError
from solders.instruction import Instruction
from solders.message import Message, MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction, VersionedTransaction

from tmpc.chains.addresses import solana_address
from tmpc.errors import CryptoError, DecodeError, ParameterError

__all__ = [
    "MAX_LAMPORTS",
    "Blockhash",
    "SignMessage",
    "SignedSolanaTx",
    "sign_transfer",
    "solana_address",
    "transfer_message",
    "transfer_message_v0",
]

#: The system program's transfer amount is a u64.
MAX_LAMPORTS: Final[int] = 2**64 - 1

#: ``sign_message(message) -> signature``: Ed25519 over the whole message bytes, 64 bytes out.
SignMessage: TypeAlias = Callable[[bytes], bytes]

#: A recent blockhash: a ``solders.hash.Hash``, base58 text or 32 bytes.
Blockhash: TypeAlias = Hash | str | bytes


@dataclass(frozen=True)
class SignedSolanaTx:
    """A signed transfer, ready for ``sendTransaction``.

    Attributes:
        raw: the wire transaction (``1 || signature(64) || message``; a v0 message starts with
            the byte ``0x80``).
        signature_b58: the fee payer's signature in base58; Solana's transaction id.
    """

    raw: bytes
    signature_b58: str


def _signer_pubkey(from_pubkey32: bytes) -> Pubkey:
    """The fee payer: a 32-byte key that must be a point on Ed25519 (it has to sign)."""
    if not isinstance(from_pubkey32, bytes | bytearray) or len(from_pubkey32) != 32:
        raise ParameterError("the sender must be a 32-byte Ed25519 public key")
    pk = Pubkey.from_bytes(bytes(from_pubkey32))
    if not pk.is_on_curve():
        # Off-curve addresses (program-derived addresses) exist but nobody can sign for them.
        raise DecodeError("the sender key is not a point on Ed25519 and cannot sign")
    return pk


def _recipient(to_address: str) -> Pubkey:
    """A base58 address that decodes to exactly 32 bytes (off-curve addresses are allowed)."""
    if not isinstance(to_address, str):
        raise ParameterError("the recipient must be a base58 Solana address (str)")
    try:
        return Pubkey.from_string(to_address)
    except ValueError:
        raise DecodeError("the recipient is not a base58 encoding of 32 bytes") from None


def _lamports(lamports: int) -> int:
    if isinstance(lamports, bool) or not isinstance(lamports, int):
        raise ParameterError("lamports must be an int")
    if not 1 <= lamports <= MAX_LAMPORTS:
        raise ParameterError(f"lamports must be in 1..{MAX_LAMPORTS} (a u64, not zero)")
    return lamports


def _blockhash(recent_blockhash: Blockhash) -> Hash:
    """A recent blockhash given as a solders ``Hash``, base58 text or 32 raw bytes."""
    if isinstance(recent_blockhash, Hash):
        return recent_blockhash
    if isinstance(recent_blockhash, bytes | bytearray):
        if len(recent_blockhash) != 32:
            raise DecodeError("a recent blockhash is 32 bytes")
        return Hash.from_bytes(bytes(recent_blockhash))
    if isinstance(recent_blockhash, str):
        try:
            return Hash.from_string(recent_blockhash)
        except ParseHashError:
            raise DecodeError("the recent blockhash is not a base58 encoding of 32 bytes") from None
    raise ParameterError("the recent blockhash must be a Hash, base58 text or 32 bytes")


def _transfer(from_pubkey32: bytes, to_address: str, lamports: int) -> tuple[Pubkey, Instruction]:
    payer = _signer_pubkey(from_pubkey32)
    ix = transfer(
        TransferParams(
            from_pubkey=payer, to_pubkey=_recipient(to_address), lamports=_lamports(lamports)
        )
    )
    return payer, ix


def _legacy_message(
    from_pubkey32: bytes, to_address: str, lamports: int, recent_blockhash: Blockhash
) -> Message:
    payer, ix = _transfer(from_pubkey32, to_address, lamports)
    return Message.new_with_blockhash([ix], payer, _blockhash(recent_blockhash))


def _v0_message(
    from_pubkey32: bytes, to_address: str, lamports: int, recent_blockhash: Blockhash
) -> MessageV0:
    payer, ix = _transfer(from_pubkey32, to_address, lamports)
    # No address lookup tables: a transfer names only payer, recipient and the system program.
    return MessageV0.try_compile(payer, [ix], [], _blockhash(recent_blockhash))


def transfer_message(
    from_pubkey32: bytes, to_address: str, lamports: int, recent_blockhash: Blockhash
) -> bytes:
    """The legacy message of a system-program SOL transfer: the exact bytes to sign.

    Args:
        from_pubkey32: the cluster's 32-byte Ed25519 key; sender, fee payer and only signer.
        to_address: the recipient's base58 address (any 32-byte account, PDAs included).
        lamports: amount, 1 to ``2**64 - 1`` (1 SOL = 10**9 lamports).
        recent_blockhash: a ``solders.hash.Hash``, base58 text, or 32 bytes.

    Returns:
        The serialized legacy message (150 bytes for a transfer between two new accounts).

    Raises:
        ParameterError: a wrong type, length or an amount out of range.
        DecodeError: an undecodable address or blockhash, or a sender key off the curve.
    """
    return bytes(_legacy_message(from_pubkey32, to_address, lamports, recent_blockhash))


def transfer_message_v0(
    from_pubkey32: bytes, to_address: str, lamports: int, recent_blockhash: Blockhash
) -> bytes:
    """The versioned (v0) message of the same transfer: ``0x80 || message``, the bytes to sign.

    Arguments and errors as :func:`transfer_message`; returns 152 bytes or so (the version byte
    and an empty address-table-lookup list are added).
    """
    return bytes(
        to_bytes_versioned(_v0_message(from_pubkey32, to_address, lamports, recent_blockhash))
    )


def _signature(sign_message: SignMessage, payer: Pubkey, message: bytes) -> Signature:
    """Have the cluster sign ``message`` and check the result before it goes on the wire."""
    sig = sign_message(message)
    if not isinstance(sig, bytes | bytearray) or len(sig) != 64:
        raise CryptoError("the signer did not return a 64-byte Ed25519 signature")
    signature = Signature.from_bytes(bytes(sig))
    # A transaction with a bad signature is only refused by the cluster after broadcast; catch
    # a faulty signer (or a signer for another key) here.
    if not signature.verify(payer, message):
        raise CryptoError("the signer's signature does not verify for the sender key")
    return signature


def sign_transfer(
    from_pubkey32: bytes,
    to_address: str,
    lamports: int,
    recent_blockhash: Blockhash,
    sign_message: SignMessage,
    *,
    versioned: bool = False,
) -> SignedSolanaTx:
    """Build a SOL transfer, have the cluster sign its message and return the raw transaction.

    Args:
        from_pubkey32, to_address, lamports, recent_blockhash: as :func:`transfer_message`.
        sign_message: Ed25519 signs the message itself, not a digest: called once with the
            message bytes (:func:`transfer_message` or :func:`transfer_message_v0`), it returns
            the 64-byte signature under ``from_pubkey32``. It **must** sign exactly the bytes
            given (no hashing).
        versioned: build a v0 ``VersionedTransaction`` instead of a legacy ``Transaction``.

    Returns:
        :class:`SignedSolanaTx` with the wire bytes and the base58 signature (transaction id).

    Raises:
        ParameterError, DecodeError: invalid inputs (see :func:`transfer_message`).
        CryptoError: the signer returned something that is not a valid signature of the
            message under ``from_pubkey32``.
    """
    raw: bytes
    if versioned:
        msg_v0 = _v0_message(from_pubkey32, to_address, lamports, recent_blockhash)
        payload = bytes(to_bytes_versioned(msg_v0))
        sig = _signature(sign_message, msg_v0.account_keys[0], payload)
        raw = bytes(VersionedTransaction.populate(msg_v0, [sig]))
    else:
        msg = _legacy_message(from_pubkey32, to_address, lamports, recent_blockhash)
        payload = bytes(msg)
        sig = _signature(sign_message, msg.account_keys[0], payload)
        raw = bytes(Transaction.populate(msg, [sig]))
    return SignedSolanaTx(raw=raw, signature_b58=str(sig))
