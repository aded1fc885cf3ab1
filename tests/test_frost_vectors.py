"""RFC 9591 signing vectors at every intermediate value, for both ciphersuites.

Three sets per suite, read by one loader:

- ``rfc9591-appendix-e-*``: the RFC 9591 Appendix E vectors (key ``group_public_key``);
- ``*-vectors.json``: ZcashFoundation/frost's own set in the RFC format (key
  ``verifying_key_key``; same key and shares, different nonce randomness);
- ``*-vectors-big-identifier.json``: the same with identifiers 129, 256, 257.

Checked per set: the shares lie on the given polynomial, interpolating them gives the
group secret key, interpolating the verifying shares in the exponent gives the group key;
per signer: both nonces from their randomness, the commitments, the binding-factor input
(which covers H4 and H5), the binding factor (H1 / expand_message_xmd), the signature share
(H2 through the challenge); the aggregate signature byte for byte; and that signature under
tmpc's verifier *and* an independent one: PyNaCl (libsodium) for Ed25519, and for secp256k1
the equation ``z*G == R + c*PK`` computed right here with coincurve point operations and a
challenge hashed by this file's own ``expand_message_xmd`` (not tmpc's).

The independent verifiers are also imported by the other FROST test modules.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import coincurve
import nacl.exceptions
import nacl.signing
import pytest

from tests.vectors import load_json
from tmpc.group import ed25519, secp256k1
from tmpc.group.base import Ciphersuite, Point
from tmpc.protocols.frost import (
    SigningCommitments,
    aggregate,
    binding_factor_for_participant,
    binding_factor_inputs,
    commit,
    compute_binding_factors,
    compute_challenge,
    compute_group_commitment,
    encode_group_commitment_list,
    nonce_generate,
    participants_from_commitment_list,
    sign,
    sign_local,
    verify,
    verify_signature_share,
)
from tmpc.sharing import eval_polynomial, lagrange_coefficients, shamir_combine

# ---------------------------------------------------------------------------------------------
# Independent verifiers (used by every FROST test module)
# ---------------------------------------------------------------------------------------------

SECP_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _xmd_sha256(msg: bytes, dst: bytes, out_len: int) -> bytes:
    """RFC 9380 §5.3.1 expand_message_xmd(SHA-256), written here independently of tmpc."""
    dst_prime = dst + len(dst).to_bytes(1, "big")
    b_0 = hashlib.sha256(
        b"\x00" * 64 + msg + out_len.to_bytes(2, "big") + b"\x00" + dst_prime
    ).digest()
    blocks = [hashlib.sha256(b_0 + b"\x01" + dst_prime).digest()]
    while 32 * len(blocks) < out_len:
        mixed = (int.from_bytes(b_0, "big") ^ int.from_bytes(blocks[-1], "big")).to_bytes(32, "big")
        blocks.append(hashlib.sha256(mixed + bytes([len(blocks) + 1]) + dst_prime).digest())
    return b"".join(blocks)[:out_len]


def coincurve_frost_verify(pk33: bytes, msg: bytes, sig: bytes) -> bool:
    """FROST(secp256k1, SHA-256) verification with coincurve only: ``z*G == R + c*PK``."""
    if len(sig) != 65 or sig[0] not in (2, 3):
        return False
    try:
        R = coincurve.PublicKey(sig[:33])
        PK = coincurve.PublicKey(pk33)
    except ValueError:
        return False
    z = int.from_bytes(sig[33:], "big")
    if not 0 < z < SECP_N:
        return False
    # H2 per RFC 9591 §6.5: hash_to_field with DST = contextString || "chal", L = 48.
    digest = _xmd_sha256(sig[:33] + pk33 + msg, b"FROST-secp256k1-SHA256-v1chal", 48)
    c = int.from_bytes(digest, "big") % SECP_N
    lhs = coincurve.PublicKey.from_valid_secret(z.to_bytes(32, "big"))
    try:
        rhs = coincurve.PublicKey.combine_keys([R, PK.multiply(c.to_bytes(32, "big"))])
    except ValueError:  # R + c*PK is the point at infinity
        return False
    return lhs.format() == rhs.format()


def nacl_verify(pk32: bytes, msg: bytes, sig: bytes) -> bool:
    """RFC 8032 Ed25519 verification by libsodium through PyNaCl."""
    if len(sig) != 64:  # PyNaCl raises ValueError for these instead of BadSignatureError
        return False
    try:
        nacl.signing.VerifyKey(pk32).verify(msg, sig)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


def independent_verify(suite: Ciphersuite, pk: Point, msg: bytes, sig: bytes) -> bool:
    """Verify a FROST signature without tmpc's verifier (PyNaCl or coincurve)."""
    if suite is ed25519:
        return nacl_verify(pk.encode(), msg, sig)
    assert suite is secp256k1
    return coincurve_frost_verify(pk.encode(), msg, sig)


