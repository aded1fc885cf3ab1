"""The one-process drivers over the protocol machines, and the one numbering of party ids.

``run_dkg``, the ``sign_local`` functions, ``presign_local``, ``pairwise_setup_local`` and
``sign_with_presignatures`` each build one machine per party and call
``tmpc.local.run_machines``: what a node runs. These tests pin what the drivers add (byte
counting, session ids recorded in the caller's pairwise objects, the party-id range) and that
every culprit leaving them is a 1-based party id (``tmpc.ids``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets

import pytest

from tmpc import schemes
from tmpc.errors import FaultyParticipantError, ParameterError, StateError
from tmpc.group import SECP256K1, ed25519, secp256k1
from tmpc.ids import MAX_PARTY_ID, from_index, party_id, party_ids, to_index
from tmpc.local import run_machines
from tmpc.protocols import bip445, frost
from tmpc.protocols.ecdsa import dkls23
from tmpc.protocols.frost_machine import ECHO_LEN, FrostSignMachine
from tmpc.sharing import shamir_split

MSG = hashlib.sha256(b"local drivers").digest()


# Party ids ---------------------------------------------------------------------------------


def test_party_ids_are_one_based_and_below_2_to_the_32() -> None:
    assert party_id(1) == 1 and party_id(MAX_PARTY_ID) == MAX_PARTY_ID
    for bad in (0, -1, MAX_PARTY_ID + 1, True, 1.0, "1", None):
        with pytest.raises(ParameterError):
            party_id(bad)
    assert party_ids([3, 1, 2]) == (3, 1, 2)
    assert [from_index(i) for i in range(3)] == [1, 2, 3]
    assert [to_index(x) for x in (1, 2, 3)] == [0, 1, 2]
    with pytest.raises(ParameterError):
        from_index(-1)
    with pytest.raises(ParameterError):
        to_index(0)


# run_machines' byte counting ----------------------------------------------------------------


def test_traffic_counts_each_payload_once_per_recipient() -> None:
    suite, t = secp256k1, 3
    g = suite.group
    sk = g.random_scalar()
    shares = shamir_split(g, sk, t, [1, 2, 3, 4])
    vs = {i: g.base_mul(s) for i, s in shares.items()}
    signers = [1, 2, 4]
    ms = {
        i: FrostSignMachine(suite, i, shares[i], g.base_mul(sk), vs, signers, MSG, min_signers=t)
        for i in signers
    }
    traffic: dict[int, int] = {}
    run_machines(ms, traffic=traffic)
    # Round 1: the commitments (Ns + 2*Ne), round 2: the share and the echo, each broadcast to
    # the two other signers.
    per_party = 2 * (g.scalar_len + 2 * g.element_len) + 2 * (g.scalar_len + ECHO_LEN)
    assert traffic == {1: per_party, 2: per_party, 4: per_party}


def test_ecdsa_traffic_matches_the_message_sizes() -> None:
    setup: dict[int, int] = {}
    pw = dkls23.pairwise_setup_local([1, 2, 3], secrets.token_bytes(32), traffic=setup)
    assert set(setup) == {1, 2, 3} and len(set(setup.values())) == 1
    x = SECP256K1.random_scalar()
    pk = SECP256K1.base_mul(x)
    shares = shamir_split(SECP256K1, x, 2, [1, 2, 3])
    presign: dict[int, int] = {}
    dkls23.presign_local(shares, pk, pw, [1, 3], traffic=presign)
    # The same session by hand: one round-1 and one round-2 message to the one peer.
    sid = secrets.token_bytes(32)
    st1, m1 = {}, {}
    for i in (1, 3):
        st1[i], m1[i] = dkls23.presign_round1(i, shares[i], pk, pw[i], [1, 3], sid)
    m2 = {
        i: dkls23.presign_round2(st1[i], {j: m1[j][i] for j in (1, 3) if j != i})[1] for i in (1, 3)
    }
    sizes = {i: len(m1[i][j].to_bytes()) + len(m2[i][j].to_bytes()) for i, j in ((1, 3), (3, 1))}
    assert presign == sizes


# FROST and BIP445 ---------------------------------------------------------------------------


def test_frost_sign_local_refuses_identifiers_beyond_the_party_id_range() -> None:
    suite = ed25519
    g = suite.group
    sk = g.random_scalar()
    big = MAX_PARTY_ID + 1
    shares = shamir_split(g, sk, 2, [1, big])
    with pytest.raises(ParameterError, match="party id"):
        frost.sign_local(suite, shares, g.base_mul(sk), MSG)
    # The round functions of RFC 9591 take any non-zero scalar identifier.
    rounds = {i: frost.commit(suite, i, shares[i]) for i in sorted(shares)}
    clist = [rounds[i][1] for i in sorted(shares)]
    z = {
        i: frost.sign(suite, i, shares[i], g.base_mul(sk), rounds[i][0], MSG, clist)
        for i in sorted(shares)
    }
    assert frost.verify(
        suite, g.base_mul(sk), MSG, frost.aggregate(suite, clist, MSG, g.base_mul(sk), z)
    )


def test_bip445_sign_local_refuses_a_signer_at_2_to_the_32() -> None:
    sk = SECP256K1.random_scalar()
    xs = [1, 2**32]
    shares = shamir_split(SECP256K1, sk, 2, xs)
    pub = {x: SECP256K1.base_mul(s) for x, s in shares.items()}
    with pytest.raises(ParameterError, match="party id"):
        bip445.sign_local(shares, pub, SECP256K1.base_mul(sk), MSG)


@pytest.mark.parametrize("scheme_id", ["ed25519", "frost-secp256k1"])
def test_schemes_sign_names_a_bad_signer_by_its_party_id(scheme_id: str) -> None:
    record, shares = schemes.keygen(scheme_id, 2, 3)
    bad = dataclasses.replace(shares[1], secshare=shares[1].secshare + 1)  # party 2
    with pytest.raises(FaultyParticipantError) as info:
        schemes.sign(record, [shares[0], bad], MSG)
    assert info.value.culprits == (2,)


# DKLs23 -------------------------------------------------------------------------------------


def test_presign_local_records_its_session_ids_in_the_callers_objects() -> None:
    x = SECP256K1.random_scalar()
    pk = SECP256K1.base_mul(x)
    shares = shamir_split(SECP256K1, x, 2, [1, 2, 3])
    pw = dkls23.pairwise_setup_local([1, 2, 3], secrets.token_bytes(32))
    sid = secrets.token_bytes(32)
    presigs = dkls23.presign_local(shares, pk, pw, [1, 2], sid)
    # Every multiplication session of the run is recorded, in both roles of both signers ...
    ctx = dkls23._context(sid, pk, (1, 2), 0)
    for i, j in ((1, 2), (2, 1)):
        with pytest.raises(StateError):
            pw[i].senders[j].record_session(dkls23._mul_sid(ctx, i, j))
        with pytest.raises(StateError):
            pw[i].receivers[j].record_session(dkls23._mul_sid(ctx, j, i))
    # ... so a rerun with the same session id is refused; another session id signs.
    with pytest.raises(StateError):
        dkls23.presign_local(shares, pk, pw, [1, 2], sid)
    assert dkls23.sign_with_presignatures(presigs, pk, MSG)
    r, s, _ = dkls23.sign_local(shares, pk, pw, [2, 3], MSG, threshold=2)
    assert 0 < r < SECP256K1.order and 0 < s <= SECP256K1.order // 2


def test_private_copy_carries_the_record_of_used_sessions() -> None:
    pw = dkls23.pairwise_setup_local([1, 2], secrets.token_bytes(32))
    sender, receiver = pw[1].senders[2], pw[1].receivers[2]
    sid = secrets.token_bytes(32)
    sender.record_session(sid)
    receiver.record_session(sid)
    s2, r2 = sender.private_copy(), receiver.private_copy()
    assert s2.to_bytes() == sender.to_bytes() and r2.to_bytes() == receiver.to_bytes()
    with pytest.raises(StateError):
        s2.record_session(sid)
    with pytest.raises(StateError):
        r2.record_session(sid)
    # The copies keep their own records from then on.
    other = secrets.token_bytes(32)
    s2.record_session(other)
    sender.record_session(other)
