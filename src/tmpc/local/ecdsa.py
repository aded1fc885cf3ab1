"""ECDSA wallets with every party in this process: presignature stores and deny-lists.

Each party keeps a state database beside its share file (``party-I.db``, see
:mod:`tmpc.state.store`) holding its presignatures (encrypted under the party's ``store_key``), the
multiplication session ids it has used, and its deny-list of peers that failed a pairwise
check. This module drives the DKLs23 machines (:mod:`tmpc.protocols.ecdsa.machine`, one per
party, through the one-process drivers of :mod:`tmpc.protocols.ecdsa.dkls23` over
:func:`tmpc.local.run_machines`, the code party nodes run) over those stores:

- :func:`presign` makes presignatures ahead of time for one signer set;
- :func:`sign` finishes a stored presignature with the digest in one round when every signer
  has one, and runs the whole protocol otherwise;
- a pairwise check that fails (OT extension, multiplication, commitment or Gamma check) puts
  the blamed peer on every honest party's deny-list, and later sessions with it are refused
  before any secret-dependent work, also after a restart;
- :func:`redo_pairwise` runs a fresh pairwise setup among some parties (new base OTs, OT
  extension seeds and zero-sharing seeds), installs it in their state databases and only then
  lifts their deny-list entries for each other.

What a restored or deleted state database would forget is also written to the machine's
single-use ledger (:mod:`tmpc.state.ledger`, outside the wallet directory): every presignature id
used (before its shares are computed), every multiplication session id, every deny-list
entry. A presignature the ledger knows as used is refused and discarded, and deny-list
entries are re-learned from the ledger, so restoring the wallet directory from a backup or
deleting a party's database neither re-enables a presignature nor lifts a blame.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tmpc import schemes
from tmpc.errors import KeystoreError, ParameterError, ProtocolError, StateError, TmpcError
from tmpc.primitives.ecdsa_format import compact, der_encode
from tmpc.protocols.ecdsa import dkls23
from tmpc.protocols.ecdsa.errors import PairwiseCheckError
from tmpc.schemes import KeyShare, WalletRecord, ecdsa_digest, ecdsa_pairwise
from tmpc.state.ledger import Ledger
from tmpc.state.store import (
    DenyList,
    PairwiseStore,
    PresignatureStore,
    StateDB,
    UsedSessions,
    state_db_path,
)

__all__ = [
    "EcdsaSignature",
    "PartyStores",
    "open_stores",
    "pool_name",
    "presign",
    "redo_pairwise",
    "sign",
]


@dataclass(frozen=True)
class EcdsaSignature:
    """A finished ECDSA signature: low-s ``(r, s)``, recovery id, and how it was made."""

    r: int
    s: int
    recovery_id: int
    from_presignature: bool

    @property
    def compact(self) -> bytes:
        """64-byte ``r || s``."""
        return compact(self.r, self.s)

    @property
    def der(self) -> bytes:
        """Strict DER (Bitcoin, without the sighash byte)."""
        return der_encode(self.r, self.s)


@dataclass
class PartyStores:
    """One party's open state database and the stores in it."""

    db: StateDB
    presigs: PresignatureStore
    deny: DenyList
    sessions: UsedSessions
    pairwise: PairwiseStore


@contextlib.contextmanager
def _ledger(ledger: Ledger | None) -> Iterator[Ledger]:
    """The caller's ledger, or the machine's default one (opened and closed here)."""
    if ledger is not None:
        yield ledger
        return
    with Ledger() as opened:
        yield opened


@contextlib.contextmanager
def open_stores(
    wallet_dir: Path, shares: Sequence[KeyShare], store_keys: dict[int, bytes]
) -> Iterator[dict[int, PartyStores]]:
    """Open the state database of every party in ``shares`` (created on first use)."""
    opened: dict[int, PartyStores] = {}
    try:
        for s in shares:
            key = store_keys.get(s.identifier)
            if key is None:
                raise KeystoreError(f"party {s.identifier}'s share has no presignature store key")
            db = StateDB(state_db_path(wallet_dir, s.identifier), party=s.identifier)
            opened[s.identifier] = PartyStores(
                db,
                PresignatureStore(db, key),
                DenyList(db),
                UsedSessions(db),
                PairwiseStore(db, key),
            )
        yield opened
    finally:
        for st in opened.values():
            st.db.close()


