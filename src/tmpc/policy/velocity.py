"""The velocity ledger: what each rule signed per wallet, for rolling-window limits.

A rule's ``velocity`` limits the sum (in the reference currency) and the count of the
requests it let through for one wallet in a rolling window, this request included. The
ledger keeps one entry per request:

- :meth:`VelocityLedger.reserve` checks the limit **and** records the entry in one
  ``BEGIN IMMEDIATE`` transaction, so concurrent threads or processes are serialised by
  SQLite and can never overshoot (the check in :func:`tmpc.policy.engine.evaluate` is only
  advisory: two requests may both pass it; one of them fails here);
- :meth:`VelocityLedger.release` removes a reservation whose signing session failed;
- :meth:`VelocityLedger.commit` marks it signed.

A reserved entry counts until it is released, also after a crash (a session that never
finished is counted, never forgotten); it stops counting when it leaves the window. Entries
are timestamped with the request's time; an entry at ``t`` counts in the window of a
request at ``now`` if ``now - window < t``.

The file is a :class:`~tmpc.state.store.SqliteState` (WAL, ``synchronous=FULL``). Open one
:class:`VelocityLedger` per thread.
"""

from __future__ import annotations

import secrets
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Final

from tmpc.errors import ParameterError, StateError
from tmpc.policy.engine import Decision, Facts
from tmpc.policy.rules import DECIMAL_CONTEXT, PolicyRefusedError
from tmpc.state.store import SqliteState

