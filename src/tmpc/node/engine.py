"""The node's session engine: requests, attempts, readiness, sessions, timeouts, blame.

Any node may coordinate a request (the one an operator called); no participant trusts it.

One attempt of a request, as the coordinator runs it::

    coordinator                                   every eligible party
    -- propose(request, attempt) -------------->  checks the request itself (wallet, message,
                                                  path, its own exclusions)
    <------------------------------- ready(ok) --
    participants = choose(ready, request, attempt)   (deterministic, seeded by both)
    -- start(request, attempt, participants) --->  re-checks; runs the protocol machines
                                                  peer to peer (signed, encrypted envelopes)
    <--------------------- done(result) | abort(culprits | missing) --

- The session id of an attempt is ``H(cluster, request id, wallet, participants, attempt,
  request content)``: never reused, bound into every envelope.
- A party named by a check (a bad share, a bad proof) is excluded from the wallet's later
  attempts by every participant whose own check caught it (persisted); those report it in
  their readiness answers, so later quorums leave it out. The coordinator does not take a
  participant's word for it: a party named as culprit (or as missing, after a round timeout)
  is only left out of this request's later attempts.
- A request id is idempotent: the coordinator stores the first result and returns it again;
  a participant that finished a request answers later attempts with its recorded result, so
  one request never yields two signatures.
- Crash rule: a node restarted mid-session lost that session's one-time state (nonces,
  presignature shares live in memory only, never on disk); it marks the session ``lost``,
  refuses its messages, and tells the coordinator, which goes on with a new attempt. A
  coordinator restarted mid-request resumes the request with its next attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tmpc import policy as pol
from tmpc import schemes
from tmpc.audit import AuditLog, CheckpointBody, CheckpointSchedule
from tmpc.encoding import lp_join, tagged_hash
from tmpc.errors import KeystoreError, ParameterError, ProtocolError, TmpcError
from tmpc.node import machines
from tmpc.node.config import Cluster, NodeConfig
from tmpc.node.db import NodeDB
from tmpc.node.metrics import NodeMetrics
from tmpc.node.observe import PROTOCOLS, Observer
from tmpc.node.policy import Judgement, NodePolicy
from tmpc.node.presigs import NodePresignatures
from tmpc.node.wallets import NodeWallet, WalletStore
from tmpc.protocols.ecdsa.machine import MAX_BATCH, batch_session_ids
from tmpc.protocols.machine import BroadcastMismatchError, Machine, Message
from tmpc.state.ledger import Ledger
from tmpc.transport.base import Transport, TransportError
from tmpc.transport.tcp import RejectedError
from tmpc.wire import envelope
from tmpc.wire.identity import NodeIdentity

__all__ = [
    "Engine",
    "EngineSettings",
    "RequestFailedError",
    "choose_participants",
    "in_window",
    "parse_window",
    "select_quorum",
    "session_id",
]

log = logging.getLogger("tmpc.node")

CONTROL = frozenset(
    {
        "propose",
        "ready",
        "start",
        "done",
        "abort",
        "echo",
        "commit",
        "committed",
        "catchup",
        "policy",
        "outcome",
        "cosign",
        "cosigned",
    }
)
#: Most broadcast envelopes one ``echo`` control message may carry.
_MAX_ECHO = 1024
#: Crash tests only (see :meth:`Engine._failpoint`).
_FAILPOINTS = os.environ.get("TMPC_TEST_FAILPOINTS") == "1"
_MAX_ATTEMPTS = 8
#: Requests that move a wallet to its next epoch (two-phase: staged, proved, committed).
LIFECYCLE = frozenset({"refresh", "reshare", "repair"})


class RequestFailedError(TmpcError):
    """A request could not be completed (not enough parties, or a protocol abort).

    ``culprits`` names the parties blamed (node names)."""

    def __init__(self, message: str, culprits: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.culprits = culprits


@dataclass(frozen=True)
class EngineSettings:
    """Timeouts (seconds): readiness round, grace after a quorum is ready, per protocol
    round, and how long a message is re-sent."""

    ready_timeout: float = 2.0
    round_timeout: float = 5.0
    #: Once a quorum is ready, how much longer the coordinator waits for the other parties
    #: (so a slow or down node costs a request this, not the whole ready timeout).
    ready_grace: float = 0.05
    send_retry_for: float = 30.0
    #: Scheduled rotation: rotate each wallet this often (seconds; None: never on its own).
    rotate_every: float | None = None
    #: ...only inside this daily window (UTC minutes since midnight, start and end; it may
    #: wrap past midnight); None: at any time.
    rotate_window: tuple[int, int] | None = None
    #: Keep the node's audit log (``DIR/audit``; :mod:`tmpc.audit`).
    audit: bool = True
    #: Audit events and metrics at all (False only to measure what they cost: benchmarks).
    observe: bool = True
    #: Heartbeat: each wallet this node leads (its party 1) signs a fixed, non-spendable
    #: message this often (seconds; None: never).
    heartbeat_every: float | None = None
    #: Ask the other members to cosign this node's audit head this often (seconds), or
    #: after this many entries; None: never.
    checkpoint_every: float | None = 300.0
    checkpoint_entries: int = 1000


def parse_window(text: str) -> tuple[int, int]:
    """``HH:MM-HH:MM`` (UTC) as minutes since midnight; raises :class:`ParameterError`."""
    try:
        start, end = (t.strip() for t in text.split("-"))
        out = []
        for t in (start, end):
            hh, mm = t.split(":")
            h, m = int(hh), int(mm)
            if not (0 <= h < 24 and 0 <= m < 60):
                raise ValueError
            out.append(h * 60 + m)
    except ValueError:
        raise ParameterError(f"a rotation window is HH:MM-HH:MM (UTC), not {text!r}") from None
    if out[0] == out[1]:
        raise ParameterError("a rotation window must not be empty")
    return out[0], out[1]


def in_window(window: tuple[int, int] | None, now: float) -> bool:
    """Whether UTC time ``now`` (epoch seconds) falls in a daily ``window``."""
    if window is None:
        return True
    minute = int(now // 60) % (24 * 60)
    start, end = window
    return start <= minute < end if start < end else minute >= start or minute < end


def _with_test_signature(results: list[Any]) -> list[Any]:
    """A lifecycle change's results with the test signature of those that made one copied to
    those that did not (a dealer that leaves a reshare signs nothing); they must agree on
    everything else."""
    dicts = [r for r in results if isinstance(r, dict)]
    if len(dicts) != len(results):
        return results
    sigs = {r["test_signature"] for r in dicts if "test_signature" in r}
    if len(sigs) != 1:
        return results
    (sig,) = sigs
    return [dict(r, test_signature=sig) for r in dicts]


def heartbeat_message(record: schemes.WalletRecord) -> bytes:
    """The 32-byte message a wallet's heartbeat signs: a tagged hash of its wallet id,
    fixed and domain-separated, so it is never a transaction's digest (nothing spendable)."""
    return tagged_hash("tmpc/heartbeat/v1", bytes.fromhex(record.wallet_id))


def _entry_kind(record: schemes.WalletRecord) -> str:
    """``refresh``, ``reshare`` or ``rehost``: what made a record's epoch."""
    last = record.history[-1] if record.history else None
    if isinstance(last, schemes.Reshare):
        return "reshare"
    return "rehost" if isinstance(last, schemes.Rehost) else "refresh"


def _epoch_key(wallet: NodeWallet) -> str:
    """What a session id binds of a wallet: its id and epoch (a session of one epoch's shares
    is never confused with another's)."""
    return f"{wallet.record.wallet_id}@{wallet.record.epoch}"


def request_session(cluster: bytes, request_id: str) -> bytes:
    """The session id of a request's control messages."""
    return tagged_hash("tmpc/request/v1", lp_join([cluster, request_id.encode()]))


def request_digest(body: dict[str, Any]) -> bytes:
    """SHA-256 of a request's canonical JSON (kind, wallet or scheme, message, path)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).digest()


def session_id(
    cluster: bytes,
    request_id: str,
    wallet: str,
    participants: list[str],
    attempt: int,
    body: dict[str, Any],
    presignature: str | None = None,
) -> bytes:
    """The session id of one attempt (5 of issue 9): request, wallet, participants, attempt,
    the request's content and the pooled presignature it finishes (if any), so a coordinator
    that shows different participants different messages splits them into different sessions
    (they stall, nobody is blamed for good) instead of making honest parties fail each
    other's share checks."""
    parts = [
        cluster,
        request_id.encode(),
        wallet.encode(),
        *(p.encode() for p in participants),
        attempt.to_bytes(4, "big"),
        request_digest(body),
    ]
    if presignature is not None:
        parts.append(b"presignature:" + presignature.encode())
    return tagged_hash("tmpc/session/v2", lp_join(parts))


def ready_candidates(ready: dict[str, dict[str, Any]], need: int) -> list[str]:
    """The parties an attempt may choose from the readiness answers (name -> answer).

    Parties that answered ``ok`` are candidates; parties that some *other* ready party
    reports having caught cheating are left out when enough candidates remain."""
    ok = [n for n, r in ready.items() if r.get("ok") is True]
    reported = {
        str(x)
        for n in ok
        for x in (ready[n].get("excluded") or [])
        if isinstance(x, str) and x != n
    }
    if len([n for n in ok if n not in reported]) >= need:
        ok = [n for n in ok if n not in reported]
    return ok


def select_quorum(
    ready: dict[str, dict[str, Any]], request_id: str, attempt: int, need: int
) -> list[str]:
    """The quorum of an attempt from the readiness answers: :func:`choose_participants` of
    the :func:`ready_candidates`. The coordinator and every participant compute it alike."""
    return choose_participants(ready_candidates(ready, need), request_id, attempt, need)


def reshare_quorum(
    ready: dict[str, dict[str, Any]],
    request_id: str,
    attempt: int,
    old: list[str],
    new: list[str],
    threshold: int,
) -> tuple[list[str], list[str]]:
    """The members of a reshare attempt from the readiness answers: every new party (all must
    be ready) and ``threshold`` dealers among the ready old parties (:func:`select_quorum` of
    theirs). Returns (dealers, members), names sorted; raises :class:`ParameterError` if the
    answers do not allow it. The coordinator and every member compute it alike."""
    ok = {n for n, r in ready.items() if r.get("ok") is True}
    missing = [p for p in new if p not in ok]
    if missing:
        raise ParameterError(f"new parties not ready: {missing}")
    olds = {n: r for n, r in ready.items() if n in old}
    if len(ready_candidates(olds, threshold)) < threshold:
        raise ParameterError(f"fewer than {threshold} old parties ready to deal")
    dealers = select_quorum(olds, request_id, attempt, threshold)
    return dealers, sorted(set(dealers) | set(new))


def repair_quorum(
    ready: dict[str, dict[str, Any]],
    request_id: str,
    attempt: int,
    others: list[str],
    node: str,
    threshold: int,
) -> tuple[list[str], list[str]]:
    """The members of a repair attempt: the new node (it must be ready) and ``threshold``
    helpers among the ready other parties (:func:`select_quorum` of theirs). Returns (helpers,
    members), names sorted; raises :class:`ParameterError` if the answers do not allow it."""
    if ready.get(node, {}).get("ok") is not True:
        raise ParameterError(f"the new node {node} is not ready")
    olds = {n: r for n, r in ready.items() if n in others}
    if len(ready_candidates(olds, threshold)) < threshold:
        raise ParameterError(f"fewer than {threshold} parties ready to help")
    helpers = select_quorum(olds, request_id, attempt, threshold)
    return helpers, sorted({*helpers, node})


def pooled_presignatures(ready: dict[str, dict[str, Any]], need: int) -> dict[str, list[str]]:
    """The pooled presignatures an attempt may finish: id (hex) -> its signer set (names),
    for every presignature that each party of its set lists in an ``ok`` answer, with the same
    set, all of them :func:`ready_candidates`."""
    candidates = set(ready_candidates(ready, need))
    listed: dict[str, dict[str, tuple[str, ...]]] = {}
    for name in candidates:
        for item in ready[name].get("presignatures") or []:
            if (
                isinstance(item, list)
                and len(item) == 2
                and isinstance(item[0], str)
                and isinstance(item[1], list)
                and all(isinstance(x, str) for x in item[1])
            ):
                listed.setdefault(item[0], {})[name] = tuple(sorted(item[1]))
    usable: dict[str, list[str]] = {}
    for pid, by in listed.items():
        sets = set(by.values())
        if len(sets) != 1:
            continue
        (signers,) = sets
        if len(signers) == need and set(signers) <= candidates and set(by) == set(signers):
            usable[pid] = list(signers)
    return usable


