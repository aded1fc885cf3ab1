"""Every ChillDKG vector (bip-frost-dkg draft, tests/vectors/chilldkg), valid and error cases.

Error mapping: the draft's exception classes map one to one onto tmpc's (see
``tmpc.protocols.dkg.exceptions``). The draft's plain ``ValueError`` covers two different
things, which tmpc keeps apart: a bad *local* argument (a ``ParameterError``, nobody blamed)
and a received message of the wrong length (a ``ProtocolError`` naming its sender).
``VALUE_ERRORS`` says, per vector comment, which one tmpc raises and whom it names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import coincurve
import pytest

from tests.vectors import load_json
from tmpc.errors import (
    FaultyCoordinatorError,
    FaultyParticipantError,
    ParameterError,
    ProtocolError,
    TmpcError,
)
from tmpc.group import SECP256K1
from tmpc.protocols import dkg
from tmpc.protocols.dkg import chilldkg

hx = bytes.fromhex

# The draft's ValueError cases: comment -> (tmpc class, blamed participant or None).
VALUE_ERRORS: dict[str, tuple[type[TmpcError], int | None]] = {
    "length of host secret key is not 32 bytes": (dkg.HostSeckeyError, None),
    "length of randomness is not 32 bytes": (ParameterError, None),
    "length of aux randomness is not 32 bytes": (ParameterError, None),
    "invalid hostseckey": (dkg.HostSeckeyError, None),
    "invalid pmsgs1: fewer entries than participants": (ParameterError, None),
    "invalid pmsgs1: more entries than participants": (ParameterError, None),
    "invalid pmsgs2: fewer entries than participants": (ParameterError, None),
    "invalid pmsgs2: more entries than participants": (ParameterError, None),
    "participant (id 1) message has an enc_shares list of invalid length": (
        FaultyParticipantError,
        1,
    ),
    "missing simplpedpop participant message at index 0": (FaultyParticipantError, 0),
    "missing public nonce in pmsg1 (index 1)": (FaultyParticipantError, 1),
    "participant with id 1 sent a short signature": (FaultyParticipantError, 1),
    "invalid cmsg2: length is invalid (missing last signature)": (FaultyCoordinatorError, None),
    "invalid cmsg2: length is invalid (extra data appended)": (FaultyCoordinatorError, None),
    "invalid cmsg1: missing encrypted secret shares": (FaultyCoordinatorError, None),
}

ERROR_TYPES: dict[str, type[TmpcError]] = {
    "HostSeckeyError": dkg.HostSeckeyError,
    "ThresholdOrCountError": dkg.ThresholdOrCountError,
    "InvalidHostPubkeyError": dkg.InvalidHostPubkeyError,
    "DuplicateHostPubkeyError": dkg.DuplicateHostPubkeyError,
    "RandomnessError": dkg.RandomnessError,
    "RecoveryDataError": dkg.RecoveryDataError,
    "FaultyParticipantError": FaultyParticipantError,
    "FaultyCoordinatorError": FaultyCoordinatorError,
    "FaultyParticipantOrCoordinatorError": dkg.FaultyParticipantOrCoordinatorError,
    "UnknownFaultyParticipantOrCoordinatorError": dkg.UnknownFaultyParticipantOrCoordinatorError,
}


def expect_error(fn: Callable[[], object], expected: dict[str, Any], comment: str) -> TmpcError:
    """Run ``fn``; check the error's exact type, blamed party and message against the vector."""
    with pytest.raises(TmpcError) as info:
        fn()
    err = info.value
    if expected["type"] == "ValueError":
        cls, culprit = VALUE_ERRORS[comment]
    else:
        cls, culprit = ERROR_TYPES[expected["type"]], expected.get("participantId")
    assert type(err) is cls, (type(err), cls)
    if isinstance(err, ProtocolError):
        # Exactly the named participant, and nobody when the coordinator is blamed.
        assert err.culprits == (() if culprit is None else (culprit,))
    if isinstance(err, dkg.InvalidHostPubkeyError):
        assert err.participant_id == culprit
    if isinstance(err, dkg.DuplicateHostPubkeyError):
        assert (err.participant_id1, err.participant_id2) == (
            expected["participantId1"],
            expected["participantId2"],
        )
    if "message" in expected:
        assert str(err) == expected["message"]
    return err


def params_of(p: dict[str, Any]) -> dkg.SessionParams:
    return dkg.SessionParams(tuple(hx(h) for h in p["hostpubkeys"]), p["t"])


