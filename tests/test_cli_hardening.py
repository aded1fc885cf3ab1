"""Findings of a new-user review of the CLI, each checked on a real ``tmpc`` process.

Every refusal asserts exactly one line on standard error (never a traceback) and the
documented exit status (README, CLI section); every success an empty standard error; and every
test that nothing was left behind (no stray file or directory) and nothing lost (share files
and wallet.json unchanged byte for byte).
"""

from __future__ import annotations

import base64
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import coincurve
import pytest
from embit.ec import PublicKey as EcPublicKey
from embit.psbt import PSBT

from tmpc import schemes
from tmpc.chains import bitcoin as btc
from tmpc.encoding import parse_json
from tmpc.errors import CryptoError, DecodeError, KeystoreError, ParameterError
from tmpc.state.keystore import (
    FAST_KDF_FOR_TESTS,
    ShareSecret,
    open_share,
    read_json,
    seal_share,
)

PW = "a long custody passphrase"
PAYEE = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
DEEP = b"[" * 100_000

# The documented exit statuses.
EXIT_CHECK_FAILED, EXIT_INPUT, EXIT_PROTOCOL, EXIT_SYSTEM = 1, 2, 3, 4


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _env(pw: str | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("TMPC_PASSPHRASE", None)
    if pw is not None:
        env["TMPC_PASSPHRASE"] = pw
    return env


def tmpc(
    *args: str,
    pw: str | None = PW,
    stdin: bytes = b"",
    preexec_fn: Callable[[], None] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tmpc ARGS`` as an operator would; output decoded as text."""
    proc = subprocess.run(
        [sys.executable, "-m", "tmpc", *args],
        input=stdin,
        capture_output=True,
        env=_env(pw),
        preexec_fn=preexec_fn,
        cwd=cwd,
        timeout=300,
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )


def assert_one_line(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """Exactly one line on standard error, no traceback, exit status ``code``."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert proc.stderr.endswith("\n") and proc.stderr.count("\n") == 1, proc.stderr
    line = proc.stderr.rstrip("\n")
    assert line.startswith("tmpc: error: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (content) and directory (None) under ``root``, hidden ones included."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = None
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = Path(p).read_bytes()
    return out


def copy_wallet(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def limit_file_size(max_bytes: int) -> Callable[[], None]:
    """A ``preexec_fn``: writes past ``max_bytes`` fail with EFBIG (a disk that is full)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        _soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, hard))

    return apply


def _mount_namespaces_work(tmp: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = tmp / "probe"
    probe.mkdir()
    try:
        done = subprocess.run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                f"mount -t tmpfs -o size=64k tmpfs '{probe}'",
            ],
            capture_output=True,
            timeout=30,
        )
        return done.returncode == 0
    finally:
        probe.rmdir()


def run_on_full_tmpfs(
    mountpoint: Path, setup: str, args: list[str]
) -> tuple[subprocess.CompletedProcess[str], list[str], list[str]]:
    """Run tmpc with ``mountpoint`` a small tmpfs, filled up after ``setup`` (a shell
    command run on the mounted file system), in a private mount namespace that vanishes with
    the process. Returns the process and the listings of the tmpfs (directories, and files
    with their SHA-256) before and after."""
    script = (
        'set -e; mount -t tmpfs -o size=512k tmpfs "$MNT"; '
        + setup
        + '; dd if=/dev/zero of="$MNT/filler" bs=4k 2>/dev/null || true; '
        'list() { (find "$MNT" -type d; find "$MNT" -type f -exec sha256sum {} +) | sort; }; '
        'list > "$MNT.before"; set +e; "$@"; rc=$?; list > "$MNT.after"; exit $rc'
    )
    env = _env(PW)
    env["MNT"] = str(mountpoint)
    proc = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            sys.executable,
            "-m",
            "tmpc",
            *args,
        ],
        capture_output=True,
        env=env,
        timeout=300,
    )
    before = Path(f"{mountpoint}.before").read_text().splitlines()
    after = Path(f"{mountpoint}.after").read_text().splitlines()
    Path(f"{mountpoint}.before").unlink()
    Path(f"{mountpoint}.after").unlink()
    result = subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )
    return result, before, after


@pytest.fixture(scope="module")
def taproot_wallet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hardening") / "taproot"
    proc = tmpc("keygen", "--scheme", "schnorr-bip340", "-t", "2", "-n", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def ecdsa_wallet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hardening") / "ecdsa"
    proc = tmpc("keygen", "--scheme", "ecdsa-secp256k1", "-t", "2", "-n", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def _record(wallet: Path) -> schemes.WalletRecord:
    return schemes.WalletRecord.from_json(json.loads((wallet / "wallet.json").read_text()))


# --------------------------------------------------------------------------------------------
# 1. Deeply nested JSON
# --------------------------------------------------------------------------------------------


def test_parse_json_limits() -> None:
    assert parse_json(b'{"a": ["[[[", "\\"[{"], "b": 1}', "x") == {"a": ["[[[", '"[{'], "b": 1}
    assert parse_json("[" * 32 + "]" * 32, "x", max_depth=32) is not None
    for bad, why in [
        (DEEP, "deeper than 32"),
        (b'{"a":' * 100_000, "deeper than 32"),
        (b"[" * 33 + b"]" * 33, "deeper than 32"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{not json", "not valid JSON"),
        (b"1" * 5000, "not valid JSON"),  # beyond Python's integer digit limit
        (b'{"iterations": Infinity}', "not valid JSON"),  # not RFC 8259, int() overflows
        (b" " * 101, "larger than 100 bytes"),
    ]:
        with pytest.raises(DecodeError, match=why):
            parse_json(bad, "x", max_bytes=100 if why.startswith("larger") else 1 << 20)


def test_deep_json_refused_by_every_reader(tmp_path: Path) -> None:
    path = tmp_path / "wallet.json"
    path.write_bytes(DEEP)
    with pytest.raises(KeystoreError, match="deeper than"):
        read_json(path, "wallet.json")
    with pytest.raises(KeystoreError, match="deeper than"):
        open_share(DEEP, passphrase=PW, wallet_id="w", party=1)
    with pytest.raises(KeystoreError, match="malformed"):
        ShareSecret.from_plaintext(DEEP)


@pytest.mark.parametrize("command", ["sign", "verify", "address"])
def test_deep_json_in_wallet_json(taproot_wallet: Path, tmp_path: Path, command: str) -> None:
    w = copy_wallet(taproot_wallet, tmp_path / "w")
    (w / "wallet.json").write_bytes(DEEP)
    before = snapshot(tmp_path)
    args = {
        "sign": ["--signers", "1,2", "--message", "00"],
        "verify": ["--message", "00", "--signature", "00" * 64],
        "address": [],
    }[command]
    proc = tmpc(command, "--wallet", str(w), *args)
    assert_one_line(proc, EXIT_INPUT, "wallet.json", "deeper than")
    assert snapshot(tmp_path) == before


def test_deep_json_in_share_file(taproot_wallet: Path, tmp_path: Path) -> None:
    w = copy_wallet(taproot_wallet, tmp_path / "w")
    (w / "party-2.share").write_bytes(DEEP)
    before = snapshot(tmp_path)
    proc = tmpc("sign", "--wallet", str(w), "--signers", "1,2", "--message", "00")
    assert_one_line(proc, EXIT_INPUT, "party 2", "deeper than", "party-2.share")
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------------------------
# 2. Passphrases: not UTF-8; NFC and NFD
# --------------------------------------------------------------------------------------------

NOT_UTF8 = b"\xff\xfe custody".decode("utf-8", "surrogateescape")


@pytest.mark.parametrize("command", ["keygen", "sign", "presign"])
def test_passphrase_not_utf8(
    taproot_wallet: Path, ecdsa_wallet: Path, tmp_path: Path, command: str
) -> None:
    w = tmp_path / "w"
    if command == "keygen":
        args = ["--scheme", "ed25519", "-t", "2", "-n", "3", "--out", str(w)]
    elif command == "sign":
        copy_wallet(taproot_wallet, w)
        args = ["--wallet", str(w), "--signers", "1,2", "--message", "00"]
    else:
        copy_wallet(ecdsa_wallet, w)
        args = ["--wallet", str(w), "--signers", "1,2"]
    before = snapshot(tmp_path)
    proc = tmpc(command, *args, pw=NOT_UTF8)
    assert_one_line(proc, EXIT_INPUT, "passphrase is not valid UTF-8", "TMPC_PASSPHRASE")
    assert snapshot(tmp_path) == before


def test_nfc_and_nfd_passphrases_open_the_same_wallet(tmp_path: Path) -> None:
    nfc = unicodedata.normalize("NFC", "Crème brûlée à Zürich")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    w = tmp_path / "w"
    proc = tmpc("keygen", "--scheme", "ed25519", "-t", "2", "-n", "2", "--out", str(w), pw=nfd)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((w / "party-1.share").read_text())
    assert doc["version"] == 2 and doc["passphrase_form"] == "NFC"
    before = snapshot(tmp_path)
    for pw in (nfc, nfd):
        ok = tmpc("sign", "--wallet", str(w), "--signers", "1,2", "--message", "00", pw=pw)
        assert ok.returncode == 0 and ok.stderr == "", ok.stderr
    wrong = tmpc("sign", "--wallet", str(w), "--signers", "1,2", "--message", "00", pw=nfc + "!")
    assert_one_line(wrong, EXIT_INPUT, "party 1: wrong passphrase")
    assert snapshot(tmp_path) == before


def _seal_version1(secret: ShareSecret, passphrase_bytes: bytes) -> bytes:
    """A share file as tmpc wrote it before passphrases were normalised (format version 1)."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    kdf = FAST_KDF_FOR_TESTS
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    header: dict[str, Any] = {
        "format": "tmpc-share",
        "version": 1,
        "wallet_id": "w1",
        "party": 1,
        "epoch": 0,
        "kdf": {
            "alg": "argon2id",
            "salt": salt.hex(),
            "iterations": kdf.iterations,
            "lanes": kdf.lanes,
            "memory_kib": kdf.memory_kib,
        },
        "aead": "chacha20poly1305",
    }
    key = Argon2id(
        salt=salt,
        length=32,
        iterations=kdf.iterations,
        lanes=kdf.lanes,
        memory_cost=kdf.memory_kib,
    ).derive(passphrase_bytes)
    ad = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    ct = ChaCha20Poly1305(key).encrypt(nonce, secret.to_plaintext(), ad)
    return json.dumps(dict(header, nonce=nonce.hex(), ciphertext=ct.hex())).encode()


@pytest.mark.parametrize("typed_at_creation", ["NFC", "NFD"])
def test_version1_share_files_still_open(typed_at_creation: str) -> None:
    secret = ShareSecret(secrets.token_bytes(32), secrets.token_bytes(32))
    text = "Crème brûlée"
    created = unicodedata.normalize(typed_at_creation, text)
    data = _seal_version1(secret, created.encode())
    for form in ("NFC", "NFD"):
        pw = unicodedata.normalize(form, text)
        assert open_share(data, passphrase=pw, wallet_id="w1", party=1) == secret
    with pytest.raises(CryptoError):
        open_share(data, passphrase="Creme brulee", wallet_id="w1", party=1)


def test_passphrase_form_is_authenticated() -> None:
    secret = ShareSecret(secrets.token_bytes(32), secrets.token_bytes(32))
    data = seal_share(
        secret,
        wallet_id="w1",
        party=1,
        epoch=0,
        passphrase="Crème",
        kdf=FAST_KDF_FOR_TESTS,
        insecure_kdf_for_tests=True,
    )
    doc = json.loads(data)
    # Relabelled as version 1 (passphrase "as typed"): the header no longer authenticates.
    old = {k: v for k, v in doc.items() if k != "passphrase_form"}
    old["version"] = 1
    with pytest.raises(CryptoError):
        open_share(json.dumps(old).encode(), passphrase="Crème", wallet_id="w1", party=1)
    with pytest.raises(KeystoreError, match="passphrase form"):
        open_share(
            json.dumps(dict(doc, passphrase_form="NFD")).encode(),
            passphrase="Crème",
            wallet_id="w1",
            party=1,
        )
    with pytest.raises(KeystoreError, match="UTF-8"):
        open_share(data, passphrase=NOT_UTF8, wallet_id="w1", party=1)


# --------------------------------------------------------------------------------------------
# 3. A full disk
# --------------------------------------------------------------------------------------------


def test_keygen_with_a_full_disk_leaves_nothing(tmp_path: Path) -> None:
    before = snapshot(tmp_path)
    proc = tmpc(
        "keygen",
        "--scheme",
        "ed25519",
        "-t",
        "2",
        "-n",
        "3",
        "--out",
        str(tmp_path / "w"),
        preexec_fn=limit_file_size(0),
    )
    assert_one_line(proc, EXIT_SYSTEM, "cannot write the wallet", "nothing was written")
    assert snapshot(tmp_path) == before


def test_keygen_on_a_full_tmpfs_leaves_nothing(tmp_path: Path) -> None:
    if not _mount_namespaces_work(tmp_path):
        pytest.skip("needs root and mount namespaces (unshare) to mount a small tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    args = ["keygen", "--scheme", "ed25519", "-t", "2", "-n", "3", "--out", f"{mnt}/w"]
    proc, before, after = run_on_full_tmpfs(mnt, "true", args)
    assert_one_line(proc, EXIT_SYSTEM, "No space left on device", "nothing was written")
    assert after == before


def _state_home() -> Path:
    return Path(os.environ["TMPC_STATE_HOME"])  # per test, from conftest.py


def test_state_databases_on_a_full_disk(ecdsa_wallet: Path, tmp_path: Path) -> None:
    w = copy_wallet(ecdsa_wallet, tmp_path / "w")
    before, before_home = snapshot(tmp_path), snapshot(_state_home())
    proc = tmpc("presign", "--wallet", str(w), "--signers", "1,2", preexec_fn=limit_file_size(0))
    line = assert_one_line(proc, EXIT_SYSTEM, "cannot create", "nothing was changed")
    assert "corrupt" not in line
    assert snapshot(tmp_path) == before
    assert snapshot(_state_home()) == before_home


def test_party_database_on_a_full_tmpfs(ecdsa_wallet: Path, tmp_path: Path) -> None:
    if not _mount_namespaces_work(tmp_path):
        pytest.skip("needs root and mount namespaces (unshare) to mount a small tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    copy = f"cp -a '{ecdsa_wallet}/.' \"$MNT\""
    args = ["presign", "--wallet", str(mnt), "--signers", "1,2"]
    proc, before, after = run_on_full_tmpfs(mnt, copy, args)
    assert_one_line(proc, EXIT_SYSTEM, "party state database", "disk full", "nothing was changed")
    assert after == before


# --------------------------------------------------------------------------------------------
# 4. Bitcoin fees
# --------------------------------------------------------------------------------------------

UTXO = "ab" * 32 + ":0:9100000000"


@pytest.mark.parametrize(
    ("fee", "needle"),
    [
        ("9000000000", "0.1 BTC, Bitcoin Core's -maxtxfee"),
        ("2000000", "Bitcoin Core's maxfeerate"),  # 0.02 BTC on ~143 vB: 14 000 sat/vB
        ("0", "below the minimum relay fee rate of 1 sat/vB"),
        ("100", "below the minimum relay fee rate of 1 sat/vB"),
    ],
    ids=["90-btc", "feerate", "zero", "below-relay"],
)
def test_tx_bitcoin_refuses_absurd_fees(
    taproot_wallet: Path, tmp_path: Path, fee: str, needle: str
) -> None:
    w = copy_wallet(taproot_wallet, tmp_path / "w")
    before = snapshot(tmp_path)
    args = ["--utxo", UTXO, "--to", f"{PAYEE}:99700", "--fee", fee, "--network", "regtest"]
    # Refused before any share is opened: no passphrase needed to be told.
    proc = tmpc("tx", "bitcoin", "--wallet", str(w), *args, pw=None)
    assert_one_line(proc, EXIT_INPUT, needle)
    if needle.startswith("below"):  # no override for a fee nobody relays
        again = tmpc("tx", "bitcoin", "--wallet", str(w), *args, "--allow-high-fee")
        assert_one_line(again, EXIT_INPUT, needle)
    else:
        ok = tmpc("tx", "bitcoin", "--wallet", str(w), *args, "--allow-high-fee", "--json")
        assert ok.returncode == 0 and ok.stderr == "", ok.stderr
        assert json.loads(ok.stdout)["fee_sat"] == int(fee)
    assert snapshot(tmp_path) == before


def _taproot_psbt(wallet: Path, amount: int, fee: int) -> str:
    record = _record(wallet)
    spk = btc.wallet_script_pubkey(record.scheme, record.public_key)
    own = btc.wallet_address(record.scheme, record.public_key, "regtest")
    spend = btc.build_spend(
        [btc.Utxo("cd" * 32, 1, amount, spk)], [(PAYEE, amount - fee)], fee, own, network="regtest"
    )
    return btc.spend_to_psbt(spend)


@pytest.mark.parametrize(
    ("fee", "code"), [(9_000_000_000, EXIT_INPUT), (0, EXIT_INPUT), (2_000, 0)], ids=str
)
def test_tx_bitcoin_psbt_fee(taproot_wallet: Path, tmp_path: Path, fee: int, code: int) -> None:
    w = copy_wallet(taproot_wallet, tmp_path / "w")
    before = snapshot(tmp_path)
    psbt = _taproot_psbt(w, 9_100_000_000, fee)
    proc = tmpc("tx", "bitcoin", "--wallet", str(w), "--psbt", psbt, "--network", "regtest")
    if code:
        assert_one_line(proc, code, "fee")
    else:
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    if fee > btc.MAX_FEE_SAT:
        ok = tmpc("tx", "bitcoin", "--wallet", str(w), "--psbt", psbt, "--allow-high-fee")
        assert ok.returncode == 0 and ok.stderr == "", ok.stderr
    assert snapshot(tmp_path) == before


def _p2tr_key() -> tuple[bytes, Callable[[bytes], bytes]]:
    key = coincurve.PrivateKey()
    return key.public_key_xonly.format(), lambda digest: key.sign_schnorr(digest)


def test_library_fee_checks_and_vsize() -> None:
    xonly, sign = _p2tr_key()
    spk = btc.wallet_script_pubkey(btc.SCHEME_P2TR, xonly)

    def spend(fee: int, amount: int = 200_000) -> btc.UnsignedSpend:
        return btc.build_spend(
            [btc.Utxo("ab" * 32, 0, amount, spk)],
            [(PAYEE, amount - fee)],
            fee,
            network="regtest",
        )

    good = spend(1_000)
    signed = btc.sign_spend(good, sign, xonly, btc.SCHEME_P2TR)
    base = len(good.to_bytes())
    real_vsize = (3 * base + len(signed.raw) + 3) // 4
    assert real_vsize <= btc.estimate_vsize(good) <= real_vsize + 1
    for fee in (0, 50):
        with pytest.raises(ParameterError, match="minimum relay"):
            btc.sign_spend(spend(fee), sign, xonly, btc.SCHEME_P2TR)
    big = spend(20_000_000, amount=30_000_000)
    with pytest.raises(ParameterError, match="maxtxfee"):
        btc.sign_spend(big, sign, xonly, btc.SCHEME_P2TR)
    btc.sign_spend(big, sign, xonly, btc.SCHEME_P2TR, allow_high_fee=True)
    with pytest.raises(ParameterError, match="maxtxfee"):
        btc.sign_psbt(btc.spend_to_psbt(big), sign, xonly, btc.SCHEME_P2TR)
    vsize = btc.estimate_vsize(good)
    btc.check_fee(vsize, vsize)  # exactly 1 sat/vB
    with pytest.raises(ParameterError, match="minimum relay"):
        btc.check_fee(vsize - 1, vsize)
    btc.check_fee(10_000 * vsize, vsize)  # exactly the maximum rate
    with pytest.raises(ParameterError, match="maxfeerate"):
        btc.check_fee(10_000 * vsize + 1, vsize)
    btc.check_fee(10_000 * vsize + 1, vsize, allow_high_fee=True)


# --------------------------------------------------------------------------------------------
# 5. Taproot PSBT fields that contradict the wallet
# --------------------------------------------------------------------------------------------


def _with_fields(psbt_b64: str, internal: bytes | None, root: bytes | None) -> str:
    psbt = PSBT.from_base64(psbt_b64)
    if internal is not None:
        psbt.inputs[0].taproot_internal_key = EcPublicKey.from_xonly(internal)
    psbt.inputs[0].taproot_merkle_root = root
    return str(psbt.to_base64())


def _other_xonly() -> bytes:
    return coincurve.PrivateKey().public_key_xonly.format()


@pytest.mark.parametrize(
    ("field", "make"),
    [
        ("PSBT_IN_TAP_INTERNAL_KEY", lambda own: (_other_xonly(), None)),
        ("PSBT_IN_TAP_MERKLE_ROOT", lambda own: (own, secrets.token_bytes(32))),
        ("PSBT_IN_TAP_MERKLE_ROOT", lambda own: (None, secrets.token_bytes(32))),
    ],
    ids=["internal-key", "merkle-root", "merkle-root-alone"],
)
def test_psbt_taproot_fields_that_contradict_the_wallet(
    taproot_wallet: Path, tmp_path: Path, field: str, make: Any
) -> None:
    w = copy_wallet(taproot_wallet, tmp_path / "w")
    before = snapshot(tmp_path)
    own_internal = bytes.fromhex(
        json.loads((w / "wallet.json").read_text())["taproot"]["internal_key"]
    )
    internal, root = make(own_internal)
    psbt = _with_fields(_taproot_psbt(w, 100_000, 1_000), internal, root)
    proc = tmpc("tx", "bitcoin", "--wallet", str(w), "--psbt", psbt, pw=None)
    assert_one_line(proc, EXIT_INPUT, "input 0", field, "refusing to sign")
    assert snapshot(tmp_path) == before


def test_psbt_taproot_fields_that_agree_are_signed(taproot_wallet: Path, tmp_path: Path) -> None:
    w = copy_wallet(taproot_wallet, tmp_path / "w")
    before = snapshot(tmp_path)
    own_internal = bytes.fromhex(
        json.loads((w / "wallet.json").read_text())["taproot"]["internal_key"]
    )
    psbt = _with_fields(_taproot_psbt(w, 100_000, 1_000), own_internal, None)
    proc = tmpc("tx", "bitcoin", "--wallet", str(w), "--psbt", psbt, "--json")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    signed = PSBT.from_base64(json.loads(proc.stdout)["psbt"])
    assert signed.inputs[0].taproot_internal_key.xonly() == own_internal
    assert snapshot(tmp_path) == before


def test_library_taproot_fields_checked_without_wallet_data() -> None:
    xonly, sign = _p2tr_key()
    spk = btc.wallet_script_pubkey(btc.SCHEME_P2TR, xonly)
    spend = btc.build_spend(
        [btc.Utxo("ab" * 32, 0, 100_000, spk)], [(PAYEE, 99_000)], 1_000, network="regtest"
    )
    psbt = btc.spend_to_psbt(spend)
    # The output key used as if it were the internal key: tweaked, it is another key.
    with pytest.raises(ParameterError, match="input 0: PSBT_IN_TAP_INTERNAL_KEY without"):
        btc.sign_psbt(_with_fields(psbt, xonly, None), sign, xonly, btc.SCHEME_P2TR)
    bad_root = base64.b64decode(_with_fields(psbt, None, b"\x01" * 31))
    with pytest.raises(DecodeError, match="PSBT_IN_TAP_MERKLE_ROOT is not 32 bytes"):
        btc.sign_psbt(base64.b64encode(bad_root).decode(), sign, xonly, btc.SCHEME_P2TR)


# --------------------------------------------------------------------------------------------
# 6. Signals
# --------------------------------------------------------------------------------------------

SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


def _popen(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tmpc", *args],
        cwd=cwd,
        env=_env(PW),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _finish(proc: subprocess.Popen[bytes]) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(), err.decode())


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert proc.poll() is None, "tmpc ended before the moment to signal it"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_signal_during_keygen_removes_the_staging_directory(
    tmp_path: Path, sig: signal.Signals
) -> None:
    before = snapshot(tmp_path)
    # 40 parties with the real Argon2id cost: sealing takes seconds, inside the staging dir.
    proc = _popen(["keygen", "--scheme", "ed25519", "-t", "2", "-n", "40", "--out", "w"], tmp_path)
    _wait_for(lambda: any(p.name.startswith(".w.") for p in tmp_path.iterdir()), proc)
    time.sleep(0.2)  # a share file or two written
    proc.send_signal(sig)
    done = _finish(proc)
    assert_one_line(done, 128 + sig, f"interrupted by {sig.name}")
    assert snapshot(tmp_path) == before


def _catches(pid: int, sig: signal.Signals) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (Linux: SigCgt in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_signal_during_startup(taproot_wallet: Path, tmp_path: Path, sig: signal.Signals) -> None:
    w = copy_wallet(taproot_wallet, tmp_path / "w")
    before = snapshot(tmp_path)
    proc = _popen(["sign", "--wallet", str(w), "--signers", "1,2", "--message", "00"], tmp_path)
    # Python itself catches only SIGINT; SIGHUP caught means tmpc's start-up handlers are in
    # place, while the command line (~0.2 s of imports) is still loading.
    _wait_for(lambda: _catches(proc.pid, signal.SIGHUP), proc)
    proc.send_signal(sig)
    done = _finish(proc)
    assert_one_line(done, 128 + sig, f"interrupted by {sig.name}")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_signal_right_after_start(
    taproot_wallet: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    # Before Python runs tmpc's first line the default action (terminate, silently) applies;
    # from then on tmpc's handlers. Either way: no traceback, at most one line, no debris.
    w = copy_wallet(taproot_wallet, tmp_path / "w")
    before = snapshot(tmp_path)
    for delay in (0.0, 0.01, 0.03, 0.1):
        proc = _popen(["sign", "--wallet", str(w), "--signers", "1,2", "--message", "00"], tmp_path)
        time.sleep(delay)
        proc.send_signal(sig)
        done = _finish(proc)
        if done.returncode in (-sig, 0):  # not started yet, or already done: silent
            assert done.stderr == ""
        else:
            assert_one_line(done, 128 + sig, f"interrupted by {sig.name}")
        assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------------------------
# 7. No command
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [[], ["tx"]], ids=["tmpc", "tmpc-tx"])
def test_no_command_prints_the_help(tmp_path: Path, args: list[str]) -> None:
    proc = tmpc(*args, cwd=tmp_path)
    assert_one_line(proc, EXIT_INPUT, "missing command")
    assert proc.stdout.startswith("Usage: tmpc ")
    assert "\nCommands:\n" in proc.stdout and proc.stdout.count("\n") > 8
    assert snapshot(tmp_path) == {}


# --------------------------------------------------------------------------------------------
# 8. Exit statuses
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "pw", "code", "needle"),
    [
        (["sign", "--bogus"], PW, EXIT_INPUT, "No such option"),
        (["sign", "--signers", "1,2", "--message", "zz"], PW, EXIT_INPUT, "not valid hex"),
        (["sign", "--signers", "1,9", "--message", "00"], PW, EXIT_INPUT, "unknown signer"),
        (["sign", "--signers", "1,2", "--message", "00"], "wrong", EXIT_INPUT, "passphrase"),
        (["address", "--network", "mars"], PW, EXIT_INPUT, "mars"),
    ],
    ids=["unknown-option", "bad-hex", "bad-signer", "wrong-passphrase", "bad-choice"],
)
def test_input_errors_exit_2(
    taproot_wallet: Path,
    tmp_path: Path,
    args: list[str],
    pw: str,
    code: int,
    needle: str,
) -> None:
    w = copy_wallet(taproot_wallet, tmp_path / "w")
    before = snapshot(tmp_path)
    assert_one_line(tmpc(args[0], "--wallet", str(w), *args[1:], pw=pw), code, needle)
    assert snapshot(tmp_path) == before


def test_missing_wallet_exits_2_and_invalid_signature_exits_1(
    taproot_wallet: Path, tmp_path: Path
) -> None:
    w = copy_wallet(taproot_wallet, tmp_path / "w")
    before = snapshot(tmp_path)
    missing = tmpc(
        "verify", "--wallet", str(tmp_path / "nope"), "--message", "00", "--signature", "00" * 64
    )
    assert_one_line(missing, EXIT_INPUT, "wallet directory not found")
    invalid = tmpc("verify", "--wallet", str(w), "--message", "00", "--signature", "00" * 64)
    assert invalid.returncode == EXIT_CHECK_FAILED and invalid.stdout.strip() == "INVALID"
    assert invalid.stderr == ""
    assert snapshot(tmp_path) == before


def test_protocol_abort_exits_3(ecdsa_wallet: Path, tmp_path: Path) -> None:
    from tmpc.state.store import DenyList, StateDB, state_db_path

    w = copy_wallet(ecdsa_wallet, tmp_path / "w")
    with StateDB(state_db_path(w, 1), party=1) as db:
        DenyList(db).add(_record(w).wallet_id, 2, "failed pairwise check (test)")
    StateDB(state_db_path(w, 2), party=2).close()  # both parties' state exists already
    before = snapshot(tmp_path)
    proc = tmpc("presign", "--wallet", str(w), "--signers", "1,2")
    assert_one_line(proc, EXIT_PROTOCOL, "refuses to sign with party 2", "(blamed: 2)")
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------------------------
# 9. --message-file
# --------------------------------------------------------------------------------------------


def test_message_file_and_stdin(taproot_wallet: Path, tmp_path: Path) -> None:
    w = copy_wallet(taproot_wallet, tmp_path / "w")
    message = secrets.token_bytes(300_000)  # far beyond what fits in argv as hex
    (tmp_path / "msg").write_bytes(message)
    before = snapshot(tmp_path)
    signed = tmpc(
        "sign",
        "--wallet",
        str(w),
        "--signers",
        "1,3",
        "--message-file",
        str(tmp_path / "msg"),
        "--json",
    )
    assert signed.returncode == 0 and signed.stderr == "", signed.stderr
    out = json.loads(signed.stdout)
    assert out["message"] == message.hex()
    assert set(out) == {
        "scheme",
        "wallet_id",
        "path",
        "public_key",
        "message",
        "signature",
        "signers",
    }
    for source, stdin in ((str(tmp_path / "msg"), b""), ("-", message)):
        ok = tmpc(
            "verify",
            "--wallet",
            str(w),
            "--message-file",
            source,
            "--signature",
            out["signature"],
            stdin=stdin,
        )
        assert ok.returncode == 0 and ok.stdout.strip() == "valid" and ok.stderr == ""
    from_stdin = tmpc(
        "sign",
        "--wallet",
        str(w),
        "--signers",
        "2,3",
        "--message-file",
        "-",
        "--json",
        stdin=b"pay 1 BTC",
    )
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert json.loads(from_stdin.stdout)["message"] == b"pay 1 BTC".hex()
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--message", "00", "--message-file", "-"], "not both"),
        ([], "give the message"),
        (["--message-file", "no-such-file"], "--message-file not found"),
    ],
    ids=["both", "neither", "missing-file"],
)
@pytest.mark.parametrize("command", ["sign", "verify"])
def test_message_options_refused(
    taproot_wallet: Path, tmp_path: Path, command: str, args: list[str], needle: str
) -> None:
    w = copy_wallet(taproot_wallet, tmp_path / "w")
    before = snapshot(tmp_path)
    extra = ["--signers", "1,2"] if command == "sign" else ["--signature", "00" * 64]
    proc = tmpc(command, "--wallet", str(w), *extra, *args, cwd=tmp_path)
    assert_one_line(proc, EXIT_INPUT, needle)
    assert snapshot(tmp_path) == before


def test_ecdsa_message_file_must_be_32_bytes(ecdsa_wallet: Path, tmp_path: Path) -> None:
    w = copy_wallet(ecdsa_wallet, tmp_path / "w")
    (tmp_path / "digest").write_bytes(bytes(31))
    before = snapshot(tmp_path)
    proc = tmpc(
        "sign",
        "--wallet",
        str(w),
        "--signers",
        "1,2",
        "--message-file",
        str(tmp_path / "digest"),
        pw=None,
    )
    assert_one_line(proc, EXIT_INPUT, "32")
    assert snapshot(tmp_path) == before
