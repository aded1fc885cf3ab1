"""Load test (bounded, loopback): 1,000 signing requests, 32 in flight, to a 3-of-5 cluster.

Half BIP340 (Taproot), half ECDSA, spread over all five nodes as coordinators; run once as is
and once with a node SIGKILLed and restarted in the middle. Every request must end with
exactly one signature, verified with libsecp256k1 (coincurve); none lost or duplicated. A
request whose coordinator died is re-submitted with the same request id to another node,
which is what an integrating client does (request ids are idempotent).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.node_helpers import cluster_process
from tmpc.cli.demo import independent_verify
from tmpc.cli.node import start_node_process, wait_ready
from tmpc.node.client import Credential

TOTAL = 1000
IN_FLIGHT = 32
SCHEMES = ("schnorr-bip340", "ecdsa-secp256k1")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("load")
    with cluster_process(root / "c", 5, "--round-timeout", "3") as info:
        info["root"] = root / "c"
        yield info


async def _call(
    session: aiohttp.ClientSession, url: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    method = "POST" if body is not None else "GET"
    async with session.request(method, url + path, json=body) as resp:
        return resp.status, await resp.json(content_type=None)


async def _load(info: dict[str, Any], tag: str, *, kill: bool) -> dict[str, Any]:
    cred = Credential.load(info["auth"])
    urls = [n["url"] for n in info["nodes"]]
    names = [n["name"] for n in info["nodes"]]
    conn = aiohttp.TCPConnector(ssl=cred.ssl_context(), limit=IN_FLIGHT + 8)
    timeout = aiohttp.ClientTimeout(total=180)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        wallets = {}
        for scheme in SCHEMES:
            status, res = await _call(
                session, urls[0], "/v1/wallets",
                {"scheme": scheme, "threshold": 3, "parties": names,
                 "request_id": f"{tag}-wallet-{scheme}"},
            )  # fmt: skip
            assert status == 200, res
            wallets[scheme] = (
                res["wallet"]["wallet_id"],
                bytes.fromhex(res["wallet"]["public_key"]),
            )
        results: dict[str, dict[str, Any]] = {}
        retries = 0
        done = 0
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(TOTAL):
            queue.put_nowait(i)
        victim = info["nodes"][2]
        killed_at: float | None = None

        async def one(i: int) -> None:
            nonlocal retries, done
            scheme = SCHEMES[i % 2]
            wallet_id, _pk = wallets[scheme]
            rid = f"{tag}-{i}"
            msg = hashlib.sha256(rid.encode()).hexdigest()
            for attempt in range(10):
                url = urls[(i + attempt) % len(urls)]
                try:
                    status, res = await _call(
                        session, url, "/v1/sign",
                        {"wallet": wallet_id, "message": msg, "request_id": rid},
                    )  # fmt: skip
                except (aiohttp.ClientError, TimeoutError):
                    retries += 1
                    await asyncio.sleep(0.2)
                    continue
                if status == 200:
                    assert rid not in results, f"{rid} answered twice"
                    results[rid] = dict(res, _scheme=scheme)
                    done += 1
                    return
                retries += 1
                await asyncio.sleep(0.2)
            raise AssertionError(f"request {rid} never completed")

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await one(i)

        async def chaos() -> None:
            nonlocal killed_at
            while done < TOTAL // 3:
                await asyncio.sleep(0.05)
            os.kill(victim["pid"], signal.SIGKILL)
            killed_at = time.monotonic()
            while done < TOTAL // 2:
                await asyncio.sleep(0.05)
            proc = start_node_process(Path(victim["dir"]), info["root"] / "passphrase", [])
            info["restarted"].append(proc)
            await asyncio.get_running_loop().run_in_executor(None, wait_ready, proc, victim["name"])
            victim["pid"] = proc.pid

        t0 = time.monotonic()
        tasks = [asyncio.ensure_future(worker()) for _ in range(IN_FLIGHT)]
        if kill:
            tasks.append(asyncio.ensure_future(chaos()))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - t0
    return {"results": results, "wallets": wallets, "elapsed": elapsed, "retries": retries,
            "killed": killed_at is not None}  # fmt: skip


def _check(out: dict[str, Any], tag: str) -> None:
    results = out["results"]
    assert sorted(results) == sorted(f"{tag}-{i}" for i in range(TOTAL))  # none lost
    signatures = set()
    for rid, res in results.items():
        scheme = res["_scheme"]
        _wallet_id, pk = out["wallets"][scheme]
        msg = hashlib.sha256(rid.encode()).digest()
        assert res["message"] == msg.hex()
        sig = bytes.fromhex(res["signature"])
        assert independent_verify(scheme, pk, msg, sig), rid  # libsecp256k1 (coincurve)
        signatures.add(sig)
    assert len(signatures) == TOTAL  # no signature returned for two requests


def test_one_thousand_requests(cluster: dict[str, Any]) -> None:
    out = asyncio.run(_load(cluster, "plain", kill=False))
    _check(out, "plain")
    print(f"\n1000 requests in {out['elapsed']:.1f} s ({TOTAL / out['elapsed']:.1f}/s)")


def test_one_thousand_requests_with_a_node_killed_and_restarted(cluster: dict[str, Any]) -> None:
    out = asyncio.run(_load(cluster, "chaos", kill=True))
    assert out["killed"]
    _check(out, "chaos")
    # The re-submissions of the requests the dead node coordinated were answered once each.
    print(f"\n1000 requests with a kill in {out['elapsed']:.1f} s, {out['retries']} retries")