def check_output(out: dkg.DKGOutput, expected: dict[str, Any]) -> None:
    if expected["secshare"] is None:
        assert out.secshare is None
    else:
        assert out.secshare is not None
        assert SECP256K1.encode_scalar(out.secshare) == hx(expected["secshare"])
    assert out.threshold_pubkey.encode() == hx(expected["threshPk"])
    assert [P.encode() for P in out.pubshares] == [hx(h) for h in expected["pubshares"]]


def check_cert(params: dkg.SessionParams, recovery_data: bytes) -> None:
    """Independent verifier: every CertEq signature in the recovery data checks in coincurve."""
    n = params.n
    cert = recovery_data[-64 * n :]
    eq_input = recovery_data[: -64 * n]
    for i, pk in enumerate(params.hostpubkeys):
        msg = chilldkg.certeq_message(params.suite, eq_input, i)
        assert coincurve.PublicKeyXOnly(pk[1:]).verify(cert[64 * i : 64 * i + 64], msg)


def cases(name: str) -> list[Any]:
    """``pytest.param(group, case)`` for every case of a vector file, with readable ids."""
    data = load_json(f"chilldkg/{name}_vectors.json")
    groups = data.get("testGroups", [data])
    out = []
    for gi, group in enumerate(groups):
        for kind in ("validTestCases", "errorTestCases"):
            for case in group.get(kind, []):
                tid = f"g{gi}-tc{case['tcId']}-{case['comment'][:50]}"
                out.append(pytest.param(group, case, id=tid))
    return out


@pytest.mark.parametrize(("group", "case"), cases("hostpubkey_gen"))
def test_hostpubkey_gen(group: dict[str, Any], case: dict[str, Any]) -> None:
    sk = hx(case["hostseckey"])
    if "expectedError" in case:
        expect_error(lambda: dkg.hostpubkey_gen(sk), case["expectedError"], case["comment"])
        return
    pk = dkg.hostpubkey_gen(sk)
    assert pk == hx(case["expectedHostpubkey"])
    assert coincurve.PrivateKey(sk).public_key.format(compressed=True) == pk


@pytest.mark.parametrize(("group", "case"), cases("params_hash"))
def test_params_hash(group: dict[str, Any], case: dict[str, Any]) -> None:
    params = params_of(case["params"])
    if "expectedError" in case:
        expect_error(lambda: dkg.params_hash(params), case["expectedError"], case["comment"])
        return
    assert dkg.params_hash(params) == hx(case["expectedParamsHash"])


@pytest.mark.parametrize(("group", "case"), cases("participant_step1"))
def test_participant_step1(group: dict[str, Any], case: dict[str, Any]) -> None:
    sk, params, rnd = hx(case["hostseckey"]), params_of(case["params"]), hx(case["random"])
    if "expectedError" in case:
        expect_error(
            lambda: dkg.participant_step1(sk, params, rnd), case["expectedError"], case["comment"]
        )
        return
    _, pmsg1 = dkg.participant_step1(sk, params, rnd)
    assert pmsg1 == hx(case["expectedPmsg1"])


def _state1(group: dict[str, Any]) -> dkg.ParticipantState1:
    state1, pmsg1 = dkg.participant_step1(
        hx(group["hostseckey"]), params_of(group["params"]), hx(group["random"])
    )
    assert pmsg1 == hx(group["pmsg1"])
    return state1


@pytest.mark.parametrize(("group", "case"), cases("participant_step2"))
def test_participant_step2(group: dict[str, Any], case: dict[str, Any]) -> None:
    state1 = _state1(group)
    sk = hx(case.get("hostseckey", group["hostseckey"]))
    aux = hx(case.get("auxRand", group["auxRand"]))
    cmsg1 = hx(case["cmsg1"])
    if "expectedError" in case:
        expect_error(
            lambda: dkg.participant_step2(sk, state1, cmsg1, aux),
            case["expectedError"],
            case["comment"],
        )
        return
    _, pmsg2 = dkg.participant_step2(sk, state1, cmsg1, aux)
    assert pmsg2 == hx(case["expectedPmsg2"])


@pytest.mark.parametrize(("group", "case"), cases("participant_finalize"))
def test_participant_finalize(group: dict[str, Any], case: dict[str, Any]) -> None:
    state1 = _state1(group)
    state2, pmsg2 = dkg.participant_step2(
        hx(group["hostseckey"]), state1, hx(group["cmsg1"]), hx(group["auxRand"])
    )
    assert pmsg2 == hx(group["pmsg2"])
    cmsg2 = hx(case["cmsg2"])
    if "expectedError" in case:
        expect_error(
            lambda: dkg.participant_finalize(state2, cmsg2), case["expectedError"], case["comment"]
        )
        return
    out, recovery_data = dkg.participant_finalize(state2, cmsg2)
    check_output(out, case["expectedOutput"]["dkgOutput"])
    assert recovery_data == hx(case["expectedOutput"]["recoveryData"])
    check_cert(state1.params, recovery_data)


