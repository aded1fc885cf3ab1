"""Canonical, length-checked encodings and hashes shared by every protocol.

Everything that is hashed into a challenge or a transcript is encoded unambiguously: fixed
lengths where the spec fixes them, otherwise a 4-byte big-endian length prefix
(:func:`lp`), so that two different inputs can never concatenate to the same bytes
(TSSHOCK-style ambiguity).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from tmpc.errors import DecodeError

__all__ = [
    "bytes_from_hex",
    "ct_equal",
    "expect_len",
    "int_from_be",
    "int_to_be",
    "lp",
    "lp_join",
    "tagged_hash",
    "xor_bytes",
]


def tagged_hash(tag: str, msg: bytes) -> bytes:
    """BIP340 tagged hash: ``SHA256(SHA256(tag) || SHA256(tag) || msg)`` (32 bytes)."""
    t = hashlib.sha256(tag.encode()).digest()
    return hashlib.sha256(t + t + msg).digest()


def int_to_be(x: int, length: int) -> bytes:
    """Encode a non-negative integer as exactly ``length`` big-endian bytes."""
    return x.to_bytes(length, "big")


def int_from_be(b: bytes) -> int:
    """Decode big-endian bytes to an integer."""
    return int.from_bytes(b, "big")


def lp(data: bytes) -> bytes:
    """Length-prefix ``data`` with its length as 4 big-endian bytes."""
    return len(data).to_bytes(4, "big") + data


def lp_join(parts: Iterable[bytes]) -> bytes:
    """Concatenate length-prefixed parts: an injective encoding of a list of byte strings."""
    return b"".join(lp(p) for p in parts)


def expect_len(data: bytes, length: int, what: str) -> bytes:
    """Return ``data`` if it is exactly ``length`` bytes, else raise :class:`DecodeError`."""
    if not isinstance(data, bytes | bytearray) or len(data) != length:
        got = len(data) if isinstance(data, bytes | bytearray) else type(data).__name__
        raise DecodeError(f"{what}: expected {length} bytes, got {got}")
    return bytes(data)


def xor_bytes(a: bytes, b: bytes) -> bytes:
    """XOR two byte strings of equal length."""
    if len(a) != len(b):
        raise DecodeError("xor of byte strings of different lengths")
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def ct_equal(a: bytes, b: bytes) -> bool:
    """Constant-time equality of two byte strings."""
    return hmac.compare_digest(a, b)


def bytes_from_hex(text: str, what: str = "hex input") -> bytes:
    """Parse hex text (an optional ``0x`` prefix allowed) or raise :class:`DecodeError`."""
    s = text.strip()
    if s.startswith(("0x", "0X")):
        s = s[2:]
    try:
        return bytes.fromhex(s)
    except ValueError:
        raise DecodeError(f"{what} is not valid hex") from None
