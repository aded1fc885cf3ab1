"""ECDSA signature formats (low-s, recovery id, compact, strict DER), the verifier's input
checks, and the Ethereum / Bitcoin P2WPKH addresses of a secp256k1 key."""

from __future__ import annotations

import hashlib

import bech32
import coincurve
import pytest
from eth_keys import keys as eth_keys  # type: ignore[attr-defined]
from eth_utils import to_checksum_address  # type: ignore[attr-defined]
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vectors import load_json
from tmpc.chains.addresses import (
    eip55_checksum,
    ethereum_address,
    hash160,
    keccak256,
    p2wpkh_address,
    p2wpkh_script_pubkey,
)
from tmpc.errors import CryptoError, DecodeError, ParameterError
from tmpc.group import ED25519, SECP256K1
from tmpc.primitives.ecdsa_format import (
    compact,
    der_decode_strict,
    der_encode,
    ecdsa_verify,
    normalize_low_s,
    recovery_id,
)

N = SECP256K1.order
P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F
G = SECP256K1.generator()


def _signed(k: int = 7, msg: bytes = b"tmpc") -> tuple[bytes, bytes, int, int, int]:
    """(pubkey33, digest, r, s, v) from libsecp256k1's own (low-s) signer."""
    key = coincurve.PrivateKey(k.to_bytes(32, "big"))
    digest = hashlib.sha256(msg).digest()
    sig = key.sign_recoverable(digest, hasher=None)
    return (
        key.public_key.format(True),
        digest,
        int.from_bytes(sig[:32], "big"),
        int.from_bytes(sig[32:64], "big"),
        sig[64],
    )


# ------------------------------------------------------------------------- DER


def test_der_encode_known_encodings() -> None:
    assert der_encode(1, 1).hex() == "3006020101020101"
    # A top bit set needs exactly one 0x00 in front (else it reads as negative).
    assert der_encode(0x80, 0x7F).hex() == "300702020080" + "02017f"
    assert der_encode(N - 1, N - 1)[:4].hex() == "30460221"
    assert len(der_encode(N - 1, N - 1)) == 72


@pytest.mark.parametrize(("r", "s"), [(0, 1), (1, 0), (N, 1), (1, N), (-1, 1)])
def test_der_encode_and_compact_refuse_out_of_range(r: int, s: int) -> None:
    with pytest.raises(ParameterError):
        der_encode(r, s)
    with pytest.raises(ParameterError):
        compact(r, s)


def test_der_round_trips_wycheproof_valid_signatures_byte_for_byte() -> None:
    """Every valid Bitcoin-rules signature is canonical DER: decode then encode is identity."""
    doc = load_json("wycheproof/ecdsa_secp256k1_sha256_bitcoin_test.json")
    seen = 0
    for group in doc["testGroups"]:
        for t in group["tests"]:
            if t["result"] == "valid":
                sig = bytes.fromhex(t["sig"])
                assert der_encode(*der_decode_strict(sig)) == sig
                seen += 1
    assert seen > 100


def test_der_decode_rejects_every_encoding_case_of_wycheproof() -> None:
    """BER, bad encodings and wrong ASN.1 types are refused by the parser itself."""
    doc = load_json("wycheproof/ecdsa_secp256k1_sha256_bitcoin_test.json")
    flags = {"BerEncodedSignature", "InvalidEncoding", "InvalidTypesInSignature"}
    seen = 0
    for group in doc["testGroups"]:
        for t in group["tests"]:
            if flags & set(t["flags"]):
                assert t["result"] == "invalid"
                with pytest.raises(DecodeError):
                    der_decode_strict(bytes.fromhex(t["sig"]))
                seen += 1
    assert seen > 100


GOOD = bytes.fromhex("3006020101020101")


