"""Restored and deleted state: one-time secrets stay used, blame stays recorded.

Attack 1: copy every party's state database aside after presigning, sign digest A, put the
copies back, sign digest B. Without a record outside the wallet directory both signatures
come from one presignature and any co-signer who knows R solves for the key. The single-use
ledger refuses it.

Attack 2: after a failed Gamma check, delete (or restore) the victim's state database so it
forgets the deny-list entry, and run the OT-based protocol with the cheater again. The
ledger re-teaches the entry.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import coincurve
import pytest

from tests.test_cli import assert_one_line_error, run
from tests.test_ecdsa_wallet import party2_sends_a_bad_gamma
from tmpc import schemes
from tmpc.errors import ProtocolError, StateError
from tmpc.local import ecdsa as ecdsa_local
from tmpc.protocols.ecdsa import dkls23
from tmpc.protocols.ecdsa.errors import PairwiseCheckError
from tmpc.state.ledger import Ledger, default_ledger_path
from tmpc.state.store import DenyList, PresignatureStore, StateDB, state_db_path


def _wallet(
    tmp_path: Path,
) -> tuple[schemes.WalletRecord, list[schemes.KeyShare], dict[int, bytes]]:
    record, shares = schemes.keygen("ecdsa-secp256k1", 2, 3)
    wallet = tmp_path / "w"
    wallet.mkdir()
    return record, shares, {s.identifier: bytes([s.identifier]) * 32 for s in shares}


def _verify(record: schemes.WalletRecord, digest: bytes, sig: ecdsa_local.EcdsaSignature) -> None:
    """Independent check with libsecp256k1 through coincurve."""
    assert coincurve.PublicKey(record.public_key).verify(sig.der, digest, hasher=None)


def _stored(wallet: Path, record: schemes.WalletRecord, keys: dict[int, bytes], i: int) -> int:
    with StateDB(state_db_path(wallet, i), party=i) as db:
        return PresignatureStore(db, keys[i]).count(record.wallet_id + "@m", (1, 2))


def test_restoring_every_party_database_does_not_reenable_a_presignature(tmp_path: Path) -> None:
    record, shares, keys = _wallet(tmp_path)
    wallet, backup = tmp_path / "w", tmp_path / "backup"
    assert ecdsa_local.presign(wallet, record, shares[:2], keys, 2) == 2
    shutil.copytree(wallet, backup)  # every party-*.db (and -wal) as of now

    a = hashlib.sha256(b"pay alice").digest()
    first = ecdsa_local.sign(wallet, record, shares[:2], keys, a)
    assert first.from_presignature
    _verify(record, a, first)

    shutil.rmtree(wallet)
    shutil.copytree(backup, wallet)  # the whole wallet directory restored
    assert _stored(wallet, record, keys, 1) == 2  # the used presignature is back in the store

    b = hashlib.sha256(b"pay mallory").digest()
    with pytest.raises(StateError, match="already used") as refused:
        ecdsa_local.sign(wallet, record, shares[:2], keys, b)
    assert "restored from a backup" in str(refused.value)
    # the used one and nothing else is gone: the unused one stays and signs once
    assert _stored(wallet, record, keys, 1) == _stored(wallet, record, keys, 2) == 1
    second = ecdsa_local.sign(wallet, record, shares[:2], keys, b)
    assert second.from_presignature
    _verify(record, b, second)
    third = ecdsa_local.sign(wallet, record, shares[:2], keys, b)
    assert not third.from_presignature  # the pool is empty: the full protocol ran
    _verify(record, b, third)


def test_restoring_again_later_still_refuses_both(tmp_path: Path) -> None:
    record, shares, keys = _wallet(tmp_path)
    wallet, backup = tmp_path / "w", tmp_path / "backup"
    ecdsa_local.presign(wallet, record, shares[:2], keys, 2)
    shutil.copytree(wallet, backup)
    for n in range(2):
        ecdsa_local.sign(wallet, record, shares[:2], keys, hashlib.sha256(bytes([n])).digest())
    shutil.rmtree(wallet)
    shutil.copytree(backup, wallet)
    with pytest.raises(StateError, match="discarded 1 more"):
        ecdsa_local.sign(wallet, record, shares[:2], keys, hashlib.sha256(b"x").digest())
    assert _stored(wallet, record, keys, 1) == _stored(wallet, record, keys, 2) == 0


def test_ledger_records_before_the_share_exists(tmp_path: Path) -> None:
    """The ledger entry is written before any share: a failure after it burns the presignature."""
    record, shares, keys = _wallet(tmp_path)
    wallet = tmp_path / "w"
    ecdsa_local.presign(wallet, record, shares[:2], keys, 1)
    with StateDB(state_db_path(wallet, 1), party=1) as db:
        (pid,) = PresignatureStore(db, keys[1]).ids(record.wallet_id + "@m", (1, 2))
    calls: list[bool] = []
    real = dkls23.sign_with_presignatures

    def spy(*args: Any, **kw: Any) -> Any:
        with Ledger() as lg:
            calls.append(lg.used_presignatures(1, [pid]) == {pid})
        return real(*args, **kw)

    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(dkls23, "sign_with_presignatures", spy)
        ecdsa_local.sign(wallet, record, shares[:2], keys, hashlib.sha256(b"m").digest())
    finally:
        mp.undo()
    assert calls == [True]
    assert default_ledger_path().parent.is_dir()


def _induce_gamma_failure(
    wallet: Path,
    record: schemes.WalletRecord,
    shares: list[schemes.KeyShare],
    keys: dict[int, bytes],
) -> None:
    with party2_sends_a_bad_gamma(), pytest.raises(PairwiseCheckError) as ei:
        ecdsa_local.sign(wallet, record, shares[:2], keys, hashlib.sha256(b"m").digest())
    assert ei.value.culprits == (2,)


def _remove_db(wallet: Path, party: int) -> None:
    path = state_db_path(wallet, party)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def test_deleting_the_victims_database_does_not_lift_the_blame(tmp_path: Path) -> None:
    record, shares, keys = _wallet(tmp_path)
    wallet = tmp_path / "w"
    _induce_gamma_failure(wallet, record, shares, keys)
    _remove_db(wallet, 1)  # the victim forgets; the cheater would get another bit
    for _ in range(2):  # refused, and the entry is back in the recreated database
        with pytest.raises(ProtocolError, match="party 1 refuses to sign with party 2") as ei:
            ecdsa_local.sign(wallet, record, shares[:2], keys, hashlib.sha256(b"m").digest())
        assert ei.value.culprits == (2,)
    with StateDB(state_db_path(wallet, 1), party=1) as db:
        assert DenyList(db).is_denied(record.wallet_id, 2)
    # the documented way out: a fresh pairwise setup lifts it everywhere
    ecdsa_local.redo_pairwise(wallet, record, shares[:2], keys)
    with Ledger() as lg:
        assert lg.denied(record.wallet_id, 1) == {}
    digest = hashlib.sha256(b"after redo").digest()
    _verify(record, digest, ecdsa_local.sign(wallet, record, shares[:2], keys, digest))


def test_restoring_the_victims_database_does_not_lift_the_blame(tmp_path: Path) -> None:
    record, shares, keys = _wallet(tmp_path)
    wallet = tmp_path / "w"
    ecdsa_local.presign(wallet, record, [shares[0], shares[2]], keys, 1)  # party 1's db exists
    backup = tmp_path / "db1"
    backup.mkdir()
    for f in wallet.glob("party-1.db*"):
        shutil.copy2(f, backup / f.name)
    _induce_gamma_failure(wallet, record, shares, keys)
    _remove_db(wallet, 1)
    for f in backup.iterdir():
        shutil.copy2(f, wallet / f.name)
    with pytest.raises(ProtocolError) as ei:
        ecdsa_local.sign(wallet, record, shares[:2], keys, hashlib.sha256(b"m").digest())
    assert ei.value.culprits == (2,)


@pytest.fixture
def cli_wallet(tmp_path: Path) -> Path:
    out = tmp_path / "kr"
    run(
        "keygen", "--scheme", "ecdsa-secp256k1", "-t", "2", "-n", "3", "--out", str(out), check=True
    )
    return out


def _sign(wallet: Path, digest: bytes) -> Any:
    return run(
        "sign", "--wallet", str(wallet), "--signers", "1,2", "--message", digest.hex(), "--json"
    )


def test_cli_restore_of_the_wallet_directory_is_refused(cli_wallet: Path, tmp_path: Path) -> None:
    """The new user's flow: presign, cp -a kr kr.bak, sign, restore kr, sign another digest."""
    run("presign", "--wallet", str(cli_wallet), "--signers", "1,2", check=True)
    backup = tmp_path / "kr.bak"
    shutil.copytree(cli_wallet, backup, symlinks=True)
    a = hashlib.sha256(b"pay alice").digest()
    first = _sign(cli_wallet, a)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["presignature_used"] is True
    shutil.rmtree(cli_wallet)
    shutil.copytree(backup, cli_wallet, symlinks=True)
    shares_before = {p.name: p.read_bytes() for p in cli_wallet.glob("*.share")}

    b = hashlib.sha256(b"pay mallory").digest()
    refused = _sign(cli_wallet, b)
    assert_one_line_error(refused)
    assert "already used" in refused.stderr and refused.stdout == ""
    # nothing lost: share files untouched
    assert {p.name: p.read_bytes() for p in cli_wallet.glob("*.share")} == shares_before
    again = _sign(cli_wallet, b)
    assert again.returncode == 0, again.stderr
    out = json.loads(again.stdout)
    assert out["presignature_used"] is False
    pk = bytes.fromhex(out["public_key"])
    assert coincurve.PublicKey(pk).verify(bytes.fromhex(out["der"]), b, hasher=None)
