"""``make demo``: the whole custody flow on a cluster of node processes on this machine.

Nothing to install or start by hand. The demo

1. creates a fresh 5-node loopback cluster in a temporary directory
   (:func:`tmpc.cli.node.create_local_cluster`) and starts the 5 ``tmpc node run`` processes;
2. creates one 3-of-5 wallet of each scheme by DKG across the processes, through the nodes'
   HTTPS API with the operator credential;
3. signs a message with each wallet across the nodes and checks every signature with an
   independent verifier (libsecp256k1 through coincurve, libsodium through PyNaCl);
4. builds real transactions (Bitcoin Taproot key-path and P2WPKH, Ethereum, Solana) whose every
   signature the cluster makes over the API, and has each chain's own validation code accept
   them (:mod:`tmpc.cli.testnet`);
5. SIGKILLs a node that is a party of every wallet and signs again with the remaining ones,
   then restarts it and shows it healthy and signing;
6. stops every node process (SIGTERM, then SIGKILL) and removes the temporary directory, also
   on an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import coincurve
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from tmpc import schemes
from tmpc.chains.addresses import ethereum_address, p2wpkh_address
from tmpc.cli.node import create_local_cluster, start_node_process, wait_ready
from tmpc.cli.testnet import CHECKS_BY_SCHEME, run_checks
from tmpc.errors import ParameterError, TmpcError
from tmpc.group import secp256k1
from tmpc.node import config as node_config
from tmpc.node.client import Credential, NodeClient
from tmpc.node.engine import choose_participants
from tmpc.primitives.ecdsa_format import recovery_id
from tmpc.schemes import SignatureKind
from tmpc.schemes.addresses import wallet_address

__all__ = ["ClusterSigner", "LocalCluster", "independent_verify", "main"]

#: Wallets of the demo: ``THRESHOLD``-of-``PARTIES``.
PARTIES, THRESHOLD = 5, 3
#: Seconds per protocol round on the demo's nodes (loopback: rounds take milliseconds).
ROUND_TIMEOUT = 5.0
#: Seconds a coordinator waits for every party's readiness (a down node costs this much).
READY_TIMEOUT = 2.0
#: Seconds without output before a long step prints that it is still running.
TICK = 3.0


def independent_verify(scheme_id: str, public_key: bytes, msg: bytes, sig: bytes) -> bool:
    """Check a signature with code that is not tmpc's own verifier.

    schnorr-bip340: libsecp256k1's BIP340 verification; ed25519: libsodium's RFC 8032
    verification; ecdsa-secp256k1: libsecp256k1's ECDSA verification over the 32-byte digest
    (it accepts low-s signatures only); frost-secp256k1: the RFC 9591 equation
    ``z*G == R + c*PK`` evaluated with libsecp256k1 point operations (``c`` from the RFC's
    H2 over the encodings).
    """
    scheme = schemes.SCHEMES.get(scheme_id)
    kind = scheme.signature_kind if scheme is not None else None
    if kind is SignatureKind.BIP340:
        if len(msg) != 32:  # libsecp256k1's coincurve binding verifies 32-byte messages
            raise ValueError("independent BIP340 check needs a 32-byte message")
        return bool(coincurve.PublicKeyXOnly(public_key).verify(sig, msg))
    if kind is SignatureKind.ED25519:
        try:
            VerifyKey(public_key).verify(msg, sig)
            return True
        except BadSignatureError:
            return False
    if kind is SignatureKind.ECDSA:
        if len(sig) != 64 or len(msg) != 32:
            return False
        try:
            key = coincurve.PublicKey(public_key)
            der = coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(sig))
        except ValueError:
            return False
        return bool(key.verify(der, msg, hasher=None))
    if kind is SignatureKind.RFC9591:
        if len(sig) != 65:
            return False
        try:
            R = coincurve.PublicKey(sig[:33])
            pk = coincurve.PublicKey(public_key)
        except ValueError:
            return False
        z = int.from_bytes(sig[33:], "big")
        c = secp256k1.H2(sig[:33] + public_key + msg)
        if z == 0 or z >= secp256k1.group.order:
            return False
        lhs = coincurve.PublicKey.from_valid_secret(z.to_bytes(32, "big"))
        rhs = coincurve.PublicKey.combine_keys([R, pk.multiply(c.to_bytes(32, "big"))])
        return bool(lhs.format() == rhs.format())
    raise ValueError(f"unknown scheme {scheme_id}")


# -- the cluster of node processes -----------------------------------------------------------


@dataclass
class _Node:
    name: str
    url: str
    directory: Path
    proc: Any = None  # subprocess.Popen[bytes] while started


class LocalCluster:
    """The node processes of a loopback cluster in ``root`` (created there if absent).

    Args:
        root: an empty or absent directory, or one holding a local cluster of ``parties``.
        parties: number of nodes (2..26), named a, b, c, ...
        round_timeout: seconds per protocol round given to every node.
        ready_timeout: seconds a coordinating node waits for the parties' readiness.

    Raises :class:`~tmpc.errors.ParameterError` / :class:`~tmpc.errors.KeystoreError` as
    :func:`tmpc.cli.node.create_local_cluster`. Call :meth:`stop_all` when done (it is safe
    to call twice); no process is started until :meth:`start`.
    """

    def __init__(
        self,
        root: Path,
        parties: int,
        round_timeout: float = ROUND_TIMEOUT,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        names, self.passphrase_file, auth_file = create_local_cluster(root, parties)
        self.root = root
        self.credential = Credential.load(str(auth_file))
        self._extra = ["--round-timeout", str(round_timeout)]
        self._extra += ["--ready-timeout", str(ready_timeout)]
        self.nodes = {n: _Node(n, node_config.load_config(root / n).url, root / n) for n in names}

    @property
    def names(self) -> list[str]:
        """The node names, in cluster order."""
        return list(self.nodes)

    def start(self, names: list[str]) -> None:
        """Start ``tmpc node run`` for each of ``names`` and wait until all are ready.

        Raises :class:`~tmpc.errors.KeystoreError` if one exits before it is ready."""
        for n in names:
            node = self.nodes[n]
            if node.proc is not None and node.proc.poll() is None:
                raise ParameterError(f"node {n} is already running")
            node.proc = start_node_process(node.directory, self.passphrase_file, self._extra)
        for n in names:
            wait_ready(self.nodes[n].proc, n)

    def pid(self, name: str) -> int:
        """The process id of a started node."""
        return int(self.nodes[name].proc.pid)

    def kill(self, name: str) -> None:
        """SIGKILL a node (no clean shutdown: a crash) and reap it."""
        proc = self.nodes[name].proc
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def client(self, name: str) -> NodeClient:
        """An operator client of node ``name``'s API."""
        return NodeClient(self.nodes[name].url, self.credential)

    def stop_all(self, grace: float = 10.0) -> list[int]:
        """Stop every started node: SIGTERM, wait up to ``grace`` seconds, then SIGKILL.

        Returns the process ids stopped (each reaped, so none is left running)."""
        procs = [n.proc for n in self.nodes.values() if n.proc is not None]
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()
        for n in self.nodes.values():
            n.proc = None
        return [int(p.pid) for p in procs]


