"""What an unsigned transaction makes the wallet sign, and what it does: the facts a policy judges.

A signing request for a chain carries the unsigned transaction itself (a PSBT for Bitcoin, the
EIP-1559 fields for Ethereum, the message for Solana). Each function here parses it and
returns a :class:`TxFacts`:

- ``digests``: exactly what a party node signs for it, computed by the chain module's own
  signing code (the planning of :func:`~tmpc.chains.bitcoin.sign_psbt`,
  :func:`~tmpc.chains.ethereum.signing_hash`, the Solana message bytes), so a node that signs
  only these signs only this transaction;
- ``asset``, ``amount``, ``destinations``, ``fee``: parsed from the transaction, **never** from
  a claim beside it (a request's "amount" or "to" is not an input here);
- ``opaque`` with ``reasons``: the transaction does something this parser does not understand
  (a contract call, another program's instruction, an output with no address), whose effect
  the amount and destinations do not describe. A policy **must not** treat an opaque
  transaction's amount as what it moves.

Amounts are :class:`decimal.Decimal` in whole units of the asset, exact (no float, no
rounding): BTC = sat / 10**8, ETH = wei / 10**18, SOL = lamports / 10**9. An ERC-20 token's
decimals are not in the transaction, so an ERC-20 amount is in the token's **raw units**
(``Decimal`` of the uint256, exponent 0); its asset is ``ERC20:<EIP-55 contract address>``.

Everything is public: no function here touches a share or any other secret. Bad input raises
:class:`~tmpc.errors.DecodeError` (not a valid encoding) or :class:`~tmpc.errors.ParameterError`
(valid but refused: not this wallet's, a check of the signing path failed), each with one line
that never carries a library's traceback.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any, Final, Literal

from embit import base58 as _base58
from solders.message import Message, MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey

from tmpc import schemes
from tmpc.chains import bitcoin as _btc
from tmpc.chains.addresses import eip55_checksum, ethereum_address, solana_address
from tmpc.chains.ethereum import Eip1559Tx, parse_address, signing_hash
from tmpc.errors import DecodeError, ParameterError
from tmpc.protocols.taproot import network_hrp as _hrp

__all__ = [
    "ERC20_TRANSFER_SELECTOR",
    "SOLANA_LAMPORTS_PER_SIGNATURE",
    "Chain",
    "TxFacts",
    "bitcoin_facts",
    "ethereum_facts",
    "solana_facts",
]

Chain = Literal["bitcoin", "ethereum", "solana"]

#: ``keccak256("transfer(address,uint256)")[:4]`` (ERC-20).
ERC20_TRANSFER_SELECTOR: Final = bytes.fromhex("a9059cbb")
#: Solana's base fee per signature (``lamports_per_signature``; 5000 on every public cluster).
SOLANA_LAMPORTS_PER_SIGNATURE: Final = 5_000

# Exact decimal arithmetic: 2**256 has 78 digits; the default context keeps 28.
_EXACT: Final = Context(prec=200)
_BTC_DECIMALS: Final = 8
_ETH_DECIMALS: Final = 18
_SOL_DECIMALS: Final = 9

# Base58Check version bytes of P2PKH / P2SH addresses (Bitcoin Core chainparams.cpp).
_BASE58_VERSIONS: Final = {
    "mainnet": (b"\x00", b"\x05"),
    "testnet": (b"\x6f", b"\xc4"),
    "signet": (b"\x6f", b"\xc4"),
    "regtest": (b"\x6f", b"\xc4"),
}

_HEX: Final = re.compile(r"(?:[0-9a-fA-F]{2})*")

_SYSTEM_PROGRAM: Final = Pubkey.default()  # 11111111111111111111111111111111
_COMPUTE_BUDGET_PROGRAM: Final = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
# SystemInstruction::Transfer { lamports: u64 }, bincode: u32 LE variant 2, then u64 LE.
_SYSTEM_TRANSFER: Final = (2).to_bytes(4, "little")
# ComputeBudgetInstruction (borsh): u8 variant, then the little-endian value.
_CU_LIMIT: Final = 2  # SetComputeUnitLimit(u32)
_CU_PRICE: Final = 3  # SetComputeUnitPrice(u64), micro-lamports per compute unit
# Agave: MAX_COMPUTE_UNIT_LIMIT and MICRO_LAMPORTS_PER_LAMPORT.
_MAX_COMPUTE_UNIT_LIMIT: Final = 1_400_000
_MICRO_LAMPORTS_PER_LAMPORT: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class TxFacts:
    """What one unsigned transaction makes the wallet sign, and what it does.

    Attributes:
        chain: ``bitcoin``, ``ethereum`` or ``solana``.
        asset: ``BTC``, ``ETH``, ``SOL``, or ``ERC20:0x<EIP-55 contract address>``.
        amount: what leaves the wallet to ``destinations``, in whole units of ``asset``
            (``Decimal``, exact); for ERC-20, the token's raw units. Change back to the wallet
            is not counted. For an opaque transaction it is only what the parser understood.
        destinations: the external recipients, in transaction order (one per Bitcoin output,
            one per Solana transfer; repeats are kept): Bitcoin addresses (``script:<hex>``
            for an output with no address), EIP-55 Ethereum addresses, base58 Solana
            addresses.
        fee: in the chain's native asset (BTC / ETH / SOL), or None when the transaction does
            not fix it. Bitcoin: inputs minus outputs; Ethereum: the **maximum**, ``gas *
            max_fee_per_gas``; Solana: 5000 lamports per signature plus the priority fee.
        digests: what the wallet signs, in signing order: 32-byte BIP143 / BIP341 sighashes
            (one per input of the wallet, in input order), the 32-byte Ethereum signing hash,
            or the Solana message bytes (Ed25519 signs the message itself).
        opaque: the transaction does something the parser does not understand; ``reasons``
            say what. A policy should refuse it unless a rule allows opaque transactions.
        reasons: one line per thing not understood (empty when not opaque).
        source: the wallet's own address (at the signing path) that pays.
    """

    chain: Chain
    asset: str
    amount: Decimal
    destinations: tuple[str, ...]
    fee: Decimal | None
    digests: tuple[bytes, ...]
    opaque: bool
    reasons: tuple[str, ...]
    source: str

    def to_json(self) -> dict[str, Any]:
        """A JSON form for logs and ``policy explain``: amounts as plain decimal strings
        (never floats), digests in hex."""
        return {
            "chain": self.chain,
            "asset": self.asset,
            "amount": format(self.amount, "f"),
            "destinations": list(self.destinations),
            "fee": None if self.fee is None else format(self.fee, "f"),
            "digests": [d.hex() for d in self.digests],
            "opaque": self.opaque,
            "reasons": list(self.reasons),
            "source": self.source,
        }


def _units(value: int, decimals: int) -> Decimal:
    """``value / 10**decimals`` exactly."""
    return Decimal(value).scaleb(-decimals, _EXACT)


def _wallet_key(record: object, chain: Chain, path: object) -> tuple[schemes.WalletRecord, bytes]:
    """The record (checked to sign ``chain``) and its verifier-facing key at ``path``."""
    if not isinstance(record, schemes.WalletRecord):
        raise ParameterError("record must be a tmpc WalletRecord")
    if chain not in schemes.get_scheme(record.scheme).chains:
        raise ParameterError(f"a {record.scheme} wallet does not sign {chain} transactions")
    if path is not None and not isinstance(path, str):
        raise ParameterError("path must be a BIP32 path such as m/0/5, or None")
    return record, schemes.public_key_at(record, path)


# --------------------------------------------------------------------------------------------
# Bitcoin
# --------------------------------------------------------------------------------------------


def _bitcoin_output(spk: bytes, index: int, network: str) -> tuple[str, str | None]:
    """``(label, reason it is opaque or None)`` of an output's scriptPubKey."""
    p2pkh, p2sh = _BASE58_VERSIONS[network]
    # P2PKH: OP_DUP OP_HASH160 <20> OP_EQUALVERIFY OP_CHECKSIG; P2SH: OP_HASH160 <20> OP_EQUAL.
    if len(spk) == 25 and spk[:3] == b"\x76\xa9\x14" and spk[23:] == b"\x88\xac":
        return str(_base58.encode_check(p2pkh + spk[3:23])), None
    if len(spk) == 23 and spk[:2] == b"\xa9\x14" and spk[22:] == b"\x87":
        return str(_base58.encode_check(p2sh + spk[2:22])), None
    label = "script:" + spk.hex()  # no space: one token, like an address
    if spk[:1] == b"\x6a":
        # A data carrier; it may still mean something to a protocol (a runestone moves runes).
        return label, f"output {index} is an OP_RETURN data output"
    try:
        label = _btc.script_pubkey_to_address(spk, network)
    except ParameterError:
        return label, f"output {index} pays a script that has no address (non-standard)"
    try:
        _btc._check_payable(spk, f"output {index}")
    except ParameterError as exc:  # undefined witness versions, off-curve Taproot keys
        return label, str(exc)
    return label, None


