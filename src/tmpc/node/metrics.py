"""A node's Prometheus metrics (issue 12): what the engine counts, served at ``/metrics``.

Each :class:`NodeMetrics` has its own :class:`~prometheus_client.CollectorRegistry`, so several
nodes in one process (the tests) never share a series, and nothing lands in the library's
global registry. Every name starts with ``tmpc_``; there is no ``node`` label, since Prometheus
adds ``instance`` (and ``job``) to every series it scrapes.

=================================================  =========  ==============================
metric                                             type       labels
=================================================  =========  ==============================
``tmpc_sessions_started_total``                    counter    protocol
``tmpc_sessions_total``                            counter    protocol, outcome
``tmpc_sessions_running``                          gauge      protocol
``tmpc_session_seconds``                           histogram  protocol
``tmpc_round_seconds``                             histogram  protocol, round
``tmpc_requests_total``                            counter    kind, outcome
``tmpc_rejected_messages_total``                   counter    reason
``tmpc_policy_refusals_total``                     counter    rule
``tmpc_unauthorized_session_attempts_total``       counter    initiator
``tmpc_peers``                                     gauge
``tmpc_peers_reachable``                           gauge
``tmpc_presignatures``                             gauge      wallet (read at scrape time)
``tmpc_heartbeat_last_success_timestamp_seconds``  gauge      wallet
``tmpc_heartbeat_age_seconds``                     gauge      wallet (computed at scrape time)
``tmpc_heartbeat_failures_total``                  counter    wallet
``tmpc_wallet_epoch``                              gauge      wallet
``tmpc_audit_chain_head_seq``                      gauge
``tmpc_audit_chain_valid``                         gauge      (1 verified, 0 broken)
``tmpc_metrics_source_errors_total``               counter    source
=================================================  =========  ==============================

Session outcomes are exactly :data:`OUTCOMES`. Alert rules over these series ship in
``deploy/prometheus/tmpc-alerts.yml``.

Bounded label cardinality: a series per label value costs memory here and in Prometheus for
good, and some values come from the network (a rejection reason, an initiator's name or
certificate fingerprint). So every label value is cleaned and capped before use:

- characters outside ``[A-Za-z0-9_.:@/+-]`` become ``_``; the value is cut to
  :data:`MAX_LABEL_LENGTH` characters (a SHA-256 fingerprint in hex fits); an empty value
  becomes ``none``;
- each label keeps at most ``label_limit`` distinct values (default :data:`MAX_LABEL_VALUES`;
  ``wallet`` labels: ``wallet_limit``, default :data:`MAX_WALLET_VALUES`), first come first
  kept, for the life of the :class:`NodeMetrics`; any later new value is reported as
  :data:`OTHER` (``"other"``). A real value ``other`` shares that series.
  The ``protocol`` label is shared by all session metrics, so they agree on which
  protocols got a series of their own.

Counters with labels only appear once incremented, except the ``protocols`` given to the
constructor (their session series start at 0) and :data:`REJECTION_REASONS`; the shipped alert
rules account for that.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from tmpc.errors import ParameterError
from tmpc.wire.envelope import REASONS

__all__ = [
    "MAX_LABEL_LENGTH",
    "MAX_LABEL_VALUES",
    "MAX_WALLET_VALUES",
    "OTHER",
    "OUTCOMES",
    "REJECTION_REASONS",
    "NodeMetrics",
    "PoolSource",
]

log = logging.getLogger("tmpc.node")

#: How a session ended: ran to its result, aborted (a check named culprits, or a party
#: aborted), a round timed out, or this node refused to take part.
OUTCOMES: Final = frozenset({"completed", "aborted", "timeout", "refused"})
#: Rejection reasons whose series exist from the start at 0: every envelope rejection reason
#: (:data:`tmpc.wire.envelope.REASONS`) and ``duplicate`` (a replay of a message already had).
REJECTION_REASONS: Final = REASONS | {"duplicate"}
#: The label value standing for every value past a label's cap.
OTHER: Final = "other"
#: Longest label value kept (longer ones are cut).
MAX_LABEL_LENGTH: Final = 64
#: Default cap on distinct values of one label (reason, rule, initiator, protocol, ...).
MAX_LABEL_VALUES: Final = 64
#: Default cap on distinct values of a ``wallet`` label.
MAX_WALLET_VALUES: Final = 1024

#: Session latency buckets (seconds): a FROST signature in milliseconds up to a DKLs23
#: presignature batch or a DKG across slow links in minutes.
SESSION_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
#: One protocol round (seconds): bounded by the engine's round timeout (5 s by default).
ROUND_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

#: What the engine supplies for the pool gauge: called at every scrape, it returns the number
#: of unused presignatures this node holds, by wallet id.
PoolSource = Callable[[], Mapping[str, int]]

_SCRAPE_TIME: Final = (
    "tmpc_presignatures",
    "tmpc_heartbeat_age_seconds",
    "tmpc_audit_chain_head_seq",
    "tmpc_audit_chain_valid",
)
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.:@/+-]")


def _clean(value: object) -> str:
    text = _UNSAFE.sub("_", str(value))[:MAX_LABEL_LENGTH]
    return text or "none"


class _Capped:
    """One label's values: cleaned, and at most ``limit`` distinct ones (then :data:`OTHER`)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ParameterError("a label's value limit must be at least 1")
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: object) -> str:
        text = _clean(value)
        with self._lock:
            if text in self._seen:
                return text
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(text)
            return text


