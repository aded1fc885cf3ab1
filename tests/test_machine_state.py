"""The public round state of protocol machines (``RoundMachine.public_state``).

It round-trips through JSON, follows the rounds, carries broadcast payloads (one's own and the
peers'), shows only *who* sent a point-to-point message (never its content), holds no secret,
and cannot rebuild a machine (machines holding one-time secrets refuse copy and pickle).
"""

from __future__ import annotations

import json
import pickle
import secrets

import pytest

from tmpc.errors import ParameterError, StateError
from tmpc.group import SECP256K1, secp256k1
from tmpc.local import run_machines
from tmpc.protocols.ecdsa.machine import PairwiseSetupMachine, PresignMachine
from tmpc.protocols.frost_machine import FrostSignMachine
from tmpc.protocols.machine import Machine, Message, PublicState
from tmpc.sharing import shamir_split

G = SECP256K1


def _deliver(machines: dict[int, Machine], out: list[Message], *, rounds: int) -> list[Message]:
    """Deliver ``out`` and whatever it causes, up to messages of round ``rounds``."""
    later: list[Message] = []
    queue = list(out)
    while queue:
        msg = queue.pop(0)
        if msg.round > rounds:
            later.append(msg)
            continue
        targets = (
            [p for p in machines if p != msg.sender] if msg.recipient is None else [msg.recipient]
        )
        for t in targets:
            queue.extend(machines[t].receive(msg))
    return later


def _roundtrip(state: PublicState) -> PublicState:
    doc = json.loads(json.dumps(state.to_json()))
    back = PublicState.from_json(doc)
    assert back == state
    return back


def test_frost_state_follows_the_rounds_and_round_trips() -> None:
    x = G.random_scalar()
    ids = [1, 2, 3]
    shares = shamir_split(G, x, 2, ids)
    pk = G.base_mul(x)
    vs = {i: G.base_mul(shares[i]) for i in ids}
    msg = b"public state"
    suite = secp256k1
    machines: dict[int, Machine] = {
        i: FrostSignMachine(suite, i, shares[i], pk, vs, ids, msg, min_signers=2) for i in ids
    }
    first = {i: m.start() for i, m in machines.items()}
    s1 = _roundtrip(machines[1].public_state())  # type: ignore[attr-defined]
    assert (s1.protocol, s1.me, s1.participants, s1.round, s1.done) == (
        "frost-sign",
        1,
        (1, 2, 3),
        1,
        False,
    )
    assert s1.broadcasts == {1: {1: first[1][0].payload}}  # its own round-1 broadcast
    later = _deliver(machines, [m for out in first.values() for m in out], rounds=1)
    s2 = _roundtrip(machines[1].public_state())  # type: ignore[attr-defined]
    assert s2.round == 2
    assert set(s2.broadcasts[1]) == {1, 2, 3}
    assert s2.broadcasts[1][2] == first[2][0].payload
    _deliver(machines, later, rounds=2)
    s3 = machines[1].public_state()  # type: ignore[attr-defined]
    assert s3.done and not s3.failed
    for i in ids:  # no secret share in any state
        assert f"{shares[i]:064x}" not in json.dumps(s3.to_json())


def test_point_to_point_payloads_are_never_in_the_state() -> None:
    ids = [1, 2]
    sid = secrets.token_bytes(32)
    setup = run_machines({i: PairwiseSetupMachine(i, ids, sid) for i in ids})
    x = G.random_scalar()
    shares = shamir_split(G, x, 2, ids)
    psid = secrets.token_bytes(32)
    m = {
        i: PresignMachine(i, shares[i], setup[i], ids, psid, G.base_mul(x), threshold=2)  # type: ignore[arg-type]
        for i in ids
    }
    out1 = m[1].start()
    out2 = m[2].start()
    m[1].receive(out2[0])
    state = m[1].public_state()
    doc = json.dumps(state.to_json())
    assert state.broadcasts == {}  # presigning is point to point only
    assert state.arrived == {1: (2,)} or state.round == 2
    assert out2[0].payload.hex() not in doc and out1[0].payload.hex() not in doc
    with pytest.raises(StateError):
        pickle.dumps(m[1])


@pytest.mark.parametrize(
    "doc",
    [
        None,
        {},
        {"protocol": "x"},
        {
            "protocol": "x",
            "me": "a",
            "participants": [],
            "round": 0,
            "done": False,
            "failed": False,
            "broadcasts": {},
            "arrived": {},
        },
    ],
)
def test_malformed_state_is_refused(doc: object) -> None:
    with pytest.raises(ParameterError):
        PublicState.from_json(doc)


def test_party_ids_beyond_32_bits_are_refused_by_every_machine() -> None:
    with pytest.raises(ParameterError):
        PairwiseSetupMachine(1, [1, 2**32], secrets.token_bytes(32))
    with pytest.raises(ParameterError):
        PairwiseSetupMachine(0, [0, 1], secrets.token_bytes(32))
