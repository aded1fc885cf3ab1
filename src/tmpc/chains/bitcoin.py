"""Bitcoin spends signed by a tmpc cluster: addresses, spends, sighashes, witnesses and PSBTs.

Which output a scheme's key controls:

- ``ecdsa-secp256k1``: **P2WPKH** (segwit v0, BIP141/BIP143), ``OP_0 <HASH160(pk33)>``, spent
  with the witness ``[DER(r, s) || hash_type, pk33]``; the digest is BIP143's, hash type
  SIGHASH_ALL.
- ``schnorr-bip340``: **P2TR** key path (segwit v1, BIP341), ``OP_1 <Q>`` where ``Q`` is the
  wallet's 32-byte x-only *output* key (tmpc's ``record.public_key``, already tweaked); spent
  with the witness ``[sig64]`` (SIGHASH_DEFAULT) or ``[sig64 || 0x01]`` (SIGHASH_ALL); the
  digest is BIP341's ``SigHash`` with ``ext_flag = 0`` and no annex.

The cluster is only a callable ``sign_digest(digest32) -> signature`` (64-byte ``r || s`` for
ECDSA, 64-byte BIP340 signature for Schnorr), so the same code serves a one-process wallet and a
node cluster. Every signature it returns is checked (low-s, then verified under the wallet key)
before it is put into a witness: a faulty signer can never make this module emit an invalid
transaction.

Serialisation, the BIP143 / BIP341 digests, bech32/bech32m and the PSBT container are embit's
(``embit==0.8.0``); this module adds the checks around them. Where embit falls short:

- BIP371's ``PSBT_IN_TAP_KEY_SIG`` (0x13) is not a parsed field: embit keeps it as an unknown
  key and writes it back unchanged, so it is read and written here through the input's
  ``unknown`` map, with BIP371's length rules;
- embit's finaliser takes any partial signature without checking its key against the output:
  :func:`finalize_psbt` builds P2WPKH / P2TR key-path witnesses itself and verifies every
  signature before extracting;
- embit's Taproot digest is wrong for SIGHASH_SINGLE and ANYONECANPAY (BIP341's vectors show
  it): those types are refused, and tmpc never signs with them anyway;
- embit's transaction parser accepts truncated fields: raw transactions must round-trip byte
  for byte.

Fees: :func:`sign_spend` and :func:`sign_psbt` refuse a fee that Bitcoin Core would refuse to
send -- above ``-maxtxfee`` (0.1 BTC) or ``maxfeerate`` (0.1 BTC/kvB) -- unless the caller
passes ``allow_high_fee=True``, and always refuse a fee rate below 1 sat/vB, which nodes do not
relay by default (:func:`check_fee`).

Amounts are integers in satoshis. Transaction ids are hex strings in the order block explorers
and Bitcoin Core's RPC display them (the reverse of the bytes inside a transaction).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import coincurve
from embit import bech32 as _bech32
from embit import hashes as _hashes
from embit.ec import PublicKey as _EcPublicKey
from embit.psbt import PSBT as _PSBT
from embit.script import Script as _Script
from embit.script import Witness as _Witness
from embit.transaction import Transaction as _Transaction
from embit.transaction import TransactionInput as _TxIn
from embit.transaction import TransactionOutput as _TxOut

from tmpc.errors import CryptoError, DecodeError, ParameterError
from tmpc.primitives.bip340 import schnorr_verify
from tmpc.primitives.ecdsa_format import HALF_N, N, der_decode_strict, der_encode, ecdsa_verify
from tmpc.protocols.taproot import NETWORK_HRP
from tmpc.protocols.taproot import network_hrp as _hrp
from tmpc.protocols.taproot import taproot_output_key as _taproot_output_key

__all__ = [
    "MAX_FEERATE_SAT_PER_KVB",
    "MAX_FEE_SAT",
    "MAX_MONEY",
    "MIN_RELAY_FEERATE_SAT_PER_KVB",
    "NETWORK_HRP",
    "SCHEME_P2TR",
    "SCHEME_P2WPKH",
    "SIGHASH_ALL",
    "SIGHASH_DEFAULT",
    "SignDigest",
    "SignedSpend",
    "TxOutput",
    "UnsignedSpend",
    "Utxo",
    "address_to_script_pubkey",
    "bip143_sighash",
    "bip341_sighash",
    "build_spend",
    "check_fee",
    "check_psbt",
    "check_spend_fee",
    "dust_threshold",
    "estimate_vsize",
    "finalize_psbt",
    "psbt_summary",
    "script_pubkey_to_address",
    "sign_psbt",
    "sign_spend",
    "spend_sighash",
    "spend_to_psbt",
    "wallet_address",
    "wallet_script_pubkey",
]

SignDigest = Callable[[bytes], bytes]
"""The cluster: a 32-byte digest in, a 64-byte signature out (ECDSA ``r || s`` or BIP340)."""

#: Consensus ``MAX_MONEY``: 21 million BTC in satoshis; every amount and sum must stay within.
MAX_MONEY: Final = 21_000_000 * 100_000_000

#: Bitcoin Core's ``-maxtxfee`` default (DEFAULT_TRANSACTION_MAXFEE): 0.1 BTC. A larger fee is
#: almost always a typo (satoshis for bitcoins, a missing change output).
MAX_FEE_SAT: Final = 10_000_000
#: Bitcoin Core's ``maxfeerate`` default of ``sendrawtransaction`` / ``testmempoolaccept``
#: (DEFAULT_MAX_RAW_TX_FEE_RATE): 0.1 BTC/kvB, i.e. 10 000 sat/vB.
MAX_FEERATE_SAT_PER_KVB: Final = 10_000_000
#: The lowest fee rate tmpc signs: 1 sat/vB, Bitcoin Core's ``-minrelaytxfee`` default up to
#: version 29. Version 30 lowered its default to 0.1 sat/vB (bitcoin/bitcoin#33106), but a
#: transaction below 1 sat/vB is still dropped by every older node, so it may never propagate.
MIN_RELAY_FEERATE_SAT_PER_KVB: Final = 1_000

SIGHASH_DEFAULT: Final = 0x00
SIGHASH_ALL: Final = 0x01

SCHEME_P2WPKH: Final = "ecdsa-secp256k1"
SCHEME_P2TR: Final = "schnorr-bip340"

# BIP125 opt-in replace-by-fee, and nLockTime enforced (a fee bump stays possible).
_SEQUENCE: Final = 0xFFFFFFFD
_TX_VERSION: Final = 2

# Bitcoin Core policy: DUST_RELAY_TX_FEE = 3000 sat per 1000 vbytes.
_DUST_RELAY_FEE_PER_KVB: Final = 3000

# Hash types. BIP341: "hash_type ... 0x00, 0x01, 0x02, 0x03, 0x81, 0x82, or 0x83"; BIP143 (by
# policy, SCRIPT_VERIFY_STRICTENC) the same without 0x00.
_BIP143_HASH_TYPES: Final = frozenset({0x01, 0x02, 0x03, 0x81, 0x82, 0x83})
_BIP341_HASH_TYPES: Final = frozenset({0x00, 0x01, 0x02, 0x03, 0x81, 0x82, 0x83})
# The ones this module computes digests for. embit 0.8.0's ``sighash_taproot`` is wrong for
# SIGHASH_SINGLE (it hashes the output's serialisation in place of its SHA256) and for
# ANYONECANPAY (it serialises the input with its scriptSig); BIP341's own vectors show both (see
# tests/test_bitcoin.py). tmpc never signs with those types, so they are refused rather than
# rewritten. For BIP143 only SIGHASH_ALL is covered by the BIP's P2WPKH example.
_BIP143_SUPPORTED: Final = frozenset({0x01})
_BIP341_SUPPORTED: Final = frozenset({0x00, 0x01, 0x02})

# What tmpc itself signs: everything (no NONE / SINGLE / ANYONECANPAY, which let others change
# the transaction after the cluster signed).
_SIGNABLE: Final = {
    SCHEME_P2WPKH: frozenset({SIGHASH_ALL}),
    SCHEME_P2TR: frozenset({SIGHASH_DEFAULT, SIGHASH_ALL}),
}

# BIP371: PSBT_IN_TAP_KEY_SIG, key type 0x13, no key data.
_PSBT_IN_TAP_KEY_SIG: Final = b"\x13"

# Upper bounds of a finished input's witness in weight units (BIP141: one per byte): the item
# count, then per item its length and bytes. P2WPKH: [DER signature + hash type (at most
# 73 bytes), 33-byte key]; P2TR key path: [64-byte signature + optional hash type].
_P2WPKH_WITNESS_WU: Final = 1 + (1 + 73) + (1 + 33)
_P2TR_KEYPATH_WITNESS_WU: Final = 1 + (1 + 65)
# BIP144: the segwit marker and flag bytes, witness data (one weight unit each).
_SEGWIT_MARKER_WU: Final = 2


# --------------------------------------------------------------------------------------------
# Keys, scripts and addresses
# --------------------------------------------------------------------------------------------


def _check_public_key(scheme: str, public_key: bytes) -> bytes:
    """The validated wallet key: 33-byte compressed (ECDSA) or 32-byte x-only (BIP340)."""
    if not isinstance(public_key, bytes | bytearray):
        raise DecodeError("the public key must be bytes")
    pk = bytes(public_key)
    if scheme == SCHEME_P2WPKH:
        # BIP143: "only compressed public keys are accepted in P2WPKH".
        if len(pk) != 33 or pk[0] not in (2, 3):
            raise DecodeError("P2WPKH needs the 33-byte compressed secp256k1 key")
        try:
            coincurve.PublicKey(pk)
        except ValueError:
            raise DecodeError("the public key is not a point on secp256k1") from None
        return pk
    if scheme == SCHEME_P2TR:
        if len(pk) != 32:
            raise DecodeError("P2TR needs the 32-byte x-only Taproot output key")
        try:
            coincurve.PublicKeyXOnly(pk)
        except ValueError:
            raise DecodeError("the output key is not the x coordinate of a curve point") from None
        return pk
    raise ParameterError(
        f"Bitcoin is signed by {SCHEME_P2WPKH} (P2WPKH) or {SCHEME_P2TR} (P2TR), not {scheme!r}"
    )


def wallet_script_pubkey(scheme: str, public_key: bytes) -> bytes:
    """The scriptPubKey that a wallet of ``scheme`` controls.

    Args:
        scheme: ``ecdsa-secp256k1`` (P2WPKH) or ``schnorr-bip340`` (P2TR key path).
        public_key: 33-byte compressed key (ECDSA), or the 32-byte x-only Taproot **output**
            key (BIP340; tmpc's ``record.public_key``, already BIP341-tweaked).

    Returns:
        22 bytes ``OP_0 OP_PUSHBYTES_20 HASH160(pk)`` or 34 bytes ``OP_1 OP_PUSHBYTES_32 Q``.

    Raises:
        DecodeError: a key of the wrong length or not on the curve.
        ParameterError: any other scheme.
    """
    pk = _check_public_key(scheme, public_key)
    if scheme == SCHEME_P2WPKH:
        # BIP141: "the witness program ... is the HASH160 of the compressed public key".
        return b"\x00\x14" + bytes(_hashes.hash160(pk))
    # BIP341: "a Taproot output is a native SegWit output with version number 1, and a 32-byte
    # witness program" -- the x-only output key itself.
    return b"\x51\x20" + pk


def _witness_program(spk: bytes) -> tuple[int, bytes] | None:
    """``(version, program)`` of a segwit scriptPubKey (BIP141), or None."""
    if not 4 <= len(spk) <= 42 or spk[1] != len(spk) - 2:
        return None
    if spk[0] == 0x00:
        return 0, spk[2:]
    if 0x51 <= spk[0] <= 0x60:
        return spk[0] - 0x50, spk[2:]
    return None


def _is_p2wpkh(spk: bytes) -> bool:
    return len(spk) == 22 and spk[:2] == b"\x00\x14"


def _is_p2tr(spk: bytes) -> bool:
    return len(spk) == 34 and spk[:2] == b"\x51\x20"


def script_pubkey_to_address(script_pubkey: bytes, network: str = "mainnet") -> str:
    """The segwit address of a witness-program scriptPubKey (BIP141).

    bech32 (BIP173) for witness version 0 (20- or 32-byte program), bech32m (BIP350) for
    versions 1..16 (2..40 bytes), both by embit.

    Raises:
        ParameterError: not a segwit output (e.g. P2PKH, P2SH, OP_RETURN), or an unknown
            network.
    """
    hrp = _hrp(network)
    spk = bytes(script_pubkey)
    wp = _witness_program(spk)
    if wp is None or (wp[0] == 0 and len(wp[1]) not in (20, 32)):
        raise ParameterError("only segwit scriptPubKeys (witness programs) have an address here")
    address = _bech32.encode(hrp, wp[0], wp[1])
    if address is None:  # embit re-decodes its own output; never hand out a bad address
        raise ParameterError("segwit address encoding failed")
    return str(address)


def wallet_address(scheme: str, public_key: bytes, network: str = "mainnet") -> str:
    """The wallet's address: ``bc1q...`` (P2WPKH, ECDSA) or ``bc1p...`` (P2TR, BIP340).

    Args:
        scheme: ``ecdsa-secp256k1`` or ``schnorr-bip340``.
        public_key: as for :func:`wallet_script_pubkey`.
        network: ``mainnet`` (``bc``), ``testnet`` / ``signet`` (``tb``) or ``regtest``
            (``bcrt``).

    Raises:
        DecodeError: a bad key.
        ParameterError: another scheme, or an unknown network.
    """
    return script_pubkey_to_address(wallet_script_pubkey(scheme, public_key), network)


def address_to_script_pubkey(address: str, network: str = "mainnet") -> bytes:
    """Parse a segwit address of ``network`` back to its scriptPubKey (BIP173 / BIP350).

    Every valid segwit address decodes, as BIP350 asks: bech32 for witness version 0 (20- or
    32-byte program), bech32m for versions 1..16 (2..40 bytes); all upper or all lower case.
    Whether tmpc *pays* such an output is :func:`build_spend`'s decision.

    Raises:
        DecodeError: not a valid segwit address (checksum, characters, case, bech32 where
            bech32m is required or the reverse, padding, lengths, version), a legacy base58
            address, or the address of another network.
        ParameterError: an unknown network.
    """
    hrp = _hrp(network)
    if not isinstance(address, str):
        raise DecodeError("an address is a string")
    _encoding, hrp_got, _data = _bech32.bech32_decode(address)
    if hrp_got is None:
        raise DecodeError("not a valid bech32/bech32m segwit address")
    if hrp_got != hrp:
        raise DecodeError(
            f"the address is for another network (prefix {hrp_got!r}, {network} uses {hrp!r})"
        )
    version, program = _bech32.decode(hrp, address)
    if version is None or program is None:
        raise DecodeError("not a valid segwit address (program, version or checksum variant)")
    prog = bytes(program)
    # BIP141 witness program: the version as OP_0 / OP_1..OP_16, then one push of the program.
    return bytes([0 if version == 0 else 0x50 + version, len(prog)]) + prog


def _check_payable(spk: bytes, what: str) -> None:
    """Refuse outputs whose coins would be lost or free for anyone to take."""
    wp = _witness_program(spk)
    if wp is None:
        raise ParameterError(f"{what} is not a segwit output")
    version, prog = wp
    if version == 0:
        return
    if version == 1 and len(prog) == 32:
        try:
            coincurve.PublicKeyXOnly(prog)
        except ValueError:
            raise ParameterError(
                f"{what}: the Taproot output key is not on the curve; coins sent there are lost"
            ) from None
        return
    # Deviation from BIP350's advice to pay any version: no soft fork defines these programs
    # yet, so such an output can be spent by anyone (e.g. a miner) today.
    raise ParameterError(
        f"{what}: witness version {version} with a {len(prog)}-byte program is not defined by "
        "any soft fork (anyone could spend it); refusing to pay it"
    )


def dust_threshold(script_pubkey: bytes) -> int:
    """Bitcoin Core's dust threshold (policy/policy.cpp ``GetDustThreshold``) in satoshis.

    An output is dust when its value is below ``3 * (size(output) + size(input spending it))``
    at the default dust relay fee of 3000 sat/kvB: 294 for P2WPKH, 330 for P2TR and P2WSH,
    546 for P2PKH. Nodes do not relay transactions with dust outputs.
    """
    spk = bytes(script_pubkey)
    out_size = 8 + len(_Script(spk).serialize())
    if _witness_program(spk) is not None:
        # > nSize += (32 + 4 + 1 + (107 / WITNESS_SCALE_FACTOR) + 4);
        in_size = 32 + 4 + 1 + 107 // 4 + 4
    else:
        # > nSize += (32 + 4 + 1 + 107 + 4); // the 148 mentioned above
        in_size = 32 + 4 + 1 + 107 + 4
    return (out_size + in_size) * _DUST_RELAY_FEE_PER_KVB // 1000


# --------------------------------------------------------------------------------------------
# Spends
# --------------------------------------------------------------------------------------------


def _check_amount(value: object, what: str, *, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ParameterError(f"{what} must be an integer number of satoshis")
    if not minimum <= value <= MAX_MONEY:
        raise ParameterError(f"{what} must be between {minimum} and {MAX_MONEY} satoshis")
    return value


@dataclass(frozen=True, slots=True)
class Utxo:
    """An output to spend.

    Attributes:
        txid: the id of the transaction that created it, 64 hex digits in display order
            (normalised to lower case).
        vout: its index in that transaction, ``0 .. 2**32 - 1``.
        amount_sat: its value in satoshis, ``1 .. MAX_MONEY``.
        script_pubkey: its scriptPubKey (P2WPKH or P2TR for outputs tmpc can sign).

    Raises:
        DecodeError: ``txid`` is not 64 hex digits, ``script_pubkey`` not bytes.
        ParameterError: ``vout`` or ``amount_sat`` out of range.
    """

    txid: str
    vout: int
    amount_sat: int
    script_pubkey: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.txid, str) or len(self.txid) != 64:
            raise DecodeError("a txid is 64 hex digits")
        try:
            bytes.fromhex(self.txid)
        except ValueError:
            raise DecodeError("a txid is 64 hex digits") from None
        object.__setattr__(self, "txid", self.txid.lower())
        if not isinstance(self.vout, int) or isinstance(self.vout, bool):
            raise ParameterError("vout must be an integer")
        if not 0 <= self.vout <= 0xFFFFFFFF:
            raise ParameterError("vout must be in 0 .. 2**32 - 1")
        _check_amount(self.amount_sat, "a UTXO amount", minimum=1)
        if not isinstance(self.script_pubkey, bytes | bytearray):
            raise DecodeError("script_pubkey must be bytes")
        object.__setattr__(self, "script_pubkey", bytes(self.script_pubkey))


@dataclass(frozen=True, slots=True)
class TxOutput:
    """A transaction output: ``amount_sat`` (``0 .. MAX_MONEY``) to ``script_pubkey``."""

    amount_sat: int
    script_pubkey: bytes

    def __post_init__(self) -> None:
        _check_amount(self.amount_sat, "an output amount")
        if not isinstance(self.script_pubkey, bytes | bytearray):
            raise DecodeError("script_pubkey must be bytes")
        object.__setattr__(self, "script_pubkey", bytes(self.script_pubkey))


@dataclass(frozen=True, slots=True)
class UnsignedSpend:
    """A transaction that spends ``inputs`` to ``outputs``, before signing.

    Made by :func:`build_spend`, which applies the policy checks (dust, change). The
    constructor itself enforces the consensus invariants: at least one input and one output, no
    outpoint twice, every amount and both sums within ``MAX_MONEY``, outputs not above inputs.

    Attributes:
        inputs: the UTXOs spent, in input order.
        outputs: the outputs, in order (the change output, if any, last).
        change_index: index of the change output in ``outputs``, or None.
        network: the network whose addresses were parsed.
        version: transaction version (2).
        locktime: ``nLockTime`` (0).
        sequence: ``nSequence`` of every input (``0xFFFFFFFD``: BIP125 replaceable).
    """

    inputs: tuple[Utxo, ...]
    outputs: tuple[TxOutput, ...]
    change_index: int | None
    network: str
    version: int = _TX_VERSION
    locktime: int = 0
    sequence: int = _SEQUENCE

    def __post_init__(self) -> None:
        _hrp(self.network)
        if not self.inputs or not all(isinstance(u, Utxo) for u in self.inputs):
            raise ParameterError("a spend needs at least one input (Utxo)")
        if not self.outputs or not all(isinstance(o, TxOutput) for o in self.outputs):
            raise ParameterError("a spend needs at least one output (TxOutput)")
        outpoints = {(u.txid, u.vout) for u in self.inputs}
        if len(outpoints) != len(self.inputs):
            raise ParameterError("an outpoint is spent twice")
        # Consensus (CheckTransaction / CheckTxInputs): "bad-txns-txouttotal-toolarge",
        # "bad-txns-inputvalues-outofrange", "bad-txns-in-belowout".
        _check_amount(sum(u.amount_sat for u in self.inputs), "the sum of the inputs")
        total_out = _check_amount(sum(o.amount_sat for o in self.outputs), "the sum of outputs")
        if total_out > self.input_amount_sat:
            raise ParameterError("the outputs exceed the inputs")
        if self.change_index is not None and not 0 <= self.change_index < len(self.outputs):
            raise ParameterError("change_index is not an output index")
        for name, value in (
            ("version", self.version),
            ("locktime", self.locktime),
            ("sequence", self.sequence),
        ):
            if not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
                raise ParameterError(f"{name} must be a 32-bit unsigned integer")

    @property
    def input_amount_sat(self) -> int:
        """The sum of the inputs' amounts."""
        return sum(u.amount_sat for u in self.inputs)

    @property
    def output_amount_sat(self) -> int:
        """The sum of the outputs' amounts (change included)."""
        return sum(o.amount_sat for o in self.outputs)

    @property
    def fee_sat(self) -> int:
        """The fee: inputs minus outputs."""
        return self.input_amount_sat - self.output_amount_sat

    @property
    def spent_outputs(self) -> list[tuple[int, bytes]]:
        """``(amount_sat, script_pubkey)`` of every input, as the validators need them."""
        return [(u.amount_sat, u.script_pubkey) for u in self.inputs]

    def transaction(self) -> Any:
        """A fresh embit ``Transaction`` of this spend, without witnesses."""
        vin = [_TxIn(bytes.fromhex(u.txid), u.vout, sequence=self.sequence) for u in self.inputs]
        vout = [_TxOut(o.amount_sat, _Script(o.script_pubkey)) for o in self.outputs]
        return _Transaction(version=self.version, vin=vin, vout=vout, locktime=self.locktime)

    def to_bytes(self) -> bytes:
        """The unsigned transaction, serialised without witnesses."""
        return bytes(self.transaction().serialize())

    @property
    def txid(self) -> str:
        """The transaction id (display order). Signing does not change it (segwit inputs)."""
        return bytes(self.transaction().txid()).hex()


@dataclass(frozen=True, slots=True)
class SignedSpend:
    """A fully signed transaction: ``raw`` (network serialisation, with witnesses) and its
    ``txid`` (64 hex digits, display order)."""

    raw: bytes
    txid: str


def build_spend(
    utxos: Sequence[Utxo],
    outputs: Sequence[tuple[str, int]],
    fee_sat: int,
    change_address: str | None = None,
    *,
    network: str = "mainnet",
) -> UnsignedSpend:
    """Build a transaction spending ``utxos`` to ``outputs`` with an exact fee.

    Checks, in order: every UTXO is P2WPKH or P2TR (what tmpc signs) and no outpoint
    repeats; every output address parses on ``network`` (:func:`address_to_script_pubkey`)
    and is P2WPKH, P2WSH or a P2TR whose key is on the curve (witness versions 2..16 and
    other v1 lengths are refused: anyone could spend them today); every amount is an integer
    not below the dust threshold of its script (:func:`dust_threshold`) nor above
    ``MAX_MONEY``; ``fee_sat >= 0``; the sums stay within ``MAX_MONEY``; the inputs cover the
    outputs plus the fee.

    The change, ``inputs - outputs - fee``, goes to ``change_address`` as the last output when
    it is at least that script's dust threshold; smaller change is left to the fee (the
    returned spend's ``fee_sat`` says so). Without a ``change_address`` any change is refused:
    the inputs must equal outputs plus fee, so a forgotten change address never becomes a
    large fee.

    Args:
        utxos: the outputs to spend (in input order).
        outputs: ``(address, amount_sat)`` pairs (may be empty if a change address is given).
        fee_sat: the fee in satoshis.
        change_address: where the change goes, on ``network``.
        network: ``mainnet``, ``testnet``, ``signet`` or ``regtest``.

    Returns:
        The :class:`UnsignedSpend`.

    Raises:
        DecodeError: an address that does not parse or is for another network.
        ParameterError: any other check above.
    """
    _hrp(network)
    inputs = tuple(utxos)
    if not inputs:
        raise ParameterError("a spend needs at least one input")
    for i, u in enumerate(inputs):
        if not isinstance(u, Utxo):
            raise ParameterError(f"input {i} is not a Utxo")
        if not (_is_p2wpkh(u.script_pubkey) or _is_p2tr(u.script_pubkey)):
            raise ParameterError(f"input {i}: tmpc spends only P2WPKH and P2TR outputs")
    fee = _check_amount(fee_sat, "the fee")
    outs: list[TxOutput] = []
    for i, item in enumerate(outputs):
        if not isinstance(item, tuple) or len(item) != 2:
            raise ParameterError(f"output {i} must be an (address, amount_sat) pair")
        address, amount = item
        spk = address_to_script_pubkey(address, network)
        _check_payable(spk, f"output {i}")
        _check_amount(amount, f"output {i}'s amount")
        if amount < dust_threshold(spk):
            raise ParameterError(
                f"output {i} ({amount} sat) is below the dust threshold of "
                f"{dust_threshold(spk)} sat for its script"
            )
        outs.append(TxOutput(amount, spk))
    total_in = _check_amount(sum(u.amount_sat for u in inputs), "the sum of the inputs")
    total_out = _check_amount(sum(o.amount_sat for o in outs), "the sum of the outputs")
    if total_out + fee > total_in:
        raise ParameterError(
            f"the inputs ({total_in} sat) do not cover the outputs ({total_out} sat) "
            f"plus the fee ({fee} sat)"
        )
    change = total_in - total_out - fee
    change_index: int | None = None
    if change_address is None:
        if change:
            raise ParameterError(
                f"the inputs exceed outputs plus fee by {change} sat: give a change address "
                "or set the fee to take it"
            )
    else:
        change_spk = address_to_script_pubkey(change_address, network)
        _check_payable(change_spk, "the change address")
        if change >= dust_threshold(change_spk):
            change_index = len(outs)
            outs.append(TxOutput(change, change_spk))
    if not outs:
        raise ParameterError("the spend has no output (the change is dust)")
    return UnsignedSpend(inputs, tuple(outs), change_index, network)


# --------------------------------------------------------------------------------------------
# Fees
# --------------------------------------------------------------------------------------------


def _vsize(base_size: int, witnesses: Sequence[int]) -> int:
    # BIP141: weight = base size * 3 + total size; virtual size = weight / 4, rounded up. Once
    # any input has a witness, every input serialises one (an empty one is a single 0x00).
    weight = base_size * 4
    if any(witnesses):
        weight += _SEGWIT_MARKER_WU + sum(w or 1 for w in witnesses)
    return (weight + 3) // 4


def _input_witness_wu(script_pubkey: bytes) -> int:
    if _is_p2wpkh(script_pubkey):
        return _P2WPKH_WITNESS_WU
    if _is_p2tr(script_pubkey):
        return _P2TR_KEYPATH_WITNESS_WU
    return 0


def estimate_vsize(spend: UnsignedSpend) -> int:
    """The virtual size (BIP141 vbytes) of ``spend`` once signed, rounded up.

    Exact but for the length of each ECDSA signature, which is counted at its maximum
    (73 bytes with the hash type), and a P2TR signature counted with a hash type byte: the
    result is never below the real size, so a fee rate computed with it is never above the
    real one.
    """
    if not isinstance(spend, UnsignedSpend):
        raise ParameterError("spend must be an UnsignedSpend (see build_spend)")
    witnesses = [_input_witness_wu(u.script_pubkey) for u in spend.inputs]
    return _vsize(len(spend.to_bytes()), witnesses)


def _feerate_text(fee_sat: int, vsize: int) -> str:
    return f"{fee_sat / vsize:.1f} sat/vB"


def check_fee(fee_sat: int, vsize: int, *, allow_high_fee: bool = False) -> None:
    """Refuse a fee that would make a signed transaction useless or ruinous.

    Always refused: a fee rate below :data:`MIN_RELAY_FEERATE_SAT_PER_KVB` (1 sat/vB), which
    nodes do not relay. Refused unless ``allow_high_fee``: a fee above :data:`MAX_FEE_SAT`
    (0.1 BTC, Bitcoin Core's ``-maxtxfee``) or a fee rate above
    :data:`MAX_FEERATE_SAT_PER_KVB` (0.1 BTC/kvB, its ``maxfeerate``).

    Args:
        fee_sat: the fee in satoshis (inputs minus outputs).
        vsize: the transaction's virtual size in vbytes (see :func:`estimate_vsize`).
        allow_high_fee: the caller explicitly accepts a fee above Bitcoin Core's limits.

    Raises:
        ParameterError: any of the above, naming the fee, the fee rate and the limit.
    """
    fee = _check_amount(fee_sat, "the fee")
    if not isinstance(vsize, int) or isinstance(vsize, bool) or vsize < 1:
        raise ParameterError("the virtual size must be a positive integer")
    if fee * 1000 < MIN_RELAY_FEERATE_SAT_PER_KVB * vsize:
        raise ParameterError(
            f"the fee of {fee} sat for {vsize} vB ({_feerate_text(fee, vsize)}) is below the "
            f"minimum relay fee rate of {MIN_RELAY_FEERATE_SAT_PER_KVB // 1000} sat/vB: nodes "
            "would not relay the transaction"
        )
    if allow_high_fee:
        return
    override = "refusing to sign it unless a high fee is explicitly allowed (--allow-high-fee)"
    if fee > MAX_FEE_SAT:
        raise ParameterError(
            f"the fee of {fee} sat is above {MAX_FEE_SAT} sat (0.1 BTC, Bitcoin Core's "
            f"-maxtxfee); {override}"
        )
    if fee * 1000 > MAX_FEERATE_SAT_PER_KVB * vsize:
        raise ParameterError(
            f"the fee rate of {_feerate_text(fee, vsize)} ({fee} sat for {vsize} vB) is above "
            f"{MAX_FEERATE_SAT_PER_KVB // 1000} sat/vB (0.1 BTC/kvB, Bitcoin Core's "
            f"maxfeerate); {override}"
        )


def check_spend_fee(spend: UnsignedSpend, *, allow_high_fee: bool = False) -> None:
    """:func:`check_fee` for ``spend``'s fee and :func:`estimate_vsize`.

    Raises:
        ParameterError: as :func:`check_fee`.
    """
    check_fee(spend.fee_sat, estimate_vsize(spend), allow_high_fee=allow_high_fee)


# --------------------------------------------------------------------------------------------
# Signature hashes
# --------------------------------------------------------------------------------------------


def _parse_tx(tx: bytes) -> Any:
    if not isinstance(tx, bytes | bytearray):
        raise DecodeError("a transaction is bytes")
    raw = bytes(tx)
    try:
        parsed = _Transaction.parse(raw)
    except Exception:  # embit raises EmbitError, ValueError, IndexError... on bad input
        raise DecodeError("not a serialised Bitcoin transaction") from None
    # embit reads short fields without complaint (a truncated nLockTime parses) and accepts
    # non-minimal sizes: only a byte-exact round trip is a transaction.
    if bytes(parsed.serialize()) != raw:
        raise DecodeError("not a canonical serialised Bitcoin transaction")
    return parsed


def _check_index(tx: Any, index: int) -> None:
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(tx.vin):
        raise ParameterError("input index out of range")


def bip143_sighash(
    tx: bytes, index: int, script_pubkey: bytes, amount_sat: int, hash_type: int = SIGHASH_ALL
) -> bytes:
    """BIP143 signature hash of P2WPKH input ``index`` (segwit v0).

    Args:
        tx: the transaction (witnesses, if any, are ignored).
        index: the input being signed.
        script_pubkey: the 22-byte P2WPKH scriptPubKey of the output it spends.
        amount_sat: that output's value.
        hash_type: 0x01 (SIGHASH_ALL), the only type supported here.

    Returns:
        The 32-byte digest that ECDSA signs (not hashed again).

    Raises:
        DecodeError: ``tx`` does not parse.
        ParameterError: not P2WPKH, index or amount out of range, another hash type.
    """
    t = _parse_tx(tx)
    _check_index(t, index)
    spk = bytes(script_pubkey)
    if not _is_p2wpkh(spk):
        raise ParameterError("bip143_sighash here serves P2WPKH inputs (22-byte scriptPubKey)")
    _check_amount(amount_sat, "the spent amount")
    if hash_type not in _BIP143_SUPPORTED:
        raise ParameterError("only SIGHASH_ALL is supported for P2WPKH")
    # BIP143: "For P2WPKH witness program, the scriptCode is 0x1976a914{20-byte-pubkey-hash}88ac."
    script_code = _Script(b"\x76\xa9\x14" + spk[2:] + b"\x88\xac")
    return bytes(t.sighash_segwit(index, script_code, amount_sat, sighash=hash_type))


def bip341_sighash(
    tx: bytes,
    index: int,
    spent_outputs: Sequence[tuple[int, bytes]],
    hash_type: int = SIGHASH_DEFAULT,
) -> bytes:
    """BIP341 signature hash of a Taproot **key-path** spend of input ``index``.

    ``hash_TapSighash(0x00 || SigMsg(hash_type, ext_flag=0))`` with no annex.

    Args:
        tx: the transaction (witnesses, if any, are ignored).
        index: the input being signed; its spent output must be P2TR.
        spent_outputs: ``(amount_sat, script_pubkey)`` of the output spent by **every** input,
            in input order (BIP341 commits to all of them).
        hash_type: 0x00 (SIGHASH_DEFAULT), 0x01 (ALL) or 0x02 (NONE). SINGLE and
            ANYONECANPAY are refused (embit 0.8.0 gets them wrong; tmpc does not sign them).

    Returns:
        The 32-byte digest that BIP340 signs.

    Raises:
        DecodeError: ``tx`` does not parse.
        ParameterError: wrong number of spent outputs, a bad amount, a non-P2TR input, an
            invalid or unsupported hash type.
    """
    t = _parse_tx(tx)
    _check_index(t, index)
    if len(spent_outputs) != len(t.vin):
        raise ParameterError("BIP341 needs the spent output of every input")
    amounts: list[int] = []
    scripts: list[Any] = []
    for i, item in enumerate(spent_outputs):
        if not isinstance(item, tuple) or len(item) != 2:
            raise ParameterError(f"spent output {i} must be an (amount_sat, script_pubkey) pair")
        amounts.append(_check_amount(item[0], f"spent output {i}'s amount"))
        scripts.append(_Script(bytes(item[1])))
    if not _is_p2tr(bytes(spent_outputs[index][1])):
        raise ParameterError("the input does not spend a P2TR output")
    # BIP341 signature validation: "the hash_type ... must be one of 0x00, 0x01, 0x02, 0x03,
    # 0x81, 0x82, or 0x83"; this module serves only 0x00 .. 0x02 (see _BIP341_SUPPORTED).
    if hash_type not in _BIP341_HASH_TYPES:
        raise ParameterError("not a BIP341 hash type")
    if hash_type not in _BIP341_SUPPORTED:
        raise ParameterError("SIGHASH_SINGLE and ANYONECANPAY Taproot digests are not supported")
    return bytes(t.sighash_taproot(index, scripts, amounts, sighash=hash_type))


def _default_hash_type(spk: bytes) -> int:
    return SIGHASH_ALL if _is_p2wpkh(spk) else SIGHASH_DEFAULT


def _tx_sighash(
    tx_bytes: bytes, index: int, spent: Sequence[tuple[int, bytes]], hash_type: int
) -> bytes:
    spk = bytes(spent[index][1])
    if _is_p2wpkh(spk):
        return bip143_sighash(tx_bytes, index, spk, spent[index][0], hash_type)
    if _is_p2tr(spk):
        return bip341_sighash(tx_bytes, index, spent, hash_type)
    raise ParameterError(f"input {index}: tmpc signs only P2WPKH and P2TR inputs")


def spend_sighash(spend: UnsignedSpend, index: int, sighash_type: int | None = None) -> bytes:
    """The 32-byte digest the cluster signs for input ``index`` of ``spend``.

    BIP143 for a P2WPKH input (SIGHASH_ALL only), BIP341 key path for a P2TR input
    (SIGHASH_DEFAULT or SIGHASH_ALL). ``sighash_type=None`` picks ALL resp. DEFAULT.

    Raises:
        ParameterError: index out of range or a hash type tmpc does not sign with.
    """
    if not isinstance(index, int) or not 0 <= index < len(spend.inputs):
        raise ParameterError("input index out of range")
    spk = spend.inputs[index].script_pubkey
    hash_type = _default_hash_type(spk) if sighash_type is None else sighash_type
    scheme = SCHEME_P2WPKH if _is_p2wpkh(spk) else SCHEME_P2TR
    if hash_type not in _SIGNABLE[scheme]:
        raise ParameterError(
            f"tmpc signs {scheme} inputs only with SIGHASH_ALL"
            + (" or SIGHASH_DEFAULT" if scheme == SCHEME_P2TR else "")
        )
    return _tx_sighash(spend.to_bytes(), index, spend.spent_outputs, hash_type)


# --------------------------------------------------------------------------------------------
# Signing and witnesses
# --------------------------------------------------------------------------------------------


def _sign_input(
    scheme: str, public_key: bytes, digest: bytes, sign_digest: SignDigest, hash_type: int
) -> bytes:
    """Have the cluster sign ``digest`` and return the witness signature item, checked."""
    sig = sign_digest(digest)
    if not isinstance(sig, bytes | bytearray) or len(sig) != 64:
        raise ParameterError("sign_digest must return a 64-byte signature")
    sig = bytes(sig)
    if scheme == SCHEME_P2WPKH:
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        # BIP146 LOW_S (policy): nodes do not relay s > n/2 although consensus accepts it.
        if 0 < s < N and s > HALF_N:
            raise ParameterError(
                "sign_digest returned a high-s ECDSA signature; nodes do not relay it "
                "(normalise s to n - s)"
            )
        if not ecdsa_verify(public_key, digest, sig, der=False, require_low_s=True):
            raise CryptoError("invalid signature")
        # BIP143 witness: "<signature> <pubkey>", the signature DER-encoded plus hash type.
        return der_encode(r, s) + bytes([hash_type])
    if not schnorr_verify(digest, public_key, sig):
        raise CryptoError("invalid signature")
    # BIP341: a 64-byte signature means SIGHASH_DEFAULT; otherwise the hash type is appended.
    return sig if hash_type == SIGHASH_DEFAULT else sig + bytes([hash_type])


def _witness_items(scheme: str, public_key: bytes, sig_item: bytes) -> list[bytes]:
    return [sig_item, public_key] if scheme == SCHEME_P2WPKH else [sig_item]


def sign_spend(
    spend: UnsignedSpend,
    sign_digest: SignDigest,
    public_key: bytes,
    scheme: str,
    sighash_type: int | None = None,
    *,
    allow_high_fee: bool = False,
) -> SignedSpend:
    """Have the cluster sign every input of ``spend`` and return the finished transaction.

    Every input must spend the wallet's own output (:func:`wallet_script_pubkey`); inputs of
    several wallets are signed through a PSBT (:func:`sign_psbt`). For each input the digest of
    :func:`spend_sighash` goes to ``sign_digest``; the returned signature must be 64 bytes,
    low-s for ECDSA, and verify under ``public_key`` before it is placed in the witness:
    ``[DER(r, s) || 0x01, pk33]`` for P2WPKH, ``[sig64]`` (DEFAULT) or ``[sig64 || 0x01]``
    (ALL) for P2TR.

    Args:
        spend: from :func:`build_spend`.
        sign_digest: the cluster; called once per input with a 32-byte digest.
        public_key: 33-byte compressed key (ECDSA) or 32-byte x-only output key (BIP340).
        scheme: ``ecdsa-secp256k1`` or ``schnorr-bip340``.
        sighash_type: None (ALL for P2WPKH, DEFAULT for P2TR), SIGHASH_ALL, or for P2TR
            SIGHASH_DEFAULT.
        allow_high_fee: sign even a fee above Bitcoin Core's limits (see :func:`check_fee`,
            which runs before anything is signed).

    Returns:
        :class:`SignedSpend` with the raw transaction and its txid.

    Raises:
        DecodeError: a bad public key.
        ParameterError: an input that is not the wallet's, a fee refused by :func:`check_fee`,
            an unsupported hash type, a signature of the wrong length or with high s.
        CryptoError: a signature from ``sign_digest`` that does not verify.
    """
    if not isinstance(spend, UnsignedSpend):
        raise ParameterError("spend must be an UnsignedSpend (see build_spend)")
    pk = _check_public_key(scheme, public_key)
    own = wallet_script_pubkey(scheme, pk)
    for i, u in enumerate(spend.inputs):
        if u.script_pubkey != own:
            raise ParameterError(f"input {i} does not spend this wallet's {scheme} output")
    hash_type = _default_hash_type(own) if sighash_type is None else sighash_type
    if hash_type not in _SIGNABLE[scheme]:
        raise ParameterError("unsupported sighash type for this scheme")
    check_spend_fee(spend, allow_high_fee=allow_high_fee)
    tx = spend.transaction()
    unsigned = bytes(tx.serialize())
    spent = spend.spent_outputs
    for i in range(len(spend.inputs)):
        digest = _tx_sighash(unsigned, i, spent, hash_type)
        item = _sign_input(scheme, pk, digest, sign_digest, hash_type)
        tx.vin[i].witness = _Witness(_witness_items(scheme, pk, item))
    return SignedSpend(bytes(tx.serialize()), bytes(tx.txid()).hex())


# --------------------------------------------------------------------------------------------
# Verification of finished witnesses (used before anything leaves this module)
# --------------------------------------------------------------------------------------------


def _verify_witness(tx: Any, index: int, spent: Sequence[tuple[int, bytes]]) -> int:
    """Check the witness of a P2WPKH / P2TR key-path input; returns its hash type.

    Raises:
        CryptoError: a witness that is malformed or whose signature does not verify.
        ParameterError: a valid hash type that this module does not compute digests for.
    """
    unsupported = f"input {index} is signed with a sighash type tmpc does not verify"
    spk = bytes(spent[index][1])
    items = list(tx.vin[index].witness.items)
    unsigned = bytes(tx.serialize())
    if _is_p2wpkh(spk):
        if len(items) != 2 or len(items[0]) < 9:
            raise CryptoError(f"input {index}: invalid signature")
        sig, pk = bytes(items[0]), bytes(items[1])
        hash_type = sig[-1]
        if (
            len(pk) != 33
            or pk[0] not in (2, 3)
            or bytes(_hashes.hash160(pk)) != spk[2:]
            or hash_type not in _BIP143_HASH_TYPES
        ):
            raise CryptoError(f"input {index}: invalid signature")
        try:
            der_decode_strict(sig[:-1])
        except DecodeError:
            raise CryptoError(f"input {index}: invalid signature") from None
        if hash_type not in _BIP143_SUPPORTED:
            raise ParameterError(unsupported)
        digest = bip143_sighash(unsigned, index, spk, spent[index][0], hash_type)
        if not ecdsa_verify(pk, digest, sig[:-1], der=True, require_low_s=True):
            raise CryptoError(f"input {index}: invalid signature")
        return hash_type
    if _is_p2tr(spk):
        # Key path: exactly one witness item (an annex would be a second one starting 0x50).
        if len(items) != 1 or len(items[0]) not in (64, 65):
            raise CryptoError(f"input {index}: invalid signature")
        sig = bytes(items[0])
        # BIP341: a 65-byte signature whose hash type byte is 0x00 is invalid.
        hash_type = sig[64] if len(sig) == 65 else SIGHASH_DEFAULT
        if len(sig) == 65 and (hash_type == SIGHASH_DEFAULT or hash_type not in _BIP341_HASH_TYPES):
            raise CryptoError(f"input {index}: invalid signature")
        if hash_type not in _BIP341_SUPPORTED:
            raise ParameterError(unsupported)
        digest = bip341_sighash(unsigned, index, spent, hash_type)
        if not schnorr_verify(digest, spk[2:], sig[:64]):
            raise CryptoError(f"input {index}: invalid signature")
        return hash_type
    raise ParameterError(f"input {index}: only P2WPKH and P2TR inputs are verified here")


# --------------------------------------------------------------------------------------------
# PSBT (BIP174 / BIP371)
# --------------------------------------------------------------------------------------------


def spend_to_psbt(spend: UnsignedSpend) -> str:
    """The spend as a BIP174 PSBT (version 0), base64.

    Each input carries ``PSBT_IN_WITNESS_UTXO`` (amount and scriptPubKey), which is what
    BIP143 and BIP341 signers need; no sighash type field (signers use SIGHASH_ALL for P2WPKH
    and SIGHASH_DEFAULT for P2TR).
    """
    if not isinstance(spend, UnsignedSpend):
        raise ParameterError("spend must be an UnsignedSpend (see build_spend)")
    # embit's constructors default to one shared ``unknown`` dict; give each scope its own.
    psbt = _PSBT(spend.transaction(), unknown={})
    for inp, u in zip(psbt.inputs, spend.inputs, strict=True):
        inp.unknown = {}
        inp.witness_utxo = _TxOut(u.amount_sat, _Script(u.script_pubkey))
    for out in psbt.outputs:
        out.unknown = {}
    return base64.b64encode(psbt.serialize()).decode("ascii")


def _parse_psbt(psbt_b64: str) -> Any:
    if not isinstance(psbt_b64, str):
        raise DecodeError("a PSBT is a base64 string")
    try:
        raw = base64.b64decode(psbt_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError("the PSBT is not valid base64") from None
    try:
        psbt = _PSBT.parse(raw)
    except Exception:  # embit raises PSBTError, EmbitError, ValueError, IndexError...
        raise DecodeError("not a valid PSBT (BIP174)") from None
    for inp in psbt.inputs:
        inp.unknown = dict(inp.unknown)
        # BIP371: PSBT_IN_TAP_KEY_SIG is <0x13> with no key data, a 64- or 65-byte value.
        for key, value in inp.unknown.items():
            if key[:1] == _PSBT_IN_TAP_KEY_SIG and (len(key) != 1 or len(value) not in (64, 65)):
                raise DecodeError("a PSBT_IN_TAP_KEY_SIG field is malformed (BIP371)")
    return psbt


def _psbt_spent_outputs(psbt: Any) -> list[tuple[int, bytes] | None]:
    """The output each input spends, from its (non_)witness_utxo; None where unknown."""
    spent: list[tuple[int, bytes] | None] = []
    for i, inp in enumerate(psbt.inputs):
        from_nwu = None
        if inp.non_witness_utxo is not None:
            # BIP174: the non-witness UTXO must hash to the txid the input spends.
            if inp.non_witness_utxo.txid() != inp.txid or inp.vout >= len(
                inp.non_witness_utxo.vout
            ):
                raise DecodeError(f"input {i}: non_witness_utxo is not the spent transaction")
            o = inp.non_witness_utxo.vout[inp.vout]
            from_nwu = (int(o.value), bytes(o.script_pubkey.data))
        from_wu = None
        if inp.witness_utxo is not None:
            from_wu = (int(inp.witness_utxo.value), bytes(inp.witness_utxo.script_pubkey.data))
        if from_nwu is not None and from_wu is not None and from_nwu != from_wu:
            raise DecodeError(f"input {i}: witness_utxo and non_witness_utxo disagree")
        item = from_nwu or from_wu
        if item is not None:
            _check_amount(item[0], f"input {i}'s amount")
        spent.append(item)
    return spent


def _all_known(spent: list[tuple[int, bytes] | None], what: str) -> list[tuple[int, bytes]]:
    out = []
    for i, item in enumerate(spent):
        if item is None:
            raise ParameterError(f"input {i} has no UTXO information; {what}")
        out.append(item)
    return out


def _psbt_vsize(psbt: Any, spent: Sequence[tuple[int, bytes]]) -> int:
    """Virtual size of the PSBT's transaction once finalised (see :func:`estimate_vsize`).

    P2WPKH and P2TR inputs are counted at their largest key-path witness; inputs that are
    already finalised with their final scriptSig and witness; any other input without a
    witness (a lower bound)."""
    base = len(bytes(psbt.tx.serialize()))
    witnesses = []
    for i, inp in enumerate(psbt.inputs):
        if inp.final_scriptwitness is not None and len(inp.final_scriptwitness.items) > 0:
            witnesses.append(len(bytes(inp.final_scriptwitness.serialize())))
        else:
            witnesses.append(_input_witness_wu(bytes(spent[i][1])))
        if inp.final_scriptsig is not None and len(inp.final_scriptsig.data) > 0:
            base += len(bytes(inp.final_scriptsig.serialize())) - 1  # replaces the empty one
    return _vsize(base, witnesses)


def _check_taproot_fields(
    index: int,
    inp: Any,
    output_key: bytes,
    internal_key: bytes | None,
    merkle_root: bytes | None,
) -> None:
    """Refuse a Taproot input whose BIP371 key fields contradict the wallet.

    ``PSBT_IN_TAP_INTERNAL_KEY`` and ``PSBT_IN_TAP_MERKLE_ROOT`` say how the spent output key
    was made. A signer that ignores them would sign for an output whose script tree (and so
    whose other spending paths) it never agreed to, or hand a watch-only wallet a PSBT that
    describes another key: either field that disagrees with the wallet is refused, and so is
    an internal key that, tweaked with the stated root (or none), is not the output key.
    """
    stated_key = (
        None if inp.taproot_internal_key is None else bytes(inp.taproot_internal_key.xonly())
    )
    stated_root = None if inp.taproot_merkle_root is None else bytes(inp.taproot_merkle_root)
    if stated_root is not None and len(stated_root) != 32:
        raise DecodeError(f"input {index}: PSBT_IN_TAP_MERKLE_ROOT is not 32 bytes (BIP371)")
    if internal_key is not None and stated_key is not None and stated_key != internal_key:
        raise ParameterError(
            f"input {index}: PSBT_IN_TAP_INTERNAL_KEY is not this wallet's Taproot internal "
            "key; refusing to sign"
        )
    if internal_key is not None and stated_root is not None and stated_root != merkle_root:
        detail = " (the wallet has no script tree)" if merkle_root is None else ""
        raise ParameterError(
            f"input {index}: PSBT_IN_TAP_MERKLE_ROOT is not this wallet's Taproot script tree "
            f"root{detail}; refusing to sign"
        )
    if stated_key is not None and _taproot_output_key(stated_key, stated_root)[0] != output_key:
        fields = (
            "PSBT_IN_TAP_INTERNAL_KEY without a PSBT_IN_TAP_MERKLE_ROOT"
            if stated_root is None
            else "PSBT_IN_TAP_INTERNAL_KEY with PSBT_IN_TAP_MERKLE_ROOT"
        )
        raise ParameterError(
            f"input {index}: {fields} does not give this wallet's output key; refusing to sign"
        )


def _plan_psbt(
    psbt_b64: str,
    public_key: bytes,
    scheme: str,
    *,
    trust_witness_utxo: bool,
    allow_high_fee: bool,
    taproot_internal_key: bytes | None,
    taproot_merkle_root: bytes | None,
) -> tuple[Any, bytes, list[tuple[int, bytes, int]]]:
    """Every check of :func:`sign_psbt`; returns the parsed PSBT, the checked public key and
    ``(input index, digest, hash type)`` of each input to sign."""
    pk = _check_public_key(scheme, public_key)
    own = wallet_script_pubkey(scheme, pk)
    if taproot_internal_key is not None and (
        not isinstance(taproot_internal_key, bytes | bytearray) or len(taproot_internal_key) != 32
    ):
        raise DecodeError("the Taproot internal key must be 32 x-only bytes")
    if taproot_merkle_root is not None and (
        not isinstance(taproot_merkle_root, bytes | bytearray) or len(taproot_merkle_root) != 32
    ):
        raise DecodeError("the Taproot merkle root must be 32 bytes")
    psbt = _parse_psbt(psbt_b64)
    spent = _psbt_spent_outputs(psbt)
    ours = [(i, item) for i, item in enumerate(spent) if item is not None and item[1] == own]
    if not ours:
        raise ParameterError(f"no input of this PSBT spends this wallet's {scheme} output")
    if all(item is not None for item in spent):
        known = _all_known(spent, "")
        total_in = sum(a for a, _ in known)
        total_out = sum(o.value for o in psbt.tx.vout)
        if total_out > total_in:
            raise ParameterError("the PSBT's outputs exceed its inputs")
        check_fee(total_in - total_out, _psbt_vsize(psbt, known), allow_high_fee=allow_high_fee)
    unsigned = bytes(psbt.tx.serialize())
    plan = []
    for i, (amount, _spk) in ours:
        inp = psbt.inputs[i]
        if scheme == SCHEME_P2WPKH and inp.non_witness_utxo is None and not trust_witness_utxo:
            # A segwit v0 signature commits only to its own input's amount, so a PSBT that
            # lies about amounts (witness_utxo) can make two signing rounds burn the inputs
            # as fee (CVE-2020-14199). Only the full previous transaction, whose hash is the
            # spent txid, proves the amount.
            raise ParameterError(
                f"input {i}: a P2WPKH input needs its full previous transaction "
                "(PSBT_IN_NON_WITNESS_UTXO) to prove the amount being signed"
            )
        hash_type = _default_hash_type(own) if inp.sighash_type is None else inp.sighash_type
        if hash_type not in _SIGNABLE[scheme]:
            raise ParameterError(f"input {i} asks for a sighash type tmpc does not sign with")
        if scheme == SCHEME_P2TR:
            _check_taproot_fields(
                i,
                inp,
                pk,
                None if taproot_internal_key is None else bytes(taproot_internal_key),
                None if taproot_merkle_root is None else bytes(taproot_merkle_root),
            )
            full = _all_known(spent, "a Taproot signature commits to every input's UTXO")
            digest = bip341_sighash(unsigned, i, full, hash_type)
        else:
            digest = bip143_sighash(unsigned, i, own, amount, hash_type)
        plan.append((i, digest, hash_type))
    return psbt, pk, plan


def check_psbt(
    psbt_b64: str,
    public_key: bytes,
    scheme: str,
    *,
    trust_witness_utxo: bool = False,
    allow_high_fee: bool = False,
    taproot_internal_key: bytes | None = None,
    taproot_merkle_root: bytes | None = None,
) -> None:
    """Make every refusal :func:`sign_psbt` would make, without signing anything.

    Lets a caller refuse a PSBT before it unlocks key shares. Arguments and exceptions are
    those of :func:`sign_psbt`.
    """
    _plan_psbt(
        psbt_b64,
        public_key,
        scheme,
        trust_witness_utxo=trust_witness_utxo,
        allow_high_fee=allow_high_fee,
        taproot_internal_key=taproot_internal_key,
        taproot_merkle_root=taproot_merkle_root,
    )


def sign_psbt(
    psbt_b64: str,
    sign_digest: SignDigest,
    public_key: bytes,
    scheme: str,
    *,
    trust_witness_utxo: bool = False,
    allow_high_fee: bool = False,
    taproot_internal_key: bytes | None = None,
    taproot_merkle_root: bytes | None = None,
) -> str:
    """Add the cluster's signature to every input of a PSBT that spends the wallet's output.

    An input is the wallet's when its UTXO (``PSBT_IN_WITNESS_UTXO`` or the output of
    ``PSBT_IN_NON_WITNESS_UTXO``, which must hash to the spent txid) has the wallet's
    scriptPubKey. P2WPKH inputs are signed only with ``PSBT_IN_NON_WITNESS_UTXO`` present
    (CVE-2020-14199: otherwise the amount is unproven); Taproot inputs commit to every input's
    amount, so their witness UTXOs suffice. ``trust_witness_utxo`` lifts that for a PSBT whose
    amounts the caller itself vouches for (one :func:`spend_to_psbt` built from UTXOs the
    operator gave). For each such input the digest is BIP143 (P2WPKH) or BIP341 key path (P2TR,
    which needs the UTXO of every input); the signature, checked as in :func:`sign_spend`, goes
    to ``PSBT_IN_PARTIAL_SIG`` (key: the 33-byte key; value: DER || hash type) or to BIP371's
    ``PSBT_IN_TAP_KEY_SIG`` (64 bytes, or 65 with the hash type when not DEFAULT). The hash type
    is the input's ``PSBT_IN_SIGHASH_TYPE`` if present and one tmpc signs with (BIP174: "If a
    sighash type is provided, the signer must check that the sighash is acceptable. If
    unacceptable, they must fail."), otherwise ALL (P2WPKH) / DEFAULT (P2TR). Other inputs are
    left untouched.

    When every input's amount is known, the fee goes through :func:`check_fee` (with the
    virtual size the finalised transaction will have); when some is unknown (a P2WPKH wallet
    co-signing with inputs described elsewhere) the fee cannot be checked here.

    A Taproot input's ``PSBT_IN_TAP_INTERNAL_KEY`` / ``PSBT_IN_TAP_MERKLE_ROOT`` (BIP371), if
    present, must agree with the wallet: with ``taproot_internal_key`` (32-byte x-only internal
    key at the signing path) and ``taproot_merkle_root`` (None: no script tree) each field is
    compared with the wallet's; in any case the stated key tweaked with the stated root must be
    ``public_key``.

    Returns:
        The updated PSBT, base64.

    Raises:
        DecodeError: not a valid PSBT (or inconsistent UTXO fields), a bad public key, a
            malformed BIP371 field.
        ParameterError: no input is the wallet's, missing UTXO information, a sighash type
            tmpc refuses, outputs above inputs, a fee refused by :func:`check_fee`, Taproot key
            fields that contradict the wallet (naming the input and the field), a signature of
            wrong length or high s.
        CryptoError: a signature from ``sign_digest`` that does not verify.
    """
    psbt, pk, plan = _plan_psbt(
        psbt_b64,
        public_key,
        scheme,
        trust_witness_utxo=trust_witness_utxo,
        allow_high_fee=allow_high_fee,
        taproot_internal_key=taproot_internal_key,
        taproot_merkle_root=taproot_merkle_root,
    )
    for i, digest, hash_type in plan:
        inp = psbt.inputs[i]
        sig_item = _sign_input(scheme, pk, digest, sign_digest, hash_type)
        if scheme == SCHEME_P2WPKH:
            inp.partial_sigs[_EcPublicKey.parse(pk)] = sig_item
        else:
            inp.unknown = {**inp.unknown, _PSBT_IN_TAP_KEY_SIG: sig_item}
    return base64.b64encode(psbt.serialize()).decode("ascii")


def psbt_summary(psbt_b64: str, network: str = "mainnet") -> dict[str, Any]:
    """What a PSBT pays: ``{"outputs": [(address or script hex, sat)], "fee_sat": int | None}``.

    The fee is None when some input's amount is unknown. Shown to the operator with every
    signed PSBT, so nobody signs blind.
    """
    psbt = _parse_psbt(psbt_b64)
    outputs: list[tuple[str, int]] = []
    for o in psbt.tx.vout:
        spk = bytes(o.script_pubkey.data)
        try:
            label = script_pubkey_to_address(spk, network)
        except (DecodeError, ParameterError):
            label = "script " + spk.hex()
        outputs.append((label, int(o.value)))
    spent = _psbt_spent_outputs(psbt)
    fee = None
    if all(item is not None for item in spent):
        fee = sum(a for a, _ in _all_known(spent, "")) - sum(a for _, a in outputs)
    return {"outputs": outputs, "fee_sat": fee}


def finalize_psbt(psbt_b64: str) -> bytes:
    """Finalise a fully signed PSBT and extract the network transaction (BIP174 roles
    Input Finalizer and Transaction Extractor).

    Per input: an existing ``PSBT_IN_FINAL_SCRIPTWITNESS`` / ``FINAL_SCRIPTSIG`` is used as
    is; otherwise a P2WPKH input takes the ``PSBT_IN_PARTIAL_SIG`` of the key that hashes to
    its program (witness ``[sig, pk]``) and a P2TR input its ``PSBT_IN_TAP_KEY_SIG`` (witness
    ``[sig]``). Then every P2WPKH and P2TR key-path witness is verified against its BIP143 /
    BIP341 digest (low-s and strict DER for ECDSA) and, where the input names a
    ``PSBT_IN_SIGHASH_TYPE``, its signature must use that type. Inputs of other script types
    must arrive finalised and are not verified here.

    Returns:
        The raw signed transaction (with witnesses).

    Raises:
        DecodeError: not a valid PSBT.
        ParameterError: an input without UTXO information or without a usable signature, or a
            signature with another hash type than the input asks for.
        CryptoError: a signature that does not verify.
    """
    psbt = _parse_psbt(psbt_b64)
    spent = _all_known(_psbt_spent_outputs(psbt), "cannot finalize")
    tx = psbt.tx
    for i, inp in enumerate(psbt.inputs):
        spk = spent[i][1]
        if inp.final_scriptwitness is not None and len(inp.final_scriptwitness.items) > 0:
            tx.vin[i].witness = inp.final_scriptwitness
            if inp.final_scriptsig is not None:
                tx.vin[i].script_sig = inp.final_scriptsig
            continue
        if inp.final_scriptsig is not None and len(inp.final_scriptsig.data) > 0:
            tx.vin[i].script_sig = inp.final_scriptsig
            continue
        if _is_p2wpkh(spk):
            matching = [
                (pub.sec(), sig)
                for pub, sig in inp.partial_sigs.items()
                if bytes(_hashes.hash160(pub.sec())) == spk[2:]
            ]
            if not matching:
                raise ParameterError(f"input {i} has no signature by the key of its P2WPKH output")
            pub33, sig = matching[0]
            tx.vin[i].witness = _Witness([bytes(sig), bytes(pub33)])
        elif _is_p2tr(spk):
            key_sig = inp.unknown.get(_PSBT_IN_TAP_KEY_SIG)
            if key_sig is None:
                raise ParameterError(f"input {i} has no Taproot key-path signature")
            tx.vin[i].witness = _Witness([bytes(key_sig)])
        else:
            raise ParameterError(f"input {i}: unsupported script type; finalize it elsewhere")
    for i, inp in enumerate(psbt.inputs):
        if _is_p2wpkh(spent[i][1]) or _is_p2tr(spent[i][1]):
            hash_type = _verify_witness(tx, i, spent)
            if inp.sighash_type is not None and inp.sighash_type != hash_type:
                raise ParameterError(f"input {i} is signed with another sighash type than asked")
    return bytes(tx.serialize())
