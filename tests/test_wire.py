"""End-to-end envelopes (tmpc.wire): what a transport, a relay or a member can and cannot do.

The attack row "malicious relay" of security.md: a relay that alters, forges, misroutes or
replays bytes gets every envelope refused with a reason, and never gets an honest member
blamed (a rejection names a culprit only for what the sender itself signed). Signatures and
the encryption are also checked with independent code (coincurve, hashlib, pyca primitives).
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets

import coincurve
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from tmpc.encoding import lp_join, tagged_hash
from tmpc.errors import ParameterError, ProtocolError
from tmpc.protocols.dkg.chilldkg import hostpubkey_gen
from tmpc.wire.envelope import (
    MAX_ENVELOPE,
    REASONS,
    SIGNATURE_TAG,
    Envelope,
    EnvelopeError,
    Opened,
    Opener,
    _seal,
    seal,
)
from tmpc.wire.identity import NodeIdentity, NodePublic, verify_signature


def _ident(label: str) -> NodeIdentity:
    return NodeIdentity(hashlib.sha256(b"tmpc test node " + label.encode()).digest())


IDS = {n: _ident(n) for n in ("alice", "bob", "carol", "mallory")}
MEMBERS = {n: IDS[n].public(n) for n in ("alice", "bob", "carol")}  # mallory is no member
CLUSTER = hashlib.sha256(b"cluster file").digest()
OTHER_CLUSTER = hashlib.sha256(b"another cluster file").digest()
SESSION = hashlib.sha256(b"session 1").digest()
SESSION2 = hashlib.sha256(b"session 2").digest()
WALLET = b"wallet-7"
PAYLOAD = b"round-2 share: 0123456789abcdef secret"


def opener(name: str, **kw: object) -> Opener:
    return Opener(IDS[name], name, CLUSTER, MEMBERS, **kw)  # type: ignore[arg-type]


def mk(
    sender: str = "alice",
    to: str | None = "bob",
    *,
    payload: bytes = PAYLOAD,
    session: bytes = SESSION,
    cluster: bytes = CLUSTER,
    round: int = 2,
    protocol: str = "frost-sign",
    attempt: int = 0,
) -> bytes:
    return seal(
        IDS[sender],
        sender,
        None if to is None else MEMBERS[to],
        cluster=cluster,
        wallet=WALLET,
        session=session,
        attempt=attempt,
        protocol=protocol,
        round=round,
        payload=payload,
    )


def resign(raw: bytes, signer: str, **changes: object) -> bytes:
    """``raw`` with ``changes`` applied to its fields, signed by ``signer`` (a forger)."""
    env = dataclasses.replace(Envelope.from_bytes(raw), **changes)  # type: ignore[arg-type]
    signed = env.signed_bytes()
    return signed + IDS[signer].sign(SIGNATURE_TAG, signed)


def independent_verify(raw: bytes, host_pubkey: bytes) -> bool:
    """BIP340 check with coincurve and a hashlib tagged hash, not tmpc's helpers."""
    t = hashlib.sha256(SIGNATURE_TAG.encode()).digest()
    digest = hashlib.sha256(t + t + raw[:-64]).digest()
    return bool(coincurve.PublicKeyXOnly(host_pubkey[1:]).verify(raw[-64:], digest))


def reason_of(op: Opener, raw: bytes) -> EnvelopeError:
    with pytest.raises(EnvelopeError) as info:
        op.open(raw)
    return info.value


# Fixed (deterministic) envelopes for the bit-flip tests.
FIXED_P2P = _seal(
    IDS["alice"],
    "alice",
    MEMBERS["bob"],
    cluster=CLUSTER,
    wallet=WALLET,
    session=SESSION,
    attempt=3,
    protocol="frost-sign",
    round=2,
    payload=PAYLOAD,
    nonce=bytes(range(12)),
    aux_rand=bytes(32),
)
FIXED_BCAST = _seal(
    IDS["alice"],
    "alice",
    None,
    cluster=CLUSTER,
    wallet=WALLET,
    session=SESSION,
    attempt=3,
    protocol="frost-sign",
    round=1,
    payload=PAYLOAD,
    nonce=bytes(12),
    aux_rand=bytes(32),
)


