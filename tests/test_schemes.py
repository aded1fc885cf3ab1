"""End to end through tmpc.schemes: DKG, every t-subset signs, independent verifiers accept."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tmpc import schemes
from tmpc.cli.demo import independent_verify
from tmpc.errors import FaultyParticipantError, KeystoreError, ParameterError, TmpcError

SCHEME_IDS = list(schemes.SCHEMES)


@pytest.mark.parametrize("scheme_id", SCHEME_IDS)
def test_every_3_subset_of_5_signs(scheme_id: str) -> None:
    record, shares = schemes.keygen(scheme_id, 3, 5)
    msg = bytes(range(32))
    for subset in itertools.combinations(shares, 3):
        sig = schemes.sign(record, list(subset), msg)
        assert independent_verify(scheme_id, record.public_key, msg, sig)
        assert schemes.verify(scheme_id, record.public_key, msg, sig)
        assert not schemes.verify(scheme_id, record.public_key, bytes(32), sig)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scheme_id=st.sampled_from(SCHEME_IDS),
    tn=st.integers(2, 10).flatmap(lambda n: st.tuples(st.integers(1, min(n, 7)), st.just(n))),
    seed=st.integers(0, 2**32),
)
def test_random_subsets_sign_property(scheme_id: str, tn: tuple[int, int], seed: int) -> None:
    t, n = tn
    record, shares = schemes.keygen(scheme_id, t, n)
    rnd = random.Random(seed)
    msg = rnd.randbytes(32)
    for _ in range(2):
        subset = rnd.sample(shares, rnd.randint(t, n))
        sig = schemes.sign(record, subset, msg)
        assert independent_verify(scheme_id, record.public_key, msg, sig)


@pytest.mark.parametrize("scheme_id", SCHEME_IDS)
def test_fewer_than_t_refused_and_wrong_share_named(scheme_id: str) -> None:
    record, shares = schemes.keygen(scheme_id, 3, 5)
    with pytest.raises(ParameterError):
        schemes.sign(record, shares[:2], b"m" * 32)
    with pytest.raises(ParameterError):
        schemes.sign(record, [shares[0], shares[0], shares[1]], b"m" * 32)
    _other_record, other_shares = schemes.keygen(scheme_id, 3, 5)
    with pytest.raises(KeystoreError, match="party 2"):
        schemes.check_share(record, other_shares[1])
    schemes.check_share(record, shares[1])
    mixed = [shares[0], other_shares[1], shares[2]]
    if scheme_id == "schnorr-bip340":
        # BIP445 Sign: the signer itself refuses a share whose d*G is not among the pubshares.
        with pytest.raises(ParameterError):
            schemes.sign(record, mixed, b"m" * 32)
    else:
        # RFC 9591: the coordinator's share verification names the signer.
        with pytest.raises(FaultyParticipantError) as ei:
            schemes.sign(record, mixed, b"m" * 32)
        assert ei.value.culprits == (2,)


@pytest.mark.parametrize("scheme_id", SCHEME_IDS)
def test_wallet_record_round_trip_and_tamper(scheme_id: str) -> None:
    record, _ = schemes.keygen(scheme_id, 2, 3)
    doc = json.loads(json.dumps(record.to_json()))
    again = schemes.WalletRecord.from_json(doc)
    assert again.public_key == record.public_key and again.wallet_id == record.wallet_id
    # Swapping two verification shares breaks the interpolation check.
    vs = doc["verification_shares"]
    vs["1"], vs["2"] = vs["2"], vs["1"]
    with pytest.raises(KeystoreError):
        schemes.WalletRecord.from_json(doc)


def test_secrets_never_in_logs_reprs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    for scheme_id in SCHEME_IDS:
        record, shares = schemes.keygen(scheme_id, 2, 3)
        group = schemes.get_scheme(scheme_id).group
        needles = []
        for s in shares:
            enc = group.encode_scalar(s.secshare)
            needles += [enc.hex(), str(s.secshare), s.hostseckey.hex()]
        texts += [repr(s) for s in shares] + [repr(record), json.dumps(record.to_json())]
        schemes.sign(record, shares[:2], b"x" * 32)
        for bad in (shares[:1], [shares[0], shares[0]]):
            try:
                schemes.sign(record, bad, b"x" * 32)
            except TmpcError as exc:
                texts.append(str(exc) + repr(exc))
        texts.append(caplog.text)
        blob = "\n".join(texts)
        for needle in needles:
            assert needle not in blob


def test_unknown_scheme_and_bad_parameters() -> None:
    with pytest.raises(ParameterError):
        schemes.keygen("rsa", 2, 3)
    with pytest.raises(ParameterError):
        schemes.keygen("ed25519", 4, 3)
    with pytest.raises(ParameterError):
        schemes.keygen("ed25519", 0, 3)
    with pytest.raises(ParameterError):
        schemes.keygen("ed25519", 1, 1)


def test_faulty_participant_error_shape() -> None:
    err = FaultyParticipantError("x", 3)
    assert err.culprits == (3,)


def _tamper_cases(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Edits of single fields of wallet.json that must each be refused."""
    cases = []
    d = json.loads(json.dumps(doc))
    vs = d["verification_shares"]
    vs["3"] = vs["1"]  # a party beyond the first t
    cases.append(("verification share of party 3", d))
    d = json.loads(json.dumps(doc))
    rd = bytearray(bytes.fromhex(d["recovery_data"]))
    rd[10] ^= 1
    d["recovery_data"] = rd.hex()
    cases.append(("recovery data", d))
    d = json.loads(json.dumps(doc))
    d["epoch"] = 7
    cases.append(("epoch", d))
    return cases


