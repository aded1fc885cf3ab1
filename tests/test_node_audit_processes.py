"""Issue 12 across real node processes (``tmpc cluster local``): audit logs and metrics.

Three nodes sign; a checkpoint of node a's audit head is cosigned by b and c. Then, on copies
of the real logs: an edited, a truncated and a reordered log each fail ``tmpc audit verify``
at the right entry, and a node that rewrote its whole log with its own key is caught by the
cosigned checkpoint (and, with the checkpoint dropped, by the peers' records). A real
Prometheus server scrapes a node's ``metrics_url`` and its query API returns the session
counters.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.node_helpers import cluster_process, result_ok
from tests.prom_helpers import start_prometheus
from tmpc.audit.entry import GENESIS_PREV, Entry, make_entry, sign_head
from tmpc.audit.verify import Head
from tmpc.cli.node import _node_passphrase
from tmpc.node import config as node_config
from tmpc.node.client import Credential, NodeClient

NAMES = ["a", "b", "c"]


class Fixture:
    def __init__(self, info: dict[str, Any], root: Path) -> None:
        self.nodes = {n["name"]: n for n in info["nodes"]}
        self.auth = info["auth"]
        self.root = root
        self.signatures: list[dict[str, Any]] = []

    def client(self, name: str = "a") -> NodeClient:
        return NodeClient(self.nodes[name]["url"], Credential.load(self.auth), timeout=120)


def _served_value(url: str, family: str, labels: dict[str, str]) -> float:
    """The value a node serves at ``url`` (plain-HTTP /metrics) for one counter series."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    for fam in text_string_to_metric_families(text):
        if fam.name == family:
            for sample in fam.samples:
                if sample.name == family + "_total" and sample.labels == labels:
                    return float(sample.value)
    raise AssertionError(f"{family}{labels} not served at {url}")


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    root = tmp_path_factory.mktemp("audit")
    with cluster_process(root / "c", 3) as info:
        f = Fixture(info, root)
        res = f.client().call(
            "POST", "/v1/wallets", {"scheme": "schnorr-bip340", "threshold": 2, "parties": NAMES}
        )
        wid = res["wallet"]["wallet_id"]
        for k in range(3):
            out = f.client().call("POST", "/v1/sign", {"wallet": wid, "message": f"{k:064x}"})
            assert result_ok(out)
            f.signatures.append(out)
        made = f.client("a").call("POST", "/v1/audit/checkpoint", {})
        assert made["cosigners"] == ["b", "c"]
        # Entries after the checkpoint, so the log goes on past it.
        out = f.client().call("POST", "/v1/sign", {"wallet": wid, "message": "ff" * 32})
        assert result_ok(out)
        page = f.client("a").call("GET", "/v1/audit?after=0&limit=5000")
        assert page["node"] == "a" and page["entries"][0]["seq"] == 1
        types = {e["type"] for e in page["entries"]}
        assert {"request.received", "session.started", "session.completed", "checkpoint"} <= types
        # Prometheus scrapes node a's metrics URL while the cluster runs.
        target = f.nodes["a"]["metrics_url"].removeprefix("http://").removesuffix("/metrics")
        # Node a takes part in the signatures whose quorum it chose itself among the ready
        # parties, so its count is read from the node itself, not assumed.
        own = _served_value(
            f.nodes["a"]["metrics_url"],
            "tmpc_sessions",
            {"protocol": "sign", "outcome": "completed"},
        )
        assert own >= 1
        with start_prometheus([target], root / "prom") as prom:
            found = prom.wait_for(
                'tmpc_sessions_total{protocol="sign",outcome="completed"}',
                lambda r: bool(r) and r[0][1] == own,
                timeout=30,
            )
            assert found[0][0]["job"] == "tmpc"
        yield f
    # Stopped: every node flushed and closed its log.


def _copy(fx: Fixture, name: str, to: str) -> Path:
    dst = fx.root / to
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(Path(fx.nodes[name]["dir"]), dst)
    return dst


