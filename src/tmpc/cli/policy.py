"""``tmpc policy check|sign|explain|approve|keygen``: signing policies on the command line (the
formats and semantics are :mod:`tmpc.policy`'s and ``docs/policy.md``'s).

Registered on the main group by :mod:`tmpc.cli.main`; errors follow its exit codes: 2 an input
error (a bad policy, request or key file, an unknown key in one, a file that would be
overwritten), 1 a bundle whose signatures do not verify against ``--admins`` and
``--quorum`` (unsigned, tampered, an unknown administrator, too few). ``explain`` exits 0
whatever the decision: the decision is its output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import click

from tmpc.cli import node as cli_node
from tmpc.errors import CryptoError, DecodeError, KeystoreError, ParameterError
from tmpc.policy import approvals as pa
from tmpc.policy.bundle import (
    MAX_BUNDLE_BYTES,
    Bundle,
    parse_admins,
    policy_digest,
    sign_bundle,
    verify_bundle,
)
from tmpc.policy.engine import Facts, explain
from tmpc.policy.keys import MAX_KEY_FILE_BYTES, PolicyKey
from tmpc.policy.rules import Policy, parse_policy
from tmpc.state import keystore

__all__ = ["policy"]

#: Largest request file read by ``explain`` and ``approve``.
MAX_REQUEST_FILE_BYTES = 1 << 20

_as_json = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
_admins_option = click.option(
    "--admins",
    "admins_file",
    type=click.Path(path_type=Path),
    default=None,
    help="JSON file {name: Ed25519 public key hex} of the policy administrators: verify the "
    "bundle's signatures (with --quorum).",
)
_quorum_option = click.option(
    "--quorum", type=int, default=None, help="Administrator signatures needed (with --admins)."
)


def _check_failed(message: str) -> NoReturn:
    from tmpc.cli.main import EXIT_CHECK_FAILED, _fail

    _fail(message, EXIT_CHECK_FAILED)


def _named(path: Path, exc: DecodeError | ParameterError) -> DecodeError | ParameterError:
    """The same error, its message prefixed with the file it is about."""
    return type(exc)(f"{path}: {exc}")


def _read_policy(path: Path) -> tuple[Policy, Bundle | None]:
    """A policy file: TOML (unsigned) or a bundle (JSON; its signatures not checked here)."""
    data = keystore.read_limited(path, "policy file", MAX_BUNDLE_BYTES)
    try:
        if data.lstrip()[:1] == b"{":  # a TOML document never starts with "{"
            bundle = Bundle.parse(data)
            return parse_policy(bundle.source), bundle
        return parse_policy(data), None
    except (DecodeError, ParameterError) as exc:
        raise _named(path, exc) from None


def _load_policy(
    path: Path, admins_file: Path | None, quorum: int | None
) -> tuple[Policy, Bundle | None, bool]:
    """The policy of ``path``, verified against ``--admins``/``--quorum`` if given (exit 1 if
    that fails); the third value says whether the signatures were verified."""
    if (admins_file is None) != (quorum is None):
        raise ParameterError("--admins and --quorum go together")
    policy, bundle = _read_policy(path)
    if admins_file is None or quorum is None:
        return policy, bundle, False
    try:
        admins = parse_admins(keystore.read_json(admins_file, "administrators file"))
    except ParameterError as exc:
        raise _named(admins_file, exc) from None
    if bundle is None:
        _check_failed(f"{path} is an unsigned policy (TOML), not a signed bundle")
    try:
        return verify_bundle(bundle, admins, quorum), bundle, True
    except CryptoError as exc:
        _check_failed(f"{path}: {exc}")


def _read_key(path: Path) -> PolicyKey:
    data = keystore.read_limited(path, "policy key file", MAX_KEY_FILE_BYTES)
    return PolicyKey.from_file_bytes(data, f"policy key file {path}")


def _read_request(path: Path) -> tuple[dict[str, Any], list[Any] | None, dict[str, Any]]:
    """A request file: (its facts, its approvals or None, what the approvals sign: its
    ``request`` object, else its facts)."""
    doc = keystore.read_json(path, "request file", max_bytes=MAX_REQUEST_FILE_BYTES)
    if not isinstance(doc, dict):
        raise ParameterError(f"{path}: a request file is a JSON object")
    facts = {k: v for k, v in doc.items() if k not in ("approvals", "request")}
    approvals = doc.get("approvals")
    if approvals is not None and not isinstance(approvals, list):
        raise ParameterError(f"{path}: approvals must be a list of {{approver, signature}}")
    signed = doc.get("request", facts)
    if not isinstance(signed, dict):
        raise ParameterError(f"{path}: request must be a JSON object")
    return facts, approvals, signed


def _facts(path: Path, doc: dict[str, Any]) -> Facts:
    try:
        return Facts.from_json(doc)
    except ParameterError as exc:
        raise _named(path, exc) from None


def _refuse_existing(out: Path) -> None:
    if out.exists() or out.is_symlink():
        raise KeystoreError(f"{out} already exists; refusing to overwrite it")


@click.group()
def policy() -> None:
    """Signing policies: check, sign and explain them; approve requests; make keys."""


@policy.command("check")
@click.argument("file", type=click.Path(path_type=Path))
@_admins_option
@_quorum_option
@_as_json
def check(file: Path, admins_file: Path | None, quorum: int | None, as_json: bool) -> None:
    """Validate a policy FILE (TOML, or a signed bundle) and summarise it.

    With --admins and --quorum, also verify a bundle's signatures: exit 1 if it is unsigned,
    tampered, signed by an unknown administrator or by too few.
    """
    pol, bundle, verified = _load_policy(file, admins_file, quorum)
    signers = sorted(bundle.signatures) if bundle is not None else []
    rules = [
        {
            "name": r.name,
            "action": r.action,
            "group": r.group,
            "approvals": dict(r.approvals),
            "velocity": None if r.velocity is None else r.velocity.window,
        }
        for r in pol.rules
    ]
    data = {
        "valid": True,
        "kind": "bundle" if bundle is not None else "toml",
        "version": pol.version,
        "reference_currency": pol.reference_currency,
        "digest": policy_digest(pol.source).hex(),
        "prices": {k: str(v) for k, v in pol.prices.items()},
        "approvers": {a.name: a.role for a in pol.approvers.values()},
        "rules": rules,
        "signed_by": signers,
        "signatures_verified": verified,
        "quorum": quorum if verified else None,
    }
    if bundle is None:
        sig_line = "unsigned (a TOML file: sign it with tmpc policy sign)"
    elif verified:
        sig_line = f"signatures verified: {', '.join(signers)} (quorum {quorum})"
    else:
        sig_line = (
            f"signed by: {', '.join(signers) or 'nobody'} (not verified: give --admins and "
            "--quorum)"
        )
    human = [
        f"valid policy, version {pol.version} ({pol.reference_currency}): {len(pol.rules)} "
        f"rule(s), {len(pol.approvers)} approver(s), {len(pol.prices)} price(s)",
        f"digest {data['digest']}",
        sig_line,
    ]
    for i, r in enumerate(pol.rules, 1):
        what = r.action if r.group is None else f"allow -> group {r.group}"
        if r.approvals:
            what += ", approvals " + ", ".join(f"{k} {v}" for k, v in sorted(r.approvals.items()))
        if r.velocity is not None:
            what += f", velocity over {r.velocity.window}"
        human.append(f"  #{i} {r.name}: {what}")
    cli_node.emit(data, as_json, human)


@policy.command("sign")
@click.option(
    "--policy",
    "policy_file",
    required=True,
    type=click.Path(path_type=Path),
    help="The policy: a TOML file, or a bundle to add a signature to.",
)
@click.option(
    "--key", "key_file", required=True, type=click.Path(path_type=Path), help="Your key file."
)
@click.option("--name", required=True, help="Your administrator name (as in --admins).")
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="New bundle file (not kept)."
)
@_as_json
def sign(policy_file: Path, key_file: Path, name: str, out: Path, as_json: bool) -> None:
    """Add your signature to a policy and write the bundle to OUT (never overwritten).

    Signing a bundle keeps its other signatures.
    """
    _refuse_existing(out)
    pol, bundle = _read_policy(policy_file)
    if bundle is None:
        bundle = Bundle.from_policy(pol.source)
    key = _read_key(key_file)
    signed = sign_bundle(bundle, name, key)
    keystore.write_new_file(out, signed.to_bytes(), mode=0o644)
    signers = sorted(signed.signatures)
    cli_node.emit(
        {
            "bundle": str(out),
            "version": pol.version,
            "digest": policy_digest(signed.source).hex(),
            "signed_by": signers,
            "public_key": key.public_key.hex(),
        },
        as_json,
        [
            f"signed policy version {pol.version} as {name}: {out}",
            f"signatures: {', '.join(signers)}",
        ],
    )


@policy.command("explain")
@click.option(
    "--policy",
    "policy_file",
    required=True,
    type=click.Path(path_type=Path),
    help="The policy: a TOML file or a bundle.",
)
@click.option(
    "--request",
    "request_file",
    required=True,
    type=click.Path(path_type=Path),
    help="JSON: wallet, chain, asset, amount, destinations, bare_digest, at "
    "[, approvals, request].",
)
@_admins_option
@_quorum_option
@_as_json
def explain_cmd(
    policy_file: Path,
    request_file: Path,
    admins_file: Path | None,
    quorum: int | None,
    as_json: bool,
) -> None:
    """Which rule decides a request, and why, rule by rule (exit 0 whatever the decision).

    Velocity limits are judged as if nothing had been signed in their window (a node judges
    them against its ledger).
    """
    pol, _bundle, _verified = _load_policy(policy_file, admins_file, quorum)
    facts_doc, approvals, signed = _read_request(request_file)
    facts = _facts(request_file, facts_doc)
    tally = None
    req_hash = None
    if approvals is not None:
        req_hash = pa.request_hash(signed)
        tally = pa.count_approvals(pol, req_hash, approvals)
    result = explain(pol, facts, approvals=tally)
    data = {**result.to_json(), "request_hash": None if req_hash is None else req_hash.hex()}
    cli_node.emit(data, as_json, result.lines())


@policy.command("approve")
@click.option(
    "--key", "key_file", required=True, type=click.Path(path_type=Path), help="Your key file."
)
@click.option("--name", required=True, help="Your approver name (as in the policy).")
@click.option(
    "--request",
    "request_file",
    required=True,
    type=click.Path(path_type=Path),
    help="The request file (its 'request' object is signed if present, else its facts).",
)
def approve(key_file: Path, name: str, request_file: Path) -> None:
    """Approve a request: print {"approver": NAME, "signature": HEX} (JSON) for its
    ``approvals`` list."""
    raw = keystore.read_json(request_file, "--request")
    if isinstance(raw, dict) and "wallet" in raw and ("transaction" in raw or "message" in raw):
        # A party node's signing request ({"wallet", "transaction" or "message", "path"}):
        # approved as every node hashes it (tmpc.node.policy.approval_request).
        from tmpc.node.policy import approval_hash

        key = _read_key(key_file)
        click.echo(json.dumps(pa.sign_approval(name, key, approval_hash(raw))))
        return
    facts_doc, _approvals, signed = _read_request(request_file)
    if signed is facts_doc:
        _facts(request_file, facts_doc)  # never approve facts that do not even parse
    key = _read_key(key_file)
    click.echo(json.dumps(pa.sign_approval(name, key, pa.request_hash(signed))))


@policy.command("install")
@click.option("--node", required=True, metavar="URL", help="A node of the cluster.")
@click.option(
    "--bundle",
    "bundle_file",
    required=True,
    type=click.Path(path_type=Path),
    help="The signed policy bundle (tmpc policy sign).",
)
@click.option("--auth", default=None, metavar="FILE", help="Operator credential (or TMPC_AUTH).")
@_as_json
def install(node: str, bundle_file: Path, auth: str | None, as_json: bool) -> None:
    """Install a signed policy on the cluster: the node checks the administrators' signatures
    (the quorum its cluster file names) and that the version is newer, then forwards it to
    every member, each of which checks it the same way."""
    doc = keystore.read_json(bundle_file, "--bundle")
    res = cli_node.node_call(node, auth)("POST", "/v1/policy", {"bundle": doc})
    cli_node.emit(
        res,
        as_json,
        [f"policy version {res.get('version')} installed on {node} (signed by "
         f"{', '.join(res.get('signed_by', []))}); forwarded to every member"],
    )  # fmt: skip


@policy.command("keygen")
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="New key file (mode 0600)."
)
@_as_json
def keygen(out: Path, as_json: bool) -> None:
    """Make an Ed25519 key for a policy administrator or approver; print its public key.

    The key file holds the secret key in clear (mode 0600); it is never overwritten.
    """
    _refuse_existing(out)
    key = PolicyKey.generate()
    keystore.write_new_file(out, key.to_file_bytes(), mode=0o600)
    pub = key.public_key.hex()
    cli_node.emit(
        {"public_key": pub, "key_file": str(out)},
        as_json,
        [pub, f"secret key written to {out} (mode 0600: keep it private)"],
    )
