"""BIP341 Taproot: wallet vectors, and threshold signatures under the Taproot output key.

Merkle roots: the vectors give both the script trees and their Merkle roots; each test
computes the root from the tree with :func:`taproot_merkle_root` (leaf hashes and root checked
against the vector) and uses the computed root. Output keys are also derived independently by
libsecp256k1 (coincurve's ``xonly_pubkey_tweak_add``), and every threshold signature is
verified by coincurve under the output key.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import bech32
import coincurve
import pytest

from tests.vectors import load_json
from tmpc.errors import DecodeError, ParameterError
from tmpc.group import SECP256K1
from tmpc.primitives.bip340 import pubkey_gen, schnorr_sign, schnorr_verify
from tmpc.protocols.bip445 import (
    ApplyTweak,
    GetPlainPubkey,
    GetXonlyPubkey,
    TweakCtxInit,
    sign_local,
)
from tmpc.protocols.taproot import (
    TapLeaf,
    TapTree,
    decode_taproot_address,
    tapleaf_hash,
    taproot_address,
    taproot_merkle_root,
    taproot_output_key,
    taproot_script_pubkey,
    taproot_tweak,
    taproot_tweaks_for,
    unspendable_script_path_default,
)
from tmpc.sharing import shamir_split

WALLET = load_json("bip341/wallet-test-vectors.json")
SPK = WALLET["scriptPubKey"]
KEYPATH = WALLET["keyPathSpending"][0]
INPUTS = KEYPATH["inputSpending"]
N = SECP256K1.order


def independent_tap_tweak(xonly: bytes, root: bytes = b"") -> bytes:
    """hash_TapTweak written out with hashlib, not tmpc's tagged_hash."""
    tag = hashlib.sha256(b"TapTweak").digest()
    return hashlib.sha256(tag + tag + xonly + root).digest()


def coincurve_output_key(xonly: bytes, tweak: bytes) -> tuple[bytes, int]:
    """BIP341 output key by libsecp256k1: secp256k1_xonly_pubkey_tweak_add."""
    key = coincurve.PublicKeyXOnly(xonly)
    key.tweak_add(tweak)
    return key.format(), int(key.parity)


def tree_from_json(node: Any) -> TapTree | None:
    if node is None:
        return None
    if isinstance(node, dict):
        return TapLeaf(bytes.fromhex(node["script"]), node["leafVersion"])
    return [tree_from_json(child) for child in node]  # type: ignore[misc]


def leaves_by_id(node: Any, out: dict[int, Any]) -> dict[int, Any]:
    if isinstance(node, dict):
        out[node["id"]] = node
    elif node is not None:
        for child in node:
            leaves_by_id(child, out)
    return out


# --------------------------------------------------------------------------------------------
# scriptPubKey vectors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vec", SPK, ids=[f"spk{i}" for i in range(len(SPK))])
def test_script_pubkey_vector(vec: dict[str, Any]) -> None:
    internal = bytes.fromhex(vec["given"]["internalPubkey"])
    inter, expected = vec["intermediary"], vec["expected"]
    tree = vec["given"]["scriptTree"]

    leaves = leaves_by_id(tree, {})
    for leaf_id, leaf in leaves.items():
        leaf_hash = tapleaf_hash(bytes.fromhex(leaf["script"]), leaf["leafVersion"])
        assert leaf_hash.hex() == inter["leafHashes"][leaf_id]
    root = taproot_merkle_root(tree_from_json(tree))
    assert (root.hex() if root else None) == inter["merkleRoot"]

    tweak = taproot_tweak(internal, root)
    assert tweak.hex() == inter["tweak"]
    output, parity = taproot_output_key(internal, root)
    assert output.hex() == inter["tweakedPubkey"]
    assert coincurve_output_key(internal, tweak) == (output, parity)
    assert taproot_script_pubkey(output).hex() == expected["scriptPubKey"]
    address = taproot_address(output, "mainnet")
    assert address == expected["bip350Address"]
    assert decode_taproot_address(address, "mainnet") == output
    # The control block's first byte is leaf_version | parity of the output key.
    for leaf_id, block in enumerate(expected.get("scriptPathControlBlocks", [])):
        first = bytes.fromhex(block)[0]
        assert first & 1 == parity
        assert first & 0xFE == leaves[leaf_id]["leafVersion"]
        assert bytes.fromhex(block)[1:33] == internal

    # the BIP445 tweak list reproduces the same key and parity (GetPlainPubkey[0] & 1)
    (tw, is_xonly), *rest = taproot_tweaks_for(internal, root)
    assert rest == [] and is_xonly is True and tw == tweak
    ctx = ApplyTweak(TweakCtxInit(SECP256K1.lift_x(internal).encode()), tw, is_xonly)
    assert GetXonlyPubkey(ctx) == output
    assert GetPlainPubkey(ctx)[0] & 1 == parity