@dataclass
class ClusterSigner:
    """A ``sign_digest`` callable (see :mod:`tmpc.cli.testnet`) whose signatures the cluster makes.

    Each call POSTs ``/v1/sign`` to ``client``'s node for ``wallet_id`` (at BIP32 ``path``)
    and returns the signature bytes; the message is sent as it is (for ``ecdsa-secp256k1``
    it **must** be the 32-byte digest). ``request_id``, if set, is the idempotency key of
    every call (so a repeated call returns the first signature, never a second one);
    ``signers`` collects the party ids of every call; ``report``, if set, is called with
    every answer.

    Raises :class:`~tmpc.node.client.ApiError` / ``NodeUnreachableError`` as
    :meth:`NodeClient.call`.
    """

    client: NodeClient
    wallet_id: str
    path: str | None = None
    request_id: str | None = None
    report: Callable[[dict[str, Any]], None] | None = None
    signers: list[list[int]] = field(default_factory=list)

    def sign(self, message: bytes) -> dict[str, Any]:
        """One ``/v1/sign`` call; returns the node's JSON answer."""
        body: dict[str, Any] = {"wallet": self.wallet_id, "message": message.hex()}
        if self.path is not None:
            body["path"] = self.path
        if self.request_id is not None:
            body["request_id"] = self.request_id
        res = self.client.call("POST", "/v1/sign", body)
        self.signers.append([int(i) for i in res["signers"]])
        if self.report is not None:
            self.report(res)
        return res

    def __call__(self, message: bytes) -> bytes:
        return bytes.fromhex(str(self.sign(message)["signature"]))