def bitcoin_facts(
    psbt_b64: str,
    record: schemes.WalletRecord,
    *,
    network: str,
    path: str | None = None,
    allow_high_fee: bool = False,
) -> TxFacts:
    """The facts of a PSBT (BIP174) that the wallet at ``path`` is asked to sign.

    The PSBT goes through every check of :func:`tmpc.chains.bitcoin.check_psbt` (the planning
    code :func:`~tmpc.chains.bitcoin.sign_psbt` runs, so the digests are the ones it would
    sign): at least one input spends the wallet's script at ``path``; each such P2WPKH input
    carries its full previous transaction (``PSBT_IN_NON_WITNESS_UTXO``: a witness UTXO alone
    does not prove the amount, CVE-2020-14199); a Taproot wallet has every input's UTXO and
    BIP371 key fields that agree with it; sighash types tmpc signs with; outputs not above the
    inputs and, when every input's amount is known, a fee that
    :func:`~tmpc.chains.bitcoin.check_fee` accepts. Only the wallet's inputs are signed;
    others are left to their owners.

    Change is an output paying the wallet's own script **at this path**; change to another
    path of the wallet counts as a destination. ``amount`` is the sum of the other outputs
    (also when inputs of others pay part of it), ``destinations`` their addresses (base58
    P2PKH / P2SH, bech32 / bech32m segwit, ``script:<hex>`` otherwise), ``fee`` inputs minus
    outputs (None when some input's amount is unknown: a P2WPKH wallet co-signing with inputs
    described elsewhere). Opaque: an OP_RETURN output, an output with no address, a witness
    version no soft fork defines or a Taproot key off the curve (anyone could spend, or
    nobody).

    Args:
        psbt_b64: the PSBT, base64.
        record: an ``ecdsa-secp256k1`` (P2WPKH) or ``schnorr-bip340`` (P2TR) wallet.
        network: ``mainnet``, ``testnet``, ``signet`` or ``regtest`` (for addresses).
        path: the non-hardened BIP32 child that signs (None: the wallet's root key).
        allow_high_fee: accept a fee above Bitcoin Core's limits (as ``sign_psbt``).

    Returns:
        :class:`TxFacts` with ``asset`` ``BTC`` and one 32-byte digest per wallet input.

    Raises:
        DecodeError: not a valid PSBT, inconsistent UTXO fields, malformed BIP371 fields.
        ParameterError: a record of another scheme, a bad path or network, and every refusal
            of :func:`~tmpc.chains.bitcoin.check_psbt`.
    """
    _hrp(network)  # ParameterError naming the known networks
    record, pk = _wallet_key(record, "bitcoin", path)
    internal_key: bytes | None = None
    if schemes.get_scheme(record.scheme).taproot:
        # As `tmpc tx bitcoin --psbt`: BIP371 key fields must name the wallet's internal key
        # at this path and its script tree.
        internal_key = schemes.hd_tweak(record, path)[0].encode()[1:]
    # The planning code of sign_psbt / check_psbt, so the digests are the ones it signs.
    psbt, _pk, plan = _btc._plan_psbt(
        psbt_b64,
        pk,
        record.scheme,
        trust_witness_utxo=False,
        allow_high_fee=bool(allow_high_fee),
        taproot_internal_key=internal_key,
        taproot_merkle_root=record.taproot_merkle_root if internal_key is not None else None,
    )
    own = _btc.wallet_script_pubkey(record.scheme, pk)
    outputs = [(int(o.value), bytes(o.script_pubkey.data)) for o in psbt.tx.vout]
    for i, (value, _spk) in enumerate(outputs):
        _btc._check_amount(value, f"output {i}'s amount")
    total_out = _btc._check_amount(sum(v for v, _ in outputs), "the sum of the outputs")
    sent = 0
    destinations: list[str] = []
    reasons: list[str] = []
    for i, (value, spk) in enumerate(outputs):
        if spk == own:
            continue  # change
        label, reason = _bitcoin_output(spk, i, network)
        sent += value
        destinations.append(label)
        if reason is not None:
            reasons.append(reason)
    spent = _btc._psbt_spent_outputs(psbt)
    fee: Decimal | None = None
    if all(item is not None for item in spent):
        total_in = sum(amount for amount, _spk in _btc._all_known(spent, ""))
        fee = _units(total_in - total_out, _BTC_DECIMALS)  # not negative: _plan_psbt checked
    return TxFacts(
        chain="bitcoin",
        asset="BTC",
        amount=_units(sent, _BTC_DECIMALS),
        destinations=tuple(destinations),
        fee=fee,
        digests=tuple(digest for _i, digest, _hash_type in plan),
        opaque=bool(reasons),
        reasons=tuple(reasons),
        source=_btc.wallet_address(record.scheme, pk, network),
    )


