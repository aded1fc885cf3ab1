"""The wallets a node holds: public records and this node's encrypted share of each.

``DIR/wallets/WALLET_ID/wallet.json`` is the public record (as written by ``tmpc keygen``),
``DIR/wallets/WALLET_ID/party-N.share`` (``party-N.eK.share`` at epoch K) this node's share
(party ``N``), sealed under the node's passphrase, or its token-unwrapped data key, with
:mod:`tmpc.state.keystore`. A node that coordinated a DKG it was not a party of keeps the
record only. Party ids map to node names through the wallet's host public keys, which are the
members' identity keys in the cluster file.

A rotation stages the next epoch beside the current one, in
``DIR/wallets/WALLET_ID/staged/SESSION/`` (its record and this node's new share file, both
fsync'd), and :meth:`WalletStore.switch` makes it current by linking the share file into place
and replacing ``wallet.json`` (one atomic rename: the epoch pointer). Until that rename the
wallet is on the old epoch; after it, :meth:`WalletStore.cleanup` deletes the old share file
and every staged directory.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from tmpc import schemes
from tmpc.errors import KeystoreError, TmpcError
from tmpc.node.config import Cluster, Unlock, open_secret, seal_secret
from tmpc.state import keystore
from tmpc.state.keystore import KdfParams
from tmpc.state.store import fsync_dir

__all__ = ["NodeWallet", "WalletStore"]


def _record_doc(record: schemes.WalletRecord) -> bytes:
    """``wallet.json``'s content for a record."""
    return json.dumps(record.to_json(), indent=2).encode() + b"\n"


@dataclass(frozen=True)
class NodeWallet:
    """A wallet as this node sees it: its record, party names, and this node's share."""

    record: schemes.WalletRecord
    names: dict[int, str]  # party id -> node name
    share: schemes.KeyShare | None

    @property
    def ids(self) -> dict[str, int]:
        """Node name -> party id."""
        return {n: i for i, n in self.names.items()}


