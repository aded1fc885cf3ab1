"""Every BIP445 (FROST signing for BIP340) vector file, valid and error cases.

The vectors blame a signer by its position in the input list (``signer_index``); tmpc's
:class:`InvalidContributionError` keeps that position and names the signer's draft identifier
in ``culprits``, so every error case checks both. The draft's ``ValueError`` cases map to the
tmpc input error classes in ``VALUE_ERRORS`` and keep the draft's message. Every final
signature is checked by tmpc's BIP340 verifier and, for 32-byte messages, by libsecp256k1
(coincurve).
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from typing import Any

import coincurve
import pytest

from tests.vectors import load_json
from tmpc.errors import DecodeError, InputError, ParameterError, StateError
from tmpc.group import SECP256K1
from tmpc.primitives.bip340 import schnorr_verify
from tmpc.protocols.bip445 import (
    ApplyTweak,
    DeriveInterpolatingValue,
    DeterministicSign,
    GetXonlyPubkey,
    InvalidContributionError,
    InvalidCoordinatorContributionError,
    NonceAgg,
    NonceGenInternal,
    PartialSigAgg,
    PartialSigVerify,
    PartialSigVerifyInternal,
    SecNonce,
    SessionContext,
    Sign,
    SignersContext,
    TweakCtxInit,
)
from tmpc.sharing import derive_interpolating_value

Case = dict[str, Any]
DIR = "bip445-frost-signing/"

# The draft's ValueError messages and the tmpc input-error class each one becomes.
VALUE_ERRORS: list[tuple[str, type[InputError]]] = [
    (r"The signer's id must be present in the participant identifier list\.", ParameterError),
    (r"The participant identifier list contains duplicate elements\.", ParameterError),
    (r"The signer's pubshare must be included in the list of pubshares\.", ParameterError),
    (r"Invalid pubshare at index \d+\.", DecodeError),
    (r"The participant identifier at index \d+ is out of range\.", ParameterError),
    (r"The provided key material is incorrect\.", ParameterError),
    (r"first secnonce value is out of range\.", StateError),
    (r"second secnonce value is out of range\.", StateError),
    (r"The number of signers must be between t and n\.", ParameterError),
    (r"The signer's secret share value is out of range\.", ParameterError),
    (r"The tweak value is out of range\.", DecodeError),
    (r"The result of tweaking cannot be infinity\.", ParameterError),
    (r"The tweaks and is_xonly arrays must have the same length\.", ParameterError),
    (r"The tweak must be a 32-byte array\.", DecodeError),
    (r"The psigs and ids arrays must have the same length\.", ParameterError),
]


def h(x: str | None) -> bytes | None:
    return None if x is None else bytes.fromhex(x)


def hx(x: str) -> bytes:
    return bytes.fromhex(x)


def cases(fname: str, key: str) -> list[tuple[Case, Case]]:
    """``(group, case)`` pairs of every test group's ``key`` list."""
    data = load_json(DIR + fname)
    return [(g, tc) for g in data["test_groups"] for tc in g.get(key, [])]


def ids_of(pairs: list[tuple[Case, Case]]) -> list[str]:
    return [f"{g['tg_id']}-tc{tc['tc_id']}" for g, tc in pairs]


def signers_ctx(g: Case, tc: Case) -> SignersContext:
    return SignersContext(
        g["n"],
        g["t"],
        tc["ids"],
        [hx(g["pubshares"][i]) for i in tc["pubshare_indices"]],
        hx(g["thresh_pk"]),
    )


def tweaks_of(g: Case, tc: Case) -> list[bytes]:
    return [hx(g["tweaks"][i]) for i in tc.get("tweak_indices", [])]


def tweaked_xonly(g: Case, tweaks: list[bytes], modes: list[bool]) -> bytes:
    ctx = TweakCtxInit(hx(g["thresh_pk"]))
    for tw, mode in zip(tweaks, modes, strict=True):
        ctx = ApplyTweak(ctx, tw, mode)
    return GetXonlyPubkey(ctx)


