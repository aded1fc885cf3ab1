"""FROST signing for BIP340 Schnorr signatures with tweaking: the BIP445 draft.

This module follows the BIP445 draft (siv2r/bip-frost-signing, version 0.6.0, the text that
produced the vectors in ``tests/vectors/bip445-frost-signing/``) algorithm by algorithm, with
the draft's names: :func:`ValidateSignersCtx`, :func:`DeriveInterpolatingValue`,
:func:`DeriveThreshPubkey`, :func:`TweakCtxInit`, :func:`ApplyTweak`, :func:`GetXonlyPubkey`,
:func:`GetPlainPubkey`, :func:`NonceGen`, :func:`NonceAgg`, :func:`GetSessionValues`,
:func:`SerializeIds`, :func:`Sign`, :func:`PartialSigVerify`,
:func:`PartialSigVerifyInternal`, :func:`PartialSigAgg` and :func:`DeterministicSign`. Each
step quotes the draft line it implements. Curve arithmetic is tmpc's group layer
(libsecp256k1 through :data:`tmpc.group.SECP256K1`), not the draft's pure-Python curve.

Participant identifiers
    The draft numbers participants from zero: ``id`` is an integer with ``0 <= id <= n - 1``
    and the Lagrange coefficient uses ``id + 1`` as the interpolation point (draft footnote
    "lagrange-shift"). So a draft identifier maps to tmpc's Shamir x-coordinate as
    ``x = id + 1`` (and ``id = x - 1``); tmpc's DKG index ``i`` (0-based) is exactly the
    draft ``id``. Everything in this module except :func:`sign_local` uses the draft ``id``,
    including the ``culprits`` of the errors it raises. :func:`sign_local` takes and names
    Shamir x-coordinates, like the rest of tmpc.

Errors (the draft's two kinds)
    - Input errors (the draft's ``ValueError``): :class:`~tmpc.errors.DecodeError` for bytes
      that are not a valid encoding (public share, threshold key, tweak),
      :class:`~tmpc.errors.ParameterError` for bad parameters (threshold, identifiers, signer
      set, key material, list lengths) and :class:`~tmpc.errors.StateError` for a secret nonce
      that was already used or is zero. Where the draft's reference code has a message, the
      error text is the same.
    - A misbehaving signer (the draft's ``InvalidContributionError`` with a signer index):
      :class:`InvalidContributionError`, a :class:`~tmpc.errors.FaultyParticipantError` whose
      ``culprits`` are draft identifiers, with ``signer_index`` (the position in the input
      list, which is what the draft and its vectors report) and ``contrib`` (``"pubnonce"`` or
      ``"psig"``).
    - A misbehaving coordinator (the draft's ``InvalidContributionError(None, ...)``):
      :class:`InvalidCoordinatorContributionError`, a
      :class:`~tmpc.errors.FaultyCoordinatorError` with ``contrib`` (``"aggnonce"`` or
      ``"aggothernonce"``).

Received values are decoded strictly: a public nonce must be exactly 66 bytes, a partial
signature exactly 32 bytes, an aggregate nonce exactly 66 bytes. (The draft slices and would
ignore trailing bytes; tmpc rejects them and blames the sender where the draft blames for an
undecodable value.)

Secret nonces
    :class:`SecNonce` holds the draft's 64-byte ``secnonce``. :func:`Sign` overwrites it with
    zeros as the draft recommends and marks it used; a second :func:`Sign` with it raises
    :class:`~tmpc.errors.StateError` before any secret is touched. The holder refuses to be
    copied or pickled (:class:`~tmpc.errors.StateError`), so no second copy can sign twice.
    CPython may keep freed integer objects and intermediate byte strings in memory; wiping the
    buffer removes the value from the holder, not from every place the interpreter put it.

Caching (the draft allows it: "Actual implementations can cache these values")
    :class:`SignersContext` validates itself once (decoded public shares, Lagrange
    coefficients, the threshold-key check) and :class:`SessionContext` computes
    :func:`GetSessionValues` once; both are immutable, so the cached values can never go stale.

Python integers are not constant time; point arithmetic runs in libsecp256k1, scalar
arithmetic in Python (see ``docs/security.md``).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Final, Literal, NewType, NoReturn

from tmpc.encoding import tagged_hash, xor_bytes
from tmpc.errors import (
    CryptoError,
    DecodeError,
    FaultyCoordinatorError,
    FaultyParticipantError,
    ParameterError,
    StateError,
)
from tmpc.group.base import Point
from tmpc.group.secp256k1 import SECP256K1, SecpPoint

__all__ = [
    "ApplyTweak",
    "ContribKind",
    "DeriveInterpolatingValue",
    "DeriveThreshPubkey",
    "DeterministicSign",
    "GetPlainPubkey",
    "GetSessionValues",
    "GetXonlyPubkey",
    "InvalidContributionError",
    "InvalidCoordinatorContributionError",
    "NonceAgg",
    "NonceGen",
    "NonceGenInternal",
    "PartialSigAgg",
    "PartialSigVerify",
    "PartialSigVerifyInternal",
    "PlainPk",
    "SecNonce",
    "SerializeIds",
    "SessionContext",
    "SessionValues",
    "Sign",
    "SignersContext",
    "TweakContext",
    "TweakCtxInit",
    "ValidateSignersCtx",
    "XonlyPk",
    "sign_local",
]

PlainPk = NewType("PlainPk", bytes)
"""A 33-byte compressed point (``cbytes``)."""
XonlyPk = NewType("XonlyPk", bytes)
"""A 32-byte x-only point (``xbytes``)."""

ContribKind = Literal["aggothernonce", "aggnonce", "psig", "pubnonce"]

ORD: Final = SECP256K1.order
G: Final = SECP256K1.generator()
_INF: Final = SECP256K1.identity()
_ZERO33: Final = bytes(33)
_MAX_N: Final = 2**32


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class InvalidContributionError(FaultyParticipantError):
    """One or more signers sent an invalid contribution (draft ``InvalidContributionError``).

    Attributes:
        culprits: the draft identifiers (``id``, Shamir ``x = id + 1``) of the blamed signers.
            The first one is the signer the draft blames; any further ones are also invalid.
        signer_indices: their positions in the input list (the draft's ``signer_index``).
        contrib: ``"pubnonce"`` or ``"psig"``.
    """

    def __init__(
        self, contrib: ContribKind, signer_indices: Sequence[int], ids: Sequence[int]
    ) -> None:
        names = ", ".join(str(i) for i in ids)
        super().__init__(f"invalid {contrib} from participant id(s) {names}", tuple(ids))
        self.contrib: ContribKind = contrib
        self.signer_indices: tuple[int, ...] = tuple(signer_indices)

    @property
    def signer_index(self) -> int:
        """The input-list position of the signer the draft blames."""
        return self.signer_indices[0]


class InvalidCoordinatorContributionError(FaultyCoordinatorError):
    """The coordinator sent an invalid ``aggnonce`` or ``aggothernonce`` (draft blame ``None``)."""

    def __init__(self, contrib: ContribKind) -> None:
        super().__init__(f"the coordinator sent an invalid {contrib}")
        self.contrib: ContribKind = contrib


# --------------------------------------------------------------------------------------------
# Notation helpers (draft "Cryptographic Types and Operations")
# --------------------------------------------------------------------------------------------


def _cpoint(b: bytes) -> SecpPoint:
    """``cpoint(b)``: a 33-byte compressed point, never infinity; DecodeError otherwise."""
    return SECP256K1.decode_point(b)


def _cpoint_ext(b: bytes) -> SecpPoint:
    """``cpoint_ext(b)``: like ``cpoint`` but 33 zero bytes decode to infinity."""
    if b == _ZERO33:
        return _INF
    return SECP256K1.decode_point(b)


def _cbytes_ext(P: SecpPoint) -> bytes:
    """``cbytes_ext(P)``: 33-byte compressed encoding, 33 zero bytes for infinity."""
    return _ZERO33 if P.is_identity() else P.encode()


def _sum(points: Sequence[SecpPoint]) -> SecpPoint:
    """The sum of a list of points (infinity for an empty list)."""
    acc = _INF
    for P in points:
        acc = acc + P
    return acc


def _scalar_checked(b: bytes) -> int | None:
    """``scalar_from_bytes_checked``: the scalar of a 32-byte string, None if not ``< ord``."""
    if len(b) != 32:
        return None
    k = int.from_bytes(b, "big")
    return k if k < ORD else None


def _scalar_nonzero_checked(b: bytes) -> int | None:
    """``scalar_from_bytes_nonzero_checked``: as above, also None for zero."""
    k = _scalar_checked(b)
    return k if k else None


def _scalar_wrapping(b: bytes) -> int:
    """``scalar_from_bytes_wrapping``: the 32-byte string reduced modulo ``ord``."""
    return int.from_bytes(b, "big") % ORD


def _as_bytes(x: bytes) -> bytes:
    """``bytes(x)`` for a bytearray; anything else unchanged (for the decoders to reject)."""
    return bytes(x) if isinstance(x, bytearray) else x


def _is_id(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _negligible(what: str) -> NoReturn:
    # The draft's "unreachable" failures (a hash equal to zero modulo the order).
    raise ParameterError(f"{what} is zero (negligible probability)")


# --------------------------------------------------------------------------------------------
# Key material and setup: Signers Context
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CheckedSigners:
    """What :func:`ValidateSignersCtx` established, kept so later calls need no recomputation."""

    points: tuple[SecpPoint, ...]
    lambdas: Mapping[int, int]
    pubshare_set: frozenset[bytes]
    Q0: SecpPoint


@dataclass(frozen=True, eq=False)
class SignersContext:
    """The draft's Signers Context ``(n, t, u, id_1..u, pubshare_1..u, thresh_pk)``.

    Args:
        n: number of participants of key generation, ``n < 2^32``.
        t: threshold, ``1 <= t <= n`` (used for validation only).
        ids: the ``u`` signers' draft identifiers, ``0 <= id <= n - 1`` (Shamir ``x = id + 1``).
        pubshares: their 33-byte compressed public shares, in the order of ``ids``.
        thresh_pk: the 33-byte compressed threshold public key.

    ``u`` is ``len(ids)``. The lists are stored as tuples. Validation
    (:func:`ValidateSignersCtx`) runs once, on first use, and its result is kept.
    """

    n: int
    t: int
    ids: Sequence[int]
    pubshares: Sequence[bytes]
    thresh_pk: bytes

    def __post_init__(self) -> None:
        # Non-bytes entries are kept as they are; validation rejects them.
        object.__setattr__(self, "ids", tuple(self.ids))
        object.__setattr__(self, "pubshares", tuple(_as_bytes(p) for p in self.pubshares))
        object.__setattr__(self, "thresh_pk", _as_bytes(self.thresh_pk))

    @property
    def u(self) -> int:
        """The number of signing participants."""
        return len(self.ids)

    @cached_property
    def _checked(self) -> _CheckedSigners:
        return _validate_signers_ctx(self)

    @cached_property
    def _tweak_memo(self) -> dict[tuple[tuple[bytes, ...], tuple[bool, ...]], TweakContext]:
        # Memo of the deterministic tweak computation on the immutable thresh_pk, so that a
        # runner computing the tweaked key for NonceGen does not redo it in GetSessionValues.
        return {}


def _validate_signers_ctx(ctx: SignersContext) -> _CheckedSigners:
    n, t, u, ids, pubshares = ctx.n, ctx.t, ctx.u, ctx.ids, ctx.pubshares
    if not _is_id(n) or not _is_id(t) or not n < _MAX_N:
        raise ParameterError("n and t must be integers with n < 2^32.")
    # > Fail if not 1 ≤ t ≤ n
    if not 1 <= t <= n:
        raise ParameterError("The threshold must be 1 <= t <= n.")
    # > Fail if not t ≤ u ≤ n
    if not t <= u <= n:
        raise ParameterError("The number of signers must be between t and n.")
    if len(pubshares) != u:
        raise ParameterError("The pubshares and ids arrays must have the same length.")
    points: list[SecpPoint] = []
    # > For i = 1 .. u:
    for idx, (i, pubshare) in enumerate(zip(ids, pubshares, strict=True)):
        # > Fail if not 0 ≤ id_i ≤ n - 1
        if not _is_id(i) or not 0 <= i <= n - 1:
            raise ParameterError(f"The participant identifier at index {idx} is out of range.")
        # > Let P_i = cpoint(pubshare_i); fail if that fails
        try:
            points.append(_cpoint(pubshare))
        except DecodeError:
            raise DecodeError(f"Invalid pubshare at index {idx}.") from None
    # > Fail if has_duplicates(id_1..u)
    if len(set(ids)) != u:
        raise ParameterError("The participant identifier list contains duplicate elements.")
    lambdas = {i: DeriveInterpolatingValue(ids, i) for i in ids}
    # > Fail if DeriveThreshPubkey(id_1..u, P_1..u) ≠ thresh_pk
    Q0 = _derive_thresh_point(ids, points, lambdas)
    if Q0.is_identity() or Q0.encode() != ctx.thresh_pk:
        raise ParameterError("The provided key material is incorrect.")
    return _CheckedSigners(tuple(points), lambdas, frozenset(pubshares), Q0)


def ValidateSignersCtx(signers_ctx: SignersContext) -> None:
    """Draft ``ValidateSignersCtx``: check the signers context; no return.

    Raises:
        ParameterError: bad ``n``/``t``/``u``, an identifier out of range or duplicated, list
            lengths that differ, or public shares that do not interpolate to ``thresh_pk``
            ("The provided key material is incorrect.").
        DecodeError: a public share that is not a valid compressed point.
    """
    _ = signers_ctx._checked


def DeriveInterpolatingValue(ids: Sequence[int], my_id: int) -> int:
    """Draft ``DeriveInterpolatingValue``: the Lagrange coefficient of ``my_id`` at zero.

    Uses the draft's shift, interpolation point ``id + 1``; equal to
    :func:`tmpc.sharing.derive_interpolating_value` at Shamir ``x = id + 1``.

    Raises:
        ParameterError: ``my_id`` not in ``ids``, or duplicates in ``ids``.
    """
    # > Fail if my_id not in id_1..u
    if my_id not in ids:
        raise ParameterError("The signer's id must be present in the participant identifier list.")
    # > Fail if has_duplicates(id_1..u)
    if len(set(ids)) != len(ids):
        raise ParameterError("The participant identifier list contains duplicate elements.")
    num, deno = 1, 1
    for i in ids:
        if i != my_id:
            # > Let num = num · Scalar(id_i + 1)
            num = num * (i + 1) % ORD
            # > Let deno = deno · Scalar(id_i - my_id)
            deno = deno * (i - my_id) % ORD
    # > λ = num · deno^-1 (mod ord)
    return num * pow(deno, -1, ORD) % ORD


def _derive_thresh_point(
    ids: Sequence[int], points: Sequence[SecpPoint], lambdas: Mapping[int, int]
) -> SecpPoint:
    # > Q = inf_point; for i = 1..u: λ = DeriveInterpolatingValue(id_1..u, id_i); Q = Q + λ · P_i
    return _sum([P * lambdas[i] for i, P in zip(ids, points, strict=True)])


def DeriveThreshPubkey(ids: Sequence[int], points: Sequence[SecpPoint]) -> PlainPk:
    """Draft internal ``DeriveThreshPubkey``: ``cbytes(sum λ_i · P_i)`` (33 bytes).

    Does not validate its inputs (the draft's footnote); raises
    :class:`~tmpc.errors.InputError` if the sum is the point at infinity.
    """
    lambdas = {i: DeriveInterpolatingValue(ids, i) for i in ids}
    return PlainPk(_derive_thresh_point(ids, points, lambdas).encode())


# --------------------------------------------------------------------------------------------
# Tweaking the threshold public key
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TweakContext:
    """The draft's Tweak Context ``(Q, gacc, tacc)``; ``gacc`` is 1 or ``ord - 1``."""

    Q: SecpPoint
    gacc: int
    tacc: int


def TweakCtxInit(thresh_pk: bytes) -> TweakContext:
    """Draft ``TweakCtxInit``: a tweak context for a 33-byte threshold public key.

    Raises:
        DecodeError: ``thresh_pk`` is not a valid compressed point.
    """
    # > Let Q = cpoint(thresh_pk); fail if that fails
    try:
        Q = _cpoint(thresh_pk)
    except DecodeError:
        raise DecodeError("Invalid threshold public key.") from None
    # > Let gacc = Scalar(1); Let tacc = Scalar(0)
    return TweakContext(Q, 1, 0)


def GetXonlyPubkey(tweak_ctx: TweakContext) -> XonlyPk:
    """Draft ``GetXonlyPubkey``: ``xbytes(Q)`` (32 bytes)."""
    return XonlyPk(tweak_ctx.Q.xonly())


def GetPlainPubkey(tweak_ctx: TweakContext) -> PlainPk:
    """Draft ``GetPlainPubkey``: ``cbytes(Q)`` (33 bytes); byte 0 & 1 is the parity bit."""
    return PlainPk(tweak_ctx.Q.encode())


def ApplyTweak(tweak_ctx: TweakContext, tweak: bytes, is_xonly_t: bool) -> TweakContext:
    """Draft ``ApplyTweak``: apply a 32-byte plain (BIP32) or x-only (BIP341) tweak.

    Raises:
        DecodeError: the tweak is not 32 bytes, or not below the group order.
        ParameterError: the tweaked key would be the point at infinity, or a non-bool mode.
    """
    if not isinstance(is_xonly_t, bool):
        raise ParameterError("The tweak mode must be a boolean.")
    if not isinstance(tweak, bytes | bytearray) or len(tweak) != 32:
        raise DecodeError("The tweak must be a 32-byte array.")
    Q, gacc, tacc = tweak_ctx.Q, tweak_ctx.gacc, tweak_ctx.tacc
    # > If is_xonly_t and not has_even_y(Q): Let g = Scalar(-1), Else: Let g = Scalar(1)
    negate = is_xonly_t and not Q.has_even_y()
    # > Let t = scalar_from_bytes_checked(tweak); fail if that fails
    t = _scalar_checked(bytes(tweak))
    if t is None:
        raise DecodeError("The tweak value is out of range.")
    # > Let Q' = g · Q + t · G; Fail if is_infinity(Q')
    Q_ = (-Q if negate else Q) + SECP256K1.base_mul(t)
    if Q_.is_identity():
        raise ParameterError("The result of tweaking cannot be infinity.")
    # > Let gacc' = g · gacc (mod ord); Let tacc' = t + g · tacc (mod ord)
    gacc_ = (ORD - gacc) % ORD if negate else gacc
    tacc_ = (t - tacc if negate else t + tacc) % ORD
    return TweakContext(Q_, gacc_, tacc_)


def _thresh_pubkey_and_tweak(
    thresh_pk: bytes, tweaks: Sequence[bytes], is_xonly: Sequence[bool]
) -> TweakContext:
    if len(tweaks) != len(is_xonly):
        raise ParameterError("The tweaks and is_xonly arrays must have the same length.")
    # > Let tweak_ctx_0 = TweakCtxInit(thresh_pk); fail if that fails
    tweak_ctx = TweakCtxInit(thresh_pk)
    # > For i = 1 .. v: Let tweak_ctx_i = ApplyTweak(tweak_ctx_i-1, tweak_i, is_xonly_t_i)
    for tweak, mode in zip(tweaks, is_xonly, strict=True):
        tweak_ctx = ApplyTweak(tweak_ctx, tweak, mode)
    return tweak_ctx


def _signers_tweak(
    sctx: SignersContext, tweaks: Sequence[bytes], is_xonly: Sequence[bool]
) -> TweakContext:
    """``_thresh_pubkey_and_tweak(sctx.thresh_pk, ...)``, memoized per signers context."""
    if not all(isinstance(t, bytes | bytearray) for t in tweaks):
        raise DecodeError("The tweak must be a 32-byte array.")
    if not all(isinstance(mode, bool) for mode in is_xonly):
        raise ParameterError("The tweak mode must be a boolean.")
    key = (tuple(bytes(t) for t in tweaks), tuple(is_xonly))
    memo = sctx._tweak_memo
    cached = memo.get(key)
    if cached is None:
        cached = _thresh_pubkey_and_tweak(sctx.thresh_pk, tweaks, is_xonly)
        if len(memo) < 8:
            memo[key] = cached
    return cached


# --------------------------------------------------------------------------------------------
# Nonce generation
# --------------------------------------------------------------------------------------------


class SecNonce:
    """A signer's secret nonce ``(k_1, k_2)``: single use, never copied, never printed.

    Created by :func:`NonceGen` (or :func:`NonceGenInternal`) together with its public nonce.
    :func:`Sign` consumes it: it reads the 64 bytes, overwrites them with zeros (the draft's
    way) and marks the holder used; a second :func:`Sign` raises
    :class:`~tmpc.errors.StateError`. ``copy``, ``deepcopy`` and ``pickle`` raise
    :class:`~tmpc.errors.StateError`.
    """

    __slots__ = ("_buf", "_lock", "_pub", "_used")

    def __init__(self, k: bytes, pub: tuple[SecpPoint, SecpPoint] | None = None) -> None:
        """Wrap a 64-byte ``secnonce`` (``k_1 || k_2``). Use :func:`NonceGen` instead.

        ``pub`` is the matching public nonce points, when known, so that :func:`Sign` need not
        recompute them for its self-check.
        """
        if not isinstance(k, bytes | bytearray) or len(k) != 64:
            raise DecodeError("secnonce: expected 64 bytes")
        self._buf = bytearray(k)
        self._pub = pub
        self._used = False
        # Check-and-mark under one lock: two threads racing to sign get one share at most.
        self._lock = threading.Lock()

    @classmethod
    def dangerous_from_bytes(cls, secnonce: bytes) -> SecNonce:
        """A holder for a 64-byte serialized ``secnonce`` (test vectors, persisted state).

        **Must not** be called twice with the same bytes for two sessions: two partial
        signatures under one nonce reveal the secret share. Raises :class:`DecodeError` for a
        wrong length.
        """
        return cls(secnonce)

    def dangerous_to_bytes(self) -> bytes:
        """The 64-byte ``secnonce`` (all zeros once used). **Must not** be stored twice."""
        return bytes(self._buf)

    @property
    def used(self) -> bool:
        """True once :func:`Sign` consumed this nonce."""
        return self._used

    def _check_unused(self) -> None:
        if self._used:
            raise StateError("secnonce already used: a secret nonce signs at most once")

    def _consume(self) -> bytes:
        with self._lock:
            self._check_unused()
            k = bytes(self._buf)
            # Draft: "securely erase the secnonce argument by overwriting it with 64 zero bytes"
            self._buf[:] = bytes(64)
            self._used = True
        return k

    def __repr__(self) -> str:
        return f"<SecNonce {'used' if self._used else 'unused'}>"

    def __copy__(self) -> NoReturn:
        raise StateError("a secret nonce cannot be copied")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise StateError("a secret nonce cannot be copied")

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise StateError("a secret nonce cannot be pickled")

    def __reduce__(self) -> NoReturn:
        raise StateError("a secret nonce cannot be pickled")

    def __getstate__(self) -> NoReturn:
        raise StateError("a secret nonce cannot be pickled")


def _opt_len(value: bytes | None, n: int, what: str) -> bytes | None:
    if value is not None and (not isinstance(value, bytes | bytearray) or len(value) != n):
        raise DecodeError(f"The optional byte array {what} must have length {n}.")
    return None if value is None else bytes(value)


def NonceGenInternal(
    rand_: bytes,
    secshare: bytes | None,
    pubshare: bytes | None,
    thresh_pk: bytes | None,
    m: bytes | None,
    extra_in: bytes | None,
) -> tuple[SecNonce, bytes]:
    """Draft ``NonceGen`` with the 32 random bytes ``rand'`` given (test vectors only).

    **Must not** be used with anything but fresh uniformly random ``rand_``; use
    :func:`NonceGen`.

    Args:
        rand_: ``rand'``, 32 bytes.
        secshare: optional 32-byte secret share.
        pubshare: optional 33-byte public share.
        thresh_pk: optional 32-byte x-only (ideally tweaked) threshold public key.
        m: optional message (any length).
        extra_in: optional auxiliary input (fewer than 2^32 bytes).

    Returns:
        ``(secnonce, pubnonce)``: the single-use :class:`SecNonce` and the 66-byte public nonce.

    Raises:
        DecodeError: a wrong length.
    """
    if not isinstance(rand_, bytes | bytearray) or len(rand_) != 32:
        raise DecodeError("rand' must be 32 bytes.")
    secshare = _opt_len(secshare, 32, "secshare")
    pubshare = _opt_len(pubshare, 33, "pubshare")
    thresh_pk = _opt_len(thresh_pk, 32, "thresh_pk")
    # > If the optional argument secshare is present:
    # >   Let rand = xor_bytes(secshare, hash_BIP0445/aux(rand')) Else: Let rand = rand'
    if secshare is not None:
        rand = xor_bytes(secshare, tagged_hash("BIP0445/aux", bytes(rand_)))
    else:
        rand = bytes(rand_)
    # > If the optional argument pubshare / thresh_pk is not present: Let ... = empty_bytestring
    pubshare = pubshare or b""
    thresh_pk = thresh_pk or b""
    # > If the optional argument m is not present: Let m_prefixed = bytes(1, 0)
    # > Else: Let m_prefixed = bytes(1, 1) || bytes(8, len(m)) || m
    if m is None:
        m_prefixed = b"\x00"
    else:
        m_prefixed = b"\x01" + len(m).to_bytes(8, "big") + bytes(m)
    # > If the optional argument extra_in is not present: Let extra_in = empty_bytestring
    extra_in = b"" if extra_in is None else bytes(extra_in)
    if len(extra_in) >= _MAX_N:
        raise DecodeError("extra_in must be shorter than 2^32 bytes.")
    # > Let k_i = scalar_from_bytes_wrapping(hash_BIP0445/nonce(rand || bytes(1, len(pubshare))
    # > || pubshare || bytes(1, len(thresh_pk)) || thresh_pk || m_prefixed
    # > || bytes(4, len(extra_in)) || extra_in || bytes(1, i - 1))) for i = 1,2
    prefix = (
        rand
        + bytes([len(pubshare)])
        + pubshare
        + bytes([len(thresh_pk)])
        + thresh_pk
        + m_prefixed
        + len(extra_in).to_bytes(4, "big")
        + extra_in
    )
    k_1 = _scalar_wrapping(tagged_hash("BIP0445/nonce", prefix + b"\x00"))
    k_2 = _scalar_wrapping(tagged_hash("BIP0445/nonce", prefix + b"\x01"))
    # > Fail if k_1 = Scalar(0) or k_2 = Scalar(0)
    if k_1 == 0 or k_2 == 0:
        _negligible("a nonce")
    return _nonce_pair(k_1, k_2)


def _nonce_pair(k_1: int, k_2: int) -> tuple[SecNonce, bytes]:
    # > Let R_*,1 = k_1 · G, R_*,2 = k_2 · G
    R_1, R_2 = SECP256K1.base_mul(k_1), SECP256K1.base_mul(k_2)
    # > Let pubnonce = cbytes(R_*,1) || cbytes(R_*,2)
    pubnonce = R_1.encode() + R_2.encode()
    # > Let secnonce = scalar_to_bytes(k_1) || scalar_to_bytes(k_2)
    secnonce = SecNonce(k_1.to_bytes(32, "big") + k_2.to_bytes(32, "big"), (R_1, R_2))
    return secnonce, pubnonce


def NonceGen(
    secshare: bytes | None = None,
    pubshare: bytes | None = None,
    thresh_pk: bytes | None = None,
    m: bytes | None = None,
    extra_in: bytes | None = None,
) -> tuple[SecNonce, bytes]:
    """Draft ``NonceGen``: a fresh nonce pair, ``rand'`` drawn from :mod:`secrets`.

    Pass every optional argument that is known (defence in depth against a weak random
    generator): the 32-byte ``secshare``, the 33-byte ``pubshare``, the 32-byte x-only
    (tweaked) ``thresh_pk``, the message ``m`` and any ``extra_in`` (e.g. a session id).

    Returns:
        ``(secnonce, pubnonce)``: the single-use :class:`SecNonce` and the 66-byte public nonce
        to send to the coordinator.

    Raises:
        DecodeError: an optional argument of the wrong length.
    """
    # > Let rand' = random_bytes(32)
    return NonceGenInternal(secrets.token_bytes(32), secshare, pubshare, thresh_pk, m, extra_in)


# --------------------------------------------------------------------------------------------
# Nonce aggregation
# --------------------------------------------------------------------------------------------


def _decode_pubnonces(
    pubnonces: Sequence[bytes], ids: Sequence[int]
) -> list[tuple[SecpPoint, SecpPoint]]:
    """Decode every public nonce once, blaming in the draft's order (first halves first)."""
    halves: list[list[SecpPoint]] = [[], []]
    bad: list[int] = []
    # > For j = 1 .. 2: For i = 1 .. u:
    for j in (0, 1):
        for i, pubnonce in enumerate(pubnonces):
            if i in bad:
                halves[j].append(_INF)
                continue
            # > Let R_i,j = cpoint(pubnonce_i[(j-1)*33:j*33]); fail if that fails and blame
            # > signer at index i for invalid pubnonce
            try:
                if not isinstance(pubnonce, bytes | bytearray) or len(pubnonce) != 66:
                    raise DecodeError("pubnonce: expected 66 bytes")
                halves[j].append(_cpoint(bytes(pubnonce[33 * j : 33 * j + 33])))
            except DecodeError:
                bad.append(i)
                halves[j].append(_INF)
    if bad:
        raise InvalidContributionError("pubnonce", bad, [ids[i] for i in bad])
    return list(zip(halves[0], halves[1], strict=True))


def _aggregate_points(decoded: Sequence[tuple[SecpPoint, SecpPoint]]) -> bytes:
    # > Let R_j = R_1,j + R_2,j + ... + R_u,j
    R_1 = _sum([r[0] for r in decoded])
    R_2 = _sum([r[1] for r in decoded])
    # > Return aggnonce = cbytes_ext(R_1) || cbytes_ext(R_2)
    return _cbytes_ext(R_1) + _cbytes_ext(R_2)


def NonceAgg(pubnonces: Sequence[bytes], ids: Sequence[int]) -> bytes:
    """Draft ``NonceAgg``: the 66-byte aggregate nonce of ``u`` 66-byte public nonces.

    ``ids`` (tmpc addition, not an input of the draft's algorithm) are the senders' draft
    identifiers in the same order, so that a blame names a participant and not only a list
    position; the position is kept as ``signer_index``.

    Raises:
        InvalidContributionError: a public nonce is not 66 bytes or a half is not a valid
            point; ``contrib == "pubnonce"``, the culprits name every such sender (the first is
            the one the draft blames).
        ParameterError: ``pubnonces`` and ``ids`` differ in length.
    """
    if len(pubnonces) != len(ids):
        raise ParameterError("The pubnonces and ids arrays must have the same length.")
    return _aggregate_points(_decode_pubnonces(pubnonces, ids))


# --------------------------------------------------------------------------------------------
# Session context
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionValues:
    """The output of :func:`GetSessionValues` ``(Q, gacc, tacc, ids, pubshares, b, R, e)``."""

    Q: SecpPoint
    gacc: int
    tacc: int
    ids: tuple[int, ...]
    pubshares: tuple[bytes, ...]
    b: int
    R: SecpPoint
    e: int


@dataclass(frozen=True, eq=False)
class SessionContext:
    """The draft's Session Context ``(signers_ctx, aggnonce, v, tweak_1..v, is_xonly_t_1..v, m)``.

    Args:
        signers_ctx: the :class:`SignersContext`.
        aggnonce: the 66-byte aggregate nonce from the coordinator.
        tweaks: ``v`` 32-byte tweaks.
        is_xonly: ``v`` tweak modes (True: x-only / BIP341, False: plain / BIP32).
        m: the message (any length; 32 bytes for Bitcoin sighashes).

    :func:`GetSessionValues` runs once, on first use, and its result is kept.
    """

    signers_ctx: SignersContext
    aggnonce: bytes
    tweaks: Sequence[bytes]
    is_xonly: Sequence[bool]
    m: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.aggnonce, bytes | bytearray):
            raise DecodeError("aggnonce must be a byte string")
        if not isinstance(self.m, bytes | bytearray):
            raise DecodeError("the message must be a byte string")
        object.__setattr__(self, "aggnonce", bytes(self.aggnonce))
        object.__setattr__(self, "tweaks", tuple(self.tweaks))
        object.__setattr__(self, "is_xonly", tuple(self.is_xonly))
        object.__setattr__(self, "m", bytes(self.m))

    @cached_property
    def _values(self) -> SessionValues:
        return _get_session_values(self)


def SerializeIds(ids: Sequence[int]) -> bytes:
    """Draft internal ``SerializeIds``: the sorted identifiers as 4-byte big-endian integers.

    Raises:
        ParameterError: an identifier that is not an integer in ``[0, 2^32)``.
    """
    if not all(_is_id(i) and 0 <= i < _MAX_N for i in ids):
        raise ParameterError("participant identifiers must be integers in [0, 2^32).")
    # > For id in sorted(id_1..u): res = res || bytes(4, id)
    return b"".join(i.to_bytes(4, "big") for i in sorted(ids))


def _get_session_values(ctx: SessionContext) -> SessionValues:
    sctx = ctx.signers_ctx
    # > ValidateSignersCtx(signers_ctx); fail if that fails
    ValidateSignersCtx(sctx)
    ids, pubshares = tuple(sctx.ids), tuple(sctx.pubshares)
    # > Let tweak_ctx_0 = TweakCtxInit(thresh_pk); ... ApplyTweak(...) for i = 1 .. v
    # > Let (Q, gacc, tacc) = tweak_ctx_v
    tweak_ctx = _signers_tweak(sctx, ctx.tweaks, ctx.is_xonly)
    Q, gacc, tacc = tweak_ctx.Q, tweak_ctx.gacc, tweak_ctx.tacc
    # > Let ser_ids = SerializeIds(id_1..u)
    ser_ids = SerializeIds(ids)
    # > Let b = scalar_from_bytes_wrapping(hash_BIP0445/noncecoef(ser_ids || aggnonce
    # > || xbytes(Q) || m))
    b = _scalar_wrapping(
        tagged_hash("BIP0445/noncecoef", ser_ids + ctx.aggnonce + Q.xonly() + ctx.m)
    )
    # > Fail if b = Scalar(0)
    if b == 0:
        _negligible("the nonce coefficient b")
    # > Let R_1 = cpoint_ext(aggnonce[0:33]), R_2 = cpoint_ext(aggnonce[33:66]); fail if that
    # > fails and blame the coordinator for invalid aggnonce.
    if len(ctx.aggnonce) != 66:
        raise InvalidCoordinatorContributionError("aggnonce")
    try:
        R_1 = _cpoint_ext(ctx.aggnonce[0:33])
        R_2 = _cpoint_ext(ctx.aggnonce[33:66])
    except DecodeError:
        raise InvalidCoordinatorContributionError("aggnonce") from None
    # > Let R' = R_1 + b · R_2
    R_ = R_1 + R_2 * b
    # > If is_infinity(R'): Let final nonce R = G  Else: Let final nonce R = R'
    R = G if R_.is_identity() else R_
    # > Let e = scalar_from_bytes_wrapping(hash_BIP0340/challenge((xbytes(R) || xbytes(Q) || m)))
    e = _scalar_wrapping(tagged_hash("BIP0340/challenge", R.xonly() + Q.xonly() + ctx.m))
    # > Fail if e = Scalar(0)
    if e == 0:
        _negligible("the challenge e")
    # > Return (Q, gacc, tacc, id_1..u, pubshare_1..u, b, R, e)
    return SessionValues(Q, gacc, tacc, ids, pubshares, b, R, e)


def GetSessionValues(session_ctx: SessionContext) -> SessionValues:
    """Draft ``GetSessionValues`` (computed once per :class:`SessionContext`, then cached).

    Raises:
        InputError: an invalid signers context or tweak (see :func:`ValidateSignersCtx`,
            :func:`ApplyTweak`).
        InvalidCoordinatorContributionError: ``aggnonce`` is not 66 bytes of two
            ``cpoint_ext`` encodings (``contrib == "aggnonce"``).
    """
    return session_ctx._values


# --------------------------------------------------------------------------------------------
# Signing
# --------------------------------------------------------------------------------------------


def Sign(
    secnonce: SecNonce,
    secshare: bytes,
    my_id: int,
    session_ctx: SessionContext,
    *,
    self_verify: bool = True,
) -> bytes:
    """Draft ``Sign``: this signer's 32-byte partial signature. Consumes ``secnonce``.

    Args:
        secnonce: the :class:`SecNonce` from this signer's :func:`NonceGen`; **must not** have
            been used before (a used one raises :class:`StateError`).
        secshare: the 32-byte secret share.
        my_id: this signer's draft identifier (Shamir ``x - 1``).
        session_ctx: the :class:`SessionContext`.
        self_verify: run the draft's closing ``PartialSigVerifyInternal`` self-check (default;
            the draft recommends it).

    Returns:
        ``psig``, 32 bytes.

    Raises:
        StateError: ``secnonce`` already used, or zero ("first/second secnonce value is out of
            range.").
        ParameterError / DecodeError: an invalid session or signer (see the draft's messages).
        InvalidCoordinatorContributionError: an invalid ``aggnonce``.
        CryptoError: the self-check failed (a computation fault); nothing is returned.
    """
    # > Let (Q, gacc, _, id_1..u, pubshare_1..u, b, R, e) = GetSessionValues(session_ctx)
    v = GetSessionValues(session_ctx)
    if not isinstance(secnonce, SecNonce):
        raise ParameterError("secnonce must be a SecNonce")
    k = secnonce._consume()
    # > Let k_1' = scalar_from_bytes_nonzero_checked(secnonce[0:32]); fail if that fails
    k_1_ = _scalar_nonzero_checked(k[0:32])
    if k_1_ is None:
        raise StateError("first secnonce value is out of range.")
    # > Let k_2' = scalar_from_bytes_nonzero_checked(secnonce[32:64]); fail if that fails
    k_2_ = _scalar_nonzero_checked(k[32:64])
    if k_2_ is None:
        raise StateError("second secnonce value is out of range.")
    # > Let k_1 = k_1', k_2 = k_2' if has_even_y(R), otherwise let k_1 = -k_1', k_2 = -k_2'
    even_R = v.R.has_even_y()
    k_1 = k_1_ if even_R else ORD - k_1_
    k_2 = k_2_ if even_R else ORD - k_2_
    # > Let d' = scalar_from_bytes_nonzero_checked(secshare); fail if that fails
    d_ = _scalar_nonzero_checked(secshare) if isinstance(secshare, bytes | bytearray) else None
    if d_ is None:
        raise ParameterError("The signer's secret share value is out of range.")
    # > Let pubshare = cbytes(d' · G)
    P = SECP256K1.base_mul(d_)
    pubshare = P.encode()
    checked = session_ctx.signers_ctx._checked
    # > Fail if pubshare not in pubshare_1..u
    if pubshare not in checked.pubshare_set:
        raise ParameterError("The signer's pubshare must be included in the list of pubshares.")
    # > Fail if my_id not in id_1..u
    if not _is_id(my_id) or my_id not in v.ids:
        raise ParameterError("The signer's id must be present in the participant identifier list.")
    # > Let λ = DeriveInterpolatingValue(id_1..u, my_id); fail if that fails
    lam = checked.lambdas[my_id]
    # > Let g = Scalar(1) if has_even_y(Q), otherwise let g = Scalar(-1)
    # > Let d = g · gacc · d' (mod ord)
    d = d_ * v.gacc % ORD
    if not v.Q.has_even_y():
        d = ORD - d
    # > Let s = k_1 + b · k_2 + e · λ · d (mod ord)
    s = (k_1 + v.b * k_2 + v.e * lam % ORD * d) % ORD
    # > Let psig = scalar_to_bytes(s)
    psig = s.to_bytes(32, "big")
    if self_verify:
        # > Let pubnonce = cbytes(k_1' · G) || cbytes(k_2' · G)
        pub = secnonce._pub
        if pub is None:
            pub = (SECP256K1.base_mul(k_1_), SECP256K1.base_mul(k_2_))
        # > If PartialSigVerifyInternal(psig, my_id, pubnonce, pubshare, session_ctx) returns
        # > failure, fail
        if not _verify_core(s, pub[0], pub[1], P, v, lam):
            raise CryptoError("partial signature self-check failed")
    # > Return partial signature psig
    return psig


def _verify_core(
    s: int, R_s1: SecpPoint, R_s2: SecpPoint, P: SecpPoint, v: SessionValues, lam: int
) -> bool:
    """The verification equation of ``PartialSigVerifyInternal`` on decoded values."""
    # > Let Re_*' = R_*,1 + b · R_*,2
    Re_ = R_s1 + R_s2 * v.b
    # > Let g = Scalar(1) if has_even_y(Q), otherwise let g = Scalar(-1)
    # > Let g' = g · gacc (mod ord)
    g_ = v.gacc if v.Q.has_even_y() else ORD - v.gacc
    eP = P * (v.e * lam % ORD * g_)
    # > Let effective nonce Re_* = Re_*' if has_even_y(R), otherwise let Re_* = -Re_*'
    # > Fail if s · G ≠ Re_* + e · λ · g' · P
    # (for odd R the equation s·G = -Re_*' + e·λ·g'·P is checked as s·G + Re_*' = e·λ·g'·P,
    # which needs no point negation)
    if v.R.has_even_y():
        return SECP256K1.base_mul(s) == Re_ + eP
    return SECP256K1.base_mul(s) + Re_ == eP


# --------------------------------------------------------------------------------------------
# Partial signature verification
# --------------------------------------------------------------------------------------------


def PartialSigVerifyInternal(
    psig: bytes, my_id: int, pubnonce: bytes, pubshare: bytes, session_ctx: SessionContext
) -> bool:
    """Draft internal ``PartialSigVerifyInternal``: True iff ``psig`` verifies.

    Args:
        psig: the 32-byte partial signature.
        my_id: the signer's draft identifier.
        pubnonce: the signer's 66-byte public nonce.
        pubshare: the signer's 33-byte public share.
        session_ctx: the :class:`SessionContext`.

    Returns:
        False for a partial signature that does not verify, including undecodable inputs.

    Raises:
        Whatever :func:`GetSessionValues` raises.
    """
    # > Let (Q, gacc, _, id_1..u, pubshare_1..u, b, R, e) = GetSessionValues(session_ctx)
    v = GetSessionValues(session_ctx)
    checked = session_ctx.signers_ctx._checked
    # > Let s = scalar_from_bytes_checked(psig); fail if that fails
    s = _scalar_checked(psig) if isinstance(psig, bytes | bytearray) else None
    if s is None:
        return False
    # > Fail if pubshare not in pubshare_1..u
    if not isinstance(pubshare, bytes | bytearray) or bytes(pubshare) not in checked.pubshare_set:
        return False
    # > Fail if my_id not in id_1..u
    if not _is_id(my_id) or my_id not in v.ids:
        return False
    # > Let R_*,1 = cpoint(pubnonce[0:33]), R_*,2 = cpoint(pubnonce[33:66]); fail if either fails
    # > Let P = cpoint(pubshare); fail if that fails
    if not isinstance(pubnonce, bytes | bytearray) or len(pubnonce) != 66:
        return False
    try:
        R_s1, R_s2 = _cpoint(bytes(pubnonce[0:33])), _cpoint(bytes(pubnonce[33:66]))
        P = _cpoint(bytes(pubshare))
    except DecodeError:
        return False
    # > Let λ = DeriveInterpolatingValue(id_1..u, my_id)
    return _verify_core(s, R_s1, R_s2, P, v, checked.lambdas[my_id])


def _session_and_decoded(
    pubnonces: Sequence[bytes],
    signers_ctx: SignersContext,
    tweaks: Sequence[bytes],
    is_xonly: Sequence[bool],
    m: bytes,
) -> tuple[SessionContext, list[tuple[SecpPoint, SecpPoint]]]:
    # > ValidateSignersCtx(signers_ctx); fail if that fails
    ValidateSignersCtx(signers_ctx)
    ids = signers_ctx.ids
    if len(pubnonces) != len(ids):
        raise ParameterError("The pubnonces and ids arrays must have the same length.")
    if len(tweaks) != len(is_xonly):
        raise ParameterError("The tweaks and is_xonly arrays must have the same length.")
    # > Let aggnonce = NonceAgg(pubnonce_1..u); fail if that fails
    decoded = _decode_pubnonces(pubnonces, ids)
    aggnonce = _aggregate_points(decoded)
    # > Let session_ctx = (signers_ctx, aggnonce, v, tweak_1..v, is_xonly_t_1..v, m)
    return SessionContext(signers_ctx, aggnonce, tweaks, is_xonly, m), decoded


def PartialSigVerify(
    psig: bytes,
    pubnonces: Sequence[bytes],
    signers_ctx: SignersContext,
    tweaks: Sequence[bytes],
    is_xonly: Sequence[bool],
    m: bytes,
    i: int,
) -> bool:
    """Draft ``PartialSigVerify``: True iff signer ``i``'s 32-byte ``psig`` verifies.

    Args:
        psig: the partial signature of the signer at list position ``i``.
        pubnonces: every signer's 66-byte public nonce, in the order of ``signers_ctx.ids``.
        signers_ctx: the :class:`SignersContext`.
        tweaks, is_xonly: the tweaks and their modes.
        m: the message.
        i: the position of the signer, ``0 <= i <= u - 1``.

    Returns:
        False if the partial signature does not verify (the signer is to blame).

    Raises:
        InvalidContributionError: an undecodable public nonce (``contrib == "pubnonce"``).
        InputError: an invalid signers context, tweak or list length, or ``i`` out of range.
    """
    session_ctx, decoded = _session_and_decoded(pubnonces, signers_ctx, tweaks, is_xonly, m)
    if not _is_id(i) or not 0 <= i < signers_ctx.u:
        raise ParameterError("The signer index is out of range.")
    # > Run PartialSigVerifyInternal(psig, id_i, pubnonce_i, pubshare_i, session_ctx)
    # (the nonce was decoded by NonceAgg above; it is not decoded a second time)
    v = GetSessionValues(session_ctx)
    checked = signers_ctx._checked
    s = _scalar_checked(psig) if isinstance(psig, bytes | bytearray) else None
    if s is None:
        return False
    my_id = signers_ctx.ids[i]
    R_s1, R_s2 = decoded[i]
    return _verify_core(s, R_s1, R_s2, checked.points[i], v, checked.lambdas[my_id])


# --------------------------------------------------------------------------------------------
# Partial signature aggregation
# --------------------------------------------------------------------------------------------


def PartialSigAgg(psigs: Sequence[bytes], session_ctx: SessionContext) -> bytes:
    """Draft ``PartialSigAgg``: the 64-byte BIP340 signature ``xbytes(R) || bytes(s)``.

    It verifies under ``GetXonlyPubkey`` of the tweaked key if every partial signature passed
    :func:`PartialSigVerify`; this function does not verify them itself.

    Raises:
        InvalidContributionError: a partial signature that is not 32 bytes below the group
            order (``contrib == "psig"``; culprits name every such signer, the first is the one
            the draft blames).
        ParameterError: ``psigs`` and the signer list differ in length.
        Whatever :func:`GetSessionValues` raises.
    """
    # > Let (Q, _, tacc, _, _, _, R, e) = GetSessionValues(session_ctx); fail if that fails
    v = GetSessionValues(session_ctx)
    if len(psigs) != len(v.ids):
        raise ParameterError("The psigs and ids arrays must have the same length.")
    total = 0
    bad: list[int] = []
    # > For i = 1 .. u:
    for i, psig in enumerate(psigs):
        # > Let s_i = scalar_from_bytes_checked(psig_i); fail if that fails and blame signer at
        # > index i for invalid partial signature.
        s_i = _scalar_checked(psig) if isinstance(psig, bytes | bytearray) else None
        if s_i is None:
            bad.append(i)
        else:
            total += s_i
    if bad:
        raise InvalidContributionError("psig", bad, [v.ids[i] for i in bad])
    # > Let g = Scalar(1) if has_even_y(Q), otherwise let g = Scalar(-1)
    # > Let s = s_1 + ... + s_u + e · g · tacc (mod ord)
    g_tacc = v.tacc if v.Q.has_even_y() else ORD - v.tacc
    s = (total + v.e * g_tacc) % ORD
    # > Return sig = xbytes(R) || scalar_to_bytes(s)
    return v.R.xonly() + s.to_bytes(32, "big")


# --------------------------------------------------------------------------------------------
# Deterministic and stateless signing for a single signer
# --------------------------------------------------------------------------------------------


def DeterministicSign(
    secshare: bytes,
    my_id: int,
    aggothernonce: bytes | None,
    signers_ctx: SignersContext,
    tweaks: Sequence[bytes],
    is_xonly: Sequence[bool],
    m: bytes,
    rand: bytes | None,
) -> tuple[bytes, bytes]:
    """Draft ``DeterministicSign``: stateless signing for the **last** signer only.

    **Must not** be used by a signer that is not the last to contribute its nonce (after the
    aggregate of *all* other signers' nonces is fixed); otherwise the secret share leaks.

    Args:
        secshare: the 32-byte secret share.
        my_id: this signer's draft identifier.
        aggothernonce: the 66-byte aggregate of all other signers' public nonces, or None for
            a sole signer.
        signers_ctx, tweaks, is_xonly, m: as for :class:`SessionContext`.
        rand: optional 32 bytes of auxiliary randomness.

    Returns:
        ``(pubnonce, psig)``: 66 and 32 bytes.

    Raises:
        InvalidCoordinatorContributionError: an undecodable ``aggothernonce``
            (``contrib == "aggothernonce"``).
        InputError: as :func:`Sign`, and wrong lengths of ``secshare`` or ``rand``.
    """
    if not isinstance(secshare, bytes | bytearray) or len(secshare) != 32:
        raise ParameterError("The signer's secret share value is out of range.")
    if rand is not None and (not isinstance(rand, bytes | bytearray) or len(rand) != 32):
        raise DecodeError("The optional byte array rand must have length 32.")
    if not _is_id(my_id) or not 0 <= my_id < _MAX_N:
        raise ParameterError("The signer's id must be an integer in [0, 2^32).")
    # > If the optional argument rand is present:
    # >   Let secshare' = xor_bytes(secshare, hash_BIP0445/aux(rand)) Else: secshare' = secshare
    if rand is not None:
        secshare_ = xor_bytes(bytes(secshare), tagged_hash("BIP0445/aux", bytes(rand)))
    else:
        secshare_ = bytes(secshare)
    # > If the optional argument aggothernonce is present: aggothernonce' = aggothernonce
    # > Else: Let aggothernonce' = empty byte string
    aggothernonce_ = b"" if aggothernonce is None else bytes(aggothernonce)
    # > Let (_, _, u, id_1..u, pubshare_1..u, thresh_pk) = signers_ctx
    # The draft's reference code validates the signers context here, before the nonce
    # aggregation (its vectors depend on that order: a context with too few signers and an
    # all-zero aggothernonce is an input error, not a coordinator fault). Sign would validate
    # it anyway; doing it first only fixes which error wins.
    ValidateSignersCtx(signers_ctx)
    ids = signers_ctx.ids
    # > Let tweak_ctx_0 = TweakCtxInit(thresh_pk); ... Let tweaked_tpk = GetXonlyPubkey(...)
    tweaked_tpk = GetXonlyPubkey(_thresh_pubkey_and_tweak(signers_ctx.thresh_pk, tweaks, is_xonly))
    # > Let k_i = scalar_from_bytes_wrapping(hash_BIP0445/deterministic/nonce(secshare'
    # > || bytes(4, my_id) || bytes(4, u) || SerializeIds(id_1..u) || aggothernonce'
    # > || tweaked_tpk || bytes(8, len(m)) || m || bytes(1, i - 1))) for i = 1,2
    prefix = (
        secshare_
        + my_id.to_bytes(4, "big")
        + len(ids).to_bytes(4, "big")
        + SerializeIds(ids)
        + aggothernonce_
        + tweaked_tpk
        + len(m).to_bytes(8, "big")
        + bytes(m)
    )
    k_1 = _scalar_wrapping(tagged_hash("BIP0445/deterministic/nonce", prefix + b"\x00"))
    k_2 = _scalar_wrapping(tagged_hash("BIP0445/deterministic/nonce", prefix + b"\x01"))
    # > Fail if k_1 = Scalar(0) or k_2 = Scalar(0)
    if k_1 == 0 or k_2 == 0:
        _negligible("a nonce")
    # > Let R_*,1 = k_1 · G, R_*,2 = k_2 · G; pubnonce = ...; secnonce = ...
    secnonce, pubnonce = _nonce_pair(k_1, k_2)
    # > If the optional argument aggothernonce is present:
    # >   Let aggnonce = NonceAgg((pubnonce, aggothernonce)); fail if that fails and blame
    # >   coordinator for invalid aggothernonce.
    # > Else: Let aggnonce = pubnonce
    if aggothernonce is not None:
        try:
            decoded = _decode_pubnonces([pubnonce, aggothernonce_], [my_id, my_id])
        except InvalidContributionError:
            # pubnonce is ours and valid, so the fault is the aggothernonce's.
            raise InvalidCoordinatorContributionError("aggothernonce") from None
        aggnonce = _aggregate_points(decoded)
    else:
        aggnonce = pubnonce
    # > Let session_ctx = (signers_ctx, aggnonce, v, tweak_1..v, is_xonly_t_1..v, m)
    session_ctx = SessionContext(signers_ctx, aggnonce, tweaks, is_xonly, m)
    # > Return (pubnonce, Sign(secnonce, secshare, my_id, session_ctx))
    return pubnonce, Sign(secnonce, bytes(secshare), my_id, session_ctx)


# --------------------------------------------------------------------------------------------
# All signers in one process
# --------------------------------------------------------------------------------------------


def sign_local(
    shares: Mapping[int, int],
    pubshares: Mapping[int, Point],
    threshold_pubkey: Point,
    msg: bytes,
    *,
    tweaks: Sequence[tuple[bytes, bool]] = (),
    min_signers: int | None = None,
) -> bytes:
    """Run the whole BIP445 protocol for the signers in ``shares``, all in this process.

    One :class:`~tmpc.protocols.frost_machine.Bip445SignMachine` per signer, driven by
    :func:`tmpc.local.run_machines`: the draft's protocol without a coordinator ("each signer
    sending its contributions to every other signer"), exactly as party nodes run it. Every
    signer runs :func:`NonceGen` (fresh randomness from :mod:`secrets`, all optional
    arguments given), :func:`NonceAgg` (which names every invalid public nonce) and
    :func:`Sign`, then aggregates with :func:`PartialSigAgg`; if the aggregate does not verify
    it checks every partial signature (:func:`PartialSigVerifyInternal`) and names every bad
    signer.

    Identifiers here are Shamir x-coordinates (tmpc's party ids, ``x = id + 1`` of the draft).

    Args:
        shares: Shamir x -> secret share (an int in ``[1, ord)``) of every signer taking part.
        pubshares: Shamir x -> public share, for at least every signer; ``n`` is taken as the
            largest x given.
        threshold_pubkey: the (untweaked) threshold public key.
        msg: the message (32 bytes for a Bitcoin sighash; any length is accepted).
        tweaks: ``(tweak32, is_xonly)`` pairs applied in order, e.g.
            :func:`tmpc.protocols.taproot.taproot_tweaks_for`.
        min_signers: the threshold ``t`` when known (otherwise ``t = len(shares)``, which
            still makes a signer set that does not reproduce the key fail).

    Returns:
        The 64-byte BIP340 signature, valid under the x-only tweaked key (the Taproot output
        key when ``tweaks`` is the BIP341 tweak).

    Raises:
        ParameterError / DecodeError: bad identifiers, shares, tweaks, a secret share that is
            not its signer's, or a signer set whose public shares do not interpolate to
            ``threshold_pubkey`` (e.g. fewer than t).
        FaultyParticipantError: one error naming, as Shamir x, **all** signers whose public
            nonce or partial signature is invalid.
    """
    # Imported here: the machine module imports this one, and tmpc.local (the in-process
    # driver) sits above the protocol modules.
    from tmpc.local import run_machines
    from tmpc.protocols.frost_machine import Bip445SignMachine

    if not isinstance(shares, Mapping) or not shares:
        raise ParameterError("no signers given")
    if not isinstance(pubshares, Mapping):
        raise ParameterError("pubshares must map Shamir identifiers to points")
    for x in [*shares, *pubshares]:
        if not _is_id(x) or not 1 <= x <= _MAX_N:
            raise ParameterError(f"Shamir identifier {x!r} is not an integer in [1, 2^32]")
    xs = sorted(shares)
    t = len(xs) if min_signers is None else min_signers
    machines = {
        x: Bip445SignMachine(
            x,
            shares[x],
            threshold_pubkey,
            pubshares,
            xs,
            msg,
            min_signers=t,
            tweaks=tweaks,
        )
        for x in xs
    }
    run_machines(machines)
    return machines[xs[0]].signature