class WalletStore:
    """This node's wallets (records and shares), opened once and kept in memory."""

    def __init__(self, directory: Path, cluster: Cluster, unlock: Unlock, kdf: KdfParams) -> None:
        self._dir = directory / "wallets"
        self._cluster = cluster
        self._unlock = unlock
        self._kdf = kdf
        self._cache: dict[str, NodeWallet] = {}
        self._lock = threading.Lock()
        #: Shares staged by this process, by (wallet, session): a switch then needs no
        #: Argon2id run to open the file it just sealed.
        self._staged_shares: dict[tuple[str, bytes], schemes.KeyShare] = {}

    def _seal_into(
        self, directory: Path, record: schemes.WalletRecord, share: schemes.KeyShare
    ) -> None:
        """Seal ``share`` for ``record``'s epoch into a new share file in ``directory``."""
        sealed = seal_secret(
            schemes.share_secret(record, share),
            wallet_id=record.wallet_id,
            party=share.identifier,
            epoch=record.epoch,
            unlock=self._unlock,
            kdf=self._kdf,
        )
        keystore.write_new_file(
            keystore.share_path(directory, share.identifier, record.epoch), sealed
        )

    def names_of(self, record: schemes.WalletRecord) -> dict[int, str]:
        """Party id -> node name of a record's parties (by host key in the cluster file);
        raises :class:`KeystoreError` for a party that is not a member."""
        return self._names(record)

    def _names(self, record: schemes.WalletRecord) -> dict[int, str]:
        by_key = {c.host_pubkey: c.name for c in self._cluster.members}
        names = {}
        for i in record.party_ids:
            name = by_key.get(record.host_public_keys[i])
            if name is None:
                raise KeystoreError(
                    f"wallet {record.wallet_id}: party {i} is not a member of this cluster"
                )
            names[i] = name
        return names

    def ids(self) -> list[str]:
        """Ids of every wallet stored here."""
        if not self._dir.is_dir():
            return []
        return sorted(p.name for p in self._dir.iterdir() if (p / "wallet.json").is_file())

    def get(self, wallet_id: str) -> NodeWallet:
        """The wallet ``wallet_id``; raises :class:`KeystoreError` if unknown or corrupt."""
        with self._lock:
            cached = self._cache.get(wallet_id)
            if cached is not None:
                return cached
            if not wallet_id or not all(c in "0123456789abcdef" for c in wallet_id):
                raise KeystoreError(f"unknown wallet {wallet_id!r}")
            wdir = self._dir / wallet_id
            if not (wdir / "wallet.json").is_file():
                raise KeystoreError(f"unknown wallet {wallet_id!r}")
            record = schemes.WalletRecord.from_json(
                keystore.read_json(wdir / "wallet.json", "wallet record")
            )
            names = self._names(record)
            share = None
            files = keystore.share_files(wdir, record.epoch)
            if files:
                party, path = next(iter(files.items()))
                secret = open_secret(
                    keystore.read_limited(path, "share file", keystore.MAX_SHARE_FILE_BYTES),
                    unlock=self._unlock,
                    wallet_id=record.wallet_id,
                    party=party,
                    epoch=record.epoch,
                )
                group = schemes.get_scheme(record.scheme).group
                try:
                    value = group.decode_scalar(secret.secshare)
                except TmpcError:
                    raise KeystoreError(f"wallet {wallet_id}: the share is invalid") from None
                share = schemes.KeyShare(party, value, secret.hostseckey, secret.pairwise)
                schemes.check_share(record, share)
            wallet = NodeWallet(record, names, share)
            self._cache[wallet_id] = wallet
            return wallet

    def add(self, record: schemes.WalletRecord, share: schemes.KeyShare | None) -> NodeWallet:
        """Store a new wallet (share sealed under the node passphrase or data key); never
        overwrites."""
        names = self._names(record)
        wdir = self._dir / record.wallet_id
        if (wdir / "wallet.json").exists():
            return self.get(record.wallet_id)
        if share is not None:
            self._seal_into(wdir, record, share)
        keystore.write_new_file(wdir / "wallet.json", _record_doc(record), 0o644)
        wallet = NodeWallet(record, names, share)
        with self._lock:
            self._cache[record.wallet_id] = wallet
        return wallet

    # -- epochs: staging, switching, cleaning up -------------------------------------------

    def _staged_dir(self, wallet_id: str, session: bytes) -> Path:
        if not wallet_id or not all(c in "0123456789abcdef" for c in wallet_id):
            raise KeystoreError(f"unknown wallet {wallet_id!r}")
        return self._dir / wallet_id / "staged" / session.hex()

    def current(self, wallet_id: str) -> NodeWallet | None:
        """The wallet, or None if this node has no record of it yet (a party joining it)."""
        if not (self._dir / wallet_id / "wallet.json").is_file():
            return None
        return self.get(wallet_id)

    def stage(
        self, record: schemes.WalletRecord, share: schemes.KeyShare | None, session: bytes
    ) -> None:
        """Store the next epoch's record and this node's new share (if any) of a rotation,
        durably, beside the current epoch: nothing changes until :meth:`switch`."""
        sdir = self._staged_dir(record.wallet_id, session)
        if (sdir / "wallet.json").exists():
            raise KeystoreError(f"wallet {record.wallet_id}: session already staged")
        if share is not None:
            schemes.check_share(record, share)
            self._seal_into(sdir, record, share)
        keystore.write_new_file(sdir / "wallet.json", _record_doc(record), 0o644)  # last
        fsync_dir(sdir.parent)
        if share is not None:
            with self._lock:
                self._staged_shares[(record.wallet_id, session)] = share

    def staged(self, wallet_id: str, session: bytes) -> schemes.WalletRecord | None:
        """The record staged by rotation ``session``, or None if there is none."""
        path = self._staged_dir(wallet_id, session) / "wallet.json"
        if not path.is_file():
            return None
        return schemes.WalletRecord.from_json(keystore.read_json(path, "staged wallet record"))

    def staged_ids(self) -> list[str]:
        """Wallets with a staged epoch here (also ones this node has no record of yet)."""
        if not self._dir.is_dir():
            return []
        return sorted(p.name for p in self._dir.iterdir() if self.has_staged(p.name))

    def staged_records(self, wallet_id: str) -> list[schemes.WalletRecord]:
        """The records staged for a wallet (complete ones), by session."""
        out = []
        sdir = self._dir / wallet_id / "staged"
        for p in sorted(sdir.iterdir()) if sdir.is_dir() else []:
            try:
                rec = self.staged(wallet_id, bytes.fromhex(p.name))
            except (TmpcError, ValueError, OSError):
                continue
            if rec is not None:
                out.append(rec)
        return out

    def has_staged(self, wallet_id: str) -> bool:
        """Whether any rotation of the wallet is staged here (not switched to yet)."""
        sdir = self._dir / wallet_id / "staged"
        return sdir.is_dir() and any((p / "wallet.json").is_file() for p in sdir.iterdir())

    def switch(self, wallet_id: str, session: bytes) -> NodeWallet:
        """Make rotation ``session``'s staged epoch current: link the staged share file into
        the wallet directory, then replace ``wallet.json`` (the atomic switch). Idempotent; a
        crash at any point leaves the old epoch or the new one. Call :meth:`cleanup` after.

        Raises :class:`KeystoreError` if nothing is staged for ``session`` or the staged
        epoch does not follow the current one."""
        current = self.current(wallet_id)
        record = self.staged(wallet_id, session)
        if record is None:
            raise KeystoreError(f"wallet {wallet_id}: nothing staged for that rotation")
        if record.wallet_id != wallet_id:
            raise KeystoreError(f"wallet {wallet_id}: the staged record is another wallet's")
        if current is not None and current.record.epoch >= record.epoch:
            return current
        if current is not None and record.epoch != current.record.epoch + 1:
            raise KeystoreError(
                f"wallet {wallet_id}: the staged epoch {record.epoch} does not follow "
                f"{current.record.epoch}"
            )
        wdir = self._dir / wallet_id
        sdir = self._staged_dir(wallet_id, session)
        for party, path in keystore.share_files(sdir, record.epoch).items():
            target = keystore.share_path(wdir, party, record.epoch)
            if target.exists():
                if target.read_bytes() != path.read_bytes():
                    raise KeystoreError(f"{target} exists with other content")
            else:
                os.link(path, target)
        fsync_dir(wdir)
        keystore.replace_file(wdir / "wallet.json", (sdir / "wallet.json").read_bytes())
        with self._lock:
            self._cache.pop(wallet_id, None)
            share = self._staged_shares.pop((wallet_id, session), None)
            if share is not None:  # the share this process staged: no need to open the file
                wallet = NodeWallet(record, self._names(record), share)
                self._cache[wallet_id] = wallet
                return wallet
        return self.get(wallet_id)

    def cleanup(self, wallet_id: str) -> list[Path]:
        """Delete what the current epoch no longer needs: other epochs' share files and every
        staged directory whose epoch is not ahead of the current one. Returns what went."""
        current = self.current(wallet_id)
        if current is None:
            return []
        wdir = self._dir / wallet_id
        removed = keystore.retire_share_files(wdir, current.record.epoch)
        sdir = wdir / "staged"
        if sdir.is_dir():
            for p in sorted(sdir.iterdir()):
                try:
                    doc = keystore.read_json(p / "wallet.json", "staged wallet record")
                    ahead = int(doc["epoch"]) > current.record.epoch
                except (KeystoreError, OSError, KeyError, TypeError, ValueError):
                    ahead = False  # incomplete (killed while staging) or unreadable
                if not ahead:
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(p)
            fsync_dir(sdir)
        return removed

    def discard_staged(self, wallet_id: str, session: bytes) -> None:
        """Delete rotation ``session``'s staged files (it failed before any switch)."""
        with self._lock:
            self._staged_shares.pop((wallet_id, session), None)
        sdir = self._staged_dir(wallet_id, session)
        if sdir.exists():
            shutil.rmtree(sdir, ignore_errors=True)
            fsync_dir(sdir.parent)

    def reseal(self, record: schemes.WalletRecord) -> NodeWallet:
        """Move this node's share, unchanged, to the next epoch ``record`` (a repair elsewhere
        replaced another party's host key): seal it again for that epoch beside the current
        file, then replace ``wallet.json``. Call :meth:`cleanup` after.

        Raises :class:`KeystoreError` unless this node's share is that record's share of the
        same party."""
        current = self.get(record.wallet_id)
        share = current.share
        if share is None or record.epoch != current.record.epoch + 1:
            raise KeystoreError(f"wallet {record.wallet_id}: nothing to seal for that epoch")
        schemes.check_share(record, share)
        if record.host_public_keys.get(share.identifier) != current.record.host_public_keys.get(
            share.identifier
        ):
            raise KeystoreError(f"wallet {record.wallet_id}: the record moved this party away")
        wdir = self._dir / record.wallet_id
        target = keystore.share_path(wdir, share.identifier, record.epoch)
        if not target.exists():
            self._seal_into(wdir, record, share)
        keystore.replace_file(wdir / "wallet.json", _record_doc(record))
        wallet = NodeWallet(record, self._names(record), share)
        with self._lock:
            self._cache[record.wallet_id] = wallet
        return wallet

    def set_record(self, record: schemes.WalletRecord) -> NodeWallet:
        """Replace the public record of a wallet by a later epoch's in which this node holds
        no share (a coordinator that is not a party follows its epochs; a party removed by a
        reshare keeps the record only: :meth:`cleanup` then deletes its old share file)."""
        current = self.get(record.wallet_id)
        if record.epoch <= current.record.epoch:
            return current
        keystore.replace_file(self._dir / record.wallet_id / "wallet.json", _record_doc(record))
        with self._lock:
            self._cache.pop(record.wallet_id, None)
        return self.get(record.wallet_id)
