"""OT extension for DKLs23: KOS15 with the corrected consistency check, and correlated OT over Z_q.

Two layers, both over the base OTs of :mod:`tmpc.protocols.ecdsa.ot` (roles reversed: the
OT-extension *receiver* is the base-OT sender and holds both seeds ``k^0_i, k^1_i``; the
OT-extension *sender* is the base-OT receiver and holds ``Delta`` and ``k^{Delta_i}_i``):

1. **Random OT extension** -- Keller, Orsini, Scholl, "Actively Secure OT Extension with Optimal
   Overhead" (KOS15, eprint 2015/546), protocol ``ROT^{kappa,l}`` of Fig. 10 in its corrected
   version, exactly in the shape 0xCarbon/DKLs23 implements it
   (``dkls23-core/src/utilities/ot/extension.rs``): the receiver extends its ``l = XI`` choice
   bits by ``kappa_c + s = 208`` random bits (``l' = 624``), sends ``u_i = G(k^0_i) xor
   G(k^1_i) xor x``, and proves consistency in ``GF(2^208)``: for challenges ``chi_1, chi_2``
   it sends ``x~ = chi_1 x[0] + chi_2 x[1] + x[2]`` and ``t~_i`` likewise for every column
   ``t_i = G(k^0_i)``; the sender checks ``q~_i == t~_i + Delta_i x~`` for every ``i``. The
   challenges are derived by Fiat-Shamir from the session and ``u`` (as DKLs23 suggests), so the
   extension costs one message from the receiver. A receiver whose choice bits differ between
   the columns the sender reads (``Delta_i = 1``) fails the check unless it guesses ``Delta_i``
   for every column it made inconsistent: each such guess is one bit of ``Delta`` at the price
   of failing with probability 1/2 -- the selective failure the KOS analysis accounts for, and
   the reason a failure is terminal for the pair
   (:class:`~tmpc.protocols.ecdsa.errors.OTCheckError`).
2. **Correlated OT over Z_q with width** -- the "Transfer" phase of DKLs18 (eprint 2018/499,
   Protocol 9), run once per stream on one batch of the receiver's OTs ("forced reuse",
   DKLs23 p. 8): row ``j`` is hashed to ``v^0_j = H(j, q_j)`` and ``v^1_j = H(j, q_j xor Delta)``
   (the receiver gets ``H(j, t_j) = v^{beta_j}_j``), each hash yielding one scalar per stream;
   the sender sends ``tau_j = v^1_j - v^0_j + alpha`` and outputs ``z_A = v^0``; the receiver
   outputs ``z_B = beta_j tau_j - v^{beta_j}_j``, so ``z_A + z_B = beta_j alpha``.

Parameters (and why):

- ``KAPPA = 128`` base OTs. KOS15 with ``kappa`` base OTs is ``kappa``-bit secure against a
  corrupt receiver (it must guess ``Delta``); secp256k1 ECDSA itself offers 128-bit security,
  and the consistency check works in ``GF(2^(128+80))`` exactly as 0xCarbon's
  ``OT_SECURITY = 128 + 80``. 0xCarbon runs 256 base OTs because it reuses DKLs19's
  ``kappa = |q| = 256`` (the gadget length) as the base-OT count; at the 128-bit level that
  doubles the base-OT cost (the pairwise setup: 20 ordered pairs for 3-of-5) for no security
  gain, so we use 128 and keep the gadget length ``|q| = 256`` separate.
- ``STAT_SEC = 80`` statistical security (DKLs19, DKLs23 and 0xCarbon all use ``s = 80``).
- ``XI = 256 + 2*80 = 416`` extended OTs per session: DKLs19's ``xi = kappa + 2s`` with
  ``kappa = |q|``; ``XI`` is a multiple of ``208`` (two check blocks) as in 0xCarbon.

PRG: ``G(k_i) = SHAKE256(tag || sid || i || k_i)`` where ``sid`` is a 32-byte digest of the
pairwise setup id and the session id, so one setup yields fresh, independent correlations for
every session id; each session id is accepted **once** per setup (a second use raises
:class:`~tmpc.errors.StateError`), since two extensions under one session id would hand the
receiver both hashes of some row. Bit-matrix work is NumPy (packbits/unpackbits, vectorised XOR,
transposition; ``GF(2^208)`` products by nibble tables, "method of four Russians"); arithmetic
mod ``q`` on whole vectors is done on integers packed in lanes of one Python integer
(:class:`Lanes`).
Step comments paraphrase the papers' steps.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Final, NoReturn

import numpy as np
import numpy.typing as npt

from tmpc.encoding import ct_equal, expect_len, lp
from tmpc.errors import DecodeError, FaultyParticipantError, ParameterError, StateError
from tmpc.group import SECP256K1
from tmpc.protocols.ecdsa.errors import MulCheckError, OTCheckError, PairwiseCheckError
from tmpc.protocols.ecdsa.ot import KAPPA, PAD_LEN, RandBytes

__all__ = [
    "CHECK_BITS",
    "ELL_PRIME",
    "FAILED_MUL",
    "FAILED_NONE",
    "FAILED_OT",
    "KAPPA",
    "MIN_SESSION_ID_LEN",
    "STAT_SEC",
    "XI",
    "Lanes",
    "OteExtendMsg",
    "OteReceiver",
    "OteReceiverBatch",
    "OteSender",
    "OteSenderBatch",
    "cote_receive",
    "cote_send",
    "gf_mul",
    "gf_mul_matrix",
]

N: Final = SECP256K1.order
STAT_SEC: Final = 80
XI: Final = 256 + 2 * STAT_SEC
CHECK_BITS: Final = 128 + STAT_SEC
ELL_PRIME: Final = XI + CHECK_BITS
MIN_SESSION_ID_LEN: Final = 16

_ROW = KAPPA // 8  # bytes of one extended-OT row (one bit per base OT)
_COL = ELL_PRIME // 8  # bytes of one column (one bit per extended OT)
_CHUNK = CHECK_BITS // 8  # bytes of one GF(2^208) element
_BLOCKS = XI // CHECK_BITS  # check blocks besides the random one (m = 2)
assert XI % CHECK_BITS == 0 and KAPPA % 8 == 0 and ELL_PRIME % 8 == 0

Bits = npt.NDArray[np.uint8]

FAILED_NONE: Final = 0
FAILED_OT: Final = 1
FAILED_MUL: Final = 2


def _no_copy(self: object, *args: Any) -> NoReturn:
    raise StateError(f"{type(self).__name__} is secret state: no pickle or copy")


# --------------------------------------------------------------------------------------------
# GF(2^208): f(X) = X^208 + X^9 + X^3 + X + 1 (irreducible; Hankerson-Menezes-Vanstone Table A.1,
# as 0xCarbon). Elements are 26-byte little-endian bit strings: bit i is the coefficient of X^i.
# --------------------------------------------------------------------------------------------

_SW = 424  # lane width for the spread below: a lane holds chi * X^b, degree < 415
_SPREAD: Final = ((1 << ((_SW + 1) * CHECK_BITS)) - 1) // ((1 << (_SW + 1)) - 1)
_SONES: Final = ((1 << (_SW * CHECK_BITS)) - 1) // ((1 << _SW) - 1)
_S_LO: Final = _SONES * ((1 << CHECK_BITS) - 1)
_S_HI: Final = _SONES * ((1 << (_SW - CHECK_BITS)) - 1)


def gf_mul_matrix(chi: int) -> Bits:
    """The GF(2)-matrix of multiplication by ``chi`` in ``GF(2^208)``: a (208, 26) array whose
    row ``b`` is the 26-byte element ``chi * X^b mod f``, so that ``chi * y`` is the XOR of the
    rows ``b`` for the set bits ``b`` of ``y``.

    Computed without bit loops: ``chi * SPREAD`` places ``chi << b`` in lane ``b`` (the terms do
    not overlap, so the integer product is the carry-less one); two lane-wise folds of the high
    part through ``X^208 = X^9 + X^3 + X + 1`` reduce every lane.
    """
    if not 0 <= chi < 1 << CHECK_BITS:
        raise ParameterError("a GF(2^208) element has 208 bits")
    x = chi * _SPREAD
    for _ in range(2):
        hi = (x >> CHECK_BITS) & _S_HI
        x = (x & _S_LO) ^ hi ^ (hi << 1) ^ (hi << 3) ^ (hi << 9)
    lanes = np.frombuffer(x.to_bytes(CHECK_BITS * _SW // 8, "little"), np.uint8)
    return np.ascontiguousarray(lanes.reshape(CHECK_BITS, _SW // 8)[:, :_CHUNK])


def gf_mul(x: int, y: int) -> int:
    """``x * y`` in ``GF(2^208)`` (elements as integers: bit ``i`` is the coefficient of
    ``X^i``), through :func:`gf_mul_matrix`."""
    if not 0 <= y < 1 << CHECK_BITS:
        raise ParameterError("a GF(2^208) element has 208 bits")
    rows = gf_mul_matrix(x)
    sel = np.unpackbits(np.frombuffer(y.to_bytes(_CHUNK, "little"), np.uint8), bitorder="little")
    acc = np.zeros(_CHUNK, np.uint8)
    if sel.any():
        acc = np.bitwise_xor.reduce(rows[sel.astype(bool)], axis=0)
    return int.from_bytes(acc.tobytes(), "little")


_NIBBLES: Final = 2 * _BLOCKS * _CHUNK  # 104 input nibbles (two field elements) per checked row
_NIB_OFFSET: Final = (np.arange(_NIBBLES, dtype=np.intp) * 16)[:, None]
_Words = npt.NDArray[np.uint64]


def _check_tables(rows: Bits) -> _Words:
    """Four-Russians tables (on nibbles) for the stacked matrices (``_BLOCKS * 208`` rows of
    26 bytes): entry ``16p + v`` is the XOR of the rows ``4p + t`` for the set bits ``t`` of the
    nibble ``v`` (as four 64-bit words), so a product costs one lookup per input nibble."""
    padded = np.zeros((rows.shape[0], 32), np.uint8)
    padded[:, :_CHUNK] = rows
    r = padded.view(np.uint64).reshape(_NIBBLES, 4, 4)
    tables = np.zeros((_NIBBLES, 16, 4), np.uint64)
    for t in range(4):  # doubling: entries [2^t, 2^(t+1)) from entries [0, 2^t)
        n = 1 << t
        np.bitwise_xor(tables[:, :n], r[:, t][:, None, :], out=tables[:, n : 2 * n])
    return tables.reshape(_NIBBLES * 16, 4)


def _check_values(blocks: Bits, tables: _Words) -> Bits:
    """For each row ``c`` (``ELL_PRIME`` bits as 78 bytes): ``chi_1 c[0] + chi_2 c[1] + c[2]``
    in ``GF(2^208)`` (26 bytes)."""
    rows = blocks.shape[0]
    data = blocks[:, : _NIBBLES // 2].T  # nibble-major, so the XOR runs over contiguous blocks
    nib = np.empty((_NIBBLES, rows), np.intp)
    nib[0::2] = data & 15
    nib[1::2] = data >> 4
    nib += _NIB_OFFSET
    looked_up = np.take(tables, nib.ravel(), axis=0).reshape(_NIBBLES, rows, 4)
    acc: _Words = np.bitwise_xor.reduce(looked_up, axis=0)
    return acc.view(np.uint8).reshape(rows, 32)[:, :_CHUNK] ^ blocks[:, -_CHUNK:]


def _check_matrix(sid32: bytes, u: bytes) -> _Words:
    # Consistency check, step 1 (Fiat-Shamir, as DKLs23 suggests): "sample chi_1..chi_m";
    # chi = H(session, u) once u is fixed. sid32 is not length-prefixed: exactly 32 bytes
    # keeps the boundary to u fixed, so no other (session, u) split hashes alike (TSSHOCK).
    sid32 = expect_len(sid32, 32, "OT-extension session digest")
    d = hashlib.shake_256(lp(b"tmpc/dkls23/ote-chi") + sid32 + u).digest(_BLOCKS * _CHUNK)
    mats = [
        gf_mul_matrix(int.from_bytes(d[k * _CHUNK : (k + 1) * _CHUNK], "little"))
        for k in range(_BLOCKS)
    ]
    return _check_tables(np.vstack(mats))


def _prg(sid32: bytes, seeds: Sequence[bytes]) -> Bits:
    """Extend step 2: ``G(k_i)`` for each seed, ``ELL_PRIME`` bits each -> (len, 78) array."""
    prefix = lp(b"tmpc/dkls23/ote-prg") + sid32
    sh = hashlib.shake_256
    out = b"".join(
        [sh(prefix + i.to_bytes(2, "big") + k).digest(_COL) for i, k in enumerate(seeds)]
    )
    return np.frombuffer(out, np.uint8).reshape(len(seeds), _COL)


def _transpose_rows(cols: Bits) -> Bits:
    """Columns (KAPPA, 78 bytes) -> the first XI rows (XI, KAPPA/8 bytes) of the bit matrix."""
    bits = np.unpackbits(cols, axis=1, bitorder="little")[:, :XI]
    return np.packbits(np.ascontiguousarray(bits.T), axis=1, bitorder="little")


_J_BYTES: Final = np.arange(XI, dtype=">u2").view(np.uint8).reshape(XI, 2)


def _hash_rows(sid32: bytes, rows: Bits, streams: int) -> bytes:
    """Transpose-and-randomise: ``H(j, row_j)`` for every row, ``32 * streams`` bytes each
    (SHAKE256, tag ``tmpc/dkls23/ote-hash``); scalar ``s`` of row ``j`` is bytes
    ``[32s, 32s + 32)`` read big-endian (reduced mod q by the caller, bias below 2^-127)."""
    head = np.frombuffer(lp(b"tmpc/dkls23/ote-hash") + sid32, np.uint8)
    inp = np.concatenate([np.broadcast_to(head, (XI, head.size)), _J_BYTES, rows], axis=1)
    w = inp.shape[1]
    blob = inp.tobytes()
    sh = hashlib.shake_256
    size = 32 * streams
    return b"".join([sh(blob[j * w : (j + 1) * w]).digest(size) for j in range(XI)])


# --------------------------------------------------------------------------------------------
# Vectors of scalars packed in one integer (SIMD within a register)
# --------------------------------------------------------------------------------------------

_W: Final = 272  # lane width in bits: sums and differences of a few 256-bit values
_WB: Final = _W // 8
_C: Final = (1 << 256) - N  # 2^256 = C (mod q), C < 2^129


class _LaneConsts:
    """Per-length constants: lane masks and multiples of q (cached)."""

    __slots__ = ("c_rep", "hi", "lo", "ones", "q_mult")

    def __init__(self, n: int) -> None:
        self.ones = ((1 << (_W * n)) - 1) // ((1 << _W) - 1)
        self.lo = self.ones * ((1 << 256) - 1)
        self.hi = self.ones * ((1 << (_W - 256)) - 1)
        self.c_rep = self.ones * _C
        self.q_mult: dict[int, int] = {}

    def q_times(self, e: int) -> int:
        """``q * 2^e`` in every lane."""
        k = self.q_mult.get(e)
        if k is None:
            k = self.q_mult[e] = (N << e) * self.ones
        return k


@lru_cache(maxsize=16)
def _consts(n: int) -> _LaneConsts:
    return _LaneConsts(n)


class Lanes:
    """``n`` non-negative integers packed in 272-bit lanes of one Python integer.

    Lane ``i`` occupies bits ``[272 i, 272 (i+1))``. ``bound`` is an exclusive upper bound, in
    bits, on every lane; each operation updates it and refuses to overflow, so lanes never carry
    into each other. One big-integer operation thus adds, subtracts, masks or reduces a whole
    vector of scalars mod ``q`` without per-element Python code.
    """

    __slots__ = ("bound", "n", "v")
    __reduce_ex__ = _no_copy

    def __init__(self, n: int, v: int, bound: int) -> None:
        if bound > 264:
            raise ParameterError("lane overflow")
        self.n, self.v, self.bound = n, v, bound

    def __repr__(self) -> str:
        return f"<Lanes n={self.n} (secret)>"

    @classmethod
    def from_bytes32(cls, blob: bytes, n: int) -> Lanes:
        """``n`` big-endian 32-byte integers -> lanes (bound 256)."""
        a = np.frombuffer(expect_len(blob, 32 * n, "scalar vector"), np.uint8).reshape(n, 32)
        out = np.zeros((n, _WB), np.uint8)
        out[:, :32] = a[:, ::-1]
        return cls(n, int.from_bytes(out.tobytes(), "little"), 256)

    @classmethod
    def constants(cls, values: Sequence[int], count: int) -> Lanes:
        """``count`` copies of each value (each ``< 2^256``), value after value."""
        if any(not 0 <= x < 1 << 256 for x in values):
            raise ParameterError("lane constants must be below 2^256")
        le = b"".join(x.to_bytes(32, "little") for x in values)
        out = np.zeros((len(values), count, _WB), np.uint8)
        out[:, :, :32] = np.frombuffer(le, np.uint8).reshape(len(values), 1, 32)
        return cls(count * len(values), int.from_bytes(out.tobytes(), "little"), 256)

    @staticmethod
    def bit_mask(bits: Bits, copies: int) -> int:
        """A lane mask: all ones in lane ``c*len(bits) + j`` where ``bits[j] == 1``."""
        out = np.zeros((copies, bits.size, _WB), np.uint8)
        out[:, :, :] = (bits.astype(np.uint8) * 0xFF)[None, :, None]
        return int.from_bytes(out.tobytes(), "little")

    def __add__(self, other: Lanes) -> Lanes:
        return Lanes(self.n, self.v + other.v, max(self.bound, other.bound) + 1)

    def __sub__(self, other: Lanes) -> Lanes:
        # add a multiple of q that exceeds every lane of ``other``, so no lane goes negative
        e = max(0, other.bound - 255)
        k = _consts(self.n).q_times(e)
        return Lanes(self.n, self.v + k - other.v, max(self.bound, 256 + e) + 1)

    def __and__(self, mask: int) -> Lanes:
        return Lanes(self.n, self.v & mask, self.bound)

    def reduce(self) -> Lanes:
        """Every lane reduced to ``[0, q)`` (bound 256), by folding ``2^256 = C (mod q)``."""
        k = _consts(self.n)
        v = self.v
        if self.bound > 256:
            # lanes < 2^264: the high part is below 2^8, so one fold leaves every lane below
            # 2^256 + 2^8 C < 2q
            v = (v & k.lo) + ((v >> 256) & k.hi) * _C
        # conditional subtraction of q: lane + C reaches 2^256 exactly when lane >= q
        s = ((v + k.c_rep) >> 256) & k.ones
        return Lanes(self.n, v + s * _C - (s << 256), 256)

    def all_below_q(self) -> bool:
        """True if every lane (bound 256) is a canonical scalar (``< q``)."""
        k = _consts(self.n)
        return ((self.v + k.c_rep) >> 256) & k.ones == 0

    def _be_rows(self) -> Bits:
        a = np.frombuffer(self.v.to_bytes(self.n * _WB, "little"), np.uint8)
        return a.reshape(self.n, _WB)[:, ::-1]

    def to_bytes32(self) -> bytes:
        """Canonical big-endian 32-byte encodings of the reduced lanes."""
        return np.ascontiguousarray(self.reduce()._be_rows()[:, -32:]).tobytes()

    def to_ints(self) -> list[int]:
        """The lane values (not reduced)."""
        raw = np.ascontiguousarray(self._be_rows()).tobytes()
        return list(map(int.from_bytes, [raw[i : i + _WB] for i in range(0, len(raw), _WB)]))


def _ints_be32(blob: bytes) -> list[int]:
    """Consecutive big-endian 32-byte integers of ``blob``."""
    return list(map(int.from_bytes, [blob[i : i + 32] for i in range(0, len(blob), 32)]))


def _stream_major(blob: bytes, streams: int) -> bytes:
    """Row hashes (XI rows of ``streams`` 32-byte values) -> stream after stream."""
    a = np.frombuffer(blob, np.uint8).reshape(XI, streams, 32).transpose(1, 0, 2)
    return np.ascontiguousarray(a).tobytes()


# --------------------------------------------------------------------------------------------
# Messages and per-session secret batches
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OteExtendMsg:
    """The receiver's extension message: ``u`` (KAPPA columns of 78 bytes), ``x~`` (26 bytes)
    and ``t~`` (KAPPA x 26 bytes); 13338 bytes in all."""

    u: bytes
    x_check: bytes
    t_check: bytes

    LEN: ClassVar[int] = KAPPA * _COL + _CHUNK + KAPPA * _CHUNK

    def to_bytes(self) -> bytes:
        """``u || x~ || t~``."""
        return self.u + self.x_check + self.t_check

    @classmethod
    def from_bytes(cls, data: bytes) -> OteExtendMsg:
        """Length-checked decode; raises :class:`~tmpc.errors.DecodeError`."""
        data = expect_len(data, cls.LEN, "OT-extension message")
        a, b = KAPPA * _COL, KAPPA * _COL + _CHUNK
        return cls(data[:a], data[a:b], data[b:])


class OteSenderBatch:
    """The OT-extension sender's rows ``q_j`` of one session (secret, single use)."""

    __slots__ = ("delta", "rows", "sid32", "used")
    __reduce_ex__ = _no_copy

    def __init__(self, sid32: bytes, rows: Bits, delta: Bits) -> None:
        self.sid32, self.rows, self.delta, self.used = sid32, rows, delta, False

    def __repr__(self) -> str:
        return "<OteSenderBatch (secret)>"


