"""The node's pool of DKLs23 presignatures (ECDSA wallets), and their single use.

A presignature is made ahead of time by one signer set (a ``presign`` request runs a
:class:`~tmpc.protocols.ecdsa.machine.BatchPresignMachine` among a quorum), bound to one BIP32
path, and later finished in one round for any digest by exactly that signer set.

Storage: ``DIR/presignatures/party-N.db``, one state database per party id this node holds
in some wallet, through :class:`~tmpc.state.store.PresignatureStore`: rows encrypted with
ChaCha20-Poly1305 under a key derived from the node's identity key (HKDF-SHA256, its own info
string), bound to wallet, path, party, signer set and id.

Single use (5 of issue 9): :meth:`NodePresignatures.take` deletes the row (committed), then
records the id as used in the node's single-use ledger (``synchronous=FULL``: fsync'd), and
only then returns the presignature, whose share the caller computes after. The ledger is the
durable record of use; the pool files are ``synchronous=NORMAL`` (a commit survives the
process being killed, and the last ones may be lost on power failure), which keeps one fsync,
the ledger's, on the signing path. So a crash anywhere loses the presignature and never uses it
twice: a deletion lost to power failure, or a pool restored from a backup, brings back ids the
ledger knows as used, which :meth:`NodePresignatures.available` never offers and
:meth:`NodePresignatures.take` refuses.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tmpc.errors import StateError
from tmpc.local.ecdsa import pool_name
from tmpc.protocols.ecdsa.dkls23 import Presignature
from tmpc.state.ledger import Ledger
from tmpc.state.store import PresignatureStore, StateDB, retire_epoch, state_db_path

__all__ = ["NodePresignatures"]

_INFO = b"tmpc/node/presignature-store/v1"


class _PoolDB(StateDB):
    """A node's presignature pool of one party id: ``synchronous=NORMAL``, since the
    single-use ledger (fsync'd) is the durable record of use (see the module docstring)."""

    SYNCHRONOUS = "NORMAL"


class NodePresignatures:
    """This node's presignatures, by wallet, path and signer set (see the module docstring).

    Args:
        directory: the node directory.
        identity_seckey: the node's identity key (secret), from which the store key derives.
        ledger: the node's single-use ledger.
    """

    def __init__(self, directory: Path, identity_seckey: bytes, ledger: Ledger) -> None:
        self._dir = directory / "presignatures"
        self._key = HKDF(hashes.SHA256(), 32, None, _INFO).derive(identity_seckey)
        self._ledger = ledger
        self._stores: dict[int, PresignatureStore] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"NodePresignatures(directory={str(self._dir)!r})"

    def _store(self, party: int) -> PresignatureStore:
        with self._lock:
            store = self._stores.get(party)
            if store is None:
                self._dir.mkdir(mode=0o700, exist_ok=True)
                db = _PoolDB(state_db_path(self._dir, party), party=party)
                store = self._stores[party] = PresignatureStore(db, self._key)
            return store

    def put(
        self, wallet_id: str, path: str | None, party: int, presigs: Sequence[Presignature]
    ) -> None:
        """Store this node's presignatures (party ``party``) of one batch, in one fsync."""
        if not presigs:
            return
        signers = presigs[0].signers
        self._store(party).put_many(
            pool_name(wallet_id, path), signers, [(p.presig_id, p.to_bytes()) for p in presigs]
        )

    def take(
        self,
        wallet_id: str,
        path: str | None,
        party: int,
        signers: Sequence[int],
        presig_id: bytes,
    ) -> Presignature:
        """Remove presignature ``presig_id`` of ``signers`` and mark it used, durably, before
        returning it (see the module docstring).

        Raises:
            StateError: this node does not hold it (used or never made here), or the ledger
                already records it as used (a restored store; nothing is signed).
        """
        got = self._store(party).take(pool_name(wallet_id, path), signers, presig_id)
        if got is None:
            raise StateError(f"presignature {presig_id.hex()[:16]} is not held by this node")
        self._ledger.use_presignature(wallet_id, [party], presig_id)
        return Presignature.from_bytes(got[1])

    def available(
        self, wallet_id: str, path: str | None, party: int, limit: int = 64
    ) -> list[tuple[tuple[int, ...], bytes]]:
        """``(signer set, presig_id)`` of up to ``limit`` unused presignatures, oldest first."""
        if not state_db_path(self._dir, party).exists():
            return []
        entries = self._store(party).entries(pool_name(wallet_id, path), limit)
        used = self._ledger.used_presignatures(party, [pid for _, pid in entries])
        return [(s, pid) for s, pid in entries if pid not in used]

    def retire(self, wallet_id: str, party: int) -> int:
        """Delete every pooled presignature of a wallet held as ``party`` (a refresh switched
        the wallet to new shares: presignatures of the old ones must never be finished).
        Returns how many were deleted."""
        if not state_db_path(self._dir, party).exists():
            return 0
        return len(retire_epoch(self._store(party).db, wallet_id))

    def close(self) -> None:
        """Close the databases."""
        with self._lock:
            for store in self._stores.values():
                store.db.close()
            self._stores.clear()
