"""Command-line commands for party nodes: ``tmpc node``, ``tmpc cluster``, ``tmpc wallet``,
``tmpc sessions`` and the ``--node URL`` form of ``tmpc sign``.

Registered on the main group by :mod:`tmpc.cli`; errors follow its exit codes (2 input,
3 a protocol abort naming parties, 4 a system failure).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import string
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from tmpc.errors import KeystoreError, ParameterError, ProtocolError
from tmpc.node import config as node_config
from tmpc.node import hsm
from tmpc.node.client import ApiError, Credential, NodeClient, make_credential
from tmpc.state import keystore
from tmpc.transport.file import AirGapFolder, airgap_root, read_bundle

__all__ = [
    "NODE_HSM_PIN_ENV",
    "NODE_PASSPHRASE_ENV",
    "emit",
    "node_call",
    "read_secret",
    "register",
    "sign_via_node",
]

NODE_PASSPHRASE_ENV = "TMPC_NODE_PASSPHRASE"  # noqa: S105 (a variable name)
NODE_HSM_PIN_ENV = "TMPC_NODE_HSM_PIN"

#: Argon2id cost of a local (loopback, demo) cluster's node files: OWASP's minimum (19 MiB,
#: 2 passes), so that N nodes start quickly on a laptop; `tmpc node init` uses the default.
LOCAL_KDF = keystore.KdfParams(iterations=2, lanes=1, memory_kib=19 * 1024)


def read_secret(
    path: Path | None, env: str, *, noun: str, file_label: str, prompt: str, confirm: bool,
    missing: str,
) -> str:  # fmt: skip
    """A secret from a file (less trailing line breaks), the environment variable ``env``, or a
    prompt on a terminal; never from an argument (a command line is visible to every user)."""
    if path is not None:
        text = keystore.read_limited(path, file_label, 4096)
        try:
            return text.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise KeystoreError(f"{path}: the {noun} is not UTF-8") from None
    if os.supports_bytes_environ and env.encode() in os.environb:
        try:  # as bytes: UTF-8 whatever the locale says
            return os.environb[env.encode()].decode("utf-8")
        except UnicodeDecodeError:
            raise KeystoreError(
                f"{noun} is not valid UTF-8: {env} holds bytes that are not UTF-8 text"
            ) from None
    value = os.environ.get(env)
    if value is not None:
        return value
    if sys.stdin.isatty():
        return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True))
    raise KeystoreError(missing)


def _node_passphrase(passphrase_file: Path | None, *, confirm: bool = False) -> str:
    """The node passphrase: ``--passphrase-file``, ``TMPC_NODE_PASSPHRASE`` or a prompt."""
    value = read_secret(
        passphrase_file, NODE_PASSPHRASE_ENV, noun="passphrase", file_label="passphrase file",
        prompt="Node passphrase", confirm=confirm,
        missing=f"no node passphrase: use --passphrase-file FILE, set {NODE_PASSPHRASE_ENV}, "
        "or run in a terminal",
    )  # fmt: skip
    if not value:
        raise KeystoreError("an empty passphrase cannot protect a node's keys")
    keystore.check_passphrase(value)
    return value


def _token_pin(pin_file: Path | None) -> str:
    """A token node's PIN: ``--hsm-pin-file``, ``TMPC_NODE_HSM_PIN`` or a prompt (never an
    argument: a command line is visible to every user of the machine)."""
    value = read_secret(
        pin_file, NODE_HSM_PIN_ENV, noun="PIN", file_label="PIN file", prompt="Token PIN",
        confirm=False,
        missing=f"no token PIN: use --hsm-pin-file FILE, set {NODE_HSM_PIN_ENV}, "
        "or run in a terminal",
    )  # fmt: skip
    hsm.check_pin(value)
    return value


def _node_unlock(
    directory: Path, passphrase_file: Path | None, pin_file: Path | None
) -> tuple[node_config.NodeConfig, node_config.Unlock]:
    """The node's configuration and what opens its files: the passphrase, or for a token
    node the data key its token unwraps with the PIN."""
    cfg = node_config.load_config(directory)
    if cfg.hsm is None:
        if pin_file is not None:
            raise ParameterError(
                f"node {cfg.name} keeps its keys under a passphrase: --hsm-pin-file does not apply"
            )
        return cfg, _node_passphrase(passphrase_file)
    if passphrase_file is not None:
        raise ParameterError(
            f"node {cfg.name} keeps its keys in PKCS#11 token {cfg.hsm.token!r}: give its PIN "
            f"(--hsm-pin-file FILE or {NODE_HSM_PIN_ENV}), not a passphrase"
        )
    return cfg, node_config.unlock_with_token(cfg, _token_pin(pin_file))


def emit(data: dict[str, Any], as_json: bool, human: list[str]) -> None:
    """A command's outcome: ``data`` as indented JSON with ``--json``, else the ``human``
    lines (shared by every tmpc command)."""
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        for line in human:
            click.echo(line)


def _client(node: str, auth: str | None) -> NodeClient:
    return NodeClient(node, Credential.load(auth))


def _api(client: NodeClient, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    try:
        return client.call(method, path, body)
    except ApiError as exc:
        culprits = exc.body.get("culprits") or []
        if exc.status == 409 and culprits:
            raise ProtocolError(f"{exc} (node {client.url})", tuple(culprits)) from None
        raise ParameterError(f"{exc} (node {client.url})") from None


_passphrase_file = click.option(
    "--passphrase-file",
    type=click.Path(path_type=Path),
    default=None,
    help=f"File holding the node passphrase (else ${NODE_PASSPHRASE_ENV} or a prompt).",
)
_hsm_pin_file = click.option(
    "--hsm-pin-file",
    type=click.Path(path_type=Path),
    default=None,
    help=f"Token nodes: file holding the token PIN (else ${NODE_HSM_PIN_ENV} or a prompt).",
)
_auth = click.option(
    "--auth", default=None, metavar="FILE", help="Operator credential (else $TMPC_AUTH)."
)


@click.group()
def node() -> None:
    """Set up and run a party node."""


@node.command("init")
@click.option("--dir", "directory", required=True, type=click.Path(path_type=Path))
@click.option("--name", required=True, help="The node's name in the cluster.")
@click.option("--listen", required=True, help="HOST:PORT to listen on.")
@click.option("--url", default=None, help="URL peers reach it at (default https://HOST:PORT).")
@_passphrase_file
@click.option(
    "--hsm-module",
    default=None,
    metavar="PATH",
    help="Keep the share-wrapping key in a PKCS#11 token: path of its module (.so).",
)
@click.option("--hsm-token", default=None, metavar="LABEL", help="The token's label.")
@click.option(
    "--hsm-key-label",
    default=None,
    metavar="LABEL",
    help="Label of the token's AES key (created if absent; default tmpc-node/NAME).",
)
@_hsm_pin_file
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def node_init(
    directory: Path,
    name: str,
    listen: str,
    url: str | None,
    passphrase_file: Path | None,
    hsm_module: str | None,
    hsm_token: str | None,
    hsm_key_label: str | None,
    hsm_pin_file: Path | None,
    as_json: bool,
) -> None:
    """Create a node: identity key, TLS certificate, configuration.

    With --hsm-module and --hsm-token the node's files are sealed under a data key that only
    the token's key unwraps, and every start needs the token's PIN instead of a passphrase."""
    secret: str | hsm.TokenLogin
    if hsm_module is None and hsm_token is None:
        if hsm_key_label is not None or hsm_pin_file is not None:
            raise ParameterError(
                "--hsm-key-label and --hsm-pin-file need --hsm-module and --hsm-token"
            )
        secret = _node_passphrase(passphrase_file, confirm=True)
    elif hsm_module is None or hsm_token is None:
        raise ParameterError("--hsm-module and --hsm-token go together")
    else:
        if passphrase_file is not None:
            raise ParameterError("a token node has no passphrase: --passphrase-file does not apply")
        node_config.check_name(name)
        token = hsm.HsmConfig(
            os.path.abspath(hsm_module), hsm_token, hsm_key_label or hsm.default_key_label(name)
        )
        secret = hsm.TokenLogin(token, _token_pin(hsm_pin_file))
    cfg = node_config.init_node(directory, name, listen, secret, url=url)
    out: dict[str, Any] = {"name": cfg.name, "dir": str(directory), "url": cfg.url}
    lines = [f"node {cfg.name} created in {directory}", f"url {cfg.url}"]
    if cfg.hsm is not None:
        out["hsm"] = cfg.hsm.to_json()
        lines.append(f"keys sealed by token {cfg.hsm.token!r}, key {cfg.hsm.key_label!r}")
    emit(out, as_json, lines)


@node.command("card")
@click.option("--dir", "directory", required=True, type=click.Path(path_type=Path))
@_passphrase_file
@_hsm_pin_file
def node_card(directory: Path, passphrase_file: Path | None, hsm_pin_file: Path | None) -> None:
    """Print the node's public card (JSON) for the cluster file."""
    cfg, unlock = _node_unlock(directory, passphrase_file, hsm_pin_file)
    identity = node_config.open_identity(cfg, unlock)
    click.echo(json.dumps(node_config.card_of(cfg, identity), indent=2))


