"""The ``tmpc`` command line, run as a real process, as an operator would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tmpc.cli.demo import independent_verify

PW = "a long custody passphrase"


def run(*args: str, pw: str | None = PW, check: bool = False) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("TMPC_PASSPHRASE", None)
    if pw is not None:
        env["TMPC_PASSPHRASE"] = pw
    proc = subprocess.run(
        [sys.executable, "-m", "tmpc", *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


#: Exit status of a usage or input error (README, CLI section).
EXIT_INPUT = 2


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int | None = None) -> None:
    """One line ``tmpc: error: ...`` on standard error, no traceback, a non-zero exit status
    (``code`` if given: the documented status of that kind of error)."""
    assert proc.returncode != 0
    if code is not None:
        assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("tmpc: error: ")


@pytest.fixture(scope="module", params=["schnorr-bip340", "ed25519", "frost-secp256k1"])
def wallet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("w") / request.param
    run("keygen", "--scheme", request.param, "-t", "3", "-n", "5", "--out", str(out), check=True)
    return out


def test_keygen_writes_wallet_and_shares(wallet: Path) -> None:
    doc = json.loads((wallet / "wallet.json").read_text())
    assert doc["threshold"] == 3 and doc["parties"] == 5
    assert sorted(p.name for p in wallet.glob("party-*.share")) == [
        f"party-{i}.share" for i in range(1, 6)
    ]
    expected_len = {"schnorr-bip340": 32, "ed25519": 32, "frost-secp256k1": 33}[doc["scheme"]]
    assert len(bytes.fromhex(doc["public_key"])) == expected_len


def test_sign_json_verifies_independently(wallet: Path) -> None:
    msg = "11" * 32
    for signers in ("1,3,4", "2,4,5", "1,2,3,4,5"):
        proc = run(
            "sign", "--wallet", str(wallet), "--signers", signers, "--message", msg, "--json"
        )
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert out["signers"] == [int(s) for s in signers.split(",")]
        assert out["message"] == msg
        pk, sig = bytes.fromhex(out["public_key"]), bytes.fromhex(out["signature"])
        assert independent_verify(out["scheme"], pk, bytes.fromhex(msg), sig)
        ok = run("verify", "--wallet", str(wallet), "--message", msg, "--signature", sig.hex())
        assert ok.returncode == 0 and ok.stdout.strip() == "valid"
        bad_sig = sig[:-1] + bytes([sig[-1] ^ 1])
        bad = run("verify", "--wallet", str(wallet), "--message", msg, "--signature", bad_sig.hex())
        assert bad.returncode == 1 and "INVALID" in bad.stdout


def test_address(wallet: Path) -> None:
    scheme = json.loads((wallet / "wallet.json").read_text())["scheme"]
    proc = run("address", "--wallet", str(wallet), "--network", "regtest")
    if scheme == "schnorr-bip340":
        assert proc.returncode == 0 and proc.stdout.startswith("bcrt1p")
        main = run("address", "--wallet", str(wallet), check=True)
        assert main.stdout.startswith("bc1p")
    elif scheme == "ed25519":
        import base58

        doc = json.loads((wallet / "wallet.json").read_text())
        assert base58.b58decode(proc.stdout.strip()) == bytes.fromhex(doc["public_key"])
    else:
        assert_one_line_error(proc, EXIT_INPUT)


@pytest.mark.parametrize(
    ("args", "pw"),
    [
        (("--signers", "1,2", "--message", "00"), PW),  # fewer than t
        (("--signers", "1,2,9", "--message", "00"), PW),  # unknown signer
        (("--signers", "1,1,2", "--message", "00"), PW),  # duplicate
        (("--signers", "a,b,c", "--message", "00"), PW),  # not ids
        (("--signers", "1,2,3", "--message", "zz"), PW),  # bad hex
        (("--signers", "1,2,3", "--message", "00"), "wrong passphrase"),
        (("--signers", "1,2,3", "--message", "00"), None),  # no passphrase, no terminal
    ],
    ids=["too-few", "unknown", "duplicate", "non-numeric", "bad-hex", "wrong-pw", "no-pw"],
)
def test_sign_user_errors(wallet: Path, args: tuple[str, ...], pw: str | None) -> None:
    assert_one_line_error(run("sign", "--wallet", str(wallet), *args, pw=pw), EXIT_INPUT)


def test_keygen_refuses_to_overwrite(wallet: Path) -> None:
    before = {p.name: p.read_bytes() for p in wallet.iterdir()}
    proc = run("keygen", "--scheme", "ed25519", "-t", "2", "-n", "3", "--out", str(wallet))
    assert_one_line_error(proc, EXIT_INPUT)
    assert {p.name: p.read_bytes() for p in wallet.iterdir()} == before


def test_tampered_share_and_missing_wallet(wallet: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in wallet.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    doc = json.loads((copy / "party-2.share").read_text())
    ct = bytearray(bytes.fromhex(doc["ciphertext"]))
    ct[5] ^= 0x40
    doc["ciphertext"] = ct.hex()
    (copy / "party-2.share").write_text(json.dumps(doc))
    proc = run("sign", "--wallet", str(copy), "--signers", "1,2,3", "--message", "00")
    assert_one_line_error(proc, EXIT_INPUT)
    assert "party 2" in proc.stderr
    (copy / "party-2.share").write_bytes((copy / "party-3.share").read_bytes())
    swapped = run("sign", "--wallet", str(copy), "--signers", "1,2,3", "--message", "00")
    assert_one_line_error(swapped, EXIT_INPUT)
    assert_one_line_error(
        run("sign", "--wallet", str(tmp_path / "nope"), "--signers", "1,2,3", "--message", "00"),
        EXIT_INPUT,
    )
    (copy / "wallet.json").write_text("{not json")
    assert_one_line_error(
        run("verify", "--wallet", str(copy), "--message", "00", "--signature", "00"), EXIT_INPUT
    )


@pytest.mark.parametrize(
    "args",
    [
        ("keygen", "--scheme", "rsa", "-t", "2", "-n", "3", "--out", "x"),
        ("keygen", "--scheme", "ed25519", "-t", "4", "-n", "3", "--out", "unused-dir"),
        ("keygen", "--scheme", "ed25519", "-t", "0", "-n", "3", "--out", "unused-dir"),
        ("frobnicate",),
        ("sign", "--bogus-option"),
    ],
    ids=["unknown-scheme", "t-gt-n", "t-zero", "unknown-command", "unknown-option"],
)
def test_usage_errors(args: tuple[str, ...], tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tmpc", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TMPC_PASSPHRASE": PW},
        timeout=60,
    )
    assert_one_line_error(proc, EXIT_INPUT)
    assert not (tmp_path / "unused-dir").exists()


def test_bench_json() -> None:
    proc = run("bench", "--scheme", "ed25519", "-t", "2", "-n", "3", "--runs", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    recs = json.loads(proc.stdout)
    assert {r["op"] for r in recs} == {"dkg", "sign", "refresh"}
    for r in recs:
        assert set(r) >= {
            "scheme",
            "op",
            "threshold",
            "parties",
            "runs",
            "median_s",
            "min_s",
            "max_s",
        }
        assert r["runs"] == 2 and r["min_s"] <= r["median_s"] <= r["max_s"]


def test_keygen_os_errors_are_one_line_and_leave_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert_one_line_error(
        run("keygen", "--scheme", "ed25519", "-t", "2", "-n", "3", "--out", str(blocker / "w")),
        EXIT_INPUT,
    )
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        proc = run("keygen", "--scheme", "ed25519", "-t", "2", "-n", "3", "--out", str(ro / "w"))
        if os.geteuid() != 0:  # root ignores directory permissions
            assert_one_line_error(proc, 4)  # permission denied: a local system failure
    finally:
        ro.chmod(0o700)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "ro"]
    assert not any((tmp_path / "ro").iterdir()) or os.geteuid() == 0


def test_old_wallet_format_is_refused_clearly(wallet: Path, tmp_path: Path) -> None:
    doc = json.loads((wallet / "wallet.json").read_text())
    doc["version"] = 1
    (tmp_path / "wallet.json").write_text(json.dumps(doc))
    proc = run("address", "--wallet", str(tmp_path))
    assert_one_line_error(proc, EXIT_INPUT)
    assert "version 1" in proc.stderr
