"""The monitor: poll every node, check its audit chain, raise, record and deliver alerts.

:class:`Monitor` is one cluster's monitor over its :class:`~tmpc.monitor.sources.NodeSource`
objects and its :class:`~tmpc.monitor.store.MonitorStore`. Each :meth:`Monitor.poll`:

1. asks every node, concurrently, for its health, then for its audit entries after the last
   one held (pages of ``audit_page``), its wallets and its sessions;
2. checks each new entry with the node's :class:`~tmpc.audit.verify.ChainChecker` (chain, and
   signature under the host key the cluster file lists): the first bad entry raises one
   ``audit-broken`` alert, and nothing after it is taken from that node;
3. stores the good entries, feeds them (sorted by time) to the alert engine and the dashboard's
   view, and records the alerts the engine returns (raised ones, and resolutions of those whose
   condition ended); each new one goes to the log and wakes the webhook senders.

:func:`run_monitor` runs polls every ``interval`` seconds with the dashboard and the webhook
senders until its stop event is set; :func:`run_once` does one poll and one delivery attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tmpc import schemes
from tmpc.audit.entry import Entry, canonical_json
from tmpc.audit.verify import ChainChecker
from tmpc.errors import ParameterError, TmpcError
from tmpc.monitor.alerts import Alert, AlertEngine, AlertSettings
from tmpc.monitor.delivery import ALERTS_FILE, AlertLog, WebhookSender, wait_for
from tmpc.monitor.sources import NodeSource, SourceError
from tmpc.monitor.store import MonitorStore
from tmpc.monitor.view import ActivityView, merge_live_sessions
from tmpc.node.config import Cluster

__all__ = ["Monitor", "MonitorSettings", "NodeState", "run_monitor", "run_once", "wallet_addresses"]

_ALERTS_SHOWN: Final = 100


@dataclass(frozen=True)
class MonitorSettings:
    """How the monitor polls and judges (seconds unless said otherwise).

    ``interval``: between polls; ``stall_after``: a request with no outcome this long (plus two
    intervals) counts as stalled; ``heartbeat_max_age``: a wallet's newest heartbeat signature
    may be this old; ``missing_intervals``: a node whose health check fails for this many
    intervals is missing; ``audit_page`` / ``audit_pages``: entries asked per call and calls per
    node per poll; ``network``: the addresses' network; ``once``: one pass (a node that does
    not answer is missing at once, an epoch behind is lagging at once).
    """

    interval: float = 2.0
    stall_after: float = 30.0
    heartbeat_max_age: float = 300.0
    missing_intervals: int = 3
    audit_page: int = 500
    audit_pages: int = 20
    network: str = "mainnet"
    once: bool = False

    def alert_settings(self) -> AlertSettings:
        """The alert engine's settings these imply."""
        return AlertSettings(
            stall_grace=self.stall_after + 2 * self.interval,
            missing_after=0.0 if self.once else self.missing_intervals * self.interval,
            lag_grace=0.0 if self.once else 3 * self.interval,
            heartbeat_max_age=self.heartbeat_max_age,
        )


@dataclass
class NodeState:
    """What the monitor knows of one node."""

    name: str
    url: str
    checker: ChainChecker
    up: bool | None = None
    last_seen: float | None = None
    error: str | None = None
    audit_error: str | None = None
    remote_seq: int | None = None
    problem: str | None = None
    counters: dict[str, Any] = field(default_factory=dict)
    wallets: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The node's row on the dashboard."""
        epochs = {
            str(w["wallet_id"]): w.get("epoch")
            for w in self.wallets
            if isinstance(w, dict) and "wallet_id" in w
        }
        return {
            "name": self.name,
            "url": self.url,
            "up": self.up,
            "last_seen": self.last_seen,
            "error": self.error,
            "audit_error": self.audit_error,
            "audit_seq": self.checker.seq,
            "remote_seq": self.remote_seq,
            "chain_ok": self.problem is None,
            "chain_problem": self.problem,
            "epochs": epochs,
            "counters": self.counters,
        }


def _alert_row(alert: Alert, resolution: Alert | None) -> dict[str, Any]:
    """An alert on the dashboard: as raised, and once resolved with its ``status``,
    ``resolved_at`` and ``resolution`` (the resolution's message)."""
    row = alert.to_json()
    row["resolution"] = None
    if resolution is not None:
        row.update(
            status=resolution.status,
            resolved_at=resolution.resolved_at,
            resolution=resolution.message,
        )
    return row