# --- identity ---------------------------------------------------------------------------


def test_identity_is_the_chilldkg_host_key_and_hides_its_secret() -> None:
    ident = IDS["alice"]
    assert ident.host_pubkey == hostpubkey_gen(ident.seckey)
    assert NodeIdentity(ident.seckey).x25519_public == ident.x25519_public
    assert ident.seckey.hex() not in repr(ident)
    pub = ident.public("alice")
    assert pub == NodePublic("alice", ident.host_pubkey, ident.x25519_public)
    # The X25519 key is HKDF-SHA256(seckey, info "tmpc/x25519/v1"), written out here.
    x_sk = HKDF(hashes.SHA256(), 32, None, b"tmpc/x25519/v1").derive(ident.seckey)
    expected = X25519PrivateKey.from_private_bytes(x_sk).public_key().public_bytes_raw()
    assert ident.x25519_public == expected
    a, b = NodeIdentity.generate(), NodeIdentity.generate()
    assert a.seckey != b.seckey and len(a.seckey) == 32


@pytest.mark.parametrize(
    "seckey",
    [bytes(32), b"\xff" * 32, bytes(30) + b"\x01", b"\x01" * 33],
    ids=["zero", "above-order", "short", "long"],
)
def test_invalid_secret_keys_are_refused(seckey: bytes) -> None:
    with pytest.raises(ParameterError):
        NodeIdentity(seckey)


def test_node_public_checks_its_fields() -> None:
    good = MEMBERS["alice"]
    for bad in (
        {"name": ""},
        {"name": "a/b"},
        {"name": "x" * 65},
        {"name": "*"},
        {"host_pubkey": good.host_pubkey[:32]},
        {"host_pubkey": b"\x04" + good.host_pubkey[1:]},
        {"host_pubkey": b"\x02" + b"\xff" * 32},
        {"x25519": good.x25519[:31]},
    ):
        with pytest.raises(ParameterError):
            dataclasses.replace(good, **bad)


def test_signatures_verify_independently_with_coincurve() -> None:
    raw = mk()
    assert independent_verify(raw, MEMBERS["alice"].host_pubkey)
    assert not independent_verify(raw, MEMBERS["bob"].host_pubkey)
    assert verify_signature(MEMBERS["alice"].host_pubkey, SIGNATURE_TAG, raw[:-64], raw[-64:])
    assert not verify_signature(MEMBERS["alice"].host_pubkey, "other tag", raw[:-64], raw[-64:])


# --- round trips --------------------------------------------------------------------------


def test_broadcast_round_trip_every_member_reads_the_same_signed_bytes() -> None:
    raw = mk(to=None, round=1)
    env = Envelope.from_bytes(raw)
    assert env.to_bytes() == raw
    assert env.recipient == "*" and not env.encrypted and env.body == PAYLOAD
    for name in ("bob", "carol"):
        got = opener(name).open(raw)
        assert got == Opened(
            sender="alice",
            recipient="*",
            session=SESSION,
            attempt=0,
            protocol="frost-sign",
            round=1,
            wallet=WALLET,
            payload=PAYLOAD,
            raw=raw,
        )


def test_p2p_round_trip_only_the_recipient_reads_it() -> None:
    raw = mk()
    env = Envelope.from_bytes(raw)
    assert env.encrypted and env.recipient == "bob"
    assert PAYLOAD not in raw and PAYLOAD[:8] not in raw
    got = opener("bob").open(raw)
    assert got is not None and got.payload == PAYLOAD and got.sender == "alice"
    assert PAYLOAD.hex() not in repr(got) and repr(PAYLOAD)[2:-1] not in repr(got)
    err = reason_of(opener("carol"), raw)
    assert err.reason == "misrouted" and err.culprits == ()


