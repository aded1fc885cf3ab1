"""``tmpc bench --nodes``: a small run against real node processes, and the signature check."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tmpc import schemes
from tmpc.cli.bench import check_node_signature
from tmpc.errors import CryptoError

NODE_FIELDS = {"scheme", "op", "threshold", "parties", "runs", "median_s", "min_s", "max_s"}


def test_bench_nodes_json(tmp_path: Path) -> None:
    """A bounded 3-of-5 run: every record is there with positive figures, progress went to
    standard error, and afterwards no node runs and the temporary directory is gone."""
    args = ["--scheme", "schnorr-bip340", "-t", "3", "-n", "5", "--runs", "3", "--requests", "20"]
    proc = subprocess.run(
        [sys.executable, "-m", "tmpc", "bench", "--nodes", *args, "--in-flight", "8", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)  # stdout holds the JSON only
    by_op = {r["op"]: r for r in records}
    assert set(by_op) == {
        "loopback-rtt", "node-keygen", "node-sign", "node-refresh", "node-throughput"
    }  # fmt: skip
    assert by_op["node-refresh"]["runs"] == 5
    for r in records:
        assert set(r) >= NODE_FIELDS | {"p90_s"}
        assert (r["scheme"], r["threshold"], r["parties"]) == ("schnorr-bip340", 3, 5)
        assert 0 < r["min_s"] <= r["median_s"] <= r["p90_s"] <= r["max_s"]
    assert by_op["node-sign"]["runs"] == 3
    throughput = by_op["node-throughput"]
    assert throughput["runs"] == 20 and throughput["in_flight"] == 8
    assert throughput["throughput_per_s"] > 0
    assert by_op["node-sign"]["loopback_rtt_s"] == by_op["loopback-rtt"]["median_s"] > 0

    assert "node-sign" in proc.stderr
    assert_nodes_gone(proc.stderr, 5, tmp_path)


def assert_nodes_gone(stderr: str, count: int, tmp_path: Path) -> None:
    """The run started ``count`` nodes (their pids in its progress lines), said it stopped
    them, none runs any more, and its temporary directory (under ``tmp_path``) is gone."""
    assert "stopping the nodes" in stderr
    pids = [int(p) for p in re.findall(r"ready \(pid (\d+)\)", stderr)]
    assert len(pids) == count
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("scheme_id", ["schnorr-bip340", "ed25519", "ecdsa-secp256k1"])
def test_bad_node_signature_fails(scheme_id: str) -> None:
    """An answer whose signature, message or key is not the expected one fails the bench."""
    record, shares = schemes.keygen(scheme_id, 2, 3)
    msg = secrets.token_bytes(32)
    sig = schemes.sign(record, shares[:2], msg)
    pk = record.public_key
    good = {"signature": sig.hex(), "message": msg.hex(), "public_key": pk.hex()}
    check_node_signature(scheme_id, pk, msg, good)

    flipped = bytearray(sig)
    flipped[-1] ^= 1
    other = secrets.token_bytes(32)
    for bad in (
        dict(good, signature=flipped.hex()),
        dict(good, signature="zz"),
        dict(good, message=other.hex()),
        {"message": msg.hex(), "public_key": pk.hex()},
    ):
        with pytest.raises(CryptoError):
            check_node_signature(scheme_id, pk, msg, bad)
    with pytest.raises(CryptoError):  # a valid signature, but of another message
        check_node_signature(scheme_id, pk, other, dict(good, message=other.hex()))


def test_bench_policy_json(tmp_path: Path) -> None:
    """``tmpc bench --policy``: both request kinds measured (their judgements allowed: a
    refusal would raise), the records keep the interface fields, nothing left behind."""
    base = [sys.executable, "-m", "tmpc", "bench", "--policy", "-t", "2", "-n", "3"]
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.run(
        [*base, "--scheme", "ecdsa-secp256k1", "--runs", "5", "--json"],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)
    assert [r["op"] for r in records] == ["policy-judge", "policy-judge-approvals"]
    for r in records:
        assert NODE_FIELDS <= set(r) and r["runs"] == 5 and r["median_s"] > 0
    assert list(tmp_path.iterdir()) == []
    proc = subprocess.run(
        [*base, "--scheme", "ed25519"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr


def test_bench_observe_overhead_json(tmp_path: Path) -> None:
    """``tmpc bench --nodes --observe-overhead``: two clusters measured in alternation (ECDSA:
    all three measurements), each pair of records with and without audit and metrics, the
    overhead and its interval on the observed record, CPU per signature from /proc; the
    observed cluster's nodes wrote audit logs and the quiet one's did not (checked by the
    nodes' own pids being gone and the directory removed); bad combinations refused."""
    args = ["--scheme", "ecdsa-secp256k1", "-t", "2", "-n", "3", "--runs", "2", "--rounds", "2"]
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    base = [sys.executable, "-m", "tmpc", "bench", "--nodes"]
    proc = subprocess.run(
        [*base, "--observe-overhead", *args, "--requests", "4", "--in-flight", "2", "--json"],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)
    kinds = [(r["op"], r.get("presignature"), r["observe"]) for r in records]
    assert kinds == [
        ("node-sign", "in-session", True), ("node-sign", "in-session", False),
        ("node-sign", "pooled", True), ("node-sign", "pooled", False),
        ("node-throughput", None, True), ("node-throughput", None, False),
    ]  # fmt: skip
    for with_, without in zip(records[0::2], records[1::2], strict=True):
        assert NODE_FIELDS <= set(with_) and with_["runs"] == without["runs"]
        assert with_["runs"] == (8 if with_["op"] == "node-throughput" else 4)
        assert with_["overhead"] == pytest.approx(with_["median_s"] / without["median_s"] - 1)
        assert with_["overhead_low"] <= with_["overhead_high"]
        assert "overhead" not in without
        for r in (with_, without):
            assert r["cpu_per_signature_s"] > 0
    assert "round 2/2" in proc.stderr and "verifying 36 signatures" in proc.stderr
    assert_nodes_gone(proc.stderr, 6, tmp_path)
    for bad in (["--observe-overhead", "--no-observe"], ["--rounds", "3"]):
        proc = subprocess.run(
            [*base, *bad, "--scheme", "ed25519", "-t", "2", "-n", "3"],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
