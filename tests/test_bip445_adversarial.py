"""BIP445 signing against misbehaving signers, a misbehaving coordinator and misuse.

Adversaries are test helpers that tamper with one signer's messages; every abort asserts the
error type, the culprit, and that no honest signer is blamed. Every signature produced is
verified by libsecp256k1 (coincurve). Inside :mod:`tmpc.protocols.bip445` culprits are draft
identifiers (``id = x - 1``); :func:`sign_local` names Shamir x-coordinates.
"""

from __future__ import annotations

import copy
import pickle
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import coincurve
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tmpc.errors import (
    CryptoError,
    DecodeError,
    FaultyParticipantError,
    InputError,
    ParameterError,
    StateError,
    TmpcError,
)
from tmpc.group import SECP256K1
from tmpc.group.secp256k1 import SecpPoint
from tmpc.protocols import bip445
from tmpc.protocols.bip445 import (
    ApplyTweak,
    DeriveThreshPubkey,
    DeterministicSign,
    GetSessionValues,
    GetXonlyPubkey,
    InvalidContributionError,
    InvalidCoordinatorContributionError,
    NonceAgg,
    NonceGen,
    PartialSigAgg,
    PartialSigVerify,
    PartialSigVerifyInternal,
    SecNonce,
    SessionContext,
    Sign,
    SignersContext,
    TweakCtxInit,
    ValidateSignersCtx,
    sign_local,
)
from tmpc.protocols.taproot import taproot_output_key, taproot_tweaks_for
from tmpc.sharing import shamir_split

N = SECP256K1.order
P_FIELD = 2**256 - 2**32 - 977


@dataclass
class Key:
    """A t-of-n threshold key made by Shamir-splitting a random secret (x = 1..n)."""

    t: int
    n: int
    shares: dict[int, int]
    pubshares: dict[int, SecpPoint]
    P: SecpPoint

    def output_key(self) -> bytes:
        return taproot_output_key(self.P)[0]


def make_key(t: int, n: int) -> Key:
    secret = SECP256K1.random_scalar()
    shares = shamir_split(SECP256K1, secret, t, list(range(1, n + 1)))
    pubshares = {x: SECP256K1.base_mul(s) for x, s in shares.items()}
    return Key(t, n, shares, pubshares, SECP256K1.base_mul(secret))


@pytest.fixture(scope="module")
def key() -> Key:
    return make_key(3, 5)


@dataclass
class Session:
    """One signing session run step by step (draft ids = x - 1)."""

    ctx: SignersContext
    secshares: list[bytes]
    secnonces: list[SecNonce]
    pubnonces: list[bytes]
    session: SessionContext
    tweaks: list[bytes]
    modes: list[bool]
    msg: bytes


def start_session(k: Key, xs: Sequence[int], msg: bytes, *, taproot: bool = True) -> Session:
    ids = [x - 1 for x in xs]
    ctx = SignersContext(k.n, k.t, ids, [k.pubshares[x].encode() for x in xs], k.P.encode())
    tws = taproot_tweaks_for(k.P) if taproot else []
    tweaks, modes = [t for t, _ in tws], [m for _, m in tws]
    secshares = [k.shares[x].to_bytes(32, "big") for x in xs]
    secnonces, pubnonces = [], []
    for x, secshare in zip(xs, secshares, strict=True):
        sn, pn = NonceGen(secshare, k.pubshares[x].encode(), None, msg, None)
        secnonces.append(sn)
        pubnonces.append(pn)
    aggnonce = NonceAgg(pubnonces, ids)
    session = SessionContext(ctx, aggnonce, tweaks, modes, msg)
    return Session(ctx, secshares, secnonces, pubnonces, session, tweaks, modes, msg)


def sign_all(s: Session) -> list[bytes]:
    return [
        Sign(sn, d, my_id, s.session)
        for sn, d, my_id in zip(s.secnonces, s.secshares, s.ctx.ids, strict=True)
    ]


