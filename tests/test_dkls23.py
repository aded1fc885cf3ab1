"""DKLs23 threshold ECDSA signing (tmpc.protocols.ecdsa.dkls23), honest runs and properties.

Every signature is checked by independent verifiers: libsecp256k1 through coincurve (DER
verify with the raw digest, and key recovery from the recovery id) and eth_keys (recovery of
the same public key). The real OT-based multiplication runs end to end. Adversarial signers
are in test_dkls23_adversarial.py.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import pickle
import secrets
from dataclasses import dataclass

import coincurve
import pytest
from coincurve.ecdsa import cdata_to_der, deserialize_compact
from eth_keys.datatypes import Signature as EthSignature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tmpc.errors import DecodeError, ParameterError, ProtocolError, StateError
from tmpc.group import SECP256K1
from tmpc.group.base import Point
from tmpc.protocols.ecdsa.dkls23 import (
    EcdsaPairwise,
    Presignature,
    PresignRound1Msg,
    PresignRound2Msg,
    SignatureShare,
    combine_signature_shares,
    pairwise_setup_local,
    presign_local,
    presign_round1,
    rerandomizer,
    sign_local,
    sign_share,
    sign_with_presignatures,
)
from tmpc.protocols.ecdsa.zero_share import combine_seeds, seed_commitment, zero_share
from tmpc.sharing import lagrange_coefficients, shamir_split

G = SECP256K1
N = G.order


@dataclass
class Wallet:
    """A t-of-n key from a dealer (the DKG is tested elsewhere) with real pairwise setups."""

    t: int
    n: int
    x: int
    PK: Point
    shares: dict[int, int]
    pairwise: dict[int, EcdsaPairwise]


def make_wallet(t: int, n: int, pairwise_ids: list[int] | None = None) -> Wallet:
    """A dealt key; pairwise material for ``pairwise_ids`` (default: all n parties)."""
    x = G.random_scalar()
    ids = list(range(1, n + 1))
    shares = shamir_split(G, x, t, ids)
    pairwise = pairwise_setup_local(pairwise_ids or ids, secrets.token_bytes(32))
    return Wallet(t, n, x, G.base_mul(x), shares, pairwise)


@pytest.fixture(scope="module")
def w35() -> Wallet:
    return make_wallet(3, 5)


@pytest.fixture(scope="module")
def w23() -> Wallet:
    return make_wallet(2, 3)


def digest_of(msg: bytes) -> bytes:
    return hashlib.sha256(msg).digest()


def independent_verify(pk: Point, digest: bytes, r: int, s: int, recid: int) -> None:
    """coincurve (verify + recover) and eth_keys (recover) agree the signature is valid."""
    assert 0 < r < N and 0 < s <= N // 2, "not a low-s signature"
    assert recid in (0, 1, 2, 3)
    compact = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    der = cdata_to_der(deserialize_compact(compact))
    pk33 = pk.encode()
    assert coincurve.PublicKey(pk33).verify(der, digest, hasher=None)
    rec = coincurve.PublicKey.from_signature_and_message(
        compact + bytes([recid]), digest, hasher=None
    )
    assert rec.format(True) == pk33
    eth_sig = EthSignature(vrs=(recid, r, s))
    eth_pub = eth_sig.recover_public_key_from_msg_hash(digest)
    assert eth_pub.to_compressed_bytes() == pk33


def test_zero_shares_sum_to_zero() -> None:
    ids = [1, 2, 3, 4, 5]
    sid = secrets.token_bytes(32)
    contrib = {(i, j): secrets.token_bytes(32) for i in ids for j in ids if i != j}
    seeds = {
        i: {j: combine_seeds(sid, i, contrib[i, j], j, contrib[j, i]) for j in ids if j != i}
        for i in ids
    }
    # both ends derive the same seed
    assert all(seeds[i][j] == seeds[j][i] for i in ids for j in ids if i != j)
    for subset in ([1, 2], [1, 3, 5], [2, 3, 4, 5]):
        zs = [zero_share(i, seeds[i], subset, b"ctx") for i in subset]
        assert sum(zs) % N == 0
        assert all(z != 0 for z in zs)
    # another context gives another sharing
    assert zero_share(1, seeds[1], [1, 2], b"ctx") != zero_share(1, seeds[1], [1, 2], b"ctx2")
    # the commitment binds session, sender and receiver
    c = contrib[1, 2]
    assert seed_commitment(sid, 1, 2, c) != seed_commitment(sid, 2, 1, c)
    assert seed_commitment(sid, 1, 2, c) != seed_commitment(sid + b"x", 1, 2, c)
    with pytest.raises(ParameterError):
        zero_share(1, {}, [1, 2], b"ctx")
    with pytest.raises(ParameterError):
        zero_share(3, seeds[3], [1, 2], b"ctx")


@pytest.mark.parametrize("tn", [(3, 5), (2, 3)], ids=["3-of-5", "2-of-3"])
def test_every_t_subset_signs(tn: tuple[int, int], w35: Wallet, w23: Wallet) -> None:
    w = w35 if tn == (3, 5) else w23
    for subset in itertools.combinations(range(1, w.n + 1), w.t):
        digest = digest_of(b"subset %r" % (subset,))
        r, s, v = sign_local(w.shares, w.PK, w.pairwise, subset, digest, threshold=w.t)
        independent_verify(w.PK, digest, r, s, v)


def test_more_than_t_signers(w35: Wallet) -> None:
    digest = digest_of(b"four of five")
    for subset in ([1, 2, 3, 4], [1, 2, 3, 4, 5]):
        independent_verify(
            w35.PK, digest, *sign_local(w35.shares, w35.PK, w35.pairwise, subset, digest)
        )


def test_high_digest_and_zero_digest(w23: Wallet) -> None:
    for digest in (b"\xff" * 32, bytes(32), N.to_bytes(32, "big")):
        independent_verify(
            w23.PK, digest, *sign_local(w23.shares, w23.PK, w23.pairwise, [1, 3], digest)
        )


def test_hd_tweak_verifies_under_tweaked_key(w35: Wallet) -> None:
    d = G.random_scalar()
    digest = digest_of(b"child key")
    r, s, v = sign_local(w35.shares, w35.PK, w35.pairwise, [2, 4, 5], digest, tweak=d)
    child = w35.PK + G.base_mul(d)
    independent_verify(child, digest, r, s, v)
    compact = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    der = cdata_to_der(deserialize_compact(compact))
    assert not coincurve.PublicKey(w35.PK.encode()).verify(der, digest, hasher=None)


def test_presignature_is_rerandomised(w35: Wallet) -> None:
    digest, tweak = digest_of(b"rerandomise"), 7
    presigs = presign_local(w35.shares, w35.PK, w35.pairwise, [1, 2, 3], tweak=tweak)
    info = presigs[1].info
    assert all(p.info == info for p in presigs.values()) and info.tweak == tweak
    delta = rerandomizer(info, digest, tweak)
    assert delta != 0
    r, s, v = sign_with_presignatures(presigs, w35.PK, digest, tweak=tweak)
    independent_verify(w35.PK + G.base_mul(tweak), digest, r, s, v)
    r_plain = int.from_bytes(info.R.encode()[1:], "big") % N
    r_prime = int.from_bytes((info.R + G.base_mul(delta)).encode()[1:], "big") % N
    assert r != r_plain  # the nonce point of the signature is not the presignature's R
    assert r == r_prime  # it is R + delta*G
    # delta depends on the digest and the tweak
    assert rerandomizer(info, digest_of(b"other"), tweak) != delta
    assert rerandomizer(info, digest, tweak + 1) != delta


def test_presign_then_sign_sans_io_with_combiner(w35: Wallet) -> None:
    presigs = presign_local(w35.shares, w35.PK, w35.pairwise, [1, 3, 5])
    info = presigs[1].info
    digest = digest_of(b"online round")
    shares = {i: sign_share(p, w35.PK, digest).to_bytes() for i, p in presigs.items()}
    assert all(len(b) == 128 for b in shares.values())
    # used up, and what is left holds no secret
    assert all(p.consumed and p.to_bytes().endswith(bytes(96)) for p in presigs.values())
    independent_verify(w35.PK, digest, *combine_signature_shares(info, digest, shares))


def test_presignature_storage_round_trip(w35: Wallet) -> None:
    presigs = presign_local(w35.shares, w35.PK, w35.pairwise, [2, 3, 4])
    stored = {i: p.to_bytes() for i, p in presigs.items()}
    assert all(len(b) == 262 + 32 * 3 for b in stored.values())
    restored = {i: Presignature.from_bytes(b) for i, b in stored.items()}
    digest = digest_of(b"after restart")
    independent_verify(w35.PK, digest, *sign_with_presignatures(restored, w35.PK, digest))


def test_presignature_single_use(w35: Wallet) -> None:
    presigs = presign_local(w35.shares, w35.PK, w35.pairwise, [1, 2, 5])
    digest = digest_of(b"first")
    independent_verify(w35.PK, digest, *sign_with_presignatures(presigs, w35.PK, digest))
    with pytest.raises(StateError):
        sign_with_presignatures(presigs, w35.PK, digest_of(b"second"))
    with pytest.raises(StateError):
        sign_share(presigs[1], w35.PK, digest_of(b"second"))
    # the consumed mark survives storage: a restored consumed presignature is still refused
    restored = Presignature.from_bytes(presigs[2].to_bytes())
    assert restored.consumed and restored.to_bytes().endswith(bytes(96))
    with pytest.raises(StateError):
        sign_share(restored, w35.PK, digest_of(b"second"))


def test_one_consumed_presignature_consumes_none_of_the_others(w35: Wallet) -> None:
    presigs = presign_local(w35.shares, w35.PK, w35.pairwise, [1, 2, 3])
    sign_share(presigs[3], w35.PK, digest_of(b"leaked share"))
    with pytest.raises(StateError):
        sign_with_presignatures(presigs, w35.PK, digest_of(b"m"))
    assert not presigs[1].consumed and not presigs[2].consumed


def test_presignature_cannot_be_copied_or_pickled(w35: Wallet) -> None:
    p = presign_local(w35.shares, w35.PK, w35.pairwise, [1, 2, 3])[1]
    for dup in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(StateError):
            dup(p)
    text = repr(p)
    for secret in p._secret.peek():
        assert str(secret) not in text and f"{secret:x}" not in text


def test_sign_share_refuses_a_foreign_tweak(w35: Wallet) -> None:
    """The core pins a presignature to the tweak (BIP32 path) it was made for."""
    made_for = 11
    presigs = presign_local(w35.shares, w35.PK, w35.pairwise, [1, 2, 3], tweak=made_for)
    digest = digest_of(b"late path change")
    for foreign in (0, 12):
        with pytest.raises(ParameterError, match="another key derivation"):
            sign_share(presigs[1], w35.PK, digest, tweak=foreign)
        with pytest.raises(ParameterError, match="another key derivation"):
            sign_with_presignatures(presigs, w35.PK, digest, tweak=foreign)
    # nothing was consumed by the refusals; the right tweak signs under PK + tweak*G
    assert not any(p.consumed for p in presigs.values())
    shares = {i: sign_share(p, w35.PK, digest, tweak=made_for) for i, p in presigs.items()}
    info = presigs[1].info
    with pytest.raises(ParameterError, match="another key derivation"):
        combine_signature_shares(info, digest, shares, tweak=0)
    sig = combine_signature_shares(info, digest, shares)
    independent_verify(w35.PK + G.base_mul(made_for), digest, *sig)
    # the tweak is bound into the session: the same session id with another tweak differs
    assert (
        made_for.to_bytes(32, "big")
        in presign_local(w35.shares, w35.PK, w35.pairwise, [1, 2, 3], tweak=made_for)[1].to_bytes()
    )


def test_dataclass_replace_shares_the_single_use(w35: Wallet) -> None:
    """``dataclasses.replace`` makes no second live presignature (the holder is shared)."""
    presigs = presign_local(w35.shares, w35.PK, w35.pairwise, [1, 2, 3])
    twins = {i: dataclasses.replace(p) for i, p in presigs.items()}
    digest = digest_of(b"original")
    independent_verify(w35.PK, digest, *sign_with_presignatures(presigs, w35.PK, digest))
    assert all(t.consumed for t in twins.values())
    with pytest.raises(StateError):
        sign_with_presignatures(twins, w35.PK, digest_of(b"the twin's digest"))
    with pytest.raises(StateError):
        sign_share(twins[1], w35.PK, digest_of(b"the twin's digest"))


def test_presignature_decoding_is_strict(w35: Wallet) -> None:
    data = presign_local(w35.shares, w35.PK, w35.pairwise, [1, 2, 3])[1].to_bytes()
    for bad in (
        data[:-1],
        data + b"\x00",
        b"\x01" + data[1:],  # the older format, not bound to a tweak
        b"\x03" + data[1:],
        data[:1] + b"\x02" + data[2:],
        data[:1] + b"\x01" + data[2:],  # marked consumed but holds scalars
        data[:-32] + N.to_bytes(32, "big"),  # v_i not below n
    ):
        with pytest.raises(DecodeError):
            Presignature.from_bytes(bad)


def test_pairwise_storage_round_trip(w23: Wallet) -> None:
    # a fresh setup, so the stored material has never run a session
    pw = pairwise_setup_local([1, 2, 3], secrets.token_bytes(32))
    restored = {i: EcdsaPairwise.from_bytes(p.to_bytes()) for i, p in pw.items()}
    assert all(restored[i].peers == pw[i].peers for i in pw)
    assert all(dict(restored[i].zero_seeds) == dict(pw[i].zero_seeds) for i in pw)
    digest = digest_of(b"restored pairwise")
    independent_verify(w23.PK, digest, *sign_local(w23.shares, w23.PK, restored, [1, 2], digest))
    data = pw[1].to_bytes()
    for bad in (data[:-1], data + b"\x00", b"\x02" + data[1:]):
        with pytest.raises(DecodeError):
            EcdsaPairwise.from_bytes(bad)
    assert repr(pw[1]) == "EcdsaPairwise(identifier=1)"  # no secret in repr


def test_pairwise_redo_one_pair_and_merge(w23: Wallet) -> None:
    pw = pairwise_setup_local([1, 2, 3], secrets.token_bytes(32))
    fresh = pairwise_setup_local([1, 3], secrets.token_bytes(32))  # redo the pair {1, 3}
    merged = {1: pw[1].merged(fresh[1]), 2: pw[2], 3: pw[3].merged(fresh[3])}
    assert merged[1].zero_seeds[3] == fresh[1].zero_seeds[3] != pw[1].zero_seeds[3]
    assert merged[1].zero_seeds[2] == pw[1].zero_seeds[2]
    digest = digest_of(b"after redo")
    for subset in ([1, 2], [1, 3], [2, 3]):
        independent_verify(w23.PK, digest, *sign_local(w23.shares, w23.PK, merged, subset, digest))
    with pytest.raises(ParameterError):
        pw[1].merged(fresh[3])


def test_session_id_reuse_raises(w35: Wallet) -> None:
    sid = secrets.token_bytes(32)
    presign_local(w35.shares, w35.PK, w35.pairwise, [1, 2, 4], sid)
    with pytest.raises(StateError):
        presign_local(w35.shares, w35.PK, w35.pairwise, [1, 2, 4], sid)


def test_two_sessions_differ(w35: Wallet) -> None:
    a = presign_local(w35.shares, w35.PK, w35.pairwise, [1, 2, 3])[1]
    b = presign_local(w35.shares, w35.PK, w35.pairwise, [1, 2, 3])[1]
    assert a.presig_id != b.presig_id and a.R != b.R


def test_fewer_than_t_signers_refused(w35: Wallet) -> None:
    digest = digest_of(b"two of a 3-of-5")
    with pytest.raises(ParameterError):
        sign_local(w35.shares, w35.PK, w35.pairwise, [1, 2], digest, threshold=3)
    # forced run without the threshold check: the pk_j sum check refuses, blaming nobody
    with pytest.raises(ProtocolError) as ei:
        sign_local(w35.shares, w35.PK, w35.pairwise, [1, 2], digest)
    assert ei.value.culprits == ()


def test_t_minus_1_lagrange_weighted_shares_give_no_signature_for_pk(w35: Wallet) -> None:
    # force the run through: tell the protocol the key is what two shares interpolate to
    lam = lagrange_coefficients(G, [1, 2])
    x_wrong = (lam[1] * w35.shares[1] + lam[2] * w35.shares[2]) % N
    assert x_wrong != w35.x
    digest = digest_of(b"forced")
    wrong_pk = G.base_mul(x_wrong)
    r, s, v = sign_local(w35.shares, wrong_pk, w35.pairwise, [1, 2], digest)
    compact = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    der = cdata_to_der(deserialize_compact(compact))
    assert not coincurve.PublicKey(w35.PK.encode()).verify(der, digest, hasher=None)
    rec = coincurve.PublicKey.from_signature_and_message(compact + bytes([v]), digest, hasher=None)
    assert rec.format(True) != w35.PK.encode()


def test_parameter_errors(w35: Wallet) -> None:
    sid = secrets.token_bytes(32)
    pw = w35.pairwise
    with pytest.raises(ParameterError):  # not a signer
        presign_round1(4, w35.shares[4], w35.PK, pw[4], [1, 2, 3], sid)
    with pytest.raises(ParameterError):  # duplicate signer
        presign_round1(1, w35.shares[1], w35.PK, pw[1], [1, 2, 2], sid)
    with pytest.raises(ParameterError):  # identifier equal to the order
        presign_round1(1, w35.shares[1], w35.PK, pw[1], [1, 2, N], sid)
    with pytest.raises(ParameterError):  # someone else's pairwise material
        presign_round1(1, w35.shares[1], w35.PK, pw[2], [1, 2, 3], sid)
    with pytest.raises(ParameterError):  # short session id
        presign_round1(1, w35.shares[1], w35.PK, pw[1], [1, 2, 3], b"short")
    with pytest.raises(ParameterError):  # a signer without a pairwise setup
        presign_round1(1, w35.shares[1], w35.PK, pw[1], [1, 2, 6], sid)
    presigs = presign_local(w35.shares, w35.PK, pw, [1, 2, 3])
    with pytest.raises(ParameterError):
        sign_with_presignatures(presigs, w35.PK, b"\x00" * 31)
    with pytest.raises(ParameterError):
        sign_with_presignatures(presigs, w35.PK, b"\x00" * 32, tweak=N)
    with pytest.raises(ParameterError):
        sign_with_presignatures(presigs, w35.PK + G.generator(), b"\x00" * 32)
    with pytest.raises(ParameterError):  # a signer missing
        sign_with_presignatures({1: presigs[1], 2: presigs[2]}, w35.PK, b"\x00" * 32)
    assert not any(p.consumed for p in presigs.values())


def test_message_encodings_round_trip(w35: Wallet) -> None:
    m1 = PresignRound1Msg(1, 2, b"\x11" * 32, b"mul")
    assert PresignRound1Msg.from_bytes(m1.to_bytes()) == m1
    P = G.base_mul(5)
    m2 = PresignRound2Msg(1, 2, P, b"\x22" * 32, P, P, P, 9, b"\x33" * 32, b"mul")
    assert PresignRound2Msg.from_bytes(m2.to_bytes()) == m2
    assert len(m2.to_bytes()) == 292 + 3
    sh = SignatureShare(b"\x44" * 32, 3, 5, 6)
    assert SignatureShare.from_bytes(sh.to_bytes()) == sh
    with pytest.raises(DecodeError):
        PresignRound1Msg.from_bytes(m1.to_bytes()[:95])
    with pytest.raises(DecodeError):
        PresignRound2Msg.from_bytes(m2.to_bytes()[:291])
    with pytest.raises(DecodeError):  # psi not below n
        data = m2.to_bytes()
        PresignRound2Msg.from_bytes(data[:228] + N.to_bytes(32, "big") + data[260:])
    with pytest.raises(DecodeError):  # R off the curve / bad prefix
        data = m2.to_bytes()
        PresignRound2Msg.from_bytes(data[:64] + b"\x04" + data[65:])
    with pytest.raises(DecodeError):  # identifier zero
        SignatureShare.from_bytes(b"\x44" * 32 + bytes(32) + bytes(64))
    with pytest.raises(DecodeError):
        SignatureShare.from_bytes(sh.to_bytes() + b"\x00")


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_property_subsets_and_digests_up_to_7_of_10(data: st.DataObject) -> None:
    w = _wallet_7_10()
    size = data.draw(st.integers(min_value=w.t, max_value=w.t + 1), label="size")
    subset = data.draw(
        st.lists(st.integers(1, w.n), min_size=size, max_size=size, unique=True), label="signers"
    )
    digest = data.draw(st.binary(min_size=32, max_size=32), label="digest")
    tweak = data.draw(st.sampled_from([0, 1, N - 1]), label="tweak")
    r, s, v = sign_local(w.shares, w.PK, w.pairwise, subset, digest, tweak=tweak, threshold=w.t)
    independent_verify(w.PK + G.base_mul(tweak) if tweak else w.PK, digest, r, s, v)


@settings(max_examples=6, deadline=None)
@given(
    subset=st.sets(st.integers(1, 5), min_size=3, max_size=5),
    digest=st.binary(min_size=32, max_size=32),
)
def test_property_subsets_and_digests_3_of_5(subset: set[int], digest: bytes) -> None:
    w = _wallet_3_5()
    independent_verify(
        w.PK, digest, *sign_local(w.shares, w.PK, w.pairwise, sorted(subset), digest)
    )


_CACHE: dict[str, Wallet] = {}


def _wallet_7_10() -> Wallet:
    if "7/10" not in _CACHE:
        _CACHE["7/10"] = make_wallet(7, 10)
    return _CACHE["7/10"]


def _wallet_3_5() -> Wallet:
    if "3/5" not in _CACHE:
        _CACHE["3/5"] = make_wallet(3, 5)
    return _CACHE["3/5"]


def test_serialising_moves_the_presignature(w35: Wallet) -> None:
    """to_bytes() leaves one live copy: the original refuses to sign afterwards."""
    presigs = presign_local(w35.shares, w35.PK, w35.pairwise, [1, 2, 3])
    stored = {i: p.to_bytes() for i, p in presigs.items()}
    for p in presigs.values():
        assert p.consumed and p.to_bytes().endswith(bytes(96))
        with pytest.raises(StateError):
            sign_share(p, w35.PK, digest_of(b"original"))
    restored = {i: Presignature.from_bytes(b) for i, b in stored.items()}
    digest = digest_of(b"restored")
    independent_verify(w35.PK, digest, *sign_with_presignatures(restored, w35.PK, digest))


def test_round2_repr_hides_psi() -> None:
    P = SECP256K1.generator()
    psi = 0x1234567890ABCDEF1234567890ABCDEF
    m2 = PresignRound2Msg(1, 2, P, b"\x22" * 32, P, P, P, psi, b"\x33" * 32, b"mul")
    assert str(psi) not in repr(m2) and f"{psi:x}" not in repr(m2).lower()


def test_typed_setup_messages_are_validated() -> None:
    from tmpc.protocols.ecdsa.dkls23 import PairwiseSetupMsg1, PairwiseSetupMsg2, PairwiseSetupMsg3

    with pytest.raises(DecodeError):
        PairwiseSetupMsg2(1, 2, b"\x00" * 5, b"mul")
    with pytest.raises(DecodeError):
        PairwiseSetupMsg1(1, 2, b"\x00" * 31, b"mul")
    with pytest.raises(ParameterError):
        PairwiseSetupMsg3(0, 2, b"mul")
    m = PairwiseSetupMsg2(1, 2, b"\x07" * 32, b"mul")
    assert PairwiseSetupMsg2.from_bytes(m.to_bytes()) == m
