"""Party nodes as real processes on loopback: a 5-node cluster over mutual TLS.

Started with ``tmpc cluster local --parties 5 --json`` exactly as an operator would; every
wallet is made by DKG across the processes and every signature is checked outside tmpc.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.node_helpers import SCHEMES, cluster_process, result_ok
from tmpc.cli.node import start_node_process, wait_ready
from tmpc.node.client import ApiError, Credential, NodeClient
from tmpc.transport import tls

DIGEST = bytes.fromhex("5a" * 32)


class Cluster:
    """The running cluster of the module's tests."""

    def __init__(self, info: dict[str, Any], root: Path) -> None:
        self.info = info
        self.root = root
        self.nodes = {n["name"]: n for n in info["nodes"]}
        self.auth = info["auth"]
        self.wallets: dict[str, str] = {}

    def client(self, name: str = "a") -> NodeClient:
        return NodeClient(self.nodes[name]["url"], Credential.load(self.auth), timeout=60)

    def wallet(self, scheme: str) -> str:
        if scheme not in self.wallets:
            res = self.client().call(
                "POST",
                "/v1/wallets",
                {"scheme": scheme, "threshold": 3, "parties": list(self.nodes)},
            )
            self.wallets[scheme] = res["wallet"]["wallet_id"]
        return self.wallets[scheme]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    with cluster_process(root / "c", 5, "--round-timeout", "2") as info:
        c = Cluster(info, root / "c")
        yield c
    for n in c.nodes.values():  # every node the cluster started is gone
        with pytest.raises(ProcessLookupError):
            os.kill(n["pid"], 0)


def test_cluster_local_prints_the_documented_json(cluster: Cluster) -> None:
    assert set(cluster.info) - {"restarted"} == {"nodes", "auth"}
    assert [n["name"] for n in cluster.info["nodes"]] == ["a", "b", "c", "d", "e"]
    for n in cluster.info["nodes"]:
        assert set(n) == {"name", "url", "pid", "dir", "metrics_url"}
        assert n["url"].startswith("https://127.0.0.1:")
        assert n["metrics_url"].startswith("http://127.0.0.1:")
        with urllib.request.urlopen(n["metrics_url"], timeout=10) as resp:
            assert b"tmpc_sessions_started_total" in resp.read()
    assert Path(cluster.auth).is_file()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_dkg_and_signing_across_five_processes(cluster: Cluster, scheme: str) -> None:
    wallet = cluster.wallet(scheme)
    for coordinator in ("a", "d"):
        res = cluster.client(coordinator).call(
            "POST", "/v1/sign", {"wallet": wallet, "message": DIGEST.hex()}
        )
        assert result_ok(res), res
        assert len(res["signers"]) == 3
    listed = cluster.client("e").call("GET", "/v1/wallets")["wallets"]
    assert any(w["wallet_id"] == wallet and w["party"] == 5 for w in listed)


def test_with_two_of_five_nodes_stopped_a_3_of_5_wallet_signs(cluster: Cluster) -> None:
    wallet = cluster.wallet("ecdsa-secp256k1")
    stopped = [cluster.nodes[n]["pid"] for n in ("b", "e")]
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        res = cluster.client("a").call(
            "POST", "/v1/sign", {"wallet": wallet, "message": DIGEST.hex()}
        )
        assert result_ok(res)
        assert sorted(res["signers"]) == [1, 3, 4]
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)


def test_request_ids_are_idempotent_across_the_api(cluster: Cluster) -> None:
    wallet = cluster.wallet("schnorr-bip340")
    body = {"wallet": wallet, "message": DIGEST.hex(), "request_id": "api-idem-1"}
    first = cluster.client("a").call("POST", "/v1/sign", dict(body))
    second = cluster.client("a").call("POST", "/v1/sign", dict(body))
    assert first["signature"] == second["signature"]
    polled = cluster.client("a").call("GET", "/v1/requests/api-idem-1")
    assert polled["status"] == "done" and polled["result"]["signature"] == first["signature"]