# --------------------------------------------------------------------------------------------
# Ethereum
# --------------------------------------------------------------------------------------------

_ETH_REQUIRED: Final = (
    "chain_id",
    "nonce",
    "max_priority_fee_per_gas",
    "max_fee_per_gas",
    "gas",
    "to",
    "value",
)
_ETH_OPTIONAL: Final = ("data", "access_list")


def _hex_bytes(value: object, what: str) -> bytes:
    """Bytes given as bytes or as hex text (``0x`` optional, an even number of digits)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if not isinstance(value, str):
        raise ParameterError(f"{what} must be hex text")
    text = value[2:] if value[:2] in ("0x", "0X") else value
    if _HEX.fullmatch(text) is None:
        raise DecodeError(f"{what} is not hex (an even number of hex digits)")
    return bytes.fromhex(text)


def _eth_access_list(value: object) -> list[tuple[bytes | str, list[bytes]]]:
    """``[[address, [key, ...]], ...]`` or JSON-RPC's ``[{"address", "storageKeys"}, ...]``."""
    if isinstance(value, str | bytes | bytearray | Mapping) or not isinstance(value, Sequence):
        raise ParameterError("access_list must be a list of (address, storage keys) entries")
    out: list[tuple[bytes | str, list[bytes]]] = []
    for n, entry in enumerate(value):
        if isinstance(entry, Mapping):
            if set(entry) != {"address", "storageKeys"}:
                raise ParameterError(f"access_list entry {n} needs exactly address, storageKeys")
            address, keys = entry["address"], entry["storageKeys"]
        elif (
            isinstance(entry, Sequence)
            and not isinstance(entry, str | bytes | bytearray)
            and len(entry) == 2
        ):
            address, keys = entry
        else:
            raise ParameterError(f"access_list entry {n} must be an (address, storage keys) pair")
        if not isinstance(address, str | bytes):
            raise ParameterError(f"access_list entry {n}: the address must be EIP-55 text")
        if isinstance(keys, str | bytes | bytearray | Mapping) or not isinstance(keys, Sequence):
            raise ParameterError(f"access_list entry {n}: storage keys must be a list")
        out.append((address, [_hex_bytes(k, f"access_list entry {n} storage key") for k in keys]))
    return out