@node.command("run")
@click.option("--dir", "directory", required=True, type=click.Path(path_type=Path))
@_passphrase_file
@_hsm_pin_file
@click.option("--round-timeout", default=5.0, show_default=True, help="Seconds per round.")
@click.option("--ready-timeout", default=2.0, show_default=True, help="Seconds to be ready.")
@click.option(
    "--ready-grace",
    default=0.05,
    show_default=True,
    help="Seconds to wait for the other parties once a quorum is ready.",
)
@click.option(
    "--rotate-every",
    default=None,
    metavar="DAYS",
    type=float,
    help="Rotate each wallet this node leads (its party 1) every DAYS days (fractions allowed).",
)
@click.option(
    "--rotate-window",
    default=None,
    metavar="HH:MM-HH:MM",
    help="Scheduled rotations only in this daily window (UTC), e.g. 02:00-04:00.",
)
@click.option("--relay", default=None, metavar="URL", help="Peer messages via Redis (redis://).")
@click.option(
    "--airgap", is_flag=True, help="No peer network: messages via files (tmpc session export)."
)
@click.option(
    "--airgap-peer",
    "airgap_peers",
    multiple=True,
    metavar="NAME",
    help="A member that is air-gapped: messages to it via files (repeatable).",
)
@click.option(
    "--metrics-listen",
    default=None,
    metavar="HOST:PORT",
    help="Also serve /metrics over plain HTTP here, for Prometheus (e.g. 127.0.0.1:9470).",
)
@click.option(
    "--heartbeat-every",
    default=None,
    type=float,
    metavar="SECONDS",
    help="Each wallet this node leads signs a fixed, non-spendable test message this often.",
)
@click.option(
    "--no-observe", is_flag=True, hidden=True, help="Benchmarks only: no audit, no metrics."
)
def node_run(
    directory: Path,
    passphrase_file: Path | None,
    hsm_pin_file: Path | None,
    round_timeout: float,
    ready_timeout: float,
    ready_grace: float,
    rotate_every: float | None,
    rotate_window: str | None,
    relay: str | None,
    airgap: bool,
    airgap_peers: tuple[str, ...],
    metrics_listen: str | None,
    heartbeat_every: float | None,
    no_observe: bool,
) -> None:
    """Run the node until SIGTERM or SIGINT.

    With --airgap (on the air-gapped node) or --airgap-peer NAME (on the connected ones),
    messages to or from an air-gapped member go through the DIR/airgap folder: carry them
    with tmpc session export / import, and set the timeouts to the time a trip takes.

    With --rotate-every, the node rotates the wallets whose first party it is on a schedule,
    inside --rotate-window if given, and never while a session runs on it (it waits)."""
    from tmpc.node.engine import EngineSettings, parse_window
    from tmpc.node.server import run_node

    if round_timeout <= 0 or ready_timeout <= 0 or ready_grace < 0:
        raise ParameterError("timeouts must be positive")
    if rotate_every is not None and not 0 < rotate_every <= 3650:
        raise ParameterError("--rotate-every must be between 0 and 3650 days")
    if rotate_window is not None and rotate_every is None:
        raise ParameterError("--rotate-window goes with --rotate-every")
    if heartbeat_every is not None and not 1 <= heartbeat_every <= 86400 * 7:
        raise ParameterError("--heartbeat-every must be between 1 second and 7 days")
    settings = EngineSettings(
        ready_timeout=ready_timeout,
        round_timeout=round_timeout,
        ready_grace=ready_grace,
        rotate_every=rotate_every * 86400 if rotate_every is not None else None,
        rotate_window=parse_window(rotate_window) if rotate_window is not None else None,
        heartbeat_every=heartbeat_every,
        observe=not no_observe,
    )
    listen = _host_port(metrics_listen, "--metrics-listen") if metrics_listen else None
    if relay is not None and not relay.startswith(("redis://", "rediss://", "unix://")):
        raise ParameterError("--relay must be a redis://HOST:PORT URL")
    if airgap and (airgap_peers or relay is not None):
        raise ParameterError("--airgap excludes --relay and --airgap-peer")
    if not directory.is_dir():
        raise KeystoreError(f"{directory} is not a node directory")
    _cfg, unlock = _node_unlock(directory, passphrase_file, hsm_pin_file)
    run_node(
        directory, unlock, settings, relay=relay, airgap=airgap, airgap_peers=airgap_peers,
        metrics_listen=listen,
    )  # fmt: skip


