"""Helpers for the monitor's tests: a cluster of real node identities, real audit logs, and
in-memory node sources that serve those logs the way ``GET /v1/audit`` does."""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tmpc.audit import AuditLog
from tmpc.audit.entry import GENESIS_PREV, Entry, make_entry
from tmpc.audit.verify import iter_lines, log_paths
from tmpc.cli.node import LOCAL_KDF
from tmpc.monitor.sources import NodeSource, SourceError
from tmpc.node import config as node_config
from tmpc.wire.identity import NodeIdentity

PASSPHRASE = "monitor test passphrase"
T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


def free_port() -> int:
    """A TCP port on 127.0.0.1 free at the time of asking, below Linux's ephemeral range
    (32768-60999): the module's cluster keeps its ports for all its tests, and a port from the
    ephemeral range could meanwhile be the local end of any process's outgoing connection."""
    for _ in range(100):
        port = 20_000 + secrets.randbelow(12_000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # pragma: no cover (every try taken)
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MonCluster:
    """Node directories joined to one cluster file, their identities and the operator."""

    root: Path
    cluster: node_config.Cluster
    ids: dict[str, NodeIdentity]
    operator: node_config.Operator
    operator_key: bytes

    @property
    def names(self) -> tuple[str, ...]:
        return self.cluster.names

    def dir(self, name: str) -> Path:
        return self.root / name


def make_cluster(root: Path, names: tuple[str, ...] = ("a", "b", "c")) -> MonCluster:
    """``init_node`` for each name (on free loopback ports), one cluster file, joined."""
    cards, ids = [], {}
    for name in names:
        cfg = node_config.init_node(
            root / name, name, f"127.0.0.1:{free_port()}", PASSPHRASE, kdf=LOCAL_KDF
        )
        ids[name] = node_config.open_identity(cfg, PASSPHRASE)
        cards.append(node_config.card_of(cfg, ids[name]))
    operator, key = node_config.make_operator("operator")
    data = node_config.make_cluster_file(cards, [operator])
    (root / "cluster.json").write_bytes(data)
    for name in names:
        node_config.join_cluster(root / name, root / "cluster.json", ids[name])
    return MonCluster(root, node_config.parse_cluster(data), ids, operator, key)


class Clock:
    """A settable clock (Unix seconds)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class Logs:
    """One real :class:`AuditLog` per node of ``tc`` (``sync=False``), on one clock."""

    def __init__(self, tc: MonCluster, clock: Clock) -> None:
        self.clock = clock
        self.logs = {
            n: AuditLog.open(tc.dir(n), node=n, identity=tc.ids[n], sync=False, clock=clock)
            for n in tc.names
        }

    def write(self, node: str, event: str, data: dict[str, Any], at: float | None = None) -> Entry:
        """Append one event to ``node``'s log (at ``at`` if given, else the clock's time)."""
        if at is None:
            return self.logs[node].append(event, data)
        before = self.clock.now
        self.clock.now = at
        try:
            return self.logs[node].append(event, data)
        finally:
            self.clock.now = before

    def close(self) -> None:
        for log in self.logs.values():
            log.close()


class EntryMaker:
    """Signed entries without files, for the sans-I/O engine: one chain per node."""

    def __init__(self, ids: dict[str, NodeIdentity]) -> None:
        self.ids = ids
        self.heads: dict[str, tuple[int, bytes]] = {}

    def __call__(self, node: str, event: str, data: dict[str, Any], at: float) -> Entry:
        seq, prev = self.heads.get(node, (0, GENESIS_PREV))
        e = make_entry(
            self.ids[node],
            node=node,
            seq=seq + 1,
            prev=prev,
            at=at,
            event_type=event,
            data=data,
        )
        self.heads[node] = (e.seq, e.hash)
        return e


@dataclass
class FakeNode(NodeSource):
    """A node's operator API in memory: its audit log read from the real file (as
    ``GET /v1/audit`` serves it), and health, wallets and sessions as set by the test."""

    name: str
    directory: Path
    down: bool = False
    wallet_list: list[dict[str, Any]] = field(default_factory=list)
    session_list: list[dict[str, Any]] = field(default_factory=list)
    afters: list[int] = field(default_factory=list)

    def lines(self) -> list[bytes]:
        log, _head = log_paths(self.directory)
        with open(log, "rb") as fh:
            return [line for _n, line, complete in iter_lines(fh) if complete]

    def _check(self) -> None:
        if self.down:
            raise SourceError(f"cannot reach node {self.name}: connection refused")

    async def audit(self, after: int, limit: int) -> dict[str, Any]:
        self._check()
        self.afters.append(after)
        import json

        docs = [json.loads(line) for line in self.lines()]
        out = [d for d in docs if d["seq"] > after][:limit]
        return {"node": self.name, "seq": len(docs), "entries": out}

    async def health(self) -> dict[str, Any]:
        self._check()
        return {"name": self.name, "status": "ok", "cluster": "", "members": [], "counters": {}}

    async def wallets(self) -> dict[str, Any]:
        self._check()
        return {"wallets": self.wallet_list}

    async def sessions(self) -> dict[str, Any]:
        self._check()
        return {"sessions": self.session_list}


def wallet_entry(record: Any, names: list[str], party: int) -> dict[str, Any]:
    """One item of ``GET /v1/wallets`` for a wallet record (as the node server builds it)."""
    return {
        "wallet_id": record.wallet_id,
        "key_id": record.key_id,
        "group": record.group_name,
        "scheme": record.scheme,
        "threshold": record.threshold,
        "parties": names,
        "public_key": record.public_key.hex(),
        "party": party,
        "epoch": record.epoch,
        "presignatures": 0,
        "record": record.to_json(),
    }
