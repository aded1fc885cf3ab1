"""``tmpc backup create|verify|restore``: one party's share exported for custodians, proven
restorable, and brought back (the formats are :mod:`tmpc.state.backup`'s).

Registered on the main group by :mod:`tmpc.cli.main`; errors follow its exit codes (2 an input
error: a bad file, mnemonic or option, a wrong passphrase or identity, a refused restore;
1 ``verify`` found a share that is not its party's; 4 a system failure). Passphrases follow
the other commands: a one-process wallet's from ``TMPC_PASSPHRASE`` or a prompt, a node's from
``--passphrase-file``, ``TMPC_NODE_PASSPHRASE`` or a prompt, and a backup passphrase from
``--backup-passphrase-file``, ``TMPC_BACKUP_PASSPHRASE`` or a prompt.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from tmpc.cli import node as cli_node
from tmpc.errors import CryptoError, KeystoreError, ParameterError
from tmpc.node import config as node_config
from tmpc.state import backup as bk
from tmpc.state import keystore

__all__ = ["BACKUP_PASSPHRASE_ENV", "backup"]

BACKUP_PASSPHRASE_ENV = "TMPC_BACKUP_PASSPHRASE"  # noqa: S105 (a variable name)
_HEX = frozenset("0123456789abcdef")


def _backup_passphrase(passphrase_file: Path | None, *, confirm: bool) -> str:
    """The backup passphrase: ``--backup-passphrase-file`` (its content less trailing line
    breaks), ``TMPC_BACKUP_PASSPHRASE`` (UTF-8 whatever the locale) or a prompt."""
    from tmpc.cli.node import read_secret

    value = read_secret(
        passphrase_file, BACKUP_PASSPHRASE_ENV, noun="passphrase",
        file_label="backup passphrase file", prompt="Backup passphrase", confirm=confirm,
        missing="no backup passphrase: use --backup-passphrase-file FILE, set "
        f"{BACKUP_PASSPHRASE_ENV}, or run in a terminal",
    )  # fmt: skip
    if not value:
        raise KeystoreError("an empty passphrase cannot protect a backup")
    keystore.check_passphrase(value)
    return value


def _node_sealing(
    node_dir: Path, passphrase_file: Path | None, pin_file: Path | None
) -> tuple[node_config.NodeConfig, node_config.Unlock, bk.ShareSealing]:
    """What opens the node's files (its passphrase, or its token's data key: asked for as
    every node command asks) and its share files sealed that way, at the node's cost."""
    from tmpc.node.server import NODE_KDF

    cfg, unlock = cli_node._node_unlock(node_dir, passphrase_file, pin_file)

    def seal(secret: keystore.ShareSecret, wallet_id: str, party: int, epoch: int) -> bytes:
        return node_config.seal_secret(
            secret, wallet_id=wallet_id, party=party, epoch=epoch, unlock=unlock, kdf=NODE_KDF
        )

    def open_(data: bytes, wallet_id: str, party: int, epoch: int) -> keystore.ShareSecret:
        return node_config.open_secret(
            data, wallet_id=wallet_id, party=party, epoch=epoch, unlock=unlock
        )

    return cfg, unlock, bk.ShareSealing(seal, open_)


def _node_wallet_dir(node_dir: Path, wallet_id: str) -> Path:
    node_config.load_config(node_dir)  # a node directory, or a clear error
    if not (wallet_id and set(wallet_id) <= _HEX):
        raise ParameterError(f"--wallet with --dir takes a wallet id (hex), not {wallet_id!r}")
    wdir = node_dir / "wallets" / wallet_id
    if not (wdir / "wallet.json").is_file():
        raise KeystoreError(f"node {node_dir} holds no wallet {wallet_id}")
    return wdir


def _parse_split(text: str) -> tuple[int, int]:
    k, sep, m = text.partition("/")
    if not (sep and k.isascii() and k.isdigit() and m.isascii() and m.isdigit()):
        raise ParameterError(f"--split takes K/M, e.g. 3/5, not {text!r}")
    return int(k), int(m)


