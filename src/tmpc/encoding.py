"""Canonical, length-checked encodings and hashes shared by every protocol.

Everything that is hashed into a challenge or a transcript is encoded unambiguously: fixed
lengths where the spec fixes them, otherwise a 4-byte big-endian length prefix
(:func:`lp`), so that two different inputs can never concatenate to the same bytes
(TSSHOCK-style ambiguity).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from typing import Any, Final

from Crypto.Hash import RIPEMD160

from tmpc.errors import DecodeError

__all__ = [
    "JSON_MAX_BYTES",
    "JSON_MAX_DEPTH",
    "bytes_from_hex",
    "ct_equal",
    "expect_len",
    "hash160",
    "int_from_be",
    "int_to_be",
    "lp",
    "lp_join",
    "parse_json",
    "tagged_hash",
    "xor_bytes",
]


def hash160(data: bytes) -> bytes:
    """Bitcoin's ``HASH160 = RIPEMD160(SHA256(data))``, 20 bytes (BIP32 fingerprints,
    P2PKH/P2WPKH programs)."""
    return bytes(RIPEMD160.new(hashlib.sha256(data).digest()).digest())


@functools.lru_cache(maxsize=512)
def _tag_state(tag: str) -> Any:
    t = hashlib.sha256(tag.encode()).digest()
    return hashlib.sha256(t + t)


def tagged_hash(tag: str, msg: bytes) -> bytes:
    """BIP340 tagged hash: ``SHA256(SHA256(tag) || SHA256(tag) || msg)`` (32 bytes).

    The SHA-256 state after the 64-byte prefix is computed once per tag (as BIP340 suggests:
    "implementations can precompute the prefix") and copied for each message."""
    h = _tag_state(tag).copy()
    h.update(msg)
    return bytes(h.digest())


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


#: Default size limit of :func:`parse_json` (16 MiB; tmpc's largest wallet.json is ~5 MB).
JSON_MAX_BYTES: Final = 16 << 20
#: Default nesting limit of :func:`parse_json`; tmpc's own documents nest 3 levels deep.
JSON_MAX_DEPTH: Final = 32

# A JSON string (RFC 8259 section 7), escapes included; unrolled so that long strings do not
# backtrack.
_JSON_STRING: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_NOT_BRACKET: Final = re.compile(r"[^\[\]{}]+")


def _json_depth_exceeds(text: str, max_depth: int) -> bool:
    """Whether the arrays and objects of ``text`` nest deeper than ``max_depth``.

    A linear scan of the brackets outside strings; it does not validate the JSON (that is
    :func:`json.loads`'s job once the depth is known to be safe for its recursion).
    """
    depth = 0
    for c in _JSON_NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        if c in "[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def _refuse_json_constant(name: str) -> Any:
    # Python's json reads NaN, Infinity and -Infinity, which RFC 8259 does not allow (and
    # int(Infinity) raises OverflowError far from here).
    raise ValueError(f"{name} is not JSON")


def parse_json(
    data: bytes | str,
    what: str,
    *,
    max_bytes: int = JSON_MAX_BYTES,
    max_depth: int = JSON_MAX_DEPTH,
) -> Any:
    """Parse untrusted JSON text with a size and a nesting limit; every JSON parser in tmpc.

    Both limits are checked *before* :func:`json.loads` runs, so neither a huge file nor
    deeply nested brackets (which make the standard library raise ``RecursionError``) get
    past this function as anything but one :class:`DecodeError`.

    Args:
        data: UTF-8 encoded bytes or text (a byte order mark is refused, as RFC 8259 allows).
        what: what the text is, for the error message (e.g. ``"wallet.json"``); **must not**
            contain secrets.
        max_bytes: the largest accepted size in bytes (UTF-8 length for text).
        max_depth: the deepest accepted nesting of arrays and objects.

    Returns:
        The parsed value (dict, list, str, int, float, bool or None).

    Raises:
        DecodeError: larger than ``max_bytes``, not UTF-8, nested deeper than ``max_depth``,
            or not valid JSON (RFC 8259: ``NaN`` and ``Infinity`` are refused). The message
            names ``what`` and never quotes the content.
    """
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:
            raise DecodeError(f"{what} is not UTF-8 text") from None
    elif isinstance(data, bytes | bytearray):
        raw = bytes(data)
    else:
        raise DecodeError(f"{what}: JSON input must be bytes or text")
    if len(raw) > max_bytes:
        raise DecodeError(f"{what} is larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(f"{what} is not UTF-8 text") from None
    if _json_depth_exceeds(text, max_depth):
        raise DecodeError(f"{what} nests arrays or objects deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_refuse_json_constant)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError, NaN / Infinity, and integers beyond Python's
        # digit limit.
        raise DecodeError(f"{what} is not valid JSON") from None
