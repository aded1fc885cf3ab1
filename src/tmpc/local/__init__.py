"""Run the machines of every party of one session in this process.

The in-memory driver of :mod:`tmpc.protocols.machine`: it starts every machine and routes
each returned message to its recipient (a broadcast to every other participant) until all
are done. Nodes run the same machines over the network; tests, the demo, the CLI and library
users run them here, and so do the one-process entry points kept for their callers
(:func:`tmpc.protocols.dkg.run_dkg`, the ``sign_local`` functions of
:mod:`tmpc.protocols.frost`, :mod:`tmpc.protocols.bip445` and
:mod:`tmpc.protocols.ecdsa.dkls23`, :func:`~tmpc.protocols.ecdsa.dkls23.presign_local`,
:func:`~tmpc.protocols.ecdsa.dkls23.pairwise_setup_local`,
:func:`~tmpc.protocols.ecdsa.dkls23.sign_with_presignatures`): each builds one machine per
party and calls :func:`run_machines`, so a session in one process and a session between nodes
execute the same protocol code. A :class:`~tmpc.errors.ProtocolError` from any machine
propagates with its culprits, which are party ids (:mod:`tmpc.ids`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping

from tmpc.errors import ParameterError, StateError
from tmpc.protocols.machine import Machine, Message

__all__ = ["run_machines"]


def run_machines(
    machines: Mapping[int, Machine],
    *,
    tamper: Callable[[Message, int], Message | None] | None = None,
    traffic: dict[int, int] | None = None,
) -> dict[int, object]:
    """Drive ``machines`` (party id -> its machine) to completion; returns id -> result.

    ``tamper(msg, recipient)`` (tests only) sees every delivery and returns the message to
    deliver instead, or None to drop it. ``traffic``, if given, gets the payload bytes each
    party sends added to its entry (a broadcast counts once per recipient, as it is sent;
    benchmarks). Raises :class:`~tmpc.errors.ParameterError` if the
    machines do not form one session, :class:`~tmpc.errors.StateError` if the session
    stalls (a dropped message), and whatever a machine raises.
    """
    ids = sorted(machines)
    for i in ids:
        m = machines[i]
        if m.me != i or m.participants != tuple(ids):
            raise ParameterError(f"machine {i} does not belong to a session of parties {ids}")
    queue: deque[tuple[int, Message]] = deque()

    def route(out: list[Message]) -> None:
        for msg in out:
            targets = (
                [p for p in ids if p != msg.sender] if msg.recipient is None else [msg.recipient]
            )
            if traffic is not None:
                traffic[msg.sender] = traffic.get(msg.sender, 0) + len(msg.payload) * len(targets)
            for r in targets:
                delivered = tamper(msg, r) if tamper is not None else msg
                if delivered is not None:
                    queue.append((r, delivered))

    for i in ids:
        route(machines[i].start())
    while queue:
        r, msg = queue.popleft()
        if r not in machines:
            raise ParameterError(f"a message for party {r}, which is not in the session")
        route(machines[r].receive(msg))
    stalled = [i for i in ids if not machines[i].done]
    if stalled:
        raise StateError(f"the session stalled: parties {stalled} are not done")
    return {i: machines[i].result for i in ids}
