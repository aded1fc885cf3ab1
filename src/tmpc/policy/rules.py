"""The signing-policy file: TOML, validated strictly, parsed into an immutable :class:`Policy`.

The format and its semantics are documented in ``docs/policy.md``; in short::

    version = 3                       # int >= 1; a node never installs an older one
    reference_currency = "USD"        # the only one supported: conditions say min_usd/max_usd

    [prices]                          # one unit of the asset, in the reference currency
    BTC = "60000"
    ETH = "3000"

    [approvers.alice]
    key = "<64 hex: Ed25519 public key>"
    role = "treasury"

    [[rules]]                         # ordered: the first matching rule decides
    name = "fast"
    action = "allow"
    group = "fast"
    max_usd = "10000"

Every amount is a decimal string (``"0.5"``) or a TOML integer, read with
:class:`decimal.Decimal`; a TOML float is refused (binary floats cannot hold most decimal
amounts). An unknown key anywhere is refused with one line naming it: a misspelt condition
must never silently widen a rule.

This module does no I/O: :func:`parse_policy` takes the file's bytes.
"""

from __future__ import annotations

import decimal
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from tmpc.errors import DecodeError, InputError, ParameterError
from tmpc.policy.keys import check_public_key

__all__ = [
    "ACTIONS",
    "CHAINS",
    "DAYS",
    "DECIMAL_CONTEXT",
    "DEFAULT_DENY",
    "MAX_POLICY_BYTES",
    "Approver",
    "HourWindow",
    "Policy",
    "PolicyRefusedError",
    "Rule",
    "Velocity",
    "normalize_destination",
    "parse_amount",
    "parse_policy",
]

#: Largest policy file (TOML) accepted.
MAX_POLICY_BYTES: Final = 1 << 20
#: The chains a rule can name (``chains = [...]``) and a request can be for.
CHAINS: Final = ("bitcoin", "ethereum", "solana")
#: The actions of a rule.
ACTIONS: Final = ("allow", "deny")
#: Day names of ``days = [...]``, Monday first (index = :meth:`datetime.weekday`).
DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: The name of the implicit last rule: a request no rule matches is denied by it.
DEFAULT_DENY: Final = "default-deny"
#: Context of every product and sum of amounts: inputs are bounded (see :func:`parse_amount`
#: and :class:`~tmpc.policy.engine.Facts`) so 200 digits never round; if one ever had to,
#: ``Inexact`` is raised rather than a rounded value used.
DECIMAL_CONTEXT: Final = decimal.Context(prec=200, traps=[decimal.Inexact, decimal.Overflow])

_MAX_RULES: Final = 1000
_MAX_LIST: Final = 10_000
_MAX_APPROVALS: Final = 100
_MAX_WINDOW_S: Final = 400 * 86_400
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SYMBOL: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_DECIMAL: Final = re.compile(r"(0|[1-9][0-9]{0,29})(\.[0-9]{1,30})?")
_HOURS: Final = re.compile(r"([01][0-9]|2[0-4]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])")
_WINDOW: Final = re.compile(r"([1-9][0-9]{0,7})([smhd])")
_WINDOW_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_HEX64: Final = re.compile(r"[0-9a-fA-F]{64}")
_ETH_ADDRESS: Final = re.compile(r"0[xX][0-9a-fA-F]{40}")
_BECH32_HRP: Final = re.compile(r"(bc|tb|bcrt)1", re.IGNORECASE)
_MAX_DESTINATION_LEN: Final = 128

_TOP_KEYS: Final = frozenset({"version", "reference_currency", "prices", "approvers", "rules"})
_APPROVER_KEYS: Final = frozenset({"key", "role"})
_RULE_KEYS: Final = frozenset(
    {
        "name", "action", "group", "approvals", "wallets", "chains", "assets",
        "min_usd", "max_usd", "min_amount", "max_amount",
        "destinations_allow", "destinations_deny", "hours", "days", "bare_digest", "velocity",
    }
)  # fmt: skip
_ALLOW_ONLY_KEYS: Final = ("group", "approvals", "velocity")
_VELOCITY_KEYS: Final = frozenset({"window", "max_usd", "max_count"})


