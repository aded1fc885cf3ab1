"""Wycheproof ECDSA secp256k1 vectors through tmpc's verifier, plus format round trips.

- ``ecdsa_secp256k1_sha256_bitcoin_test.json``: Bitcoin's rules (strict DER, low-S required),
  run with ``der=True, require_low_s=True``.
- ``ecdsa_secp256k1_sha256_test.json``: plain ECDSA over DER (high S allowed), run with
  ``der=True, require_low_s=False``.

The test hashes each message with SHA-256; the verifier takes the 32-byte digest. Both files
have only "valid" and "invalid" results (checked below); tmpc's verifier is strict, so an
"acceptable" case (a lenient BER encoding, in other Wycheproof files) would be rejected -- the
test would expect False for it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import coincurve
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vectors import load_json
from tmpc.errors import DecodeError
from tmpc.group import SECP256K1
from tmpc.primitives.ecdsa_format import (
    compact,
    der_decode_strict,
    der_encode,
    ecdsa_verify,
    normalize_low_s,
    recovery_id,
)

N = SECP256K1.order

BITCOIN = "wycheproof/ecdsa_secp256k1_sha256_bitcoin_test.json"
PLAIN = "wycheproof/ecdsa_secp256k1_sha256_test.json"


def _cases(relpath: str) -> list[Any]:
    doc = load_json(relpath)
    out = []
    for group in doc["testGroups"]:
        assert group["publicKey"]["curve"] == "secp256k1" and group["sha"] == "SHA-256"
        pk = bytes.fromhex(group["publicKey"]["uncompressed"])
        for t in group["tests"]:
            out.append(pytest.param(pk, t, id=f"tc{t['tcId']}"))
    assert len(out) == doc["numberOfTests"]
    return out


def _expected(test: dict[str, Any]) -> bool:
    # "acceptable" is absent from both files; a strict verifier rejects it.
    return bool(test["result"] == "valid")


def _run(pk: bytes, test: dict[str, Any], *, low_s: bool) -> None:
    digest = hashlib.sha256(bytes.fromhex(test["msg"])).digest()
    sig = bytes.fromhex(test["sig"])
    got = ecdsa_verify(pk, digest, sig, der=True, require_low_s=low_s)
    assert got is _expected(test), (test["comment"], test["flags"])
    # The same key compressed gives the same answer.
    cpk = coincurve.PublicKey(pk).format(True)
    assert ecdsa_verify(cpk, digest, sig, der=True, require_low_s=low_s) is got


@pytest.mark.parametrize(("pk", "test"), _cases(BITCOIN))
def test_wycheproof_bitcoin(pk: bytes, test: dict[str, Any]) -> None:
    _run(pk, test, low_s=True)


@pytest.mark.parametrize(("pk", "test"), _cases(PLAIN))
def test_wycheproof_plain(pk: bytes, test: dict[str, Any]) -> None:
    _run(pk, test, low_s=False)


@pytest.mark.parametrize("relpath", [BITCOIN, PLAIN])
def test_wycheproof_files_have_no_acceptable_cases(relpath: str) -> None:
    results = {t["result"] for g in load_json(relpath)["testGroups"] for t in g["tests"]}
    assert results == {"valid", "invalid"}


def test_bitcoin_file_exercises_low_s_rule() -> None:
    """The malleability cases are valid as plain ECDSA and refused only by the low-S rule."""
    doc = load_json(BITCOIN)
    hits = 0
    for group in doc["testGroups"]:
        pk = bytes.fromhex(group["publicKey"]["uncompressed"])
        for t in group["tests"]:
            if "SignatureMalleabilityBitcoin" not in t["flags"]:
                continue
            digest = hashlib.sha256(bytes.fromhex(t["msg"])).digest()
            sig = bytes.fromhex(t["sig"])
            assert not ecdsa_verify(pk, digest, sig, der=True, require_low_s=True)
            assert ecdsa_verify(pk, digest, sig, der=True, require_low_s=False)
            hits += 1
    assert hits > 0


# ---------------------------------------------------------------- property tests

scalars = st.integers(min_value=1, max_value=N - 1)


@settings(max_examples=200, deadline=None)
@given(r=scalars, s=scalars)
def test_der_round_trip(r: int, s: int) -> None:
    der = der_encode(r, s)
    assert 8 <= len(der) <= 72
    assert der_decode_strict(der) == (r, s)
    # libsecp256k1 parses and re-serialises it byte for byte (it is canonical DER).
    from coincurve.ecdsa import cdata_to_der, der_to_cdata

    assert cdata_to_der(der_to_cdata(der)) == der
    # Any single trailing byte or a truncation is refused.
    with pytest.raises(DecodeError):
        der_decode_strict(der + b"\x00")
    with pytest.raises(DecodeError):
        der_decode_strict(der[:-1])


@settings(max_examples=40, deadline=None)
@given(k=scalars, msg=st.binary(max_size=64))
def test_low_s_normalisation_keeps_recovery_id(k: int, msg: bytes) -> None:
    key = coincurve.PrivateKey(k.to_bytes(32, "big"))
    digest = hashlib.sha256(msg).digest()
    sig65 = key.sign_recoverable(digest, hasher=None)  # libsecp256k1 signs low-s
    r, s, v = int.from_bytes(sig65[:32], "big"), int.from_bytes(sig65[32:64], "big"), sig65[64]
    pub = key.public_key.format(True)
    assert recovery_id(r, s, digest, pub) == v
    # The high-s twin of the same signature: its recovery id has the other parity.
    hi_s = N - s
    v_hi = recovery_id(r, hi_s, digest, pub)
    assert v_hi == v ^ 1
    r2, s2, v2 = normalize_low_s(r, hi_s, v_hi)
    assert (r2, s2, v2) == (r, s, v)
    assert s2 <= N // 2
    # coincurve recovers the key from the normalised signature and recovery id.
    rec = coincurve.PublicKey.from_signature_and_message(
        compact(r2, s2) + bytes([v2]), digest, hasher=None
    )
    assert rec.format(True) == pub
    # Our verifier agrees with libsecp256k1 on both forms and both formats.
    assert ecdsa_verify(pub, digest, compact(r2, s2), der=False, require_low_s=True)
    assert ecdsa_verify(pub, digest, der_encode(r2, s2), der=True, require_low_s=True)
    assert not ecdsa_verify(pub, digest, der_encode(r, hi_s), der=True, require_low_s=True)
    assert ecdsa_verify(pub, digest, der_encode(r, hi_s), der=True, require_low_s=False)
    assert key.public_key.verify(der_encode(r2, s2), digest, hasher=None)
