"""Helpers for node tests: clusters of engines in one process, independent verifiers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tmpc.cli.demo import independent_verify
from tmpc.cli.node import LOCAL_KDF, start_node_process, wait_ready
from tmpc.node import config as node_config
from tmpc.node.client import Credential, NodeClient
from tmpc.node.db import NodeDB
from tmpc.node.engine import Engine, EngineSettings
from tmpc.node.wallets import WalletStore
from tmpc.transport.memory import FaultHook, MemoryNetwork

PASSPHRASE = "node test passphrase"
SCHEMES = ("schnorr-bip340", "ed25519", "frost-secp256k1", "ecdsa-secp256k1")


def make_dirs(
    tmp: Path, n: int, policy_admins: dict[str, bytes] | None = None, policy_quorum: int = 1
) -> tuple[list[str], bytes]:
    """Node directories a..n under ``tmp`` joined to one cluster (with signing-policy
    administrators if given); returns names and file."""
    names = [chr(ord("a") + i) for i in range(n)]
    cards = []
    for i, name in enumerate(names):
        cfg = node_config.init_node(
            tmp / name, name, f"127.0.0.1:{20000 + i}", PASSPHRASE, kdf=LOCAL_KDF
        )
        cards.append(node_config.card_of(cfg, node_config.open_identity(cfg, PASSPHRASE)))
    operator, _key = node_config.make_operator("operator")
    data = node_config.make_cluster_file(
        cards, [operator], policy_admins, policy_quorum if policy_admins else None
    )
    (tmp / "cluster.json").write_bytes(data)
    for name in names:
        cfg = node_config.load_config(tmp / name)
        node_config.join_cluster(
            tmp / name, tmp / "cluster.json", node_config.open_identity(cfg, PASSPHRASE)
        )
    return names, data


async def memory_cluster(
    tmp: Path,
    n: int,
    *,
    fault: FaultHook | None = None,
    settings: EngineSettings | None = None,
    policy_admins: dict[str, bytes] | None = None,
    policy_quorum: int = 1,
) -> tuple[MemoryNetwork, dict[str, Engine]]:
    """Start ``n`` engines (a, b, ...) over one in-memory network."""
    names, _ = make_dirs(tmp, n, policy_admins, policy_quorum)
    network = MemoryNetwork(fault)
    engines = {}
    for name in names:
        engines[name] = open_engine(tmp / name, network, settings)
    for e in engines.values():
        await e.start()
    return network, engines


def open_engine(
    directory: Path, network: MemoryNetwork, settings: EngineSettings | None = None
) -> Engine:
    """An engine over ``network`` for the node in ``directory`` (not started)."""
    cfg = node_config.load_config(directory)
    identity = node_config.open_identity(cfg, PASSPHRASE)
    cluster = node_config.load_cluster(directory)
    db = NodeDB(directory / "node.db", node=cfg.name)
    wallets = WalletStore(directory, cluster, PASSPHRASE, LOCAL_KDF)
    return Engine(
        cfg,
        identity,
        cluster,
        db,
        wallets,
        network.transport(cfg.name),
        settings or EngineSettings(ready_timeout=1.0, round_timeout=1.0),
    )


async def stop_all(engines: dict[str, Engine]) -> None:
    """Stop every engine and close its database."""
    for e in engines.values():
        await e.stop()
        e.db.close()
        e.ledger.close()


def run_tmpc(auth: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the ``tmpc`` command line as an operator would: credential ``auth`` (TMPC_AUTH),
    no passphrase in the environment, nothing on standard input."""
    env = {k: v for k, v in os.environ.items() if k != "TMPC_PASSPHRASE"}
    env["TMPC_AUTH"] = auth
    return subprocess.run(
        [sys.executable, "-m", "tmpc", *args],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=timeout,
    )  # fmt: skip


def result_ok(res: dict[str, Any]) -> bool:
    """Whether an API/engine signing result verifies independently."""
    return independent_verify(
        res["scheme"],
        bytes.fromhex(res["public_key"]),
        bytes.fromhex(res["message"]),
        bytes.fromhex(res["signature"]),
    )


@contextlib.contextmanager
def cluster_process(
    directory: Path, parties: int, *extra: str, env: dict[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """Run ``tmpc cluster local --parties N --dir DIRECTORY --json EXTRA...`` for a block.

    Yields its JSON (``nodes``, ``auth``) plus ``restarted``: a list where a test puts the node
    processes it starts itself, so that they are stopped at the end too. On exit every node
    gets SIGTERM (through the cluster process) and the pipes are closed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tmpc", "cluster", "local", "--parties", str(parties),
         "--dir", str(directory), "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    restarted: list[subprocess.Popen[bytes]] = []
    try:
        line = proc.stdout.readline()
        if not line:
            proc.wait(10)
            err = proc.stderr.read() if proc.stderr is not None else b""
            raise AssertionError(f"the cluster did not start: {err!r}")
        info = json.loads(line)
        info["restarted"] = restarted
        yield info
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        for p in restarted:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(15)
            if p.stdout is not None:
                p.stdout.close()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def process_alive(pid: int) -> bool:
    """Running (a dead child not yet reaped by its parent is a zombie: not alive)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def call_in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``fn`` in a thread; its ``result`` or ``error`` lands in the returned box."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except Exception as exc:
            box["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    return t, box


class FailpointCluster:
    """A ``tmpc cluster local`` run with the crash-test failpoints enabled: arm a point in a
    node's directory, wait for the node to die there, start it again (as an operator would)."""

    def __init__(self, info: dict[str, Any], root: Path) -> None:
        self.nodes = {n["name"]: n for n in info["nodes"]}
        self.pids = {n["name"]: n["pid"] for n in info["nodes"]}
        self.auth = info["auth"]
        self.root = root
        self.restarted: list[subprocess.Popen[bytes]] = info["restarted"]

    def client(self, name: str = "a", timeout: float = 120) -> NodeClient:
        return NodeClient(self.nodes[name]["url"], Credential.load(self.auth), timeout=timeout)

    def arm(self, name: str, point: str) -> None:
        """Make node ``name`` die (or stop, ``stop:POINT``) when it reaches ``point``."""
        (Path(self.nodes[name]["dir"]) / "failpoint").write_text(point)

    def restart_when_dead(self, name: str, timeout: float = 60) -> bool:
        """Wait for node ``name`` to die, then start it again; False if it did not die."""
        deadline = time.monotonic() + timeout
        while process_alive(self.pids[name]):
            for p in self.restarted:  # a restarted node is our child: reap it when it exits
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


__all__ = [
    "PASSPHRASE",
    "SCHEMES",
    "FailpointCluster",
    "call_in_thread",
    "cluster_process",
    "make_dirs",
    "memory_cluster",
    "open_engine",
    "process_alive",
    "result_ok",
    "stop_all",
]
