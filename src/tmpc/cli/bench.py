"""Benchmarks: compute only (all parties in one process) and a local cluster of node processes.

:func:`run_bench` measures CPU time (``time.process_time``) per whole operation, summed over
every party, so that operators can size hardware: a real deployment spreads the same work over
n machines and adds network round trips.

:func:`run_node_bench` starts ``n`` node processes on loopback (mutual TLS, a fresh temporary
directory), creates a wallet by DKG and measures what an operator sees: wall-clock time from
request to verified signature, one request at a time and with many in flight, next to the
loopback round-trip time of a trivial authenticated request. Every signature is checked by
:func:`tmpc.cli.demo.independent_verify`; one that does not verify fails the run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import signal
import ssl
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tmpc import schemes
from tmpc.errors import CryptoError, ParameterError
from tmpc.group import SECP256K1
from tmpc.local import run_machines
from tmpc.primitives.ecdsa_format import compact
from tmpc.protocols.ecdsa import dkls23
from tmpc.protocols.ecdsa.machine import OnlineSignMachine
from tmpc.sharing import shamir_split

__all__ = [
    "NODE_IN_FLIGHT",
    "NODE_REQUESTS",
    "NODE_RUNS",
    "OVERHEAD_PER_ROUND",
    "OVERHEAD_REQUESTS",
    "OVERHEAD_ROUNDS",
    "BenchRecord",
    "check_node_signature",
    "run_bench",
    "run_node_bench",
    "run_observe_overhead",
    "run_policy_bench",
]


@dataclass(frozen=True)
class BenchRecord:
    """One measured operation."""

    scheme: str
    op: str
    threshold: int
    parties: int
    runs: int
    median_s: float
    min_s: float
    max_s: float
    bytes_per_party: int | None = None
    #: Node benchmarks: 90th percentile of the samples (seconds).
    p90_s: float | None = None
    #: ``node-throughput``: verified signatures per second of wall-clock time.
    throughput_per_s: float | None = None
    #: ``node-throughput``: requests kept in flight.
    in_flight: int | None = None
    #: Node benchmarks: median loopback round trip of the same run (the ``loopback-rtt`` op).
    loopback_rtt_s: float | None = None
    #: ECDSA ``node-sign``: ``pooled`` (each request finished a presignature made before, in
    #: one round) or ``in-session`` (presigning and signing in the request's session).
    presignature: str | None = None
    #: :func:`run_observe_overhead`: whether the nodes kept their audit log and metrics.
    observe: bool | None = None
    #: :func:`run_observe_overhead` (on the observed record): median with audit and metrics /
    #: median without - 1, and its 95% bootstrap interval.
    overhead: float | None = None
    overhead_low: float | None = None
    overhead_high: float | None = None
    #: :func:`run_observe_overhead`: CPU seconds (user and system) the cluster's node processes
    #: spent per signature during the measurement.
    cpu_per_signature_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        """As a JSON object (the optional fields only where measured)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def _record(scheme: str, op: str, t: int, n: int, samples: list[float]) -> BenchRecord:
    return BenchRecord(
        scheme, op, t, n, len(samples), statistics.median(samples), min(samples), max(samples)
    )


def _ecdsa_bytes_per_party(threshold: int, parties: int) -> dict[str, float]:
    """Bytes each party sends, on average, in the pairwise setup, presigning and online step
    (broadcasts count once per recipient, as sent), counted by :func:`tmpc.local.run_machines`
    over the machines that nodes run."""
    ids = list(range(1, parties + 1))
    setup: dict[int, int] = {}
    pairwise = dkls23.pairwise_setup_local(ids, secrets.token_bytes(32), traffic=setup)
    signers = ids[:threshold]
    key = SECP256K1.random_scalar()
    shares = shamir_split(SECP256K1, key, threshold, ids)
    pk = SECP256K1.base_mul(key)
    presign: dict[int, int] = {}
    presigs = dkls23.presign_local(
        shares, pk, pairwise, signers, threshold=threshold, traffic=presign
    )
    digest = secrets.token_bytes(32)
    online: dict[int, int] = {}
    run_machines({i: OnlineSignMachine(p, digest) for i, p in presigs.items()}, traffic=online)
    return {
        "keygen": sum(setup.values()) / parties,
        "presign": sum(presign.values()) / threshold,
        "sign-online": sum(online.values()) / threshold,
    }


