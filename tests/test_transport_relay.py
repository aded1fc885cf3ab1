"""The Redis Streams relay transport against a real ``redis-server``.

Each test starts its own server (127.0.0.1, a free port, a temporary directory, no RDB
snapshots, append-only file on so a restart keeps the streams) and stops it. Nothing is
skipped: without ``redis-server`` the tests fail and say to run ``make test``, which installs
it.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tmpc.errors import InputError, ParameterError, ProtocolError
from tmpc.transport.base import Deliver, TransportError
from tmpc.transport.relay import RETENTION_SECONDS, RedisRelayTransport

CLUSTER = "c0ffee"
S1 = bytes([1]) * 32
S2 = bytes([2]) * 32


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process; ``stop()`` then ``start()`` restarts it on the same port
    and directory, where its append-only file keeps the data."""

    def __init__(self, exe: str, directory: Path) -> None:
        self.exe = exe
        self.dir = directory
        self.dir.mkdir()
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers PING (data loaded)."""
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.dir),
                "--save", "",
                "--appendonly", "yes",
                "--daemonize", "no",
                "--logfile", str(self.dir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"redis-server exited with {self.proc.returncode}:\n{log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        pytest.fail("redis-server did not answer PING within 10 s")

    def stop(self) -> None:
        """SIGTERM (the server writes its append-only file and exits) and wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RedisServer]:
    """A running redis-server of this test's own."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed: run `make test`, which installs it")
    server = RedisServer(exe, tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Inbox:
    """A ``deliver`` that records every delivery (duplicates included)."""

    def __init__(self) -> None:
        self.got: list[bytes] = []

    async def deliver(self, data: bytes) -> None:
        self.got.append(data)


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for ``cond()`` to hold."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def member(name: str, relay: RedisServer) -> RedisRelayTransport:
    return RedisRelayTransport(name, relay.url, cluster=CLUSTER, block_ms=200)


def inbox_key(name: str, session: bytes) -> str:
    return f"tmpc:{CLUSTER}:{name}:{session.hex()}"


def index_key(name: str) -> str:
    return f"tmpc:{CLUSTER}:{name}:sessions"


async def pending(r: Redis, key: str, group: str) -> int:
    info = await r.xpending(key, group)
    count: int = info["pending"]
    return count


async def until_acked(r: Redis, key: str, group: str) -> None:
    """The ack follows deliver's return, so wait for it rather than race it."""
    deadline = time.monotonic() + 10
    while await pending(r, key, group):
        assert time.monotonic() < deadline, f"{key} still has pending entries"
        await asyncio.sleep(0.01)


async def closing(
    transports: list[RedisRelayTransport], body: Callable[[], Awaitable[None]]
) -> None:
    """Run ``body`` and close every transport afterwards, whatever happened."""
    try:
        await body()
    finally:
        for t in transports:
            await t.close()


def test_three_members_two_sessions(relay: RedisServer) -> None:
    names = ["alice", "bob", "carol"]

    async def main() -> None:
        ts = {n: member(n, relay) for n in names}
        inboxes = {n: Inbox() for n in names}

        async def body() -> None:
            for n in names:
                await ts[n].start(inboxes[n].deliver)
            expected: dict[str, set[bytes]] = {n: set() for n in names}
            for session in (S1, S2):
                for a in names:
                    for b in names:
                        if a == b:
                            continue
                        for i in range(3):
                            msg = f"{a}->{b} {session.hex()[:2]} #{i}".encode()
                            await ts[a].send(b, msg, session=session)
                            expected[b].add(msg)
            await until(lambda: all(set(inboxes[n].got) == expected[n] for n in names))
            for n in names:
                assert len(inboxes[n].got) == 12  # exactly once
            async with Redis.from_url(relay.url) as r:
                for n in names:
                    for session in (S1, S2):
                        await until_acked(r, inbox_key(n, session), n)
                        assert await r.xlen(inbox_key(n, session)) == 6
                    # Two senders times two sessions, each announced once.
                    assert await r.xlen(index_key(n)) == 4

        await closing(list(ts.values()), body)

    asyncio.run(main())