def coordinator(s: Session, psigs: Sequence[bytes]) -> bytes:
    """The coordinator: PartialSigVerify every partial signature, blame all bad ones, aggregate."""
    bad = [
        i
        for i in range(len(psigs))
        if not PartialSigVerify(psigs[i], s.pubnonces, s.ctx, s.tweaks, s.modes, s.msg, i)
    ]
    if bad:
        raise InvalidContributionError("psig", bad, [s.ctx.ids[i] for i in bad])
    return PartialSigAgg(psigs, s.session)


def tamper(psig: bytes) -> bytes:
    return ((int.from_bytes(psig, "big") + 1) % N).to_bytes(32, "big")


# --------------------------------------------------------------------------------------------
# A bad partial signature
# --------------------------------------------------------------------------------------------


def test_bad_partial_signature_names_exactly_that_signer(key: Key) -> None:
    msg = secrets.token_bytes(32)
    s = start_session(key, [1, 2, 4], msg)
    psigs = sign_all(s)
    psigs[1] = tamper(psigs[1])  # signer x = 2 (id 1) cheats
    # aggregating without verification gives an invalid signature nobody could attribute
    assert not coincurve.PublicKeyXOnly(key.output_key()).verify(
        PartialSigAgg(psigs, s.session), msg
    )
    with pytest.raises(InvalidContributionError) as info:
        coordinator(s, psigs)
    assert info.value.culprits == (1,)  # draft id of x = 2; nobody else
    assert info.value.signer_indices == (1,)
    assert info.value.contrib == "psig"
    # retry without the cheater, with another signer: succeeds
    s2 = start_session(key, [1, 4, 5], msg)
    sig = coordinator(s2, sign_all(s2))
    assert coincurve.PublicKeyXOnly(key.output_key()).verify(sig, msg)


@pytest.fixture
def evil_sign(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[set[int], Callable[[bytes], bytes]], None]:
    """Make the signers with the given Shamir x send ``corrupt(psig)`` inside sign_local."""

    def install(bad_xs: set[int], corrupt: Callable[[bytes], bytes]) -> None:
        real = bip445.Sign

        def sign(secnonce: SecNonce, secshare: bytes, my_id: int, ctx: Any, **kw: Any) -> bytes:
            psig = real(secnonce, secshare, my_id, ctx, **kw)
            return corrupt(psig) if my_id + 1 in bad_xs else psig

        monkeypatch.setattr(bip445, "Sign", sign)

    return install


@pytest.mark.parametrize(
    "corrupt",
    [
        tamper,
        lambda p: p[:31],
        lambda p: p + b"\x00",
        lambda p: N.to_bytes(32, "big"),
        lambda p: bytes(32),
    ],
    ids=["plus-one", "short", "long", "order", "zero"],
)
def test_sign_local_names_the_bad_signer_as_shamir_x(
    key: Key,
    evil_sign: Callable[[set[int], Callable[[bytes], bytes]], None],
    corrupt: Callable[[bytes], bytes],
) -> None:
    evil_sign({3}, corrupt)
    msg = secrets.token_bytes(32)
    signers = {x: key.shares[x] for x in (1, 3, 5)}
    with pytest.raises(FaultyParticipantError) as info:
        sign_local(signers, key.pubshares, key.P, msg, tweaks=taproot_tweaks_for(key.P))
    assert info.value.culprits == (3,)
    # retry without x = 3 succeeds (the cheater is left out)
    signers = {x: key.shares[x] for x in (1, 2, 5)}
    sig = sign_local(signers, key.pubshares, key.P, msg, tweaks=taproot_tweaks_for(key.P))
    assert coincurve.PublicKeyXOnly(key.output_key()).verify(sig, msg)


def test_sign_local_names_all_bad_signers_in_one_error(
    key: Key, evil_sign: Callable[[set[int], Callable[[bytes], bytes]], None]
) -> None:
    evil_sign({2, 5}, tamper)
    signers = {x: key.shares[x] for x in (1, 2, 4, 5)}
    with pytest.raises(FaultyParticipantError) as info:
        sign_local(signers, key.pubshares, key.P, secrets.token_bytes(32))
    assert set(info.value.culprits) == {2, 5}
    assert len(info.value.culprits) == 2
    # the error text names identifiers only, no share
    for x in signers:
        assert f"{key.shares[x]:064x}" not in str(info.value)


