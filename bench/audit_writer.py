"""The audit log's cost to a node: ``python bench/audit_writer.py [--n N] [--sessions S]``.

Measures, on a fresh log in a temporary directory with ``fsync`` on (``--no-sync`` to skip):

1. ``append`` (synchronous: one entry, its ``fsync``, the head replaced) per call;
2. ``submit`` on the caller's thread with the writer thread running (median, p99, max), and
   the writer's throughput: N submits, then ``flush``; entries per second and batches;
3. a node-like loop: back-to-back "sessions" of 10 ms (all Python work, or half of it and
   half waiting as for the other parties' messages) with 8 events each, without audit, with
   ``submit`` and with ``append``: the added latency per session, and over the whole run
   including the final flush (the writer thread signs every entry holding the GIL, so a node
   whose thread never waits pays for it in time; one that waits hides it).

Not a test: numbers depend on the machine and its disk. Prints a small Markdown report.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tmpc.audit import SESSION_COMPLETED, SESSION_ROUND, SESSION_STARTED, AuditLog
from tmpc.audit.log import os as log_os
from tmpc.wire.identity import NodeIdentity

EVENTS = (
    ("request.proposed", {"request": "r-0123456789abcdef", "wallet": "w1", "chain": "bitcoin"}),
    ("request.approved", {"request": "r-0123456789abcdef", "rule": "allow-small"}),
    (
        SESSION_STARTED,
        {"session": "s-00112233", "request": "r-0123456789abcdef", "parties": [1, 2, 3]},
    ),
    (SESSION_ROUND, {"session": "s-00112233", "round": 1, "from": [2, 3]}),
    (SESSION_ROUND, {"session": "s-00112233", "round": 2, "from": [2, 3]}),
    ("session.output", {"session": "s-00112233", "digest": "ab" * 32}),
    (SESSION_COMPLETED, {"session": "s-00112233", "ms": 9.7, "signature_sha256": "cd" * 32}),
    ("request.completed", {"request": "r-0123456789abcdef", "ok": True}),
)


def _open(
    tmp: Path, name: str, identity: NodeIdentity, *, sync: bool, background: bool
) -> AuditLog:
    d = tmp / name
    d.mkdir()
    return AuditLog.open(d, node="a", identity=identity, sync=sync, background=background)


class _FsyncCounter:
    """Counts ``os.fsync`` calls (the log's and the head's) while installed."""

    def __init__(self) -> None:
        self.calls = 0
        self._real = log_os.fsync

    def __call__(self, fd: int) -> None:
        self.calls += 1
        self._real(fd)

    def __enter__(self) -> _FsyncCounter:
        log_os.fsync = self  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        log_os.fsync = self._real


def bench_append(tmp: Path, identity: NodeIdentity, n: int, sync: bool) -> float:
    """Seconds per synchronous ``append``."""
    with _open(tmp, "append", identity, sync=sync, background=False) as log:
        t0 = time.perf_counter()
        for i in range(n):
            t, data = EVENTS[i % len(EVENTS)]
            log.append(t, data)
        return (time.perf_counter() - t0) / n


def bench_submit(
    tmp: Path, identity: NodeIdentity, n: int, sync: bool
) -> tuple[list[float], float, int, int]:
    """Per-call ``submit`` times (s), the writer's throughput (entries/s), fsyncs, drops."""
    with _open(tmp, "submit", identity, sync=sync, background=True) as log:
        times = []
        with _FsyncCounter() as fsyncs:
            t0 = time.perf_counter()
            for i in range(n):
                t, data = EVENTS[i % len(EVENTS)]
                a = time.perf_counter()
                log.submit(t, data)
                times.append(time.perf_counter() - a)
            log.flush()
            elapsed = time.perf_counter() - t0
        return times, n / elapsed, fsyncs.calls, log.dropped


def _busy(seconds: float) -> None:
    """Pure-Python work (holds the GIL), like a node's protocol step."""
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        for i in range(200):
            x ^= i * i
    del x


