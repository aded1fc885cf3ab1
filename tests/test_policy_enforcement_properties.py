"""`policy explain` and a node's enforcement agree, on random policies and transactions.

Hypothesis draws a policy (ordered allow/deny rules over USD ranges, destination lists,
approvals and signing groups) and an Ethereum transfer with some approvals (valid, forged or
none). Three views must agree:

- the node's enforcement (:meth:`NodePolicy.judge`, what a party runs before it signs): it
  allows, or refuses naming a rule;
- the node's explanation (:meth:`NodePolicy.explain`, ``POST /v1/policy/explain``);
- ``tmpc policy explain`` on the facts the node parsed (the library's :func:`explain`, as the
  command line runs it).

Enforcement allows exactly when the explanation allows and its group is the wallet's; a
refusal names the explanation's rule.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tmpc import policy as pol
from tmpc import schemes
from tmpc.cli.node import create_local_cluster
from tmpc.node import config as node_config
from tmpc.node.policy import NodePolicy, approval_hash
from tmpc.node.wallets import NodeWallet

ADDRESSES = [
    "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf",
    "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF",
    "0x000000000000000000000000000000000000dEaD",
]
USD = ["1000", "3000", "10000", "30000", "100000"]
GROUPS = ["default", "fast", "senior"]


class World:
    def __init__(self, root: Path) -> None:
        self.admin = pol.PolicyKey.generate()
        self.tess, self.tom = pol.PolicyKey.generate(), pol.PolicyKey.generate()
        create_local_cluster(root / "c", 2, {"admin": self.admin.public_key}, 1)
        self.node = NodePolicy(root, node_config.load_cluster(root / "c" / "a"))
        record, _ = schemes.keygen("ecdsa-secp256k1", 2, 3)
        self.wallet = NodeWallet(record, {1: "a", 2: "b", 3: "c"}, None)
        self.versions = itertools.count(1)

    def install(self, rules: list[dict[str, Any]]) -> pol.Policy:
        lines = [
            f"version = {next(self.versions)}",
            'reference_currency = "USD"',
            "[prices]",
            'ETH = "3000"',
            "[approvers.tess]",
            f'key = "{self.tess.public_key.hex()}"',
            'role = "treasury"',
            "[approvers.tom]",
            f'key = "{self.tom.public_key.hex()}"',
            'role = "treasury"',
        ]
        for k, r in enumerate(rules):
            lines += ["[[rules]]", f'name = "r{k}"', f'action = "{r["action"]}"']
            if r["action"] == "allow":
                lines.append(f'group = "{r["group"]}"')
                if r["approvals"]:
                    lines.append(f"approvals = {{ treasury = {r['approvals']} }}")
            if r["min_usd"] is not None:
                lines.append(f'min_usd = "{r["min_usd"]}"')
            if r["max_usd"] is not None:
                lines.append(f'max_usd = "{r["max_usd"]}"')
            for key in ("destinations_allow", "destinations_deny"):
                if r[key]:
                    lines.append(f"{key} = {r[key]!r}".replace("'", '"'))
        source = "\n".join(lines).encode()
        bundle = pol.sign_bundle(pol.Bundle.from_policy(source), "admin", self.admin)
        return self.node.install(bundle.to_bytes())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("enforce"))


def _rule() -> st.SearchStrategy[dict[str, Any]]:
    bounds = st.tuples(st.sampled_from([None, *USD]), st.sampled_from([None, *USD])).filter(
        lambda b: b[0] is None or b[1] is None or int(b[0]) < int(b[1])
    )
    return st.builds(
        lambda action, group, approvals, b, allow, deny: {
            "action": action, "group": group, "approvals": approvals, "min_usd": b[0],
            "max_usd": b[1], "destinations_allow": allow, "destinations_deny": deny,
        },
        st.sampled_from(["allow", "allow", "deny"]),
        st.sampled_from(GROUPS),
        st.integers(0, 2),
        bounds,
        st.lists(st.sampled_from(ADDRESSES), unique=True, max_size=2),
        st.lists(st.sampled_from(ADDRESSES), unique=True, max_size=1),
    )  # fmt: skip


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rules=st.lists(_rule(), min_size=1, max_size=4),
    eth=st.sampled_from([0, 1, 3, 10, 40, 200]),
    to=st.sampled_from(ADDRESSES),
    approvers=st.lists(st.sampled_from(["tess", "tom", "forged"]), unique=True, max_size=3),
    path=st.sampled_from([None, "m/0/1"]),
)
def test_explain_and_enforcement_agree(
    world: World, rules: list[dict[str, Any]], eth: int, to: str, approvers: list[str],
    path: str | None,
) -> None:  # fmt: skip
    policy = world.install(rules)
    record = world.wallet.record
    body: dict[str, Any] = {
        "wallet": record.wallet_id,
        "transaction": {"chain": "ethereum", "fields": {
            "chain_id": 1, "nonce": 0, "max_priority_fee_per_gas": 10**9,
            "max_fee_per_gas": 3 * 10**10, "gas": 21000, "to": to, "value": eth * 10**18,
            "data": "", "access_list": [],
        }},
    }  # fmt: skip
    if path is not None:
        body["path"] = path
    h = approval_hash(body)
    keys = {"tess": world.tess, "tom": world.tom, "forged": pol.PolicyKey.generate()}
    body["approvals"] = [
        pol.sign_approval("tom" if who == "forged" else who, keys[who], h) for who in approvers
    ]
    node_view = world.node.explain(world.wallet, body)
    # `tmpc policy explain` on the facts the node parsed, with the same approvals.
    facts = pol.Facts.from_json(node_view["facts"])
    tally = pol.count_approvals(policy, h, body["approvals"])
    cli_view = pol.explain(policy, facts, approvals=tally).to_json()
    assert (cli_view["allowed"], cli_view["rule"], cli_view["group"]) == (
        node_view["allowed"], node_view["rule"], node_view["group"]
    )  # fmt: skip
    try:
        judged = world.node.judge(world.wallet, body, velocity=False)
    except pol.PolicyRefusedError as exc:
        assert exc.rule == node_view["rule"]
        assert not node_view["allowed"] or node_view["group"] != record.group_name
        return
    assert judged is not None
    assert node_view["allowed"] and node_view["group"] == record.group_name
    assert judged.decision.rule == node_view["rule"]