def expect_error(error: Case) -> AbstractContextManager[Any]:
    """A ``pytest.raises`` for a vector's error, checked in full by ``check_error``."""
    if error["type"] == "ValueError":
        for pattern, cls in VALUE_ERRORS:
            if re.fullmatch(pattern, error["message"]):
                return pytest.raises(cls, match=f"^{re.escape(error['message'])}$")
        raise AssertionError(f"unmapped draft message {error['message']!r}")
    assert error["type"] == "InvalidContributionError"
    if error["signer_index"] is None:
        return pytest.raises(InvalidCoordinatorContributionError)
    return pytest.raises(InvalidContributionError)


def check_error(exc: BaseException, error: Case, ids: list[int] | None) -> None:
    if error["type"] != "InvalidContributionError":
        return
    if error["signer_index"] is None:
        assert isinstance(exc, InvalidCoordinatorContributionError)
        assert exc.contrib == error["contrib"]
        assert exc.culprits == ()  # no participant is blamed for a coordinator fault
        return
    assert isinstance(exc, InvalidContributionError)
    assert exc.contrib == error["contrib"]
    assert exc.signer_indices == (error["signer_index"],)
    assert ids is not None
    # exactly the blamed signer, named by its draft identifier; nobody else
    assert exc.culprits == (ids[error["signer_index"]],)


def verify_final(sig: bytes, xonly: bytes, msg: bytes) -> None:
    assert schnorr_verify(msg, xonly, sig)
    if len(msg) == 32:
        assert coincurve.PublicKeyXOnly(xonly).verify(sig, msg)
    bad = sig[:-1] + bytes([sig[-1] ^ 1])
    assert not schnorr_verify(msg, xonly, bad)


# --------------------------------------------------------------------------------------------
# nonce_gen_vectors.json
# --------------------------------------------------------------------------------------------

NONCE_GEN = load_json(DIR + "nonce_gen_vectors.json")["valid_tests"]


@pytest.mark.parametrize("tc", NONCE_GEN, ids=[f"tc{tc['tc_id']}" for tc in NONCE_GEN])
def test_nonce_gen(tc: Case) -> None:
    secnonce, pubnonce = NonceGenInternal(
        hx(tc["rand_"]),
        h(tc["secshare"]),
        h(tc["pubshare"]),
        h(tc["thresh_pk"]),
        h(tc["msg"]),
        h(tc["extra_in"]),
    )
    expected_sec, expected_pub = (hx(x) for x in tc["expected"])
    assert secnonce.dangerous_to_bytes() == expected_sec
    assert pubnonce == expected_pub
    # the public nonce is k_1*G || k_2*G of the secret nonce
    k1, k2 = (int.from_bytes(expected_sec[i : i + 32], "big") for i in (0, 32))
    assert pubnonce == SECP256K1.base_mul(k1).encode() + SECP256K1.base_mul(k2).encode()


# --------------------------------------------------------------------------------------------
# nonce_agg_vectors.json
# --------------------------------------------------------------------------------------------

NONCE_AGG = load_json(DIR + "nonce_agg_vectors.json")


def agg_ids(n: int) -> list[int]:
    # Identifiers that differ from the list positions, so blame by position and by
    # identifier are told apart.
    return [5 * k + 2 for k in range(n)]


@pytest.mark.parametrize(
    "tc", NONCE_AGG["valid_tests"], ids=[f"tc{tc['tc_id']}" for tc in NONCE_AGG["valid_tests"]]
)
def test_nonce_agg_valid(tc: Case) -> None:
    pubnonces = [hx(NONCE_AGG["pubnonces"][i]) for i in tc["pubnonce_indices"]]
    assert NonceAgg(pubnonces, agg_ids(len(pubnonces))) == hx(tc["expected"])


