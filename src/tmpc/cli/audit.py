"""``tmpc audit verify|show``: check and read a node's audit log (:mod:`tmpc.audit`).

Registered on the main group by :mod:`tmpc.cli.main`; errors follow its exit codes: 0 the log
is good, 1 it is not (one line naming the first bad entry: ``tmpc: error: audit log DIR:
entry N: reason``; with ``--json`` the whole report on standard output instead), 2 an input
error (no such node directory, no cluster file, an unreadable peer log directory).

Neither command needs the node's passphrase: the log is checked against the host keys in the
cluster file, and nothing in the log is secret.
"""

from __future__ import annotations

import collections
import datetime
import json
import sys
from pathlib import Path
from typing import Any

import click

from tmpc.audit.entry import Entry
from tmpc.audit.verify import iter_lines, log_paths, verify
from tmpc.errors import DecodeError, KeystoreError
from tmpc.node import config as node_config
from tmpc.state import keystore

__all__ = ["audit"]

_as_json = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
_node_dir = click.option(
    "--node-dir",
    "--dir",
    "directory",
    required=True,
    type=click.Path(path_type=Path),
    help="The node directory (as for tmpc node run --dir).",
)


def _node(directory: Path, cluster_file: Path | None) -> tuple[str, node_config.Cluster]:
    """The node's name (``node.json``) and its cluster (``--cluster`` or ``DIR/cluster.json``)."""
    if not directory.is_dir():
        raise KeystoreError(f"node directory not found: {directory}")
    name = node_config.load_config(directory).name
    if cluster_file is None:
        return name, node_config.load_cluster(directory)
    data = keystore.read_limited(cluster_file, "cluster file", 8 << 20)
    return name, node_config.parse_cluster(data, str(cluster_file))


@click.group()
def audit() -> None:
    """Nodes' audit logs: verify one (chain, signatures, cosigned checkpoints) or show it."""


@audit.command("verify")
@_node_dir
@click.option(
    "--cluster",
    "cluster_file",
    type=click.Path(path_type=Path),
    default=None,
    help="The cluster file [default: the node's DIR/cluster.json].",
)
@click.option(
    "--peer-dir",
    "peer_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Another node's directory or audit.log (repeatable): its records of the heads it "
    "cosigned for this node must match this log.",
)
@click.option(
    "--min-cosigners",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Cosignatures each checkpoint needs.",
)
@click.option(
    "--max-unanchored",
    type=click.IntRange(min=0),
    default=None,
    help="Fail if more entries than this follow the last cosigned head.",
)
@_as_json
def audit_verify(
    directory: Path,
    cluster_file: Path | None,
    peer_dirs: tuple[Path, ...],
    min_cosigners: int,
    max_unanchored: int | None,
    as_json: bool,
) -> None:
    """Check a node's audit log and name the first bad entry.

    Checks every entry's hash chain and signature, the signed head (a truncated log), each
    checkpoint's cosignatures and the head it vouches for (a rewritten log), and with
    --peer-dir the heads the other nodes recorded cosigning. Exits 1 if anything is wrong.
    """
    from tmpc.cli.main import EXIT_CHECK_FAILED, _fail

    name, cluster = _node(directory, cluster_file)
    for peer in peer_dirs:
        if not peer.exists():
            raise KeystoreError(f"peer log not found: {peer}")
    report = verify(
        directory,
        cluster,
        name,
        min_cosigners=min_cosigners,
        peer_logs=peer_dirs,
        max_unanchored=max_unanchored,
    )
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        if not report.ok:
            sys.exit(EXIT_CHECK_FAILED)
        return
    if report.first is not None:
        _fail(f"audit log {directory}: {report.first}", EXIT_CHECK_FAILED)
    click.echo(
        f"audit log of node {name}: {report.entries} entries, good; head {report.head.hex()}"
    )
    anchored = (
        f"cosigned up to entry {report.anchored_seq}" if report.anchored_seq else "none cosigned"
    )
    click.echo(f"checkpoints: {report.checkpoints} ({anchored})")
    for w in report.warnings:
        click.echo(f"warning: {w}")


def _when(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@audit.command("show")
@_node_dir
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Show the last N entries (0: all).",
)
@click.option("--type", "type_prefix", default=None, help="Only entries whose type starts so.")
@_as_json
def audit_show(directory: Path, limit: int, type_prefix: str | None, as_json: bool) -> None:
    """List a node's audit entries, oldest first (not a check: see tmpc audit verify)."""
    if not directory.is_dir():
        raise KeystoreError(f"node directory not found: {directory}")
    log, _head = log_paths(directory)
    rows: collections.deque[dict[str, Any]] = collections.deque(maxlen=limit or None)
    try:
        fh = open(log, "rb")
    except FileNotFoundError:
        raise KeystoreError(f"no audit log at {log}") from None
    with fh:
        for n, line, complete in iter_lines(fh):
            try:
                if not complete:
                    raise DecodeError("incomplete final line")
                row = Entry.from_line(line).to_json()
            except DecodeError as exc:
                row = {"line": n, "invalid": str(exc)}
            if type_prefix is None or str(row.get("type", "")).startswith(type_prefix):
                rows.append(row)
    if as_json:
        click.echo(json.dumps(list(rows), indent=2))
        return
    for row in rows:
        if "invalid" in row:
            click.echo(f"{'':>6}  line {row['line']}: not a valid entry ({row['invalid']})")
            continue
        data = json.dumps(row["data"], sort_keys=True, separators=(",", ":"))
        click.echo(f"{row['seq']:>6}  {_when(row['at'])}  {row['type']:<18}  {data}")
