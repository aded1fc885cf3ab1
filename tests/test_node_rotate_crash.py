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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.node_helpers import FailpointCluster, call_in_thread, cluster_process, result_ok

NAMES = ["a", "b", "c", "d", "e"]


class Cluster(FailpointCluster):
    def epochs(self, wallet: str) -> dict[str, int]:
        out = {}
        for n in NAMES:
            held = self.client(n, timeout=10).call("GET", "/v1/wallets")["wallets"]
            out[n] = next(w["epoch"] for w in held if w["wallet_id"] == wallet)
        return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("rotate-crash")
    env = dict(os.environ, TMPC_TEST_FAILPOINTS="1")
    with cluster_process(root / "c", 5, "--round-timeout", "2", env=env) as info:
        yield Cluster(info, root / "c")


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
    thread, box = call_in_thread(
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


def _run_cli(c: Cluster, *args: str) -> Any:
    import json
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TMPC_PASSPHRASE"}
    env["TMPC_AUTH"] = c.auth
    proc = subprocess.run(
        [sys.executable, "-m", "tmpc", *args, "--json"],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("scheme", ["ecdsa-secp256k1", "ed25519"])
def test_reshare_across_processes_3_of_5_to_2_of_3_and_back(cluster: Cluster, scheme: str) -> None:
    """`tmpc reshare --node`: 3-of-5 -> 2-of-3 (a and b removed: their share files go, and
    the nodes that stay hold only new-epoch shares), then 2-of-3 -> 3-of-5, with the key
    kept; every signature verifies independently."""
    c = cluster
    record = c.client().call(
        "POST", "/v1/wallets", {"scheme": scheme, "threshold": 3, "parties": NAMES}
    )["wallet"]
    wallet, public_key = record["wallet_id"], record["public_key"]
    out = _run_cli(c, "reshare", "--node", c.nodes["a"]["url"], "--wallet", wallet,
                   "--threshold", "2", "--parties", "c,d,e")  # fmt: skip
    assert out["epoch"] == 1 and out["pending"] == [] and out["public_key"] == public_key
    for n in NAMES:
        held = c.client(n).call("GET", "/v1/wallets")["wallets"]
        mine = next(w for w in held if w["wallet_id"] == wallet)
        assert mine["epoch"] == 1 and mine["threshold"] == 2 and mine["public_key"] == public_key
        assert mine["parties"] == ["c", "d", "e"]
        assert (mine["party"] is None) == (n in ("a", "b")), n
        files = list((Path(c.nodes[n]["dir"]) / "wallets" / wallet).glob("party-*.share"))
        assert [p.name for p in files] == (
            [] if n in "ab" else [f"party-{'cde'.index(n) + 1}.e1.share"]
        )
    res = c.client("a").call("POST", "/v1/sign", {"wallet": wallet, "message": "11" * 32})
    assert result_ok(res) and set(res["signers"]) <= {1, 2, 3}
    out = _run_cli(c, "reshare", "--node", c.nodes["d"]["url"], "--wallet", wallet,
                   "--threshold", "3", "--parties", ",".join(NAMES))  # fmt: skip
    assert out["epoch"] == 2 and out["pending"] == []
    assert _agreed_epoch(c, wallet, 2) == 2
    for k, n in enumerate(NAMES):
        res = c.client(n).call("POST", "/v1/sign", {"wallet": wallet, "message": f"{k:02x}" * 32})
        assert result_ok(res) and res["public_key"] == public_key


def test_a_joining_party_killed_after_staging_catches_up(cluster: Cluster) -> None:
    """b, removed by a first reshare, joins again in a second and is killed once it staged
    its new share: the others commit; restarted, b asks its peers and switches."""
    c = cluster
    record = c.client().call(
        "POST", "/v1/wallets", {"scheme": "schnorr-bip340", "threshold": 2, "parties": NAMES}
    )["wallet"]
    wallet = record["wallet_id"]
    c.client().call("POST", "/v1/reshare",
                    {"wallet": wallet, "threshold": 2, "parties": ["a", "c", "d"]})  # fmt: skip
    c.arm("b", "refresh:before-switch")
    thread, box = call_in_thread(
        lambda: c.client().call(
            "POST", "/v1/reshare", {"wallet": wallet, "threshold": 3, "parties": NAMES}
        )
    )
    assert c.restart_when_dead("b", timeout=30), box
    thread.join(180)
    assert "error" not in box, box.get("error")
    assert box["result"]["epoch"] == 2
    assert _agreed_epoch(c, wallet, 2) == 2
    res = c.client("b").call("POST", "/v1/sign", {"wallet": wallet, "message": "22" * 32})
    assert result_ok(res)


@pytest.mark.parametrize("scheme", ["ed25519", "ecdsa-secp256k1"])
def test_repair_a_lost_node_onto_a_spare_and_the_old_one_is_retired(
    cluster: Cluster, scheme: str
) -> None:
    """A 2-of-4 wallet on a-d; d's machine dies (SIGKILL). `tmpc repair` rebuilds party 4's
    share on e (a member holding none) with two helpers: e signs, verified independently.
    When d comes back, the commit reaches it and it deletes its old share."""
    import signal

    c = cluster
    record = c.client().call(
        "POST", "/v1/wallets", {"scheme": scheme, "threshold": 2, "parties": NAMES[:4]}
    )["wallet"]
    wallet, public_key = record["wallet_id"], record["public_key"]
    os.kill(c.pids["d"], signal.SIGKILL)
    out = _run_cli(c, "repair", "--node", c.nodes["a"]["url"], "--wallet", wallet,
                   "--party", "4", "--to", "e")  # fmt: skip
    assert out["epoch"] == 1 and out["public_key"] == public_key
    assert out["pending"] == ["d"]
    if scheme == "ecdsa-secp256k1":
        # A rotation (d no longer a party) set up e's DKLs23 pairs with every party.
        assert out["rotated_to"] == 2
    held = c.client("e").call("GET", "/v1/wallets")["wallets"]
    mine = next(w for w in held if w["wallet_id"] == wallet)
    assert mine["party"] == 4 and mine["parties"] == ["a", "b", "c", "e"]
    signed_with_e = False
    for k in range(20):
        res = c.client("e").call("POST", "/v1/sign", {"wallet": wallet, "message": f"{k:02x}" * 32})
        assert result_ok(res) and res["public_key"] == public_key
        signed_with_e |= 4 in res["signers"]
        if signed_with_e:
            break
    assert signed_with_e
    assert c.restart_when_dead("d")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        held = c.client("d").call("GET", "/v1/wallets")["wallets"]
        mine = next(w for w in held if w["wallet_id"] == wallet)
        if mine["party"] is None:
            break
        time.sleep(0.3)
    assert mine["party"] is None and mine["epoch"] == 1
    assert not list((Path(c.nodes["d"]["dir"]) / "wallets" / wallet).glob("party-*.share"))
