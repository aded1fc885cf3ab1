"""Two-party random-VOLE multiplication of DKLs23 (F_RVOLE, L = 2) and its pairwise setup.

Honest runs check ``c_A[k] + d_B[k] == a_k * b``; the cheating-party tests drive a real attacker
(an Alice with inconsistent correlations, a Bob with inconsistent OT-extension choice bits, a
sender of malformed messages) and assert the error type, the culprit, and that the pair is
refused afterwards.
"""

from __future__ import annotations

import copy
import pickle
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tmpc.errors import (
    FaultyParticipantError,
    ParameterError,
    ProtocolError,
    StateError,
    TmpcError,
)
from tmpc.protocols.ecdsa import multiply as mul
from tmpc.protocols.ecdsa.errors import MulCheckError, OTCheckError, PairwiseCheckError
from tmpc.protocols.ecdsa.multiply import (
    RECEIVER_MSG_LEN,
    SENDER_MSG_LEN,
    L,
    MulReceiver,
    MulSender,
    mul_setup_receiver_1,
    mul_setup_receiver_3,
    mul_setup_sender_2,
    mul_setup_sender_4,
    run_pair_setup_local,
)
from tmpc.protocols.ecdsa.ot import dlog_prove
from tmpc.protocols.ecdsa.ote import XI

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ALICE, BOB = 3, 5


def _sid() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture(scope="module")
def pair_bytes() -> tuple[bytes, bytes]:
    sender, receiver = run_pair_setup_local(_sid(), sender_id=ALICE, receiver_id=BOB)
    return sender.to_bytes(), receiver.to_bytes()


def _pair(pair_bytes: tuple[bytes, bytes]) -> tuple[MulSender, MulReceiver]:
    return MulSender.from_bytes(pair_bytes[0]), MulReceiver.from_bytes(pair_bytes[1])


def _multiply(sender: MulSender, receiver: MulReceiver, a: list[int]) -> tuple[list[int], int]:
    sid = _sid()
    keep, b, m1 = receiver.run_phase1(sid)
    c, m2 = sender.run(sid, a, m1)
    d = receiver.run_phase2(sid, keep, m2)
    return [(x + y) % N for x, y in zip(c, d, strict=True)], b


# --------------------------------------------------------------------------------------------
# Honest runs
# --------------------------------------------------------------------------------------------


def test_products_over_many_sessions_with_serialisation(pair_bytes: tuple[bytes, bytes]) -> None:
    sender, receiver = _pair(pair_bytes)
    bs = set()
    specials = [[0, 1], [N - 1, N - 1], [1, 0]]
    for i in range(12):
        a = specials[i] if i < len(specials) else [secrets.randbelow(N) for _ in range(L)]
        sums, b = _multiply(sender, receiver, a)
        assert sums == [x * b % N for x in a]
        bs.add(b)
        if i % 4 == 3:  # store and reload between sessions
            sender = MulSender.from_bytes(sender.to_bytes())
            receiver = MulReceiver.from_bytes(receiver.to_bytes())
    assert len(bs) == 12  # Bob's input is fresh every session
    assert sender.setup_id == receiver.setup_id
    assert (sender.self_id, sender.peer_id, receiver.self_id, receiver.peer_id) == (3, 5, 5, 3)


def test_setup_step_by_step_message_flow() -> None:
    sid = _sid()
    bob_state, m1 = mul_setup_receiver_1(sid, self_id=BOB, peer_id=ALICE)
    alice_state, m2 = mul_setup_sender_2(sid, m1, self_id=ALICE, peer_id=BOB)
    receiver, m3 = mul_setup_receiver_3(bob_state, m2)
    sender = mul_setup_sender_4(alice_state, m3)
    assert (len(m1), len(m2), len(m3)) == (97, 33 * 128, 64 * 128)
    sums, b = _multiply(sender, receiver, [2, 3])
    assert sums == [2 * b % N, 3 * b % N]
    with pytest.raises(StateError):
        mul_setup_receiver_3(bob_state, m2)
    with pytest.raises(StateError):
        mul_setup_sender_4(alice_state, m3)


