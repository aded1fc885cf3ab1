"""The signing policy enforced by every node on the transaction itself (issue 11, nodes).

In-memory engines (the code a node process runs). Each node parses the transaction, computes
the digest it signs, and judges amounts and destinations it parsed; a refusal names its rule
and is recorded; velocity is reserved when a session starts, so concurrent requests cannot
overshoot; only a policy signed by the cluster's administrators, and newer, is installed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.node_helpers import memory_cluster, result_ok, stop_all
from tmpc import policy as pol
from tmpc.chains.facts import ethereum_facts
from tmpc.errors import CryptoError, ParameterError
from tmpc.node.engine import Engine, EngineSettings, RequestFailedError
from tmpc.node.policy import approval_hash

SETTINGS = EngineSettings(ready_timeout=2.0, round_timeout=4.0)
DENIED = "0x000000000000000000000000000000000000dEaD"
FRIEND = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _policy(version: int, approver: pol.PolicyKey, extra: str = "") -> bytes:
    return f"""
version = {version}
reference_currency = "USD"

[prices]
ETH = "3000"
BTC = "60000"

[approvers.tess]
key = "{approver.public_key.hex()}"
role = "treasury"

[[rules]]
name = "deny-list"
action = "deny"
destinations_deny = ["{DENIED}"]

[[rules]]
name = "small"
action = "allow"
group = "default"
max_usd = "10000"
velocity = {{ window = "1h", max_count = 3 }}