def test_p2p_body_decrypts_with_an_independently_derived_key() -> None:
    raw = mk()
    env = Envelope.from_bytes(raw)
    a, b = IDS["alice"], IDS["bob"]
    xa = X25519PrivateKey.from_private_bytes(
        HKDF(hashes.SHA256(), 32, None, b"tmpc/x25519/v1").derive(a.seckey)
    )
    shared = xa.exchange(X25519PublicKey.from_public_bytes(b.x25519_public))
    info = b"tmpc/wire/p2p-key/v1" + lp_join(
        [CLUSTER, SESSION, b"alice", b"bob", a.x25519_public, b.x25519_public]
    )
    key = HKDF(hashes.SHA256(), 32, None, info).derive(shared)
    assert key == a.channel_key(
        "alice", MEMBERS["bob"], cluster=CLUSTER, session=SESSION, outgoing=True
    )
    plain = ChaCha20Poly1305(key).decrypt(env.body[:12], env.body[12:], env.header())
    assert plain == PAYLOAD


def test_a_third_member_cannot_decrypt_a_message_encrypted_to_someone_else() -> None:
    # Alice encrypts to Bob's key but addresses the envelope to Carol (e.g. a wrong entry in
    # her member map): Carol gets a validly signed envelope she cannot decrypt.
    wrong = NodePublic("carol", MEMBERS["bob"].host_pubkey, MEMBERS["bob"].x25519)
    raw = seal(
        IDS["alice"],
        "alice",
        wrong,
        cluster=CLUSTER,
        wallet=WALLET,
        session=SESSION,
        attempt=0,
        protocol="frost-sign",
        round=2,
        payload=PAYLOAD,
    )
    err = reason_of(opener("carol"), raw)
    assert err.reason == "undecryptable" and err.culprits == ("alice",)
    assert PAYLOAD.hex() not in str(err) and "round-2 share" not in str(err)
    assert reason_of(opener("bob"), raw).reason == "misrouted"


# --- tampering by a relay -------------------------------------------------------------------


FLIPS = [("p2p", i) for i in range(len(FIXED_P2P))]
FLIPS += [("broadcast", i) for i in range(len(FIXED_BCAST))]


@pytest.mark.parametrize(("kind", "pos"), FLIPS, ids=[f"{k}-byte{i}" for k, i in FLIPS])
def test_every_flipped_bit_is_refused_and_blames_nobody(kind: str, pos: int) -> None:
    """Each of the 8 bits of byte ``pos``, flipped alone, gets the envelope refused."""
    raw = FIXED_P2P if kind == "p2p" else FIXED_BCAST
    op = opener("bob")
    assert op.open(raw) is not None
    for bit in range(8):
        bad = bytearray(raw)
        bad[pos] ^= 1 << bit
        err = reason_of(op, bytes(bad))
        assert err.culprits == ()
        assert err.reason in {"malformed", "foreign", "unknown-sender", "misrouted", "tampered"}
        assert isinstance(err, ProtocolError)
    assert op.counters["duplicate"] == 0 and op.counters["equivocation"] == 0


@pytest.mark.parametrize("kind", ["p2p", "broadcast"])
def test_truncated_and_extended_envelopes_are_malformed(kind: str) -> None:
    raw = FIXED_P2P if kind == "p2p" else FIXED_BCAST
    op = opener("bob")
    for n in range(len(raw)):
        assert reason_of(op, raw[:n]).reason == "malformed"
    for extra in (b"\x00", b"\xff" * 64, raw):
        assert reason_of(op, raw + extra).reason == "malformed"
    assert op.counters["malformed"] == len(raw) + 3
    assert op.open(raw) is not None


def test_oversized_input_is_refused_before_parsing() -> None:
    with pytest.raises(EnvelopeError, match="malformed"):
        Envelope.from_bytes(bytes(MAX_ENVELOPE + 1))
    with pytest.raises(ParameterError):
        mk(payload=bytes(MAX_ENVELOPE))


def test_foreign_cluster_is_refused() -> None:
    raw = mk(cluster=OTHER_CLUSTER)
    err = reason_of(opener("bob"), raw)
    assert err.reason == "foreign" and err.culprits == ()


def test_sender_outside_the_member_map_is_refused() -> None:
    raw = mk(sender="mallory", to="bob")
    assert reason_of(opener("bob"), raw).reason == "unknown-sender"
    # An outsider using a member's name has no valid signature.
    forged = resign(mk(), "mallory")
    assert reason_of(opener("bob"), forged).reason == "tampered"


