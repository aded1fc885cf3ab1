"""Ethereum transactions signed by a threshold ECDSA cluster: EIP-1559 (type 2) and EIP-155.

What this module does, and nothing more: it encodes a transaction with RLP, computes the
32-byte digest the cluster signs, asks a ``sign_digest`` callable for a 64-byte low-s
``r || s``, finds the recovery id against the cluster's public key, attaches the signature and
returns the raw transaction, after checking that the raw bytes recover to the cluster's address.
It never talks to a node or a network and does not import the signing schemes: the same code
serves a wallet in one process and a cluster of nodes.

Formats (Keccak-256 is the original Keccak padding, see :mod:`tmpc.chains.addresses`):

- **EIP-1559** (type 2): the digest is ``keccak256(0x02 || rlp([chain_id, nonce,
  max_priority_fee_per_gas, max_fee_per_gas, gas_limit, destination, amount, data,
  access_list]))``; the raw transaction appends ``signature_y_parity, signature_r,
  signature_s`` to that list.
- **Legacy with EIP-155** replay protection: the digest is ``keccak256(rlp([nonce, gasprice,
  startgas, to, value, data, chain_id, 0, 0]))``; the raw transaction is ``rlp([nonce, gasprice,
  startgas, to, value, data, v, r, s])`` with ``v = recovery_id + 35 + 2 * chain_id``.
  Pre-EIP-155 transactions (``v`` 27/28, valid on every chain) are deliberately not offered.

Signatures must be low-s (EIP-2: nodes reject ``s > n/2``); a high-s signature from the signer
is refused, never silently normalised, because a signer that returns high-s is broken.

Addresses given as text must carry their EIP-55 checksum: an all-lower-case address has none,
so a typo in it would send funds to a wrong address unnoticed. Pass the 20 bytes instead when
the checksum is really unavailable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import coincurve

from tmpc.chains.addresses import eip55_checksum, ethereum_address, keccak256
from tmpc.errors import CryptoError, DecodeError, ParameterError
from tmpc.group import SECP256K1
from tmpc.primitives.ecdsa_format import compact, recovery_id

__all__ = [
    "EIP1559_TX_TYPE",
    "MIN_GAS",
    "AccessList",
    "Eip1559Tx",
    "EthTx",
    "LegacyTx",
    "SignDigest",
    "SignedEthTx",
    "decode_signed",
    "parse_address",
    "recover_sender",
    "sign_transaction",
    "signing_hash",
    "signing_payload",
]

#: EIP-2718 type byte of an EIP-1559 transaction.
EIP1559_TX_TYPE: Final = 0x02
#: The intrinsic gas of the cheapest transaction (a plain transfer); any lower limit is invalid.
MIN_GAS: Final = 21_000

_N: Final = SECP256K1.order
_HALF_N: Final = _N // 2
_MAX_U64: Final = 2**64 - 1
_MAX_U256: Final = 2**256 - 1

#: The cluster's signer: a 32-byte digest in, a 64-byte low-s ``r || s`` out.
SignDigest: TypeAlias = Callable[[bytes], bytes]
#: EIP-2930 access list: ``(address, storage_keys)`` pairs (20-byte addresses, 32-byte keys).
AccessList: TypeAlias = tuple[tuple[bytes, tuple[bytes, ...]], ...]


def _rlp_encode(item: Any) -> bytes:
    # pyrlp imports eth_utils (~0.2 s): loaded on first use, not when the CLI starts.
    import rlp

    return bytes(rlp.encode(item))


def _rlp_decode(data: bytes) -> Any:
    # Strict: canonical lengths, single bytes not wrapped, no trailing bytes.
    import rlp

    try:
        return rlp.decode(data, strict=True)
    except rlp.DecodingError:
        raise DecodeError("raw transaction: malformed RLP") from None


def _uint(name: str, value: object, low: int, high: int) -> int:
    # bool is an int subclass; True as a nonce is a caller bug, not the number 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ParameterError(f"{name} must be an integer")
    if not low <= value <= high:
        raise ParameterError(f"{name} must be in {low}..{high}")
    return value


def parse_address(address: bytes | str, what: str = "address") -> bytes:
    """The 20 bytes of an Ethereum address.

    Args:
        address: 20 bytes, or text ``0x`` + 40 hex digits **with** its EIP-55 mixed-case
            checksum (an all-lower- or all-upper-case text is refused unless that is its
            checksummed form).
        what: the field name used in error messages.

    Returns:
        20 bytes.

    Raises:
        DecodeError: wrong length, not hex, or a text whose checksum is missing or wrong.
    """
    if isinstance(address, bytes | bytearray):
        if len(address) != 20:
            raise DecodeError(f"{what}: an Ethereum address is 20 bytes, got {len(address)}")
        return bytes(address)
    if not isinstance(address, str):
        raise DecodeError(f"{what}: expected 20 bytes or 0x-prefixed EIP-55 text")
    if len(address) != 42 or not address.startswith("0x"):
        raise DecodeError(f"{what}: expected 0x followed by 40 hex digits")
    try:
        raw = bytes.fromhex(address[2:])
    except ValueError:
        raise DecodeError(f"{what}: not hexadecimal") from None
    # EIP-55: the case of each letter is a checksum bit; text without it is refused.
    if eip55_checksum(raw) != address:
        raise DecodeError(f"{what}: EIP-55 checksum missing or wrong (expected mixed case)")
    return raw


def _optional_address(to: bytes | str | None) -> bytes:
    # The RLP ``to`` field: empty for contract creation, otherwise exactly 20 bytes.
    return b"" if to is None else parse_address(to, "to")


def _data(data: object) -> bytes:
    if not isinstance(data, bytes | bytearray):
        raise ParameterError("data must be bytes")
    return bytes(data)


def _access_list(entries: object) -> AccessList:
    if isinstance(entries, str | bytes | bytearray) or not isinstance(entries, Sequence):
        raise ParameterError("access_list must be a sequence of (address, storage_keys) pairs")
    out: list[tuple[bytes, tuple[bytes, ...]]] = []
    for entry in entries:
        if (
            not isinstance(entry, Sequence)
            or isinstance(entry, str | bytes | bytearray)
            or len(entry) != 2
        ):
            raise ParameterError("access_list entry must be an (address, storage_keys) pair")
        address, keys = entry
        if isinstance(keys, str | bytes | bytearray) or not isinstance(keys, Sequence):
            raise ParameterError("access_list storage keys must be a sequence of 32-byte keys")
        checked = []
        for key in keys:
            if not isinstance(key, bytes | bytearray) or len(key) != 32:
                raise ParameterError("access_list storage key must be 32 bytes")
            checked.append(bytes(key))
        out.append((parse_address(address, "access_list address"), tuple(checked)))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Eip1559Tx:
    """An unsigned EIP-1559 (type 2) transaction.

    Checked on construction (``ParameterError`` / ``DecodeError``): ``chain_id`` in
    ``1..2**64-1``; ``nonce`` in ``0..2**64-2`` (EIP-2681); ``gas`` in ``21000..2**64-1``;
    fees and ``value`` in ``0..2**256-1`` with ``max_priority_fee_per_gas <= max_fee_per_gas``
    (EIP-1559); ``to`` 20 bytes, EIP-55 text, or None for contract creation. After
    construction ``to`` is 20 bytes or None, ``data`` bytes and ``access_list`` an
    :data:`AccessList` of tuples.
    """

    chain_id: int
    nonce: int
    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    gas: int
    to: bytes | str | None
    value: int
    data: bytes = b""
    access_list: Sequence[tuple[bytes | str, Sequence[bytes]]] = ()

    def __post_init__(self) -> None:
        _uint("chain_id", self.chain_id, 1, _MAX_U64)
        _uint("nonce", self.nonce, 0, _MAX_U64 - 1)
        _uint("max_priority_fee_per_gas", self.max_priority_fee_per_gas, 0, _MAX_U256)
        _uint("max_fee_per_gas", self.max_fee_per_gas, 0, _MAX_U256)
        _uint("gas", self.gas, MIN_GAS, _MAX_U64)
        _uint("value", self.value, 0, _MAX_U256)
        # EIP-1559: "assert transaction.max_fee_per_gas >= transaction.max_priority_fee_per_gas"
        if self.max_priority_fee_per_gas > self.max_fee_per_gas:
            raise ParameterError("max_priority_fee_per_gas must not exceed max_fee_per_gas")
        to = _optional_address(self.to)
        object.__setattr__(self, "to", to or None)
        object.__setattr__(self, "data", _data(self.data))
        object.__setattr__(self, "access_list", _access_list(self.access_list))

    def _fields(self) -> list[Any]:
        # EIP-1559: [chain_id, nonce, max_priority_fee_per_gas, max_fee_per_gas, gas_limit,
        # destination, amount, data, access_list]
        return [
            self.chain_id,
            self.nonce,
            self.max_priority_fee_per_gas,
            self.max_fee_per_gas,
            self.gas,
            _optional_address(self.to),
            self.value,
            self.data,
            [[address, list(keys)] for address, keys in _access_list(self.access_list)],
        ]


@dataclass(frozen=True, slots=True)
class LegacyTx:
    """An unsigned legacy transaction with EIP-155 replay protection.

    Checked on construction as :class:`Eip1559Tx`: ``nonce`` in ``0..2**64-2``, ``gas_price``
    and ``value`` in ``0..2**256-1``, ``gas`` in ``21000..2**64-1``, ``to`` 20 bytes / EIP-55
    text / None, ``data`` bytes, ``chain_id`` in ``1..2**64-1`` (EIP-155 needs one).
    """

    nonce: int
    gas_price: int
    gas: int
    to: bytes | str | None
    value: int
    data: bytes
    chain_id: int

    def __post_init__(self) -> None:
        _uint("nonce", self.nonce, 0, _MAX_U64 - 1)
        _uint("gas_price", self.gas_price, 0, _MAX_U256)
        _uint("gas", self.gas, MIN_GAS, _MAX_U64)
        _uint("value", self.value, 0, _MAX_U256)
        _uint("chain_id", self.chain_id, 1, _MAX_U64)
        to = _optional_address(self.to)
        object.__setattr__(self, "to", to or None)
        object.__setattr__(self, "data", _data(self.data))

    def _fields(self) -> list[Any]:
        # EIP-155: "nonce, gasprice, startgas, to, value, data"
        return [
            self.nonce,
            self.gas_price,
            self.gas,
            _optional_address(self.to),
            self.value,
            self.data,
        ]


#: Either kind of unsigned transaction.
EthTx: TypeAlias = Eip1559Tx | LegacyTx


@dataclass(frozen=True, slots=True)
class SignedEthTx:
    """A signed transaction ready for ``eth_sendRawTransaction``.

    Attributes:
        raw: the raw transaction bytes (type 2: ``0x02 || rlp(...)``; legacy: ``rlp(...)``).
        tx_hash: ``0x`` + hex of ``keccak256(raw)``, the transaction id nodes report (66 chars).
        sender: the EIP-55 address the transaction recovers to (the cluster's).
    """

    raw: bytes
    tx_hash: str
    sender: str

    @property
    def raw_hex(self) -> str:
        """``0x`` + hex of :attr:`raw`, the form JSON-RPC expects."""
        return "0x" + self.raw.hex()


def signing_payload(tx: EthTx) -> bytes:
    """The bytes whose Keccak-256 is signed (EIP-155's "signing data").

    Type 2: ``0x02 || rlp([chain_id, nonce, max_priority_fee_per_gas, max_fee_per_gas, gas,
    to, value, data, access_list])``. Legacy: ``rlp([nonce, gas_price, gas, to, value, data,
    chain_id, 0, 0])``.

    Raises:
        ParameterError: ``tx`` is neither an :class:`Eip1559Tx` nor a :class:`LegacyTx`.
    """
    if isinstance(tx, Eip1559Tx):
        # EIP-1559: "keccak256(0x02 || rlp([chain_id, nonce, ..., access_list]))"
        return bytes([EIP1559_TX_TYPE]) + _rlp_encode(tx._fields())
    if isinstance(tx, LegacyTx):
        # EIP-155: "hash nine elements, with v replaced by CHAIN_ID, r = 0 and s = 0"
        return _rlp_encode([*tx._fields(), tx.chain_id, 0, 0])
    raise ParameterError("expected an Eip1559Tx or a LegacyTx")


def signing_hash(tx: EthTx) -> bytes:
    """The 32-byte digest the cluster signs: ``keccak256(signing_payload(tx))``.

    Raises:
        ParameterError: ``tx`` is neither an :class:`Eip1559Tx` nor a :class:`LegacyTx`.
    """
    return keccak256(signing_payload(tx))


def _raw(tx: EthTx, recid: int, r: int, s: int) -> bytes:
    if isinstance(tx, Eip1559Tx):
        # EIP-1559: "rlp([..., access_list, signature_y_parity, signature_r, signature_s])"
        return bytes([EIP1559_TX_TYPE]) + _rlp_encode([*tx._fields(), recid, r, s])
    # EIP-155: "v = CHAIN_ID * 2 + 35 or v = CHAIN_ID * 2 + 36"
    return _rlp_encode([*tx._fields(), recid + 35 + 2 * tx.chain_id, r, s])


def _cluster_address(public_key33: bytes) -> str:
    if not isinstance(public_key33, bytes | bytearray) or len(public_key33) != 33:
        raise DecodeError("public key: expected the 33-byte compressed secp256k1 key")
    return ethereum_address(bytes(public_key33))


def sign_transaction(tx: EthTx, sign_digest: SignDigest, public_key33: bytes) -> SignedEthTx:
    """Have the cluster sign ``tx`` and return the raw signed transaction.

    Steps: compute :func:`signing_hash`; call ``sign_digest`` once with it; require a 64-byte
    ``r || s`` with ``0 < r < n`` and low ``s`` (EIP-2); find the recovery id against
    ``public_key33`` (this also verifies the signature); attach ``(y_parity, r, s)`` (legacy:
    ``v = recovery_id + 35 + 2 * chain_id``); finally decode the raw bytes again and check
    that they recover to the cluster's address.

    Args:
        tx: the unsigned transaction.
        sign_digest: the cluster's signer, 32-byte digest in, 64-byte low-s ``r || s`` out.
            It **must not** hash the digest again.
        public_key33: the cluster's 33-byte compressed secp256k1 public key.

    Returns:
        The :class:`SignedEthTx` (raw bytes, ``0x`` transaction hash, sender address).

    Raises:
        DecodeError: ``public_key33`` is not a 33-byte compressed key on the curve.
        ParameterError: ``tx`` of an unknown kind; ``sign_digest`` returned something other
            than 64 bytes, a high-s signature, or one whose recovery id is 2 or 3 (its nonce
            point's x exceeded n: Ethereum cannot express that; sign again).
        CryptoError: the signature does not verify under ``public_key33`` for this
            transaction (wrong key, wrong digest, garbage), or the raw transaction does not
            recover to the cluster's address.
    """
    sender = _cluster_address(public_key33)
    digest = signing_hash(tx)
    signature = sign_digest(digest)
    if not isinstance(signature, bytes | bytearray) or len(signature) != 64:
        raise ParameterError("sign_digest must return the 64-byte r || s")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (0 < r < _N and 0 < s < _N):
        raise CryptoError("the cluster's signature is not valid for this transaction")
    # EIP-2: "All transaction signatures whose s-value is greater than secp256k1n/2 are now
    # considered invalid."
    if s > _HALF_N:
        raise ParameterError("sign_digest returned a high-s signature; Ethereum needs s <= n/2")
    recid = recovery_id(r, s, digest, bytes(public_key33))
    if recid > 1:
        raise ParameterError(
            "signature has recovery id 2 or 3, which Ethereum cannot express; sign again"
        )
    raw = _raw(tx, recid, r, s)
    if recover_sender(raw) != sender:
        raise CryptoError("the signed transaction does not recover to the cluster's address")
    return SignedEthTx(raw=raw, tx_hash="0x" + keccak256(raw).hex(), sender=sender)


def _int(item: object, name: str) -> int:
    # RLP scalars: big-endian, no leading zero byte (0 is the empty string).
    if not isinstance(item, bytes):
        raise DecodeError(f"{name}: expected an RLP string")
    if item[:1] == b"\x00":
        raise DecodeError(f"{name}: integer with a leading zero byte")
    if len(item) > 32:
        raise DecodeError(f"{name}: integer longer than 32 bytes")
    return int.from_bytes(item, "big")


def _bytes(item: object, name: str) -> bytes:
    if not isinstance(item, bytes):
        raise DecodeError(f"{name}: expected an RLP string")
    return item


def _to(item: object) -> bytes | None:
    to = _bytes(item, "to")
    if to == b"":
        return None
    if len(to) != 20:
        raise DecodeError("to: expected 20 bytes or empty")
    return to


def _decoded_access_list(item: object) -> AccessList:
    if not isinstance(item, list):
        raise DecodeError("access_list: expected an RLP list")
    out = []
    for entry in item:
        if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[1], list):
            raise DecodeError("access_list entry: expected [address, [storage_keys]]")
        address = _bytes(entry[0], "access_list address")
        keys = tuple(_bytes(k, "access_list storage key") for k in entry[1])
        if len(address) != 20 or any(len(k) != 32 for k in keys):
            raise DecodeError("access_list entry: wrong address or storage key length")
        out.append((address, keys))
    return tuple(out)


def decode_signed(raw: bytes) -> tuple[EthTx, int, int, int]:
    """Parse a signed type-2 or EIP-155 legacy transaction strictly.

    Canonical RLP only (no trailing bytes, minimal lengths and integers), the right number
    of fields, 20-byte addresses, 32-byte storage keys, ``0 < r < n``, ``0 < s <= n/2``, and for
    legacy a ``v`` of ``35 + 2 * chain_id`` or ``36 + 2 * chain_id`` with ``chain_id >= 1``.

    Args:
        raw: the raw transaction bytes.

    Returns:
        ``(tx, recovery_id, r, s)`` with ``recovery_id`` 0 or 1.

    Raises:
        DecodeError: anything else (other transaction types, pre-EIP-155 ``v`` 27/28,
            malformed RLP, fields out of range, high ``s``).
    """
    if not isinstance(raw, bytes | bytearray) or len(raw) == 0:
        raise DecodeError("raw transaction must be non-empty bytes")
    raw = bytes(raw)
    if raw[0] == EIP1559_TX_TYPE:
        items = _rlp_decode(raw[1:])
    elif raw[0] >= 0xC0:  # EIP-2718: a legacy transaction starts with an RLP list
        items = _rlp_decode(raw)
    else:
        raise DecodeError(f"unsupported transaction type 0x{raw[0]:02x}")
    if not isinstance(items, list):
        raise DecodeError("raw transaction: expected an RLP list")
    try:
        if raw[0] == EIP1559_TX_TYPE:
            if len(items) != 12:
                raise DecodeError("type-2 transaction: expected 12 fields")
            tx: EthTx = Eip1559Tx(
                chain_id=_int(items[0], "chain_id"),
                nonce=_int(items[1], "nonce"),
                max_priority_fee_per_gas=_int(items[2], "max_priority_fee_per_gas"),
                max_fee_per_gas=_int(items[3], "max_fee_per_gas"),
                gas=_int(items[4], "gas"),
                to=_to(items[5]),
                value=_int(items[6], "value"),
                data=_bytes(items[7], "data"),
                access_list=_decoded_access_list(items[8]),
            )
            recid = _int(items[9], "y_parity")
            if recid > 1:
                raise DecodeError("signature_y_parity must be 0 or 1")
        else:
            if len(items) != 9:
                raise DecodeError("legacy transaction: expected 9 fields")
            v = _int(items[6], "v")
            # EIP-155: "v = CHAIN_ID * 2 + 35 or v = CHAIN_ID * 2 + 36"; 27/28 lack replay
            # protection and are refused.
            if v < 37:
                raise DecodeError("legacy transaction without EIP-155 chain id (v < 37)")
            chain_id, recid = divmod(v - 35, 2)
            tx = LegacyTx(
                nonce=_int(items[0], "nonce"),
                gas_price=_int(items[1], "gas_price"),
                gas=_int(items[2], "gas"),
                to=_to(items[3]),
                value=_int(items[4], "value"),
                data=_bytes(items[5], "data"),
                chain_id=chain_id,
            )
    except ParameterError as exc:
        raise DecodeError(f"raw transaction: {exc}") from None
    r = _int(items[-2], "r")
    s = _int(items[-1], "s")
    if not 0 < r < _N:
        raise DecodeError("signature r out of range")
    # EIP-2: s must be in 1..n/2.
    if not 0 < s <= _HALF_N:
        raise DecodeError("signature s out of range or high (EIP-2)")
    return tx, recid, r, s


def recover_sender(raw: bytes) -> str:
    """The EIP-55 address a signed transaction recovers to (what a node calls ``from``).

    Parses with :func:`decode_signed`, recomputes :func:`signing_hash` from the decoded
    fields and recovers the public key with libsecp256k1.

    Args:
        raw: the raw transaction bytes.

    Returns:
        ``0x`` + 40 mixed-case hex digits.

    Raises:
        DecodeError: see :func:`decode_signed`.
        CryptoError: no public key recovers from the signature (e.g. ``r`` is not the x of a
            curve point).
    """
    tx, recid, r, s = decode_signed(raw)
    try:
        key = coincurve.PublicKey.from_signature_and_message(
            compact(r, s) + bytes([recid]), signing_hash(tx), hasher=None
        )
    except ValueError:
        raise CryptoError("no public key recovers from this signature") from None
    return ethereum_address(key.format(True))
