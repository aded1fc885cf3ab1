"""BIP340 vectors through tmpc's own verifier and signer; signatures cross-checked by coincurve."""

from __future__ import annotations

import csv

import coincurve
import pytest

from tests.vectors import VECTORS
from tmpc.primitives.bip340 import (
    pubkey_gen,
    schnorr_sign,
    schnorr_verify,
    schnorr_verify_reference,
)

with open(VECTORS / "bip340" / "test-vectors.csv", newline="") as fh:
    ROWS = list(csv.DictReader(fh))


@pytest.mark.parametrize("row", ROWS, ids=[r["index"] for r in ROWS])
def test_bip340_vector(row: dict[str, str]) -> None:
    pk = bytes.fromhex(row["public key"])
    msg = bytes.fromhex(row["message"])
    sig = bytes.fromhex(row["signature"])
    expected = row["verification result"] == "TRUE"
    assert schnorr_verify(msg, pk, sig) is expected
    assert schnorr_verify_reference(msg, pk, sig) is expected
    if row["secret key"]:
        sk = bytes.fromhex(row["secret key"])
        assert pubkey_gen(sk) == pk
        assert schnorr_sign(msg, sk, bytes.fromhex(row["aux_rand"])) == sig


def test_random_signatures_verify_in_libsecp256k1() -> None:
    for n in range(5):
        sk = coincurve.PrivateKey().secret
        msg = bytes([n]) * 32
        sig = schnorr_sign(msg, sk)
        assert coincurve.PublicKeyXOnly(pubkey_gen(sk)).verify(sig, msg)
        bad = sig[:-1] + bytes([sig[-1] ^ 1])
        assert not schnorr_verify(msg, pubkey_gen(sk), bad)
        assert not schnorr_verify_reference(msg, pubkey_gen(sk), bad)
        assert schnorr_verify_reference(msg, pubkey_gen(sk), sig)
