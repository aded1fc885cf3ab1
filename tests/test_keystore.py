"""Share files at rest: round trip, wrong passphrase, tampering, swapping, no overwrite."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tmpc.errors import CryptoError, KeystoreError
from tmpc.state.keystore import (
    FAST_KDF_FOR_TESTS,
    KdfParams,
    ShareSecret,
    open_share,
    seal_share,
    write_new_file,
)

SECRET = ShareSecret(secrets.token_bytes(32), secrets.token_bytes(32))


def _seal(party: int = 1, wallet: str = "w1", pw: str = "correct horse") -> bytes:
    return seal_share(
        SECRET,
        wallet_id=wallet,
        party=party,
        epoch=0,
        passphrase=pw,
        kdf=FAST_KDF_FOR_TESTS,
        insecure_kdf_for_tests=True,
    )


def test_round_trip_and_no_secret_in_file() -> None:
    data = _seal()
    assert SECRET.secshare.hex().encode() not in data
    assert SECRET.hostseckey.hex().encode() not in data
    assert SECRET.secshare.hex() not in repr(SECRET)
    got = open_share(data, passphrase="correct horse", wallet_id="w1", party=1, epoch=0)
    assert got == SECRET


def test_wrong_passphrase_is_opaque() -> None:
    with pytest.raises(CryptoError) as ei:
        open_share(_seal(), passphrase="wrong", wallet_id="w1", party=1)
    assert str(ei.value) == "wrong passphrase or tampered share file"


@pytest.mark.parametrize("field", ["ciphertext", "nonce"])
def test_edited_ciphertext_or_nonce(field: str) -> None:
    doc = json.loads(_seal())
    raw = bytearray(bytes.fromhex(doc[field]))
    raw[0] ^= 1
    doc[field] = raw.hex()
    with pytest.raises(CryptoError):
        open_share(json.dumps(doc).encode(), passphrase="correct horse", wallet_id="w1", party=1)


def test_edited_header_fields_fail_authentication() -> None:
    # Re-labelling another party's file as ours passes the clear-text checks but not the AEAD.
    doc = json.loads(_seal(party=2))
    doc["party"] = 3
    with pytest.raises(CryptoError):
        open_share(json.dumps(doc).encode(), passphrase="correct horse", wallet_id="w1", party=3)
    doc = json.loads(_seal())
    doc["epoch"] = 1
    with pytest.raises(CryptoError):
        open_share(json.dumps(doc).encode(), passphrase="correct horse", wallet_id="w1", party=1)


def test_swapped_file_named_clearly() -> None:
    with pytest.raises(KeystoreError, match="not party 3"):
        open_share(_seal(party=2), passphrase="correct horse", wallet_id="w1", party=3)
    with pytest.raises(KeystoreError, match="another wallet"):
        open_share(_seal(wallet="w2"), passphrase="correct horse", wallet_id="w1", party=1)


@pytest.mark.parametrize("junk", [b"", b"{", b"[]", b'{"format": "tmpc-share"}', b"\xff\xfe"])
def test_corrupt_file(junk: bytes) -> None:
    with pytest.raises(KeystoreError):
        open_share(junk, passphrase="x", wallet_id="w1", party=1)


def test_weak_or_absurd_kdf_parameters_refused() -> None:
    doc = json.loads(_seal())
    doc["kdf"]["memory_kib"] = 1 << 30
    with pytest.raises(KeystoreError):
        open_share(json.dumps(doc).encode(), passphrase="correct horse", wallet_id="w1", party=1)


def test_empty_passphrase_refused() -> None:
    with pytest.raises(KeystoreError):
        _seal(pw="")


def test_write_new_file_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "party-1.share"
    write_new_file(target, b"first")
    with pytest.raises(KeystoreError):
        write_new_file(target, b"second")
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["party-1.share"]
    assert target.stat().st_mode & 0o777 == 0o600


def test_weak_kdf_refused_for_sealing() -> None:
    for kdf in (FAST_KDF_FOR_TESTS, KdfParams(iterations=1), KdfParams(memory_kib=8192)):
        with pytest.raises(KeystoreError, match="too weak"):
            seal_share(SECRET, wallet_id="w1", party=1, epoch=0, passphrase="pw", kdf=kdf)


@pytest.mark.parametrize(
    ("field", "value"), [("memory_kib", 4 * 65536 + 1), ("iterations", 13), ("lanes", 17)]
)
def test_costly_kdf_header_refused_before_deriving(field: str, value: int) -> None:
    doc = json.loads(_seal())
    doc["kdf"][field] = value
    with pytest.raises(KeystoreError):
        open_share(json.dumps(doc).encode(), passphrase="correct horse", wallet_id="w1", party=1)
