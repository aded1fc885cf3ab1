"""The ``tmpc`` command line: a thin shell over :mod:`tmpc.schemes` and :mod:`tmpc.state.keystore`.

Human output by default, ``--json`` for scripts. Every error a user can cause ends in one line
on standard error (``tmpc: error: ...``), never a traceback, and one of these exit statuses:

====  =========================================================================================
0     success
1     a signature is invalid or a check failed (``verify``, ``testnet-check``)
2     a usage or input error: unknown option, bad value, missing or corrupt file, wrong
      passphrase (:class:`~tmpc.errors.InputError`, :class:`~tmpc.errors.CryptoError`)
3     a protocol abort that names a misbehaving party (:class:`~tmpc.errors.ProtocolError`)
4     a local system failure: disk full, I/O error, permission denied, database busy
128+N killed by signal N: 130 SIGINT, 143 SIGTERM, 129 SIGHUP (temporary files removed)
====  =========================================================================================

``tmpc`` and ``tmpc tx`` without a command print their help on standard output and exit 2.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar

import click

from tmpc import schemes
from tmpc.cli import node as cli_node
from tmpc.cli.audit import audit as audit_group
from tmpc.cli.backup import backup as backup_group
from tmpc.cli.monitor import monitor as monitor_command
from tmpc.cli.policy import policy as policy_group
from tmpc.encoding import bytes_from_hex
from tmpc.errors import (
    CryptoError,
    KeystoreError,
    ParameterError,
    ProtocolError,
    TmpcError,
)
from tmpc.state.keystore import (
    DEFAULT_KDF,
    MAX_SHARE_FILE_BYTES,
    check_passphrase,
    open_share,
    read_json,
    read_limited,
    replace_file,
    retire_share_files,
    seal_share,
    share_path,
    write_new_file,
)
from tmpc.state.store import fsync_dir

if TYPE_CHECKING:
    from tmpc.chains.check import ChainCheck
    from tmpc.cli.testnet import ApiCall, ClusterWallet

__all__ = [
    "EXIT_CHECK_FAILED",
    "EXIT_INPUT",
    "EXIT_OK",
    "EXIT_PROTOCOL",
    "EXIT_SYSTEM",
    "Interrupted",
    "cli",
    "main",
]

T = TypeVar("T")

PASSPHRASE_ENV = "TMPC_PASSPHRASE"  # noqa: S105 (a variable name)

EXIT_OK: Final = 0
#: A signature is invalid or a check failed.
EXIT_CHECK_FAILED: Final = 1
#: A usage or input error (the caller's mistake).
EXIT_INPUT: Final = 2
#: A protocol abort naming a misbehaving party.
EXIT_PROTOCOL: Final = 3
#: A local system failure (disk full, I/O error, permission denied, database busy).
EXIT_SYSTEM: Final = 4

# A file-system error about the path the user named (missing, a file where a directory
# belongs, exists already) is an input error; any other (full disk, I/O error, permission
# denied, read-only file system) is a failure of the local system.
_PATH_ERRNOS: Final = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP}
)
#: Largest message ``--message-file`` reads.
MAX_MESSAGE_FILE_BYTES: Final = 64 << 20


# --------------------------------------------------------------------------------------------
# Signals: SIGINT, SIGTERM and SIGHUP unwind the command (so that temporary files are removed)
# and end it with one line and status 128 + N.
# --------------------------------------------------------------------------------------------

_SIGNAL_NAMES: Final = ("SIGINT", "SIGTERM", "SIGHUP")


class Interrupted(BaseException):
    """Raised by tmpc's signal handler: unwinds like ``KeyboardInterrupt`` so cleanup runs.

    A ``BaseException`` (as ``KeyboardInterrupt``), so ``except Exception`` does not catch it,
    and not a ``KeyboardInterrupt``, so click does not turn it into ``Abort``.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _SignalState:
    """What the handler has seen; module-level because signal handlers are process-wide."""

    received: int | None = None  # the first signal; later ones are ignored while unwinding
    pending: bool = False  # received inside a deferred section, not raised yet
    deferring: int = 0  # depth of :func:`_signals_deferred` sections


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _SignalState.received is not None:
        return  # already unwinding: let the cleanup finish
    _SignalState.received = signum
    if _SignalState.deferring:
        _SignalState.pending = True
        return
    raise Interrupted(signum)


def _install_signal_handlers() -> None:
    if sys.platform == "win32":  # pragma: no cover (tmpc runs on POSIX systems)
        return
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        for name in _SIGNAL_NAMES:
            signal.signal(getattr(signal, name), _on_signal)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """A section a signal must not cut in two (create-and-record, rename-and-forget).

    A signal that arrives inside is raised as :class:`Interrupted` when the outermost such
    section ends normally; if the section raises, the pending signal is reported by
    :func:`main` instead.
    """
    _SignalState.deferring += 1
    try:
        yield
    finally:
        _SignalState.deferring -= 1
    signum = _SignalState.received
    if not _SignalState.deferring and _SignalState.pending and signum is not None:
        _SignalState.pending = False
        raise Interrupted(signum)


def _fail(message: str, code: int = EXIT_INPUT) -> NoReturn:
    # Once an outcome is being reported, a signal must not cut the report (or add a second
    # line): it is only recorded.
    _SignalState.deferring += 1
    click.echo(f"tmpc: error: {message}", err=True)
    sys.exit(code)


_emit = cli_node.emit


def _env_passphrase() -> str | None:
    """``TMPC_PASSPHRASE`` decoded as UTF-8 whatever the locale, or None if unset."""
    if os.supports_bytes_environ:
        raw = os.environb.get(PASSPHRASE_ENV.encode())
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise KeystoreError(
                f"passphrase is not valid UTF-8: {PASSPHRASE_ENV} holds bytes that are not "
                "UTF-8 text"
            ) from None
    return os.environ.get(PASSPHRASE_ENV)  # pragma: no cover (Windows)


def _passphrase(confirm: bool) -> str:
    """The share passphrase, from ``TMPC_PASSPHRASE`` or a prompt; refused if empty or not
    UTF-8 (see :mod:`tmpc.state.keystore` for how it is normalised)."""
    value = _env_passphrase()
    if value is not None:
        if not value:
            raise KeystoreError(f"{PASSPHRASE_ENV} is set but empty")
        return value
    if not sys.stdin.isatty():
        raise KeystoreError(f"no passphrase: set {PASSPHRASE_ENV} or run in a terminal")
    text: str = click.prompt(
        "Share passphrase", hide_input=True, confirmation_prompt=confirm, err=True
    )
    if not text:
        raise KeystoreError("an empty passphrase cannot protect a key share")
    try:
        check_passphrase(text)
    except KeystoreError:
        raise KeystoreError(
            "passphrase is not valid UTF-8: check the terminal's encoding (locale)"
        ) from None
    return text


def _load_wallet(directory: Path) -> schemes.WalletRecord:
    if not directory.is_dir():
        raise KeystoreError(f"wallet directory not found: {directory}")
    return schemes.WalletRecord.from_json(read_json(directory / "wallet.json", "wallet.json"))


def _parse_signers(
    text: str, record: schemes.WalletRecord, minimum: int | None = None, option: str = "--signers"
) -> list[int]:
    try:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not all(p.isascii() and p.isdigit() for p in parts):
            raise ValueError(text)
        ids = [int(p) for p in parts]
    except ValueError:
        raise ParameterError(
            f"{option} must be a comma-separated list of ids, got {text!r}"
        ) from None
    if len(set(ids)) != len(ids):
        raise ParameterError(f"{option} lists a party twice")
    unknown = [i for i in ids if i not in record.verification_shares]
    if unknown:
        raise ParameterError(
            f"unknown signer(s) {','.join(map(str, unknown))}: parties are 1..{record.parties}"
        )
    need = record.threshold if minimum is None else minimum
    if len(ids) < need:
        raise ParameterError(f"{len(ids)} part(y/ies) given in {option}; {need} needed")
    return sorted(ids)


