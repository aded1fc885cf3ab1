"""Run the machines of every party of one session in this process.

The in-memory driver of :mod:`tmpc.protocols.machine`: it starts every machine and routes
each returned message to its recipient (a broadcast to every other participant) until all
are done. Nodes run the same machines over the network; tests, the demo and library users
run them here. A :class:`~tmpc.errors.ProtocolError` from any machine propagates with its
culprits.
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
) -> dict[int, object]:
    """Drive ``machines`` (party id -> its machine) to completion; returns id -> result.

    ``tamper(msg, recipient)`` (tests only) sees every delivery and returns the message to
    deliver instead, or None to drop it. Raises :class:`~tmpc.errors.ParameterError` if the
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