def _eth_tx(fields: object) -> Eip1559Tx:
    if not isinstance(fields, Mapping):
        raise ParameterError("the Ethereum transaction must be a mapping of EIP-1559 fields")
    unknown = sorted(str(k) for k in fields if k not in _ETH_REQUIRED + _ETH_OPTIONAL)
    if unknown:
        raise ParameterError(f"unknown EIP-1559 field(s): {', '.join(unknown)}")
    missing = [k for k in _ETH_REQUIRED if k not in fields]
    if missing:
        # "to" too: a forgotten recipient must not turn a transfer into a contract creation.
        raise ParameterError(f"missing EIP-1559 field(s): {', '.join(missing)}")
    to = fields["to"]
    if to is not None and not isinstance(to, str | bytes):
        raise ParameterError("to must be an EIP-55 address or None (contract creation)")
    return Eip1559Tx(
        chain_id=fields["chain_id"],
        nonce=fields["nonce"],
        max_priority_fee_per_gas=fields["max_priority_fee_per_gas"],
        max_fee_per_gas=fields["max_fee_per_gas"],
        gas=fields["gas"],
        to=to,
        value=fields["value"],
        data=_hex_bytes(fields.get("data", ""), "data"),
        access_list=_eth_access_list(fields.get("access_list", ())),
    )


