"""The alert engine: audit entries and observations in, alerts out.

Sans-I/O (style rule 1): no sockets, files, clock or logging. The monitor feeds it

- every collected audit entry, in order (:meth:`AlertEngine.observe`),
- what it saw of each node: health answered or not (:meth:`AlertEngine.observe_health`), each
  wallet's epoch there (:meth:`AlertEngine.observe_wallets`), a broken audit chain
  (:meth:`AlertEngine.observe_chain_problem`),

and asks for the alerts due at a time it passes (:meth:`AlertEngine.evaluate`). Rules that
need no clock (a blamed party, a refusal, an amount out of pattern) fire on the entry; rules
about what did *not* happen (a request left unfinished, a silent node, a stopped heartbeat)
fire when ``evaluate`` is called late enough.

Every alert has a stable id: a hash of the scope (the cluster), its kind and its subject (what
it is about: a request and its culprits, a wallet and a destination, a node and the start of
its outage, ...). The engine never returns an id twice, and :meth:`AlertEngine.restore` tells
it the ids raised before a restart, so replaying the same entries raises nothing again.

Most alerts are events (a blame, a refusal, an anomaly): they are raised and that is all. The
kinds in :data:`RESOLVABLE` are about a condition that can end (a node that does not answer or
lags behind, a heartbeat that stopped or failed): when it ends, ``evaluate`` returns the alert
once more, with the same id, ``status`` ``"resolved"``, ``resolved_at`` and a message saying
what ended. Each occurrence is raised once and resolved at most once; the condition coming back
later is a new occurrence, with a new id (its subject ends in ``#2``, ``#3``, ... when the
evidence alone would repeat an earlier subject). ``audit-broken`` is not resolvable: a broken
chain stays broken until an operator has looked.

The rules, their baselines and what to do about each kind are in ``docs/monitoring.md``
("Alerts"); :data:`KINDS` lists the kinds.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import statistics
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from tmpc.audit.entry import Entry
from tmpc.wire.envelope import REASONS

__all__ = [
    "CHANNEL_REASONS",
    "FIRING",
    "KINDS",
    "REPLAY_REASONS",
    "RESOLVABLE",
    "RESOLVED",
    "Alert",
    "AlertEngine",
    "AlertSettings",
    "alert_id",
    "amount_limit",
]

SESSION_FAILED: Final = "session-failed"
STALLED_INITIATOR: Final = "stalled-initiator"
UNAUTHORIZED_REQUEST: Final = "unauthorized-request"
POLICY_REFUSAL: Final = "policy-refusal"
AMOUNT_ANOMALY: Final = "amount-anomaly"
AMOUNT_BURST: Final = "amount-burst"
NEW_DESTINATION: Final = "new-destination"
UNUSUAL_HOUR: Final = "unusual-hour"
RATE_ANOMALY: Final = "rate-anomaly"
CHANNEL: Final = "channel"
NODE_MISSING: Final = "node-missing"
NODE_LAGGING: Final = "node-lagging"
AUDIT_BROKEN: Final = "audit-broken"
HEARTBEAT_STALE: Final = "heartbeat-stale"
HEARTBEAT_FAILED: Final = "heartbeat-failed"

#: Every alert kind, with its severity.
KINDS: Final[Mapping[str, str]] = {
    SESSION_FAILED: "critical",
    STALLED_INITIATOR: "critical",
    UNAUTHORIZED_REQUEST: "critical",
    POLICY_REFUSAL: "warning",
    AMOUNT_ANOMALY: "warning",
    AMOUNT_BURST: "critical",
    NEW_DESTINATION: "warning",
    UNUSUAL_HOUR: "warning",
    RATE_ANOMALY: "warning",
    CHANNEL: "critical",
    NODE_MISSING: "critical",
    NODE_LAGGING: "warning",
    AUDIT_BROKEN: "critical",
    HEARTBEAT_STALE: "critical",
    HEARTBEAT_FAILED: "critical",
}

#: The kinds about a condition that can end (see the module docstring). ``audit-broken`` is
#: not one: a broken chain does not mend itself.
RESOLVABLE: Final = frozenset({NODE_MISSING, NODE_LAGGING, HEARTBEAT_STALE, HEARTBEAT_FAILED})

# The resolvable kinds raised by a check of the current state (not by one entry).
_CONDITIONS: Final = frozenset({NODE_MISSING, NODE_LAGGING, HEARTBEAT_STALE})

#: :attr:`Alert.status` of a raised alert, and of its resolution.
FIRING: Final = "firing"
RESOLVED: Final = "resolved"

#: The ``message.rejected`` reasons the node writes: the envelope layer's, a member's message
#: to a session it is not in (``outsider``), a copy (``duplicate``). Each raises a ``channel``
#: alert, and so does any other.
CHANNEL_REASONS: Final = REASONS | {"outsider", "duplicate"}
#: The reasons that mean a message was replayed.
REPLAY_REASONS: Final = frozenset({"stale", "duplicate"})
_CHANNEL_WARNING: Final = frozenset({"malformed", "misrouted"})

# A refusal whose reason says that an authorization is missing or invalid (approvals, a
# forged approver signature, a coordinator or operator not allowed) is "unauthorized"; any
# other refusal (a deny rule, a limit, default-deny, a failed check) is a "policy refusal".
_UNAUTHORIZED: Final = re.compile(
    r"approv|authori[sz]|not allowed|not permitted|forbidden|forged|not a member|"
    r"unknown (coordinator|operator)",
    re.IGNORECASE,
)

_ID_TAG: Final = b"tmpc/monitor/alert/v1"
_REMEMBERED: Final = 100_000  # request ids remembered per set (bounded memory)


def alert_id(scope: str, kind: str, subject: str) -> str:
    """The stable id of the alert ``kind`` about ``subject`` in ``scope`` (the cluster id):
    32 hex digits of SHA-256 over the three, length-prefixed."""
    h = hashlib.sha256(_ID_TAG)
    for part in (scope, kind, subject):
        raw = part.encode()
        h.update(len(raw).to_bytes(4, "big") + raw)
    return h.hexdigest()[:32]


def _when(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _num(value: Decimal) -> str:
    """A decimal for a message: at most 2 places, no exponent."""
    return f"{value.quantize(Decimal('0.01')).normalize():f}"


def amount_limit(history: Iterable[Decimal]) -> tuple[Decimal, Decimal, Decimal]:
    """``(median, MAD, limit)`` of an amount history: the limit above which an amount is out
    of pattern is ``max(3 * median, median + 4 * MAD)`` (MAD: the median absolute deviation
    from the median). ``history`` must not be empty."""
    values = list(history)
    med = Decimal(statistics.median(values))
    mad = Decimal(statistics.median([abs(v - med) for v in values]))
    return med, mad, max(3 * med, med + 4 * mad)


@dataclass(frozen=True)
class AlertSettings:
    """The engine's thresholds (seconds, counts); every one is explained in
    ``docs/monitoring.md``. The monitor derives the grace periods from its poll interval."""

    #: A request with no outcome this long after it was first seen counts as stalled.
    stall_grace: float = 34.0
    #: This many stalled requests of one coordinator within ``stall_window`` raise an alert.
    stall_count: int = 3
    stall_window: float = 3600.0
    #: Amounts: the baseline is the last ``amount_history`` approved amounts of the wallet
    #: (per unit: USD, or the asset), used once there are ``min_history``.
    amount_history: int = 50
    min_history: int = 10
    #: ``burst_count`` out-of-pattern amounts within ``burst_window`` are a burst.
    burst_count: int = 3
    burst_window: float = 600.0
    #: Hours (UTC) are judged once the wallet has ``hour_history`` approved requests.
    hour_history: int = 20
    #: Rate: more than ``rate_factor`` times the wallet's usual count in ``rate_window``, and
    #: at least ``rate_min`` requests.
    rate_window: float = 600.0
    rate_factor: float = 3.0
    rate_min: int = 5
    #: One channel alert per node, reason and sender in each such period.
    channel_window: float = 600.0
    #: A node whose health check has failed this long is missing (0: at the first failure).
    missing_after: float = 6.0
    #: A wallet's epoch behind the other nodes' this long is lagging.
    lag_grace: float = 6.0
    #: A wallet's newest heartbeat signature older than this is stale.
    heartbeat_max_age: float = 300.0


@dataclass(frozen=True)
class Alert:
    """One alert: what happened, about whom, and the numbers behind it.

    ``id``: stable (:func:`alert_id` of the kind and subject); ``at``: when the monitor raised
    it; ``event_at``: when the evidence was written (the audit entry's time), if one entry is
    the evidence; ``parties``: the node names it is about (the blamed, the initiator, the
    sender); ``facts``: the rule's inputs (counts, baselines, request ids).

    ``status``: :data:`FIRING` for a raised alert; :data:`RESOLVED` for the resolution of a
    :data:`RESOLVABLE` one, which is the same alert (same id, kind, subject, ``at``, facts)
    with ``resolved_at`` (when the monitor saw the condition end) and ``message`` saying what
    ended. :attr:`key` tells the two apart.
    """

    id: str
    kind: str
    severity: str
    subject: str
    message: str
    at: float
    event_at: float | None = None
    node: str | None = None
    wallet: str | None = None
    request: str | None = None
    parties: tuple[str, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)
    status: str = FIRING
    resolved_at: float | None = None

    @property
    def key(self) -> str:
        """The key of this notification: the alert's ``id`` when firing, ``<id>:resolved`` for
        its resolution (the webhook's ``Idempotency-Key`` and the store's row)."""
        return self.id if self.status == FIRING else f"{self.id}:{self.status}"

    def to_json(self) -> dict[str, Any]:
        """The alert as a JSON object (what the log, the webhook and the dashboard get)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity,
            "subject": self.subject,
            "message": self.message,
            "at": self.at,
            "event_at": self.event_at,
            "node": self.node,
            "wallet": self.wallet,
            "request": self.request,
            "parties": list(self.parties),
            "facts": dict(self.facts),
            "status": self.status,
            "resolved_at": self.resolved_at,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Alert:
        """Parse :meth:`to_json`'s output (also an earlier version's, without ``status``: a
        firing alert); raises KeyError / TypeError / ValueError."""
        status = str(doc.get("status") or FIRING)
        if status not in (FIRING, RESOLVED):
            raise ValueError(f"alert status must be {FIRING!r} or {RESOLVED!r}, not {status!r}")
        return cls(
            id=str(doc["id"]),
            kind=str(doc["kind"]),
            severity=str(doc["severity"]),
            subject=str(doc["subject"]),
            message=str(doc["message"]),
            at=float(doc["at"]),
            event_at=None if doc.get("event_at") is None else float(doc["event_at"]),
            node=doc.get("node"),
            wallet=doc.get("wallet"),
            request=doc.get("request"),
            parties=tuple(str(p) for p in doc.get("parties") or ()),
            facts=dict(doc.get("facts") or {}),
            status=status,
            resolved_at=None if doc.get("resolved_at") is None else float(doc["resolved_at"]),
        )


class _Remembered:
    """A set of the most recent ``limit`` keys (oldest forgotten first)."""

    def __init__(self, limit: int = _REMEMBERED) -> None:
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def add(self, key: str) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self._limit:
            self._keys.popitem(last=False)


@dataclass
class _Request:
    """A request some node saw proposed or started, not completed yet (``ended``: it failed
    or a party refused it: it will never complete)."""

    rid: str
    coordinator: str
    first_at: float
    kind: str | None
    wallet: str | None
    blamed: set[str] = field(default_factory=set)
    ended: bool = False


@dataclass
class _WalletHistory:
    """A wallet's approved requests: the baselines of the anomaly rules."""

    seen: _Remembered = field(default_factory=_Remembered)
    amounts: dict[str, deque[Decimal]] = field(default_factory=dict)
    destinations: set[str] = field(default_factory=set)
    hours: set[int] = field(default_factory=set)
    count: int = 0
    first_at: float | None = None
    recent: deque[float] = field(default_factory=deque)
    anomalies: deque[tuple[float, str]] = field(default_factory=deque)


@dataclass
class _Health:
    last_ok: float | None = None
    failing_since: float | None = None
    error: str | None = None
    #: The first answer after the last failure (when the outage ended), if seen in this run.
    back_at: float | None = None


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def _names(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key)
    if not isinstance(value, list):
        return ()
    return tuple(sorted({v for v in value if isinstance(v, str) and v}))


def _decimal(value: object) -> Decimal | None:
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    try:
        d = Decimal(value)
    except InvalidOperation:
        return None
    return d if d.is_finite() and d >= 0 else None


def _destination(value: str) -> str:
    # Ethereum addresses are case-insensitive (EIP-55 case is a checksum); base58 is not.
    return value.lower() if value[:2] in ("0x", "0X") else value


class AlertEngine:
    """The rules of ``docs/monitoring.md`` ("Alerts") over one cluster's audit entries.

    ``scope`` (the cluster id) goes into every alert id. Feed entries in the order they were
    written (the monitor sorts each poll's new entries by time); call :meth:`evaluate` after
    each poll. Memory is bounded by the open requests, the wallets and a few bounded windows.
    """

    def __init__(self, scope: str, settings: AlertSettings | None = None) -> None:
        self.scope = scope
        self.settings = settings or AlertSettings()
        self._emitted: set[str] = set()
        #: Firing alerts and resolutions not returned yet, by :attr:`Alert.key`, in order.
        self._pending: dict[str, Alert] = {}
        #: The raised :data:`RESOLVABLE` alerts whose condition has not ended (yet), by id.
        self._firing: dict[str, Alert] = {}
        self._resolved: set[str] = set()
        self._open: dict[str, _Request] = {}
        self._finished = _Remembered()
        #: "node|session" of the sessions a node ended by a timeout or an abort: a message of
        #: such a session that arrives later is most likely a slow member's late message.
        self._failed_sessions = _Remembered()
        self._counted = _Remembered()
        self._refused_seen = _Remembered()
        self._wallets: dict[str, _WalletHistory] = {}
        self._heartbeats: dict[str, tuple[float, str]] = {}
        self._health: dict[str, _Health] = {}
        self._epochs: dict[str, dict[str, int]] = {}
        self._lag_since: dict[tuple[str, str, int], float] = {}

    # -- restart ------------------------------------------------------------------------------

    def restore(self, alerts: Iterable[Alert]) -> None:
        """Mark alerts raised and resolutions returned before a restart as such (call before
        replaying entries), in any order: a :data:`RESOLVABLE` alert without its resolution is
        open again, and is resolved when its condition ends."""
        for a in alerts:
            if a.status != FIRING:
                self._resolved.add(a.id)
                self._firing.pop(a.id, None)
                continue
            self._emitted.add(a.id)
            if a.kind in RESOLVABLE and a.id not in self._resolved:
                self._firing[a.id] = a
            if a.kind == STALLED_INITIATOR:
                for rid in a.facts.get("requests") or ():
                    self._counted.add(str(rid))

    def restore_health(self, node: str, last_ok: float | None, failing_since: float | None) -> None:
        """Restore a node's health record (so one outage keeps one ``node-missing`` id)."""
        self._health[node] = _Health(last_ok, failing_since)

    def health(self, node: str) -> tuple[float | None, float | None, str | None]:
        """``(last_ok, failing_since, last error)`` of ``node`` as observed."""
        h = self._health.get(node, _Health())
        return h.last_ok, h.failing_since, h.error

    def open_alerts(self) -> list[Alert]:
        """The raised :data:`RESOLVABLE` alerts whose condition has not ended, in order raised."""
        return list(self._firing.values())

    # -- raising ------------------------------------------------------------------------------

    def _raise(
        self,
        kind: str,
        subject: str,
        message: str,
        *,
        event_at: float | None = None,
        node: str | None = None,
        wallet: str | None = None,
        request: str | None = None,
        parties: Iterable[str] = (),
        severity: str | None = None,
        **facts: Any,
    ) -> None:
        aid = alert_id(self.scope, kind, subject)
        if kind in _CONDITIONS:
            # An occurrence that ended does not stop the same state from raising a new one (a
            # node rolled back to the same epoch): number the later occurrences. (An entry's
            # evidence, a heartbeat.failed, is one occurrence: replayed, it raises nothing.)
            base, n = subject, 1
            while aid in self._resolved:
                n += 1
                subject = f"{base}#{n}"
                aid = alert_id(self.scope, kind, subject)
        if aid in self._emitted or aid in self._pending:
            return
        alert = self._pending[aid] = Alert(
            id=aid,
            kind=kind,
            severity=severity or KINDS[kind],
            subject=subject,
            message=message,
            at=0.0,
            event_at=event_at,
            node=node,
            wallet=wallet,
            request=request,
            parties=tuple(parties),
            facts=facts,
        )
        if kind in RESOLVABLE:
            self._firing[aid] = alert

    def _resolve(self, alert: Alert, message: str) -> None:
        """The condition of the open ``alert`` ended (``message`` says how): queue its
        resolution (once: it is no longer open afterwards)."""
        if self._firing.pop(alert.id, None) is None:
            return
        self._resolved.add(alert.id)
        ended = replace(alert, status=RESOLVED, message=message)
        self._pending[ended.key] = ended

    def _open_of(self, kind: str) -> list[Alert]:
        return [a for a in self._firing.values() if a.kind == kind]

    def evaluate(self, now: float) -> list[Alert]:
        """The alerts due at Unix time ``now`` not returned before, in the order raised or
        resolved.

        Runs the rules about time (stalled requests, a missing or lagging node, a stale
        heartbeat) and checks whether the conditions of the open :data:`RESOLVABLE` alerts
        still hold, then returns every alert raised since the last call with ``at = now``
        (status :data:`FIRING`) and every resolution with ``resolved_at = now`` (status
        :data:`RESOLVED`; its ``at`` stays the alert's).
        """
        self._check_stalled(now)
        self._check_missing(now)
        self._check_lagging(now)
        self._check_heartbeats(now)
        out: list[Alert] = []
        raised_now: set[str] = set()
        for a in self._pending.values():
            if a.status == FIRING:
                a = replace(a, at=now)
                raised_now.add(a.id)
                self._emitted.add(a.id)
                if a.id in self._firing:
                    self._firing[a.id] = a
            else:  # a resolution; of an alert raised in this same call, if it has no time yet
                a = replace(a, at=now if a.id in raised_now else a.at, resolved_at=now)
            out.append(a)
        self._pending.clear()
        return out

    # -- entries ------------------------------------------------------------------------------

    def observe(self, entry: Entry) -> None:
        """Take one audit entry (already checked: chain and signature) into account."""
        d = entry.data
        t = entry.type
        if t in ("request.received", "request.proposed", "session.started"):
            self._track(entry)
        elif t in ("request.completed", "session.completed"):
            rid = _text(d, "request")
            if rid is not None:
                self._finished.add(rid)
                self._open.pop(rid, None)
        elif t in ("session.blame", "session.aborted", "session.timeout", "request.failed"):
            self._failed(entry)
        elif t == "request.refused":
            self._refused(entry)
        elif t == "request.approved":
            self._approved(entry)
        elif t == "message.rejected":
            self._rejected(entry)
        elif t == "heartbeat.ok":
            wallet = _text(d, "wallet")
            if wallet is not None:
                last = self._heartbeats.get(wallet)
                if last is None or entry.at >= last[0]:
                    self._heartbeats[wallet] = (entry.at, entry.node)
        elif t == "heartbeat.failed":
            wallet = _text(d, "wallet") or "?"
            error = _text(d, "error") or "no reason given"
            self._raise(
                HEARTBEAT_FAILED,
                f"{wallet}|{entry.node}|{entry.seq}",
                f"heartbeat signature of wallet {wallet} failed (coordinator {entry.node}, "
                f"{_when(entry.at)}): {error}",
                event_at=entry.at,
                node=entry.node,
                wallet=wallet,
                error=error,
            )

    def _track(self, entry: Entry) -> None:
        d = entry.data
        rid = _text(d, "request")
        if rid is None or rid in self._finished or rid in self._open:
            return
        coordinator = entry.node if entry.type == "request.received" else _text(d, "coordinator")
        if coordinator is None:
            return
        self._open[rid] = _Request(
            rid, coordinator, entry.at, _text(d, "kind") or _text(d, "protocol"), _text(d, "wallet")
        )

    def _failed(self, entry: Entry) -> None:
        d = entry.data
        rid = _text(d, "request")
        session = _text(d, "session")
        culprits = _names(d, "missing" if entry.type == "session.timeout" else "culprits")
        if session is not None and entry.type in ("session.timeout", "session.aborted"):
            self._failed_sessions.add(f"{entry.node}|{session}")
        if rid is not None and rid in self._open:
            self._open[rid].blamed.update(culprits)
            if entry.type == "request.failed" and not culprits:
                self._open[rid].ended = True  # never reached threshold: counts at once
        who = ", ".join(culprits) if culprits else "nobody (not attributable to one party)"
        what = f"request {rid}" if rid else f"session {session}"
        where = f" in session {session}" if session else ""
        if entry.type == "session.timeout":
            detail = f"timed out{where} waiting for {who}"
        elif entry.type == "session.blame":
            detail = f"blamed {who}{where}: {_text(d, 'reason') or 'no reason given'}"
        elif entry.type == "session.aborted":
            detail = f"aborted{where}: {_text(d, 'reason') or 'no reason given'}; blamed: {who}"
        else:
            kind = _text(d, "kind") or "request"
            detail = f"({kind}) failed: {_text(d, 'error') or 'no reason given'}; blamed: {who}"
        self._raise(
            SESSION_FAILED,
            f"{rid or session}|{','.join(culprits)}",
            f"{what} {detail} (reported by {entry.node})",
            event_at=entry.at,
            node=entry.node,
            wallet=_text(d, "wallet"),
            request=rid,
            parties=culprits,
            session=session,
            event=entry.type,
        )

    def _refused(self, entry: Entry) -> None:
        d = entry.data
        rid = _text(d, "request")
        if rid is None:
            return
        if rid in self._open:
            self._open[rid].ended = True  # refused: it never reaches threshold
        if rid in self._refused_seen:
            return
        self._refused_seen.add(rid)
        rule = _text(d, "rule")
        reason = _text(d, "reason") or "no reason given"
        coordinator = _text(d, "coordinator")
        wallet = _text(d, "wallet")
        unauthorized = bool(_UNAUTHORIZED.search(reason))
        by = f"rule {rule!r}" if rule else "the node's checks"
        about = f"request {rid} ({_text(d, 'kind') or 'request'}"
        about += f" on wallet {wallet})" if wallet else ")"
        coord = f" from coordinator {coordinator}" if coordinator else ""
        self._raise(
            UNAUTHORIZED_REQUEST if unauthorized else POLICY_REFUSAL,
            rid,
            f"{about}{coord} refused by {by} at {entry.node}: {reason}"
            + (" (no valid authorization)" if unauthorized else ""),
            event_at=entry.at,
            node=entry.node,
            wallet=wallet,
            request=rid,
            parties=(coordinator,) if coordinator else (),
            rule=rule,
            reason=reason,
            coordinator=coordinator,
        )

    def _rejected(self, entry: Entry) -> None:
        d = entry.data
        reason = _text(d, "reason") or "unknown"  # any reason: a new one is news too
        sender = _text(d, "sender") or "unknown"
        session = _text(d, "session")
        window = int(entry.at // self.settings.channel_window)
        # A message of a session this node ended by a timeout or an abort is most likely a
        # slow member's late message (a warning); of any other ended session, a replay.
        late = (
            reason == "stale"
            and session is not None
            and f"{entry.node}|{session}" in self._failed_sessions
        )
        if late:
            what = "a late message (its session had timed out or aborted there)"
        elif reason == "stale":
            what = "a replayed message (of a session that had ended there)"
        elif reason in REPLAY_REASONS:
            what = "a replayed message"
        else:
            what = f"a message ({reason})"
        self._raise(
            CHANNEL,
            f"{entry.node}|{'late' if late else reason}|{sender}|{window}",
            f"node {entry.node} rejected {what} claiming to come from {sender}"
            + (f" in session {session}" if session else ""),
            event_at=entry.at,
            node=entry.node,
            parties=(sender,) if sender != "unknown" else (),
            severity="warning" if late or reason in _CHANNEL_WARNING else None,
            reason=reason,
            sender=sender,
            replay=reason in REPLAY_REASONS and not late,
            late=late,
            session=session,
        )

    # -- anomalies against the wallet's own history ---------------------------------------------

    def _approved(self, entry: Entry) -> None:
        d = entry.data
        rid, wallet = _text(d, "request"), _text(d, "wallet")
        if rid is None or wallet is None:
            return
        h = self._wallets.setdefault(wallet, _WalletHistory())
        if rid in h.seen:  # every approving party writes one: judge each request once
            return
        h.seen.add(rid)
        s = self.settings
        t = entry.at
        prior = h.count
        usd, amount = _decimal(d.get("usd")), _decimal(d.get("amount"))
        value, unit = (usd, "USD") if usd is not None else (amount, _text(d, "asset") or "units")
        if value is not None:
            self._check_amount(entry, h, wallet, rid, value, unit)
        destinations = d.get("destinations")
        for dest in destinations if isinstance(destinations, list) else ():
            if not isinstance(dest, str) or not dest:
                continue
            norm = _destination(dest)
            if prior >= s.min_history and norm not in h.destinations:
                self._raise(
                    NEW_DESTINATION,
                    f"{wallet}|{norm}",
                    f"wallet {wallet} sends to {dest}, a destination none of its {prior} "
                    f"earlier approved requests used (request {rid})",
                    event_at=t,
                    node=entry.node,
                    wallet=wallet,
                    request=rid,
                    destination=dest,
                    history=prior,
                )
            h.destinations.add(norm)
        hour = datetime.datetime.fromtimestamp(t, datetime.UTC).hour
        if prior >= s.hour_history and hour not in h.hours:
            seen = ", ".join(f"{x:02d}" for x in sorted(h.hours))
            self._raise(
                UNUSUAL_HOUR,
                f"{wallet}|{rid}",
                f"wallet {wallet} signs at {hour:02d}h UTC (request {rid}), an hour none of its "
                f"{prior} earlier approved requests used (hours seen: {seen})",
                event_at=t,
                node=entry.node,
                wallet=wallet,
                request=rid,
                hour=hour,
                hours_seen=sorted(h.hours),
                history=prior,
            )
        h.hours.add(hour)
        self._check_rate(entry, h, wallet, rid)
        h.count += 1
        if h.first_at is None or t < h.first_at:
            h.first_at = t

    def _check_amount(
        self, entry: Entry, h: _WalletHistory, wallet: str, rid: str, value: Decimal, unit: str
    ) -> None:
        s = self.settings
        t = entry.at
        hist = h.amounts.setdefault(unit, deque(maxlen=s.amount_history))
        if len(hist) >= s.min_history:
            med, mad, limit = amount_limit(hist)
            if value > limit:
                self._raise(
                    AMOUNT_ANOMALY,
                    f"{wallet}|{rid}",
                    f"wallet {wallet}: {_num(value)} {unit} (request {rid}) is out of pattern: "
                    f"the median of its last {len(hist)} approved amounts is {_num(med)} {unit} "
                    f"(MAD {_num(mad)}), so the limit max(3 x median, median + 4 x MAD) is "
                    f"{_num(limit)} {unit}",
                    event_at=t,
                    node=entry.node,
                    wallet=wallet,
                    request=rid,
                    amount=str(value),
                    unit=unit,
                    median=str(med),
                    mad=str(mad),
                    limit=str(limit),
                    history=len(hist),
                )
                h.anomalies.append((t, rid))
                while h.anomalies and h.anomalies[0][0] < t - s.burst_window:
                    h.anomalies.popleft()
                if len(h.anomalies) >= s.burst_count:
                    rids = [r for _, r in h.anomalies]
                    self._raise(
                        AMOUNT_BURST,
                        f"{wallet}|{rid}",
                        f"wallet {wallet}: {len(rids)} out-of-pattern amounts within "
                        f"{s.burst_window / 60:g} minutes (requests {', '.join(rids)}); the "
                        f"limit was {_num(limit)} {unit} (median {_num(med)}, MAD {_num(mad)} "
                        f"of its last {len(hist)} approved amounts)",
                        event_at=t,
                        node=entry.node,
                        wallet=wallet,
                        request=rid,
                        requests=rids,
                        unit=unit,
                        limit=str(limit),
                        median=str(med),
                    )
                    h.anomalies.clear()
        hist.append(value)

    def _check_rate(self, entry: Entry, h: _WalletHistory, wallet: str, rid: str) -> None:
        s = self.settings
        t = entry.at
        h.recent.append(t)
        while h.recent and h.recent[0] <= t - s.rate_window:
            h.recent.popleft()
        recent = len(h.recent)
        before = h.count + 1 - recent  # approved before this window began
        if before < s.min_history or h.first_at is None:
            return
        hours = max(1.0, (t - s.rate_window - h.first_at) / 3600.0)
        expected = before / hours * (s.rate_window / 3600.0)
        if recent >= s.rate_min and recent > s.rate_factor * expected:
            minutes = s.rate_window / 60
            self._raise(
                RATE_ANOMALY,
                f"{wallet}|{int(t // s.rate_window)}",
                f"wallet {wallet}: {recent} approved requests in {minutes:g} minutes (up to "
                f"request {rid}); its usual rate is {expected:.2f} per {minutes:g} minutes "
                f"({before} requests over {hours:.1f} h), and the limit is "
                f"{s.rate_factor:g} x that, at least {s.rate_min}",
                event_at=t,
                node=entry.node,
                wallet=wallet,
                request=rid,
                recent=recent,
                expected=round(expected, 4),
                history=before,
                hours=round(hours, 2),
            )

    # -- observations -----------------------------------------------------------------------------

    def observe_health(self, node: str, ok: bool, now: float, error: str | None = None) -> None:
        """Whether ``node`` answered its health check at ``now`` (and why not)."""
        h = self._health.setdefault(node, _Health())
        if ok:
            if h.failing_since is not None:
                h.back_at = now  # the outage ended: its alert is resolved by the next evaluate
            h.last_ok, h.failing_since, h.error = now, None, None
        else:
            if h.failing_since is None:
                h.failing_since = now
            h.error = error

    def observe_wallets(self, node: str, epochs: Mapping[str, int], now: float) -> None:
        """The epoch of each wallet ``node`` holds, as its wallet list said at ``now``."""
        for wallet, epoch in epochs.items():
            self._epochs.setdefault(wallet, {})[node] = epoch
        for wallet, by_node in self._epochs.items():
            if wallet not in epochs:
                by_node.pop(node, None)
            top = max(by_node.values(), default=0)
            for n, e in by_node.items():
                key = (n, wallet, top)
                if e < top:
                    self._lag_since.setdefault(key, now)
        for key in list(self._lag_since):
            n, wallet, top = key
            held = self._epochs.get(wallet, {}).get(n)
            if held is None or held >= top or max(self._epochs[wallet].values()) != top:
                del self._lag_since[key]

    def observe_chain_problem(self, node: str, seq: int | None, reason: str, now: float) -> None:
        """``node``'s audit chain is broken at entry ``seq`` (or, None, as a whole)."""
        where = f"at entry {seq}" if seq is not None else "as a whole"
        self._raise(
            AUDIT_BROKEN,
            f"{node}|{seq}",
            f"audit chain of node {node} broken {where}: {reason}",
            event_at=now,
            node=node,
            parties=(node,),
            seq=seq,
            reason=reason,
        )

    # -- the rules about time -------------------------------------------------------------------

    def _check_stalled(self, now: float) -> None:
        s = self.settings
        by_coordinator: dict[str, list[_Request]] = {}
        for r in self._open.values():
            if r.rid in self._counted or (not r.ended and now - r.first_at <= s.stall_grace):
                continue
            if r.blamed and r.coordinator not in r.blamed:
                continue  # another party was blamed: that is a session-failed alert
            # Refused by a party (no valid authorization, or the policy) or silent: either way
            # it never reached threshold, and nobody else is to blame.
            by_coordinator.setdefault(r.coordinator, []).append(r)
        for coordinator, stalled in sorted(by_coordinator.items()):
            stalled.sort(key=lambda r: (r.first_at, r.rid))
            window: list[_Request] = []
            for r in stalled:
                window = [w for w in window if r.first_at - w.first_at <= s.stall_window]
                window.append(r)
                if len(window) < s.stall_count:
                    continue
                rids = [w.rid for w in window]
                self._raise(
                    STALLED_INITIATOR,
                    f"{coordinator}|{r.rid}",
                    f"node {coordinator} initiated {len(rids)} requests that never reached "
                    f"threshold within {s.stall_window / 60:g} minutes (each refused by a party, "
                    f"or unfinished {s.stall_grace:g} s after it started): {', '.join(rids)}",
                    event_at=r.first_at,
                    node=coordinator,
                    parties=(coordinator,),
                    requests=rids,
                    grace=s.stall_grace,
                )
                for w in window:
                    self._counted.add(w.rid)
                window = []
        horizon = now - s.stall_grace - s.stall_window
        for rid in [rid for rid, r in self._open.items() if r.first_at < horizon]:
            del self._open[rid]  # too old to join any alert from now on

    def _check_missing(self, now: float) -> None:
        # An outage ended when the node answered after it began (the answer's time survives a
        # restart in the stored health record: then the last answer stands for the first).
        for a in self._open_of(NODE_MISSING):
            h = self._health.get(a.node or "")
            start = a.event_at
            if h is None or h.last_ok is None or start is None or h.last_ok <= start:
                continue
            back = h.back_at if h.back_at is not None and h.back_at > start else h.last_ok
            self._resolve(
                a, f"node {a.node} answers its health check again after {back - start:.0f} s"
            )
        for node, h in sorted(self._health.items()):
            if h.failing_since is None or now - h.failing_since < self.settings.missing_after:
                continue
            seen = f"last seen {_when(h.last_ok)}" if h.last_ok is not None else "never seen"
            self._raise(
                NODE_MISSING,
                f"{node}|{h.failing_since!r}",
                f"node {node} does not answer since {_when(h.failing_since)} ({seen}): "
                f"{h.error or 'no answer'}",
                event_at=h.failing_since,
                node=node,
                parties=(node,),
                last_seen=h.last_ok,
                error=h.error,
            )

    def _check_lagging(self, now: float) -> None:
        # Caught up: the node holds the wallet at the epoch it was behind, or later, and no
        # node it was seen with holds a later one. (After a restart, until the nodes ahead are
        # seen again, the node alone is not enough: hence the alert's expected epoch.)
        for a in self._open_of(NODE_LAGGING):
            by_node = self._epochs.get(a.wallet or "", {})
            held, expected = by_node.get(a.node or ""), a.facts.get("expected_epoch")
            if held is None or not isinstance(expected, int) or held < expected:
                continue
            if held < max(by_node.values()):
                continue
            lagged = f" after {now - a.event_at:.0f} s" if a.event_at is not None else ""
            self._resolve(
                a,
                f"node {a.node} caught up{lagged}: it holds wallet {a.wallet} at epoch {held}, "
                f"the newest epoch any node holds",
            )
        for (node, wallet, top), since in sorted(self._lag_since.items()):
            if now - since < self.settings.lag_grace:
                continue
            epoch = self._epochs[wallet][node]
            ahead = sorted(n for n, e in self._epochs[wallet].items() if e == top)
            self._raise(
                NODE_LAGGING,
                f"{node}|{wallet}|{epoch}|{top}",
                f"node {node} holds wallet {wallet} at epoch {epoch}, behind epoch {top} on "
                f"{', '.join(ahead)} (since {_when(since)})",
                event_at=since,
                node=node,
                wallet=wallet,
                parties=(node,),
                epoch=epoch,
                expected_epoch=top,
            )

    def _check_heartbeats(self, now: float) -> None:
        # A stopped or failed heartbeat ended when a newer heartbeat.ok of the wallet came.
        for a in [*self._open_of(HEARTBEAT_STALE), *self._open_of(HEARTBEAT_FAILED)]:
            newest = self._heartbeats.get(a.wallet or "")
            if newest is None or a.event_at is None or newest[0] <= a.event_at:
                continue
            at, node = newest
            if a.kind == HEARTBEAT_STALE:
                before = f"the previous one ({_when(a.event_at)})"
            else:
                before = f"the failure ({_when(a.event_at)})"
            self._resolve(
                a,
                f"wallet {a.wallet}: heartbeat signature again at {_when(at)} (by {node}), "
                f"{at - a.event_at:.0f} s after {before}",
            )
        limit = self.settings.heartbeat_max_age
        for wallet, (at, node) in sorted(self._heartbeats.items()):
            age = now - at
            if age <= limit:
                continue
            self._raise(
                HEARTBEAT_STALE,
                f"{wallet}|{at!r}",
                f"wallet {wallet}: no heartbeat signature since {_when(at)} (by {node}), "
                f"{age:.0f} s ago; at most {limit:g} s allowed",
                event_at=at,
                wallet=wallet,
                node=node,
                last_heartbeat=at,
                age=round(age, 1),
                max_age=limit,
            )