class PolicyRefusedError(InputError):
    """The signing policy refuses a request; ``rule`` names the rule that refused it.

    Raised by :meth:`tmpc.policy.velocity.VelocityLedger.reserve` when a velocity limit would
    be exceeded (:func:`tmpc.policy.engine.evaluate` returns refusals as a
    :class:`~tmpc.policy.engine.Decision` instead of raising).
    """

    def __init__(self, message: str, rule: str) -> None:
        super().__init__(message)
        self.rule = rule


def normalize_destination(chain: str | None, address: str) -> str:
    """The form in which a destination is compared with a rule's lists on ``chain``.

    Addresses whose encoding is case-insensitive compare case-insensitively, so that a
    deny-list entry cannot be evaded by changing the case: an Ethereum address (``0x`` and
    40 hex digits, EIP-55 checksum case or not) and a single-case Bitcoin bech32/bech32m
    address (``bc1``, ``tb1``, ``bcrt1``) are lower-cased. Anything else (base58 addresses of
    Bitcoin and Solana, which are case-sensitive) is compared exactly.
    """
    if chain == "ethereum" and _ETH_ADDRESS.fullmatch(address):
        return address.lower()
    if (
        chain == "bitcoin"
        and _BECH32_HRP.match(address)
        and (address == address.lower() or address == address.upper())
    ):
        return address.lower()
    return address


def parse_amount(value: object, what: str, *, positive: bool = False) -> Decimal:
    """Read an amount: a decimal string (``"1500.25"``) or a non-negative integer.

    Plain decimal notation only (no sign, exponent, ``NaN`` or spaces), at most 30 digits
    before the point and 30 after it, so every product of two amounts is exact.

    Raises:
        ParameterError: a float, a bool, another type, or a malformed or negative number
            (zero too if ``positive``); the message names ``what``.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        kind = "a float" if isinstance(value, float) else type(value).__name__
        raise ParameterError(
            f'{what} must be a decimal string (e.g. "1500.25") or an integer, not {kind}'
        )
    text = str(value)
    if not _DECIMAL.fullmatch(text):
        raise ParameterError(
            f'{what} must be a non-negative decimal number like "1500.25" (at most 30 digits '
            "each side of the point)"
        )
    amount = Decimal(text)
    if positive and amount == 0:
        raise ParameterError(f"{what} must be greater than zero")
    return amount


@dataclass(frozen=True, slots=True)
class Approver:
    """A person whose Ed25519 signature over a request's hash counts as one approval."""

    name: str
    #: 32-byte Ed25519 public key.
    key: bytes
    role: str


@dataclass(frozen=True, slots=True)
class Velocity:
    """A rule's rolling limit per wallet: sum and count of the requests it signed."""

    #: The window as written (e.g. ``"24h"``).
    window: str
    window_s: int
    max_usd: Decimal | None
    max_count: int | None


@dataclass(frozen=True, slots=True)
class HourWindow:
    """A daily UTC time window ``[start, end)`` in minutes after midnight; wraps if
    ``start > end`` (``22:00-06:00`` is 22:00 to midnight and midnight to 06:00)."""

    text: str
    start: int
    end: int

    def contains(self, minute: int) -> bool:
        """Whether minute-of-day ``minute`` (0..1439) is inside the window."""
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``[[rules]]`` entry. ``None`` (or an empty approvals table) means "no condition".

    Use :func:`parse_policy`; the fields are what the file says, validated.
    """

    name: str
    action: str
    group: str | None = None
    approvals: Mapping[str, int] = field(default_factory=dict)
    wallets: frozenset[str] | None = None
    chains: frozenset[str] | None = None
    assets: frozenset[str] | None = None
    min_usd: Decimal | None = None
    max_usd: Decimal | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    destinations_allow: tuple[str, ...] | None = None
    destinations_deny: tuple[str, ...] | None = None
    hours: HourWindow | None = None
    #: Weekday numbers (0 = Monday).
    days: frozenset[int] | None = None
    bare_digest: bool = False
    velocity: Velocity | None = None
    # The destination lists as compared on each chain (see normalize_destination).
    _allow: Mapping[str | None, frozenset[str]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _deny: Mapping[str | None, frozenset[str]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for attr, src in (("_allow", self.destinations_allow), ("_deny", self.destinations_deny)):
            if src is not None:
                table = {
                    c: frozenset(normalize_destination(c, d) for d in src) for c in (*CHAINS, None)
                }
                object.__setattr__(self, attr, table)

    def allowed_destinations(self, chain: str | None) -> frozenset[str]:
        """``destinations_allow`` as compared on ``chain`` (empty if the rule has none)."""
        return self._allow.get(chain, frozenset())

    def denied_destinations(self, chain: str | None) -> frozenset[str]:
        """``destinations_deny`` as compared on ``chain`` (empty if the rule has none)."""
        return self._deny.get(chain, frozenset())

    @property
    def uses_usd(self) -> bool:
        """Whether judging the rule needs the request's value in the reference currency."""
        return (
            self.min_usd is not None
            or self.max_usd is not None
            or (self.velocity is not None and self.velocity.max_usd is not None)
        )


