"""Durable, crash-safe local state of one party: presignatures, deny-list, used sessions.

One SQLite database per party directory (``<dir>/party-<i>.db``), opened in WAL mode with
``synchronous=FULL``: a transaction is on disk (the WAL fsync'd) when ``COMMIT`` returns, so
what a method has committed survives a crash or power loss of the process right after it.

Three views share one :class:`StateDB`:

- :class:`PresignatureStore` -- ECDSA presignatures, **encrypted** with ChaCha20-Poly1305 under
  a 32-byte key the caller supplies (e.g. derived from the share's passphrase-derived key); the
  associated data binds the wallet id, the party, the signer set and the presignature id, so a
  row edited, moved to another wallet/party/signer set or swapped with another row fails to
  open. :meth:`PresignatureStore.take` **deletes the row and commits before** it returns (or
  even decrypts) the blob: after a crash at any point the same presignature can never be handed
  out twice. Every id ever stored is remembered, so an id can never be stored again.
- :class:`DenyList` -- peers with whom a pairwise check failed (terminal: no retry, see
  ``security.md``); survives restarts.
- :class:`UsedSessions` -- multiplication session ids per (wallet, peer, role), marked used
  durably before the message that uses them leaves.

Nothing secret is stored in clear: only presignature ciphertexts, ids, party numbers and the
caller's (non-secret) reasons. Database errors become :class:`~tmpc.errors.KeystoreError` with
one line that says which file is wrong.
"""

from __future__ import annotations

import errno
import os
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Final, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tmpc.encoding import lp_join
from tmpc.errors import CryptoError, KeystoreError, ParameterError, StateError

__all__ = [
    "MAX_BLOB_LEN",
    "ROLES",
    "DenyList",
    "PairwiseStore",
    "PresignatureStore",
    "SqliteState",
    "StateDB",
    "UsedSessions",
    "fsync_dir",
    "retire_epoch",
    "state_db_path",
]

SCHEMA_VERSION: Final = 1
#: Largest presignature blob accepted by :meth:`PresignatureStore.put`.
MAX_BLOB_LEN: Final = 1 << 20
#: Roles of a party in a pairwise multiplication (DKLs23: Alice sends, Bob receives).
ROLES: Final = ("sender", "receiver")
_AD_TAG: Final = b"tmpc/store/presignature/v1"
_PAIRWISE_AD_TAG: Final = b"tmpc/store/pairwise/v1"
_BUSY_TIMEOUT_S: Final = 30.0

# SQLite result codes that mean the machine failed, not the file (https://sqlite.org/rescode.html;
# an extended code's low byte is its primary code), with the errno under which they are
# reported: an OSError, which the command line reports as a local system failure (exit 4).
# SQLITE_IOERR includes IOERR_WRITE / IOERR_SHMSIZE / IOERR_FSYNC: a disk that filled up part
# way or a limit on file size (SQLite reports SQLITE_FULL only for ENOSPC on a data write).
_SYSTEM_FAILURES: Final = {
    sqlite3.SQLITE_FULL: (errno.ENOSPC, "disk full"),
    sqlite3.SQLITE_IOERR: (errno.EIO, "I/O error (is the disk full?)"),
    sqlite3.SQLITE_CANTOPEN: (errno.EACCES, "cannot open the file"),
    sqlite3.SQLITE_READONLY: (errno.EROFS, "read-only file or file system"),
    sqlite3.SQLITE_PERM: (errno.EACCES, "permission denied"),
    sqlite3.SQLITE_BUSY: (errno.EBUSY, "busy: another process holds it"),
    sqlite3.SQLITE_LOCKED: (errno.EBUSY, "locked by another connection"),
    sqlite3.SQLITE_NOMEM: (errno.ENOMEM, "out of memory"),
}

