"""Two-party random-VOLE multiplication for DKLs23 (Functionality 3.5, ``F_RVOLE`` with L = 2).

Alice (the *sender*, :class:`MulSender`) has ``L = 2`` scalars ``a_1, a_2``; Bob (the *receiver*,
:class:`MulReceiver`) gets a uniformly random ``b``; Alice outputs ``c_A[k]`` and Bob ``d_B[k]``
with ``c_A[k] + d_B[k] = a_k * b (mod q)``. The protocol is DKLs19's two-party multiplication
(eprint 2019/523, Protocol 1) with the modifications of DKLs23 (eprint 2023/765, p. 8 and §5.1):

- Bob's input is random, so his encoding step disappears: he samples the choice bits ``beta``
  uniformly and *defines* ``b = <g, beta>`` with the public gadget ``g = (2^0, .., 2^255, g_R)``,
  ``g_R`` being ``2s = 160`` random-oracle scalars fixed at setup;
- "forced reuse": Alice runs the steps for each ``a_k`` on one single batch of Bob's OT
  extension (``XI = 416`` OTs), one payload stream per correlation;
- two messages per multiplication (Bob -> Alice -> Bob), the coin tossing of the check replaced
  by Fiat-Shamir; Alice sends a hash of her check vector ``r`` instead of ``r``.

Two choices of ours, stated plainly:

- The check challenges hash Bob's message **and Alice's ``tau``**: they must be fixed only
  after Alice's correlations are (in DKLs19 they are sampled after the OT phase). A challenge
  known before ``tau`` would let Alice use inconsistent correlations and still pass, choosing
  ``alpha^_j = (u - chi~ alpha~_j) / chi^`` per OT. (The 0xCarbon code we read,
  ``multiplication.rs`` at commit 45210c7, derives them from Bob's message only.)
- One check for the ``L`` inputs: Alice's correlation in every OT is the vector
  ``(a~_1, .., a~_L, a^)`` with a single blinding scalar ``a^``, and with challenges
  ``chi_1, .., chi_L, chi^`` she sends ``u = sum_k chi_k a~_k + chi^ a^`` and (the hash of)
  ``r_j = sum_k chi_k z~_k,j + chi^ z^_j``; Bob checks
  ``sum_k chi_k z~_B,k,j + chi^ z^_B,j = beta_j u - r_j`` for every ``j``. This is DKLs19's
  check with ``(chi~, chi^)`` widened to the whole correlation vector: a correlation that is
  inconsistent in any stream at an OT with ``beta_j = 1`` fails except with probability ``1/q``
  (the challenges are random once ``tau`` is fixed), and ``u`` is the only value that depends on
  the ``a~_k``, hidden by the uniform ``a^``. Compared with repeating the check per input (``2L``
  streams, as 0xCarbon does) it saves a quarter of the OT payload and of the per-OT arithmetic,
  which is the bottleneck in Python.

Message flow of one multiplication (``session_id`` single use per pairwise setup):

=========================================  ==============================  ============
step                                       message                         size
=========================================  ==============================  ============
Bob: :meth:`MulReceiver.run_phase1`        OT-extension message (``ote``)  13338 bytes
Alice: :meth:`MulSender.run`               ``tau || H(r) || u || gamma``   40064 bytes
Bob: :meth:`MulReceiver.run_phase2`        --                              --
=========================================  ==============================  ============

Pairwise setup (run once per ordered pair (Alice, Bob) at key generation), three messages:

1. :func:`mul_setup_receiver_1` (Bob -> Alice, 97 bytes): VSOT public key ``B`` and the proof of
   knowledge of ``b`` (Bob is the *base-OT sender*: roles are reversed for OT extension);
2. :func:`mul_setup_sender_2` (Alice -> Bob, 4224 bytes): Alice checks the proof and sends
   ``A_i`` encoding her random ``Delta`` (128 bits);
3. :func:`mul_setup_receiver_3` (Bob -> Alice, 8192 bytes): Bob's pads become his seeds; he sends
   the VSOT opening; he is done (:class:`MulReceiver`);
4. :func:`mul_setup_sender_4` (Alice, no message): Alice checks the opening; her pads become her
   seeds (:class:`MulSender`).

See ``ot.py`` for the base OT (and its one stated deviation from VSOT) and ``ote.py`` for the OT
extension and the parameter choices. Step comments paraphrase the papers' steps.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from functools import lru_cache
from itertools import compress
from typing import Any, Final, NoReturn

import numpy as np

from tmpc.encoding import ct_equal, expect_len, lp
from tmpc.errors import DecodeError, FaultyParticipantError, ParameterError, StateError
from tmpc.group import SECP256K1
from tmpc.protocols.ecdsa.errors import MulCheckError
from tmpc.protocols.ecdsa.ot import (
    KAPPA,
    RandBytes,
    VsotReceiver,
    VsotSender,
    vsot_receiver_2,
    vsot_receiver_4,
    vsot_sender_1,
    vsot_sender_3,
)
from tmpc.protocols.ecdsa.ote import (
    FAILED_MUL,
    MIN_SESSION_ID_LEN,
    STAT_SEC,
    XI,
    OteExtendMsg,
    OteReceiver,
    OteReceiverBatch,
    OteSender,
    _ints_be32,
    cote_receive,
    cote_send,
)

__all__ = [
    "RECEIVER_MSG_LEN",
    "SENDER_MSG_LEN",
    "L",
    "MulReceiver",
    "MulReceiverKeep",
    "MulSender",
    "MulSetupReceiverState",
    "MulSetupSenderState",
    "mul_setup_receiver_1",
    "mul_setup_receiver_3",
    "mul_setup_sender_2",
    "mul_setup_sender_4",
    "run_pair_setup_local",
]

N: Final = SECP256K1.order

L: Final = 2
"""DKLs23 Functionality 3.5: the sender's input is a vector of ``L = 2`` scalars."""