def _open_party_share(
    wallet_dir: Path, record: schemes.WalletRecord, i: int, passphrase: str
) -> tuple[schemes.KeyShare, bytes | None]:
    """Read, decrypt and check party ``i``'s share file; every failure names the party.

    Returns the key share and the party's presignature store key (ECDSA wallets)."""
    path = share_path(wallet_dir, i, record.epoch)
    data = read_limited(path, f"share file of party {i}", MAX_SHARE_FILE_BYTES)
    try:
        secret = open_share(
            data, passphrase=passphrase, wallet_id=record.wallet_id, party=i, epoch=record.epoch
        )
    except CryptoError:
        raise CryptoError(f"party {i}: wrong passphrase or tampered share file") from None
    except KeystoreError as exc:
        raise KeystoreError(f"party {i}: {exc}: {path}") from None
    try:
        secshare = schemes.get_scheme(record.scheme).group.decode_scalar(secret.secshare)
    except TmpcError:
        raise KeystoreError(f"share file of party {i} holds an invalid share") from None
    share = schemes.KeyShare(i, secshare, secret.hostseckey, secret.pairwise)
    schemes.check_share(record, share)
    return share, secret.store_key


def _open_shares(
    wallet_dir: Path, record: schemes.WalletRecord, ids: Sequence[int], quiet: bool
) -> tuple[list[schemes.KeyShare], dict[int, bytes]]:
    passphrase = _passphrase(confirm=False)
    shares, store_keys = [], {}
    with _progress(ids, "Opening shares (Argon2id)", quiet) as bar:
        for i in bar:
            share, store_key = _open_party_share(wallet_dir, record, i, passphrase)
            shares.append(share)
            if store_key is not None:
                store_keys[i] = store_key
    return shares, store_keys


def _progress(items: Sequence[T], label: str, quiet: bool) -> Any:
    """A progress bar on standard error when it is a terminal (and not ``--json``)."""
    if quiet or not sys.stderr.isatty():
        return contextlib.nullcontext(items)
    return click.progressbar(items, label=label, file=sys.stderr)


def _remove_staging(staging: Path) -> None:
    with _signals_deferred():  # a signal must not leave half a staging directory behind
        shutil.rmtree(staging, ignore_errors=True)


def _install_wallet_dir(
    out: Path, files: Iterable[tuple[str, bytes, int]], what: str = "the wallet"
) -> None:
    """Write ``files`` (name, content, mode) into a fresh hidden directory beside ``out`` and
    rename it into place, so a failure (disk full, permissions) or a signal leaves no half
    wallet and no staging directory. ``files`` may be a generator: it runs (e.g. seals the
    shares) while the staging directory exists, and an error or signal in it cleans up too.
    ``what`` names the directory in the error (e.g. ``"the backup"``).

    Raises:
        KeystoreError: ``out``'s parent is not a directory.
        OSError: the file system failed; the message says that nothing was written.
    """
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise KeystoreError(f"{parent} is not an existing directory")
    staging: Path | None = None
    try:
        with _signals_deferred():  # created and recorded, or neither
            staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
        for name, content, mode in files:
            write_new_file(staging / name, content, mode=mode)
        with _signals_deferred():  # renamed and forgotten, or neither
            if out.exists():
                out.rmdir()  # checked empty above; rmdir refuses anything else
            os.rename(staging, out)
            staging = None
    except OSError as exc:
        if staging is not None:
            _remove_staging(staging)
            staging = None
        reason = exc.strerror or type(exc).__name__
        raise OSError(
            exc.errno, f"cannot write {what} {out}: {reason}; nothing was written"
        ) from None
    finally:
        if staging is not None:
            _remove_staging(staging)
    fsync_dir(parent)  # the rename itself is durable


def _wallet_files(
    record: schemes.WalletRecord,
    shares: Sequence[schemes.KeyShare],
    passphrase: str,
    wallet_json: bytes,
    quiet: bool,
) -> Iterator[tuple[str, bytes, int]]:
    """Seal each share as it is written (Argon2id takes a while per party), then wallet.json."""
    with _progress(shares, "Encrypting shares (Argon2id)", quiet) as bar:
        for s in bar:
            content = seal_share(
                schemes.share_secret(record, s),
                wallet_id=record.wallet_id,
                party=s.identifier,
                epoch=record.epoch,
                passphrase=passphrase,
                kdf=DEFAULT_KDF,
            )
            yield share_path(Path(), s.identifier, record.epoch).name, content, 0o600
    yield "wallet.json", wallet_json, 0o644


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tmpc")
def cli() -> None:
    """tmpc: threshold custody. Keys are born split among parties; any t of them sign."""


