"""Files for an air-gapped party: the bundle format, the two file transports, the
``tmpc session`` commands, and a wallet made and used with one party air-gapped.

The end-to-end tests run real engines (signed, encrypted envelopes, real machines and
SQLite state): the connected parties talk over the in-memory network, and every message to
or from the air-gapped party crosses in bundle files that the test carries back and forth.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import struct
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.node_helpers import PASSPHRASE, make_dirs, result_ok, stop_all
from tmpc.cli.node import LOCAL_KDF
from tmpc.errors import FaultyParticipantError, KeystoreError, ParameterError
from tmpc.node import config as node_config
from tmpc.node.db import NodeDB
from tmpc.node.engine import Engine, EngineSettings, choose_participants
from tmpc.node.server import open_node
from tmpc.node.wallets import WalletStore
from tmpc.transport import file
from tmpc.transport.base import Deliver, Transport, TransportError
from tmpc.transport.file import (
    AirGapFolder,
    AirGapRelay,
    Bundle,
    BundleError,
    FileTransport,
    airgap_root,
    read_bundle,
)
from tmpc.transport.memory import MemoryNetwork

CLUSTER = hashlib.sha256(b"test cluster").digest()
SESSION = bytes(32)
DIGEST = bytes(range(32))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def recorder() -> tuple[list[bytes], Deliver]:
    got: list[bytes] = []

    async def deliver(data: bytes) -> None:
        got.append(data)

    return got, deliver


def sample() -> Bundle:
    return Bundle(CLUSTER, "c", (("a", b"first"), ("b", b"second"), ("a", b"x" * 1000)))


def rechecksum(body: bytes) -> bytes:
    """A bundle body with a valid checksum appended (to reach the structural checks)."""
    return body + hashlib.sha256(body).digest()


# -- the bundle format ------------------------------------------------------------------------


def test_bundle_round_trip() -> None:
    b = sample()
    data = b.to_bytes()
    assert data.startswith(file.MAGIC + bytes([file.VERSION]) + CLUSTER)
    assert Bundle.from_bytes(data) == b
    assert b.recipients() == {"a": 2, "b": 1}
    empty = Bundle(CLUSTER, "c", ())
    assert Bundle.from_bytes(empty.to_bytes()) == empty


def _bad_bundles() -> list[tuple[str, bytes, str]]:
    good = sample().to_bytes()
    body = good[:-32]
    flipped = bytearray(good)
    flipped[60] ^= 1
    v2 = bytearray(good)
    v2[8] = 2
    head = body[: 8 + 1 + 32 + 2]  # magic, version, cluster, origin "c"
    one = struct.pack(">I", 1)
    return [
        ("empty", b"", "not a tmpc bundle"),
        ("magic", b"TMPCBNDX" + good[8:], "not a tmpc bundle"),
        ("header-only", good[:20], "truncated"),
        ("cut-in-message", good[:-40], "truncated or corrupt"),
        ("cut-checksum", good[:-1], "truncated or corrupt"),
        ("flipped-bit", bytes(flipped), "truncated or corrupt"),
        ("version", bytes(v2), "version 2"),
        ("trailing", rechecksum(body + b"\x00"), "bytes after the last message"),
        ("count-too-big", rechecksum(head + struct.pack(">I", 3)), "ends inside"),
        ("count-over-limit", rechecksum(head + struct.pack(">I", 10**6)), "claims"),
        ("empty-envelope", rechecksum(head + one + b"\x01a" + struct.pack(">I", 0)), "length 0"),
        ("dotdot-name", rechecksum(head + one + b"\x02.." + one + b"z"), "not a valid node"),
        ("bad-origin", rechecksum(body[:41] + b"\x02a/" + body[43:]), "origin"),
    ]


@pytest.mark.parametrize(
    ("data", "needle"), [b[1:] for b in _bad_bundles()], ids=[b[0] for b in _bad_bundles()]
)
def test_bad_bundles_are_refused(data: bytes, needle: str) -> None:
    with pytest.raises(BundleError, match=needle):
        Bundle.from_bytes(data)


def test_oversized_bundle_is_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.bundle"
    path.write_bytes(sample().to_bytes())
    monkeypatch.setattr(file, "MAX_BUNDLE", 100)
    with pytest.raises(BundleError, match="larger than 100 bytes"):
        read_bundle(path)
    with pytest.raises(ParameterError, match="at most 100 bytes"):
        sample().to_bytes()


def test_bundle_fields_are_checked_when_built() -> None:
    with pytest.raises(ParameterError):
        Bundle(CLUSTER, "..", ())
    with pytest.raises(ParameterError):
        Bundle(CLUSTER[:31], "c", ())
    with pytest.raises(ParameterError):
        Bundle(CLUSTER, "c", (("a", b""),))


# -- the air-gapped side ----------------------------------------------------------------------


def test_sends_are_durable_files_exported_once(tmp_path: Path) -> None:
    async def go() -> None:
        t = FileTransport("c", tmp_path / "airgap", CLUSTER)
        await t.start(recorder()[1])
        try:
            for i in range(3):
                await t.send("a", b"to a %d" % i, session=SESSION)
            await t.send("b", b"to b", session=SESSION)
            outbox = tmp_path / "airgap" / "outbox"
            names = sorted(p.name for p in (outbox / "a").iterdir())
            assert len(names) == 3 and all(n.endswith(".env") for n in names)
            assert [(outbox / "a" / n).read_bytes() for n in names] == [
                b"to a 0",
                b"to a 1",
                b"to a 2",
            ]
            assert t.folder.pending() == 4 and t.folder.pending("b") == 1

            assert t.export_bundle(tmp_path / "1.bundle", peer="b") == 1
            assert t.export_bundle(tmp_path / "2.bundle") == 3
            b = read_bundle(tmp_path / "2.bundle")
            assert b.origin == "c" and b.cluster == CLUSTER
            assert b.messages == tuple(("a", b"to a %d" % i) for i in range(3))
            assert t.folder.pending() == 0
            assert len(list((tmp_path / "airgap" / "sent" / "a").iterdir())) == 3
            # Exported once: nothing more, and no file written.
            assert t.export_bundle(tmp_path / "3.bundle") == 0
            assert not (tmp_path / "3.bundle").exists()
            # A lost bundle: everything once more, in sending order.
            assert t.export_bundle(tmp_path / "4.bundle", again=True) == 4
            assert [m[0] for m in read_bundle(tmp_path / "4.bundle").messages] == [
                "a",
                "a",
                "a",
                "b",
            ]
            # Never over an existing file.
            await t.send("a", b"later", session=SESSION)
            with pytest.raises(KeystoreError, match="already exists"):
                t.export_bundle(tmp_path / "2.bundle")
            assert t.folder.pending() == 1
            with pytest.raises(ParameterError):
                await t.send("../x", b"data", session=SESSION)
        finally:
            await t.close()
            await t.close()

    run(go())


def test_import_delivers_only_own_messages_and_nothing_of_a_bad_bundle(tmp_path: Path) -> None:
    async def go() -> None:
        got, deliver = recorder()
        t = FileTransport("a", tmp_path / "airgap", CLUSTER)
        path = tmp_path / "in.bundle"
        path.write_bytes(sample().to_bytes())
        with pytest.raises(TransportError, match="not started"):
            await t.import_bundle(path)
        await t.start(deliver)
        try:
            assert await t.import_bundle(path) == 2
            assert got == [b"first", b"x" * 1000]
            assert t.counters["skipped"] == 1
            # Bad bundles: refused whole, before anything is delivered.
            got.clear()
            good = sample().to_bytes()
            for i, bad in enumerate([good[:-1], good[:-33] + good[-32:], b"junk"]):
                p = tmp_path / f"bad{i}.bundle"
                p.write_bytes(bad)
                with pytest.raises(BundleError):
                    await t.import_bundle(p)
            foreign = tmp_path / "foreign.bundle"
            foreign.write_bytes(Bundle(bytes(32), "c", (("a", b"m"),)).to_bytes())
            with pytest.raises(BundleError, match="another cluster"):
                await t.import_bundle(foreign)
            assert got == []
        finally:
            await t.close()

    run(go())


def test_a_refused_message_does_not_stop_the_others(tmp_path: Path) -> None:
    async def go() -> None:
        got: list[bytes] = []

        async def deliver(data: bytes) -> None:
            if data == b"first":
                raise FaultyParticipantError("forged", 3)
            got.append(data)

        t = FileTransport("a", tmp_path / "airgap", CLUSTER)
        await t.start(deliver)
        path = tmp_path / "in.bundle"
        path.write_bytes(sample().to_bytes())
        try:
            assert await t.import_bundle(path) == 2
            assert got == [b"x" * 1000]
            assert t.counters["rejected"] == 1 and t.counters["imported"] == 1
        finally:
            await t.close()

    run(go())


async def _until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_the_running_node_picks_up_queued_bundles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file, "_RETRY_S", 0.05)

    async def go() -> None:
        root = tmp_path / "airgap"
        folder = AirGapFolder(root, "a", CLUSTER)  # what `tmpc session import` uses
        first = tmp_path / "1.bundle"
        first.write_bytes(Bundle(CLUSTER, "c", (("a", b"queued before start"),)).to_bytes())
        assert folder.queue_bundle(first)[1] == 1
        # A bundle for others only is not queued.
        other = tmp_path / "other.bundle"
        other.write_bytes(Bundle(CLUSTER, "c", (("b", b"m"),)).to_bytes())
        assert folder.queue_bundle(other)[1] == 0
        assert len(folder.queued()) == 1

        got: list[bytes] = []
        failures = [RuntimeError("database busy")]

        async def deliver(data: bytes) -> None:
            if data == b"fails once" and failures:
                raise failures.pop()
            got.append(data)

        t = FileTransport("a", root, CLUSTER, poll_interval=0.02)
        await t.start(deliver)
        try:
            await _until(lambda: got == [b"queued before start"])
            await _until(lambda: not folder.queued())
            assert len(list((root / "imported").iterdir())) == 1
            # Queued while running; a failed delivery stays queued and is retried.
            second = tmp_path / "2.bundle"
            second.write_bytes(
                Bundle(CLUSTER, "b", (("a", b"ok"), ("a", b"fails once"))).to_bytes()
            )
            folder.queue_bundle(second)
            await _until(lambda: b"fails once" in got)
            assert got[1:] == [b"ok", b"ok", b"fails once"]  # the retry repeats "ok": harmless
            # A file in the inbox that is no bundle is set aside, never delivered.
            (root / "inbox" / f"{'1' * 20}-{'0' * 16}.bundle").write_bytes(b"garbage")
            await _until(lambda: (root / "rejected").is_dir() and not folder.queued())
            assert len(got) == 4
        finally:
            await t.close()

    run(go())


# -- the connected side -----------------------------------------------------------------------


class _Inner(Transport):
    """A network transport that records sends and forgets."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.forgot: list[bytes] = []
        self.closed = False

    async def start(self, deliver: Deliver) -> None:
        pass

    async def send(self, peer: str, data: bytes, *, session: bytes) -> None:
        self.sent.append((peer, data))

    async def forget(self, session: bytes) -> None:
        self.forgot.append(session)

    async def close(self) -> None:
        self.closed = True