# -- terminal output -------------------------------------------------------------------------


def _say(line: str = "") -> None:
    print(line, flush=True)


@contextmanager
def _ticking(label: str) -> Iterator[None]:
    """Print ``... label (Ns)`` every :data:`TICK` seconds while the block runs."""
    done = threading.Event()
    started = time.monotonic()

    def tick() -> None:
        while not done.wait(TICK):
            _say(f"      ... {label} ({time.monotonic() - started:.0f}s)")

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@contextmanager
def _step(number: int, title: str) -> Iterator[None]:
    _say(f"\n== step {number}: {title}")
    started = time.monotonic()
    yield
    _say(f"   step {number} done in {time.monotonic() - started:.1f}s")


def _verifier_name(scheme_id: str) -> str:
    return {
        SignatureKind.BIP340: "libsecp256k1 BIP340",
        SignatureKind.ED25519: "libsodium Ed25519",
        SignatureKind.ECDSA: "libsecp256k1 ECDSA",
    }.get(schemes.get_scheme(scheme_id).signature_kind, "libsecp256k1 RFC 9591 eq.")


def _addresses(record: schemes.WalletRecord) -> list[str]:
    if "ethereum" in schemes.get_scheme(record.scheme).chains:
        return [
            f"ethereum {ethereum_address(record.public_key)}",
            f"bitcoin p2wpkh (regtest) {p2wpkh_address(record.public_key, 'regtest')}",
        ]
    try:
        return [wallet_address(record, "regtest")[0]]
    except ParameterError:
        return ["(no chain address: generic RFC 9591 key)"]


# -- the flow --------------------------------------------------------------------------------


def main() -> int:
    """Run the demo; returns the process exit status (0 when every check held, 1 when one
    failed, 130 when interrupted). Every node process is stopped and the temporary directory
    removed before it returns, whatever happened."""
    started = time.monotonic()

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, interrupted)
    root = Path(tempfile.mkdtemp(prefix="tmpc-demo-"))
    cluster: LocalCluster | None = None
    status = 1
    try:
        _say(
            f"tmpc demo: {PARTIES} node processes on loopback (each with its own keys and share"
            f" store),\n{THRESHOLD}-of-{PARTIES} wallets of every scheme; cluster directory {root}"
            " (removed at the end)"
        )
        with _step(1, f"create a local cluster of {PARTIES} nodes and start their processes"):
            with _ticking("creating node keys and TLS certificates"):
                cluster = LocalCluster(root / "cluster", PARTIES)
            _say(f"   node directories, cluster file and operator credential in {cluster.root}")
            with _ticking("starting the node processes"):
                cluster.start(cluster.names)
            for node in cluster.nodes.values():
                _say(f"   node {node.name}  {node.url}  pid {node.proc.pid}")
        status = _flow(cluster)
    except KeyboardInterrupt:
        _say("\ninterrupted")
        status = 130
    except TmpcError as exc:
        _say(f"\nDEMO FAILED: {type(exc).__name__}: {exc}")
        status = 1
    finally:
        # A second Ctrl-C must not leave processes behind: cleanup runs with signals ignored.
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            _cleanup(cluster, root, show_logs=status == 1)
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, old_term)
    _say(f"\ntotal {time.monotonic() - started:.1f}s")
    if status == 0:
        _say(
            "\nTry it yourself:\n"
            "  .venv/bin/tmpc cluster local -n 5 --dir my-cluster   # leave it running\n"
            "  export TMPC_AUTH=my-cluster/operator.json\n"
            "  .venv/bin/tmpc wallet create --node URL --scheme ecdsa-secp256k1 -t 3 "
            "--parties a,b,c,d,e\n"
            "  .venv/bin/tmpc sign --node URL --wallet WALLET_ID --message "
            "$(printf demo | sha256sum | cut -c1-64)"
        )
    return status