# ---------------------------------------------------------------------------------------------
# One loader for the three vector formats
# ---------------------------------------------------------------------------------------------

SUITES: dict[str, Ciphersuite] = {"secp256k1": secp256k1, "ed25519": ed25519}

FILES = [
    "rfc9591/rfc9591-appendix-e-secp256k1-sha256.json",
    "rfc9591/rfc9591-appendix-e-ed25519-sha512.json",
    "rfc9591/secp256k1-vectors.json",
    "rfc9591/ed25519-vectors.json",
    "rfc9591/secp256k1-vectors-big-identifier.json",
    "rfc9591/ed25519-vectors-big-identifier.json",
]


@dataclass(frozen=True)
class Signer:
    identifier: int
    share: int
    hiding_randomness: bytes
    binding_randomness: bytes
    hiding_nonce: int
    binding_nonce: int
    hiding_commitment: bytes
    binding_commitment: bytes
    binding_factor_input: bytes
    binding_factor: int
    sig_share: int


@dataclass(frozen=True)
class Vector:
    name: str
    suite: Ciphersuite
    min_participants: int
    max_participants: int
    group_secret_key: int
    group_public_key: bytes
    message: bytes
    coefficients: list[int]
    shares: dict[int, int]
    participant_list: list[int]
    signers: list[Signer]
    signature: bytes


def load_vector(relpath: str) -> Vector:
    raw: dict[str, Any] = load_json(relpath)
    cfg, inp = raw["config"], raw["inputs"]
    suite = SUITES[cfg["group"]]
    g = suite.group
    scalar = g.decode_scalar

    def h(s: str) -> bytes:
        return bytes.fromhex(s)

    # The RFC files say "group_public_key", ZF's "verifying_key_key"; nothing else differs.
    pk_hex = inp.get("group_public_key", inp.get("verifying_key_key"))
    shares = {p["identifier"]: scalar(h(p["participant_share"])) for p in inp["participant_shares"]}
    sig_shares = {
        o["identifier"]: scalar(h(o["sig_share"])) for o in raw["round_two_outputs"]["outputs"]
    }
    signers = [
        Signer(
            identifier=o["identifier"],
            share=shares[o["identifier"]],
            hiding_randomness=h(o["hiding_nonce_randomness"]),
            binding_randomness=h(o["binding_nonce_randomness"]),
            hiding_nonce=scalar(h(o["hiding_nonce"])),
            binding_nonce=scalar(h(o["binding_nonce"])),
            hiding_commitment=h(o["hiding_nonce_commitment"]),
            binding_commitment=h(o["binding_nonce_commitment"]),
            binding_factor_input=h(o["binding_factor_input"]),
            binding_factor=scalar(h(o["binding_factor"])),
            sig_share=sig_shares[o["identifier"]],
        )
        for o in raw["round_one_outputs"]["outputs"]
    ]
    return Vector(
        name=relpath,
        suite=suite,
        min_participants=int(cfg["MIN_PARTICIPANTS"]),
        max_participants=int(cfg["MAX_PARTICIPANTS"]),
        group_secret_key=scalar(h(inp["group_secret_key"])),
        group_public_key=h(pk_hex),
        message=h(inp["message"]),
        coefficients=[scalar(h(c)) for c in inp["share_polynomial_coefficients"]],
        shares=shares,
        participant_list=list(inp["participant_list"]),
        signers=signers,
        signature=h(raw["final_output"]["sig"]),
    )


VECTORS = [load_vector(f) for f in FILES]
IDS = [f.split("/")[-1].removesuffix(".json") for f in FILES]
parametrize = pytest.mark.parametrize("v", VECTORS, ids=IDS)


def test_loader_sees_every_set() -> None:
    # Both suites, all three sets each; the signer lists match the participant lists.
    assert sorted(v.suite is secp256k1 for v in VECTORS) == [False] * 3 + [True] * 3
    for v in VECTORS:
        assert [s.identifier for s in v.signers] == v.participant_list
        assert len(v.shares) == v.max_participants
        assert len(v.coefficients) == v.min_participants - 1


def _commitment_list(v: Vector) -> list[SigningCommitments]:
    """Decode the round-one commitments from their wire form (exercises from_bytes)."""
    g = v.suite.group
    return [
        SigningCommitments.from_bytes(
            v.suite, g.encode_scalar(s.identifier) + s.hiding_commitment + s.binding_commitment
        )
        for s in v.signers
    ]