def _refuse_denied(record: WalletRecord, stores: dict[int, PartyStores], ledger: Ledger) -> None:
    wid = record.wallet_id
    for i, st in stores.items():
        # The two records of party i's blame are merged both ways: an entry its (deleted or
        # restored) database lost is re-learned from the ledger, and one the ledger lacks
        # (a wallet moved to this machine) is copied into it.
        in_db, in_ledger = st.deny.denied(wid), ledger.denied(wid, i)
        for j, reason in in_ledger.items():
            if j not in in_db:
                st.deny.add(wid, j, reason)
        for j, reason in in_db.items():
            if j not in in_ledger:
                ledger.deny(wid, i, j, reason)
        for j in stores:
            why = in_db.get(j) or in_ledger.get(j)
            if j != i and why is not None:
                raise ProtocolError(
                    f"party {i} refuses to sign with party {j} ({why}); "
                    "redo the pairwise setup with that party first",
                    (j,),
                )


def _deny_culprits(
    record: WalletRecord, stores: dict[int, PartyStores], ledger: Ledger, err: ProtocolError
) -> None:
    reason = f"failed pairwise check: {type(err).__name__}"
    for i, st in stores.items():
        for j in err.culprits:
            if j != i:
                # the ledger first: it is the record a restore of the wallet cannot erase
                ledger.deny(record.wallet_id, i, j, reason)
                st.deny.add(record.wallet_id, j, reason)


def _mark_sessions(
    record: WalletRecord,
    stores: dict[int, PartyStores],
    ledger: Ledger,
    signers: Sequence[int],
    sid: bytes,
) -> None:
    # Every party records the session id for each peer and role before any message leaves:
    # the same id can never drive a second multiplication with the same OT setup, also
    # after its database is restored (the ledger keeps the record too).
    ledger.use_sessions(record.wallet_id, [(i, j) for i in signers for j in signers if j != i], sid)
    for i in signers:
        for j in signers:
            if j != i:
                stores[i].sessions.mark_used(record.wallet_id, j, "sender", sid)
                stores[i].sessions.mark_used(record.wallet_id, j, "receiver", sid)


def _current_pairwise(
    record: WalletRecord,
    shares: Sequence[KeyShare],
    stores: dict[int, PartyStores],
    *,
    check_pairs: bool = True,
) -> dict[int, dkls23.EcdsaPairwise]:
    """Each party's pairwise material: the redone one in its database, else its share file's.

    With ``check_pairs`` (always, except when redoing the setup), both sides of every pair
    must hold the same setup, or :class:`KeystoreError` says which pair to redo.
    """
    material = ecdsa_pairwise(shares)
    for i, st in stores.items():
        blob = st.pairwise.get(record.wallet_id)
        if blob is not None:
            try:
                material[i] = dkls23.EcdsaPairwise.from_bytes(blob)
            except TmpcError:
                raise KeystoreError(f"party {i}'s redone pairwise setup is corrupt") from None
    # Both sides of every pair must hold the same setup (its id is public). A party whose
    # state database was lost or restored from an old backup would otherwise run an old
    # setup against a redone one and fail a pairwise check that blames an honest peer.
    for i in material if check_pairs else ():
        for j in material:
            if i < j and (
                material[i].senders[j].setup_id != material[j].receivers[i].setup_id
                or material[i].receivers[j].setup_id != material[j].senders[i].setup_id
            ):
                raise KeystoreError(
                    f"parties {i} and {j} hold different pairwise setups (a state database "
                    f"is missing or outdated); run: tmpc pairwise-setup --parties {i},{j}"
                )
    return material