@cli.command()
@click.option(
    "--scheme", required=True, type=click.Choice(list(schemes.SCHEMES)), help="Signature scheme."
)
@click.option("--threshold", "-t", required=True, type=int, help="Signers needed (t).")
@click.option("--parties", "-n", required=True, type=int, help="Parties holding shares (n).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="New wallet dir.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def keygen(scheme: str, threshold: int, parties: int, out: Path, as_json: bool) -> None:
    """Run the dealerless DKG (all parties in this process) and write the wallet.

    Writes OUT/wallet.json (public) and OUT/party-I.share (encrypted, one per party).
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise KeystoreError(f"{out} exists and is not an empty directory; refusing to overwrite")
    passphrase = _passphrase(confirm=True)
    record, shares = schemes.keygen(scheme, threshold, parties)
    wallet_doc = record.to_json()
    wallet_json = (json.dumps(wallet_doc, indent=2) + "\n").encode()
    _install_wallet_dir(out, _wallet_files(record, shares, passphrase, wallet_json, as_json))
    _emit(
        {**wallet_doc, "directory": str(out)},
        as_json,
        [
            f"wallet {record.wallet_id}: {scheme}, {threshold}-of-{parties}",
            f"public key  {record.public_key.hex()}",
            f"written     {out}/wallet.json and {parties} encrypted share files",
        ],
    )


def _read_message(message: str | None, message_file: str | None) -> bytes:
    """The message of ``--message`` (hex) or ``--message-file`` (raw bytes; ``-``: stdin)."""
    if message is not None and message_file is not None:
        raise ParameterError("give the message with --message (hex) or --message-file, not both")
    if message is not None:
        return bytes_from_hex(message, "--message")
    if message_file is None:
        raise ParameterError(
            "give the message: --message HEX or --message-file FILE ('-' for standard input)"
        )
    if message_file != "-":
        return read_limited(Path(message_file), "--message-file", MAX_MESSAGE_FILE_BYTES)
    data = sys.stdin.buffer.read(MAX_MESSAGE_FILE_BYTES + 1)
    if len(data) > MAX_MESSAGE_FILE_BYTES:
        raise ParameterError(
            f"--message-file: the message is larger than {MAX_MESSAGE_FILE_BYTES} bytes"
        )
    return data


_MESSAGE_FILE_HELP = "Read the message's raw bytes from FILE ('-': standard input)."


@cli.command()
@click.option("--wallet", "wallet_ref", required=True, help="Wallet directory, or id with --node.")
@click.option("--signers", default=None, help="Comma-separated party ids, e.g. 1,3,4.")
@click.option("--message", default=None, help="Message to sign, hex.")
@click.option("--message-file", default=None, metavar="FILE", help=_MESSAGE_FILE_HELP)
@click.option("--path", default=None, help="BIP32 child, e.g. m/0/5 (ECDSA and Taproot).")
@click.option("--node", default=None, metavar="URL", help="Sign across the cluster via a node.")
@click.option("--auth", default=None, metavar="FILE", help="Operator credential (or TMPC_AUTH).")
@click.option("--request-id", default=None, help="Idempotency key for --node.")
@click.option(
    "--transaction",
    "transaction_file",
    default=None,
    metavar="FILE",
    help="With --node: the unsigned transaction (JSON) each node parses and judges by policy.",
)
@click.option(
    "--approval",
    "approval_files",
    multiple=True,
    metavar="FILE",
    help="With --node: an approval (tmpc policy approve), repeatable.",
)
@click.option(
    "--group",
    default=None,
    metavar="NAME",
    help="With --node: the signing group that signs (default: the policy's choice).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def sign(
    wallet_ref: str,
    signers: str | None,
    message: str | None,
    message_file: str | None,
    path: str | None,
    node: str | None,
    auth: str | None,
    request_id: str | None,
    transaction_file: str | None,
    approval_files: tuple[str, ...],
    group: str | None,
    as_json: bool,
) -> None:
    """Sign a message: with the shares of the listed parties (all in this process), or with
    --node, across the cluster's nodes (the node picks a quorum of ready parties).

    The message is --message (hex) or --message-file (raw bytes); exactly one of them. For
    ecdsa-secp256k1 wallets it is the 32-byte digest. With --node, --transaction FILE gives
    the unsigned transaction instead ({"chain": "bitcoin", "psbt": ..., "network": ...,
    "input": K}, {"chain": "ethereum", "fields": {...}} or {"chain": "solana", "message":
    BASE64}): every node computes the digest itself and judges the transaction by the
    signing policy, with the --approval files given. --group names the signing group (a
    sharing of the same key made by reshare --group); by default the node sends the request
    to the group the policy's matching rule names.
    """
    if (transaction_file or approval_files or group) and node is None:
        raise click.UsageError("--transaction, --approval and --group go with --node")
    if transaction_file is not None:
        if message is not None or message_file is not None:
            raise click.UsageError("--transaction replaces --message and --message-file")
        transaction = read_json(Path(transaction_file), "--transaction")
        approvals = [read_json(Path(f), "--approval") for f in approval_files]
        assert node is not None
        res = cli_node.sign_via_node(
            node, auth, wallet_ref, None, path, request_id, transaction, approvals, group
        )
        signer_text = _signer_text(res)
        _emit(res, as_json, [f"signature {res['signature']}", f"signers   {signer_text}"])
        return
    msg = _read_message(message, message_file)
    if node is not None:
        if signers is not None:
            raise click.UsageError("--signers is for local wallets; a node picks the quorum")
        approvals = [read_json(Path(f), "--approval") for f in approval_files]
        res = cli_node.sign_via_node(
            node, auth, wallet_ref, msg, path, request_id, None, approvals, group
        )
        signer_text = _signer_text(res)
        _emit(res, as_json, [f"signature {res['signature']}", f"signers   {signer_text}"])
        return
    if signers is None:
        raise click.UsageError("Missing option '--signers'.")
    wallet_dir = Path(wallet_ref)
    record = _load_wallet(wallet_dir)
    ids = _parse_signers(signers, record)
    dkls23 = schemes.get_scheme(record.scheme).dkls23
    if dkls23:
        schemes.ecdsa_digest(msg)  # refuse a wrong length before asking for the passphrase
    public_key = schemes.public_key_at(record, path)  # refuse a bad path before, too
    shares, store_keys = _open_shares(wallet_dir, record, ids, as_json)
    if dkls23:
        _sign_ecdsa(wallet_dir, record, shares, store_keys, msg, ids, path, public_key, as_json)
        return
    sig = schemes.sign(record, shares, msg, path=path)
    data_out = {
        "scheme": record.scheme,
        "wallet_id": record.wallet_id,
        "path": path or "m",
        "public_key": public_key.hex(),
        "message": msg.hex(),
        "signature": sig.hex(),
        "signers": ids,
    }
    _emit(data_out, as_json, [f"signature {sig.hex()}", f"signers   {','.join(map(str, ids))}"])


def _signer_text(res: dict[str, Any]) -> str:
    """Who signed, for a node's answer: party ids, node names and the signing group."""
    text = ",".join(map(str, res.get("signers", [])))
    if res.get("participants"):
        text += f" (nodes {','.join(res['participants'])}"
        text += f", group {res['group']})" if res.get("group") else ")"
    return text


def _sign_ecdsa(
    wallet_dir: Path,
    record: schemes.WalletRecord,
    shares: list[schemes.KeyShare],
    store_keys: dict[int, bytes],
    digest: bytes,
    ids: list[int],
    path: str | None,
    public_key: bytes,
    as_json: bool,
) -> None:
    from tmpc.chains.addresses import ethereum_address
    from tmpc.local import ecdsa as ecdsa_local

    sig = ecdsa_local.sign(wallet_dir, record, shares, store_keys, digest, path=path)
    out = {
        "scheme": record.scheme,
        "wallet_id": record.wallet_id,
        "path": path or "m",
        "public_key": public_key.hex(),
        "message": digest.hex(),
        "signature": sig.compact.hex(),
        "der": sig.der.hex(),
        "recovery_id": sig.recovery_id,
        "ethereum_address": ethereum_address(public_key),
        "signers": ids,
        "presignature_used": sig.from_presignature,
    }
    _emit(
        out,
        as_json,
        [
            f"signature   {sig.compact.hex()}",
            f"der         {sig.der.hex()}",
            f"recovery id {sig.recovery_id}",
            f"signers     {','.join(map(str, ids))}"
            + (" (stored presignature)" if sig.from_presignature else ""),
        ],
    )


@cli.command()
@click.option("--wallet", "wallet_ref", required=True, help="Wallet directory, or id with --node.")
@click.option("--signers", default=None, help="Comma-separated party ids, e.g. 1,2,3.")
@click.option("--count", default=1, show_default=True, type=int, help="How many to make.")
@click.option("--path", default=None, help="BIP32 child they will sign for (default: m).")
@click.option("--node", default=None, metavar="URL", help="Presign across the cluster's nodes.")
@click.option("--auth", default=None, metavar="FILE", help="Operator credential (or TMPC_AUTH).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def presign(
    wallet_ref: str,
    signers: str | None,
    count: int,
    path: str | None,
    node: str | None,
    auth: str | None,
    as_json: bool,
) -> None:
    """Make presignatures ahead of time (ecdsa-secp256k1 wallets).

    Locally, for the listed signer set: each later `tmpc sign` by exactly this set takes one
    and finishes it with the digest in a single round. With --node, across the cluster: each
    batch is made by a quorum the node picks and kept in those nodes' pools; a later
    `tmpc sign --node` finishes one in a single round when its whole signer set is ready. A
    presignature is used at most once.
    """
    if node is not None:
        if signers is not None:
            raise click.UsageError("--signers is for local wallets; a node picks the quorum")
        res = cli_node.presign_via_node(node, auth, wallet_ref, count, path)
        sets = sorted({",".join(map(str, s)) for s in res["signers"]})
        _emit(res, as_json, [f"made {res['made']} presignature(s), signer sets {' '.join(sets)}"])
        return
    if signers is None:
        raise click.UsageError("Missing option '--signers'.")
    from tmpc.local import ecdsa as ecdsa_local

    wallet_dir = Path(wallet_ref)
    record = _load_wallet(wallet_dir)
    if not schemes.get_scheme(record.scheme).dkls23:
        raise ParameterError("presignatures exist only for ecdsa-secp256k1 wallets")
    ids = _parse_signers(signers, record)
    shares, store_keys = _open_shares(wallet_dir, record, ids, as_json)
    stored = ecdsa_local.presign(wallet_dir, record, shares, store_keys, count, path=path)
    _emit(
        {"signers": ids, "made": count, "stored": stored},
        as_json,
        [f"made {count} presignature(s) for signers {','.join(map(str, ids))}; {stored} stored"],
    )


@cli.command()
@click.option("--wallet", "wallet_ref", default=None, help="Wallet directory, or id with --node.")
@click.option("--all", "every", is_flag=True, help="With --node: every wallet the node holds.")
@click.option("--node", default=None, metavar="URL", help="Rotate across the cluster's nodes.")
@click.option("--auth", default=None, metavar="FILE", help="Operator credential (or TMPC_AUTH).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def rotate(
    wallet_ref: str | None, every: bool, node: str | None, auth: str | None, as_json: bool
) -> None:
    """Give every party a new share of the same key (a refresh), in two phases.

    The wallet id, public key, chain code, xpub and every address stay. Needs every party's
    share. Phase 1 makes the new shares, checks each against the new verification shares,
    has every party (locally: a quorum) sign a test message (verified), and stores the new
    shares beside the old ones. Phase 2 switches (an atomic rename of wallet.json); only then
    are the old shares, presignatures and pairwise setups deleted. Interrupted before the
    switch, the wallet stays on the old epoch (run the command again).

    With --node URL, across the cluster: --wallet ID, or --all for every wallet the node
    holds (after a suspected compromise). A node that missed the switch catches up from its
    peers; the answer lists it as pending.
    """
    if node is not None:
        if (wallet_ref is None) == (not every):
            raise click.UsageError("give --wallet ID or --all with --node")
        results = cli_node.rotate_via_node(node, auth, wallet_ref, every)
        lines = []
        for r in results:
            lines.append(
                f"wallet {r['wallet_id']}: epoch {r['previous_epoch']} -> {r['epoch']}, "
                f"public key {r['public_key']} (unchanged)"
            )
            if r.get("pending"):
                lines.append(f"  not yet switched (will catch up): {', '.join(r['pending'])}")
        _emit(results[0] if wallet_ref is not None else {"rotations": results}, as_json, lines)
        return
    if every:
        raise click.UsageError("--all goes with --node")
    if wallet_ref is None:
        raise click.UsageError("Missing option '--wallet'.")
    _rotate_local(Path(wallet_ref), as_json)


@cli.command()
@click.option("--node", required=True, metavar="URL", help="A node of the cluster.")
@click.option("--wallet", "wallet_id", required=True, help="Id of a wallet the nodes hold.")
@click.option("--threshold", "-t", required=True, type=int, help="The new threshold.")
@click.option("--parties", required=True, help="The new parties: member nodes, comma-separated.")
@click.option(
    "--group",
    default=None,
    metavar="NAME",
    help="Copy the key to a new signing group NAME instead (the wallet keeps its parties).",
)
@click.option("--auth", default=None, metavar="FILE", help="Operator credential (or TMPC_AUTH).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def reshare(
    node: str,
    wallet_id: str,
    threshold: int,
    parties: str,
    group: str | None,
    auth: str | None,
    as_json: bool,
) -> None:
    """Move a wallet to new parties and/or a new threshold, keeping its key and addresses.

    Threshold-many current parties deal new shares to every new party (all must be up); the
    new parties prove their shares with a test signature, then every node switches to the
    next epoch (two-phase, as rotate). Parties left out keep the public record only: their
    share files are deleted, and the old shares never combine with the new ones.

    With --group NAME the key is copied instead: the wallet keeps its parties and shares,
    and the new parties get a sharing of the same key (same public key and addresses) as
    signing group NAME, with its own wallet id, epochs and rotations. The signing policy's
    rules name the group that signs each tier of requests.
    """
    res = cli_node.reshare_via_node(node, auth, wallet_id, threshold, parties, group)
    _emit(
        res,
        as_json,
        [
            (f"signing group {group}: " if group else "")
            + f"wallet {res['wallet_id']}: epoch {res['previous_epoch']} -> {res['epoch']}, "
            f"now {threshold}-of-{len(parties.split(','))}",
            f"public key  {res['public_key']} (unchanged)",
            *([f"not yet switched (will catch up): {', '.join(res['pending'])}"]
              if res.get("pending") else []),
        ],
    )  # fmt: skip


@cli.command()
@click.option("--node", required=True, metavar="URL", help="A node of the cluster.")
@click.option("--wallet", "wallet_id", required=True, help="Id of a wallet the nodes hold.")
@click.option("--party", required=True, type=int, help="The party whose share was lost (id).")
@click.option("--to", "to", required=True, metavar="NODE", help="The member node to receive it.")
@click.option("--auth", default=None, metavar="FILE", help="Operator credential (or TMPC_AUTH).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def repair(node: str, wallet_id: str, party: int, to: str, auth: str | None, as_json: bool) -> None:
    """Rebuild a lost party's share on another member node, with threshold-many others.

    No helper learns the share (each sends the new node random-looking parts); the new node
    checks it against the party's public verification share. The party's host key becomes
    the new node's (certified by the helpers), every node moves to the next epoch, and the
    old machine's share, if it ever comes back, is refused. For ECDSA a rotation follows, to
    set up the DKLs23 pairs of the new node with every party.
    """
    res = cli_node.repair_via_node(node, auth, wallet_id, party, to)
    lines = [
        f"wallet {res['wallet_id']}: party {party} now on {to}; epoch {res['previous_epoch']} "
        f"-> {res['epoch']}",
        f"public key  {res['public_key']} (unchanged)",
    ]
    if res.get("pending"):
        lines.append(f"not yet switched (will catch up): {', '.join(res['pending'])}")
    if "rotated_to" in res:
        lines.append(
            f"rotated to epoch {res['rotated_to']} (every DKLs23 pair set up again)"
            if res["rotated_to"] is not None
            else f"rotation failed ({res.get('rotation_error')}): run tmpc rotate --node"
        )
    _emit(res, as_json, lines)


def _rotate_local(wallet_dir: Path, as_json: bool) -> None:
    from tmpc.state.store import StateDB, retire_epoch, state_db_path

    record = _load_wallet(wallet_dir)
    retire_share_files(wallet_dir, record.epoch)  # leftovers of an interrupted rotation
    passphrase = _passphrase(confirm=False)
    shares = []
    with _progress(record.party_ids, "Opening shares (Argon2id)", as_json) as bar:
        for i in bar:
            shares.append(_open_party_share(wallet_dir, record, i, passphrase)[0])
    new_record, new_shares = schemes.refresh_shares(record, shares)
    # Phase 1: every new share is the new record's, and a quorum of them signs.
    for s in new_shares:
        schemes.check_share(new_record, s)
    probe = schemes.rotation_test_message(new_record)
    sig = schemes.sign(new_record, new_shares[: new_record.threshold], probe)
    if not schemes.verify(new_record.scheme, new_record.public_key, probe, sig):
        raise ProtocolError("the new shares did not produce a valid test signature")
    wallet_json = (json.dumps(new_record.to_json(), indent=2) + "\n").encode()
    for name, content, mode in _wallet_files(new_record, new_shares, passphrase, b"", as_json):
        if name != "wallet.json":
            write_new_file(wallet_dir / name, content, mode=mode)
    fsync_dir(wallet_dir)
    # Phase 2: the switch, then the old epoch's one-time and share material goes.
    with _signals_deferred():
        replace_file(wallet_dir / "wallet.json", wallet_json)
    retire_share_files(wallet_dir, new_record.epoch)
    retired: set[bytes] = set()
    for i in new_record.party_ids:
        path = state_db_path(wallet_dir, i)
        if path.exists():
            with StateDB(path, party=i) as db:
                retired |= retire_epoch(db, new_record.wallet_id)
    dropped = len(retired)
    _emit(
        {
            "wallet_id": new_record.wallet_id,
            "scheme": new_record.scheme,
            "epoch": new_record.epoch,
            "previous_epoch": record.epoch,
            "public_key": new_record.public_key.hex(),
            "presignatures_deleted": dropped,
        },
        as_json,
        [
            f"wallet {new_record.wallet_id}: epoch {record.epoch} -> {new_record.epoch}",
            f"public key  {new_record.public_key.hex()} (unchanged)",
            f"new shares written and checked; old shares and {dropped} presignature(s) deleted",
        ],
    )


@cli.command("pairwise-setup")
@click.option("--wallet", "wallet_dir", required=True, type=click.Path(path_type=Path))
@click.option("--parties", required=True, help="Comma-separated party ids (at least two).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def pairwise_setup(wallet_dir: Path, parties: str, as_json: bool) -> None:
    """Redo the DKLs23 pairwise setup among PARTIES (ecdsa-secp256k1 wallets).

    Fresh base OTs, OT-extension and zero-sharing seeds for every pair among them; afterwards
    they no longer refuse each other after a failed pairwise check. The key is unchanged.
    """
    from tmpc.local import ecdsa as ecdsa_local

    record = _load_wallet(wallet_dir)
    if not schemes.get_scheme(record.scheme).dkls23:
        raise ParameterError("the pairwise setup exists only for ecdsa-secp256k1 wallets")
    ids = _parse_signers(parties, record, minimum=2, option="--parties")
    shares, store_keys = _open_shares(wallet_dir, record, ids, as_json)
    pairs = ecdsa_local.redo_pairwise(wallet_dir, record, shares, store_keys)
    _emit(
        {"pairs": [list(p) for p in pairs]},
        as_json,
        [f"redid the pairwise setup of {len(pairs)} pair(s) among parties {parties}"],
    )


@cli.command()
@click.option("--wallet", "wallet_dir", required=True, type=click.Path(path_type=Path))
@click.option("--message", default=None, help="Signed message, hex.")
@click.option("--message-file", default=None, metavar="FILE", help=_MESSAGE_FILE_HELP)
@click.option("--signature", required=True, help="Signature, hex.")
@click.option("--path", default=None, help="BIP32 child the signature is for, e.g. m/0/5.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def verify(
    wallet_dir: Path,
    message: str | None,
    message_file: str | None,
    signature: str,
    path: str | None,
    as_json: bool,
) -> None:
    """Check a signature under the wallet's public key (exit 1 if invalid).

    The message is --message (hex) or --message-file (raw bytes); exactly one of them.
    """
    msg = _read_message(message, message_file)
    record = _load_wallet(wallet_dir)
    sig = bytes_from_hex(signature, "--signature")
    ok = schemes.verify(record.scheme, schemes.public_key_at(record, path), msg, sig)
    _emit({"valid": ok, "scheme": record.scheme}, as_json, ["valid" if ok else "INVALID"])
    if not ok:
        sys.exit(EXIT_CHECK_FAILED)


@cli.command()
@click.option("--wallet", "wallet_dir", required=True, type=click.Path(path_type=Path))
@click.option(
    "--network", type=click.Choice(["mainnet", "testnet", "signet", "regtest"]), default="mainnet"
)
@click.option("--path", default=None, help="BIP32 child, e.g. m/0/5 (ECDSA and Taproot).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def address(wallet_dir: Path, network: str, path: str | None, as_json: bool) -> None:
    """Print the wallet's address(es): Ethereum + P2WPKH (ECDSA), Taproot, or Solana.

    With --path, the address of that non-hardened BIP32 child of the wallet's key.
    """
    from tmpc.protocols.taproot import taproot_address
    from tmpc.schemes.addresses import wallet_address

    record = _load_wallet(wallet_dir)
    scheme = schemes.get_scheme(record.scheme)
    pk = schemes.public_key_at(record, path)
    extra: dict[str, Any] = {"network": network, "path": path or "m"}
    if scheme.bip32:
        extra["xpub"] = schemes.wallet_xpub(record, network)
    if "ethereum" in scheme.chains:
        from tmpc.chains.addresses import ethereum_address, p2wpkh_address

        eth = ethereum_address(pk)
        btc = p2wpkh_address(pk, network)
        _emit(
            {"ethereum": eth, "bitcoin_p2wpkh": btc, **extra},
            as_json,
            [f"ethereum        {eth}", f"bitcoin p2wpkh  {btc}"],
        )
        return
    if scheme.taproot:
        addr, kind = taproot_address(pk, network), "bitcoin-taproot"
    else:
        addr, kind = wallet_address(record, network)
    _emit({"address": addr, "kind": kind, **extra}, as_json, [addr])


_NODE_PICKS_QUORUM = "--signers is for local wallets; with --node the node picks the quorum"

_wallet_ref = click.option(
    "--wallet",
    "wallet_ref",
    required=True,
    help="Wallet directory, or with --node the id of a wallet the nodes hold.",
)
_node_url = click.option(
    "--node", default=None, metavar="URL", help="Sign across the cluster via this node."
)
_node_auth = click.option(
    "--auth", default=None, metavar="FILE", help="Operator credential (or TMPC_AUTH)."
)

SignerAt = Callable[[str | None, bool], Callable[[bytes], bytes]]


def _node_wallet(
    node: str, auth: str | None, wallet_id: str, signers: str | None
) -> tuple[ApiCall, ClusterWallet]:
    """``(API caller, ClusterWallet)`` of a node-held wallet, its record checked here."""
    from tmpc.cli.testnet import ClusterWallet

    if signers is not None:
        raise click.UsageError(_NODE_PICKS_QUORUM)
    call = cli_node.node_call(node, auth)
    return call, ClusterWallet.from_listing(call("GET", "/v1/wallets", None), wallet_id)


def _tx_wallet(
    wallet_ref: str, signers: str | None, node: str | None, auth: str | None
) -> tuple[schemes.WalletRecord, SignerAt]:
    """The wallet a ``tx`` or ``testnet-check`` command signs with: ``(record, signer_at)``.

    Without ``--node``, ``wallet_ref`` is a wallet directory and ``signer_at(path, quiet)``
    opens the shares of ``signers`` (default: the first t) here, asking the passphrase. With
    ``--node``, it is the id of a node-held wallet whose record the node sends and this
    process checks (:meth:`tmpc.cli.testnet.ClusterWallet.from_listing`); every signature is then
    the cluster's, through ``POST /v1/sign`` (:class:`tmpc.cli.testnet.NodeSigner`), and
    ``signers`` is refused (the node picks the quorum).
    """
    from tmpc.cli.testnet import NodeSigner, local_signer

    if node is not None:
        call, wallet = _node_wallet(node, auth, wallet_ref, signers)
        return wallet.record, lambda path, quiet: NodeSigner(call, wallet, path)
    wallet_dir = Path(wallet_ref)
    record = _load_wallet(wallet_dir)
    if signers is None:
        ids = record.party_ids[: record.threshold]
    else:
        ids = _parse_signers(signers, record)

    def signer_at(path: str | None, quiet: bool) -> Callable[[bytes], bytes]:
        shares, store_keys = _open_shares(wallet_dir, record, ids, quiet)
        return local_signer(wallet_dir, record, shares, store_keys, path)

    return record, signer_at


def _check_json(r: ChainCheck) -> dict[str, Any]:
    """A chain check as ``testnet-check --json`` prints it."""
    return {
        "chain": r.chain,
        "scheme": r.scheme,
        "address": r.address,
        "txid": r.txid,
        "accepted": r.accepted,
        "flipped_rejected": r.flipped_rejected,
        "detail": r.detail,
    }


@cli.command("testnet-check")
@_wallet_ref
@click.option("--signers", default=None, help="Party ids to sign with (default: the first t).")
@click.option("--path", default=None, help="BIP32 child, e.g. m/0/5 (ECDSA and Taproot).")
@_node_url
@_node_auth
@click.option(
    "--nodes",
    default=None,
    metavar="URL,...",
    help="With --node: other parties' node URLs, to read each party's own round times.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def testnet_check(
    wallet_ref: str,
    signers: str | None,
    path: str | None,
    node: str | None,
    auth: str | None,
    nodes: str | None,
    as_json: bool,
) -> None:
    """Prove offline that the chains accept this wallet's signatures (exit 1 on any failure).

    Signs a real transaction with the cluster for every chain that fits the scheme and submits
    it to that chain's own validation code (libbitcoinkernel regtest chain, py-evm, LiteSVM),
    together with a copy whose signature has one byte flipped, which must be rejected.

    With --node, for a wallet the nodes hold: the rollout check that every party can take
    part. Request ids are chosen so that each party in turn is in the quorum, until every
    party signed a transaction the validator accepted; the report lists, per party, whether
    it did and how long its rounds took (timed by its own node if its URL is in --nodes, else
    by the coordinating node when that one took part).
    """
    from tmpc.cli.testnet import run_checks

    if node is not None:
        _rollout_check(node, auth, wallet_ref, signers, path, nodes, as_json)
        return
    if nodes is not None:
        raise click.UsageError("--nodes goes with --node")
    record, signer_at = _tx_wallet(wallet_ref, signers, None, None)
    schemes.public_key_at(record, path)  # refuse a bad path before the passphrase
    results = run_checks(record, signer_at(path, as_json), path)
    rows = [
        f"{'chain':9} {'accepted':8} {'flipped rejected':16} {'txid':20} address",
        *(
            f"{r.chain:9} {'yes' if r.accepted else 'NO':8} "
            f"{'yes' if r.flipped_rejected else 'NO':16} {r.txid[:18]:20} {r.address}"
            for r in results
        ),
    ]
    failed = [r for r in results if not r.ok]
    rows.append(
        "PASS" if not failed else "FAIL: " + "; ".join(f"{r.chain}: {r.detail}" for r in failed)
    )
    _emit(
        {
            "scheme": record.scheme,
            "passed": not failed,
            "checks": [_check_json(r) for r in results],
        },
        as_json,
        rows,
    )
    if failed:
        sys.exit(EXIT_CHECK_FAILED)


def _rollout_check(
    node: str,
    auth: str | None,
    wallet_id: str,
    signers: str | None,
    path: str | None,
    nodes: str | None,
    as_json: bool,
) -> None:
    """``testnet-check --node``: every party of the wallet in an accepted transaction."""
    from tmpc.cli.testnet import party_reports, rollout_check

    call, wallet = _node_wallet(node, auth, wallet_id, signers)
    schemes.public_key_at(wallet.record, path)  # a bad path fails before any request
    coordinator = str(call("GET", "/v1/health", None)["name"])
    readers = {coordinator: call}
    for url in (u.strip() for u in (nodes or "").split(",")):
        if url:  # each one answers before the check starts: a wrong URL fails now
            other = cli_node.node_call(url, auth)
            readers[str(other("GET", "/v1/health", None)["name"])] = other
    txs = rollout_check(call, wallet, coordinator, path)
    sessions = {
        name: read("GET", "/v1/sessions", None)["sessions"] for name, read in readers.items()
    }
    parties = party_reports(wallet, txs, sessions, coordinator)
    failed = [f"{t.result.chain}: {t.result.detail}" for t in txs if not t.result.ok]
    failed += [f"party {p.name} signed no accepted transaction" for p in parties if not p.accepted]
    rows = [
        f"{'chain':9} {'accepted':8} {'flipped rejected':16} {'txid':20} signers",
        *(
            f"{t.result.chain:9} {'yes' if t.result.accepted else 'NO':8} "
            f"{'yes' if t.result.flipped_rejected else 'NO':16} {t.result.txid[:18]:20} "
            + " ".join(",".join(s) for _rid, s in t.requests)
            for t in txs
        ),
        "",
        f"{'party':8} {'id':>3}  {'took part':9} {'accepted':8} rounds (s)",
    ]
    for p in parties:
        timing = " | ".join("/".join(f"{x:.3f}" for x in r) for r in p.rounds_s)
        rows.append(
            f"{p.name:8} {p.party_id:>3}  {'yes' if p.took_part else 'NO':9} "
            f"{'yes' if p.accepted else 'NO':8} "
            + (f"{timing} (timed by {p.rounds_from})" if timing else "not recorded")
        )
    rows.append("PASS" if not failed else "FAIL: " + "; ".join(failed))
    checks = [
        {
            **_check_json(t.result),
            "target": t.target,
            "requests": [{"request_id": rid, "signers": list(s)} for rid, s in t.requests],
        }
        for t in txs
    ]
    _emit(
        {
            "scheme": wallet.record.scheme,
            "wallet_id": wallet.record.wallet_id,
            "coordinator": coordinator,
            "passed": not failed,
            "checks": checks,
            "parties": [p.to_json() for p in parties],
        },
        as_json,
        rows,
    )
    if failed:
        sys.exit(EXIT_CHECK_FAILED)


@cli.group()
def tx() -> None:
    """Build a transaction, have the cluster sign it, print the raw transaction."""


def _split_pair(text: str, what: str) -> tuple[str, int]:
    head, sep, amount = text.rpartition(":")
    if not sep or not head or not amount.isdigit():
        raise ParameterError(f"{what} must look like X:AMOUNT, got {text!r}")
    return head, int(amount)


@tx.command("bitcoin")
@_wallet_ref
@click.option("--signers", default=None, help="Party ids to sign with (default: the first t).")
@_node_url
@_node_auth
@click.option("--utxo", "utxos", multiple=True, help="TXID:VOUT:AMOUNT_SAT of the wallet.")
@click.option("--to", "outputs", multiple=True, help="ADDRESS:AMOUNT_SAT (repeatable).")
@click.option("--fee", type=int, default=None, help="Fee in satoshis.")
@click.option("--change", default=None, help="Change address (default: the wallet's own).")
@click.option("--psbt", default=None, help="Sign this base64 PSBT instead of building a spend.")
@click.option(
    "--network", type=click.Choice(["mainnet", "testnet", "signet", "regtest"]), default="mainnet"
)
@click.option("--path", default=None, help="BIP32 child that owns the UTXOs, e.g. m/0/5.")
@click.option(
    "--allow-high-fee",
    is_flag=True,
    help="Sign a fee above 0.1 BTC or 10000 sat/vB (Bitcoin Core's -maxtxfee / maxfeerate).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def tx_bitcoin(
    wallet_ref: str,
    signers: str | None,
    node: str | None,
    auth: str | None,
    utxos: tuple[str, ...],
    outputs: tuple[str, ...],
    fee: int | None,
    change: str | None,
    psbt: str | None,
    network: str,
    path: str | None,
    allow_high_fee: bool,
    as_json: bool,
) -> None:
    """Spend the wallet's P2WPKH (ECDSA) or P2TR (Taproot) outputs, or sign a PSBT.

    Refuses a fee rate below 1 sat/vB (nodes do not relay it) and, unless --allow-high-fee, a
    fee above 0.1 BTC or a fee rate above 10000 sat/vB, as Bitcoin Core does; for a PSBT,
    also Taproot inputs whose internal key or merkle root is not the wallet's.

    With --node URL, WALLET is the id of a wallet the nodes hold and the cluster signs every
    input through the node's API (the node picks the quorum).
    """
    from tmpc.chains import bitcoin

    record, signer_at = _tx_wallet(wallet_ref, signers, node, auth)
    scheme = schemes.get_scheme(record.scheme)
    if "bitcoin" not in scheme.chains:
        raise ParameterError("Bitcoin needs an ecdsa-secp256k1 or schnorr-bip340 wallet")
    if psbt is not None and (utxos or outputs or fee is not None or change):
        raise ParameterError(
            "--psbt signs a given PSBT; it does not take --utxo/--to/--fee/--change"
        )
    if psbt is None:
        if not utxos or not outputs or fee is None:
            raise ParameterError("give --utxo, --to and --fee (or --psbt)")
        pk = schemes.public_key_at(record, path)
        own_spk = bitcoin.wallet_script_pubkey(record.scheme, pk)
        coins = []
        for u in utxos:
            head, amount = _split_pair(u, "--utxo")
            txid, sep, vout = head.partition(":")
            if not sep or not vout.isdigit():
                raise ParameterError(f"--utxo must look like TXID:VOUT:AMOUNT, got {u!r}")
            coins.append(bitcoin.Utxo(txid, int(vout), amount, own_spk))
        outs = [_split_pair(o, "--to") for o in outputs]
        change_addr = change or bitcoin.wallet_address(record.scheme, pk, network)
        spend = bitcoin.build_spend(coins, outs, fee, change_addr, network=network)
        bitcoin.check_spend_fee(spend, allow_high_fee=allow_high_fee)  # before the passphrase
    psbt_options: dict[str, Any] = {"allow_high_fee": allow_high_fee}
    if psbt is not None:
        if scheme.taproot:
            internal, _tweak = schemes.hd_tweak(record, path)
            psbt_options["taproot_internal_key"] = internal.encode()[1:]
            psbt_options["taproot_merkle_root"] = record.taproot_merkle_root
        pk = schemes.public_key_at(record, path)
        bitcoin.check_psbt(psbt, pk, record.scheme, **psbt_options)  # before the passphrase
    sign_fn = signer_at(path, as_json)
    if psbt is not None:
        signed_psbt = bitcoin.sign_psbt(psbt, sign_fn, pk, record.scheme, **psbt_options)
        summary = bitcoin.psbt_summary(signed_psbt, network)
        _emit(
            {"psbt": signed_psbt, **summary},
            as_json,
            [
                *(f"pays {a} sat to {addr}" for addr, a in summary["outputs"]),
                f"fee  {summary['fee_sat']} sat"
                if summary["fee_sat"] is not None
                else "fee  unknown",
                signed_psbt,
            ],
        )
        return
    signed = bitcoin.sign_spend(spend, sign_fn, pk, record.scheme, allow_high_fee=allow_high_fee)
    outs_shown = [
        (bitcoin.script_pubkey_to_address(o.script_pubkey, network), o.amount_sat)
        for o in spend.outputs
    ]
    _emit(
        {
            "raw": signed.raw.hex(),
            "txid": signed.txid,
            "network": network,
            "fee_sat": spend.fee_sat,
            "outputs": outs_shown,
        },
        as_json,
        [
            *(f"pays {a} sat to {addr}" for addr, a in outs_shown),
            f"fee  {spend.fee_sat} sat"
            + (
                f" (asked {fee}; change below dust added)"
                if fee is not None and fee != spend.fee_sat
                else ""
            ),
            f"txid {signed.txid}",
            signed.raw.hex(),
        ],
    )


@tx.command("ethereum")
@_wallet_ref
@click.option("--signers", default=None, help="Party ids to sign with (default: the first t).")
@_node_url
@_node_auth
@click.option("--to", "to_addr", required=True, help="Recipient (EIP-55 checksummed).")
@click.option("--value", required=True, type=int, help="Amount in wei.")
@click.option("--nonce", required=True, type=int)
@click.option("--chain-id", required=True, type=int)
@click.option("--gas", default=21000, show_default=True, type=int)
@click.option("--max-fee", type=int, default=None, help="maxFeePerGas in wei (EIP-1559).")
@click.option("--priority-fee", type=int, default=None, help="maxPriorityFeePerGas in wei.")
@click.option("--gas-price", type=int, default=None, help="Legacy EIP-155 transaction instead.")
@click.option("--data", default="", help="Call data, hex.")
@click.option("--path", default=None, help="BIP32 child that sends, e.g. m/0/5.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def tx_ethereum(
    wallet_ref: str,
    signers: str | None,
    node: str | None,
    auth: str | None,
    to_addr: str,
    value: int,
    nonce: int,
    chain_id: int,
    gas: int,
    max_fee: int | None,
    priority_fee: int | None,
    gas_price: int | None,
    data: str,
    path: str | None,
    as_json: bool,
) -> None:
    """An EIP-1559 (type 2) transfer or call, or a legacy EIP-155 one with --gas-price.

    With --node URL, WALLET is the id of a wallet the nodes hold and the cluster signs
    through the node's API (the node picks the quorum).
    """
    from tmpc.chains import ethereum

    payload = bytes_from_hex(data, "--data") if data else b""
    transaction: ethereum.EthTx
    if gas_price is not None and (max_fee is not None or priority_fee is not None):
        raise ParameterError(
            "--gas-price (legacy) and --max-fee/--priority-fee (EIP-1559) exclude each other"
        )
    if gas_price is not None:
        transaction = ethereum.LegacyTx(nonce, gas_price, gas, to_addr, value, payload, chain_id)
    else:
        if max_fee is None or priority_fee is None:
            raise ParameterError("give --max-fee and --priority-fee (or --gas-price)")
        transaction = ethereum.Eip1559Tx(
            chain_id, nonce, priority_fee, max_fee, gas, to_addr, value, payload
        )
    record, signer_at = _tx_wallet(wallet_ref, signers, node, auth)
    if "ethereum" not in schemes.get_scheme(record.scheme).chains:
        raise ParameterError("Ethereum needs an ecdsa-secp256k1 wallet")
    pk = schemes.public_key_at(record, path)
    signed = ethereum.sign_transaction(transaction, signer_at(path, as_json), pk)
    _emit(
        {"raw": "0x" + signed.raw.hex(), "tx_hash": signed.tx_hash, "from": signed.sender},
        as_json,
        [f"tx hash {signed.tx_hash}", f"from    {signed.sender}", "0x" + signed.raw.hex()],
    )


@tx.command("solana")
@_wallet_ref
@click.option("--signers", default=None, help="Party ids to sign with (default: the first t).")
@_node_url
@_node_auth
@click.option("--to", "to_addr", required=True, help="Recipient address (base58).")
@click.option("--lamports", required=True, type=int)
@click.option("--blockhash", required=True, help="Recent blockhash (base58).")
@click.option("--v0", "versioned", is_flag=True, help="A versioned (v0) transaction.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def tx_solana(
    wallet_ref: str,
    signers: str | None,
    node: str | None,
    auth: str | None,
    to_addr: str,
    lamports: int,
    blockhash: str,
    versioned: bool,
    as_json: bool,
) -> None:
    """A SOL transfer from the wallet's address (raw transaction in base64, as RPC takes it).

    With --node URL, WALLET is the id of a wallet the nodes hold and the cluster signs
    through the node's API (the node picks the quorum).
    """
    import base64

    from tmpc.chains import solana

    record, signer_at = _tx_wallet(wallet_ref, signers, node, auth)
    if "solana" not in schemes.get_scheme(record.scheme).chains:
        raise ParameterError("Solana needs an ed25519 wallet")
    sign_fn = signer_at(None, as_json)
    signed = solana.sign_transfer(
        record.public_key, to_addr, lamports, blockhash, sign_fn, versioned=versioned
    )
    raw64 = base64.b64encode(signed.raw).decode()
    _emit(
        {"raw_base64": raw64, "signature": signed.signature_b58},
        as_json,
        [f"signature {signed.signature_b58}", raw64],
    )


@cli.command()
@click.option("--scheme", required=True, type=click.Choice(list(schemes.SCHEMES)))
@click.option("--threshold", "-t", required=True, type=int)
@click.option("--parties", "-n", required=True, type=int)
@click.option("--runs", default=None, type=int, help="Measured runs [default: 20; 30 with --nodes]")
@click.option(
    "--nodes",
    is_flag=True,
    help="Measure a local cluster of node processes (mutual TLS on loopback) instead.",
)
@click.option(
    "--requests",
    default=None,
    type=int,
    help="With --nodes: signatures in the throughput run [default: 200]",
)
@click.option(
    "--in-flight",
    default=None,
    type=int,
    help="With --nodes: requests outstanding in the throughput run [default: 32]",
)
@click.option(
    "--no-observe",
    is_flag=True,
    help="With --nodes: run the nodes without audit log and metrics (to measure their cost).",
)
@click.option(
    "--observe-overhead",
    is_flag=True,
    help="With --nodes: measure what audit log and metrics cost, A/B interleaved: two clusters,"
    " one with --no-observe, measured in alternation (--runs per round, --rounds rounds).",
)
@click.option(
    "--rounds",
    default=None,
    type=int,
    help="With --observe-overhead: rounds of alternation [default: 10]",
)
@click.option(
    "--policy",
    "policy",
    is_flag=True,
    help="Measure what the signing policy adds to a request at one node (ecdsa-secp256k1).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def bench(
    scheme: str,
    threshold: int,
    parties: int,
    runs: int | None,
    nodes: bool,
    requests: int | None,
    in_flight: int | None,
    no_observe: bool,
    observe_overhead: bool,
    rounds: int | None,
    policy: bool,
    as_json: bool,
) -> None:
    """Measure DKG and signing CPU time with all parties in this process, or (--nodes)
    request-to-signature latency and throughput of a local cluster of nodes, or (--policy)
    the signing policy's work per request at one node (wall-clock: parsing the transaction,
    approvals, rules, the velocity ledger), or (--nodes --observe-overhead) what the audit log
    and the metrics add to node signing.

    With --nodes, progress goes to standard error; every signature is checked by an
    independent verifier, and one that does not verify fails the run.
    """
    from tmpc.cli import bench as bench_mod

    if (observe_overhead or rounds is not None) and not (nodes and not no_observe):
        raise ParameterError("--observe-overhead and --rounds need --nodes (not --no-observe)")
    if rounds is not None and not observe_overhead:
        raise ParameterError("--rounds needs --observe-overhead")
    if policy:
        if nodes or scheme != "ecdsa-secp256k1":
            raise ParameterError("--policy measures an Ethereum transfer: --scheme ecdsa-secp256k1")
        records = bench_mod.run_policy_bench(threshold, parties, 200 if runs is None else runs)
    elif observe_overhead:
        records = bench_mod.run_observe_overhead(
            scheme,
            threshold,
            parties,
            rounds=bench_mod.OVERHEAD_ROUNDS if rounds is None else rounds,
            per_round=bench_mod.OVERHEAD_PER_ROUND if runs is None else runs,
            requests=bench_mod.OVERHEAD_REQUESTS if requests is None else requests,
            in_flight=bench_mod.NODE_IN_FLIGHT if in_flight is None else in_flight,
            progress=lambda line: click.echo(line, err=True),
        )
    elif nodes:
        records = bench_mod.run_node_bench(
            scheme,
            threshold,
            parties,
            runs=bench_mod.NODE_RUNS if runs is None else runs,
            requests=bench_mod.NODE_REQUESTS if requests is None else requests,
            in_flight=bench_mod.NODE_IN_FLIGHT if in_flight is None else in_flight,
            progress=lambda line: click.echo(line, err=True),
            observe=not no_observe,
        )
    else:
        if requests is not None or in_flight is not None or no_observe:
            raise ParameterError("--requests, --in-flight and --no-observe need --nodes")
        records = bench_mod.run_bench(scheme, threshold, parties, 20 if runs is None else runs)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in records], indent=2))
        return
    for r in records:
        line = (
            f"{r.scheme} {r.op:15} {r.threshold}-of-{r.parties}: median {r.median_s * 1e3:.2f} ms"
        )
        if r.p90_s is not None:
            line += f", p90 {r.p90_s * 1e3:.2f}"
        line += f" (min {r.min_s * 1e3:.2f}, max {r.max_s * 1e3:.2f}, {r.runs} runs)"
        if r.throughput_per_s is not None:
            line += f"; {r.throughput_per_s:.1f} signatures/s with {r.in_flight} in flight"
        if r.presignature is not None:
            line += f"; presignature {r.presignature}"
        if r.observe is not None:
            line += "; audit and metrics " + ("on" if r.observe else "off")
        if r.cpu_per_signature_s is not None:
            line += f"; CPU {r.cpu_per_signature_s * 1e3:.1f} ms per signature"
        if r.overhead is not None and r.overhead_low is not None and r.overhead_high is not None:
            line += (
                f"; overhead {r.overhead * 100:+.1f}% (95% interval {r.overhead_low * 100:+.1f}%"
                f" to {r.overhead_high * 100:+.1f}%)"
            )
        click.echo(line)


cli_node.register(cli)
cli.add_command(backup_group)
cli.add_command(policy_group)
cli.add_command(audit_group)
cli.add_command(monitor_command)


def _os_error_message(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or type(exc).__name__}{where}"


def _run() -> int:
    """Run the command line; every expected outcome becomes an exit status (and one line)."""
    try:
        rc = cli.main(prog_name="tmpc", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        # ``tmpc`` or ``tmpc tx`` alone: the help, readable, where help goes; still a usage
        # error for a script that forgot its command.
        click.echo(exc.ctx.get_help())
        _fail("missing command (see the help above)", EXIT_INPUT)
    except click.exceptions.Abort:
        _fail("aborted", EXIT_INPUT)  # end of input at a prompt
    except click.ClickException as exc:
        hint = " (see tmpc --help)" if isinstance(exc, click.UsageError) else ""
        message = " ".join(exc.format_message().split())
        _fail(f"{message}{hint}", EXIT_INPUT)
    except ProtocolError as exc:
        # Culprits are party ids (1..n, tmpc.ids) on every path: the protocols run as machines
        # (tmpc.local), which convert ChillDKG's and BIP445's 0-based indices at their edge.
        # No path has a coordinator: without culprits the fault names nobody (a split view of
        # a broadcast, or a DKLs23 value that no party commits to).
        who = ",".join(map(str, exc.culprits)) or "nobody (not attributable to one party)"
        _fail(f"{exc} (blamed: {who})", EXIT_PROTOCOL)
    except TmpcError as exc:  # input errors, wrong passphrase, refused state
        _fail(str(exc), EXIT_INPUT)
    except OSError as exc:
        # The file system said no: about the path the user gave (input), or the machine
        # itself (full disk, I/O error, permissions: a system failure).
        code = EXIT_INPUT if exc.errno in _PATH_ERRNOS else EXIT_SYSTEM
        _fail(_os_error_message(exc), code)
    except MemoryError:
        _fail("out of memory", EXIT_SYSTEM)
    return rc if isinstance(rc, int) else EXIT_OK


def main() -> NoReturn:
    """Console entry point: runs :func:`cli` and turns every expected outcome into an exit
    status (see the module docs); errors print one line on standard error.

    SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` in the command, which unwinds it
    (temporary files are removed) and exits with 128 + the signal number.
    """
    _install_signal_handlers()
    try:
        code = _run()
    except Interrupted as exc:
        _fail(f"interrupted by {_signal_name(exc.signum)}", 128 + exc.signum)
    signum = _SignalState.received
    if signum is not None:  # a signal arrived while the outcome was being settled
        _fail(f"interrupted by {_signal_name(signum)}", 128 + signum)
    sys.exit(code)
