"""``tmpc rotate --wallet DIR``: new shares of the same key for a one-process wallet.

The wallet id, public key and every address stay; the epoch goes up; the old share files,
presignatures and redone pairwise setups are gone; the next signature verifies independently;
an old share file put back is refused; a rotation interrupted before its switch leaves the
wallet on its old epoch, and the next one cleans up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tmpc import schemes
from tmpc.cli.demo import independent_verify
from tmpc.state.keystore import share_files, share_path

PW = "rotate test passphrase"
ENV = {**os.environ, "TMPC_PASSPHRASE": PW}


def tmpc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tmpc", *args], capture_output=True, text=True, env=ENV, timeout=300
    )


def ok(*args: str) -> dict[str, object]:
    proc = tmpc(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert isinstance(out, dict)
    return out


@pytest.mark.parametrize("scheme", list(schemes.SCHEMES))
def test_rotate_keeps_the_wallet_and_signs(tmp_path: Path, scheme: str) -> None:
    w = tmp_path / "w"
    ok("keygen", "--scheme", scheme, "-t", "2", "-n", "3", "--out", str(w))
    before = json.loads((w / "wallet.json").read_text())
    dkls23 = schemes.get_scheme(scheme).dkls23
    if dkls23:
        ok("presign", "--wallet", str(w), "--signers", "1,2", "--count", "2")
    chains = schemes.get_scheme(scheme).chains
    addr_before = ok("address", "--wallet", str(w)) if chains and not dkls23 else None
    old_files = share_files(w)
    res = ok("rotate", "--wallet", str(w))
    assert (res["epoch"], res["previous_epoch"]) == (1, 0)
    assert res["presignatures_deleted"] == (2 if dkls23 else 0)
    after = json.loads((w / "wallet.json").read_text())
    for field in ("wallet_id", "public_key", "group_public_key", "recovery_data"):
        assert after[field] == before[field], field
    assert after["verification_shares"] != before["verification_shares"]
    if addr_before is not None:
        assert ok("address", "--wallet", str(w)) == addr_before
    # The old share files are gone, the new ones are this epoch's.
    assert all(not p.exists() for p in old_files.values())
    assert set(share_files(w, 1)) == {1, 2, 3}
    msg = (b"\x07" * 32).hex()
    sig = ok("sign", "--wallet", str(w), "--signers", "2,3", "--message", msg)
    record = schemes.WalletRecord.from_json(after)
    assert independent_verify(
        scheme, record.public_key, bytes.fromhex(msg), bytes.fromhex(str(sig["signature"]))
    )
    res2 = ok("rotate", "--wallet", str(w))
    assert res2["epoch"] == 2 and not share_path(w, 1, 1).exists()


def test_an_old_share_file_is_refused_after_a_rotation(tmp_path: Path) -> None:
    w = tmp_path / "w"
    ok("keygen", "--scheme", "ed25519", "-t", "2", "-n", "3", "--out", str(w))
    old = share_path(w, 1).read_bytes()
    ok("rotate", "--wallet", str(w))
    share_path(w, 1, 1).write_bytes(old)  # an epoch-0 share put in the current one's place
    proc = tmpc("sign", "--wallet", str(w), "--signers", "1,2", "--message", "00" * 32)
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1
    assert "party 1" in proc.stderr and "Traceback" not in proc.stderr


def test_an_interrupted_rotation_leaves_the_old_epoch_and_the_next_one_cleans_up(
    tmp_path: Path,
) -> None:
    w = tmp_path / "w"
    ok("keygen", "--scheme", "schnorr-bip340", "-t", "2", "-n", "3", "--out", str(w))
    # As if a rotation died after staging its files but before the switch.
    staged = share_path(w, 1, 1)
    staged.write_bytes(b"staged by a rotation that never switched")
    ok("sign", "--wallet", str(w), "--signers", "1,2", "--message", "11" * 32)  # still epoch 0
    res = ok("rotate", "--wallet", str(w))
    assert res["epoch"] == 1
    assert staged.exists() and staged.read_bytes() != b"staged by a rotation that never switched"
    ok("sign", "--wallet", str(w), "--signers", "1,3", "--message", "22" * 32)


def test_a_wrong_passphrase_rotates_nothing(tmp_path: Path) -> None:
    w = tmp_path / "w"
    ok("keygen", "--scheme", "ed25519", "-t", "2", "-n", "3", "--out", str(w))
    before = sorted(p.name for p in w.iterdir())
    proc = subprocess.run(
        [sys.executable, "-m", "tmpc", "rotate", "--wallet", str(w)],
        capture_output=True, text=True, env={**ENV, "TMPC_PASSPHRASE": "wrong"}, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1
    assert sorted(p.name for p in w.iterdir()) == before