def _no_node_secrets(passphrase_file: Path | None, pin_file: Path | None) -> None:
    from tmpc.cli.main import PASSPHRASE_ENV

    if passphrase_file is not None or pin_file is not None:
        raise ParameterError(
            "--passphrase-file and --hsm-pin-file unlock a node (with --dir); a one-process "
            f"wallet's passphrase comes from {PASSPHRASE_ENV} or a prompt"
        )


def _labels_json(labels: bk.BackupLabels, protection: str) -> dict[str, Any]:
    return {**labels.to_json(), "protection": protection}


def _describe(labels: bk.BackupLabels) -> str:
    return (
        f"backup {labels.backup_id}: party {labels.party} of wallet {labels.wallet_id} "
        f"({labels.scheme}, key epoch {labels.epoch})"
    )


_passphrase_file = click.option(
    "--passphrase-file",
    type=click.Path(path_type=Path),
    default=None,
    help=(
        f"With --dir: file holding the node passphrase (else ${cli_node.NODE_PASSPHRASE_ENV} "
        "or a prompt)."
    ),
)
_hsm_pin_file = click.option(
    "--hsm-pin-file",
    type=click.Path(path_type=Path),
    default=None,
    help=(
        f"With --dir, token nodes: file holding the token PIN (else ${cli_node.NODE_HSM_PIN_ENV} "
        "or a prompt)."
    ),
)
_backup_passphrase_file = click.option(
    "--backup-passphrase-file",
    type=click.Path(path_type=Path),
    default=None,
    help=f"File holding the backup passphrase (else ${BACKUP_PASSPHRASE_ENV} or a prompt).",
)
_inputs = click.option(
    "--in",
    "inputs",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="A backup file, or (repeat) custodian files / mnemonic text files of a split.",
)
_identities = click.option(
    "--identity",
    "identities",
    multiple=True,
    type=click.Path(path_type=Path),
    help="age identity file (age-keygen output) for an age backup; repeatable.",
)
_as_json = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group()
def backup() -> None:
    """Back up one party's key share, prove a backup restores, restore it."""