@pytest.mark.parametrize("scheme_id", ["schnorr-bip340", "ecdsa-secp256k1", "ed25519"])
@pytest.mark.parametrize("case", [0, 1, 2], ids=["verification-share", "recovery-data", "epoch"])
def test_edited_wallet_json_is_refused(scheme_id: str, case: int) -> None:
    record, _ = schemes.keygen(scheme_id, 2, 3)
    _what, bad = _tamper_cases(record.to_json())[case]
    with pytest.raises(KeystoreError):
        schemes.WalletRecord.from_json(bad)


def test_edited_taproot_merkle_root_is_refused() -> None:
    record, _ = schemes.keygen("schnorr-bip340", 2, 3)
    doc = record.to_json()
    attacker = dataclasses.replace(record, taproot_merkle_root=b"\x11" * 32)
    forged = attacker.to_json()
    # Every derived field rewritten consistently: the wallet id moved, so no share file opens.
    assert forged["wallet_id"] != doc["wallet_id"]
    bad = json.loads(json.dumps(doc))
    bad["taproot"]["merkle_root"] = "11" * 32
    bad["public_key"] = forged["public_key"]
    bad["taproot"]["output_key"] = forged["public_key"]
    with pytest.raises(KeystoreError):
        schemes.WalletRecord.from_json(bad)
    bad["taproot"]["merkle_root"] = "11" * 31
    with pytest.raises(KeystoreError):
        schemes.WalletRecord.from_json(bad)


def test_scheme_capabilities() -> None:
    """What each scheme can do is asked of its object; the ids stay the stored interface."""
    kind = schemes.SignatureKind
    caps = {
        s.id: (s.signature_kind, s.dkls23, s.taproot, s.bip32, s.chains)
        for s in schemes.SCHEMES.values()
    }
    assert caps == {
        "schnorr-bip340": (kind.BIP340, False, True, True, ("bitcoin",)),
        "ed25519": (kind.ED25519, False, False, False, ("solana",)),
        "frost-secp256k1": (kind.RFC9591, False, False, False, ()),
        "ecdsa-secp256k1": (kind.ECDSA, True, False, True, ("bitcoin", "ethereum")),
    }
    # RFC 9591 schemes carry their ciphersuite; BIP445 and DKLs23 sign without one.
    for s in schemes.SCHEMES.values():
        rfc9591 = s.signature_kind in (kind.ED25519, kind.RFC9591)
        assert (s.suite is not None) == rfc9591, s.id