# ---------------------------------------------------------------------------------------------
# Key material
# ---------------------------------------------------------------------------------------------


@parametrize
def test_group_key_and_shares(v: Vector) -> None:
    g = v.suite.group
    PK = g.decode_point(v.group_public_key)
    # The group key is s*G for the given secret ...
    assert g.base_mul(v.group_secret_key) == PK
    # ... every share is f(i) on f = s + a_1 x + ... (RFC 9591 Appendix C.1) ...
    poly = [v.group_secret_key, *v.coefficients]
    for i, share in v.shares.items():
        assert eval_polynomial(g, poly, i) == share
    # ... the signers' shares interpolate to s, and their verifying shares to PK.
    signing = {i: v.shares[i] for i in v.participant_list}
    assert shamir_combine(g, signing) == v.group_secret_key
    lam = lagrange_coefficients(g, v.participant_list)
    assert g.sum_points([g.base_mul(v.shares[i]) * lam[i] for i in v.participant_list]) == PK
    # Any other MIN_PARTICIPANTS shares give the same secret (first and last ones).
    ids = sorted(v.shares)
    for subset in (ids[: v.min_participants], ids[-v.min_participants :]):
        assert shamir_combine(g, {i: v.shares[i] for i in subset}) == v.group_secret_key


# ---------------------------------------------------------------------------------------------
# Round one
# ---------------------------------------------------------------------------------------------


@parametrize
def test_round_one_nonces_and_commitments(v: Vector) -> None:
    g = v.suite.group
    for s in v.signers:
        # RFC 9591 §4.1 nonce_generate with the vector's randomness.
        assert nonce_generate(v.suite, s.share, s.hiding_randomness) == s.hiding_nonce
        assert nonce_generate(v.suite, s.share, s.binding_randomness) == s.binding_nonce
        # RFC 9591 §5.1 commit.
        nonces, comms = commit(
            v.suite,
            s.identifier,
            s.share,
            hiding_randomness=s.hiding_randomness,
            binding_randomness=s.binding_randomness,
        )
        assert nonces.hiding_nonce == s.hiding_nonce
        assert nonces.binding_nonce == s.binding_nonce
        assert comms.identifier == s.identifier
        assert comms.hiding.encode() == s.hiding_commitment
        assert comms.binding.encode() == s.binding_commitment
        wire = comms.to_bytes()
        assert wire == g.encode_scalar(s.identifier) + s.hiding_commitment + s.binding_commitment
        assert SigningCommitments.from_bytes(v.suite, wire) == comms


# ---------------------------------------------------------------------------------------------
# Binding factors, group commitment, challenge
# ---------------------------------------------------------------------------------------------


@parametrize
def test_binding_factor_inputs_and_factors(v: Vector) -> None:
    g = v.suite.group
    PK = g.decode_point(v.group_public_key)
    clist = _commitment_list(v)
    assert participants_from_commitment_list(clist) == v.participant_list
    enc = encode_group_commitment_list(v.suite, clist)
    assert len(enc) == len(clist) * (g.scalar_len + 2 * g.element_len)
    # binding_factor_input = PK || H4(msg) || H5(encoded list) || identifier: this checks the
    # group layer's H4 and H5 as well.
    assert binding_factor_inputs(v.suite, PK, clist, v.message) == [
        (s.identifier, s.binding_factor_input) for s in v.signers
    ]
    prefix = v.group_public_key + v.suite.H4(v.message) + v.suite.H5(enc)
    for s in v.signers:
        assert s.binding_factor_input == prefix + g.encode_scalar(s.identifier)
    # binding_factor = H1(rho_input): checks H1 (expand_message_xmd for secp256k1).
    factors = compute_binding_factors(v.suite, PK, clist, v.message)
    assert factors == [(s.identifier, s.binding_factor) for s in v.signers]
    for s in v.signers:
        assert binding_factor_for_participant(factors, s.identifier) == s.binding_factor
        assert v.suite.H1(s.binding_factor_input) == s.binding_factor


@parametrize
def test_group_commitment_and_challenge_match_signature(v: Vector) -> None:
    g = v.suite.group
    PK = g.decode_point(v.group_public_key)
    clist = _commitment_list(v)
    factors = compute_binding_factors(v.suite, PK, clist, v.message)
    R = compute_group_commitment(v.suite, clist, factors)
    # R is the first half of the final signature.
    assert R.encode() == v.signature[: g.element_len]
    # z = sum of the shares, and z*G == R + c*PK with c from compute_challenge (H2).
    c = compute_challenge(v.suite, R, PK, v.message)
    z = g.decode_scalar(v.signature[g.element_len :])
    assert z == sum(s.sig_share for s in v.signers) % g.order
    assert g.base_mul(z) == R + PK * c


