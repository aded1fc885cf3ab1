"""The signing-policy engine: file format, evaluation, approvals, signed bundles, velocity.

The fixture is issue 11's: below 10,000 USD the ``fast`` group (2-of-3), from 10,000 to
100,000 USD the ``standard`` group (3-of-5) with one ``treasury`` approval, from 100,000 USD
the ``senior`` group (4-of-7) with two, and a deny-list before them all.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from nacl.signing import VerifyKey

from tmpc.encoding import tagged_hash
from tmpc.errors import CryptoError, DecodeError, KeystoreError, ParameterError, StateError
from tmpc.policy import (
    DEFAULT_DENY,
    Bundle,
    Facts,
    Policy,
    PolicyKey,
    PolicyRefusedError,
    check_upgrade,
    count_approvals,
    evaluate,
    explain,
    parse_policy,
    request_hash,
    sign_approval,
    sign_bundle,
    verify_bundle,
)
from tmpc.policy.bundle import policy_digest
from tmpc.policy.engine import CANNOT_EVALUATE, MATCHED, NOT_MATCHED
from tmpc.policy.velocity import VelocityLedger


def key(label: str) -> PolicyKey:
    return PolicyKey(hashlib.sha256(b"tmpc-test-policy-key/" + label.encode()).digest())


APPROVERS = {
    "alice": ("treasury", key("alice")),
    "bob": ("treasury", key("bob")),
    "carol": ("treasury", key("carol")),
    "dave": ("risk", key("dave")),
}
ADMINS = {name: key(f"admin-{name}") for name in ("ann", "ben", "cat")}
ADMIN_KEYS = {name: k.public_key for name, k in ADMINS.items()}
DENIED_ETH = "0x000000000000000000000000000000000000dEaD"
DENIED_BTC = "bc1qdeniedxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
AT = datetime(2025, 3, 7, 14, 5, tzinfo=UTC)  # a Friday


def approvers_toml() -> str:
    return "".join(
        f'[approvers.{name}]\nkey = "{k.public_key.hex()}"\nrole = "{role}"\n\n'
        for name, (role, k) in APPROVERS.items()
    )


def fixture_toml(version: int = 1, extra_rules: str = "") -> str:
    return f"""\
# The issue 11 fixture: one address, three signing groups made by resharing its key.
version = {version}
reference_currency = "USD"

[prices]
BTC = "60000"
ETH = "3000"
SOL = "150"

{approvers_toml()}
[[rules]]
name = "deny-list"
action = "deny"
destinations_deny = ["{DENIED_ETH}", "{DENIED_BTC}"]

{extra_rules}
[[rules]]
name = "fast"
action = "allow"
group = "fast"            # 2-of-3
max_usd = "10000"

[[rules]]
name = "standard"
action = "allow"
group = "standard"        # 3-of-5
min_usd = "10000"
max_usd = "100000"
approvals = {{ treasury = 1 }}