def choose_participants(ready: list[str], request_id: str, attempt: int, k: int) -> list[str]:
    """The ``k`` participants of an attempt, chosen deterministically from the ``ready`` ones.

    Ordered by ``SHA-256(request id || attempt || name)``, so every node computes the same set
    from the same ready parties and a new attempt draws a different quorum."""

    def rank(name: str) -> bytes:
        return hashlib.sha256(
            lp_join([request_id.encode(), attempt.to_bytes(4, "big"), name.encode()])
        ).digest()

    return sorted(sorted(set(ready), key=rank)[:k])


@dataclass
class _Session:
    """One attempt's protocol run on this node (one machine per stage, run in turn)."""

    id: bytes
    request_id: str
    attempt: int
    wallet: str
    coordinator: str
    participants: list[str]
    ids: dict[str, int]  # node name -> party id in this session
    stages: list[Callable[[object | None], Machine]]
    finish: Callable[[object], dict[str, Any]]
    machine: Machine | None = None
    stage: int = 0
    prior: object | None = None
    buffered: list[envelope.Opened] = field(default_factory=list)
    progress: float = field(default_factory=time.monotonic)
    round_started: float = field(default_factory=time.monotonic)
    rounds: list[float] = field(default_factory=list)
    ended: bool = False
    aborted: bool = False
    #: The signed broadcast envelopes received, by (sender, protocol, round): shown to the
    #: other participants when an echo check fails, to find who sent two versions.
    broadcasts: dict[tuple[str, str, int], bytes] = field(default_factory=dict)
    kind: str = ""  # the request's kind
    protocol: str = ""  # machines.protocol_name of the request
    started: float = field(default_factory=time.monotonic)

    @property
    def names(self) -> dict[int, str]:
        return {i: n for n, i in self.ids.items()}


@dataclass
class _Coordinated:
    """What the coordinator collects for one attempt."""

    attempt: int
    ready: dict[str, dict[str, Any]] = field(default_factory=dict)
    evidence: dict[str, bytes] = field(default_factory=dict)  # signed ready envelopes
    chosen: list[str] | None = None
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    aborts: dict[str, dict[str, Any]] = field(default_factory=dict)
    event: asyncio.Event = field(default_factory=asyncio.Event)


