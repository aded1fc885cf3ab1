"""``make demo`` (``python -m tmpc.cli.demo``) on its cluster of node processes.

The demo runs as a subprocess, as ``make demo`` runs it, with ``TMPDIR`` in the test's
directory so the cluster directory it creates (and must remove) is the test's to inspect.
Checked: exit status, the markers of every step, and that none of the node processes it
printed is left running, after a full run and after a Ctrl-C / SIGTERM half-way.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tmpc.cli.testnet import CHECKS_BY_SCHEME

SCHEMES = ("schnorr-bip340", "ed25519", "frost-secp256k1", "ecdsa-secp256k1")


def _demo(tmp_path: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, TMPDIR=str(tmp_path))
    return subprocess.Popen(
        [sys.executable, "-m", "tmpc.cli.demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def _node_pids(out: str) -> list[int]:
    """Every node process id the demo printed (started, killed, restarted)."""
    pids = [int(p) for p in re.findall(r"^   node [a-e]  https://\S+  pid (\d+)$", out, re.M)]
    pids += [int(p) for p in re.findall(r"node [a-e] \((?:pid )?(\d+)\) killed", out)]
    pids += [int(p) for p in re.findall(r"node [a-e] restarted \(pid (\d+)\)", out)]
    return pids


def _running_node(pid: int) -> bool:
    """True if ``pid`` is still a running ``tmpc node run`` process."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    if re.search(r"^State:\s+Z", status, re.M):
        return False  # a zombie has exited
    return b"node\x00run" in cmdline


def _assert_cleaned_up(out: str, tmp_path: Path, expected_pids: int) -> None:
    pids = _node_pids(out)
    assert len(pids) >= expected_pids, out
    assert [p for p in pids if _running_node(p)] == [], out
    assert list(tmp_path.glob("tmpc-demo-*")) == [], out


def test_demo_runs_the_custody_flow_on_node_processes(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = _demo(tmp_path)
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, out
    assert elapsed < 120, f"the demo took {elapsed:.0f}s\n{out}"

    # Step 1: five node processes with their URLs and pids.
    nodes = re.findall(r"^   node ([a-e])  (https://127\.0\.0\.1:\d+)  pid (\d+)$", out, re.M)
    assert [n for n, _, _ in nodes] == ["a", "b", "c", "d", "e"], out
    # Step 2: a wallet per scheme, by DKG through the API.
    for scheme in SCHEMES:
        assert re.search(
            rf"^   \[{scheme}\] wallet [0-9a-f]{{32}} .*public key [0-9a-f]+$", out, re.M
        )
    # Step 3: a signature per scheme, independently verified.
    for scheme in SCHEMES:
        assert re.search(rf"^   \[{scheme}\] via a, signers [a-e,]+ .*: VALID$", out, re.M), scheme
    # Step 5: every chain's own validator accepted, and refused the flipped copy.
    for scheme, chains in CHECKS_BY_SCHEME.items():
        for chain in chains:
            row = rf"^   {chain} +{scheme} +yes +rejected "
            assert re.search(row, out, re.M), (chain, scheme)
    # Step 4: a batch of ECDSA presignatures, and a signature that finishes one of them.
    assert re.search(r"^   \[ecdsa-secp256k1\] 4 presignatures made by [a-e,]+ ", out, re.M), out
    assert "(one presignature finished in one round, used once)" in out, out
    assert "every chain's validator accepted the cluster's transactions" in out
    # Step 6: node c killed, every wallet signed without it, then c back and signing.
    assert re.search(r"node c \(pid \d+\) killed", out)
    without = re.findall(
        r"^   \[(\S+)\] via a, signers ([a-e,]+) .*VALID  \(signed without c\)$", out, re.M
    )
    assert sorted(s for s, _ in without) == sorted(SCHEMES), out
    assert all("c" not in signers.split(",") for _, signers in without)
    assert re.search(r"node c restarted \(pid \d+\): GET /v1/health -> name c, status ok", out)
    after = re.findall(r"^   \[(\S+)\] via c, signers ([a-e,]+) .*: VALID$", out, re.M)
    assert sorted(s for s, _ in after) == sorted(SCHEMES), out
    assert all("c" in signers.split(",") for _, signers in after)
    assert "node c is back: healthy and among the signers" in out
    # Step 7: every wallet rotated to epoch 1 on all five nodes, same key and addresses,
    # and a signature with the new shares.
    rotated = re.findall(
        r"^   \[(\S+)\] epoch 0 -> 1 \(.*s\), switched on 5 nodes; key and addresses "
        r"unchanged$",
        out,
        re.M,
    )
    assert sorted(rotated) == sorted(SCHEMES), out
    new_shares = re.findall(r"^   \[(\S+)\] via b, signers [a-e,]+ .*: VALID$", out, re.M)
    assert sorted(new_shares) == sorted(SCHEMES), out
    assert "ALL CHECKS PASSED" in out
    # Step 6: every process stopped, the directory removed.
    _assert_cleaned_up(out, tmp_path, expected_pids=7)
    assert re.search(r"^   removed \S+tmpc-demo-", out, re.M)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_demo_interrupted_stops_every_node(tmp_path: Path, signum: int) -> None:
    proc = _demo(tmp_path)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # interrupt once the nodes run, during the DKGs
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "".join(seen)
            seen.append(line)
            if line.startswith("== step 2"):
                break
        else:
            pytest.fail("the demo never reached step 2\n" + "".join(seen))
        os.kill(proc.pid, signum)  # the demo only, as a supervisor would; not its nodes
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    assert proc.stdout is not None
    proc.stdout.close()
    while (line := lines.get_nowait() if not lines.empty() else None) is not None:
        seen.append(line)
    out = "".join(seen)
    assert proc.returncode == 130, out
    assert "interrupted" in out
    _assert_cleaned_up(out, tmp_path, expected_pids=5)
