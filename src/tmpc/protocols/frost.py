"""FROST signing, RFC 9591, generic over an RFC 9591 ciphersuite.

Every function takes the ciphersuite object first (``tmpc.group.secp256k1`` for
FROST(secp256k1, SHA-256), ``tmpc.group.ed25519`` for FROST(Ed25519, SHA-512)) and never
imports a concrete curve. Names follow the RFC: :func:`nonce_generate` (§4.1),
:func:`encode_group_commitment_list` (§4.3), :func:`compute_binding_factors` (§4.4),
:func:`compute_group_commitment` (§4.5), :func:`compute_challenge` (§4.6), :func:`commit`
(§5.1, round one), :func:`sign` (§5.2, round two), :func:`aggregate` and
:func:`verify_signature_share` (§5.3, §5.4), :func:`verify` (Appendix C / §6.1).

Data model:

- :class:`SigningNonces` is the secret round-one state of one signer. It is **single use**:
  :func:`sign` consumes it and drops its scalars, a second use raises
  :class:`~tmpc.errors.StateError`, and it refuses to be copied or pickled, so that no copy
  of it can ever sign a second message (two shares under one nonce reveal the key share).
- :class:`SigningCommitments` is the public round-one message ``(identifier, D_i, E_i)``
  with a strict wire format (``Ns + 2*Ne`` bytes).
- A commitment list is a sequence of :class:`SigningCommitments` sorted by identifier.
- Signature shares are scalars (``int``); on the wire they are ``Ns`` bytes, decoded with
  :func:`decode_signature_share`, which names the sender on any failure.

Errors: input mistakes of the caller raise :class:`~tmpc.errors.ParameterError`,
:class:`~tmpc.errors.DecodeError` or :class:`~tmpc.errors.StateError`; a signer whose data is
invalid is named in :class:`~tmpc.errors.FaultyParticipantError`. Error texts name only
identifiers and roles, never secret values.

Python integers are not constant time: the scalar arithmetic of a signature share runs in
Python, point arithmetic in libsecp256k1 / libsodium (see ``docs/security.md``). Dropping the
nonce scalars only removes the references; CPython may keep the old integer objects in freed
memory until it is reused.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from tmpc.encoding import expect_len
from tmpc.errors import (
    CryptoError,
    DecodeError,
    FaultyParticipantError,
    ParameterError,
    StateError,
)
from tmpc.group.base import Ciphersuite, Group, Point
from tmpc.protocols.machine import RandBytes
from tmpc.secret import OneTime
from tmpc.sharing import check_ids, derive_interpolating_value, lagrange_coefficients

__all__ = [
    "SigningCommitments",
    "SigningNonces",
    "aggregate",
    "binding_factor_for_participant",
    "binding_factor_inputs",
    "commit",
    "compute_binding_factors",
    "compute_challenge",
    "compute_group_commitment",
    "decode_commitments",
    "decode_signature_share",
    "encode_group_commitment_list",
    "encode_signature_share",
    "nonce_generate",
    "participants_from_commitment_list",
    "sign",
    "sign_local",
    "verify",
    "verify_signature_share",
]

NONCE_RANDOMNESS_LEN = 32
"""Bytes of fresh randomness per nonce (RFC 9591 §4.1: ``random_bytes(32)``)."""


# --------------------------------------------------------------------------------------------
# Messages and secret state
# --------------------------------------------------------------------------------------------


def _check_identifier(group: Group, identifier: object, what: str = "identifier") -> int:
    """Return ``identifier`` if it is an int in ``[1, order - 1]``, else raise ParameterError."""
    if not isinstance(identifier, int) or isinstance(identifier, bool):
        raise ParameterError(f"{what} must be an integer")
    if not 1 <= identifier < group.order:
        raise ParameterError(f"{what} {identifier} is zero or not below the group order")
    return identifier


def _check_point(group: Group, p: object, what: str) -> Point:
    """Return ``p`` if it is a non-identity point of ``group``, else raise ParameterError."""
    if not isinstance(p, Point) or p.group is not group:
        raise ParameterError(f"{what} is not a point of {group.name}")
    if p.is_identity():
        raise ParameterError(f"{what} is the identity element")
    return p


@dataclass(frozen=True, slots=True)
class SigningCommitments:
    """Round-one public message of one signer: ``(i, hiding_nonce_commitment_i,
    binding_nonce_commitment_i)`` (RFC 9591 §5.1).

    Wire format (:meth:`to_bytes`): ``SerializeScalar(identifier) || SerializeElement(hiding)
    || SerializeElement(binding)``, i.e. ``Ns + 2*Ne`` bytes (97 for secp256k1, 96 for
    ed25519), the same per-signer encoding that :func:`encode_group_commitment_list` hashes.

    Raises :class:`~tmpc.errors.ParameterError` on construction if the identifier is not in
    ``[1, order - 1]``, or a point is the identity or of another group.
    """

    identifier: int
    hiding: Point
    binding: Point

    def __post_init__(self) -> None:
        if not isinstance(self.hiding, Point):
            raise ParameterError("hiding nonce commitment is not a point")
        group = self.hiding.group
        _check_identifier(group, self.identifier)
        _check_point(group, self.hiding, "hiding nonce commitment")
        _check_point(group, self.binding, "binding nonce commitment")

    def to_bytes(self) -> bytes:
        """Canonical encoding, ``Ns + 2*Ne`` bytes."""
        group = self.hiding.group
        return group.encode_scalar(self.identifier) + self.hiding.encode() + self.binding.encode()

    @classmethod
    def from_bytes(cls, suite: Ciphersuite, data: bytes) -> SigningCommitments:
        """Strictly decode ``Ns + 2*Ne`` bytes.

        The length is checked first; the identifier must be a canonical non-zero scalar and
        both points must pass ``DeserializeElement`` (on the curve, canonical, not the
        identity, in the prime-order subgroup).

        Raises :class:`~tmpc.errors.DecodeError` on any failure. Use
        :func:`decode_commitments` for a message received from a signer: it names the sender.
        """
        group = suite.group
        ns, ne = group.scalar_len, group.element_len
        data = expect_len(data, ns + 2 * ne, "signing commitments")
        identifier = group.decode_scalar(data[:ns])
        if identifier == 0:
            raise DecodeError("signing commitments: identifier is zero")
        hiding = group.decode_point(data[ns : ns + ne])
        binding = group.decode_point(data[ns + ne :])
        return cls(identifier, hiding, binding)


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class SigningNonces:
    """Secret round-one state of one signer: ``(hiding_nonce, binding_nonce)`` and the
    commitments they were committed to (RFC 9591 §5.1).

    **Single use.** :func:`sign` takes the nonces out of their :class:`~tmpc.secret.OneTime`
    holder (checked and marked used under a lock, so two threads racing to sign with them get
    one share at most) before computing the share; afterwards :attr:`consumed` is True and any
    further use raises :class:`~tmpc.errors.StateError`. Copying, deep-copying and pickling
    raise :class:`~tmpc.errors.StateError` too, and a ``dataclasses.replace`` copy shares the
    holder: two shares under one nonce reveal the signer's key share. The secret never
    appears in ``repr``. This object deliberately offers no serialisation.
    """

    commitments: SigningCommitments
    _cell: OneTime[tuple[int, int]] = field(repr=False)

    @property
    def identifier(self) -> int:
        """The signer's identifier."""
        return self.commitments.identifier

    @property
    def consumed(self) -> bool:
        """True once :func:`sign` has used these nonces."""
        return self._cell.used

    @property
    def hiding_nonce(self) -> int:
        """The hiding nonce ``d_i``; raises :class:`~tmpc.errors.StateError` once consumed."""
        return self._cell.peek()[0]

    @property
    def binding_nonce(self) -> int:
        """The binding nonce ``e_i``; raises :class:`~tmpc.errors.StateError` once consumed."""
        return self._cell.peek()[1]

    def __repr__(self) -> str:
        state = "consumed" if self._cell.used else "unused"
        return f"SigningNonces(identifier={self.identifier}, {state}, scalars redacted)"

    def _consume(self) -> tuple[int, int]:
        """Take the scalars out, once (the only way :func:`sign` reads them).

        Raises :class:`~tmpc.errors.StateError` if they were used before, or if they are zero
        (a holder that was wiped, never a real nonce).
        """
        d, e = self._cell.take()
        if d == 0 or e == 0:
            raise StateError(f"signing nonces of signer {self.identifier} are zero")
        return d, e

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise StateError("signing nonces cannot be pickled or copied")

    def __reduce__(self) -> NoReturn:
        raise StateError("signing nonces cannot be pickled or copied")

    def __copy__(self) -> NoReturn:
        raise StateError("signing nonces cannot be copied")

    def __deepcopy__(self, memo: Any) -> NoReturn:
        raise StateError("signing nonces cannot be copied")


