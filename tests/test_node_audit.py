"""The audit log and metrics of party nodes (issue 12), with in-memory engines.

Every node writes its own hash-chained, signed log of what it saw and did: the coordinator
the requests, every participant its sessions (started, each round, completed with the
signature's hash), refusals with the policy's rule, rejected messages. Checkpoints are
cosigned by the other members. The same events update the node's Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.node_helpers import memory_cluster, result_ok, stop_all
from tmpc.audit import verify
from tmpc.node import config as node_config
from tmpc.node.engine import Engine, EngineSettings, heartbeat_message

SETTINGS = EngineSettings(ready_timeout=2.0, round_timeout=4.0, checkpoint_every=None)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def entries(e: Engine) -> list[dict[str, Any]]:
    assert e.observe.audit is not None
    assert e.observe.audit.flush(10)
    return e.observe.audit.read(0, 5000)


def of_type(e: Engine, t: str) -> list[dict[str, Any]]:
    return [x["data"] for x in entries(e) if x["type"] == t]


def samples(e: Engine, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = e.prom.render()[0].decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_requests_and_sessions_are_audited_and_counted(tmp_path: Path) -> None:
    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 3, settings=SETTINGS)
        try:
            a = engines["a"]
            res = await a.submit(
                "keygen", {"scheme": "schnorr-bip340", "threshold": 2, "parties": list("abc")},
                "kg",
            )  # fmt: skip
            wid = res["wallet"]["wallet_id"]
            res = await a.submit("sign", {"wallet": wid, "message": "ab" * 32}, "s1")
            assert result_ok(res)
            sig_hash = hashlib.sha256(bytes.fromhex(res["signature"])).hexdigest()
            received = of_type(a, "request.received")
            assert [r["request"] for r in received] == ["kg", "s1"]
            done = [d for d in of_type(a, "request.completed") if d["request"] == "s1"]
            assert done[0]["signature_sha256"] == sig_hash
            assert sorted(done[0]["participants"]) == sorted(res["participants"])
            for name in res["participants"]:
                e = engines[name]
                started = [d for d in of_type(e, "session.started") if d["request"] == "s1"]
                assert started and started[0]["coordinator"] == "a"
                completed = [d for d in of_type(e, "session.completed") if d["request"] == "s1"]
                assert completed[0]["signature_sha256"] == sig_hash
                assert of_type(e, "session.round"), name
                proposed = [d for d in of_type(e, "request.proposed") if d["request"] == "s1"]
                assert proposed and proposed[0]["coordinator"] == "a"
                counted = samples(e, "tmpc_sessions_total")
                assert counted[(("outcome", "completed"), ("protocol", "sign"))] >= 1
            assert of_type(a, "lifecycle.created")[0]["wallet"] == wid
            # Every log verifies: chain, signatures, head.
            await stop_all(engines)
            cluster = node_config.load_cluster(tmp_path / "a")
            for name in "abc":
                report = verify(tmp_path / name, cluster, name)
                assert report.ok, (name, report.to_json())
                # No secret: no share, nonce or key material in any entry.
                text = (tmp_path / name / "audit" / "audit.log").read_text()
                for word in ("secshare", "seckey", "passphrase", "nonce"):
                    assert word not in text
        finally:
            await stop_all(engines)

    run(go())


def test_checkpoints_are_cosigned_by_the_other_members(tmp_path: Path) -> None:
    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 3, settings=SETTINGS)
        try:
            a = engines["a"]
            await a.submit(
                "keygen", {"scheme": "ed25519", "threshold": 2, "parties": list("abc")}, None
            )
            made = await a.checkpoint()
            assert made["cosigners"] == ["b", "c"]
            for name in "bc":
                cosigned = of_type(engines[name], "cosign")
                assert cosigned and cosigned[-1]["node"] == "a"
            assert of_type(a, "checkpoint")[-1]["seq"] == made["seq"]
        finally:
            await stop_all(engines)
        cluster = node_config.load_cluster(tmp_path / "a")
        peers = [tmp_path / "b", tmp_path / "c"]
        assert verify(tmp_path / "a", cluster, "a", peer_logs=peers).ok

    run(go())


def test_heartbeats_sign_the_fixed_message_under_a_policy_that_denies_digests(
    tmp_path: Path,
) -> None:
    from tests.test_node_policy import _bundle, _policy
    from tmpc import policy as pol

    async def go() -> None:
        admin = pol.PolicyKey.generate()
        settings = EngineSettings(
            ready_timeout=2.0, round_timeout=4.0, heartbeat_every=0.3, checkpoint_every=None
        )
        _, engines = await memory_cluster(
            tmp_path, 3, settings=settings, policy_admins={"alice": admin.public_key}
        )
        try:
            a = engines["a"]
            res = await a.submit(
                "keygen", {"scheme": "ecdsa-secp256k1", "threshold": 2, "parties": list("abc")},
                None,
            )  # fmt: skip
            wid = res["wallet"]["wallet_id"]
            a.install_policy(_bundle(_policy(1, pol.PolicyKey.generate()), ("alice", admin)))
            for _ in range(200):
                if of_type(a, "heartbeat.ok"):
                    break
                await asyncio.sleep(0.05)
            beat = of_type(a, "heartbeat.ok")[0]
            assert beat["wallet"] == wid and len(beat["participants"]) == 2
            record = a.wallets.get(wid).record
            signed = [
                d for d in of_type(a, "request.received") if d["request"].startswith("heartbeat-")
            ]
            assert signed[0]["message"] == heartbeat_message(record).hex()
            ages = samples(a, "tmpc_heartbeat_age_seconds")
            assert ages[(("wallet", wid),)] < 30
            # A bare digest under the same policy is still refused (default deny).
            from tmpc.node.engine import RequestFailedError

            try:
                await a.submit("sign", {"wallet": wid, "message": "cd" * 32}, None)
                raise AssertionError("a bare digest was signed")
            except RequestFailedError as exc:
                assert "default-deny" in str(exc)
            # ... and a request that claims to be a heartbeat with another message too.
            try:
                await a.submit(
                    "sign", {"wallet": wid, "message": "cd" * 32, "heartbeat": True}, None
                )
                raise AssertionError("a forged heartbeat was signed")
            except RequestFailedError as exc:
                assert "heartbeat message only" in str(exc)
        finally:
            await stop_all(engines)

    run(go())


def test_metrics_and_audit_api_shape(tmp_path: Path) -> None:
    async def go() -> None:
        _, engines = await memory_cluster(tmp_path, 2, settings=SETTINGS)
        try:
            a = engines["a"]
            assert a.observe.audit is not None
            rows = a.observe.audit.read(0, 10)
            assert rows[0]["type"] == "log.created" and rows[0]["seq"] == 1
            assert json.loads(json.dumps(rows)) == rows
            text = a.prom.render()[0].decode()
            assert "tmpc_sessions_started_total" in text and "tmpc_peers" in text
        finally:
            await stop_all(engines)

    run(go())
