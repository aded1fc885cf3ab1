"""Compute-only benchmarks: DKG and signing with all parties in one process.

Figures are CPU time (``time.process_time``) per whole operation, summed over every party, so
that operators can size hardware: a real deployment spreads the same work over n machines and
adds network round trips.
"""

from __future__ import annotations

import dataclasses
import secrets
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from tmpc import schemes
from tmpc.ecdsa_format import compact
from tmpc.errors import ParameterError
from tmpc.group import SECP256K1
from tmpc.protocols.ecdsa import dkls23
from tmpc.sharing import shamir_split

__all__ = ["BenchRecord", "run_bench"]


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

    def to_json(self) -> dict[str, Any]:
        """As a JSON object (``bytes_per_party`` only where measured)."""
        doc = asdict(self)
        if doc["bytes_per_party"] is None:
            del doc["bytes_per_party"]
        return doc


def _record(scheme: str, op: str, t: int, n: int, samples: list[float]) -> BenchRecord:
    return BenchRecord(
        scheme, op, t, n, len(samples), statistics.median(samples), min(samples), max(samples)
    )


def _ecdsa_bytes_per_party(threshold: int, parties: int) -> dict[str, float]:
    """Bytes each party sends, on average, in the pairwise setup, presigning and online step
    (broadcasts count once per recipient, as sent)."""
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
    online = {i: dkls23.sign_share(p, pk, digest) for i, p in presigs.items()}
    dkls23.combine_signature_shares(presigs[signers[0]].info, digest, online)
    return {
        "keygen": sum(setup.values()) / parties,
        "presign": sum(presign.values()) / threshold,
        "sign-online": sum(len(x.to_bytes()) for x in online.values()) / threshold,
    }


def _run_ecdsa(threshold: int, parties: int, runs: int) -> list[BenchRecord]:
    keygen_t: list[float] = []
    presign_t: list[float] = []
    online_t: list[float] = []
    full_t: list[float] = []
    for _ in range(runs):
        t0 = time.process_time()
        record, shares = schemes.keygen("ecdsa-secp256k1", threshold, parties)
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
        if not schemes.verify("ecdsa-secp256k1", record.public_key, digest, compact(r, s)):
            raise ParameterError("benchmark produced an invalid signature")
    traffic = _ecdsa_bytes_per_party(threshold, parties)
    out = []
    for op, samples in (
        ("keygen", keygen_t),
        ("presign", presign_t),
        ("sign-online", online_t),
        ("sign", full_t),
    ):
        rec = _record("ecdsa-secp256k1", op, threshold, parties, samples)
        b = traffic.get(op, traffic["presign"] + traffic["sign-online"])
        out.append(dataclasses.replace(rec, bytes_per_party=round(b)))
    return out


def run_bench(scheme_id: str, threshold: int, parties: int, runs: int) -> list[BenchRecord]:
    """Measure ``runs`` key generations and ``runs`` signatures (a random t-subset each time).

    For ``ecdsa-secp256k1`` the operations are ``keygen`` (DKG + pairwise OT setup),
    ``presign``, ``sign-online`` (finishing a presignature) and ``sign`` (both), each with the
    bytes a party sends. Raises :class:`~tmpc.errors.ParameterError` for bad parameters.
    """
    if not 1 <= runs <= 10_000:
        raise ParameterError("runs must be between 1 and 10000")
    if scheme_id == "ecdsa-secp256k1":
        if not 2 <= threshold <= parties:
            raise ParameterError("ecdsa-secp256k1 needs 2 <= threshold <= parties")
        return _run_ecdsa(threshold, parties, runs)
    dkg_times: list[float] = []
    sign_times: list[float] = []
    schemes.get_scheme(scheme_id)
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
    ]