_SCHEMA: Final = (
    # seq orders presignatures first in, first out; presig_id is unique among stored rows.
    "CREATE TABLE IF NOT EXISTS presignatures ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " wallet_id TEXT NOT NULL, signers TEXT NOT NULL, presig_id BLOB NOT NULL UNIQUE,"
    " nonce BLOB NOT NULL, ciphertext BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS presignatures_by_set ON presignatures (wallet_id, signers, seq)",
    # Every id ever stored (taken or not): never deleted, so an id is never stored twice.
    "CREATE TABLE IF NOT EXISTS presig_ids_ever (presig_id BLOB PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS deny_list ("
    " wallet_id TEXT NOT NULL, peer INTEGER NOT NULL, reason TEXT NOT NULL,"
    " PRIMARY KEY (wallet_id, peer))",
    # The party's current pairwise ECDSA material when it was redone after key generation
    # (the share file, never rewritten, keeps the original); encrypted like presignatures.
    "CREATE TABLE IF NOT EXISTS pairwise ("
    " wallet_id TEXT PRIMARY KEY, version INTEGER NOT NULL,"
    " nonce BLOB NOT NULL, ciphertext BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS used_sessions ("
    " wallet_id TEXT NOT NULL, peer INTEGER NOT NULL, role TEXT NOT NULL,"
    " session_id BLOB NOT NULL, PRIMARY KEY (wallet_id, peer, role, session_id))",
)


def state_db_path(directory: Path, party: int) -> Path:
    """The state database of ``party`` inside a party (or wallet) directory."""
    return Path(directory) / f"party-{party}.db"