# ---------------------------------------------------------------------------------------------
# Round two, aggregation, verification
# ---------------------------------------------------------------------------------------------


@parametrize
def test_round_two_signature_shares(v: Vector) -> None:
    g = v.suite.group
    PK = g.decode_point(v.group_public_key)
    clist = _commitment_list(v)
    for s, comm in zip(v.signers, clist, strict=True):
        nonces, _ = commit(
            v.suite,
            s.identifier,
            s.share,
            hiding_randomness=s.hiding_randomness,
            binding_randomness=s.binding_randomness,
        )
        z_i = sign(
            v.suite,
            s.identifier,
            s.share,
            PK,
            nonces,
            v.message,
            clist,
            min_signers=v.min_participants,
        )
        assert z_i == s.sig_share
        assert nonces.consumed
        # The share passes RFC 9591 §5.3 verify_signature_share against PK_i = sk_i*G.
        verify_signature_share(
            v.suite, s.identifier, g.base_mul(s.share), comm, z_i, clist, PK, v.message
        )


@parametrize
def test_aggregate_and_verify(v: Vector) -> None:
    g = v.suite.group
    PK = g.decode_point(v.group_public_key)
    clist = _commitment_list(v)
    shares = {s.identifier: s.sig_share for s in v.signers}
    verifying = {i: g.base_mul(v.shares[i]) for i in v.participant_list}
    sig = aggregate(
        v.suite, clist, v.message, PK, shares, verifying, min_signers=v.min_participants
    )
    assert sig == v.signature
    # Shares as their wire encoding give the same signature.
    wire = {i: g.encode_scalar(z) for i, z in shares.items()}
    assert aggregate(v.suite, clist, v.message, PK, wire) == v.signature
    assert verify(v.suite, PK, v.message, v.signature)
    assert independent_verify(v.suite, PK, v.message, v.signature)
    # And neither verifier accepts it for another message.
    assert not verify(v.suite, PK, v.message + b"!", v.signature)
    assert not independent_verify(v.suite, PK, v.message + b"!", v.signature)


@parametrize
def test_sign_local_reproduces_the_vector(v: Vector) -> None:
    g = v.suite.group
    PK = g.decode_point(v.group_public_key)
    shares = {i: v.shares[i] for i in v.participant_list}
    randomness = {s.identifier: (s.hiding_randomness, s.binding_randomness) for s in v.signers}
    verifying = {i: g.base_mul(x) for i, x in shares.items()}
    for vs in (verifying, None):
        sig = sign_local(
            v.suite,
            shares,
            PK,
            v.message,
            verifying_shares=vs,
            min_signers=v.min_participants,
            nonce_randomness=randomness,
        )
        assert sig == v.signature


def test_ed25519_vector_signatures_are_rfc8032_signatures() -> None:
    # Spelled out once more: every Ed25519 vector signature verifies in libsodium.
    for v in VECTORS:
        if v.suite is ed25519:
            assert nacl_verify(v.group_public_key, v.message, v.signature)


def test_independent_secp256k1_verifier_rejects() -> None:
    # The coincurve check is not vacuous: a flipped bit in R, in z, or in the key fails it.
    for v in VECTORS:
        if v.suite is not secp256k1:
            continue
        sig = v.signature
        assert coincurve_frost_verify(v.group_public_key, v.message, sig)
        bad_z = sig[:-1] + bytes([sig[-1] ^ 1])
        bad_r = sig[:1] + bytes([sig[1] ^ 1]) + sig[2:]
        other_pk = coincurve.PublicKey.from_valid_secret((7).to_bytes(32, "big")).format()
        assert not coincurve_frost_verify(v.group_public_key, v.message, bad_z)
        assert not coincurve_frost_verify(v.group_public_key, v.message, bad_r)
        assert not coincurve_frost_verify(other_pk, v.message, sig)


def test_independent_xmd_matches_rfc9380_vector() -> None:
    # RFC 9380 Appendix K.1 (expand_message_xmd, SHA-256), msg = "", len_in_bytes = 0x20.
    dst = b"QUUX-V01-CS02-with-expander-SHA256-128"
    assert (
        _xmd_sha256(b"", dst, 0x20).hex()
        == "68a985b87eb6b46952128911f2a4412bbc302a9d759667f87f7a21d803f07235"
    )