@pytest.mark.parametrize(("group", "case"), cases("participant_investigate"))
def test_participant_investigate(group: dict[str, Any], case: dict[str, Any]) -> None:
    state1 = _state1(group)
    cmsg1 = hx(group["cmsg1Pool"][case["cmsg1Index"]])
    with pytest.raises(dkg.UnknownFaultyParticipantOrCoordinatorError) as info:
        dkg.participant_step2(hx(group["hostseckey"]), state1, cmsg1, hx(group["auxRand"]))
    assert info.value.culprits == ()
    cinv = hx(case["cinvMsg"])
    expect_error(
        lambda: dkg.participant_investigate(info.value, cinv),
        case["expectedError"],
        case["comment"],
    )


@pytest.mark.parametrize(("group", "case"), cases("coordinator_step1"))
def test_coordinator_step1(group: dict[str, Any], case: dict[str, Any]) -> None:
    pmsgs1 = [hx(group["pmsg1Pool"][i]) for i in case["pmsg1Indices"]]
    params = params_of(case["params"])
    if "expectedError" in case:
        expect_error(
            lambda: dkg.coordinator_step1(pmsgs1, params), case["expectedError"], case["comment"]
        )
        return
    _, cmsg1 = dkg.coordinator_step1(pmsgs1, params)
    assert cmsg1 == hx(case["expectedCmsg1"])


@pytest.mark.parametrize(("group", "case"), cases("coordinator_finalize"))
def test_coordinator_finalize(group: dict[str, Any], case: dict[str, Any]) -> None:
    params = params_of(group["params"])
    cstate, cmsg1 = dkg.coordinator_step1([hx(m) for m in group["pmsgs1"]], params)
    assert cmsg1 == hx(group["cmsg1"])
    pmsgs2 = [hx(group["pmsg2Pool"][i]) for i in case["pmsg2Indices"]]
    if "expectedError" in case:
        expect_error(
            lambda: dkg.coordinator_finalize(cstate, pmsgs2),
            case["expectedError"],
            case["comment"],
        )
        return
    cmsg2, out, recovery_data = dkg.coordinator_finalize(cstate, pmsgs2)
    assert cmsg2 == hx(case["expectedOutput"]["cmsg2"])
    check_output(out, case["expectedOutput"]["dkgOutput"])
    assert recovery_data == hx(case["expectedOutput"]["recoveryData"])
    check_cert(params, recovery_data)


@pytest.mark.parametrize(("group", "case"), cases("coordinator_investigate"))
def test_coordinator_investigate(group: dict[str, Any], case: dict[str, Any]) -> None:
    params = params_of(group["params"])
    cinvs = dkg.coordinator_investigate([hx(m) for m in group["pmsgs1"]], params)
    assert cinvs == [hx(m) for m in case["expectedCinvMsgs"]]


@pytest.mark.parametrize(("group", "case"), cases("recover"))
def test_recover(group: dict[str, Any], case: dict[str, Any]) -> None:
    data = hx(case["recoveryData"])
    sk = None if case["hostseckey"] is None else hx(case["hostseckey"])

    def run() -> tuple[dkg.DKGOutput, dkg.SessionParams]:
        if sk is None:
            return dkg.coordinator_recover(data)
        return dkg.participant_recover(sk, data)

    if "expectedError" in case:
        expect_error(run, case["expectedError"], case["comment"])
        # The brief's recover() entry point fails the same way.
        with pytest.raises(type(expect_error(run, case["expectedError"], case["comment"]))):
            dkg.recover(SECP256K1, sk, data)
        return
    out, params = run()
    check_output(out, case["expectedOutput"]["dkgOutput"])
    assert params == params_of(case["expectedOutput"]["params"])
    check_cert(params, data)
    res = dkg.recover(SECP256K1, sk, data)
    assert res.threshold_pubkey == out.threshold_pubkey
    assert res.pubshares == out.pubshares
    assert res.threshold == params.t
    if isinstance(res, dkg.DKGResult):
        assert res.secshare == out.secshare
        assert res.identifier == res.index + 1
        assert params.hostpubkeys[res.index] == dkg.hostpubkey_gen(sk or b"")