@dataclass(frozen=True, slots=True)
class Policy:
    """A parsed, validated signing policy (see the module docstring and ``docs/policy.md``)."""

    version: int
    reference_currency: str
    #: Asset symbol (upper case) -> price of one unit in the reference currency.
    prices: Mapping[str, Decimal]
    approvers: Mapping[str, Approver]
    rules: tuple[Rule, ...]
    #: The TOML file's bytes exactly as parsed (what administrators sign).
    source: bytes = field(repr=False, compare=False)

    @property
    def roles(self) -> frozenset[str]:
        """Every role some approver has."""
        return frozenset(a.role for a in self.approvers.values())

    def rule(self, name: str) -> Rule:
        """The rule called ``name``; :class:`ParameterError` if there is none."""
        for r in self.rules:
            if r.name == name:
                return r
        raise ParameterError(f"the policy has no rule {name!r}")


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def _where(rule: str | None) -> str:
    return f"rule {rule!r}" if rule is not None else "policy"


def _table(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParameterError(f"{what} must be a table")
    return value


def _no_unknown_keys(table: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ParameterError(f"{where}: unknown key {key!r}")


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ParameterError(
            f"{what} must be 1 to 64 letters, digits, '.', '_' or '-' (starting with a letter "
            "or digit)"
        )
    return value


def _symbol(value: object, what: str) -> str:
    if not isinstance(value, str) or not _SYMBOL.fullmatch(value):
        raise ParameterError(f'{what} must be an asset symbol such as "BTC" (1 to 32 chars)')
    return value.upper()


def _str_list(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ParameterError(f"{what} must be a list of strings")
    if not value:
        raise ParameterError(f"{what} is empty and would match nothing; leave the key out")
    if len(value) > _MAX_LIST:
        raise ParameterError(f"{what} has more than {_MAX_LIST} entries")
    return list(value)


def _wallet_id(value: str, what: str) -> str:
    if not value or len(value) > 256 or not value.isprintable() or value.strip() != value:
        raise ParameterError(f"{what}: a wallet id is 1 to 256 printable characters")
    return value


def _destination(value: str, what: str) -> str:
    if (
        not value
        or len(value) > _MAX_DESTINATION_LEN
        or not value.isprintable()
        or any(c.isspace() for c in value)
    ):
        raise ParameterError(
            f"{what}: a destination is 1 to {_MAX_DESTINATION_LEN} characters without spaces"
        )
    return value


def _public_key(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise ParameterError(f"{what} must be an Ed25519 public key: 64 hex digits")
    return check_public_key(bytes.fromhex(value), what)


def _parse_hours(value: object, where: str) -> HourWindow:
    m = _HOURS.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise ParameterError(f'{where}: hours must be "HH:MM-HH:MM" (UTC), e.g. "09:00-17:00"')
    start = int(m[1]) * 60 + int(m[2])
    end = int(m[3]) * 60 + int(m[4])
    if start >= 24 * 60 or end > 24 * 60:
        raise ParameterError(f"{where}: hours: only the end of a window may be 24:00")
    if start == end or (start == 0 and end == 24 * 60):
        raise ParameterError(
            f"{where}: hours {value} is empty or the whole day; leave the key out for all day"
        )
    return HourWindow(str(value), start, end % (24 * 60) if end == 24 * 60 else end)


def _parse_days(value: object, where: str) -> frozenset[int]:
    names = _str_list(value, f"{where}: days")
    days = set()
    for d in names:
        if d not in DAYS:
            raise ParameterError(f"{where}: days: {d!r} is not one of {', '.join(DAYS)}")
        days.add(DAYS.index(d))
    return frozenset(days)


def _parse_velocity(value: object, where: str) -> Velocity:
    table = _table(value, f"{where}: velocity")
    _no_unknown_keys(table, _VELOCITY_KEYS, f"{where}: velocity")
    window = table.get("window")
    m = _WINDOW.fullmatch(window) if isinstance(window, str) else None
    if m is None:
        raise ParameterError(
            f'{where}: velocity window must be a number and a unit s, m, h or d, e.g. "24h"'
        )
    window_s = int(m[1]) * _WINDOW_UNIT_S[m[2]]
    if window_s > _MAX_WINDOW_S:
        raise ParameterError(f"{where}: velocity window is longer than 400 days")
    max_usd = None
    if "max_usd" in table:
        max_usd = parse_amount(table["max_usd"], f"{where}: velocity max_usd", positive=True)
    max_count = None
    if "max_count" in table:
        count = table["max_count"]
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10**9:
            raise ParameterError(f"{where}: velocity max_count must be an integer >= 1")
        max_count = count
    if max_usd is None and max_count is None:
        raise ParameterError(f"{where}: velocity needs max_usd, max_count or both")
    return Velocity(str(window), window_s, max_usd, max_count)


def _parse_range(
    table: Mapping[str, Any], low: str, high: str, where: str
) -> tuple[Decimal | None, Decimal | None]:
    lo = parse_amount(table[low], f"{where}: {low}") if low in table else None
    hi = parse_amount(table[high], f"{where}: {high}") if high in table else None
    if lo is not None and hi is not None and lo >= hi:
        raise ParameterError(f"{where}: {low} must be below {high} (the range is [min, max))")
    return lo, hi


def _parse_approvals(
    value: object, where: str, approvers: Mapping[str, Approver]
) -> dict[str, int]:
    table = _table(value, f"{where}: approvals")
    out: dict[str, int] = {}
    for role, count in table.items():
        _name(role, f"{where}: approvals: role {role!r}")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100:
            raise ParameterError(f"{where}: approvals.{role} must be an integer from 1 to 100")
        holders = sum(1 for a in approvers.values() if a.role == role)
        if holders < count:
            raise ParameterError(
                f"{where} requires {count} {role!r} approval(s) but the policy names "
                f"{holders} approver(s) with that role"
            )
        out[role] = count
    return out


def _parse_rule(raw: object, index: int, approvers: Mapping[str, Approver], seen: set[str]) -> Rule:
    table = _table(raw, f"rules[{index}]")
    label = f"rules[{index}]"
    if "name" not in table:
        raise ParameterError(f"{label}: missing key 'name'")
    name = _name(table["name"], f"{label}: name")
    where = _where(name)
    _no_unknown_keys(table, _RULE_KEYS, where)
    if name == DEFAULT_DENY:
        raise ParameterError(f"{where}: the name {DEFAULT_DENY!r} is reserved (the implicit rule)")
    if name in seen:
        raise ParameterError(f"{where}: two rules have this name")
    seen.add(name)
    action = table.get("action")
    if action not in ACTIONS:
        raise ParameterError(f'{where}: action must be "allow" or "deny"')
    kw: dict[str, Any] = {}
    if action == "deny":
        for key in _ALLOW_ONLY_KEYS:
            if key in table:
                raise ParameterError(
                    f"{where}: {key!r} is for allow rules; a deny rule signs nothing"
                )
    else:
        if "group" not in table:
            raise ParameterError(f"{where}: an allow rule needs 'group' (the signing group)")
        kw["group"] = _name(table["group"], f"{where}: group")
        if "approvals" in table:
            kw["approvals"] = _parse_approvals(table["approvals"], where, approvers)
        if "velocity" in table:
            kw["velocity"] = _parse_velocity(table["velocity"], where)
    if "wallets" in table:
        kw["wallets"] = frozenset(
            _wallet_id(w, f"{where}: wallets")
            for w in _str_list(table["wallets"], f"{where}: wallets")
        )
    if "chains" in table:
        chains = _str_list(table["chains"], f"{where}: chains")
        for c in chains:
            if c not in CHAINS:
                raise ParameterError(f"{where}: chains: {c!r} is not one of {', '.join(CHAINS)}")
        kw["chains"] = frozenset(chains)
    if "assets" in table:
        kw["assets"] = frozenset(
            _symbol(a, f"{where}: assets") for a in _str_list(table["assets"], f"{where}: assets")
        )
    kw["min_usd"], kw["max_usd"] = _parse_range(table, "min_usd", "max_usd", where)
    kw["min_amount"], kw["max_amount"] = _parse_range(table, "min_amount", "max_amount", where)
    if (kw["min_amount"] is not None or kw["max_amount"] is not None) and "assets" not in table:
        raise ParameterError(
            f"{where}: min_amount/max_amount are in the asset's units and need an 'assets' list"
        )
    for key in ("destinations_allow", "destinations_deny"):
        if key in table:
            kw[key] = tuple(
                dict.fromkeys(
                    _destination(d, f"{where}: {key}")
                    for d in _str_list(table[key], f"{where}: {key}")
                )
            )
    if "hours" in table:
        kw["hours"] = _parse_hours(table["hours"], where)
    if "days" in table:
        kw["days"] = _parse_days(table["days"], where)
    if "bare_digest" in table:
        if not isinstance(table["bare_digest"], bool):
            raise ParameterError(f"{where}: bare_digest must be true or false")
        kw["bare_digest"] = table["bare_digest"]
    return Rule(name=name, action=str(action), **kw)


def _parse_approvers(value: object) -> dict[str, Approver]:
    table = _table(value, "approvers")
    out: dict[str, Approver] = {}
    keys: dict[bytes, str] = {}
    for name, raw in table.items():
        _name(name, f"approver name {name!r}")
        where = f"approver {name!r}"
        entry = _table(raw, where)
        _no_unknown_keys(entry, _APPROVER_KEYS, where)
        for k in ("key", "role"):
            if k not in entry:
                raise ParameterError(f"{where}: missing key {k!r}")
        key = _public_key(entry["key"], f"{where}: key")
        if key in keys:
            # One person must not count as two approvals.
            raise ParameterError(f"approvers {keys[key]!r} and {name!r} have the same key")
        keys[key] = name
        out[name] = Approver(name, key, _name(entry["role"], f"{where}: role"))
    return out


def _parse_prices(value: object) -> dict[str, Decimal]:
    table = _table(value, "prices")
    out: dict[str, Decimal] = {}
    for symbol, price in table.items():
        sym = _symbol(symbol, f"prices: {symbol!r}")
        if sym in out:
            raise ParameterError(f"prices: {sym} is listed twice (symbols ignore case)")
        out[sym] = parse_amount(price, f"prices.{symbol}", positive=True)
    return out


def parse_policy(data: bytes | str) -> Policy:
    """Parse and validate a policy file (TOML, UTF-8).

    Args:
        data: the file's content; at most :data:`MAX_POLICY_BYTES` bytes.

    Returns:
        The policy, keeping ``data`` (as UTF-8 bytes) in :attr:`Policy.source`.

    Raises:
        DecodeError: not UTF-8, too large, or not valid TOML.
        ParameterError: valid TOML that is not a valid policy: an unknown key (named), a
            missing or malformed value, a float amount, an empty range, an approvals
            requirement no set of approvers can meet.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogatepass")
    if not isinstance(data, bytes | bytearray):
        raise DecodeError("policy: expected the bytes of a TOML file")
    raw = bytes(data)
    if len(raw) > MAX_POLICY_BYTES:
        raise DecodeError(f"policy is larger than {MAX_POLICY_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("policy is not UTF-8 text") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DecodeError(f"policy is not valid TOML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise DecodeError("policy is not valid TOML: nested too deeply") from None
    _no_unknown_keys(doc, _TOP_KEYS, "policy")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 1 << 63:
        raise ParameterError("policy: version must be an integer >= 1")
    currency = doc.get("reference_currency")
    if currency != "USD":
        raise ParameterError(
            'policy: reference_currency must be "USD" (the only one supported: rules say '
            "min_usd/max_usd)"
        )
    prices = _parse_prices(doc.get("prices", {}))
    approvers = _parse_approvers(doc.get("approvers", {}))
    raw_rules = doc.get("rules", [])
    if not isinstance(raw_rules, list):
        raise ParameterError("policy: rules must be an array of tables ([[rules]])")
    if len(raw_rules) > _MAX_RULES:
        raise ParameterError(f"policy: more than {_MAX_RULES} rules")
    seen: set[str] = set()
    rules = tuple(_parse_rule(r, i, approvers, seen) for i, r in enumerate(raw_rules, 1))
    return Policy(version, currency, prices, approvers, rules, raw)