_STREAMS: Final = L + 1  # correlations a~_1..a~_L, then the blinding a^
_ID_LEN: Final = 32
_GADGET_R: Final = 2 * STAT_SEC

RECEIVER_MSG_LEN: Final = OteExtendMsg.LEN
"""Bytes of Bob's message (:meth:`MulReceiver.run_phase1`)."""

SENDER_MSG_LEN: Final = 32 * XI * _STREAMS + 32 + 32 + 32 * L
"""Bytes of Alice's message (:meth:`MulSender.run`)."""

_SENDER_MAGIC: Final = b"tmpc-mul-sender/1"
_RECEIVER_MAGIC: Final = b"tmpc-mul-receiver/1"


def _no_copy(self: object, *args: Any) -> NoReturn:
    raise StateError(f"{type(self).__name__} is secret state: no pickle or copy")


def _id(x: int) -> bytes:
    return x.to_bytes(_ID_LEN, "big")


def _check_id(x: object, what: str) -> int:
    if not isinstance(x, int) or isinstance(x, bool) or not 0 < x < N:
        raise ParameterError(f"{what} must be an integer in [1, n-1]")
    return x


def _check_pair(self_id: int, peer_id: int) -> None:
    _check_id(self_id, "self_id")
    _check_id(peer_id, "peer_id")
    if self_id == peer_id:
        raise ParameterError("self_id and peer_id must differ")


def _check_sid(session_id: object) -> bytes:
    if not isinstance(session_id, bytes) or len(session_id) < MIN_SESSION_ID_LEN:
        raise ParameterError(f"session id must be bytes of at least {MIN_SESSION_ID_LEN}")
    return session_id


def _setup_context(session_id: bytes, alice: int, bob: int) -> bytes:
    """The base-OT context of the setup: session id and the ordered pair (Alice, Bob)."""
    return lp(b"tmpc/dkls23/mul-setup") + lp(session_id) + _id(alice) + _id(bob)


def _setup_id(context: bytes, B: bytes, A: bytes) -> bytes:
    """32-byte identifier of one pairwise setup: binds the context and the whole base-OT
    transcript (``B`` and every ``A_i``), so correlations of two setups never mix.

    ``B`` is not length-prefixed, so it must be exactly one 33-byte point encoding: then the
    boundary between ``B`` and ``A`` is fixed and no two transcripts hash alike (TSSHOCK).
    """
    B = expect_len(B, 33, "setup id: base-OT public key")
    return hashlib.sha256(lp(b"tmpc/dkls23/mul-setup-id") + lp(context) + B + A).digest()