def test_a_member_cannot_sign_in_another_members_name() -> None:
    # Carol re-signs Alice's envelopes (and a changed payload) keeping "alice" as sender.
    for raw in (mk(to=None, round=1), mk()):
        err = reason_of(opener("bob"), resign(raw, "carol"))
        assert err.reason == "tampered" and err.culprits == ()
    err = reason_of(opener("bob"), resign(mk(to=None), "carol", body=b"carol's version"))
    assert err.reason == "tampered"


def test_a_member_cannot_take_over_another_members_p2p_message() -> None:
    # Carol relabels Alice's message to Bob as her own and signs it: it does not decrypt,
    # because the key and the associated data bind the sender.
    err = reason_of(opener("bob"), resign(mk(), "carol", sender="carol"))
    assert err.reason == "undecryptable" and err.culprits == ("carol",)


def test_redirecting_or_reflecting_is_refused() -> None:
    raw = mk()
    env = Envelope.from_bytes(raw)
    # The relay readdresses Alice's message for Bob to Carol (it cannot re-sign).
    redirected = dataclasses.replace(env, recipient="carol").to_bytes()
    assert reason_of(opener("carol"), redirected).reason == "tampered"
    # The relay hands Alice her own broadcast back.
    assert reason_of(opener("alice"), mk(to=None)).reason == "misrouted"
    # A broadcast cannot be turned into a p2p message or back: the flag and recipient are
    # signed and must agree.
    with pytest.raises(ParameterError):
        dataclasses.replace(env, recipient="*")


# --- replays ------------------------------------------------------------------------------


@pytest.mark.parametrize("to", ["bob", None], ids=["p2p", "broadcast"])
def test_identical_redelivery_is_a_counted_duplicate(to: str | None) -> None:
    op = opener("bob")
    raw = mk(to=to)
    assert op.open(raw) is not None
    assert op.open(raw) is None
    assert op.open(raw) is None
    # Re-sealed with the same content (fresh nonce and aux randomness): still a duplicate.
    again = mk(to=to)
    assert again != raw
    assert op.open(again) is None
    assert op.counters["duplicate"] == 3
    assert sum(op.counters.values()) == 3


@pytest.mark.parametrize("to", ["bob", None], ids=["p2p", "broadcast"])
def test_a_different_message_for_the_same_round_is_equivocation(to: str | None) -> None:
    op = opener("bob")
    first = mk(to=to, payload=b"version A")
    second = mk(to=to, payload=b"version B")
    assert op.open(first) is not None
    err = reason_of(op, second)
    assert err.reason == "equivocation" and err.culprits == ("alice",)
    assert "alice" in str(err)
    assert err.evidence == (first, second)
    for ev in err.evidence:  # both are transferable proof, signed by Alice
        assert independent_verify(ev, MEMBERS["alice"].host_pubkey)
    assert op.counters["equivocation"] == 1
    # Another round, attempt or protocol is a different slot.
    assert op.open(mk(to=to, payload=b"version B", round=3)) is not None
    assert op.open(mk(to=to, payload=b"version B", attempt=1)) is not None
    assert op.open(mk(to=to, payload=b"version B", protocol="frost-sign2")) is not None


def test_broadcast_and_p2p_for_one_round_is_equivocation() -> None:
    op = opener("bob")
    assert op.open(mk(to=None)) is not None
    assert reason_of(op, mk(to="bob")).reason == "equivocation"


def test_replay_into_another_session_breaks_the_signature() -> None:
    raw = mk()
    env = Envelope.from_bytes(raw)
    moved = dataclasses.replace(env, session=SESSION2).to_bytes()
    err = reason_of(opener("bob"), moved)
    assert err.reason == "tampered" and err.culprits == ()
    # Even the sender's own re-signature cannot move the ciphertext: the key is per session.
    err = reason_of(opener("bob"), resign(raw, "alice", session=SESSION2))
    assert err.reason == "undecryptable"


