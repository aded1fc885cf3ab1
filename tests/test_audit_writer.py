"""The audit log's batched writer (issue 12: audit logging adds under 10% to signing latency).

``AuditLog.submit`` checks an event on the caller's thread and queues it; one writer thread
signs, writes and ``fsync``s the queue in batches. Done when: entries submitted from many
threads form one verified chain in submit order; a crash at any point leaves a log that
verifies, with a head that never names an entry missing from the disk; a failed write marks
the log broken and later submits say so; a full queue drops events only counted and recorded;
``read`` returns exactly the entries asked for, before and after a reopen. Timing is measured
by ``bench/audit_writer.py``, not asserted here.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.test_audit import Cluster3, lines, log_file, make_cluster3
from tmpc.audit import (
    REQUEST_RECEIVED,
    SESSION_ROUND,
    SESSION_STARTED,
    AuditLog,
    Entry,
    verify,
)
from tmpc.audit import log as audit_log_module
from tmpc.audit.entry import LOG_DROPPED, MAX_LINE_BYTES, check_event, make_entry, sign_head
from tmpc.audit.verify import Head
from tmpc.errors import ParameterError, StateError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def c3(tmp_path_factory: pytest.TempPathFactory) -> Cluster3:
    return make_cluster3(tmp_path_factory.mktemp("cluster"))


class SetClock:
    """A clock that says what the test last set."""

    def __init__(self, now: float = 1_767_225_600.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def open_bg(c3: Cluster3, d: Path, name: str = "a", *, sync: bool = False, **kw: Any) -> AuditLog:
    return AuditLog.open(d, node=name, identity=c3.ids[name], sync=sync, background=True, **kw)


@pytest.fixture
def node_dir(c3: Cluster3, tmp_path: Path) -> Path:
    return c3.node_dir(tmp_path, "a")


def entries(d: Path) -> list[Entry]:
    """The log's entries (its whole lines: a torn last line is left out)."""
    data = log_file(d).read_bytes()
    return [Entry.from_line(x) for x in data[: data.rfind(b"\n") + 1].splitlines()]


def head_seq(d: Path) -> int:
    return Head.from_bytes((d / "audit" / "head.json").read_bytes()).seq