def _cleanup(cluster: LocalCluster | None, root: Path, *, show_logs: bool) -> None:
    _say("\n== cleanup: stop every node process (SIGTERM, then SIGKILL) and remove the directory")
    if cluster is not None:
        with _ticking("waiting for the nodes to exit"):
            pids = cluster.stop_all()
        _say(f"   stopped node processes {' '.join(map(str, pids)) or '(none)'}")
        if show_logs:  # the logs go with the directory: show their ends first
            for node in cluster.nodes.values():
                log = node.directory / "node.log"
                lines = log.read_text(errors="replace").splitlines()[-8:] if log.exists() else []
                for line in lines:
                    _say(f"   {node.name}.log: {line}")
    shutil.rmtree(root, ignore_errors=True)
    _say(f"   removed {root}" if not root.exists() else f"   COULD NOT REMOVE {root}")


def _flow(cluster: LocalCluster) -> int:
    names = cluster.names
    coordinator = cluster.client(names[0])
    records: dict[str, schemes.WalletRecord] = {}
    checks: list[bool] = []

    with _step(2, "create one wallet per scheme by DKG across the node processes"):
        for scheme_id in schemes.SCHEMES:
            t0 = time.monotonic()
            with _ticking(f"DKG {scheme_id}"):
                res = coordinator.call(
                    "POST",
                    "/v1/wallets",
                    {"scheme": scheme_id, "threshold": THRESHOLD, "parties": names},
                )
            # Parsing the record checks its DKG certificate, signed by every party.
            record = schemes.WalletRecord.from_json(res["wallet"])
            records[scheme_id] = record
            _say(
                f"   [{scheme_id}] wallet {record.wallet_id} ({time.monotonic() - t0:.1f}s)  "
                f"public key {record.public_key.hex()}"
            )
            for addr in _addresses(record):
                _say(f"   [{scheme_id}] address {addr}")

    with _step(3, "sign with each wallet across the nodes, verify independently"):
        for scheme_id, record in records.items():
            msg = hashlib.sha256(f"demo withdrawal, {scheme_id}".encode()).digest()
            checks.append(_sign_and_check(cluster, names[0], record, msg, names)[0])

    ecdsa = next((r for r in records.values() if schemes.get_scheme(r.scheme).dkls23), None)
    if ecdsa is not None:
        with _step(4, "ECDSA presignatures made ahead of time, then a signature in one round"):
            checks.append(_pooled_signature(cluster, names, ecdsa))

    with _step(5, "real transactions signed by the cluster over the API, checked by each chain"):
        checks.append(_chain_table(cluster, names[0], records, names))

    victim = names[2]
    with _step(6, f"kill node {victim} (SIGKILL), sign without it, restart it"):
        pid = cluster.pid(victim)
        cluster.kill(victim)
        _say(f"   node {victim} (pid {pid}) killed; it holds a share of every wallet")
        _say(
            f"   the coordinator proposes each request to all {PARTIES} parties; once"
            f" {THRESHOLD} are ready it waits\n   a short grace for {victim}, then runs the"
            f" protocol with {THRESHOLD} of the ready ones"
        )
        for scheme_id, record in records.items():
            msg = hashlib.sha256(f"signed while {victim} is down, {scheme_id}".encode()).digest()
            with _ticking(f"{scheme_id}: signing without {victim}"):
                ok, _ = _sign_and_check(cluster, names[0], record, msg, names, down=victim)
            checks.append(ok)
        with _ticking(f"restarting node {victim}"):
            cluster.start([victim])
        health = cluster.client(victim).call("GET", "/v1/health")
        _say(
            f"   node {victim} restarted (pid {cluster.pid(victim)}): GET /v1/health -> "
            f"name {health['name']}, status {health['status']}"
        )
        restarted_ok = health.get("status") == "ok" and health.get("name") == victim
        # Request ids whose quorum (with every node ready) includes the restarted node, so
        # each signature needs its share; it also coordinates, so its API serves again.
        signed_again = True
        for scheme_id, record in records.items():
            rid = _request_id_including(victim, names, f"demo-{scheme_id}-{time.time_ns()}")
            msg = hashlib.sha256(f"signed after the restart, {scheme_id}".encode()).digest()
            ok, signers = _sign_and_check(cluster, victim, record, msg, names, request_id=rid)
            signed_again = signed_again and ok and victim in signers
        _say(
            f"   node {victim} is back: healthy and "
            f"{'among the signers' if signed_again else 'NOT AMONG THE SIGNERS'}"
        )
        checks.append(restarted_ok and signed_again)

    with _step(7, "rotate every wallet's shares (same key and addresses), sign with the new"):
        checks.append(_rotate_all(cluster, names, records))

    with _step(8, "every node's signed audit log: a checkpoint cosigned by the others, checked"):
        checks.append(_audit_logs(cluster, names))

    all_ok = all(checks)
    _say("\nALL CHECKS PASSED" if all_ok else "\nSOME CHECKS FAILED")
    return 0 if all_ok else 1


