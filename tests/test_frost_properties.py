"""Property tests: any t-subset (and any larger subset) of a t-of-n key signs, up to 7-of-10.

Keys come from tmpc.sharing.shamir_split of a random secret (the DKG is tested on its own).
Every signature is checked by tmpc's verifier and by an independent one (PyNaCl for
Ed25519, the coincurve equation check for secp256k1).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_frost_vectors import independent_verify
from tmpc.group import ed25519, secp256k1
from tmpc.group.base import Ciphersuite
from tmpc.ids import MAX_PARTY_ID
from tmpc.protocols.frost import aggregate, commit, sign, sign_local, verify
from tmpc.sharing import shamir_split

SUITES = st.sampled_from([secp256k1, ed25519])


@st.composite
def signing_setups(
    draw: st.DrawFn, max_id: int | None = None
) -> tuple[Ciphersuite, int, list[int], list[int], bytes]:
    suite = draw(SUITES)
    n = draw(st.integers(min_value=1, max_value=10))
    t = draw(st.integers(min_value=1, max_value=min(n, 7)))
    # Identifiers: usually 1..n, sometimes large ones (any non-zero scalar is allowed).
    if draw(st.booleans()):
        ids = list(range(1, n + 1))
    else:
        ids = draw(
            st.lists(
                st.integers(
                    min_value=1, max_value=suite.group.order - 1 if max_id is None else max_id
                ),
                min_size=n,
                max_size=n,
                unique=True,
            )
        )
    size = draw(st.integers(min_value=t, max_value=n))
    signers = draw(st.permutations(ids))[:size]
    msg = draw(st.binary(max_size=64))
    return suite, t, ids, signers, msg


# sign_local runs one FrostSignMachine per signer, whose party ids are below 2^32
# (tmpc.ids.MAX_PARTY_ID); identifiers up to the group order are covered round by round below.
@settings(max_examples=40, deadline=None)
@given(setup=signing_setups(max_id=MAX_PARTY_ID))
def test_any_threshold_subset_signs(
    setup: tuple[Ciphersuite, int, list[int], list[int], bytes],
) -> None:
    suite, t, ids, signers, msg = setup
    g = suite.group
    sk = g.random_scalar()
    PK = g.base_mul(sk)
    shares = shamir_split(g, sk, t, ids)
    verifying = {i: g.base_mul(s) for i, s in shares.items()}
    sig = sign_local(
        suite,
        {i: shares[i] for i in signers},
        PK,
        msg,
        verifying_shares=verifying,
        min_signers=t,
    )
    assert len(sig) == g.element_len + g.scalar_len
    assert verify(suite, PK, msg, sig)
    assert independent_verify(suite, PK, msg, sig)


@settings(max_examples=15, deadline=None)
@given(setup=signing_setups())
def test_round_by_round_equals_local(
    setup: tuple[Ciphersuite, int, list[int], list[int], bytes],
) -> None:
    # The same session run signer by signer (each computing its own binding factors) gives a
    # signature that verifies; and the signature changes with the message.
    suite, t, ids, signers, msg = setup
    g = suite.group
    sk = g.random_scalar()
    PK = g.base_mul(sk)
    shares = shamir_split(g, sk, t, ids)
    order = sorted(signers)
    rounds = {i: commit(suite, i, shares[i]) for i in order}
    clist = [rounds[i][1] for i in order]
    sig_shares = {
        i: sign(suite, i, shares[i], PK, rounds[i][0], msg, clist, min_signers=t) for i in order
    }
    verifying = {i: g.base_mul(shares[i]) for i in order}
    sig = aggregate(suite, clist, msg, PK, sig_shares, verifying, min_signers=t)
    assert verify(suite, PK, msg, sig)
    assert independent_verify(suite, PK, msg, sig)
    assert not verify(suite, PK, msg + b"\x00", sig)
    assert not independent_verify(suite, PK, msg + b"\x00", sig)
