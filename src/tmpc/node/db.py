"""A node's SQLite database: requests, sessions, exclusions (``DIR/node.db``).

What it keeps, and why it must survive a crash:

- ``requests``: every request this node coordinates or took part in, with its status and
  result, so that a re-submitted request id returns the same result and a request never
  returns two signatures (a participant that already finished a request answers later
  attempts with its recorded result instead of signing again);
- ``sessions``: every attempt's session (id, participants, protocol, status, culprits,
  per-round timings), for ``tmpc sessions`` and for refusing replays into finished sessions;
- ``exclusions``: parties caught cheating in a wallet's sessions; they are left out of that
  wallet's later attempts for good;
- ``evidence``: what proves a party's misbehaviour by itself (two different messages it
  signed for one round), kept for the operators and auditors;
- ``lifecycle``: every key lifecycle event of a wallet on this node (created, a rotation
  staged, switched to or discarded, a node found behind), with the epoch before and after and
  what proves it (for a switch: the rotation's session and test signature, which this node
  shows a peer that missed the switch), for the audit log;
- ``policy_events``: the signing policy's decisions here: requests refused (with the rule and
  the reason), signing sessions started under a rule, policies installed;
- ``outbox``: every protocol message this node sends, sealed (signed, and encrypted when
  point to point), stored before it is first sent and deleted once the recipient
  acknowledged it (or sending gave up): a node restarted mid-session sends what its peers
  have not acknowledged yet, so a share computed before the crash still reaches them and is
  never recomputed (5 of issue 9).

Durability: the file is in WAL mode with ``synchronous=NORMAL``: a commit survives the
node's *process* crashing (SIGKILL, out of memory) at any point; a power loss or kernel crash
may roll back the last commits. Nothing whose loss could reuse a one-time secret lives here:
the DKLs23 session ids a node has run are recorded in its single-use ledger
(:class:`tmpc.state.ledger.Ledger`, ``synchronous=FULL``) before the session starts, and nonces
and presignature shares never touch the disk (the outbox holds only sealed messages, as their
recipients receive them).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, ClassVar

from tmpc.state.store import SqliteState

__all__ = ["NodeDB"]


class NodeDB(SqliteState):
    """The node's state database (see the module docstring)."""

    FORMAT: ClassVar[str] = "tmpc-node-db"
    VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "node database"
    SYNCHRONOUS: ClassVar[str] = "NORMAL"
    SCHEMA: ClassVar[tuple[str, ...]] = (
        """CREATE TABLE IF NOT EXISTS requests (
            id TEXT PRIMARY KEY, kind TEXT NOT NULL, wallet TEXT, body TEXT NOT NULL,
            role TEXT NOT NULL, status TEXT NOT NULL, result TEXT, error TEXT,
            attempt INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, updated REAL NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS sessions (
            id TEXT PRIMARY KEY, request TEXT NOT NULL, attempt INTEGER NOT NULL,
            protocol TEXT NOT NULL, wallet TEXT, participants TEXT NOT NULL,
            coordinator TEXT NOT NULL, status TEXT NOT NULL, error TEXT, culprits TEXT,
            missing TEXT, rounds TEXT, started REAL NOT NULL, finished REAL)""",
        """CREATE TABLE IF NOT EXISTS evidence (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, wallet TEXT NOT NULL, party TEXT NOT NULL,
            kind TEXT NOT NULL, first BLOB NOT NULL, second BLOB NOT NULL, at REAL NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, session TEXT NOT NULL,
            recipient TEXT NOT NULL, data BLOB NOT NULL, created REAL NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS lifecycle (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, wallet TEXT NOT NULL, event TEXT NOT NULL,
            epoch_before INTEGER, epoch_after INTEGER, session TEXT, request TEXT,
            detail TEXT NOT NULL, at REAL NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS policy_events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, request TEXT, wallet TEXT, event TEXT NOT NULL,
            rule TEXT, detail TEXT NOT NULL, at REAL NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS exclusions (
            wallet TEXT NOT NULL, party TEXT NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL,
            PRIMARY KEY (wallet, party))""",
    )

    def __init__(self, path: Path, *, node: str) -> None:
        self._node = node
        super().__init__(path)

    def _identity(self) -> dict[str, str]:
        return {"node": self._node}

    # -- requests ---------------------------------------------------------------------------

    def request(self, request_id: str) -> dict[str, Any] | None:
        """The stored request ``request_id`` (``body`` and ``result`` parsed), or None."""
        row = self._conn.execute(
            "SELECT id, kind, wallet, body, role, status, result, error, attempt, created,"
            " updated FROM requests WHERE id = ?",
            (request_id,),
        ).fetchone()
        if row is None:
            return None
        keys = ("id", "kind", "wallet", "body", "role", "status", "result", "error", "attempt")
        out = dict(zip(keys, row[:9], strict=True))
        out["body"] = json.loads(out["body"])
        out["result"] = json.loads(out["result"]) if out["result"] else None
        out["created"], out["updated"] = row[9], row[10]
        return out

    def add_request(
        self, request_id: str, kind: str, wallet: str | None, body: dict[str, Any], role: str
    ) -> bool:
        """Record a new request; returns False (and changes nothing) if it exists."""
        now = time.time()
        with self.transaction():
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO requests (id, kind, wallet, body, role, status, created,"
                " updated) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                (request_id, kind, wallet, json.dumps(body, sort_keys=True), role, now, now),
            )
            return cur.rowcount == 1

    def set_request(
        self,
        request_id: str,
        *,
        status: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        attempt: int | None = None,
    ) -> None:
        """Update a request's status (and result or error, and attempt counter)."""
        with self.transaction():
            self._conn.execute(
                "UPDATE requests SET status = ?, result = COALESCE(?, result), error = ?,"
                " attempt = COALESCE(?, attempt), updated = ? WHERE id = ?",
                (
                    status,
                    json.dumps(result, sort_keys=True) if result is not None else None,
                    error,
                    attempt,
                    time.time(),
                    request_id,
                ),
            )

    def pending_requests(self, role: str) -> list[dict[str, Any]]:
        """Requests of ``role`` not finished (to resume after a restart)."""
        ids = [
            str(r[0])
            for r in self._conn.execute(
                "SELECT id FROM requests WHERE role = ? AND status = 'pending' ORDER BY created",
                (role,),
            )
        ]
        return [r for r in (self.request(i) for i in ids) if r is not None]

    # -- sessions ---------------------------------------------------------------------------

    def start_session(
        self,
        session: bytes,
        request_id: str,
        attempt: int,
        protocol: str,
        wallet: str | None,
        participants: list[str],
        coordinator: str,
        kind: str,
        body: dict[str, Any],
    ) -> bool:
        """Record a session this node runs and (if new) the participant's request record, in
        one transaction; False if the session is known already (never rerun)."""
        now = time.time()
        with self.transaction():
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO sessions (id, request, attempt, protocol, wallet,"
                " participants, coordinator, status, started) VALUES (?, ?, ?, ?, ?, ?, ?,"
                " 'running', ?)",
                (session.hex(), request_id, attempt, protocol, wallet,
                 json.dumps(participants), coordinator, now),
            )  # fmt: skip
            if cur.rowcount != 1:
                return False
            self._conn.execute(
                "INSERT OR IGNORE INTO requests (id, kind, wallet, body, role, status, created,"
                " updated) VALUES (?, ?, ?, ?, 'participant', 'pending', ?, ?)",
                (request_id, kind, wallet, json.dumps(body, sort_keys=True), now, now),
            )
            return True

    def finish_session(
        self, session: bytes, request_id: str, result: dict[str, Any], rounds: list[float]
    ) -> None:
        """Mark a session ``done`` and record its request's result, in one transaction."""
        now = time.time()
        with self.transaction():
            self._conn.execute(
                "UPDATE sessions SET status = 'done', rounds = ?, culprits = '[]',"
                " missing = '[]', finished = ? WHERE id = ? AND status = 'running'",
                (json.dumps(rounds), now, session.hex()),
            )
            # A rotation's coordinator is done only once it committed (it sets that itself).
            self._conn.execute(
                "UPDATE requests SET status = 'done', result = ?, error = NULL, updated = ?"
                " WHERE id = ? AND NOT (role = 'coordinator'"
                " AND kind IN ('refresh', 'reshare', 'repair'))",
                (json.dumps(result, sort_keys=True), now, request_id),
            )

    # -- outbox ---------------------------------------------------------------------------

    def outbox_add(self, session: bytes, items: list[tuple[str, bytes]]) -> list[int]:
        """Store sealed messages ``(recipient, envelope)`` of ``session`` before they are
        sent, in one transaction; returns their sequence numbers."""
        if not items:
            return []
        now = time.time()
        seqs = []
        with self.transaction():
            for to, data in items:
                cur = self._conn.execute(
                    "INSERT INTO outbox (session, recipient, data, created) VALUES (?, ?, ?, ?)",
                    (session.hex(), to, data, now),
                )
                seqs.append(int(cur.lastrowid or 0))
        return seqs

    def outbox_sent(self, seqs: list[int]) -> None:
        """Stored messages were acknowledged (or sending them gave up): forget them, in one
        transaction."""
        if not seqs:
            return
        with self.transaction():
            self._conn.executemany("DELETE FROM outbox WHERE seq = ?", [(q,) for q in seqs])

    def outbox_pending(self, since: float) -> list[tuple[int, bytes, str, bytes]]:
        """After a restart: ``(seq, session, recipient, envelope)`` of every message stored
        since ``since`` (a ``time.time()``) and not yet acknowledged; older ones are dropped
        (their sessions timed out long ago)."""
        with self.transaction():
            self._conn.execute("DELETE FROM outbox WHERE created < ?", (since,))
        rows = self._conn.execute(
            "SELECT seq, session, recipient, data FROM outbox ORDER BY seq"
        ).fetchall()
        return [(int(r[0]), bytes.fromhex(r[1]), str(r[2]), bytes(r[3])) for r in rows]

    def session_status(self, session: bytes) -> str | None:
        """``running``, ``done``, ``aborted`` or ``lost``; None if unknown."""
        row = self._conn.execute(
            "SELECT status FROM sessions WHERE id = ?", (session.hex(),)
        ).fetchone()
        return None if row is None else str(row[0])

    def end_session(
        self,
        session: bytes,
        status: str,
        *,
        error: str | None = None,
        culprits: list[str] | None = None,
        missing: list[str] | None = None,
        rounds: list[float] | None = None,
    ) -> None:
        """Mark a session ``done``, ``aborted`` or ``lost`` with its error, its culprits
        (named by a check) and the parties it was missing messages from at a timeout."""
        with self.transaction():
            self._conn.execute(
                "UPDATE sessions SET status = ?, error = ?, culprits = ?, missing = ?,"
                " rounds = ?, finished = ? WHERE id = ? AND status = 'running'",
                (
                    status,
                    error,
                    json.dumps(culprits or []),
                    json.dumps(missing or []),
                    json.dumps(rounds or []),
                    time.time(),
                    session.hex(),
                ),
            )

    def mark_running_lost(self) -> list[dict[str, Any]]:
        """After a restart: every session still ``running`` lost its in-memory state.

        Marks them ``lost`` and returns them (the node tells their coordinators, so the
        request goes on in a new attempt; one-time secrets of a lost session are gone and
        are never recomputed)."""
        rows = self.sessions(status="running")
        with self.transaction():
            self._conn.execute(
                "UPDATE sessions SET status = 'lost', error = 'node restarted', finished = ?"
                " WHERE status = 'running'",
                (time.time(),),
            )
        return rows

    _SESSION_KEYS = (
        "session", "request", "attempt", "protocol", "wallet", "participants", "coordinator",
        "status", "error", "culprits", "missing", "rounds", "started", "finished",
    )  # fmt: skip

    def _session_rows(self, where: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        q = (
            "SELECT id, request, attempt, protocol, wallet, participants, coordinator, status,"
            " error, culprits, missing, rounds, started, finished FROM sessions"
        )
        out = []
        for row in self._conn.execute(q + where, args):
            d = dict(zip(self._SESSION_KEYS, row, strict=True))
            for k in ("participants", "culprits", "missing", "rounds"):
                d[k] = json.loads(d[k]) if d[k] else []
            out.append(d)
        return out

    def sessions(self, *, status: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """The most recent sessions, newest first."""
        if status is not None:
            return self._session_rows(
                " WHERE status = ? ORDER BY started DESC LIMIT ?", (status, limit)
            )
        return self._session_rows(" ORDER BY started DESC LIMIT ?", (limit,))

    def session(self, session: bytes) -> dict[str, Any] | None:
        """One session's record (as in :meth:`sessions`), or None."""
        rows = self._session_rows(" WHERE id = ?", (session.hex(),))
        return rows[0] if rows else None

    # -- key lifecycle ----------------------------------------------------------------------

    def add_lifecycle(
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
        """Record a key lifecycle event of ``wallet`` (public data only, never a secret)."""
        with self.transaction():
            self._conn.execute(
                "INSERT INTO lifecycle (wallet, event, epoch_before, epoch_after, session,"
                " request, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (wallet, event, epoch_before, epoch_after,
                 session.hex() if session is not None else None, request,
                 json.dumps(detail or {}, sort_keys=True), time.time()),
            )  # fmt: skip

    def lifecycle(self, wallet: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Lifecycle events, oldest first (of one wallet, or of all)."""
        q = (
            "SELECT seq, wallet, event, epoch_before, epoch_after, session, request, detail, at"
            " FROM lifecycle"
        )
        args: tuple[Any, ...] = ()
        if wallet is not None:
            q += " WHERE wallet = ?"
            args = (wallet,)
        keys = ("seq", "wallet", "event", "epoch_before", "epoch_after", "session", "request")
        out = []
        for r in self._conn.execute(q + " ORDER BY seq LIMIT ?", (*args, limit)):
            row = dict(zip(keys, r[:7], strict=True))
            row["detail"] = json.loads(r[7])
            row["at"] = r[8]
            out.append(row)
        return out

    def switch_event(self, wallet: str, epoch_after: int) -> dict[str, Any] | None:
        """The event of this node's switch of ``wallet`` to ``epoch_after``, or None."""
        for row in self.lifecycle(wallet):
            if row["event"] == "switched" and row["epoch_after"] == epoch_after:
                return row
        return None

    # -- signing policy ---------------------------------------------------------------------

    def add_policy_event(
        self,
        event: str,
        *,
        request: str | None = None,
        wallet: str | None = None,
        rule: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record a policy decision or change (public data only)."""
        with self.transaction():
            self._conn.execute(
                "INSERT INTO policy_events (request, wallet, event, rule, detail, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (request, wallet, event, rule, json.dumps(detail or {}, sort_keys=True),
                 time.time()),
            )  # fmt: skip

    def policy_events(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Policy events, newest first."""
        keys = ("seq", "request", "wallet", "event", "rule")
        out = []
        for r in self._conn.execute(
            "SELECT seq, request, wallet, event, rule, detail, at FROM policy_events"
            " ORDER BY seq DESC LIMIT ?",
            (limit,),
        ):
            row = dict(zip(keys, r[:5], strict=True))
            row["detail"] = json.loads(r[5])
            row["at"] = r[6]
            out.append(row)
        return out

    # -- exclusions -------------------------------------------------------------------------

    def exclude(self, wallet: str, party: str, reason: str) -> None:
        """Exclude ``party`` from ``wallet``'s later sessions (it was caught cheating)."""
        with self.transaction():
            self._conn.execute(
                "INSERT OR IGNORE INTO exclusions (wallet, party, reason, at) VALUES (?, ?, ?, ?)",
                (wallet, party, reason, time.time()),
            )

    def add_evidence(self, wallet: str, party: str, kind: str, first: bytes, second: bytes) -> None:
        """Keep proof of a party's misbehaviour: two envelopes it signed (e.g. two different
        messages for one round). Anyone with the cluster file can check them again."""
        with self.transaction():
            self._conn.execute(
                "INSERT INTO evidence (wallet, party, kind, first, second, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (wallet, party, kind, bytes(first), bytes(second), time.time()),
            )

    def evidence(self, wallet: str | None = None) -> list[dict[str, Any]]:
        """Kept evidence (newest first): wallet, party, kind and the two envelopes."""
        q = "SELECT wallet, party, kind, first, second, at FROM evidence"
        args: tuple[Any, ...] = ()
        if wallet is not None:
            q += " WHERE wallet = ?"
            args = (wallet,)
        keys = ("wallet", "party", "kind", "first", "second", "at")
        return [
            dict(zip(keys, r, strict=True))
            for r in self._conn.execute(q + " ORDER BY seq DESC", args)
        ]

    def excluded(self, wallet: str) -> set[str]:
        """Parties excluded from ``wallet``'s sessions."""
        return {
            str(r[0])
            for r in self._conn.execute("SELECT party FROM exclusions WHERE wallet = ?", (wallet,))
        }
