"""Properties of whole DKG runs, t-of-n up to 7-of-10, over secp256k1 and Ed25519.

Public results are re-derived with independent libraries (coincurve for secp256k1, libsodium
via PyNaCl for Ed25519); secrets are interpolated here, in the test, never by the library.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import coincurve
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl import bindings as sodium

from tmpc.encoding import tagged_hash
from tmpc.group import ED25519, SECP256K1, Group
from tmpc.protocols import dkg
from tmpc.protocols.dkg import chilldkg

GROUPS = [pytest.param(SECP256K1, id="secp256k1"), pytest.param(ED25519, id="ed25519")]


def det_random(seed: bytes) -> Callable[[int], bytes]:
    """A deterministic stand-in for ``secrets.token_bytes`` (reproducible examples)."""
    counter = iter(range(1 << 30))

    def rand(k: int) -> bytes:
        return hashlib.shake_256(seed + next(counter).to_bytes(4, "big")).digest(k)

    return rand


def hostkeys(seed: bytes, n: int) -> list[bytes]:
    return [hashlib.sha256(b"host" + seed + bytes([i])).digest() for i in range(n)]


def independent_base_mul(group: Group, k: int) -> bytes:
    """``k*G`` encoded, computed by coincurve / libsodium rather than tmpc.group."""
    if group is SECP256K1:
        return bytes(coincurve.PrivateKey(k.to_bytes(32, "big")).public_key.format(True))
    return bytes(sodium.crypto_scalarmult_ed25519_base_noclamp(k.to_bytes(32, "little")))


def interpolate_at_zero(q: int, shares: dict[int, int]) -> int:
    """Lagrange interpolation of ``f(0)`` (a test-local oracle, independent of tmpc.sharing)."""
    total = 0
    for x_i, y_i in shares.items():
        num, den = 1, 1
        for x_j in shares:
            if x_j != x_i:
                num = num * x_j % q
                den = den * (x_j - x_i) % q
        total += y_i * num * pow(den, -1, q)
    return total % q


def check_certificate(params: dkg.SessionParams, recovery_data: bytes) -> None:
    n = params.n
    cert, eq_input = recovery_data[-64 * n :], recovery_data[: -64 * n]
    for i, pk in enumerate(params.hostpubkeys):
        msg = chilldkg.certeq_message(params.suite, eq_input, i)
        assert coincurve.PublicKeyXOnly(pk[1:]).verify(cert[64 * i : 64 * i + 64], msg)


@st.composite
def sessions(draw: st.DrawFn) -> tuple[int, int, bytes, list[int]]:
    n = draw(st.integers(min_value=1, max_value=10))
    t = draw(st.integers(min_value=1, max_value=min(n, 7)))
    seed = draw(st.binary(min_size=8, max_size=8))
    order = draw(st.permutations(list(range(n))))
    return t, n, seed, order


@pytest.mark.parametrize("group", GROUPS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=sessions())
def test_dkg_run_properties(group: Group, case: tuple[int, int, bytes, list[int]]) -> None:
    t, n, seed, order = case
    sks = hostkeys(seed, n)
    results = dkg.run_dkg(group, sks, t, random=det_random(seed))
    assert [r.index for r in results] == list(range(n))
    assert [r.identifier for r in results] == list(range(1, n + 1))
    pk = results[0].threshold_pubkey
    pubshares = results[0].pubshares

    # Everyone agrees on the threshold key, the pubshares and the recovery data.
    for r in results:
        assert r.threshold_pubkey == pk
        assert r.pubshares == pubshares
        assert r.recovery_data == results[0].recovery_data
        assert r.threshold == t
        # pubshares[i] == secshare_i * G, by an independent implementation.
        assert independent_base_mul(group, r.secshare) == pubshares[r.index].encode()
        # Secrets stay out of reprs.
        assert str(r.secshare) not in repr(r)

    # Any t shares interpolate to the secret behind the threshold key; t-1 do not.
    q = group.order
    subset = {results[i].identifier: results[i].secshare for i in order[:t]}
    secret = interpolate_at_zero(q, subset)
    assert independent_base_mul(group, secret) == pk.encode()
    if t >= 2:
        fewer = dict(list(subset.items())[: t - 1])
        assert independent_base_mul(group, interpolate_at_zero(q, fewer)) != pk.encode()

    # Recovery reproduces every output, for each participant and for the coordinator.
    params = dkg.SessionParams(tuple(dkg.hostpubkey_gen(sk) for sk in sks), t, group)
    check_certificate(params, results[0].recovery_data)
    for sk, r in zip(sks, results, strict=True):
        assert dkg.recover(group, sk, r.recovery_data) == r
    public = dkg.recover(group, None, results[0].recovery_data)
    assert (public.threshold_pubkey, public.pubshares) == (pk, pubshares)

    # The threshold key is the committed secret key plus the group's tweak: on secp256k1 the
    # draft's unspendable Taproot tweak P + hash_TapTweak(x(P))*G (no hidden script path),
    # recomputed here with coincurve from the commitment in the recovery data.
    m = group.element_len
    committed = results[0].recovery_data[4 : 4 + m]
    if group is SECP256K1:
        tweak = tagged_hash("TapTweak", committed[1:])
        expected = coincurve.PublicKey(committed).add(tweak).format(True)
        assert pk.encode() == expected
    else:
        assert pk.encode() == committed


@pytest.mark.parametrize("group", GROUPS)
def test_sessions_are_independent(group: Group) -> None:
    """Two runs with the same host keys but fresh randomness give unrelated keys."""
    sks = hostkeys(b"same", 3)
    a = dkg.run_dkg(group, sks, 2, random=det_random(b"one"))
    b = dkg.run_dkg(group, sks, 2, random=det_random(b"two"))
    assert a[0].threshold_pubkey != b[0].threshold_pubkey
    assert {r.secshare for r in a}.isdisjoint({r.secshare for r in b})


@pytest.mark.parametrize("group", GROUPS)
def test_default_randomness_and_params_hash(group: Group) -> None:
    sks = hostkeys(b"default", 3)
    results = dkg.run_dkg(group, sks, 2)
    assert len({r.threshold_pubkey for r in results}) == 1
    params = dkg.SessionParams(tuple(dkg.hostpubkey_gen(sk) for sk in sks), 2, group)
    other = dkg.SessionParams(params.hostpubkeys, 2, ED25519 if group is SECP256K1 else SECP256K1)
    # The parameters hash also separates the target groups.
    assert dkg.params_hash(params) != dkg.params_hash(other)
    assert dkg.params_id(params) == dkg.params_hash(params)
