"""Pairwise seeds and zero-sharing for DKLs23 (Functionality 3.4, F_Zero, of eprint 2023/765).

Every pair of parties ``{i, j}`` holds one secret 32-byte seed ``seed_ij`` that neither chose
alone: each side commits to a random contribution, and only after both commitments are
exchanged are the contributions revealed and hashed together (commit-then-reveal, as the
paper suggests for instantiating F_Zero and as 0xCarbon's ``zero_shares.rs`` does). The
setup protocol itself (messages, blame) lives in :mod:`tmpc.protocols.ecdsa.dkls23`; this
module holds the hash-based primitives:

- :func:`seed_commitment` and :func:`combine_seeds` for the setup,
- :func:`zero_share` for a signing session: party ``i`` of the signer set ``P`` derives

  ``zeta_i = sum_{j in P, j != i} sign(i, j) * H(seed_ij, context)``

  with ``sign(i, j) = -1`` if ``i < j`` and ``+1`` otherwise, so that
  ``sum_{i in P} zeta_i == 0`` while every ``zeta_i`` alone is pseudorandom to anyone not
  holding all of ``i``'s seeds. ``context`` is the signing session's context (session id,
  public key and signer set), so two sessions never reuse a zero-sharing.

Every hash carries a domain tag ``tmpc/dkls23/...`` and length-prefixed inputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from tmpc.encoding import expect_len, lp, tagged_hash
from tmpc.errors import ParameterError
from tmpc.group import SECP256K1

__all__ = ["SEED_LEN", "combine_seeds", "seed_commitment", "zero_share"]

SEED_LEN = 32
"""Length in bytes of a seed contribution and of a combined pairwise seed."""

_ID_LEN = 32


def _id(x: int) -> bytes:
    return x.to_bytes(_ID_LEN, "big")


def seed_commitment(session_id: bytes, sender: int, receiver: int, contribution: bytes) -> bytes:
    """Commitment (32 bytes) of ``sender`` to its seed contribution towards ``receiver``.

    ``H("tmpc/dkls23/zero-seed-commit", lp(session_id) || sender || receiver || contribution)``
    with 32-byte identifiers. The contribution is 32 uniformly random bytes, so the hash hides
    it; binding the session id and both identifiers stops a peer from replaying (mirroring)
    the commitment back.

    Raises :class:`~tmpc.errors.DecodeError` if ``contribution`` is not 32 bytes.
    """
    contribution = expect_len(contribution, SEED_LEN, "zero-share seed contribution")
    return tagged_hash(
        "tmpc/dkls23/zero-seed-commit",
        lp(session_id) + _id(sender) + _id(receiver) + contribution,
    )


def combine_seeds(
    session_id: bytes, id_a: int, contribution_a: bytes, id_b: int, contribution_b: bytes
) -> bytes:
    """The shared seed (32 bytes) of the pair from both revealed contributions.

    Symmetric in the two parties: the contributions are ordered by identifier, so both sides
    compute the same seed. Raises :class:`~tmpc.errors.ParameterError` if the identifiers are
    equal and :class:`~tmpc.errors.DecodeError` if a contribution is not 32 bytes.
    """
    if id_a == id_b:
        raise ParameterError("a zero-share seed needs two different parties")
    a = expect_len(contribution_a, SEED_LEN, "zero-share seed contribution")
    b = expect_len(contribution_b, SEED_LEN, "zero-share seed contribution")
    (lo, c_lo), (hi, c_hi) = sorted(((id_a, a), (id_b, b)))
    return tagged_hash("tmpc/dkls23/zero-seed", lp(session_id) + _id(lo) + _id(hi) + c_lo + c_hi)


def zero_share(
    identifier: int, seeds: Mapping[int, bytes], signers: Sequence[int], context: bytes
) -> int:
    """This party's additive share ``zeta_i`` of zero for the signer set ``signers``.

    Args:
        identifier: this party's identifier ``i`` (must be in ``signers``).
        seeds: the pairwise seeds ``{j: seed_ij}`` (32 bytes each); must hold every other
            signer.
        signers: the signer set ``P``.
        context: bytes that identify the session (bound into every fragment).

    Returns:
        ``zeta_i`` in ``[0, n)``; the shares of all signers sum to 0 modulo ``n``.

    Raises:
        ParameterError: ``identifier`` not in ``signers`` or a seed missing.
    """
    n = SECP256K1.order
    if identifier not in signers:
        raise ParameterError(f"party {identifier} is not in the signer set")
    zeta = 0
    for j in signers:
        if j == identifier:
            continue
        seed = seeds.get(j)
        if seed is None:
            raise ParameterError(f"party {identifier} has no zero-share seed with party {j}")
        # F_Zero via seeds: both ends of the pair derive the same fragment; the one with the
        # lower identifier subtracts it, the other adds it, so the fragments cancel in the sum.
        digest = hashlib.sha512(lp(b"tmpc/dkls23/zero-share") + lp(seed) + lp(context)).digest()
        fragment = int.from_bytes(digest, "big") % n
        zeta = zeta - fragment if identifier < j else zeta + fragment
    return zeta % n