def _erc20_transfer(data: bytes) -> tuple[bytes, int] | str | None:
    """``(recipient20, amount)`` of ERC-20 ``transfer(address,uint256)`` call data; None if the
    data is not that call; a reason text if it is that selector but not its canonical
    encoding."""
    if data[:4] != ERC20_TRANSFER_SELECTOR:
        return None
    if len(data) != 4 + 32 + 32:
        return f"transfer(address,uint256) call data of {len(data)} bytes, not 68"
    word = data[4:36]
    if any(word[:12]):
        return "transfer(address,uint256) with a recipient word that is not a clean address"
    return word[12:], int.from_bytes(data[36:68], "big")


def ethereum_facts(
    fields: Mapping[str, Any], record: schemes.WalletRecord, *, path: str | None = None
) -> TxFacts:
    """The facts of an EIP-1559 (type 2) transaction the wallet at ``path`` is asked to sign.

    ``fields`` (as JSON gives them): ``chain_id``, ``nonce``, ``max_priority_fee_per_gas``,
    ``max_fee_per_gas``, ``gas``, ``value`` (integers; wei for value and fees), ``to`` (EIP-55
    text, or None for a contract creation: the key must be present either way), optional
    ``data`` (hex, ``0x`` optional; default empty) and ``access_list`` (``[[address,
    [storage key hex, ...]], ...]`` or JSON-RPC's ``[{"address", "storageKeys"}]``). Any
    other key is refused. They are checked by :class:`~tmpc.chains.ethereum.Eip1559Tx`; the
    one digest is its :func:`~tmpc.chains.ethereum.signing_hash`.

    What it does:

    - empty ``data``: a transfer of ``value`` wei; asset ``ETH``, destination ``to``. (Whether
      ``to`` is a contract, whose code then runs, is not visible offline.)
    - ``data`` an ERC-20 ``transfer(address,uint256)`` (selector ``a9059cbb``, exactly 68
      bytes, a clean address word) with ``value`` 0: asset ``ERC20:<to>``, destination the
      token recipient, amount the token amount in raw units.
    - anything else (another call, the transfer selector with another length, a dirty
      address word or a non-zero ``value``): opaque; asset ``ETH``, destination ``to``,
      amount the ETH ``value``.
    - no ``to``: a contract creation, opaque, no destination, amount the ETH ``value``.

    ``fee`` is the most the transaction can cost: ``gas * max_fee_per_gas``, in ETH.

    Returns:
        :class:`TxFacts` with one 32-byte digest.

    Raises:
        ParameterError, DecodeError: a record that does not sign Ethereum, a bad path, or
            missing, unknown or invalid fields (an address without its EIP-55 checksum).
    """
    record, pk = _wallet_key(record, "ethereum", path)
    tx = _eth_tx(fields)
    data = bytes(tx.data)
    asset, amount = "ETH", _units(tx.value, _ETH_DECIMALS)
    destinations: tuple[str, ...] = ()
    reasons: list[str] = []
    if tx.to is None:
        reasons.append("a contract creation (no to): the deployed code is not understood")
    else:
        to = parse_address(tx.to)  # already 20 bytes after construction
        destinations = (eip55_checksum(to),)
        if data:
            call = _erc20_transfer(data)
            if isinstance(call, tuple) and tx.value == 0:
                recipient, tokens = call
                asset, amount = "ERC20:" + eip55_checksum(to), Decimal(tokens)
                destinations = (eip55_checksum(recipient),)
            elif isinstance(call, tuple):
                reasons.append("an ERC-20 transfer that also sends ETH (value is not 0)")
            elif isinstance(call, str):
                reasons.append(call)
            else:
                reasons.append(f"a contract call with selector 0x{data[:4].hex()}, not understood")
    return TxFacts(
        chain="ethereum",
        asset=asset,
        amount=amount,
        destinations=destinations,
        fee=_units(tx.gas * tx.max_fee_per_gas, _ETH_DECIMALS),
        digests=(signing_hash(tx),),
        opaque=bool(reasons),
        reasons=tuple(reasons),
        source=ethereum_address(pk),
    )