def test_ack_only_after_deliver_returns(relay: RedisServer) -> None:
    async def main() -> None:
        alice = member("alice", relay)
        bob1, bob2, bob3 = member("bob", relay), member("bob", relay), member("bob", relay)
        calls: list[bytes] = []

        async def failing(data: bytes) -> None:
            calls.append(data)
            raise RuntimeError("disk full")

        entered = asyncio.Event()

        async def hanging(data: bytes) -> None:
            entered.set()
            await asyncio.Event().wait()

        final = Inbox()

        async def body() -> None:
            async with Redis.from_url(relay.url) as r:
                await alice.send("bob", b"m1", session=S1)
                # 1. deliver raises (not a protocol error), then the receiver goes away.
                await bob1.start(failing)
                await until(lambda: calls == [b"m1"])
                await bob1.close()
                assert await pending(r, inbox_key("bob", S1), "bob") == 1
                # 2. the receiver dies inside deliver (cancelled by close).
                await bob2.start(hanging)
                await asyncio.wait_for(entered.wait(), 10)
                await bob2.close()
                assert await pending(r, inbox_key("bob", S1), "bob") == 1
                # 3. a restarted receiver gets it again from the pending list, and acks it.
                await bob3.start(final.deliver)
                await until(lambda: final.got == [b"m1"])
                await until_acked(r, inbox_key("bob", S1), "bob")
                assert await r.xlen(inbox_key("bob", S1)) == 1

        await closing([alice, bob1, bob2, bob3], body)

    asyncio.run(main())


def test_failed_deliver_retried_and_rejected_envelope_acked(relay: RedisServer) -> None:
    async def main() -> None:
        alice, bob = member("alice", relay), member("bob", relay)
        seen: list[bytes] = []

        async def deliver(data: bytes) -> None:
            seen.append(data)
            if data == b"forged":
                raise ProtocolError("bad envelope", (1,))
            if data == b"flaky" and seen.count(b"flaky") == 1:
                raise OSError("disk busy")

        async def body() -> None:
            await bob.start(deliver)
            for data in (b"forged", b"flaky", b"fine"):
                await alice.send("bob", data, session=S1)
            # Retried by the same instance, about a second later.
            await until(lambda: seen.count(b"flaky") == 2)
            async with Redis.from_url(relay.url) as r:
                await until_acked(r, inbox_key("bob", S1), "bob")
            assert seen.count(b"forged") == 1  # rejected, acked, never retried
            assert seen.count(b"fine") == 1

        await closing([alice, bob], body)

    asyncio.run(main())


def test_new_instance_receives_what_was_sent_while_down(relay: RedisServer) -> None:
    async def main() -> None:
        alice, bob1, bob2 = member("alice", relay), member("bob", relay), member("bob", relay)
        carol = member("carol", relay)
        first, second, carols = Inbox(), Inbox(), Inbox()

        async def body() -> None:
            await bob1.start(first.deliver)
            await alice.send("bob", b"a", session=S1)
            await until(lambda: first.got == [b"a"])
            await bob1.close()
            # S1 is not announced again: bob's next instance must still know it.
            await alice.send("bob", b"b", session=S1)
            await alice.send("bob", b"c", session=S2)
            # carol has never run at all.
            await alice.send("carol", b"d", session=S1)
            await bob2.start(second.deliver)
            await carol.start(carols.deliver)
            await until(lambda: sorted(second.got) == [b"b", b"c"] and carols.got == [b"d"])
            async with Redis.from_url(relay.url) as r:
                assert await r.xlen(index_key("bob")) == 2

        await closing([alice, bob1, bob2, carol], body)

    asyncio.run(main())


