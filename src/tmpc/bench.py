"""Compute-only benchmarks: DKG and signing with all parties in one process.

Figures are CPU time (``time.process_time``) per whole operation, summed over every party, so
that operators can size hardware: a real deployment spreads the same work over n machines and
adds network round trips.
"""

from __future__ import annotations

import secrets
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from tmpc import schemes
from tmpc.errors import ParameterError

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

    def to_json(self) -> dict[str, Any]:
        """As a JSON object."""
        return asdict(self)


def _record(scheme: str, op: str, t: int, n: int, samples: list[float]) -> BenchRecord:
    return BenchRecord(
        scheme, op, t, n, len(samples), statistics.median(samples), min(samples), max(samples)
    )


def run_bench(scheme_id: str, threshold: int, parties: int, runs: int) -> list[BenchRecord]:
    """Measure ``runs`` DKGs and ``runs`` signatures (a random t-subset of signers each time).

    Raises :class:`~tmpc.errors.ParameterError` for bad parameters.
    """
    if runs < 1:
        raise ParameterError("runs must be at least 1")
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