@lru_cache(maxsize=512)
def _gadget_r(setup_id: bytes) -> tuple[int, ...]:
    """The random part ``g_R`` of the gadget (160 scalars), a random oracle of the setup id."""
    pre = lp(b"tmpc/dkls23/mul-gadget") + setup_id
    return tuple(
        int.from_bytes(hashlib.sha512(pre + j.to_bytes(2, "big")).digest(), "big") % N
        for j in range(_GADGET_R)
    )


def _gadget_dot(gadget_r: tuple[int, ...], z: list[int]) -> int:
    """``<g, z> mod q`` with ``g = (2^0, .., 2^255, g_R)``."""
    low = sum(map(int.__lshift__, z[:256], range(256)))
    return (low + sum(map(int.__mul__, gadget_r, z[256:]))) % N


def _rand_scalars(rand: RandBytes, count: int) -> list[int]:
    raw = expect_len(rand(64 * count), 64 * count, "random bytes")
    return [int.from_bytes(raw[64 * i : 64 * i + 64], "big") % N for i in range(count)]


def _challenges(sid32: bytes, bob_msg: bytes, tau: bytes) -> list[int]:
    """``chi_1..chi_L, chi^`` (in the order of the streams), by Fiat-Shamir over the session,
    Bob's message and ``tau``: they are fixed only after Alice's correlations are."""
    pre = (
        lp(b"tmpc/dkls23/mul-chi")
        + sid32
        + hashlib.sha256(bob_msg).digest()
        + hashlib.sha256(tau).digest()
    )
    return [
        int.from_bytes(hashlib.sha512(pre + bytes([i])).digest(), "big") % N
        for i in range(_STREAMS)
    ]


def _check_vector(chi: list[int], z: list[int], beta: list[int] | None = None, u: int = 0) -> bytes:
    """``(sum_s chi_s z[s*XI + j] + beta_j u) mod q`` for every ``j`` (``beta`` absent: zero),
    as canonical 32-byte encodings: DKLs19's check vector ``r`` over all streams at once."""
    c0, c1, c2 = chi
    s0, s1, s2 = (z[i * XI : (i + 1) * XI] for i in range(_STREAMS))
    if beta is None:
        vals = [(c0 * p + c1 * q + c2 * r) % N for p, q, r in zip(s0, s1, s2, strict=True)]
    else:
        bu = [u if w else 0 for w in beta]
        vals = [
            (c0 * p + c1 * q + c2 * r + x) % N for p, q, r, x in zip(s0, s1, s2, bu, strict=True)
        ]
    return b"".join([v.to_bytes(32, "big") for v in vals])


def _r_hash(sid32: bytes, r: bytes) -> bytes:
    # sid32 is not length-prefixed: exactly 32 bytes keeps the boundary to r fixed (TSSHOCK)
    sid32 = expect_len(sid32, 32, "multiplication session digest")
    return hashlib.sha256(lp(b"tmpc/dkls23/mul-r") + sid32 + r).digest()


# --------------------------------------------------------------------------------------------
# Long-lived per-pair objects
# --------------------------------------------------------------------------------------------


class _PairSide:
    """What both long-lived sides of a pair share: ids, setup id, no copies."""

    __slots__ = ("_ote", "self_id")
    __reduce_ex__ = _no_copy
    __copy__ = _no_copy
    __deepcopy__ = _no_copy

    def __init__(self, self_id: int, ote: OteSender | OteReceiver) -> None:
        _check_pair(self_id, ote.peer_id)
        self.self_id = self_id
        self._ote: OteSender | OteReceiver = ote

    @property
    def peer_id(self) -> int:
        """The other party's identifier."""
        return self._ote.peer_id

    @property
    def setup_id(self) -> bytes:
        """32-byte identifier of the pairwise setup (equal on both sides)."""
        return self._ote.setup_id

    def record_session(self, session_id: bytes) -> None:
        """Record ``session_id`` as used with this setup without running a multiplication.

        For a driver that runs the multiplication on a private copy of this object (the
        presigning machines of :mod:`tmpc.protocols.ecdsa.machine` do): recorded here as well,
        the session id is refused by this object and by every copy made from it afterwards,
        as if it had run here. Raises :class:`~tmpc.errors.StateError` if it was used (or
        recorded) before, :class:`~tmpc.errors.ParameterError` for a short session id.
        """
        self._ote.consume(session_id)