def test_bech32_package_makes_bech32_not_bech32m_for_v1() -> None:
    # bech32==1.2.0's encode() uses the BIP173 checksum for every witness version, which is
    # wrong for v1 (BIP350). tmpc's taproot_address must therefore not use it.
    output = bytes.fromhex(SPK[0]["intermediary"]["tweakedPubkey"])
    package_address = bech32.encode("bc", 1, output)
    assert package_address != SPK[0]["expected"]["bip350Address"]
    assert package_address is not None
    with pytest.raises(DecodeError, match="checksum"):
        decode_taproot_address(package_address, "mainnet")


@pytest.mark.parametrize(
    ("network", "prefix"), [("mainnet", "bc1p"), ("testnet", "tb1p"), ("regtest", "bcrt1p")]
)
def test_address_networks(network: str, prefix: str) -> None:
    output = bytes.fromhex(SPK[0]["intermediary"]["tweakedPubkey"])
    address = taproot_address(output, network)
    assert address.startswith(prefix)
    assert decode_taproot_address(address, network) == output
    # the same address is not valid on another network
    other = "testnet" if network == "mainnet" else "mainnet"
    with pytest.raises(DecodeError):
        decode_taproot_address(address, other)
    # a single changed character breaks the checksum
    flipped = address[:-1] + ("q" if address[-1] != "q" else "p")
    with pytest.raises(DecodeError):
        decode_taproot_address(flipped, network)


def test_address_bad_inputs() -> None:
    output = bytes(range(32))
    with pytest.raises(ParameterError):
        taproot_address(output, "dogecoin")
    with pytest.raises(DecodeError):
        taproot_address(output[:31], "mainnet")
    with pytest.raises(DecodeError):
        taproot_tweak(output[:31], None)
    with pytest.raises(DecodeError):
        taproot_tweak(output, b"\x00" * 31)
    with pytest.raises(ParameterError):
        taproot_merkle_root([TapLeaf(b"\x51")])  # a branch needs two children
    with pytest.raises(ParameterError):
        tapleaf_hash(b"\x51", 0xC1)  # odd leaf version


# --------------------------------------------------------------------------------------------
# keyPathSpending vectors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("inp", INPUTS, ids=[f"txin{i['given']['txinIndex']}" for i in INPUTS])
def test_key_path_spending_vector(inp: dict[str, Any]) -> None:
    given, inter = inp["given"], inp["intermediary"]
    sk = bytes.fromhex(given["internalPrivkey"])
    root = bytes.fromhex(given["merkleRoot"]) if given["merkleRoot"] else None
    internal = pubkey_gen(sk)
    assert internal.hex() == inter["internalPubkey"]
    tweak = taproot_tweak(internal, root)
    assert tweak.hex() == inter["tweak"]

    # The output key is the one in the spent UTXO's scriptPubKey.
    spk = bytes.fromhex(KEYPATH["given"]["utxosSpent"][given["txinIndex"]]["scriptPubKey"])
    output, _parity = taproot_output_key(internal, root)
    assert taproot_script_pubkey(output) == spk

    # BIP341 taproot_tweak_seckey: negate d if P has odd y, then add t.
    d = int.from_bytes(sk, "big")
    if not SECP256K1.base_mul(d).has_even_y():
        d = N - d
    tweaked = (d + int.from_bytes(tweak, "big")) % N
    assert tweaked.to_bytes(32, "big").hex() == inter["tweakedPrivkey"]
    assert pubkey_gen(tweaked.to_bytes(32, "big")) == output

    # The vector's witness signature is BIP340 with all-zero aux randomness.
    sighash = bytes.fromhex(inter["sigHash"])
    witness_sig = bytes.fromhex(inp["expected"]["witness"][0])[:64]
    assert schnorr_sign(sighash, tweaked.to_bytes(32, "big"), bytes(32)) == witness_sig
    assert coincurve.PublicKeyXOnly(output).verify(witness_sig, sighash)

    # The same internal key held 2-of-3: any two holders sign the sighash under the output key.
    shares = shamir_split(SECP256K1, int.from_bytes(sk, "big"), 2, [1, 2, 3])
    P = SECP256K1.base_mul(int.from_bytes(sk, "big"))
    pubshares = {x: SECP256K1.base_mul(s) for x, s in shares.items()}
    signers = {x: shares[x] for x in secrets.SystemRandom().sample([1, 2, 3], 2)}
    sig = sign_local(signers, pubshares, P, sighash, tweaks=taproot_tweaks_for(P, root))
    assert coincurve.PublicKeyXOnly(output).verify(sig, sighash)
    assert schnorr_verify(sighash, output, sig)
    assert not coincurve.PublicKeyXOnly(internal).verify(sig, sighash)


