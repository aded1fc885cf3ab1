"""Evaluating a signing policy on one request: :func:`explain` and :func:`evaluate`.

There is one code path. :func:`explain` walks the rules in order and records, for every rule
it considers, whether it matched and why; :func:`evaluate` returns the decision of that same
walk (``explain(...).decision``), so what ``tmpc policy explain`` shows and what a node
enforces can never disagree.

Semantics (``docs/policy.md`` has examples):

1. The rules are considered in file order; the **first** rule whose conditions all hold
   decides. If none matches, the request is denied by the implicit rule ``default-deny``.
2. A deny rule that matches refuses. An allow rule that matches allows with its signing group
   if the request carries the approvals it requires and stays within its velocity limit;
   otherwise it **refuses**, naming the rule and what is missing. It never falls through to
   a later rule.
3. A rule that needs the request's value in the reference currency (``min_usd``, ``max_usd``,
   or a velocity ``max_usd``) when the asset has no price in the policy refuses the request
   (it cannot be valued) once its other conditions hold: an unpriced asset never slips past a
   rule it cannot be judged by.

This module does no I/O: the velocity usage so far comes from a :class:`VelocityView` (the
:class:`~tmpc.policy.velocity.VelocityLedger`), and the time of the request is a fact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Protocol

from tmpc.errors import ParameterError
from tmpc.policy.approvals import ApprovalTally
from tmpc.policy.rules import (
    CHAINS,
    DAYS,
    DECIMAL_CONTEXT,
    DEFAULT_DENY,
    Policy,
    Rule,
    Velocity,
    normalize_destination,
    parse_amount,
)

__all__ = [
    "CANNOT_EVALUATE",
    "MATCHED",
    "NOT_MATCHED",
    "Decision",
    "Explanation",
    "Facts",
    "RuleTrace",
    "VelocityView",
    "evaluate",
    "explain",
]

#: :attr:`RuleTrace.status` of a rule whose conditions all hold.
MATCHED: Final = "matched"
#: :attr:`RuleTrace.status` of a rule some condition of which does not hold.
NOT_MATCHED: Final = "not matched"
#: :attr:`RuleTrace.status` of a rule that needs a value the request does not have (an asset
#: without a price): the request is refused by it.
CANNOT_EVALUATE: Final = "cannot evaluate"

_MAX_DESTINATIONS: Final = 1000
_SYMBOL: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_MAX_AMOUNT_DIGITS: Final = 60
_FACT_KEYS: Final = frozenset(
    {"wallet", "chain", "asset", "amount", "destinations", "bare_digest", "at"}
)


def _fmt(d: Decimal) -> str:
    """A decimal in plain notation without trailing zeros (``1E+3`` -> ``1000``)."""
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


@dataclass(frozen=True, slots=True)
class Facts:
    """What the policy judges about one signing request.

    A node fills these from the transaction it parsed itself, **never** from a claim beside
    it. A bare-digest request (no parsed transaction) has ``bare_digest=True``, no amount and
    no destination; its chain and asset may be unknown (None).

    Attributes:
        wallet_id: the wallet asked to sign.
        chain: ``"bitcoin"``, ``"ethereum"``, ``"solana"``, or None (bare digest only).
        asset: the asset symbol (compared upper-cased), or None (bare digest only).
        amount: the amount in asset units (``Decimal("0.25")`` BTC, not satoshis), or None
            for a bare digest. Finite, >= 0, at most 60 significant digits, exponent within
            -30..30 (so values are computed exactly).
        destinations: where the transaction sends funds (addresses, as the chain writes them).
        bare_digest: True if there is no parsed transaction.
        at: when the request is judged; timezone-aware (kept in UTC).

    Raises:
        ParameterError: a field out of the ranges above, or inconsistent (an amount on a bare
            digest, a parsed transaction without chain, asset or amount).
    """

    wallet_id: str
    chain: str | None
    asset: str | None
    amount: Decimal | None
    destinations: tuple[str, ...]
    bare_digest: bool
    at: datetime

    def __post_init__(self) -> None:
        w = self.wallet_id
        if not isinstance(w, str) or not w or len(w) > 256 or not w.isprintable():
            raise ParameterError("facts: wallet id must be 1 to 256 printable characters")
        if not isinstance(self.bare_digest, bool):
            raise ParameterError("facts: bare_digest must be a bool")
        if self.chain is not None and self.chain not in CHAINS:
            raise ParameterError(f"facts: chain must be one of {', '.join(CHAINS)}")
        if self.asset is not None:
            if not isinstance(self.asset, str) or not _SYMBOL.fullmatch(self.asset):
                raise ParameterError("facts: asset must be a symbol such as BTC (1 to 32 chars)")
            object.__setattr__(self, "asset", self.asset.upper())
        if self.amount is not None:
            amt = self.amount
            if not isinstance(amt, Decimal) or not amt.is_finite() or amt < 0:
                raise ParameterError("facts: amount must be a finite, non-negative Decimal")
            t = amt.as_tuple()
            if (
                len(t.digits) > _MAX_AMOUNT_DIGITS
                or not isinstance(t.exponent, int)
                or not -30 <= t.exponent <= 30
            ):
                raise ParameterError("facts: amount has too many digits")
        if isinstance(self.destinations, str) or not isinstance(self.destinations, Sequence):
            raise ParameterError("facts: destinations must be a sequence of addresses")
        dests = tuple(self.destinations)
        if len(dests) > _MAX_DESTINATIONS:
            raise ParameterError(f"facts: more than {_MAX_DESTINATIONS} destinations")
        for d in dests:
            if (
                not isinstance(d, str)
                or not d
                or len(d) > 128
                or not d.isprintable()
                or any(c.isspace() for c in d)
            ):
                raise ParameterError("facts: a destination is 1 to 128 characters, no spaces")
        object.__setattr__(self, "destinations", dests)
        if not isinstance(self.at, datetime) or self.at.utcoffset() is None:
            raise ParameterError("facts: at must be a timezone-aware datetime")
        object.__setattr__(self, "at", self.at.astimezone(UTC))
        if self.bare_digest:
            if self.amount is not None or dests:
                raise ParameterError("facts: a bare digest has no amount and no destination")
        elif self.chain is None or self.asset is None or self.amount is None:
            raise ParameterError(
                "facts: a parsed transaction has a chain, an asset and an amount (or set "
                "bare_digest)"
            )

    @classmethod
    def from_json(cls, doc: object) -> Facts:
        """Facts from a JSON object with ``wallet``, ``chain``, ``asset``, ``amount`` (a
        decimal string or integer; null for a bare digest), ``destinations`` (list),
        ``bare_digest`` (bool, default false) and ``at`` (ISO 8601 with a time zone, e.g.
        ``"2025-03-07T14:05:00Z"``). Unknown keys are refused.

        Raises:
            ParameterError: a missing, unknown or malformed field (named).
        """
        if not isinstance(doc, dict):
            raise ParameterError("request facts must be a JSON object")
        for key in doc:
            if key not in _FACT_KEYS:
                raise ParameterError(f"request: unknown key {key!r}")
        for key in ("wallet", "at"):
            if key not in doc:
                raise ParameterError(f"request: missing key {key!r}")
        bare = doc.get("bare_digest", False)
        if not isinstance(bare, bool):
            raise ParameterError("request: bare_digest must be true or false")
        for key in ("wallet", "chain", "asset"):
            if doc.get(key) is not None and not isinstance(doc[key], str):
                raise ParameterError(f"request: {key} must be a string")
        raw_amount = doc.get("amount")
        amount = None if raw_amount is None else parse_amount(raw_amount, "request: amount")
        dests = doc.get("destinations", [])
        if not isinstance(dests, list) or not all(isinstance(d, str) for d in dests):
            raise ParameterError("request: destinations must be a list of strings")
        at_text = doc["at"]
        try:
            if not isinstance(at_text, str):
                raise ValueError(at_text)
            at = datetime.fromisoformat(at_text)
        except ValueError:
            raise ParameterError(
                'request: at must be an ISO 8601 time such as "2025-03-07T14:05:00Z"'
            ) from None
        if at.utcoffset() is None:
            raise ParameterError('request: at needs a time zone (e.g. "Z" for UTC)')
        return cls(
            wallet_id=doc["wallet"],
            chain=doc.get("chain"),
            asset=doc.get("asset"),
            amount=amount,
            destinations=tuple(dests),
            bare_digest=bare,
            at=at,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON object :meth:`from_json` reads."""
        return {
            "wallet": self.wallet_id,
            "chain": self.chain,
            "asset": self.asset,
            "amount": None if self.amount is None else _fmt(self.amount),
            "destinations": list(self.destinations),
            "bare_digest": self.bare_digest,
            "at": self.at.isoformat().replace("+00:00", "Z"),
        }


