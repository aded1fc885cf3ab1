"""secp256k1 through libsecp256k1 (coincurve), and FROST(secp256k1, SHA-256) (RFC 9591 §6.5).

Points are compressed SEC1 encodings (33 bytes); scalars are 32-byte big-endian integers
modulo the group order ``n``.
"""

from __future__ import annotations

import hashlib
from typing import Final

import coincurve

from tmpc.encoding import expect_len
from tmpc.errors import DecodeError, InputError
from tmpc.group.base import Ciphersuite, Group, Point

__all__ = ["SECP256K1", "Secp256k1Suite", "SecpPoint", "expand_message_xmd", "secp256k1"]

P_FIELD: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F
N_ORDER: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class SecpPoint(Point):
    """A secp256k1 point; ``_pk`` is a coincurve key or None for the identity."""

    __slots__ = ("_enc", "_pk")

    def __init__(self, pk: coincurve.PublicKey | None, enc: bytes | None = None) -> None:
        self._pk = pk
        self._enc = enc  # computed lazily: most intermediate sums are never encoded

    def _encoded(self) -> bytes | None:
        if self._enc is None and self._pk is not None:
            self._enc = self._pk.format(True)
        return self._enc

    @property
    def group(self) -> Group:
        return SECP256K1

    def is_identity(self) -> bool:
        return self._pk is None

    def encode(self) -> bytes:
        enc = self._encoded()
        if enc is None:
            raise InputError("the identity element has no encoding")
        return enc

    def _key(self) -> bytes:
        enc = self._encoded()
        return enc if enc is not None else b""

    def has_even_y(self) -> bool:
        """True if the affine y coordinate is even (BIP340); False for the identity."""
        enc = self._encoded()
        return enc is not None and enc[0] == 2

    def xonly(self) -> bytes:
        """The 32-byte x coordinate (BIP340 x-only encoding)."""
        return self.encode()[1:]

    def __add__(self, other: Point) -> SecpPoint:
        if not isinstance(other, SecpPoint):
            return NotImplemented
        if self._pk is None:
            return other
        if other._pk is None:
            return self
        try:
            return SecpPoint(coincurve.PublicKey.combine_keys([self._pk, other._pk]))
        except ValueError:  # the sum is the point at infinity
            return _IDENTITY

    def __neg__(self) -> SecpPoint:
        enc = self._encoded()
        if enc is None:
            return self
        flipped = bytes([enc[0] ^ 1]) + enc[1:]
        return SecpPoint(coincurve.PublicKey(flipped), flipped)

    def __mul__(self, k: int) -> SecpPoint:
        if not isinstance(k, int):
            return NotImplemented
        k %= N_ORDER
        if k == 0 or self._pk is None:
            return _IDENTITY
        return SecpPoint(self._pk.multiply(k.to_bytes(32, "big")))


_IDENTITY: Final = SecpPoint(None)


class Secp256k1Group(Group):
    """The secp256k1 group of prime order n."""

    name = "secp256k1"
    order = N_ORDER
    element_len = 33
    scalar_len = 32

    def __init__(self) -> None:
        self._g = SecpPoint(coincurve.PublicKey.from_valid_secret((1).to_bytes(32, "big")))

    def generator(self) -> SecpPoint:
        return self._g

    def identity(self) -> SecpPoint:
        return _IDENTITY

    def base_mul(self, k: int) -> SecpPoint:
        k %= N_ORDER
        if k == 0:
            return _IDENTITY
        return SecpPoint(coincurve.PublicKey.from_valid_secret(k.to_bytes(32, "big")))

    def decode_point(self, data: bytes) -> SecpPoint:
        data = expect_len(data, 33, "secp256k1 point")
        if data[0] not in (2, 3):
            raise DecodeError("secp256k1 point: not a compressed encoding")
        if int.from_bytes(data[1:], "big") >= P_FIELD:
            raise DecodeError("secp256k1 point: x coordinate not canonical")
        try:
            pk = coincurve.PublicKey(data)
        except ValueError:
            raise DecodeError("secp256k1 point: not on the curve") from None
        return SecpPoint(pk, data)

    def lift_x(self, x: bytes) -> SecpPoint:
        """BIP340 ``lift_x``: the point with x coordinate ``x`` and even y."""
        x = expect_len(x, 32, "x-only key")
        return self.decode_point(b"\x02" + x)

    def encode_scalar(self, k: int) -> bytes:
        return (k % N_ORDER).to_bytes(32, "big")

    def decode_scalar(self, data: bytes) -> int:
        data = expect_len(data, 32, "secp256k1 scalar")
        k = int.from_bytes(data, "big")
        if k >= N_ORDER:
            raise DecodeError("secp256k1 scalar: not less than the group order")
        return k


SECP256K1: Final = Secp256k1Group()


def expand_message_xmd(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """RFC 9380 §5.3.1 ``expand_message_xmd`` with SHA-256."""
    b_in_bytes, s_in_bytes = 32, 64
    ell = -(-len_in_bytes // b_in_bytes)
    if ell > 255 or len_in_bytes > 65535 or len(dst) > 255:
        raise InputError("expand_message_xmd: requested length or DST too long")
    dst_prime = dst + bytes([len(dst)])
    z_pad = bytes(s_in_bytes)
    l_i_b_str = len_in_bytes.to_bytes(2, "big")
    b0 = hashlib.sha256(z_pad + msg + l_i_b_str + b"\x00" + dst_prime).digest()
    b1 = hashlib.sha256(b0 + b"\x01" + dst_prime).digest()
    out = [b1]
    for i in range(2, ell + 1):
        prev = (int.from_bytes(b0, "big") ^ int.from_bytes(out[-1], "big")).to_bytes(32, "big")
        out.append(hashlib.sha256(prev + bytes([i]) + dst_prime).digest())
    return b"".join(out)[:len_in_bytes]


class Secp256k1Suite(Ciphersuite):
    """FROST(secp256k1, SHA-256), RFC 9591 §6.5."""

    group = SECP256K1
    context_string = b"FROST-secp256k1-SHA256-v1"

    def _hash_to_scalar(self, tag: bytes, m: bytes) -> int:
        # RFC 9591 §6.5: hash_to_field(m, 1) from RFC 9380 with expand_message_xmd(SHA-256),
        # DST = contextString || tag, L = 48, then reduce modulo the group order.
        uniform = expand_message_xmd(m, self.context_string + tag, 48)
        return int.from_bytes(uniform, "big") % N_ORDER

    def H1(self, m: bytes) -> int:
        return self._hash_to_scalar(b"rho", m)

    def H2(self, m: bytes) -> int:
        return self._hash_to_scalar(b"chal", m)

    def H3(self, m: bytes) -> int:
        return self._hash_to_scalar(b"nonce", m)

    def H4(self, m: bytes) -> bytes:
        return hashlib.sha256(self.context_string + b"msg" + m).digest()

    def H5(self, m: bytes) -> bytes:
        return hashlib.sha256(self.context_string + b"com" + m).digest()


secp256k1: Final = Secp256k1Suite()