def test_message_lengths_and_fresh_setups_differ(pair_bytes: tuple[bytes, bytes]) -> None:
    sender, receiver = _pair(pair_bytes)
    sid = _sid()
    _, _, m1 = receiver.run_phase1(sid)
    _, m2 = sender.run(sid, [1, 2], m1)
    assert (len(m1), len(m2)) == (RECEIVER_MSG_LEN, SENDER_MSG_LEN)
    other, _ = run_pair_setup_local(_sid(), sender_id=ALICE, receiver_id=BOB)
    assert other.setup_id != sender.setup_id


def test_products_of_two_setups_do_not_mix(pair_bytes: tuple[bytes, bytes]) -> None:
    # Bob's message of one setup fed to the Alice of another setup fails Alice's OT check
    sender, receiver = _pair(pair_bytes)
    other_sender, _ = run_pair_setup_local(_sid(), sender_id=ALICE, receiver_id=BOB)
    sid = _sid()
    _, _, m1 = receiver.run_phase1(sid)
    with pytest.raises(OTCheckError) as exc:
        other_sender.run(sid, [1, 2], m1)
    assert exc.value.culprits == (BOB,)
    sender.run(sid, [1, 2], m1)  # the right Alice accepts it


# --------------------------------------------------------------------------------------------
# Setup: cheating Bob (base-OT sender), malformed messages
# --------------------------------------------------------------------------------------------


def test_setup_bad_proof_of_knowledge_names_bob() -> None:
    sid = _sid()
    bob_state, m1 = mul_setup_receiver_1(sid, self_id=BOB, peer_id=ALICE)
    vsot = bob_state._vsot
    forged = m1[:33] + dlog_prove(vsot.context, vsot.b + 1, vsot.B, secrets.token_bytes)
    with pytest.raises(OTCheckError) as exc:
        mul_setup_sender_2(sid, forged, self_id=ALICE, peer_id=BOB)
    assert exc.value.culprits == (BOB,)


def test_setup_in_another_session_or_direction_is_rejected() -> None:
    sid = _sid()
    _, m1 = mul_setup_receiver_1(sid, self_id=BOB, peer_id=ALICE)
    for args in ((_sid(), ALICE, BOB), (sid, BOB, ALICE), (sid, ALICE, 9)):
        with pytest.raises(OTCheckError) as exc:
            mul_setup_sender_2(args[0], m1, self_id=args[1], peer_id=args[2])
        assert exc.value.culprits == (args[2],)


def test_setup_bad_opening_names_bob() -> None:
    sid = _sid()
    bob_state, m1 = mul_setup_receiver_1(sid, self_id=BOB, peer_id=ALICE)
    alice_state, m2 = mul_setup_sender_2(sid, m1, self_id=ALICE, peer_id=BOB)
    _, m3 = mul_setup_receiver_3(bob_state, m2)
    bad = bytes(x ^ 0x01 for x in m3)  # every opening wrong
    with pytest.raises(OTCheckError) as exc:
        mul_setup_sender_4(alice_state, bad)
    assert exc.value.culprits == (BOB,)


@pytest.mark.parametrize("step", ["msg1", "msg2", "msg3"])
def test_setup_malformed_messages_name_the_sender(step: str) -> None:
    sid = _sid()
    bob_state, m1 = mul_setup_receiver_1(sid, self_id=BOB, peer_id=ALICE)
    if step == "msg1":
        with pytest.raises(FaultyParticipantError) as exc:
            mul_setup_sender_2(sid, m1[:-1], self_id=ALICE, peer_id=BOB)
        culprit = BOB
    else:
        alice_state, m2 = mul_setup_sender_2(sid, m1, self_id=ALICE, peer_id=BOB)
        if step == "msg2":
            with pytest.raises(FaultyParticipantError) as exc:
                mul_setup_receiver_3(bob_state, m2[:33] + bytes(33) + m2[66:])
            culprit = ALICE
        else:
            _, m3 = mul_setup_receiver_3(bob_state, m2)
            with pytest.raises(FaultyParticipantError) as exc:
                mul_setup_sender_4(alice_state, m3 + b"\x00")
            culprit = BOB
    assert exc.value.culprits == (culprit,)
    assert not isinstance(exc.value, PairwiseCheckError)