@backup.command("create")
@click.option(
    "--wallet", "wallet_ref", required=True, help="Wallet directory, or wallet id with --dir."
)
@click.option("--party", type=int, default=None, help="Party id (one-process wallet).")
@click.option(
    "--dir",
    "node_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Node directory: back up this node's share of wallet --wallet.",
)
@_passphrase_file
@_hsm_pin_file
@click.option(
    "--recipient",
    "recipients",
    multiple=True,
    metavar="AGE_PUBLIC_KEY",
    help="Encrypt to this custodian's age public key (age1...); repeatable.",
)
@click.option("--passphrase", "use_passphrase", is_flag=True, help="Seal under a passphrase.")
@click.option("--split", default=None, metavar="K/M", help="M SLIP-39 mnemonics, any K restore.")
@_backup_passphrase_file
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="New backup file (age, passphrase) or new directory (--split).",
)
@_as_json
def create(
    wallet_ref: str,
    party: int | None,
    node_dir: Path | None,
    passphrase_file: Path | None,
    hsm_pin_file: Path | None,
    recipients: tuple[str, ...],
    use_passphrase: bool,
    split: str | None,
    backup_passphrase_file: Path | None,
    out: Path,
    as_json: bool,
) -> None:
    """Export one party's share, encrypted, for custodians.

    Exactly one protection: --recipient (age), --passphrase, or --split K/M (one custodian
    file and one QR code per mnemonic, written into the new directory OUT).
    """
    from tmpc.cli.main import _install_wallet_dir, _passphrase

    if sum((bool(recipients), use_passphrase, split is not None)) != 1:
        raise ParameterError("give exactly one of --recipient, --passphrase and --split K/M")
    if backup_passphrase_file is not None and not use_passphrase:
        raise ParameterError("--backup-passphrase-file goes with --passphrase")
    k_m = _parse_split(split) if split is not None else None
    if k_m is not None:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise KeystoreError(f"{out} exists and is not an empty directory; refusing")
    elif out.exists():
        raise KeystoreError(f"{out} already exists; refusing to overwrite it")
    if node_dir is not None:
        if party is not None:
            raise ParameterError("--party is for one-process wallets: a node holds one share")
        wallet_dir = _node_wallet_dir(node_dir, wallet_ref)
        _cfg, _unlock, sealing = _node_sealing(node_dir, passphrase_file, hsm_pin_file)
    else:
        if party is None:
            raise ParameterError("--party is required with a wallet directory")
        _no_node_secrets(passphrase_file, hsm_pin_file)
        wallet_dir = Path(wallet_ref)
        sealing = bk.ShareSealing.with_passphrase(_passphrase(confirm=False))
    payload = bk.read_share(wallet_dir, sealing, party)
    labels = payload.labels
    data: dict[str, Any]
    if k_m is not None:
        shares = bk.split_to_mnemonics(payload, *k_m)
        files = []
        for s in shares:
            files.append((f"custodian-{s.index}.json", s.content, 0o600))
            files.append((f"custodian-{s.index}.svg", s.qr_svg, 0o600))
        _install_wallet_dir(out, files, "the backup")
        custodians = [
            {
                "index": s.index,
                "file": str(out / f"custodian-{s.index}.json"),
                "qr": str(out / f"custodian-{s.index}.svg"),
            }
            for s in shares
        ]
        data = {
            **_labels_json(labels, "slip39"),
            "split": {"threshold": k_m[0], "shares": k_m[1]},
            "files": [f for c in custodians for f in (c["file"], c["qr"])],
            "custodians": custodians,
        }
        human = [
            _describe(labels),
            f"split {k_m[0]}-of-{k_m[1]} (SLIP-39): any {k_m[0]} custodians restore it",
            *(f"custodian {c['index']}: {c['file']} {c['qr']}" for c in custodians),
        ]
    else:
        if recipients:
            content = bk.seal_to_age(payload, recipients)
            protection = "age"
        else:
            pw = _backup_passphrase(backup_passphrase_file, confirm=True)
            content = bk.seal_with_passphrase(payload, pw)
            protection = "passphrase"
        keystore.write_new_file(out, content)
        data = {**_labels_json(labels, protection), "files": [str(out)]}
        if recipients:
            data["recipients"] = list(dict.fromkeys(r.strip() for r in recipients))
        human = [_describe(labels), f"{protection} backup written to {out}"]
    cli_node.emit(data, as_json, human)


def _open(
    inputs: tuple[Path, ...], identities: tuple[Path, ...], passphrase_file: Path | None
) -> tuple[bk.SealedBackup, bk.BackupPayload]:
    files = [
        (str(p), keystore.read_limited(p, "backup file", bk.MAX_BACKUP_FILE_BYTES)) for p in inputs
    ]
    sealed = bk.read_backup(files)
    if sealed.protection == "age":
        if passphrase_file is not None:
            raise ParameterError("an age backup opens with --identity, not a passphrase")
        ids = []
        for p in identities:
            ids.extend(
                bk.parse_age_identities(
                    keystore.read_limited(p, "age identity file", 1 << 16), str(p)
                )
            )
        return sealed, sealed.open(identities=ids)
    if identities:
        raise ParameterError(f"--identity is for age backups; this one is {sealed.protection}")
    if sealed.protection == "passphrase":
        pw = _backup_passphrase(passphrase_file, confirm=False)
        return sealed, sealed.open(passphrase=pw)
    if passphrase_file is not None:
        raise ParameterError("a split backup opens with its mnemonics, not a passphrase")
    return sealed, sealed.open()