def _presign_once(
    record: WalletRecord,
    shares: Sequence[KeyShare],
    stores: dict[int, PartyStores],
    ledger: Ledger,
    signers: list[int],
    pairwise: dict[int, dkls23.EcdsaPairwise],
    tweak: int,
) -> dict[int, dkls23.Presignature]:
    sid = secrets.token_bytes(32)
    _mark_sessions(record, stores, ledger, signers, sid)
    try:
        return dkls23.presign_local(
            {s.identifier: s.secshare for s in shares},
            record.group_public_key,
            pairwise,
            signers,
            sid,
            threshold=record.threshold,
            tweak=tweak,
        )
    except PairwiseCheckError as err:
        _deny_culprits(record, stores, ledger, err)
        raise


def _signers_of(record: WalletRecord, shares: Sequence[KeyShare]) -> list[int]:
    if not schemes.get_scheme(record.scheme).dkls23:
        raise ParameterError("presignatures exist only for ecdsa-secp256k1 wallets")
    ids = sorted(s.identifier for s in shares)
    if len(set(ids)) != len(ids) or len(ids) < record.threshold:
        raise ParameterError(f"presigning needs {record.threshold} distinct signers")
    return ids


def pool_name(wallet_id: str, path: str | None) -> str:
    """The store key of a wallet's presignatures for one BIP32 path (``WALLET@PATH``)."""
    # Presignatures are pooled per wallet *and* BIP32 path: one made for a path is only ever
    # finished for that path, so a derivation chosen after presigning cannot reach it (the
    # presignature row of security.md); Groth-Shoup re-randomisation applies on top.
    return f"{wallet_id}@{path or 'm'}"


def presign(
    wallet_dir: Path,
    record: WalletRecord,
    shares: Sequence[KeyShare],
    store_keys: dict[int, bytes],
    count: int,
    *,
    path: str | None = None,
    ledger: Ledger | None = None,
) -> int:
    """Make ``count`` presignatures for the signer set of ``shares`` and BIP32 ``path``.

    Each is bound to ``path``'s tweak (it can be finished for no other). ``ledger`` is the
    single-use ledger (default: the machine's, see :mod:`tmpc.state.ledger`). Returns how many are
    now stored for that signer set and path (at the first signer).
    """
    _, tweak = schemes.hd_tweak(record, path)  # refuse a bad path before any work
    if not 1 <= count <= 10_000:
        raise ParameterError("--count must be between 1 and 10000")
    signers = _signers_of(record, shares)
    with _ledger(ledger) as lg, open_stores(wallet_dir, shares, store_keys) as stores:
        _refuse_denied(record, stores, lg)
        # Parsed once for the batch: the same multiplication objects then also refuse a
        # repeated session id in memory across the whole batch.
        pairwise = _current_pairwise(record, shares, stores)
        for _ in range(count):
            presigs = _presign_once(record, shares, stores, lg, signers, pairwise, tweak)
            for i, p in presigs.items():
                stores[i].presigs.put(
                    pool_name(record.wallet_id, path), signers, p.presig_id, p.to_bytes()
                )
        return stores[signers[0]].presigs.count(pool_name(record.wallet_id, path), signers)


def _discard_used(
    record: WalletRecord,
    stores: dict[int, PartyStores],
    ledger: Ledger,
    signers: list[int],
    pool: str,
) -> int:
    """Delete from every signer's store the presignatures the ledger knows as used.

    Returns how many distinct presignatures were discarded."""
    discarded: set[bytes] = set()
    for i in signers:
        store = stores[i].presigs
        for pid in ledger.used_presignatures(i, store.ids(pool, signers)):
            store.take(pool, signers, pid)
            discarded.add(pid)
    return len(discarded)


def _take_presignatures(
    record: WalletRecord,
    stores: dict[int, PartyStores],
    ledger: Ledger,
    signers: list[int],
    path: str | None,
) -> dict[int, dkls23.Presignature] | None:
    pool = pool_name(record.wallet_id, path)
    first = stores[signers[0]].presigs.take(pool, signers)
    if first is None:
        return None
    presig_id, blob = first
    blobs = {signers[0]: blob}
    for i in signers[1:]:
        got = stores[i].presigs.take(pool, signers, presig_id)
        if got is None:
            raise KeystoreError(
                f"party {i} has no copy of presignature {presig_id.hex()[:16]}; the stores "
                "disagree (the presignature is discarded; run presign again)"
            )
        blobs[i] = got[1]
    # Gone from every store; now recorded as used in the ledger, before any share exists.
    # A store restored from a backup still holds presignatures used since: refuse them all.
    try:
        ledger.use_presignature(record.wallet_id, signers, presig_id)
    except StateError:
        more = _discard_used(record, stores, ledger, signers, pool)
        raise StateError(
            f"refused a presignature that was already used, and discarded {more} more: the "
            f"state databases in {stores[signers[0]].db.path.parent} were restored from a "
            "backup or copied (one-time state must never be restored); nothing was signed, "
            "run the command again"
        ) from None
    return {i: dkls23.Presignature.from_bytes(b) for i, b in blobs.items()}