def _refresh_times(
    record: schemes.WalletRecord, shares: list[schemes.KeyShare], runs: int
) -> list[float]:
    """CPU time of ``runs`` refreshes of every party's share, as ``tmpc rotate`` makes them
    (:func:`tmpc.schemes.refresh_shares`: each party signs the transcript with its host key;
    for DKLs23 wallets the pairwise setups are redone too)."""
    times = []
    for _ in range(runs):
        t0 = time.process_time()
        record, shares = schemes.refresh_shares(record, shares)
        times.append(time.process_time() - t0)
    return times


def _run_ecdsa(scheme_id: str, threshold: int, parties: int, runs: int) -> list[BenchRecord]:
    keygen_t: list[float] = []
    presign_t: list[float] = []
    online_t: list[float] = []
    full_t: list[float] = []
    for _ in range(runs):
        t0 = time.process_time()
        record, shares = schemes.keygen(scheme_id, threshold, parties)
        keygen_t.append(time.process_time() - t0)
    pairwise = schemes.ecdsa_pairwise(shares)
    secret = {s.identifier: s.secshare for s in shares}
    pk = record.group_public_key
    for _ in range(runs):
        signers = sorted(secrets.SystemRandom().sample(sorted(secret), threshold))
        digest = secrets.token_bytes(32)
        t0 = time.process_time()
        presigs = dkls23.presign_local(secret, pk, pairwise, signers, threshold=threshold)
        t1 = time.process_time()
        r, s, _ = dkls23.sign_with_presignatures(presigs, pk, digest)
        t2 = time.process_time()
        presign_t.append(t1 - t0)
        online_t.append(t2 - t1)
        full_t.append(t2 - t0)
        if not schemes.verify(scheme_id, record.public_key, digest, compact(r, s)):
            raise ParameterError("benchmark produced an invalid signature")
    refresh_t = _refresh_times(record, shares, runs)
    traffic = _ecdsa_bytes_per_party(threshold, parties)
    out = []
    for op, samples in (
        ("keygen", keygen_t),
        ("presign", presign_t),
        ("sign-online", online_t),
        ("sign", full_t),
    ):
        rec = _record(scheme_id, op, threshold, parties, samples)
        b = traffic.get(op, traffic["presign"] + traffic["sign-online"])
        out.append(dataclasses.replace(rec, bytes_per_party=round(b)))
    out.append(_record(scheme_id, "refresh", threshold, parties, refresh_t))
    return out


def run_bench(scheme_id: str, threshold: int, parties: int, runs: int) -> list[BenchRecord]:
    """Measure ``runs`` key generations and ``runs`` signatures (a random t-subset each time).

    For ``ecdsa-secp256k1`` the operations are ``keygen`` (DKG + pairwise OT setup),
    ``presign``, ``sign-online`` (finishing a presignature) and ``sign`` (both), each with the
    bytes a party sends. Every scheme adds ``refresh``: new shares of the same key for every
    party (:mod:`tmpc.protocols.lifecycle.refresh`, transcripts signed by the host keys), and
    for ECDSA the pairwise setups redone. Raises :class:`~tmpc.errors.ParameterError` for bad
    parameters.
    """
    if not 1 <= runs <= 10_000:
        raise ParameterError("runs must be between 1 and 10000")
    if schemes.get_scheme(scheme_id).dkls23:
        if not 2 <= threshold <= parties:
            raise ParameterError(f"{scheme_id} needs 2 <= threshold <= parties")
        return _run_ecdsa(scheme_id, threshold, parties, runs)
    dkg_times: list[float] = []
    sign_times: list[float] = []
    for _ in range(runs):
        t0 = time.process_time()
        record, shares = schemes.keygen(scheme_id, threshold, parties)
        dkg_times.append(time.process_time() - t0)
    for _ in range(runs):
        signers = sorted(shares, key=lambda _s: secrets.randbits(32))[:threshold]
        msg = secrets.token_bytes(32)
        t0 = time.process_time()
        sig = schemes.sign(record, signers, msg)
        sign_times.append(time.process_time() - t0)
        if not schemes.verify(scheme_id, record.public_key, msg, sig):
            raise ParameterError("benchmark produced an invalid signature")
    return [
        _record(scheme_id, "dkg", threshold, parties, dkg_times),
        _record(scheme_id, "sign", threshold, parties, sign_times),
        _record(scheme_id, "refresh", threshold, parties, _refresh_times(record, shares, runs)),
    ]


# --------------------------------------------------------------------------------------------
# A local cluster of node processes
# --------------------------------------------------------------------------------------------

#: Defaults of :func:`run_node_bench` (``tmpc bench --nodes``).
NODE_RUNS = 30
NODE_REQUESTS = 200
NODE_IN_FLIGHT = 32