def _audit_logs(cluster: LocalCluster, names: list[str]) -> bool:
    """Each node has the others cosign its audit head (a checkpoint), then its whole log is
    read over the API and checked here: hash chain, every entry's signature under the node's
    key from the cluster file, the checkpoint's cosignatures."""
    from tmpc.audit import ChainChecker
    from tmpc.audit.entry import canonical_json

    cluster_file = node_config.load_cluster(cluster.root / names[0])
    ok = True
    for name in names:
        client = cluster.client(name)
        made = client.call("POST", "/v1/audit/checkpoint", {})
        entries: list[dict[str, object]] = []
        while True:
            page = client.call("GET", f"/v1/audit?after={len(entries)}&limit=5000")
            if not page["entries"]:
                break
            entries += page["entries"]
        checker = ChainChecker(name, cluster_file.member(name).host_pubkey, cluster=cluster_file)
        for n, entry in enumerate(entries, start=1):
            checker.add(n, canonical_json(entry))
        kinds: dict[str, int] = {}
        for entry in entries:
            kind = str(entry["type"]).split(".")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        good = checker.problem is None
        ok = ok and good
        summary = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        _say(
            f"   node {name}: {len(entries)} entries ({summary}); head cosigned by "
            f"{','.join(made['cosigners'])}; chain and signatures "
            + ("verified" if good else f"BROKEN: {checker.problem}")
        )
    _say("   (tmpc audit verify --node-dir DIR checks a node's log on disk; docs/monitoring.md)")
    return ok


def _pool_sizes(cluster: LocalCluster, names: list[str], wallet_id: str) -> dict[str, int]:
    sizes = {}
    for name in names:
        wallets = cluster.client(name).call("GET", "/v1/wallets")["wallets"]
        sizes[name] = next(w["presignatures"] for w in wallets if w["wallet_id"] == wallet_id)
    return sizes


def _pooled_signature(
    cluster: LocalCluster, names: list[str], record: schemes.WalletRecord
) -> bool:
    """``POST /v1/presign`` a batch, then sign: the signature finishes a pooled presignature
    in one round, and every pool of its signer set holds one fewer."""
    t0 = time.monotonic()
    with _ticking("presigning"):
        made = cluster.client(names[0]).call(
            "POST", "/v1/presign", {"wallet": record.wallet_id, "count": 4}
        )
    quorum = [names[i - 1] for i in made["signers"]]
    before = _pool_sizes(cluster, names, record.wallet_id)
    _say(
        f"   [{record.scheme}] {len(made['presignatures'])} presignatures made by "
        f"{','.join(quorum)} ({time.monotonic() - t0:.1f}s); unused per node: "
        + " ".join(f"{n}={k}" for n, k in before.items())
    )
    msg = hashlib.sha256(b"demo withdrawal, finished from the pool").digest()
    ok, signers = _sign_and_check(cluster, names[0], record, msg, names)
    after = _pool_sizes(cluster, names, record.wallet_id)
    used = ok and sorted(signers) == sorted(quorum)
    used = used and all(after[n] == before[n] - (n in quorum) for n in names)
    _say(
        f"   [{record.scheme}] unused per node now: "
        + " ".join(f"{n}={k}" for n, k in after.items())
        + (
            "  (one presignature finished in one round, used once)"
            if used
            else "  (NO POOLED PRESIGNATURE WAS USED)"
        )
    )
    return used


