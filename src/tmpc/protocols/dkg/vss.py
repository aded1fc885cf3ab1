"""Feldman VSS as ChillDKG uses it: seeded polynomials, commitments, shares and pubshares.

Participant ``i`` (0-based) holds the evaluation at ``x = i + 1``. A commitment is the list
``[a_0*G, ..., a_{t-1}*G]``; its entries may be the identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

from tmpc.group.base import Group, Point
from tmpc.protocols.dkg.suite import DKGSuite, be4
from tmpc.sharing import commit_polynomial, eval_polynomial

__all__ = [
    "commit",
    "generate",
    "mul_small",
    "pubshare",
    "pubshares",
    "secshares",
    "verify_secshare",
]


def generate(suite: DKGSuite, seed: bytes, t: int) -> list[int]:
    """The ``t`` coefficients of a dealer's polynomial, derived from a 32-byte seed.

    > coeffs[i] = Scalar.from_bytes_checked(tagged_hash_bip_dkg("vss coeffs", seed || i))
    """
    return [suite.hash_to_scalar("vss coeffs", seed + be4(i), checked=True) for i in range(t)]


def secshares(group: Group, coeffs: Sequence[int], n: int) -> list[int]:
    """``[f(1), ..., f(n)]``: the partial secret shares for participants ``0..n-1``."""
    return [eval_polynomial(group, coeffs, i + 1) for i in range(n)]


def commit(group: Group, coeffs: Sequence[int]) -> list[Point]:
    """The commitment ``[a_j * G]``."""
    return commit_polynomial(group, coeffs)


def mul_small(P: Point, k: int) -> Point:
    """``k * P`` for ``k >= 1``: double-and-add when that takes at most 4 additions (one
    addition costs about a fifth of a scalar multiplication in both groups), else ``P * k``."""
    if k.bit_length() + k.bit_count() - 2 > 4:
        return P * k
    acc = P
    for bit in bin(k)[3:]:
        acc = acc + acc
        if bit == "1":
            acc = acc + P
    return acc


def pubshare(com: Sequence[Point], i: int) -> Point:
    """``sum_j (i+1)^j * com[j]`` (Horner): the commitment to participant ``i``'s share."""
    x = i + 1
    acc = com[-1]
    for c in reversed(com[:-1]):
        acc = mul_small(acc, x) + c
    return acc


def _difference_coefficient(k: int, j: int) -> int:
    # The k-th forward difference of x^j at x = 1: sum_i (-1)^(k-i) C(k,i) (1+i)^j; it is
    # positive for j >= k (k! times a Stirling number) and 0 for j < k.
    return sum((-1) ** (k - i) * comb(k, i) * (1 + i) ** j for i in range(k + 1))


def pubshares(com: Sequence[Point], n: int) -> list[Point]:
    """``[pubshare(com, i) for i in range(n)]`` by forward differences.

    The commitment is a polynomial of degree ``t-1`` in ``x``: once its differences
    ``D_k = Delta^k P(1)`` are known, each further ``P(x+1)`` costs ``t-1`` point additions
    instead of ``t-1`` scalar multiplications.
    """
    t = len(com)
    if t == 1 or n <= 1:
        return [pubshare(com, i) for i in range(n)]
    diffs = []
    for k in range(t):
        acc = mul_small(com[k], _difference_coefficient(k, k))
        for j in range(k + 1, t):
            acc = acc + mul_small(com[j], _difference_coefficient(k, j))
        diffs.append(acc)
    out = [diffs[0]]
    for x in range(2, n + 1):
        # P(x) = P(x-1) + Delta P(x-1); then advance every difference by the next one.
        last = t - 1 if x < n else 1
        for k in range(last):
            diffs[k] = diffs[k] + diffs[k + 1]
        out.append(diffs[0])
    return out


def verify_secshare(group: Group, secshare: int, expected_pubshare: Point) -> bool:
    """``secshare * G == expected_pubshare``."""
    return group.base_mul(secshare) == expected_pubshare