_RTT_SAMPLES = 50
_WARMUP_SIGNATURES = 2
#: Rotations timed by the node benchmark (``node-refresh``).
_NODE_REFRESHES = 5
_STOP_GRACE_S = 10.0

Progress = Callable[[str], None]


def _quiet(_line: str) -> None:
    pass


def _p90(samples: list[float]) -> float:
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=10, method="inclusive")[8]


def _node_record(
    scheme: str, op: str, t: int, n: int, samples: list[float], **extra: Any
) -> BenchRecord:
    return dataclasses.replace(_record(scheme, op, t, n, samples), p90_s=_p90(samples), **extra)


def check_node_signature(
    scheme_id: str, public_key: bytes, message: bytes, answer: dict[str, Any]
) -> None:
    """Check a node's answer to ``POST /v1/sign`` for ``message`` under ``public_key``.

    The signature is verified by :func:`tmpc.cli.demo.independent_verify` (not tmpc's verifier),
    and the answer must name the same message and key. ``message`` is 32 bytes. Raises
    :class:`~tmpc.errors.CryptoError` (no detail) if anything does not hold."""
    from tmpc.cli.demo import independent_verify

    try:
        signature = bytes.fromhex(str(answer["signature"]))
        ok = (
            answer.get("message") == message.hex()
            and answer.get("public_key") == public_key.hex()
            and independent_verify(scheme_id, public_key, message, signature)
        )
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise CryptoError("a node returned a signature that does not verify")


class _Api:
    """Operator calls over one long-lived HTTP session (kept-alive TLS connections)."""

    def __init__(self, session: Any, url: str) -> None:
        self.session = session
        self.url = url.rstrip("/")

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        import aiohttp

        from tmpc.node.client import ApiError, NodeUnreachableError

        try:
            async with self.session.request(method, self.url + path, json=body) as resp:
                try:
                    data = await resp.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    data = {"error": (await resp.text())[:200]}
        except (aiohttp.ClientConnectionError, ssl.SSLError, TimeoutError) as exc:
            raise NodeUnreachableError(f"cannot reach the node at {self.url}: {exc}") from None
        if resp.status >= 400 or not isinstance(data, dict):
            msg = data.get("error", f"HTTP {resp.status}") if isinstance(data, dict) else ""
            raise ApiError(resp.status, f"{msg or 'no JSON object'} (node {self.url})")
        return data