def test_relay_routes_air_gapped_peers_to_files(tmp_path: Path) -> None:
    async def go() -> None:
        inner = _Inner()
        got, deliver = recorder()
        r = AirGapRelay(inner, "a", tmp_path / "airgap", CLUSTER, ["c"])
        await r.start(deliver)
        try:
            await r.send("b", b"over the network", session=SESSION)
            await r.send("c", b"over the gap", session=SESSION)
            assert inner.sent == [("b", b"over the network")]
            await r.forget(SESSION)
            assert inner.forgot == [SESSION]
            with pytest.raises(ParameterError, match="not an air-gapped peer"):
                r.export_bundle("b", tmp_path / "x.bundle")
            assert r.export_bundle("c", tmp_path / "to-c.bundle") == 1
            assert read_bundle(tmp_path / "to-c.bundle").messages == (("c", b"over the gap"),)
            # The air-gapped party's bundle: a takes what is for a.
            assert await r.import_bundle(_write(tmp_path / "from-c.bundle", sample())) == 2
            assert got == [b"first", b"x" * 1000]
        finally:
            await r.close()
        assert inner.closed
        with pytest.raises(ParameterError):
            AirGapRelay(_Inner(), "a", tmp_path, CLUSTER, ["a"])

    run(go())


def _write(path: Path, bundle: Bundle) -> Path:
    path.write_bytes(bundle.to_bytes())
    return path