def test_forgotten_sessions_are_stale_without_a_callback() -> None:
    op = opener("bob")
    raw = mk()
    assert op.open(raw) is not None
    op.forget(SESSION)
    assert op._seen == {}  # the replay records are gone
    err = reason_of(op, raw)
    assert err.reason == "stale" and err.culprits == ()
    assert op.open(mk(session=SESSION2)) is not None


def test_session_policy_is_the_callers_callback() -> None:
    finished: set[bytes] = set()
    # The documented policy: take every session that is not finished, so a new session's
    # first control message gets through.
    op = opener("bob", is_known_session=lambda s: s not in finished)
    assert op.open(mk(session=SESSION2, protocol="propose", round=0)) is not None
    raw = mk()
    assert op.open(raw) is not None
    finished.add(SESSION)
    op.forget(SESSION)
    assert op._forgotten == set()  # nothing kept: the callback is the memory
    assert reason_of(op, raw).reason == "stale"
    assert reason_of(op, mk(protocol="ready", round=0)).reason == "stale"
    assert op.counters["stale"] == 2


# --- keys and nonces --------------------------------------------------------------------


def test_channel_keys_are_per_direction_session_and_cluster() -> None:
    a, b, c = IDS["alice"], IDS["bob"], IDS["carol"]

    def key(me: NodeIdentity, my: str, peer: str, out: bool, **kw: bytes) -> bytes:
        args = {"cluster": CLUSTER, "session": SESSION} | kw
        return me.channel_key(my, MEMBERS[peer], outgoing=out, **args)

    ab = key(a, "alice", "bob", True)
    assert len(ab) == 32
    assert ab == key(b, "bob", "alice", False)  # both ends agree on alice -> bob
    ba = key(b, "bob", "alice", True)
    assert ba == key(a, "alice", "bob", False)
    assert ab != ba
    assert key(a, "alice", "bob", True, session=SESSION2) != ab
    assert key(a, "alice", "bob", True, cluster=OTHER_CLUSTER) != ab
    assert key(a, "alice", "carol", True) != ab
    assert key(c, "carol", "bob", True) not in (ab, ba)
    with pytest.raises(ParameterError):
        key(a, "alice", "alice", True)


def test_nonces_differ_across_seals_of_identical_content() -> None:
    bodies = [Envelope.from_bytes(mk()).body for _ in range(50)]
    assert len({b[:12] for b in bodies}) == 50
    sigs = {mk(to=None)[-64:] for _ in range(5)}
    assert len(sigs) == 5


def test_deterministic_seal_is_deterministic() -> None:
    again = _seal(
        IDS["alice"],
        "alice",
        MEMBERS["bob"],
        cluster=CLUSTER,
        wallet=WALLET,
        session=SESSION,
        attempt=3,
        protocol="frost-sign",
        round=2,
        payload=PAYLOAD,
        nonce=bytes(range(12)),
        aux_rand=bytes(32),
    )
    assert again == FIXED_P2P


# --- counters, validation, secrets ------------------------------------------------------


def test_counters_count_each_reason() -> None:
    op = opener("bob")
    assert set(op.counters) == REASONS | {"duplicate"}
    assert op.open(mk(to=None, round=1)) is not None
    cases = {
        "malformed": mk()[:-1],
        "foreign": mk(cluster=OTHER_CLUSTER),
        "unknown-sender": mk(sender="mallory"),
        "misrouted": mk(to="carol"),
        "tampered": resign(mk(), "carol"),
        "undecryptable": resign(mk(), "carol", sender="carol"),
        "equivocation": mk(to=None, round=1, payload=b"other"),
    }
    for reason, raw in cases.items():
        assert reason_of(op, raw).reason == reason
    op.forget(SESSION)
    assert reason_of(op, mk()).reason == "stale"
    assert op.open(mk(to=None, round=1, session=SESSION2)) is not None
    assert op.open(mk(to=None, round=1, session=SESSION2)) is None
    counts = op.counters
    assert counts == dict.fromkeys(REASONS, 1) | {"duplicate": 1}
    counts["stale"] = 99  # a copy
    assert op.counters["stale"] == 1


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2},
        {"cluster": bytes(31)},
        {"session": bytes(33)},
        {"wallet": bytes(65)},
        {"attempt": -1},
        {"attempt": 1 << 32},
        {"round": 1 << 16},
        {"round": True},
        {"protocol": ""},
        {"protocol": "p" * 33},
        {"protocol": "sign\n"},
        {"sender": "é"},
        {"sender": "*"},
        {"recipient": "alice"},
        {"recipient": "bob/../x"},
        {"flags": 0},
        {"flags": 3},
        {"body": bytes(27)},
        {"signature": bytes(63)},
    ],
    ids=lambda c: "-".join(f"{k}" for k in c),
)
def test_envelope_fields_are_validated(change: dict[str, object]) -> None:
    env = Envelope.from_bytes(FIXED_P2P)
    with pytest.raises(ParameterError):
        dataclasses.replace(env, **change)  # type: ignore[arg-type]