# --------------------------------------------------------------------------------------------
# Solana
# --------------------------------------------------------------------------------------------


def _solana_message(message_b64: object) -> tuple[bytes, Message | MessageV0]:
    """The message bytes and their parse; they must re-serialise byte for byte."""
    if not isinstance(message_b64, str):
        raise DecodeError("a Solana message is base64 text")
    try:
        raw = base64.b64decode(message_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError("the Solana message is not valid base64") from None
    if not raw:
        raise DecodeError("the Solana message is empty")
    msg: Message | MessageV0
    try:
        if raw[0] & 0x80:
            # A versioned message: prefix 0x80 | version.
            if raw[0] != 0x80:
                raise DecodeError(
                    f"Solana message version {raw[0] & 0x7F} is not supported (legacy and v0)"
                )
            msg = MessageV0.from_bytes(raw[1:])
            again = bytes(to_bytes_versioned(msg))
        else:
            msg = Message.from_bytes(raw)
            again = bytes(msg)
    except ValueError:  # solders: "io error: unexpected end of file", ...
        raise DecodeError("not a valid Solana message") from None
    if again != raw:  # solders accepts trailing bytes; what is signed must be exactly this
        raise DecodeError("not a valid Solana message (it does not re-serialise to its bytes)")
    return raw, msg


def _solana_accounts(msg: Message | MessageV0) -> list[Pubkey]:
    """The static account keys, after the checks of the runtime's message sanitising: a
    header that fits, no key twice, every index within the static keys plus those loaded
    from address lookup tables."""
    keys = list(msg.account_keys)
    header = msg.header
    signers = header.num_required_signatures
    loaded = 0
    if isinstance(msg, MessageV0):
        loaded = sum(
            len(t.writable_indexes) + len(t.readonly_indexes) for t in msg.address_table_lookups
        )
    total = len(keys) + loaded
    if (
        signers < 1
        or header.num_readonly_signed_accounts >= signers
        or signers + header.num_readonly_unsigned_accounts > len(keys)
        or total > 256
    ):
        raise DecodeError("the Solana message header does not fit its account keys")
    if len(set(keys)) != len(keys):
        raise DecodeError("the Solana message lists an account key twice")
    for k, ix in enumerate(msg.instructions):
        # The fee payer cannot be a program; programs cannot come from lookup tables.
        if not 0 < ix.program_id_index < len(keys) or any(a >= total for a in bytes(ix.accounts)):
            raise DecodeError(f"Solana instruction {k} indexes an account the message lacks")
    return keys


def solana_facts(message_b64: str, record: schemes.WalletRecord) -> TxFacts:
    """The facts of a Solana message (legacy or v0) the ``ed25519`` wallet is asked to sign.

    The digest is the message bytes themselves (Ed25519 signs the message; there is no
    prehash). The fee payer (first account) must be the wallet's key. Understood:

    - System Program ``Transfer`` (variant 2, 12 bytes of data, exactly two accounts) from the
      wallet: its recipient is a destination and its lamports are summed into ``amount``; a
      transfer from the wallet to itself moves nothing and is left out;
    - Compute Budget ``SetComputeUnitLimit`` / ``SetComputeUnitPrice`` (each at most once):
      they set the priority fee, ``ceil(price * min(limit, 1.4M) / 10**6)`` lamports.

    Opaque: any other instruction or program (account creation, nonce advance, tokens, ...),
    a transfer from an account other than the wallet, a v0 message that loads accounts from
    address lookup tables (not resolvable offline), a compute-unit price without a limit (the
    runtime's default limit would decide the fee). ``fee`` is 5000 lamports per required
    signature plus the priority fee, in SOL (None when the price has no limit).

    Args:
        message_b64: the serialised message (legacy, or v0 with its ``0x80`` prefix), base64.
        record: an ``ed25519`` wallet (Solana keys are not derived: no path).

    Returns:
        :class:`TxFacts` with ``asset`` ``SOL`` and the message bytes as the one "digest".

    Raises:
        DecodeError: not base64, not a legacy / v0 message (trailing bytes included),
            inconsistent header or account indices, a key listed twice.
        ParameterError: a record that does not sign Solana, or a fee payer that is not the
            wallet.
    """
    record, pk = _wallet_key(record, "solana", None)
    raw, msg = _solana_message(message_b64)
    keys = _solana_accounts(msg)
    wallet = Pubkey.from_bytes(pk)
    if keys[0] != wallet:
        raise ParameterError("the Solana fee payer (first account) is not this wallet's key")
    reasons: list[str] = []
    if isinstance(msg, MessageV0) and msg.address_table_lookups:
        reasons.append("the message loads accounts from address lookup tables")
    lamports = 0
    destinations: list[str] = []
    budget: dict[int, int] = {}
    for k, ix in enumerate(msg.instructions):
        program = keys[ix.program_id_index]
        accounts, data = bytes(ix.accounts), bytes(ix.data)
        if program == _SYSTEM_PROGRAM and data[:4] == _SYSTEM_TRANSFER and len(data) == 12:
            if len(accounts) != 2 or max(accounts) >= len(keys):
                reasons.append(f"instruction {k}: a transfer with unusual or table accounts")
            elif keys[accounts[0]] != wallet:
                reasons.append(f"instruction {k}: a transfer from {keys[accounts[0]]}")
            elif keys[accounts[1]] != wallet:
                lamports += int.from_bytes(data[4:], "little")
                destinations.append(str(keys[accounts[1]]))
            continue
        if (
            program == _COMPUTE_BUDGET_PROGRAM
            and not accounts
            and (data[:1], len(data)) in ((bytes([_CU_LIMIT]), 5), (bytes([_CU_PRICE]), 9))
        ):
            if data[0] in budget:  # the runtime fails such a transaction (DuplicateInstruction)
                reasons.append(f"instruction {k}: a second compute budget instruction of a kind")
            budget[data[0]] = int.from_bytes(data[1:], "little")
            continue
        what = "System Program instruction" if program == _SYSTEM_PROGRAM else "instruction"
        reasons.append(f"instruction {k}: a {what} of program {program}, not understood")
    fee: Decimal | None = None
    if _CU_PRICE in budget and _CU_LIMIT not in budget:
        reasons.append("a compute-unit price without a compute-unit limit (fee unknown)")
    else:
        # Agave's fee: "(compute_unit_price * compute_unit_limit + MICRO_LAMPORTS_PER_LAMPORT
        # - 1) / MICRO_LAMPORTS_PER_LAMPORT", the limit capped at MAX_COMPUTE_UNIT_LIMIT.
        micro = budget.get(_CU_PRICE, 0) * min(budget.get(_CU_LIMIT, 0), _MAX_COMPUTE_UNIT_LIMIT)
        priority = -(-micro // _MICRO_LAMPORTS_PER_LAMPORT)
        base = SOLANA_LAMPORTS_PER_SIGNATURE * msg.header.num_required_signatures
        fee = _units(base + priority, _SOL_DECIMALS)
    return TxFacts(
        chain="solana",
        asset="SOL",
        amount=_units(lamports, _SOL_DECIMALS),
        destinations=tuple(destinations),
        fee=fee,
        digests=(raw,),
        opaque=bool(reasons),
        reasons=tuple(reasons),
        source=solana_address(pk),
    )
