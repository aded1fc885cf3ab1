"""Token nodes: a node's share-wrapping key in a PKCS#11 token (SoftHSM), real node processes.

Each test makes its own SoftHSM token (``SOFTHSM2_CONF`` pointing at a configuration and token
directory of its own, ``softhsm2-util --init-token``) and deletes it afterwards. ``make test``
installs Debian's ``softhsm2``; without it these tests fail and say so.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.node_helpers import result_ok
from tmpc import schemes
from tmpc.cli.node import wait_ready
from tmpc.errors import CryptoError, KeystoreError
from tmpc.node import config as node_config
from tmpc.node import hsm
from tmpc.state import keystore

PIN = "4711-token-pin"
SO_PIN = "so-pin-0815"
PASSPHRASE = "passphrase of the plain node"
MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
)
DIGEST = bytes.fromhex("7e" * 32)


@dataclass
class SoftHsm:
    """One SoftHSM installation of a test's own: configuration file, token directory."""

    root: Path
    module: str
    conf: Path

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ, SOFTHSM2_CONF=str(self.conf))
        for var in ("TMPC_NODE_PASSPHRASE", "TMPC_NODE_HSM_PIN", "TMPC_AUTH"):
            env.pop(var, None)
        return env

    def util(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["softhsm2-util", *args], env=self.env, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip

    def init_token(self, label: str) -> None:
        out = self.util("--init-token", "--free", "--label", label, "--so-pin", SO_PIN,
                        "--pin", PIN)  # fmt: skip
        assert out.returncode == 0, out.stderr

    def delete_token(self, label: str) -> None:
        self.util("--delete-token", "--token", label)

    def labels(self) -> list[str]:
        out = self.util("--show-slots")
        return [
            line.split(":", 1)[1].strip()
            for line in out.stdout.splitlines()
            if line.strip().startswith("Label:") and line.split(":", 1)[1].strip()
        ]


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsm]:
    """A SoftHSM configuration with one token, ``tok``; every token is deleted at the end."""
    if shutil.which("softhsm2-util") is None:
        pytest.fail("softhsm2 is not installed: run `make test`, which installs it")
    module = next((m for m in MODULES if os.path.isfile(m)), None)
    if module is None:
        pytest.fail("the SoftHSM PKCS#11 module is missing: run `make test`, which installs it")
    root = tmp_path / "softhsm"
    (root / "tokens").mkdir(parents=True)
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\n"
        "objectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))  # for the calls made in this process
    h = SoftHsm(root, module, conf)
    h.init_token("tok")
    try:
        yield h
    finally:
        for label in h.labels():
            h.delete_token(label)
        assert h.labels() == []
        shutil.rmtree(root / "tokens")