def sign(
    wallet_dir: Path,
    record: WalletRecord,
    shares: Sequence[KeyShare],
    store_keys: dict[int, bytes],
    digest: bytes,
    *,
    path: str | None = None,
    ledger: Ledger | None = None,
) -> EcdsaSignature:
    """Sign a 32-byte ``digest`` with the parties of ``shares``.

    Uses a stored presignature for this signer set when there is one (deleted from every
    store before its share is computed), otherwise runs the whole DKLs23 protocol. The
    signature is verified before it is returned. A failed pairwise check deny-lists the
    blamed party and re-raises. ``path`` is a non-hardened BIP32 child: the signature
    verifies under its key, only presignatures made for that path are used, and they are
    re-randomised with the digest and the path's tweak.

    A stored presignature that the single-use ledger (``ledger``, default the machine's)
    records as used -- its store was restored from a backup -- is refused: it and every other
    such presignature are discarded and :class:`~tmpc.errors.StateError` is raised, with
    nothing signed.
    """
    _, tweak = schemes.hd_tweak(record, path)
    digest = ecdsa_digest(digest)
    signers = _signers_of(record, shares)
    with _ledger(ledger) as lg, open_stores(wallet_dir, shares, store_keys) as stores:
        _refuse_denied(record, stores, lg)
        presigs = _take_presignatures(record, stores, lg, signers, path)
        used = presigs is not None
        if presigs is None:
            pairwise = _current_pairwise(record, shares, stores)
            presigs = _presign_once(record, shares, stores, lg, signers, pairwise, tweak)
        r, s, recid = dkls23.sign_with_presignatures(
            presigs, record.group_public_key, digest, tweak=tweak
        )
    return EcdsaSignature(r, s, recid, used)


def redo_pairwise(
    wallet_dir: Path,
    record: WalletRecord,
    shares: Sequence[KeyShare],
    store_keys: dict[int, bytes],
    *,
    ledger: Ledger | None = None,
) -> list[tuple[int, int]]:
    """Redo the pairwise DKLs23 setup among the parties of ``shares`` (at least two).

    Every pair among them gets fresh base OTs, OT-extension seeds and zero-sharing seeds
    (a new random session id); each party's material is merged (pairs with parties not
    listed keep theirs) and installed in its state database in one transaction that also
    removes the listed peers from its deny-list. Returns the pairs that were redone.
    """
    if not schemes.get_scheme(record.scheme).dkls23:
        raise ParameterError("the pairwise setup exists only for ecdsa-secp256k1 wallets")
    ids = sorted(s.identifier for s in shares)
    if len(ids) < 2 or len(set(ids)) != len(ids):
        raise ParameterError("redoing the pairwise setup needs at least two distinct parties")
    with _ledger(ledger) as lg, open_stores(wallet_dir, shares, store_keys) as stores:
        current = _current_pairwise(record, shares, stores, check_pairs=False)
        fresh = dkls23.pairwise_setup_local(ids, secrets.token_bytes(32))
        for i in ids:
            merged = current[i].merged(fresh[i])
            peers = [j for j in ids if j != i]
            stores[i].pairwise.install(record.wallet_id, merged.to_bytes(), peers)
            # Lifted in the ledger only once the new setup is installed: a crash between the
            # two leaves the pair refused (re-learned), never the old setup usable.
            lg.lift(record.wallet_id, i, peers)
    return [(i, j) for i in ids for j in ids if i < j]
