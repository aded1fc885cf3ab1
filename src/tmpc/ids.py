"""Party ids: one numbering for every party of every protocol.

A party id is the Shamir identifier ``x`` of the party's share: ``1..n`` for a wallet of
``n`` parties. It is what machines (:mod:`tmpc.protocols.machine`) take as ``me`` and
``participants``, what :mod:`tmpc.local` maps to machines, and what every ``culprits`` tuple of
a :class:`~tmpc.errors.ProtocolError` holds once it leaves a protocol module, so the CLI, the
node and the audit log name a party the same way.

Two specifications number participants from 0 internally: ChillDKG (``participant_id``) and
BIP445 (the draft's ``id``). Their modules keep the spec's numbering inside, and convert at
their edge with :func:`from_index` and :func:`to_index` (``index = party id - 1``), so a
0-based index never reaches a caller. Ids on the wire and in stored files are unchanged: each
format keeps the numbering its spec gives it.

Party ids are below 2^32 (:data:`MAX_PARTY_ID`): the machines' transcript hashes
(:func:`tmpc.protocols.machine.transcript_hash`) encode an id in 4 bytes. RFC 9591 allows any
non-zero scalar as a FROST identifier; such identifiers work with the round functions of
:mod:`tmpc.protocols.frost`, but no machine takes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NewType

from tmpc.errors import ParameterError

__all__ = ["MAX_PARTY_ID", "PartyId", "from_index", "party_id", "party_ids", "to_index"]

#: A 1-based party id (the Shamir identifier of the party's share).
PartyId = NewType("PartyId", int)

#: The largest party id (ids are encoded in 4 bytes in transcript hashes).
MAX_PARTY_ID = 2**32 - 1


def party_id(x: object) -> PartyId:
    """``x`` as a :data:`PartyId`; raises :class:`~tmpc.errors.ParameterError` unless it is an
    integer (not a bool) in ``[1, MAX_PARTY_ID]``."""
    if not isinstance(x, int) or isinstance(x, bool) or not 1 <= x <= MAX_PARTY_ID:
        raise ParameterError(f"party id {x!r} is not an integer in [1, 2^32 - 1]")
    return PartyId(x)


def party_ids(xs: Iterable[object]) -> tuple[PartyId, ...]:
    """Every element of ``xs`` checked with :func:`party_id`, in the given order."""
    return tuple(party_id(x) for x in xs)


def from_index(index: int) -> PartyId:
    """The party id of a spec's 0-based participant ``index`` (ChillDKG, BIP445): ``index + 1``.

    Raises :class:`~tmpc.errors.ParameterError` for an index that is not in
    ``[0, MAX_PARTY_ID - 1]``."""
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < MAX_PARTY_ID:
        raise ParameterError(f"participant index {index!r} is not an integer in [0, 2^32 - 2]")
    return PartyId(index + 1)


def to_index(x: int) -> int:
    """The spec's 0-based participant index of party ``x``: ``x - 1``.

    Raises :class:`~tmpc.errors.ParameterError` if ``x`` is not a party id."""
    return party_id(x) - 1