def _host_port(text: str, what: str) -> tuple[str, int]:
    """``HOST:PORT`` as a pair; raises :class:`ParameterError` naming ``what``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ParameterError(f"{what} takes HOST:PORT, e.g. 127.0.0.1:9470")
    return host.strip("[]"), int(port)


@click.group()
def cluster() -> None:
    """Form a cluster of nodes, or run a local one."""


@cluster.command("join")
@click.option("--dir", "directory", required=True, type=click.Path(path_type=Path))
@click.option("--cluster", "cluster_file", required=True, type=click.Path(path_type=Path))
@_passphrase_file
@_hsm_pin_file
def cluster_join(
    directory: Path, cluster_file: Path, passphrase_file: Path | None, hsm_pin_file: Path | None
) -> None:
    """Install the cluster file (every member's card) in a node directory."""
    cfg, unlock = _node_unlock(directory, passphrase_file, hsm_pin_file)
    identity = node_config.open_identity(cfg, unlock)
    c = node_config.join_cluster(directory, cluster_file, identity)
    click.echo(f"{cfg.name} joined cluster {c.id} ({', '.join(c.names)})")


@cluster.command("create")
@click.option("--card", "cards", multiple=True, required=True, type=click.Path(path_type=Path))
@click.option("--operator", "operator_name", default="operator", show_default=True)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Cluster file.")
@click.option("--auth-out", required=True, type=click.Path(path_type=Path), help="Credential.")
@click.option(
    "--policy-admin",
    "policy_admins",
    multiple=True,
    metavar="NAME=KEY",
    help="A signing-policy administrator and its Ed25519 public key (hex; tmpc policy keygen).",
)
@click.option(
    "--policy-quorum",
    type=int,
    default=None,
    help="How many administrators must sign a policy (default: all of them).",
)
def cluster_create(
    cards: tuple[Path, ...],
    operator_name: str,
    out: Path,
    auth_out: Path,
    policy_admins: tuple[str, ...],
    policy_quorum: int | None,
) -> None:
    """Write a cluster file from member cards, with a new operator credential.

    With --policy-admin (repeatable), the nodes install only signing policies signed by
    --policy-quorum of these administrators."""
    docs = [keystore.read_json(p, "node card") for p in cards]
    parsed = [
        node_config.Card.from_json(d, f"node card {p}") for d, p in zip(docs, cards, strict=True)
    ]
    admins = _policy_admins(policy_admins, policy_quorum)
    operator, key = node_config.make_operator(operator_name)
    data = node_config.make_cluster_file(docs, [operator], admins, policy_quorum)
    node_config.parse_cluster(data)
    keystore.write_new_file(out, data, 0o644)
    keystore.write_new_file(auth_out, make_credential(operator, key, [c.tls_cert for c in parsed]))
    click.echo(f"cluster file {out}; operator credential {auth_out}")


def _policy_admins(items: tuple[str, ...], quorum: int | None) -> dict[str, bytes]:
    """``--policy-admin NAME=KEY`` options as name -> 32-byte Ed25519 key."""
    admins: dict[str, bytes] = {}
    for item in items:
        name, sep, key_hex = item.partition("=")
        try:
            key = bytes.fromhex(key_hex.strip())
        except ValueError:
            key = b""
        if not sep or len(key) != 32:
            raise ParameterError(f"--policy-admin takes NAME=KEY (64 hex digits), not {item!r}")
        admins[node_config.check_name(name.strip())] = key
    if quorum is not None and not admins:
        raise ParameterError("--policy-quorum goes with --policy-admin")
    return admins


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _node_names(n: int) -> list[str]:
    if n <= 26:
        return list(string.ascii_lowercase[:n])
    return [f"n{i}" for i in range(1, n + 1)]


def create_local_cluster(
    directory: Path,
    parties: int,
    policy_admins: dict[str, bytes] | None = None,
    policy_quorum: int | None = None,
) -> tuple[list[str], Path, Path]:
    """Create (or reuse) the node directories of a loopback cluster under ``directory``, its
    cluster file naming ``policy_admins`` (name -> Ed25519 key) and their quorum if given.

    Returns the node names, the passphrase file and the operator credential file."""
    if not 2 <= parties <= 26:
        raise ParameterError("--parties must be between 2 and 26 for a local cluster")
    names = _node_names(parties)
    directory.mkdir(parents=True, exist_ok=True)
    pw_file = directory / "passphrase"
    auth_file = directory / "operator.json"
    if (directory / "cluster.json").exists():
        existing = node_config.parse_cluster(
            keystore.read_limited(directory / "cluster.json", "cluster file", 8 << 20)
        )
        if list(existing.names) != names:
            raise ParameterError(f"{directory} holds a cluster of {len(existing.names)} nodes")
        if policy_admins and dict(existing.policy_admins) != dict(policy_admins):
            raise ParameterError(
                f"{directory} holds a cluster with other policy administrators (a cluster file "
                "is not changed in place)"
            )
        return names, pw_file, auth_file
    if any(directory.iterdir()):
        raise KeystoreError(f"{directory} is not empty and holds no local cluster")
    keystore.write_new_file(pw_file, secrets.token_urlsafe(24).encode() + b"\n")
    passphrase = _node_passphrase(pw_file)
    cards = []
    for name, port in zip(names, _free_ports(parties), strict=True):
        cfg = node_config.init_node(
            directory / name, name, f"127.0.0.1:{port}", passphrase, kdf=LOCAL_KDF
        )
        cards.append(node_config.card_of(cfg, node_config.open_identity(cfg, passphrase)))
    operator, key = node_config.make_operator("operator")
    data = node_config.make_cluster_file(cards, [operator], policy_admins or None, policy_quorum)
    keystore.write_new_file(directory / "cluster.json", data, 0o644)
    for name in names:
        ident = node_config.open_identity(node_config.load_config(directory / name), passphrase)
        node_config.join_cluster(directory / name, directory / "cluster.json", ident)
    trust = [str(c["tls_cert"]).encode() for c in cards]
    keystore.write_new_file(auth_file, make_credential(operator, key, trust))
    return names, pw_file, auth_file


def start_node_process(node_dir: Path, pw_file: Path, extra: list[str] | None = None) -> Any:
    """Start ``tmpc node run`` for ``node_dir``; returns the process (stdout piped)."""
    cmd = [sys.executable, "-m", "tmpc", "node", "run", "--dir", str(node_dir)]
    cmd += ["--passphrase-file", str(pw_file), *(extra or [])]
    log = open(node_dir / "node.log", "ab")
    try:
        return subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            cmd, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL
        )
    finally:
        log.close()


