"""Addresses of a secp256k1 ECDSA public key: Ethereum (EIP-55) and Bitcoin P2WPKH (BIP173).

- **Ethereum**: the last 20 bytes of ``keccak256(X || Y)`` (the 64-byte uncompressed key without
  its ``0x04`` prefix), written ``0x`` + 40 hex digits with EIP-55's mixed-case checksum.
  Keccak-256 is the original Keccak padding (not NIST SHA3-256): pycryptodome's
  ``Crypto.Hash.keccak``.
- **Bitcoin P2WPKH**: witness version 0 with the 20-byte ``HASH160(compressed key)``
  (``RIPEMD160(SHA256(.))``) as program, bech32 (BIP173) with the network's human-readable
  part. Segwit v0 requires the compressed key (BIP143), so only that is hashed. The pinned
  ``bech32==1.2.0`` package computes the BIP173 checksum, which is the right one for v0.
"""

from __future__ import annotations

from typing import Final

import base58
import bech32
import coincurve
from Crypto.Hash import keccak

from tmpc.encoding import hash160
from tmpc.errors import DecodeError, ParameterError
from tmpc.group import SECP256K1
from tmpc.group.base import Point
from tmpc.protocols.taproot import NETWORK_HRP, network_hrp

__all__ = [
    "P2WPKH_NETWORK_HRP",
    "eip55_checksum",
    "ethereum_address",
    "hash160",
    "keccak256",
    "p2wpkh_address",
    "p2wpkh_script_pubkey",
    "solana_address",
]

#: Human-readable parts of segwit addresses (BIP173; signet shares testnet's).
P2WPKH_NETWORK_HRP: Final[dict[str, str]] = NETWORK_HRP


def keccak256(data: bytes) -> bytes:
    """Ethereum's Keccak-256 (original Keccak padding), 32 bytes."""
    return bytes(keccak.new(digest_bits=256, data=bytes(data)).digest())


def _public_key(key: Point | bytes) -> coincurve.PublicKey:
    """A validated secp256k1 key from a point or a 33/65-byte SEC1 encoding."""
    if isinstance(key, Point):
        if key.group is not SECP256K1:
            raise ParameterError("a secp256k1 public key is required")
        data = key.encode()
    elif isinstance(key, bytes | bytearray):
        data = bytes(key)
    else:
        raise ParameterError("public key must be a secp256k1 point or its SEC1 encoding")
    if not ((len(data) == 33 and data[0] in (2, 3)) or (len(data) == 65 and data[0] == 4)):
        raise DecodeError("public key: expected 33 bytes (02/03) or 65 bytes (04)")
    try:
        return coincurve.PublicKey(data)
    except ValueError:
        raise DecodeError("public key: not a point on secp256k1") from None


def eip55_checksum(address20: bytes) -> str:
    """EIP-55 mixed-case hex of a 20-byte address, with ``0x``.

    EIP-55: a hex letter at position ``i`` is upper case when nibble ``i`` of
    ``keccak256(lowercase hex address)`` is 8 or more, otherwise lower case.

    Raises:
        DecodeError: ``address20`` is not 20 bytes.
    """
    if not isinstance(address20, bytes | bytearray) or len(address20) != 20:
        raise DecodeError("an Ethereum address is 20 bytes")
    lower = bytes(address20).hex()
    nibbles = keccak256(lower.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(h, 16) >= 8 else c
        for c, h in zip(lower, nibbles, strict=False)
    )


def ethereum_address(public_key: Point | bytes) -> str:
    """The EIP-55 checksummed Ethereum address of a secp256k1 public key (42 characters).

    Args:
        public_key: a secp256k1 point, or its 33-byte compressed or 65-byte uncompressed
            SEC1 encoding.

    Returns:
        ``0x`` followed by 40 mixed-case hex digits.

    Raises:
        DecodeError: not a valid encoding of a point on secp256k1.
        ParameterError: a point of another group.
    """
    xy = _public_key(public_key).format(False)[1:]
    return eip55_checksum(keccak256(xy)[-20:])


def _compressed(public_key: Point | bytes) -> bytes:
    pk = _public_key(public_key)
    if isinstance(public_key, bytes | bytearray) and len(public_key) != 33:
        raise DecodeError("P2WPKH needs the 33-byte compressed public key (BIP143)")
    return bytes(pk.format(True))


def p2wpkh_script_pubkey(public_key: Point | bytes) -> bytes:
    """The 22-byte P2WPKH scriptPubKey ``OP_0 OP_PUSHBYTES_20 <HASH160(key)>``.

    Raises:
        DecodeError: not a compressed secp256k1 key (33 bytes, on the curve).
    """
    return b"\x00\x14" + hash160(_compressed(public_key))


def p2wpkh_address(public_key: Point | bytes, network: str = "mainnet") -> str:
    """The bech32 P2WPKH address (segwit v0) of a compressed secp256k1 public key.

    Args:
        public_key: a secp256k1 point or its 33-byte compressed encoding (uncompressed keys
            are refused: segwit v0 outputs to them are unspendable under BIP143 policy).
        network: ``mainnet`` (``bc1q...``), ``testnet`` or ``signet`` (``tb1q...``),
            ``regtest`` (``bcrt1q...``).

    Returns:
        The lower-case bech32 address.

    Raises:
        DecodeError: not a compressed key on secp256k1.
        ParameterError: an unknown network.
    """
    address = bech32.encode(network_hrp(network), 0, hash160(_compressed(public_key)))
    if address is None:  # cannot happen for a 20-byte program; never return a bad address
        raise ParameterError("bech32 encoding failed")
    return str(address)


def solana_address(pubkey: bytes) -> str:
    """A Solana address: the 32-byte Ed25519 public key in base58 (same on every cluster).

    Raises :class:`ParameterError` if ``pubkey`` is not 32 bytes.
    """
    if not isinstance(pubkey, bytes | bytearray) or len(pubkey) != 32:
        raise ParameterError("a Solana address needs a 32-byte Ed25519 key")
    return str(base58.b58encode(bytes(pubkey)).decode())