@contextmanager
def stalled(log: AuditLog, monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Hold the writer inside its next write to the log until the block ends; yields an
    event set once the writer is held."""
    real = audit_log_module._write_all
    held, release = threading.Event(), threading.Event()
    fd = log._fd

    def slow(f: int, data: bytes) -> None:
        if f == fd:
            held.set()
            release.wait(30)
        real(f, data)

    monkeypatch.setattr(audit_log_module, "_write_all", slow)
    try:
        yield held
    finally:
        release.set()
        monkeypatch.setattr(audit_log_module, "_write_all", real)


# -- ordering and the chain -----------------------------------------------------------------------


def test_submits_from_many_threads_form_one_chain_in_submit_order(
    c3: Cluster3, node_dir: Path
) -> None:
    threads, per_thread = 6, 300
    start = threading.Barrier(threads)
    with open_bg(c3, node_dir) as log:

        def work(t: int) -> None:
            start.wait()
            for i in range(per_thread):
                log.submit(SESSION_ROUND if i % 2 else SESSION_STARTED, {"thread": t, "i": i})
                if i % 100 == 99:
                    log.append(REQUEST_RECEIVED, {"thread": t, "i": i, "sync": True})

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert log.flush(timeout=60)
        assert log.seq == 1 + threads * (per_thread + 3) and log.pending == 0
        assert log.dropped == 0 and not log.broken
    report = verify(node_dir, c3.cluster, "a")
    assert report.ok, report.problems
    assert report.entries == 1 + threads * (per_thread + 3)
    got = entries(node_dir)
    assert [e.seq for e in got] == list(range(1, len(got) + 1))
    # Each thread's events are in the log in the order it submitted them, and the times
    # (taken in queue order) never go back.
    for t in range(threads):
        mine = [e.data["i"] for e in got if e.data.get("thread") == t]
        assert len(mine) == per_thread + 3 and mine == sorted(mine)
    assert all(a.at <= b.at for a, b in itertools.pairwise(got))
    assert head_seq(node_dir) == report.entries


def test_append_with_the_writer_returns_its_entry_after_earlier_submits(
    c3: Cluster3, node_dir: Path
) -> None:
    with open_bg(c3, node_dir, sync=True) as log:
        for i in range(20):
            log.submit(SESSION_ROUND, {"i": i})
        e = log.append(REQUEST_RECEIVED, {"request": "r"})
        assert e.seq == 22 and log.seq >= 22
        assert Entry.from_line(lines(node_dir)[21]) == e  # on disk when append returns
    assert verify(node_dir, c3.cluster, "a").ok


def test_at_is_the_time_of_submit(c3: Cluster3, node_dir: Path, monkeypatch: Any) -> None:
    clock = SetClock(1000.0)
    with open_bg(c3, node_dir, clock=clock) as log:
        with stalled(log, monkeypatch) as held:
            log.submit(SESSION_STARTED, {"n": 1})
            assert held.wait(10)
            clock.now = 2000.0
            log.submit(SESSION_ROUND, {"n": 2})
            clock.now = 3000.0
        clock.now = 4000.0
        assert log.flush(10)
    assert [e.at for e in entries(node_dir)] == [1000.0, 1000.0, 2000.0]


def test_without_the_writer_submit_writes_at_once(c3: Cluster3, node_dir: Path) -> None:
    with AuditLog.open(node_dir, node="a", identity=c3.ids["a"], sync=False) as log:
        log.submit(SESSION_STARTED, {"n": 1})
        assert log.seq == 2 and log.pending == 0 and log.flush(0)
        log.start_writer()
        log.start_writer()  # idempotent
        log.submit(SESSION_STARTED, {"n": 2})
        assert log.flush(10) and log.seq == 3
    assert verify(node_dir, c3.cluster, "a").ok


def test_close_drains_the_queue(c3: Cluster3, node_dir: Path) -> None:
    log = open_bg(c3, node_dir, sync=True)
    for i in range(300):
        log.submit(SESSION_ROUND, {"i": i})
    log.close()
    log.close()  # idempotent
    with pytest.raises(StateError, match="closed"):
        log.submit(SESSION_ROUND, {"i": 0})
    with pytest.raises(StateError, match="closed"):
        log.read(0, 1)
    with pytest.raises(StateError, match="closed"):
        log.start_writer()
    assert log.flush(0)
    report = verify(node_dir, c3.cluster, "a")
    assert report.ok and report.entries == 301 and head_seq(node_dir) == 301


def test_flush_times_out_while_the_disk_is_slow(
    c3: Cluster3, node_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_bg(c3, node_dir) as log:
        with stalled(log, monkeypatch) as held:
            log.submit(SESSION_STARTED, {"n": 1})
            assert held.wait(10)
            assert log.flush(timeout=0.05) is False
            assert log.seq == 1
        assert log.flush(timeout=10) is True and log.seq == 2


# -- checked at the call site ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "data", "match"),
    [
        ("log.dropped", {"count": 1}, "written by the log itself"),
        ("checkpoint", {}, "written by the log itself"),
        ("Session", {}, "event type"),
        (SESSION_STARTED, {"secshare": "00"}, r"data\.secshare is named like a secret"),
        (SESSION_STARTED, {"x": [{"nonce": 1}]}, r"data\.x\[0\]\.nonce is named like a secret"),
        (SESSION_STARTED, {"digest": b"\x00" * 32}, r"data\.digest is bytes"),
        (SESSION_STARTED, {"x": float("inf")}, "not a finite number"),
        (SESSION_STARTED, {"x": object()}, "not a JSON value"),
        (SESSION_STARTED, {"blob": "x" * MAX_LINE_BYTES}, "longer than"),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_submit_refuses_a_bad_event_at_the_call_site(
    c3: Cluster3, node_dir: Path, event_type: str, data: dict[str, Any], match: str
) -> None:
    with open_bg(c3, node_dir) as log:
        with pytest.raises(ParameterError, match=match):
            log.submit(event_type, data)
        with pytest.raises(ParameterError, match=match):
            log.append(event_type, data)
        assert log.pending == 0 and log.flush(10) and log.seq == 1
        assert log.dropped == 0 and not log.broken


def test_the_longest_event_submit_takes_is_written(c3: Cluster3, node_dir: Path) -> None:
    def fits(n: int) -> bool:
        try:
            check_event(SESSION_STARTED, {"blob": "x" * n}, node="a")
        except ParameterError:
            return False
        return True

    lo, hi = 0, MAX_LINE_BYTES  # fits(lo), not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    with open_bg(c3, node_dir) as log:
        log.submit(SESSION_STARTED, {"blob": "x" * lo})
        with pytest.raises(ParameterError, match="longer than"):
            log.submit(SESSION_STARTED, {"blob": "x" * hi})
        assert log.flush(10) and not log.broken
    line = lines(node_dir)[-1]
    assert MAX_LINE_BYTES - 100 < len(line) <= MAX_LINE_BYTES  # the bound is nearly exact
    assert verify(node_dir, c3.cluster, "a").ok


def test_submit_copies_the_data(c3: Cluster3, node_dir: Path, monkeypatch: Any) -> None:
    with open_bg(c3, node_dir) as log:
        data: dict[str, Any] = {"parties": [1, 2]}
        with stalled(log, monkeypatch) as held:
            log.submit(SESSION_STARTED, data)
            assert held.wait(10)
            log.submit(SESSION_STARTED, data)
            data["parties"].append(3)
            data["extra"] = True
        assert log.flush(10)
    assert [e.data for e in entries(node_dir)[1:]] == [{"parties": [1, 2]}] * 2


# -- crashes ---------------------------------------------------------------------------------------

_CRASH_CHILD = """
import os, sys, threading, time
from pathlib import Path
from tmpc.audit import AuditLog
from tmpc.wire.identity import NodeIdentity

d, seckey, ms, mode = Path(sys.argv[1]), bytes.fromhex(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
log = AuditLog.open(d, node="a", identity=NodeIdentity(seckey), background=True)
i = 0

def submit(k):
    global i
    for _ in range(k):
        log.submit("session.round", {"i": i, "pad": "x" * (i % 200)})
        i += 1

if mode == "torn":  # die half-way through writing the line of event 45
    import tmpc.audit.log as m
    real = m._write_all
    def write_all(fd, data):
        cut = data.find(b'"i":45,')
        if cut >= 0:
            os.write(fd, data[:cut])
            os._exit(0)
        real(fd, data)
    m._write_all = write_all
    for _ in range(3):
        submit(20)
        log.flush()
elif mode == "exit":  # a normal exit without close(): the queue is drained first
    submit(300)
    sys.exit(0)
elif mode == "flushed":  # what flush() returned for is safe; the rest may be lost
    submit(300)
    log.flush()
    print(i, flush=True)
    submit(300)
else:  # like a node: bursts of events between waits; the process dies at some point
    def work():
        while True:
            submit(8)
            time.sleep(0.001)
    threading.Thread(target=work, daemon=True).start()
    time.sleep(ms / 1000)
os._exit(0)
"""


@pytest.mark.parametrize(
    ("ms", "mode"),
    [
        (0, "exit"),
        (0, "flushed"),
        (0, "torn"),
        (5, "stream"),
        (50, "stream"),
        (200, "stream"),
        (333, "stream"),
    ],
)
def test_a_crash_after_submits_leaves_a_log_that_verifies(
    c3: Cluster3, node_dir: Path, ms: int, mode: str
) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _CRASH_CHILD,
            str(node_dir),
            c3.ids["a"].seckey.hex(),
            str(ms),
            mode,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    report = verify(node_dir, c3.cluster, "a")
    assert report.ok, report.problems  # a torn last line is a warning, not a problem
    got = entries(node_dir)
    # What reached the disk is a prefix of what was submitted, in order ...
    assert [e.data["i"] for e in got[1:]] == list(range(len(got) - 1))
    # ... and the head never names an entry that is not there.
    assert head_seq(node_dir) <= len(got)
    if mode == "flushed":
        assert len(got) >= 1 + int(proc.stdout)
    if mode == "exit":
        assert len(got) == 301 and head_seq(node_dir) == 301
    torn = not log_file(node_dir).read_bytes().endswith(b"\n")
    if mode == "torn":  # events 0-44 whole (the first ones of their batch, perhaps)
        assert torn and len(got) == 46 and head_seq(node_dir) <= 46
        assert any("the final line is incomplete" in w for w in report.warnings)
    with AuditLog.open(node_dir, node="a", identity=c3.ids["a"], sync=False) as log:
        seq = log.seq
        assert seq == len(got) + torn  # + log.recovered if a line was torn
        log.append(REQUEST_RECEIVED, {"after": "crash"})
    report = verify(node_dir, c3.cluster, "a")
    assert report.ok and report.entries == seq + 1


def test_the_head_is_replaced_only_after_its_batch_is_fsynced(
    c3: Cluster3, node_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power loss keeps only what was fsync'd: every head.json the log writes must name an
    entry inside the part of the log that was fsync'd before it."""
    log_path = log_file(node_dir)
    durable = [0]  # bytes of audit.log made durable so far
    renamed: list[int] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        real_fsync(fd)
        if os.path.samestat(os.fstat(fd), os.stat(log_path)):
            durable[0] = os.fstat(fd).st_size

    def replace(src: Any, dst: Any) -> None:
        if Path(dst).name == "head.json":
            seq = Head.from_bytes(Path(src).read_bytes()).seq
            on_disk = log_path.read_bytes()[: durable[0]].split(b"\n")
            assert len(on_disk) - 1 >= seq, f"head names entry {seq} before it is fsync'd"
            renamed.append(seq)
        real_replace(src, dst)

    with open_bg(c3, node_dir, sync=True) as log:
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)

        def work(t: int) -> None:
            for i in range(150):
                log.submit(SESSION_ROUND, {"thread": t, "i": i})

        workers = [threading.Thread(target=work, args=(t,)) for t in range(3)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert log.flush(60)
        monkeypatch.undo()
    assert renamed and renamed == sorted(renamed) and renamed[-1] == 451
    assert len(renamed) < 451  # batched: fewer heads than entries
    assert verify(node_dir, c3.cluster, "a").ok


# -- a failing disk --------------------------------------------------------------------------------


def _fail_writes_to(
    log: AuditLog, monkeypatch: pytest.MonkeyPatch, *, partial: bool
) -> Callable[[], None]:
    """Make writes to the log's file fail with ENOSPC (after half the bytes if ``partial``);
    returns the undo."""
    real = os.write
    fd = log._fd

    def write(f: int, data: Any) -> int:
        if f == fd:
            if partial and len(data) > 1:
                real(f, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(f, data)

    monkeypatch.setattr(os, "write", write)
    return lambda: monkeypatch.setattr(os, "write", real)


@pytest.mark.parametrize("partial", [False, True], ids=["nothing-written", "half-written"])
def test_a_failed_write_marks_the_log_broken(
    c3: Cluster3, node_dir: Path, monkeypatch: pytest.MonkeyPatch, partial: bool
) -> None:
    log = open_bg(c3, node_dir, sync=True)
    try:
        for i in range(5):
            log.submit(SESSION_ROUND, {"i": i})
        assert log.flush(10)
        undo = _fail_writes_to(log, monkeypatch, partial=partial)
        for i in range(5, 50):
            log.submit(SESSION_ROUND, {"i": i})
        with pytest.raises(StateError, match="broken by a failed write") as info:
            log.flush(10)
        undo()
        assert isinstance(info.value.__cause__, OSError)
        assert log.broken
        err = log.last_error
        assert isinstance(err, OSError) and err.errno == errno.ENOSPC
        assert log.dropped == 45 and log.pending == 0 and log.seq == 6
        with pytest.raises(StateError, match="broken"):
            log.submit(SESSION_ROUND, {"i": 99})
        with pytest.raises(StateError, match="broken"):
            log.append(SESSION_ROUND, {"i": 99})
        with pytest.raises(StateError, match="broken"):
            log.checkpoint_body()
        assert log.read(0, 100) == [json.loads(x) for x in lines(node_dir)]
    finally:
        log.close()
    # The file was cut back: no partial line, nothing set aside, the head where it was.
    assert verify(node_dir, c3.cluster, "a").ok
    assert len(lines(node_dir)) == 6 and head_seq(node_dir) == 6
    assert not list((node_dir / "audit").glob("audit.log.torn-*"))
    with open_bg(c3, node_dir) as log:  # a restart carries on
        log.submit(SESSION_ROUND, {"i": 50})
    assert verify(node_dir, c3.cluster, "a").entries == 7


def test_append_waiting_for_a_batch_that_fails_raises(
    c3: Cluster3, node_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_bg(c3, node_dir) as log:
        undo = _fail_writes_to(log, monkeypatch, partial=False)
        with pytest.raises(StateError, match="broken"):
            log.append(REQUEST_RECEIVED, {"request": "r"})
        undo()
        assert log.dropped == 1


# -- a full queue ----------------------------------------------------------------------------------


def test_a_full_queue_drops_counts_and_records(
    c3: Cluster3, node_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = SetClock(1000.0)
    with open_bg(c3, node_dir, queue_limit=5, clock=clock) as log:
        with stalled(log, monkeypatch) as held:
            log.submit(SESSION_STARTED, {"i": 0})  # taken by the writer, held there
            assert held.wait(10)
            for i in range(1, 5):  # fills the queue: 5 entries not on disk
                log.submit(SESSION_ROUND, {"i": i})
            assert log.pending == 5 and log.dropped == 0
            clock.now = 2000.0
            for i in range(5, 13):  # dropped: 4 session.round, 4 request.received
                log.submit(SESSION_ROUND if i % 2 else REQUEST_RECEIVED, {"i": i})
                clock.now += 100
            assert log.dropped == 8 and log.pending == 5
            # append is never dropped: it waits.
            appended: list[Entry] = []
            t = threading.Thread(
                target=lambda: appended.append(log.append(REQUEST_RECEIVED, {"i": 13}))
            )
            t.start()
        t.join(10)
        assert appended and appended[0].seq == 8
        log.submit(SESSION_ROUND, {"i": 14})
        assert log.flush(10)
        assert log.dropped == 8 and log.pending == 0
    got = entries(node_dir)
    assert [e.type for e in got] == [
        "log.created",
        SESSION_STARTED,
        *[SESSION_ROUND] * 4,
        LOG_DROPPED,
        REQUEST_RECEIVED,
        SESSION_ROUND,
    ]
    # Where the lost events stood: how many, of which types, from the first drop to the last.
    assert got[6].at == 2000.0
    assert got[6].data == {
        "count": 8,
        "types": {REQUEST_RECEIVED: 4, SESSION_ROUND: 4},
        "until": 2700.0,
    }
    report = verify(node_dir, c3.cluster, "a")
    assert report.ok
    assert any("entry 7: 8 event(s) were not logged" in w for w in report.warnings)


def test_a_log_dropped_entry_counts_many_types_in_short(
    c3: Cluster3, node_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_bg(c3, node_dir, queue_limit=1) as log:
        with stalled(log, monkeypatch) as held:
            log.submit(SESSION_STARTED, {})
            assert held.wait(10)
            for i in range(100):
                log.submit(f"custom.t{i}", {})
        assert log.flush(10)
    rec = entries(node_dir)[-1]
    assert rec.type == LOG_DROPPED and rec.data["count"] == 100
    assert len(rec.data["types"]) == 32 and sum(rec.data["types"].values()) == 32
    assert verify(node_dir, c3.cluster, "a").ok


def test_a_malformed_log_dropped_entry_fails_verification(c3: Cluster3, node_dir: Path) -> None:
    with AuditLog.open(node_dir, node="a", identity=c3.ids["a"], sync=False) as log:
        log.append(SESSION_STARTED, {})
    for bad in (
        {"count": 0, "types": {}, "until": 1.0},
        {"count": 2, "types": {SESSION_ROUND: 3}, "until": 1.0},
        {"count": 2, "types": {"Bad Type": 1}, "until": 1.0},
        {"count": 2, "types": {}},
    ):
        ls = lines(node_dir)[:2]
        prev = Entry.from_line(ls[-1]).hash
        e = make_entry(
            c3.ids["a"], node="a", seq=3, prev=prev, at=2.0, event_type=LOG_DROPPED, data=bad
        )
        log_file(node_dir).write_bytes(b"".join(x + b"\n" for x in [*ls, e.to_line()]))
        head = Head("a", 3, e.hash, sign_head(c3.ids["a"], "a", 3, e.hash))
        (node_dir / "audit" / "head.json").write_bytes(head.to_bytes())
        report = verify(node_dir, c3.cluster, "a")
        assert report.first is not None and report.first.seq == 3
        assert "malformed log.dropped" in str(report.first)


# -- reading ---------------------------------------------------------------------------------------


def test_read_returns_exactly_the_entries_asked_for(c3: Cluster3, node_dir: Path) -> None:
    with open_bg(c3, node_dir) as log:
        for i in range(99):
            log.submit(SESSION_ROUND, {"i": i, "text": "é" * (i % 3)})
        assert log.flush(10)
        want = [json.loads(x) for x in lines(node_dir)]
        assert len(want) == 100
        for after, limit in [(0, 1), (0, 100), (0, 1000), (10, 5), (95, 10), (99, 1), (99, 50)]:
            assert log.read(after, limit) == want[after : after + limit], (after, limit)
        assert log.read(100, 10) == [] and log.read(10**9, 1) == []
        assert log.read(41, 1)[0]["seq"] == 42
        bad: list[tuple[Any, Any]] = [(-1, 1), (0, 0), (True, 1), (0, 1.5)]
        for b_after, b_limit in bad:
            with pytest.raises(ParameterError, match="audit read"):
                log.read(b_after, b_limit)
        log.submit(SESSION_ROUND, {"i": 99})
        assert log.flush(10)
        assert [e["seq"] for e in log.read(98, 10)] == [99, 100, 101]
    with open_bg(c3, node_dir) as log:  # the index is rebuilt on open
        assert log.read(0, 1000) == [json.loads(x) for x in lines(node_dir)]
        assert log.read(97, 2) == want[97:99]


def test_read_after_a_torn_line_was_set_aside(c3: Cluster3, node_dir: Path) -> None:
    with AuditLog.open(node_dir, node="a", identity=c3.ids["a"], sync=False) as log:
        for i in range(5):
            log.append(SESSION_ROUND, {"i": i})
    with open(log_file(node_dir), "ab") as fh:
        fh.write(b'{"at":1.0,"data":{"i"')
    with open_bg(c3, node_dir) as log:
        got = log.read(0, 100)
        assert got == [json.loads(x) for x in lines(node_dir)]
        assert [e["seq"] for e in got] == list(range(1, 8)) and got[-1]["type"] == "log.recovered"


def test_read_while_the_writer_writes_sees_only_whole_entries(c3: Cluster3, node_dir: Path) -> None:
    with open_bg(c3, node_dir) as log:
        stop = threading.Event()
        seen: list[int] = []

        def reader() -> None:
            after = 0
            while not stop.is_set() or after < log.seq:
                for e in log.read(after, 7):
                    assert e["seq"] == after + 1 and set(e) >= {"hash", "sig"}
                    after = e["seq"]
            seen.append(after)

        t = threading.Thread(target=reader)
        t.start()
        for i in range(400):
            log.submit(SESSION_ROUND, {"i": i})
        assert log.flush(30)
        stop.set()
        t.join(30)
        assert seen == [401]


# -- checkpoints with writers ----------------------------------------------------------------------


def test_checkpoints_with_background_writers(c3: Cluster3, tmp_path: Path) -> None:
    logs = {n: open_bg(c3, c3.node_dir(tmp_path, n), n, sync=True) for n in ("a", "b", "c")}
    try:
        a = logs["a"]
        for i in range(20):
            a.submit(SESSION_ROUND, {"i": i})
        body = a.checkpoint_body()  # flushes first: covers every submit before it
        assert body.seq == 21 and body.head == Entry.from_line(lines(tmp_path / "a")[20]).hash
        sigs = {p: logs[p].cosign(c3.cluster.hash, body) for p in ("b", "c")}
        a.submit(SESSION_ROUND, {"i": 20})  # an entry may land between body and checkpoint
        cp = a.add_checkpoint(c3.cluster, body, sigs)
        assert cp.data["seq"] == 21 and cp.seq >= 22
        assert a.checkpoint_due(cp.at + 1) is False
    finally:
        for log in logs.values():
            log.close()
    peers = [tmp_path / "b", tmp_path / "c"]
    report = verify(tmp_path / "a", c3.cluster, "a", min_cosigners=2, peer_logs=peers)
    assert report.ok and report.checkpoints == 1 and report.anchored_seq == 21