@backup.command("verify")
@_inputs
@_identities
@_backup_passphrase_file
@_as_json
def verify(
    inputs: tuple[Path, ...],
    identities: tuple[Path, ...],
    backup_passphrase_file: Path | None,
    as_json: bool,
) -> None:
    """Restore drill: decrypt a backup and check its share against the party's verification
    share (share * G), installing nothing. Exit 1 if the share is not the party's."""
    from tmpc.cli.main import EXIT_CHECK_FAILED

    sealed, payload = _open(inputs, identities, backup_passphrase_file)
    record, labels = payload.record, payload.labels
    data: dict[str, Any] = {
        **_labels_json(labels, sealed.protection),
        "threshold": record.threshold,
        "parties": record.parties,
        "verification_share": record.verification_shares[labels.party].encode().hex(),
        "mnemonics_needed": sealed.split[0] if sealed.split else None,
        "installed": False,
    }
    try:
        bk.verify_share(payload)
    except KeystoreError as exc:
        cli_node.emit(
            {"valid": False, "reason": str(exc), **data},
            as_json,
            [_describe(labels), f"INVALID: {exc}"],
        )
        sys.exit(EXIT_CHECK_FAILED)
    cli_node.emit(
        {"valid": True, "reason": None, **data},
        as_json,
        [
            _describe(labels),
            f"wallet {record.threshold}-of-{record.parties}, public key {labels.public_key}",
            "valid: the share matches the party's verification share (nothing was installed)",
        ],
    )


@backup.command("restore")
@_inputs
@_identities
@_backup_passphrase_file
@click.option(
    "--wallet",
    "wallet_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="One-process wallet directory to restore into (created if absent).",
)
@click.option(
    "--dir",
    "node_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Node directory to restore into (this node must be the backup's party).",
)
@_passphrase_file
@_hsm_pin_file
@_as_json
def restore(
    inputs: tuple[Path, ...],
    identities: tuple[Path, ...],
    backup_passphrase_file: Path | None,
    wallet_dir: Path | None,
    node_dir: Path | None,
    passphrase_file: Path | None,
    hsm_pin_file: Path | None,
    as_json: bool,
) -> None:
    """Install a backup's share into a wallet or node directory, sealed as that target seals
    shares. Never replaces a share: refused if the target holds one."""
    from tmpc.cli.main import _passphrase

    if (wallet_dir is None) == (node_dir is None):
        raise ParameterError("give exactly one of --wallet DIR and --dir NODE_DIR")
    if wallet_dir is not None:
        _no_node_secrets(passphrase_file, hsm_pin_file)
    if node_dir is not None:
        node_config.load_config(node_dir)  # before any passphrase is asked for
    sealed, payload = _open(inputs, identities, backup_passphrase_file)
    labels = payload.labels
    if node_dir is not None:
        cfg, unlock, sealing = _node_sealing(node_dir, passphrase_file, hsm_pin_file)
        try:
            identity = node_config.open_identity(cfg, unlock)
        except CryptoError:
            raise CryptoError(
                "the node's identity does not open: wrong node passphrase (or a tampered file)"
            ) from None
        if (node_dir / node_config.CLUSTER_FILE).exists():
            members = {c.host_pubkey for c in node_config.load_cluster(node_dir).members}
            if not set(payload.record.host_public_keys.values()) <= members:
                raise KeystoreError(
                    f"wallet {labels.wallet_id} has parties that are not members of this "
                    "node's cluster"
                )
        wallets_root = node_dir / "wallets"
        installed = bk.install_share(
            payload,
            wallets_root / labels.wallet_id,
            sealing,
            host_pubkey=identity.public(cfg.name).host_pubkey,
            one_share=True,
            newest_epoch=bk.newest_installed_epoch(wallets_root, payload.record),
        )
        target, directory = "node", node_dir
    else:
        assert wallet_dir is not None
        has_shares = wallet_dir.is_dir() and bool(keystore.share_files(wallet_dir))
        sealing = bk.ShareSealing.with_passphrase(_passphrase(confirm=not has_shares))
        installed = bk.install_share(payload, wallet_dir, sealing)
        target, directory = "wallet", wallet_dir
    cli_node.emit(
        {
            **_labels_json(labels, sealed.protection),
            "restored": True,
            "target": target,
            "directory": str(directory),
            "share_file": str(installed.share_file),
            "wallet_record": "written" if installed.wrote_record else "existing",
        },
        as_json,
        [
            _describe(labels),
            f"restored to {installed.share_file}"
            + (" (and wallet.json)" if installed.wrote_record else ""),
        ],
    )