async def _timed(coro: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = await coro
    return time.perf_counter() - t0, result


async def _drive_nodes(
    credential: Any,
    url: str,
    scheme_id: str,
    threshold: int,
    names: list[str],
    runs: int,
    requests: int,
    in_flight: int,
    say: Progress,
) -> list[BenchRecord]:
    import aiohttp

    n = len(names)
    connector = aiohttp.TCPConnector(ssl=credential.ssl_context(), limit=in_flight)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        api = _Api(session, url)

        say(f"creating a {threshold}-of-{n} {scheme_id} wallet by DKG")
        body = {"scheme": scheme_id, "threshold": threshold, "parties": names}
        keygen_s, res = await _timed(api.call("POST", "/v1/wallets", body))
        # The record's DKG certificate is checked here: the key below is the wallet's own,
        # not whatever a node says it is.
        record = schemes.WalletRecord.from_json(res.get("wallet"))
        wallet_id, public_key = record.wallet_id, record.public_key
        say(f"  wallet {wallet_id} in {keygen_s:.2f} s")

        for _ in range(5):
            await api.call("GET", "/v1/health")
        rtt = [(await _timed(api.call("GET", "/v1/health")))[0] for _ in range(_RTT_SAMPLES)]
        rtt_median = statistics.median(rtt)
        say(f"loopback round trip (GET /v1/health): median {rtt_median * 1e3:.2f} ms")

        signed: list[tuple[bytes, dict[str, Any]]] = []

        async def sign_one() -> float:
            msg = secrets.token_bytes(32)
            body = {"wallet": wallet_id, "message": msg.hex()}
            elapsed, answer = await _timed(api.call("POST", "/v1/sign", body))
            signed.append((msg, answer))
            return float(elapsed)

        for _ in range(_WARMUP_SIGNATURES):
            await sign_one()
        say(f"node-sign: {runs} requests, one at a time")
        latency = [await sign_one() for _ in range(runs)]
        say(f"  median {statistics.median(latency) * 1e3:.1f} ms")
        pooled: list[float] = []
        if schemes.get_scheme(scheme_id).dkls23:
            pooled = await _pooled_latency(api, wallet_id, runs, sign_one, signed, say)

        # Open the connections first, so that the timed run does not count TLS handshakes.
        await asyncio.gather(*(api.call("GET", "/v1/health") for _ in range(in_flight)))
        say(f"node-throughput: {requests} requests, {in_flight} in flight")
        todo = iter(range(requests))
        loaded: list[float] = []

        async def worker() -> None:
            for _ in todo:  # one iterator shared by every worker: each request runs once
                loaded.append(await sign_one())

        t0 = time.perf_counter()
        tasks = [asyncio.create_task(worker()) for _ in range(min(in_flight, requests))]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        wall = time.perf_counter() - t0
        say(f"  {requests / wall:.1f} signatures/s")

        say(f"node-refresh: {_NODE_REFRESHES} rotations of every party's share, one at a time")
        rotations: list[float] = []
        for k in range(_NODE_REFRESHES):
            elapsed, answer = await _timed(api.call("POST", "/v1/rotate", {"wallet": wallet_id}))
            if answer.get("epoch") != k + 1 or answer.get("pending"):
                raise ParameterError(f"rotation {k + 1} did not complete at every node: {answer}")
            rotations.append(elapsed)
        say(f"  median {statistics.median(rotations) * 1e3:.0f} ms")
        await sign_one()  # the next signature, with the newest shares (verified below)

    say(f"verifying {len(signed)} signatures independently")
    for msg, answer in signed:
        check_node_signature(scheme_id, public_key, msg, answer)
    common: dict[str, Any] = {"loopback_rtt_s": rtt_median}
    ecdsa = {"presignature": "in-session"} if pooled else {}
    return [
        _node_record(scheme_id, "loopback-rtt", threshold, n, rtt),
        _node_record(scheme_id, "node-keygen", threshold, n, [keygen_s], **common),
        _node_record(scheme_id, "node-sign", threshold, n, latency, **common, **ecdsa),
        *(
            [
                _node_record(
                    scheme_id, "node-sign", threshold, n, pooled, **common, presignature="pooled"
                )
            ]
            if pooled
            else []
        ),
        _node_record(scheme_id, "node-refresh", threshold, n, rotations, **common),
        _node_record(
            scheme_id,
            "node-throughput",
            threshold,
            n,
            loaded,
            throughput_per_s=requests / wall,
            in_flight=in_flight,
            **common,
            **ecdsa,
        ),
    ]


async def _pooled_latency(
    api: _Api,
    wallet_id: str,
    runs: int,
    sign_one: Any,
    signed: list[tuple[bytes, dict[str, Any]]],
    say: Progress,
) -> list[float]:
    """ECDSA: fill the pool (``POST /v1/presign``, batches of 32), then time ``runs``
    signatures one at a time, each of which must have finished a pooled presignature."""
    from tmpc.protocols.ecdsa.machine import MAX_BATCH

    need = runs + _WARMUP_SIGNATURES
    say(f"presigning {need} presignatures for the pool")
    made = 0
    t0 = time.perf_counter()
    while made < need:
        res = await api.call(
            "POST", "/v1/presign", {"wallet": wallet_id, "count": min(MAX_BATCH, need - made)}
        )
        made += len(res["presignatures"])
        say(f"  {made}/{need}")
    say(f"  {made / (time.perf_counter() - t0):.1f} presignatures/s")
    for _ in range(_WARMUP_SIGNATURES):
        await sign_one()
    say(f"node-sign (pooled presignature): {runs} requests, one at a time")
    first = len(signed)
    latency = [await sign_one() for _ in range(runs)]
    if not all(answer.get("presignature_used") for _, answer in signed[first:]):
        raise ParameterError("a pooled-presignature request did not finish a presignature")
    say(f"  median {statistics.median(latency) * 1e3:.1f} ms")
    return latency


def _stop_nodes(procs: list[Any]) -> None:
    """SIGTERM every node, then SIGKILL what is still running after a grace period."""
    try:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_S
        for p in procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()


def run_node_bench(
    scheme_id: str,
    threshold: int,
    parties: int,
    *,
    runs: int = NODE_RUNS,
    requests: int = NODE_REQUESTS,
    in_flight: int = NODE_IN_FLIGHT,
    progress: Progress | None = None,
    observe: bool = True,
) -> list[BenchRecord]:
    """Measure signing through a local cluster of ``parties`` node processes.

    ``observe=False`` runs the nodes without audit log and metrics (``--no-observe``), to
    measure what those cost.

    Starts the nodes (``tmpc node run``, mutual TLS on 127.0.0.1) in a new temporary
    directory, creates a ``threshold``-of-``parties`` wallet by DKG through the first node,
    and sends every request to that node (it coordinates; a quorum is chosen per request).
    Messages are 32 random bytes. Returns, in this order, records with ``op``:

    - ``loopback-rtt``: ``GET /v1/health`` over a kept-alive connection (50 samples);
    - ``node-keygen``: the DKG (one sample);
    - ``node-sign``: request to verified signature, ``runs`` requests one at a time;
    - ``node-refresh``: a rotation (``POST /v1/rotate``: refresh, for ECDSA the pairwise
      setups, the test signature by every party, the commit at every node), 5 one at a time;
    - ``node-throughput``: ``requests`` requests with ``in_flight`` outstanding at any time;
      ``throughput_per_s`` is requests over the wall-clock time of the run, the other figures
      are the latencies of its requests.

    Node records carry ``p90_s`` and ``loopback_rtt_s``. ``progress`` receives one line per
    step. The nodes are always stopped (SIGTERM, then SIGKILL after 10 s) and the directory
    removed.

    Raises :class:`~tmpc.errors.ParameterError` for bad parameters,
    :class:`~tmpc.errors.CryptoError` if any signature does not verify, and
    :class:`~tmpc.node.client.ApiError` if a node refuses or fails a request.
    """
    _check_node_bench(scheme_id, threshold, parties, runs, requests, in_flight)
    say = progress or _quiet
    with tempfile.TemporaryDirectory(prefix="tmpc-bench-") as tmp:
        procs: list[Any] = []
        try:
            url, credential, names = _start_cluster(Path(tmp), parties, observe, procs, say)
            return asyncio.run(
                _drive_nodes(
                    credential, url, scheme_id, threshold, names, runs, requests, in_flight, say
                )
            )
        finally:
            say("stopping the nodes")
            _stop_nodes(procs)


def _check_node_bench(
    scheme_id: str, threshold: int, parties: int, runs: int, requests: int, in_flight: int
) -> None:
    """ParameterError unless the node benchmarks' parameters are in their ranges."""
    schemes.get_scheme(scheme_id)
    if not 1 <= runs <= 10_000:
        raise ParameterError("runs must be between 1 and 10000")
    if not 1 <= requests <= 100_000:
        raise ParameterError("requests must be between 1 and 100000")
    if not 1 <= in_flight <= 1000:
        raise ParameterError("in_flight must be between 1 and 1000")
    if not 1 <= threshold <= parties:
        raise ParameterError("threshold must be between 1 and parties")


def _start_cluster(
    directory: Path, parties: int, observe: bool, procs: list[Any], say: Progress
) -> tuple[str, Any, list[str]]:
    """Create and start a local cluster of ``parties`` nodes in ``directory``; the processes
    are appended to ``procs`` as they start (the caller stops them). Returns the first node's
    URL, the operator credential and the node names."""
    from tmpc.cli.node import create_local_cluster, start_node_process, wait_ready
    from tmpc.node import config as node_config
    from tmpc.node.client import Credential

    say(f"creating {parties} nodes in {directory}")
    names, pw_file, auth_file = create_local_cluster(directory, parties)
    for name in names:
        extra = [] if observe else ["--no-observe"]
        procs.append(start_node_process(directory / name, pw_file, extra))
    for name, proc in zip(names, procs[-parties:], strict=True):
        wait_ready(proc, name)
        say(f"node {name} ready (pid {proc.pid})")
    url = node_config.load_config(directory / names[0]).url
    return url, Credential.load(str(auth_file)), names


#: Defaults of :func:`run_observe_overhead` (``tmpc bench --nodes --observe-overhead``).
OVERHEAD_ROUNDS = 10
OVERHEAD_PER_ROUND = 20
OVERHEAD_REQUESTS = 100
_BOOTSTRAP = 2000


def run_observe_overhead(
    scheme_id: str,
    threshold: int,
    parties: int,
    *,
    rounds: int = OVERHEAD_ROUNDS,
    per_round: int = OVERHEAD_PER_ROUND,
    requests: int = OVERHEAD_REQUESTS,
    in_flight: int = NODE_IN_FLIGHT,
    progress: Progress | None = None,
) -> list[BenchRecord]:
    """What the audit log and the metrics add to node signing, measured A/B interleaved.

    Starts two local clusters of ``parties`` nodes side by side: one as nodes run by default
    (audit log and metrics) and one with ``--no-observe``. Each creates a
    ``threshold``-of-``parties`` wallet. Then, ``rounds`` times:

    - ``node-sign``: ``per_round`` requests one at a time on each cluster, alternating
      request by request (ECDSA: presigning in the session);
    - ECDSA, ``node-sign`` with ``presignature="pooled"``: ``per_round`` presignatures made on
      each cluster (``POST /v1/presign``, not timed), then ``per_round`` requests one at a time,
      alternating, each of which must finish one of them;
    - ``node-throughput``: ``requests`` requests with ``in_flight`` outstanding, on one
      cluster and then on the other (the order alternates from round to round).

    A machine that slows down or speeds up during the run so weighs on both clusters alike
    (the cluster not being measured only waits). Returns two records per measurement,
    ``observe=True`` then ``observe=False``, with all their samples; the first carries
    ``overhead`` (median with / median without - 1) and its 95% bootstrap interval
    (``overhead_low``, ``overhead_high``). Where ``/proc`` exists, both carry
    ``cpu_per_signature_s``: the CPU time (user and system, every thread) the cluster's nodes
    spent per signature in that measurement. Every signature is verified independently
    (:func:`check_node_signature`). The nodes are always stopped and the directory removed.

    Raises :class:`~tmpc.errors.ParameterError` for bad parameters,
    :class:`~tmpc.errors.CryptoError` if a signature does not verify and
    :class:`~tmpc.node.client.ApiError` if a node refuses or fails a request.
    """
    if not 1 <= rounds <= 1000:
        raise ParameterError("rounds must be between 1 and 1000")
    _check_node_bench(scheme_id, threshold, parties, per_round, requests, in_flight)
    say = progress or _quiet
    with tempfile.TemporaryDirectory(prefix="tmpc-bench-") as tmp:
        procs: list[Any] = []
        try:
            clusters = []
            for observe, label in ((True, "observed"), (False, "quiet")):
                url, credential, names = _start_cluster(
                    Path(tmp) / label,
                    parties,
                    observe,
                    procs,
                    say,
                )
                pids = [proc.pid for proc in procs[-parties:]]
                clusters.append((observe, url, credential, names, pids))
            return asyncio.run(
                _drive_ab(
                    clusters, scheme_id, threshold, rounds, per_round, requests, in_flight, say
                )
            )
        finally:
            say("stopping the nodes")
            _stop_nodes(procs)


def _cpu_seconds_of(pids: list[int]) -> float | None:
    """User and system CPU seconds the processes ``pids`` (all their threads) used so far, from
    ``/proc/PID/stat``; None where there is no ``/proc``."""
    import os

    total = 0
    try:
        for pid in pids:
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    except (OSError, ValueError, IndexError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


class _Arm:
    """One cluster of an A/B run: its API, wallet, samples and CPU time per measurement."""

    def __init__(self, observe: bool, api: _Api, pids: list[int]) -> None:
        self.observe = observe
        self.api = api
        self.pids = pids
        self.wallet_id = ""
        self.public_key = b""
        self.samples: dict[str, list[float]] = {}
        self.cpu: dict[str, float | None] = {}
        self.walls: list[float] = []
        self.signed: list[tuple[bytes, dict[str, Any]]] = []
        self._cpu_mark: float | None = None

    async def sign_one(self) -> float:
        msg = secrets.token_bytes(32)
        body = {"wallet": self.wallet_id, "message": msg.hex()}
        elapsed, answer = await _timed(self.api.call("POST", "/v1/sign", body))
        self.signed.append((msg, answer))
        return float(elapsed)

    def mark(self) -> None:
        """Start counting CPU time for a measurement."""
        self._cpu_mark = _cpu_seconds_of(self.pids)

    def charge(self, what: str) -> None:
        """Add the CPU time since :meth:`mark` to ``what``."""
        now = _cpu_seconds_of(self.pids)
        spent = None if now is None or self._cpu_mark is None else now - self._cpu_mark
        before = self.cpu.get(what, 0.0)
        self.cpu[what] = None if spent is None or before is None else before + spent

    async def loaded(self, requests: int, in_flight: int) -> None:
        todo = iter(range(requests))
        latencies: list[float] = []

        async def worker() -> None:
            for _ in todo:  # shared: each request runs once
                latencies.append(await self.sign_one())

        self.mark()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(in_flight, requests))))
        self.walls.append(time.perf_counter() - t0)
        self.charge("loaded")
        self.samples.setdefault("loaded", []).extend(latencies)