@pytest.mark.parametrize(
    "tc", NONCE_AGG["error_tests"], ids=[f"tc{tc['tc_id']}" for tc in NONCE_AGG["error_tests"]]
)
def test_nonce_agg_error(tc: Case) -> None:
    pubnonces = [hx(NONCE_AGG["pubnonces"][i]) for i in tc["pubnonce_indices"]]
    ids = agg_ids(len(pubnonces))
    with expect_error(tc["error"]) as info:
        NonceAgg(pubnonces, ids)
    check_error(info.value, tc["error"], ids)


# --------------------------------------------------------------------------------------------
# sign_verify_vectors.json
# --------------------------------------------------------------------------------------------

SV_VALID = cases("sign_verify_vectors.json", "valid_tests")
SV_SIGN_ERR = cases("sign_verify_vectors.json", "sign_error_tests")
SV_VERIFY_FAIL = cases("sign_verify_vectors.json", "verify_fail_tests")
SV_VERIFY_ERR = cases("sign_verify_vectors.json", "verify_error_tests")


@pytest.mark.parametrize(("g", "tc"), SV_VALID, ids=ids_of(SV_VALID))
def test_sign_verify_valid(g: Case, tc: Case) -> None:
    ctx = signers_ctx(g, tc)
    pubnonces = [hx(g["pubnonces"][i]) for i in tc["pubnonce_indices"]]
    aggnonce = hx(tc["aggnonce"])
    msg = hx(tc["msg"])
    # the vector's pubnonces and aggnonce agree
    assert NonceAgg(pubnonces, tc["ids"]) == aggnonce
    session = SessionContext(ctx, aggnonce, [], [], msg)
    secnonce = SecNonce.dangerous_from_bytes(hx(g["secnonces"][tc["secnonce_index"]]))
    secshare = hx(g["secshares"][tc["secshare_index"]])
    psig = Sign(secnonce, secshare, tc["my_id"], session)
    assert psig == hx(tc["expected"])
    # Sign wiped the nonce, the draft's way, and marked it used
    assert secnonce.used and secnonce.dangerous_to_bytes() == bytes(64)
    i = tc["ids"].index(tc["my_id"])
    assert PartialSigVerify(psig, pubnonces, ctx, [], [], msg, i)
    pubshare = ctx.pubshares[i]
    assert PartialSigVerifyInternal(psig, tc["my_id"], pubnonces[i], pubshare, session)
    # and fails for any other signer of the set
    for j in range(len(tc["ids"])):
        if j != i:
            assert not PartialSigVerify(psig, pubnonces, ctx, [], [], msg, j)


@pytest.mark.parametrize(("g", "tc"), SV_SIGN_ERR, ids=ids_of(SV_SIGN_ERR))
def test_sign_error(g: Case, tc: Case) -> None:
    secnonce = SecNonce.dangerous_from_bytes(hx(g["secnonces"][tc["secnonce_index"]]))
    secshare = hx(g["secshares"][tc["secshare_index"]])
    with expect_error(tc["error"]) as info:
        session = SessionContext(signers_ctx(g, tc), hx(tc["aggnonce"]), [], [], hx(tc["msg"]))
        Sign(secnonce, secshare, tc["my_id"], session)
    check_error(info.value, tc["error"], tc["ids"])


@pytest.mark.parametrize(("g", "tc"), SV_VERIFY_FAIL, ids=ids_of(SV_VERIFY_FAIL))
def test_verify_fail(g: Case, tc: Case) -> None:
    ctx = signers_ctx(g, tc)
    pubnonces = [hx(g["pubnonces"][i]) for i in tc["pubnonce_indices"]]
    assert not PartialSigVerify(
        hx(tc["psig"]), pubnonces, ctx, [], [], hx(tc["msg"]), tc["signer_index"]
    )