# --------------------------------------------------------------------------------------------
# A threshold key under its Taproot output key
# --------------------------------------------------------------------------------------------


def threshold_key(t: int, n: int) -> tuple[dict[int, int], dict[int, Any], Any]:
    secret = SECP256K1.random_scalar()
    shares = shamir_split(SECP256K1, secret, t, list(range(1, n + 1)))
    pubshares = {x: SECP256K1.base_mul(s) for x, s in shares.items()}
    return shares, pubshares, SECP256K1.base_mul(secret)


def test_default_output_key_is_unspendable_script_path_commitment() -> None:
    shares, pubshares, P = threshold_key(3, 5)
    # Independently: Q = lift_x(x(P)) + int(hash_TapTweak(xbytes(P))) G, by coincurve.
    xonly_p = coincurve.PublicKey(P.encode()).format()[1:]
    expected = coincurve_output_key(xonly_p, independent_tap_tweak(xonly_p))
    assert unspendable_script_path_default(P) == expected
    assert taproot_output_key(P) == expected
    assert taproot_output_key(P, None) == expected
    assert taproot_output_key(xonly_p) == expected
    # the default is not the bare key: the output key commits to the (empty) script tree
    assert expected[0] != xonly_p

    msg = secrets.token_bytes(32)
    signers = {x: shares[x] for x in (1, 3, 4)}
    sig = sign_local(signers, pubshares, P, msg, tweaks=taproot_tweaks_for(P))
    assert coincurve.PublicKeyXOnly(expected[0]).verify(sig, msg)
    assert schnorr_verify(msg, expected[0], sig)
    # and not under the internal key
    assert not coincurve.PublicKeyXOnly(xonly_p).verify(sig, msg)


def test_threshold_signature_with_script_tree() -> None:
    shares, pubshares, P = threshold_key(2, 3)
    tree: TapTree = [
        TapLeaf(b"\x51"),
        [TapLeaf(bytes([0x20]) + bytes(32) + b"\xac"), TapLeaf(b"\x52")],
    ]
    root = taproot_merkle_root(tree)
    assert root is not None
    xonly_p = P.xonly()
    output, parity = coincurve_output_key(xonly_p, independent_tap_tweak(xonly_p, root))
    assert taproot_output_key(P, root) == (output, parity)
    assert output != unspendable_script_path_default(P)[0]

    msg = secrets.token_bytes(32)
    sig = sign_local(
        {2: shares[2], 3: shares[3]}, pubshares, P, msg, tweaks=taproot_tweaks_for(P, root)
    )
    assert coincurve.PublicKeyXOnly(output).verify(sig, msg)
    # signing with the default tweak does not give a signature for the script-tree key
    sig_default = sign_local(
        {1: shares[1], 2: shares[2]}, pubshares, P, msg, tweaks=taproot_tweaks_for(P)
    )
    assert not coincurve.PublicKeyXOnly(output).verify(sig_default, msg)


def test_odd_y_internal_key_is_lifted_to_even() -> None:
    # BIP341 uses lift_x(x(P)): a threshold key with odd y gives the same output key as -P.
    while True:
        shares, pubshares, P = threshold_key(2, 3)
        if not P.has_even_y():
            break
    assert taproot_output_key(P) == taproot_output_key(-P)
    msg = secrets.token_bytes(32)
    sig = sign_local({1: shares[1], 3: shares[3]}, pubshares, P, msg, tweaks=taproot_tweaks_for(P))
    assert coincurve.PublicKeyXOnly(taproot_output_key(P)[0]).verify(sig, msg)


def test_taproot_address_of_threshold_key_round_trips() -> None:
    _shares, _pubshares, P = threshold_key(2, 3)
    output, _ = taproot_output_key(P)
    for network in ("mainnet", "testnet", "regtest"):
        assert decode_taproot_address(taproot_address(output, network), network) == output