class OteReceiverBatch:
    """The OT-extension receiver's choice bits and rows ``t_j`` of one session (secret)."""

    __slots__ = ("choices", "rows", "sid32", "used")
    __reduce_ex__ = _no_copy

    def __init__(self, sid32: bytes, rows: Bits, choices: Bits) -> None:
        self.sid32, self.rows, self.choices, self.used = sid32, rows, choices, False

    def __repr__(self) -> str:
        return "<OteReceiverBatch (secret)>"


# --------------------------------------------------------------------------------------------
# Long-lived OT-extension state of one ordered pair
# --------------------------------------------------------------------------------------------


class _OteBase:
    __slots__ = ("failed", "peer_id", "setup_id", "used")
    __reduce_ex__ = _no_copy

    def __init__(self, setup_id: bytes, peer_id: int, failed: int, used: Iterable[bytes]) -> None:
        self.setup_id = expect_len(setup_id, 32, "setup id")
        self.peer_id = peer_id
        self.failed = failed
        self.used: set[bytes] = set(used)

    def guard(self) -> None:
        """Refuse every use after a failed pairwise check (terminal for the pair)."""
        if self.failed:
            cls: type[PairwiseCheckError] = (
                OTCheckError if self.failed == FAILED_OT else MulCheckError
            )
            raise cls(
                f"pair refused: an earlier check with party {self.peer_id} failed; "
                "redo the pairwise setup",
                self.peer_id,
            )

    def consume(self, session_id: bytes) -> bytes:
        """Mark ``session_id`` used (StateError if it was) and return its 32-byte digest."""
        if not isinstance(session_id, bytes) or len(session_id) < MIN_SESSION_ID_LEN:
            raise ParameterError(f"session id must be at least {MIN_SESSION_ID_LEN} bytes")
        sid32 = hashlib.sha256(lp(b"tmpc/dkls23/ote-session") + self.setup_id + session_id)
        d = sid32.digest()
        if d in self.used:
            raise StateError("this session id was already used with this pairwise setup")
        self.used.add(d)
        return d

    def _tail(self) -> bytes:
        used = sorted(self.used)
        return len(used).to_bytes(4, "big") + b"".join(used)

    @staticmethod
    def _parse_tail(data: bytes) -> set[bytes]:
        if len(data) < 4:
            raise DecodeError("OT-extension state: truncated")
        count = int.from_bytes(data[:4], "big")
        body = expect_len(data[4:], 32 * count, "OT-extension state: used session list")
        used = {body[32 * i : 32 * i + 32] for i in range(count)}
        if len(used) != count:
            raise DecodeError("OT-extension state: duplicate used session")
        return used