class Engine:
    """Runs this node's side of every request and session (see the module docstring)."""

    def __init__(
        self,
        config: NodeConfig,
        identity: NodeIdentity,
        cluster: Cluster,
        db: NodeDB,
        wallets: WalletStore,
        transport: Transport,
        settings: EngineSettings | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.config = config
        #: Single-use records (DKLs23 session ids), fsync'd: ``DIR/ledger.db``.
        self.ledger = ledger if ledger is not None else Ledger(config.directory / "ledger.db")
        self.name = config.name
        self.identity = identity
        self.cluster = cluster
        self.db = db
        self.wallets = wallets
        self.transport = transport
        self.settings = settings or EngineSettings()
        self.members = {c.name: c.public for c in cluster.members}
        self.opener = envelope.Opener(
            identity, self.name, cluster.hash, self.members, is_known_session=self._live_session
        )
        self._sessions: dict[bytes, _Session] = {}
        self._early: dict[bytes, list[envelope.Opened]] = {}
        self._coord: dict[str, _Coordinated] = {}
        self._inflight: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stalled: dict[str, set[str]] = {}
        self.metrics: dict[str, int] = {}
        #: Prometheus metrics (``/metrics``) and the audit log, behind one set of events.
        self.prom = NodeMetrics(protocols=PROTOCOLS)
        audit = None
        if self.settings.audit and self.settings.observe:
            audit = AuditLog.open(
                config.directory, node=self.name, identity=identity, background=True
            )
        self.observe = Observer(self.prom, audit, enabled=self.settings.observe)
        #: When each peer was last heard from or acknowledged a message (monotonic seconds).
        self._heard: dict[str, float] = {}
        #: This node's pooled DKLs23 presignatures (``DIR/presignatures``).
        self.presigs = NodePresignatures(config.directory, identity.seckey, self.ledger)
        #: The signing policy this node enforces (``DIR/policy.json``) and its velocity ledger.
        self.policy = NodePolicy(config.directory, cluster)
        #: Velocity reservations this node holds, by request (None: no limit applies), until
        #: the request's outcome is known (:meth:`_settle`).
        self._held: dict[str, str | None] = {}
        #: Pooled presignatures this coordinator has put into a running attempt.
        self._reserved: set[str] = set()
        #: Outbox rows acknowledged since the last flush (see :meth:`_flush_outbox`).
        self._sent: list[int] = []
        #: Scheduled rotation: when a wallet whose last attempt failed may be tried again.
        self._retry_at: dict[str, float] = {}
        #: Rotations this coordinator is committing: request id -> (node -> answer), event.
        self._commits: dict[str, tuple[dict[str, dict[str, Any]], asyncio.Event]] = {}
        #: Audit checkpoints this node is collecting: request id -> (node -> answer), event.
        self._cosigns: dict[str, tuple[dict[str, dict[str, Any]], asyncio.Event]] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def _live_session(self, session: bytes) -> bool:
        """The Opener's session policy: refuse envelopes of sessions that ended (done,
        aborted, or lost in a restart), from the durable record, so replays stay refused
        across restarts; accept live ones and new ones (a request's control messages)."""
        known = self._sessions.get(session)
        if known is not None:  # in memory: its status is the durable one
            return not known.ended
        return self.db.session_status(session) in (None, "running")

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _forget(self, session: bytes) -> None:
        """A session ended: drop its replay records; a relay stops reading its stream (after
        a grace period, so the last messages still reach the peers that need them)."""
        self.opener.forget(session)
        forget = getattr(self.transport, "forget", None)
        if callable(forget):

            async def later() -> None:
                await asyncio.sleep(self.settings.round_timeout)
                try:
                    await forget(session)
                except TransportError as exc:  # the relay keeps it; retention still applies
                    log.info("could not release session %s: %s", session.hex()[:16], exc)

            self._spawn(later())

    def _lifecycle(
        self,
        wallet: str,
        event: str,
        epoch_before: int | None,
        epoch_after: int | None,
        *,
        session: bytes | None = None,
        request: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record a key lifecycle event (``node.db``), audit it, and keep the epoch metric."""
        self.db.add_lifecycle(
            wallet, event, epoch_before, epoch_after, session=session, request=request,
            detail=detail,
        )  # fmt: skip
        extra = detail or {}
        self.observe.lifecycle(
            wallet, event,
            {"epoch_before": epoch_before, "epoch_after": epoch_after,
             "session": session.hex() if session else None, "request": request,
             "kind": extra.get("kind"), "from": extra.get("from")},
        )  # fmt: skip
        if event in ("created", "switched") and epoch_after is not None:
            self.prom.set_epoch(wallet, epoch_after)

    def _count(self, key: str) -> None:
        self.metrics[key] = self.metrics.get(key, 0) + 1

    async def start(self) -> None:
        """Begin: tell coordinators about sessions lost in a crash, send what the outbox still
        holds, resume own requests, and run the :meth:`watchdog`."""
        await self.transport.start(self.deliver)
        self._spawn(self.watchdog())
        if self.settings.rotate_every is not None:
            self._spawn(self.scheduler())
        if self.settings.heartbeat_every is not None:
            self._spawn(self.heartbeats())
        if self.observe.audit is not None and self.settings.checkpoint_every is not None:
            self._spawn(self.checkpoints())
        self.prom.set_pool_source(self._pool_sizes)
        for wid in self.wallets.ids():
            with contextlib.suppress(TmpcError):
                self.prom.set_epoch(wid, self.wallets.get(wid).record.epoch)
        for s in self.db.mark_running_lost():
            payload = {"request": s["request"], "attempt": s["attempt"], "reason": "lost"}
            self._send_control(s["coordinator"], "abort", s["request"], s["attempt"], payload)
        # Messages computed before the restart and not acknowledged: sent again as they
        # were (a lost session's last share still lets its peers finish; never recomputed).
        since = time.time() - self.settings.send_retry_for
        for seq, session, to, data in self.db.outbox_pending(since):
            self._spawn(self._send_until_acked(to, data, session, seq))
        for req in self.db.pending_requests("coordinator"):
            self._inflight[req["id"]] = self._spawn(self._run_request(req["id"]))
        for wid in sorted(set(self.wallets.ids()) | set(self.wallets.staged_ids())):
            self._resume_rotation(wid)

    def _resume_rotation(self, wallet_id: str) -> None:
        """At start: finish what a lifecycle change interrupted by a crash left. Files of an
        epoch no longer needed go; an epoch staged here but not switched to (this node died
        before the commit reached it) is asked about: a peer that switched answers with the
        commit and its proof (:meth:`_on_catchup`)."""
        try:
            wallet = self.wallets.current(wallet_id)
            if wallet is not None:
                self.wallets.cleanup(wallet_id)
            staged = self.wallets.staged_records(wallet_id)
        except (TmpcError, OSError) as exc:
            log.warning("wallet %s: %s", wallet_id, exc)
            return
        if not staged:
            return
        peers = set(wallet.ids) if wallet is not None else set()
        for rec in staged:
            with contextlib.suppress(TmpcError):
                peers |= set(self.wallets.names_of(rec).values())
        epoch = wallet.record.epoch if wallet is not None else staged[0].epoch - 1
        self._ask_catchup(wallet_id, epoch, sorted(peers - {self.name}))

    def _ask_catchup(self, wallet_id: str, epoch: int, peers: list[str]) -> None:
        rid = f"catchup-{wallet_id}"
        body = {"request": rid, "wallet": wallet_id, "epoch": epoch}
        for p in peers:
            self._send_control(p, "catchup", rid, 0, body)

    def _flush_outbox(self) -> None:
        """Delete the outbox rows of acknowledged messages, in one transaction."""
        sent, self._sent = self._sent, []
        self.db.outbox_sent(sent)

    async def stop(self) -> None:
        """Cancel every task; sessions in flight are left for the restart rule."""
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: S110
                pass
        self._flush_outbox()
        await self.transport.close()
        self.presigs.close()
        self.policy.close()
        self.observe.close()

    def _seal(
        self,
        to: str,
        *,
        session: bytes,
        attempt: int,
        protocol: str,
        round: int,
        payload: bytes,
        wallet: str,
        broadcast: bool = False,
    ) -> bytes:
        return envelope.seal(
            self.identity,
            self.name,
            None if broadcast else self.members[to],
            cluster=self.cluster.hash,
            wallet=wallet.encode(),
            session=session,
            attempt=attempt,
            protocol=protocol,
            round=round,
            payload=payload,
        )

    def _send_bytes(self, to: str, data: bytes, session: bytes) -> None:
        self._spawn(self._send_until_acked(to, data, session))

    async def _send_until_acked(
        self, to: str, data: bytes, session: bytes, stored: int | None = None
    ) -> None:
        """Re-send ``data`` until ``to`` acknowledges it, or give up after a while.

        ``stored``: its outbox row, deleted once this ends (not if the engine stops first:
        then the restarted node sends it again). Deletions are written in batches by the
        watchdog: a row deleted late only means a copy the recipient drops as a duplicate."""
        await self._send_loop(to, data, session)
        if stored is not None:
            self._sent.append(stored)

    async def _send_loop(self, to: str, data: bytes, session: bytes) -> None:
        deadline = time.monotonic() + self.settings.send_retry_for
        delay = 0.05
        while True:
            try:
                await self.transport.send(to, data, session=session)
                self._heard[to] = time.monotonic()
                return
            except TransportError as exc:
                if isinstance(exc, RejectedError):
                    self._count("send_rejected")
                    return
                if time.monotonic() > deadline:
                    self._count("send_gave_up")
                    log.info("gave up sending to %s: %s", to, exc)
                    return
            s = self._sessions.get(session)
            if s is not None and s.aborted:
                return  # a session that finished here goes on: its peers may need this
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _send_control(
        self, to: str, kind: str, request_id: str, attempt: int, payload: dict[str, Any]
    ) -> None:
        """Send a control message. ``ready`` answers are signed broadcasts (not encrypted)
        so that the coordinator can show them to the participants as evidence of its
        quorum choice; the others are point to point."""
        session = request_session(self.cluster.hash, request_id)
        broadcast = kind == "ready"
        data = None
        if broadcast or to != self.name:
            data = self._seal(
                to,
                session=session,
                attempt=attempt,
                protocol=kind,
                round=0,
                payload=json.dumps(payload, sort_keys=True).encode(),
                wallet=str(payload.get("wallet", "")),
                broadcast=broadcast,
            )
        if to == self.name:  # to ourselves: no transport (the Opener refuses our own)
            self._spawn(self._on_control(kind, self.name, session, attempt, payload, data))
            return
        assert data is not None
        self._send_bytes(to, data, session)

    # -- receiving --------------------------------------------------------------------------

    async def deliver(self, data: bytes) -> None:
        """Handle one received envelope (the transport acknowledges once this returns).

        Raises :class:`~tmpc.wire.envelope.EnvelopeError` for a rejected envelope."""
        try:
            opened = self.opener.open(data)
        except envelope.EnvelopeError as exc:
            self._count(f"envelope_rejected_{exc.reason}")
            self._rejected(exc.reason, data)
            if exc.reason == "equivocation" and exc.culprits:
                self._on_equivocation(data, str(exc.culprits[0]), exc.evidence)
            raise
        if opened is None:
            # A copy of an envelope already taken: a re-send whose acknowledgement was lost,
            # or a replay inside its session. Counted, not audited (re-sends are routine).
            self._count("envelope_duplicate")
            self.prom.rejected("duplicate")
            return
        self._heard[opened.sender] = time.monotonic()
        if opened.protocol in CONTROL:
            try:
                body = json.loads(opened.payload)
                if not isinstance(body, dict):
                    raise ValueError
            except ValueError:
                self._count("control_malformed")
                return
            await self._on_control(
                opened.protocol, opened.sender, opened.session, opened.attempt, body, opened.raw
            )
            return
        self._on_protocol(opened)

    def _rejected(self, reason: str, data: bytes) -> None:
        """Audit and count a refused envelope, with the sender and session it claims (not
        verified: a relay can forge them)."""
        sender: str | None = None
        session: bytes | None = None
        with contextlib.suppress(TmpcError, ValueError):
            env = envelope.Envelope.from_bytes(data)
            sender, session = env.sender[:64], env.session
        self.observe.rejected(reason, sender, session)

    def _on_equivocation(self, data: bytes, culprit: str, evidence: tuple[bytes, ...]) -> None:
        """A member signed two different messages for one round of one session: that is
        proof (both signed envelopes, kept in ``node.db``), so its session aborts naming it
        and, for a wallet this node holds, it is excluded from the wallet's later attempts."""
        env = envelope.Envelope.from_bytes(data)  # parsed and verified by the Opener already
        if len(evidence) == 2:
            wallet_key = env.wallet.decode("ascii", "replace")
            self.db.add_evidence(wallet_key, culprit, "equivocation", evidence[0], evidence[1])
        s = self._sessions.get(env.session)
        if s is not None and not s.ended:
            self._abort_session(s, "equivocation: two signed messages for one round", [culprit])
            return  # _abort_session excluded the culprit for the session's wallet
        wallet = env.wallet.decode("ascii", "replace")
        if wallet in self.wallets.ids():
            self.db.exclude(wallet, culprit, "equivocation: two signed messages for one round")

    def _on_protocol(self, opened: envelope.Opened) -> None:
        s = self._sessions.get(opened.session)
        if s is None:
            status = self.db.session_status(opened.session)
            if status is not None:
                self._count("stale_session_message")
                return  # a finished or lost session: never resumed with new state
            early = self._early.get(opened.session)
            if early is None and len(self._early) < 1024:
                early = self._early.setdefault(opened.session, [])
            if early is not None and len(early) < 4096:
                early.append(opened)  # "start" may arrive after the first peer message
            return
        if s.ended:
            return
        if opened.sender not in s.ids:
            self._count("message_from_outsider")
            self.observe.rejected("outsider", opened.sender, opened.session)
            return
        self._step(s, opened)

    def _step(self, s: _Session, opened: envelope.Opened) -> None:
        if opened.recipient == "*":
            s.broadcasts.setdefault((opened.sender, opened.protocol, opened.round), opened.raw)
        m = s.machine
        if m is None or opened.protocol != m.protocol:
            s.buffered.append(opened)
            return
        recipient = None if opened.recipient == "*" else s.ids.get(opened.recipient)
        msg = Message(opened.round, s.ids[opened.sender], recipient, opened.payload)
        try:
            before = getattr(m, "round", None)
            out = m.receive(msg)
            if getattr(m, "round", None) != before:
                now = time.monotonic()
                s.rounds.append(round(now - s.round_started, 6))
                s.round_started = now
                self.observe.session_round(s.id, s.protocol, len(s.rounds), s.rounds[-1])
            s.progress = time.monotonic()
            self._emit(s, out)
            if m.done:
                self._next_stage(s)
        except ProtocolError as exc:
            if isinstance(exc, BroadcastMismatchError):
                self._show_broadcasts(s)
            self._abort_session(s, str(exc), [s.names.get(c, str(c)) for c in exc.culprits])
        except TmpcError as exc:
            self._abort_session(s, str(exc), [])

    def _show_broadcasts(self, s: _Session) -> None:
        """An echo check failed: someone sent different broadcasts to different parties, and
        the machine cannot tell who. Show every other participant the signed broadcasts this
        node received in the session (``echo``); one that holds a different signed version
        from the same sender for the same round has proof of who equivocated
        (:meth:`_on_echo`)."""
        raws = [r.hex() for r in list(s.broadcasts.values())[:_MAX_ECHO]]
        body = {"request": s.request_id, "session": s.id.hex(), "envelopes": raws, "wallet": ""}
        for p in s.participants:
            if p != self.name:
                self._send_control(p, "echo", s.request_id, s.attempt, body)

    def _on_echo(self, sender: str, body: dict[str, Any]) -> None:
        """Compare the broadcasts a co-participant received with this node's: two different
        versions, each signed by one sender for the same session, protocol and round, prove
        that sender equivocated. The proof is kept in ``node.db`` and the sender is excluded
        from the wallet (later quorums leave it out, as for any culprit this node caught)."""
        try:
            sid = bytes.fromhex(str(body.get("session")))
            raws = [bytes.fromhex(str(x)) for x in body.get("envelopes") or []][:_MAX_ECHO]
        except ValueError:
            self._count("control_malformed")
            return
        s = self._sessions.get(sid)
        if s is None or sender not in s.ids or sender == self.name:
            return
        for raw in raws:
            try:
                env = envelope.verify_evidence(raw, self.cluster.hash, self.members)
            except envelope.EnvelopeError:
                self._count("echo_invalid")
                continue
            if env.session != s.id or env.sender not in s.ids or env.sender == self.name:
                continue
            mine = s.broadcasts.get((env.sender, env.protocol, env.round))
            if mine is None or mine == raw:
                continue
            culprit = env.sender
            reason = f"equivocation: two signed {env.protocol} round {env.round} broadcasts"
            log.info("session %s: %s from %s", s.id.hex()[:16], reason, culprit)
            self._count("equivocation_proven")
            self.db.add_evidence(s.wallet, culprit, "equivocation", mine, raw)
            self.db.exclude(s.wallet, culprit, reason)
            if not s.ended:
                self._abort_session(s, reason, [culprit])

    def _failpoint(self, name: str) -> None:
        """Crash tests only: with ``TMPC_TEST_FAILPOINTS=1`` in the environment, a node whose
        directory holds a file ``failpoint`` naming this point deletes it and dies at once
        (``os._exit``, as a SIGKILL would leave it), or, for ``stop:POINT``, stops itself
        with SIGSTOP (a stalled node). Inert otherwise."""
        if not _FAILPOINTS:
            return
        path = self.config.directory / "failpoint"
        try:
            armed = path.read_text().strip()
        except OSError:
            return
        if armed == name:
            path.unlink(missing_ok=True)
            os._exit(137)
        if armed == f"stop:{name}":  # stall: as if SIGSTOPped at this point
            path.unlink(missing_ok=True)
            os.kill(os.getpid(), signal.SIGSTOP)

    def _emit(self, s: _Session, out: list[Message]) -> None:
        """Seal a machine's messages, store them in the outbox, then send each until it is
        acknowledged (a broadcast is sealed once, for every other participant)."""
        assert s.machine is not None
        protocol = s.machine.protocol
        rounds = sorted({m.round for m in out})
        items: list[tuple[str, bytes]] = []
        for msg in out:
            broadcast = msg.recipient is None
            targets = (
                [n for n in s.participants if n != self.name]
                if broadcast
                else [s.names[msg.recipient]]  # type: ignore[index]
            )
            data = b""
            for to in targets:
                if not data or not broadcast:
                    data = self._seal(
                        to,
                        session=s.id,
                        attempt=s.attempt,
                        protocol=protocol,
                        round=msg.round,
                        payload=msg.payload,
                        wallet=s.wallet,
                        broadcast=broadcast,
                    )
                items.append((to, data))
        seqs = self.db.outbox_add(s.id, items)
        for r in rounds:  # computed and stored, not sent
            self._failpoint(f"{protocol}:{r}:before-send")
        tasks = [
            self._spawn(self._send_until_acked(to, data, s.id, seq))
            for (to, data), seq in zip(items, seqs, strict=True)
        ]
        if _FAILPOINTS and rounds:

            async def after_send() -> None:
                await asyncio.gather(*tasks, return_exceptions=True)
                for r in rounds:
                    self._failpoint(f"{protocol}:{r}:after-send")

            self._spawn(after_send())

    def _start_stage(self, s: _Session) -> None:
        s.machine = s.stages[s.stage](s.prior)
        s.round_started = s.progress = time.monotonic()
        self._emit(s, s.machine.start())
        pending, s.buffered = s.buffered, []
        for opened in pending:
            if s.ended:
                return
            self._step(s, opened)
        if s.machine is not None and s.machine.done and not s.ended:
            self._next_stage(s)

    def _next_stage(self, s: _Session) -> None:
        assert s.machine is not None
        s.prior = s.machine.result
        s.stage += 1
        if s.stage < len(s.stages):
            self._start_stage(s)
            return
        try:
            result = s.finish(s.prior)
        except TmpcError as exc:
            self._abort_session(s, f"finishing failed: {exc}", [])
            return
        s.ended = True
        self.db.finish_session(s.id, s.request_id, result, s.rounds)
        self.observe.session_completed(
            s.id, s.request_id, s.protocol, time.monotonic() - s.started, result
        )
        if s.kind == "sign":
            self._settle(s.request_id, signed=True)
        if s.kind == "keygen":
            wid = str(result["wallet"]["wallet_id"])
            self._lifecycle(wid, "created", None, 0, session=s.id, request=s.request_id)
        self._forget(s.id)
        self._send_control(
            s.coordinator,
            "done",
            s.request_id,
            s.attempt,
            {"request": s.request_id, "attempt": s.attempt, "result": result},
        )

    def _abort_session(
        self, s: _Session, reason: str, culprits: list[str], missing: list[str] | None = None
    ) -> None:
        if s.ended:
            return
        s.ended = s.aborted = True
        self._count("session_aborted")
        self.observe.session_aborted(
            s.id, s.request_id, s.protocol, time.monotonic() - s.started, reason, culprits,
            missing or [],
        )  # fmt: skip
        log.info("session %s aborted: %s (culprits %s)", s.id.hex()[:16], reason, culprits)
        self.db.end_session(
            s.id, "aborted", error=reason, culprits=culprits, missing=missing, rounds=s.rounds
        )
        self._forget(s.id)
        for c in culprits:
            self.db.exclude(s.wallet, c, reason)
        if s.kind in LIFECYCLE:
            # Nobody switches to an epoch a party did not finish: the staged files go.
            with contextlib.suppress(TmpcError, OSError):
                self.wallets.discard_staged(s.wallet, s.id)
            self._lifecycle(
                s.wallet, "discarded", None, None, session=s.id, request=s.request_id,
                detail={"reason": reason[:200]},
            )  # fmt: skip
        self._send_control(
            s.coordinator,
            "abort",
            s.request_id,
            s.attempt,
            {
                "request": s.request_id,
                "attempt": s.attempt,
                "reason": reason,
                "culprits": culprits,
                "missing": missing or [],
            },
        )

    def rotations_due(self, now: float) -> list[str]:
        """Wallets whose scheduled rotation this node starts now: those it holds a share of
        as the wallet's first party (one scheduler per wallet), last rotated (or created)
        ``rotate_every`` ago or more, inside the window. Empty while any session or request
        runs on this node (a rotation waits for a quiet moment rather than slowing them)."""
        every = self.settings.rotate_every
        if every is None or not in_window(self.settings.rotate_window, now):
            return []
        if self._inflight or any(not s.ended for s in self._sessions.values()):
            return []
        due = []
        for wallet in self._led():
            wid = wallet.record.wallet_id
            events = [e for e in self.db.lifecycle(wid) if e["event"] in ("created", "switched")]
            last = events[-1]["at"] if events else 0.0
            if now - last >= every and now >= self._retry_at.get(wid, 0.0):
                due.append(wid)
        return due

    async def scheduler(self) -> None:
        """Scheduled rotation (``rotate_every``, ``rotate_window``): every little while, start
        the rotations :meth:`rotations_due` gives, one at a time. A failed one is tried again
        after a pause (a party may be down: the wallet stays on its epoch meanwhile)."""
        every = self.settings.rotate_every
        assert every is not None
        tick = min(30.0, max(every / 10, 0.2))
        while True:
            await asyncio.sleep(tick)
            for wid in self.rotations_due(time.time()):
                if self._inflight or any(not s.ended for s in self._sessions.values()):
                    log.info("scheduled rotation of %s deferred: sessions are open", wid)
                    break
                rid = f"scheduled-{wid}-{int(time.time() * 1000)}"
                log.info("scheduled rotation of wallet %s (request %s)", wid, rid)
                try:
                    await self.submit("refresh", {"wallet": wid}, rid)
                except TmpcError as exc:
                    log.warning("scheduled rotation of %s failed: %s", wid, exc)
                    self._retry_at[wid] = time.time() + max(every / 10, tick * 4)

    def pool_size(self, wallet: NodeWallet) -> int:
        """This node's unused pooled presignatures of ``wallet`` (path m; 0 unless it holds a
        share of an ECDSA wallet)."""
        if wallet.share is None or not schemes.get_scheme(wallet.record.scheme).dkls23:
            return 0
        wid, me = wallet.record.wallet_id, wallet.share.identifier
        return len(self.presigs.available(wid, None, me, limit=100_000))

    def _held_wallets(self) -> list[NodeWallet]:
        """Every wallet this node can open (a corrupt one is left out)."""
        out = []
        for wid in self.wallets.ids():
            with contextlib.suppress(TmpcError):
                out.append(self.wallets.get(wid))
        return out

    def _pool_sizes(self) -> dict[str, int]:
        """Unused pooled presignatures per ECDSA wallet this node holds a share of (path m),
        for the ``tmpc_presignatures`` gauge (read at scrape time)."""
        return {
            w.record.wallet_id: self.pool_size(w)
            for w in self._held_wallets()
            if w.share is not None and schemes.get_scheme(w.record.scheme).dkls23
        }

    def _led(self) -> list[NodeWallet]:
        """The wallets this node leads: it holds a share as the wallet's first party (one
        scheduler per wallet for rotations and heartbeats)."""
        return [
            w for w in self._held_wallets() if w.share is not None and w.names.get(1) == self.name
        ]

    def heartbeats_due(self) -> list[str]:
        """Wallets whose heartbeat this node makes: those it leads (:meth:`_led`)."""
        return [w.record.wallet_id for w in self._led()]

    async def heartbeat(self, wallet_id: str) -> dict[str, Any]:
        """Make one heartbeat signature of ``wallet_id`` with a quorum of its parties, over
        :func:`heartbeat_message` (fixed, non-spendable; parties check it and let it through
        the signing policy), verified independently of the parties; audited and counted
        (``tmpc_heartbeat_*``). Returns the signing result; raises :class:`TmpcError`."""
        held = self.wallets.get(wallet_id)
        message = heartbeat_message(held.record).hex()
        rid = f"heartbeat-{wallet_id}-{int(time.time() * 1000)}"
        started = time.monotonic()
        try:
            res = await self.submit("sign", {"wallet": wallet_id, "message": message,
                                             "heartbeat": True}, rid)  # fmt: skip
        except TmpcError as exc:
            self.observe.heartbeat(wallet_id, False, {"error": str(exc)[:300]})
            raise
        self.observe.heartbeat(
            wallet_id, True,
            {"epoch": held.record.epoch, "seconds": round(time.monotonic() - started, 6),
             "participants": list(res.get("participants") or [])},
        )  # fmt: skip
        return res

    async def heartbeats(self) -> None:
        """The heartbeat schedule (``heartbeat_every``): each wallet this node leads signs
        its heartbeat message, one after the other; a failure is recorded, and the next
        tick tries again. A cluster whose connections look healthy but cannot sign is seen:
        its heartbeat grows old (``tmpc_heartbeat_age_seconds``)."""
        every = self.settings.heartbeat_every
        assert every is not None
        while True:
            for wid in self.heartbeats_due():
                with contextlib.suppress(TmpcError):
                    await self.heartbeat(wid)
            await asyncio.sleep(every)

    async def checkpoint(self) -> dict[str, Any]:
        """Have the other members cosign this node's audit head, and record the checkpoint
        (:mod:`tmpc.audit.checkpoint`): after it, this node cannot rewrite its log up to that
        head unnoticed. Returns ``{"seq", "cosigners"}``; raises :class:`TmpcError` if no
        member cosigned."""
        audit = self.observe.audit
        if audit is None:
            raise ParameterError("this node keeps no audit log")
        body = await asyncio.to_thread(audit.checkpoint_body)
        rid = f"checkpoint-{self.name}-{body.seq}-{secrets.token_hex(4)}"
        answers: dict[str, dict[str, Any]] = {}
        event = asyncio.Event()
        self._cosigns[rid] = (answers, event)
        others = [m for m in self.members if m != self.name]
        try:
            for m in others:
                self._send_control(m, "cosign", rid, 0, {"request": rid, "head": body.to_json()})
            deadline = time.monotonic() + self.settings.round_timeout
            while len(answers) < len(others) and time.monotonic() < deadline:
                event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), max(deadline - time.monotonic(), 0))
        finally:
            self._cosigns.pop(rid, None)
        sigs: dict[str, bytes] = {}
        for name, answer in answers.items():
            with contextlib.suppress(ValueError, TypeError):
                sig = bytes.fromhex(str(answer.get("signature")))
                if len(sig) == 64:
                    sigs[name] = sig
        if not sigs:
            raise RequestFailedError("no member cosigned the audit head")
        await asyncio.to_thread(audit.add_checkpoint, self.cluster, body, sigs)
        return {"seq": body.seq, "cosigners": sorted(sigs)}

    async def _on_cosign(self, sender: str, body: dict[str, Any]) -> None:
        """A member asks this node to cosign its audit head: recorded here (``cosign``), so
        this node holds evidence of that head; refused for a head that contradicts one it
        cosigned before (a rolled-back or rewritten log: recorded, and the answer says so)."""
        audit = self.observe.audit
        rid = str(body.get("request"))
        if audit is None:
            return
        try:
            head = CheckpointBody.from_json(body.get("head"))
            if head.node != sender:
                raise ParameterError("a node asks to cosign its own head only")
            sig = await asyncio.to_thread(audit.cosign, self.cluster.hash, head)
        except (TmpcError, OSError) as exc:
            self._count("cosign_refused")
            self._send_control(
                sender, "cosigned", rid, 0, {"request": rid, "error": str(exc)[:300]}
            )
            return
        self._send_control(sender, "cosigned", rid, 0, {"request": rid, "signature": sig.hex()})

    async def checkpoints(self) -> None:
        """The checkpoint schedule: every ``checkpoint_every`` seconds or
        ``checkpoint_entries`` entries, whichever comes first, one at a time."""
        audit = self.observe.audit
        every = self.settings.checkpoint_every
        assert audit is not None and every is not None
        schedule = CheckpointSchedule(
            every_entries=self.settings.checkpoint_entries, every_seconds=every
        )
        while True:
            await asyncio.sleep(min(every / 4, 5.0))
            if audit.seq > 1 and audit.checkpoint_due(time.time(), schedule):
                try:
                    await self.checkpoint()
                except (TmpcError, OSError) as exc:
                    log.warning("audit checkpoint not made: %s", exc)

    async def watchdog(self) -> None:
        """Abort sessions whose current round made no progress within the round timeout,
        naming the parties whose messages are missing; write the outbox's deletions.
        :meth:`start` runs it."""
        while True:
            await asyncio.sleep(min(0.25, self.settings.round_timeout / 4))
            self._flush_outbox()
            now = time.monotonic()
            recent = sum(1 for m in self.members if m != self.name and
                         now - self._heard.get(m, -1e9) < 60.0)  # fmt: skip
            self.prom.set_peers(recent, len(self.members) - 1)
            for s in list(self._sessions.values()):
                if s.ended:
                    continue
                if now - s.progress > self.settings.round_timeout:
                    missing_fn = getattr(s.machine, "missing", None)
                    missing_ids = missing_fn() if callable(missing_fn) else ()
                    missing = [s.names[i] for i in missing_ids if i in s.names]
                    self._abort_session(s, "round timeout", [], missing)
            cutoff = now - 600
            for sid in [k for k, v in self._sessions.items() if v.ended and v.progress < cutoff]:
                del self._sessions[sid]

    # -- control messages -------------------------------------------------------------------

    async def _on_control(
        self,
        kind: str,
        sender: str,
        session: bytes,
        attempt: int,
        body: dict[str, Any],
        raw: bytes | None = None,
    ) -> None:
        request_id = str(body.get("request", ""))
        if session != request_session(self.cluster.hash, request_id):
            self._count("control_wrong_session")
            return
        if kind == "propose":
            self._on_propose(sender, body, attempt)
        elif kind == "commit":
            self._on_commit(sender, body)
        elif kind == "catchup":
            self._on_catchup(sender, body)
        elif kind == "policy":
            self._on_policy(sender, body)
        elif kind == "outcome":
            if body.get("signed") is True or body.get("signed") is False:
                self._settle(request_id, signed=bool(body["signed"]))
        elif kind in ("committed", "cosigned"):
            waiting = (self._commits if kind == "committed" else self._cosigns).get(request_id)
            if waiting is not None:
                waiting[0][sender] = body
                waiting[1].set()
        elif kind == "cosign":
            await self._on_cosign(sender, body)
        elif kind == "echo":
            self._on_echo(sender, body)
        elif kind == "start":
            self._on_start(sender, body, attempt)
        elif kind in ("ready", "done", "abort"):
            c = self._coord.get(request_id)
            if c is None or c.attempt != attempt:
                return
            if kind != "ready" and c.chosen is not None and sender not in c.chosen:
                self._count("control_from_outside_the_quorum")
                self.observe.rejected("outsider", sender, session)
                return
            {"ready": c.ready, "done": c.done, "abort": c.aborts}[kind][sender] = body
            if kind == "ready" and raw is not None:
                c.evidence[sender] = raw
            c.event.set()

    def _check_request(
        self, body: dict[str, Any], *, as_party: bool = True, record: object = None
    ) -> NodeWallet | None:
        """Check a request (raises :class:`InputError`): the wallet or new wallet's parameters,
        the message and path. ``as_party``: also that this node is a party of it, which every
        participant checks itself before it contributes; a coordinator need not be one."""
        kind = body.get("kind")
        if kind == "keygen":
            schemes.get_scheme(str(body.get("scheme")))
            parties = body.get("parties")
            if not isinstance(parties, list) or len(set(parties)) != len(parties):
                raise ParameterError("--parties must list distinct members")
            if not 2 <= len(parties) <= 255:
                raise ParameterError("a wallet needs between 2 and 255 parties")
            if as_party and self.name not in parties:
                raise ParameterError("this node is not a party of the new wallet")
            for p in parties:
                self.cluster.member(str(p))
            t = body.get("threshold")
            if not isinstance(t, int) or not 1 <= t <= len(parties):
                raise ParameterError(f"threshold must be between 1 and {len(parties)}")
            return None
        if kind == "reshare":
            wallet = self._wallet_shown(str(body.get("wallet")), record)
            self._check_epoch(wallet, body.get("epoch"))
            parties = body.get("parties")
            if (
                not isinstance(parties, list)
                or not all(isinstance(p, str) for p in parties)
                or len(set(parties)) != len(parties)
            ):
                raise ParameterError("--parties must list distinct members")
            if not 2 <= len(parties) <= 255:
                raise ParameterError("a wallet needs between 2 and 255 parties")
            for p in parties:
                self.cluster.member(p)
            t = body.get("threshold")
            if not isinstance(t, int) or isinstance(t, bool) or not 1 <= t <= len(parties):
                raise ParameterError(f"threshold must be between 1 and {len(parties)}")
            if (
                as_party
                and self.name not in parties
                and (wallet.share is None or self.name not in wallet.ids)
            ):
                raise ParameterError("this node is neither a party of the wallet nor a new one")
            if body.get("group") is not None:
                gid = schemes.group_wallet_id(
                    wallet.record.key_id, schemes.check_group_name(body["group"])
                )
                schemes.reshare_context_id(wallet.record, str(body["group"]))
                if self.wallets.current(gid) is not None:
                    raise ParameterError(
                        f"the wallet has a signing group {body['group']!r} already (wallet {gid})"
                    )
            return wallet
        if kind == "repair":
            wallet = self._wallet_shown(str(body.get("wallet")), record)
            self._check_epoch(wallet, body.get("epoch"))
            party, node = body.get("party"), body.get("node")
            if not isinstance(party, int) or isinstance(party, bool) or party not in wallet.names:
                raise ParameterError(f"party must be one of the wallet's {wallet.record.party_ids}")
            if not isinstance(node, str):
                raise ParameterError("node must name the member that receives the share")
            self.cluster.member(node)
            if node in wallet.ids:
                raise ParameterError(
                    f"{node} already holds a share of the wallet (repair onto another member)"
                )
            if wallet.record.threshold >= wallet.record.parties:
                raise ParameterError("an n-of-n wallet cannot repair a share (no t others)")
            if (
                as_party
                and self.name != node
                and (wallet.share is None or self.name not in wallet.ids)
            ):
                raise ParameterError("this node is neither a party of the wallet nor the new one")
            return wallet
        if kind == "refresh":
            wallet = self.wallets.get(str(body.get("wallet")))
            if as_party and (wallet.share is None or self.name not in wallet.ids):
                raise ParameterError("this node holds no share of the wallet")
            self._check_epoch(wallet, body.get("epoch"))
            return wallet
        if kind == "presign":
            wallet = self.wallets.get(str(body.get("wallet")))
            if as_party and (wallet.share is None or self.name not in wallet.ids):
                raise ParameterError("this node holds no share of the wallet")
            if not schemes.get_scheme(wallet.record.scheme).dkls23:
                raise ParameterError("presignatures exist only for ecdsa-secp256k1 wallets")
            count = body.get("count")
            if not isinstance(count, int) or isinstance(count, bool):
                raise ParameterError("count must be an integer")
            if not 1 <= count <= MAX_BATCH:
                raise ParameterError(f"a presign request makes 1 to {MAX_BATCH} presignatures")
            schemes.public_key_at(wallet.record, body.get("path"))
            return wallet
        if kind == "sign":
            wallet = self.wallets.get(str(body.get("wallet")))
            group = body.get("group", wallet.record.group_name)
            if group != wallet.record.group_name:
                raise ParameterError(
                    f"the request is for signing group {group!r}; wallet "
                    f"{wallet.record.wallet_id} is group {wallet.record.group_name!r}"
                )
            if as_party and (wallet.share is None or self.name not in wallet.ids):
                raise ParameterError(
                    "this node holds no share of the wallet"
                    + (f" (signing group {group!r})" if group != schemes.DEFAULT_GROUP else "")
                )
            try:
                message = bytes.fromhex(str(body.get("message")))
            except ValueError:
                raise ParameterError("the message must be hex") from None
            if schemes.get_scheme(wallet.record.scheme).dkls23:
                schemes.ecdsa_digest(message)
            schemes.public_key_at(wallet.record, body.get("path"))
            return wallet
        raise ParameterError(f"unknown request kind {kind!r}")

    def _on_propose(self, sender: str, body: dict[str, Any], attempt: int) -> None:
        req = body.get("body")
        self.observe.request_proposed(
            str(body.get("request")), req if isinstance(req, dict) else {}, sender, attempt
        )
        try:
            wallet = self._check_request(body["body"], record=body.get("record"))
            reply: dict[str, Any] = {"ok": True}
            if wallet is not None:
                self._check_epoch(wallet, body.get("epoch"), sender)
                if body["body"].get("kind") == "sign":
                    rid = str(body.get("request"))
                    # Velocity is checked by the reservation itself (atomically).
                    judgement = self._judge(wallet, body["body"], rid, velocity=False)
                    if judgement is not None and rid not in self._held:
                        # Every ready party reserves (the request counts at every node that
                        # sees it, signer or not, until its outcome is known).
                        self._held[rid] = self._reserve(judgement, rid, sender)
                # Parties this node caught cheating: the coordinator leaves them out.
                reply["excluded"] = sorted(self.db.excluded(wallet.record.wallet_id))
                if (
                    body["body"].get("kind") == "sign"
                    and schemes.get_scheme(wallet.record.scheme).dkls23
                ):
                    reply["presignatures"] = self._pooled(wallet, body["body"].get("path"))
        except (TmpcError, ValueError, KeyError, TypeError) as exc:
            reply = {"ok": False, "reason": str(exc)[:200]}
            self.observe.request_refused(
                str(body.get("request")), req if isinstance(req, dict) else {}, sender,
                str(exc), getattr(exc, "rule", None),
            )  # fmt: skip
        reply.update(request=body.get("request"), attempt=attempt)
        self._send_control(sender, "ready", str(body.get("request")), attempt, reply)

    def _judge(
        self, wallet: NodeWallet, body: dict[str, Any], request_id: str, *, velocity: bool = True
    ) -> Judgement | None:
        """Judge a signing request under this node's policy (:mod:`tmpc.node.policy`); a
        refusal is recorded and raised (naming its rule). ``velocity=False``: for a request
        this node holds a reservation for already. A heartbeat (its fixed, non-spendable
        message only) is not the policy's business."""
        if body.get("heartbeat") is True:
            if body.get("message") != heartbeat_message(wallet.record).hex():
                raise ParameterError("a heartbeat signs the wallet's heartbeat message only")
            return None
        try:
            return self.policy.judge(wallet, body, velocity=velocity)
        except TmpcError as exc:
            rule = getattr(exc, "rule", None)
            if not any(
                e["request"] == request_id and e["event"] == "refused"
                for e in self.db.policy_events(50)
            ):
                self.db.add_policy_event(
                    "refused", request=request_id, wallet=wallet.record.wallet_id, rule=rule,
                    detail={"reason": str(exc)[:500]},
                )  # fmt: skip
            self._count("policy_refused")
            raise

    def _settle(self, request_id: str, *, signed: bool) -> None:
        """A request's outcome is known: its velocity reservation here counts for good
        (signed) or stops counting (failed). Unknown outcomes (a coordinator that died) keep
        counting until the window passes: the safe side of a limit."""
        reservation = self._held.pop(request_id, None)
        if reservation is None:
            return
        with contextlib.suppress(TmpcError):
            if signed:
                self.policy.ledger.commit(reservation)
            else:
                self.policy.ledger.release(reservation)

    def _reserve(
        self, judgement: Judgement | None, request_id: str, coordinator: str
    ) -> str | None:
        """Reserve a judged request under its rule's velocity limit (atomic: concurrent
        requests cannot overshoot) and record (and audit) the decision the session runs
        under."""
        if judgement is None:
            return None
        d = judgement.decision
        try:
            reservation = self.policy.ledger.reserve_for(judgement.facts, d)
        except TmpcError as exc:
            self.db.add_policy_event(
                "refused", request=request_id, wallet=judgement.facts.wallet_id, rule=d.rule,
                detail={"reason": str(exc)[:500]},
            )  # fmt: skip
            self._count("policy_refused")
            # "policy:": a refusal the coordinator treats as a veto, as any policy refusal.
            raise pol.PolicyRefusedError(f"policy: {exc}", d.rule) from None
        self.db.add_policy_event(
            "allowed", request=request_id, wallet=judgement.facts.wallet_id, rule=d.rule,
            detail={"group": d.group, "usd": None if d.usd is None else str(d.usd),
                    "approvals": dict(d.approvals_present)},
        )  # fmt: skip
        f = judgement.facts
        group_wallet = schemes.group_wallet_id(f.wallet_id, d.group or schemes.DEFAULT_GROUP)
        self.observe.request_approved(
            request_id, coordinator,
            {"wallet": group_wallet, "key_id": f.wallet_id, "group": d.group, "rule": d.rule,
             "chain": f.chain, "asset": f.asset,
             "amount": None if f.amount is None else str(f.amount),
             "usd": None if d.usd is None else str(d.usd),
             "destinations": list(f.destinations), "approvals": dict(d.approvals_present)},
        )  # fmt: skip
        return reservation

    def install_policy(self, bundle: bytes) -> dict[str, Any]:
        """Install a signed policy bundle here (verified against the cluster file's
        administrators, newer than the installed one) and forward it to every other member,
        each of which verifies it itself. Returns this node's policy status."""
        policy = self.policy.install(bundle)
        self.db.add_policy_event("installed", detail={"version": policy.version})
        self.observe.policy_installed(policy.version, self.policy.status().get("digest", ""), None)
        body = {"request": f"policy-{policy.version}", "bundle": bundle.decode()}
        for member in self.members:
            if member != self.name:
                self._send_control(member, "policy", body["request"], 0, body)
        return self.policy.status()

    def _on_policy(self, sender: str, body: dict[str, Any]) -> None:
        """A member forwards a policy bundle: install it if it verifies and is newer."""
        try:
            before = self.policy.policy.version if self.policy.policy is not None else None
            policy = self.policy.install(str(body.get("bundle", "")))
        except TmpcError as exc:
            self._count("policy_not_installed")
            log.info("policy from %s not installed: %s", sender, exc)
            return
        if before != policy.version:
            self.db.add_policy_event(
                "installed", detail={"version": policy.version, "from": sender}
            )
            self.observe.policy_installed(
                policy.version, self.policy.status().get("digest", ""), sender
            )
            log.info("installed policy version %d (from %s)", policy.version, sender)

    def _wallet_shown(self, wallet_id: str, record: object) -> NodeWallet:
        """The wallet as this node holds it, or, for a node joining it (a new party of a
        reshare), as the record the coordinator showed (its whole history checked: DKG
        certificate and every epoch's signatures)."""
        try:
            return self.wallets.get(wallet_id)
        except KeystoreError:
            if record is None:
                raise
        rec = schemes.WalletRecord.from_json(record)
        if rec.wallet_id != wallet_id:
            raise ParameterError("the record shown is another wallet's")
        return NodeWallet(rec, self.wallets.names_of(rec), None)

    def _check_epoch(self, wallet: NodeWallet, epoch: object, asker: str | None = None) -> None:
        """Refuse a request for another epoch of the wallet than this node's: shares of two
        epochs never meet in one session. A node behind with the next epoch staged asks
        ``asker`` for the commit it missed; one with nothing staged must be repaired."""
        if not isinstance(epoch, int) or isinstance(epoch, bool):
            raise ParameterError("the request names no epoch of the wallet")
        mine = wallet.record.epoch
        if epoch == mine:
            return
        if epoch < mine:
            raise ParameterError(f"this node is at epoch {mine} of the wallet, not {epoch}")
        if asker is not None and self.wallets.has_staged(wallet.record.wallet_id):
            self._ask_catchup(wallet.record.wallet_id, mine, [asker])
            raise ParameterError(
                f"this node is at epoch {mine} of the wallet, not {epoch}: catching up"
            )
        if asker is not None:
            self._behind(wallet, epoch, "")
        raise ParameterError(
            f"this node is at epoch {mine} of the wallet, not {epoch}, and holds no share of "
            "the later epoch: repair this party (tmpc repair)"
        )

    def _pooled(self, wallet: NodeWallet, path: str | None) -> list[list[Any]]:
        """``[id hex, [signer names]]`` of this node's unused presignatures for a wallet and
        path (at most 16, oldest first), for a readiness answer."""
        me = wallet.ids[self.name]
        return [
            [pid.hex(), [wallet.names[i] for i in signers]]
            for signers, pid in self.presigs.available(wallet.record.wallet_id, path, me, 16)
        ]

    def _on_start(self, sender: str, body: dict[str, Any], attempt: int) -> None:
        request_id = str(body.get("request"))
        try:
            req = body["body"]
            participants = [str(p) for p in body["participants"]]
            wallet = self._check_request(req, record=body.get("record"))
        except (TmpcError, ValueError, KeyError, TypeError) as exc:
            self._refuse(sender, request_id, attempt, exc, body)
            return
        # Idempotency: a signature this node already finished is answered, never made again.
        # A DKG is different: a party that finished an attempt others could not finish runs
        # the new attempt with everyone (the earlier, incomplete wallet is left unused).
        prior = self.db.request(request_id)
        if (
            req.get("kind") == "sign"
            and prior is not None
            and prior["status"] == "done"
            and prior["result"] is not None
        ):
            self._send_control(
                sender,
                "done",
                request_id,
                attempt,
                {"request": request_id, "attempt": attempt, "result": prior["result"]},
            )
            return
        try:
            if wallet is not None:
                self._check_epoch(wallet, body.get("epoch"))
                self._check_quorum(request_id, attempt, wallet, participants, body)
            presig = body.get("presignature")
            if presig is not None and (
                not isinstance(presig, str) or len(bytes.fromhex(presig)) != 32
            ):
                raise ParameterError("a presignature id is 32 bytes in hex")
            session = self._build_session(
                sender, request_id, attempt, req, participants, wallet, presig, body
            )
        except (TmpcError, ValueError, KeyError, TypeError) as exc:
            self._refuse(sender, request_id, attempt, exc, body)
            return
        if session is None:
            return  # a duplicate start of a session already run
        if req.get("kind") == "sign" and wallet is not None:
            try:
                held = request_id in self._held
                judgement = self._judge(wallet, req, request_id, velocity=False)
                if not held and judgement is not None:
                    self._held[request_id] = self._reserve(judgement, request_id, sender)
            except TmpcError as exc:
                self.db.end_session(session.id, "aborted", error=f"refused: {exc}", culprits=[])
                self._refuse(sender, request_id, attempt, exc, body)
                return
        self._sessions[session.id] = session
        self.observe.session_started(
            session.id, request_id, session.protocol, session.wallet, sender,
            list(session.participants), attempt,
        )  # fmt: skip
        early = self._early.pop(session.id, [])
        session.buffered.extend(early)
        try:
            self._start_stage(session)
        except TmpcError as exc:
            self._abort_session(session, str(exc), [])

    def _refuse(
        self,
        coordinator: str,
        request_id: str,
        attempt: int,
        exc: Exception,
        body: dict[str, Any] | None = None,
    ) -> None:
        """Tell the coordinator this node will not run the attempt, and why (audited)."""
        req = body.get("body") if isinstance(body, dict) else None
        self.observe.request_refused(
            request_id, req if isinstance(req, dict) else {}, coordinator, str(exc),
            getattr(exc, "rule", None),
        )  # fmt: skip
        payload = {"request": request_id, "attempt": attempt, "reason": f"refused: {exc}"}
        self._send_control(coordinator, "abort", request_id, attempt, payload)

    def _check_quorum(
        self,
        request_id: str,
        attempt: int,
        wallet: NodeWallet,
        participants: list[str],
        body: dict[str, Any],
    ) -> None:
        """Check the coordinator's quorum against the signed readiness answers it shows.

        Every answer must be a signed broadcast ``ready`` of a wallet party for this request
        and attempt; the participants must be exactly :func:`select_quorum` of them. So the
        coordinator can choose a quorum only among parties that said they were ready (and it
        can leave out answers, which only narrows its choice to what it shows)."""
        session = request_session(self.cluster.hash, request_id)
        answers: dict[str, dict[str, Any]] = {}
        req = body.get("body")
        new_parties: list[str] = []
        if isinstance(req, dict) and req.get("kind") == "reshare":
            new_parties = [str(p) for p in req.get("parties") or []]
        if isinstance(req, dict) and req.get("kind") == "repair":
            new_parties = [str(req.get("node"))]
        raw_list = body.get("evidence")
        if not isinstance(raw_list, list) or len(raw_list) > 255:
            raise ParameterError("the start carries no readiness evidence")
        for item in raw_list:
            try:
                env = envelope.verify_evidence(
                    bytes.fromhex(str(item)), self.cluster.hash, self.members
                )
                payload = json.loads(env.body)
            except (envelope.EnvelopeError, ValueError):
                raise ParameterError("invalid readiness evidence") from None
            if (
                env.protocol != "ready"
                or env.session != session
                or env.attempt != attempt
                or not isinstance(payload, dict)
                or payload.get("request") != request_id
                or (env.sender not in wallet.ids and env.sender not in new_parties)
            ):
                raise ParameterError("readiness evidence of another request or attempt")
            answers[env.sender] = payload
        need = wallet.record.threshold
        kind = body["body"].get("kind") if isinstance(body.get("body"), dict) else None
        if kind == "refresh":
            need = len(wallet.ids)  # a rotation needs every party
        if kind == "repair":
            lost_holder = wallet.names[int(body["body"]["party"])]
            others = [n for n in sorted(wallet.ids) if n != lost_holder]
            helpers, members = repair_quorum(
                answers, request_id, attempt, others, str(body["body"]["node"]), need
            )
            if participants != members or body.get("helpers") != helpers:
                raise ParameterError(
                    f"the members {participants} are not the ones the readiness answers give "
                    f"({members}, helpers {helpers})"
                )
            return
        if kind == "reshare":
            new = [str(p) for p in body["body"]["parties"]]
            dealers, members = reshare_quorum(
                answers, request_id, attempt, sorted(wallet.ids), new, need
            )
            if participants != members or body.get("dealers") != dealers:
                raise ParameterError(
                    f"the members {participants} are not the ones the readiness answers give "
                    f"({members}, dealers {dealers})"
                )
            return
        presig = body.get("presignature")
        if presig is not None:
            # Finishing a pooled presignature: its signer set is the quorum, and every one of
            # them must have listed it as held (with that set) and be a ready candidate.
            if pooled_presignatures(answers, need).get(str(presig)) != participants:
                raise ParameterError(
                    "the presignature is not one every participant showed ready to finish"
                )
            return
        expected = select_quorum(answers, request_id, attempt, need)
        if participants != expected:
            raise ParameterError(
                f"the quorum {participants} is not the one the readiness answers give ({expected})"
            )

    def _build_session(
        self,
        coordinator: str,
        request_id: str,
        attempt: int,
        req: dict[str, Any],
        participants: list[str],
        wallet: NodeWallet | None,
        presignature: str | None = None,
        start: dict[str, Any] | None = None,
    ) -> _Session | None:
        if participants != sorted(set(participants)) or self.name not in participants:
            raise ParameterError("invalid participant list")
        if req["kind"] == "keygen":
            parties = [str(p) for p in req["parties"]]
            if sorted(parties) != participants:
                raise ParameterError("a DKG needs every party")
            wallet_key = "keygen:" + request_id
            sid = session_id(self.cluster.hash, request_id, wallet_key, participants, attempt, req)
            ids = {n: i + 1 for i, n in enumerate(parties)}
            hostpubkeys = [self.cluster.member(n).host_pubkey for n in parties]
            stages, finish = machines.keygen_stages(
                req["scheme"], int(req["threshold"]), ids[self.name], self.identity.seckey,
                hostpubkeys, self.wallets, sid,
            )  # fmt: skip
        elif req["kind"] == "repair":
            assert wallet is not None and start is not None
            wallet_key = wallet.record.wallet_id
            sid = session_id(
                self.cluster.hash, request_id, _epoch_key(wallet), participants, attempt, req
            )
            lost, node = int(req["party"]), str(req["node"])
            helpers = [str(h) for h in start["helpers"]]
            ids = {h: wallet.ids[h] for h in helpers}
            ids[node] = lost
            stages, finish = machines.repair_stages(
                wallet.record, wallet.share, self.identity.seckey, ids[self.name],
                sorted(ids[h] for h in helpers), lost, self.cluster.member(node).host_pubkey,
                sid, self.wallets, self._lifecycle_hooks(wallet.record.epoch, request_id),
            )  # fmt: skip
        elif req["kind"] == "reshare":
            assert wallet is not None and start is not None
            wallet_key = wallet.record.wallet_id
            sid = session_id(
                self.cluster.hash, request_id, _epoch_key(wallet), participants, attempt, req
            )
            ids, stages, finish = self._reshare_member(wallet, req, start, sid, request_id)
        elif req["kind"] == "refresh":
            assert wallet is not None
            parties = sorted(wallet.ids)
            if participants != parties:
                raise ParameterError("a rotation needs every party of the wallet")
            wallet_key = wallet.record.wallet_id
            sid = session_id(
                self.cluster.hash, request_id, _epoch_key(wallet), participants, attempt, req
            )
            ids = dict(wallet.ids)
            stages, finish = machines.refresh_stages(
                wallet, sid, self.wallets, self._lifecycle_hooks(wallet.record.epoch, request_id)
            )
        else:
            assert wallet is not None
            excluded = self.db.excluded(wallet.record.wallet_id)
            if excluded & set(participants):
                raise ParameterError(f"excluded parties in the session: {sorted(excluded)}")
            if len(participants) < wallet.record.threshold:
                raise ParameterError("fewer participants than the threshold")
            for p in participants:
                if p not in wallet.ids:
                    raise ParameterError(f"{p} is not a party of the wallet")
            wallet_key = wallet.record.wallet_id
            sid = session_id(
                self.cluster.hash, request_id, _epoch_key(wallet), participants, attempt, req,
                presignature,
            )  # fmt: skip
            ids = {n: wallet.ids[n] for n in participants}
            signers = sorted(ids.values())
            if req["kind"] == "presign":
                stages, finish = machines.presign_stages(
                    wallet, signers, req.get("path"), int(req["count"]), sid, self.presigs
                )
            else:
                pooled = None
                if presignature is not None:
                    pooled = (self.presigs, bytes.fromhex(presignature))
                stages, finish = machines.sign_stages(
                    wallet, signers, bytes.fromhex(req["message"]), req.get("path"), sid, pooled
                )
        if self.db.session_status(sid) is not None:
            return None  # a duplicate start of a session already run
        if (
            wallet is not None
            and req["kind"] in ("sign", "presign")
            and schemes.get_scheme(wallet.record.scheme).dkls23
            and presignature is None
        ):
            # DKLs23 multiplications are keyed by the session id: record it (each of a
            # batch's) in the single-use ledger (fsync'd) before any message is computed.
            # Finishing a pooled presignature multiplies nothing; its id is marked used when
            # it is taken from the pool.
            me = wallet.ids[self.name]
            pairs = [(me, wallet.ids[p]) for p in participants if p != self.name]
            used = batch_session_ids(sid, int(req["count"])) if req["kind"] == "presign" else sid
            self.ledger.use_sessions(wallet.record.wallet_id, pairs, used)
        if not self.db.start_session(
            sid, request_id, attempt, machines.protocol_name(req), wallet_key, participants,
            coordinator, req["kind"], req,
        ):  # fmt: skip
            return None
        return _Session(
            sid, request_id, attempt, wallet_key, coordinator, participants, ids, stages, finish,
            kind=req["kind"], protocol=machines.protocol_name(req),
        )  # fmt: skip

    def _reshare_member(
        self,
        wallet: NodeWallet,
        req: dict[str, Any],
        start: dict[str, Any],
        sid: bytes,
        request_id: str,
    ) -> tuple[dict[str, int], list[Any], Any]:
        """This node's side of a reshare: member ids (a new party's is its new party id; a
        dealer that leaves gets one after them), roles, and the stages."""
        new = [str(p) for p in req["parties"]]
        dealers = [str(d) for d in start["dealers"]]
        ids = {name: j for j, name in enumerate(new, start=1)}
        for k, name in enumerate(sorted(d for d in dealers if d not in ids), start=1):
            ids[name] = len(new) + k
        dealer_map = {ids[d]: wallet.ids[d] for d in dealers}
        receiver_map = {ids[n]: ids[n] for n in new}
        new_hosts = {ids[n]: self.cluster.member(n).host_pubkey for n in new}
        share = wallet.share if self.name in dealers else None
        group = req.get("group")
        stages, finish = machines.reshare_stages(
            wallet.record, share, self.identity.seckey, ids[self.name], dealer_map,
            receiver_map, int(req["threshold"]), new_hosts, sid, self.wallets,
            self._lifecycle_hooks(wallet.record.epoch, request_id),
            None if group is None else str(group),
        )  # fmt: skip
        return ids, stages, finish

    def _lifecycle_hooks(self, before: int, request_id: str) -> machines.LifecycleHooks:
        """What this node does once a lifecycle session staged the next epoch here (record
        it), and before its test signature (for ECDSA, record the session in the ledger)."""

        def staged(new_record: schemes.WalletRecord) -> None:
            self._lifecycle(
                new_record.wallet_id, "staged", before, new_record.epoch,
                session=new_record.history[-1].session or None, request=request_id,
                detail={"kind": _entry_kind(new_record)},
            )  # fmt: skip
            self._failpoint("refresh:staged")

        def test_session(new_record: schemes.WalletRecord, session: bytes, me: int) -> None:
            if schemes.get_scheme(new_record.scheme).dkls23:
                pairs = [(me, j) for j in new_record.party_ids if j != me]
                self.ledger.use_sessions(new_record.wallet_id, pairs, session)

        return machines.LifecycleHooks(staged, test_session)

    def _on_commit(self, sender: str, body: dict[str, Any]) -> None:
        """Phase 3 of a lifecycle change (refresh, reshare): switch to the next epoch, given
        its proof.

        The proof is the test signature the new parties made with their staged shares: it
        verifies under the wallet's key over :func:`~tmpc.schemes.rotation_test_message` of
        the next record only. The commit comes from the coordinator once every member
        reported, or from a peer that switched (each node forwards it once, so a coordinator
        that died midway leaves no party behind). A node that staged the epoch switches to it
        (a dealer that leaves a reshare staged the record alone); a party that took no part
        and is not in the next epoch (removed by a reshare) keeps the record only; one that
        should hold a share it never staged is told it must be repaired. Then the old share
        file, the old epoch's pooled presignatures and the staged files go."""
        request_id = str(body.get("request"))
        try:
            wid = str(body["wallet"])
            session = bytes.fromhex(str(body["session"]))
            epoch = int(body["epoch"])
            signature = bytes.fromhex(str(body["signature"]))
            wallet = self.wallets.current(wid)
            staged = self.wallets.staged(wid, session)
            shown = body.get("record")
            record = staged or (schemes.WalletRecord.from_json(shown) if shown else None)
        except (TmpcError, KeyError, TypeError, ValueError):
            self._count("commit_malformed")
            return
        if record is None or record.wallet_id != wid or record.epoch != epoch:
            self._count("commit_malformed")
            return
        parties = set(self.wallets.names_of(record).values())
        if wallet is not None:
            parties |= set(wallet.ids)
        # The commit founding a signing group: its dealers are the key's default group.
        founding = record.signing_group is not None and record.group_fork == epoch - 1
        parent = self.wallets.current(record.key_id) if founding else None
        if parent is not None:
            parties |= set(parent.ids)
        # Any member may deliver a commit (a coordinator need not hold a share of the wallet):
        # what counts is its proof, the test signature checked below.
        before = wallet.record.epoch if wallet is not None else None
        answer: dict[str, Any] = {"request": request_id, "wallet": wid, "epoch": before}
        if before is not None and before >= epoch:
            self._send_control(sender, "committed", request_id, 0, dict(answer, ok=True))
            return
        message = schemes.rotation_test_message(record)
        if not schemes.verify(record.scheme, record.public_key, message, signature):
            self._count("commit_bad_proof")
            return
        mine = self.name in self.wallets.names_of(record).values()
        if wallet is None and staged is None:
            if parent is not None and not mine:
                # A new signing group of a key this node holds: keep its public record, so
                # this node can coordinate the group's requests and show its address.
                self.wallets.add(record, None)
                self._lifecycle(
                    wid, "created", None, epoch, session=session, request=request_id,
                    detail={"kind": "group", "group": record.group_name, "from": sender},
                )  # fmt: skip
            return  # neither held nor joining: not this node's business
        # A party that took no part in a repair keeps its share: it seals it for the epoch.
        keeps = (
            staged is None
            and mine
            and wallet is not None
            and wallet.share is not None
            and _entry_kind(record) == "rehost"
        )
        if (before is not None and before != epoch - 1) or (staged is None and mine and not keeps):
            if wallet is not None:
                self._behind(wallet, epoch, request_id)
            self._send_control(sender, "committed", request_id, 0, dict(answer, ok=False))
            return
        self._failpoint("refresh:before-switch")
        if staged is not None:
            switched = self.wallets.switch(wid, session)
            held = wallet is not None and wallet.share is not None
            event = "removed" if held and switched.share is None else "switched"
        elif keeps:
            switched = self.wallets.reseal(record)
            event = "switched"
        else:
            assert wallet is not None  # not a party, nothing staged: keep the record only
            switched = self.wallets.set_record(record)
            event = "removed" if wallet.share is not None else "switched"
        self._lifecycle(
            wid, event, before, epoch, session=session, request=request_id,
            detail={"kind": _entry_kind(record), "test_signature": signature.hex(),
                    "from": sender, "record": record.to_json()},
        )  # fmt: skip
        self._failpoint("refresh:switched")
        dropped = 0
        if wallet is not None and wallet.share is not None:
            dropped = self.presigs.retire(wid, wallet.share.identifier)
        removed = self.wallets.cleanup(wid)
        log.info(
            "wallet %s: %s epoch %d; %d old file(s) and %d presignature(s) deleted",
            wid, event, epoch, len(removed), dropped,
        )  # fmt: skip
        answer["epoch"] = epoch
        forward = {k: body[k] for k in ("request", "wallet", "session", "epoch", "signature")}
        forward["record"] = record.to_json()
        for p in sorted(parties | set(switched.ids)):
            if p not in (self.name, sender):
                self._send_control(p, "commit", request_id, 0, forward)
        self._send_control(sender, "committed", request_id, 0, dict(answer, ok=True))

    def _behind(self, wallet: NodeWallet, epoch: int, request_id: str) -> None:
        """This node missed a rotation it holds no staged share of: its share is of an old
        epoch and useless with the others' (it must be repaired). Recorded once per epoch."""
        wid = wallet.record.wallet_id
        if any(
            e["event"] == "behind" and e["epoch_after"] == epoch for e in self.db.lifecycle(wid)
        ):
            return
        log.warning(
            "wallet %s: the cluster switched to epoch %d; this node holds epoch %d only and "
            "must be repaired",
            wid, epoch, wallet.record.epoch,
        )  # fmt: skip
        self._lifecycle(wid, "behind", wallet.record.epoch, epoch, request=request_id)

    def _on_catchup(self, sender: str, body: dict[str, Any]) -> None:
        """A peer at an earlier epoch asks what it missed: answer with the commit (and its
        proof) of the epoch after its own, if this node switched to it."""
        try:
            wallet = self.wallets.get(str(body.get("wallet")))
            theirs = body.get("epoch")
            if not isinstance(theirs, int) or isinstance(theirs, bool):
                raise ValueError
        except (TmpcError, ValueError):
            self._count("control_malformed")
            return
        if wallet.record.epoch <= theirs:
            return
        event = self.db.switch_event(wallet.record.wallet_id, theirs + 1)
        if event is None or not event["request"] or not event["session"]:
            return
        proof = {
            "request": event["request"],
            "wallet": wallet.record.wallet_id,
            "session": event["session"],
            "epoch": theirs + 1,
            "signature": event["detail"].get("test_signature", ""),
            "record": event["detail"].get("record"),
        }
        self._send_control(sender, "commit", str(event["request"]), 0, proof)

    async def _pairs_after_repair(self, rid: str, result: dict[str, Any]) -> dict[str, Any]:
        """ECDSA: a repair set up the DKLs23 pairs among its members only; the repaired party
        has none yet with the others. A rotation redoes every pair (and renews every share),
        so it follows at once; if it cannot run now (a party is down), the answer says so and
        the operator runs ``tmpc rotate`` later (meanwhile the repaired party signs with its
        repair's helpers)."""
        try:
            rotated = await self.submit("refresh", {"wallet": result["wallet_id"]}, f"{rid}.pairs")
            out = dict(result, rotated_to=rotated["epoch"])
        except TmpcError as exc:
            out = dict(result, rotated_to=None, rotation_error=str(exc)[:300])
        self.db.set_request(rid, status="done", result=out)
        return out

    async def _commit_rotation(
        self, rid: str, body: dict[str, Any], result: dict[str, Any]
    ) -> dict[str, Any]:
        """Phase 3 as coordinator: every party staged and proved the next epoch (the agreed
        test signature verified in :func:`machines.check_result`); tell every party to
        switch, and wait a while for their answers. A party that does not answer (down) is
        listed as ``pending``: it switches when the commit reaches it, or asks for it when it
        restarts."""
        record = schemes.WalletRecord.from_json(result["wallet"])
        # A reshare founding a signing group starts from the key's default group.
        wallet = self.wallets.current(record.wallet_id) or self.wallets.get(str(body["wallet"]))
        self._failpoint("refresh:before-commit")
        parties = sorted(set(wallet.ids) | set(self.wallets.names_of(record).values()))
        if self.name not in parties:
            if self.wallets.current(record.wallet_id) is None:
                self.wallets.add(record, None)
            else:
                self.wallets.set_record(record)
        # Every member learns of a new signing group (its public record); parties switch.
        told = sorted(self.members) if record.wallet_id != wallet.record.wallet_id else parties
        answers: dict[str, dict[str, Any]] = {}
        event = asyncio.Event()
        self._commits[rid] = (answers, event)
        proof = {
            "request": rid,
            "wallet": record.wallet_id,
            "session": result["session"],
            "epoch": record.epoch,
            "signature": result["test_signature"],
            "record": result["wallet"],
        }
        try:
            for p in told:
                if p in parties or p != self.name:
                    self._send_control(p, "commit", rid, 0, proof)
            deadline = time.monotonic() + self.settings.round_timeout * 2
            while sum(p in answers for p in parties) < len(parties) and time.monotonic() < deadline:
                event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), max(deadline - time.monotonic(), 0))
        finally:
            self._commits.pop(rid, None)
        switched = sorted(n for n, a in answers.items() if a.get("epoch") == record.epoch)
        out = {k: v for k, v in result.items() if k != "wallet"}
        out.update(committed=switched, pending=[p for p in parties if p not in switched])
        self.db.set_request(rid, status="done", result=out)
        return out

    # -- coordinating -----------------------------------------------------------------------

    async def submit(
        self, kind: str, body: dict[str, Any], request_id: str | None
    ) -> dict[str, Any]:
        """Coordinate a request and wait for its result (idempotent by ``request_id``).

        Raises :class:`InputError` for a request this node refuses, :class:`RequestFailedError`
        if it cannot complete."""
        body = dict(body, kind=kind)
        if kind in ("sign", "presign", "refresh", "repair"):
            body = self._resolve_group(body)
        if kind == "sign" and body.get("transaction") is not None and "message" not in body:
            held = self.wallets.get(str(body.get("wallet")))
            body["message"] = self.policy.message_of(held, body)
        if kind in LIFECYCLE and "epoch" not in body:
            body["epoch"] = self.wallets.get(str(body.get("wallet"))).record.epoch
        self._check_request(body, as_party=False)
        rid = request_id or secrets.token_hex(16)
        if not 1 <= len(rid) <= 128 or not all(c.isalnum() or c in "-_." for c in rid):
            raise ParameterError("request ids are 1-128 of A-Z a-z 0-9 - _ .")
        existing = self.db.request(rid)
        if existing is not None:
            if existing["body"] != body:
                raise ParameterError(f"request id {rid} was used for another request")
            if existing["status"] == "done":
                return dict(existing["result"], request_id=rid)
            if existing["status"] == "failed":
                raise RequestFailedError(existing["error"] or "failed")
        else:
            wallet = body.get("wallet") if kind == "sign" else None
            self.db.add_request(rid, kind, wallet, body, "coordinator")
            self.observe.request_received(rid, body)
        task = self._inflight.get(rid)
        if task is None:
            task = self._spawn(self._run_request(rid))
            self._inflight[rid] = task
        result = await asyncio.shield(task)
        return dict(result, request_id=rid)

    def groups_of(self, key_id: str) -> dict[str, NodeWallet]:
        """Every signing group of the key ``key_id`` this node knows: name -> its wallet."""
        out: dict[str, NodeWallet] = {}
        for wid in self.wallets.ids():
            try:
                held = self.wallets.get(wid)
            except TmpcError:
                continue
            if held.record.key_id == key_id:
                out[held.record.group_name] = held
        return out

    def _resolve_group(self, body: dict[str, Any]) -> dict[str, Any]:
        """The request with ``wallet`` set to the sharing of its signing group: the one it
        names (``"group"``), or for a signing request under a policy the one the policy gives
        it (the parties judge it again: one of another group refuses it, naming the rule), or
        the wallet's own. ``wallet`` may be the key id or any group's wallet id."""
        wallet = self.wallets.get(str(body.get("wallet")))
        name = body.get("group")
        if name is None and body.get("kind") == "sign":
            with contextlib.suppress(TmpcError):
                name = self.policy.group_for(wallet, body)
        if name is None or name == wallet.record.group_name:
            return dict(body, group=wallet.record.group_name)
        groups = self.groups_of(wallet.record.key_id)
        if not isinstance(name, str) or name not in groups:
            known = ", ".join(sorted(groups))
            raise ParameterError(f"the wallet has no signing group {name!r} (it has: {known})")
        return dict(body, wallet=groups[name].record.wallet_id, group=name)

    def _wallet_at_epoch(self, body: dict[str, Any]) -> NodeWallet:
        """The wallet of a lifecycle request, still at the epoch the request starts from."""
        wallet = self.wallets.get(body["wallet"])
        if wallet.record.epoch != body["epoch"]:
            raise RequestFailedError(
                f"the wallet is at epoch {wallet.record.epoch} now, not {body['epoch']}"
            )
        return wallet

    def _outcome(self, rid: str, parties: list[str], *, signed: bool) -> None:
        """Tell every party of a signing request whether it got signed, so that each settles
        its velocity reservation (signer or not)."""
        for p in parties:
            self._send_control(
                p, "outcome", rid, 0, {"request": rid, "signed": signed, "wallet": ""}
            )

    def _signed_outcome(self, rid: str, *, signed: bool) -> None:
        """After a signing request under a policy: every party settles its reservation."""
        req = self.db.request(rid)
        if self.policy.policy is None or req is None or req["body"].get("kind") != "sign":
            return
        with contextlib.suppress(TmpcError):
            self._outcome(
                rid, sorted(self.wallets.get(str(req["body"]["wallet"])).ids), signed=signed
            )

    async def _run_request(self, rid: str) -> dict[str, Any]:
        try:
            result = await self._attempts(rid)
            req = self.db.request(rid)
            if req is not None and req["body"].get("kind") in LIFECYCLE:
                result = await self._commit_rotation(rid, req["body"], result)
                if req["body"]["kind"] == "repair" and schemes.get_scheme(result["scheme"]).dkls23:
                    result = await self._pairs_after_repair(rid, result)
            self._signed_outcome(rid, signed=True)
            if req is not None:
                self.observe.request_done(rid, req["body"], result)
            return result
        except RequestFailedError as exc:
            self.db.set_request(rid, status="failed", error=str(exc))
            self._signed_outcome(rid, signed=False)
            failed = self.db.request(rid)
            self.observe.request_failed(
                rid, failed["body"] if failed else {}, str(exc), exc.culprits
            )
            raise
        finally:
            self._inflight.pop(rid, None)
            self._coord.pop(rid, None)

    async def _attempts(self, rid: str) -> dict[str, Any]:
        req = self.db.request(rid)
        assert req is not None
        body = req["body"]
        start_attempt = int(req["attempt"]) + 1
        stalled = self._stalled.setdefault(rid, set())
        history: list[str] = []  # what went wrong in each attempt, for the final error

        def why() -> str:
            return "; ".join(history[-3:]) or "no attempt made"

        for attempt in range(start_attempt, start_attempt + _MAX_ATTEMPTS):
            self.db.set_request(rid, status="pending", attempt=attempt)
            epoch: int | None = None
            if body["kind"] == "keygen":
                parties = [str(p) for p in body["parties"]]
                need, eligible = len(parties), parties
                sid_key = "keygen:" + rid
            elif body["kind"] == "repair":
                wallet = self._wallet_at_epoch(body)
                excluded = self.db.excluded(wallet.record.wallet_id)
                lost_holder = wallet.names[int(body["party"])]
                others = [
                    n for n in wallet.ids
                    if n != lost_holder and n not in excluded and n not in stalled
                ]  # fmt: skip
                eligible = sorted({*others, str(body["node"])})
                need, epoch = wallet.record.threshold, wallet.record.epoch
                sid_key = _epoch_key(wallet)
            elif body["kind"] == "reshare":
                wallet = self._wallet_at_epoch(body)
                excluded = self.db.excluded(wallet.record.wallet_id)
                old = [n for n in wallet.ids if n not in excluded and n not in stalled]
                eligible = sorted(set(old) | {str(p) for p in body["parties"]})
                need, epoch = wallet.record.threshold, wallet.record.epoch
                sid_key = _epoch_key(wallet)
            elif body["kind"] == "refresh":
                wallet = self._wallet_at_epoch(body)
                excluded = self.db.excluded(wallet.record.wallet_id)
                if excluded:
                    raise RequestFailedError(
                        f"excluded parties {sorted(excluded)} hold shares: a rotation needs "
                        "every party (reshare them out first)"
                    )
                eligible = sorted(wallet.ids)
                need, epoch = len(eligible), wallet.record.epoch
                sid_key = _epoch_key(wallet)
            else:
                wallet = self.wallets.get(body["wallet"])
                excluded = self.db.excluded(wallet.record.wallet_id)
                eligible = [n for n in wallet.ids if n not in excluded and n not in stalled]
                need, epoch = wallet.record.threshold, wallet.record.epoch
                sid_key = _epoch_key(wallet)
            if len(eligible) < need:
                raise RequestFailedError(
                    f"{why()}; only {len(eligible)} eligible parties, {need} needed",
                    tuple(sorted(stalled)),
                )
            c = _Coordinated(attempt)
            self._coord[rid] = c
            shown: dict[str, Any] = {}
            if body["kind"] in ("reshare", "repair"):  # a new node checks the wallet's record
                shown["record"] = self.wallets.get(body["wallet"]).record.to_json()
            for p in eligible:
                self._send_control(
                    p, "propose", rid, attempt,
                    {"request": rid, "body": body, "wallet": "", "epoch": epoch, **shown},
                )  # fmt: skip
            # A reshare needs every new party: no short grace once a quorum is ready.
            quorum = None if body["kind"] in ("reshare", "repair") else need
            await self._wait(
                c, ("ready",), len(eligible), self.settings.ready_timeout, quorum=quorum
            )
            ready = [n for n, r in c.ready.items() if r.get("ok")]
            refused = {n: r.get("reason") for n, r in c.ready.items() if not r.get("ok")}
            policy_refusals = {
                n: why for n, why in refused.items() if str(why).startswith("policy:")
            }
            if body["kind"] == "sign" and policy_refusals:
                # One node's policy refusal vetoes the request: every node enforces the same
                # policy, so a refusal means the request is over a limit or lacks approvals
                # from where that node stands (a velocity count that includes requests the
                # others did not see).
                self._outcome(rid, eligible, signed=False)
                raise RequestFailedError(f"refused by the signing policy: {policy_refusals}")
            if len(ready) < need:
                silent = [p for p in eligible if p not in c.ready]
                stalled.update(silent)
                line = f"attempt {attempt}: {len(ready)} of {need} parties ready"
                if refused:
                    line += f" (refused: {refused})"
                if silent:
                    line += f" (no answer: {silent})"
                history.append(line)
                if not silent:
                    raise RequestFailedError(why())
                continue
            presig = self._choose_presignature(c.ready, rid, attempt, need, body)
            if presig is not None:
                pid, chosen = presig
                self._reserved.add(pid)
            elif body["kind"] in ("reshare", "repair"):
                pid = None
                try:
                    held = self.wallets.get(body["wallet"])
                    if body["kind"] == "repair":
                        lost_holder = held.names[int(body["party"])]
                        others = [n for n in sorted(held.ids) if n != lost_holder]
                        dealers, chosen = repair_quorum(
                            c.ready, rid, attempt, others, str(body["node"]), need
                        )
                    else:
                        dealers, chosen = reshare_quorum(
                            c.ready, rid, attempt, sorted(held.ids),
                            [str(p) for p in body["parties"]], need,
                        )  # fmt: skip
                except ParameterError as exc:
                    silent = [p for p in eligible if p not in c.ready]
                    stalled.update(silent)
                    history.append(f"attempt {attempt}: {exc}" + (
                        f" (refused: {refused})" if refused else ""))  # fmt: skip
                    if not silent:
                        raise RequestFailedError(why()) from None
                    continue
                shown["helpers" if body["kind"] == "repair" else "dealers"] = dealers
            else:
                pid, chosen = None, select_quorum(c.ready, rid, attempt, need)
            c.chosen = chosen
            evidence = [c.evidence[n].hex() for n in sorted(c.evidence) if n in c.ready]
            sid = session_id(self.cluster.hash, rid, sid_key, chosen, attempt, body, pid)
            log.info(
                "request %s attempt %d: session %s with %s%s",
                rid, attempt, sid.hex()[:16], chosen,
                f" (presignature {pid[:16]})" if pid else "",
            )  # fmt: skip
            start: dict[str, Any] = {
                "request": rid,
                "body": body,
                "participants": chosen,
                "evidence": evidence,
                "wallet": "",
                "epoch": epoch,
                **shown,
            }
            if pid is not None:
                start["presignature"] = pid
            for p in chosen:
                self._send_control(p, "start", rid, attempt, start)
            n_rounds = 1 if pid is not None else machines.round_count(body)
            limit = self.settings.round_timeout * (n_rounds + 2) + self.settings.ready_timeout
            # A signature needs one verified result (a party that finished this request
            # before answers with its recorded one); a new wallet or a batch of presignatures
            # needs every party's.
            first_done = body["kind"] == "sign"
            try:
                await self._wait(c, ("done", "aborts"), len(chosen), limit, any_done=first_done)
            finally:
                if pid is not None:
                    self._reserved.discard(pid)
            if c.done and (first_done or len(c.done) == len(chosen)):
                return self._accept(rid, body, c, chosen)
            # Blame: the parties that caught a culprit exclude it themselves (and say so when
            # ready); here culprits and parties named missing by the live ones (or silent) are
            # left out of this request's later attempts only: a claim is not proof.
            culprits: set[str] = set()
            reasons = []
            for n, a in c.aborts.items():
                culprits.update(str(x) for x in a.get("culprits", []) if x in chosen)
                stalled.update(str(x) for x in a.get("missing", []) if x in chosen)
                reasons.append(f"{n}: {a.get('reason')}")
            silent = [p for p in chosen if p not in c.done and p not in c.aborts]
            stalled.update(silent)
            if body["kind"] != "keygen":
                stalled.update(culprits)
            history.append(f"attempt {attempt} failed ({'; '.join(reasons) or 'timeout'})")
            if body["kind"] == "keygen" and culprits:
                raise RequestFailedError(why(), tuple(sorted(culprits)))
        raise RequestFailedError(f"{why()}; giving up after {_MAX_ATTEMPTS} attempts")

    def _choose_presignature(
        self, ready: dict[str, dict[str, Any]], rid: str, attempt: int, need: int, body: Any
    ) -> tuple[str, list[str]] | None:
        """A pooled presignature for an ECDSA signature, and its signer set as the quorum:
        one every party of its set showed ready to finish (:func:`pooled_presignatures`) that
        no other attempt of this coordinator holds, the first by ``SHA-256(request id ||
        attempt || id)`` (so concurrent requests spread over the pool). None: presign and
        sign in the session."""
        if body.get("kind") != "sign":
            return None
        usable = pooled_presignatures(ready, need)
        free = [pid for pid in usable if pid not in self._reserved]
        if not free:
            return None

        def rank(pid: str) -> bytes:
            return hashlib.sha256(
                lp_join([rid.encode(), attempt.to_bytes(4, "big"), pid.encode()])
            ).digest()

        pid = min(free, key=rank)
        return pid, usable[pid]

    async def _wait(
        self,
        c: _Coordinated,
        kinds: tuple[str, ...],
        count: int,
        timeout: float,
        *,
        any_done: bool = False,
        quorum: int | None = None,
    ) -> None:
        """Wait until ``count`` answers of ``kinds`` arrived for attempt ``c`` (or, with
        ``any_done``, one ``done``), or until ``timeout``.

        With ``quorum``, readiness waits for everyone only for a short grace period once
        ``quorum`` parties are ready (the slowest node does not set every request's pace; the
        quorum is chosen from the answers in hand, which the participants check)."""
        grace_until: float | None = None

        def enough() -> bool:
            nonlocal grace_until
            if any_done and c.done:
                return True
            if kinds == ("ready",):
                if len(c.ready) >= count:
                    return True
                ok = sum(1 for r in c.ready.values() if r.get("ok") is True)
                if quorum is not None and ok >= quorum:
                    now = time.monotonic()
                    if grace_until is None:
                        grace_until = now + self.settings.ready_grace
                    return now >= grace_until
                return False
            # Settled once every participant reported, or was named missing by one that did
            # (no need to wait the whole attempt for a stalled party).
            reported = set(c.done) | set(c.aborts)
            named = {str(x) for a in c.aborts.values() for x in (a.get("missing") or [])}
            return len(reported | named) >= count

        deadline = time.monotonic() + timeout
        while not enough():
            left = deadline - time.monotonic()
            if grace_until is not None:
                left = min(left, max(grace_until - time.monotonic(), 0.0) + 0.0005)
            if left <= 0:
                return
            c.event.clear()
            if enough():
                return
            try:
                await asyncio.wait_for(c.event.wait(), left)
            except TimeoutError:
                return

    def _accept(
        self, rid: str, body: dict[str, Any], c: _Coordinated, chosen: list[str]
    ) -> dict[str, Any]:
        results = [d.get("result") for d in c.done.values()]
        # A party that finished the request before (under another coordinator) answers with
        # the result recorded then, which names who signed it then: compare the signatures.
        results = [
            {k: v for k, v in r.items() if k not in ("participants", "group")}
            if isinstance(r, dict) else r
            for r in results
        ]  # fmt: skip
        if body["kind"] in LIFECYCLE:
            results = _with_test_signature(results)
        first = results[0]
        if not isinstance(first, dict) or any(r != first for r in results):
            raise RequestFailedError("participants disagree on the result")
        try:
            machines.check_result(body, first, self.wallets)
        except TmpcError as exc:
            raise RequestFailedError(f"the participants' result does not hold: {exc}") from None
        if body["kind"] == "keygen" and self.name not in body["parties"]:
            machines.store_public_record(first, self.wallets)
        if body["kind"] == "sign":  # who signed, by name, and as which signing group
            first = dict(first, participants=list(chosen), group=body.get("group"))
        if body["kind"] not in LIFECYCLE:  # a lifecycle change is done once committed
            self.db.set_request(rid, status="done", result=first)
        self._stalled.pop(rid, None)
        return first

    def sessions(self) -> list[dict[str, Any]]:
        """Recent sessions of this node, newest first."""
        return self.db.sessions()

    def session_detail(self, session: bytes) -> dict[str, Any] | None:
        """One session's record and, while it runs here, its protocol machine's public round
        state (``machine``: round, broadcasts so far, whose messages arrived; nothing
        secret, see :class:`~tmpc.protocols.machine.PublicState`). None if unknown."""
        record = self.db.session(session)
        if record is None:
            return None
        live = self._sessions.get(session)
        state = getattr(live.machine, "public_state", None) if live is not None else None
        if callable(state):
            record["machine"] = state().to_json()
            record["missing_now"] = [
                live.names[i] for i in getattr(live.machine, "missing", tuple)() if i in live.names
            ] if live is not None else []  # fmt: skip
        return record
