"""Party state database: single-use encrypted presignatures, deny-list, used sessions.

Crashes are simulated with real processes that exit abruptly (``os._exit`` without closing the
database, and SIGKILL), then the state is read back from a fresh connection.
"""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from tmpc.errors import CryptoError, KeystoreError, ParameterError, StateError
from tmpc.state.store import DenyList, PresignatureStore, StateDB, UsedSessions, state_db_path

WALLET = "wallet-abc"
SIGNERS = (1, 2, 3)
KEY = bytes(range(32))
PARTY = 2


def _db(tmp_path: Path, party: int = PARTY) -> StateDB:
    return StateDB(state_db_path(tmp_path, party), party=party)


def _fill(store: PresignatureStore, n: int, signers: tuple[int, ...] = SIGNERS) -> list[bytes]:
    ids = [secrets.token_bytes(32) for _ in range(n)]
    for i, pid in enumerate(ids):
        store.put(WALLET, signers, pid, b"presig-%d-" % i + pid)
    return ids


def _run_child(code: str, *, expect_rc: int = 0) -> str:
    """Run ``code`` in a fresh Python process; return its stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == expect_rc, proc.stderr
    return proc.stdout


# ------------------------------------------------------------------ presignatures


def test_put_take_count_fifo(tmp_path: Path) -> None:
    with _db(tmp_path) as db:
        store = PresignatureStore(db, KEY)
        assert store.take(WALLET, SIGNERS) is None
        ids = _fill(store, 3)
        other = _fill(store, 1, signers=(2, 4))
        assert store.count(WALLET, SIGNERS) == 3
        assert store.count(WALLET, (3, 2, 1)) == 3  # a signer set, not a sequence
        assert store.count(WALLET, (2, 4)) == 1
        assert store.count("other-wallet", SIGNERS) == 0
        got = store.take(WALLET, (3, 1, 2))
        assert got == (ids[0], b"presig-0-" + ids[0])
        assert [store.take(WALLET, SIGNERS) for _ in range(2)] == [
            (ids[1], b"presig-1-" + ids[1]),
            (ids[2], b"presig-2-" + ids[2]),
        ]
        assert store.take(WALLET, SIGNERS) is None
        assert store.count(WALLET, SIGNERS) == 0
        assert store.count(WALLET, (2, 4)) == 1
        assert store.take(WALLET, (4, 2)) == (other[0], b"presig-0-" + other[0])
        assert all(store.was_stored(i) for i in ids)
        assert not store.was_stored(secrets.token_bytes(32))


def test_presignatures_are_encrypted_at_rest(tmp_path: Path) -> None:
    marker = secrets.token_bytes(48)
    with _db(tmp_path) as db:
        PresignatureStore(db, KEY).put(WALLET, SIGNERS, secrets.token_bytes(32), marker)
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert marker not in on_disk
    assert marker[:16] not in on_disk
    assert "key=" not in repr(PresignatureStore(_db(tmp_path), KEY))
    assert KEY.hex() not in repr(PresignatureStore(_db(tmp_path), KEY))


def test_database_file_is_private(tmp_path: Path) -> None:
    _db(tmp_path).close()
    mode = stat.S_IMODE(state_db_path(tmp_path, PARTY).stat().st_mode)
    assert mode == 0o600


def test_reused_id_refused_now_and_after_take(tmp_path: Path) -> None:
    with _db(tmp_path) as db:
        store = PresignatureStore(db, KEY)
        (pid,) = _fill(store, 1)
        with pytest.raises(StateError):
            store.put(WALLET, SIGNERS, pid, b"again")  # still stored
        with pytest.raises(StateError):
            store.put("other-wallet", (2, 5), pid, b"again")  # ids are unique per party db
        assert store.take(WALLET, SIGNERS) is not None
        with pytest.raises(StateError):
            store.put(WALLET, SIGNERS, pid, b"again")  # used
        assert store.count(WALLET, SIGNERS) == 0


def test_reuse_refused_across_restart(tmp_path: Path) -> None:
    with _db(tmp_path) as db:
        store = PresignatureStore(db, KEY)
        (pid,) = _fill(store, 1)
        assert store.take(WALLET, SIGNERS) is not None
    with _db(tmp_path) as db:  # "restart": a new connection to the same file
        store = PresignatureStore(db, KEY)
        assert store.take(WALLET, SIGNERS) is None
        with pytest.raises(StateError):
            store.put(WALLET, SIGNERS, pid, b"restored from an old copy")
    # And in a new process.
    out = _run_child(
        f"""
        from pathlib import Path
        from tmpc.errors import StateError
        from tmpc.state.store import PresignatureStore, StateDB
        db = StateDB(Path({str(state_db_path(tmp_path, PARTY))!r}), party={PARTY})
        store = PresignatureStore(db, bytes(range(32)))
        assert store.take({WALLET!r}, {SIGNERS!r}) is None
        try:
            store.put({WALLET!r}, {SIGNERS!r}, bytes.fromhex({pid.hex()!r}), b"x")
        except StateError:
            print("refused")
        """
    )
    assert out.strip() == "refused"


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_take_then_crash_never_returns_it_again(tmp_path: Path, how: str) -> None:
    """A process takes a presignature and dies before closing anything: the row is gone."""
    with _db(tmp_path) as db:
        ids = _fill(PresignatureStore(db, KEY), 3)
    die = "os._exit(0)" if how == "exit" else "os.kill(os.getpid(), signal.SIGKILL)"
    code = f"""
        import os, signal, sys
        from pathlib import Path
        from tmpc.state.store import PresignatureStore, StateDB
        db = StateDB(Path({str(state_db_path(tmp_path, PARTY))!r}), party={PARTY})
        got = PresignatureStore(db, bytes(range(32))).take({WALLET!r}, {SIGNERS!r})
        sys.stdout.write(got[0].hex() + "\\n")
        sys.stdout.flush()
        {die}
        """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == (0 if how == "exit" else -signal.SIGKILL), proc.stderr
    taken = bytes.fromhex(proc.stdout.strip())
    assert taken == ids[0]
    # The WAL was left behind by the dead process: a new connection recovers it.
    with _db(tmp_path) as db:
        store = PresignatureStore(db, KEY)
        assert store.count(WALLET, SIGNERS) == 2
        rest = [store.take(WALLET, SIGNERS), store.take(WALLET, SIGNERS)]
        assert [r[0] for r in rest if r] == ids[1:]
        assert store.take(WALLET, SIGNERS) is None
        with pytest.raises(StateError):
            store.put(WALLET, SIGNERS, taken, b"resurrected")


def test_failed_transaction_rolls_back(tmp_path: Path) -> None:
    with _db(tmp_path) as db:
        store = PresignatureStore(db, KEY)
        _fill(store, 1)
        with pytest.raises(RuntimeError), db.transaction() as c:
            c.execute("DELETE FROM presignatures")
            raise RuntimeError("crash before commit")
        assert store.count(WALLET, SIGNERS) == 1


def test_concurrent_takes_never_return_the_same_presignature(tmp_path: Path) -> None:
    with _db(tmp_path) as db:
        ids = set(_fill(PresignatureStore(db, KEY), 60))
    results: list[list[bytes]] = [[], [], []]
    errors: list[BaseException] = []
    start = threading.Barrier(len(results))

    def worker(out: list[bytes]) -> None:
        try:
            with _db(tmp_path) as own:  # one connection per thread
                store = PresignatureStore(own, KEY)
                start.wait()
                while (got := store.take(WALLET, SIGNERS)) is not None:
                    assert got[1].endswith(got[0])
                    out.append(got[0])
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(r,)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    taken = [pid for r in results for pid in r]
    assert len(taken) == len(set(taken)) == len(ids)
    assert set(taken) == ids


def test_concurrent_takes_from_two_processes(tmp_path: Path) -> None:
    with _db(tmp_path) as db:
        ids = set(_fill(PresignatureStore(db, KEY), 40))
    code = f"""
        from pathlib import Path
        from tmpc.state.store import PresignatureStore, StateDB
        db = StateDB(Path({str(state_db_path(tmp_path, PARTY))!r}), party={PARTY})
        store = PresignatureStore(db, bytes(range(32)))
        while (got := store.take({WALLET!r}, {SIGNERS!r})) is not None:
            print(got[0].hex(), flush=True)
        """
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    taken = [bytes.fromhex(line) for out, _ in outs for line in out.split()]
    assert len(taken) == len(set(taken)) == len(ids)
    assert set(taken) == ids


def test_tampered_ciphertext_is_crypto_error_and_discarded(tmp_path: Path) -> None:
    path = state_db_path(tmp_path, PARTY)
    with _db(tmp_path) as db:
        ids = _fill(PresignatureStore(db, KEY), 2)
    raw = sqlite3.connect(path)
    (ct,) = raw.execute(
        "SELECT ciphertext FROM presignatures WHERE presig_id = ?", (ids[0],)
    ).fetchone()
    flipped = bytes([ct[0] ^ 1]) + ct[1:]
    raw.execute("UPDATE presignatures SET ciphertext = ? WHERE presig_id = ?", (flipped, ids[0]))
    raw.commit()
    raw.close()
    with _db(tmp_path) as db:
        store = PresignatureStore(db, KEY)
        with pytest.raises(CryptoError) as info:
            store.take(WALLET, SIGNERS)
        assert "presig" in str(info.value) and ct.hex()[:16] not in str(info.value)
        # The tampered row is gone (never usable); the next one is intact.
        assert store.take(WALLET, SIGNERS) == (ids[1], b"presig-1-" + ids[1])


@pytest.mark.parametrize(
    ("column", "value"),
    [("wallet_id", "other-wallet"), ("signers", "2,4"), ("presig_id", b"\x01" * 32)],
)
def test_row_moved_to_other_context_fails_authentication(
    tmp_path: Path, column: str, value: object
) -> None:
    """The AD binds wallet, party, signer set and id: a row moved elsewhere does not open."""
    path = state_db_path(tmp_path, PARTY)
    with _db(tmp_path) as db:
        _fill(PresignatureStore(db, KEY), 1)
    raw = sqlite3.connect(path)
    raw.execute(f"UPDATE presignatures SET {column} = ?", (value,))
    raw.commit()
    raw.close()
    wallet = value if column == "wallet_id" else WALLET
    signers = (2, 4) if column == "signers" else SIGNERS
    with _db(tmp_path) as db, pytest.raises(CryptoError):
        PresignatureStore(db, KEY).take(str(wallet), signers)


def test_other_partys_database_or_wrong_key(tmp_path: Path) -> None:
    with _db(tmp_path) as db:
        _fill(PresignatureStore(db, KEY), 1)
        with pytest.raises(CryptoError):
            PresignatureStore(db, bytes(32)).take(WALLET, SIGNERS)
    # A file created for party 2 opened as party 3 (e.g. swapped) is refused.
    with pytest.raises(KeystoreError, match="not party 3"):
        StateDB(state_db_path(tmp_path, PARTY), party=3)


def test_put_take_parameter_errors(tmp_path: Path) -> None:
    with _db(tmp_path) as db:
        with pytest.raises(ParameterError):
            PresignatureStore(db, bytes(31))
        store = PresignatureStore(db, KEY)
        pid = secrets.token_bytes(32)
        bad = [
            ("", SIGNERS, pid, b"x"),
            (WALLET, (1, 3), pid, b"x"),  # this party (2) is not a signer
            (WALLET, (2, 2, 3), pid, b"x"),
            (WALLET, (), pid, b"x"),
            (WALLET, (0, 2), pid, b"x"),
            (WALLET, "2,3", pid, b"x"),
            (WALLET, SIGNERS, pid[:31], b"x"),
            (WALLET, SIGNERS, pid, b""),
        ]
        for args in bad:
            with pytest.raises(ParameterError):
                store.put(*args)  # type: ignore[arg-type]
        assert not store.was_stored(pid)
        with pytest.raises(ParameterError):
            store.take(WALLET, (1, 3))


# ------------------------------------------------------------------ corrupt files


def _assert_one_line(exc: BaseException, path: Path) -> None:
    text = str(exc)
    assert "\n" not in text and str(path) in text
    assert exc.__suppress_context__  # raised "from None": no sqlite traceback chained


def test_garbage_file_is_keystore_error(tmp_path: Path) -> None:
    path = state_db_path(tmp_path, PARTY)
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(KeystoreError) as info:
        StateDB(path, party=PARTY)
    _assert_one_line(info.value, path)
    assert path.read_bytes() == b"this is not a database" * 100  # untouched


def test_corrupted_page_is_keystore_error(tmp_path: Path) -> None:
    path = state_db_path(tmp_path, PARTY)
    with _db(tmp_path) as db:
        _fill(PresignatureStore(db, KEY), 50)
        DenyList(db).add(WALLET, 3, "test")
    raw = sqlite3.connect(path)  # fold the WAL into the main file
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 3 * page
    data[page + 8 : 2 * page - 8] = os.urandom(page - 16)  # overwrite a b-tree page
    path.write_bytes(bytes(data))
    with pytest.raises(KeystoreError) as info:
        StateDB(path, party=PARTY)
    _assert_one_line(info.value, path)


def test_foreign_sqlite_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = state_db_path(tmp_path, PARTY)
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE notes (x TEXT)")
    raw.commit()
    raw.close()
    with pytest.raises(KeystoreError, match="not a tmpc party state database"):
        StateDB(path, party=PARTY)
    raw = sqlite3.connect(path)
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master")}
    raw.close()
    assert tables == {"notes"}


def test_missing_file_without_create(tmp_path: Path) -> None:
    path = state_db_path(tmp_path, PARTY)
    with pytest.raises(KeystoreError, match="not found"):
        StateDB(path, party=PARTY, create=False)
    assert not path.exists()


def test_corrupt_file_in_a_subprocess_is_one_line(tmp_path: Path) -> None:
    path = state_db_path(tmp_path, PARTY)
    path.write_bytes(os.urandom(8192))
    out = _run_child(
        f"""
        from pathlib import Path
        from tmpc.errors import KeystoreError
        from tmpc.state.store import StateDB
        try:
            StateDB(Path({str(path)!r}), party={PARTY})
        except KeystoreError as e:
            print(e)
        """
    )
    assert out.count("\n") == 1 and "corrupt" in out


# ------------------------------------------------------------------ deny-list


def test_deny_list_survives_restart_and_clear(tmp_path: Path) -> None:
    with _db(tmp_path) as db:
        deny = DenyList(db)
        assert not deny.is_denied(WALLET, 3)
        deny.add(WALLET, 3, "multiplication check failed")
        deny.add(WALLET, 3, "second failure")  # the first reason is kept
        assert deny.is_denied(WALLET, 3)
        assert not deny.is_denied(WALLET, 1)
        assert not deny.is_denied("other-wallet", 3)
    with _db(tmp_path) as db:
        deny = DenyList(db)
        assert deny.is_denied(WALLET, 3)
        assert deny.reason(WALLET, 3) == "multiplication check failed"
        assert deny.denied(WALLET) == {3: "multiplication check failed"}
    out = _run_child(
        f"""
        from pathlib import Path
        from tmpc.state.store import DenyList, StateDB
        db = StateDB(Path({str(state_db_path(tmp_path, PARTY))!r}), party={PARTY})
        print(DenyList(db).is_denied({WALLET!r}, 3), DenyList(db).is_denied({WALLET!r}, 1))
        """
    )
    assert out.split() == ["True", "False"]
    with _db(tmp_path) as db:
        deny = DenyList(db)
        assert deny.clear(WALLET, 3) is True
        assert deny.clear(WALLET, 3) is False
    with _db(tmp_path) as db:
        assert not DenyList(db).is_denied(WALLET, 3)
        assert DenyList(db).denied(WALLET) == {}


def test_deny_list_parameter_errors(tmp_path: Path) -> None:
    with _db(tmp_path) as db:
        deny = DenyList(db)
        for args in [(WALLET, 0, "r"), (WALLET, True, "r"), (WALLET, 3, ""), ("", 3, "r")]:
            with pytest.raises(ParameterError):
                deny.add(*args)
        assert deny.denied(WALLET) == {}


# ------------------------------------------------------------------ used sessions


def test_used_sessions_single_use_across_restart(tmp_path: Path) -> None:
    sid = secrets.token_bytes(32)
    with _db(tmp_path) as db:
        used = UsedSessions(db)
        assert not used.is_used(WALLET, 3, "sender", sid)
        used.mark_used(WALLET, 3, "sender", sid)
        with pytest.raises(StateError):
            used.mark_used(WALLET, 3, "sender", sid)
        # Independent per peer, role and wallet.
        used.mark_used(WALLET, 3, "receiver", sid)
        used.mark_used(WALLET, 1, "sender", sid)
        used.mark_used("other-wallet", 3, "sender", sid)
    with _db(tmp_path) as db:
        used = UsedSessions(db)
        assert used.is_used(WALLET, 3, "sender", sid)
        with pytest.raises(StateError):
            used.mark_used(WALLET, 3, "receiver", sid)
    out = _run_child(
        f"""
        from pathlib import Path
        from tmpc.errors import StateError
        from tmpc.state.store import StateDB, UsedSessions
        db = StateDB(Path({str(state_db_path(tmp_path, PARTY))!r}), party={PARTY})
        try:
            UsedSessions(db).mark_used({WALLET!r}, 3, "sender", bytes.fromhex({sid.hex()!r}))
        except StateError:
            print("refused")
        """
    )
    assert out.strip() == "refused"


def test_used_sessions_parameter_errors(tmp_path: Path) -> None:
    with _db(tmp_path) as db:
        used = UsedSessions(db)
        for args in [
            (WALLET, 3, "alice", b"s"),
            (WALLET, 3, "sender", b""),
            (WALLET, -1, "sender", b"s"),
            (WALLET, 3, "sender", "s"),
        ]:
            with pytest.raises(ParameterError):
                used.mark_used(*args)  # type: ignore[arg-type]


def test_one_database_holds_all_three(tmp_path: Path) -> None:
    with _db(tmp_path) as db:
        _fill(PresignatureStore(db, KEY), 1)
        DenyList(db).add(WALLET, 3, "ot check failed")
        UsedSessions(db).mark_used(WALLET, 3, "receiver", b"sid")
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == ["party-2.db"]


def test_take_by_id_removes_exactly_that_presignature(tmp_path: Path) -> None:
    from tmpc.state.store import PresignatureStore, StateDB, state_db_path

    db = StateDB(state_db_path(tmp_path, 1), party=1)
    store = PresignatureStore(db, b"k" * 32)
    ids = [bytes([i]) * 32 for i in range(1, 4)]
    for pid in ids:
        store.put("ab" * 16, (1, 2, 3), pid, b"blob" + pid[:1])
    assert store.take("ab" * 16, (1, 2, 3), ids[1]) == (ids[1], b"blob\x02")
    assert store.take("ab" * 16, (1, 2, 3), ids[1]) is None
    assert store.count("ab" * 16, (1, 2, 3)) == 2
    assert store.take("ab" * 16, (1, 2, 3)) == (ids[0], b"blob\x01")