class MulSender(_PairSide):
    """Alice's side of the multiplication towards one peer (Bob); long-lived and secret.

    Holds the OT-extension sender state (``Delta`` and one seed per base OT), the setup id (which
    fixes the gadget) and the record of used session ids. Serialise with :meth:`to_bytes` for
    encrypted storage; **must not** exist as two live copies (each would keep its own record of
    used session ids), so pickling and copying raise :class:`~tmpc.errors.StateError`.
    """

    __slots__ = ()

    def __init__(self, self_id: int, ote: OteSender) -> None:
        super().__init__(self_id, ote)
        self._ote: OteSender = ote

    def __repr__(self) -> str:
        return f"<MulSender {self.self_id}->{self.peer_id} (secret)>"

    def private_copy(self) -> MulSender:
        """A second live copy, as ``from_bytes(to_bytes())`` would give, without the round trip
        through bytes. Only for a machine that runs a session on its own copy, whose driver
        **must** record every session id the copy runs elsewhere (the single-use ledger, or this
        object with :meth:`record_session`): the copies keep separate records (see the class).
        """
        return MulSender(self.self_id, self._ote.private_copy())

    def run(
        self,
        session_id: bytes,
        inputs: Sequence[int],
        msg: bytes,
        *,
        rand: RandBytes | None = None,
    ) -> tuple[list[int], bytes]:
        """Alice's only step: answer Bob's round message.

        Args:
            session_id: the session (at least 16 bytes; equal on both sides); **single use**
                with this setup.
            inputs: exactly ``L`` scalars ``a_1..a_L`` in ``[0, q)``.
            msg: Bob's message from :meth:`MulReceiver.run_phase1` (13338 bytes).
            rand: randomness source (``secrets.token_bytes`` if None).

        Returns:
            ``(c_A, reply)``: Alice's ``L`` output shares and her message to Bob (40064 bytes).

        Raises:
            ParameterError: bad inputs or session id.
            PairwiseCheckError: an earlier check with Bob failed (pair refused).
            StateError: ``session_id`` was used before with this setup.
            FaultyParticipantError: ``msg`` is malformed (names Bob).
            OTCheckError: Bob's OT-extension consistency check failed (names Bob; terminal).
        """
        if isinstance(inputs, bytes | str) or len(inputs) != L:
            raise ParameterError(f"the multiplication takes exactly {L} inputs")
        if any(not isinstance(x, int) or isinstance(x, bool) or not 0 <= x < N for x in inputs):
            raise ParameterError("multiplication inputs must be scalars in [0, q)")
        a = list(inputs)
        _check_sid(session_id)
        if not isinstance(msg, bytes | bytearray):
            raise ParameterError("the received message must be bytes")
        msg = bytes(msg)
        rand = rand or secrets.token_bytes
        batch = self._ote.extend(session_id, msg)
        sid32 = batch.sid32
        # Protocol 1, step 2 ("Randomized multiplication"): "Alice samples the pad a~ <- Z_q and
        # the check value a^ <- Z_q"; one pad per input, one check value for all (see above),
        # on one batch of Bob's OTs (forced reuse)
        corr = _rand_scalars(rand, _STREAMS)
        a_tilde = corr[:L]
        # Protocol 1, step 2 (cont.): "Alice and Bob run F_COTe with Alice's correlation
        # (a~, a^) in every OT and Bob's choice bits beta"
        z_a, tau = cote_send(batch, corr)
        z = _ints_be32(z_a)  # stream s of OT j at s*XI + j: z~_1, .., z~_L, z^
        # Protocol 1, step 3 (Fiat-Shamir): "sample chi~, chi^" -- after tau is fixed
        chi = _challenges(sid32, msg, tau)
        # Protocol 1, step 4: "Alice computes r_j = chi~ z~_A,j + chi^ z^_A,j for every j and
        # u = chi~ a~ + chi^ a^"; only H(r) is sent (DKLs23 §5.1)
        r_vec = _check_vector(chi, z)
        u = sum(x * y for x, y in zip(chi, corr, strict=True)) % N
        # Protocol 1, step 5 ("Input and adjustment"): "Alice sends gamma_A = a - a~"
        gamma = [(a[k] - a_tilde[k]) % N for k in range(L)]
        # Protocol 1, step 6: "Alice outputs c_A = <g, z~_A>"
        g_r = _gadget_r(self.setup_id)
        c = [_gadget_dot(g_r, z[k * XI : (k + 1) * XI]) for k in range(L)]
        reply = (
            tau
            + _r_hash(sid32, r_vec)
            + u.to_bytes(32, "big")
            + b"".join(x.to_bytes(32, "big") for x in gamma)
        )
        corr.clear()
        return c, reply

    def to_bytes(self) -> bytes:
        """Serialise for encrypted storage: ``magic || self_id (32) || OT-extension state``
        (about 4.2 KB plus 32 bytes per used session)."""
        return _SENDER_MAGIC + _id(self.self_id) + self._ote.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> MulSender:
        """Strict decode of :meth:`to_bytes`; raises :class:`~tmpc.errors.DecodeError`."""
        ote, self_id = _decode_wrapper(data, _SENDER_MAGIC, OteSender.from_bytes)
        return cls(self_id, ote)


