"""``make bench``: DKG and signing for 2-of-3, 3-of-5, 7-of-10 and 67-of-100, every scheme,
all parties in one process; then signing through a local cluster of 5 node processes (3-of-5
wallets of schnorr-bip340, ed25519 and ecdsa-secp256k1): latency, throughput, loopback RTT,
rotation.

Writes a Markdown report (machine, date, command, figures) to the path given by ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import sys
import time
from pathlib import Path

from tmpc.cli.bench import (
    NODE_IN_FLIGHT,
    NODE_REQUESTS,
    NODE_RUNS,
    OVERHEAD_PER_ROUND,
    OVERHEAD_ROUNDS,
    BenchRecord,
    run_bench,
    run_node_bench,
    run_observe_overhead,
    run_policy_bench,
)
from tmpc.schemes import SCHEMES

SIZES = [(2, 3, 50), (3, 5, 50), (7, 10, 20), (67, 100, 1)]
TARGETS = [
    ("schnorr-bip340 signing", ("schnorr-bip340", "sign", 3, 5), 2.0),
    ("schnorr-bip340 DKG", ("schnorr-bip340", "dkg", 3, 5), 20.0),
    ("ed25519 signing (3x)", ("ed25519", "sign", 3, 5), 6.0),
    ("ed25519 DKG (3x)", ("ed25519", "dkg", 3, 5), 60.0),
    ("ecdsa-secp256k1 keygen (DKG + pairwise setup)", ("ecdsa-secp256k1", "keygen", 3, 5), 1000.0),
    ("ecdsa-secp256k1 full signing", ("ecdsa-secp256k1", "sign", 3, 5), 150.0),
    ("ecdsa-secp256k1 online step", ("ecdsa-secp256k1", "sign-online", 3, 5), 2.0),
    ("schnorr-bip340 refresh (issue 10)", ("schnorr-bip340", "refresh", 3, 5), 50.0),
    ("ed25519 refresh (issue 10)", ("ed25519", "refresh", 3, 5), 50.0),
    ("frost-secp256k1 refresh (issue 10)", ("frost-secp256k1", "refresh", 3, 5), 50.0),
    (
        "ecdsa-secp256k1 refresh with the pairwise setups (issue 10)",
        ("ecdsa-secp256k1", "refresh", 3, 5),
        1000.0,
    ),
]
# DKLs23 is measured up to 7-of-10 (the pairwise setup grows with n^2).
ECDSA_SIZES = [(2, 3, 10), (3, 5, 10), (7, 10, 3)]

NODE_SCHEMES = ["schnorr-bip340", "ed25519", "ecdsa-secp256k1"]
NODE_SIZE = (3, 5)
# (label, scheme, op, presignature, field, "<" or ">=", limit in ms or per second): the
# issue's targets for nodes; ``presignature`` tells the two ECDSA node-sign records apart.
NODE_TARGETS = [
    ("schnorr-bip340 median latency", "schnorr-bip340", "node-sign", None, "median_s", "<", 15.0),
    ("ed25519 median latency", "ed25519", "node-sign", None, "median_s", "<", 15.0),
    (
        "ecdsa-secp256k1 median latency, pooled presignature",
        "ecdsa-secp256k1", "node-sign", "pooled", "median_s", "<", 15.0,
    ),
    (
        "ecdsa-secp256k1 median latency, no pooled presignature",
        "ecdsa-secp256k1", "node-sign", "in-session", "median_s", "<", 80.0,
    ),
    (
        "schnorr-bip340 throughput",
        "schnorr-bip340", "node-throughput", None, "throughput_per_s", ">=", 100.0,
    ),
    (
        "ecdsa-secp256k1 throughput, presigning included",
        "ecdsa-secp256k1", "node-throughput", "in-session", "throughput_per_s", ">=", 20.0,
    ),
    (
        "ecdsa-secp256k1 rotation across the cluster, pairwise setups included (issue 10)",
        "ecdsa-secp256k1", "node-refresh", None, "median_s", "<", 2000.0,
    ),
]  # fmt: skip


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--quick", action="store_true", help="skip 67-of-100")
    ap.add_argument("--no-nodes", action="store_true", help="skip the node cluster")
    args = ap.parse_args()
    node_records: list[BenchRecord] = []
    others: dict[str, tuple[float, float] | None] = {}
    # Wall-clock figures first: they suffer most from other work starting on a shared machine.
    if not args.no_nodes:
        t, n = NODE_SIZE
        for scheme in NODE_SCHEMES:
            before = cpu_seconds(), time.monotonic()
            node_records += run_node_bench(
                scheme, t, n, progress=lambda line: print(line, file=sys.stderr, flush=True)
            )
            after = cpu_seconds(), time.monotonic()
            if before[0] is None or after[0] is None:
                others[scheme] = None
            else:
                others[scheme] = (after[0] - before[0], after[1] - before[1])
    records: list[BenchRecord] = []
    for scheme in SCHEMES:
        for t, n, runs in ECDSA_SIZES if scheme == "ecdsa-secp256k1" else SIZES:
            if args.quick and n > 10:
                continue
            for r in run_bench(scheme, t, n, runs):
                print(f"{r.scheme:16} {r.op:5} {t}-of-{n}: {r.median_s * 1e3:9.2f} ms", flush=True)
                records.append(r)
    lines = [
        "# Benchmarks",
        "",
        "CPU time (`time.process_time`) of one whole operation with **all parties in one process**"
        " (compute only: no network, no share-file encryption). `refresh` gives every party a"
        " new share of the same key (a sharing of zero from each party, transcript signed by"
        " every host key; for ECDSA with the pairwise setups redone). A deployment spreads the"
        " DKG and signing work over the parties' machines and adds network round trips.",
        "",
        f"- machine: {machine()}",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "- command: `make bench` (runs `python bench/run.py --out docs/benchmarks.md`); one size:"
        " `tmpc bench --scheme S --threshold T --parties N --runs K [--json]`",
        "",
        "On this shared 2-core VM figures vary by up to about 2x between runs (the same DKG"
        " code measures differently for two schemes in one run); compare within a run.",
        "",
        "Per party: the median divided by the parties doing the work (n for the DKG and a"
        " refresh, t for signing), a rough figure for one node's CPU. Each party runs its own"
        " protocol machine, as a node would: every signer computes the session values"
        " (binding factors, group commitment, challenge) and aggregates itself (an ECDSA"
        " signer combines and verifies the signature itself too), so large groups cost about"
        " t times one signer's work. Bytes sent count every payload once per recipient (a"
        " broadcast to t-1 peers counts t-1 times).",
        "",
        "| scheme | operation | t-of-n | runs | median ms | min ms | max ms | per party ms"
        " | bytes sent per party |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in records:
        workers = r.parties if r.op in ("dkg", "keygen", "refresh") else r.threshold
        sent = f"{r.bytes_per_party:,}" if r.bytes_per_party is not None else "–"
        lines.append(
            f"| {r.scheme} | {r.op} | {r.threshold}-of-{r.parties} | {r.runs} |"
            f" {r.median_s * 1e3:.2f} | {r.min_s * 1e3:.2f} | {r.max_s * 1e3:.2f} |"
            f" {r.median_s * 1e3 / workers:.2f} | {sent} |"
        )
    lines += ["", "## Targets (issues 2, 3 and 10), 3-of-5, all parties in one process", ""]
    lines += ["| target | measured median | met |", "| --- | ---: | --- |"]
    by = {(r.scheme, r.op, r.threshold, r.parties): r.median_s * 1e3 for r in records}
    for label, key, limit in TARGETS:
        got = by.get(key)
        if got is not None:
            lines.append(
                f"| {label} < {limit:g} ms | {got:.2f} ms | {'yes' if got < limit else 'NO'} |"
            )
    if node_records:
        lines += node_section(node_records, others)
        ab: list[BenchRecord] = []
        for scheme in OBSERVE_SCHEMES:
            t, n = NODE_SIZE
            ab += run_observe_overhead(
                scheme, t, n, progress=lambda line: print(line, file=sys.stderr, flush=True)
            )
        lines += observe_section(ab)
    lines += policy_section(run_policy_bench(2, 3, POLICY_RUNS))
    args.out.write_text("\n".join(lines) + "\n")
    print(f"written {args.out}")
    return 0


OBSERVE_SCHEMES = ["schnorr-bip340", "ecdsa-secp256k1"]
OBSERVE_LIMIT = 0.10


def observe_section(records: list[BenchRecord]) -> list[str]:
    """Audit log and metrics overhead (issue 12: under 10% of the node signing latency)."""
    lines = [
        "",
        "## What audit logging and metrics cost (issue 12)",
        "",
        "Two local 3-of-5 clusters side by side: one as nodes run by default (every node"
        " writes each request, session, round and signature to its signed, hash-chained audit"
        " log through a background writer that fsyncs in batches, has it cosigned every 1000"
        " entries, and updates its Prometheus metrics), one run with `--no-observe` (neither)."
        " The same measurements alternate between them: one-at-a-time requests alternate"
        " request by request; the loaded runs (100 requests, 32 in flight) alternate cluster by"
        f" cluster, in alternating order; {OVERHEAD_ROUNDS} rounds of"
        f" {OVERHEAD_PER_ROUND} requests per measurement. A machine that slows down or speeds"
        " up during the run weighs on both alike. Overhead: median with / median without - 1,"
        " with a 95% bootstrap interval; CPU: what the five node processes spent (user and"
        " system, every thread) per signature. Command: `tmpc bench --nodes --observe-overhead"
        " --scheme S --threshold 3 --parties 5`.",
        "",
        "| scheme | measurement | median ms with | median ms without | latency overhead"
        " (95% interval) | CPU ms per signature with / without | under 10% |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    pairs = zip(records[0::2], records[1::2], strict=True)
    for with_, without in pairs:
        what = with_.op if with_.in_flight is None else f"{with_.op} ({with_.in_flight} in flight)"
        if with_.presignature is not None:
            what += ", pooled presignature" if with_.presignature == "pooled" else ", no pool"
        over, low, high = with_.overhead, with_.overhead_low, with_.overhead_high
        assert over is not None and low is not None and high is not None
        cpu = "–"
        if with_.cpu_per_signature_s is not None and without.cpu_per_signature_s is not None:
            cpu = f"{with_.cpu_per_signature_s * 1e3:.1f} / {without.cpu_per_signature_s * 1e3:.1f}"
        ok = "yes" if over < OBSERVE_LIMIT else "NO"
        lines.append(
            f"| {with_.scheme} | {what} | {with_.median_s * 1e3:.2f} |"
            f" {without.median_s * 1e3:.2f} | {over * 100:+.1f}% ({low * 100:+.1f}% to"
            f" {high * 100:+.1f}%) | {cpu} | {ok} |"
        )
    return lines


POLICY_RUNS = 500
POLICY_LIMIT_MS = 1.0


def policy_section(records: list[BenchRecord]) -> list[str]:
    """The signing policy's work per request at one node (issue 11: under 1 ms)."""
    lines = [
        "",
        "## Signing policy per request at one node (issue 11)",
        "",
        "Wall-clock time a party node spends on the signing policy in a request's path"
        " (`tmpc.node.policy`, as `tmpc.node.engine` calls it): when it answers *ready*, parse"
        " the EIP-1559 transaction and compute the digest it signs, verify the approvals,"
        " evaluate the rules, reserve velocity in its SQLite ledger (one fsync'd transaction,"
        " the atomic velocity check); at the session's start, judge the request again (the"
        " parse and the approvals' verification are remembered). Marking the reservation signed"
        " happens after the signature, off the path. The ledger holds every earlier run's"
        f" entry ({POLICY_RUNS} per kind), in the window of the limit. `policy-judge`: a 3,000"
        " USD transfer (no approval); `policy-judge-approvals`: a 150,000 USD one with two"
        " Ed25519 approvals. Command: `tmpc bench --policy --scheme ecdsa-secp256k1 -t 2 -n 3"
        f" --runs {POLICY_RUNS} --json`.",
        "",
        "| request | runs | median ms | min ms | max ms | under 1 ms |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in records:
        ok = "yes" if r.median_s * 1e3 < POLICY_LIMIT_MS else "NO"
        lines.append(
            f"| {r.op} | {r.runs} | {r.median_s * 1e3:.3f} | {r.min_s * 1e3:.3f} |"
            f" {r.max_s * 1e3:.3f} | {ok} |"
        )
    return lines


def cpu_seconds() -> float | None:
    """CPU seconds the whole machine spent busy so far minus those of this process and its
    waited-for children (the nodes): the work of other processes. None off Linux."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal ...: busy = all but idle, iowait, steal.
    busy = sum(fields[:8]) - fields[3] - fields[4] - fields[7]
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    mine = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    return busy / os.sysconf("SC_CLK_TCK") - mine


def node_section(
    records: list[BenchRecord], others: dict[str, tuple[float, float] | None]
) -> list[str]:
    """The Markdown section of the node-cluster figures and their targets (``others``: per
    scheme, CPU seconds used by other processes during its run, and the run's seconds)."""
    t, n = NODE_SIZE
    lines = [
        "",
        f"## Signing through a local cluster of {n} nodes ({t}-of-{n})",
        "",
        f"{n} `tmpc node run` processes on 127.0.0.1 with mutual TLS 1.3 between each other and"
        " with the operator; the load generator (one aiohttp session, kept-alive connections)"
        " runs on the same machine, and every request goes to node `a`, which coordinates it"
        " (readiness round, then the protocol peer to peer among the chosen quorum). Wall-clock"
        " time from sending `POST /v1/sign` to its answer; each run starts a fresh cluster in a"
        " temporary directory and creates its wallet by DKG. Messages are 32 random bytes; every"
        " signature was checked by an independent verifier (libsecp256k1, libsodium)."
        " ECDSA is measured twice one request at a time: with a pooled presignature (the pool"
        " filled first through `POST /v1/presign`, then each request finishes one in a single"
        " round), and with presigning and signing in the request's session (no pool); its"
        " throughput run has no pool, so it includes the presigning.",
        "",
        f"- sequential latency: {NODE_RUNS} requests one at a time (after 2 warm-up requests);",
        f"- throughput: {NODE_REQUESTS} requests with {NODE_IN_FLIGHT} in flight, requests per"
        " second of wall-clock time; its latency columns are those of the loaded requests;",
        "- loopback RTT: `GET /v1/health` (authenticated, kept-alive TLS connection), 50 samples:"
        " the transport floor under every message between nodes;",
        "- node-refresh: 5 rotations one at a time (`POST /v1/rotate`): the refresh among all 5"
        " nodes, for ECDSA the pairwise setups, every new share sealed and stored (the local"
        " cluster's Argon2id cost, 19 MiB), the test signature by all 5 parties, and the commit"
        " at every node, until the answer.",
        "- command: `tmpc bench --nodes --scheme S --threshold 3 --parties 5 --json`"
        " (options `--runs`, `--requests`, `--in-flight`); `make bench` runs all three schemes.",
        "",
        f"All {n} nodes and the load generator share this machine's {os.cpu_count()} cores, so"
        " throughput here is bounded by the whole cluster's CPU on one machine, not by one node's."
        " CPU time other processes used while each scheme ran (out of the run's wall-clock time"
        f" times {os.cpu_count()} cores): "
        + "; ".join(
            f"{scheme} {max(o[0], 0.0):.1f} s of {o[1] * (os.cpu_count() or 1):.0f} s"
            if o is not None
            else f"{scheme} unknown"
            for scheme, o in others.items()
        )
        + ".",
        "",
        "| scheme | measurement | runs | median ms | p90 ms | min ms | max ms | signatures/s"
        " | loopback RTT ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in records:
        rate = f"{r.throughput_per_s:.1f}" if r.throughput_per_s is not None else "–"
        what = r.op if r.in_flight is None else f"{r.op} ({r.in_flight} in flight)"
        if r.presignature is not None:
            what += ", pooled presignature" if r.presignature == "pooled" else ", no pool"
        rtt = r.loopback_rtt_s if r.loopback_rtt_s is not None else r.median_s
        p90 = f"{r.p90_s * 1e3:.2f}" if r.p90_s is not None else "–"
        lines.append(
            f"| {r.scheme} | {what} | {r.runs} | {r.median_s * 1e3:.2f} | {p90} |"
            f" {r.min_s * 1e3:.2f} | {r.max_s * 1e3:.2f} | {rate} | {rtt * 1e3:.3f} |"
        )
    lines += ["", f"## Targets for nodes, {t}-of-{n}", ""]
    lines += ["| target | measured | met |", "| --- | ---: | --- |"]
    by = {(r.scheme, r.op, r.presignature): r for r in records}
    for label, scheme, op, presignature, field, cmp, limit in NODE_TARGETS:
        rec = by.get((scheme, op, presignature))
        value = getattr(rec, field, None) if rec is not None else None
        if value is None:
            continue
        if field == "median_s":
            got, unit = value * 1e3, "ms"
        else:
            got, unit = value, "/s"
        met = got < limit if cmp == "<" else got >= limit
        lines.append(
            f"| {label} {cmp} {limit:g} {unit} | {got:.1f} {unit} | {'yes' if met else 'NO'} |"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
