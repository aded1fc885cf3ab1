"""TSSHOCK, weak Fiat-Shamir hashing: two inputs with one concatenation never hash alike.

The attack class (security.md, "weak Fiat-Shamir hashing"): a hash over the *plain*
concatenation of several inputs lets a prover move bytes from one input to its neighbour
(or split / merge list items) without changing the hash, and so reuse a proof, challenge or
commitment for a different statement. For every challenge, commitment and random-oracle
derivation in the protocols, the tests here build two *different* input tuples whose plain
concatenation is the same byte string and show that the real function the protocol calls
gives different outputs (or refuses the regrouped input). Where every field but one has a
fixed width, no such pair of valid inputs exists; the tests then show that the fixed widths
are enforced, which is what makes the encoding unambiguous.

Derivations covered (function -> test):

- ``tmpc.encoding.lp_join``: injectivity, by construction and with hypothesis;
- DKLs23 (``dkls23._h32`` / ``_h_scalar`` under every tag the module uses, the session
  context ``_context``, the R commitment ``_commit_R``, the echo ``_echo``, the
  presignature id, the Groth-Shoup ``rerandomizer``), the zero-share seeds and shares;
- base OT (``ot._dlog_challenge``, ``dlog_prove`` / ``dlog_verify``), OT extension
  (``ote._check_matrix``), multiplication (``multiply._challenges``, ``_r_hash``,
  ``_setup_id``, ``_setup_context``);
- the DKG proofs of possession (draft BIP340 pop on secp256k1, Schnorr pop elsewhere);
- FROST (RFC 9591): binding factors, group commitment and challenge, and a share made in
  one session failing in the regrouped one;
- BIP445: the nonce coefficient ``b``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_dkls23 import make_wallet
from tests.test_frost_vectors import independent_verify
from tmpc.encoding import lp, lp_join
from tmpc.errors import DecodeError, FaultyParticipantError, TmpcError
from tmpc.group import ED25519, SECP256K1, ed25519, secp256k1
from tmpc.group.base import Ciphersuite, Point
from tmpc.protocols import bip445, frost
from tmpc.protocols.dkg.suite import suite_for
from tmpc.protocols.ecdsa import dkls23, multiply, ot, ote, zero_share
from tmpc.sharing import shamir_split

G = SECP256K1
N = SECP256K1.order

BOUNDED = settings(max_examples=60, deadline=None, derandomize=True)


# --------------------------------------------------------------------------------------------
# Regroupings: every other tuple with the same plain concatenation, one edit away
# --------------------------------------------------------------------------------------------


def moves(parts: Sequence[bytes], widths: Sequence[int] = (1,)) -> Iterator[tuple[bytes, ...]]:
    """Same arity and concatenation: one boundary moved left or right by each of ``widths``."""
    p = tuple(parts)
    for i in range(len(p) - 1):
        a, b = p[i], p[i + 1]
        for k in widths:
            if len(a) >= k:
                yield (*p[:i], a[: len(a) - k], a[len(a) - k :] + b, *p[i + 2 :])
            if len(b) >= k:
                yield (*p[:i], a + b[:k], b[k:], *p[i + 2 :])


def regroupings(parts: Sequence[bytes]) -> Iterator[tuple[bytes, ...]]:
    """Same concatenation, one edit away: a moved boundary, two neighbours merged, one part
    split in two, or an empty part inserted."""
    p = tuple(parts)
    yield from moves(p)
    for i in range(len(p) - 1):
        yield (*p[:i], p[i] + p[i + 1], *p[i + 2 :])
    for i, part in enumerate(p):
        for k in {1, len(part) // 2, len(part) - 1}:
            if 0 < k < len(part):
                yield (*p[:i], part[:k], part[k:], *p[i + 1 :])
    for i in range(len(p) + 1):
        yield (*p[:i], b"", *p[i:])


def assert_regroupings_differ(
    fn: Callable[[tuple[bytes, ...]], object],
    parts: Sequence[bytes],
    alternatives: Iterator[tuple[bytes, ...]],
) -> int:
    """``fn`` of every alternative (same concatenation, different tuple) differs from ``fn`` of
    ``parts``, or ``fn`` refuses it with a tmpc error. Returns how many were accepted."""
    base_parts = tuple(parts)
    base = fn(base_parts)
    accepted = 0
    for alt in alternatives:
        if alt == base_parts:
            continue
        assert b"".join(alt) == b"".join(base_parts)
        try:
            out = fn(alt)
        except TmpcError:
            continue
        accepted += 1
        assert out != base, f"regrouped input {[len(a) for a in alt]} hashes alike"
    return accepted


def split_lp(data: bytes) -> list[bytes]:
    """The inverse of lp_join (a test oracle): raises ValueError on a malformed encoding."""
    out, pos = [], 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise ValueError("truncated length")
        n = int.from_bytes(data[pos : pos + 4], "big")
        if pos + 4 + n > len(data):
            raise ValueError("truncated part")
        out.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


parts_strategy = st.lists(st.binary(max_size=12), min_size=1, max_size=5)


# --------------------------------------------------------------------------------------------
# lp_join
# --------------------------------------------------------------------------------------------


def test_lp_join_separates_what_plain_concatenation_merges() -> None:
    same = [
        [b"ab", b"c"],
        [b"a", b"bc"],
        [b"abc"],
        [b"abc", b""],
        [b"", b"abc"],
        [b"a", b"b", b"c"],
    ]
    encodings = {lp_join(p) for p in same}
    assert len(encodings) == len(same)
    assert lp_join([]) == b"" and lp_join([b""]) == bytes(4)
    assert lp(b"xyz") == b"\x00\x00\x00\x03xyz"


@BOUNDED
@given(a=st.lists(st.binary(max_size=6), max_size=5), b=st.lists(st.binary(max_size=6), max_size=5))
def test_lp_join_is_injective(a: list[bytes], b: list[bytes]) -> None:
    assert split_lp(lp_join(a)) == a  # decodable, hence injective
    if a != b:
        assert lp_join(a) != lp_join(b)


@BOUNDED
@given(parts=parts_strategy)
def test_lp_join_regroupings_differ(parts: list[bytes]) -> None:
    assert_regroupings_differ(lambda p: lp_join(p), parts, regroupings(parts))


# --------------------------------------------------------------------------------------------
# DKLs23: the hash helpers under every tag of the module
# --------------------------------------------------------------------------------------------

H32_TAGS = [
    "tmpc/dkls23/presign-context",
    "tmpc/dkls23/mul-session",
    "tmpc/dkls23/commit-R",
    "tmpc/dkls23/echo",
    "tmpc/dkls23/presig-id",
    "tmpc/dkls23/mul-setup",
]


@pytest.mark.parametrize("tag", H32_TAGS)
@BOUNDED
@given(parts=parts_strategy)
def test_dkls23_h32_regroupings_differ(tag: str, parts: list[bytes]) -> None:
    accepted = assert_regroupings_differ(lambda p: dkls23._h32(tag, *p), parts, regroupings(parts))
    assert accepted > 0


@BOUNDED
@given(parts=parts_strategy)
def test_dkls23_h_scalar_regroupings_differ(parts: list[bytes]) -> None:
    tag = "tmpc/dkls23/rerandomize"
    assert_regroupings_differ(lambda p: dkls23._h_scalar(tag, *p), parts, regroupings(parts))
    # the tag is length-prefixed too: a byte moved from the tag into the first part matters
    assert dkls23._h_scalar(tag[:-1], tag[-1:].encode() + parts[0], *parts[1:]) != (
        dkls23._h_scalar(tag, *parts)
    )


def _point_with_last_byte(last: int) -> Point:
    """A point whose compressed encoding ends in ``last`` (about 256 tries)."""
    k = 1
    while G.base_mul(k).encode()[-1] != last:
        k += 1
    return G.base_mul(k)


def _x_of_even_point_below_n() -> int:
    """An integer ``b < n`` such that ``02 || b`` is a valid point: a valid id and a point."""
    k = 7
    while True:
        enc = G.base_mul(k).encode()
        b = int.from_bytes(enc[1:], "big")
        if enc[0] == 2 and 2 < b < N - 1:
            return b
        k += 1


def test_dkls23_presign_context_collision_of_valid_inputs() -> None:
    """Session id, key and signer set: bytes of the signer list moved into the session id and
    the key still give valid inputs with the same plain concatenation; the context differs."""
    S = secrets.token_bytes(32)
    P = G.base_mul(G.random_scalar())
    a, b, c = 2, _x_of_even_point_below_n(), N - 1  # _id(a) ends in 0x02, 02 || b is a point
    a_enc = a.to_bytes(32, "big")
    S2 = S + P.encode() + a_enc[:31]
    Q = G.decode_point(a_enc[31:] + b.to_bytes(32, "big"))
    plain_a = S + P.encode() + dkls23._signers_bytes((a, b, c))
    plain_b = S2 + Q.encode() + dkls23._signers_bytes((c,))
    assert plain_a == plain_b
    ctx_a = dkls23._context(S, P, (a, b, c), 0)
    ctx_b = dkls23._context(S2, Q, (c,), 0)
    assert ctx_a != ctx_b


def test_dkls23_commit_R_collision_of_valid_inputs() -> None:
    """``commit(ctx, sender, R, salt)``: one byte moved from the salt through R and the sender
    into the context still gives a valid point and id; the commitment differs."""
    ctx, sender = secrets.token_bytes(32), 3
    for k in range(1, 2000):
        R = G.base_mul(k)
        enc = R.encode()
        if enc[1] not in (2, 3):
            continue
        for first in range(256):
            try:
                R2 = G.decode_point(enc[1:] + bytes([first]))
            except DecodeError:
                continue
            salt = bytes([first]) + secrets.token_bytes(31)
            sender_enc = sender.to_bytes(32, "big")
            ctx2 = ctx + sender_enc[:1]
            sender2 = int.from_bytes(sender_enc[1:] + enc[:1], "big")
            salt2 = salt[1:]
            plain = ctx + sender_enc + enc + salt
            assert plain == ctx2 + sender2.to_bytes(32, "big") + R2.encode() + salt2
            assert dkls23._commit_R(ctx, sender, R, salt) != dkls23._commit_R(
                ctx2, sender2, R2, salt2
            )
            return
    pytest.fail("no suitable point found")


def test_dkls23_echo_split_and_merged_commitment_lists() -> None:
    ctx = secrets.token_bytes(32)
    c1, c2, c3 = (secrets.token_bytes(32) for _ in range(3))
    base = dkls23._echo(ctx, {1: c1, 2: c2, 3: c3}, (1, 2, 3))
    merged = dkls23._echo(ctx, {1: c1 + c2, 3: c3}, (1, 3))
    moved = dkls23._echo(ctx, {1: c1 + c2[:1], 2: c2[1:], 3: c3}, (1, 2, 3))
    into_ctx = dkls23._echo(ctx + c1, {2: c2, 3: c3}, (2, 3))
    assert len({base, merged, moved, into_ctx}) == 4


def test_dkls23_presig_id_is_h32_of_context_and_R() -> None:
    """The presignature id is computed inline in round 3 as ``_h32(presig-id, ctx, R)``
    (covered by the ``_h32`` tests above); pin that wiring on a real run."""
    w = make_wallet(2, 2)
    sid = secrets.token_bytes(32)
    presigs = dkls23.presign_local(w.shares, w.PK, w.pairwise, [1, 2], sid)
    p = presigs[1]
    ctx = dkls23._context(sid, w.PK, (1, 2), p.tweak)
    assert p.presig_id == dkls23._h32("tmpc/dkls23/presig-id", ctx, p.R.encode())
    assert presigs[2].presig_id == p.presig_id


def test_dkls23_rerandomizer_collision_of_valid_inputs() -> None:
    """``delta = H(presig_id, PK, signers, R, digest, tweak)``: 32 bytes moved from the key and
    the signer list into the id still give a valid key and signer set; delta differs."""
    P = _point_with_last_byte(0x02)
    b = _x_of_even_point_below_n()
    s1, s2 = b, N - 1
    R = G.base_mul(G.random_scalar())
    pid = secrets.token_bytes(32)
    info_a = dkls23.PresignatureInfo(pid, (s1, s2), P, R)
    pid_b = pid + P.encode()[:32]
    Q = G.decode_point(P.encode()[32:] + s1.to_bytes(32, "big"))
    info_b = dkls23.PresignatureInfo(pid_b, (s2,), Q, R)

    def plain(info: dkls23.PresignatureInfo) -> bytes:
        return (
            info.presig_id
            + info.public_key.encode()
            + dkls23._signers_bytes(info.signers)
            + info.R.encode()
        )

    assert plain(info_a) == plain(info_b)
    digest = hashlib.sha256(b"msg").digest()
    assert dkls23.rerandomizer(info_a, digest) != dkls23.rerandomizer(info_b, digest)


# --------------------------------------------------------------------------------------------
# Zero sharing
# --------------------------------------------------------------------------------------------


def test_zero_share_seed_and_context_boundary() -> None:
    """``zeta = H(seed, context)``: a byte moved from the seed into the context changes it."""
    seed, ctx = secrets.token_bytes(32), secrets.token_bytes(32)
    base = zero_share.zero_share(1, {2: seed}, (1, 2), ctx)
    assert base != zero_share.zero_share(1, {2: seed[:-1]}, (1, 2), seed[-1:] + ctx)
    assert base != zero_share.zero_share(1, {2: seed + ctx[:1]}, (1, 2), ctx[1:])


@BOUNDED
@given(sid=st.binary(min_size=16, max_size=40), k=st.integers(1, 31))
def test_zero_share_seed_commitments_have_one_variable_field(sid: bytes, k: int) -> None:
    """``H(lp(session id) || sender || receiver || contribution)``: the ids are fixed 32-byte
    fields and the contribution must be exactly 32 bytes, so bytes moved between the session
    id and the contribution are refused, and a longer session id alone changes the hash."""
    contribution = secrets.token_bytes(32)
    c = zero_share.seed_commitment(sid, 1, 2, contribution)
    for bad in (contribution[:-k], contribution + sid[:k]):
        with pytest.raises(DecodeError):
            zero_share.seed_commitment(sid[: len(sid) - k], 1, 2, bad)
        with pytest.raises(DecodeError):
            zero_share.combine_seeds(sid, 1, bad, 2, contribution)
    assert zero_share.seed_commitment(sid + contribution[:k], 1, 2, contribution) != c
    assert zero_share.seed_commitment(sid, 1, 2, contribution) != zero_share.seed_commitment(
        sid, 2, 1, contribution
    )


# --------------------------------------------------------------------------------------------
# Base OT, OT extension and multiplication
# --------------------------------------------------------------------------------------------


@BOUNDED
@given(context=st.binary(max_size=40), k=st.integers(1, 100))
def test_vsot_dlog_challenge_regroupings_differ(context: bytes, k: int) -> None:
    statement, commitment = G.base_mul(k).encode(), G.base_mul(k + 1).encode()
    parts = (context, statement, commitment)
    assert_regroupings_differ(
        lambda p: ot._dlog_challenge(*p), parts, moves(parts, widths=(1, 2, 32))
    )


def test_vsot_dlog_proof_does_not_verify_for_a_regrouped_context() -> None:
    context = b"tmpc/dkls23/mul-setup" + secrets.token_bytes(32)
    w = G.random_scalar()
    X = G.base_mul(w)
    proof = ot.dlog_prove(context, w, X, secrets.token_bytes)
    assert ot.dlog_verify(context, X, proof)
    for other in (context[:-1], context + X.encode()[:1], context + X.encode(), X.encode()[:1]):
        assert not ot.dlog_verify(other, X, proof)
    # the pads' context digest: the context is length-prefixed before B
    B = X.encode()
    assert ot._ctx_digest(context, B) != ot._ctx_digest(context[:-1], context[-1:] + B[:-1])


@BOUNDED
@given(sid32=st.binary(min_size=32, max_size=32), u=st.binary(min_size=1, max_size=40))
def test_ote_consistency_challenge_regroupings_refused(sid32: bytes, u: bytes) -> None:
    """The KOS challenge ``chi = H(sid32 || u)``: sid32 is a fixed 32-byte field (enforced),
    so bytes moved between the session digest and ``u`` are refused."""
    parts = (sid32, u)

    def challenge(p: tuple[bytes, ...]) -> bytes:
        return bytes(ote._check_matrix(*p).tobytes())

    assert assert_regroupings_differ(challenge, parts, moves(parts, widths=(1, 16))) == 0
    assert challenge((sid32, u)) != challenge((sid32, u + b"\x00"))


@BOUNDED
@given(
    sid32=st.binary(min_size=32, max_size=32),
    bob=st.binary(min_size=1, max_size=40),
    tau=st.binary(min_size=1, max_size=40),
)
def test_multiplication_check_challenges_regroupings_differ(
    sid32: bytes, bob: bytes, tau: bytes
) -> None:
    """``chi = H(sid32, H(Bob's message), H(tau))`` and ``H(sid32 || r)``."""
    parts = (sid32, bob, tau)
    accepted = assert_regroupings_differ(
        lambda p: multiply._challenges(*p), parts, moves(parts, widths=(1, 2))
    )
    assert accepted > 0
    # the hash of Alice's check vector: sid32 fixed (enforced), r follows
    assert (
        assert_regroupings_differ(lambda p: multiply._r_hash(*p), (sid32, bob), moves((sid32, bob)))
        == 0
    )


def test_ote_session_digest_has_a_fixed_width_setup_id() -> None:
    """``sid32 = H(tag || setup_id || session_id)``: the setup id is a fixed 32-byte field
    (enforced when the OT-extension state is built), the session id comes last, so a byte
    moved between them is a different setup id length, which is refused."""
    seeds = [bytes(32)] * ot.KAPPA
    for bad in (b"x" * 31, b"x" * 33):
        with pytest.raises(DecodeError):
            ote.OteReceiver(bad, 2, seeds, seeds)
    sid = b"s" * 16
    a = ote.OteReceiver(b"x" * 32, 2, seeds, seeds).consume(sid)
    assert a != ote.OteReceiver(b"x" * 32, 2, seeds, seeds).consume(sid + b"\x00")
    assert a != ote.OteReceiver(b"y" + b"x" * 31, 2, seeds, seeds).consume(sid)


def test_multiplication_setup_id_and_context() -> None:
    context = multiply._setup_context(b"s" * 32, 1, 2)
    B = G.base_mul(5).encode()
    A = b"".join(G.base_mul(k).encode() for k in range(6, 10))
    parts = (context, B, A)
    # B is a fixed 33-byte field (enforced); the context is length-prefixed
    assert_regroupings_differ(lambda p: multiply._setup_id(*p), parts, moves(parts, (1, 33)))
    with pytest.raises(DecodeError):
        multiply._setup_id(context, B[:-1], B[-1:] + A)
    # the context: a length-prefixed session id, then two fixed 32-byte identifiers
    assert multiply._setup_context(b"s" * 33, 1, 2) != multiply._setup_context(b"s" * 32, 1, 2)
    assert multiply._setup_context(b"s" * 32, 1, 2) != multiply._setup_context(b"s" * 32, 2, 1)


# --------------------------------------------------------------------------------------------
# DKG proofs of possession
# --------------------------------------------------------------------------------------------


def test_dkg_pop_secp256k1_binds_the_index() -> None:
    """The draft's pop is BIP340 over ``be4(index)`` (fixed width): no other index verifies,
    also none whose encoding is a byte shift of the index."""
    suite = suite_for(SECP256K1)
    a0 = G.random_scalar()
    A = G.base_mul(a0)
    for i in (1, 2, 258):
        pop = suite.pop_prove(a0, A, i, secrets.token_bytes(32), b"")
        assert suite.pop_verify(pop, A, i, b"")
        for j in {i + 1, i - 1, i << 8, i >> 8, (i << 24) & 0xFFFFFFFF}:
            if j != i:
                assert not suite.pop_verify(pop, A, j, b"")


def test_dkg_pop_ed25519_binds_index_and_context() -> None:
    """Off secp256k1 the challenge is ``H(R || A || be4(index) || t || hostpubkeys)``: every
    field but the context (last) has a fixed width, so a byte moved between the index and
    the context is a different index field; the pop verifies for none of them."""
    suite = suite_for(ED25519)
    g = ED25519
    a0 = g.random_scalar()
    A = g.base_mul(a0)
    keys = b"".join(G.base_mul(k).encode() for k in (11, 12, 13))
    ctx = (2).to_bytes(4, "big") + keys
    i = 1
    pop = suite.pop_prove(a0, A, i, secrets.token_bytes(32), ctx)
    assert suite.pop_verify(pop, A, i, ctx)
    be = i.to_bytes(4, "big")
    neighbours = [
        (int.from_bytes(be[1:] + ctx[:1], "big"), ctx[1:]),
        (int.from_bytes(be[:3], "big"), be[3:] + ctx),
        (i, ctx[:-1]),
        (i, ctx + b"\x00"),
        (i, (3).to_bytes(4, "big") + keys),
        (i + 1, ctx),
    ]
    for j, c in neighbours:
        assert not suite.pop_verify(pop, A, j, c)
    R = g.decode_point(pop[:32])
    assert suite._pop_challenge(R, A, i, ctx) != suite._pop_challenge(R, A, i, ctx[:-1])


# --------------------------------------------------------------------------------------------
# FROST (RFC 9591 fixes its own encoding)
# --------------------------------------------------------------------------------------------

SUITES = [secp256k1, ed25519]
suites = pytest.mark.parametrize("suite", SUITES, ids=["secp256k1", "ed25519"])


@suites
def test_frost_commitment_moved_into_message_changes_binding_factors_and_share(
    suite: Ciphersuite,
) -> None:
    """``msg || encode(list)`` is the same when signer 1's encoded commitment moves from the
    list into the message; every binding factor, R and the challenge differ, and a share
    made in one session fails verification in the other, naming its signer."""
    g = suite.group
    sk = g.random_scalar()
    shares = shamir_split(g, sk, 2, [1, 2, 3])
    PK = g.base_mul(sk)
    nonces, comms = {}, {}
    for i in (1, 2, 3):
        nonces[i], comms[i] = frost.commit(suite, i, shares[i])
    full = [comms[1], comms[2], comms[3]]
    short = [comms[2], comms[3]]
    m0 = b"pay 1 BTC to "
    msg_full, msg_short = m0, m0 + comms[1].to_bytes()
    assert msg_full + frost.encode_group_commitment_list(suite, full) == (
        msg_short + frost.encode_group_commitment_list(suite, short)
    )
    bf_full = dict(frost.compute_binding_factors(suite, PK, full, msg_full))
    bf_short = dict(frost.compute_binding_factors(suite, PK, short, msg_short))
    assert all(bf_full[i] != bf_short[i] for i in (2, 3))
    R_full = frost.compute_group_commitment(suite, full, list(bf_full.items()))
    R_short = frost.compute_group_commitment(suite, short, list(bf_short.items()))
    assert R_full != R_short
    assert frost.compute_challenge(suite, R_full, PK, msg_full) != frost.compute_challenge(
        suite, R_short, PK, msg_short
    )
    # Signer 2 signs in the short session; its share is worthless in the full one.
    z2 = frost.sign(suite, 2, shares[2], PK, nonces[2], msg_short, short, min_signers=2)
    PK2 = g.base_mul(shares[2])
    frost.verify_signature_share(suite, 2, PK2, comms[2], z2, short, PK, msg_short)
    with pytest.raises(FaultyParticipantError) as exc:
        frost.verify_signature_share(suite, 2, PK2, comms[2], z2, full, PK, msg_full)
    assert exc.value.culprits == (2,)
    z3 = frost.sign(suite, 3, shares[3], PK, nonces[3], msg_short, short, min_signers=2)
    sig = frost.aggregate(
        suite, short, msg_short, PK, {2: z2, 3: z3}, {2: PK2, 3: g.base_mul(shares[3])}
    )
    assert independent_verify(suite, PK, msg_short, sig)
    assert not independent_verify(suite, PK, msg_full, sig)


# --------------------------------------------------------------------------------------------
# BIP445 (the draft fixes its own encoding)
# --------------------------------------------------------------------------------------------


def test_bip445_nonce_coefficient_regrouping_needs_a_self_similar_key() -> None:
    """``b = H(SerializeIds || aggnonce || xbytes(Q) || m)`` has two variable fields (the id
    list, 4 bytes per signer, and the message) around fixed ones. Dropping one signer and
    shifting the aggregate nonce and the message by 4 bytes keeps the plain concatenation
    only if ``xbytes(Q)`` equals itself shifted by 4 bytes, which a real key never does: the
    regrouped session is refused (its aggnonce does not decode) and its input differs."""
    secret = G.random_scalar()
    xs = [1, 2, 3]
    shares = shamir_split(G, secret, 2, xs)
    P = G.base_mul(secret)
    pubshares = [G.base_mul(shares[x]).encode() for x in xs]
    ctx3 = bip445.SignersContext(3, 2, [0, 1, 2], pubshares, P.encode())
    ctx2 = bip445.SignersContext(3, 2, [0, 1], pubshares[:2], P.encode())
    msg = hashlib.sha256(b"spend").digest()
    pubnonces = [bip445.NonceGen(s.to_bytes(32, "big"))[1] for s in shares.values()]
    aggnonce = bip445.NonceAgg(pubnonces, [0, 1, 2])
    s3 = bip445.SessionContext(ctx3, aggnonce, [], [], msg)
    v3 = bip445.GetSessionValues(s3)
    Q = v3.Q.xonly()
    ser3 = bip445.SerializeIds([0, 1, 2])
    plain3 = ser3 + aggnonce + Q + msg
    aggnonce2 = plain3[8:74]
    msg2 = plain3[106:]
    assert bip445.SerializeIds([0, 1]) + aggnonce2 + plain3[74:106] + msg2 == plain3
    assert plain3[74:106] != Q  # the key in between would have to be 4-periodic
    s2 = bip445.SessionContext(ctx2, aggnonce2, [], [], msg2)
    with pytest.raises(TmpcError):
        bip445.GetSessionValues(s2)