class VelocityView(Protocol):
    """What the engine asks about a wallet's earlier signing under a rule."""

    def usage(self, wallet_id: str, rule: str, window_s: int, now: datetime) -> tuple[Decimal, int]:
        """The sum (reference currency) and count of ``rule``'s requests for ``wallet_id``
        reserved or signed in the ``window_s`` seconds before ``now``."""
        ...


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """How one rule was judged.

    Attributes:
        index: its position in the policy, from 1.
        rule: its name.
        action: ``"allow"`` or ``"deny"``.
        status: :data:`MATCHED`, :data:`NOT_MATCHED` or :data:`CANNOT_EVALUATE`.
        checks: one text per condition judged, in order; for a rule not matched the last one
            is the condition that failed.
    """

    index: int
    rule: str
    action: str
    status: str
    checks: tuple[str, ...]

    @property
    def matched(self) -> bool:
        """True if every condition holds."""
        return self.status == MATCHED

    def to_json(self) -> dict[str, Any]:
        """A JSON object of the fields."""
        return {
            "index": self.index,
            "rule": self.rule,
            "action": self.action,
            "status": self.status,
            "checks": list(self.checks),
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of a request under a policy.

    Attributes:
        allowed: True if the request may be signed.
        rule: the name of the deciding rule (``"default-deny"`` if none matched).
        group: the signing group that signs it; None unless ``allowed``.
        approvals_required: role -> count the deciding rule requires (empty if none).
        approvals_present: role -> count of valid, distinct approvals the request carries.
        reason: one line that names the rule and says why.
        rule_index: the deciding rule's position (from 1); None for ``default-deny``.
        usd: the request's value in the reference currency; None if it has none (bare
            digest) or cannot be valued (no price).
        velocity: the deciding rule's velocity limit (a node reserves under it when the
            signing session starts); None if it has none or the request is refused.
        rejected_approvals: approvals not counted (unknown approver, forged, malformed).
    """

    allowed: bool
    rule: str
    group: str | None
    approvals_required: Mapping[str, int]
    approvals_present: Mapping[str, int]
    reason: str
    rule_index: int | None = None
    usd: Decimal | None = None
    velocity: Velocity | None = None
    rejected_approvals: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON object of the fields (decimals as strings)."""
        v = self.velocity
        return {
            "allowed": self.allowed,
            "rule": self.rule,
            "rule_index": self.rule_index,
            "group": self.group,
            "approvals_required": dict(self.approvals_required),
            "approvals_present": dict(self.approvals_present),
            "rejected_approvals": list(self.rejected_approvals),
            "usd": None if self.usd is None else _fmt(self.usd),
            "velocity": None
            if v is None
            else {
                "window": v.window,
                "max_usd": None if v.max_usd is None else _fmt(v.max_usd),
                "max_count": v.max_count,
            },
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    """A decision with the trace it came from.

    Attributes:
        decision: what :func:`evaluate` returns for the same arguments.
        trace: every rule considered, in order: all of them if none matched, else those up
            to and including the deciding one (later rules are not considered).
        facts: the request judged.
        policy_version: the policy's version.
        notes: what the trace does not say by itself (the request's value).
    """

    decision: Decision
    trace: tuple[RuleTrace, ...]
    facts: Facts
    policy_version: int
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON object: the decision's fields, the facts and the trace."""
        return {
            **self.decision.to_json(),
            "policy_version": self.policy_version,
            "facts": self.facts.to_json(),
            "notes": list(self.notes),
            "trace": [t.to_json() for t in self.trace],
        }

    def lines(self) -> list[str]:
        """Human-readable lines: the decision, then one block per rule considered."""
        d = self.decision
        out = [("ALLOWED: " if d.allowed else "REFUSED: ") + d.reason]
        out += [f"  {n}" for n in self.notes]
        for t in self.trace:
            out.append(f"  #{t.index} {t.rule} ({t.action}): {t.status}")
            out += [f"      - {c}" for c in t.checks]
        if d.rule == DEFAULT_DENY:
            out.append(f"  {DEFAULT_DENY}: no rule matched")
        return out


# --------------------------------------------------------------------------------------------
# Conditions. Each returns (holds, text); holds is None when the value needed is unknown.
# --------------------------------------------------------------------------------------------


def _range_check(
    what: str,
    value: Decimal,
    unit: str,
    lo: Decimal | None,
    hi: Decimal | None,
    low: str,
    high: str,
) -> tuple[bool, str]:
    shown = f"{what} {_fmt(value)} {unit}".rstrip()
    if lo is not None and value < lo:
        return False, f"{shown} is below {low} {_fmt(lo)}"
    if hi is not None and value >= hi:
        return False, f"{shown} is not below {high} {_fmt(hi)}"
    if lo is None and hi is not None:
        return True, f"{shown} is below {high} {_fmt(hi)}"
    if hi is None and lo is not None:
        return True, f"{shown} is at least {low} {_fmt(lo)}"
    return True, f"{shown} is in [{low} {_fmt(lo or Decimal(0))}, {high} {_fmt(hi or Decimal(0))})"


def _judge(rule: Rule, facts: Facts, usd: Decimal | None) -> tuple[str, list[str]]:
    """The status of ``rule`` on ``facts`` and the texts of the checks made."""
    checks: list[str] = []
    bare = facts.bare_digest

    def fail(text: str) -> tuple[str, list[str]]:
        checks.append(text)
        return NOT_MATCHED, checks

    if bare:
        if not rule.bare_digest:
            return fail("a bare digest (no parsed transaction): the rule does not allow them")
        checks.append("bare digests allowed (bare_digest = true)")
    if rule.wallets is not None:
        if facts.wallet_id not in rule.wallets:
            return fail(f"wallet {facts.wallet_id} is not listed")
        checks.append(f"wallet {facts.wallet_id} is listed")
    if rule.chains is not None:
        if facts.chain is None:
            return fail("the request names no chain")
        if facts.chain not in rule.chains:
            return fail(f"chain {facts.chain} is not listed")
        checks.append(f"chain {facts.chain} is listed")
    if rule.assets is not None:
        if facts.asset is None:
            return fail("the request names no asset")
        if facts.asset not in rule.assets:
            return fail(f"asset {facts.asset} is not listed")
        checks.append(f"asset {facts.asset} is listed")
    if rule.min_amount is not None or rule.max_amount is not None:
        if facts.amount is None:
            return fail("a bare digest has no amount (min_amount/max_amount)")
        ok, text = _range_check(
            "amount", facts.amount, facts.asset or "", rule.min_amount, rule.max_amount,
            "min_amount", "max_amount",
        )  # fmt: skip
        if not ok:
            return fail(text)
        checks.append(text)
    if rule.destinations_allow is not None:
        if bare:
            return fail("a bare digest has no destination (destinations_allow)")
        if not facts.destinations:
            return fail("the request has no destination to find in destinations_allow")
        allowed = rule.allowed_destinations(facts.chain)
        for d in facts.destinations:
            if normalize_destination(facts.chain, d) not in allowed:
                return fail(f"destination {d} is not in destinations_allow")
        checks.append("every destination is in destinations_allow")
    if rule.destinations_deny is not None:
        if bare:
            return fail("a bare digest has no destination (destinations_deny)")
        denied = rule.denied_destinations(facts.chain)
        hit = next(
            (d for d in facts.destinations if normalize_destination(facts.chain, d) in denied),
            None,
        )
        if hit is None:
            return fail("no destination is in destinations_deny")
        checks.append(f"destination {hit} is in destinations_deny")
    if rule.hours is not None:
        minute = facts.at.hour * 60 + facts.at.minute
        shown = f"time {facts.at:%H:%M} UTC"
        if not rule.hours.contains(minute):
            return fail(f"{shown} is outside {rule.hours.text}")
        checks.append(f"{shown} is within {rule.hours.text}")
    if rule.days is not None:
        day = DAYS[facts.at.weekday()]
        if facts.at.weekday() not in rule.days:
            return fail(f"day {day} (UTC) is not listed")
        checks.append(f"day {day} (UTC) is listed")
    if rule.min_usd is not None or rule.max_usd is not None:
        if facts.amount is None:
            return fail("a bare digest has no amount (min_usd/max_usd)")
        if usd is None:
            checks.append(
                f"cannot value {_fmt(facts.amount)} {facts.asset} in USD: the policy has no "
                f"price for {facts.asset} (min_usd/max_usd)"
            )
            return CANNOT_EVALUATE, checks
        ok, text = _range_check(
            "value", usd, "USD", rule.min_usd, rule.max_usd, "min_usd", "max_usd"
        )
        if not ok:
            return fail(text)
        checks.append(text)
    if not checks:
        checks.append("no conditions: matches every parsed transaction")
    return MATCHED, checks


def _approval_problems(required: Mapping[str, int], present: Mapping[str, int]) -> list[str]:
    problems = []
    for role, need in sorted(required.items()):
        have = present.get(role, 0)
        if have < need:
            problems.append(f"{need - have} more {role!r} approval(s) needed ({have} of {need})")
    return problems


def _velocity_problems(
    rule: Rule, facts: Facts, usd: Decimal | None, view: VelocityView | None
) -> list[str]:
    v = rule.velocity
    if v is None:
        return []
    used_usd, used_count = (
        (Decimal(0), 0)
        if view is None
        else view.usage(facts.wallet_id, rule.name, v.window_s, facts.at)
    )
    problems = []
    if v.max_count is not None and used_count + 1 > v.max_count:
        problems.append(
            f"velocity limit: {used_count} request(s) in the last {v.window} already, "
            f"max_count {v.max_count}"
        )
    if v.max_usd is not None:
        if usd is None:
            what = (
                "a bare digest has no value"
                if facts.amount is None
                else f"cannot value {facts.asset}: the policy has no price for it"
            )
            problems.append(f"velocity limit max_usd: {what}")
        else:
            total = DECIMAL_CONTEXT.add(used_usd, usd)
            if total > v.max_usd:
                problems.append(
                    f"velocity limit: {_fmt(used_usd)} USD in the last {v.window} plus "
                    f"{_fmt(usd)} USD is over max_usd {_fmt(v.max_usd)}"
                )
    return problems


def _value(policy: Policy, facts: Facts) -> Decimal | None:
    if facts.amount is None or facts.asset is None:
        return None
    price = policy.prices.get(facts.asset)
    if price is None:
        return None
    return DECIMAL_CONTEXT.multiply(facts.amount, price)


def explain(
    policy: Policy,
    facts: Facts,
    *,
    approvals: ApprovalTally | Mapping[str, int] | None = None,
    velocity: VelocityView | None = None,
) -> Explanation:
    """Judge ``facts`` under ``policy`` and say why, rule by rule (see the module docstring).

    Args:
        policy: the installed policy.
        facts: the request, as parsed from its transaction.
        approvals: the request's valid approvals per role, best an :class:`ApprovalTally`
            from :func:`~tmpc.policy.approvals.count_approvals` (its rejected approvals are
            then named in the reason); None means none.
        velocity: the wallet's usage so far; None judges the request as if nothing had
            been signed in the window (``tmpc policy explain``). A node **must** pass its
            ledger here and then reserve (:meth:`~tmpc.policy.velocity.VelocityLedger.reserve`
            is the atomic check: two concurrent requests may both pass this one).

    Returns:
        The :class:`Explanation`; its ``decision`` is what :func:`evaluate` returns.
    """
    present = dict(approvals or {})
    rejected = approvals.rejected if isinstance(approvals, ApprovalTally) else ()
    usd = _value(policy, facts)
    notes = []
    if usd is not None:
        notes.append(f"value: {_fmt(facts.amount or Decimal(0))} {facts.asset} = {_fmt(usd)} USD")
    elif facts.amount is not None:
        notes.append(f"value: {facts.asset} has no price in the policy (cannot be valued)")
    not_counted = f"; approvals not counted: {', '.join(rejected)}" if rejected else ""
    trace: list[RuleTrace] = []
    for index, rule in enumerate(policy.rules, 1):
        status, checks = _judge(rule, facts, usd)
        trace.append(RuleTrace(index, rule.name, rule.action, status, tuple(checks)))
        if status == NOT_MATCHED:
            continue
        base: dict[str, Any] = {
            "rule": rule.name,
            "rule_index": index,
            "approvals_present": present,
            "usd": usd,
            "rejected_approvals": tuple(rejected),
        }
        if status == CANNOT_EVALUATE:
            decision = Decision(
                allowed=False, group=None, approvals_required=dict(rule.approvals),
                reason=f"refused by rule {rule.name!r}: {checks[-1]}{not_counted}", **base,
            )  # fmt: skip
        elif rule.action == "deny":
            decision = Decision(
                allowed=False, group=None, approvals_required={},
                reason=f"denied by rule {rule.name!r}: {'; '.join(checks)}{not_counted}", **base,
            )  # fmt: skip
        else:
            problems = _approval_problems(rule.approvals, present)
            problems += _velocity_problems(rule, facts, usd, velocity)
            if problems:
                decision = Decision(
                    allowed=False, group=None, approvals_required=dict(rule.approvals),
                    reason=f"refused by rule {rule.name!r}: {'; '.join(problems)}{not_counted}",
                    **base,
                )  # fmt: skip
            else:
                have = ", ".join(
                    f"{role} {present.get(role, 0)} of {n}"
                    for role, n in sorted(rule.approvals.items())
                )
                decision = Decision(
                    allowed=True, group=rule.group, approvals_required=dict(rule.approvals),
                    reason=f"allowed by rule {rule.name!r}: signing group {rule.group!r}"
                    + (f", approvals {have}" if have else "") + not_counted,
                    velocity=rule.velocity, **base,
                )  # fmt: skip
        return Explanation(decision, tuple(trace), facts, policy.version, tuple(notes))
    decision = Decision(
        allowed=False,
        rule=DEFAULT_DENY,
        group=None,
        approvals_required={},
        approvals_present=present,
        reason=f"denied by rule {DEFAULT_DENY!r}: no rule matches "
        f"({len(policy.rules)} rule(s) considered){not_counted}",
        usd=usd,
        rejected_approvals=tuple(rejected),
    )
    return Explanation(decision, tuple(trace), facts, policy.version, tuple(notes))


def evaluate(
    policy: Policy,
    facts: Facts,
    *,
    approvals: ApprovalTally | Mapping[str, int] | None = None,
    velocity: VelocityView | None = None,
) -> Decision:
    """The decision on ``facts`` under ``policy``: ``explain(...).decision`` (one code path,
    so enforcement and ``tmpc policy explain`` always agree). Arguments as :func:`explain`.

    A refused request is a :class:`Decision` with ``allowed=False`` (not an exception); only
    malformed arguments raise.
    """
    return explain(policy, facts, approvals=approvals, velocity=velocity).decision