__all__ = ["VelocityLedger"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
_RESERVED: Final = "reserved"
_COMMITTED: Final = "committed"


def _micros(now: datetime) -> int:
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise ParameterError("now must be a timezone-aware datetime")
    return (now - _EPOCH) // _US


def _fmt(d: Decimal) -> str:
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _window_text(window_s: int) -> str:
    for unit, n in (("d", 86_400), ("h", 3600), ("m", 60)):
        if window_s % n == 0:
            return f"{window_s // n}{unit}"
    return f"{window_s}s"


class VelocityLedger(SqliteState):
    """Velocity reservations of one node (see the module docstring).

    Args:
        path: the ledger file; created (mode 0600) if missing.

    Raises:
        KeystoreError: the file is not a velocity ledger, is corrupt or cannot be opened.
    """

    FORMAT = "tmpc-policy-velocity"
    VERSION = 1
    WHAT = "velocity ledger"
    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS velocity ("
        " id TEXT PRIMARY KEY, wallet_id TEXT NOT NULL, rule TEXT NOT NULL,"
        " at_us INTEGER NOT NULL, usd TEXT, state TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS velocity_by_rule ON velocity (wallet_id, rule, at_us)",
    )

    def __init__(self, path: Path) -> None:
        super().__init__(path)

    def __repr__(self) -> str:
        return f"VelocityLedger(path={str(self.path)!r})"

    @staticmethod
    def _window_rows(
        c: sqlite3.Connection, wallet_id: str, rule: str, window_s: int, now_us: int
    ) -> tuple[Decimal, int]:
        rows = c.execute(
            "SELECT usd FROM velocity WHERE wallet_id = ? AND rule = ? AND at_us > ?",
            (wallet_id, rule, now_us - window_s * 1_000_000),
        ).fetchall()
        total = Decimal(0)
        for (usd,) in rows:
            if usd is not None:  # an entry without value (count-only limit) adds nothing
                total = DECIMAL_CONTEXT.add(total, Decimal(str(usd)))
        return total, len(rows)

    @staticmethod
    def _check_args(wallet_id: str, rule: str, window_s: int) -> None:
        if not isinstance(wallet_id, str) or not wallet_id or len(wallet_id) > 256:
            raise ParameterError("wallet id must be 1 to 256 characters")
        if not isinstance(rule, str) or not rule:
            raise ParameterError("rule must be a rule name")
        if isinstance(window_s, bool) or not isinstance(window_s, int) or window_s < 1:
            raise ParameterError("window_s must be a positive number of seconds")

    def usage(self, wallet_id: str, rule: str, window_s: int, now: datetime) -> tuple[Decimal, int]:
        """The sum (USD) and count of ``rule``'s entries for ``wallet_id`` in the window of
        ``window_s`` seconds before ``now`` (reserved and committed). A
        :class:`~tmpc.policy.engine.VelocityView`."""
        self._check_args(wallet_id, rule, window_s)
        now_us = _micros(now)
        try:
            return self._window_rows(self._conn, wallet_id, rule, window_s, now_us)
        except sqlite3.Error as exc:
            raise self._error(exc, "read", f"{self.WHAT} {self.path}: read failed") from None

    def reserve(
        self,
        wallet_id: str,
        rule: str,
        usd: Decimal | None,
        window_s: int,
        max_usd: Decimal | None,
        max_count: int | None,
        now: datetime,
    ) -> str:
        """Reserve one request under ``rule``'s limit, atomically; return its id.

        In one immediate (write-locked) transaction: sum and count the window's entries, and
        insert this one only if, with it, the sum stays <= ``max_usd`` and the count <=
        ``max_count``.

        Args:
            wallet_id: the wallet.
            rule: the rule's name (limits are per wallet and rule).
            usd: the request's value (reference currency); None only if ``max_usd`` is None.
            window_s: the rolling window in seconds.
            max_usd: the limit on the sum, or None.
            max_count: the limit on the count, or None.
            now: the request's time (timezone-aware).

        Returns:
            The reservation id (32 hex digits): :meth:`commit` it when the signature is made,
            :meth:`release` it if the session fails.

        Raises:
            PolicyRefusedError: the limit would be exceeded; the message names the rule (nothing
                is recorded).
            ParameterError: bad arguments (no limit at all, a ``max_usd`` without ``usd``).
            KeystoreError, OSError: the ledger cannot be written.
        """
        self._check_args(wallet_id, rule, window_s)
        if max_usd is None and max_count is None:
            raise ParameterError("a velocity limit needs max_usd, max_count or both")
        if max_usd is not None and usd is None:
            raise PolicyRefusedError(
                f"refused by rule {rule!r}: velocity limit max_usd: the request cannot be valued",
                rule,
            )
        if usd is not None and (not isinstance(usd, Decimal) or not usd.is_finite() or usd < 0):
            raise ParameterError("usd must be a finite, non-negative Decimal")
        now_us = _micros(now)
        window = _window_text(window_s)
        rid = secrets.token_hex(16)
        try:
            with self.transaction() as c:
                total, count = self._window_rows(c, wallet_id, rule, window_s, now_us)
                if max_count is not None and count + 1 > max_count:
                    raise PolicyRefusedError(
                        f"refused by rule {rule!r}: velocity limit: {count} request(s) in the "
                        f"last {window} already, max_count {max_count}",
                        rule,
                    )
                if max_usd is not None and usd is not None:
                    new_total = DECIMAL_CONTEXT.add(total, usd)
                    if new_total > max_usd:
                        raise PolicyRefusedError(
                            f"refused by rule {rule!r}: velocity limit: {_fmt(total)} USD in "
                            f"the last {window} plus {_fmt(usd)} USD is over max_usd "
                            f"{_fmt(max_usd)}",
                            rule,
                        )
                c.execute(
                    "INSERT INTO velocity (id, wallet_id, rule, at_us, usd, state)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (rid, wallet_id, rule, now_us, None if usd is None else str(usd), _RESERVED),
                )
        except sqlite3.Error as exc:
            raise self._error(exc, "write to", f"{self.WHAT} {self.path}: write failed") from None
        return rid

    def reserve_for(self, facts: Facts, decision: Decision) -> str | None:
        """Reserve an allowed ``decision``'s request under its rule's velocity limit.

        Returns:
            The reservation id, or None if the deciding rule has no velocity limit.

        Raises:
            ParameterError: ``decision`` is not allowed.
            PolicyRefusedError: as :meth:`reserve`.
        """
        if not decision.allowed:
            raise ParameterError("only an allowed decision reserves velocity")
        v = decision.velocity
        if v is None:
            return None
        return self.reserve(
            facts.wallet_id, decision.rule, decision.usd, v.window_s, v.max_usd, v.max_count,
            facts.at,
        )  # fmt: skip

    def release(self, reservation: str) -> bool:
        """Remove a reservation whose signing session failed (it stops counting).

        Returns:
            True if it was reserved; False if it is unknown or already released.

        Raises:
            StateError: it was committed (a signed request always counts).
        """
        try:
            with self.transaction() as c:
                row = c.execute(
                    "SELECT state FROM velocity WHERE id = ?", (str(reservation),)
                ).fetchone()
                if row is None:
                    return False
                if row[0] == _COMMITTED:
                    raise StateError(
                        f"velocity reservation {reservation} was committed (signed); it is "
                        "never released"
                    )
                c.execute("DELETE FROM velocity WHERE id = ?", (str(reservation),))
        except sqlite3.Error as exc:
            raise self._error(exc, "write to", f"{self.WHAT} {self.path}: write failed") from None
        return True

    def commit(self, reservation: str) -> None:
        """Mark a reservation as signed (idempotent).

        Raises:
            StateError: the reservation is unknown or was released.
        """
        try:
            with self.transaction() as c:
                cur = c.execute(
                    "UPDATE velocity SET state = ? WHERE id = ?", (_COMMITTED, str(reservation))
                )
                if cur.rowcount != 1:
                    raise StateError(
                        f"velocity reservation {reservation} is unknown or was released"
                    )
        except sqlite3.Error as exc:
            raise self._error(exc, "write to", f"{self.WHAT} {self.path}: write failed") from None

    def prune(self, before: datetime) -> int:
        """Delete entries older than ``before`` (no window reaches them any more); returns
        how many. Call with ``now`` minus the longest window of the installed policy."""
        cutoff = _micros(before)
        try:
            with self.transaction() as c:
                cur = c.execute("DELETE FROM velocity WHERE at_us <= ?", (cutoff,))
                return int(cur.rowcount)
        except sqlite3.Error as exc:
            raise self._error(exc, "write to", f"{self.WHAT} {self.path}: write failed") from None