# -- end to end: a wallet with one party air-gapped -------------------------------------------


def _engine(directory: Path, transport: Transport, settings: EngineSettings) -> Engine:
    cfg = node_config.load_config(directory)
    identity = node_config.open_identity(cfg, PASSPHRASE)
    cluster = node_config.load_cluster(directory)
    db = NodeDB(directory / "node.db", node=cfg.name)
    wallets = WalletStore(directory, cluster, PASSPHRASE, LOCAL_KDF)
    return Engine(cfg, identity, cluster, db, wallets, transport, settings)


class Courier:
    """The operator: carries bundles across the gap, each one imported twice.

    ``via_inbox``: imports go through the inbox that the running node polls (what
    ``tmpc session import`` does), else straight to ``import_bundle``."""

    def __init__(
        self, tmp: Path, gapped: FileTransport, relays: dict[str, AirGapRelay], via_inbox: bool
    ) -> None:
        self.dir = tmp / "carried"
        self.dir.mkdir()
        self.gapped = gapped
        self.relays = relays
        self.via_inbox = via_inbox
        self.trips = 0

    async def carry(self, path: Path, to: FileTransport | AirGapRelay) -> None:
        if self.via_inbox:
            to.folder.queue_bundle(path)
        else:
            await to.import_bundle(path)

    async def trip(self) -> None:
        self.trips += 1
        out = self.dir / f"from-{self.gapped.name}-{self.trips}.bundle"
        if self.gapped.export_bundle(out):
            for r in self.relays.values():
                await self.carry(out, r)
        for name, r in self.relays.items():
            into = self.dir / f"to-{self.gapped.name}-from-{name}-{self.trips}.bundle"
            if r.export_bundle(self.gapped.name, into):
                await self.carry(into, self.gapped)
                await self.carry(into, self.gapped)  # duplicates are harmless

    async def until_done(self, coro: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        task = asyncio.ensure_future(coro)
        deadline = asyncio.get_running_loop().time() + 60
        while not task.done():
            assert asyncio.get_running_loop().time() < deadline, "the request did not complete"
            await self.trip()
            await asyncio.sleep(0.02)
        return task.result()


@pytest.mark.parametrize("via_inbox", [False, True], ids=["import", "inbox"])
def test_a_wallet_and_signatures_with_one_party_air_gapped(tmp_path: Path, via_inbox: bool) -> None:
    async def go() -> None:
        names, _ = make_dirs(tmp_path, 3)
        gap = "c"
        settings = EngineSettings(ready_timeout=20.0, round_timeout=20.0, ready_grace=20.0)
        network = MemoryNetwork()
        gapped = FileTransport(
            gap, airgap_root(tmp_path / gap), _cluster_hash(tmp_path / gap), poll_interval=0.02
        )
        relays = {
            n: AirGapRelay(
                network.transport(n),
                n,
                airgap_root(tmp_path / n),
                _cluster_hash(tmp_path / n),
                [gap],
                poll_interval=0.02,
            )
            for n in names
            if n != gap
        }
        engines = {gap: _engine(tmp_path / gap, gapped, settings)}
        engines.update({n: _engine(tmp_path / n, r, settings) for n, r in relays.items()})
        for e in engines.values():
            await e.start()
        courier = Courier(tmp_path, gapped, relays, via_inbox)
        try:
            # The DKG needs every party's messages: the courier shuttles until it completes.
            res = await courier.until_done(
                engines["a"].submit(
                    "keygen", {"scheme": "schnorr-bip340", "threshold": 2, "parties": names}, None
                )
            )
            w = res["wallet"]
            for e in engines.values():
                assert e.wallets.get(w["wallet_id"]).share is not None
            gap_id = engines["a"].wallets.get(w["wallet_id"]).ids[gap]

            # A request id whose quorum holds the air-gapped party, so it must sign.
            rid = _request_id("with-gap", names, gap, True)
            body = {"wallet": w["wallet_id"], "message": DIGEST.hex()}
            res = await courier.until_done(engines["a"].submit("sign", body, rid))
            assert result_ok(res) and gap_id in res["signers"]

            # The air-gapped party coordinates too, for a quorum it is not in.
            rid = _request_id("by-gap", names, gap, False)
            res = await courier.until_done(engines[gap].submit("sign", body, rid))
            assert result_ok(res) and gap_id not in res["signers"]

            assert engines[gap].opener.counters["duplicate"] > 0
            # Every party's messages crossed in files (a and b also talk over the network).
            assert gapped.counters["written"] and gapped.counters["imported"]
            assert all(r.counters["written"] and r.counters["imported"] for r in relays.values())
            if via_inbox:
                assert not gapped.folder.queued()
                assert len(list((airgap_root(tmp_path / gap) / "imported").iterdir())) > 1
            assert network.delivered and all(gap not in (s, r) for s, r, _ in network.delivered)
        finally:
            await stop_all(engines)

    run(go())


def _request_id(prefix: str, names: list[str], party: str, signs: bool) -> str:
    """A request id whose first 2-of-3 quorum holds ``party`` (or, not ``signs``, does not)."""
    for i in range(100):
        rid = f"{prefix}-{i}"
        if (party in choose_participants(names, rid, 1, 2)) == signs:
            return rid
    raise AssertionError("no such request id")


def _cluster_hash(directory: Path) -> bytes:
    return node_config.load_cluster(directory).hash


# -- the node and the command line ------------------------------------------------------------


def test_open_node_chooses_the_file_transports(tmp_path: Path) -> None:
    make_dirs(tmp_path, 3)
    server, _ = open_node(tmp_path / "c", PASSPHRASE, airgap=True)
    assert isinstance(server.engine.transport, FileTransport)
    server.engine.db.close()
    server, _ = open_node(tmp_path / "a", PASSPHRASE, airgap_peers=("c",))
    assert isinstance(server.engine.transport, AirGapRelay)
    assert server.engine.transport.airgapped == {"c"}
    server.engine.db.close()
    for kwargs in (
        {"airgap": True, "airgap_peers": ("a",)},
        {"airgap_peers": ("a",)},
        {"airgap_peers": ("zz",)},
    ):
        with pytest.raises(ParameterError):
            open_node(tmp_path / "a", PASSPHRASE, **kwargs)


def tmpc(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    return subprocess.run(
        [sys.executable, "-m", "tmpc", *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def test_session_export_and_import_commands(tmp_path: Path) -> None:
    make_dirs(tmp_path, 3)
    c = AirGapFolder(airgap_root(tmp_path / "c"), "c", _cluster_hash(tmp_path / "c"))
    c.put("a", b"for a")
    c.put("b", b"for b")
    out = tmp_path / "c.bundle"

    proc = tmpc("session", "export", "--dir", str(tmp_path / "c"), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"node": "c", "exported": 2, "file": str(out), "left": 0}
    again = tmpc("session", "export", "--dir", str(tmp_path / "c"), "--out", str(out) + "2")
    assert again.returncode == 0 and "nothing to export" in again.stdout
    assert not Path(str(out) + "2").exists()

    proc = tmpc("session", "import", "--dir", str(tmp_path / "a"), "--in", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["bundles"] == [{"file": str(out), "origin": "c", "queued": 1}]
    a = AirGapFolder(airgap_root(tmp_path / "a"), "a", _cluster_hash(tmp_path / "a"))
    assert len(a.queued()) == 1

    # One bad bundle among good ones: refused in one line, nothing queued.
    bad = tmp_path / "bad.bundle"
    bad.write_bytes(out.read_bytes()[:-5])
    proc = tmpc(
        "session", "import", "--dir", str(tmp_path / "b"), "--in", str(out), "--in", str(bad)
    )
    assert proc.returncode == 2
    assert "truncated or corrupt" in proc.stderr and proc.stderr.count("\n") == 1
    b = AirGapFolder(airgap_root(tmp_path / "b"), "b", _cluster_hash(tmp_path / "b"))
    assert b.queued() == []