def decode_commitments(suite: Ciphersuite, sender: int, data: bytes) -> SigningCommitments:
    """Decode the round-one message ``data`` received from signer ``sender``.

    Args:
        suite: the ciphersuite.
        sender: identifier of the authenticated sender.
        data: ``Ns + 2*Ne`` bytes (see :meth:`SigningCommitments.to_bytes`).

    Returns:
        The decoded commitments.

    Raises:
        FaultyParticipantError: naming ``sender`` if the bytes do not decode strictly or
            carry another identifier than ``sender``.
    """
    try:
        comm = SigningCommitments.from_bytes(suite, data)
    except DecodeError as exc:
        raise FaultyParticipantError(
            f"signer {sender} sent malformed commitments: {exc}", sender
        ) from None
    if comm.identifier != sender:
        raise FaultyParticipantError(
            f"signer {sender} sent commitments for another identifier", sender
        )
    return comm


def encode_signature_share(suite: Ciphersuite, sig_share: int) -> bytes:
    """``SerializeScalar(sig_share)``: ``Ns`` (32) bytes."""
    return suite.group.encode_scalar(sig_share)


def decode_signature_share(suite: Ciphersuite, sender: int, data: bytes) -> int:
    """``DeserializeScalar`` of a signature share received from ``sender`` (RFC 9591 §5.3:
    "the Coordinator MUST validate each signature share using DeserializeScalar").

    Raises:
        FaultyParticipantError: naming ``sender`` on a wrong length or a value ``>= order``.
    """
    try:
        return suite.group.decode_scalar(data)
    except DecodeError as exc:
        raise FaultyParticipantError(
            f"signer {sender} sent a malformed signature share: {exc}", sender
        ) from None