@pytest.mark.parametrize(
    ("kwargs", "sid"),
    [
        ({"self_id": 3, "peer_id": 3}, b"s" * 32),
        ({"self_id": 0, "peer_id": 3}, b"s" * 32),
        ({"self_id": N, "peer_id": 3}, b"s" * 32),
        ({"self_id": True, "peer_id": 3}, b"s" * 32),
        ({"self_id": 2, "peer_id": 3}, b"short"),
    ],
)
def test_setup_rejects_bad_parameters(kwargs: dict[str, Any], sid: bytes) -> None:
    with pytest.raises(ParameterError):
        mul_setup_receiver_1(sid, **kwargs)


# --------------------------------------------------------------------------------------------
# Multiplication: cheating Alice (inconsistent correlations)
# --------------------------------------------------------------------------------------------


def _cheat_tau(
    monkeypatch: pytest.MonkeyPatch, stream: int, positions: Callable[[], list[int]]
) -> dict[str, Any]:
    """Make Alice send ``tau + delta`` at the given OTs of one stream: she then uses a different
    correlation there. Her challenges, ``r`` and ``u`` are computed from the tampered ``tau``,
    as a real attacker would (the Fiat-Shamir challenges cover ``tau``)."""
    seen: dict[str, Any] = {}
    real = mul.cote_send

    def cheating_cote_send(batch: Any, corr: list[int]) -> tuple[bytes, bytes]:
        z_a, tau = real(batch, corr)
        raw = bytearray(tau)
        for j in positions():
            off = 32 * (stream * XI + j)
            v = (int.from_bytes(raw[off : off + 32], "big") + 1 + secrets.randbelow(N - 1)) % N
            raw[off : off + 32] = v.to_bytes(32, "big")
        seen["tampered"] = True
        return z_a, bytes(raw)

    monkeypatch.setattr(mul, "cote_send", cheating_cote_send)
    return seen


@pytest.mark.parametrize("stream", [0, 1, 2], ids=["a~1", "a~2", "a^"])
def test_inconsistent_correlation_is_caught_every_time(
    pair_bytes: tuple[bytes, bytes], monkeypatch: pytest.MonkeyPatch, stream: int
) -> None:
    for _ in range(5 if stream else 20):
        sender, receiver = _pair(pair_bytes)
        sid = _sid()
        keep, _, m1 = receiver.run_phase1(sid)
        beta = keep._batch.choices
        ones = [j for j in range(XI) if beta[j]]
        # one OT where Bob's choice bit is 1: there the wrong correlation reaches Bob
        _cheat_tau(monkeypatch, stream, lambda ones=ones: [secrets.choice(ones)])
        _, m2 = sender.run(sid, [secrets.randbelow(N), secrets.randbelow(N)], m1)
        with pytest.raises(MulCheckError) as exc:
            receiver.run_phase2(sid, keep, m2)
        assert exc.value.culprits == (ALICE,)
        # terminal: Bob refuses the pair before any new secret-dependent work
        with pytest.raises(MulCheckError):
            receiver.run_phase1(_sid())
        with pytest.raises(MulCheckError):
            MulReceiver.from_bytes(receiver.to_bytes()).run_phase1(_sid())
        monkeypatch.undo()


