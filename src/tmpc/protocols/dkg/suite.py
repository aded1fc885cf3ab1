"""What the DKG needs from its target group: tags, hashes to scalars, encodings, pops, tweak.

Host keys, ECDH and the CertEq signatures are always secp256k1 / BIP340 (they are the parties'
identity keys). The VSS (coefficients, commitments, shares, proofs of possession, threshold
key, pubshares) runs over the *target* group of a :class:`DKGSuite`:

* ``SECP256K1``: byte for byte the ChillDKG draft. Tags are ``"BIP DKG/" + name``; scalars from
  32-byte tagged hashes; a proof of possession is a BIP340 signature with the tag prefix
  ``"BIP DKG/pop message"`` over the 4-byte participant index; the threshold key carries the
  draft's unspendable Taproot tweak (``invalid_taproot_commit``).
* any other group (ED25519): the same structure with every tag suffixed by ``"/" + name``
  (e.g. ``"BIP DKG/vss coeffs/ed25519"``); scalars are 64-byte wide tagged hashes reduced
  modulo the order (never 32 bytes modulo a 252-bit order); a proof of possession is a
  Schnorr proof ``R || s`` over the group whose challenge binds the tag, the participant
  index, the commitment and the session's parameters; no Taproot tweak.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from tmpc.encoding import tagged_hash, xor_bytes
from tmpc.errors import DecodeError, ParameterError
from tmpc.group.base import Group, Point
from tmpc.group.ed25519 import ED25519
from tmpc.group.secp256k1 import N_ORDER, P_FIELD, SECP256K1, SecpPoint

__all__ = [
    "BIP_TAG",
    "DKGSuite",
    "as_secp",
    "be4",
    "bip340_sign_prefixed",
    "bip340_verify_prefixed",
    "suite_for",
    "tagged_hash_wide",
]

BIP_TAG = "BIP DKG/"


def be4(i: int) -> bytes:
    """``i`` as 4 big-endian bytes (indices and thresholds, always ``< 2**32``)."""
    return i.to_bytes(4, "big")


def tagged_hash_wide(tag: str, msg: bytes) -> bytes:
    """A 64-byte tagged hash ``SHA512(SHA256(tag) || SHA256(tag) || msg)``."""
    t = hashlib.sha256(tag.encode()).digest()
    return hashlib.sha512(t + t + msg).digest()


def as_secp(P: Point) -> SecpPoint:
    """``P`` as a :class:`SecpPoint`; raises :class:`ParameterError` for another group."""
    if not isinstance(P, SecpPoint):
        raise ParameterError("expected a secp256k1 point")
    return P


# Proof of possession, secp256k1 (the draft): BIP340 with the tag prefix replaced, i.e. the
# tags "<prefix>/aux", "<prefix>/nonce" and "<prefix>/challenge".


def bip340_sign_prefixed(prefix: str, msg: bytes, d0: int, P: SecpPoint, aux_rand: bytes) -> bytes:
    """BIP340 ``Sign`` with tag prefix ``prefix``; ``P = d0*G`` is passed in to save a mul."""
    if not 1 <= d0 < N_ORDER or len(aux_rand) != 32:
        raise ParameterError("pop: secret out of range or aux_rand not 32 bytes")
    # > Let d = d' if has_even_y(P), otherwise let d = n - d'.
    d = d0 if P.has_even_y() else N_ORDER - d0
    # > Let t be the byte-wise xor of bytes(d) and hash_BIP0340/aux(a).
    t = xor_bytes(d.to_bytes(32, "big"), tagged_hash(prefix + "/aux", aux_rand))
    # > Let k' = int(hash_BIP0340/nonce(t || bytes(P) || m)) mod n.
    k0 = int.from_bytes(tagged_hash(prefix + "/nonce", t + P.xonly() + msg), "big") % N_ORDER
    if k0 == 0:
        raise ParameterError("pop nonce is zero (negligible probability)")
    R = SECP256K1.base_mul(k0)
    k = k0 if R.has_even_y() else N_ORDER - k0
    # > Let e = int(hash_BIP0340/challenge(bytes(R) || bytes(P) || m)) mod n.
    e = int.from_bytes(tagged_hash(prefix + "/challenge", R.xonly() + P.xonly() + msg), "big")
    return R.xonly() + ((k + e % N_ORDER * d) % N_ORDER).to_bytes(32, "big")


def bip340_verify_prefixed(prefix: str, msg: bytes, P: SecpPoint, sig: bytes) -> bool:
    """BIP340 ``Verify`` with tag prefix ``prefix`` against ``lift_x(x(P))`` (P not identity)."""
    if len(sig) != 64 or P.is_identity():
        return False
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    if r >= P_FIELD or s >= N_ORDER:
        return False
    e = int.from_bytes(tagged_hash(prefix + "/challenge", sig[:32] + P.xonly() + msg), "big")
    # > Let R = s⋅G - e⋅P, with P = lift_x(x(P)) = P or -P; fold the sign into the scalar.
    minus_e = (-e) % N_ORDER if P.has_even_y() else e % N_ORDER
    R = as_secp(SECP256K1.base_mul(s) + P * minus_e)
    # > Fail if is_infinite(R), not has_even_y(R) or x(R) != r.
    return (not R.is_identity()) and R.has_even_y() and R.xonly() == sig[:32]


@dataclass(frozen=True, slots=True)
class DKGSuite:
    """The target group of a DKG session and the group-dependent choices made for it."""

    group: Group
    suffix: str

    @property
    def is_draft(self) -> bool:
        """True for secp256k1, where every byte follows the ChillDKG draft."""
        return self.group is SECP256K1

    @property
    def point_len(self) -> int:
        """Bytes of one encoded point (33 secp256k1, 32 ed25519)."""
        return self.group.element_len

    @property
    def scalar_len(self) -> int:
        """Bytes of one encoded scalar (32)."""
        return self.group.scalar_len

    @property
    def pop_len(self) -> int:
        """Bytes of one proof of possession (64 for both groups)."""
        return 64 if self.is_draft else self.group.element_len + self.group.scalar_len

    def tag(self, name: str) -> str:
        """The domain tag ``"BIP DKG/" + name`` (+ ``"/<group>"`` off secp256k1)."""
        return BIP_TAG + name + self.suffix

    def hash(self, name: str, data: bytes) -> bytes:
        """32-byte tagged hash under :meth:`tag` (seeds and randomness, not scalars)."""
        return tagged_hash(self.tag(name), data)

    def hash_to_scalar(self, name: str, data: bytes, *, checked: bool = False) -> int:
        """A scalar from a tagged hash.

        secp256k1: the 32-byte hash as an integer, reduced modulo n (``checked=False``, the
        draft's ``Scalar(int)``) or rejected if ``>= n`` (``checked=True``, the draft's
        ``from_bytes_checked``; probability about 2**-128). Other groups: a 64-byte hash
        reduced modulo the order.
        """
        q = self.group.order
        if self.is_draft:
            x = int.from_bytes(tagged_hash(self.tag(name), data), "big")
            if checked and x >= q:
                raise ParameterError("hash output not below the group order (negligible)")
            return x % q
        return int.from_bytes(tagged_hash_wide(self.tag(name), data), "big") % q

    # Points in commitments may be the identity (the draft's ``*_with_infinity``): a sum of
    # valid commitments must stay encodable, so that no participant can make it unencodable.

    @property
    def identity_encoding(self) -> bytes:
        """The encoding of the identity: 33 zero bytes (secp256k1), ``01 00..00`` (ed25519)."""
        if self.group is ED25519:
            return b"\x01" + bytes(31)
        return bytes(self.group.element_len)

    def encode_point(self, P: Point) -> bytes:
        """Encode ``P``, the identity included."""
        return self.identity_encoding if P.is_identity() else P.encode()

    def decode_point(self, data: bytes) -> Point:
        """Strictly decode a point, the identity included; raises :class:`DecodeError`."""
        if data == self.identity_encoding:
            return self.group.identity()
        return self.group.decode_point(data)

    def decode_points(self, data: bytes, count: int) -> list[Point]:
        """Decode exactly ``count`` concatenated points (identity allowed)."""
        m = self.point_len
        if len(data) != m * count:
            raise DecodeError(f"expected {count} points of {m} bytes")
        return [self.decode_point(data[i : i + m]) for i in range(0, m * count, m)]

    def decode_scalars(self, data: bytes, count: int) -> list[int]:
        """Decode exactly ``count`` concatenated scalars, each strictly ``< order``."""
        m = self.scalar_len
        if len(data) != m * count:
            raise DecodeError(f"expected {count} scalars of {m} bytes")
        return [self.group.decode_scalar(data[i : i + m]) for i in range(0, m * count, m)]

    def encode_scalars(self, scalars: Sequence[int]) -> bytes:
        """Concatenated scalar encodings."""
        return b"".join(self.group.encode_scalar(s) for s in scalars)

    # Proofs of possession of the constant term a_0 of a dealer's polynomial, A = a_0*G.

    def pop_prove(
        self, a0: int, A: Point, participant_id: int, aux_rand: bytes, context: bytes
    ) -> bytes:
        """Prove knowledge of ``a0`` with ``A = a0*G`` for participant ``participant_id``.

        ``context`` (the session's ``t || hostpubkeys``) is bound off secp256k1 only; the
        draft binds just the index there.
        """
        if self.is_draft:
            # > pop_prove: schnorr_sign(pop_msg(id), seckey, aux_rand, tag_prefix=POP_MSG_TAG)
            return bip340_sign_prefixed(
                self.tag("pop message"), be4(participant_id), a0, as_secp(A), aux_rand
            )
        g = self.group
        # Nonce from the secret and the provided randomness (a synthetic nonce, as BIP340).
        k = self.hash_to_scalar(
            "pop nonce",
            g.encode_scalar(a0) + aux_rand + A.encode() + be4(participant_id) + context,
        )
        if k == 0:
            raise ParameterError("pop nonce is zero (negligible probability)")
        R = g.base_mul(k)
        c = self._pop_challenge(R, A, participant_id, context)
        return R.encode() + g.encode_scalar((k + c * a0) % g.order)

    def pop_verify(self, pop: bytes, A: Point, participant_id: int, context: bytes) -> bool:
        """Verify a proof of possession for ``A`` (not the identity) and ``participant_id``."""
        if self.is_draft:
            return bip340_verify_prefixed(
                self.tag("pop message"), be4(participant_id), as_secp(A), pop
            )
        g = self.group
        if len(pop) != self.pop_len or A.is_identity():
            return False
        try:
            R = g.decode_point(pop[: g.element_len])
            s = g.decode_scalar(pop[g.element_len :])
        except DecodeError:
            return False
        c = self._pop_challenge(R, A, participant_id, context)
        return g.base_mul(s) == R + A * c

    def _pop_challenge(self, R: Point, A: Point, participant_id: int, context: bytes) -> int:
        # c = H(tag, R || A || index || t || hostpubkeys): fixed-length fields first, the
        # variable-length context last, so the encoding is unambiguous.
        return self.hash_to_scalar(
            "pop challenge", R.encode() + A.encode() + be4(participant_id) + context
        )

    # The draft's ``invalid_taproot_commit``: the threshold key becomes P + t*G with
    # t = hash_TapTweak(x(P)), a BIP341 output key with no script path (no hidden script).

    def tweak(self, C0: Point) -> tuple[int, Point]:
        """``(tweak, tweak*G)`` for the commitment to the shared secret ``C0``.

        secp256k1: the draft's unspendable Taproot tweak. Other groups: ``(0, identity)``.
        Raises :class:`DecodeError` if ``C0`` is the identity (no threshold key).
        """
        if C0.is_identity():
            raise DecodeError("the commitment to the shared secret is the identity")
        if not self.is_draft:
            return 0, self.group.identity()
        x = int.from_bytes(tagged_hash("TapTweak", as_secp(C0).xonly()), "big")
        if x >= N_ORDER:
            raise ParameterError("TapTweak not below the group order (negligible)")
        return x, self.group.base_mul(x)

    @property
    def certeq_prefix(self) -> bytes:
        """The 33-byte CertEq message prefix (the tag, zero padded, as BIP340 suggests)."""
        return self.tag("certeq message").encode().ljust(33, b"\x00")


@cache
def suite_for(group: Group) -> DKGSuite:
    """The :class:`DKGSuite` of ``group`` (secp256k1: the draft; others: ``/<name>`` tags)."""
    if group is SECP256K1:
        return DKGSuite(group, "")
    suite = DKGSuite(group, "/" + group.name)
    if len(suite.tag("certeq message")) > 33:
        raise ParameterError(f"group name {group.name!r} too long for the DKG's tags")
    return suite
