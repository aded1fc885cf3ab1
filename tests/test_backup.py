"""Share backups (``tmpc backup``): age, passphrase and SLIP-39 split backups of one party's
share, restore drills, restores into wallet and node directories, and every refusal."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import shamir_mnemonic
from pyrage import x25519

from tests.test_cli import PW, assert_one_line_error
from tmpc import schemes
from tmpc.cli.demo import independent_verify
from tmpc.errors import CryptoError, KeystoreError, ParameterError
from tmpc.state import backup as bk
from tmpc.state import keystore

BACKUP_PW = "a custodian's backup passphrase"
MSG = bytes(range(32))
EXIT_CHECK_FAILED, EXIT_INPUT = 1, 2


def run(
    *args: str | Path,
    pw: str | None = PW,
    backup_pw: str | None = None,
    node_pw: str | None = None,
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    for name in ("TMPC_PASSPHRASE", "TMPC_BACKUP_PASSPHRASE", "TMPC_NODE_PASSPHRASE"):
        env.pop(name, None)
    for name, value in (
        ("TMPC_PASSPHRASE", pw),
        ("TMPC_BACKUP_PASSPHRASE", backup_pw),
        ("TMPC_NODE_PASSPHRASE", node_pw),
    ):
        if value is not None:
            env[name] = value
    return subprocess.run(
        [sys.executable, "-m", "tmpc", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def keygen(out: Path, scheme: str = "schnorr-bip340") -> Path:
    proc = run("keygen", "--scheme", scheme, "-t", "3", "-n", "5", "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out


def open_share_file(wallet: Path, party: int, pw: str = PW) -> keystore.ShareSecret:
    record = schemes.WalletRecord.from_json(json.loads((wallet / "wallet.json").read_text()))
    data = keystore.share_path(wallet, party).read_bytes()
    return keystore.open_share(data, passphrase=pw, wallet_id=record.wallet_id, party=party)


def key_share(wallet: Path, party: int) -> schemes.KeyShare:
    record = schemes.WalletRecord.from_json(json.loads((wallet / "wallet.json").read_text()))
    secret = open_share_file(wallet, party)
    g = schemes.get_scheme(record.scheme).group
    return schemes.KeyShare(
        party, g.decode_scalar(secret.secshare), secret.hostseckey, secret.pairwise
    )


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def copy_without(wallet: Path, dest: Path, party: int) -> Path:
    shutil.copytree(wallet, dest)
    keystore.share_path(dest, party).unlink()
    return dest


@pytest.fixture(scope="module")
def wallet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keygen(tmp_path_factory.mktemp("bk") / "vault")


@pytest.fixture(scope="module")
def split(wallet: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-of-5 split of party 2's share."""
    out = tmp_path_factory.mktemp("split") / "custodians"
    res = ok(run("backup", "create", "--wallet", wallet, "--party", "2", "--split", "3/5",
                 "--out", out, "--json"))  # fmt: skip
    assert res["split"] == {"threshold": 3, "shares": 5}
    return out


def custodian(split: Path, i: int) -> Path:
    return split / f"custodian-{i}.json"


# --- age and passphrase backups -----------------------------------------------------------


def test_age_round_trip(wallet: Path, tmp_path: Path) -> None:
    ident = x25519.Identity.generate()
    other = x25519.Identity.generate()
    id_file = tmp_path / "custodian.key"
    id_file.write_text(f"# created: test\n{ident}\n")
    out = tmp_path / "party-3.age.json"
    res = ok(run("backup", "create", "--wallet", wallet, "--party", "3",
                 "--recipient", str(other.to_public()), "--recipient", str(ident.to_public()),
                 "--out", out, "--json"))  # fmt: skip
    assert res["protection"] == "age" and res["party"] == 3 and res["files"] == [str(out)]
    doc = json.loads(out.read_text())
    assert doc["age"].startswith("-----BEGIN AGE ENCRYPTED FILE-----")
    assert open_share_file(wallet, 3).secshare.hex() not in out.read_text()

    drill = ok(run("backup", "verify", "--in", out, "--identity", id_file, "--json"))
    assert drill["valid"] is True and drill["installed"] is False
    assert drill["backup_id"] == res["backup_id"]

    target = copy_without(wallet, tmp_path / "restored", 3)
    done = ok(run("backup", "restore", "--in", out, "--identity", id_file,
                  "--wallet", target, "--json"))  # fmt: skip
    assert done["restored"] is True and done["wallet_record"] == "existing"
    assert open_share_file(target, 3) == open_share_file(wallet, 3)


