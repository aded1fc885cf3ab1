"""ECDSA wallets end to end: CLI, presignature stores, deny-list after a failed check."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import coincurve
import pytest
from eth_keys import keys as eth_keys_mod

from tests.test_cli import assert_one_line_error, run
from tmpc import schemes
from tmpc.chains.addresses import ethereum_address
from tmpc.errors import KeystoreError, ProtocolError
from tmpc.group import SECP256K1
from tmpc.local import ecdsa as ecdsa_local
from tmpc.protocols.ecdsa import dkls23
from tmpc.protocols.ecdsa import machine as ecdsa_machine
from tmpc.protocols.ecdsa.errors import PairwiseCheckError
from tmpc.state.store import DenyList, PairwiseStore, PresignatureStore, StateDB, state_db_path


def _recovered_eth_address(sig64: bytes, recid: int, digest: bytes) -> str:
    key = coincurve.PublicKey.from_signature_and_message(
        sig64 + bytes([recid]), digest, hasher=None
    )
    via_eth_keys = eth_keys_mod.Signature(sig64 + bytes([recid])).recover_public_key_from_msg_hash(
        digest
    )
    assert via_eth_keys.to_checksum_address() == ethereum_address(key.format())
    return ethereum_address(key.format())


@pytest.fixture(scope="module")
def wallet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ecdsa") / "w"
    run(
        "keygen", "--scheme", "ecdsa-secp256k1", "-t", "3", "-n", "5", "--out", str(out), check=True
    )
    return out


def test_address_and_full_signature(wallet: Path) -> None:
    addr = json.loads(run("address", "--wallet", str(wallet), "--json", check=True).stdout)
    assert addr["ethereum"].startswith("0x") and addr["bitcoin_p2wpkh"].startswith("bc1q")
    digest = hashlib.sha256(b"withdraw 1 ETH").digest()
    out = json.loads(
        run(
            "sign",
            "--wallet",
            str(wallet),
            "--signers",
            "2,4,5",
            "--message",
            digest.hex(),
            "--json",
            check=True,
        ).stdout
    )
    assert out["presignature_used"] is False
    pk, sig = bytes.fromhex(out["public_key"]), bytes.fromhex(out["signature"])
    assert len(pk) == 33 and len(sig) == 64
    assert coincurve.PublicKey(pk).verify(bytes.fromhex(out["der"]), digest, hasher=None)
    assert _recovered_eth_address(sig, out["recovery_id"], digest) == addr["ethereum"]
    assert out["ethereum_address"] == addr["ethereum"]
    ok = run("verify", "--wallet", str(wallet), "--message", digest.hex(), "--signature", sig.hex())
    assert ok.returncode == 0


def test_presign_then_sign_uses_each_presignature_once(wallet: Path) -> None:
    made = json.loads(
        run(
            "presign",
            "--wallet",
            str(wallet),
            "--signers",
            "1,2,3",
            "--count",
            "2",
            "--json",
            check=True,
        ).stdout
    )
    assert made["stored"] >= 2
    seen_r = set()
    used = []
    for k in range(made["stored"] + 1):
        digest = hashlib.sha256(f"tx {k}".encode()).digest()
        out = json.loads(
            run(
                "sign",
                "--wallet",
                str(wallet),
                "--signers",
                "1,2,3",
                "--message",
                digest.hex(),
                "--json",
                check=True,
            ).stdout
        )
        used.append(out["presignature_used"])
        sig = bytes.fromhex(out["signature"])
        assert _recovered_eth_address(sig, out["recovery_id"], digest) == out["ethereum_address"]
        seen_r.add(sig[:32])
    # Every stored presignature was used once, then the full protocol ran.
    assert used == [True] * made["stored"] + [False]
    assert len(seen_r) == len(used)


def test_pairwise_setup_command(wallet: Path) -> None:
    out = json.loads(
        run(
            "pairwise-setup", "--wallet", str(wallet), "--parties", "1,2", "--json", check=True
        ).stdout
    )
    assert out["pairs"] == [[1, 2]]
    digest = hashlib.sha256(b"after redo").digest()
    signed = json.loads(
        run(
            "sign",
            "--wallet",
            str(wallet),
            "--signers",
            "1,2,4",
            "--message",
            digest.hex(),
            "--json",
            check=True,
        ).stdout
    )
    sig = bytes.fromhex(signed["signature"])
    assert _recovered_eth_address(sig, signed["recovery_id"], digest) == signed["ethereum_address"]
    assert_one_line_error(run("pairwise-setup", "--wallet", str(wallet), "--parties", "1"))


def test_ecdsa_user_errors(wallet: Path) -> None:
    assert_one_line_error(
        run("sign", "--wallet", str(wallet), "--signers", "1,2,3", "--message", "00" * 31)
    )
    assert_one_line_error(
        run("presign", "--wallet", str(wallet), "--signers", "1,2", "--count", "1")
    )
    assert_one_line_error(
        run("presign", "--wallet", str(wallet), "--signers", "1,2,3", "--count", "0")
    )


def _wallet_in_memory(
    tmp_path: Path,
) -> tuple[schemes.WalletRecord, list[schemes.KeyShare], dict[int, bytes]]:
    record, shares = schemes.keygen("ecdsa-secp256k1", 2, 3)
    return record, shares, {s.identifier: bytes([s.identifier]) * 32 for s in shares}


@contextlib.contextmanager
def party2_sends_a_bad_gamma() -> Iterator[None]:
    """While active, party 2 sends party 1 a wrong Gamma^u in presigning round 2 (signer set
    {1, 2}): the DKLs23 consistency check must catch it and name party 2.

    ecdsa_local drives the presigning machines (tmpc.protocols.ecdsa.machine), which call
    ``presign_round2`` by the name they import; both names are patched."""
    real_round2 = dkls23.presign_round2

    def cheating_round2(state: Any, received: Any, **kw: Any) -> Any:
        st, out = real_round2(state, received, **kw)
        if 3 in out or 1 not in out:
            return st, out
        bad = dataclasses.replace(out[1], gamma_u=out[1].gamma_u + SECP256K1.generator())
        return st, {**out, 1: bad}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dkls23, "presign_round2", cheating_round2)
        mp.setattr(ecdsa_machine, "presign_round2", cheating_round2)
        yield


def test_failed_pairwise_check_denies_the_peer_also_after_restart(tmp_path: Path) -> None:
    record, shares, keys = _wallet_in_memory(tmp_path)
    digest = hashlib.sha256(b"m").digest()
    with party2_sends_a_bad_gamma(), pytest.raises(PairwiseCheckError) as ei:
        ecdsa_local.sign(tmp_path, record, shares[:2], keys, digest)
    assert ei.value.culprits == (2,)

    # Honest again, but the pair is refused before any secret-dependent work ...
    with pytest.raises(ProtocolError) as again:
        ecdsa_local.sign(tmp_path, record, shares[:2], keys, digest)
    assert again.value.culprits == (2,)
    # ... also in a fresh process reading the same state databases.
    code = (
        "import sys; from tmpc.state.store import StateDB, DenyList, state_db_path;"
        f"db = StateDB(state_db_path(__import__('pathlib').Path({str(tmp_path)!r}), 1), party=1);"
        f"sys.exit(0 if DenyList(db).is_denied({record.wallet_id!r}, 2) else 1)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
    # Parties 1 and 3 (not involved in the failure) still sign together.
    r_s = ecdsa_local.sign(tmp_path, record, [shares[0], shares[2]], keys, digest)
    assert schemes.verify("ecdsa-secp256k1", record.public_key, digest, r_s.compact)
    # A fresh pairwise setup between 1 and 2 lifts the refusal; the key is unchanged.
    old = schemes.ecdsa_pairwise(shares)
    assert ecdsa_local.redo_pairwise(tmp_path, record, shares[:2], keys) == [(1, 2)]
    fixed = ecdsa_local.sign(tmp_path, record, shares[:2], keys, digest)
    assert schemes.verify("ecdsa-secp256k1", record.public_key, digest, fixed.compact)
    db = StateDB(state_db_path(tmp_path, 1), party=1)
    try:
        blob = PairwiseStore(db, keys[1]).get(record.wallet_id)
    finally:
        db.close()
    assert blob is not None
    redone = dkls23.EcdsaPairwise.from_bytes(blob)
    assert redone.zero_seeds[2] != old[1].zero_seeds[2]
    assert redone.zero_seeds[3] == old[1].zero_seeds[3]


def test_presignature_taken_is_gone_after_restart(tmp_path: Path) -> None:
    record, shares, keys = _wallet_in_memory(tmp_path)
    assert ecdsa_local.presign(tmp_path, record, shares[:2], keys, 1) == 1
    digest = hashlib.sha256(b"once").digest()
    sig = ecdsa_local.sign(tmp_path, record, shares[:2], keys, digest)
    assert sig.from_presignature
    for i in (1, 2):
        db = StateDB(state_db_path(tmp_path, i), party=i)
        try:
            assert PresignatureStore(db, keys[i]).count(record.wallet_id, (1, 2)) == 0
        finally:
            db.close()
    again = ecdsa_local.sign(tmp_path, record, shares[:2], keys, digest)
    assert not again.from_presignature and again.r != sig.r


def test_hd_child_address_and_signature(wallet: Path) -> None:
    child = json.loads(
        run("address", "--wallet", str(wallet), "--path", "m/0/7", "--json", check=True).stdout
    )
    root = json.loads(run("address", "--wallet", str(wallet), "--json", check=True).stdout)
    assert child["ethereum"] != root["ethereum"] and child["xpub"] == root["xpub"]
    digest = hashlib.sha256(b"child spend").digest()
    out = json.loads(
        run(
            "sign",
            "--wallet",
            str(wallet),
            "--signers",
            "3,4,5",
            "--message",
            digest.hex(),
            "--path",
            "m/0/7",
            "--json",
            check=True,
        ).stdout
    )
    sig = bytes.fromhex(out["signature"])
    assert _recovered_eth_address(sig, out["recovery_id"], digest) == child["ethereum"]
    assert out["ethereum_address"] == child["ethereum"]
    ok = run(
        "verify",
        "--wallet",
        str(wallet),
        "--message",
        digest.hex(),
        "--signature",
        sig.hex(),
        "--path",
        "m/0/7",
    )
    assert ok.returncode == 0
    assert_one_line_error(run("address", "--wallet", str(wallet), "--path", "m/0'/7"))


def test_presignature_is_bound_to_its_path(tmp_path: Path) -> None:
    """A presignature made for one BIP32 path is never finished for another (CVE-2025-66017)."""
    record, shares, keys = _wallet_in_memory(tmp_path)
    assert ecdsa_local.presign(tmp_path, record, shares[:2], keys, 1, path="m/0/1") == 1
    digest = hashlib.sha256(b"late path change").digest()
    other = ecdsa_local.sign(tmp_path, record, shares[:2], keys, digest, path="m/0/2")
    assert not other.from_presignature
    assert schemes.verify(
        "ecdsa-secp256k1", schemes.public_key_at(record, "m/0/2"), digest, other.compact
    )
    db = StateDB(state_db_path(tmp_path, 1), party=1)
    try:
        pool = f"{record.wallet_id}@m/0/1"
        assert PresignatureStore(db, keys[1]).count(pool, (1, 2)) == 1
    finally:
        db.close()
    bound = ecdsa_local.sign(tmp_path, record, shares[:2], keys, digest, path="m/0/1")
    assert bound.from_presignature
    assert schemes.verify(
        "ecdsa-secp256k1", schemes.public_key_at(record, "m/0/1"), digest, bound.compact
    )


def test_lost_state_database_is_reported_not_blamed_on_a_peer(tmp_path: Path) -> None:
    record, shares, keys = _wallet_in_memory(tmp_path)
    ecdsa_local.redo_pairwise(tmp_path, record, shares[:2], keys)
    state_db_path(tmp_path, 1).unlink()  # party 1 lost its database (and its redone setup)
    for suffix in ("-wal", "-shm"):
        Path(str(state_db_path(tmp_path, 1)) + suffix).unlink(missing_ok=True)
    digest = hashlib.sha256(b"after loss").digest()
    with pytest.raises(KeystoreError, match="pairwise-setup --parties 1,2"):
        ecdsa_local.sign(tmp_path, record, shares[:2], keys, digest)
    db = StateDB(state_db_path(tmp_path, 2), party=2)
    try:
        assert not DenyList(db).is_denied(record.wallet_id, 1)
    finally:
        db.close()
    ecdsa_local.redo_pairwise(tmp_path, record, shares[:2], keys)
    sig = ecdsa_local.sign(tmp_path, record, shares[:2], keys, digest)
    assert schemes.verify("ecdsa-secp256k1", record.public_key, digest, sig.compact)