def test_opener_checks_its_member_map() -> None:
    with pytest.raises(ParameterError):
        Opener(IDS["bob"], "bob", CLUSTER, {"alice": MEMBERS["alice"]})
    with pytest.raises(ParameterError):
        Opener(IDS["bob"], "bob", CLUSTER, MEMBERS | {"bob": MEMBERS["carol"]})
    with pytest.raises(ParameterError):
        Opener(IDS["bob"], "bob", CLUSTER, MEMBERS | {"dave": MEMBERS["carol"]})
    with pytest.raises(ParameterError):
        Opener(IDS["bob"], "bob", CLUSTER[:31], MEMBERS)


def test_secrets_never_in_reprs_or_errors() -> None:
    op = opener("carol")
    texts = [repr(IDS["alice"]), repr(op), repr(Envelope.from_bytes(mk()))]
    got = opener("bob").open(mk())
    texts.append(repr(got))
    for raw in (mk(), resign(mk(), "carol", sender="carol"), mk(cluster=OTHER_CLUSTER)):
        for o in (opener("bob"), op):
            try:
                o.open(raw)
            except EnvelopeError as e:
                texts.append(str(e))
    key = IDS["alice"].channel_key(
        "alice", MEMBERS["bob"], cluster=CLUSTER, session=SESSION, outgoing=True
    )
    for t in texts:
        for secret in (IDS["alice"].seckey, IDS["bob"].seckey, key, PAYLOAD):
            assert secret.hex() not in t and str(secret)[2:-1] not in t


# --- fuzz ---------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_from_bytes_random_input(data: bytes) -> None:
    try:
        env = Envelope.from_bytes(data)
    except EnvelopeError as e:
        assert e.reason == "malformed" and e.culprits == ()
    else:
        assert env.to_bytes() == data


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_envelopes(data: st.DataObject) -> None:
    raw = bytearray(data.draw(st.sampled_from([FIXED_P2P, FIXED_BCAST])))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    mutated = bytes(raw[:cut]) + data.draw(st.binary(max_size=8))
    try:
        env = Envelope.from_bytes(mutated)
    except EnvelopeError as e:
        assert e.reason == "malformed"
    else:
        assert env.to_bytes() == mutated  # one encoding per envelope
    if mutated not in (FIXED_P2P, FIXED_BCAST):
        with pytest.raises(EnvelopeError) as info:
            opener("bob").open(mutated)
        assert info.value.culprits == ()


def test_identity_signature_equals_coincurve_bip340() -> None:
    """NodeIdentity.sign drives libsecp256k1 with a cached key pair: with the same auxiliary
    randomness it gives byte for byte what coincurve's own BIP340 signer gives, and each
    signature verifies under the x-only host key."""
    for _ in range(20):
        identity = NodeIdentity.generate()
        msg, aux = secrets.token_bytes(secrets.randbelow(100)), secrets.token_bytes(32)
        sig = identity.sign("tmpc/test/v1", msg, aux_rand=aux)
        digest = tagged_hash("tmpc/test/v1", msg)
        assert sig == coincurve.PrivateKey(identity.seckey).sign_schnorr(digest, aux)
        assert coincurve.PublicKeyXOnly(identity.host_pubkey[1:]).verify(sig, digest)
