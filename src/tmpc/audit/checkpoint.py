"""Cross-signed checkpoints: the other nodes vouch for a node's log head.

A node's own signatures cannot stop the node itself from rewriting its history: it holds the
key, so it can write a new, internally consistent chain. A checkpoint fixes the head in other
hands. Every so often (:class:`CheckpointSchedule`) the owner takes its head
(:meth:`tmpc.audit.log.AuditLog.checkpoint_body`: node, seq, head hash), the other nodes each
sign it (:func:`cosign`) and record in their *own* logs that they did (a ``cosign`` entry:
owner, seq, head), and the owner appends a ``checkpoint`` entry with the cosignatures.

From then on a rewrite of entries up to ``seq`` is caught twice over (:mod:`tmpc.audit.verify`):
the checkpoint entry's head no longer matches entry ``seq``, and, if the rewrite also drops
the checkpoints, the peers' ``cosign`` entries name a head the log no longer has. This is the
signed tree head of RFC 6962 (Certificate Transparency, section 3.5) passed on to others who
keep it, as CT's gossip (draft-ietf-trans-gossip) does to catch a log that shows a "split
view", and close to witness cosigning (Syta et al., "Keeping Authorities 'Honest or Bust' with
Decentralized Witness Cosigning", IEEE S&P 2016), reduced to a cluster whose members witness
each other.
What it does not give: protection of the entries written since the last checkpoint, or
against a node that colludes with every one of its cosigners.

A cosignature is a BIP340 signature by the cosigner's identity key of::

    tagged_hash("tmpc/audit/cosign/v1",
                lp_join(cluster hash, owner name, seq as 8 bytes big-endian, head))

so it cannot be replayed in another cluster or stand in for any other tmpc signature. No I/O
here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tmpc.encoding import lp_join
from tmpc.errors import DecodeError, ParameterError
from tmpc.wire.identity import NodeIdentity, check_name, verify_signature

__all__ = [
    "COSIGN_TAG",
    "CheckpointBody",
    "CheckpointSchedule",
    "cosign",
    "cosign_message",
    "verify_cosign",
]

COSIGN_TAG: Final = "tmpc/audit/cosign/v1"
_HEX32: Final = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class CheckpointBody:
    """What a checkpoint vouches for: entry ``seq`` of ``node``'s log has hash ``head``.

    ``head`` is 32 bytes; ``seq`` at least 1. The constructor checks both and the name
    (:class:`~tmpc.errors.ParameterError`).
    """

    node: str
    seq: int
    head: bytes

    def __post_init__(self) -> None:
        check_name(self.node)
        if not isinstance(self.seq, int) or isinstance(self.seq, bool) or self.seq < 1:
            raise ParameterError("checkpoint seq must be a positive integer")
        if not isinstance(self.head, bytes) or len(self.head) != 32:
            raise ParameterError("checkpoint head must be 32 bytes")

    def to_json(self) -> dict[str, Any]:
        """``{"node", "seq", "head"}`` with the head as hex (what nodes send each other)."""
        return {"node": self.node, "seq": self.seq, "head": self.head.hex()}

    @classmethod
    def from_json(cls, doc: object) -> CheckpointBody:
        """Parse :meth:`to_json`'s form; raises :class:`~tmpc.errors.DecodeError`."""
        if not isinstance(doc, Mapping) or set(doc) != {"node", "seq", "head"}:
            raise DecodeError("a checkpoint body is {node, seq, head}")
        head = doc["head"]
        if not isinstance(head, str) or not _HEX32.fullmatch(head):
            raise DecodeError("checkpoint head must be 64 lower-case hex digits")
        try:
            return cls(doc["node"], doc["seq"], bytes.fromhex(head))
        except ParameterError as exc:
            raise DecodeError(str(exc)) from None


def cosign_message(cluster_hash: bytes, body: CheckpointBody) -> bytes:
    """The bytes a cosignature covers (before the tagged hash): see the module docstring."""
    if not isinstance(cluster_hash, bytes) or len(cluster_hash) != 32:
        raise ParameterError("cluster hash must be 32 bytes")
    return lp_join([cluster_hash, body.node.encode(), body.seq.to_bytes(8, "big"), body.head])


def cosign(identity: NodeIdentity, cluster_hash: bytes, body: CheckpointBody) -> bytes:
    """``identity``'s 64-byte cosignature of ``body`` in the cluster of ``cluster_hash``.

    The bare signature: a node cosigning as part of the cluster uses
    :meth:`tmpc.audit.log.AuditLog.cosign`, which also refuses a head that contradicts one it
    cosigned before and records the cosignature in its own log. Raises ParameterError for a
    cluster hash that is not 32 bytes.
    """
    return identity.sign(COSIGN_TAG, cosign_message(cluster_hash, body))


def verify_cosign(
    host_pubkey: bytes, cluster_hash: bytes, body: CheckpointBody, sig: bytes
) -> bool:
    """Whether ``sig`` is a cosignature of ``body`` by the node with the 33-byte
    ``host_pubkey`` in the cluster of ``cluster_hash``. Never raises for a bad signature or
    key (False)."""
    if not isinstance(cluster_hash, bytes) or len(cluster_hash) != 32:
        return False
    return verify_signature(host_pubkey, COSIGN_TAG, cosign_message(cluster_hash, body), sig)


@dataclass(frozen=True, slots=True)
class CheckpointSchedule:
    """When a node asks for a checkpoint: after ``every_entries`` new entries, or after
    ``every_seconds`` if anything at all was written since the last checkpoint.

    The bound on ``every_entries`` is the most history a node can rewrite unnoticed by the
    checkpoints (peers' ``cosign`` records only cover what was checkpointed).
    """

    every_entries: int = 1000
    every_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if not isinstance(self.every_entries, int) or self.every_entries < 1:
            raise ParameterError("checkpoint every_entries must be at least 1")
        if not self.every_seconds > 0:
            raise ParameterError("checkpoint every_seconds must be positive")

    def due(
        self, *, seq: int, last_checkpoint_seq: int, last_checkpoint_at: float, now: float
    ) -> bool:
        """Whether a checkpoint is due.

        Args:
            seq: the log's last entry.
            last_checkpoint_seq: the seq of the last ``checkpoint`` entry (0 if none).
            last_checkpoint_at: its time (the log's creation time if none).
            now: the current Unix time.
        """
        new = seq - last_checkpoint_seq
        if new >= self.every_entries:
            return True
        return new > 0 and now - last_checkpoint_at >= self.every_seconds