async def _interleaved(arms: list[_Arm], what: str, count: int) -> None:
    """``count`` requests one at a time on each arm, alternating request by request."""
    for arm in arms:
        arm.mark()
    for _ in range(count):
        for arm in arms:
            arm.samples.setdefault(what, []).append(await arm.sign_one())
    for arm in arms:
        arm.charge(what)


async def _drive_ab(
    clusters: list[tuple[bool, str, Any, list[str], list[int]]],
    scheme_id: str,
    threshold: int,
    rounds: int,
    per_round: int,
    requests: int,
    in_flight: int,
    say: Progress,
) -> list[BenchRecord]:
    import aiohttp

    from tmpc.protocols.ecdsa.machine import MAX_BATCH

    ecdsa = schemes.get_scheme(scheme_id).dkls23
    n = len(clusters[0][3])
    arms: list[_Arm] = []
    async with AsyncExitStack() as stack:
        for observe, url, credential, names, pids in clusters:
            connector = aiohttp.TCPConnector(ssl=credential.ssl_context(), limit=in_flight)
            timeout = aiohttp.ClientTimeout(total=300)
            session = await stack.enter_async_context(
                aiohttp.ClientSession(connector=connector, timeout=timeout)
            )
            arm = _Arm(observe, _Api(session, url), pids)
            body = {"scheme": scheme_id, "threshold": threshold, "parties": names}
            res = await arm.api.call("POST", "/v1/wallets", body)
            record = schemes.WalletRecord.from_json(res.get("wallet"))
            arm.wallet_id, arm.public_key = record.wallet_id, record.public_key
            for _ in range(_WARMUP_SIGNATURES):
                await arm.sign_one()
            await asyncio.gather(*(arm.api.call("GET", "/v1/health") for _ in range(in_flight)))
            arms.append(arm)
        say(f"two {threshold}-of-{n} {scheme_id} clusters: with audit and metrics, and without")
        for r in range(rounds):
            order = arms if r % 2 == 0 else arms[::-1]
            await _interleaved(order, "sequential", per_round)
            if ecdsa:
                for arm in order:
                    made = 0
                    while made < per_round:
                        body = {"wallet": arm.wallet_id, "count": min(MAX_BATCH, per_round - made)}
                        res = await arm.api.call("POST", "/v1/presign", body)
                        made += len(res["presignatures"])
                firsts = [len(arm.signed) for arm in order]
                await _interleaved(order, "pooled", per_round)
                for arm, first in zip(order, firsts, strict=True):
                    if not all(a.get("presignature_used") for _, a in arm.signed[first:]):
                        raise ParameterError("a pooled request did not finish a presignature")
            for arm in order:
                await arm.loaded(requests, in_flight)
            line = ", ".join(
                f"{what} {_overhead(arms, what) * 100:+.1f}%" for what in arms[0].samples
            )
            say(f"round {r + 1}/{rounds}, overhead so far: {line}")
    say(f"verifying {sum(len(a.signed) for a in arms)} signatures independently")
    for arm in arms:
        for msg, answer in arm.signed:
            check_node_signature(scheme_id, arm.public_key, msg, answer)
    out: list[BenchRecord] = []
    for what in arms[0].samples:
        low, high = _overhead_interval(arms, what)
        for arm in arms:
            samples = arm.samples[what]
            extra: dict[str, Any] = {"observe": arm.observe}
            if arm.observe:
                extra.update(overhead=_overhead(arms, what), overhead_low=low, overhead_high=high)
            cpu = arm.cpu.get(what)
            if cpu is not None:
                extra["cpu_per_signature_s"] = cpu / len(samples)
            if ecdsa and what != "loaded":
                extra["presignature"] = "pooled" if what == "pooled" else "in-session"
            op = "node-sign"
            if what == "loaded":
                op = "node-throughput"
                extra.update(in_flight=in_flight, throughput_per_s=len(samples) / sum(arm.walls))
            out.append(_node_record(scheme_id, op, threshold, n, samples, **extra))
    return out


