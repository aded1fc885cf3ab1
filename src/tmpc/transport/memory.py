"""An in-process network, so whole clusters run in one process in tests (no sockets).

:class:`MemoryNetwork` connects any number of :class:`MemoryTransport` s by name; ``send``
calls the receiver's ``deliver`` directly and returns when it returned, exactly like the
acknowledgement of :class:`~tmpc.transport.tcp.TcpTransport`, with the same signals:
:class:`~tmpc.transport.base.TransportError` for "try again later" and
:class:`~tmpc.transport.tcp.RejectedError` when ``deliver`` raised one of
:data:`~tmpc.transport.tcp.REJECTIONS`. Unlike the TCP transport, any other exception of
``deliver`` propagates to the sender, so a bug fails the test instead of being retried.

Tests make the network misbehave the way the base interface allows:

- :meth:`MemoryNetwork.set_down` takes a member off the network (its sends and the sends to
  it raise :class:`TransportError`);
- a *fault hook* ``fault(sender, receiver, data) -> Fault`` chooses per message to drop it,
  lose its acknowledgement, duplicate it, or hold it back until
  :meth:`MemoryNetwork.release_held` delivers the held messages in an order of the test's
  choosing (reordering). Randomness, if any, lives in the hook the test passes.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tmpc.errors import ParameterError
from tmpc.transport.base import Deliver, Transport, TransportError
from tmpc.transport.tcp import REJECTIONS, RejectedError

__all__ = ["Fault", "FaultHook", "MemoryNetwork", "MemoryTransport"]


class Fault(enum.Enum):
    """What the network does with one message (the fault hook's answer)."""

    #: Deliver it and acknowledge it.
    DELIVER = "deliver"
    #: Lose it: never delivered; ``send`` raises :class:`TransportError`.
    DROP = "drop"
    #: Deliver it but lose the acknowledgement: ``send`` raises :class:`TransportError`, so
    #: the sender re-sends and the receiver sees it twice.
    LOSE_ACK = "lose-ack"
    #: Deliver it twice, then acknowledge it.
    DUPLICATE = "duplicate"
    #: Hold it; ``send`` waits until :meth:`MemoryNetwork.release_held` delivers it.
    HOLD = "hold"


#: ``fault(sender, receiver, data)``: the fate of one message.
FaultHook = Callable[[str, str, bytes], Fault]


@dataclass(slots=True)
class _Held:
    sender: str
    receiver: str
    data: bytes
    acked: asyncio.Future[None] = field(repr=False)


class MemoryNetwork:
    """The members of one in-process cluster, and the faults of the links between them.

    Args:
        fault: the fault hook (default: every message delivered once); may be replaced
            later through the ``fault`` attribute.
    """

    def __init__(self, fault: FaultHook | None = None) -> None:
        self.fault: FaultHook | None = fault
        #: Every message handed to a ``deliver``, as ``(sender, receiver, data)``, in order.
        self.delivered: list[tuple[str, str, bytes]] = []
        self._members: dict[str, MemoryTransport] = {}
        self._down: set[str] = set()
        self._held: list[_Held] = []

    def transport(self, name: str) -> MemoryTransport:
        """A new member ``name`` on this network.

        A member whose transport was closed may be replaced (a node restarting); raises
        :class:`ParameterError` if ``name`` is taken by a transport that is not closed."""
        old = self._members.get(name)
        if old is not None and not old.closed:
            raise ParameterError(f"{name!r} is already a member of this network")
        member = MemoryTransport(self, name)
        self._members[name] = member
        return member

    def set_down(self, name: str, down: bool = True) -> None:
        """Take ``name`` off the network (``down=True``) or bring it back."""
        if name not in self._members:
            raise ParameterError(f"{name!r} is not a member of this network")
        if down:
            self._down.add(name)
        else:
            self._down.discard(name)

    @property
    def held(self) -> int:
        """How many messages are held back (see :attr:`Fault.HOLD`)."""
        return len(self._held)

    async def release_held(self, order: Sequence[int] | None = None) -> int:
        """Deliver the held messages, in ``order`` (indices into them as held) or as held.

        Each waiting ``send`` then returns, or raises what it would have raised had the
        message not been held (a receiver down meanwhile: :class:`TransportError`). A send
        cancelled while waiting does not stop its message: it was already on the wire.

        Returns the number of messages released. Raises :class:`ParameterError` if ``order``
        is not a permutation of ``range(held)``.
        """
        held, self._held = self._held, []
        indices = list(range(len(held))) if order is None else list(order)
        if sorted(indices) != list(range(len(held))):
            self._held = held
            raise ParameterError("order must be a permutation of the held messages")
        for i in indices:
            item = held[i]
            try:
                await self._transmit(item.sender, item.receiver, item.data)
            except Exception as exc:  # handed to the waiting sender as is
                if not item.acked.done():
                    item.acked.set_exception(exc)
            else:
                if not item.acked.done():
                    item.acked.set_result(None)
        return len(indices)

    async def _send(self, sender: str, receiver: str, data: bytes) -> None:
        if receiver not in self._members:
            raise ParameterError(f"{receiver!r} is not a member of this network")
        if sender in self._down:
            raise TransportError(f"{sender!r} is down")
        fate = Fault.DELIVER if self.fault is None else self.fault(sender, receiver, data)
        if fate is Fault.DROP:
            raise TransportError(f"message to {receiver!r} lost")
        if fate is Fault.HOLD:
            acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._held.append(_Held(sender, receiver, data, acked))
            await acked
            return
        await self._transmit(sender, receiver, data)
        if fate is Fault.DUPLICATE:
            await self._transmit(sender, receiver, data)
        elif fate is Fault.LOSE_ACK:
            raise TransportError(f"acknowledgement from {receiver!r} lost")

    async def _transmit(self, sender: str, receiver: str, data: bytes) -> None:
        target = self._members[receiver]
        deliver = target._deliver
        if receiver in self._down or deliver is None:
            raise TransportError(f"{receiver!r} is down")
        self.delivered.append((sender, receiver, data))
        try:
            await deliver(data)
        except REJECTIONS as exc:
            raise RejectedError(f"{receiver!r} refused the message") from exc


class MemoryTransport(Transport):
    """One member of a :class:`MemoryNetwork` (made by :meth:`MemoryNetwork.transport`)."""

    def __init__(self, network: MemoryNetwork, name: str) -> None:
        self.network = network
        self.name = name
        #: True once :meth:`close` was called (the network may then replace this member).
        self.closed = False
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        """Receive from now on: each message is handed to ``deliver``.

        Raises :class:`TransportError` after :meth:`close` (a restarted node gets a new
        transport from :meth:`MemoryNetwork.transport`)."""
        if self.closed:
            raise TransportError(f"the transport of {self.name!r} is closed")
        self._deliver = deliver

    async def send(self, peer: str, data: bytes, *, session: bytes) -> None:
        """Hand ``data`` to ``peer``'s ``deliver`` (subject to the network's faults).

        Returns once it returned. Raises :class:`ParameterError` for an unknown peer,
        :class:`RejectedError` if ``deliver`` raised one of ``REJECTIONS``,
        :class:`TransportError` if either end is down, stopped, or the fault hook says so."""
        if self._deliver is None:
            raise TransportError(f"{self.name!r} is not started or is closed")
        await self.network._send(self.name, peer, bytes(data))

    async def close(self) -> None:
        """Stop receiving (sends to this member raise :class:`TransportError`); idempotent."""
        self.closed = True
        self._deliver = None
