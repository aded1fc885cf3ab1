"""Shamir secret sharing, Feldman commitments and Lagrange coefficients over any group.

Party identifiers are non-zero field elements; every function that takes identifiers checks
that they are distinct and non-zero modulo the group order (an identifier equal to the order
would receive ``f(0)``, the secret itself).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

from tmpc.errors import FaultyParticipantError, ParameterError
from tmpc.group.base import Group, Point

__all__ = [
    "check_ids",
    "commit_polynomial",
    "derive_interpolating_value",
    "eval_commitment",
    "eval_polynomial",
    "lagrange_coefficients",
    "random_polynomial",
    "scalar_from",
    "shamir_combine",
    "shamir_split",
    "verify_share",
]


def check_ids(group: Group, ids: Sequence[int]) -> None:
    """Raise :class:`ParameterError` unless ``ids`` are distinct, non-zero and ``< order``."""
    seen: set[int] = set()
    for x in ids:
        if not isinstance(x, int) or isinstance(x, bool):
            raise ParameterError("party identifiers must be integers")
        if x <= 0 or x >= group.order:
            raise ParameterError(f"party identifier {x} is zero or not below the group order")
        if x in seen:
            raise ParameterError(f"party identifier {x} appears twice")
        seen.add(x)


def scalar_from(group: Group, rand: Callable[[int], bytes]) -> int:
    """A non-zero scalar drawn from the randomness source ``rand`` (``rand(k)`` gives ``k``
    bytes): 64 bytes reduced modulo the order, redrawn if zero (bias 2^-256). Machines take
    ``rand`` as an argument so that tests can make them deterministic."""
    q = group.order
    while True:
        k = int.from_bytes(rand(64), "big") % q
        if k:
            return k


def random_polynomial(group: Group, constant: int, t: int) -> list[int]:
    """Coefficients ``[a_0 = constant, a_1, ..., a_{t-1}]`` of a random degree t-1 polynomial."""
    if t < 1:
        raise ParameterError("threshold must be at least 1")
    return [constant % group.order] + [secrets.randbelow(group.order) for _ in range(t - 1)]


def eval_polynomial(group: Group, coeffs: Sequence[int], x: int) -> int:
    """``f(x)`` by Horner's rule, modulo the group order."""
    acc = 0
    for a in reversed(coeffs):
        acc = (acc * x + a) % group.order
    return acc


def commit_polynomial(group: Group, coeffs: Sequence[int]) -> list[Point]:
    """Feldman commitment ``[a_0*G, ..., a_{t-1}*G]``."""
    return [group.base_mul(a) for a in coeffs]


def eval_commitment(group: Group, commitment: Sequence[Point], x: int) -> Point:
    """``sum_k x^k * C_k`` by Horner's rule: the commitment to ``f(x)``."""
    acc = group.identity()
    for c in reversed(commitment):
        acc = acc * x + c
    return acc


def verify_share(
    group: Group, share: int, x: int, commitment: Sequence[Point], t: int, dealer: int
) -> None:
    """Feldman check ``share*G == sum_k x^k C_k``; the commitment must have exactly ``t`` terms.

    Raises :class:`FaultyParticipantError` naming ``dealer`` if the commitment has the wrong
    length (a longer one would silently raise the threshold) or the share is not on it.
    """
    if len(commitment) != t:
        raise FaultyParticipantError(
            f"dealer {dealer} sent a commitment of {len(commitment)} terms, expected {t}", dealer
        )
    if group.base_mul(share) != eval_commitment(group, commitment, x):
        raise FaultyParticipantError(f"dealer {dealer} sent a share not on its commitment", dealer)


def shamir_split(group: Group, secret: int, t: int, ids: Sequence[int]) -> dict[int, int]:
    """Split ``secret`` t-of-len(ids): ``{id: f(id)}`` for a random f with ``f(0) = secret``."""
    check_ids(group, ids)
    if not 1 <= t <= len(ids):
        raise ParameterError(f"threshold {t} must be between 1 and {len(ids)}")
    coeffs = random_polynomial(group, secret, t)
    return {x: eval_polynomial(group, coeffs, x) for x in ids}


def derive_interpolating_value(group: Group, ids: Sequence[int], x_i: int) -> int:
    """RFC 9591 §4.2 ``derive_interpolating_value``: Lagrange coefficient of ``x_i`` at 0."""
    q = group.order
    if x_i not in ids:
        raise ParameterError(f"identifier {x_i} is not in the signer set")
    check_ids(group, ids)
    num, den = 1, 1
    for x_j in ids:
        if x_j == x_i:
            continue
        num = num * x_j % q
        den = den * (x_j - x_i) % q
    return num * pow(den, -1, q) % q


def lagrange_coefficients(group: Group, ids: Sequence[int]) -> dict[int, int]:
    """Lagrange coefficients at 0 for every identifier in ``ids``."""
    check_ids(group, ids)
    return {x: derive_interpolating_value(group, ids, x) for x in ids}


def shamir_combine(group: Group, shares: dict[int, int]) -> int:
    """Interpolate ``f(0)`` from ``{id: share}``. For tests and backups, never for signing keys."""
    lam = lagrange_coefficients(group, list(shares))
    return sum(lam[x] * s for x, s in shares.items()) % group.order
