"""Properties of the policy engine on random policies and requests (hypothesis).

- ``evaluate`` and ``explain`` agree (one code path, checked anyway);
- the decision's rule is the first rule of the trace that is not "not matched", every rule
  before it is "not matched", and no rule after it was considered;
- no match denies (``default-deny``, every rule considered);
- the outcome equals an independent oracle written here from the documented semantics, on the
  raw rule tables (not on the parsed :class:`Rule` objects).
"""

from __future__ import annotations

import decimal
import hashlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tmpc.policy import DEFAULT_DENY, Facts, PolicyKey, evaluate, explain, parse_policy
from tmpc.policy.engine import CANNOT_EVALUATE, MATCHED, NOT_MATCHED

CHAINS = ["bitcoin", "ethereum", "solana"]
ASSETS = ["BTC", "ETH", "SOL", "DOGE"]  # DOGE is never priced
WALLETS = ["w1", "w2", "w3"]
# The same address in two cases (Ethereum, bech32: equal), and a base58 pair (different).
DESTINATIONS = [
    "0x" + "ab" * 20,
    "0x" + "AB" * 20,
    "bc1qzq2n0yrf2493p83kkfjhx0wlh",
    "BC1QZQ2N0YRF2493P83KKFJHX0WLH",
    "So1anaAddr",
    "so1anaaddr",
    "0x" + "12" * 20,
]
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
APPROVERS = {"alice": "treasury", "bob": "treasury", "carol": "risk", "dave": "risk"}
PUBKEYS = {
    n: PolicyKey(hashlib.sha256(b"prop/" + n.encode()).digest()).public_key.hex() for n in APPROVERS
}
WINDOWS = {"30m": 1800, "24h": 86_400, "7d": 604_800}
# The oracle's own exact arithmetic (Python's default context rounds to 28 digits).
EXACT = decimal.Context(prec=400)
ORACLE_STATUS = {"yes": MATCHED, "no": NOT_MATCHED, "unknown": CANNOT_EVALUATE}


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return json.dumps(value)  # an integer, or a basic string (ASCII here)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def to_toml(prices: dict[str, str], rules: list[dict[str, Any]]) -> str:
    out = ["version = 1", 'reference_currency = "USD"', "", "[prices]"]
    out += [f"{k} = {_toml(v)}" for k, v in prices.items()]
    for name, role in APPROVERS.items():
        out += ["", f"[approvers.{name}]", f'key = "{PUBKEYS[name]}"', f'role = "{role}"']
    for r in rules:
        out += ["", "[[rules]]"] + [f"{k} = {_toml(v)}" for k, v in r.items()]
    return "\n".join(out) + "\n"


def _amount_text(d: Decimal) -> str:
    return format(abs(d), "f")