class MulReceiverKeep:
    """Bob's secret state between :meth:`MulReceiver.run_phase1` and
    :meth:`MulReceiver.run_phase2`: single use, never printed, pickled or copied."""

    __slots__ = ("_b", "_batch", "_bob_msg", "_owner", "_session_id", "used")
    __reduce_ex__ = _no_copy
    __copy__ = _no_copy
    __deepcopy__ = _no_copy

    def __init__(
        self, owner: bytes, session_id: bytes, b: int, batch: OteReceiverBatch, bob_msg: bytes
    ) -> None:
        self._owner, self._session_id, self._b = owner, session_id, b
        self._batch, self._bob_msg, self.used = batch, bob_msg, False

    def __repr__(self) -> str:
        return "<MulReceiverKeep (secret)>"


class MulReceiver(_PairSide):
    """Bob's side of the multiplication towards one peer (Alice); long-lived and secret.

    Holds both seeds of every base OT, the setup id (which fixes the gadget) and the record of
    used session ids. Serialise with :meth:`to_bytes`; **must not** exist as two live copies, so
    pickling and copying raise :class:`~tmpc.errors.StateError`.
    """

    __slots__ = ()

    def __init__(self, self_id: int, ote: OteReceiver) -> None:
        super().__init__(self_id, ote)
        self._ote: OteReceiver = ote

    def __repr__(self) -> str:
        return f"<MulReceiver {self.peer_id}->{self.self_id} (secret)>"

    def private_copy(self) -> MulReceiver:
        """A second live copy, as ``from_bytes(to_bytes())`` would give (see
        :meth:`MulSender.private_copy` for when it may be used)."""
        return MulReceiver(self.self_id, self._ote.private_copy())

    def run_phase1(
        self, session_id: bytes, *, rand: RandBytes | None = None
    ) -> tuple[MulReceiverKeep, int, bytes]:
        """Bob's first step: sample his random input ``b`` and start the OT extension.

        Args:
            session_id: the session (at least 16 bytes); **single use** with this setup.
            rand: randomness source (``secrets.token_bytes`` if None).

        Returns:
            ``(keep, b, msg)``: the secret keep-state for :meth:`run_phase2`, Bob's random
            input ``b`` and his message to Alice (13338 bytes).

        Raises:
            ParameterError: bad session id.
            PairwiseCheckError: an earlier check with Alice failed (pair refused).
            StateError: ``session_id`` was used before with this setup.
        """
        _check_sid(session_id)
        rand = rand or secrets.token_bytes
        # Protocol 1, step 1 with DKLs23 §5.1 (random input): "Bob samples beta <- {0,1}^xi and
        # sets b = <g, beta>"
        packed = np.frombuffer(expect_len(rand(XI // 8), XI // 8, "random bytes"), np.uint8)
        beta = np.unpackbits(packed, bitorder="little")
        g_r = _gadget_r(self.setup_id)
        b = (int.from_bytes(packed[:32].tobytes(), "little") + sum(compress(g_r, beta[256:]))) % N
        # Protocol 1, step 2: Bob's part of F_COTe (the OT-extension message)
        batch, ote_msg = self._ote.extend(session_id, beta, rand=rand)
        msg = ote_msg.to_bytes()
        return MulReceiverKeep(self.setup_id, session_id, b, batch, msg), b, msg

    def run_phase2(self, session_id: bytes, keep: MulReceiverKeep, msg: bytes) -> list[int]:
        """Bob's second step: finish the OTs, run the multiplication check, output ``d_B``.

        Args:
            session_id: as given to :meth:`run_phase1`.
            keep: the keep-state of :meth:`run_phase1` for this session (consumed).
            msg: Alice's reply from :meth:`MulSender.run` (40064 bytes).

        Returns:
            Bob's ``L`` output shares ``d_B`` with ``c_A[k] + d_B[k] = a_k * b (mod q)``.

        Raises:
            StateError: ``keep`` was used before or belongs to another session or setup.
            PairwiseCheckError: an earlier check with Alice failed (pair refused).
            FaultyParticipantError: ``msg`` is malformed (names Alice).
            MulCheckError: Alice's correlations are inconsistent (names Alice; terminal).
        """
        if not isinstance(keep, MulReceiverKeep):
            raise ParameterError("keep must be a MulReceiverKeep")
        if keep.used:
            raise StateError("multiplication keep-state used twice")
        if keep._owner != self.setup_id or keep._session_id != session_id:
            raise StateError("keep-state belongs to another session or pairwise setup")
        keep.used = True
        self._ote.guard()
        peer = self.peer_id
        if not isinstance(msg, bytes | bytearray) or len(msg) != SENDER_MSG_LEN:
            got = len(msg) if isinstance(msg, bytes | bytearray) else type(msg).__name__
            raise FaultyParticipantError(
                f"party {peer} sent a multiplication reply of wrong length ({got})", peer
            )
        msg = bytes(msg)
        t_end = 32 * XI * _STREAMS
        tau, r_hash = msg[:t_end], msg[t_end : t_end + 32]
        tail = msg[t_end + 32 :]
        scalars = [int.from_bytes(tail[32 * i : 32 * i + 32], "big") for i in range(1 + L)]
        if any(x >= N for x in scalars):
            raise FaultyParticipantError(f"party {peer} sent a scalar not below q", peer)
        u, gamma = scalars[0], scalars[1:]
        batch, b = keep._batch, keep._b
        try:
            z = cote_receive(batch, tau, _STREAMS)
        except DecodeError as exc:
            raise FaultyParticipantError(
                f"party {peer} sent a malformed multiplication reply: {exc}", peer
            ) from None
        chi = _challenges(batch.sid32, keep._bob_msg, tau)
        # Protocol 1, step 5 (check): "Bob aborts unless, for every j,
        # chi~ z~_B,j + chi^ z^_B,j = beta_j u - r_j"; he recomputes r and compares hashes
        r_vec = _check_vector([N - x for x in chi], z, batch.choices.tolist(), u)
        if not ct_equal(_r_hash(batch.sid32, r_vec), r_hash):
            self._ote.failed = FAILED_MUL
            raise MulCheckError(f"party {peer} failed the multiplication check", peer)
        # Protocol 1, step 6: "Bob outputs d_B = <g, z~_B> + b * gamma_A"
        g_r = _gadget_r(self.setup_id)
        return [(_gadget_dot(g_r, z[k * XI : (k + 1) * XI]) + b * gamma[k]) % N for k in range(L)]

    def to_bytes(self) -> bytes:
        """Serialise for encrypted storage: ``magic || self_id (32) || OT-extension state``
        (about 8.3 KB plus 32 bytes per used session)."""
        return _RECEIVER_MAGIC + _id(self.self_id) + self._ote.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> MulReceiver:
        """Strict decode of :meth:`to_bytes`; raises :class:`~tmpc.errors.DecodeError`."""
        ote, self_id = _decode_wrapper(data, _RECEIVER_MAGIC, OteReceiver.from_bytes)
        return cls(self_id, ote)


def _decode_wrapper(data: bytes, magic: bytes, inner: Any) -> tuple[Any, int]:
    if not isinstance(data, bytes | bytearray):
        raise DecodeError("multiplication state must be bytes")
    data = bytes(data)
    head = len(magic) + _ID_LEN
    if len(data) < head or data[: len(magic)] != magic:
        raise DecodeError("not a serialised multiplication state of this kind")
    self_id = int.from_bytes(data[len(magic) : head], "big")
    if not 0 < self_id < N:
        raise DecodeError("multiplication state: bad identifier")
    ote = inner(data[head:])
    if ote.peer_id == self_id:
        raise DecodeError("multiplication state: identifiers must differ")
    return ote, self_id


# --------------------------------------------------------------------------------------------
# Pairwise setup
# --------------------------------------------------------------------------------------------


class MulSetupReceiverState:
    """Bob's secret setup state between :func:`mul_setup_receiver_1` and
    :func:`mul_setup_receiver_3` (single use; never printed, pickled or copied)."""

    __slots__ = ("_vsot", "context", "self_id", "used")
    __reduce_ex__ = _no_copy
    __copy__ = _no_copy
    __deepcopy__ = _no_copy

    def __init__(self, self_id: int, context: bytes, vsot: VsotSender) -> None:
        self.self_id, self.context, self._vsot, self.used = self_id, context, vsot, False

    def __repr__(self) -> str:
        return f"<MulSetupReceiverState of {self.self_id} (secret)>"


class MulSetupSenderState:
    """Alice's secret setup state between :func:`mul_setup_sender_2` and
    :func:`mul_setup_sender_4` (single use; never printed, pickled or copied)."""

    __slots__ = ("_delta", "_vsot", "peer_id", "self_id", "setup_id", "used")
    __reduce_ex__ = _no_copy
    __copy__ = _no_copy
    __deepcopy__ = _no_copy

    def __init__(
        self, self_id: int, peer_id: int, delta: bytes, vsot: VsotReceiver, setup_id: bytes
    ) -> None:
        self.self_id, self.peer_id, self._delta = self_id, peer_id, delta
        self._vsot, self.setup_id, self.used = vsot, setup_id, False

    def __repr__(self) -> str:
        return f"<MulSetupSenderState of {self.self_id} (secret)>"


def mul_setup_receiver_1(
    session_id: bytes, *, self_id: int, peer_id: int, rand: RandBytes | None = None
) -> tuple[MulSetupReceiverState, bytes]:
    """Setup message 1 (Bob -> Alice): Bob starts the base OTs as their *sender*.

    Args:
        session_id: fresh and agreed (at least 16 bytes), equal on both sides; **must not** be
            reused for another setup.
        self_id: Bob's identifier.
        peer_id: Alice's identifier.
        rand: randomness source (``secrets.token_bytes`` if None).

    Returns:
        Bob's secret state and the message (97 bytes).

    Raises:
        ParameterError: bad identifiers or session id.
    """
    _check_pair(self_id, peer_id)
    context = _setup_context(_check_sid(session_id), peer_id, self_id)
    # VSOT "Public key" (see ot.py): B = b*G and the proof of knowledge of b
    vsot, msg1 = vsot_sender_1(context, receiver_id=peer_id, rand=rand)
    return MulSetupReceiverState(self_id, context, vsot), msg1.to_bytes()


def mul_setup_sender_2(
    session_id: bytes,
    msg1: bytes,
    *,
    self_id: int,
    peer_id: int,
    rand: RandBytes | None = None,
) -> tuple[MulSetupSenderState, bytes]:
    """Setup message 2 (Alice -> Bob): Alice checks Bob's proof and encodes her ``Delta``.

    Args:
        session_id: as given to Bob's :func:`mul_setup_receiver_1`.
        msg1: Bob's message 1 (97 bytes).
        self_id: Alice's identifier.
        peer_id: Bob's identifier.
        rand: randomness source (``secrets.token_bytes`` if None).

    Returns:
        Alice's secret state and the message (4224 bytes).

    Raises:
        ParameterError: bad identifiers or session id.
        FaultyParticipantError: ``msg1`` is malformed (names Bob).
        OTCheckError: Bob's proof of knowledge is invalid (names Bob; terminal).
    """
    _check_pair(self_id, peer_id)
    context = _setup_context(_check_sid(session_id), self_id, peer_id)
    rand = rand or secrets.token_bytes
    if not isinstance(msg1, bytes | bytearray):
        raise ParameterError("the received message must be bytes")
    # KOS15 "Initialize": the OT-extension sender's random Delta is its base-OT choice vector
    delta = expect_len(rand(KAPPA // 8), KAPPA // 8, "random bytes")
    choices = np.unpackbits(np.frombuffer(delta, np.uint8), bitorder="little").tolist()
    vsot, msg2 = vsot_receiver_2(context, bytes(msg1), choices, sender_id=peer_id, rand=rand)
    raw2 = msg2.to_bytes()
    setup_id = _setup_id(context, bytes(msg1[:33]), raw2)
    return MulSetupSenderState(self_id, peer_id, delta, vsot, setup_id), raw2


def mul_setup_receiver_3(state: MulSetupReceiverState, msg2: bytes) -> tuple[MulReceiver, bytes]:
    """Setup message 3 (Bob -> Alice): Bob's pads become his seeds; he sends the VSOT opening.

    Args:
        state: Bob's state of :func:`mul_setup_receiver_1` (consumed).
        msg2: Alice's message 2 (4224 bytes).

    Returns:
        Bob's long-lived :class:`MulReceiver` and the message (8192 bytes).

    Raises:
        StateError: the state was used before.
        FaultyParticipantError: ``msg2`` is malformed (names Alice).
    """
    if not isinstance(state, MulSetupReceiverState):
        raise ParameterError("state must be a MulSetupReceiverState")
    if state.used:
        raise StateError("multiplication setup state used twice")
    state.used = True
    vsot = state._vsot
    if not isinstance(msg2, bytes | bytearray):
        raise ParameterError("the received message must be bytes")
    msg2 = bytes(msg2)
    rho0, rho1, opening = vsot_sender_3(vsot, msg2)
    setup_id = _setup_id(state.context, vsot.B.encode(), msg2)
    ote = OteReceiver(setup_id, vsot.receiver_id, rho0, rho1)
    return MulReceiver(state.self_id, ote), opening.to_bytes()


def mul_setup_sender_4(state: MulSetupSenderState, msg3: bytes) -> MulSender:
    """Setup, last step (Alice, no message): check Bob's opening; her pads become her seeds.

    Args:
        state: Alice's state of :func:`mul_setup_sender_2` (consumed).
        msg3: Bob's message 3 (8192 bytes).

    Returns:
        Alice's long-lived :class:`MulSender`.

    Raises:
        StateError: the state was used before.
        FaultyParticipantError: ``msg3`` is malformed (names Bob).
        OTCheckError: the opening does not match Alice's pads (names Bob; terminal).
    """
    if not isinstance(state, MulSetupSenderState):
        raise ParameterError("state must be a MulSetupSenderState")
    if state.used:
        raise StateError("multiplication setup state used twice")
    state.used = True
    if not isinstance(msg3, bytes | bytearray):
        raise ParameterError("the received message must be bytes")
    pads = vsot_receiver_4(state._vsot, bytes(msg3))
    ote = OteSender(state.setup_id, state.peer_id, state._delta, pads)
    state._delta = b""
    return MulSender(state.self_id, ote)


def run_pair_setup_local(
    session_id: bytes,
    *,
    sender_id: int = 1,
    receiver_id: int = 2,
    rand: RandBytes | None = None,
) -> tuple[MulSender, MulReceiver]:
    """Run the whole pairwise setup for one ordered pair in one process.

    Args:
        session_id: fresh (at least 16 bytes); **must not** be reused.
        sender_id: Alice's identifier.
        receiver_id: Bob's identifier.
        rand: randomness source for both sides (``secrets.token_bytes`` if None).

    Returns:
        ``(MulSender of Alice, MulReceiver of Bob)``.
    """
    bob, m1 = mul_setup_receiver_1(session_id, self_id=receiver_id, peer_id=sender_id, rand=rand)
    alice, m2 = mul_setup_sender_2(
        session_id, m1, self_id=sender_id, peer_id=receiver_id, rand=rand
    )
    receiver, m3 = mul_setup_receiver_3(bob, m2)
    return mul_setup_sender_4(alice, m3), receiver