def bench_sessions(
    tmp: Path, identity: NodeIdentity, sessions: int, sync: bool, cpu: float
) -> dict[str, tuple[list[float], float]]:
    """Back-to-back sessions: 10 ms in 8 steps, an event after each; ``cpu`` of each step is
    Python work, the rest a wait (for the other parties' messages). Per variant: each
    session's seconds, and the total including the final flush (the writer's backlog)."""
    step = 0.010 / len(EVENTS)
    out: dict[str, tuple[list[float], float]] = {}

    def run(name: str, log_event: Callable[[str, dict[str, object]], object]) -> list[float]:
        times = []
        for _ in range(sessions):
            t0 = time.perf_counter()
            for t, data in EVENTS:
                _busy(step * cpu)
                if cpu < 1:
                    time.sleep(step * (1 - cpu))
                log_event(t, data)
            times.append(time.perf_counter() - t0)
        return times

    t0 = time.perf_counter()
    out["no audit"] = (run("no audit", lambda t, d: None), time.perf_counter() - t0)
    with _open(tmp, "sessions-submit", identity, sync=sync, background=True) as log:
        t0 = time.perf_counter()
        times = run("submit (writer thread)", log.submit)
        log.flush()
        out["submit (writer thread)"] = (times, time.perf_counter() - t0)
        assert log.dropped == 0
    with _open(tmp, "sessions-append", identity, sync=sync, background=False) as log:
        t0 = time.perf_counter()
        out["append (synchronous)"] = (run("append", log.append), time.perf_counter() - t0)
    return out


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print the report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="entries for the submit benchmark")
    ap.add_argument("--appends", type=int, default=300, help="synchronous appends to time")
    ap.add_argument("--sessions", type=int, default=200, help="node-like sessions per variant")
    ap.add_argument("--no-sync", action="store_true", help="no fsync (tmpfs-like numbers)")
    ap.add_argument("--dir", type=Path, default=None, help="where to put the logs (a disk)")
    args = ap.parse_args(argv)
    sync = not args.no_sync
    identity = NodeIdentity.generate()
    with tempfile.TemporaryDirectory(prefix="tmpc-audit-bench-", dir=args.dir) as d:
        tmp = Path(d)
        per_append = bench_append(tmp, identity, args.appends, sync)
        times, rate, fsyncs, drops = bench_submit(tmp, identity, args.n, sync)
        loops = {
            cpu: bench_sessions(tmp / f"cpu{cpu}", identity, args.sessions, sync, cpu)
            for cpu in (1.0, 0.5)
            if (tmp / f"cpu{cpu}").mkdir() is None
        }
    times.sort()
    print(
        f"# audit log cost ({'fsync on' if sync else 'no fsync'}; {os.cpu_count()} CPUs; "
        f"Python {sys.version.split()[0]})\n"
    )
    print(f"- append (synchronous): {_us(per_append)} per entry")
    median, p99 = times[len(times) // 2], times[int(len(times) * 0.99)]
    print(
        f"- submit on the caller's thread ({args.n} entries): median {_us(median)}, "
        f"p99 {_us(p99)}, max {_us(times[-1])}"
    )
    print(
        f"- writer throughput: {rate:,.0f} entries/s ({fsyncs} fsyncs for {args.n} entries, "
        f"{drops} dropped)"
    )
    for cpu, sessions in loops.items():
        base = statistics.median(sessions["no audit"][0])
        base_total = sessions["no audit"][1]
        print(
            f"\n| {args.sessions} sessions of 10 ms ({cpu:.0%} Python work), {len(EVENTS)} "
            "events each | median | p99 | added (median) | added (total, with the final flush) |"
        )
        print("|---|---|---|---|---|")
        for name, (ts, total) in sessions.items():
            ts.sort()
            med = statistics.median(ts)
            p99 = ts[int(len(ts) * 0.99)]
            print(
                f"| {name} | {med * 1e3:.2f} ms | {p99 * 1e3:.2f} ms | "
                f"{(med - base) / base:+.1%} | {(total - base_total) / base_total:+.1%} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
