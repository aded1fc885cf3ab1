"""``make demo``: a whole custody flow on this machine, nothing to set up.

For each scheme: a 3-of-5 dealerless key generation with all parties in this process, shares
sealed in encrypted files (Argon2id + ChaCha20-Poly1305) in a fresh temporary directory, then
two signatures by two different 3-subsets of parties, each checked by an independent verifier
(libsecp256k1 through coincurve, libsodium through PyNaCl), and a summary table.
"""

from __future__ import annotations

import hashlib
import secrets
import sys
import tempfile
import time
from pathlib import Path

import coincurve
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from tmpc import schemes
from tmpc.addresses import wallet_address
from tmpc.chains.addresses import ethereum_address, p2wpkh_address
from tmpc.ecdsa_format import recovery_id
from tmpc.errors import ParameterError
from tmpc.group import secp256k1
from tmpc.keystore import (
    DEFAULT_KDF,
    ShareSecret,
    open_share,
    seal_share,
    share_path,
    write_new_file,
)
from tmpc.testnet import CHECKS_BY_SCHEME, local_signer, run_checks

__all__ = ["independent_verify", "main"]


def independent_verify(scheme_id: str, public_key: bytes, msg: bytes, sig: bytes) -> bool:
    """Check a signature with code that is not tmpc's own verifier.

    schnorr-bip340: libsecp256k1's BIP340 verification; ed25519: libsodium's RFC 8032
    verification; ecdsa-secp256k1: libsecp256k1's ECDSA verification over the 32-byte digest
    (it accepts low-s signatures only); frost-secp256k1: the RFC 9591 equation
    ``z*G == R + c*PK`` evaluated with libsecp256k1 point operations (``c`` from the RFC's
    H2 over the encodings).
    """
    if scheme_id == "schnorr-bip340":
        if len(msg) != 32:  # libsecp256k1's coincurve binding verifies 32-byte messages
            raise ValueError("independent BIP340 check needs a 32-byte message")
        return bool(coincurve.PublicKeyXOnly(public_key).verify(sig, msg))
    if scheme_id == "ed25519":
        try:
            VerifyKey(public_key).verify(msg, sig)
            return True
        except BadSignatureError:
            return False
    if scheme_id == "ecdsa-secp256k1":
        if len(sig) != 64 or len(msg) != 32:
            return False
        try:
            key = coincurve.PublicKey(public_key)
            der = coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(sig))
        except ValueError:
            return False
        return bool(key.verify(der, msg, hasher=None))
    if scheme_id == "frost-secp256k1":
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


def _verifier_name(scheme_id: str) -> str:
    return {
        "schnorr-bip340": "libsecp256k1 BIP340",
        "ed25519": "libsodium Ed25519",
        "ecdsa-secp256k1": "libsecp256k1 ECDSA",
    }.get(scheme_id, "libsecp256k1 RFC 9591 eq.")


def _addresses(record: schemes.WalletRecord) -> list[str]:
    if record.scheme == "ecdsa-secp256k1":
        return [
            f"ethereum {ethereum_address(record.public_key)}",
            f"bitcoin p2wpkh (regtest) {p2wpkh_address(record.public_key, 'regtest')}",
        ]
    try:
        return [wallet_address(record, "regtest")[0]]
    except ParameterError:
        return ["(no chain address: generic RFC 9591 key)"]


def main() -> int:
    """Run the demo; returns the process exit status."""
    t, n = 3, 5
    passphrase = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="tmpc-demo-") as tmp:
        print(f"tmpc demo: {t}-of-{n} wallets for every scheme (share files in {tmp}, removed")
        print("at the end; the passphrase is random and never shown)\n")
        status = _run(Path(tmp), t, n, passphrase)
    print(
        "\nTry it yourself:\n"
        "  export TMPC_PASSPHRASE='choose a long passphrase'\n"
        "  .venv/bin/tmpc keygen --scheme ecdsa-secp256k1 -t 3 -n 5 --out my-wallet\n"
        "  .venv/bin/tmpc address --wallet my-wallet\n"
        "  .venv/bin/tmpc testnet-check --wallet my-wallet"
    )
    return status


