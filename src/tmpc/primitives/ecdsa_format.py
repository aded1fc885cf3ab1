"""ECDSA signature formats on secp256k1 and tmpc's ECDSA verifier.

What the chains expect from an ECDSA signature ``(r, s)``:

- **low-s** (BIP62 / BIP146, Ethereum's EIP-2): ``s <= n/2``; :func:`normalize_low_s` flips
  ``s`` to ``n - s`` (the same signature, mirrored nonce point) and the recovery id's parity;
- **compact** ``r || s``, 64 bytes (:func:`compact`), plus the **recovery id** ``v`` in
  ``0..3`` that lets Ethereum's ``ecrecover`` find the key (:func:`recovery_id`);
- **DER** for Bitcoin scripts (:func:`der_encode`), parsed back only under BIP66's strict
  rules (:func:`der_decode_strict`).

:func:`ecdsa_verify` is the one verifier tmpc exposes. It parses strictly itself (no BER, no
padding, no negative or oversized integers, no trailing bytes), checks ``0 < r, s < n`` and,
when asked, low-s, and only then hands a canonical signature to libsecp256k1 (coincurve) with
the caller's 32-byte digest (no hashing inside). It never raises for bad input: anything that is
not a valid signature is ``False``.
"""

from __future__ import annotations

from typing import Final

import coincurve

from tmpc.errors import CryptoError, DecodeError, ParameterError
from tmpc.group import SECP256K1
from tmpc.group.base import Point

__all__ = [
    "compact",
    "der_decode_strict",
    "der_encode",
    "ecdsa_verify",
    "normalize_low_s",
    "recovery_id",
]

N: Final = SECP256K1.order
HALF_N: Final = N // 2
P_FIELD: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F


def _check_rs(r: int, s: int) -> None:
    if not (isinstance(r, int) and isinstance(s, int) and 0 < r < N and 0 < s < N):
        raise ParameterError("ECDSA signature: r and s must be integers in 1..n-1")


def normalize_low_s(r: int, s: int, recid: int) -> tuple[int, int, int]:
    """Return the low-s form of a signature with its recovery id.

    If ``s > n/2`` the signature ``(r, n - s)`` is returned with the parity bit of ``recid``
    flipped (``n - s`` corresponds to the nonce point ``-R``, whose y has the other parity);
    otherwise the input is returned unchanged.

    Args:
        r, s: integers in ``1..n-1``.
        recid: the recovery id of ``(r, s)``, ``0..3``.

    Returns:
        ``(r, s', recid')`` with ``s' <= n/2``.

    Raises:
        ParameterError: ``r`` or ``s`` out of range, or ``recid`` not in ``0..3``.
    """
    _check_rs(r, s)
    if not (isinstance(recid, int) and 0 <= recid <= 3):
        raise ParameterError("ECDSA recovery id must be in 0..3")
    if s > HALF_N:
        return r, N - s, recid ^ 1
    return r, s, recid


def _pubkey_bytes(public_key: Point | bytes) -> bytes:
    if isinstance(public_key, Point):
        if public_key.group is not SECP256K1:
            raise ParameterError("ECDSA recovery needs a secp256k1 public key")
        return public_key.encode()
    if isinstance(public_key, bytes | bytearray):
        return bytes(public_key)
    raise ParameterError("public key must be a secp256k1 point or its SEC1 encoding")