def _seconds(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ParameterError("a duration must be a finite number of seconds, at least 0")
    return float(value)


class _ScrapeTime:
    """The gauges computed when Prometheus scrapes: pool sizes and heartbeat ages."""

    def __init__(self, owner: NodeMetrics) -> None:
        self._owner = owner

    def describe(self) -> Iterable[Metric]:
        """The families this collector yields (names only, for the registry's checks)."""
        return [GaugeMetricFamily(name, "") for name in _SCRAPE_TIME]

    def collect(self) -> Iterable[Metric]:
        """Read the pool source, the clock and the audit state now."""
        return [
            self._owner._pool_family(),
            self._owner._age_family(),
            *self._owner._audit_families(),
        ]


class NodeMetrics:
    """One node's metrics, in a registry of its own (see the module docstring).

    The engine calls the event methods (:meth:`session_started`, :meth:`round_done`,
    :meth:`rejected`, ...) as things happen; the server answers ``GET /metrics`` with
    :meth:`render`. Methods are thread-safe and never block on I/O.

    Args:
        protocols: protocol names whose session series (every outcome) exist from the start
            at 0, so that ``rate()`` and ``increase()`` see their first event.
        clock: the wall clock (Unix seconds) for heartbeat ages; tests pass a fixed one.
        label_limit: the cap on distinct values of each label other than ``wallet``.
        wallet_limit: the cap on distinct ``wallet`` values.

    Raises:
        ParameterError: a limit below 1.
    """

    def __init__(
        self,
        protocols: Iterable[str] = (),
        *,
        clock: Callable[[], float] = time.time,
        label_limit: int = MAX_LABEL_VALUES,
        wallet_limit: int = MAX_WALLET_VALUES,
    ) -> None:
        #: This node's registry (never the library's global one).
        self.registry = CollectorRegistry(auto_describe=False)
        self._clock = clock
        self._lock = threading.Lock()
        self._protocol = _Capped(label_limit)
        self._round = _Capped(label_limit)
        self._request_outcome = _Capped(label_limit)
        self._kind = _Capped(label_limit)
        self._reason = _Capped(label_limit)
        self._rule = _Capped(label_limit)
        self._initiator = _Capped(label_limit)
        self._wallet = _Capped(wallet_limit)
        self._source = _Capped(label_limit)
        self._running: dict[str, int] = {}
        self._heartbeats: dict[str, float] = {}
        self._pool_source: PoolSource | None = None
        self._audit_head: Callable[[], int] | None = None
        self._audit_valid: bool | None = None

        r = self.registry
        self._started = Counter(
            "tmpc_sessions_started",
            "Protocol sessions this node started taking part in",
            ["protocol"],
            registry=r,
        )
        self._sessions = Counter(
            "tmpc_sessions",
            "Protocol sessions that ended here, by outcome (completed, aborted, timeout, refused)",
            ["protocol", "outcome"],
            registry=r,
        )
        self._running_gauge = Gauge(
            "tmpc_sessions_running", "Protocol sessions running here", ["protocol"], registry=r
        )
        self._session_seconds = Histogram(
            "tmpc_session_seconds",
            "Duration of protocol sessions, start to end, any outcome",
            ["protocol"],
            buckets=SESSION_BUCKETS,
            registry=r,
        )
        self._round_seconds = Histogram(
            "tmpc_round_seconds",
            "Duration of one protocol round here, its start to its last message received",
            ["protocol", "round"],
            buckets=ROUND_BUCKETS,
            registry=r,
        )
        self._requests = Counter(
            "tmpc_requests",
            "Operator requests (sign, dkg, presign, rotate, ...) this node handled, by outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self._rejected = Counter(
            "tmpc_rejected_messages",
            "Messages refused before reaching a protocol (replays, bad signatures, ...)",
            ["reason"],
            registry=r,
        )
        self._refusals = Counter(
            "tmpc_policy_refusals",
            "Signing requests the policy refused here, by the rule that refused",
            ["rule"],
            registry=r,
        )
        self._unauthorized = Counter(
            "tmpc_unauthorized_session_attempts",
            "Attempts to start or join a session by a party not allowed to",
            ["initiator"],
            registry=r,
        )
        self._peers = Gauge("tmpc_peers", "Other members of this node's cluster", registry=r)
        self._peers_reachable = Gauge(
            "tmpc_peers_reachable", "Other members reachable at the last check", registry=r
        )
        self._heartbeat_at = Gauge(
            "tmpc_heartbeat_last_success_timestamp_seconds",
            "When a wallet's last heartbeat succeeded (Unix seconds)",
            ["wallet"],
            registry=r,
        )
        self._heartbeat_failures = Counter(
            "tmpc_heartbeat_failures",
            "Failed heartbeats of a wallet",
            ["wallet"],
            registry=r,
        )
        self._epoch = Gauge(
            "tmpc_wallet_epoch", "A wallet's share epoch on this node", ["wallet"], registry=r
        )
        self._source_errors = Counter(
            "tmpc_metrics_source_errors",
            "Scrape-time sources (callables the engine supplies) that raised",
            ["source"],
            registry=r,
        )
        r.register(_ScrapeTime(self))
        for reason in sorted(REJECTION_REASONS):
            self._rejected.labels(self._reason(reason))
        for protocol in protocols:
            p = self._protocol(protocol)
            self._started.labels(p)
            self._running_gauge.labels(p).set(0)
            for outcome in sorted(OUTCOMES):
                self._sessions.labels(p, outcome)

    # -- sessions ---------------------------------------------------------------------------

    def session_started(self, protocol: str) -> None:
        """A session of ``protocol`` started here (counted, and running until it ends)."""
        p = self._protocol(protocol)
        self._started.labels(p).inc()
        with self._lock:
            self._running[p] = self._running.get(p, 0) + 1
            self._running_gauge.labels(p).set(self._running[p])

    def session_ended(self, protocol: str, outcome: str, seconds: float) -> None:
        """A session of ``protocol`` ended with ``outcome`` after ``seconds``.

        Args:
            protocol: the protocol's name, as given to :meth:`session_started`.
            outcome: one of :data:`OUTCOMES`.
            seconds: the session's duration (its latency histogram).

        Raises:
            ParameterError: an outcome not in :data:`OUTCOMES`, or a negative or not finite
                duration (nothing is counted).
        """
        if outcome not in OUTCOMES:
            raise ParameterError(f"unknown session outcome (one of {sorted(OUTCOMES)})")
        duration = _seconds(seconds)
        p = self._protocol(protocol)
        self._sessions.labels(p, outcome).inc()
        self._session_seconds.labels(p).observe(duration)
        with self._lock:
            # A session that ended without a start here (one lost in a restart) never
            # drives the gauge below 0.
            self._running[p] = max(0, self._running.get(p, 0) - 1)
            self._running_gauge.labels(p).set(self._running[p])

    def round_done(self, protocol: str, round: int | str, seconds: float) -> None:
        """One round of a ``protocol`` session took ``seconds`` here.

        Raises:
            ParameterError: a negative or not finite duration.
        """
        duration = _seconds(seconds)
        self._round_seconds.labels(self._protocol(protocol), self._round(round)).observe(duration)

    def request(self, kind: str, outcome: str) -> None:
        """An operator request of ``kind`` (sign, dkg, ...) ended with ``outcome`` (free text,
        capped like every label: e.g. ``signed``, ``failed``, ``refused``)."""
        self._requests.labels(self._kind(kind), self._request_outcome(outcome)).inc()

    # -- refusals ---------------------------------------------------------------------------

    def rejected(self, reason: str) -> None:
        """A received message was refused before any protocol saw it, for ``reason`` (an
        envelope rejection reason such as ``stale`` or ``tampered``, or ``duplicate``)."""
        self._rejected.labels(self._reason(reason)).inc()

    def policy_refused(self, rule: str) -> None:
        """The signing policy refused a request here; ``rule`` names the rule that did."""
        self._refusals.labels(self._rule(rule)).inc()

    def unauthorized(self, initiator: str) -> None:
        """``initiator`` (a node or operator name, or a certificate fingerprint) tried to
        start or join a session it may not. Capped: past the label's limit it is ``other``."""
        self._unauthorized.labels(self._initiator(initiator)).inc()

    # -- state ------------------------------------------------------------------------------

    def set_peers(self, reachable: int, total: int) -> None:
        """Of this node's ``total`` peers (other members), ``reachable`` answered last time.

        Raises:
            ParameterError: negative counts, or more reachable than total.
        """
        if not 0 <= reachable <= total:
            raise ParameterError("reachable peers must be between 0 and the total")
        self._peers.set(total)
        self._peers_reachable.set(reachable)

    def set_pool_source(self, source: PoolSource | None) -> None:
        """Read the presignature pool from ``source`` at every scrape (None: no pool gauge).

        ``source()`` returns ``{wallet id: unused presignatures held}``. It runs on the thread
        serving ``/metrics``, so it **must not** block for long. If it raises, the scrape
        still succeeds without the pool gauge and ``tmpc_metrics_source_errors_total``
        counts it. Wallets past the cap are summed into ``wallet="other"``.
        """
        with self._lock:
            self._pool_source = source

    def heartbeat_ok(self, wallet: str, at: float | None = None) -> None:
        """A heartbeat of ``wallet`` succeeded at ``at`` (Unix seconds; default: now). An
        earlier time than the one recorded is ignored."""
        w = self._wallet(wallet)
        when = self._clock() if at is None else float(at)
        with self._lock:
            if when < self._heartbeats.get(w, -math.inf):
                return
            self._heartbeats[w] = when
            self._heartbeat_at.labels(w).set(when)

    def heartbeat_failed(self, wallet: str) -> None:
        """A heartbeat of ``wallet`` failed."""
        self._heartbeat_failures.labels(self._wallet(wallet)).inc()

    def set_epoch(self, wallet: str, epoch: int) -> None:
        """``wallet`` is at share epoch ``epoch`` on this node."""
        self._epoch.labels(self._wallet(wallet)).set(epoch)

    def set_audit_head(self, seq: int) -> None:
        """The audit chain's head is at sequence number ``seq`` (no series until set)."""
        head = int(seq)
        self.set_audit_head_source(lambda: head)

    def set_audit_head_source(self, source: Callable[[], int] | None) -> None:
        """Read the audit chain's head seq from ``source`` at every scrape (a node passes its
        log's :attr:`~tmpc.audit.AuditLog.seq`: nothing to update per entry); None: no series.
        ``source()`` **must not** block. If it raises, the scrape still succeeds without the
        series and ``tmpc_metrics_source_errors_total`` counts it."""
        with self._lock:
            self._audit_head = source

    def set_audit_valid(self, valid: bool) -> None:
        """The audit chain verified (True) or did not (False) at the last check (no series
        until set, so a node that has not checked yet raises no alert)."""
        with self._lock:
            self._audit_valid = bool(valid)

    # -- exposition -------------------------------------------------------------------------

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition of every metric, and its ``Content-Type``.

        Args:
            accept: the scraper's ``Accept`` header. None or a plain one gives the classic
                text format (``text/plain; version=0.0.4``); Prometheus asks for OpenMetrics
                and gets it.

        Returns:
            ``(body, content type)``, for the ``/metrics`` response as they are.
        """
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    # -- scrape-time families ---------------------------------------------------------------

    def _pool_family(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "tmpc_presignatures", "Unused presignatures this node holds", labels=["wallet"]
        )
        with self._lock:
            source = self._pool_source
        if source is None:
            return family
        try:
            sizes = dict(source())
        # A scrape must not fail because one source did: the failure is counted and logged,
        # and every other metric still goes out.
        except Exception as exc:
            self._source_errors.labels(self._source("presignatures")).inc()
            log.warning("metrics: the presignature pool source failed: %r", exc)
            return family
        totals: dict[str, float] = {}
        for wallet, size in sizes.items():
            w = self._wallet(wallet)
            totals[w] = totals.get(w, 0) + size
        for w in sorted(totals):
            family.add_metric([w], totals[w])
        return family

    def _age_family(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "tmpc_heartbeat_age_seconds",
            "Seconds since a wallet's last successful heartbeat (at scrape time)",
            labels=["wallet"],
        )
        now = self._clock()
        with self._lock:
            last = dict(self._heartbeats)
        for w in sorted(last):
            family.add_metric([w], max(0.0, now - last[w]))
        return family

    def _audit_families(self) -> list[GaugeMetricFamily]:
        with self._lock:
            source, valid = self._audit_head, self._audit_valid
        head = None
        if source is not None:
            try:
                head = int(source())
            # As for the pool: a failing source costs its series, never the scrape.
            except Exception as exc:
                self._source_errors.labels(self._source("audit")).inc()
                log.warning("metrics: the audit head source failed: %r", exc)
        families = []
        if head is not None:
            families.append(
                GaugeMetricFamily(
                    "tmpc_audit_chain_head_seq", "Sequence number of the audit chain's head", head
                )
            )
        if valid is not None:
            families.append(
                GaugeMetricFamily(
                    "tmpc_audit_chain_valid",
                    "1 if the audit chain verified at the last check, 0 if it is broken",
                    1 if valid else 0,
                )
            )
        return families