[[rules]]
name = "large"
action = "allow"
group = "default"
min_usd = "10000"
approvals = {{ treasury = 1 }}
{extra}
""".encode()


def _bundle(source: bytes, *admins: tuple[str, pol.PolicyKey]) -> bytes:
    bundle = pol.Bundle.from_policy(source)
    for name, key in admins:
        bundle = pol.sign_bundle(bundle, name, key)
    return bundle.to_bytes()


def _eth(value_eth: int, to: str = FRIEND, nonce: int = 0) -> dict[str, Any]:
    return {
        "chain": "ethereum",
        "fields": {
            "chain_id": 1, "nonce": nonce, "max_priority_fee_per_gas": 10**9,
            "max_fee_per_gas": 3 * 10**10, "gas": 21000, "to": to,
            "value": value_eth * 10**18, "data": "", "access_list": [],
        },
    }  # fmt: skip


async def _setup(tmp_path: Path) -> tuple[dict[str, Engine], str, pol.PolicyKey, pol.PolicyKey]:
    admin, approver = pol.PolicyKey.generate(), pol.PolicyKey.generate()
    _, engines = await memory_cluster(
        tmp_path, 3, settings=SETTINGS, policy_admins={"alice": admin.public_key}
    )
    res = await engines["a"].submit(
        "keygen", {"scheme": "ecdsa-secp256k1", "threshold": 2, "parties": ["a", "b", "c"]}, None
    )
    wid = str(res["wallet"]["wallet_id"])
    status = engines["a"].install_policy(_bundle(_policy(1, approver), ("alice", admin)))
    assert status["version"] == 1
    for _ in range(100):  # forwarded to the other members, each verifying it itself
        if all(e.policy.policy is not None for e in engines.values()):
            break
        await asyncio.sleep(0.02)
    assert all(e.policy.status()["version"] == 1 for e in engines.values())
    return engines, wid, admin, approver


def test_every_node_judges_the_transaction_it_signs(tmp_path: Path) -> None:
    async def go() -> None:
        engines, wid, _admin, approver = await _setup(tmp_path)
        try:
            a = engines["a"]
            # 1 ETH = 3,000 USD: the small rule; the message is the transaction's digest.
            res = await a.submit("sign", {"wallet": wid, "transaction": _eth(1)}, "small-1")
            assert result_ok(res)
            record = a.wallets.get(wid).record
            assert res["message"] == ethereum_facts(_eth(1)["fields"], record).digests[0].hex()
            # 10 ETH = 30,000 USD: the large rule needs a treasury approval.
            body = {"wallet": wid, "transaction": _eth(10, nonce=1)}
            with pytest.raises(RequestFailedError, match="large"):
                await a.submit("sign", dict(body), "large-1")
            # A forged approval does not count.
            forged = pol.sign_approval("tess", pol.PolicyKey.generate(), approval_hash(body))
            with pytest.raises(RequestFailedError, match="large"):
                await a.submit("sign", dict(body, approvals=[forged]), "large-2")
            good = pol.sign_approval("tess", approver, approval_hash(body))
            res = await a.submit("sign", dict(body, approvals=[good]), "large-3")
            assert result_ok(res)
            # A denied destination is refused by every node, naming the rule.
            with pytest.raises(RequestFailedError, match="deny-list"):
                await a.submit("sign", {"wallet": wid, "transaction": _eth(1, DENIED)}, "deny-1")
            for e in engines.values():
                refused = [x for x in e.db.policy_events() if x["request"] == "deny-1"]
                assert refused and refused[0]["rule"] == "deny-list", e.name
            # A bare digest matches no rule here: default deny.
            with pytest.raises(RequestFailedError, match="default-deny"):
                await a.submit("sign", {"wallet": wid, "message": "ab" * 32}, "bare-1")
            # A message that is not the transaction's digest is refused.
            with pytest.raises((RequestFailedError, ParameterError), match="not the digest"):
                await a.submit(
                    "sign", {"wallet": wid, "transaction": _eth(1), "message": "cd" * 32}, "x-1"
                )
        finally:
            await stop_all(engines)

    run(go())


def test_velocity_trips_on_the_nth_request_and_concurrent_ones_cannot_overshoot(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        engines, wid, _admin, _approver = await _setup(tmp_path)
        try:
            a = engines["a"]
            # max_count 3 per hour under the small rule; 6 requests at once.
            bodies = [{"wallet": wid, "transaction": _eth(1, nonce=10 + k)} for k in range(6)]
            results = await asyncio.gather(
                *(a.submit("sign", b, f"burst-{k}") for k, b in enumerate(bodies)),
                return_exceptions=True,
            )
            signed = [r for r in results if isinstance(r, dict)]
            refused = [r for r in results if isinstance(r, Exception)]
            assert len(signed) == 3, results
            assert all(result_ok(r) for r in signed)
            assert all("small" in str(r) for r in refused), refused
            # Each node's ledger counts the three signed ones and nothing more.
            for e in engines.values():
                _usd, count = e.policy.ledger.usage(wid, "small", 3600, _now())
                assert count <= 3, e.name
        finally:
            await stop_all(engines)

    run(go())


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def test_only_a_signed_newer_policy_is_installed(tmp_path: Path) -> None:
    async def go() -> None:
        engines, _wid, admin, approver = await _setup(tmp_path)
        try:
            a = engines["a"]
            with pytest.raises(CryptoError):  # unsigned
                a.install_policy(pol.Bundle.from_policy(_policy(2, approver)).to_bytes())
            with pytest.raises(CryptoError):  # signed by someone else
                a.install_policy(_bundle(_policy(2, approver), ("alice", pol.PolicyKey.generate())))
            signed = json.loads(_bundle(_policy(2, approver), ("alice", admin)))
            tampered = dict(signed, policy=signed["policy"].replace('"3000"', '"3"'))
            with pytest.raises(CryptoError):
                a.install_policy(json.dumps(tampered).encode())
            with pytest.raises(ParameterError):  # older than the installed version 1? same
                a.install_policy(_bundle(_policy(1, approver, "# changed"), ("alice", admin)))
            assert a.install_policy(json.dumps(signed).encode())["version"] == 2
            with pytest.raises(ParameterError):  # no rollback to version 1
                a.install_policy(_bundle(_policy(1, approver), ("alice", admin)))
            assert a.policy.status()["version"] == 2
        finally:
            await stop_all(engines)

    run(go())