# --------------------------------------------------------------------------------------------
# Helper functions (RFC 9591 §4)
# --------------------------------------------------------------------------------------------


def nonce_generate(suite: Ciphersuite, secret: int, random_bytes: bytes | None = None) -> int:
    """RFC 9591 §4.1 ``nonce_generate``: a nonce hedged with the secret key share.

    Args:
        suite: the ciphersuite.
        secret: the signer's secret key share (a scalar).
        random_bytes: exactly 32 fresh random bytes; drawn from :mod:`secrets` when None.
            Passing them is for test vectors only: **must not** be reused or predictable.

    Returns:
        The nonce, a scalar.

    Raises:
        ParameterError: if ``random_bytes`` is not exactly 32 bytes.
    """
    # RFC 9591 §4.1:
    # > random_bytes = random_bytes(32)
    if random_bytes is None:
        random_bytes = secrets.token_bytes(NONCE_RANDOMNESS_LEN)
    elif not isinstance(random_bytes, bytes) or len(random_bytes) != NONCE_RANDOMNESS_LEN:
        raise ParameterError(f"nonce randomness must be exactly {NONCE_RANDOMNESS_LEN} bytes")
    # > secret_enc = G.SerializeScalar(secret)
    secret_enc = suite.group.encode_scalar(secret)
    # > return H3(random_bytes || secret_enc)
    return suite.H3(random_bytes + secret_enc)


def encode_group_commitment_list(
    suite: Ciphersuite, commitment_list: Sequence[SigningCommitments]
) -> bytes:
    """RFC 9591 §4.3 ``encode_group_commitment_list``.

    Concatenates ``SerializeScalar(i) || SerializeElement(D_i) || SerializeElement(E_i)`` for
    every entry (``Ns + 2*Ne`` bytes each). The list **must** be sorted by identifier; this
    function only encodes (see :func:`sign` / :func:`aggregate` for the checks).
    """
    group = suite.group
    # > encoded_commitment = G.SerializeScalar(identifier) ||
    # >     G.SerializeElement(hiding_nonce_commitment) ||
    # >     G.SerializeElement(binding_nonce_commitment)
    return b"".join(
        group.encode_scalar(c.identifier) + c.hiding.encode() + c.binding.encode()
        for c in commitment_list
    )


def participants_from_commitment_list(
    commitment_list: Sequence[SigningCommitments],
) -> list[int]:
    """RFC 9591 §4.3 ``participants_from_commitment_list``: the identifiers, in list order."""
    return [c.identifier for c in commitment_list]


def binding_factor_for_participant(
    binding_factor_list: Sequence[tuple[int, int]], identifier: int
) -> int:
    """RFC 9591 §4.3 ``binding_factor_for_participant``.

    Raises:
        ParameterError: "invalid participant" if ``identifier`` is not in the list.
    """
    for i, binding_factor in binding_factor_list:
        if i == identifier:
            return binding_factor
    raise ParameterError(f"invalid participant: {identifier} has no binding factor")


def binding_factor_inputs(
    suite: Ciphersuite,
    group_public_key: Point,
    commitment_list: Sequence[SigningCommitments],
    msg: bytes,
) -> list[tuple[int, bytes]]:
    """The ``rho_input`` byte strings of RFC 9591 §4.4, one per signer, in list order.

    Each is ``SerializeElement(PK) || H4(msg) || H5(encoded commitments) ||
    SerializeScalar(i)``. Exposed so test vectors can check the ``binding_factor_input``
    values; :func:`compute_binding_factors` hashes them with H1.
    """
    group = suite.group
    # RFC 9591 §4.4:
    # > group_public_key_enc = G.SerializeElement(group_public_key)
    group_public_key_enc = group_public_key.encode()
    # > msg_hash = H4(msg)
    msg_hash = suite.H4(msg)
    # > encoded_commitment_hash = H5(encode_group_commitment_list(commitment_list))
    encoded_commitment_hash = suite.H5(encode_group_commitment_list(suite, commitment_list))
    # > rho_input_prefix = group_public_key_enc || msg_hash || encoded_commitment_hash
    rho_input_prefix = group_public_key_enc + msg_hash + encoded_commitment_hash
    # > rho_input = rho_input_prefix || G.SerializeScalar(identifier)
    return [
        (c.identifier, rho_input_prefix + group.encode_scalar(c.identifier))
        for c in commitment_list
    ]


def compute_binding_factors(
    suite: Ciphersuite,
    group_public_key: Point,
    commitment_list: Sequence[SigningCommitments],
    msg: bytes,
) -> list[tuple[int, int]]:
    """RFC 9591 §4.4 ``compute_binding_factors``: ``[(i, H1(rho_input_i)), ...]``.

    The list **must** be sorted by identifier (checked by :func:`sign` / :func:`aggregate`).
    """
    # > binding_factor = H1(rho_input)
    return [
        (i, suite.H1(rho_input))
        for i, rho_input in binding_factor_inputs(suite, group_public_key, commitment_list, msg)
    ]