[[rules]]
name = "senior"
action = "allow"
group = "senior"          # 4-of-7
min_usd = 100000
approvals = {{ treasury = 2 }}
"""


@pytest.fixture(scope="module")
def policy() -> Policy:
    return parse_policy(fixture_toml())


def facts(
    asset: str = "BTC",
    amount: str | None = "1",
    dests: tuple[str, ...] = ("bc1qrecipient",),
    *,
    chain: str | None = None,
    wallet: str = "w1",
    bare: bool = False,
    at: datetime = AT,
) -> Facts:
    if chain is None and not bare:
        chain = {"BTC": "bitcoin", "ETH": "ethereum", "SOL": "solana"}.get(asset, "ethereum")
    return Facts(
        wallet_id=wallet,
        chain=chain,
        asset=None if bare else asset,
        amount=None if amount is None else Decimal(amount),
        destinations=dests,
        bare_digest=bare,
        at=at,
    )


def approve(req: dict[str, object], *names: str) -> list[dict[str, str]]:
    h = request_hash(req)
    return [sign_approval(n, APPROVERS[n][1], h) for n in names]


REQUEST = {"wallet": "w1", "tx": "02000000...", "nonce": 7}


# --------------------------------------------------------------------------------------------
# The fixture's tiers
# --------------------------------------------------------------------------------------------


def test_5000_usd_bitcoin_spend_signs_with_the_fast_group(policy: Policy) -> None:
    d = evaluate(policy, facts("BTC", "0.08333333"))  # 4,999.9998 USD
    assert d.allowed and d.rule == "fast" and d.group == "fast"
    assert d.approvals_required == {} and d.usd == Decimal("4999.9998")
    assert "fast" in d.reason


def test_50000_usd_needs_one_treasury_approval(policy: Policy) -> None:
    f = facts("ETH", "16.6", ("0xabc",))
    d = evaluate(policy, f)
    assert not d.allowed and d.rule == "standard" and d.group is None
    assert d.approvals_required == {"treasury": 1} and d.approvals_present == {}
    assert "'standard'" in d.reason and "1 more 'treasury'" in d.reason
    tally = count_approvals(policy, request_hash(REQUEST), approve(REQUEST, "alice"))
    d = evaluate(policy, f, approvals=tally)
    assert d.allowed and d.group == "standard" and d.approvals_present == {"treasury": 1}


def test_150000_usd_ethereum_transfer_needs_the_senior_group_and_two_approvals(
    policy: Policy,
) -> None:
    f = facts("ETH", "50", ("0xabc",))
    one = count_approvals(policy, request_hash(REQUEST), approve(REQUEST, "alice"))
    d = evaluate(policy, f, approvals=one)
    assert not d.allowed and d.rule == "senior"
    assert "1 more 'treasury' approval(s) needed (1 of 2)" in d.reason
    two = count_approvals(policy, request_hash(REQUEST), approve(REQUEST, "alice", "bob"))
    d = evaluate(policy, f, approvals=two)
    assert d.allowed and d.group == "senior" and d.approvals_required == {"treasury": 2}


@pytest.mark.parametrize(
    ("asset", "amount", "rule"),
    [
        ("ETH", "3.3333", "fast"),  # 9,999.90
        ("ETH", "3.33333333333333333", "fast"),  # a hair below 10,000
        ("BTC", "0.16666666666666667", "standard"),  # a hair above 10,000: exact arithmetic
        ("SOL", "66.66666666666666666666666667", "standard"),  # 10,000.000000000000000000000
        ("ETH", "33333.33333333", "senior"),
        ("SOL", "666.666666666666666", "standard"),  # 99,999.99...
        ("ETH", "33.3333333333333334", "senior"),  # 100,000.0000000000002
        ("BTC", "0", "fast"),
    ],
)
def test_tier_boundaries_are_half_open_and_exact(
    policy: Policy, asset: str, amount: str, rule: str
) -> None:
    assert evaluate(policy, facts(asset, amount, ("x1",))).rule == rule


def test_exact_tier_boundaries(policy: Policy) -> None:
    exact = parse_policy(fixture_toml().replace('ETH = "3000"', 'ETH = "2500"'))
    assert evaluate(exact, facts("ETH", "3.9999", ("s",))).rule == "fast"
    assert evaluate(exact, facts("ETH", "4", ("s",))).rule == "standard"  # 10,000: standard
    assert evaluate(exact, facts("ETH", "39.9999", ("s",))).rule == "standard"
    assert evaluate(exact, facts("ETH", "40", ("s",))).rule == "senior"  # 100,000: senior
    assert evaluate(policy, facts("SOL", "66.666666666666666666", ("s",))).rule == "fast"
    assert evaluate(policy, facts("ETH", "3.3333333333333333334", ("s",))).rule == "standard"
    assert evaluate(policy, facts("BTC", "0.5", ("s",))).rule == "standard"  # 30,000
    assert evaluate(policy, facts("ETH", "33.333333333333333333", ("s",))).rule == "standard"
    assert evaluate(policy, facts("SOL", "666.66666666666666667", ("s",))).rule == "senior"


# --------------------------------------------------------------------------------------------
# Deny-list, default deny, unpriced assets
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asset", "dests"),
    [
        ("ETH", (DENIED_ETH,)),
        ("ETH", (DENIED_ETH.lower(),)),  # EIP-55 case does not matter
        ("ETH", (DENIED_ETH.upper().replace("0X", "0x"),)),
        ("ETH", ("0xabc", DENIED_ETH)),  # any destination listed
        ("BTC", (DENIED_BTC.upper(),)),  # bech32 is case-insensitive
    ],
)
def test_deny_listed_destination_is_refused_by_its_rule(
    policy: Policy, asset: str, dests: tuple[str, ...]
) -> None:
    for amount in ("0.001", "20", "100"):  # every tier
        tally = count_approvals(
            policy, request_hash(REQUEST), approve(REQUEST, "alice", "bob", "carol")
        )
        d = evaluate(policy, facts(asset, amount, dests), approvals=tally)
        assert not d.allowed and d.rule == "deny-list" and d.rule_index == 1
        assert d.reason.startswith("denied by rule 'deny-list'") and "destinations_deny" in d.reason


def test_base58_destinations_compare_exactly() -> None:
    pol = parse_policy(
        'version = 1\nreference_currency = "USD"\n[[rules]]\nname = "d"\naction = "deny"\n'
        'destinations_deny = ["So1anaAddr"]\n[[rules]]\nname = "a"\naction = "allow"\n'
        'group = "g"\n'
    )
    assert evaluate(pol, facts("SOL", "1", ("So1anaAddr",))).rule == "d"
    assert evaluate(pol, facts("SOL", "1", ("so1anaaddr",))).rule == "a"


def test_no_matching_rule_denies_by_default() -> None:
    pol = parse_policy(
        'version = 1\nreference_currency = "USD"\n[[rules]]\nname = "only-w2"\n'
        'action = "allow"\ngroup = "g"\nwallets = ["w2"]\n'
    )
    e = explain(pol, facts("BTC", "1"))
    assert not e.decision.allowed and e.decision.rule == DEFAULT_DENY
    assert e.decision.rule_index is None and "'default-deny'" in e.decision.reason
    assert [t.status for t in e.trace] == [NOT_MATCHED]
    assert e.trace[0].checks == ("wallet w1 is not listed",)
    empty = parse_policy('version = 1\nreference_currency = "USD"\n')
    assert evaluate(empty, facts()).rule == DEFAULT_DENY


def test_unpriced_asset_is_refused_by_a_usd_rule_not_skipped(policy: Policy) -> None:
    e = explain(policy, facts("DOGE", "1000000", ("D1",)))
    d = e.decision
    assert not d.allowed and d.rule == "fast" and d.usd is None
    assert "cannot value" in d.reason and "no price for DOGE" in d.reason
    assert [t.status for t in e.trace] == [NOT_MATCHED, CANNOT_EVALUATE]


def test_unpriced_asset_passes_rules_without_usd_conditions() -> None:
    pol = parse_policy(
        'version = 1\nreference_currency = "USD"\n[[rules]]\nname = "usdc-small"\n'
        'action = "allow"\ngroup = "g"\nassets = ["usdc"]\nmax_amount = "500"\n'
    )
    assert evaluate(pol, facts("USDC", "499.99", ("0xa",))).allowed
    assert evaluate(pol, facts("usdc", "500", ("0xa",))).rule == DEFAULT_DENY


# --------------------------------------------------------------------------------------------
# Conditions: wallets, chains, amounts, destination allow-lists, hours, days, bare digests
# --------------------------------------------------------------------------------------------

CONDITIONS = """\
version = 1
reference_currency = "USD"
[prices]
ETH = "3000"