@pytest.mark.parametrize(("g", "tc"), SV_VERIFY_ERR, ids=ids_of(SV_VERIFY_ERR))
def test_verify_error(g: Case, tc: Case) -> None:
    pubnonces = [hx(g["pubnonces"][i]) for i in tc["pubnonce_indices"]]
    with expect_error(tc["error"]) as info:
        ctx = signers_ctx(g, tc)
        PartialSigVerify(hx(tc["psig"]), pubnonces, ctx, [], [], hx(tc["msg"]), tc["signer_index"])
    check_error(info.value, tc["error"], tc["ids"])


# --------------------------------------------------------------------------------------------
# tweak_vectors.json
# --------------------------------------------------------------------------------------------

TW_VALID = cases("tweak_vectors.json", "valid_tests")
TW_ERR = cases("tweak_vectors.json", "error_tests")


@pytest.mark.parametrize(("g", "tc"), TW_VALID, ids=ids_of(TW_VALID))
def test_tweak_valid(g: Case, tc: Case) -> None:
    ctx = signers_ctx(g, tc)
    pubnonces = [hx(g["pubnonces"][i]) for i in tc["pubnonce_indices"]]
    aggnonce = hx(tc["aggnonce"])
    msg = hx(tc["msg"])
    tweaks, modes = tweaks_of(g, tc), tc["is_xonly"]
    assert NonceAgg(pubnonces, tc["ids"]) == aggnonce
    session = SessionContext(ctx, aggnonce, tweaks, modes, msg)
    secnonce = SecNonce.dangerous_from_bytes(hx(g["secnonces"][tc["secnonce_index"]]))
    psig = Sign(secnonce, hx(g["secshares"][tc["secshare_index"]]), tc["my_id"], session)
    assert psig == hx(tc["expected"])
    i = tc["ids"].index(tc["my_id"])
    assert PartialSigVerify(psig, pubnonces, ctx, tweaks, modes, msg, i)
    if tweaks:
        # the same partial signature is wrong for the untweaked key
        assert not PartialSigVerify(psig, pubnonces, ctx, [], [], msg, i)


@pytest.mark.parametrize(("g", "tc"), TW_ERR, ids=ids_of(TW_ERR))
def test_tweak_error(g: Case, tc: Case) -> None:
    secnonce = SecNonce.dangerous_from_bytes(hx(g["secnonces"][tc["secnonce_index"]]))
    with expect_error(tc["error"]) as info:
        session = SessionContext(
            signers_ctx(g, tc), hx(tc["aggnonce"]), tweaks_of(g, tc), tc["is_xonly"], hx(tc["msg"])
        )
        Sign(secnonce, hx(g["secshares"][tc["secshare_index"]]), tc["my_id"], session)
    check_error(info.value, tc["error"], tc["ids"])
    # an input error is raised before the nonce is consumed
    assert not secnonce.used


# --------------------------------------------------------------------------------------------
# sig_agg_vectors.json
# --------------------------------------------------------------------------------------------

SA_VALID = cases("sig_agg_vectors.json", "valid_tests")
SA_ERR = cases("sig_agg_vectors.json", "error_tests")


@pytest.mark.parametrize(("g", "tc"), SA_VALID, ids=ids_of(SA_VALID))
def test_sig_agg_valid(g: Case, tc: Case) -> None:
    tweaks, modes = tweaks_of(g, tc), tc["is_xonly"]
    msg = hx(tc["msg"])
    session = SessionContext(signers_ctx(g, tc), hx(tc["aggnonce"]), tweaks, modes, msg)
    sig = PartialSigAgg([hx(p) for p in tc["psigs"]], session)
    assert sig == hx(tc["expected"])
    verify_final(sig, tweaked_xonly(g, tweaks, modes), msg)


@pytest.mark.parametrize(("g", "tc"), SA_ERR, ids=ids_of(SA_ERR))
def test_sig_agg_error(g: Case, tc: Case) -> None:
    with expect_error(tc["error"]) as info:
        session = SessionContext(
            signers_ctx(g, tc), hx(tc["aggnonce"]), tweaks_of(g, tc), tc["is_xonly"], hx(tc["msg"])
        )
        PartialSigAgg([hx(p) for p in tc["psigs"]], session)
    check_error(info.value, tc["error"], tc["ids"])


