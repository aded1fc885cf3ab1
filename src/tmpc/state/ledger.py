"""The single-use ledger: used one-time secrets and blame, kept where a restore cannot reach.

Why: a party's state database (``party-I.db``) sits in the wallet directory, so restoring that
directory from last night's backup, or deleting one database, rolls back what it recorded:

- a presignature used since the backup is back in the store, and finishing it for a second
  digest hands any co-signer who knows ``R`` two linear equations in the key;
- a peer deny-listed after a failed pairwise check (a selective-abort attempt) is forgotten, so
  the cheater gets another bit.

The ledger is a second, append-mostly record of exactly those facts, in one SQLite file per
machine (or node) **outside** every wallet directory:

- every presignature id each party used, written (and fsync'd) **before** the signature share
  made from it is computed: a restored store still holds the row, but the ledger refuses it;
- every multiplication session id each party used with each peer (OT correlations are single
  use);
- every deny-list entry, lifted only together with a fresh pairwise setup.

Location: ``$TMPC_STATE_HOME/ledger.db`` if ``TMPC_STATE_HOME`` is set, else
``$XDG_STATE_HOME/tmpc/ledger.db``, else ``~/.local/state/tmpc/ledger.db``. It holds no secret
(ids, party numbers and reasons only).

Limits (also in ``docs/security.md``): the ledger must never be restored from a backup nor
copied with a wallet; a rollback of the whole machine (a VM snapshot of the disk that holds
both the wallet and the ledger) is not detected here, and neither is an attacker who controls
the disk and deletes the ledger. Against those, the defence is the procedure in the docs.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from tmpc.errors import StateError
from tmpc.state.store import SqliteState, _check_party

__all__ = ["LEDGER_ENV", "Ledger", "default_ledger_path"]

#: Environment variable naming the directory of the ledger.
LEDGER_ENV: Final = "TMPC_STATE_HOME"

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS used_presignatures ("
    " party INTEGER NOT NULL, presig_id BLOB NOT NULL, wallet_id TEXT NOT NULL,"
    " PRIMARY KEY (party, presig_id))",
    "CREATE TABLE IF NOT EXISTS used_sessions ("
    " wallet_id TEXT NOT NULL, party INTEGER NOT NULL, peer INTEGER NOT NULL,"
    " session_id BLOB NOT NULL, PRIMARY KEY (wallet_id, party, peer, session_id))",
    "CREATE TABLE IF NOT EXISTS deny ("
    " wallet_id TEXT NOT NULL, party INTEGER NOT NULL, peer INTEGER NOT NULL,"
    " reason TEXT NOT NULL, PRIMARY KEY (wallet_id, party, peer))",
)


def default_ledger_path() -> Path:
    """Where the ledger lives (see the module docstring for the order of precedence)."""
    base = os.environ.get(LEDGER_ENV)
    if base:
        return Path(base) / "ledger.db"
    xdg = os.environ.get("XDG_STATE_HOME")
    root = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return root / "tmpc" / "ledger.db"


class Ledger(SqliteState):
    """The machine's single-use ledger (see the module docstring).

    Args:
        path: the ledger file (default: :func:`default_ledger_path`); created if missing.

    Raises:
        KeystoreError: the file is not a ledger, is corrupt or cannot be created.
    """

    FORMAT = "tmpc-single-use-ledger"
    VERSION = 1
    SCHEMA = _SCHEMA
    WHAT = "single-use ledger"

    def __init__(self, path: Path | None = None) -> None:
        super().__init__(default_ledger_path() if path is None else path)

    def __repr__(self) -> str:
        return f"Ledger(path={str(self.path)!r})"

    def _insert_once(self, sql: str, rows: Sequence[tuple[object, ...]], used: str) -> None:
        """Insert ``rows`` in one fsync'd transaction; if any was there, none is, and
        :class:`StateError` says ``used``."""
        try:
            with self.transaction() as c:
                c.executemany(sql, rows)
        except sqlite3.IntegrityError:
            raise StateError(used) from None
        except sqlite3.Error as exc:
            raise self._error(exc, "write to", f"{self.WHAT} {self.path}: write failed") from None

    # ---- presignatures -------------------------------------------------------------------

    def use_presignature(self, wallet_id: str, parties: Sequence[int], presig_id: bytes) -> None:
        """Record ``presig_id`` as used by every party in ``parties``, atomically (fsync'd).

        Call it **before** any signature share is computed from the presignature.

        Raises:
            StateError: some party already used it (its store was restored from a backup);
                nothing is recorded then, and the presignature **must** be discarded.
            KeystoreError: the ledger cannot be written.
        """
        pid = bytes(presig_id)
        self._insert_once(
            "INSERT INTO used_presignatures (party, presig_id, wallet_id) VALUES (?, ?, ?)",
            [(_check_party(p, "party"), pid, wallet_id) for p in parties],
            f"presignature {pid.hex()[:16]} was already used (the ledger {self.path} "
            "records it): a state database was restored from a backup or copied",
        )

    def used_presignatures(self, party: int, presig_ids: Iterable[bytes]) -> set[bytes]:
        """Which of ``presig_ids`` ``party`` has used."""
        party = _check_party(party, "party")
        ids = [bytes(pid) for pid in presig_ids]
        used: set[bytes] = set()
        for k in range(0, len(ids), 500):  # under SQLite's limit of bound parameters
            chunk = ids[k : k + 500]
            # Only "?" placeholders are formatted in; every value is bound.
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT presig_id FROM used_presignatures WHERE party = ? AND presig_id IN ({marks})"  # noqa: S608, E501
            rows = self._read(sql, (party, *chunk))
            used.update(bytes(r[0]) for r in rows)
        return used

    # ---- multiplication sessions ---------------------------------------------------------

    def use_sessions(
        self, wallet_id: str, pairs: Sequence[tuple[int, int]], session_id: bytes | list[bytes]
    ) -> None:
        """Record ``session_id`` (or each of a list of them, in one transaction) as used by
        each ``(party, peer)`` of ``pairs`` (fsync'd).

        Raises:
            StateError: some party already used one of those sessions with that peer (nothing
                is recorded then).
            KeystoreError: the ledger cannot be written.
        """
        sids = [bytes(session_id)] if isinstance(session_id, bytes) else list(session_id)
        checked = [(_check_party(a, "party"), _check_party(b, "peer")) for a, b in pairs]
        self._insert_once(
            "INSERT INTO used_sessions (wallet_id, party, peer, session_id) VALUES (?, ?, ?, ?)",
            [(wallet_id, a, b, bytes(sid)) for sid in sids for a, b in checked],
            "a multiplication session id was already used (recorded in the ledger); "
            "OT correlations are single use",
        )

    # ---- blame ---------------------------------------------------------------------------

    def deny(self, wallet_id: str, party: int, peer: int, reason: str) -> None:
        """Record that ``party`` refuses ``peer`` for ``wallet_id`` (first reason kept).

        ``reason`` is stored in clear and **must not** contain secret material.
        """
        self._write(
            [
                (
                    "INSERT INTO deny (wallet_id, party, peer, reason) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (wallet_id, party, peer) DO NOTHING",
                    (wallet_id, _check_party(party, "party"), _check_party(peer, "peer"), reason),
                )
            ]
        )

    def denied(self, wallet_id: str, party: int) -> dict[int, str]:
        """The peers ``party`` refuses for ``wallet_id``, with their reasons."""
        rows = self._read(
            "SELECT peer, reason FROM deny WHERE wallet_id = ? AND party = ? ORDER BY peer",
            (wallet_id, _check_party(party, "party")),
        )
        return {int(p): str(r) for p, r in rows}

    def lift(self, wallet_id: str, party: int, peers: Sequence[int]) -> None:
        """Remove ``party``'s entries against ``peers``.

        **Must only** be called once a fresh pairwise setup with those peers is installed.
        """
        party = _check_party(party, "party")
        self._write(
            [
                (
                    "DELETE FROM deny WHERE wallet_id = ? AND party = ? AND peer = ?",
                    (wallet_id, party, _check_party(p, "peer")),
                )
                for p in peers
            ]
        )
