"""BIP32 public derivation against the BIP32 vectors; derived keys sign (ECDSA, Taproot)."""

from __future__ import annotations

import hashlib
from typing import Any

import coincurve
import pytest

from tests.vectors import load_json
from tmpc import schemes
from tmpc.cli.demo import independent_verify
from tmpc.errors import DecodeError, ParameterError
from tmpc.group import SECP256K1
from tmpc.schemes.hd import ExtendedPublicKey, derive_path, parse_path

FIXTURES = load_json("bip32/bitcoinjs-bip32-fixtures.json")
BITCOIN_SETS = [v for v in FIXTURES["valid"] if v["network"] == "bitcoin"]


def _public_steps() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(id, parent, child) for every non-hardened child step in the vectors."""
    steps = []
    for n, vec in enumerate(BITCOIN_SETS):
        parent = vec["master"]
        for child in vec["children"]:
            if not child.get("hardened"):
                steps.append((f"set{n}-{child['path']}", parent, child))
            parent = child
    return steps


STEPS = _public_steps()


@pytest.mark.parametrize(
    ("parent", "child"), [(p, c) for _, p, c in STEPS], ids=[i for i, _, _ in STEPS]
)
def test_ckdpub_matches_bip32_vectors(parent: dict[str, Any], child: dict[str, Any]) -> None:
    key = SECP256K1.decode_point(bytes.fromhex(parent["pubKey"]))
    got, cc, tweak = derive_path(key, bytes.fromhex(parent["chainCode"]), [child["m"]])
    assert got.encode().hex() == child["pubKey"]
    assert cc.hex() == child["chainCode"]
    assert SECP256K1.base_mul(tweak) + key == got
    # The extended-key serialisation matches too.
    xpub = ExtendedPublicKey.decode(parent["base58"]).derive([child["m"]])
    assert xpub.encode() == child["base58"]


def test_xpub_round_trip_and_invalid() -> None:
    for vec in BITCOIN_SETS:
        assert ExtendedPublicKey.decode(vec["master"]["base58"]).encode() == vec["master"]["base58"]
    for case in FIXTURES["invalid"]["fromBase58"]:
        with pytest.raises(DecodeError):
            ExtendedPublicKey.decode(case["string"])
    with pytest.raises(DecodeError):  # a private extended key is refused
        ExtendedPublicKey.decode(BITCOIN_SETS[0]["master"]["base58Priv"])


@pytest.mark.parametrize(
    "bad", ["m/0'", "m/1/2h", "m/x", "m/2147483648", "m//1", "m/\u00b2", "m/\u0663", "m/\uff10"]
)
def test_paths_refused(bad: str) -> None:
    with pytest.raises(ParameterError):
        parse_path(bad)


def test_parse_path() -> None:
    assert parse_path("m") == [] and parse_path("m/0/5") == [0, 5] and parse_path("7") == [7]


@pytest.mark.parametrize("scheme_id", ["ecdsa-secp256k1", "schnorr-bip340"])
def test_derived_keys_sign(scheme_id: str) -> None:
    record, shares = schemes.keygen(scheme_id, 2, 3)
    digest = hashlib.sha256(b"hd").digest()
    keys = set()
    for path in ("m/0/0", "m/0/5", "m/1/0"):
        pk = schemes.public_key_at(record, path)
        keys.add(pk)
        sig = schemes.sign(record, shares[1:], digest, path=path)
        assert independent_verify(scheme_id, pk, digest, sig)
        assert not independent_verify(scheme_id, record.public_key, digest, sig)
        assert schemes.verify(scheme_id, pk, digest, sig)
    assert len(keys) == 3
    if scheme_id == "ecdsa-secp256k1":
        # The derived key is the BIP32 child of the wallet's xpub.
        xpub = ExtendedPublicKey.decode(schemes.wallet_xpub(record))
        assert xpub.derive([0, 5]).public_key.encode() == schemes.public_key_at(record, "m/0/5")
        coincurve.PublicKey(schemes.public_key_at(record, "m/0/5"))


def test_hd_refused_for_other_schemes() -> None:
    record, _ = schemes.keygen("ed25519", 2, 3)
    with pytest.raises(ParameterError):
        schemes.public_key_at(record, "m/0/1")
