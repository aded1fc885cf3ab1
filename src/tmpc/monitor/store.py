"""The monitor's state on disk: ``DIR/monitor.db`` (SQLite, WAL, one monitor at a time).

Tables:

- ``entries``: every audit entry collected, as its line, per node and seq (the chain is
  checked again from these when the monitor starts, and the alert engine replays them);
- ``nodes``: each node's host key (a new key starts its log over) and its health record;
- ``alerts``: every alert raised and every resolution of one, in order (``n``), by its key
  (:attr:`~tmpc.monitor.alerts.Alert.key`: the alert's stable id when ``status`` is
  ``firing``, ``<id>:resolved`` for its resolution), with the JSON body;
- ``targets`` / ``deliveries``: each webhook URL, the first row it is owed (a webhook added
  later gets the alerts and resolutions recorded from then on) and the keys it acknowledged
  (2xx).

A state directory written before resolutions existed has no ``status`` column in ``alerts``:
opening it adds the column (every row in it is a firing alert) and changes nothing else.

A delivery is recorded only after the receiver's 2xx, in a committed transaction (synchronous
FULL): an acknowledged alert is never posted again, even after a crash, except one
acknowledged in the instant before the crash (hence the ``Idempotency-Key``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

from tmpc.errors import KeystoreError
from tmpc.monitor.alerts import FIRING, RESOLVED, Alert

__all__ = ["DB_FILE", "LOCK_FILE", "MonitorStore"]

DB_FILE: Final = "monitor.db"
LOCK_FILE: Final = "monitor.lock"
_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS nodes (
        name TEXT PRIMARY KEY, host_pubkey TEXT NOT NULL, last_ok REAL, failing_since REAL)""",
    """CREATE TABLE IF NOT EXISTS entries (
        id INTEGER PRIMARY KEY AUTOINCREMENT, node TEXT NOT NULL, seq INTEGER NOT NULL,
        at REAL NOT NULL, type TEXT NOT NULL, line BLOB NOT NULL, UNIQUE (node, seq))""",
    """CREATE TABLE IF NOT EXISTS alerts (
        n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
        at REAL NOT NULL, body TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'firing')""",
    "CREATE TABLE IF NOT EXISTS targets (url TEXT PRIMARY KEY, since INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS deliveries (
        alert TEXT NOT NULL, url TEXT NOT NULL, at REAL NOT NULL, status INTEGER NOT NULL,
        PRIMARY KEY (alert, url))""",
)


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a state written by an earlier version up to date: ``alerts.status`` (its rows
    are all firing alerts, the column's default)."""
    columns = {str(row[1]) for row in conn.execute("PRAGMA table_info(alerts)")}
    if "status" not in columns:
        conn.execute(f"ALTER TABLE alerts ADD COLUMN status TEXT NOT NULL DEFAULT '{FIRING}'")