def compute_group_commitment(
    suite: Ciphersuite,
    commitment_list: Sequence[SigningCommitments],
    binding_factor_list: Sequence[tuple[int, int]],
) -> Point:
    """RFC 9591 §4.5 ``compute_group_commitment``: ``R = sum_i (D_i + rho_i * E_i)``.

    May return the identity (negligible probability for honest inputs); it has no encoding,
    so :func:`compute_challenge` then raises.
    """
    factors = dict(binding_factor_list)
    for c in commitment_list:
        if c.identifier not in factors:
            raise ParameterError(f"invalid participant: {c.identifier} has no binding factor")
    return _group_commitment(suite.group, _commitment_shares(commitment_list, factors))


def compute_challenge(
    suite: Ciphersuite, group_commitment: Point, group_public_key: Point, msg: bytes
) -> int:
    """RFC 9591 §4.6 ``compute_challenge``: ``H2(SerializeElement(R) || SerializeElement(PK)
    || msg)``.

    Raises:
        InputError: if ``group_commitment`` or ``group_public_key`` is the identity.
    """
    # > challenge_input = group_comm_enc || group_public_key_enc || msg
    # > challenge = H2(challenge_input)
    return suite.H2(group_commitment.encode() + group_public_key.encode() + msg)


def _commitment_shares(
    commitment_list: Sequence[SigningCommitments], binding_factors: Mapping[int, int]
) -> dict[int, Point]:
    """``D_i + rho_i * E_i`` per signer: the RFC's ``comm_share`` (§5.3) and the summands of R."""
    # RFC 9591 §4.5:
    # > binding_nonce = G.ScalarMult(binding_nonce_commitment, binding_factor)
    # > group_commitment = group_commitment + hiding_nonce_commitment + binding_nonce
    return {
        c.identifier: c.hiding + c.binding * binding_factors[c.identifier] for c in commitment_list
    }


def _group_commitment(group: Group, comm_shares: Mapping[int, Point]) -> Point:
    acc = group.identity()
    for p in comm_shares.values():
        acc = acc + p
    return acc


# --------------------------------------------------------------------------------------------
# Validation and the per-session values every signer and the coordinator compute
# --------------------------------------------------------------------------------------------


def _check_min_signers(min_signers: int | None, count: int) -> None:
    """The caller's threshold check: at least ``min_signers`` signers take part."""
    if min_signers is None:
        return
    if not isinstance(min_signers, int) or isinstance(min_signers, bool) or min_signers < 1:
        raise ParameterError("min_signers must be a positive integer")
    if count < min_signers:
        raise ParameterError(f"{count} signers take part, fewer than the threshold {min_signers}")


def _check_commitment_list(
    suite: Ciphersuite, commitment_list: Sequence[SigningCommitments], min_signers: int | None
) -> tuple[int, ...]:
    """Check the list's shape and return its identifiers (RFC 9591 §5.2 input validation)."""
    group = suite.group
    if isinstance(commitment_list, str | bytes) or not isinstance(commitment_list, Sequence):
        raise ParameterError("commitment_list must be a sequence of SigningCommitments")
    if len(commitment_list) == 0:
        raise ParameterError("commitment_list is empty")
    _check_min_signers(min_signers, len(commitment_list))
    ids: list[int] = []
    for c in commitment_list:
        if not isinstance(c, SigningCommitments):
            raise ParameterError("commitment_list entries must be SigningCommitments")
        if c.hiding.group is not group or c.binding.group is not group:
            raise ParameterError(f"commitments of signer {c.identifier} are not of {group.name}")
        _check_identifier(group, c.identifier)
        # RFC 9591 §4.3: "This list MUST be sorted in ascending order by identifier."
        if ids and c.identifier == ids[-1]:
            raise ParameterError(f"commitment_list has identifier {c.identifier} twice")
        if ids and c.identifier < ids[-1]:
            raise ParameterError("commitment_list is not sorted in ascending order by identifier")
        ids.append(c.identifier)
    return tuple(ids)


@dataclass(frozen=True, slots=True)
class _Session:
    """Values of one signing session that every signer and the coordinator derive alike."""

    group_public_key: Point
    ids: tuple[int, ...]
    binding_factors: dict[int, int]
    comm_shares: dict[int, Point]
    group_commitment: Point
    challenge: int

    def lambdas(self, group: Group) -> dict[int, int]:
        return lagrange_coefficients(group, list(self.ids))


def _session(
    suite: Ciphersuite,
    group_public_key: Point,
    commitment_list: Sequence[SigningCommitments],
    msg: bytes,
) -> _Session:
    """Binding factors, commitment shares, R and the challenge, each computed once."""
    binding_factors = dict(compute_binding_factors(suite, group_public_key, commitment_list, msg))
    comm_shares = _commitment_shares(commitment_list, binding_factors)
    group_commitment = _group_commitment(suite.group, comm_shares)
    if group_commitment.is_identity():
        # Negligible for honest signers; SerializeElement has no encoding for it.
        raise CryptoError("group commitment is the identity element")
    challenge = compute_challenge(suite, group_commitment, group_public_key, msg)
    return _Session(
        group_public_key=group_public_key,
        ids=tuple(binding_factors),
        binding_factors=binding_factors,
        comm_shares=comm_shares,
        group_commitment=group_commitment,
        challenge=challenge,
    )


def _check_msg(msg: object) -> bytes:
    if not isinstance(msg, bytes):
        raise ParameterError("msg must be bytes")
    return msg