def recovery_id(r: int, s: int, digest: bytes, public_key: Point | bytes) -> int:
    """The recovery id ``v`` (``0..3``) of signature ``(r, s)`` on ``digest`` by ``public_key``.

    Found by recovering the key from each candidate ``r || s || v`` with libsecp256k1
    (``v = 2, 3`` only exist when ``r + n < p``, i.e. the nonce point's x was reduced mod n)
    and comparing with the expected key. Ethereum's ``v`` is this value plus 27 (legacy) or
    ``2 * chain_id + 35`` (EIP-155), or the value itself for typed transactions.

    Args:
        r, s: the signature, integers in ``1..n-1`` (high or low s).
        digest: the 32-byte message hash that was signed (used as is, not hashed again).
        public_key: a secp256k1 point, or its 33-byte compressed / 65-byte uncompressed
            encoding.

    Returns:
        The recovery id, ``0..3``.

    Raises:
        ParameterError: ``r``/``s`` out of range, a digest that is not 32 bytes, or a public key
            that is not a secp256k1 point.
        CryptoError: the signature does not verify under ``public_key`` (no candidate matches).
    """
    _check_rs(r, s)
    if not isinstance(digest, bytes | bytearray) or len(digest) != 32:
        raise ParameterError("ECDSA digest must be 32 bytes")
    pk = _parse_pubkey(_pubkey_bytes(public_key))
    if pk is None:
        raise ParameterError("public key is not a valid secp256k1 point encoding")
    expected = pk.format(True)
    rs = compact(r, s)
    candidates = (0, 1, 2, 3) if r + N < P_FIELD else (0, 1)
    for v in candidates:
        try:
            got = coincurve.PublicKey.from_signature_and_message(
                rs + bytes([v]), bytes(digest), hasher=None
            )
        except ValueError:
            continue
        if got.format(True) == expected:
            return v
    raise CryptoError("ECDSA signature does not match the public key")


