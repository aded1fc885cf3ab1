"""BIP340 Schnorr signatures over secp256k1 (single-key), on the tmpc group layer.

Used for host-key signatures and proofs of possession inside the DKG and as tmpc's own
verifier of threshold BIP340 signatures. Messages may be of any length (BIP340 as amended for
variable-length messages). Signing draws auxiliary randomness from :mod:`secrets` unless the
caller passes ``aux_rand`` (tests and vectors).
"""

from __future__ import annotations

import secrets

import coincurve

from tmpc.encoding import expect_len, tagged_hash, xor_bytes
from tmpc.errors import CryptoError, DecodeError, ParameterError
from tmpc.group.secp256k1 import N_ORDER, P_FIELD, SECP256K1

__all__ = [
    "pubkey_gen",
    "schnorr_sign",
    "schnorr_verify",
    "schnorr_verify_or_raise",
    "schnorr_verify_reference",
]


def pubkey_gen(seckey: bytes) -> bytes:
    """BIP340 ``PubKey(sk)``: the 32-byte x-only public key of a 32-byte secret key."""
    d0 = int.from_bytes(expect_len(seckey, 32, "secret key"), "big")
    if not 1 <= d0 < N_ORDER:
        raise ParameterError("secret key out of range")
    return SECP256K1.base_mul(d0).xonly()


def schnorr_sign(msg: bytes, seckey: bytes, aux_rand: bytes | None = None) -> bytes:
    """BIP340 ``Sign(sk, m)``: a 64-byte signature ``bytes(R) || bytes((k + e*d) mod n)``.

    **Must not** be given attacker-chosen ``aux_rand`` together with a fault-injection capable
    adversary; by default 32 fresh bytes come from :mod:`secrets`.
    """
    if aux_rand is None:
        aux_rand = secrets.token_bytes(32)
    expect_len(aux_rand, 32, "aux_rand")
    d0 = int.from_bytes(expect_len(seckey, 32, "secret key"), "big")
    if not 1 <= d0 < N_ORDER:
        raise ParameterError("secret key out of range")
    P = SECP256K1.base_mul(d0)
    # > Let d = d' if has_even_y(P), otherwise let d = n - d'.
    d = d0 if P.has_even_y() else N_ORDER - d0
    # > Let t be the byte-wise xor of bytes(d) and hash_BIP0340/aux(a).
    t = xor_bytes(d.to_bytes(32, "big"), tagged_hash("BIP0340/aux", aux_rand))
    # > Let rand = hash_BIP0340/nonce(t || bytes(P) || m).
    rand = tagged_hash("BIP0340/nonce", t + P.xonly() + msg)
    k0 = int.from_bytes(rand, "big") % N_ORDER
    if k0 == 0:
        raise ParameterError("BIP340 nonce is zero (negligible probability)")
    R = SECP256K1.base_mul(k0)
    # > Let k = k' if has_even_y(R), otherwise let k = n - k'.
    k = k0 if R.has_even_y() else N_ORDER - k0
    # > Let e = int(hash_BIP0340/challenge(bytes(R) || bytes(P) || m)) mod n.
    e = int.from_bytes(tagged_hash("BIP0340/challenge", R.xonly() + P.xonly() + msg), "big")
    e %= N_ORDER
    sig = R.xonly() + ((k + e * d) % N_ORDER).to_bytes(32, "big")
    if not schnorr_verify(msg, P.xonly(), sig):
        raise CryptoError("signature self-check failed")
    return sig


def schnorr_verify(msg: bytes, pubkey: bytes, sig: bytes) -> bool:
    """BIP340 ``Verify(pk, m, sig)`` for a 32-byte x-only key and a 64-byte signature.

    Runs libsecp256k1's ``secp256k1_schnorrsig_verify`` (through coincurve), which accepts
    messages of any length. :func:`schnorr_verify_reference` is the same algorithm written
    step by step over tmpc's group layer; the test suite checks both against the BIP340 vectors.
    """
    if len(pubkey) != 32 or len(sig) != 64:
        return False
    try:
        key = coincurve.PublicKeyXOnly(pubkey)
    except ValueError:
        return False
    return bool(key.verify(sig, msg))


def schnorr_verify_reference(msg: bytes, pubkey: bytes, sig: bytes) -> bool:
    """BIP340 ``Verify`` step by step over tmpc's group layer (see :func:`schnorr_verify`)."""
    if len(pubkey) != 32 or len(sig) != 64:
        return False
    try:
        P = SECP256K1.lift_x(pubkey)
    except DecodeError:
        return False
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    # > Fail if r ≥ p. Fail if s ≥ n.
    if r >= P_FIELD or s >= N_ORDER:
        return False
    # > Let e = int(hash_BIP0340/challenge(bytes(r) || bytes(P) || m)) mod n.
    e = int.from_bytes(tagged_hash("BIP0340/challenge", sig[:32] + pubkey + msg), "big")
    e %= N_ORDER
    # > Let R = s⋅G - e⋅P. Fail if is_infinite(R), not has_even_y(R) or x(R) ≠ r.
    R = SECP256K1.base_mul(s) - P * e
    return (not R.is_identity()) and R.has_even_y() and R.xonly() == sig[:32]


def schnorr_verify_or_raise(msg: bytes, pubkey: bytes, sig: bytes) -> None:
    """Like :func:`schnorr_verify` but raises an opaque :class:`CryptoError` on failure."""
    if not schnorr_verify(msg, pubkey, sig):
        raise CryptoError("invalid signature")