def _create_private_file(path: Path, what: str) -> bool:
    """Create an empty file readable by the owner only; False if it appeared meanwhile."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except OSError as exc:  # full disk, permissions: the machine, reported as such
        raise OSError(exc.errno, f"cannot create {what} {path}: {exc.strerror}") from None
    os.close(fd)
    return True


def _remove_new_database(path: Path) -> None:
    """Remove a database file this process has just created, with its WAL and shared memory."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def fsync_dir(directory: Path) -> None:
    """Make a directory's entries (a file created or renamed in it) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_party(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParameterError(f"{what} must be a positive integer")
    return value


def _check_wallet_id(wallet_id: str) -> str:
    if not isinstance(wallet_id, str) or not wallet_id or len(wallet_id) > 256:
        raise ParameterError("wallet id must be a non-empty string of at most 256 characters")
    return wallet_id


class SqliteState:
    """Base of tmpc's SQLite state files (WAL, ``synchronous=FULL``, checked format).

    Subclasses set :attr:`FORMAT`, :attr:`VERSION`, :attr:`SCHEMA` (statements creating their
    tables) and :attr:`WHAT` (how errors name the file), and may bind the file to an
    identity through :meth:`_identity` (e.g. the party it belongs to).

    Open one per thread or process (connections are not shared between threads); several
    may be open on the same file at once, and their write transactions are serialised by
    SQLite. Use as a context manager or call :meth:`close`.

    Raises:
        KeystoreError: the file is not of this kind, is corrupt, belongs to another identity,
            or cannot be opened.
    """

    FORMAT: ClassVar[str]
    VERSION: ClassVar[int]
    SCHEMA: ClassVar[tuple[str, ...]]
    WHAT: ClassVar[str]
    #: ``FULL`` (every commit fsync'd) unless a subclass documents why less is enough.
    SYNCHRONOUS: ClassVar[str] = "FULL"

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = Path(path)
        created = False
        if not self.path.exists():
            if not create:
                raise KeystoreError(f"{self.WHAT} not found: {self.path}")
            created = _create_private_file(self.path, self.WHAT)
        try:
            self._conn = sqlite3.connect(
                str(self.path), timeout=_BUSY_TIMEOUT_S, isolation_level=None
            )
        except sqlite3.Error as exc:
            if created:
                _remove_new_database(self.path)
            raise self._error(exc, "open", f"cannot open {self.WHAT} {self.path}") from None
        try:
            self._setup()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            if created:  # nothing of it is left behind
                _remove_new_database(self.path)
            raise self._error(
                exc,
                "create" if created else "open",
                f"{self.WHAT} {self.path} is corrupt or not a tmpc database",
            ) from None
        except BaseException:
            self._conn.close()
            if created:
                _remove_new_database(self.path)
            raise
        if created:
            fsync_dir(self.path.parent)

    def _error(self, exc: sqlite3.Error, doing: str, message: str) -> Exception:
        """What to raise for ``exc``: an :class:`OSError` if the machine failed (full disk, I/O
        error, busy, permissions; the transaction was rolled back, so nothing was changed),
        else :class:`KeystoreError` with ``message`` (the file itself is wrong)."""
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int) and (code & 0xFF) in _SYSTEM_FAILURES:
            err, reason = _SYSTEM_FAILURES[code & 0xFF]
            return OSError(
                err, f"cannot {doing} {self.WHAT} {self.path}: {reason}; nothing was changed"
            )
        return KeystoreError(message)

    def _identity(self) -> dict[str, str]:
        """Meta entries that bind the file to its owner (checked on every open)."""
        return {}

    def _setup(self) -> None:
        c = self._conn
        # Fails with "file is not a database" on garbage, before anything is written.
        mode = c.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise KeystoreError(f"{self.WHAT} {self.path}: WAL mode unavailable")
        if self.SYNCHRONOUS not in ("FULL", "NORMAL"):
            raise KeystoreError(f"{self.WHAT}: unknown synchronous mode")
        c.execute(f"PRAGMA synchronous={self.SYNCHRONOUS}")
        if c.execute("PRAGMA quick_check").fetchall() != [("ok",)]:
            raise sqlite3.DatabaseError("integrity check failed")
        with self.transaction():
            tables = {str(r[0]) for r in c.execute("SELECT name FROM sqlite_master")}
            if tables and "meta" not in tables:
                # Some other SQLite database: never write our tables into it.
                raise KeystoreError(f"{self.path} is not a tmpc {self.WHAT}")
            c.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            for stmt in self.SCHEMA:
                c.execute(stmt)
            meta = {str(k): str(v) for k, v in c.execute("SELECT key, value FROM meta")}
            identity = self._identity()
            if not meta:
                c.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("format", self.FORMAT), ("version", str(self.VERSION)), *identity.items()],
                )
            elif meta.get("format") != self.FORMAT or meta.get("version") != str(self.VERSION):
                raise KeystoreError(f"{self.path} is not a tmpc {self.WHAT} of a supported version")
            elif any(meta.get(k) != v for k, v in identity.items()):
                raise KeystoreError(self._identity_mismatch())

    def _identity_mismatch(self) -> str:
        return f"{self.path} belongs to another owner"

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locked) transaction, committed -- fsync'd -- on normal exit.

        Several statements in one ``with`` block are atomic (e.g. mark a session used and take
        a presignature together). Rolls back on any exception, which propagates unchanged.

        Raises:
            KeystoreError: the transaction cannot start (database busy for 30 s, unwritable).
        """
        c = self._conn
        try:
            c.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._error(
                exc,
                "write to",
                f"{self.WHAT} {self.path}: cannot start a transaction (busy or unwritable)",
            ) from None
        try:
            yield c
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    def _write(self, statements: Sequence[tuple[str, tuple[object, ...]]]) -> None:
        """Run statements in one immediate write transaction and commit (fsync'd)."""
        try:
            with self.transaction() as c:
                for sql, args in statements:
                    c.execute(sql, args)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise self._error(exc, "write to", f"{self.WHAT} {self.path}: write failed") from None

    def _read(self, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            return list(self._conn.execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            raise self._error(exc, "read", f"{self.WHAT} {self.path}: read failed") from None

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class StateDB(SqliteState):
    """One party's state database (SQLite, WAL, ``synchronous=FULL``).

    Args:
        path: the database file (see :func:`state_db_path`); created if missing.
        party: this party's identifier; a file created for another party is refused.

    Raises:
        KeystoreError: the file is not a tmpc state database, is corrupt, belongs to another
            party, or cannot be opened.
    """

    FORMAT = "tmpc-party-state"
    VERSION = SCHEMA_VERSION
    SCHEMA = _SCHEMA
    WHAT = "party state database"

    def __init__(self, path: Path, *, party: int, create: bool = True) -> None:
        self.party = _check_party(party, "party")
        super().__init__(path, create=create)

    def _identity(self) -> dict[str, str]:
        return {"party": str(self.party)}

    def _identity_mismatch(self) -> str:
        return f"{self.path} is not party {self.party}'s state database"

    def __repr__(self) -> str:
        return f"StateDB(path={str(self.path)!r}, party={self.party})"


def _signers_key(signers: Sequence[int], party: int) -> str:
    if isinstance(signers, str | bytes) or not isinstance(signers, Sequence):
        raise ParameterError("signers must be a sequence of party identifiers")
    ids = [_check_party(i, "signer id") for i in signers]
    if len(set(ids)) != len(ids) or not ids:
        raise ParameterError("signers must be distinct party identifiers (at least one)")
    if party not in ids:
        raise ParameterError(f"party {party} is not among the signers")
    return ",".join(str(i) for i in sorted(ids))


def _store_aead(key: bytes, what: str) -> ChaCha20Poly1305:
    if not isinstance(key, bytes | bytearray) or len(key) != 32:
        raise ParameterError(f"{what} store key must be 32 bytes")
    return ChaCha20Poly1305(bytes(key))


@dataclass
class PresignatureStore:
    """Single-use, encrypted presignatures of one party, by wallet and signer set.

    Args:
        db: the party's :class:`StateDB`.
        key: the 32-byte ChaCha20-Poly1305 key (secret; **must not** be reused for anything
            else than this party's presignatures).

    Raises:
        ParameterError: a key that is not 32 bytes.
    """

    db: StateDB
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        self._aead = _store_aead(self.key, "presignature")

    def _ad(self, wallet_id: str, signers: str, presig_id: bytes) -> bytes:
        return lp_join(
            [
                _AD_TAG,
                wallet_id.encode(),
                self.db.party.to_bytes(4, "big"),
                signers.encode(),
                presig_id,
            ]
        )

    def put(self, wallet_id: str, signers: Sequence[int], presig_id: bytes, blob: bytes) -> None:
        """Store one presignature, encrypted, durably (committed when this returns).

        Args:
            wallet_id: the wallet.
            signers: the signer set it was made for (order does not matter; must contain this
                party).
            presig_id: its 32-byte id.
            blob: its serialisation (secret), at most :data:`MAX_BLOB_LEN` bytes.

        Raises:
            StateError: ``presig_id`` was stored before (now or ever, even if since taken).
            ParameterError: bad wallet id, signer set, id length or blob size.
            KeystoreError: the database cannot be written.
        """
        self.put_many(wallet_id, signers, [(presig_id, blob)])

    def put_many(
        self, wallet_id: str, signers: Sequence[int], items: Sequence[tuple[bytes, bytes]]
    ) -> None:
        """Store ``(presig_id, blob)`` pairs as :meth:`put` does, in one transaction (one
        fsync): all of them are stored, or none (:class:`StateError` if any id was stored
        before)."""
        wallet_id = _check_wallet_id(wallet_id)
        sk = _signers_key(signers, self.db.party)
        statements: list[tuple[str, tuple[object, ...]]] = []
        for presig_id, blob in items:
            if not isinstance(presig_id, bytes | bytearray) or len(presig_id) != 32:
                raise ParameterError("presignature id must be 32 bytes")
            if not isinstance(blob, bytes | bytearray) or not 0 < len(blob) <= MAX_BLOB_LEN:
                raise ParameterError("presignature blob must be 1 to MAX_BLOB_LEN bytes")
            pid = bytes(presig_id)
            nonce = secrets.token_bytes(12)
            ct = self._aead.encrypt(nonce, bytes(blob), self._ad(wallet_id, sk, pid))
            statements += [
                ("INSERT INTO presig_ids_ever (presig_id) VALUES (?)", (pid,)),
                (
                    "INSERT INTO presignatures (wallet_id, signers, presig_id, nonce,"
                    " ciphertext) VALUES (?, ?, ?, ?, ?)",
                    (wallet_id, sk, pid, nonce, ct),
                ),
            ]
        try:
            self.db._write(statements)
        except sqlite3.IntegrityError:
            raise StateError(
                "presignature id was already stored once; ids are single use"
            ) from None

    def take(
        self, wallet_id: str, signers: Sequence[int], presig_id: bytes | None = None
    ) -> tuple[bytes, bytes] | None:
        """Remove the oldest presignature for ``(wallet_id, signers)`` and return it.

        With ``presig_id``, remove exactly that one (the other signers of a presignature take
        the id the first signer drew), or return ``None`` if it is not stored here.

        The row is deleted and the deletion committed (fsync'd) **before** anything is
        decrypted or returned, so a crash after this call (or during it) never lets the same
        presignature be used twice. A row that fails authentication is gone as well.

        Returns:
            ``(presig_id, blob)`` or ``None`` if none is stored for that signer set.

        Raises:
            CryptoError: the stored row was tampered with, moved, or the key is wrong (opaque).
            ParameterError: bad wallet id or signer set.
            KeystoreError: the database cannot be read or written.
        """
        wallet_id = _check_wallet_id(wallet_id)
        sk = _signers_key(signers, self.db.party)
        try:
            with self.db.transaction() as c:
                query = (
                    "SELECT seq, presig_id, nonce, ciphertext FROM presignatures"
                    " WHERE wallet_id = ? AND signers = ?"
                )
                args: tuple[object, ...] = (wallet_id, sk)
                if presig_id is not None:
                    query += " AND presig_id = ?"
                    args += (bytes(presig_id),)
                row = c.execute(query + " ORDER BY seq LIMIT 1", args).fetchone()
                if row is not None:
                    c.execute("DELETE FROM presignatures WHERE seq = ?", (row[0],))
            # Committed: the row is gone on disk before anything below runs.
        except sqlite3.Error as exc:
            raise self.db._error(
                exc, "write to", f"party state database {self.db.path}: take failed"
            ) from None
        if row is None:
            return None
        _, pid, nonce, ct = row
        if not (isinstance(pid, bytes) and isinstance(nonce, bytes) and isinstance(ct, bytes)):
            raise CryptoError("stored presignature failed authentication")
        try:
            blob = self._aead.decrypt(nonce, ct, self._ad(wallet_id, sk, pid))
        except (InvalidTag, ValueError):
            raise CryptoError("stored presignature failed authentication") from None
        return pid, blob

    def count(self, wallet_id: str, signers: Sequence[int]) -> int:
        """How many presignatures are stored for ``(wallet_id, signers)``."""
        wallet_id = _check_wallet_id(wallet_id)
        sk = _signers_key(signers, self.db.party)
        rows = self.db._read(
            "SELECT COUNT(*) FROM presignatures WHERE wallet_id = ? AND signers = ?",
            (wallet_id, sk),
        )
        return int(rows[0][0])

    def ids(self, wallet_id: str, signers: Sequence[int]) -> list[bytes]:
        """The ids of the presignatures stored for ``(wallet_id, signers)``, oldest first."""
        wallet_id = _check_wallet_id(wallet_id)
        sk = _signers_key(signers, self.db.party)
        rows = self.db._read(
            "SELECT presig_id FROM presignatures WHERE wallet_id = ? AND signers = ? ORDER BY seq",
            (wallet_id, sk),
        )
        return [bytes(r[0]) for r in rows]

    def entries(self, wallet_id: str, limit: int = 64) -> list[tuple[tuple[int, ...], bytes]]:
        """``(signer set, presig_id)`` of up to ``limit`` stored presignatures of
        ``wallet_id``, any signer set, oldest first (ids and party numbers: nothing secret)."""
        wallet_id = _check_wallet_id(wallet_id)
        rows = self.db._read(
            "SELECT signers, presig_id FROM presignatures WHERE wallet_id = ? ORDER BY seq LIMIT ?",
            (wallet_id, int(limit)),
        )
        return [(tuple(int(x) for x in str(r[0]).split(",")), bytes(r[1])) for r in rows]

    def was_stored(self, presig_id: bytes) -> bool:
        """True if ``presig_id`` was ever stored in this database (taken or not)."""
        rows = self.db._read(
            "SELECT 1 FROM presig_ids_ever WHERE presig_id = ?", (bytes(presig_id),)
        )
        return bool(rows)


@dataclass
class DenyList:
    """Peers refused per wallet after a failed pairwise check (persisted, survives restarts).

    A failed OT / multiplication check is terminal for that counterparty: each retry could leak
    a bit of the secret. Check :meth:`is_denied` before any secret-dependent work with a peer.
    """

    db: StateDB

    def add(self, wallet_id: str, peer: int, reason: str) -> None:
        """Deny ``peer`` for ``wallet_id`` durably; the first reason recorded is kept.

        ``reason`` is stored in clear: it **must not** contain secret material (name the
        check that failed, not values).

        Raises:
            ParameterError: bad wallet id, peer, or a reason that is empty or over 1000 chars.
            KeystoreError: the database cannot be written.
        """
        wallet_id = _check_wallet_id(wallet_id)
        peer = _check_party(peer, "peer")
        if not isinstance(reason, str) or not reason or len(reason) > 1000:
            raise ParameterError("deny-list reason must be a non-empty string (<= 1000 chars)")
        self.db._write(
            [
                (
                    "INSERT INTO deny_list (wallet_id, peer, reason) VALUES (?, ?, ?)"
                    " ON CONFLICT (wallet_id, peer) DO NOTHING",
                    (wallet_id, peer, reason),
                )
            ]
        )

    def is_denied(self, wallet_id: str, peer: int) -> bool:
        """True if ``peer`` is on the deny-list for ``wallet_id``."""
        return self.reason(wallet_id, peer) is not None

    def reason(self, wallet_id: str, peer: int) -> str | None:
        """The recorded reason ``peer`` is denied for ``wallet_id``, or None."""
        wallet_id = _check_wallet_id(wallet_id)
        peer = _check_party(peer, "peer")
        rows = self.db._read(
            "SELECT reason FROM deny_list WHERE wallet_id = ? AND peer = ?", (wallet_id, peer)
        )
        return str(rows[0][0]) if rows else None

    def denied(self, wallet_id: str) -> dict[int, str]:
        """All denied peers of ``wallet_id`` with their reasons."""
        wallet_id = _check_wallet_id(wallet_id)
        rows = self.db._read(
            "SELECT peer, reason FROM deny_list WHERE wallet_id = ? ORDER BY peer", (wallet_id,)
        )
        return {int(str(p)): str(r) for p, r in rows}

    def clear(self, wallet_id: str, peer: int) -> bool:
        """Remove ``peer`` from the deny-list of ``wallet_id``.

        **Must only** be called after a fresh pairwise setup with that peer has completed
        (new base OTs, new OT-extension seeds, new zero-sharing seed): the old pairwise state
        **must not** be used again.

        Returns:
            True if the peer was denied.
        """
        wallet_id = _check_wallet_id(wallet_id)
        peer = _check_party(peer, "peer")
        was = self.is_denied(wallet_id, peer)
        self.db._write(
            [("DELETE FROM deny_list WHERE wallet_id = ? AND peer = ?", (wallet_id, peer))]
        )
        return was


@dataclass
class PairwiseStore:
    """The party's replacement pairwise ECDSA material, encrypted, with its version.

    A failed pairwise check is terminal for the pair until the pairwise setup is redone; the
    redone material is kept here (the share file is never rewritten) and
    :meth:`install` replaces it and clears the deny-list entries of the redone peers in one
    transaction, so a crash leaves either the old state (peers still refused) or the new one.

    Args:
        db: the party's :class:`StateDB`.
        key: the party's 32-byte store key (the same as its :class:`PresignatureStore`'s).
    """

    db: StateDB
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        self._aead = _store_aead(self.key, "pairwise")

    def _ad(self, wallet_id: str, version: int) -> bytes:
        return lp_join(
            [
                _PAIRWISE_AD_TAG,
                wallet_id.encode(),
                self.db.party.to_bytes(4, "big"),
                version.to_bytes(8, "big"),
            ]
        )

    def get(self, wallet_id: str) -> bytes | None:
        """The current replacement material of ``wallet_id``, or None if never redone.

        Raises :class:`CryptoError` if the row fails authentication (tampered or moved).
        """
        wallet_id = _check_wallet_id(wallet_id)
        rows = self.db._read(
            "SELECT version, nonce, ciphertext FROM pairwise WHERE wallet_id = ?", (wallet_id,)
        )
        if not rows:
            return None
        version, nonce, ct = rows[0]
        try:
            return self._aead.decrypt(bytes(nonce), bytes(ct), self._ad(wallet_id, int(version)))
        except (InvalidTag, ValueError, TypeError):
            raise CryptoError("stored pairwise material failed authentication") from None

    def install(self, wallet_id: str, blob: bytes, redone_peers: Sequence[int]) -> int:
        """Replace the material and clear ``redone_peers`` from the deny-list, atomically.

        Returns the new version (1 for the first replacement).
        """
        wallet_id = _check_wallet_id(wallet_id)
        if not isinstance(blob, bytes | bytearray) or not 0 < len(blob) <= MAX_BLOB_LEN:
            raise ParameterError("pairwise blob must be 1 to MAX_BLOB_LEN bytes")
        peers = [_check_party(p, "peer") for p in redone_peers]
        try:
            with self.db.transaction() as c:
                row = c.execute(
                    "SELECT version FROM pairwise WHERE wallet_id = ?", (wallet_id,)
                ).fetchone()
                version = (int(row[0]) if row else 0) + 1
                nonce = secrets.token_bytes(12)
                ct = self._aead.encrypt(nonce, bytes(blob), self._ad(wallet_id, version))
                c.execute(
                    "INSERT OR REPLACE INTO pairwise (wallet_id, version, nonce, ciphertext)"
                    " VALUES (?, ?, ?, ?)",
                    (wallet_id, version, nonce, ct),
                )
                for p in peers:
                    c.execute(
                        "DELETE FROM deny_list WHERE wallet_id = ? AND peer = ?", (wallet_id, p)
                    )
        except sqlite3.Error as exc:
            raise self.db._error(
                exc, "write to", f"party state database {self.db.path}: write failed"
            ) from None
        return version


def retire_epoch(db: StateDB, wallet_id: str) -> set[bytes]:
    """After a refresh switched the wallet to new shares: delete, in one transaction, every
    presignature of the wallet (any path; made from the old shares, and sealed under the old
    shares' store key), its redone pairwise material (replaced by the refresh's new setup
    with every peer) and its deny-list entries (every pair was set up again). The record of
    used session ids stays. Returns the ids of the presignatures deleted."""
    wallet_id = _check_wallet_id(wallet_id)
    prefix = wallet_id + "@"  # pools are WALLET@PATH
    args = (wallet_id, len(prefix), prefix)
    try:
        with db.transaction() as c:
            rows = c.execute(
                "SELECT presig_id FROM presignatures"
                " WHERE wallet_id = ? OR substr(wallet_id, 1, ?) = ?",
                args,
            ).fetchall()
            ids = {bytes(r[0]) for r in rows}
            c.execute(
                "DELETE FROM presignatures WHERE wallet_id = ? OR substr(wallet_id, 1, ?) = ?",
                args,
            )
            c.execute("DELETE FROM pairwise WHERE wallet_id = ?", (wallet_id,))
            c.execute("DELETE FROM deny_list WHERE wallet_id = ?", (wallet_id,))
    except sqlite3.Error as exc:
        raise db._error(exc, "write to", f"party state database {db.path}: write failed") from None
    return ids


@dataclass
class UsedSessions:
    """Multiplication session ids used per (wallet, peer, role), recorded durably.

    Call :meth:`mark_used` **before** the message computed with that session's OT state
    leaves; a session id that is already recorded raises, also after a restart.
    """

    db: StateDB

    @staticmethod
    def _check(wallet_id: str, peer: int, role: str, session_id: bytes) -> bytes:
        _check_wallet_id(wallet_id)
        _check_party(peer, "peer")
        if role not in ROLES:
            raise ParameterError(f"role must be one of {', '.join(ROLES)}")
        if not isinstance(session_id, bytes | bytearray) or not 1 <= len(session_id) <= 256:
            raise ParameterError("session id must be 1 to 256 bytes")
        return bytes(session_id)

    def mark_used(self, wallet_id: str, peer: int, role: str, session_id: bytes) -> None:
        """Record ``session_id`` as used (committed when this returns).

        Args:
            wallet_id: the wallet.
            peer: the counterparty's identifier.
            role: ``"sender"`` or ``"receiver"`` (this party's side of the multiplication).
            session_id: 1 to 256 bytes.

        Raises:
            StateError: this session id was already used for (wallet, peer, role).
            ParameterError: bad arguments.
            KeystoreError: the database cannot be written.
        """
        sid = self._check(wallet_id, peer, role, session_id)
        try:
            self.db._write(
                [
                    (
                        "INSERT INTO used_sessions (wallet_id, peer, role, session_id)"
                        " VALUES (?, ?, ?, ?)",
                        (wallet_id, peer, role, sid),
                    )
                ]
            )
        except sqlite3.IntegrityError:
            raise StateError(
                f"multiplication session with peer {peer} ({role}) was already used"
            ) from None

    def is_used(self, wallet_id: str, peer: int, role: str, session_id: bytes) -> bool:
        """True if ``session_id`` is recorded for (wallet, peer, role)."""
        sid = self._check(wallet_id, peer, role, session_id)
        rows = self.db._read(
            "SELECT 1 FROM used_sessions WHERE wallet_id = ? AND peer = ? AND role = ?"
            " AND session_id = ?",
            (wallet_id, peer, role, sid),
        )
        return bool(rows)
