"""Adversarial FROST signers and coordinators, for both ciphersuites.

Each check of tmpc.protocols.frost gets a negative test asserting the error type, the exact
culprits (and so that no honest signer is blamed), and, where the protocol can recover, that
the honest signers then succeed without the culprit. Every signature produced here is also
checked by an independent verifier (PyNaCl / coincurve, see test_frost_vectors).
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterable
from dataclasses import dataclass

import pytest

from tests.test_frost_vectors import independent_verify
from tmpc.errors import (
    CryptoError,
    DecodeError,
    FaultyParticipantError,
    ParameterError,
    StateError,
)
from tmpc.group import ed25519, secp256k1
from tmpc.group.base import Ciphersuite, Point
from tmpc.protocols.frost import (
    SigningCommitments,
    SigningNonces,
    aggregate,
    commit,
    compute_binding_factors,
    compute_group_commitment,
    decode_commitments,
    decode_signature_share,
    encode_signature_share,
    sign,
    sign_local,
    verify,
    verify_signature_share,
)
from tmpc.sharing import shamir_split

SUITES = [secp256k1, ed25519]
suites = pytest.mark.parametrize("suite", SUITES, ids=["secp256k1", "ed25519"])

MSG = b"withdraw 1 BTC to bc1q..."


@dataclass
class Wallet:
    """A t-of-n key made by a dealer (the DKG is tested elsewhere)."""

    suite: Ciphersuite
    t: int
    shares: dict[int, int]
    PK: Point
    verifying: dict[int, Point]


def make_wallet(suite: Ciphersuite, t: int = 3, n: int = 5) -> Wallet:
    g = suite.group
    sk = g.random_scalar()
    shares = shamir_split(g, sk, t, list(range(1, n + 1)))
    return Wallet(suite, t, shares, g.base_mul(sk), {i: g.base_mul(s) for i, s in shares.items()})


@dataclass
class Round:
    nonces: dict[int, SigningNonces]
    clist: list[SigningCommitments]


def round_one(w: Wallet, signers: Iterable[int]) -> Round:
    nonces: dict[int, SigningNonces] = {}
    clist = []
    for i in sorted(signers):
        nonces[i], comm = commit(w.suite, i, w.shares[i])
        clist.append(comm)
    return Round(nonces, clist)


def round_two(w: Wallet, r: Round, msg: bytes = MSG) -> dict[int, int]:
    return {
        c.identifier: sign(
            w.suite,
            c.identifier,
            w.shares[c.identifier],
            w.PK,
            r.nonces[c.identifier],
            msg,
            r.clist,
            min_signers=w.t,
        )
        for c in r.clist
    }


def sign_with(w: Wallet, signers: Iterable[int], msg: bytes = MSG) -> bytes:
    r = round_one(w, signers)
    sig = aggregate(w.suite, r.clist, msg, w.PK, round_two(w, r, msg), w.verifying, min_signers=w.t)
    assert verify(w.suite, w.PK, msg, sig)
    assert independent_verify(w.suite, w.PK, msg, sig)
    return sig


# ---------------------------------------------------------------------------------------------
# Bad signature shares: blame exactly the culprits, then retry without them
# ---------------------------------------------------------------------------------------------


@suites
def test_bad_share_names_exactly_that_signer_and_honest_retry_succeeds(suite: Ciphersuite) -> None:
    w = make_wallet(suite)
    r = round_one(w, [1, 2, 4])
    shares = round_two(w, r)
    shares[2] = (shares[2] + 1) % suite.group.order  # signer 2 cheats
    with pytest.raises(FaultyParticipantError) as ei:
        aggregate(suite, r.clist, MSG, w.PK, shares, w.verifying)
    assert ei.value.culprits == (2,)
    # The honest ones are not named, and verify_signature_share agrees one by one.
    for c in r.clist:
        if c.identifier == 2:
            with pytest.raises(FaultyParticipantError) as e2:
                verify_signature_share(suite, 2, w.verifying[2], c, shares[2], r.clist, w.PK, MSG)
            assert e2.value.culprits == (2,)
        else:
            verify_signature_share(
                suite,
                c.identifier,
                w.verifying[c.identifier],
                c,
                shares[c.identifier],
                r.clist,
                w.PK,
                MSG,
            )
    # Without verifying shares the coordinator only learns that the aggregate is bad.
    with pytest.raises(CryptoError):
        aggregate(suite, r.clist, MSG, w.PK, shares)
    # The honest signers 1 and 4 retry with a new subset without 2, and succeed.
    sign_with(w, [1, 4, 5])


@suites
def test_two_bad_signers_are_both_named(suite: Ciphersuite) -> None:
    w = make_wallet(suite, t=3, n=5)
    r = round_one(w, [1, 2, 3, 5])
    shares = round_two(w, r)
    g = suite.group
    shares[3] = g.random_scalar()  # garbage
    shares[5] = (shares[5] + shares[1]) % g.order  # a well-formed but wrong share
    with pytest.raises(FaultyParticipantError) as ei:
        aggregate(suite, r.clist, MSG, w.PK, shares, w.verifying)
    assert ei.value.culprits == (3, 5)
    sign_with(w, [1, 2, 4])


@suites
def test_offsetting_bad_shares_are_both_named(suite: Ciphersuite) -> None:
    # Two colluders shift value between their shares: the sum (and the signature) would be
    # valid, but each share is wrong, and per-share verification names both.
    w = make_wallet(suite)
    r = round_one(w, [1, 2, 3])
    shares = round_two(w, r)
    g = suite.group
    shares[1] = (shares[1] + 5) % g.order
    shares[3] = (shares[3] - 5) % g.order
    with pytest.raises(FaultyParticipantError) as ei:
        aggregate(suite, r.clist, MSG, w.PK, shares, w.verifying)
    assert ei.value.culprits == (1, 3)


@suites
def test_share_not_below_order_names_sender(suite: Ciphersuite) -> None:
    w = make_wallet(suite)
    r = round_one(w, [2, 3, 5])
    shares: dict[int, int | bytes] = dict(round_two(w, r))
    g = suite.group
    q = g.order
    # Wire form: a scalar >= order (its own value + q still fits in 32 bytes for both suites).
    big = shares[3]
    assert isinstance(big, int)
    too_big = (big + q) if big + q < 2**256 else q
    enc = too_big.to_bytes(32, "little" if suite is ed25519 else "big")
    with pytest.raises(FaultyParticipantError) as e1:
        decode_signature_share(suite, 3, enc)
    assert e1.value.culprits == (3,)
    shares[3] = enc
    with pytest.raises(FaultyParticipantError) as e2:
        aggregate(suite, r.clist, MSG, w.PK, shares, w.verifying)
    assert e2.value.culprits == (3,)
    # The same as an int, and as a share of the wrong length; all without verifying shares.
    for bad in (too_big, q, -1, encode_signature_share(suite, 1)[:-1], b""):
        shares[3] = bad
        with pytest.raises(FaultyParticipantError) as e3:
            aggregate(suite, r.clist, MSG, w.PK, shares)
        assert e3.value.culprits == (3,)


@suites
def test_malformed_and_wrong_shares_blamed_together(suite: Ciphersuite) -> None:
    w = make_wallet(suite)
    r = round_one(w, [1, 2, 3, 4])
    shares: dict[int, int | bytes] = dict(round_two(w, r))
    shares[1] = b"\xff" * 32  # not a scalar
    z4 = shares[4]
    assert isinstance(z4, int)
    shares[4] = (z4 + 1) % suite.group.order  # wrong
    with pytest.raises(FaultyParticipantError) as ei:
        aggregate(suite, r.clist, MSG, w.PK, shares, w.verifying)
    assert ei.value.culprits == (1, 4)


@suites
def test_share_set_must_equal_signer_set(suite: Ciphersuite) -> None:
    w = make_wallet(suite)
    r = round_one(w, [1, 2, 3])
    shares = round_two(w, r)
    missing = {i: z for i, z in shares.items() if i != 2}
    with pytest.raises(ParameterError):
        aggregate(suite, r.clist, MSG, w.PK, missing, w.verifying)
    extra = {**shares, 4: shares[1]}
    with pytest.raises(ParameterError):
        aggregate(suite, r.clist, MSG, w.PK, extra, w.verifying)
    no_vs = {i: p for i, p in w.verifying.items() if i != 3}
    with pytest.raises(ParameterError):
        aggregate(suite, r.clist, MSG, w.PK, shares, no_vs)
    # The right sets work.
    sig = aggregate(suite, r.clist, MSG, w.PK, shares, w.verifying)
    assert independent_verify(suite, w.PK, MSG, sig)


# ---------------------------------------------------------------------------------------------
# Nonces: single use, not copyable
# ---------------------------------------------------------------------------------------------


@suites
def test_nonce_reuse_raises(suite: Ciphersuite) -> None:
    w = make_wallet(suite)
    r = round_one(w, [1, 2, 3])
    sign(suite, 1, w.shares[1], w.PK, r.nonces[1], MSG, r.clist)
    assert r.nonces[1].consumed
    with pytest.raises(StateError):
        sign(suite, 1, w.shares[1], w.PK, r.nonces[1], MSG, r.clist)
    with pytest.raises(StateError):
        sign(suite, 1, w.shares[1], w.PK, r.nonces[1], b"another message", r.clist)
    with pytest.raises(StateError):
        _ = r.nonces[1].hiding_nonce
    with pytest.raises(StateError):
        _ = r.nonces[1].binding_nonce
    # Nothing secret in the repr.
    assert "consumed" in repr(r.nonces[1])


@suites
def test_nonces_cannot_be_copied_or_pickled(suite: Ciphersuite) -> None:
    w = make_wallet(suite)
    nonces, _ = commit(suite, 1, w.shares[1])
    for attempt in (
        lambda: copy.copy(nonces),
        lambda: copy.deepcopy(nonces),
        lambda: pickle.dumps(nonces),
        lambda: pickle.dumps(nonces, protocol=0),
        lambda: copy.copy(nonces._cell),
        lambda: pickle.dumps(nonces._cell),
    ):
        with pytest.raises(StateError):
            attempt()
    # The secret scalars never show in repr.
    text = repr(nonces)
    for secret in (nonces.hiding_nonce, nonces.binding_nonce):
        assert str(secret) not in text
        assert hex(secret)[2:] not in text
    assert not nonces.consumed


@suites
def test_failed_input_checks_leave_nonces_usable(suite: Ciphersuite) -> None:
    w = make_wallet(suite)
    r = round_one(w, [1, 2, 3])
    nonces = r.nonces[2]
    bad_calls = [
        (2, r.clist[:2], 3),  # fewer than min_signers
        (2, [], None),  # empty
        (2, [r.clist[0], r.clist[2]], None),  # signer missing
        (2, [r.clist[1], r.clist[0], r.clist[2]], None),  # unsorted
        (2, [r.clist[0], r.clist[1], r.clist[1], r.clist[2]], None),  # duplicate
        (3, r.clist, None),  # nonces of signer 2 used as signer 3
    ]
    for ident, clist, t in bad_calls:
        with pytest.raises(ParameterError):
            sign(suite, ident, w.shares[ident], w.PK, nonces, MSG, clist, min_signers=t)
        assert not nonces.consumed
    # The honest list still works afterwards.
    shares = round_two(w, r)
    sig = aggregate(suite, r.clist, MSG, w.PK, shares, w.verifying)
    assert independent_verify(suite, w.PK, MSG, sig)


@suites
def test_commitment_list_without_own_commitments_rejected(suite: Ciphersuite) -> None:
    # A coordinator swaps signer 2's commitments for fresh ones (e.g. to make it sign under
    # a nonce pair it did not choose): signer 2 refuses and keeps its nonces.
    w = make_wallet(suite)
    r = round_one(w, [1, 2, 3])
    _, forged = commit(suite, 2, w.shares[2])
    clist = [r.clist[0], forged, r.clist[2]]
    with pytest.raises(ParameterError):
        sign(suite, 2, w.shares[2], w.PK, r.nonces[2], MSG, clist)
    assert not r.nonces[2].consumed


# ---------------------------------------------------------------------------------------------
# Binding: every binding factor depends on the message and on every commitment
# ---------------------------------------------------------------------------------------------


@suites
def test_binding_factors_bind_message_and_every_commitment(suite: Ciphersuite) -> None:
    w = make_wallet(suite)
    r = round_one(w, [1, 3, 5])
    base = dict(compute_binding_factors(suite, w.PK, r.clist, MSG))
    other_msg = dict(compute_binding_factors(suite, w.PK, r.clist, MSG + b"?"))
    assert all(base[i] != other_msg[i] for i in base)
    for pos in range(3):
        _, fresh = commit(suite, r.clist[pos].identifier, w.shares[r.clist[pos].identifier])
        changed = list(r.clist)
        changed[pos] = fresh
        factors = dict(compute_binding_factors(suite, w.PK, changed, MSG))
        assert all(base[i] != factors[i] for i in base), pos
    # Only the binding half changed: still every factor changes.
    c = r.clist[1]
    _, fresh = commit(suite, c.identifier, w.shares[c.identifier])
    swapped = [r.clist[0], SigningCommitments(c.identifier, c.hiding, fresh.binding), r.clist[2]]
    factors = dict(compute_binding_factors(suite, w.PK, swapped, MSG))
    assert all(base[i] != factors[i] for i in base)
    # And the key: another group key changes them all too.
    other_pk = suite.group.base_mul(suite.group.random_scalar())
    factors = dict(compute_binding_factors(suite, other_pk, r.clist, MSG))
    assert all(base[i] != factors[i] for i in base)


@suites
def test_share_from_another_session_is_rejected(suite: Ciphersuite) -> None:
    w = make_wallet(suite)
    signers = [1, 2, 3]
    # Session A: message A.
    a = round_one(w, signers)
    shares_a = round_two(w, a, b"message A")
    # Session B: same signers, new commitments, message B; signer 2 replays its A share.
    b = round_one(w, signers)
    shares_b = round_two(w, b, b"message B")
    replay = {**shares_b, 2: shares_a[2]}
    with pytest.raises(FaultyParticipantError) as e1:
        aggregate(suite, b.clist, b"message B", w.PK, replay, w.verifying)
    assert e1.value.culprits == (2,)
    # Session C: the A commitments but another message (a coordinator replaying round one).
    with pytest.raises(FaultyParticipantError) as e2:
        aggregate(suite, a.clist, b"message C", w.PK, shares_a, w.verifying)
    assert e2.value.culprits == (1, 2, 3)
    with pytest.raises(FaultyParticipantError) as e3:
        verify_signature_share(
            suite, 2, w.verifying[2], b.clist[1], shares_a[2], b.clist, w.PK, b"message B"
        )
    assert e3.value.culprits == (2,)
    # Session B without the replay is fine.
    sig = aggregate(suite, b.clist, b"message B", w.PK, shares_b, w.verifying)
    assert independent_verify(suite, w.PK, b"message B", sig)


# ---------------------------------------------------------------------------------------------
# Malformed commitments and commitment lists
# ---------------------------------------------------------------------------------------------


def _bad_point_encodings(suite: Ciphersuite) -> dict[str, bytes]:
    if suite is secp256k1:
        p = 2**256 - 2**32 - 977
        return {
            "identity": bytes(33),
            "off-curve": b"\x02" + (5).to_bytes(32, "big"),  # x^3+7 = 132 is not a square
            "non-canonical x": b"\x02" + (p + 1).to_bytes(32, "big"),
            "uncompressed prefix": b"\x04" + bytes(32),
        }
    p = 2**255 - 19
    return {
        "identity": b"\x01" + bytes(31),
        "off-curve": (2).to_bytes(32, "little"),  # y = 2 has no x on edwards25519
        "non-canonical y": (p + 1).to_bytes(32, "little"),
        "small order (0, -1)": (p - 1).to_bytes(32, "little"),
    }


@suites
def test_malformed_commitments_rejected_naming_sender(suite: Ciphersuite) -> None:
    w = make_wallet(suite)
    g = suite.group
    _, good = commit(suite, 4, w.shares[4])
    wire = good.to_bytes()
    ns, ne = g.scalar_len, g.element_len
    assert decode_commitments(suite, 4, wire) == good
    for name, bad in _bad_point_encodings(suite).items():
        for data in (wire[:ns] + bad + wire[ns + ne :], wire[: ns + ne] + bad):
            with pytest.raises(DecodeError):
                SigningCommitments.from_bytes(suite, data)
            with pytest.raises(FaultyParticipantError) as ei:
                decode_commitments(suite, 4, data)
            assert ei.value.culprits == (4,), name
    zero_id = g.encode_scalar(0) + wire[ns:]
    big_id = (b"\xff" * ns) + wire[ns:]
    for data in (wire[:-1], wire + b"\x00", b"", zero_id, big_id):
        with pytest.raises(FaultyParticipantError) as ei:
            decode_commitments(suite, 4, data)
        assert ei.value.culprits == (4,)
    # Commitments claiming another identifier than the authenticated sender.
    with pytest.raises(FaultyParticipantError) as ei:
        decode_commitments(suite, 3, wire)
    assert ei.value.culprits == (3,)


@suites
def test_identity_or_foreign_points_in_commitments_rejected(suite: Ciphersuite) -> None:
    g = suite.group
    other = ed25519.group if suite is secp256k1 else secp256k1.group
    P = g.base_mul(5)
    with pytest.raises(ParameterError):
        SigningCommitments(1, g.identity(), P)
    with pytest.raises(ParameterError):
        SigningCommitments(1, P, g.identity())
    with pytest.raises(ParameterError):
        SigningCommitments(1, P, other.base_mul(5))
    for bad_id in (0, -1, g.order, True):
        with pytest.raises(ParameterError):
            SigningCommitments(bad_id, P, P)


@suites
def test_aggregate_rejects_bad_lists(suite: Ciphersuite) -> None:
    w = make_wallet(suite)
    r = round_one(w, [1, 2, 3])
    shares = round_two(w, r)
    c1, c2, c3 = r.clist
    for clist in ([c2, c1, c3], [c1, c1, c2, c3], [], [c1, c2]):
        with pytest.raises(ParameterError):
            aggregate(suite, clist, MSG, w.PK, shares, w.verifying)
    with pytest.raises(ParameterError):
        aggregate(suite, r.clist, MSG, w.PK, shares, w.verifying, min_signers=4)


# ---------------------------------------------------------------------------------------------
# Threshold: t-1 signers cannot sign
# ---------------------------------------------------------------------------------------------


@suites
@pytest.mark.parametrize(("t", "n"), [(2, 3), (3, 5)])
def test_fewer_than_t_signers_cannot_sign(suite: Ciphersuite, t: int, n: int) -> None:
    w = make_wallet(suite, t, n)
    g = suite.group
    signers = list(range(2, t + 1))  # t - 1 signers
    r = round_one(w, signers)
    with pytest.raises(ParameterError):
        sign(suite, 2, w.shares[2], w.PK, r.nonces[2], MSG, r.clist, min_signers=t)
    assert not r.nonces[2].consumed
    # Signing without the threshold check gives shares that each verify individually ...
    shares = {i: sign(suite, i, w.shares[i], w.PK, r.nonces[i], MSG, r.clist) for i in signers}
    for c in r.clist:
        verify_signature_share(
            suite,
            c.identifier,
            w.verifying[c.identifier],
            c,
            shares[c.identifier],
            r.clist,
            w.PK,
            MSG,
        )
    # ... but the aggregate (built by hand here) is no signature under the group key.
    R = compute_group_commitment(suite, r.clist, compute_binding_factors(suite, w.PK, r.clist, MSG))
    forged = R.encode() + g.encode_scalar(sum(shares.values()))
    assert not verify(suite, w.PK, MSG, forged)
    assert not independent_verify(suite, w.PK, MSG, forged)
    # aggregate refuses it with and without verifying shares; sign_local too.
    with pytest.raises(ParameterError):
        aggregate(suite, r.clist, MSG, w.PK, shares, w.verifying)
    with pytest.raises(CryptoError):
        aggregate(suite, r.clist, MSG, w.PK, shares)
    with pytest.raises(ParameterError):
        sign_local(suite, {i: w.shares[i] for i in signers}, w.PK, MSG)
    with pytest.raises(ParameterError):
        sign_local(suite, {i: w.shares[i] for i in signers}, w.PK, MSG, min_signers=t)


@suites
def test_sign_local_blames_with_verifying_shares(suite: Ciphersuite) -> None:
    # sign_local against a verifying share that is not signer 3's: signer 3 is named.
    w = make_wallet(suite)
    shares = {i: w.shares[i] for i in (1, 3, 4)}
    wrong = {**w.verifying, 3: w.verifying[2]}
    with pytest.raises(FaultyParticipantError) as ei:
        sign_local(suite, shares, w.PK, MSG, verifying_shares=wrong)
    assert ei.value.culprits == (3,)
    sig = sign_local(suite, shares, w.PK, MSG, verifying_shares=w.verifying, min_signers=w.t)
    assert verify(suite, w.PK, MSG, sig)
    assert independent_verify(suite, w.PK, MSG, sig)


@suites
def test_shares_of_another_key_rejected_by_sign_local(suite: Ciphersuite) -> None:
    w = make_wallet(suite)
    other = make_wallet(suite)
    with pytest.raises(ParameterError):
        sign_local(suite, {i: other.shares[i] for i in (1, 2, 3)}, w.PK, MSG)


# ---------------------------------------------------------------------------------------------
# Verify, and no secrets in error texts
# ---------------------------------------------------------------------------------------------


@suites
def test_verify_rejects_malformed_signatures(suite: Ciphersuite) -> None:
    w = make_wallet(suite)
    sig = sign_with(w, [1, 2, 3])
    g = suite.group
    ne = g.element_len
    bad_z = sig[:ne] + (g.order).to_bytes(32, "little" if suite is ed25519 else "big")
    candidates = [sig[:-1], sig + b"\x00", b"", bad_z]
    candidates += [bad + sig[ne:] for bad in _bad_point_encodings(suite).values()]
    for bad in candidates:
        assert not verify(suite, w.PK, MSG, bad)
        assert not independent_verify(suite, w.PK, MSG, bad)
    # z + order would be accepted by a lax verifier that reduces z; both verifiers refuse it.
    z = g.decode_scalar(sig[ne:])
    if z + g.order < 2**253:
        lax = sig[:ne] + (z + g.order).to_bytes(32, "little" if suite is ed25519 else "big")
        assert not verify(suite, w.PK, MSG, lax)
        assert not independent_verify(suite, w.PK, MSG, lax)
    with pytest.raises(ParameterError):
        verify(suite, g.identity(), MSG, sig)


@suites
def test_error_texts_carry_no_secrets(suite: Ciphersuite) -> None:
    w = make_wallet(suite)
    r = round_one(w, [1, 2, 3])
    shares = round_two(w, r)
    secrets = [w.shares[i] for i in (1, 2, 3)]
    texts: list[str] = []
    bad = {**shares, 1: (shares[1] + 1) % suite.group.order}
    with pytest.raises(FaultyParticipantError) as e1:
        aggregate(suite, r.clist, MSG, w.PK, bad, w.verifying)
    texts.append(str(e1.value))
    with pytest.raises(StateError) as e2:
        sign(suite, 1, w.shares[1], w.PK, r.nonces[1], MSG, r.clist)
    texts.append(str(e2.value))
    nonces, _ = commit(suite, 2, w.shares[2])
    with pytest.raises(ParameterError) as e3:
        sign(suite, 2, w.shares[2], w.PK, nonces, MSG, r.clist)  # not its commitments
    texts.append(str(e3.value))
    for text in texts:
        for s in secrets:
            for form in (str(s), f"{s:x}", suite.group.encode_scalar(s).hex()):
                assert form not in text