def test_relay_restart_mid_session(relay: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tmpc.transport.relay")

    async def main() -> None:
        alice, bob, carol = member("alice", relay), member("bob", relay), member("carol", relay)
        bobs, carols = Inbox(), Inbox()

        async def body() -> None:
            await bob.start(bobs.deliver)
            await alice.send("bob", b"m1", session=S1)
            await until(lambda: bobs.got == [b"m1"])
            await alice.send("carol", b"q1", session=S1)  # stored, not yet read
            relay.stop()
            with pytest.raises(TransportError):
                await alice.send("bob", b"during downtime", session=S1)
            await until(lambda: any("retrying" in rec.getMessage() for rec in caplog.records))
            relay.start()
            await alice.send("bob", b"m2", session=S1)
            await alice.send("bob", b"m3", session=S2)
            await until(lambda: sorted(bobs.got) == [b"m1", b"m2", b"m3"])
            await carol.start(carols.deliver)
            await until(lambda: carols.got == [b"q1"])
            async with Redis.from_url(relay.url) as r:
                assert await r.xlen(inbox_key("bob", S1)) == 2
                assert await r.xlen(inbox_key("carol", S1)) == 1

        await closing([alice, bob, carol], body)

    asyncio.run(main())
    messages = [rec.getMessage() for rec in caplog.records]
    assert any(m.startswith("relay bob: ConnectionError") for m in messages)
    assert "relay bob: relay reachable again" in messages


def test_nothing_deleted_on_read_and_forget_keeps_retention(relay: RedisServer) -> None:
    async def main() -> None:
        alice, bob = member("alice", relay), member("bob", relay)
        got = Inbox()

        async def body() -> None:
            for i in range(5):
                await alice.send("bob", b"x%d" % i, session=S1)
            async with Redis.from_url(relay.url) as r:
                assert await r.xlen(inbox_key("bob", S1)) == 5
                await bob.start(got.deliver)
                await until(lambda: len(got.got) == 5)
                await until_acked(r, inbox_key("bob", S1), "bob")
                assert await r.xlen(inbox_key("bob", S1)) == 5
                assert await r.xlen(index_key("bob")) == 1
                assert await pending(r, index_key("bob"), "bob") == 1  # S1 is open

                await bob.forget(S1)
                await bob.forget(S1)  # idempotent
                assert await pending(r, index_key("bob"), "bob") == 0
                assert 0 < await r.ttl(inbox_key("bob", S1)) <= RETENTION_SECONDS
                assert await r.xlen(inbox_key("bob", S1)) == 5
                # A forgotten session is not read any more; other sessions still are.
                await alice.send("bob", b"late", session=S1)
                await alice.send("bob", b"other", session=S2)
                await until(lambda: b"other" in got.got)
                await asyncio.sleep(0.3)
                assert b"late" not in got.got

        await closing([alice, bob], body)

    asyncio.run(main())


def test_200_messages_32_in_flight(relay: RedisServer) -> None:
    async def main() -> None:
        alice, bob = member("alice", relay), member("bob", relay)
        got = Inbox()
        in_flight = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with in_flight:
                await alice.send("bob", b"msg %03d" % i, session=S1 if i % 2 else S2)

        async def body() -> None:
            await bob.start(got.deliver)
            await asyncio.gather(*(one(i) for i in range(200)))
            await until(lambda: len(set(got.got)) == 200)
            async with Redis.from_url(relay.url) as r:
                for session in (S1, S2):
                    await until_acked(r, inbox_key("bob", session), "bob")
                # 32 racing first sends still announce each stream once.
                assert await r.xlen(index_key("bob")) == 2
            assert len(got.got) == 200  # no restart, so no duplicate either

        await closing([alice, bob], body)

    asyncio.run(main())


def test_close_ends_the_loop_even_if_a_cancellation_is_dropped(
    relay: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.11's asyncio.wait_for, which redis-py sends every command through, drops a
    cancellation that arrives as the write completes; close() must still end the loop."""
    dropped: list[bool] = []
    reading = asyncio.Event()

    async def dropping(self: RedisRelayTransport, deliver: Deliver, block: int) -> None:
        reading.set()
        try:
            await asyncio.sleep(block / 1000)  # stands in for the blocking XREADGROUP
        except asyncio.CancelledError:
            if dropped:
                raise
            dropped.append(True)  # and returns normally, as wait_for may

    monkeypatch.setattr(RedisRelayTransport, "_read_new", dropping)

    async def main() -> None:
        bob = member("bob", relay)
        await bob.start(Inbox().deliver)
        await asyncio.wait_for(reading.wait(), 10)
        await asyncio.wait_for(bob.close(), 5)

    asyncio.run(main())
    assert dropped == [True]


def test_bad_arguments_closed_and_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tmpc.transport.relay")
    secret = "s3cret-pass"

    async def main() -> None:
        url = f"redis://tmpc:{secret}@127.0.0.1:{_free_port()}/0"  # nobody listens there
        with pytest.raises(ParameterError):
            RedisRelayTransport("a b", url, cluster=CLUSTER)
        with pytest.raises(ParameterError):
            RedisRelayTransport("alice", url, cluster="XYZ")
        with pytest.raises(ParameterError):
            RedisRelayTransport("alice", url, cluster=CLUSTER, block_ms=0)
        with pytest.raises(ParameterError) as bad_url:
            RedisRelayTransport("alice", f"http://tmpc:{secret}@relay/", cluster=CLUSTER)
        assert secret not in str(bad_url.value)
        t = RedisRelayTransport("alice", url, cluster=CLUSTER)
        try:
            with pytest.raises(ParameterError):
                await t.send("../bob", b"x", session=S1)
            with pytest.raises(ParameterError):
                await t.send("bob", b"x", session=S1[:31])
            with pytest.raises(ParameterError):
                await t.forget(b"short")
            with pytest.raises(TransportError) as failed:
                await t.send("bob", b"x", session=S1)
            assert secret not in str(failed.value)
            await t.start(Inbox().deliver)  # keeps retrying in the background
            await until(lambda: bool(caplog.records))
            with pytest.raises(InputError):
                await t.start(Inbox().deliver)
        finally:
            await t.close()
        await t.close()  # idempotent
        with pytest.raises(TransportError):
            await t.send("bob", b"x", session=S1)

    asyncio.run(main())
    assert caplog.records
    assert not any(secret in rec.getMessage() for rec in caplog.records)