def wallet_addresses(record: schemes.WalletRecord, network: str) -> list[dict[str, str]]:
    """The addresses ``tmpc address`` prints for ``record`` on ``network``, as ``{"kind",
    "address"}`` (Ethereum and P2WPKH for ECDSA, Taproot, Solana; none for a scheme without a
    chain address)."""
    from tmpc.chains.addresses import ethereum_address, p2wpkh_address
    from tmpc.protocols.taproot import taproot_address
    from tmpc.schemes.addresses import wallet_address

    scheme = schemes.get_scheme(record.scheme)
    pk = schemes.public_key_at(record, None)
    if "ethereum" in scheme.chains:
        return [
            {"kind": "ethereum", "address": ethereum_address(pk)},
            {"kind": "bitcoin-p2wpkh", "address": p2wpkh_address(pk, network)},
        ]
    if scheme.taproot:
        return [{"kind": "bitcoin-taproot", "address": taproot_address(pk, network)}]
    try:
        addr, kind = wallet_address(record, network)
    except ParameterError:
        return []
    return [{"kind": kind, "address": addr}]


class Monitor:
    """One cluster's monitor (see the module docstring).

    Args:
        cluster: the cluster file: its members are the nodes, their host keys check the logs.
        sources: one source per member, by name.
        store: the state; :meth:`load` replays it.
        settings: see :class:`MonitorSettings`.
        clock: Unix time (tests pass their own).
        echo: status and alert lines (the CLI writes them to standard error).
        log_alerts: whether each alert also goes to ``echo`` (it always goes to
            ``STATE/alerts.jsonl``).

    Raises:
        ParameterError: a member has no source, or a source is not a member.
    """

    def __init__(
        self,
        cluster: Cluster,
        sources: Mapping[str, NodeSource],
        store: MonitorStore,
        *,
        settings: MonitorSettings | None = None,
        clock: Callable[[], float] = time.time,
        echo: Callable[[str], None] | None = None,
        log_alerts: bool = True,
    ) -> None:
        if set(sources) != set(cluster.names):
            raise ParameterError("the monitor needs one source per cluster member, by name")
        self.cluster = cluster
        self.settings = settings or MonitorSettings()
        self.sources = dict(sources)
        self.store = store
        self.clock = clock
        self._echo = echo
        self.engine = AlertEngine(cluster.id, self.settings.alert_settings())
        self.view = ActivityView()
        self.nodes = {
            c.name: NodeState(c.name, c.url, ChainChecker(c.name, c.host_pubkey, cluster=cluster))
            for c in cluster.members
        }
        self.alert_log = AlertLog(store.directory / ALERTS_FILE, echo if log_alerts else None)
        self._listeners: list[Callable[[list[Alert]], None]] = []
        self._addresses: dict[tuple[str, int, str], dict[str, Any]] = {}
        self.polls = 0

    def _say(self, line: str) -> None:
        if self._echo is not None:
            self._echo(line)

    def on_alerts(self, listener: Callable[[list[Alert]], None]) -> None:
        """Call ``listener`` with each poll's new alerts and resolutions (after they are
        recorded)."""
        self._listeners.append(listener)

    # -- restart --------------------------------------------------------------------------------

    def load(self) -> None:
        """Take up the stored state: the nodes' chains, the entries (replayed into the engine
        and the view, raising nothing already raised), the alerts still open (resolved when
        their condition ends, once) and the nodes' health records."""
        self.engine.restore([*self.store.alerts(), *self.store.resolutions()])
        for c in self.cluster.members:
            if self.store.bind_node(c.name, c.host_pubkey.hex()):
                self._say(f"node {c.name} has a new host key: its log is collected anew")
            state = self.nodes[c.name]
            for line in self.store.node_lines(c.name):
                if state.checker.add(state.checker.seq + 1, line) is None:
                    self._broken(state, "the monitor's stored copy")
                    break
            last_ok, failing_since = self.store.health(c.name)
            self.engine.restore_health(c.name, last_ok, failing_since)
            state.last_seen = last_ok
        for _node, line in self.store.all_lines():
            entry = Entry.from_line(line)
            self.engine.observe(entry)
            self.view.observe(entry)

    def _broken(self, state: NodeState, where: str = "") -> None:
        problem = state.checker.problem
        if problem is None:  # pragma: no cover (called after a failed add)
            return
        state.problem = str(problem) + (f" ({where})" if where else "")
        self.engine.observe_chain_problem(state.name, problem.seq, problem.reason, self.clock())

    # -- polling ----------------------------------------------------------------------------------

    async def poll(self) -> list[Alert]:
        """One pass over every node (see the module docstring); returns the new alerts and
        resolutions (:attr:`~tmpc.monitor.alerts.Alert.status`)."""
        batches = await asyncio.gather(*(self._poll_node(s) for s in self.nodes.values()))
        new = sorted((e for b in batches for e in b), key=lambda e: (e.at, e.node, e.seq))
        if new:
            self.store.add_entries((e.node, e.seq, e.at, e.type, e.to_line()) for e in new)
        for e in new:
            self.engine.observe(e)
            self.view.observe(e)
        for name in self.nodes:
            last_ok, failing_since, _error = self.engine.health(name)
            self.store.set_health(name, last_ok, failing_since)
        fresh = [a for a in self.engine.evaluate(self.clock()) if self.store.add_alert(a)]
        for a in fresh:
            self.alert_log.write(a)
        if fresh:
            for listener in self._listeners:
                listener(fresh)
        self.polls += 1
        return fresh

    async def _poll_node(self, state: NodeState) -> list[Entry]:
        source = self.sources[state.name]
        asked = self.clock()  # an outage dates from the request that failed, not its timeout
        try:
            health = await source.health()
        except SourceError as exc:
            if state.up is not False:
                self._say(f"node {state.name} does not answer: {exc}")
            state.up, state.error = False, str(exc)
            self.engine.observe_health(state.name, False, asked, str(exc))
            return []
        now = self.clock()
        if state.up is not True:
            self._say(f"node {state.name} is up")
        state.up, state.error, state.last_seen = True, None, now
        counters = health.get("counters")
        state.counters = dict(counters) if isinstance(counters, dict) else {}
        self.engine.observe_health(state.name, True, now)
        entries = await self._collect(state, source)
        try:
            wallets = (await source.wallets()).get("wallets")
            state.wallets = [w for w in wallets if isinstance(w, dict)] if isinstance(
                wallets, list
            ) else []  # fmt: skip
            epochs = {
                str(w["wallet_id"]): int(w["epoch"])
                for w in state.wallets
                if isinstance(w.get("wallet_id"), str)
                and isinstance(w.get("epoch"), int)
                and "error" not in w
            }
            self.engine.observe_wallets(state.name, epochs, now)
        except SourceError as exc:
            state.error = str(exc)
        try:
            sessions = (await source.sessions()).get("sessions")
            state.sessions = (
                [s for s in sessions if isinstance(s, dict)] if isinstance(sessions, list) else []
            )
        except SourceError as exc:
            state.error = str(exc)
        return entries

    async def _collect(self, state: NodeState, source: NodeSource) -> list[Entry]:
        out: list[Entry] = []
        if state.problem is not None:
            return out  # a broken chain: nothing after the bad entry can be vouched for
        checker = state.checker
        page = self.settings.audit_page
        for _ in range(self.settings.audit_pages):
            after = checker.seq
            try:
                doc = await source.audit(after, page)
            except SourceError as exc:
                state.audit_error = str(exc)
                return out
            state.audit_error = None
            entries, remote = doc.get("entries"), doc.get("seq")
            if not isinstance(entries, list):
                state.audit_error = f"node {state.name} sent a malformed audit answer"
                return out
            if isinstance(remote, int) and not isinstance(remote, bool):
                state.remote_seq = remote
                if remote < after:
                    reason = (
                        f"the node's log ends at entry {remote}, but the monitor collected "
                        f"{after} entries of it (truncated or replaced)"
                    )
                    state.problem = f"entry {remote + 1}: {reason}"
                    self.engine.observe_chain_problem(state.name, remote + 1, reason, self.clock())
                    return out
            for raw in entries:
                seq = raw.get("seq") if isinstance(raw, dict) else None
                if isinstance(seq, int) and not isinstance(seq, bool) and seq <= checker.seq:
                    continue  # already held (pages may overlap)
                try:
                    line = canonical_json(raw)
                except (TypeError, ValueError):
                    line = b"not JSON"
                entry = checker.add(checker.seq + 1, line)
                if entry is None:
                    self._broken(state)
                    return out
                out.append(entry)
            if len(entries) < page:
                break
        return out

    # -- the dashboard's state --------------------------------------------------------------------

    def _wallet_row(self, w: Mapping[str, Any]) -> dict[str, Any]:
        wid = str(w.get("wallet_id"))
        raw_epoch = w.get("epoch")
        epoch = raw_epoch if isinstance(raw_epoch, int) else -1
        key = (wid, epoch, str(w.get("public_key")))
        row = self._addresses.get(key)
        if row is not None:
            return row
        parties = w.get("parties") if isinstance(w.get("parties"), list) else []
        row = {
            "wallet_id": wid,
            "key_id": w.get("key_id"),
            "group": w.get("group"),
            "scheme": w.get("scheme"),
            "threshold": w.get("threshold"),
            "parties": parties,
            "n": len(parties or []),
            "public_key": w.get("public_key"),
            "epoch": w.get("epoch"),
            "addresses": [],
            "record_error": None,
        }
        record_doc = w.get("record")
        if isinstance(record_doc, dict):
            try:
                record = schemes.WalletRecord.from_json(record_doc)
                if record.public_key.hex() != w.get("public_key"):
                    row["record_error"] = "the record's public key differs from the listed one"
                else:
                    row["addresses"] = wallet_addresses(record, self.settings.network)
            except (TmpcError, KeyError, TypeError, ValueError) as exc:
                row["record_error"] = f"the wallet's record does not hold: {exc}"
        else:
            row["record_error"] = "the node sent no public record"
        self._addresses[key] = row
        return row

    def snapshot(self) -> dict[str, Any]:
        """Everything the dashboard shows (``GET /api/state``), as JSON."""
        now = self.clock()
        wallets: dict[str, dict[str, Any]] = {}
        for name, state in sorted(self.nodes.items()):
            for w in state.wallets:
                if "error" in w or not isinstance(w.get("wallet_id"), str):
                    continue
                row = dict(self._wallet_row(w))
                have = wallets.get(row["wallet_id"])
                if have is None or (row["epoch"] or 0) > (have["epoch"] or 0):
                    row["nodes"] = sorted({*(have["nodes"] if have else ()), name})
                    wallets[row["wallet_id"]] = row
                else:
                    have["nodes"] = sorted({*have["nodes"], name})
        audit_open = self.view.open_sessions(now)
        from_nodes = {n: s.sessions for n, s in self.nodes.items()}
        ids = {str(s["session"]) for s in audit_open}
        ids.update(str(s.get("session")) for ss in from_nodes.values() for s in ss)
        rounds = {sid: self.view.round_of(sid) for sid in ids}
        return {
            "cluster": self.cluster.id,
            "now": now,
            "interval": self.settings.interval,
            "polls": self.polls,
            "nodes": [s.to_json() for _, s in sorted(self.nodes.items())],
            "wallets": sorted(wallets.values(), key=lambda w: str(w["wallet_id"])),
            "sessions": merge_live_sessions(audit_open, from_nodes, rounds),
            "signatures": self.view.signatures()[:20],
            "signatures_total": self.view.total_signatures,
            "alerts": [_alert_row(a, r) for a, r in self.store.alert_states(_ALERTS_SHOWN)],
            "alert_count": self.store.alert_count(),
            "latency": self.view.latency(),
            "volume": self.view.volume(now),
        }

    async def close(self) -> None:
        """Close the sources (the store belongs to the caller)."""
        for source in self.sources.values():
            await source.close()