def _check_secret(group: Group, secret: object) -> int:
    if not isinstance(secret, int) or isinstance(secret, bool) or not 0 < secret < group.order:
        raise ParameterError("secret share must be an integer in [1, order - 1]")
    return secret


# --------------------------------------------------------------------------------------------
# Round one (RFC 9591 §5.1)
# --------------------------------------------------------------------------------------------


def commit(
    suite: Ciphersuite,
    identifier: int,
    secret_share: int,
    *,
    hiding_randomness: bytes | None = None,
    binding_randomness: bytes | None = None,
) -> tuple[SigningNonces, SigningCommitments]:
    """Round one, RFC 9591 §5.1 ``commit``: fresh nonces and their commitments.

    Args:
        suite: the ciphersuite.
        identifier: this signer's identifier, in ``[1, order - 1]``.
        secret_share: this signer's key share ``sk_i``.
        hiding_randomness, binding_randomness: 32 bytes each for test vectors; drawn from
            :mod:`secrets` when None. **Must not** be reused.

    Returns:
        ``(nonces, commitments)``: keep ``nonces`` secret and use them in exactly one
        :func:`sign`; send ``commitments`` (:meth:`SigningCommitments.to_bytes`) to the
        coordinator.

    Raises:
        ParameterError: bad identifier, secret share or randomness length.
    """
    group = suite.group
    _check_identifier(group, identifier)
    _check_secret(group, secret_share)
    # > hiding_nonce = nonce_generate(sk_i)
    hiding_nonce = nonce_generate(suite, secret_share, hiding_randomness)
    # > binding_nonce = nonce_generate(sk_i)
    binding_nonce = nonce_generate(suite, secret_share, binding_randomness)
    # > hiding_nonce_commitment = G.ScalarBaseMult(hiding_nonce)
    # > binding_nonce_commitment = G.ScalarBaseMult(binding_nonce)
    comms = SigningCommitments(
        identifier, group.base_mul(hiding_nonce), group.base_mul(binding_nonce)
    )
    return (
        SigningNonces(
            comms, OneTime((hiding_nonce, binding_nonce), f"signing nonces of signer {identifier}")
        ),
        comms,
    )


# --------------------------------------------------------------------------------------------
# Round two (RFC 9591 §5.2)
# --------------------------------------------------------------------------------------------


def _check_round_two_inputs(
    suite: Ciphersuite,
    identifier: int,
    secret_share: int,
    group_public_key: Point,
    nonces: SigningNonces,
    msg: bytes,
    commitment_list: Sequence[SigningCommitments],
    min_signers: int | None,
) -> None:
    """Every input check of :func:`sign`; runs before the nonces are consumed."""
    group = suite.group
    _check_identifier(group, identifier)
    _check_secret(group, secret_share)
    _check_point(group, group_public_key, "group public key")
    _check_msg(msg)
    if not isinstance(nonces, SigningNonces):
        raise ParameterError("nonces must be SigningNonces from commit()")
    nonces._cell.peek()  # early, clear StateError; the real check is the atomic take
    if nonces.identifier != identifier:
        raise ParameterError(f"nonces belong to signer {nonces.identifier}, not {identifier}")
    ids = _check_commitment_list(suite, commitment_list, min_signers)
    # RFC 9591 §5.2: "each participant MUST ensure that its identifier and commitments
    # (from the first round) appear in commitment_list."
    if identifier not in ids:
        raise ParameterError(f"signer {identifier} is not in the commitment list")
    own = commitment_list[ids.index(identifier)]
    if own.hiding != nonces.commitments.hiding or own.binding != nonces.commitments.binding:
        raise ParameterError(
            f"commitment list does not carry signer {identifier}'s round-one commitments"
        )


def _sign_share(
    suite: Ciphersuite,
    session: _Session,
    lambda_i: int,
    identifier: int,
    secret_share: int,
    hiding_nonce: int,
    binding_nonce: int,
) -> int:
    # > binding_factor = binding_factor_for_participant(binding_factor_list, identifier)
    binding_factor = session.binding_factors[identifier]
    # > sig_share = hiding_nonce + (binding_nonce * binding_factor) +
    # >     (lambda_i * sk_i * challenge)
    return (
        hiding_nonce + binding_nonce * binding_factor + lambda_i * secret_share * session.challenge
    ) % suite.group.order