@pytest.mark.parametrize(
    ("hexsig", "rule"),
    [
        ("", "length out of range"),
        ("30050201010201", "length out of range"),
        ("30" + "46" + "0221" + "00" + "ff" * 32 + "0221" + "00" + "ff" * 32 + "00", "length out"),
        ("3106020101020101", "not a SEQUENCE"),
        ("3007020101020101", "SEQUENCE length"),
        ("3005020101020101", "SEQUENCE length"),
        ("308106020101020101", "SEQUENCE length"),  # BER long-form length
        ("3006020101020101" + "00", "SEQUENCE length"),  # trailing byte after the sequence
        ("3006030101020101", "r is not an INTEGER"),
        ("3006020101030101", "s is not an INTEGER"),
        ("3008020101020101" + "0000", "trailing bytes"),  # inside the sequence
        ("30060200020101" + "01", "r has zero length"),
        ("3006020101020001", "s has zero length"),
        ("3006020181020101", "r is negative"),
        ("3006020101020181", "s is negative"),
        ("300702020001020101", "r has a superfluous leading zero"),
        ("300702010102020001", "s has a superfluous leading zero"),
        ("3006020901020101", "r runs past the end"),
        ("3006020101020201", "s runs past the end"),
        ("3027" + "0222" + "01" + "00" * 33 + "020101", "r is longer than 33 bytes"),
        ("3026" + "0221" + "01" + "00" * 32 + "020101", "r does not fit in 256 bits"),
        ("3026" + "020101" + "0221" + "01" + "00" * 32, "s does not fit in 256 bits"),
    ],
)
def test_der_decode_strict_rejects(hexsig: str, rule: str) -> None:
    with pytest.raises(DecodeError, match=rule):
        der_decode_strict(bytes.fromhex(hexsig))


def test_der_decode_accepts_the_minimal_form_and_zero_is_left_to_range_check() -> None:
    assert der_decode_strict(GOOD) == (1, 1)
    # INTEGER 0 is valid DER; the verifier (not the parser) refuses r = 0.
    assert der_decode_strict(bytes.fromhex("3006020100020101")) == (0, 1)
    assert der_decode_strict(bytes.fromhex("300702020080020101")) == (0x80, 1)
    with pytest.raises(DecodeError):
        der_decode_strict("3006020101020101")  # type: ignore[arg-type]


# -------------------------------------------------------------- compact, low-s, v


def test_compact_is_r_then_s_big_endian() -> None:
    assert compact(1, 2) == (1).to_bytes(32, "big") + (2).to_bytes(32, "big")


def test_normalize_low_s_boundary_and_errors() -> None:
    half = N // 2
    assert normalize_low_s(5, half, 0) == (5, half, 0)
    assert normalize_low_s(5, half + 1, 0) == (5, N - half - 1, 1)
    assert normalize_low_s(5, N - 1, 3) == (5, 1, 2)
    for bad in [(0, 1, 0), (1, N, 0), (1, 1, 4), (1, 1, -1)]:
        with pytest.raises(ParameterError):
            normalize_low_s(*bad)


def test_recovery_id_matches_libsecp256k1_and_eth_keys() -> None:
    pub, digest, r, s, v = _signed()
    assert recovery_id(r, s, digest, pub) == v
    assert recovery_id(r, s, digest, SECP256K1.decode_point(pub)) == v
    assert recovery_id(r, s, digest, coincurve.PublicKey(pub).format(False)) == v
    rec = eth_keys.Signature(vrs=(v, r, s)).recover_public_key_from_msg_hash(digest)
    assert rec.to_checksum_address() == ethereum_address(pub)


def test_recovery_id_for_a_nonce_point_with_x_above_n() -> None:
    """v = 2 or 3 when R.x >= n (r = R.x - n): build such a signature for a derived key.

    Pick R with x = n + r, any s and digest z; then Q = r^-1 (s R - z G) is the key the
    signature verifies under (ECDSA's equation solved for Q).
    """
    r = next(r for r in range(1, 1000) if _is_x(N + r))
    R = SECP256K1.decode_point(b"\x02" + (N + r).to_bytes(32, "big"))
    digest = hashlib.sha256(b"large x").digest()
    z = int.from_bytes(digest, "big") % N
    s = 12345
    Q = (R * s - SECP256K1.base_mul(z)) * pow(r, -1, N)
    pub = Q.encode()
    assert coincurve.PublicKey(pub).verify(der_encode(r, s), digest, hasher=None)
    v = recovery_id(r, s, digest, Q)
    assert v == 2  # R has even y, and its x overflowed n
    rec = coincurve.PublicKey.from_signature_and_message(
        compact(r, s) + bytes([v]), digest, hasher=None
    )
    assert rec.format(True) == pub
    r2, s2, v2 = normalize_low_s(r, N - s, v ^ 1)
    assert (r2, s2, v2) == (r, s, 2)
    assert recovery_id(r, N - s, digest, Q) == 3