def test_inconsistent_correlations_everywhere_are_caught(
    pair_bytes: tuple[bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    _cheat_tau(monkeypatch, 0, lambda: list(range(XI)))
    for _ in range(5):
        sender, receiver = _pair(pair_bytes)
        sid = _sid()
        keep, _, m1 = receiver.run_phase1(sid)
        _, m2 = sender.run(sid, [1, 2], m1)
        with pytest.raises(MulCheckError) as exc:
            receiver.run_phase2(sid, keep, m2)
        assert exc.value.culprits == (ALICE,)


def test_wrong_correlation_where_bob_chose_zero_changes_nothing(
    pair_bytes: tuple[bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the selective failure DKLs19's gadget encoding is built for: at an OT where beta_j = 0
    # Bob never sees Alice's correlation, so the check passes and the product is right; the
    # 160 random gadget entries keep b hidden even when such bits leak
    sender, receiver = _pair(pair_bytes)
    sid = _sid()
    keep, b, m1 = receiver.run_phase1(sid)
    zeros = [j for j in range(XI) if not keep._batch.choices[j]]
    _cheat_tau(monkeypatch, 0, lambda: zeros[:3])
    c, m2 = sender.run(sid, [7, 9], m1)
    d = receiver.run_phase2(sid, keep, m2)
    assert [(x + y) % N for x, y in zip(c, d, strict=True)] == [7 * b % N, 9 * b % N]


@pytest.mark.parametrize("field", ["r", "u", "tau-everywhere"])
def test_tampered_reply_is_caught(pair_bytes: tuple[bytes, bytes], field: str) -> None:
    sender, receiver = _pair(pair_bytes)
    sid = _sid()
    keep, _, m1 = receiver.run_phase1(sid)
    _, m2 = sender.run(sid, [1, 2], m1)
    raw = bytearray(m2)
    t_end = 32 * XI * (L + 1)
    if field == "r":
        raw[t_end] ^= 1
    elif field == "u":
        raw[t_end + 63] ^= 1
    else:  # tau changed by the network (not by Alice's computation): still caught
        for off in range(0, t_end, 32):
            raw[off + 31] ^= 1
    with pytest.raises(MulCheckError) as exc:
        receiver.run_phase2(sid, keep, bytes(raw))
    assert exc.value.culprits == (ALICE,)


def test_alice_cannot_precompute_the_challenges(
    pair_bytes: tuple[bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The attack a challenge fixed before tau would allow: at an OT with beta_j = 1 Alice shifts
    # a~_1 by delta and compensates in the a^ stream so that sum_s chi_s alpha_s,j = u still
    # holds for the challenges she predicts. Bob's product is then off by g_j * delta, an error
    # that depends on his secret bits. Our challenges hash tau, so her prediction is wrong.
    sender, receiver = _pair(pair_bytes)
    sid = _sid()
    keep, _, m1 = receiver.run_phase1(sid)
    j = next(i for i in range(XI) if keep._batch.choices[i])
    real = mul.cote_send

    def attacking_cote_send(batch: Any, corr: list[int]) -> tuple[bytes, bytes]:
        z_a, tau = real(batch, corr)
        chi = mul._challenges(batch.sid32, m1, b"")  # her prediction, made before tau
        delta = 1 + secrets.randbelow(N - 1)
        raw = bytearray(tau)
        for stream, shift in ((0, delta), (L, -chi[0] * delta * pow(chi[L], -1, N))):
            off = 32 * (stream * XI + j)
            raw[off : off + 32] = (
                (int.from_bytes(raw[off : off + 32], "big") + shift) % N
            ).to_bytes(32, "big")
        return z_a, bytes(raw)

    monkeypatch.setattr(mul, "cote_send", attacking_cote_send)
    _, m2 = sender.run(sid, [1, 2], m1)
    with pytest.raises(MulCheckError) as exc:
        receiver.run_phase2(sid, keep, m2)
    assert exc.value.culprits == (ALICE,)


def test_challenges_cover_tau() -> None:
    # a challenge fixed before tau would let Alice choose inconsistent correlations that pass
    sid32, bob_msg, tau = b"\x01" * 32, b"bob", bytes(64)
    assert mul._challenges(sid32, bob_msg, tau) != mul._challenges(sid32, bob_msg, tau[:-1] + b"\1")
    assert mul._challenges(sid32, bob_msg, tau) != mul._challenges(sid32, b"bob2", tau)


# --------------------------------------------------------------------------------------------
# Multiplication: cheating Bob, malformed messages, misuse of state
# --------------------------------------------------------------------------------------------


def test_bob_with_inconsistent_choice_bits_is_caught_by_alice(
    pair_bytes: tuple[bytes, bytes],
) -> None:
    for _ in range(10):
        sender, receiver = _pair(pair_bytes)
        sid = _sid()
        _, _, m1 = receiver.run_phase1(sid)
        raw = bytearray(m1)
        # flip one choice bit in 40 random columns of u (rows of 78 bytes): inconsistent
        # choice bits; the sender reads at least one of them except with probability 2^-40
        byte = secrets.randbelow(52)
        for col in secrets.SystemRandom().sample(range(128), 40):
            raw[78 * col + byte] ^= 0x10
        with pytest.raises(OTCheckError) as exc:
            sender.run(sid, [1, 2], bytes(raw))
        assert exc.value.culprits == (BOB,)
        with pytest.raises(OTCheckError):  # refused from now on
            sender.run(_sid(), [1, 2], m1)
        with pytest.raises(OTCheckError):
            MulSender.from_bytes(sender.to_bytes()).run(_sid(), [1, 2], m1)


@pytest.mark.parametrize("length", [0, RECEIVER_MSG_LEN - 1, RECEIVER_MSG_LEN + 1])
def test_malformed_bob_message_names_bob(pair_bytes: tuple[bytes, bytes], length: int) -> None:
    sender, _ = _pair(pair_bytes)
    with pytest.raises(FaultyParticipantError) as exc:
        sender.run(_sid(), [1, 2], bytes(length))
    assert exc.value.culprits == (BOB,)
    assert not isinstance(exc.value, PairwiseCheckError)


@pytest.mark.parametrize("kind", ["short", "long", "tau>=q", "u>=q", "gamma>=q"])
def test_malformed_alice_reply_names_alice(pair_bytes: tuple[bytes, bytes], kind: str) -> None:
    sender, receiver = _pair(pair_bytes)
    sid = _sid()
    keep, _, m1 = receiver.run_phase1(sid)
    _, m2 = sender.run(sid, [1, 2], m1)
    t_end = 32 * XI * (L + 1)
    nq = N.to_bytes(32, "big")
    bad = {
        "short": m2[:-1],
        "long": m2 + b"\x00",
        "tau>=q": nq + m2[32:],
        "u>=q": m2[: t_end + 32] + nq + m2[t_end + 64 :],
        "gamma>=q": m2[:-32] + nq,
    }[kind]
    with pytest.raises(FaultyParticipantError) as exc:
        receiver.run_phase2(sid, keep, bad)
    assert exc.value.culprits == (ALICE,)
    assert not isinstance(exc.value, PairwiseCheckError)


def test_session_ids_are_single_use(pair_bytes: tuple[bytes, bytes]) -> None:
    sender, receiver = _pair(pair_bytes)
    sid = _sid()
    keep, _, m1 = receiver.run_phase1(sid)
    _, m2 = sender.run(sid, [1, 2], m1)
    receiver.run_phase2(sid, keep, m2)
    with pytest.raises(StateError):
        receiver.run_phase1(sid)
    with pytest.raises(StateError):
        sender.run(sid, [1, 2], m1)
    # also after a store-and-reload
    with pytest.raises(StateError):
        MulSender.from_bytes(sender.to_bytes()).run(sid, [1, 2], m1)
    with pytest.raises(StateError):
        MulReceiver.from_bytes(receiver.to_bytes()).run_phase1(sid)


def test_keep_state_is_single_use_and_bound(pair_bytes: tuple[bytes, bytes]) -> None:
    sender, receiver = _pair(pair_bytes)
    sid = _sid()
    keep, _, m1 = receiver.run_phase1(sid)
    _, m2 = sender.run(sid, [1, 2], m1)
    assert "secret" in repr(keep)
    with pytest.raises(StateError):
        pickle.dumps(keep)
    with pytest.raises(StateError):
        copy.copy(keep)
    with pytest.raises(StateError):
        copy.deepcopy(keep)
    with pytest.raises(StateError):  # another session's keep
        receiver.run_phase2(_sid(), keep, m2)
    _, other = run_pair_setup_local(_sid(), sender_id=ALICE, receiver_id=BOB)
    other_sid = _sid()
    other_keep, _, _ = other.run_phase1(other_sid)
    with pytest.raises(StateError):  # a keep of another pairwise setup
        receiver.run_phase2(other_sid, other_keep, m2)
    receiver.run_phase2(sid, keep, m2)
    with pytest.raises(StateError):
        receiver.run_phase2(sid, keep, m2)


def test_bad_inputs_are_parameter_errors(pair_bytes: tuple[bytes, bytes]) -> None:
    sender, receiver = _pair(pair_bytes)
    _, _, m1 = receiver.run_phase1(_sid())
    for inputs in ([1], [1, 2, 3], [1, N], [-1, 2], [True, 2], "ab"):
        with pytest.raises(ParameterError):
            sender.run(_sid(), inputs, m1)  # type: ignore[arg-type]
    with pytest.raises(ParameterError):
        sender.run(b"short", [1, 2], m1)
    with pytest.raises(ParameterError):
        receiver.run_phase1(b"short")
    with pytest.raises(ParameterError):
        receiver.run_phase2(_sid(), object(), b"")  # type: ignore[arg-type]


def test_long_lived_objects_are_secret_and_not_copyable(pair_bytes: tuple[bytes, bytes]) -> None:
    sender, receiver = _pair(pair_bytes)
    for obj in (sender, receiver):
        text = repr(obj)
        assert "secret" in text and pair_bytes[0][-64:].hex() not in text
        with pytest.raises(StateError):
            pickle.dumps(obj)
        with pytest.raises(StateError):
            copy.copy(obj)
    sid = _sid()
    bob_state, m1 = mul_setup_receiver_1(sid, self_id=BOB, peer_id=ALICE)
    alice_state, _ = mul_setup_sender_2(sid, m1, self_id=ALICE, peer_id=BOB)
    for state in (bob_state, alice_state):
        assert "secret" in repr(state)
        with pytest.raises(StateError):
            pickle.dumps(state)


def test_errors_carry_no_secret(
    pair_bytes: tuple[bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    sender, receiver = _pair(pair_bytes)
    sid = _sid()
    keep, b, m1 = receiver.run_phase1(sid)
    _cheat_tau(monkeypatch, 0, lambda: list(range(XI)))
    _, m2 = sender.run(sid, [1, 2], m1)
    with pytest.raises(ProtocolError) as exc:
        receiver.run_phase2(sid, keep, m2)
    text = str(exc.value)
    assert str(b) not in text and b.to_bytes(32, "big").hex() not in text


# --------------------------------------------------------------------------------------------
# Fuzzing the parsers: only tmpc errors, never another exception
# --------------------------------------------------------------------------------------------

_FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _mutate(data: st.DataObject, good: bytes) -> bytes:
    kind = data.draw(st.sampled_from(["random", "truncate", "flip", "extend"]))
    if kind == "random":
        return data.draw(st.binary(max_size=400))
    if kind == "truncate":
        return good[: data.draw(st.integers(0, len(good) - 1))]
    if kind == "flip":
        i = data.draw(st.integers(0, len(good) - 1))
        return good[:i] + bytes([good[i] ^ data.draw(st.integers(1, 255))]) + good[i + 1 :]
    return good + data.draw(st.binary(min_size=1, max_size=40))


@_FUZZ
@given(st.data())
def test_fuzz_state_parsers(pair_bytes: tuple[bytes, bytes], data: st.DataObject) -> None:
    for good, parse in (
        (pair_bytes[0], MulSender.from_bytes),
        (pair_bytes[1], MulReceiver.from_bytes),
    ):
        try:
            parse(_mutate(data, good))
        except TmpcError:
            pass


@_FUZZ
@given(st.data())
def test_fuzz_setup_messages(data: st.DataObject) -> None:
    sid = b"fuzz session id!" * 2
    bob_state, m1 = mul_setup_receiver_1(sid, self_id=BOB, peer_id=ALICE)
    try:
        mul_setup_sender_2(sid, _mutate(data, m1), self_id=ALICE, peer_id=BOB)
    except TmpcError:
        pass
    try:
        mul_setup_receiver_3(bob_state, data.draw(st.binary(max_size=300)))
    except TmpcError:
        pass


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_multiplication_messages(pair_bytes: tuple[bytes, bytes], data: st.DataObject) -> None:
    sender, receiver = _pair(pair_bytes)
    sid = _sid()
    keep, _, m1 = receiver.run_phase1(sid)
    try:
        sender.run(sid, [1, 2], _mutate(data, m1))
    except TmpcError:
        pass
    sender2 = MulSender.from_bytes(pair_bytes[0])
    _, m2 = sender2.run(sid, [1, 2], m1)
    try:
        receiver.run_phase2(sid, keep, _mutate(data, m2))
    except TmpcError:
        pass