async def run_once(monitor: Monitor, webhooks: Sequence[WebhookSender]) -> list[Alert]:
    """One poll, then one delivery attempt per webhook (no back-off: what stays undelivered
    is posted by the next run). Returns the poll's new alerts."""
    monitor.load()
    try:
        alerts = await monitor.poll()
        for w in webhooks:
            await w.deliver_pending()
        return alerts
    finally:
        for w in webhooks:
            await w.close()
        await monitor.close()


async def run_monitor(
    monitor: Monitor,
    stop: asyncio.Event,
    *,
    webhooks: Sequence[WebhookSender] = (),
    listen: tuple[str, int] | None = None,
    ready: Callable[[str | None], None] | None = None,
) -> None:
    """Poll every ``interval`` seconds until ``stop`` is set, with the dashboard on ``listen``
    (None: no dashboard) and the webhook senders running; ``ready`` is called with the
    dashboard's URL once it listens (after the stored state is loaded).

    Raises ParameterError if the dashboard cannot listen (address in use).
    """
    from tmpc.monitor.dashboard import start_dashboard

    monitor.load()

    def wake(_alerts: list[Alert]) -> None:
        for w in webhooks:
            w.wake()

    monitor.on_alerts(wake)
    runner = None
    tasks: list[asyncio.Task[None]] = []
    try:
        url = None
        if listen is not None:
            runner, url = await start_dashboard(monitor, *listen)
        tasks = [asyncio.create_task(w.run(stop)) for w in webhooks]
        if ready is not None:
            ready(url)
        while not stop.is_set():
            await monitor.poll()
            await wait_for([stop], monitor.settings.interval)
    finally:
        stop.set()
        for w in webhooks:
            w.wake()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in webhooks:
            await w.close()
        if runner is not None:
            await runner.cleanup()
        await monitor.close()