def _run(root: Path, t: int, n: int, passphrase: str) -> int:
    rows = []
    clusters: dict[str, tuple[schemes.WalletRecord, list[schemes.KeyShare]]] = {}
    for scheme_id in schemes.SCHEMES:
        group = schemes.get_scheme(scheme_id).group
        wdir = root / scheme_id
        t0 = time.perf_counter()
        record, shares = schemes.keygen(scheme_id, t, n)
        dkg_ms = (time.perf_counter() - t0) * 1e3
        for s in shares:
            sealed = seal_share(
                ShareSecret(group.encode_scalar(s.secshare), s.hostseckey, s.pairwise),
                wallet_id=record.wallet_id,
                party=s.identifier,
                epoch=0,
                passphrase=passphrase,
                kdf=DEFAULT_KDF,
            )
            write_new_file(share_path(wdir, s.identifier), sealed)
        del shares
        print(f"[{scheme_id}] wallet {record.wallet_id}  public key {record.public_key.hex()}")
        for addr in _addresses(record):
            print(f"[{scheme_id}] address {addr}")
        for subset in ([1, 2, 3], [2, 4, 5]):
            loaded = []
            for i in subset:
                secret = open_share(
                    share_path(wdir, i).read_bytes(),
                    passphrase=passphrase,
                    wallet_id=record.wallet_id,
                    party=i,
                )
                share = schemes.KeyShare(
                    i, group.decode_scalar(secret.secshare), secret.hostseckey, secret.pairwise
                )
                schemes.check_share(record, share)
                loaded.append(share)
            msg = hashlib.sha256(f"demo withdrawal via {subset}".encode()).digest()
            t0 = time.perf_counter()
            sig = schemes.sign(record, loaded, msg)
            sign_ms = (time.perf_counter() - t0) * 1e3
            ok = independent_verify(scheme_id, record.public_key, msg, sig)
            if scheme_id == "ecdsa-secp256k1":
                # Ethereum's view: the recovered signer is the wallet's address.
                r, s_ = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
                recid = recovery_id(r, s_, msg, record.public_key)
                signer = coincurve.PublicKey.from_signature_and_message(
                    sig + bytes([recid]), msg, hasher=None
                )
                ok = ok and ethereum_address(signer.format()) == ethereum_address(record.public_key)
            rows.append((scheme_id, ",".join(map(str, subset)), dkg_ms, sign_ms, ok, sig))
            clusters[scheme_id] = (record, loaded)
            print(
                f"[{scheme_id}] signers {subset}: signature {sig.hex()[:32]}...  "
                f"{_verifier_name(scheme_id)}: {'VALID' if ok else 'INVALID'}"
            )
        print()
    print(f"{'scheme':17} {'signers':8} {'keygen ms':>9} {'sign ms':>8}  independent check")
    for scheme_id, subset_s, dkg_ms, sign_ms, ok, _sig in rows:
        print(
            f"{scheme_id:17} {subset_s:8} {dkg_ms:9.1f} {sign_ms:8.2f}  "
            f"{_verifier_name(scheme_id)}: {'valid' if ok else 'INVALID'}"
        )
    all_ok = all(r[4] for r in rows)
    print(
        "\nall signatures valid under ordinary single-key verification"
        if all_ok
        else "\nSOME SIGNATURES FAILED"
    )
    chains_ok = _chain_table(clusters)
    return 0 if all_ok and chains_ok else 1


def _chain_table(
    clusters: dict[str, tuple[schemes.WalletRecord, list[schemes.KeyShare]]],
) -> bool:
    """Real transactions signed by the 3-of-5 clusters, submitted to each chain's own code."""
    print(
        "\nreal transactions signed by the clusters, checked by each chain's own validation code"
        "\n(libbitcoinkernel regtest chain, py-evm via eth-tester, Solana LiteSVM); a copy with"
        " one signature byte flipped must be rejected:\n"
    )
    print(f"{'chain':9} {'scheme':15} {'accepted':8} {'flipped':8} {'txid':18} address")
    results = []
    for scheme_id in CHECKS_BY_SCHEME:
        record, shares = clusters[scheme_id]
        for r in run_checks(record, local_signer(None, record, shares)):
            results.append(r)
            print(
                f"{r.chain:9} {r.scheme:15} {'yes' if r.accepted else 'NO':8} "
                f"{'rejected' if r.flipped_rejected else 'ACCEPTED':8} {r.txid[:16]:18} {r.address}"
            )
    ok = all(r.ok for r in results)
    print("\nall chains accepted the cluster's transactions" if ok else "\nA CHAIN CHECK FAILED")
    return ok


if __name__ == "__main__":
    sys.exit(main())