def test_partial_sig_agg_blames_undecodable_psigs(key: Key) -> None:
    s = start_session(key, [2, 3, 5], secrets.token_bytes(32))
    psigs = sign_all(s)
    for bad in (psigs[2][:31], N.to_bytes(32, "big"), b""):
        with pytest.raises(InvalidContributionError) as info:
            PartialSigAgg([psigs[0], psigs[1], bad], s.session)
        assert info.value.culprits == (4,) and info.value.signer_indices == (2,)


# --------------------------------------------------------------------------------------------
# Secret nonces: single use, no copies
# --------------------------------------------------------------------------------------------


def test_secnonce_reuse_raises_state_error(key: Key) -> None:
    msg = secrets.token_bytes(32)
    s = start_session(key, [1, 2, 3], msg)
    psig = Sign(s.secnonces[0], s.secshares[0], 0, s.session)
    assert len(psig) == 32
    with pytest.raises(StateError, match="already used"):
        Sign(s.secnonces[0], s.secshares[0], 0, s.session)
    # also for a different session (the dangerous case: two messages, one nonce)
    other = start_session(key, [1, 2, 3], secrets.token_bytes(32))
    with pytest.raises(StateError):
        Sign(s.secnonces[0], s.secshares[0], 0, other.session)
    # the wiped bytes cannot be restored into a usable nonce (crash after consumption)
    restored = SecNonce.dangerous_from_bytes(s.secnonces[0].dangerous_to_bytes())
    with pytest.raises(StateError, match="first secnonce value is out of range"):
        Sign(restored, s.secshares[0], 0, s.session)


def test_secnonce_is_burnt_by_a_failed_sign_after_it_was_read(key: Key) -> None:
    s = start_session(key, [1, 2, 3], secrets.token_bytes(32))
    wrong_share = key.shares[4].to_bytes(32, "big")  # not a share of this signer set
    with pytest.raises(ParameterError, match="pubshare must be included"):
        Sign(s.secnonces[0], wrong_share, 0, s.session)
    assert s.secnonces[0].used
    with pytest.raises(StateError):
        Sign(s.secnonces[0], s.secshares[0], 0, s.session)


def test_bad_aggnonce_blames_coordinator_and_keeps_the_nonce(key: Key) -> None:
    s = start_session(key, [1, 2, 3], secrets.token_bytes(32))
    for bad in (
        s.session.aggnonce[:65],
        b"\x04" + s.session.aggnonce[1:],
        bytes(33) + b"\x02" + bytes(32),
    ):
        bad_session = SessionContext(s.ctx, bad, s.tweaks, s.modes, s.msg)
        with pytest.raises(InvalidCoordinatorContributionError) as info:
            Sign(s.secnonces[0], s.secshares[0], 0, bad_session)
        assert info.value.culprits == ()  # no signer is blamed
        assert info.value.contrib == "aggnonce"
    # nothing left the signer, so the nonce is still usable with the right aggnonce
    assert not s.secnonces[0].used
    psigs = sign_all(s)
    sig = coordinator(s, psigs)
    assert coincurve.PublicKeyXOnly(key.output_key()).verify(sig, s.msg)


def test_secnonce_refuses_copy_and_pickle(key: Key) -> None:
    secnonce, _ = NonceGen(key.shares[1].to_bytes(32, "big"))
    for attempt in (copy.copy, copy.deepcopy, pickle.dumps, lambda o: pickle.dumps(o, protocol=0)):
        with pytest.raises(StateError):
            attempt(secnonce)
    assert not secnonce.used
    k = secnonce.dangerous_to_bytes()
    assert k.hex() not in repr(secnonce) and k[:32].hex() not in repr(secnonce)
    with pytest.raises(DecodeError):
        SecNonce.dangerous_from_bytes(k[:63])


def test_sign_self_check_failure_returns_nothing(key: Key, monkeypatch: pytest.MonkeyPatch) -> None:
    s = start_session(key, [1, 2, 3], secrets.token_bytes(32))
    monkeypatch.setattr(bip445, "_verify_core", lambda *a: False)
    with pytest.raises(CryptoError):
        Sign(s.secnonces[0], s.secshares[0], 0, s.session)
    assert s.secnonces[0].used


