"""`tmpc rotate --node`, `tmpc wallet history --node` and `tmpc address` across a rotation,
against a 3-process local cluster started with ``tmpc cluster local`` (as an operator would)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.node_helpers import cluster_process, result_ok, run_tmpc
from tests.test_cli import EXIT_INPUT, assert_one_line_error
from tmpc.node.client import Credential, NodeClient

NAMES = ["a", "b", "c"]


class Cluster:
    def __init__(self, info: dict[str, Any]) -> None:
        self.urls = {n["name"]: n["url"] for n in info["nodes"]}
        self.auth = info["auth"]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_tmpc(self.auth, *args)

    def client(self, name: str = "a") -> NodeClient:
        return NodeClient(self.urls[name], Credential.load(self.auth), timeout=120)

    def record(self, wallet: str, name: str = "a") -> dict[str, Any]:
        held = self.client(name).call("GET", "/v1/wallets")["wallets"]
        return dict(next(w["record"] for w in held if w["wallet_id"] == wallet))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("rotate-cli")
    with cluster_process(root / "c", 3) as info:
        yield Cluster(info)


def _addresses(c: Cluster, record: dict[str, Any], where: Path) -> dict[str, Any]:
    where.mkdir(parents=True, exist_ok=True)
    (where / "wallet.json").write_text(json.dumps(record))
    proc = c.run("address", "--wallet", str(where), "--json")
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def test_rotate_one_wallet_and_then_all_keeps_every_address(
    cluster: Cluster, tmp_path: Path
) -> None:
    c = cluster
    wallets = {}
    for scheme in ("ecdsa-secp256k1", "schnorr-bip340"):
        res = c.client().call(
            "POST", "/v1/wallets", {"scheme": scheme, "threshold": 2, "parties": NAMES}
        )
        wallets[scheme] = res["wallet"]["wallet_id"]
    wid = wallets["ecdsa-secp256k1"]
    before = _addresses(c, c.record(wid), tmp_path / "before")
    proc = c.run("rotate", "--node", c.urls["b"], "--wallet", wid, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["wallet_id"] == wid and out["epoch"] == 1 and out["previous_epoch"] == 0
    assert out["committed"] == NAMES and out["pending"] == []
    after = _addresses(c, c.record(wid, "c"), tmp_path / "after")
    assert after == before
    # --all: every wallet the node holds moves one epoch on.
    proc = c.run("rotate", "--node", c.urls["a"], "--all", "--json")
    assert proc.returncode == 0, proc.stderr
    rotations = {r["wallet_id"]: r for r in json.loads(proc.stdout)["rotations"]}
    assert rotations[wid]["epoch"] == 2
    assert rotations[wallets["schnorr-bip340"]]["epoch"] == 1
    assert _addresses(c, c.record(wid, "b"), tmp_path / "again") == before
    for w in wallets.values():
        res = c.client("c").call("POST", "/v1/sign", {"wallet": w, "message": "ab" * 32})
        assert result_ok(res)
    # Every node recorded each lifecycle event with the epochs before and after.
    proc = c.run("wallet", "history", "--node", c.urls["c"], "--wallet", wid, "--json")
    assert proc.returncode == 0, proc.stderr
    events = [(e["event"], e["epoch_before"], e["epoch_after"]) for e in
              json.loads(proc.stdout)["events"]]  # fmt: skip
    assert events == [
        ("created", None, 0), ("staged", 0, 1), ("switched", 0, 1),
        ("staged", 1, 2), ("switched", 1, 2),
    ]  # fmt: skip
    human = c.run("wallet", "list", "--node", c.urls["a"])
    assert f"{wid}  ecdsa-secp256k1  2-of-3  epoch 2" in human.stdout


def test_rotate_usage_errors_are_one_line(cluster: Cluster) -> None:
    c = cluster
    for args in (
        ["rotate", "--node", c.urls["a"]],
        ["rotate", "--node", c.urls["a"], "--wallet", "00" * 16, "--all"],
        ["rotate", "--all"],
    ):
        assert_one_line_error(c.run(*args), EXIT_INPUT)
    unknown = c.run("rotate", "--node", c.urls["a"], "--wallet", "ab" * 16)
    assert unknown.returncode == EXIT_INPUT and "Traceback" not in unknown.stderr
    assert "unknown wallet" in unknown.stderr