def _rotate_all(
    cluster: LocalCluster, names: list[str], records: dict[str, schemes.WalletRecord]
) -> bool:
    """Rotate each wallet through the first node (two-phase: every party stages its new share,
    all sign a test message, then every node switches), check on another node that the
    record moved to epoch 1 with the same key and addresses, and sign with the new shares."""
    ok = True
    for scheme_id, record in records.items():
        t0 = time.monotonic()
        with _ticking(f"rotating {scheme_id}"):
            res = cluster.client(names[0]).call("POST", "/v1/rotate", {"wallet": record.wallet_id})
        held = cluster.client(names[-1]).call("GET", "/v1/wallets")["wallets"]
        doc = next(w["record"] for w in held if w["wallet_id"] == record.wallet_id)
        after = schemes.WalletRecord.from_json(doc)  # checks the refresh's certificate too
        same = after.public_key == record.public_key and _addresses(after) == _addresses(record)
        _say(
            f"   [{scheme_id}] epoch {res['previous_epoch']} -> {res['epoch']} "
            f"({time.monotonic() - t0:.1f}s), switched on {len(res['committed'])} nodes; "
            f"key and addresses {'unchanged' if same else 'CHANGED'}"
        )
        msg = hashlib.sha256(f"signed after the rotation, {scheme_id}".encode()).digest()
        signed, _ = _sign_and_check(cluster, names[1], after, msg, names)
        ok = ok and same and after.epoch == 1 and not res["pending"] and signed
    return ok


def _request_id_including(name: str, names: list[str], base: str) -> str:
    for k in range(1000):
        rid = f"{base}-{k}"
        if name in choose_participants(names, rid, 1, THRESHOLD):
            return rid
    raise ParameterError(f"no request id puts {name} in a quorum")  # pragma: no cover


def _sign_and_check(
    cluster: LocalCluster,
    via: str,
    record: schemes.WalletRecord,
    msg: bytes,
    names: list[str],
    *,
    down: str | None = None,
    request_id: str | None = None,
) -> tuple[bool, list[str]]:
    scheme_id = record.scheme
    signer = ClusterSigner(cluster.client(via), record.wallet_id, request_id=request_id)
    t0 = time.monotonic()
    res = signer.sign(msg)
    elapsed = time.monotonic() - t0
    sig = bytes.fromhex(res["signature"])
    signers = [names[i - 1] for i in res["signers"]]  # party i is the i-th node of the DKG
    ok = bytes.fromhex(res["public_key"]) == record.public_key and independent_verify(
        scheme_id, record.public_key, msg, sig
    )
    if "ethereum" in schemes.get_scheme(scheme_id).chains:
        # Ethereum's view: the recovered signer is the wallet's address.
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        recid = recovery_id(r, s, msg, record.public_key)
        who = coincurve.PublicKey.from_signature_and_message(sig + bytes([recid]), msg, hasher=None)
        ok = ok and ethereum_address(who.format()) == ethereum_address(record.public_key)
    if down is not None:
        ok = ok and down not in signers
    _say(
        f"   [{scheme_id}] via {via}, signers {','.join(signers)} ({elapsed:.1f}s): "
        f"signature {sig.hex()[:24]}...  {_verifier_name(scheme_id)}: "
        f"{'VALID' if ok else 'INVALID'}"
        + (f"  (signed without {down})" if down is not None and ok else "")
    )
    return ok, signers


def _chain_table(
    cluster: LocalCluster,
    via: str,
    records: dict[str, schemes.WalletRecord],
    names: list[str],
) -> bool:
    """Real transactions signed by the node cluster, submitted to each chain's own code."""
    _say(
        "   (libbitcoinkernel regtest chain, py-evm via eth-tester, Solana LiteSVM); a copy with"
        "\n   one signature byte flipped must be rejected:\n"
    )
    _say(f"   {'chain':9} {'scheme':15} {'accepted':8} {'flipped':8} {'txid':18} address")
    ok = True
    for scheme_id in CHECKS_BY_SCHEME:
        record = records[scheme_id]

        def report(res: dict[str, Any], scheme_id: str = scheme_id) -> None:
            quorum = ",".join(names[int(i) - 1] for i in res["signers"])
            _say(f"      {scheme_id}: cluster signed {res['message'][:16]}... (signers {quorum})")

        signer = ClusterSigner(cluster.client(via), record.wallet_id, report=report)
        with _ticking(f"chain checks of {scheme_id}"):
            results = run_checks(record, signer)
        ok = ok and bool(signer.signers) and all(r.ok for r in results)
        for r in results:
            _say(
                f"   {r.chain:9} {r.scheme:15} {'yes' if r.accepted else 'NO':8} "
                f"{'rejected' if r.flipped_rejected else 'ACCEPTED':8} {r.txid[:16]:18} "
                f"{r.address}"
            )
    _say(
        "\n   every chain's validator accepted the cluster's transactions"
        if ok
        else "\n   A CHAIN CHECK FAILED"
    )
    return ok


if __name__ == "__main__":
    sys.exit(main())