class MonitorStore:
    """The monitor's SQLite state (see the module docstring). Open with :meth:`open`."""

    def __init__(self, conn: sqlite3.Connection, lock_fd: int | None, directory: Path) -> None:
        """Internal: use :meth:`open`."""
        self._conn = conn
        self._lock_fd = lock_fd
        self.directory = directory

    @classmethod
    def open(cls, directory: Path) -> MonitorStore:
        """Open (or create) the state in ``directory``.

        Raises:
            KeystoreError: another monitor uses the directory, or ``directory`` is not one.
            OSError: the file system failed.
        """
        if directory.exists() and not directory.is_dir():
            raise KeystoreError(f"--state {directory} is not a directory")
        directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise KeystoreError(
                    f"the monitor state {directory} is in use by another tmpc monitor"
                ) from None
            raise
        try:
            conn = sqlite3.connect(
                directory / DB_FILE, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            for stmt in _SCHEMA:
                conn.execute(stmt)
            _migrate(conn)
        except sqlite3.DatabaseError as exc:
            os.close(fd)
            raise KeystoreError(f"{directory / DB_FILE}: not a monitor database ({exc})") from None
        except BaseException:
            os.close(fd)
            raise
        return cls(conn, fd, directory)

    def close(self) -> None:
        """Close the database and release the directory. Idempotent."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- meta -----------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        """A stored setting (None if unset)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Store a setting."""
        self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- nodes and entries ----------------------------------------------------------------------

    def bind_node(self, node: str, host_pubkey: str) -> bool:
        """Record ``node``'s host key; if it had another one, forget its entries (its log
        starts over under the new key). Returns True if entries were forgotten."""
        row = self._conn.execute("SELECT host_pubkey FROM nodes WHERE name = ?", (node,)).fetchone()
        if row is not None and row[0] == host_pubkey:
            return False
        with self._transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO nodes (name, host_pubkey, last_ok, failing_since)"
                " VALUES (?, ?, NULL, NULL)",
                (node, host_pubkey),
            )
            forgotten = c.execute("DELETE FROM entries WHERE node = ?", (node,)).rowcount
        return row is not None and forgotten > 0

    def node_lines(self, node: str) -> Iterator[bytes]:
        """``node``'s collected entry lines, by seq."""
        for (line,) in self._conn.execute(
            "SELECT line FROM entries WHERE node = ? ORDER BY seq", (node,)
        ):
            yield bytes(line)

    def all_lines(self) -> Iterator[tuple[str, bytes]]:
        """Every collected ``(node, line)`` in the order they were processed."""
        for node, line in self._conn.execute("SELECT node, line FROM entries ORDER BY id"):
            yield str(node), bytes(line)

    def add_entries(self, rows: Iterable[tuple[str, int, float, str, bytes]]) -> None:
        """Store ``(node, seq, at, type, line)`` rows, in this order, in one transaction."""
        with self._transaction() as c:
            c.executemany(
                "INSERT OR IGNORE INTO entries (node, seq, at, type, line) VALUES (?, ?, ?, ?, ?)",
                list(rows),
            )

    def entry_count(self, node: str | None = None) -> int:
        """How many entries are stored (of ``node``, or of all nodes)."""
        if node is None:
            row = self._conn.execute("SELECT COUNT(*) FROM entries").fetchone()
        else:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM entries WHERE node = ?", (node,)
            ).fetchone()
        return int(row[0])

    def health(self, node: str) -> tuple[float | None, float | None]:
        """``(last_ok, failing_since)`` stored for ``node``."""
        row = self._conn.execute(
            "SELECT last_ok, failing_since FROM nodes WHERE name = ?", (node,)
        ).fetchone()
        return (None, None) if row is None else (row[0], row[1])

    def set_health(self, node: str, last_ok: float | None, failing_since: float | None) -> None:
        """Store ``node``'s health record."""
        self._conn.execute(
            "UPDATE nodes SET last_ok = ?, failing_since = ? WHERE name = ?",
            (last_ok, failing_since, node),
        )

    # -- alerts and deliveries ------------------------------------------------------------------

    def add_alert(self, alert: Alert) -> bool:
        """Record ``alert``, a firing alert or a resolution; False if one with its
        :attr:`~tmpc.monitor.alerts.Alert.key` was recorded before."""
        at = alert.resolved_at if alert.resolved_at is not None else alert.at
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO alerts (id, kind, at, body, status) VALUES (?, ?, ?, ?, ?)",
            (
                alert.key,
                alert.kind,
                at,
                json.dumps(alert.to_json(), sort_keys=True),
                alert.status,
            ),
        )
        return cur.rowcount == 1

    def alerts(self, limit: int | None = None) -> list[Alert]:
        """Recorded alerts as raised (status ``firing``), newest first (at most ``limit``)."""
        q = "SELECT body FROM alerts WHERE status = ? ORDER BY n DESC"
        args: list[object] = [FIRING]
        if limit:
            q, args = q + " LIMIT ?", [*args, limit]
        rows = self._conn.execute(q, args)
        return [Alert.from_json(json.loads(body)) for (body,) in rows]

    def resolutions(self) -> list[Alert]:
        """Recorded resolutions (status ``resolved``), newest first."""
        rows = self._conn.execute(
            "SELECT body FROM alerts WHERE status = ? ORDER BY n DESC", (RESOLVED,)
        )
        return [Alert.from_json(json.loads(body)) for (body,) in rows]

    def alert_states(self, limit: int | None = None) -> list[tuple[Alert, Alert | None]]:
        """Recorded alerts as raised, newest first (at most ``limit``), each with its
        resolution (None while it has none)."""
        q = (
            "SELECT a.body, r.body FROM alerts a LEFT JOIN alerts r"
            " ON r.id = a.id || ':' || ? AND r.status = ?"
            " WHERE a.status = ? ORDER BY a.n DESC"
        )
        args: list[object] = [RESOLVED, RESOLVED, FIRING]
        if limit:
            q, args = q + " LIMIT ?", [*args, limit]
        rows = self._conn.execute(q, args)
        return [
            (
                Alert.from_json(json.loads(body)),
                None if ended is None else Alert.from_json(json.loads(ended)),
            )
            for body, ended in rows
        ]

    def alert_count(self) -> int:
        """How many alerts were recorded (raised; their resolutions are not counted)."""
        row = self._conn.execute("SELECT COUNT(*) FROM alerts WHERE status = ?", (FIRING,))
        return int(row.fetchone()[0])

    def add_target(self, url: str) -> None:
        """Register webhook ``url``: it is owed the alerts recorded from now on (an already
        registered URL keeps what it is owed)."""
        last = self._conn.execute("SELECT COALESCE(MAX(n), 0) FROM alerts").fetchone()[0]
        self._conn.execute(
            "INSERT OR IGNORE INTO targets (url, since) VALUES (?, ?)", (url, int(last))
        )

    def pending(self, url: str, limit: int = 100) -> list[Alert]:
        """The alerts and resolutions ``url`` is owed and has not acknowledged, oldest first."""
        rows = self._conn.execute(
            "SELECT a.body FROM alerts a JOIN targets t ON t.url = ? AND a.n > t.since"
            " WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.alert = a.id AND d.url = ?)"
            " ORDER BY a.n LIMIT ?",
            (url, url, limit),
        )
        return [Alert.from_json(json.loads(body)) for (body,) in rows]

    def mark_delivered(self, key: str, url: str, status: int, at: float) -> None:
        """Record that ``url`` acknowledged the alert or resolution whose
        :attr:`~tmpc.monitor.alerts.Alert.key` is ``key`` with HTTP ``status`` (committed)."""
        self._conn.execute(
            "INSERT OR IGNORE INTO deliveries (alert, url, at, status) VALUES (?, ?, ?, ?)",
            (key, url, at, status),
        )

    def delivered(self, url: str) -> set[str]:
        """The keys (:attr:`~tmpc.monitor.alerts.Alert.key`) ``url`` acknowledged."""
        return {
            str(a)
            for (a,) in self._conn.execute("SELECT alert FROM deliveries WHERE url = ?", (url,))
        }