def _is_x(x: int) -> bool:
    try:
        coincurve.PublicKey(b"\x02" + x.to_bytes(32, "big"))
    except ValueError:
        return False
    return True


def test_recovery_id_refuses_a_signature_of_another_key() -> None:
    pub, digest, r, s, _ = _signed()
    other = coincurve.PrivateKey((8).to_bytes(32, "big")).public_key.format(True)
    with pytest.raises(CryptoError):
        recovery_id(r, s, digest, other)
    with pytest.raises(CryptoError):
        recovery_id(r, s, hashlib.sha256(b"other").digest(), pub)


@pytest.mark.parametrize(
    "args",
    [
        (0, 1, bytes(32)),
        (1, N, bytes(32)),
        (1, 1, bytes(31)),
    ],
)
def test_recovery_id_parameter_errors(args: tuple[int, int, bytes]) -> None:
    pub, *_ = _signed()
    with pytest.raises(ParameterError):
        recovery_id(*args, pub)


def test_recovery_id_refuses_non_secp_keys() -> None:
    _, digest, r, s, _ = _signed()
    with pytest.raises(ParameterError):
        recovery_id(r, s, digest, ED25519.generator())
    with pytest.raises(ParameterError):
        recovery_id(r, s, digest, b"\x02" + bytes(32))  # x = 0 is not on the curve
    with pytest.raises(ParameterError):
        recovery_id(r, s, digest, "02" * 33)  # type: ignore[arg-type]
    upub = coincurve.PublicKey(_signed()[0]).format(False)
    with pytest.raises(ParameterError):
        recovery_id(r, s, digest, bytes([6 + (upub[-1] & 1)]) + upub[1:])  # hybrid form


# ------------------------------------------------------------------- verifier


def test_verify_accepts_both_formats_and_key_encodings() -> None:
    pub, digest, r, s, _ = _signed()
    upub = coincurve.PublicKey(pub).format(False)
    for key in (pub, upub):
        assert ecdsa_verify(key, digest, der_encode(r, s), der=True, require_low_s=True)
        assert ecdsa_verify(key, digest, compact(r, s), der=False, require_low_s=True)
    ba = bytearray(pub)
    assert ecdsa_verify(ba, digest, der_encode(r, s), der=True, require_low_s=True)  # type: ignore[arg-type]


def test_verify_rejects_without_raising() -> None:
    pub, digest, r, s, _ = _signed()
    sig = der_encode(r, s)
    upub = coincurve.PublicKey(pub).format(False)
    hybrid = bytes([6 + (upub[-1] & 1)]) + upub[1:]
    assert coincurve.PublicKey(hybrid)  # libsecp256k1 itself would take the hybrid form
    bad_inputs = [
        (hybrid, digest, sig, True),
        (b"\x05" + pub[1:], digest, sig, True),
        (pub[:-1], digest, sig, True),
        (b"\x02" + bytes(32), digest, sig, True),  # not on the curve
        (b"\x02" + P.to_bytes(32, "big"), digest, sig, True),  # x = p, not canonical
        (pub, digest[:31], sig, True),
        (pub, digest + b"\x00", sig, True),
        (pub, hashlib.sha256(b"other").digest(), sig, True),
        (pub, digest, sig + b"\x00", True),
        (pub, digest, compact(r, s), True),  # compact given where DER is expected
        (pub, digest, sig, False),  # DER given where compact is expected
        (pub, digest, compact(r, s) + b"\x00", False),
        (pub, digest, bytes(64), False),  # r = s = 0
        (pub, digest, N.to_bytes(32, "big") + s.to_bytes(32, "big"), False),
        (pub, digest, r.to_bytes(32, "big") + N.to_bytes(32, "big"), False),
        (pub, digest, (r + N).to_bytes(33, "big")[1:] + s.to_bytes(32, "big"), False),
        (pub, digest, bytes.fromhex("3006020100020101"), True),
        ("not bytes", digest, sig, True),
        (pub, None, sig, True),
        (pub, digest, 12, True),
    ]
    for key, dg, sg, der in bad_inputs:
        assert ecdsa_verify(key, dg, sg, der=der, require_low_s=False) is False  # type: ignore[arg-type]