def mostly(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``common`` three times in four, ``rare`` otherwise."""
    return st.integers(0, 3).flatmap(lambda i: rare if i == 0 else common)


# Small pools of round values, and prices that divide them, make a value fall exactly on a
# boundary often (so the half-open ranges are tested), with an arbitrary decimal now and then.
amounts = mostly(
    st.sampled_from(
        [Decimal(x) for x in ("0", "0.5", "1", "2", "4", "10", "25", "40", "100", "250")]
    ),
    st.decimals(min_value=0, max_value=200, places=2).map(abs),
)
usd_amounts = mostly(
    st.sampled_from([Decimal(x) for x in ("0", "1", "10", "40", "100", "1000", "10000")]),
    st.decimals(min_value=0, max_value=100_000, places=0).map(abs),
)
prices_pool = mostly(
    st.sampled_from(["0.5", "1", "2", "2.5", "4", "10", "40"]),
    st.decimals(min_value=1, max_value=70_000, places=2).map(lambda d: _amount_text(d)),
)


@st.composite
def ranges(draw: st.DrawFn, values: st.SearchStrategy[Decimal]) -> tuple[str | None, str | None]:
    lo = draw(st.none() | values)
    hi = draw(st.none() | values)
    if lo is not None and hi is not None and lo >= hi:
        return _amount_text(lo), None
    return (
        None if lo is None else _amount_text(lo),
        None if hi is None else _amount_text(hi),
    )


@st.composite
def rule_tables(draw: st.DrawFn, index: int) -> dict[str, Any]:
    action = draw(st.sampled_from(["allow", "allow", "deny"]))
    r: dict[str, Any] = {"name": f"r{index}", "action": action}
    if action == "allow":
        r["group"] = draw(st.sampled_from(["fast", "standard", "senior"]))
        approvals = draw(
            st.dictionaries(st.sampled_from(["treasury", "risk"]), st.integers(1, 2), max_size=2)
        )
        if approvals:
            r["approvals"] = approvals
        if draw(st.booleans()):
            v: dict[str, Any] = {"window": draw(st.sampled_from(list(WINDOWS)))}
            if draw(st.integers(0, 2)) > 0:
                v["max_usd"] = _amount_text(draw(usd_amounts))
            if draw(st.booleans()) or "max_usd" not in v:
                v["max_count"] = draw(st.integers(1, 4))
            if v.get("max_usd") == "0":
                v["max_usd"] = "1"
            r["velocity"] = v

    def maybe_list(key: str, pool: list[str], one_in: int = 5) -> None:
        if draw(st.integers(1, one_in)) == 1:
            r[key] = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))

    maybe_list("wallets", WALLETS)
    maybe_list("chains", CHAINS)
    maybe_list("assets", ASSETS)
    lo, hi = draw(ranges(usd_amounts))
    if draw(st.integers(0, 2)) == 0:
        if lo is not None:
            r["min_usd"] = lo
        if hi is not None:
            r["max_usd"] = hi
    if "assets" in r and draw(st.booleans()):
        lo, hi = draw(ranges(amounts))
        if lo is not None:
            r["min_amount"] = lo
        if hi is not None:
            r["max_amount"] = hi
    maybe_list("destinations_allow", DESTINATIONS)
    maybe_list("destinations_deny", DESTINATIONS, 3 if action == "deny" else 12)
    if draw(st.integers(0, 2)) == 0:
        # Three-hour steps, so a request's time often falls on a boundary.
        start, end = draw(st.tuples(st.integers(0, 7), st.integers(1, 8)))
        if start != end % 8 and not (start == 0 and end == 8):
            r["hours"] = f"{start * 3:02d}:00-{end * 3:02d}:00"
    maybe_list("days", DAYS)
    if draw(st.integers(0, 2)) == 0:
        r["bare_digest"] = True
    return r


@st.composite
def policies(draw: st.DrawFn) -> tuple[dict[str, str], list[dict[str, Any]]]:
    prices = {a: draw(prices_pool) for a in ASSETS[:3] if draw(st.integers(0, 3)) > 0}
    n = draw(st.integers(0, 7))
    return prices, [draw(rule_tables(i)) for i in range(n)]


def _boundaries(prices: dict[str, str], rules: list[dict[str, Any]], asset: str) -> list[Decimal]:
    """Amounts of ``asset`` that fall exactly on some rule's boundary (USD or units)."""
    out = []
    price = prices.get(asset.upper())
    for r in rules:
        for key in ("min_amount", "max_amount"):
            if key in r:
                out.append(Decimal(r[key]))
        for key in ("min_usd", "max_usd"):
            if key in r and price is not None:
                amount = EXACT.divide(Decimal(r[key]), Decimal(price)).normalize()
                short = len(amount.as_tuple().digits) <= 40  # a 400-digit quotient is inexact
                if short and EXACT.multiply(amount, Decimal(price)) == Decimal(r[key]):
                    out.append(amount.normalize())
    return out


@st.composite
def requests(draw: st.DrawFn, prices: dict[str, str], rules: list[dict[str, Any]]) -> Facts:
    """A request, often aimed at one of ``rules``: inside its lists, on the boundaries of its
    ranges and hours, listing its destinations in another case. Aimed requests reach the
    half-open ranges, the case rules and the limits; the others, everything else."""
    target: dict[str, Any] = (
        draw(st.sampled_from(rules)) if rules and draw(st.integers(0, 3)) > 0 else {}
    )

    def pick(key: str, pool: list[Any]) -> Any:
        if key in target and draw(st.integers(0, 3)) > 0:
            return draw(st.sampled_from(target[key]))
        return draw(st.sampled_from(pool))

    bare = draw(st.integers(0, 5)) == 0
    edges = [
        m
        for t in target.get("hours", "").split("-")
        if t
        for m in (_minutes(t) % 1440, (_minutes(t) - 1) % 1440)
    ]
    minute_of_day = draw(
        mostly(st.sampled_from(edges), st.integers(0, 1439)) if edges else st.integers(0, 1439)
    )
    day = DAYS.index(pick("days", DAYS))
    at = datetime(2025, 3, 3, tzinfo=UTC) + timedelta(days=day, minutes=minute_of_day)
    wallet = pick("wallets", WALLETS)
    if bare:
        chain = draw(st.none() | st.sampled_from(CHAINS))
        return Facts(wallet, chain, None, None, (), True, at)
    asset = pick("assets", [*ASSETS, "btc"])
    amount_edges = _boundaries(prices, [target] if target else [], asset)
    amount = draw(mostly(st.sampled_from(amount_edges), amounts) if amount_edges else amounts)
    listed = target.get("destinations_allow", []) + target.get("destinations_deny", [])
    pool = sorted({*DESTINATIONS, *listed, *(d.swapcase() for d in listed)})
    if listed and draw(st.integers(0, 3)) > 0:
        pool = sorted({*listed, *(d.swapcase() for d in listed)})
    return Facts(
        wallet_id=wallet,
        chain=pick("chains", CHAINS),
        asset=asset,
        amount=amount,
        destinations=tuple(draw(st.lists(st.sampled_from(pool), max_size=3))),
        bare_digest=False,
        at=at,
    )


@st.composite
def situations(
    draw: st.DrawFn, prices: dict[str, str], rules: list[dict[str, Any]]
) -> tuple[Facts, dict[str, int], tuple[Decimal, int]]:
    """A request under ``rules``, the approvals it carries (often enough for any rule) and the
    velocity usage so far (often exactly at a rule's limit)."""
    facts = draw(requests(prices, rules))
    present = draw(
        st.just({"treasury": 2, "risk": 2})
        | st.dictionaries(st.sampled_from(["treasury", "risk"]), st.integers(0, 2))
    )
    usd = None
    if facts.amount is not None and facts.asset in prices:
        usd = EXACT.multiply(facts.amount, Decimal(prices[facts.asset]))
    near_usd = [
        EXACT.subtract(Decimal(r["velocity"]["max_usd"]), usd)
        for r in rules
        if usd is not None and "max_usd" in r.get("velocity", {})
    ]
    near_usd = [u for u in near_usd if u >= 0]
    used_usd = draw(mostly(st.sampled_from(near_usd), usd_amounts) if near_usd else usd_amounts)
    return facts, present, (used_usd, draw(st.integers(0, 4)))


class FakeVelocity:
    """Usage so far: the same for every (wallet, rule, window)."""

    def __init__(self, used_usd: Decimal, used_count: int) -> None:
        self.used = (used_usd, used_count)

    def usage(self, wallet_id: str, rule: str, window_s: int, now: datetime) -> tuple[Decimal, int]:
        return self.used


# --------------------------------------------------------------------------------------------
# The oracle: the documented semantics, on the raw tables
# --------------------------------------------------------------------------------------------


def _norm(chain: str | None, d: str) -> str:
    if chain == "ethereum" and d.lower().startswith("0x") and len(d) == 42:
        return d.lower()
    if chain == "bitcoin" and d.lower().startswith("bc1") and d in (d.lower(), d.upper()):
        return d.lower()
    return d


def _minutes(text: str) -> int:
    h, m = text.split(":")
    return int(h) * 60 + int(m)


def oracle_status(r: dict[str, Any], f: Facts, prices: dict[str, str]) -> str:
    """ "yes", "no" or "unknown" (needs a price the policy does not have)."""
    bare = f.bare_digest
    if bare and not r.get("bare_digest", False):
        return "no"
    if "wallets" in r and f.wallet_id not in r["wallets"]:
        return "no"
    if "chains" in r and f.chain not in r["chains"]:
        return "no"
    if "assets" in r and f.asset not in r["assets"]:
        return "no"
    if "min_amount" in r or "max_amount" in r:
        if f.amount is None:
            return "no"
        if "min_amount" in r and f.amount < Decimal(r["min_amount"]):
            return "no"
        if "max_amount" in r and f.amount >= Decimal(r["max_amount"]):
            return "no"
    if "destinations_allow" in r:
        listed = {_norm(f.chain, d) for d in r["destinations_allow"]}
        if bare or not f.destinations:
            return "no"
        if any(_norm(f.chain, d) not in listed for d in f.destinations):
            return "no"
    if "destinations_deny" in r:
        listed = {_norm(f.chain, d) for d in r["destinations_deny"]}
        if not any(_norm(f.chain, d) in listed for d in f.destinations):
            return "no"
    if "hours" in r:
        start, end = (_minutes(t) for t in r["hours"].split("-"))
        now = f.at.hour * 60 + f.at.minute
        inside = start <= now < end if start < end else (now >= start or now < end)
        if not inside:
            return "no"
    if "days" in r and DAYS[f.at.weekday()] not in r["days"]:
        return "no"
    if "min_usd" in r or "max_usd" in r:
        if f.amount is None:
            return "no"
        if f.asset not in prices:
            return "unknown"
        usd = EXACT.multiply(f.amount, Decimal(prices[f.asset]))
        if "min_usd" in r and usd < Decimal(r["min_usd"]):
            return "no"
        if "max_usd" in r and usd >= Decimal(r["max_usd"]):
            return "no"
    return "yes"


def oracle_allowed(
    r: dict[str, Any],
    f: Facts,
    prices: dict[str, str],
    present: dict[str, int],
    used: tuple[Decimal, int],
) -> bool:
    if r["action"] == "deny":
        return False
    if any(present.get(role, 0) < n for role, n in r.get("approvals", {}).items()):
        return False
    v = r.get("velocity")
    if v is not None:
        if "max_count" in v and used[1] + 1 > v["max_count"]:
            return False
        if "max_usd" in v:
            if f.amount is None or f.asset not in prices:
                return False
            usd = EXACT.multiply(f.amount, Decimal(prices[f.asset]))
            if EXACT.add(used[0], usd) > Decimal(v["max_usd"]):
                return False
    return True


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pol=policies(), data=st.data())
def test_explain_and_evaluate_agree_and_follow_the_semantics(
    pol: tuple[dict[str, str], list[dict[str, Any]]], data: st.DataObject
) -> None:
    prices, rules = pol
    facts, present, used = data.draw(situations(prices, rules))
    policy = parse_policy(to_toml(prices, rules))
    view = FakeVelocity(*used)
    e = explain(policy, facts, approvals=present, velocity=view)
    d = evaluate(policy, facts, approvals=present, velocity=view)

    # One code path: the same decision.
    assert d == e.decision

    # The trace: rules in order, every one before the decider not matched.
    assert [t.index for t in e.trace] == list(range(1, len(e.trace) + 1))
    assert [t.rule for t in e.trace] == [r["name"] for r in rules[: len(e.trace)]]
    assert all(t.status == NOT_MATCHED for t in e.trace[:-1])
    assert all(t.checks for t in e.trace)
    if d.rule == DEFAULT_DENY:
        assert not d.allowed and d.group is None and d.rule_index is None
        assert len(e.trace) == len(rules)
        assert all(t.status == NOT_MATCHED for t in e.trace)
    else:
        assert e.trace[-1].rule == d.rule and e.trace[-1].status != NOT_MATCHED
        assert d.rule_index == len(e.trace)
    assert f"rule {d.rule!r}" in d.reason and "\n" not in d.reason
    assert d.group is None or d.allowed

    # Each rule alone (a policy of that rule only) is judged as the oracle judges it, on this
    # request and on one aimed at the rule (its lists, boundaries and limits).
    for r in rules:
        alone = parse_policy(to_toml(prices, [r]))
        for f, p, u in (
            (facts, present, used),
            data.draw(situations(prices, [r])),
        ):
            e1 = explain(alone, f, approvals=p, velocity=FakeVelocity(*u))
            expected_status = ORACLE_STATUS[oracle_status(r, f, prices)]
            assert e1.trace[0].status == expected_status, (e1.trace[0], r, f)
            if expected_status != NOT_MATCHED:
                allowed = expected_status == MATCHED and oracle_allowed(r, f, prices, p, u)
                assert e1.decision.allowed == allowed, (e1.decision.reason, r, f)

    # The oracle: first rule that is not "no" decides; none denies.
    statuses = [oracle_status(r, facts, prices) for r in rules]
    first = next((i for i, s in enumerate(statuses) if s != "no"), None)
    if first is None:
        assert d.rule == DEFAULT_DENY
        return
    r = rules[first]
    assert d.rule == r["name"]
    expected = statuses[first] == "yes" and oracle_allowed(r, facts, prices, present, used)
    assert d.allowed == expected, (d.reason, r)
    if d.allowed:
        assert d.group == r["group"]
        assert d.approvals_required == r.get("approvals", {})
