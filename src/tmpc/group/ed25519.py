"""edwards25519 through libsodium (PyNaCl), and FROST(Ed25519, SHA-512) (RFC 9591 §6.1).

Points are 32-byte RFC 8032 encodings; scalars are 32-byte little-endian integers modulo
``L = 2^252 + 27742317777372353535851937790883648493``.
"""

from __future__ import annotations

import hashlib
from typing import Final

from nacl import bindings as _sodium
from nacl import exceptions as _nacl_exc

from tmpc.encoding import expect_len
from tmpc.errors import DecodeError, InputError
from tmpc.group.base import Ciphersuite, Group, Point

__all__ = ["ED25519", "Ed25519Suite", "EdPoint", "ed25519"]

L_ORDER: Final = 2**252 + 27742317777372353535851937790883648493
P_FIELD: Final = 2**255 - 19
_IDENTITY_ENC: Final = b"\x01" + bytes(31)


class EdPoint(Point):
    """An edwards25519 point in the prime-order subgroup, held as its encoding."""

    __slots__ = ("_enc",)

    def __init__(self, enc: bytes) -> None:
        self._enc = enc

    @property
    def group(self) -> Group:
        return ED25519

    def is_identity(self) -> bool:
        return self._enc == _IDENTITY_ENC

    def encode(self) -> bytes:
        if self._enc == _IDENTITY_ENC:
            raise InputError("the identity element has no encoding")
        return self._enc

    def _key(self) -> bytes:
        return self._enc

    def __add__(self, other: Point) -> EdPoint:
        if not isinstance(other, EdPoint):
            return NotImplemented
        if self._enc == _IDENTITY_ENC:
            return other
        if other._enc == _IDENTITY_ENC:
            return self
        return EdPoint(_sodium.crypto_core_ed25519_add(self._enc, other._enc))

    def __neg__(self) -> EdPoint:
        if self._enc == _IDENTITY_ENC:
            return self
        # -(x, y) = (-x, y): flip the sign bit of x. Safe for every subgroup point other than
        # the identity, since only y = +-1 have x = 0 and those have small order.
        return EdPoint(self._enc[:31] + bytes([self._enc[31] ^ 0x80]))

    def __mul__(self, k: int) -> EdPoint:
        if not isinstance(k, int):
            return NotImplemented
        k %= L_ORDER
        if k == 0 or self._enc == _IDENTITY_ENC:
            return _IDENTITY
        return EdPoint(
            _sodium.crypto_scalarmult_ed25519_noclamp(k.to_bytes(32, "little"), self._enc)
        )


_IDENTITY: Final = EdPoint(_IDENTITY_ENC)


class Ed25519Group(Group):
    """The prime-order subgroup of edwards25519."""

    name = "ed25519"
    order = L_ORDER
    element_len = 32
    scalar_len = 32

    def __init__(self) -> None:
        self._g = EdPoint(
            _sodium.crypto_scalarmult_ed25519_base_noclamp((1).to_bytes(32, "little"))
        )

    def generator(self) -> EdPoint:
        return self._g

    def identity(self) -> EdPoint:
        return _IDENTITY

    def base_mul(self, k: int) -> EdPoint:
        k %= L_ORDER
        if k == 0:
            return _IDENTITY
        return EdPoint(_sodium.crypto_scalarmult_ed25519_base_noclamp(k.to_bytes(32, "little")))

    def decode_point(self, data: bytes) -> EdPoint:
        data = expect_len(data, 32, "ed25519 point")
        y = int.from_bytes(data, "little") & ((1 << 255) - 1)
        if y >= P_FIELD:
            raise DecodeError("ed25519 point: y coordinate not canonical")
        try:
            # libsodium: on the curve, canonical, not of small order, in the main subgroup.
            ok = _sodium.crypto_core_ed25519_is_valid_point(data)
        except _nacl_exc.CryptoError:
            ok = False
        if not ok:
            raise DecodeError("ed25519 point: invalid, small order or outside the subgroup")
        return EdPoint(data)

    def encode_scalar(self, k: int) -> bytes:
        return (k % L_ORDER).to_bytes(32, "little")

    def decode_scalar(self, data: bytes) -> int:
        data = expect_len(data, 32, "ed25519 scalar")
        k = int.from_bytes(data, "little")
        if k >= L_ORDER:
            raise DecodeError("ed25519 scalar: not less than the group order")
        return k


ED25519: Final = Ed25519Group()


class Ed25519Suite(Ciphersuite):
    """FROST(Ed25519, SHA-512), RFC 9591 §6.1."""

    group = ED25519
    context_string = b"FROST-ED25519-SHA512-v1"

    def _hash_to_scalar(self, tag: bytes, m: bytes) -> int:
        digest = hashlib.sha512(self.context_string + tag + m).digest()
        return int.from_bytes(digest, "little") % L_ORDER

    def H1(self, m: bytes) -> int:
        return self._hash_to_scalar(b"rho", m)

    def H2(self, m: bytes) -> int:
        # RFC 9591 §6.1: H2 is SHA-512(m) without a context prefix, so that signatures are
        # RFC 8032 Ed25519 signatures.
        return int.from_bytes(hashlib.sha512(m).digest(), "little") % L_ORDER

    def H3(self, m: bytes) -> int:
        return self._hash_to_scalar(b"nonce", m)

    def H4(self, m: bytes) -> bytes:
        return hashlib.sha512(self.context_string + b"msg" + m).digest()

    def H5(self, m: bytes) -> bytes:
        return hashlib.sha512(self.context_string + b"com" + m).digest()


ed25519: Final = Ed25519Suite()