# --------------------------------------------------------------------------------------------
# Replay across sessions
# --------------------------------------------------------------------------------------------


def test_partial_signature_replayed_from_another_session_is_rejected(key: Key) -> None:
    xs = [2, 3, 5]
    s1 = start_session(key, xs, secrets.token_bytes(32))
    s2 = start_session(key, xs, secrets.token_bytes(32))
    psigs1, psigs2 = sign_all(s1), sign_all(s2)
    replayed = [psigs2[0], psigs1[1], psigs2[2]]  # x = 3 replays its share of session 1
    with pytest.raises(InvalidContributionError) as info:
        coordinator(s2, replayed)
    assert info.value.culprits == (2,)  # draft id of x = 3, nobody else
    # the honest session still completes
    assert coincurve.PublicKeyXOnly(key.output_key()).verify(coordinator(s2, psigs2), s2.msg)


def test_same_message_other_nonces_replay_rejected(key: Key) -> None:
    msg = secrets.token_bytes(32)
    s1, s2 = start_session(key, [1, 2, 3], msg), start_session(key, [1, 2, 3], msg)
    psigs1, psigs2 = sign_all(s1), sign_all(s2)
    with pytest.raises(InvalidContributionError) as info:
        coordinator(s2, [psigs1[0], psigs2[1], psigs2[2]])
    assert info.value.culprits == (0,)


# --------------------------------------------------------------------------------------------
# Fewer than t signers
# --------------------------------------------------------------------------------------------


def test_t_minus_one_signers_cannot_sign(key: Key) -> None:
    msg = secrets.token_bytes(32)
    two = {x: key.shares[x] for x in (1, 4)}
    with pytest.raises(ParameterError, match="key material is incorrect"):
        sign_local(two, key.pubshares, key.P, msg)
    with pytest.raises(ParameterError, match="fewer than the threshold"):
        sign_local(two, key.pubshares, key.P, msg, min_signers=3)
    # Without the key check, two shares can only sign for the key their own interpolation
    # gives, which is not the threshold key: the signature fails under the real key.
    xs = [1, 4]
    ids = [x - 1 for x in xs]
    points = [key.pubshares[x] for x in xs]
    wrong_pk = DeriveThreshPubkey(ids, points)
    assert wrong_pk != key.P.encode()
    wrong_key_pubshares = {x: key.pubshares[x] for x in xs}
    sig = sign_local(two, wrong_key_pubshares, SECP256K1.decode_point(wrong_pk), msg)
    assert coincurve.PublicKeyXOnly(wrong_pk[1:]).verify(sig, msg)
    assert not coincurve.PublicKeyXOnly(key.P.xonly()).verify(sig, msg)


# --------------------------------------------------------------------------------------------
# Invalid public nonces
# --------------------------------------------------------------------------------------------

GOOD_POINT = SECP256K1.base_mul(7).encode()
BAD_HALVES = {
    "off-curve": b"\x02" + (5).to_bytes(32, "big"),  # x^3 + 7 = 132 is not a square mod p
    "x-too-big": b"\x02" + P_FIELD.to_bytes(32, "big"),
    "bad-tag": b"\x04" + GOOD_POINT[1:],
    "infinity": bytes(33),
}


def bad_pubnonces() -> Iterator[tuple[str, bytes]]:
    for name, half in BAD_HALVES.items():
        yield f"first-{name}", half + GOOD_POINT
        yield f"second-{name}", GOOD_POINT + half
    yield "short", (GOOD_POINT * 2)[:65]
    yield "long", GOOD_POINT * 2 + b"\x00"
    yield "empty", b""


BAD_PUBNONCES = list(bad_pubnonces())


