"""The one group interface every protocol is written against.

A :class:`Group` is a prime-order group with a fixed generator: points are opaque
:class:`Point` values that support ``+``, ``-``, unary ``-`` and multiplication by an ``int``
scalar; scalars are Python ``int`` values reduced modulo :attr:`Group.order`.

Point arithmetic happens inside libsecp256k1 (coincurve) or libsodium (PyNaCl). Scalar field
arithmetic uses Python integers, which are not constant time; ``docs/security.md`` states that
residual risk.

Decoding is strict: :meth:`Group.decode_point` rejects points off the curve, the identity,
points outside the prime-order subgroup and non-canonical encodings; :meth:`Group.decode_scalar`
rejects values ``>= order``. Every received element must pass through them.

A :class:`Ciphersuite` adds the RFC 9591 hash functions H1..H5 for one group and hash.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from typing import Self

__all__ = ["Ciphersuite", "Group", "Point"]


class Point(ABC):
    """An element of a prime-order group. Immutable; equality compares encodings."""

    __slots__ = ()

    @property
    @abstractmethod
    def group(self) -> Group:
        """The group this point belongs to."""

    @abstractmethod
    def is_identity(self) -> bool:
        """True for the neutral element."""

    @abstractmethod
    def encode(self) -> bytes:
        """Canonical encoding (``group.element_len`` bytes).

        Raises :class:`~tmpc.errors.InputError` for the identity, which has no encoding on the
        wire (RFC 9591 ``SerializeElement``).
        """

    @abstractmethod
    def __add__(self, other: Self) -> Self: ...

    @abstractmethod
    def __neg__(self) -> Self: ...

    @abstractmethod
    def __mul__(self, k: int) -> Self: ...

    def __rmul__(self, k: int) -> Self:
        return self.__mul__(k)

    def __sub__(self, other: Self) -> Self:
        return self + (-other)

    @abstractmethod
    def _key(self) -> bytes:
        """Bytes that identify the point, the identity included (for ``==`` and hashing)."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Point) or other.group is not self.group:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        if self.is_identity():
            return f"<{self.group.name} identity>"
        return f"<{self.group.name} point {self.encode().hex()}>"


class Group(ABC):
    """A prime-order group with a generator, its encodings and scalar field."""

    name: str
    order: int
    element_len: int
    scalar_len: int

    @abstractmethod
    def generator(self) -> Point:
        """The fixed generator G."""

    @abstractmethod
    def identity(self) -> Point:
        """The neutral element."""

    @abstractmethod
    def base_mul(self, k: int) -> Point:
        """``k * G``; ``k`` is reduced modulo the order, 0 gives the identity."""

    @abstractmethod
    def decode_point(self, data: bytes) -> Point:
        """Decode and validate a point.

        Raises :class:`~tmpc.errors.DecodeError` on a wrong length, a non-canonical encoding,
        a point off the curve or outside the prime-order subgroup, or the identity.
        """

    @abstractmethod
    def encode_scalar(self, k: int) -> bytes:
        """Canonical ``scalar_len``-byte encoding of ``k mod order``."""

    @abstractmethod
    def decode_scalar(self, data: bytes) -> int:
        """Decode a scalar; raises :class:`~tmpc.errors.DecodeError` if not ``< order``."""

    def random_scalar(self) -> int:
        """A uniformly random non-zero scalar from :mod:`secrets`."""
        return secrets.randbelow(self.order - 1) + 1

    def sum_points(self, points: list[Point]) -> Point:
        """Sum of a list of points (the identity for an empty list)."""
        acc = self.identity()
        for p in points:
            acc = acc + p
        return acc


class Ciphersuite(ABC):
    """An RFC 9591 ciphersuite: a group, a hash, a context string and H1..H5 (§6)."""

    group: Group
    context_string: bytes

    @abstractmethod
    def H1(self, m: bytes) -> int:
        """Hash to scalar for binding factors (``rho``)."""

    @abstractmethod
    def H2(self, m: bytes) -> int:
        """Hash to scalar for the Schnorr challenge (``chal``)."""

    @abstractmethod
    def H3(self, m: bytes) -> int:
        """Hash to scalar for nonce generation (``nonce``)."""

    @abstractmethod
    def H4(self, m: bytes) -> bytes:
        """Hash of the message (``msg``)."""

    @abstractmethod
    def H5(self, m: bytes) -> bytes:
        """Hash of the encoded commitment list (``com``)."""

    def HDKG(self, m: bytes) -> int:
        """Hash to scalar for the DKG proof of knowledge (``dkg``; ZF frost, RFC 9591 App. C)."""
        return self._hash_to_scalar(b"dkg", m)

    @abstractmethod
    def _hash_to_scalar(self, tag: bytes, m: bytes) -> int:
        """Hash ``context_string || tag || m`` to a scalar in the suite's way."""