def wait_ready(proc: Any, name: str, timeout: float = 60.0) -> None:
    """Wait for a node process's ready line; raises :class:`KeystoreError` if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("ready") == name:
            return
    proc.poll()
    raise KeystoreError(f"node {name} did not start (exit {proc.returncode}); see its node.log")


@cluster.command("local")
@click.option("--parties", "-n", required=True, type=int, help="Number of nodes.")
@click.option("--dir", "directory", required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the cluster as one JSON object.")
@click.option("--round-timeout", default=5.0, show_default=True, help="Seconds per round.")
@click.option("--relay", default=None, metavar="URL", help="Peer messages via Redis (redis://).")
@click.option(
    "--airgap",
    "airgapped",
    multiple=True,
    metavar="NAME",
    help="Run node NAME air-gapped (the others get --airgap-peer NAME; ready timeout = round).",
)
@click.option(
    "--policy-admin",
    "policy_admins",
    multiple=True,
    metavar="NAME=KEY",
    help="A signing-policy administrator (as cluster create; new clusters only).",
)
@click.option("--policy-quorum", type=int, default=None, help="As cluster create.")
@click.option(
    "--heartbeat-every",
    default=None,
    type=float,
    metavar="SECONDS",
    help="Run every node with --heartbeat-every SECONDS.",
)
def cluster_local(
    parties: int,
    directory: Path,
    as_json: bool,
    round_timeout: float,
    relay: str | None,
    airgapped: tuple[str, ...],
    policy_admins: tuple[str, ...],
    policy_quorum: int | None,
    heartbeat_every: float | None,
) -> None:
    """Start N nodes on loopback (a demo or test cluster) until SIGINT or SIGTERM.

    Each node also serves its Prometheus metrics over plain HTTP on a free loopback port
    (``metrics_url`` in --json).

    With --policy-admin (repeatable), a new cluster's nodes install only signing policies
    signed by --policy-quorum of these administrators (tmpc policy install --node)."""
    if airgapped and relay is not None:
        raise ParameterError("--airgap excludes --relay")
    admins = _policy_admins(policy_admins, policy_quorum)
    names, pw_file, auth_file = create_local_cluster(directory, parties, admins, policy_quorum)
    for a in airgapped:
        if a not in names:
            raise ParameterError(f"--airgap {a}: not a node of this cluster ({','.join(names)})")
    procs: dict[str, Any] = {}
    stopping: list[int] = []

    def stop(signum: int, frame: object) -> None:
        stopping.append(signum)

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        extra = ["--round-timeout", str(round_timeout)]
        if relay is not None:
            extra += ["--relay", relay]
        if airgapped:  # a trip across the gap may take as long as a round
            extra += ["--ready-timeout", str(round_timeout), "--ready-grace", str(round_timeout)]
        if heartbeat_every is not None:
            extra += ["--heartbeat-every", str(heartbeat_every)]
        metrics = dict(zip(names, _free_ports(len(names)), strict=True))
        for name in names:
            peers = [x for a in airgapped for x in ("--airgap-peer", a)]
            own = ["--airgap"] if name in airgapped else peers
            own += ["--metrics-listen", f"127.0.0.1:{metrics[name]}"]
            procs[name] = start_node_process(directory / name, pw_file, extra + own)
        for name in names:
            wait_ready(procs[name], name)
        nodes = []
        for name in names:
            cfg = node_config.load_config(directory / name)
            nodes.append(
                {"name": name, "url": cfg.url, "pid": procs[name].pid, "dir": str(directory / name),
                 "metrics_url": f"http://127.0.0.1:{metrics[name]}/metrics"}
            )  # fmt: skip
        out = {"nodes": nodes, "auth": str(auth_file)}
        if as_json:
            click.echo(json.dumps(out), nl=True)
        else:
            for n in nodes:
                click.echo(f"{n['name']}  {n['url']}  pid {n['pid']}  metrics {n['metrics_url']}")
            click.echo(f"operator credential: {auth_file} (use --auth or TMPC_AUTH)")
        sys.stdout.flush()
        while not stopping:
            time.sleep(0.2)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()
        for s, h in old.items():
            signal.signal(s, h)


@click.group()
def wallet() -> None:
    """Wallets held by a cluster of nodes."""


@wallet.command("create")
@click.option("--node", required=True, help="URL of the node that coordinates.")
@click.option("--scheme", required=True)
@click.option("--threshold", "-t", required=True, type=int)
@click.option("--parties", required=True, help="Comma-separated node names, e.g. a,b,c,d,e.")
@click.option("--request-id", default=None, help="Idempotency key (default: a new one).")
@_auth
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def wallet_create(
    node: str,
    scheme: str,
    threshold: int,
    parties: str,
    request_id: str | None,
    auth: str | None,
    as_json: bool,
) -> None:
    """Create a wallet by DKG across the listed nodes."""
    names = [p.strip() for p in parties.split(",") if p.strip()]
    body: dict[str, Any] = {"scheme": scheme, "threshold": threshold, "parties": names}
    if request_id:
        body["request_id"] = request_id
    res = _api(_client(node, auth), "POST", "/v1/wallets", body)
    w = res["wallet"]
    out = {
        "wallet_id": w["wallet_id"],
        "scheme": w["scheme"],
        "threshold": w["threshold"],
        "parties": names,
        "public_key": w["public_key"],
        "request_id": res.get("request_id"),
    }
    emit(out, as_json, [f"wallet {w['wallet_id']}", f"public key {w['public_key']}"])


@wallet.command("list")
@click.option("--node", required=True)
@_auth
@click.option("--json", "as_json", is_flag=True)
def wallet_list(node: str, auth: str | None, as_json: bool) -> None:
    """List the wallets a node holds."""
    res = _api(_client(node, auth), "GET", "/v1/wallets")
    lines = [
        f"{w['wallet_id']}  {w.get('scheme')}  {w.get('threshold')}-of-"
        f"{len(w.get('parties', []))}  epoch {w.get('epoch')}  {w.get('public_key')}"
        + (f"  group {w['group']} of key {w['key_id']}" if w.get("group", "default") != "default"
           else "")
        for w in res["wallets"]
    ]  # fmt: skip
    emit(res, as_json, lines or ["no wallets"])


@wallet.command("history")
@click.option("--node", required=True)
@click.option("--wallet", "wallet_id", default=None, help="One wallet's events (default: all).")
@_auth
@click.option("--json", "as_json", is_flag=True)
def wallet_history(node: str, wallet_id: str | None, auth: str | None, as_json: bool) -> None:
    """A node's key lifecycle events: wallets created, rotations staged, switched to or
    discarded, and epochs it missed, each with the epoch before and after."""
    path = "/v1/lifecycle" + (f"?wallet={quote(wallet_id, safe='')}" if wallet_id else "")
    res = _api(_client(node, auth), "GET", path)

    def epochs(e: dict[str, Any]) -> str:
        before, after = e.get("epoch_before"), e.get("epoch_after")
        return f"epoch {'-' if before is None else before} -> {'-' if after is None else after}"

    lines = [
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(e['at']))}  {e['wallet']}  "
        f"{e['event']:10} {epochs(e)}" + (f"  session {e['session'][:16]}" if e["session"] else "")
        for e in res["events"]
    ]
    emit(res, as_json, lines or ["no lifecycle events"])


@click.command("sessions")
@click.option("--node", required=True)
@click.option("--session", "session_id", default=None, help="Show this one session (hex id).")
@_auth
@click.option("--json", "as_json", is_flag=True)
def sessions(node: str, session_id: str | None, auth: str | None, as_json: bool) -> None:
    """The recent sessions of a node: participants, status, culprits, round times.

    With --session, one session, and while it runs, where its protocol stands: the round it
    waits for and the parties whose messages have not arrived."""
    if session_id is not None:
        one = _api(_client(node, auth), "GET", f"/v1/sessions/{quote(session_id, safe='')}")
        state = one.get("machine")
        detail = [
            f"session  {one['session']}",
            f"status   {one['status']}  {one['protocol']}  attempt {one['attempt']}",
            f"parties  {','.join(one['participants'])}",
        ]
        if state is not None:
            waiting = ",".join(one.get("missing_now") or []) or "nobody"
            detail.append(f"round    {state['round']} (waiting for {waiting})")
        if one.get("error"):
            detail.append(f"error    {one['error']}")
        emit(one, as_json, detail)
        return
    res = _api(_client(node, auth), "GET", "/v1/sessions")
    lines = [
        f"{s['session'][:16]}  {s['status']:8} {s['protocol']:24} attempt {s['attempt']}  "
        f"{','.join(s['participants'])}"
        + (f"  culprits {','.join(s['culprits'])}" if s["culprits"] else "")
        + (f"  missing {','.join(s['missing'])}" if s.get("missing") else "")
        + (f"  ({s['error']})" if s["error"] else "")
        for s in res["sessions"]
    ]
    emit(res, as_json, lines or ["no sessions"])


@click.group("session")
def session() -> None:
    """Carry messages to and from an air-gapped node (files in DIR/airgap).

    On each side, export writes what the node sent into a bundle file and import queues a
    bundle for the node; the running node delivers it within a moment, or when it next
    starts. Bundles hold only signed, encrypted envelopes: as safe to carry as the network."""


def _airgap_folder(directory: Path) -> AirGapFolder:
    cfg = node_config.load_config(directory)
    cluster_hash = node_config.load_cluster(directory).hash
    return AirGapFolder(airgap_root(directory), cfg.name, cluster_hash)


@session.command("export")
@click.option("--dir", "directory", required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="New bundle file.")
@click.option("--peer", default=None, metavar="NAME", help="Only the messages for NAME.")
@click.option("--again", is_flag=True, help="Also the messages exported before (lost bundle).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def session_export(
    directory: Path, out: Path, peer: str | None, again: bool, as_json: bool
) -> None:
    """Write the node's messages not exported yet into one bundle file (none: no file).

    Works whether or not the node runs; exported messages move to DIR/airgap/sent."""
    folder = _airgap_folder(directory)
    n = folder.export_bundle(out, peer=peer, again=again)
    left = folder.pending(peer)
    data = {"node": folder.name, "exported": n, "file": str(out) if n else None, "left": left}
    human = [f"{n} messages of {folder.name} exported to {out}" if n else "nothing to export"]
    if left:
        human.append(f"{left} messages left for the next bundle")
    emit(data, as_json, human)


@session.command("import")
@click.option("--dir", "directory", required=True, type=click.Path(path_type=Path))
@click.option(
    "--in",
    "bundles",
    required=True,
    multiple=True,
    type=click.Path(path_type=Path),
    help="A bundle file (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def session_import(directory: Path, bundles: tuple[Path, ...], as_json: bool) -> None:
    """Queue bundle files for the node (DIR/airgap/inbox); it delivers their messages for it.

    Every bundle is checked whole first (format, checksum, cluster): if one is refused,
    none is queued."""
    folder = _airgap_folder(directory)
    for path in bundles:
        folder.check(read_bundle(path))
    out, human = [], []
    for path in bundles:
        bundle, mine = folder.queue_bundle(path)
        out.append({"file": str(path), "origin": bundle.origin, "queued": mine})
        human.append(
            f"{path}: {mine} messages from {bundle.origin} queued for {folder.name}"
            if mine
            else f"{path}: no message for {folder.name} (nothing queued)"
        )
    emit({"node": folder.name, "bundles": out}, as_json, human)


def sign_via_node(
    node: str,
    auth: str | None,
    wallet_id: str,
    message: bytes | None,
    path: str | None,
    request_id: str | None,
    transaction: Any = None,
    approvals: list[Any] | None = None,
    group: str | None = None,
) -> dict[str, Any]:
    """``tmpc sign --node URL``: ask the node to coordinate a signature; returns its JSON.

    ``transaction`` (instead of ``message``): the unsigned transaction each node parses;
    ``approvals``: approvers' signatures of the request (:mod:`tmpc.node.policy`);
    ``group``: the signing group that signs (default: the one the policy gives the
    request, else the wallet's own)."""
    body: dict[str, Any] = {"wallet": wallet_id}
    if group is not None:
        body["group"] = group
    if message is not None:
        body["message"] = message.hex()
    if transaction is not None:
        body["transaction"] = transaction
    if approvals:
        body["approvals"] = approvals
    if path is not None:
        body["path"] = path
    if request_id:
        body["request_id"] = request_id
    res: dict[str, Any] = _api(_client(node, auth), "POST", "/v1/sign", body)
    return res


def presign_via_node(
    node: str, auth: str | None, wallet_id: str, count: int, path: str | None
) -> dict[str, Any]:
    """``tmpc presign --node URL``: have the cluster make ``count`` presignatures for the
    wallet's pool, in batches of at most :data:`~tmpc.protocols.ecdsa.machine.MAX_BATCH`
    (each batch among a quorum the node picks), printing progress on stderr."""
    from tmpc.protocols.ecdsa.machine import MAX_BATCH

    if not 1 <= count <= 10_000:
        raise ParameterError("--count must be between 1 and 10000")
    client = _client(node, auth)
    made: list[str] = []
    quorums: list[list[int]] = []
    while len(made) < count:
        body: dict[str, Any] = {"wallet": wallet_id, "count": min(MAX_BATCH, count - len(made))}
        if path is not None:
            body["path"] = path
        res = _api(client, "POST", "/v1/presign", body)
        made += [str(x) for x in res.get("presignatures", [])]
        quorums.append(list(res.get("signers", [])))
        if count > MAX_BATCH:
            click.echo(f"presignatures: {len(made)}/{count}", err=True)
    return {"wallet_id": wallet_id, "path": path or "m", "made": len(made),
            "signers": quorums, "presignatures": made}  # fmt: skip


def rotate_via_node(
    node: str, auth: str | None, wallet_id: str | None, every: bool
) -> list[dict[str, Any]]:
    """``tmpc rotate --node URL``: rotate one wallet (``--wallet``) or every wallet the node
    holds (``--all``, after a suspected compromise), one after the other, printing progress
    on stderr. Returns each rotation's result."""
    client = _client(node, auth)
    if every:
        held = _api(client, "GET", "/v1/wallets").get("wallets", [])
        ids = [str(w["wallet_id"]) for w in held if "error" not in w]
    else:
        assert wallet_id is not None
        ids = [wallet_id]
    out = []
    for k, wid in enumerate(ids, 1):
        click.echo(f"rotating wallet {wid} ({k}/{len(ids)})", err=True)
        out.append(_api(client, "POST", "/v1/rotate", {"wallet": wid}))
    return out


def reshare_via_node(
    node: str,
    auth: str | None,
    wallet_id: str,
    threshold: int,
    parties: str,
    group: str | None = None,
) -> dict[str, Any]:
    """``tmpc reshare --node URL``: move a wallet to the member nodes ``parties`` (comma
    separated, in new party order) with ``threshold``, keeping its key; with ``group``, copy
    the key to a new signing group of that name instead (the wallet keeps its parties)."""
    names = [p.strip() for p in parties.split(",") if p.strip()]
    if len(names) < 2:
        raise ParameterError("--parties lists at least two member nodes, comma separated")
    what = f"signing group {group!r} of wallet" if group is not None else "wallet"
    click.echo(f"resharing {what} {wallet_id} to {threshold}-of-{len(names)}", err=True)
    body: dict[str, Any] = {"wallet": wallet_id, "threshold": threshold, "parties": names}
    if group is not None:
        body["group"] = group
    return dict(_api(_client(node, auth), "POST", "/v1/reshare", body))


def repair_via_node(
    node: str, auth: str | None, wallet_id: str, party: int, to: str
) -> dict[str, Any]:
    """``tmpc repair --node URL``: rebuild party ``party``'s share on member node ``to``."""
    click.echo(f"repairing party {party} of wallet {wallet_id} onto {to}", err=True)
    body = {"wallet": wallet_id, "party": party, "node": to}
    return dict(_api(_client(node, auth), "POST", "/v1/repair", body))


def node_call(node: str, auth: str | None) -> Callable[[str, str, dict[str, Any] | None], Any]:
    """An API caller of ``node`` for the ``--node`` forms of :mod:`tmpc.cli`'s commands:
    ``call(method, path, body)`` returns the node's JSON; an error answer becomes the CLI's
    error (:class:`ProtocolError` when the node names culprits, else :class:`ParameterError`)
    and an unreachable node an input error. Raises :class:`KeystoreError` without a
    credential."""
    client = _client(node, auth)

    def call(method: str, path: str, body: dict[str, Any] | None) -> Any:
        return _api(client, method, path, body)

    return call


def register(group: click.Group) -> None:
    """Add the node commands to the main command group."""
    group.add_command(node)
    group.add_command(cluster)
    group.add_command(wallet)
    group.add_command(sessions)
    group.add_command(session)