def test_wrong_age_identity_is_one_line(wallet: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    recipient = str(x25519.Identity.generate().to_public())
    ok(run("backup", "create", "--wallet", wallet, "--party", "1", "--recipient", recipient,
           "--out", out, "--json"))  # fmt: skip
    wrong = tmp_path / "wrong.key"
    wrong.write_text(f"{x25519.Identity.generate()}\n")
    proc = run("backup", "verify", "--in", out, "--identity", wrong)
    assert_one_line_error(proc, EXIT_INPUT)
    assert "no age identity given opens this backup" in proc.stderr
    no_id = run("backup", "verify", "--in", out)
    assert_one_line_error(no_id, EXIT_INPUT)
    assert "--identity" in no_id.stderr


def test_age_secret_key_as_recipient_is_refused_unechoed(wallet: Path, tmp_path: Path) -> None:
    secret = str(x25519.Identity.generate())
    proc = run("backup", "create", "--wallet", wallet, "--party", "1", "--recipient", secret,
               "--out", tmp_path / "b.json")  # fmt: skip
    assert_one_line_error(proc, EXIT_INPUT)
    assert "secret key" in proc.stderr and secret not in proc.stderr
    assert not (tmp_path / "b.json").exists()


def test_passphrase_round_trip(wallet: Path, tmp_path: Path) -> None:
    out = tmp_path / "party-4.backup"
    res = ok(run("backup", "create", "--wallet", wallet, "--party", "4", "--passphrase",
                 "--out", out, "--json", backup_pw=BACKUP_PW))  # fmt: skip
    assert res["protection"] == "passphrase"
    doc = json.loads(out.read_text())
    assert doc["kdf"]["alg"] == "argon2id" and doc["passphrase_form"] == "NFC"
    drill = ok(run("backup", "verify", "--in", out, "--json", backup_pw=BACKUP_PW))
    assert drill["valid"] is True and drill["party"] == 4
    # The backup passphrase can also come from a file (trailing line break dropped).
    pw_file = tmp_path / "pw"
    pw_file.write_text(BACKUP_PW + "\n")
    target = copy_without(wallet, tmp_path / "restored", 4)
    done = ok(run("backup", "restore", "--in", out, "--backup-passphrase-file", pw_file,
                  "--wallet", target, "--json"))  # fmt: skip
    assert done["share_file"] == str(keystore.share_path(target, 4))
    assert open_share_file(target, 4) == open_share_file(wallet, 4)


def test_wrong_passphrase_is_one_line(wallet: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    ok(run("backup", "create", "--wallet", wallet, "--party", "1", "--passphrase",
           "--out", out, "--json", backup_pw=BACKUP_PW))  # fmt: skip
    for args in (("verify",), ("restore", "--wallet", tmp_path / "new")):
        proc = run("backup", *args, "--in", out, backup_pw="not the passphrase")
        assert_one_line_error(proc, EXIT_INPUT)
        assert "wrong backup passphrase or tampered backup file" in proc.stderr
    assert not (tmp_path / "new").exists()
    # An edited label fails the same way: the header is the ciphertext's associated data.
    doc = json.loads(out.read_text())
    doc["party"] = 2
    out.write_text(json.dumps(doc))
    assert_one_line_error(run("backup", "verify", "--in", out, backup_pw=BACKUP_PW), EXIT_INPUT)
    # The wallet's share passphrase, wrong, is named as such.
    proc = run("backup", "create", "--wallet", wallet, "--party", "1", "--passphrase",
               "--out", tmp_path / "c.json", pw="wrong", backup_pw=BACKUP_PW)  # fmt: skip
    assert_one_line_error(proc, EXIT_INPUT)
    assert "party 1: wrong passphrase" in proc.stderr


# --- SLIP-39 split ------------------------------------------------------------------------


def test_split_files_and_qr_codes(split: Path) -> None:
    names = sorted(p.name for p in split.iterdir())
    assert names == sorted(f"custodian-{i}.{e}" for i in range(1, 6) for e in ("json", "svg"))
    docs = [json.loads(custodian(split, i).read_text()) for i in range(1, 6)]
    assert len({d["ciphertext"] for d in docs}) == 1  # the same ciphertext in every file
    assert len({d["mnemonic"] for d in docs}) == 5
    for i, d in enumerate(docs, 1):
        assert d["custodian"] == i and len(d["mnemonic"].split()) == bk.MNEMONIC_WORDS
        svg = (split / f"custodian-{i}.svg").read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
        assert d["mnemonic"] not in svg and d["mnemonic"].upper() not in svg  # only as a code
        assert oct((split / f"custodian-{i}.json").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("ids", list(itertools.combinations(range(1, 6), 3)), ids=str)
def test_split_any_three_mnemonics_restore(split: Path, ids: tuple[int, ...]) -> None:
    drill = ok(run("backup", "verify", *(a for i in ids for a in ("--in", custodian(split, i))),
                   "--json"))  # fmt: skip
    assert drill["valid"] is True and drill["party"] == 2 and drill["mnemonics_needed"] == 3


def test_split_two_mnemonics_are_not_enough(split: Path) -> None:
    files = [(str(custodian(split, i)), custodian(split, i).read_bytes()) for i in range(1, 6)]
    for pair in itertools.combinations(files, 2):
        sealed = bk.read_backup(list(pair))
        with pytest.raises(
            KeystoreError, match=r"2 distinct mnemonic\(s\) given; this backup needs 3"
        ):
            sealed.open()
    proc = run("backup", "verify", "--in", custodian(split, 1), "--in", custodian(split, 5))
    assert_one_line_error(proc, EXIT_INPUT)
    assert "needs 3" in proc.stderr
    # The same custodian file twice is one mnemonic, not two.
    proc = run("backup", "verify", *(a for _ in range(3) for a in ("--in", custodian(split, 2))))
    assert_one_line_error(proc, EXIT_INPUT)
    assert "1 distinct mnemonic(s) given; this backup needs 3" in proc.stderr


def test_split_restores_from_paper_mnemonics(split: Path, tmp_path: Path) -> None:
    """Custodians 2 and 5 type their words back from paper (upper case, as in the QR code);
    custodian 4 brings its file, which holds the ciphertext."""
    typed = []
    for i in (2, 5):
        words = json.loads(custodian(split, i).read_text())["mnemonic"]
        path = tmp_path / f"typed-{i}.txt"
        path.write_text(words.upper().replace(" ", "\n") + "\n")
        typed += ["--in", path]
    drill = ok(run("backup", "verify", "--in", custodian(split, 4), *typed, "--json"))
    assert drill["valid"] is True
    proc = run("backup", "verify", *typed)
    assert_one_line_error(proc, EXIT_INPUT)
    assert "no custodian file among the inputs" in proc.stderr


def test_tampered_mnemonic_is_named(split: Path, tmp_path: Path) -> None:
    doc = json.loads(custodian(split, 3).read_text())
    words = doc["mnemonic"].split()
    # Another valid SLIP-39 word in position 9: the RS1024 checksum catches it.
    wordlist = list(shamir_mnemonic.wordlist.WORDLIST)
    words[8] = wordlist[(wordlist.index(words[8]) + 1) % len(wordlist)]
    bad = tmp_path / "custodian-3.json"
    bad.write_text(json.dumps({**doc, "mnemonic": " ".join(words)}))
    proc = run("backup", "verify", "--in", custodian(split, 1), "--in", bad,
               "--in", custodian(split, 5))  # fmt: skip
    assert_one_line_error(proc, EXIT_INPUT)
    assert f"{bad}: the mnemonic's checksum does not hold" in proc.stderr
    assert not any(w in proc.stderr.split() for w in words)  # no word of it is echoed
    # A word that is not in the list is named by its position.
    words[8] = "notaword"
    bad.write_text(json.dumps({**doc, "mnemonic": " ".join(words)}))
    proc = run("backup", "verify", "--in", custodian(split, 1), "--in", bad,
               "--in", custodian(split, 5))  # fmt: skip
    assert_one_line_error(proc, EXIT_INPUT)
    assert f"{bad}: word 9 of the mnemonic is not a SLIP-39 word" in proc.stderr
    assert "notaword" not in proc.stderr


def test_mnemonics_of_another_backup_are_refused(wallet: Path, split: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    ok(run("backup", "create", "--wallet", wallet, "--party", "2", "--split", "3/5",
           "--out", other, "--json"))  # fmt: skip
    proc = run("backup", "verify", "--in", custodian(split, 1), "--in", custodian(split, 2),
               "--in", other / "custodian-3.json")  # fmt: skip
    assert_one_line_error(proc, EXIT_INPUT)
    assert "from another backup" in proc.stderr
    # Its words alone (a typed mnemonic of the other split) fail to combine, one line.
    words = json.loads((other / "custodian-3.json").read_text())["mnemonic"]
    typed = tmp_path / "typed.txt"
    typed.write_text(words)
    proc = run("backup", "verify", "--in", custodian(split, 1), "--in", custodian(split, 2),
               "--in", typed)  # fmt: skip
    assert_one_line_error(proc, EXIT_INPUT)
    assert "another split" in proc.stderr


@pytest.mark.parametrize("value", ["3", "3/", "a/5", "0/5", "4/3", "3/17", "1/3"])
def test_bad_split_values(wallet: Path, tmp_path: Path, value: str) -> None:
    proc = run("backup", "create", "--wallet", wallet, "--party", "1", "--split", value,
               "--out", tmp_path / "s")  # fmt: skip
    assert_one_line_error(proc, EXIT_INPUT)
    assert not (tmp_path / "s").exists()


# --- restore drill, refusals ------------------------------------------------------------------


def test_verify_does_not_install(wallet: Path, split: Path, tmp_path: Path) -> None:
    target = copy_without(wallet, tmp_path / "w", 2)
    before_wallet, before_target = snapshot(wallet), snapshot(target)
    before_split = snapshot(split)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "tmpc", "backup", "verify", "--json",
         *(a for i in (1, 2, 3) for a in ("--in", str(custodian(split, i))))],
        capture_output=True, text=True, cwd=cwd, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    assert ok(proc)["installed"] is False
    assert snapshot(wallet) == before_wallet and snapshot(target) == before_target
    assert snapshot(split) == before_split and not any(cwd.iterdir())


def test_verify_exits_1_for_a_share_that_is_not_the_partys(wallet: Path, tmp_path: Path) -> None:
    """A backup whose share is not its party's (made here by hand) decrypts, but the drill
    finds share * G != the verification share: exit 1, INVALID."""
    good = bk.read_share(wallet, bk.ShareSealing.with_passphrase(PW), 2)
    g = schemes.get_scheme(good.record.scheme).group
    wrong = keystore.ShareSecret(
        g.encode_scalar(g.decode_scalar(good.secret.secshare) + 1), good.secret.hostseckey
    )
    payload = bk.BackupPayload(good.labels, good.record, wrong)
    with pytest.raises(KeystoreError, match="not party 2's share"):
        bk.verify_share(payload)
    out = tmp_path / "wrong.json"
    out.write_bytes(bk.seal_with_passphrase(payload, BACKUP_PW))
    proc = run("backup", "verify", "--in", out, backup_pw=BACKUP_PW)
    assert proc.returncode == EXIT_CHECK_FAILED and "INVALID" in proc.stdout
    res = json.loads(run("backup", "verify", "--in", out, "--json", backup_pw=BACKUP_PW).stdout)
    assert res["valid"] is False and "verification share" in res["reason"]
    proc = run("backup", "restore", "--in", out, "--wallet", tmp_path / "t", backup_pw=BACKUP_PW)
    assert_one_line_error(proc, EXIT_INPUT)
    assert not (tmp_path / "t").exists()


def test_restore_refuses_to_overwrite(wallet: Path, split: Path, tmp_path: Path) -> None:
    before = snapshot(wallet)
    files = [a for i in (1, 3, 5) for a in ("--in", custodian(split, i))]
    proc = run("backup", "restore", *files, "--wallet", wallet)
    assert_one_line_error(proc, EXIT_INPUT)
    assert "already holds party 2's share; refusing to overwrite it" in proc.stderr
    assert snapshot(wallet) == before
    # Another wallet's directory is refused too, and so is a second restore.
    other = keygen(tmp_path / "other", "schnorr-bip340")
    keystore.share_path(other, 2).unlink()
    other_before = snapshot(other)
    proc = run("backup", "restore", *files, "--wallet", other)
    assert_one_line_error(proc, EXIT_INPUT)
    assert "holds another wallet" in proc.stderr
    assert snapshot(other) == other_before
    target = copy_without(wallet, tmp_path / "w", 2)
    ok(run("backup", "restore", *files, "--wallet", target, "--json"))
    restored = snapshot(target)
    proc = run("backup", "restore", *files, "--wallet", target)
    assert_one_line_error(proc, EXIT_INPUT)
    assert snapshot(target) == restored


def test_restore_under_another_passphrase_than_the_wallets_is_refused(
    wallet: Path, split: Path, tmp_path: Path
) -> None:
    target = copy_without(wallet, tmp_path / "w", 2)
    files = [a for i in (1, 2, 3) for a in ("--in", custodian(split, i))]
    proc = run("backup", "restore", *files, "--wallet", target, pw="another passphrase")
    assert_one_line_error(proc, EXIT_INPUT)
    assert "does not open party 1's share" in proc.stderr
    assert not keystore.share_path(target, 2).exists()


def test_restore_of_an_older_epoch_is_refused(
    wallet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The installed record's epoch is read through ``record_epoch``, as the backup's is; a
    record installed at epoch 1 refuses a backup of epoch 0."""
    payload = bk.read_share(wallet, bk.ShareSealing.with_passphrase(PW), 2)
    target = copy_without(wallet, tmp_path / "w", 2)
    real = bk.record_epoch
    monkeypatch.setattr(
        bk, "record_epoch", lambda r: real(r) if r is payload.record else real(r) + 1
    )
    sealing = bk.ShareSealing.with_passphrase(PW, keystore.FAST_KDF_FOR_TESTS)
    with pytest.raises(KeystoreError, match="older than the installed epoch 1"):
        bk.install_share(payload, target, sealing)
    assert not keystore.share_path(target, 2).exists()
    # A node: the newest epoch installed among its wallets counts.
    nodeish = tmp_path / "wallets"
    shutil.copytree(wallet, nodeish / payload.labels.wallet_id)
    assert bk.newest_installed_epoch(nodeish, payload.record) == 1
    monkeypatch.undo()
    with pytest.raises(KeystoreError, match="older than the installed epoch 3"):
        bk.install_share(payload, tmp_path / "fresh", sealing, newest_epoch=3)
    assert not (tmp_path / "fresh").exists()
    bk.check_epoch(0, 0)
    with pytest.raises(KeystoreError, match="restore into a new directory"):
        bk.check_epoch(0, 1)


def test_restore_of_a_share_retired_by_a_refresh_is_refused(wallet: Path, tmp_path: Path) -> None:
    """A real refresh: the wallet directory moves to epoch 1 (same wallet id), and a backup
    made at epoch 0 no longer goes in, although party 2's share file is missing."""
    out = tmp_path / "epoch0.json"
    ok(run("backup", "create", "--wallet", wallet, "--party", "2", "--passphrase",
           "--out", out, "--json", backup_pw=BACKUP_PW))  # fmt: skip
    record = schemes.WalletRecord.from_json(json.loads((wallet / "wallet.json").read_text()))
    new_record, new_shares = schemes.refresh_shares(
        record, [key_share(wallet, i) for i in record.party_ids]
    )
    assert new_record.epoch == 1 and new_record.wallet_id == record.wallet_id
    target = tmp_path / "w1"
    target.mkdir()
    (target / "wallet.json").write_text(json.dumps(new_record.to_json()))
    g = schemes.get_scheme(record.scheme).group
    for s in new_shares:
        if s.identifier != 2:
            secret = keystore.ShareSecret(g.encode_scalar(s.secshare), s.hostseckey)
            keystore.share_path(target, s.identifier).write_bytes(
                keystore.seal_share(secret, wallet_id=new_record.wallet_id, party=s.identifier,
                                    epoch=1, passphrase=PW, kdf=keystore.FAST_KDF_FOR_TESTS,
                                    insecure_kdf_for_tests=True)
            )  # fmt: skip
    before = snapshot(target)
    proc = run("backup", "restore", "--in", out, "--wallet", target, backup_pw=BACKUP_PW)
    assert_one_line_error(proc, EXIT_INPUT)
    assert "key epoch 0, older than the installed epoch 1" in proc.stderr
    assert snapshot(target) == before


# --- restored shares sign -------------------------------------------------------------------


@pytest.mark.parametrize("scheme", list(schemes.SCHEMES))
def test_restored_share_signs(scheme: str, tmp_path: Path) -> None:
    """Back up party 2, lose its share, restore it from 3 of 5 mnemonics into the wallet:
    the restored share signs with two others, and the signature verifies outside tmpc."""
    w = keygen(tmp_path / "w", scheme)
    original = open_share_file(w, 2)
    ok(run("backup", "create", "--wallet", w, "--party", "2", "--split", "3/5",
           "--out", tmp_path / "s", "--json"))  # fmt: skip
    keystore.share_path(w, 2).unlink()
    files = [a for i in (2, 4, 5) for a in ("--in", tmp_path / "s" / f"custodian-{i}.json")]
    done = ok(run("backup", "restore", *files, "--wallet", w, "--json"))
    assert done["target"] == "wallet" and done["party"] == 2
    assert open_share_file(w, 2) == original  # pairwise material and store key too
    record = schemes.WalletRecord.from_json(json.loads((w / "wallet.json").read_text()))
    sig = schemes.sign(record, [key_share(w, i) for i in (1, 2, 5)], MSG)
    assert independent_verify(scheme, record.public_key, MSG, sig)
    # And through the CLI, as an operator would.
    proc = run("sign", "--wallet", w, "--signers", "2,3,4", "--message", MSG.hex(), "--json")
    out = ok(proc)
    assert independent_verify(scheme, record.public_key, MSG, bytes.fromhex(out["signature"]))


def test_restore_into_a_new_directory_writes_the_record(split: Path, tmp_path: Path) -> None:
    target = tmp_path / "new"
    files = [a for i in (1, 2, 4) for a in ("--in", custodian(split, i))]
    done = ok(run("backup", "restore", *files, "--wallet", target, "--json"))
    assert done["wallet_record"] == "written"
    assert sorted(p.name for p in target.iterdir()) == ["party-2.share", "wallet.json"]
    schemes.WalletRecord.from_json(json.loads((target / "wallet.json").read_text()))


# --- node directories -------------------------------------------------------------------------


def test_node_backup_and_restore(tmp_path: Path) -> None:
    from tests.node_helpers import PASSPHRASE, memory_cluster, stop_all
    from tmpc.cli.node import LOCAL_KDF
    from tmpc.node import config as node_config
    from tmpc.node.wallets import WalletStore

    async def make_wallet() -> str:
        _, engines = await memory_cluster(tmp_path, 3)
        try:
            res = await engines["a"].submit(
                "keygen", {"scheme": "ed25519", "threshold": 2, "parties": list(engines)}, None
            )
            return str(res["wallet"]["wallet_id"])
        finally:
            await stop_all(engines)

    wid = asyncio.run(make_wallet())

    def share_of(name: str) -> schemes.KeyShare:
        store = WalletStore(
            tmp_path / name, node_config.load_cluster(tmp_path / name), PASSPHRASE, LOCAL_KDF
        )
        share = store.get(wid).share
        assert share is not None
        return share

    original = share_of("b")
    out = tmp_path / "b.age.json"
    ident = x25519.Identity.generate()
    (tmp_path / "id").write_text(f"{ident}\n")
    res = ok(run("backup", "create", "--dir", tmp_path / "b", "--wallet", wid,
                 "--recipient", str(ident.to_public()), "--out", out, "--json",
                 node_pw=PASSPHRASE))  # fmt: skip
    assert res["party"] == 2 and res["wallet_id"] == wid
    wdir = tmp_path / "b" / "wallets" / wid
    restore = ("backup", "restore", "--in", out, "--identity", tmp_path / "id")

    # b still holds its share: refused, nothing changed.
    before = snapshot(wdir)
    proc = run(*restore, "--dir", tmp_path / "b", node_pw=PASSPHRASE)
    assert_one_line_error(proc, EXIT_INPUT)
    assert "already holds party 2's share" in proc.stderr and snapshot(wdir) == before
    # Another node (c, party 3) is not party 2: refused.
    keystore.share_path(tmp_path / "c" / "wallets" / wid, 3).unlink()
    proc = run(*restore, "--dir", tmp_path / "c", node_pw=PASSPHRASE)
    assert_one_line_error(proc, EXIT_INPUT)
    assert "not this node's identity key" in proc.stderr
    # A wrong node passphrase is one line.
    keystore.share_path(wdir, 2).unlink()
    proc = run(*restore, "--dir", tmp_path / "b", node_pw="wrong")
    assert_one_line_error(proc, EXIT_INPUT)
    assert not keystore.share_path(wdir, 2).exists()

    done = ok(run(*restore, "--dir", tmp_path / "b", "--json", node_pw=PASSPHRASE))
    assert done["target"] == "node" and done["wallet_record"] == "existing"
    restored = share_of("b")
    assert (restored.secshare, restored.hostseckey) == (original.secshare, original.hostseckey)
    record = WalletStore(
        tmp_path / "a", node_config.load_cluster(tmp_path / "a"), PASSPHRASE, LOCAL_KDF
    ).get(wid)
    assert record.share is not None
    sig = schemes.sign(record.record, [record.share, restored], MSG)
    assert independent_verify("ed25519", record.record.public_key, MSG, sig)

    # A node that lost the wallet's whole directory gets the record back too.
    shutil.rmtree(wdir)
    done = ok(run(*restore, "--dir", tmp_path / "b", "--json", node_pw=PASSPHRASE))
    assert done["wallet_record"] == "written" and share_of("b").secshare == original.secshare


# --- library ----------------------------------------------------------------------------------


def test_secrets_stay_out_of_reprs_and_errors(wallet: Path) -> None:
    payload = bk.read_share(wallet, bk.ShareSealing.with_passphrase(PW), 1)
    secret_hex = payload.secret.secshare.hex()
    assert secret_hex not in repr(payload)
    (share,) = bk.split_to_mnemonics(payload, 1, 1)
    assert share.mnemonic not in repr(share) and secret_hex not in repr(share)
    assert PW not in repr(bk.ShareSealing.with_passphrase(PW))
    with pytest.raises(ParameterError):
        bk.split_to_mnemonics(payload, 2, 17)
    with pytest.raises(CryptoError) as exc:
        bk.read_backup([("f", bk.seal_with_passphrase(payload, BACKUP_PW))]).open(passphrase="x")
    assert secret_hex not in str(exc.value)


def test_json_field_names(wallet: Path, tmp_path: Path) -> None:
    """The documented ``--json`` fields of each command (README, "Backups")."""
    labels = {"backup_id", "wallet_id", "scheme", "party", "epoch", "public_key", "protection"}
    out = tmp_path / "b.json"
    created = ok(run("backup", "create", "--wallet", wallet, "--party", "5", "--passphrase",
                     "--out", out, "--json", backup_pw=BACKUP_PW))  # fmt: skip
    assert set(created) == labels | {"files"}
    split = ok(run("backup", "create", "--wallet", wallet, "--party", "5", "--split", "2/3",
                   "--out", tmp_path / "s", "--json"))  # fmt: skip
    assert set(split) == labels | {"files", "split", "custodians"}
    assert set(split["custodians"][0]) == {"index", "file", "qr"}
    verified = ok(run("backup", "verify", "--in", out, "--json", backup_pw=BACKUP_PW))
    assert set(verified) == labels | {
        "valid",
        "reason",
        "threshold",
        "parties",
        "verification_share",
        "mnemonics_needed",
        "installed",
    }
    restored = ok(run("backup", "restore", "--in", out, "--wallet", tmp_path / "new", "--json",
                      backup_pw=BACKUP_PW))  # fmt: skip
    assert set(restored) == labels | {
        "restored",
        "target",
        "directory",
        "share_file",
        "wallet_record",
    }
    assert created["backup_id"] == verified["backup_id"] == restored["backup_id"]


@pytest.mark.parametrize(
    "args",
    [
        ("--party", "1", "--out", "x"),  # no protection
        ("--party", "1", "--passphrase", "--split", "2/3", "--out", "x"),  # two
        ("--passphrase", "--out", "x"),  # no party
        ("--party", "9", "--passphrase", "--out", "x"),  # not a party
        ("--party", "1", "--recipient", "age1notakey", "--out", "x"),
    ],
    ids=["none", "two", "no-party", "unknown-party", "bad-recipient"],
)
def test_create_usage_errors(wallet: Path, tmp_path: Path, args: tuple[str, ...]) -> None:
    out = tmp_path / "x"
    args = tuple(str(out) if a == "x" else a for a in args)
    proc = run("backup", "create", "--wallet", wallet, *args, backup_pw=BACKUP_PW)
    assert_one_line_error(proc, EXIT_INPUT)
    assert not out.exists()