def _verify(node_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TMPC_PASSPHRASE"}
    return subprocess.run(
        [sys.executable, "-m", "tmpc", "audit", "verify", "--node-dir", str(node_dir), *extra],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip


def _lines(d: Path) -> list[bytes]:
    return (d / "audit" / "audit.log").read_bytes().splitlines()


def _write(d: Path, lines: list[bytes]) -> None:
    (d / "audit" / "audit.log").write_bytes(b"".join(x + b"\n" for x in lines))


def test_real_logs_verify(fx: Fixture) -> None:
    for name in NAMES:
        proc = _verify(Path(fx.nodes[name]["dir"]))
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_edited_truncated_and_reordered_logs_fail_at_the_right_entry(fx: Fixture) -> None:
    d = _copy(fx, "a", "edited")
    lines = _lines(d)
    k = next(i for i, x in enumerate(lines) if b'"session.completed"' in x)
    lines[k] = lines[k].replace(b'"session.completed"', b'"session.aborted"')
    _write(d, lines)
    proc = _verify(d)
    assert proc.returncode == 1 and f"entry {k + 1}:" in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1

    d = _copy(fx, "a", "truncated")
    lines = _lines(d)
    _write(d, lines[:-3])
    proc = _verify(d)
    assert proc.returncode == 1 and "truncated" in proc.stderr, proc.stderr
    assert f"entry {len(lines) - 3}" in proc.stderr or f"{len(lines)}" in proc.stderr

    d = _copy(fx, "a", "reordered")
    lines = _lines(d)
    lines[4], lines[5] = lines[5], lines[4]
    _write(d, lines)
    proc = _verify(d)
    assert proc.returncode == 1 and "entry 5:" in proc.stderr, proc.stderr


def _rewrite(fx: Fixture, d: Path, keep_checkpoints: bool) -> None:
    """Node a rewrites its own log with its own key: one request id changed, every entry
    re-chained and re-signed, the head too: a perfectly consistent chain."""
    cfg = node_config.load_config(Path(fx.nodes["a"]["dir"]))
    identity = node_config.open_identity(cfg, _node_passphrase(fx.root / "c" / "passphrase"))
    old = [Entry.from_line(x) for x in _lines(d)]
    prev, out, seq, edited = GENESIS_PREV, [], 0, False
    for e in old:
        if e.type == "checkpoint" and not keep_checkpoints:
            continue
        data = dict(e.data)
        if e.type == "request.received" and not edited:  # before the checkpoint
            data["request"], edited = "never-happened", True
        seq += 1
        entry = make_entry(identity, node="a", seq=seq, prev=prev, at=e.at, event_type=e.type,
                           data=data)  # fmt: skip
        out.append(entry.to_line())
        prev = entry.hash
    _write(d, out)
    head = Head("a", len(out), prev, sign_head(identity, "a", len(out), prev))
    (d / "audit" / "head.json").write_bytes(head.to_bytes())


def test_a_node_that_rewrote_its_log_is_caught_by_the_cosigned_checkpoints(fx: Fixture) -> None:
    d = _copy(fx, "a", "rewritten")
    _rewrite(fx, d, keep_checkpoints=True)
    proc = _verify(d)
    assert proc.returncode == 1 and "history rewritten" in proc.stderr, proc.stderr
    # Dropping the checkpoints too: alone the log is consistent, but the peers' records of the
    # head they cosigned give it away.
    d = _copy(fx, "a", "rewritten2")
    _rewrite(fx, d, keep_checkpoints=False)
    assert _verify(d).returncode == 0
    peers = [x for n in ("b", "c") for x in ("--peer-dir", fx.nodes[n]["dir"])]
    proc = _verify(d, *peers)
    assert proc.returncode == 1 and "history rewritten" in proc.stderr, proc.stderr
    proc = _verify(d, *peers, "--json")
    report = json.loads(proc.stdout)
    assert report["ok"] is False