def test_verify_low_s_rule() -> None:
    pub, digest, r, s, _ = _signed()
    high = compact(r, N - s)
    assert not ecdsa_verify(pub, digest, high, der=False, require_low_s=True)
    assert ecdsa_verify(pub, digest, high, der=False, require_low_s=False)
    # libsecp256k1 alone refuses high s: our verifier must normalise before calling it.
    assert not coincurve.PublicKey(pub).verify(der_encode(r, N - s), digest, hasher=None)


# ------------------------------------------------------------------ addresses

EIP55_VECTORS = [
    # EIP-55 "Test Cases": all caps, all lower, and the four mixed-case examples.
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


@pytest.mark.parametrize("address", EIP55_VECTORS)
def test_eip55_vectors(address: str) -> None:
    raw = bytes.fromhex(address[2:])
    assert eip55_checksum(raw) == address
    assert to_checksum_address(address.lower()) == address


def test_keccak_is_not_sha3() -> None:
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    assert keccak256(b"") != hashlib.sha3_256(b"").digest()


def test_private_key_one_addresses() -> None:
    assert ethereum_address(G) == "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    assert ethereum_address(G.encode()) == "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    pub = bytes.fromhex("0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798")
    assert pub == G.encode()
    # BIP173's examples for this key.
    assert p2wpkh_address(pub) == "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    assert p2wpkh_address(G, "testnet") == "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"
    assert p2wpkh_address(G, "signet") == "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"
    assert p2wpkh_address(G, "regtest").startswith("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7k")
    assert p2wpkh_script_pubkey(pub).hex() == "0014751e76e8199196d454941c45d1b3a323f1433bd6"
    assert hash160(pub).hex() == "751e76e8199196d454941c45d1b3a323f1433bd6"
    assert bech32.decode("bcrt", p2wpkh_address(G, "regtest")) == (0, list(hash160(pub)))


@settings(max_examples=25, deadline=None)
@given(k=st.integers(min_value=1, max_value=N - 1))
def test_ethereum_address_matches_eth_keys(k: int) -> None:
    priv = eth_keys.PrivateKey(k.to_bytes(32, "big"))
    point = SECP256K1.base_mul(k)
    expected = priv.public_key.to_checksum_address()
    assert ethereum_address(point) == expected
    assert ethereum_address(coincurve.PublicKey(point.encode()).format(False)) == expected
    assert bech32.decode("bc", p2wpkh_address(point)) == (0, list(hash160(point.encode())))


def test_address_input_errors() -> None:
    upub = coincurve.PublicKey(G.encode()).format(False)
    with pytest.raises(DecodeError):
        p2wpkh_address(upub)  # segwit v0 needs the compressed key
    with pytest.raises(ParameterError):
        p2wpkh_address(G, "litecoin")
    with pytest.raises(DecodeError):
        ethereum_address(b"\x02" + bytes(32))
    with pytest.raises(DecodeError):
        ethereum_address(bytes([6 + (upub[-1] & 1)]) + upub[1:])  # hybrid form
    with pytest.raises(DecodeError):
        ethereum_address(upub[1:])
    with pytest.raises(ParameterError):
        ethereum_address(ED25519.generator())
    with pytest.raises(DecodeError):
        eip55_checksum(bytes(19))