[[rules]]
name = "office-hours"
action = "allow"
group = "g"
wallets = ["w1"]
chains = ["ethereum"]
assets = ["ETH"]
min_amount = "1"
max_amount = "10"
destinations_allow = [
    "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
]
hours = "09:00-17:00"
days = ["mon", "tue", "wed", "thu", "fri"]

[[rules]]
name = "night"
action = "allow"
group = "night"
hours = "22:00-06:00"

[[rules]]
name = "digests"
action = "allow"
group = "g"
bare_digest = true
wallets = ["w-digest"]
"""

A, B = "0x" + "a" * 40, "0x" + "B" * 40


@pytest.mark.parametrize(
    ("kw", "rule", "why"),
    [
        ({}, "office-hours", None),
        ({"wallet": "w9"}, DEFAULT_DENY, "wallet w9 is not listed"),
        ({"asset": "BTC", "chain": "ethereum"}, DEFAULT_DENY, "asset BTC is not listed"),
        ({"chain": "solana"}, DEFAULT_DENY, "chain solana is not listed"),
        ({"amount": "10"}, DEFAULT_DENY, "amount 10 ETH is not below max_amount 10"),
        ({"amount": "0.5"}, DEFAULT_DENY, "amount 0.5 ETH is below min_amount 1"),
        ({"dests": (A, "0xcc")}, DEFAULT_DENY, "destination 0xcc is not in destinations_allow"),
        ({"dests": ()}, DEFAULT_DENY, "the request has no destination"),
        (
            {"at": AT.replace(hour=17, minute=0)},
            DEFAULT_DENY,
            "time 17:00 UTC is outside 09:00-17:00",
        ),
        ({"at": AT.replace(hour=8, minute=59)}, DEFAULT_DENY, "outside 09:00-17:00"),
        ({"at": AT + timedelta(days=1)}, DEFAULT_DENY, "day sat (UTC) is not listed"),
        ({"at": AT.replace(hour=9, minute=0)}, "office-hours", None),
        ({"at": AT.replace(hour=22, minute=0)}, "night", None),
        ({"at": AT.replace(hour=21, minute=59)}, DEFAULT_DENY, "outside 22:00-06:00"),
        ({"at": AT.replace(hour=23)}, "night", None),
        ({"at": AT.replace(hour=5, minute=59)}, "night", None),
        (
            {"at": AT.replace(hour=6, minute=0)},
            DEFAULT_DENY,
            "time 06:00 UTC is outside 22:00-06:00",
        ),
        # 18:30 in UTC+2 is 16:30 UTC: the time is judged in UTC.
        (
            {"at": datetime(2025, 3, 7, 18, 30, tzinfo=timezone(timedelta(hours=2)))},
            "office-hours",
            None,
        ),
        (
            {"at": datetime(2025, 3, 7, 10, 30, tzinfo=timezone(timedelta(hours=2)))},
            DEFAULT_DENY,
            "time 08:30 UTC is outside 09:00-17:00",
        ),
    ],
)
def test_conditions(kw: dict[str, object], rule: str, why: str | None) -> None:
    pol = parse_policy(CONDITIONS)
    args: dict[str, object] = {"asset": "ETH", "amount": "2", "dests": (A, B)}
    args.update(kw)
    at = args.pop("at", AT)
    assert isinstance(at, datetime)
    f = facts(
        str(args["asset"]), str(args["amount"]), args["dests"],  # type: ignore[arg-type]
        chain=str(args.get("chain", "ethereum")), wallet=str(args.get("wallet", "w1")), at=at,
    )  # fmt: skip
    e = explain(pol, f)
    assert e.decision.rule == rule
    if why is not None:
        assert any(why in c for t in e.trace for c in t.checks), e.trace


def test_bare_digest_matches_only_rules_that_allow_it() -> None:
    pol = parse_policy(CONDITIONS)
    e = explain(pol, facts(wallet="w-digest", amount=None, dests=(), bare=True))
    assert e.decision.allowed and e.decision.rule == "digests"
    assert "does not allow them" in e.trace[0].checks[-1]
    assert "does not allow them" in e.trace[1].checks[-1]  # "night" has no condition but this
    # A bare digest has no amount and no destination: those conditions do not match it.
    pol2 = parse_policy(
        'version = 1\nreference_currency = "USD"\n[prices]\nBTC = "1"\n'
        '[[rules]]\nname = "small"\naction = "allow"\ngroup = "g"\nbare_digest = true\n'
        'max_usd = "10"\n'
        '[[rules]]\nname = "deny-dest"\naction = "deny"\nbare_digest = true\n'
        'destinations_deny = ["x"]\n'
    )
    e = explain(pol2, facts(amount=None, dests=(), bare=True))
    assert e.decision.rule == DEFAULT_DENY
    assert e.trace[0].checks[-1] == "a bare digest has no amount (min_usd/max_usd)"
    assert e.trace[1].checks[-1] == "a bare digest has no destination (destinations_deny)"


def test_facts_are_validated() -> None:
    with pytest.raises(ParameterError, match="timezone-aware"):
        facts(at=datetime(2025, 1, 1, 12, 0))
    with pytest.raises(ParameterError, match="bare digest has no amount"):
        facts(bare=True, amount="1", dests=())
    with pytest.raises(ParameterError, match="chain, an asset and an amount"):
        facts(amount=None)
    with pytest.raises(ParameterError, match="chain must be one of"):
        facts(chain="dogecoin")
    with pytest.raises(ParameterError, match="destination"):
        facts(dests=("bc1q with space",))
    with pytest.raises(ParameterError, match="amount"):
        Facts("w", "bitcoin", "BTC", Decimal("-1"), (), False, AT)
    with pytest.raises(ParameterError, match="amount"):
        Facts("w", "bitcoin", "BTC", Decimal("NaN"), (), False, AT)
    f = Facts.from_json(
        {"wallet": "w", "chain": "bitcoin", "asset": "btc", "amount": "0.5",
         "destinations": ["bc1q"], "at": "2025-03-07T16:05:00+02:00"}
    )  # fmt: skip
    assert f.asset == "BTC" and f.at == datetime(2025, 3, 7, 14, 5, tzinfo=UTC)
    assert Facts.from_json(f.to_json()) == f
    with pytest.raises(ParameterError, match="float"):
        Facts.from_json({"wallet": "w", "chain": "bitcoin", "asset": "BTC", "amount": 0.5,
                         "at": "2025-03-07T14:05:00Z"})  # fmt: skip
    with pytest.raises(ParameterError, match="unknown key 'amout'"):
        Facts.from_json({"wallet": "w", "amout": "1", "at": "2025-03-07T14:05:00Z"})
    with pytest.raises(ParameterError, match="time zone"):
        Facts.from_json({"wallet": "w", "bare_digest": True, "at": "2025-03-07T14:05:00"})


# --------------------------------------------------------------------------------------------
# Approvals
# --------------------------------------------------------------------------------------------


def test_forged_and_unknown_approvals_are_not_counted_and_are_named(policy: Policy) -> None:
    h = request_hash(REQUEST)
    forged = sign_approval("bob", key("not-bob"), h)  # bob's name, another key
    unknown = sign_approval("mallory", key("mallory"), h)
    other_request = approve({**REQUEST, "nonce": 8}, "carol")[0]  # signs another request
    tally = count_approvals(
        policy, h, [*approve(REQUEST, "alice"), forged, unknown, other_request, "junk"]
    )
    assert dict(tally) == {"treasury": 1} and tally.approvers == ("alice",)
    assert len(tally.rejected) == 4
    d = evaluate(policy, facts("ETH", "50", ("0xabc",)), approvals=tally)
    assert not d.allowed and d.rule == "senior"
    assert "approval by 'bob': signature does not verify (forged)" in d.reason
    assert "approval by 'mallory': unknown approver" in d.reason
    assert "approval by 'carol'" in d.reason and "approval #5: malformed" in d.reason


def test_an_approver_counts_once(policy: Policy) -> None:
    h = request_hash(REQUEST)
    tally = count_approvals(policy, h, approve(REQUEST, "alice", "alice", "dave"))
    assert dict(tally) == {"treasury": 1, "risk": 1}
    d = evaluate(policy, facts("ETH", "50", ("0xabc",)), approvals=tally)
    assert not d.allowed and "1 more 'treasury'" in d.reason


def test_missing_approvals_refuse_naming_the_rule_without_falling_through(
    policy: Policy,
) -> None:
    e = explain(policy, facts("BTC", "1", ("bc1qx",)))  # 60,000 USD
    assert e.decision.rule == "standard" and not e.decision.allowed
    assert e.decision.reason == (
        "refused by rule 'standard': 1 more 'treasury' approval(s) needed (0 of 1)"
    )
    assert [t.rule for t in e.trace] == ["deny-list", "fast", "standard"]  # senior not reached
    assert [t.status for t in e.trace] == [NOT_MATCHED, NOT_MATCHED, MATCHED]


def test_request_hash_is_canonical() -> None:
    a = request_hash({"b": [1, {"y": "é", "x": None}], "a": True})
    b = request_hash(json.loads('{"a": true, "b": [1, {"x": null, "y": "\\u00e9"}]}'))
    assert a == b and len(a) == 32
    assert a != request_hash({"a": True, "b": [1, {"x": None, "y": "e"}]})
    with pytest.raises(ParameterError, match="float"):
        request_hash({"amount": 1.5})
    with pytest.raises(ParameterError):
        count_approvals(parse_policy(fixture_toml()), b"\x00" * 31, [])


# --------------------------------------------------------------------------------------------
# Signed bundles
# --------------------------------------------------------------------------------------------


def signed(text: str, *names: str) -> Bundle:
    b = Bundle.from_policy(text.encode())
    for n in names:
        b = sign_bundle(b, n, ADMINS[n])
    return b


def test_bundle_signed_by_a_quorum_verifies() -> None:
    b = signed(fixture_toml(), "ann", "cat")
    pol = verify_bundle(b, ADMIN_KEYS, 2)
    assert pol.version == 1 and [r.name for r in pol.rules][-1] == "senior"
    # The same from the bundle file's bytes; digest as documented.
    assert verify_bundle(b.to_bytes(), ADMIN_KEYS, 2).source == fixture_toml().encode()
    # Each signature is over the documented digest of the TOML bytes.
    digest = tagged_hash("tmpc/policy/v1", hashlib.sha256(fixture_toml().encode()).digest())
    assert policy_digest(pol.source) == digest
    VerifyKey(ADMIN_KEYS["cat"]).verify(digest, b.signatures["cat"])


def test_unsigned_policy_is_refused() -> None:
    with pytest.raises(CryptoError, match="not signed"):
        verify_bundle(signed(fixture_toml()), ADMIN_KEYS, 1)


@pytest.mark.parametrize("where", [0, 40, -2])
def test_tampered_policy_is_refused(where: int) -> None:
    b = signed(fixture_toml(), "ann", "ben")
    text = b.policy
    pos = where % len(text)
    changed = text[:pos] + ("X" if text[pos] != "X" else "Y") + text[pos + 1 :]
    doc = {**b.to_json(), "policy": changed}
    with pytest.raises(CryptoError, match="does not verify"):
        verify_bundle(doc, ADMIN_KEYS, 2)
    # A bigger amount, still a valid policy: refused all the same.
    doc = {**b.to_json(), "policy": text.replace('max_usd = "10000"', 'max_usd = "99999"')}
    with pytest.raises(CryptoError, match="does not verify"):
        verify_bundle(doc, ADMIN_KEYS, 2)


def test_unknown_admin_and_too_few_signatures_are_refused() -> None:
    b = signed(fixture_toml(), "ann")
    with pytest.raises(CryptoError, match="1 administrator signature"):
        verify_bundle(b, ADMIN_KEYS, 2)
    intruder = sign_bundle(b, "eve", key("eve"))
    with pytest.raises(CryptoError, match="'eve', not a policy administrator"):
        verify_bundle(intruder, ADMIN_KEYS, 1)
    # An administrator's name with another key's signature.
    fake = sign_bundle(b, "ben", key("eve"))
    with pytest.raises(CryptoError, match="'ben' does not verify"):
        verify_bundle(fake, ADMIN_KEYS, 2)
    with pytest.raises(ParameterError, match="quorum"):
        verify_bundle(b, ADMIN_KEYS, 4)
    with pytest.raises(ParameterError, match="same key"):
        verify_bundle(b, {"ann": ADMIN_KEYS["ann"], "twin": ADMIN_KEYS["ann"]}, 2)
    with pytest.raises(ParameterError, match="already holds a signature by 'ann'"):
        sign_bundle(b, "ann", ADMINS["ann"])


def test_malformed_bundles_are_refused() -> None:
    good = signed(fixture_toml(), "ann").to_json()
    for doc in (
        {**good, "format": "other"},
        {**good, "version": 2},
        {**good, "extra": 1},
        {**good, "signatures": {"ann": "00"}},
        {**good, "policy": 5},
    ):
        with pytest.raises(DecodeError):
            verify_bundle(doc, ADMIN_KEYS, 1)
    with pytest.raises(DecodeError):
        verify_bundle(b"not json", ADMIN_KEYS, 1)


def test_older_or_same_policy_version_is_refused() -> None:
    v3 = verify_bundle(signed(fixture_toml(version=3), "ann", "ben"), ADMIN_KEYS, 2)
    check_upgrade(None, v3)
    check_upgrade(2, v3)
    for installed in (3, 4):
        with pytest.raises(ParameterError, match="no rollback"):
            check_upgrade(installed, v3)


# --------------------------------------------------------------------------------------------
# The policy file is validated strictly
# --------------------------------------------------------------------------------------------

BASE = 'version = 1\nreference_currency = "USD"\n'
RULE = '[[rules]]\nname = "r"\naction = "allow"\ngroup = "g"\n'


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        (BASE + "colour = 1\n", ParameterError, "unknown key 'colour'"),
        (BASE + RULE + 'max_used = "1"\n', ParameterError, "rule 'r': unknown key 'max_used'"),
        (BASE + RULE + "max_usd = 10.5\n", ParameterError, "max_usd must be a decimal string"),
        (BASE + '[prices]\nBTC = 6e4\n', ParameterError, "prices.BTC must be a decimal"),
        (BASE + '[prices]\nBTC = "0"\n', ParameterError, "greater than zero"),
        (BASE + RULE + 'max_usd = "1e5"\n', ParameterError, "decimal number"),
        (BASE + RULE + 'max_usd = "-5"\n', ParameterError, "decimal number"),
        (BASE + RULE + 'min_usd = "5"\nmax_usd = "5"\n', ParameterError, "below max_usd"),
        (BASE + RULE + RULE, ParameterError, "two rules have this name"),
        (BASE + RULE.replace('"r"', '"default-deny"'), ParameterError, "reserved"),
        (BASE + '[[rules]]\nname = "d"\naction = "deny"\ngroup = "g"\n', ParameterError,
         "'group' is for allow rules"),
        (BASE + '[[rules]]\nname = "a"\naction = "allow"\n', ParameterError, "needs 'group'"),
        (BASE + '[[rules]]\nname = "a"\naction = "maybe"\ngroup = "g"\n', ParameterError,
         "action must be"),
        (BASE + RULE + "approvals = { treasury = 1 }\n", ParameterError,
         "requires 1 'treasury' approval"),
        (BASE + RULE + 'max_amount = "5"\n', ParameterError, "need an 'assets' list"),
        (BASE + RULE + 'hours = "9-17"\n', ParameterError, "HH:MM-HH:MM"),
        (BASE + RULE + 'hours = "10:00-10:00"\n', ParameterError, "empty or the whole day"),
        (BASE + RULE + 'days = ["monday"]\n', ParameterError, "'monday' is not one of"),
        (BASE + RULE + "wallets = []\n", ParameterError, "empty"),
        (BASE + RULE + 'chains = ["dogecoin"]\n', ParameterError, "'dogecoin' is not one of"),
        (BASE + RULE + 'bare_digest = "yes"\n', ParameterError, "true or false"),
        (BASE + RULE + 'velocity = { window = "1w", max_count = 1 }\n', ParameterError, "window"),
        (BASE + RULE + 'velocity = { window = "1h" }\n', ParameterError, "max_usd, max_count"),
        (BASE + RULE + 'velocity = { window = "1h", max_count = 1, burst = 2 }\n',
         ParameterError, "velocity: unknown key 'burst'"),
        ('version = 0\nreference_currency = "USD"\n', ParameterError, "version must be"),
        ('version = true\nreference_currency = "USD"\n', ParameterError, "version must be"),
        ('version = 1\nreference_currency = "EUR"\n', ParameterError, "reference_currency"),
        ("version = 1\n", ParameterError, "reference_currency"),
        (BASE + '[approvers.x]\nkey = "00"\nrole = "r"\n', ParameterError, "64 hex"),
        (BASE + f'[approvers.x]\nkey = "{"00" * 32}"\nrole = "r"\n', ParameterError,
         "not a valid Ed25519"),
        (BASE + f'[approvers.x]\nkey = "{key("x").public_key.hex()}"\nrole = "r"\nmail = "a"\n',
         ParameterError, "approver 'x': unknown key 'mail'"),
        (BASE + "".join(f'[approvers.{n}]\nkey = "{key("x").public_key.hex()}"\nrole = "r"\n'
                        for n in ("x", "y")), ParameterError, "have the same key"),
        (BASE + "[rules]\n", ParameterError, "array of tables"),
        ("version = 1\nversion = 2\n", DecodeError, "not valid TOML"),
        (b"version = 1\n\xff", DecodeError, "not UTF-8"),
    ],
)  # fmt: skip
def test_invalid_policies_are_refused_with_one_line(
    text: str | bytes, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as info:
        parse_policy(text)
    assert "\n" not in str(info.value)


def test_fixture_parses_into_the_documented_model(policy: Policy) -> None:
    assert policy.prices == {"BTC": Decimal(60000), "ETH": Decimal(3000), "SOL": Decimal(150)}
    assert [(r.name, r.action, r.group) for r in policy.rules] == [
        ("deny-list", "deny", None),
        ("fast", "allow", "fast"),
        ("standard", "allow", "standard"),
        ("senior", "allow", "senior"),
    ]
    assert policy.rule("senior").min_usd == Decimal(100000)
    assert policy.roles == {"treasury", "risk"}


def test_docs_example_parses() -> None:
    """The complete example of docs/policy.md is a valid policy with the documented outcome."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "policy.md").read_text()
    start = doc.index("```toml\n# example: the issue 11 fixture")
    text = doc[start + len("```toml\n") : doc.index("```", start + 7)]
    pol = parse_policy(text)
    assert [r.name for r in pol.rules] == [
        "deny-list", "fast", "standard", "senior", "digests",
    ]  # fmt: skip
    # The outcomes the page shows.
    d = evaluate(pol, facts("BTC", "0.08", ("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",)))
    assert d.reason == "allowed by rule 'fast': signing group 'fast'"
    d = evaluate(pol, facts("ETH", "50", ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",)))
    assert d.reason == "refused by rule 'senior': 2 more 'treasury' approval(s) needed (0 of 2)"
    d = evaluate(pol, facts("ETH", "1", ("0x000000000000000000000000000000000000dead",)))
    assert d.rule == "deny-list" and d.reason in doc
    saturday = datetime(2025, 3, 8, 10, 0, tzinfo=UTC)
    d = evaluate(pol, facts(chain="solana", amount=None, dests=(), bare=True, at=saturday))
    assert d.reason == "denied by rule 'default-deny': no rule matches (5 rule(s) considered)"
    for text in ("refused by rule 'senior': 2 more", "denied by rule 'default-deny'"):
        assert text in doc


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


def test_key_file_round_trip_and_corruption() -> None:
    k = PolicyKey.generate()
    assert PolicyKey.from_file_bytes(k.to_file_bytes()) == k
    assert k.seed.hex() not in repr(k)
    doc = json.loads(k.to_file_bytes())
    doc["public_key"] = key("other").public_key.hex()
    with pytest.raises(KeystoreError, match="corrupt"):
        PolicyKey.from_file_bytes(json.dumps(doc).encode())
    with pytest.raises(KeystoreError, match="not a tmpc policy key"):
        PolicyKey.from_file_bytes(b'{"format": "x"}')


# --------------------------------------------------------------------------------------------
# Velocity
# --------------------------------------------------------------------------------------------

VELOCITY = (
    BASE
    + '[prices]\nETH = "3000"\n'
    + '[[rules]]\nname = "capped"\naction = "allow"\ngroup = "fast"\nmax_usd = "10000"\n'
    + 'velocity = { window = "24h", max_usd = "20000", max_count = 3 }\n'
    + '[[rules]]\nname = "rest"\naction = "allow"\ngroup = "other"\n'
)


def test_velocity_trips_on_the_nth_request_and_does_not_fall_through(tmp_path: Path) -> None:
    pol = parse_policy(VELOCITY)
    with VelocityLedger(tmp_path / "velocity.db") as ledger:
        for i in range(3):
            f = facts("ETH", "1", ("0xa",), at=AT + timedelta(minutes=i))
            d = evaluate(pol, f, velocity=ledger)
            assert d.allowed and d.rule == "capped", d.reason
            rid = ledger.reserve_for(f, d)
            assert rid is not None
            ledger.commit(rid)
        f4 = facts("ETH", "1", ("0xa",), at=AT + timedelta(minutes=3))
        d = evaluate(pol, f4, velocity=ledger)
        assert not d.allowed and d.rule == "capped"  # not "rest": no fall-through
        assert "velocity limit" in d.reason and "max_count 3" in d.reason
        with pytest.raises(PolicyRefusedError, match="'capped'") as info:
            ledger.reserve("w1", "capped", Decimal(3000), 86400, Decimal(20000), 3, f4.at)
        assert info.value.rule == "capped"
        # Another wallet has its own window; the window rolls.
        assert evaluate(pol, facts("ETH", "1", ("0xa",), wallet="w2"), velocity=ledger).allowed
        later = facts("ETH", "1", ("0xa",), at=AT + timedelta(hours=24, seconds=1))
        assert evaluate(pol, later, velocity=ledger).allowed


def test_velocity_sum_limit(tmp_path: Path) -> None:
    pol = parse_policy(VELOCITY)
    with VelocityLedger(tmp_path / "velocity.db") as ledger:
        f = facts("ETH", "3", ("0xa",))  # 9,000 USD
        for _ in range(2):
            d = evaluate(pol, f, velocity=ledger)
            assert d.allowed
            ledger.reserve_for(f, d)
        d = evaluate(pol, f, velocity=ledger)  # 18,000 + 9,000 > 20,000
        assert not d.allowed and "over max_usd 20000" in d.reason and d.rule == "capped"
        small = facts("ETH", "0.6", ("0xa",))  # 1,800: 19,800 <= 20,000
        d = evaluate(pol, small, velocity=ledger)
        assert d.allowed
        assert ledger.usage("w1", "capped", 86400, AT) == (Decimal(18000), 2)


def test_release_commit_and_expiry(tmp_path: Path) -> None:
    with VelocityLedger(tmp_path / "v.db") as ledger:
        args = ("w", "r", Decimal(1), 60, None, 2)
        r1 = ledger.reserve(*args, AT)
        r2 = ledger.reserve(*args, AT)
        with pytest.raises(PolicyRefusedError):
            ledger.reserve(*args, AT)
        assert ledger.release(r1) and not ledger.release(r1)  # the session failed
        r3 = ledger.reserve(*args, AT)
        ledger.commit(r2)
        ledger.commit(r2)  # idempotent
        with pytest.raises(StateError, match="committed"):
            ledger.release(r2)
        with pytest.raises(StateError, match="unknown or was released"):
            ledger.commit(r1)
        assert ledger.usage("w", "r", 60, AT) == (Decimal(2), 2)
        # 60 s later both entries have left the window.
        assert ledger.usage("w", "r", 60, AT + timedelta(seconds=60)) == (Decimal(0), 0)
        ledger.reserve(*args, AT + timedelta(seconds=60))
        assert ledger.prune(AT) == 2 and r3
        with pytest.raises(ParameterError):
            ledger.reserve("w", "r", Decimal(1), 60, None, None, AT)
        with pytest.raises(PolicyRefusedError, match="cannot be valued"):
            ledger.reserve("w", "r", None, 60, Decimal(5), None, AT)


@pytest.mark.parametrize("limit", ["count", "usd"])
def test_concurrent_reservations_cannot_overshoot(tmp_path: Path, limit: str) -> None:
    path, n, k = tmp_path / "v.db", 24, 5
    VelocityLedger(path).close()
    barrier = threading.Barrier(n)
    won: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        with VelocityLedger(path) as ledger:  # one connection per thread
            barrier.wait()
            try:
                if limit == "count":
                    rid = ledger.reserve("w", "r", Decimal(100), 3600, None, k, AT)
                else:
                    rid = ledger.reserve("w", "r", Decimal(100), 3600, Decimal(100 * k), None, AT)
            except PolicyRefusedError as exc:
                with lock:
                    refused.append(exc.rule)
                return
            with lock:
                won.append(rid)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == k and len(set(won)) == k
    assert refused == ["r"] * (n - k)
    with VelocityLedger(path) as ledger:
        assert ledger.usage("w", "r", 3600, AT) == (Decimal(100 * k), k)


def _reserve_in_process(path: str, tries: int) -> int:
    got = 0
    with VelocityLedger(Path(path)) as ledger:
        for _ in range(tries):
            try:
                ledger.reserve("w", "r", None, 3600, None, 7, AT)
                got += 1
            except PolicyRefusedError:
                pass
    return got


def test_concurrent_processes_cannot_overshoot(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    VelocityLedger(path).close()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        got = pool.starmap(_reserve_in_process, [(str(path), 5)] * 4)
    assert sum(got) == 7
