"""Party nodes over the Redis Streams relay: real node processes, a real ``redis-server``.

``make test`` installs ``redis-server`` (Debian); without it these tests fail and say so.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.node_helpers import cluster_process, result_ok
from tmpc.node.client import Credential, NodeClient

DIGEST = bytes.fromhex("3c" * 32)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Redis:
    """A redis-server of the test's own (append-only file, so a restart keeps the streams)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed: run `make test`, which installs it")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--save", "", "--appendonly", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        pytest.fail("redis-server did not answer PING within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture(scope="module")
def relay_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict, Redis]]:  # type: ignore[type-arg]
    root = tmp_path_factory.mktemp("relay")
    redis = Redis(root)
    redis.start()
    try:
        with cluster_process(root / "c", 5, "--round-timeout", "3", "--relay", redis.url) as info:
            yield info, redis
    finally:
        redis.stop()


def _client(info: dict, name: str = "a") -> NodeClient:  # type: ignore[type-arg]
    url = next(n["url"] for n in info["nodes"] if n["name"] == name)
    return NodeClient(url, Credential.load(info["auth"]), timeout=90)


@pytest.mark.parametrize(
    "scheme", ["schnorr-bip340", "ed25519", "frost-secp256k1", "ecdsa-secp256k1"]
)
def test_dkg_and_signing_over_the_relay(relay_cluster: tuple[dict, Redis], scheme: str) -> None:  # type: ignore[type-arg]
    info, _ = relay_cluster
    w = _client(info).call(
        "POST", "/v1/wallets", {"scheme": scheme, "threshold": 3, "parties": list("abcde")}
    )["wallet"]
    res = _client(info, "c").call(
        "POST", "/v1/sign", {"wallet": w["wallet_id"], "message": DIGEST.hex()}
    )
    assert result_ok(res)


def test_the_relay_survives_a_redis_restart_mid_session(relay_cluster: tuple[dict, Redis]) -> None:  # type: ignore[type-arg]
    info, redis = relay_cluster
    w = _client(info).call(
        "POST",
        "/v1/wallets",
        {"scheme": "ecdsa-secp256k1", "threshold": 3, "parties": list("abcde")},
    )["wallet"]
    rid = "relay-restart-1"
    first = _client(info).call(
        "POST",
        "/v1/sign",
        {"wallet": w["wallet_id"], "message": DIGEST.hex(), "request_id": rid, "wait": False},
    )
    redis.stop()  # while the request's messages are in flight
    time.sleep(0.5)
    redis.start()
    deadline = time.monotonic() + 60
    status = first
    while time.monotonic() < deadline:
        status = _client(info).call("GET", f"/v1/requests/{rid}")
        if status["status"] != "pending":
            break
        time.sleep(0.2)
    assert status["status"] == "done", status
    assert result_ok(status["result"])