@pytest.mark.parametrize("bad", [b for _, b in BAD_PUBNONCES], ids=[n for n, _ in BAD_PUBNONCES])
def test_invalid_pubnonce_names_its_sender(key: Key, bad: bytes) -> None:
    msg = secrets.token_bytes(32)
    s = start_session(key, [1, 3, 5], msg)
    pubnonces = [s.pubnonces[0], bad, s.pubnonces[2]]
    with pytest.raises(InvalidContributionError) as info:
        NonceAgg(pubnonces, s.ctx.ids)
    assert info.value.culprits == (2,) and info.value.signer_indices == (1,)
    assert info.value.contrib == "pubnonce"
    # PartialSigVerify of an honest signer's share also names the sender of the bad nonce
    psig0 = Sign(s.secnonces[0], s.secshares[0], 0, s.session)
    with pytest.raises(InvalidContributionError) as info:
        PartialSigVerify(psig0, pubnonces, s.ctx, s.tweaks, s.modes, msg, 0)
    assert info.value.culprits == (2,)
    # the internal verifier just says no for an undecodable nonce
    assert not PartialSigVerifyInternal(psig0, 2, bad, s.ctx.pubshares[1], s.session)


def test_several_invalid_pubnonces_blame_the_drafts_signer_first(key: Key) -> None:
    s = start_session(key, [1, 2, 3], secrets.token_bytes(32))
    # signer 0 breaks its second half, signer 2 its first: the draft checks all first halves
    # before the second halves, so it blames signer 2; tmpc names both, signer 2 first.
    pubnonces = [
        GOOD_POINT + BAD_HALVES["off-curve"],
        s.pubnonces[1],
        BAD_HALVES["bad-tag"] + GOOD_POINT,
    ]
    with pytest.raises(InvalidContributionError) as info:
        NonceAgg(pubnonces, s.ctx.ids)
    assert info.value.signer_index == 2
    assert info.value.culprits == (2, 0)


