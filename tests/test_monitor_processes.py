"""Issue 12's alerts across real node processes: ``tmpc monitor`` watching a local cluster.

Five nodes (``tmpc cluster local``, heartbeats every second, a signing policy that values
every Ethereum transfer), one 3-of-5 ECDSA wallet, and ``tmpc monitor`` as a process with a
webhook receiver on loopback that is down at first. Then, each from real audit logs:

- a burst of out-of-pattern amounts (after a history of small transfers) raises an alert;
- a party stalled mid-session (SIGSTOP at a failpoint) is named in the aborted session's alert;
- a node that starts three signing requests that never reach threshold is named;
- an old session's message sent again (a replay) raises a channel alert;
- a stopped heartbeat (its leader stopped) raises an alert, resolved once its leader is back;
- the receiver, once up, gets each alert and each resolution exactly once.
"""

from __future__ import annotations

import gc
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.node_helpers import cluster_process, result_ok
from tests.test_node_policy import FRIEND, _eth
from tmpc import policy as pol
from tmpc.cli.node import _node_passphrase
from tmpc.node import config as node_config
from tmpc.node.client import ApiError, Credential, NodeClient
from tmpc.node.engine import choose_participants

NAMES = ["a", "b", "c", "d", "e"]
POLICY = """
version = 1
reference_currency = "USD"

[prices]
ETH = "3000"

[[rules]]
name = "transfers"
action = "allow"
group = "default"
chains = ["ethereum"]
max_usd = "10000000"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """A webhook receiver on 127.0.0.1 (started later than the monitor: down at first)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.alerts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> None:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with owner.lock:
                    owner.alerts.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def kinds(self) -> dict[str, list[dict[str, Any]]]:
        with self.lock:
            out: dict[str, list[dict[str, Any]]] = {}
            for a in self.alerts:
                out.setdefault(a["kind"], []).append(a)
            return out

    def wait(self, what: Callable[[dict[str, list[dict[str, Any]]]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if what(self.kinds()):
                return True
            time.sleep(0.2)
        return what(self.kinds())


class World:
    def __init__(self, info: dict[str, Any], root: Path) -> None:
        self.nodes = {n["name"]: n for n in info["nodes"]}
        self.auth = info["auth"]
        self.root = root
        self.wallet = ""

    def client(self, name: str = "a") -> NodeClient:
        return NodeClient(self.nodes[name]["url"], Credential.load(self.auth), timeout=120)

    def sign_eth(self, eth: int, nonce: int, node: str = "a", rid: str | None = None) -> Any:
        body: dict[str, Any] = {"wallet": self.wallet, "transaction": _eth(eth, FRIEND, nonce)}
        if rid is not None:
            body["request_id"] = rid
        return self.client(node).call("POST", "/v1/sign", body)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, Receiver]]:
    root = tmp_path_factory.mktemp("monitor")
    admin = pol.PolicyKey.generate()
    env = dict(os.environ, TMPC_TEST_FAILPOINTS="1")
    extra = ["--heartbeat-every", "1", "--round-timeout", "2",
             "--policy-admin", f"admin={admin.public_key.hex()}"]  # fmt: skip
    with cluster_process(root / "c", 5, *extra, env=env) as info:
        w = World(info, root)
        res = w.client().call(
            "POST", "/v1/wallets", {"scheme": "ecdsa-secp256k1", "threshold": 3, "parties": NAMES}
        )
        w.wallet = res["wallet"]["wallet_id"]
        bundle = pol.sign_bundle(pol.Bundle.from_policy(POLICY.encode()), "admin", admin)
        w.client().call("POST", "/v1/policy", {"bundle": json.loads(bundle.to_bytes())})
        receiver = Receiver(_free_port())
        log = open(root / "monitor.log", "wb")
        monitor = subprocess.Popen(
            [sys.executable, "-m", "tmpc", "monitor", "--cluster", str(root / "c" / "cluster.json"),
             "--auth", w.auth, "--state", str(root / "mon"), "--listen",
             f"127.0.0.1:{_free_port()}", "--webhook", f"http://127.0.0.1:{receiver.port}/hook",
             "--interval", "0.5", "--stall-after", "3", "--heartbeat-max-age", "8"],
            stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        try:
            yield w, receiver
        finally:
            monitor.send_signal(signal.SIGTERM)
            try:
                assert monitor.wait(30) == 0
            finally:
                if monitor.poll() is None:
                    monitor.kill()
                receiver.stop()
                for pid in (n["pid"] for n in info["nodes"]):
                    with_suppressed(lambda p=pid: os.kill(p, signal.SIGCONT))


def with_suppressed(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except OSError:
        pass


def test_alerts_from_a_live_cluster_reach_the_webhook_exactly_once(
    world: tuple[World, Receiver],
) -> None:
    w, receiver = world
    pids = {n: w.nodes[n]["pid"] for n in NAMES}
    # 1. A history of small transfers (3,000 USD), then a burst of 600,000 USD ones.
    for k in range(12):
        assert result_ok(w.sign_eth(1, k))
    for k in range(3):
        assert result_ok(w.sign_eth(200, 100 + k))
    # The receiver comes up only now: the alerts raised so far waited for it.
    time.sleep(1.5)
    receiver.start()
    assert receiver.wait(lambda k: "amount-burst" in k, 30), receiver.kinds().keys()

    # 2. b stalls mid-session (it answered ready): the others time out and name it.
    rid = next(
        r for r in (f"stall-{i}" for i in range(500))
        if "b" in choose_participants(NAMES, r, 1, 3)
    )  # fmt: skip
    (Path(w.nodes["b"]["dir"]) / "failpoint").write_text("stop:dkls23-presign-sign:1:before-send")
    try:
        assert result_ok(w.sign_eth(1, 200, rid=rid))  # signed on a later attempt, without b
    finally:
        os.kill(pids["b"], signal.SIGCONT)
    assert receiver.wait(
        lambda k: any("b" in a["parties"] for a in k.get("session-failed", [])), 30
    ), receiver.kinds()

    # 3. c starts three signing requests nobody authorized (bare digests, which the policy
    # gives no rule): every other party refuses, so none ever reaches threshold.
    for k in range(3):
        with pytest.raises(ApiError, match="default-deny"):
            w.client("c").call("POST", "/v1/sign", {"wallet": w.wallet, "message": f"{k + 7:064x}"})
    assert receiver.wait(
        lambda k: any("c" in a["parties"] for a in k.get("stalled-initiator", [])), 30
    ), receiver.kinds()
    assert any("c" in a["parties"] for a in receiver.kinds().get("policy-refusal", []))

    # 4. A replay: a message of a session that ended, signed by b, sent again to a.
    _replay_to_a(w)
    assert receiver.wait(
        lambda k: any(a["facts"].get("reason") == "stale" for a in k.get("channel", [])), 30
    ), receiver.kinds().get("channel")

    # 5. The heartbeat stops: its leader (party 1, a) is stopped.
    os.kill(pids["a"], signal.SIGSTOP)
    try:
        assert receiver.wait(lambda k: "heartbeat-stale" in k, 40), receiver.kinds().keys()
    finally:
        os.kill(pids["a"], signal.SIGCONT)
    # ... and resumes: the same alert comes again, resolved.
    assert receiver.wait(
        lambda k: any(a["status"] == "resolved" for a in k.get("heartbeat-stale", [])), 40
    ), [(a["kind"], a["status"]) for a in list(receiver.alerts)]

    # Each alert the monitor raised, and each resolution (a node or heartbeat stopped above
    # that came back: the same id, status "resolved"), reached the receiver exactly once, the
    # ones raised while it was down included.
    raised_file = w.root / "mon" / "alerts.jsonl"

    def raised() -> set[tuple[str, str]]:
        lines = [json.loads(x) for x in raised_file.read_text().splitlines() if x]
        return {(a["id"], a["status"]) for a in lines}

    def received() -> list[tuple[str, str]]:
        with receiver.lock:
            return [(a["id"], a["status"]) for a in receiver.alerts]

    assert receiver.wait(lambda _k: raised() <= set(received()), 30)
    keys = received()
    assert len(keys) == len(set(keys)), sorted(keys)


def _replay_to_a(w: World) -> None:
    """Send node a a message, signed by b's identity, of a session a has finished: exactly
    what a captured envelope replayed later looks like to a (the envelope layer refuses it
    as ``stale``). Sent over b's own mutual-TLS connection, as a relay or a peer would."""
    import asyncio

    from tmpc.node.config import tls_key_password
    from tmpc.transport.base import TransportError
    from tmpc.transport.tcp import Peer, TcpTransport
    from tmpc.wire import envelope

    bdir = Path(w.nodes["b"]["dir"])
    passphrase = _node_passphrase(w.root / "c" / "passphrase")
    cfg = node_config.load_config(bdir)
    identity = node_config.open_identity(cfg, passphrase)
    cluster = node_config.load_cluster(bdir)
    done = [s for s in w.client("a").call("GET", "/v1/sessions")["sessions"]
            if s["status"] == "done" and "b" in s["participants"]]  # fmt: skip
    assert done
    data = envelope.seal(
        identity, "b", cluster.member("a").public, cluster=cluster.hash,
        wallet=w.wallet.encode(), session=bytes.fromhex(done[0]["session"]), attempt=1,
        protocol="dkls23-presign-sign", round=1, payload=b"replayed",
    )  # fmt: skip
    cert = (bdir / "tls" / "cert.pem").read_bytes()
    key = (bdir / "tls" / "key.pem").read_bytes()
    a = cluster.member("a")
    tcp = TcpTransport(
        "b", cert, key, {"a": Peer(a.url, a.tls_cert)}, password=tls_key_password(passphrase)
    )

    async def send() -> None:
        async def ignore(_data: bytes) -> None:
            return None

        await tcp.start(ignore)
        try:
            await tcp.send("a", data, session=bytes(32))
        except TransportError:
            pass  # refused by a: what the test wants
        finally:
            await tcp.close()
            # This loop ends here (a node's runs on): let the TLS connection finish closing,
            # so that it is not garbage-collected open later (a ResourceWarning).
            await asyncio.sleep(0.5)

    asyncio.run(send())
    gc.collect()  # anything left open would warn here, in this test, not in a later one