def sign(
    suite: Ciphersuite,
    identifier: int,
    secret_share: int,
    group_public_key: Point,
    nonces: SigningNonces,
    msg: bytes,
    commitment_list: Sequence[SigningCommitments],
    *,
    min_signers: int | None = None,
) -> int:
    """Round two, RFC 9591 §5.2 ``sign``: this signer's signature share.

    Input checks come first and leave ``nonces`` untouched when they fail: the list is
    non-empty, has at least ``min_signers`` entries when given (checking the threshold is
    the caller's job: pass it), is sorted by identifier without duplicates, and carries this
    signer's own round-one commitments. Then the nonces are consumed, also if a later step
    fails.

    Args:
        suite: the ciphersuite.
        identifier: this signer's identifier.
        secret_share: this signer's key share ``sk_i``.
        group_public_key: the group public key ``PK``.
        nonces: this signer's round-one nonces; consumed.
        msg: the message to sign.
        commitment_list: every signer's :class:`SigningCommitments`, sorted by identifier.
        min_signers: the threshold t; the list must have at least t entries.

    Returns:
        ``sig_share``, a scalar (send it as :func:`encode_signature_share`, 32 bytes).

    Raises:
        ParameterError: any input check above fails (nonces not consumed).
        StateError: the nonces were already used.
        CryptoError: the group commitment is the identity (negligible probability; the
            nonces are consumed).
    """
    _check_round_two_inputs(
        suite, identifier, secret_share, group_public_key, nonces, msg, commitment_list, min_signers
    )
    # Consumed before anything is computed from them, so they are gone even if a later step
    # fails (RFC 9591 §5.2: "MUST NOT use the nonce as input more than once to sign").
    hiding_nonce, binding_nonce = nonces._consume()
    # > binding_factor_list = compute_binding_factors(group_public_key, commitment_list, msg)
    # > group_commitment = compute_group_commitment(commitment_list, binding_factor_list)
    # > challenge = compute_challenge(group_commitment, group_public_key, msg)
    session = _session(suite, group_public_key, commitment_list, msg)
    # > participant_list = participants_from_commitment_list(commitment_list)
    # > lambda_i = derive_interpolating_value(participant_list, identifier)
    lambda_i = derive_interpolating_value(suite.group, list(session.ids), identifier)
    return _sign_share(
        suite, session, lambda_i, identifier, secret_share, hiding_nonce, binding_nonce
    )


# --------------------------------------------------------------------------------------------
# Aggregation and share verification (RFC 9591 §5.3, §5.4)
# --------------------------------------------------------------------------------------------


def _share_is_valid(
    suite: Ciphersuite, session: _Session, identifier: int, PK_i: Point, z_i: int, lambda_i: int
) -> bool:
    # RFC 9591 §5.3 verify_signature_share:
    # > comm_share = hiding_nonce_commitment + G.ScalarMult(binding_nonce_commitment,
    # >     binding_factor)
    comm_share = session.comm_shares[identifier]
    # > l = G.ScalarBaseMult(sig_share_i)
    # > r = comm_share + G.ScalarMult(PK_i, challenge * lambda_i)
    # > return l == r
    lhs = suite.group.base_mul(z_i)
    rhs = comm_share + PK_i * (session.challenge * lambda_i % suite.group.order)
    return lhs == rhs


def _scalar_share(suite: Ciphersuite, sender: int, value: object) -> int:
    """A received share as a scalar: bytes strictly decoded, ints range-checked; names sender."""
    if isinstance(value, bytes | bytearray):
        return decode_signature_share(suite, sender, bytes(value))
    if not isinstance(value, int) or isinstance(value, bool):
        raise FaultyParticipantError(
            f"signer {sender} sent a signature share of a wrong type", sender
        )
    if not 0 <= value < suite.group.order:
        raise FaultyParticipantError(
            f"signer {sender} sent a signature share that is not a scalar below the group order",
            sender,
        )
    return value


def _aggregate_with_session(
    suite: Ciphersuite,
    session: _Session,
    sig_shares: Mapping[int, int | bytes],
    verifying_shares: Mapping[int, Point] | None,
) -> bytes:
    group = suite.group
    ids = session.ids
    # Exact set equality: a share from outside the signer set, or a missing one, is the
    # caller's mistake (it chose the set and collected the shares).
    keys = set(sig_shares)
    if keys != set(ids):
        missing = sorted(set(ids) - keys)
        extra = sorted(keys - set(ids), key=repr)
        raise ParameterError(
            f"signature shares do not match the signer set: missing {missing}, unexpected {extra}"
        )
    if verifying_shares is not None:
        for i in ids:
            if i not in verifying_shares:
                raise ParameterError(f"no verifying share for signer {i}")
            _check_point(group, verifying_shares[i], f"verifying share of signer {i}")

    # RFC 9591 §5.3: "the Coordinator MUST validate each signature share using
    # DeserializeScalar". A malformed share and a wrong share are both blamed, all at once.
    culprits: list[int] = []
    z_values: dict[int, int] = {}
    for i in ids:
        try:
            z_values[i] = _scalar_share(suite, i, sig_shares[i])
        except FaultyParticipantError:
            culprits.append(i)
    if verifying_shares is not None:
        # RFC 9591 §5.4: "Identifying misbehaving participants that produce invalid shares can
        # be done by checking signature shares from each participant using
        # verify_signature_share".
        lambdas = session.lambdas(group)
        for i in ids:
            if i in z_values and not _share_is_valid(
                suite, session, i, verifying_shares[i], z_values[i], lambdas[i]
            ):
                culprits.append(i)
    if culprits:
        culprits.sort()
        raise FaultyParticipantError(
            f"invalid signature shares from signers {culprits}", tuple(culprits)
        )

    # RFC 9591 §5.3 aggregate:
    # > z = z + z_i
    # > return (group_commitment, z)
    z = sum(z_values.values()) % group.order
    R = session.group_commitment
    # RFC 9591 §5.3: "The Coordinator SHOULD verify this signature using the group public key
    # before publishing or releasing the signature."
    if group.base_mul(z) != R + session.group_public_key * session.challenge:
        if verifying_shares is None:
            raise CryptoError("aggregate signature does not verify")
        raise ParameterError(
            "every signature share verifies but the signature does not: fewer signers than "
            "the threshold, or verifying shares that do not belong to the group public key"
        )
    # RFC 9591 Appendix B: SerializeElement(R) || SerializeScalar(z)
    return R.encode() + group.encode_scalar(z)