def test_sign_local_names_the_sender_of_a_bad_pubnonce(
    key: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sign_local runs one Bip445SignMachine per signer; each runs NonceGenInternal.
    real = bip445.NonceGenInternal
    bad_share = key.shares[4].to_bytes(32, "big")

    def nonce_gen(rand_: bytes, secshare: bytes | None, *args: Any) -> tuple[SecNonce, bytes]:
        sn, pn = real(rand_, secshare, *args)
        return (sn, pn[:33] + BAD_HALVES["off-curve"]) if secshare == bad_share else (sn, pn)

    monkeypatch.setattr(bip445, "NonceGenInternal", nonce_gen)
    with pytest.raises(FaultyParticipantError) as info:
        sign_local({x: key.shares[x] for x in (1, 4, 5)}, key.pubshares, key.P, b"m" * 32)
    assert info.value.culprits == (4,)


# --------------------------------------------------------------------------------------------
# Other input checks
# --------------------------------------------------------------------------------------------


def test_signers_context_checks(key: Key) -> None:
    ps = [key.pubshares[x].encode() for x in (1, 2, 3)]
    for ctx in (
        SignersContext(2**32, 3, [0, 1, 2], ps, key.P.encode()),
        SignersContext(5, 3, [0, True, 2], ps, key.P.encode()),
        SignersContext(5, 3, [0, 1, 2], ps[:2], key.P.encode()),
        SignersContext(5, 0, [0, 1, 2], ps, key.P.encode()),
        SignersContext(5, 3, [0, 1, -1], ps, key.P.encode()),
        SignersContext(5, 3, [0, 1, 2], ps, key.P.encode()[:32]),
        SignersContext(5, 3, [0, 1, 2], ps, (-key.P).encode()),
    ):
        with pytest.raises(ParameterError):
            ValidateSignersCtx(ctx)


def test_sign_local_input_errors(key: Key) -> None:
    msg = b"m" * 32
    three = {x: key.shares[x] for x in (1, 2, 3)}
    with pytest.raises(ParameterError):
        sign_local({}, key.pubshares, key.P, msg)
    with pytest.raises(ParameterError):
        sign_local(three, {1: key.pubshares[1], 2: key.pubshares[2]}, key.P, msg)
    with pytest.raises(ParameterError):
        sign_local({0: 1, **three}, key.pubshares, key.P, msg)
    with pytest.raises(ParameterError):
        sign_local({**three, 1: 0}, key.pubshares, key.P, msg)
    with pytest.raises(ParameterError):
        sign_local(three, key.pubshares, SECP256K1.identity(), msg)
    with pytest.raises(ParameterError, match="secret share is not party 1's"):
        sign_local({**three, 1: key.shares[4]}, key.pubshares, key.P, msg)
    with pytest.raises(DecodeError):
        sign_local(three, key.pubshares, key.P, msg, tweaks=[(b"\x01" * 31, True)])
    with pytest.raises(DecodeError):
        sign_local(three, key.pubshares, key.P, msg, tweaks=[(N.to_bytes(32, "big"), False)])


def test_plain_and_xonly_tweaks_chain(key: Key) -> None:
    # A BIP32-style plain tweak followed by the BIP341 x-only tweak of the child key.
    msg = secrets.token_bytes(32)
    plain = secrets.token_bytes(32)
    child = ApplyTweak(TweakCtxInit(key.P.encode()), plain, False)
    tap = taproot_tweaks_for(child.Q)
    out = GetXonlyPubkey(ApplyTweak(child, tap[0][0], True))
    assert out == taproot_output_key(child.Q)[0]
    sig = sign_local(
        {x: key.shares[x] for x in (2, 4, 5)},
        key.pubshares,
        key.P,
        msg,
        tweaks=[(plain, False), *tap],
    )
    assert coincurve.PublicKeyXOnly(out).verify(sig, msg)


def test_deterministic_sign_bad_aggothernonce_blames_coordinator(key: Key) -> None:
    xs = [1, 2, 3]
    s = start_session(key, xs, secrets.token_bytes(32))
    for bad in (s.pubnonces[0][:65], BAD_HALVES["off-curve"] + GOOD_POINT, bytes(66)):
        with pytest.raises(InvalidCoordinatorContributionError) as info:
            DeterministicSign(s.secshares[2], 2, bad, s.ctx, [], [], s.msg, None)
        assert info.value.contrib == "aggothernonce" and info.value.culprits == ()


def test_deterministic_sign_as_last_signer_completes_a_signature(key: Key) -> None:
    msg = secrets.token_bytes(32)
    s = start_session(key, [1, 2, 3], msg)
    aggothernonce = NonceAgg(s.pubnonces[:2], [0, 1])
    pubnonce, psig3 = DeterministicSign(
        s.secshares[2], 2, aggothernonce, s.ctx, s.tweaks, s.modes, msg, secrets.token_bytes(32)
    )
    pubnonces = [*s.pubnonces[:2], pubnonce]
    session = SessionContext(s.ctx, NonceAgg(pubnonces, [0, 1, 2]), s.tweaks, s.modes, msg)
    psigs = [Sign(s.secnonces[i], s.secshares[i], i, session) for i in (0, 1)] + [psig3]
    for i in range(3):
        assert PartialSigVerify(psigs[i], pubnonces, s.ctx, s.tweaks, s.modes, msg, i)
    sig = PartialSigAgg(psigs, session)
    assert coincurve.PublicKeyXOnly(key.output_key()).verify(sig, msg)


# --------------------------------------------------------------------------------------------
# Fuzzing every parser: only tmpc errors, never a crash
# --------------------------------------------------------------------------------------------

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def near(valid: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, and valid bytes with one byte changed, cut or extended."""
    edits = st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)).map(
        lambda e: valid[: e[0]] + bytes([e[1]]) + valid[e[0] + 1 :]
    )
    cuts = st.integers(0, len(valid) + 2).map(lambda k: (valid + b"\x02\x03")[:k])
    return st.one_of(st.binary(max_size=80), edits, cuts)


@pytest.fixture(scope="module")
def fuzz_session() -> Session:
    return start_session(make_key(2, 3), [1, 3], b"fuzz" * 8)


@FUZZ
@given(data=st.data())
def test_fuzz_nonce_agg(fuzz_session: Session, data: st.DataObject) -> None:
    s = fuzz_session
    bad = data.draw(near(s.pubnonces[1]))
    try:
        agg = NonceAgg([s.pubnonces[0], bad], [0, 2])
        assert len(agg) == 66
    except InvalidContributionError as err:
        assert err.culprits == (2,)


@FUZZ
@given(data=st.data())
def test_fuzz_aggnonce(fuzz_session: Session, data: st.DataObject) -> None:
    s = fuzz_session
    bad = data.draw(near(s.session.aggnonce))
    try:
        GetSessionValues(SessionContext(s.ctx, bad, s.tweaks, s.modes, s.msg))
    except InvalidCoordinatorContributionError as err:
        assert err.culprits == ()


@FUZZ
@given(data=st.data())
def test_fuzz_partial_sig_verify(fuzz_session: Session, data: st.DataObject) -> None:
    s = fuzz_session
    psig = data.draw(st.one_of(st.binary(max_size=40), st.just(N.to_bytes(32, "big"))))
    pubnonce = data.draw(near(s.pubnonces[0]))
    try:
        ok = PartialSigVerify(psig, [pubnonce, s.pubnonces[1]], s.ctx, s.tweaks, s.modes, s.msg, 0)
        assert ok is False  # a random psig never verifies
    except InvalidContributionError as err:
        assert err.culprits == (0,)
    assert PartialSigVerifyInternal(psig, 0, pubnonce, s.ctx.pubshares[0], s.session) is False


@FUZZ
@given(psigs=st.lists(st.binary(max_size=40), min_size=2, max_size=2))
def test_fuzz_partial_sig_agg(fuzz_session: Session, psigs: list[bytes]) -> None:
    try:
        assert len(PartialSigAgg(psigs, fuzz_session.session)) == 64
    except InvalidContributionError as err:
        assert set(err.culprits) <= {0, 2} and err.culprits


@FUZZ
@given(data=st.data())
def test_fuzz_signers_context_and_tweaks(fuzz_session: Session, data: st.DataObject) -> None:
    s = fuzz_session
    pubshare = data.draw(near(s.ctx.pubshares[1]))
    thresh_pk = data.draw(near(s.ctx.thresh_pk))
    tweak = data.draw(st.one_of(st.binary(max_size=40), st.just(N.to_bytes(32, "big"))))
    try:
        ValidateSignersCtx(SignersContext(3, 2, [0, 2], [s.ctx.pubshares[0], pubshare], thresh_pk))
    except InputError:
        pass
    try:
        ApplyTweak(TweakCtxInit(thresh_pk), tweak, data.draw(st.booleans()))
    except InputError:
        pass


@FUZZ
@given(data=st.data())
def test_fuzz_deterministic_sign_and_secnonce(fuzz_session: Session, data: st.DataObject) -> None:
    s = fuzz_session
    aggothernonce = data.draw(near(s.pubnonces[1]))
    try:
        pubnonce, psig = DeterministicSign(
            s.secshares[0], 0, aggothernonce, s.ctx, [], [], s.msg, None
        )
        assert len(pubnonce) == 66 and len(psig) == 32
    except InvalidCoordinatorContributionError as err:
        assert err.culprits == ()
    raw = data.draw(st.binary(max_size=70))
    try:
        Sign(SecNonce.dangerous_from_bytes(raw), s.secshares[0], 0, s.session)
    except TmpcError:
        pass


# --------------------------------------------------------------------------------------------
# Property: any t..n of any t-of-n (n <= 10) sign under the Taproot output key
# --------------------------------------------------------------------------------------------


@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_random_subsets_sign_valid_taproot_signatures(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 10), label="n")
    t = data.draw(st.integers(1, min(n, 7)), label="t")
    k = make_key(t, n)
    xs = data.draw(st.lists(st.sampled_from(range(1, n + 1)), min_size=t, max_size=n, unique=True))
    msg = data.draw(st.binary(min_size=32, max_size=32))
    signers = {x: k.shares[x] for x in xs}
    sig = sign_local(signers, k.pubshares, k.P, msg, tweaks=taproot_tweaks_for(k.P), min_signers=t)
    assert coincurve.PublicKeyXOnly(k.output_key()).verify(sig, msg)
    assert not coincurve.PublicKeyXOnly(k.output_key()).verify(sig, bytes(a ^ 1 for a in msg))
