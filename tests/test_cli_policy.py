"""``tmpc policy ...`` run as real processes, as an administrator and an approver would."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import EXIT_INPUT, assert_one_line_error

EXIT_CHECK_FAILED = 1


def tmpc(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tmpc", "policy", *map(str, args)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def ok(*args: str | Path) -> subprocess.CompletedProcess[str]:
    proc = tmpc(*args)
    assert proc.returncode == 0, proc.stderr
    return proc


def policy_toml(treasury_key: str, version: int = 1) -> str:
    return f"""\
version = {version}
reference_currency = "USD"

[prices]
BTC = "60000"
ETH = "3000"

[approvers.alice]
key = "{treasury_key}"
role = "treasury"

[[rules]]
name = "deny-list"
action = "deny"
destinations_deny = ["0x000000000000000000000000000000000000dEaD"]

[[rules]]
name = "fast"
action = "allow"
group = "fast"
max_usd = "10000"

[[rules]]
name = "standard"
action = "allow"
group = "standard"
min_usd = "10000"
approvals = {{ treasury = 1 }}
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two administrators' keys, an approver's key, the policy, and the admins file."""
    d = tmp_path_factory.mktemp("policy")
    keys = {}
    for name in ("ann", "ben", "alice"):
        out = json.loads(ok("keygen", "--out", d / f"{name}.key", "--json").stdout)
        keys[name] = out["public_key"]
    (d / "policy.toml").write_text(policy_toml(keys["alice"]))
    (d / "admins.json").write_text(json.dumps({"ann": keys["ann"], "ben": keys["ben"]}))
    return d


def test_keygen_writes_a_private_key_file_and_never_overwrites(setup: Path) -> None:
    key_file = setup / "ann.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    doc = json.loads(key_file.read_text())
    assert doc["format"] == "tmpc-policy-key" and len(doc["public_key"]) == 64
    before = key_file.read_bytes()
    assert_one_line_error(tmpc("keygen", "--out", key_file), EXIT_INPUT)
    assert key_file.read_bytes() == before


def test_sign_twice_then_check_verifies_the_quorum(setup: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "v1.ann.json", tmp_path / "v1.json"
    ok("sign", "--policy", setup / "policy.toml", "--key", setup / "ann.key", "--name", "ann",
       "--out", one)  # fmt: skip
    ok("sign", "--policy", one, "--key", setup / "ben.key", "--name", "ben", "--out", two)
    bundle = json.loads(two.read_text())
    assert bundle["format"] == "tmpc-policy-bundle" and sorted(bundle["signatures"]) == [
        "ann",
        "ben",
    ]
    assert bundle["policy"] == (setup / "policy.toml").read_text()
    res = json.loads(
        ok("check", two, "--admins", setup / "admins.json", "--quorum", "2", "--json").stdout
    )
    assert res["signatures_verified"] and res["signed_by"] == ["ann", "ben"]
    assert [r["name"] for r in res["rules"]] == ["deny-list", "fast", "standard"]
    # --out is never overwritten.
    before = two.read_bytes()
    proc = tmpc("sign", "--policy", one, "--key", setup / "ben.key", "--name", "ben", "--out", two)
    assert_one_line_error(proc, EXIT_INPUT)
    assert two.read_bytes() == before

    # Too few signatures, unsigned, tampered: one line, exit 1.
    admins = ("--admins", setup / "admins.json")
    assert_one_line_error(tmpc("check", one, *admins, "--quorum", "2"), EXIT_CHECK_FAILED)
    proc = tmpc("check", setup / "policy.toml", *admins, "--quorum", "1")
    assert_one_line_error(proc, EXIT_CHECK_FAILED)
    assert "unsigned" in proc.stderr
    tampered = tmp_path / "tampered.json"
    bundle["policy"] = bundle["policy"].replace('max_usd = "10000"', 'max_usd = "90000"')
    tampered.write_text(json.dumps(bundle))
    proc = tmpc("check", tampered, *admins, "--quorum", "2")
    assert_one_line_error(proc, EXIT_CHECK_FAILED)
    assert "'ann' does not verify" in proc.stderr


def test_explain_approve_and_explain_again(setup: Path, tmp_path: Path) -> None:
    request = {
        "wallet": "treasury-1",
        "chain": "ethereum",
        "asset": "ETH",
        "amount": "20",
        "destinations": ["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"],
        "at": "2025-03-07T14:05:00Z",
        "request": {"wallet": "treasury-1", "transaction": "02f8...", "nonce": 1},
    }
    req = tmp_path / "request.json"
    req.write_text(json.dumps(request))
    pol = ("--policy", setup / "policy.toml")
    res = json.loads(ok("explain", *pol, "--request", req, "--json").stdout)
    assert not res["allowed"] and res["rule"] == "standard" and res["usd"] == "60000"
    assert res["approvals_required"] == {"treasury": 1}
    assert [t["status"] for t in res["trace"]] == ["not matched", "not matched", "matched"]

    approval = json.loads(
        ok("approve", "--key", setup / "alice.key", "--name", "alice", "--request", req).stdout
    )
    assert approval["approver"] == "alice" and len(approval["signature"]) == 128
    forged = json.loads(
        ok("approve", "--key", setup / "ann.key", "--name", "alice", "--request", req).stdout
    )
    request["approvals"] = [approval, forged]
    req.write_text(json.dumps(request))
    res = json.loads(ok("explain", *pol, "--request", req, "--json").stdout)
    assert res["allowed"] and res["group"] == "standard"
    assert res["approvals_present"] == {"treasury": 1}
    assert "approval by 'alice': signature does not verify" in res["reason"]
    human = ok("explain", *pol, "--request", req).stdout
    assert human.startswith("ALLOWED: allowed by rule 'standard'")


@pytest.mark.parametrize(
    ("policy_text", "request_doc", "needle"),
    [
        ("version = 1\nreference_currency = \"USD\"\nmax_usd = \"1\"\n", None,
         "unknown key 'max_usd'"),
        ("version = 1\nreference_currency = \"USD\"\n[prices]\nBTC = 60000.5\n", None,
         "prices.BTC must be a decimal string"),
        ("version = 1\n[[rules\n", None, "not valid TOML"),
        (None, {"wallet": "w", "chain": "bitcoin", "asset": "BTC", "amount": 0.5,
                "at": "2025-03-07T14:05:00Z"}, "not a float"),
        (None, {"wallet": "w", "chain": "bitcoin", "asset": "BTC", "amount": "1",
                "at": "2025-03-07 14:05"}, "time zone"),
        (None, {"wallet": "w", "colour": "red", "at": "2025-03-07T14:05:00Z"},
         "unknown key 'colour'"),
    ],
)  # fmt: skip
def test_bad_files_are_one_line_errors(
    setup: Path,
    tmp_path: Path,
    policy_text: str | None,
    request_doc: dict[str, object] | None,
    needle: str,
) -> None:
    pol = setup / "policy.toml"
    if policy_text is not None:
        pol = tmp_path / "bad.toml"
        pol.write_text(policy_text)
    req = tmp_path / "request.json"
    req.write_text(
        json.dumps(request_doc or {"wallet": "w", "bare_digest": True, "at": "2025-03-07T14:05Z"})
    )
    proc = tmpc("explain", "--policy", pol, "--request", req)
    assert_one_line_error(proc, EXIT_INPUT)
    assert needle in proc.stderr


def test_usage_errors_are_one_line(setup: Path, tmp_path: Path) -> None:
    pol = setup / "policy.toml"
    assert_one_line_error(tmpc("check", pol, "--admins", setup / "admins.json"), EXIT_INPUT)
    assert_one_line_error(tmpc("check", tmp_path / "missing.toml"), EXIT_INPUT)
    assert_one_line_error(
        tmpc("sign", "--policy", pol, "--key", pol, "--name", "ann", "--out", tmp_path / "b.json"),
        EXIT_INPUT,
    )  # a policy is not a key file
    assert not (tmp_path / "b.json").exists()