def aggregate(
    suite: Ciphersuite,
    commitment_list: Sequence[SigningCommitments],
    msg: bytes,
    group_public_key: Point,
    sig_shares: Mapping[int, int | bytes],
    verifying_shares: Mapping[int, Point] | None = None,
    *,
    min_signers: int | None = None,
) -> bytes:
    """Coordinator step, RFC 9591 §5.3 ``aggregate``, with identifiable abort (§5.4).

    Args:
        suite: the ciphersuite.
        commitment_list: the list sent to the signers in round two, sorted by identifier.
        msg: the signed message.
        group_public_key: the group public key ``PK``.
        sig_shares: identifier -> share, as received: a scalar ``int`` or its ``Ns``-byte
            encoding (strictly decoded). Keys **must** equal the identifiers of the list.
        verifying_shares: identifier -> ``PK_i`` from the group info. When given, every share
            is verified first and one error names every bad signer, so the honest ones can
            retry without them. When None, only the final signature is checked.
        min_signers: the threshold t, checked against the list length when given.

    Returns:
        The signature ``SerializeElement(R) || SerializeScalar(z)``: 65 bytes (secp256k1) or
        64 bytes (ed25519), already verified under ``group_public_key``.

    Raises:
        FaultyParticipantError: ``culprits`` = every signer whose share is malformed
            (wrong length, not below the order) or, with ``verifying_shares``, invalid.
        ParameterError: bad list, shares not exactly for the listed signers, missing verifying
            shares, or all shares valid but the signature not (fewer than t signers, or
            verifying shares inconsistent with ``group_public_key``).
        CryptoError: without ``verifying_shares``, the aggregate does not verify; retry the
            aggregation with them to learn who cheated.
    """
    _check_point(suite.group, group_public_key, "group public key")
    _check_msg(msg)
    _check_commitment_list(suite, commitment_list, min_signers)
    session = _session(suite, group_public_key, commitment_list, msg)
    return _aggregate_with_session(suite, session, sig_shares, verifying_shares)


def verify_signature_share(
    suite: Ciphersuite,
    identifier: int,
    PK_i: Point,
    comm_i: SigningCommitments,
    sig_share_i: int | bytes,
    commitment_list: Sequence[SigningCommitments],
    group_public_key: Point,
    msg: bytes,
) -> None:
    """RFC 9591 §5.3 ``verify_signature_share``; returns None or raises.

    Args:
        identifier: the signer's identifier.
        PK_i: its verifying share ``sk_i * G`` from the group info.
        comm_i: its round-one commitments; **must** equal its entry in ``commitment_list``.
        sig_share_i: its share, a scalar or its ``Ns``-byte encoding.
        commitment_list, group_public_key, msg: as in :func:`aggregate`.

    Raises:
        FaultyParticipantError: naming ``identifier`` if the share is malformed or invalid.
        ParameterError: bad list, ``identifier`` not in it, or ``comm_i`` not its entry.
    """
    group = suite.group
    _check_identifier(group, identifier)
    _check_point(group, PK_i, f"verifying share of signer {identifier}")
    _check_point(group, group_public_key, "group public key")
    _check_msg(msg)
    ids = _check_commitment_list(suite, commitment_list, None)
    if identifier not in ids:
        raise ParameterError(f"signer {identifier} is not in the commitment list")
    if (
        not isinstance(comm_i, SigningCommitments)
        or comm_i != commitment_list[ids.index(identifier)]
    ):
        raise ParameterError(f"comm_i is not signer {identifier}'s entry in the commitment list")
    z_i = _scalar_share(suite, identifier, sig_share_i)
    session = _session(suite, group_public_key, commitment_list, msg)
    # > lambda_i = derive_interpolating_value(participant_list, identifier)
    lambda_i = derive_interpolating_value(group, list(ids), identifier)
    if not _share_is_valid(suite, session, identifier, PK_i, z_i, lambda_i):
        raise FaultyParticipantError(
            f"signer {identifier} sent an invalid signature share", identifier
        )


# --------------------------------------------------------------------------------------------
# Verification (RFC 9591 Appendix C, §6.1)
# --------------------------------------------------------------------------------------------