def _overhead(arms: list[_Arm], what: str) -> float:
    with_, without = (statistics.median(arm.samples[what]) for arm in arms)
    return with_ / without - 1


def _overhead_interval(arms: list[_Arm], what: str) -> tuple[float, float]:
    """95% percentile-bootstrap interval of :func:`_overhead` (resampling both arms)."""
    import numpy as np

    rng = np.random.default_rng(secrets.randbits(64))  # statistics, not keys
    medians = []
    for arm in arms:
        x = np.asarray(arm.samples[what])
        medians.append(np.median(x[rng.integers(0, len(x), (_BOOTSTRAP, len(x)))], axis=1))
    ratios = medians[0] / medians[1] - 1
    return float(np.quantile(ratios, 0.025)), float(np.quantile(ratios, 0.975))


#: The policy of :func:`run_policy_bench`: issue 11's tiers, a deny-list and velocity limits.
_BENCH_POLICY = """
version = 1
reference_currency = "USD"

[prices]
ETH = "3000"
BTC = "60000"

[approvers.tess]
key = "{tess}"
role = "treasury"

[approvers.tom]
key = "{tom}"
role = "treasury"

[[rules]]
name = "deny-list"
action = "deny"
destinations_deny = ["0x000000000000000000000000000000000000dEaD"]

[[rules]]
name = "fast"
action = "allow"
group = "default"
max_usd = "10000"
velocity = {{ window = "24h", max_usd = "1000000000", max_count = 1000000 }}

[[rules]]
name = "senior"
action = "allow"
group = "default"
min_usd = "10000"
approvals = {{ treasury = 2 }}
velocity = {{ window = "24h", max_usd = "1000000000000", max_count = 1000000 }}
"""