# --------------------------------------------------------------------------------------------
# det_sign_vectors.json
# --------------------------------------------------------------------------------------------

DS_VALID = cases("det_sign_vectors.json", "valid_tests")
DS_ERR = cases("det_sign_vectors.json", "error_tests")


@pytest.mark.parametrize(("g", "tc"), DS_VALID, ids=ids_of(DS_VALID))
def test_det_sign_valid(g: Case, tc: Case) -> None:
    ctx = signers_ctx(g, tc)
    tweaks = [hx(t) for t in tc["tweaks"]]
    modes, msg = tc["is_xonly"], hx(tc["msg"])
    aggothernonce = h(tc["aggothernonce"])
    secshare = hx(g["secshares"][tc["secshare_index"]])
    pubnonce, psig = DeterministicSign(
        secshare, tc["my_id"], aggothernonce, ctx, tweaks, modes, msg, h(tc["rand"])
    )
    assert [pubnonce, psig] == [hx(x) for x in tc["expected"]]
    # deterministic: the same inputs give the same output
    again = DeterministicSign(
        secshare, tc["my_id"], aggothernonce, ctx, tweaks, modes, msg, h(tc["rand"])
    )
    assert again == (pubnonce, psig)
    if aggothernonce is None:
        aggnonce = pubnonce
    else:
        aggnonce = NonceAgg([aggothernonce, pubnonce], [99, tc["my_id"]])
    session = SessionContext(ctx, aggnonce, tweaks, modes, msg)
    i = tc["ids"].index(tc["my_id"])
    assert PartialSigVerifyInternal(psig, tc["my_id"], pubnonce, ctx.pubshares[i], session)
    if len(tc["ids"]) == 1:
        # a sole signer's partial signature aggregates to a complete BIP340 signature
        sig = PartialSigAgg([psig], session)
        verify_final(sig, tweaked_xonly(g, tweaks, modes), msg)


@pytest.mark.parametrize(("g", "tc"), DS_ERR, ids=ids_of(DS_ERR))
def test_det_sign_error(g: Case, tc: Case) -> None:
    with expect_error(tc["error"]) as info:
        DeterministicSign(
            hx(g["secshares"][tc["secshare_index"]]),
            tc["my_id"],
            h(tc["aggothernonce"]),
            signers_ctx(g, tc),
            [hx(t) for t in tc["tweaks"]],
            tc["is_xonly"],
            hx(tc["msg"]),
            h(tc["rand"]),
        )
    check_error(info.value, tc["error"], tc["ids"])


# --------------------------------------------------------------------------------------------
# Identifier convention: draft id = Shamir x - 1
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ids", [[0, 1], [1, 0], [0, 2, 4], [4, 3, 1, 0], [0]])
def test_interpolating_value_is_shamir_lagrange_at_x_equals_id_plus_one(ids: list[int]) -> None:
    xs = [i + 1 for i in ids]
    for i in ids:
        assert DeriveInterpolatingValue(ids, i) == derive_interpolating_value(SECP256K1, xs, i + 1)


def test_vector_shares_interpolate_at_x_equals_id_plus_one() -> None:
    # The vectors' secret shares are Shamir shares at x = id + 1: any t of them give the key
    # whose public key is thresh_pk.
    for g in load_json(DIR + "sign_verify_vectors.json")["test_groups"]:
        t = g["t"]
        shares = [int(s, 16) for s in g["secshares"][:t]]
        lam = [
            derive_interpolating_value(SECP256K1, list(range(1, t + 1)), x) for x in range(1, t + 1)
        ]
        secret = sum(a * s for a, s in zip(lam, shares, strict=True)) % SECP256K1.order
        assert SECP256K1.base_mul(secret).encode() == hx(g["thresh_pk"])