def compact(r: int, s: int) -> bytes:
    """The 64-byte compact encoding ``r || s`` (32 bytes each, big-endian).

    Raises:
        ParameterError: ``r`` or ``s`` not in ``1..n-1``.
    """
    _check_rs(r, s)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _der_int(x: int) -> bytes:
    # DER INTEGER: minimal big-endian two's complement; a positive value whose top bit is set
    # gets one 0x00 byte in front so that it does not read as negative.
    body = x.to_bytes((x.bit_length() + 7) // 8, "big")
    if body[0] & 0x80:
        body = b"\x00" + body
    return b"\x02" + bytes([len(body)]) + body


def der_encode(r: int, s: int) -> bytes:
    """Strict DER encoding ``SEQUENCE { INTEGER r, INTEGER s }`` (8 to 72 bytes).

    Integers are minimal: no leading zero byte unless the next byte has its top bit set.
    The result is what Bitcoin puts (followed by the sighash byte) in a script, and what
    :func:`der_decode_strict` accepts.

    Raises:
        ParameterError: ``r`` or ``s`` not in ``1..n-1``.
    """
    _check_rs(r, s)
    body = _der_int(r) + _der_int(s)
    return b"\x30" + bytes([len(body)]) + body


def _parse_der_int(data: bytes, pos: int, what: str) -> tuple[int, int]:
    # BIP66: "Check whether the R element is an integer", "Zero-length integers are not
    # allowed", "Negative numbers are not allowed", "Null bytes at the start of R are not
    # allowed, unless R would otherwise be interpreted as a negative number".
    if pos + 2 > len(data) or data[pos] != 0x02:
        raise DecodeError(f"DER signature: {what} is not an INTEGER")
    length = data[pos + 1]
    start = pos + 2
    if length == 0:
        raise DecodeError(f"DER signature: {what} has zero length")
    if length > 33:
        raise DecodeError(f"DER signature: {what} is longer than 33 bytes")
    if start + length > len(data):
        raise DecodeError(f"DER signature: {what} runs past the end")
    body = data[start : start + length]
    if body[0] & 0x80:
        raise DecodeError(f"DER signature: {what} is negative")
    if length > 1 and body[0] == 0x00 and not body[1] & 0x80:
        raise DecodeError(f"DER signature: {what} has a superfluous leading zero")
    value = int.from_bytes(body, "big")
    if value.bit_length() > 256:
        raise DecodeError(f"DER signature: {what} does not fit in 256 bits")
    return value, start + length


def der_decode_strict(data: bytes) -> tuple[int, int]:
    """Parse a strict DER ECDSA signature (BIP66 rules, without a sighash byte).

    Accepted: ``0x30 len 0x02 lenR R 0x02 lenS S`` with short-form lengths that match exactly,
    total 8..72 bytes, each integer non-empty, non-negative, minimal, at most 256 bits.
    Rejected: BER (long-form or indefinite lengths), padding, negative integers, other tags,
    and any trailing byte. Values are **not** range-checked against ``n`` here (``0`` and
    values ``>= n`` decode); :func:`ecdsa_verify` does that.

    Args:
        data: the DER bytes.

    Returns:
        ``(r, s)``.

    Raises:
        DecodeError: anything that is not strict DER.
    """
    if not isinstance(data, bytes | bytearray):
        raise DecodeError("DER signature must be bytes")
    data = bytes(data)
    # BIP66: "Minimum and maximum size constraints" (without the sighash byte: 8..72).
    if not 8 <= len(data) <= 72:
        raise DecodeError("DER signature: length out of range")
    # BIP66: "A signature is of type 0x30 (compound)" and "Make sure the length covers the
    # entire signature" (a short-form length byte; 0x80 and above would be BER/long form).
    if data[0] != 0x30:
        raise DecodeError("DER signature: not a SEQUENCE")
    if data[1] != len(data) - 2:
        raise DecodeError("DER signature: SEQUENCE length does not match")
    r, pos = _parse_der_int(data, 2, "r")
    s, pos = _parse_der_int(data, pos, "s")
    # BIP66: "Verify that the length of the signature matches the sum of the length of the
    # elements" -- nothing may follow s.
    if pos != len(data):
        raise DecodeError("DER signature: trailing bytes")
    return r, s


def _parse_pubkey(data: bytes) -> coincurve.PublicKey | None:
    if len(data) == 33 and data[0] in (2, 3):
        pass
    elif len(data) == 65 and data[0] == 4:
        pass
    else:  # wrong length, or hybrid (0x06/0x07) encodings that libsecp256k1 would accept
        return None
    try:
        return coincurve.PublicKey(data)
    except ValueError:
        return None


def ecdsa_verify(
    public_key: bytes,
    digest: bytes,
    signature: bytes,
    *,
    der: bool,
    require_low_s: bool,
) -> bool:
    """tmpc's ECDSA verifier on secp256k1.

    Steps: the public key must be a 33-byte compressed (``02``/``03``) or 65-byte uncompressed
    (``04``) SEC1 point on the curve; the digest exactly 32 bytes (it is **not** hashed again);
    the signature is parsed strictly (:func:`der_decode_strict` when ``der``, otherwise exactly
    64 bytes ``r || s``); then ``0 < r < n`` and ``0 < s < n``; then, if ``require_low_s``,
    ``s <= n/2`` (Bitcoin's and Ethereum's non-malleability rule). Finally libsecp256k1 checks
    the equation. libsecp256k1 accepts only low-s, so when ``require_low_s`` is False a high-s
    signature is given to it as ``(r, n - s)``, which is valid exactly when ``(r, s)`` is.

    There is no "acceptable" middle ground: BER encodings that lenient verifiers accept are
    rejected here.

    Args:
        public_key: 33 or 65 bytes.
        digest: 32 bytes.
        signature: DER bytes (``der=True``) or the 64-byte compact form.
        der: which signature format is expected.
        require_low_s: reject ``s > n/2``.

    Returns:
        True for a valid signature, False for anything else (never raises on bad input).
    """
    if not all(isinstance(x, bytes | bytearray) for x in (public_key, digest, signature)):
        return False
    if len(digest) != 32:
        return False
    pk = _parse_pubkey(bytes(public_key))
    if pk is None:
        return False
    if der:
        try:
            r, s = der_decode_strict(bytes(signature))
        except DecodeError:
            return False
    else:
        if len(signature) != 64:
            return False
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if not (0 < r < N and 0 < s < N):
        return False
    if s > HALF_N:
        if require_low_s:
            return False
        s = N - s
    try:
        return bool(pk.verify(der_encode(r, s), bytes(digest), hasher=None))
    except ValueError:
        return False