def test_a_killed_node_is_tolerated_and_comes_back(cluster: Cluster) -> None:
    wallet = cluster.wallet("ed25519")
    victim = cluster.nodes["c"]
    os.kill(victim["pid"], signal.SIGKILL)
    time.sleep(0.2)
    res = cluster.client("a").call("POST", "/v1/sign", {"wallet": wallet, "message": "01" * 32})
    assert result_ok(res) and 3 not in res["signers"]
    proc = start_node_process(Path(victim["dir"]), cluster.root / "passphrase", [])
    cluster.info["restarted"].append(proc)
    wait_ready(proc, "c")
    health = cluster.client("c").call("GET", "/v1/health")
    assert health["name"] == "c" and health["status"] == "ok"
    res = cluster.client("c").call("POST", "/v1/sign", {"wallet": wallet, "message": "02" * 32})
    assert result_ok(res)


def _raw_get(url: str, ctx: ssl.SSLContext) -> int:
    async def go() -> int:
        conn = aiohttp.TCPConnector(ssl=ctx)
        async with (
            aiohttp.ClientSession(connector=conn) as s,
            s.get(url + "/v1/health") as r,
        ):
            return r.status

    return asyncio.run(go())


def test_the_api_refuses_clients_without_credentials(cluster: Cluster) -> None:
    url = cluster.nodes["a"]["url"]
    cred = Credential.load(cluster.auth)
    # No client certificate at all: the TLS handshake fails.
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.check_hostname = False
    bare.load_verify_locations(cadata="".join(t.decode() for t in cred.trust))
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
        _raw_get(url, bare)
    # A certificate the cluster file does not list: refused too.
    cert, key = tls.make_certificate("stranger")
    stranger = tls.client_context(cert, key, list(cred.trust))
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
        _raw_get(url, stranger)
    # A member's certificate is for the peer endpoint only: 403 on the operator API.
    node_b = Path(cluster.nodes["b"]["dir"])
    pw = (cluster.root / "passphrase").read_bytes().strip()
    member = tls.client_context(
        (node_b / "tls" / "cert.pem").read_bytes(),
        (node_b / "tls" / "key.pem").read_bytes(),
        list(cred.trust),
        password=pw,
    )
    assert _raw_get(url, member) == 403
    # The operator gets in.
    assert _raw_get(url, cred.ssl_context()) == 200


def test_a_bad_request_gets_a_clear_error(cluster: Cluster) -> None:
    wallet = cluster.wallet("ecdsa-secp256k1")
    with pytest.raises(ApiError) as exc:
        cluster.client("a").call("POST", "/v1/sign", {"wallet": wallet, "message": "abcd"})
    assert exc.value.status == 400 and "32-byte digest" in str(exc.value)
    with pytest.raises(ApiError) as exc:
        cluster.client("a").call("POST", "/v1/sign", {"wallet": "00" * 16, "message": "ab"})
    assert exc.value.status == 400 and "unknown wallet" in str(exc.value)


def test_cli_sign_and_sessions_via_a_node(cluster: Cluster) -> None:
    wallet = cluster.wallet("schnorr-bip340")
    env = dict(os.environ, TMPC_AUTH=cluster.auth)
    url = cluster.nodes["b"]["url"]
    out = subprocess.run(
        [sys.executable, "-m", "tmpc", "sign", "--node", url, "--wallet", wallet,
         "--message", DIGEST.hex(), "--json"],
        capture_output=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert result_ok(res)
    assert {"scheme", "wallet_id", "path", "public_key", "message", "signature", "signers"} <= set(
        res
    )
    out = subprocess.run(
        [sys.executable, "-m", "tmpc", "sessions", "--node", url, "--json"],
        capture_output=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    sessions = json.loads(out.stdout)["sessions"]
    assert sessions and all("participants" in s and "status" in s for s in sessions)
    one = sessions[0]["session"]
    out = subprocess.run(
        [sys.executable, "-m", "tmpc", "sessions", "--node", url, "--session", one],
        capture_output=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert one in out.stdout.decode() and "status   done" in out.stdout.decode()
    out = subprocess.run(
        [sys.executable, "-m", "tmpc", "sessions", "--node", url, "--session", "00" * 32],
        capture_output=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode != 0 and "unknown session" in out.stderr.decode()
    assert "Traceback" not in out.stderr.decode()
    # Without a credential: one line, exit 2, no traceback.
    env.pop("TMPC_AUTH")
    out = subprocess.run(
        [sys.executable, "-m", "tmpc", "sessions", "--node", url],
        capture_output=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.decode().count("\n") == 1 and "TMPC_AUTH" in out.stderr.decode()
