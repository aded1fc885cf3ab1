"""Signing groups: several sharings of one key (one address), chosen by the policy's tier.

In-memory engines (the code a node process runs). ``tmpc reshare --group`` copies the key's
DKG sharing to a new group: its dealers keep their shares, the group gets its own sharing
of the same key, with the same public key and address, its own wallet id, epochs and
sessions. A node takes part only in its group's requests, and refuses a request whose tier
the policy gives to another group, naming the rule.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.node_helpers import memory_cluster, result_ok, stop_all
from tests.test_node_policy import FRIEND, _bundle, _eth
from tmpc import policy as pol
from tmpc import schemes
from tmpc.errors import KeystoreError, ParameterError
from tmpc.node.engine import Engine, EngineSettings, RequestFailedError
from tmpc.node.policy import approval_hash

SETTINGS = EngineSettings(ready_timeout=2.0, round_timeout=4.0)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def tiers_policy(approver: pol.PolicyKey) -> bytes:
    return f"""
version = 1
reference_currency = "USD"

[prices]
ETH = "3000"

[approvers.tess]
key = "{approver.public_key.hex()}"
role = "treasury"

[[rules]]
name = "fast"
action = "allow"
group = "fast"
max_usd = "10000"

[[rules]]
name = "big"
action = "allow"
group = "wide"
min_usd = "10000"
approvals = {{ treasury = 1 }}
""".encode()


async def _groups(
    tmp_path: Path, scheme: str, *, policy: bool = True
) -> tuple[dict[str, Engine], str, pol.PolicyKey]:
    admin, approver = pol.PolicyKey.generate(), pol.PolicyKey.generate()
    _, engines = await memory_cluster(
        tmp_path, 5, settings=SETTINGS, policy_admins={"alice": admin.public_key}
    )
    a = engines["a"]
    res = await a.submit(
        "keygen", {"scheme": scheme, "threshold": 3, "parties": ["a", "b", "c", "d", "e"]}, None
    )
    key = str(res["wallet"]["wallet_id"])
    made = await a.submit(
        "reshare",
        {"wallet": key, "threshold": 2, "parties": ["c", "d", "e"], "group": "fast"},
        "group-fast",
    )
    assert made["wallet_id"] == schemes.group_wallet_id(key, "fast")
    await a.submit(
        "reshare",
        {"wallet": key, "threshold": 2, "parties": ["a", "b"], "group": "wide"},
        "group-wide",
    )
    if not policy:
        return engines, key, approver
    a.install_policy(_bundle(tiers_policy(approver), ("alice", admin)))
    for _ in range(100):
        if all(e.policy.policy is not None for e in engines.values()):
            break
        await asyncio.sleep(0.02)
    return engines, key, approver


@pytest.mark.parametrize("scheme", ["ecdsa-secp256k1", "ed25519"])
def test_groups_share_one_key_and_sign_apart(tmp_path: Path, scheme: str) -> None:
    async def go() -> None:
        engines, key, _approver = await _groups(tmp_path, scheme, policy=False)
        try:
            a = engines["a"]
            groups = a.groups_of(key)
            assert sorted(groups) == ["default", "fast", "wide"]
            default = groups["default"].record
            for name, held in groups.items():
                # One key, one address: the same public key and chain code in every group.
                assert held.record.public_key == default.public_key
                assert held.record.chain_code == default.chain_code
                assert held.record.key_id == key
                assert held.record.group_name == name
            assert groups["fast"].record.threshold == 2 and groups["fast"].record.parties == 3
            assert sorted(groups["fast"].ids) == ["c", "d", "e"]
            # Every member knows each group's public record (a node outside it holds no share).
            for e in engines.values():
                fast = e.wallets.get(groups["fast"].record.wallet_id)
                assert (fast.share is not None) == (e.name in ("c", "d", "e")), e.name
            # The dealers kept their DKG shares: the default group still signs.
            res = await a.submit("sign", {"wallet": key, "message": "11" * 32}, "d-1")
            assert result_ok(res) and len(res["participants"]) == 3 and res["group"] == "default"
            # Each group signs with its own parties, under the same key.
            res = await a.submit(
                "sign", {"wallet": key, "group": "fast", "message": "22" * 32}, "f-1"
            )
            assert result_ok(res) and set(res["participants"]) <= {"c", "d", "e"}
            assert res["public_key"] == default.public_key.hex()
            res = await engines["e"].submit(
                "sign", {"wallet": key, "group": "wide", "message": "33" * 32}, "w-1"
            )
            assert result_ok(res) and sorted(res["participants"]) == ["a", "b"]
            # A group's rotation leaves the others alone.
            fast_id = groups["fast"].record.wallet_id
            rotated = await a.submit("refresh", {"wallet": key, "group": "fast"}, "rot-1")
            assert rotated["wallet_id"] == fast_id and rotated["epoch"] == 2
            assert a.wallets.get(key).record.epoch == 0
            res = await a.submit("sign", {"wallet": fast_id, "message": "44" * 32}, "f-2")
            assert result_ok(res)
            # A wallet has each group once; groups are made from the default group only.
            with pytest.raises(ParameterError, match="already"):
                await a.submit(
                    "reshare",
                    {"wallet": key, "threshold": 2, "parties": ["a", "b"], "group": "fast"},
                    None,
                )
            with pytest.raises(ParameterError, match="no signing group"):
                await a.submit("sign", {"wallet": key, "group": "nope", "message": "55" * 32}, None)
        finally:
            await stop_all(engines)

    run(go())


def test_the_policy_tier_chooses_the_group_and_others_refuse(tmp_path: Path) -> None:
    async def go() -> None:
        engines, key, approver = await _groups(tmp_path, "ecdsa-secp256k1")
        try:
            a = engines["a"]
            # 1 ETH = 3,000 USD: the fast tier; the coordinator sends it to the fast group.
            res = await a.submit("sign", {"wallet": key, "transaction": _eth(1)}, "small")
            assert result_ok(res) and set(res["participants"]) <= {"c", "d", "e"}
            # 50 ETH = 150,000 USD asked of the fast group: its nodes refuse, naming the rule.
            big = {"wallet": key, "transaction": _eth(50, FRIEND, nonce=1)}
            approval = pol.sign_approval("tess", approver, approval_hash(big))
            with pytest.raises(RequestFailedError, match="'big' assigns signing group 'wide'"):
                await a.submit("sign", dict(big, group="fast", approvals=[approval]), "big-fast")
            for name in ("c", "d", "e"):
                refused = [e for e in engines[name].db.policy_events() if e["event"] == "refused"]
                assert refused and refused[-1]["rule"] == "big", name
            # Without the approval the wide group refuses too; with it (approved as the key's
            # spend, whatever group signs), the policy routes it to the wide group.
            with pytest.raises(RequestFailedError, match="big"):
                await a.submit("sign", dict(big), "big-none")
            res = await a.submit("sign", dict(big, approvals=[approval]), "big-wide")
            assert result_ok(res) and sorted(res["participants"]) == ["a", "b"]
        finally:
            await stop_all(engines)

    run(go())


def test_group_records_are_bound_to_their_name_and_key() -> None:
    record, shares = schemes.keygen("schnorr-bip340", 2, 3)
    keys = {1: b"\x01" * 32, 2: b"\x02" * 32}
    fast, fast_shares = schemes.reshare_shares(record, shares[:2], 2, keys, signing_group="fast")
    assert fast.public_key == record.public_key and fast.key_id == record.wallet_id
    assert fast.wallet_id == schemes.group_wallet_id(record.wallet_id, "fast") != record.wallet_id
    doc = fast.to_json()
    assert schemes.WalletRecord.from_json(doc) == fast
    # The group's reshare certificate binds its name: renamed, the record does not verify.
    renamed = dict(doc, signing_group=dict(doc["signing_group"], name="senior"))
    with pytest.raises(KeystoreError, match="does not verify"):
        schemes.WalletRecord.from_json(renamed)
    # A plain reshare's record cannot be relabelled a group either.
    plain, _ = schemes.reshare_shares(record, shares[:2], 2, keys)
    relabelled = dict(plain.to_json(), signing_group={"name": "fast", "fork": 0})
    with pytest.raises(KeystoreError, match="does not verify"):
        schemes.WalletRecord.from_json(relabelled)
    # The group's shares sign under the same key; a group of a group is refused.
    sig = schemes.sign(fast, fast_shares, b"\x07" * 32)
    assert schemes.verify(fast.scheme, record.public_key, b"\x07" * 32, sig)
    with pytest.raises(ParameterError, match="default group"):
        schemes.reshare_shares(fast, fast_shares, 2, keys, signing_group="other")
    with pytest.raises(ParameterError, match="not a new group"):
        schemes.reshare_shares(record, shares[:2], 2, keys, signing_group="default")