def _decode_head(data: bytes, fixed: int) -> tuple[bytes, int, int]:
    if not isinstance(data, bytes) or len(data) < fixed + 4:
        raise DecodeError("OT-extension state: truncated")
    setup_id = data[:32]
    peer = int.from_bytes(data[32:64], "big")
    if not 0 < peer < N:
        raise DecodeError("OT-extension state: bad peer identifier")
    failed = data[64]
    if failed not in (FAILED_NONE, FAILED_OT, FAILED_MUL):
        raise DecodeError("OT-extension state: bad failure flag")
    return setup_id, peer, failed


class OteSender(_OteBase):
    """The OT-extension sender of one ordered pair (Alice in DKLs23): ``Delta`` and the seeds
    ``k^{Delta_i}_i`` from the base OTs. Long-lived and secret; serialise with :meth:`to_bytes`.

    **Must not** exist as two live copies: each copy keeps its own record of used session ids.
    """

    __slots__ = ("_delta", "_seeds")

    def __init__(
        self,
        setup_id: bytes,
        peer_id: int,
        delta: bytes,
        seeds: Sequence[bytes],
        *,
        failed: int = FAILED_NONE,
        used: Iterable[bytes] = (),
    ) -> None:
        super().__init__(setup_id, peer_id, failed, used)
        self._delta = expect_len(delta, _ROW, "Delta")
        if len(seeds) != KAPPA:
            raise ParameterError(f"expected {KAPPA} seeds")
        self._seeds = [expect_len(k, PAD_LEN, "seed") for k in seeds]

    def __repr__(self) -> str:
        return f"<OteSender towards {self.peer_id} (secret)>"

    def private_copy(self) -> OteSender:
        """A second live copy (seeds, ``failed`` flag and used session ids included), as
        ``from_bytes(to_bytes())`` would give, without the round trip through bytes.

        For the presigning machines (:mod:`tmpc.protocols.ecdsa.machine`), which run each
        session on a private copy: the two copies keep separate records of used session ids,
        so the driver **must** record every session id the copy runs elsewhere (the single-use
        ledger, or this object through ``MulSender.record_session``)."""
        return OteSender(
            self.setup_id,
            self.peer_id,
            self._delta,
            self._seeds,
            failed=self.failed,
            used=self.used,
        )

    def extend(self, session_id: bytes, msg: OteExtendMsg | bytes) -> OteSenderBatch:
        """Receive the receiver's extension message and run the consistency check.

        Args:
            session_id: the session (at least 16 bytes); accepted once per setup.
            msg: the receiver's :class:`OteExtendMsg` (typed or 13338 bytes).

        Returns:
            the rows ``q_j`` of this session.

        Raises:
            PairwiseCheckError: an earlier check with this peer failed (pair refused).
            StateError: the session id was used before.
            FaultyParticipantError: ``msg`` is malformed (names the peer).
            OTCheckError: the consistency check failed (names the peer; terminal).
        """
        self.guard()
        sid32 = self.consume(session_id)
        if isinstance(msg, bytes | bytearray):
            try:
                msg = OteExtendMsg.from_bytes(bytes(msg))
            except DecodeError as exc:
                raise FaultyParticipantError(
                    f"party {self.peer_id} sent a malformed OT-extension message: {exc}",
                    self.peer_id,
                ) from None
        delta_bits = np.unpackbits(np.frombuffer(self._delta, np.uint8), bitorder="little")
        dmask = (delta_bits * 0xFF).astype(np.uint8)[:, None]
        u = np.frombuffer(msg.u, np.uint8).reshape(KAPPA, _COL)
        # Extend, step 4: "the sender computes q_i = G(k^{Delta_i}_i) xor Delta_i * u_i"
        q = _prg(sid32, self._seeds) ^ (u & dmask)
        # Consistency check, step 3: "the sender checks q~_i = t~_i + Delta_i * x~ for all i"
        mat = _check_matrix(sid32, msg.u)
        got = _check_values(q, mat)
        x_check = np.frombuffer(msg.x_check, np.uint8)
        want = np.frombuffer(msg.t_check, np.uint8).reshape(KAPPA, _CHUNK) ^ (dmask & x_check)
        if not ct_equal(got.tobytes(), want.tobytes()):
            self.failed = FAILED_OT
            raise OTCheckError(
                f"party {self.peer_id} failed the OT-extension consistency check", self.peer_id
            )
        # Transpose and randomise, step 1: "the rows q_j of the transposed matrix, j < l"
        delta_row = np.frombuffer(self._delta, np.uint8)
        return OteSenderBatch(sid32, _transpose_rows(q), delta_row)

    def to_bytes(self) -> bytes:
        """``setup_id (32) || peer (32) || failed (1) || Delta (16) || seeds (KAPPA x 32) ||
        count (4) || used session digests (32 each)``."""
        return (
            self.setup_id
            + self.peer_id.to_bytes(32, "big")
            + bytes([self.failed])
            + self._delta
            + b"".join(self._seeds)
            + self._tail()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> OteSender:
        """Strict decode of :meth:`to_bytes`; raises :class:`~tmpc.errors.DecodeError`."""
        fixed = 65 + _ROW + KAPPA * PAD_LEN
        setup_id, peer, failed = _decode_head(data, fixed)
        seeds = [
            data[65 + _ROW + i * PAD_LEN : 65 + _ROW + (i + 1) * PAD_LEN] for i in range(KAPPA)
        ]
        used = cls._parse_tail(data[fixed:])
        return cls(setup_id, peer, data[65 : 65 + _ROW], seeds, failed=failed, used=used)


class OteReceiver(_OteBase):
    """The OT-extension receiver of one ordered pair (Bob in DKLs23): both seeds of every base
    OT. Long-lived and secret; serialise with :meth:`to_bytes`.

    **Must not** exist as two live copies: each copy keeps its own record of used session ids.
    """

    __slots__ = ("_seeds0", "_seeds1")

    def __init__(
        self,
        setup_id: bytes,
        peer_id: int,
        seeds0: Sequence[bytes],
        seeds1: Sequence[bytes],
        *,
        failed: int = FAILED_NONE,
        used: Iterable[bytes] = (),
    ) -> None:
        super().__init__(setup_id, peer_id, failed, used)
        if len(seeds0) != KAPPA or len(seeds1) != KAPPA:
            raise ParameterError(f"expected {KAPPA} seed pairs")
        self._seeds0 = [expect_len(k, PAD_LEN, "seed") for k in seeds0]
        self._seeds1 = [expect_len(k, PAD_LEN, "seed") for k in seeds1]

    def __repr__(self) -> str:
        return f"<OteReceiver from {self.peer_id} (secret)>"

    def private_copy(self) -> OteReceiver:
        """A second live copy, as ``from_bytes(to_bytes())`` would give (see
        :meth:`OteSender.private_copy` for when it may be used)."""
        return OteReceiver(
            self.setup_id,
            self.peer_id,
            self._seeds0,
            self._seeds1,
            failed=self.failed,
            used=self.used,
        )

    def extend(
        self, session_id: bytes, choices: Bits, *, rand: RandBytes | None = None
    ) -> tuple[OteReceiverBatch, OteExtendMsg]:
        """Start an extension of ``XI`` OTs with the given choice bits.

        Args:
            session_id: the session (at least 16 bytes); accepted once per setup.
            choices: ``XI`` choice bits (uint8 array of 0/1).
            rand: randomness source (``secrets.token_bytes`` if None).

        Returns:
            the secret batch (rows ``t_j``) and the message for the sender (13338 bytes).

        Raises:
            PairwiseCheckError: an earlier check with this peer failed (pair refused).
            StateError: the session id was used before.
            ParameterError: bad choice bits.
        """
        self.guard()
        choices = np.asarray(choices, dtype=np.uint8)
        if choices.shape != (XI,) or bool(np.any(choices > 1)):
            raise ParameterError(f"expected {XI} choice bits")
        sid32 = self.consume(session_id)
        rand = rand or secrets.token_bytes
        # Extend, step 1: "x = (choice bits) || (kappa + s random bits)"
        pad = expect_len(rand(_CHUNK), _CHUNK, "random bytes")
        x = np.concatenate([np.packbits(choices, bitorder="little"), np.frombuffer(pad, np.uint8)])
        # Extend, steps 2-3: "t^b_i = G(k^b_i); u_i = t^0_i xor t^1_i xor x"
        t0 = _prg(sid32, self._seeds0)
        u = t0 ^ _prg(sid32, self._seeds1) ^ x
        u_bytes = u.tobytes()
        # Consistency check, step 2: "x~ = sum_k chi_k x[k] + x[m+1];
        # t~_i = sum_k chi_k t_i[k] + t_i[m+1]"
        vals = _check_values(np.vstack([x[None, :], t0]), _check_matrix(sid32, u_bytes))
        msg = OteExtendMsg(u_bytes, vals[0].tobytes(), vals[1:].tobytes())
        return OteReceiverBatch(sid32, _transpose_rows(t0), choices), msg

    def to_bytes(self) -> bytes:
        """``setup_id (32) || peer (32) || failed (1) || seeds0 (KAPPA x 32) ||
        seeds1 (KAPPA x 32) || count (4) || used session digests (32 each)``."""
        return (
            self.setup_id
            + self.peer_id.to_bytes(32, "big")
            + bytes([self.failed])
            + b"".join(self._seeds0)
            + b"".join(self._seeds1)
            + self._tail()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> OteReceiver:
        """Strict decode of :meth:`to_bytes`; raises :class:`~tmpc.errors.DecodeError`."""
        fixed = 65 + 2 * KAPPA * PAD_LEN
        setup_id, peer, failed = _decode_head(data, fixed)
        s = [data[65 + i * PAD_LEN : 65 + (i + 1) * PAD_LEN] for i in range(2 * KAPPA)]
        used = cls._parse_tail(data[fixed:])
        return cls(setup_id, peer, s[:KAPPA], s[KAPPA:], failed=failed, used=used)


# --------------------------------------------------------------------------------------------
# Correlated OT over Z_q (DKLs18 Protocol 9, "Transfer"), one stream per correlation
# --------------------------------------------------------------------------------------------


def cote_send(batch: OteSenderBatch, correlations: Sequence[int]) -> tuple[bytes, bytes]:
    """Sender side of correlated OT over ``Z_q`` with one constant correlation per stream.

    Args:
        batch: the rows of :meth:`OteSender.extend` (consumed).
        correlations: ``alpha_s`` for each stream (scalars in ``[0, q)``).

    Returns:
        ``(z_A, tau)``: the sender's outputs ``z_A[s*XI + j]`` as big-endian 32-byte integers
        (below ``2^256``, to be read mod ``q``), and the message ``tau`` (canonical big-endian
        scalars); both ``32 * XI * streams`` bytes, stream after stream.

    Raises:
        StateError: the batch was used before.
        ParameterError: a correlation is out of range.
    """
    if batch.used:
        raise StateError("OT-extension batch used twice")
    batch.used = True
    if any(not isinstance(a, int) or not 0 <= a < N for a in correlations):
        raise ParameterError("correlations must be scalars in [0, q)")
    streams, n = len(correlations), len(correlations) * XI
    # Transpose and randomise, step 3: "v^0_j = H(j, q_j), v^1_j = H(j, q_j xor Delta)"
    v0 = _stream_major(_hash_rows(batch.sid32, batch.rows, streams), streams)
    v1 = _stream_major(_hash_rows(batch.sid32, batch.rows ^ batch.delta, streams), streams)
    batch.rows = np.zeros(0, np.uint8)
    # Transfer, step 1: "tau_j = v^1_j - v^0_j + alpha_j; the sender's output is v^0_j"
    tau = (Lanes.from_bytes32(v1, n) + Lanes.constants(correlations, XI)) - Lanes.from_bytes32(
        v0, n
    )
    return v0, tau.to_bytes32()


def cote_receive(batch: OteReceiverBatch, tau: bytes, streams: int) -> list[int]:
    """Receiver side: ``z_B[s*XI + j] = beta_j * tau[s*XI + j] - H(j, t_j)[s]``.

    Args:
        batch: the batch of :meth:`OteReceiver.extend` (consumed).
        tau: the sender's ``tau`` (``32 * XI * streams`` bytes).
        streams: number of streams.

    Returns:
        the receiver's outputs ``z_B[s*XI + j]`` (non-negative integers below ``2^259``, to be
        read mod ``q``).

    Raises:
        StateError: the batch was used before.
        DecodeError: ``tau`` has the wrong length or a value ``>= q`` (the caller names the
            sender).
    """
    if batch.used:
        raise StateError("OT-extension batch used twice")
    batch.used = True
    n = streams * XI
    tau_l = Lanes.from_bytes32(tau, n)
    if not tau_l.all_below_q():
        raise DecodeError("tau: a value is not below the group order")
    # Transfer, step 2: "z_B = beta_j * tau_j - v^{beta_j}_j" (H(j, t_j) = v^{beta_j}_j)
    v = _stream_major(_hash_rows(batch.sid32, batch.rows, streams), streams)
    batch.rows = np.zeros(0, np.uint8)
    mask = Lanes.bit_mask(batch.choices, streams)
    return ((tau_l & mask) - Lanes.from_bytes32(v, n)).to_ints()