def verify(suite: Ciphersuite, group_public_key: Point, msg: bytes, signature: bytes) -> bool:
    """Verify a FROST signature ``SerializeElement(R) || SerializeScalar(z)``.

    RFC 9591 Appendix C ``prime_order_verify``: ``z*G == R + c*PK`` with
    ``c = H2(SerializeElement(R) || SerializeElement(PK) || msg)``. ``R`` must pass
    ``DeserializeElement`` and ``z`` ``DeserializeScalar``.

    For FROST(Ed25519, SHA-512), RFC 9591 §6.1 asks for RFC 8032 verification with the
    cofactored equation ``[8][z]B = [8]R + [8][c]PK``. Here ``R`` and ``PK`` are decoded into
    the prime-order subgroup (canonical, not small order, no torsion component), where
    multiplying by 8 is a bijection, so the cofactored and the cofactorless equations agree.
    The one difference to a cofactored RFC 8032 verifier is deliberate strictness: a
    signature whose ``R`` carries a torsion component is rejected (FROST never produces one).
    Every signature accepted here is also accepted by libsodium / PyNaCl, which the tests
    check.

    Args:
        suite: the ciphersuite.
        group_public_key: ``PK``, a non-identity point of the suite's group.
        msg: the message.
        signature: ``Ne + Ns`` bytes (65 for secp256k1, 64 for ed25519).

    Returns:
        True if valid, False otherwise (also for malformed signatures).

    Raises:
        ParameterError: ``group_public_key`` is not a non-identity point of the suite.
    """
    group = suite.group
    _check_point(group, group_public_key, "group public key")
    _check_msg(msg)
    ne = group.element_len
    if not isinstance(signature, bytes) or len(signature) != ne + group.scalar_len:
        return False
    try:
        R = group.decode_point(signature[:ne])
        z = group.decode_scalar(signature[ne:])
    except DecodeError:
        return False
    # > c = H2(challenge_input)
    c = compute_challenge(suite, R, group_public_key, msg)
    # > l = G.ScalarBaseMult(z)
    # > r = R + G.ScalarMult(PK, c)
    # > return l == r
    return group.base_mul(z) == R + group_public_key * c


# --------------------------------------------------------------------------------------------
# All signers in one process
# --------------------------------------------------------------------------------------------


def _randomness_feed(randomness: tuple[bytes, bytes]) -> RandBytes:
    """A machine's ``rand`` that returns the given (hiding, binding) randomness, in order."""
    it = iter(randomness)

    def rand(k: int) -> bytes:
        chunk = next(it, None)
        if chunk is None:
            raise StateError("a signer asked for more nonce randomness than was given")
        return chunk

    return rand


def sign_local(
    suite: Ciphersuite,
    shares: Mapping[int, int],
    group_public_key: Point,
    msg: bytes,
    *,
    verifying_shares: Mapping[int, Point] | None = None,
    min_signers: int | None = None,
    nonce_randomness: Mapping[int, tuple[bytes, bytes]] | None = None,
) -> bytes:
    """Run round one, round two and aggregation for every signer in ``shares`` in one process.

    One :class:`~tmpc.protocols.frost_machine.FrostSignMachine` per signer, driven by
    :func:`tmpc.local.run_machines`: the signers run RFC 9591 §7.5 without a coordinator, each
    aggregating and verifying the signature, exactly as party nodes do.

    Args:
        suite: the ciphersuite.
        shares: identifier -> secret key share of every signer taking part.
        group_public_key: ``PK``.
        msg: the message.
        verifying_shares: identifier -> ``PK_i``. When given, every signer's share is checked
            against it first, as a coordinator would check every signature share, and the
            signers whose share does not match are named. When None the public shares are
            computed here from ``shares`` (every signer is run here, none can cheat), so only
            the signature can fail.
        min_signers: the threshold t; fewer signers raise :class:`ParameterError`.
        nonce_randomness: identifier -> (hiding, binding) 32-byte randomness, for test vectors
            only; fresh randomness from :mod:`secrets` for a signer not in it.

    Returns:
        The verified signature (65 bytes secp256k1, 64 bytes ed25519).

    Raises:
        ParameterError: bad identifiers, shares or threshold, or shares that do not belong to
            ``group_public_key``.
        FaultyParticipantError: with ``verifying_shares``, the signers whose shares fail them.
    """
    # Imported here: the machine module imports this one, and tmpc.local (the in-process
    # driver) sits above the protocol modules.
    from tmpc.local import run_machines
    from tmpc.protocols.frost_machine import FrostSignMachine

    group = suite.group
    _check_point(group, group_public_key, "group public key")
    _check_msg(msg)
    if not isinstance(shares, Mapping):
        raise ParameterError("shares must map identifiers to secret shares")
    check_ids(group, list(shares))
    ids = sorted(shares)
    _check_min_signers(min_signers, len(ids))
    secret = {i: _check_secret(group, shares[i]) for i in ids}
    public = {i: group.base_mul(secret[i]) for i in ids}
    if verifying_shares is not None:
        if not isinstance(verifying_shares, Mapping):
            raise ParameterError("verifying_shares must map identifiers to points")
        for i in ids:
            if i not in verifying_shares:
                raise ParameterError(f"no verifying share for signer {i}")
            _check_point(group, verifying_shares[i], f"verifying share of signer {i}")
        # RFC 9591 §5.4 (the coordinator's check): sig_share_i verifies against PK_i exactly
        # when sk_i * G = PK_i, so a share that is not PK_i's names its signer.
        bad = [i for i in ids if public[i] != verifying_shares[i]]
        if bad:
            raise FaultyParticipantError(f"invalid signature shares from signers {bad}", tuple(bad))
    randomness = nonce_randomness or {}
    machines = {
        i: FrostSignMachine(
            suite,
            i,
            secret[i],
            group_public_key,
            public,
            ids,
            msg,
            min_signers=len(ids) if min_signers is None else min_signers,
            rand=_randomness_feed(randomness[i]) if i in randomness else None,
        )
        for i in ids
    }
    run_machines(machines)
    return machines[ids[0]].signature
