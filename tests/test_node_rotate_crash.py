"""A node SIGKILLed in each phase of a rotation: every node ends on one agreed epoch.

Real node processes (``tmpc cluster local``, 3-of-5) with the crash-test failpoints enabled
(``TMPC_TEST_FAILPOINTS=1``): a file ``failpoint`` in a node's directory makes it die with
``os._exit`` (what SIGKILL leaves) at that point of a rotation:

- ``refresh:1:after-send``: a party, during the refresh rounds (nothing staged anywhere);
- ``refresh:staged``: a party, its new share stored, before the test signature;
- ``refresh:before-commit``: the coordinator, once every party staged and proved;
- ``refresh:before-switch``: a party, the commit received, before it switches;
- ``refresh:switched``: a party, switched, before it deleted the old epoch or answered.

The test restarts the node, as an operator would, waits until every node reports the same
epoch, checks the public key did not change and that a quorum including the restarted node
signs (verified independently).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.node_helpers import cluster_process, result_ok
from tmpc.cli.node import start_node_process, wait_ready
from tmpc.node.client import Credential, NodeClient

NAMES = ["a", "b", "c", "d", "e"]


class Cluster:
    def __init__(self, info: dict[str, Any], root: Path) -> None:
        self.nodes = {n["name"]: n for n in info["nodes"]}
        self.pids = {n["name"]: n["pid"] for n in info["nodes"]}
        self.auth = info["auth"]
        self.root = root
        self.restarted = info["restarted"]

    def client(self, name: str = "a", timeout: float = 120) -> NodeClient:
        return NodeClient(self.nodes[name]["url"], Credential.load(self.auth), timeout=timeout)

    def arm(self, name: str, point: str) -> None:
        (Path(self.nodes[name]["dir"]) / "failpoint").write_text(point)

    def restart_when_dead(self, name: str, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while _alive(self.pids[name]):
            for p in self.restarted:
                p.poll()
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        old = os.environ.copy()
        os.environ["TMPC_TEST_FAILPOINTS"] = "1"
        try:
            proc = start_node_process(
                Path(self.nodes[name]["dir"]), self.root / "passphrase", ["--round-timeout", "2"]
            )
        finally:
            os.environ.clear()
            os.environ.update(old)
        wait_ready(proc, name)
        self.restarted.append(proc)
        self.pids[name] = proc.pid
        return True

    def epochs(self, wallet: str) -> dict[str, int]:
        out = {}
        for n in NAMES:
            held = self.client(n, timeout=10).call("GET", "/v1/wallets")["wallets"]
            out[n] = next(w["epoch"] for w in held if w["wallet_id"] == wallet)
        return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("rotate-crash")
    env = dict(os.environ, TMPC_TEST_FAILPOINTS="1")
    with cluster_process(root / "c", 5, "--round-timeout", "2", env=env) as info:
        yield Cluster(info, root / "c")


def _in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except Exception as exc:
            box["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    return t, box


def _agreed_epoch(c: Cluster, wallet: str, want: int | None, timeout: float = 60) -> int:
    """Wait until every node reports the same epoch (``want`` if given); return it."""
    deadline = time.monotonic() + timeout
    while True:
        seen = c.epochs(wallet)
        values = set(seen.values())
        if len(values) == 1 and (want is None or values == {want}):
            return values.pop()
        if time.monotonic() > deadline:
            raise AssertionError(f"the nodes did not agree on an epoch: {seen}")
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("scheme", "victim", "point"),
    [
        ("ed25519", "b", "refresh:1:after-send"),
        ("ecdsa-secp256k1", "b", "refresh:staged"),
        ("schnorr-bip340", "a", "refresh:before-commit"),
        ("frost-secp256k1", "b", "refresh:before-switch"),
        ("schnorr-bip340", "b", "refresh:switched"),
    ],
)
def test_a_node_killed_in_each_phase_leaves_one_agreed_epoch(
    cluster: Cluster, scheme: str, victim: str, point: str
) -> None:
    c = cluster
    record = c.client().call(
        "POST", "/v1/wallets", {"scheme": scheme, "threshold": 3, "parties": NAMES}
    )["wallet"]
    wallet, public_key = record["wallet_id"], record["public_key"]
    c.arm(victim, point)
    thread, box = _in_thread(
        lambda: c.client().call(
            "POST", "/v1/rotate", {"wallet": wallet, "request_id": point.replace(":", ".")}
        )
    )
    died = c.restart_when_dead(victim, timeout=30)
    assert died, f"{victim} did not die at {point}: {thread.join(60) or box}"
    thread.join(180)
    if victim == "a":
        # The coordinator died with the request: restarted, it resumes it (a new attempt).
        assert "error" in box
        epoch = _agreed_epoch(c, wallet, 1)
    else:
        assert "error" not in box, box.get("error")
        assert box["result"]["epoch"] == 1
        epoch = _agreed_epoch(c, wallet, None)
    assert epoch == 1
    # The key and the addresses did not change; a quorum with the restarted node signs.
    for n in NAMES:
        held = c.client(n).call("GET", "/v1/wallets")["wallets"]
        mine = next(w for w in held if w["wallet_id"] == wallet)
        assert mine["public_key"] == public_key
        assert mine["record"]["epoch"] == 1
    for k in range(3):
        res = c.client(victim).call(
            "POST", "/v1/sign", {"wallet": wallet, "message": f"{k:02x}" * 32}
        )
        assert result_ok(res)
    # Each node keeps one share file, of the agreed epoch, and no staged rotation.
    for n in NAMES:
        wdir = Path(c.nodes[n]["dir"]) / "wallets" / wallet
        assert [p.name for p in wdir.glob("party-*.share")] == [
            f"party-{NAMES.index(n) + 1}.e1.share"
        ], n
        staged = wdir / "staged"
        assert not staged.exists() or not any(staged.iterdir()), n