def run_policy_bench(threshold: int, parties: int, runs: int) -> list[BenchRecord]:
    """What the signing policy adds to one signing request at one node (wall-clock time),
    the work :class:`~tmpc.node.policy.NodePolicy` does in a node's request path: judging it
    when the node answers *ready* (parse the EIP-1559 transaction and compute its digest,
    verify the approvals, evaluate the rules, check velocity), reserving velocity in the
    SQLite ledger (one fsync'd transaction), and judging it again at the session's start.
    Marking the reservation signed happens after the signature is returned (when the
    coordinator tells the outcome), off the request's path, and is not counted.
    ``policy-judge``: a 3,000 USD transfer (the fast tier, no approval);
    ``policy-judge-approvals``: a 150,000 USD one with two Ed25519 approvals.

    An ecdsa-secp256k1 wallet of ``threshold``-of-``parties`` made by the DKG; a policy
    signed by a generated administrator and installed on a temporary node."""
    from tmpc import policy as pol
    from tmpc.cli.node import create_local_cluster
    from tmpc.node import config as node_config
    from tmpc.node.policy import NodePolicy, approval_hash
    from tmpc.node.wallets import NodeWallet

    if runs < 1:
        raise ParameterError("--runs must be at least 1")
    record, _shares = schemes.keygen("ecdsa-secp256k1", threshold, parties)
    admin, tess, tom = (pol.PolicyKey.generate() for _ in range(3))
    source = _BENCH_POLICY.format(tess=tess.public_key.hex(), tom=tom.public_key.hex())
    bundle = pol.sign_bundle(pol.Bundle.from_policy(source.encode()), "admin", admin).to_bytes()
    samples: dict[str, list[float]] = {"policy-judge": [], "policy-judge-approvals": []}
    with tempfile.TemporaryDirectory(prefix="tmpc-policy-bench-") as tmp:
        create_local_cluster(Path(tmp) / "c", 2, {"admin": admin.public_key}, 1)
        cluster = node_config.load_cluster(Path(tmp) / "c" / "a")
        node = NodePolicy(Path(tmp), cluster)
        node.install(bundle)
        wallet = NodeWallet(record, {i: f"p{i}" for i in record.party_ids}, None)
        try:
            for k in range(runs):
                for op, eth in (("policy-judge", 1), ("policy-judge-approvals", 50)):
                    body: dict[str, Any] = {
                        "wallet": record.wallet_id,
                        "transaction": {"chain": "ethereum", "fields": {
                            "chain_id": 1, "nonce": k, "max_priority_fee_per_gas": 10**9,
                            "max_fee_per_gas": 3 * 10**10, "gas": 21000,
                            "to": "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf",
                            "value": eth * 10**18, "data": "", "access_list": [],
                        }},
                    }  # fmt: skip
                    if eth > 1:
                        h = approval_hash(body)
                        body["approvals"] = [
                            pol.sign_approval("tess", tess, h),
                            pol.sign_approval("tom", tom, h),
                        ]
                    start = time.perf_counter()
                    # When the node answers "ready": judged, then reserved (the reservation
                    # is the velocity check, atomic), as tmpc.node.engine does.
                    judged = node.judge(wallet, body, velocity=False)
                    assert judged is not None
                    reservation = node.ledger.reserve_for(judged.facts, judged.decision)
                    node.judge(wallet, body, velocity=False)  # again at the session's start
                    samples[op].append(time.perf_counter() - start)
                    if reservation is not None:  # after the signature: off the request's path
                        node.ledger.commit(reservation)
        finally:
            node.close()
    return [_record(record.scheme, op, threshold, parties, s) for op, s in samples.items()]
