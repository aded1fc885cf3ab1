"""Group layer: arithmetic against an independent oracle, strict decoding."""

from __future__ import annotations

import coincurve
import pytest
from nacl import bindings as sodium

from tmpc.errors import DecodeError
from tmpc.group import ED25519, SECP256K1, Group

GROUPS = [SECP256K1, ED25519]


@pytest.mark.parametrize("g", GROUPS, ids=lambda g: g.name)
def test_arithmetic_laws(g: Group) -> None:
    a, b = g.random_scalar(), g.random_scalar()
    A, B = g.base_mul(a), g.base_mul(b)
    assert A + B == g.base_mul(a + b)
    assert A - B == g.base_mul(a - b)
    assert (A - A).is_identity()
    assert A * b == B * a == g.base_mul(a * b)
    assert (A * 0).is_identity()
    assert g.identity() + A == A
    assert g.decode_point(A.encode()) == A
    assert g.decode_scalar(g.encode_scalar(a)) == a
    assert -A + A == g.identity()
    assert (-A).encode() != A.encode()
    assert A * (g.order - 1) == -A


def test_secp256k1_matches_coincurve() -> None:
    k = SECP256K1.random_scalar()
    assert SECP256K1.base_mul(k).encode() == coincurve.PrivateKey.from_int(k).public_key.format()


def test_ed25519_matches_libsodium() -> None:
    k = ED25519.random_scalar()
    assert ED25519.base_mul(k).encode() == sodium.crypto_scalarmult_ed25519_base_noclamp(
        k.to_bytes(32, "little")
    )


@pytest.mark.parametrize("g", GROUPS, ids=lambda g: g.name)
def test_scalar_out_of_range_rejected(g: Group) -> None:
    big = g.order.to_bytes(32, "big" if g is SECP256K1 else "little")
    with pytest.raises(DecodeError):
        g.decode_scalar(big)
    with pytest.raises(DecodeError):
        g.decode_scalar(b"\x00" * 31)


@pytest.mark.parametrize("g", GROUPS, ids=lambda g: g.name)
def test_identity_has_no_encoding(g: Group) -> None:
    from tmpc.errors import InputError

    with pytest.raises(InputError):
        g.identity().encode()
