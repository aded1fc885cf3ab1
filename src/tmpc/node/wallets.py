"""The wallets a node holds: public records and this node's encrypted share of each.

``DIR/wallets/WALLET_ID/wallet.json`` is the public record (as written by ``tmpc keygen``),
``DIR/wallets/WALLET_ID/party-N.share`` this node's share (party ``N``), sealed under the node's
passphrase, or its token-unwrapped data key, with :mod:`tmpc.state.keystore`. A node that
coordinated a DKG it was not a party of keeps the record only. Party ids map to node names
through the wallet's host public keys, which are the members' identity keys in the cluster file.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

from tmpc import schemes
from tmpc.errors import KeystoreError, TmpcError
from tmpc.node.config import Cluster, Unlock, open_secret, seal_secret
from tmpc.state import keystore
from tmpc.state.keystore import KdfParams

__all__ = ["NodeWallet", "WalletStore"]


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
            sealed = seal_secret(
                schemes.share_secret(record, share),
                wallet_id=record.wallet_id,
                party=share.identifier,
                epoch=record.epoch,
                unlock=self._unlock,
                kdf=self._kdf,
            )
            keystore.write_new_file(
                keystore.share_path(wdir, share.identifier, record.epoch), sealed
            )
        doc = json.dumps(record.to_json(), indent=2).encode() + b"\n"
        keystore.write_new_file(wdir / "wallet.json", doc, 0o644)
        wallet = NodeWallet(record, names, share)
        with self._lock:
            self._cache[record.wallet_id] = wallet
        return wallet