def _tmpc(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tmpc", *args], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def _one_line_error(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("tmpc: error: "), out.stderr
    assert "Traceback" not in out.stderr
    assert PIN not in out.stderr and PIN not in out.stdout
    for n in needles:
        assert n in out.stderr, out.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _init_token_node(h: SoftHsm, directory: Path, name: str, pin_file: Path, *extra: str) -> Any:
    out = _tmpc(
        "node", "init", "--dir", str(directory), "--name", name,
        "--listen", f"127.0.0.1:{_free_port()}", "--hsm-module", h.module, "--hsm-token", "tok",
        "--hsm-pin-file", str(pin_file), "--json", *extra, env=h.env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_init_keeps_the_wrapping_key_in_the_token(softhsm: SoftHsm, tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    info = _init_token_node(softhsm, tmp_path / "a", "a", pin_file)
    assert info["hsm"] == {"module": softhsm.module, "token": "tok", "key_label": "tmpc-node/a"}
    node_doc = json.loads((tmp_path / "a" / "node.json").read_text())
    assert node_doc["hsm"] == info["hsm"]
    # No PIN anywhere in the node directory.
    for f in (tmp_path / "a").rglob("*"):
        if f.is_file():
            assert PIN.encode() not in f.read_bytes(), f
    # The identity is sealed under the data key, which the token alone unwraps.
    ident = json.loads((tmp_path / "a" / "identity.tmpc").read_text())
    assert ident["kdf"]["alg"] == "data-key" and "passphrase_form" not in ident
    wrapped = json.loads((tmp_path / "a" / hsm.DATA_KEY_FILE).read_text())
    assert wrapped["mechanism"] == "CKM_AES_GCM" and wrapped["node"] == "a"
    # The token key is an AES key that cannot leave the token.
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass
    from pkcs11 import exceptions as p11

    lib = pkcs11.lib(softhsm.module)
    try:
        with lib.get_token(token_label="tok").open(user_pin=PIN) as session:
            key = session.get_key(ObjectClass.SECRET_KEY, KeyType.AES, label="tmpc-node/a")
            assert key[Attribute.SENSITIVE] and not key[Attribute.EXTRACTABLE]
            assert key[Attribute.TOKEN] and key[Attribute.PRIVATE]
            assert key[Attribute.VALUE_LEN] == 32
            with pytest.raises(p11.AttributeSensitive):
                key[Attribute.VALUE]
    finally:
        lib.finalize()
    # The card opens with the PIN (from the environment this time) and nothing else.
    env = dict(softhsm.env, TMPC_NODE_HSM_PIN=PIN)
    out = _tmpc("node", "card", "--dir", str(tmp_path / "a"), env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["name"] == "a"
    pw = tmp_path / "pw"
    pw.write_text(PASSPHRASE)
    out = _tmpc("node", "card", "--dir", str(tmp_path / "a"), "--passphrase-file", str(pw),
                env=env)  # fmt: skip
    _one_line_error(out, "PKCS#11 token 'tok'", "not a passphrase")


def test_init_errors_are_one_line(softhsm: SoftHsm, tmp_path: Path) -> None:
    env = dict(softhsm.env, TMPC_NODE_HSM_PIN=PIN)
    base = ["node", "init", "--name", "a", "--listen", "127.0.0.1:7443"]
    cases: list[tuple[list[str], dict[str, str], tuple[str, ...]]] = [
        (["--hsm-module", str(tmp_path / "nope.so"), "--hsm-token", "tok"], env,
         ("PKCS#11 module not found",)),
        (["--hsm-module", str(softhsm.conf), "--hsm-token", "tok"], env,
         ("cannot load the PKCS#11 module",)),
        (["--hsm-module", softhsm.module, "--hsm-token", "other"], env,
         ("no PKCS#11 token labelled 'other'",)),
        (["--hsm-module", softhsm.module, "--hsm-token", "tok"],
         dict(env, TMPC_NODE_HSM_PIN="0000"), ("wrong PIN for PKCS#11 token 'tok'",)),
        (["--hsm-token", "tok"], env, ("--hsm-module and --hsm-token go together",)),
    ]  # fmt: skip
    for i, (extra, e, needles) in enumerate(cases):
        d = tmp_path / f"n{i}"
        _one_line_error(_tmpc(*base, "--dir", str(d), *extra, env=e), *needles)
        assert not (d / "node.json").exists() and not (d / "identity.tmpc").exists()
    # Without a PIN and without a terminal: told where to put it.
    out = _tmpc(*base, "--dir", str(tmp_path / "x"), "--hsm-module", softhsm.module,
                "--hsm-token", "tok", env=softhsm.env)  # fmt: skip
    _one_line_error(out, "no token PIN", "TMPC_NODE_HSM_PIN")


def test_a_token_key_that_can_leave_the_token_is_refused(softhsm: SoftHsm, tmp_path: Path) -> None:
    raw = tmp_path / "aes.key"
    raw.write_bytes(bytes(range(32)))
    out = softhsm.util("--import", str(raw), "--aes", "--token", "tok", "--label", "tmpc-node/a",
                       "--id", "01", "--pin", PIN)  # fmt: skip
    assert out.returncode == 0, out.stderr
    out = _tmpc("node", "init", "--dir", str(tmp_path / "a"), "--name", "a",
                "--listen", "127.0.0.1:7443", "--hsm-module", softhsm.module,
                "--hsm-token", "tok", env=dict(softhsm.env, TMPC_NODE_HSM_PIN=PIN))  # fmt: skip
    _one_line_error(out, "can leave or has left the token")


class Node:
    """One node process (``tmpc node run``) with its environment."""

    def __init__(self, directory: Path, name: str, env: dict[str, str]) -> None:
        self.dir, self.name, self.env = directory, name, env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.dir / "node.log", "ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tmpc", "node", "run", "--dir", str(self.dir),
                 "--round-timeout", "5"],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=self.env,
            )  # fmt: skip
        finally:
            log.close()
        wait_ready(self.proc, self.name)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None


def _cluster(h: SoftHsm, root: Path) -> tuple[dict[str, Node], Path]:
    """Nodes a and b on the token (one key each), c under a passphrase, joined by the CLI."""
    pin_file = root / "pin"
    pin_file.write_text(PIN + "\n")
    pw_file = root / "passphrase"
    pw_file.write_text(PASSPHRASE + "\n")
    _init_token_node(h, root / "a", "a", pin_file)
    _init_token_node(h, root / "b", "b", pin_file, "--hsm-key-label", "node b key")
    out = _tmpc("node", "init", "--dir", str(root / "c"), "--name", "c",
                "--listen", f"127.0.0.1:{_free_port()}", "--passphrase-file", str(pw_file),
                env=h.env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    token_env = dict(h.env, TMPC_NODE_HSM_PIN=PIN)
    plain_env = dict(h.env, TMPC_NODE_PASSPHRASE=PASSPHRASE)
    envs = {"a": token_env, "b": token_env, "c": plain_env}
    cards = []
    for name in "abc":
        out = _tmpc("node", "card", "--dir", str(root / name), env=envs[name])
        assert out.returncode == 0, out.stderr
        (root / f"{name}.card").write_text(out.stdout)
        cards += ["--card", str(root / f"{name}.card")]
    auth = root / "operator.json"
    out = _tmpc("cluster", "create", *cards, "--out", str(root / "cluster.json"),
                "--auth-out", str(auth), env=h.env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    for name in "abc":
        out = _tmpc("cluster", "join", "--dir", str(root / name),
                    "--cluster", str(root / "cluster.json"), env=envs[name])  # fmt: skip
        assert out.returncode == 0, out.stderr
    return {n: Node(root / n, n, envs[n]) for n in "abc"}, auth


def _client(node: Node, auth: Path) -> Any:
    from tmpc.node.client import Credential, NodeClient

    cfg = node_config.load_config(node.dir)
    return NodeClient(cfg.url, Credential.load(str(auth)), timeout=60)


def test_token_nodes_sign_and_survive_a_restart(softhsm: SoftHsm, tmp_path: Path) -> None:
    nodes, auth = _cluster(softhsm, tmp_path)
    try:
        for n in nodes.values():
            n.start()
        wallets = {}
        for scheme in ("schnorr-bip340", "ecdsa-secp256k1"):
            res = _client(nodes["c"], auth).call(
                "POST",
                "/v1/wallets",
                {"scheme": scheme, "threshold": 3, "parties": ["a", "b", "c"]},
            )
            wallets[scheme] = res["wallet"]["wallet_id"]
            for coordinator in ("a", "c"):
                sig = _client(nodes[coordinator], auth).call(
                    "POST", "/v1/sign", {"wallet": wallets[scheme], "message": DIGEST.hex()}
                )
                assert result_ok(sig), sig
                assert sorted(sig["signers"]) == [1, 2, 3]
        # The token node's shares are sealed under its data key.
        share_a = tmp_path / "a" / "wallets" / wallets["schnorr-bip340"] / "party-1.share"
        assert json.loads(share_a.read_text())["kdf"]["alg"] == "data-key"
        share_c = tmp_path / "c" / "wallets" / wallets["schnorr-bip340"] / "party-3.share"
        assert json.loads(share_c.read_text())["kdf"]["alg"] == "argon2id"

        # Restart: a wrong PIN is refused in one line before anything listens ...
        nodes["a"].stop()
        out = _tmpc("node", "run", "--dir", str(tmp_path / "a"),
                    env=dict(softhsm.env, TMPC_NODE_HSM_PIN="123456"))  # fmt: skip
        _one_line_error(out, "wrong PIN for PKCS#11 token 'tok'")
        # ... and the right one brings the node back, signing with the shares it unwrapped.
        nodes["a"].start()
        for scheme, wallet in wallets.items():
            for coordinator in ("a", "b"):
                msg = bytes.fromhex("3a" * 32) if coordinator == "a" else DIGEST
                sig = _client(nodes[coordinator], auth).call(
                    "POST", "/v1/sign", {"wallet": wallet, "message": msg.hex()}
                )
                assert result_ok(sig), (scheme, sig)
                assert 1 in sig["signers"]
    finally:
        for n in nodes.values():
            n.stop()

    # The share file cannot be opened without the token.
    record = schemes.WalletRecord.from_json(
        json.loads(share_a.with_name("wallet.json").read_text())
    )
    data = share_a.read_bytes()
    cfg = node_config.load_config(tmp_path / "a")
    open_args: dict[str, Any] = {"wallet_id": record.wallet_id, "party": 1, "epoch": record.epoch}
    with pytest.raises(KeystoreError, match="opens only with its node's token"):
        keystore.open_share(data, passphrase=PIN, **open_args)
    with pytest.raises(KeystoreError, match="wrong PIN"):
        node_config.unlock_with_token(cfg, "not the pin")
    key = node_config.unlock_with_token(cfg, PIN)  # the token: it opens
    secret = node_config.open_secret(data, unlock=key, **open_args)
    group = schemes.get_scheme(record.scheme).group
    share = schemes.KeyShare(1, group.decode_scalar(secret.secshare), secret.hostseckey, None)
    schemes.check_share(record, share)
    assert repr(key).count(key.key.hex()) == 0 and PIN not in repr(hsm.TokenLogin(cfg.hsm, PIN))
    # Another node's data key (b's, same token, its own key) does not open a's files.
    key_b = node_config.unlock_with_token(node_config.load_config(tmp_path / "b"), PIN)
    with pytest.raises(KeystoreError, match="another data key"):
        node_config.open_secret(data, unlock=key_b, **open_args)
    # A token with the same labels but not the same key (the token reset): no key, then a key
    # that does not open the data key.
    softhsm.delete_token("tok")
    with pytest.raises(KeystoreError, match="no PKCS#11 token labelled 'tok'"):
        node_config.unlock_with_token(cfg, PIN)
    softhsm.init_token("tok")
    with pytest.raises(KeystoreError, match="holds no key labelled 'tmpc-node/a'"):
        node_config.unlock_with_token(cfg, PIN)
    out = _tmpc("node", "run", "--dir", str(tmp_path / "a"),
                env=dict(softhsm.env, TMPC_NODE_HSM_PIN=PIN))  # fmt: skip
    _one_line_error(out, "holds no key labelled 'tmpc-node/a'")
    other = tmp_path / "other"
    _init_token_node(softhsm, other, "a", tmp_path / "pin")  # a new key, label tmpc-node/a
    with pytest.raises(CryptoError, match="does not open"):
        node_config.unlock_with_token(cfg, PIN)
