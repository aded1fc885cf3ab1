"""Acceptance of the cluster's Bitcoin signatures by Bitcoin Core's own consensus code.

libbitcoinkernel (Bitcoin Core's validation engine as a library), through ``py-bitcoinkernel``
(``import pbk``), checks two things here:

- :func:`kernel_verify_input`: script verification of one input with every consensus flag
  (P2SH, DERSIG, NULLDUMMY, CLTV, CSV, WITNESS, TAPROOT), given the outputs it spends;
- :func:`check_bitcoin`: a whole regtest chain built in memory. Block 1's coinbase pays the
  cluster's address, blocks 2..101 let it mature (100 confirmations), and block 102 carries a
  transaction spending that coinbase, signed by the cluster. The chain must reach height 102
  with that block at its tip. Before it, the same block with one signature byte flipped must be
  refused: the height stays at 101 and the kernel reports the block invalid (the reason comes
  from the kernel's log, e.g. ``block-script-verify-flag-failed (Invalid Schnorr signature)``).

What the kernel does not check (it is consensus code only): relay policy. Consensus accepts a
high-s ECDSA signature that no node relays; :func:`tmpc.chains.bitcoin.sign_spend` refuses
high-s itself, and the tests assert low-s separately.

``pbk`` is imported inside the functions, so importing this module stays cheap. The chain
lives in a temporary directory (the kernel writes its block files to disk even with in-memory
databases) that is removed afterwards.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
from collections.abc import Sequence
from typing import Any, Final

from embit.script import Script as _Script
from embit.script import Witness as _Witness
from embit.transaction import Transaction as _Transaction
from embit.transaction import TransactionInput as _TxIn
from embit.transaction import TransactionOutput as _TxOut

from tmpc.chains.bitcoin import (
    SignDigest,
    Utxo,
    _parse_tx,
    build_spend,
    script_pubkey_to_address,
    sign_spend,
    wallet_address,
    wallet_script_pubkey,
)
from tmpc.chains.check import ChainCheck
from tmpc.errors import DecodeError, ParameterError, TmpcError

__all__ = ["check_bitcoin", "flip_signature_byte", "kernel_verify_input"]

# Regtest consensus facts used to build blocks (Bitcoin Core kernel/chainparams.cpp).
_REGTEST_BITS: Final = 0x207FFFFF  # powLimit 7fffff00..., about 2 hashes per block
_REGTEST_GENESIS_TIME: Final = 1296688602
_SUBSIDY: Final = 50 * 100_000_000  # nSubsidyHalvingInterval = 150 on regtest
_COINBASE_MATURITY: Final = 100
_BLOCK_VERSION: Final = 0x20000000  # BIP9 top bits; >= 4 as BIP34/65/66 require
# A fixed outside payee for the test spend: the P2WPKH program of BIP173's example key.
_PAYEE_PROGRAM: Final = bytes.fromhex("751e76e8199196d454941c45d1b3a323f1433bd6")
_PAYEE_AMOUNT: Final = 100_000_000
_FEE: Final = 10_000


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def _spent_to_pbk(pbk: Any, spent_outputs: Sequence[tuple[int, bytes]]) -> list[Any]:
    outs = []
    for i, item in enumerate(spent_outputs):
        if not isinstance(item, tuple) or len(item) != 2:
            raise ParameterError(f"spent output {i} must be an (amount_sat, script_pubkey) pair")
        amount, spk = item
        if not isinstance(amount, int) or not 0 <= amount <= 21_000_000 * 100_000_000:
            raise ParameterError(f"spent output {i}: amount out of range")
        if not isinstance(spk, bytes | bytearray):
            raise ParameterError(f"spent output {i}: script_pubkey must be bytes")
        outs.append(pbk.TransactionOutput(pbk.ScriptPubkey(bytes(spk)), amount))
    return outs


def kernel_verify_input(
    raw_tx: bytes, spent_outputs: Sequence[tuple[int, bytes]], index: int
) -> bool:
    """Bitcoin Core's consensus script check of input ``index`` of ``raw_tx``.

    Runs ``btck_script_pubkey_verify`` with ``ScriptVerificationFlags.ALL`` and precomputed
    transaction data over the outputs spent by **all** inputs (Taproot commits to them).

    Args:
        raw_tx: the signed transaction.
        spent_outputs: ``(amount_sat, script_pubkey)`` of the output each input spends, in
            input order.
        index: the input to check.

    Returns:
        True if the kernel accepts the input's witness/scriptSig, False otherwise.

    Raises:
        DecodeError: ``raw_tx`` is not a transaction the kernel can parse.
        ParameterError: ``spent_outputs`` does not match the inputs, or ``index`` out of range.
    """
    import pbk
    from pbk.script import PrecomputedTransactionData

    if not isinstance(raw_tx, bytes | bytearray) or not raw_tx:
        raise DecodeError("a transaction is non-empty bytes")
    try:
        tx = pbk.Transaction(bytes(raw_tx))
    except RuntimeError:
        raise DecodeError("libbitcoinkernel cannot parse the transaction") from None
    n_inputs = len(tx.inputs)
    if len(spent_outputs) != n_inputs:
        raise ParameterError("give the spent output of every input")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < n_inputs:
        raise ParameterError("input index out of range")
    outs = _spent_to_pbk(pbk, spent_outputs)
    precomputed = PrecomputedTransactionData(tx, outs)
    amount, spk = spent_outputs[index]
    # verify() returns the int 1 / 0 and raises only for bad flags or missing spent outputs.
    result = pbk.ScriptPubkey(bytes(spk)).verify(
        amount, tx, precomputed, index, pbk.ScriptVerificationFlags.ALL
    )
    return bool(result)


def flip_signature_byte(raw_tx: bytes, index: int = 0) -> bytes:
    """A copy of ``raw_tx`` with one byte of input ``index``'s signature flipped.

    The low bit of the last byte of ``s`` is flipped: in a DER signature that is the byte
    before the hash type, in a BIP340 signature byte 63. The encoding stays well-formed, so a
    validator must reject the copy for its signature, not for its format. The txid does not
    change (witness data); the wtxid does.

    Raises:
        DecodeError: not a transaction; ParameterError: the input has no witness signature.
    """
    tx = _parse_tx(raw_tx)
    if not 0 <= index < len(tx.vin) or not tx.vin[index].witness.items:
        raise ParameterError("the input has no witness signature to flip")
    items = [bytes(x) for x in tx.vin[index].witness.items]
    sig = bytearray(items[0])
    if len(sig) in (64, 65):
        pos = 63  # BIP340: last byte of s (before an optional hash type byte)
    elif len(sig) >= 9 and sig[0] == 0x30:
        pos = len(sig) - 2  # DER || hash type: last byte of s
    else:
        raise ParameterError("the first witness item is not a signature")
    sig[pos] ^= 0x01
    items[0] = bytes(sig)
    tx.vin[index].witness = _Witness(items)
    return bytes(tx.serialize())


# --------------------------------------------------------------------------------------------
# Regtest blocks
# --------------------------------------------------------------------------------------------


def _script_num(n: int) -> bytes:
    """``CScript() << n`` for a block height (BIP34): OP_1..OP_16 or a minimal number push."""
    if n == 0:
        return b"\x00"
    if 1 <= n <= 16:
        return bytes([0x50 + n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "little")
    if body[-1] & 0x80:
        body += b"\x00"
    return bytes([len(body)]) + body


def _coinbase(
    height: int, outputs: list[tuple[int, bytes]], witness_commitment: bytes | None
) -> Any:
    # BIP34: the coinbase scriptSig starts with the height; consensus wants 2..100 bytes.
    script_sig = _script_num(height)
    if len(script_sig) < 2:
        script_sig += b"\x00"
    vout = [_TxOut(v, _Script(spk)) for v, spk in outputs]
    witness = None
    if witness_commitment is not None:
        # BIP141: "a scriptPubKey ... 0x6a24aa21a9ed + commitment" and a 32-byte reserved value
        # as the coinbase's witness.
        vout.append(_TxOut(0, _Script(b"\x6a\x24\xaa\x21\xa9\xed" + witness_commitment)))
        witness = _Witness([b"\x00" * 32])
    vin = [_TxIn(b"\x00" * 32, 0xFFFFFFFF, _Script(script_sig), 0xFFFFFFFF, witness)]
    return _Transaction(version=2, vin=vin, vout=vout, locktime=0)


def _merkle_root(hashes: list[bytes]) -> bytes:
    level = list(hashes)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [_sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def _block(prev_hash: bytes, height: int, payout: tuple[int, bytes], txs: list[bytes]) -> bytes:
    """A mined regtest block at ``height`` on ``prev_hash`` (internal byte order)."""
    commitment = None
    if txs:
        # BIP141: witness root over wtxids with the coinbase's taken as 0; commitment =
        # SHA256d(witness root || witness reserved value).
        wtxids = [b"\x00" * 32] + [_sha256d(t) for t in txs]
        commitment = _sha256d(_merkle_root(wtxids) + b"\x00" * 32)
    coinbase = _coinbase(height, [payout], commitment)
    parsed = [_Transaction.parse(t) for t in txs]
    txids = [coinbase.hash()] + [t.hash() for t in parsed]
    body = bytes([1 + len(txs)]) + bytes(coinbase.serialize()) + b"".join(txs)
    target = (_REGTEST_BITS & 0xFFFFFF) << (8 * ((_REGTEST_BITS >> 24) - 3))
    header_start = (
        _BLOCK_VERSION.to_bytes(4, "little")
        + prev_hash
        + _merkle_root(txids)
        + (_REGTEST_GENESIS_TIME + 600 * height).to_bytes(4, "little")
        + _REGTEST_BITS.to_bytes(4, "little")
    )
    for nonce in range(1 << 32):
        header = header_start + nonce.to_bytes(4, "little")
        if int.from_bytes(_sha256d(header), "little") <= target:
            return header + body
    raise ParameterError("no nonce found")  # unreachable at regtest difficulty


class _Kernel:
    """One in-memory regtest chainstate, its validation callback and its log."""

    def __init__(self, pbk: Any, datadir: str) -> None:
        self.pbk = pbk
        self.log: list[str] = []
        self.checked: list[tuple[Any, Any]] = []
        self.logging = pbk.LoggingConnection(self._on_log)
        callbacks = pbk.ValidationInterfaceCallbacks(block_checked=self._on_block_checked)
        self.context = pbk.make_context(pbk.ChainType.REGTEST, validation_callbacks=callbacks)
        opts = pbk.ChainstateManagerOptions(self.context, datadir, datadir + "/blocks")
        opts.update_block_tree_db_in_memory(True)
        opts.update_chainstate_db_in_memory(True)
        self.chainman = pbk.ChainstateManager(opts)

    def _on_log(self, message: str) -> None:
        self.log.append(message)

    def _on_block_checked(self, _user_data: Any, _block: Any, state: Any) -> None:
        self.checked.append((state.validation_mode, state.block_validation_result))

    def height(self) -> int:
        return int(self.chainman.get_active_chain().height)

    def tip_hash(self) -> bytes:
        chain = self.chainman.get_active_chain()
        return bytes(chain.block_tree_entries[chain.height].block_hash)

    def process(self, raw_block: bytes) -> tuple[bool, str]:
        """Process a block; returns (connected as the new tip, reason if not)."""
        before, seen = self.height(), len(self.log)
        self.checked.clear()
        try:
            self.chainman.process_block(self.pbk.Block(raw_block))
        except (self.pbk.ProcessBlockException, RuntimeError) as exc:
            return False, f"process_block failed: {exc}"

        block_hash = _sha256d(raw_block[:80])
        connected = self.height() == before + 1 and self.tip_hash() == block_hash
        valid = [mode == self.pbk.ValidationMode.VALID for mode, _ in self.checked]
        if connected and all(valid) and valid:
            return True, ""
        return False, self._reason(self.log[seen:])

    def validated_invalid(self) -> bool:
        """Whether the last processed block was fully validated and found invalid (the
        ``block_checked`` callback ran with INVALID), as opposed to merely not connected."""
        return any(mode == self.pbk.ValidationMode.INVALID for mode, _ in self.checked)

    def _reason(self, lines: list[str]) -> str:
        results = ", ".join(f"{m.name}/{r.name}" for m, r in self.checked) or "no block_checked"
        for line in lines:
            # e.g. "ConnectBlock ... failed, block-script-verify-flag-failed (Invalid Schnorr
            # signature), input 0 of ..." -- keep the reject code and its parenthesis.
            found = re.search(r"\b(?:bad|block|mandatory)-[\w-]+(?: \([^)]*\))?", line)
            if found:
                return f"{found.group(0)} [{results}]"
        return f"not connected [{results}]"

    def close(self) -> None:
        # Destroy the chainstate manager before its directory goes, then the log connection.
        self.chainman.__del__()
        self.logging.__del__()


def check_bitcoin(
    scheme: str, public_key: bytes, sign_digest: SignDigest, network: str = "regtest"
) -> ChainCheck:
    """Run the offline Bitcoin acceptance scenario for a cluster and report it.

    On an in-memory regtest chain (libbitcoinkernel): block 1's coinbase pays 50 BTC to the
    cluster's address (P2WPKH for ``ecdsa-secp256k1``, P2TR for ``schnorr-bip340``), blocks
    2..101 mature it, and the cluster signs a spend of it (1 BTC to a fixed outside P2WPKH
    address, the rest less a 10 000 sat fee back to its own address) through
    :func:`tmpc.chains.bitcoin.sign_spend`. Then:

    1. the spend with one signature byte flipped (:func:`flip_signature_byte`) goes into a
       block 102 and must be refused (height stays 101, the kernel names the reason), and
       :func:`kernel_verify_input` must refuse that input;
    2. the real spend goes into a block 102 that must become the tip at height 102, and
       :func:`kernel_verify_input` must accept its input.

    Args:
        scheme: ``ecdsa-secp256k1`` or ``schnorr-bip340``.
        public_key: 33-byte compressed key / 32-byte x-only Taproot output key.
        sign_digest: the cluster (one call, a 32-byte digest).
        network: only ``regtest`` (the chain is built locally).

    Returns:
        A :class:`~tmpc.chains.check.ChainCheck` (chain ``bitcoin``). A signer whose
        signature tmpc refuses (wrong length, high s, not verifying) gives
        ``accepted=False`` with the reason in ``detail``.

    Raises:
        DecodeError: a bad public key; ParameterError: another scheme or network.
    """
    import pbk

    if network != "regtest":
        raise ParameterError("the offline Bitcoin check runs on regtest only")
    started = time.perf_counter()
    own_spk = wallet_script_pubkey(scheme, public_key)
    address = wallet_address(scheme, public_key, "regtest")
    with tempfile.TemporaryDirectory(prefix="tmpc-regtest-") as datadir:
        kernel = _Kernel(pbk, datadir)
        try:
            return _scenario(kernel, scheme, public_key, sign_digest, own_spk, address, started)
        finally:
            kernel.close()


def _scenario(
    kernel: _Kernel,
    scheme: str,
    public_key: bytes,
    sign_digest: SignDigest,
    own_spk: bytes,
    address: str,
    started: float,
) -> ChainCheck:
    def result(txid: str, accepted: bool, flipped_rejected: bool, detail: str) -> ChainCheck:
        took = time.perf_counter() - started
        return ChainCheck(
            "bitcoin", scheme, address, txid, accepted, flipped_rejected, f"{detail} ({took:.2f} s)"
        )

    # Block 1 pays the cluster; blocks 2..101 (to an unspendable OP_RETURN) mature it.
    prev = kernel.tip_hash()
    block1 = _block(prev, 1, (_SUBSIDY, own_spk), [])
    ok, why = kernel.process(block1)
    if not ok:
        return result("", False, False, f"block 1 paying the cluster was refused: {why}")
    funding_txid = _Transaction.parse(block1[81:]).txid().hex()
    prev = _sha256d(block1[:80])
    for height in range(2, 2 + _COINBASE_MATURITY):
        block = _block(prev, height, (0, b"\x6a"), [])
        ok, why = kernel.process(block)
        if not ok:
            return result("", False, False, f"maturity block {height} was refused: {why}")
        prev = _sha256d(block[:80])
    spend_height = kernel.height() + 1

    payee = bytes([0, 20]) + _PAYEE_PROGRAM
    utxo = Utxo(funding_txid, 0, _SUBSIDY, own_spk)
    spend = build_spend(
        [utxo],
        [(script_pubkey_to_address(payee, "regtest"), _PAYEE_AMOUNT)],
        _FEE,
        change_address=address,
        network="regtest",
    )
    try:
        signed = sign_spend(spend, sign_digest, public_key, scheme)
    except TmpcError as exc:
        return result(spend.txid, False, False, f"signing refused: {exc}")
    flipped = flip_signature_byte(signed.raw, 0)
    spent = spend.spent_outputs

    # 1. The flipped copy: script check and block both refused.
    script_flipped = kernel_verify_input(flipped, spent, 0)
    ok_flipped, why_flipped = kernel.process(
        _block(prev, spend_height, (_SUBSIDY, b"\x6a"), [flipped])
    )
    # Refused means validated and found invalid, not just left aside: the block_checked
    # callback must have reported INVALID and the height must not have moved.
    flipped_rejected = (
        not script_flipped
        and not ok_flipped
        and kernel.validated_invalid()
        and kernel.height() == spend_height - 1
    )

    # 2. The real spend: script check and block 102 at the tip.
    script_ok = kernel_verify_input(signed.raw, spent, 0)
    ok_block, why_block = kernel.process(
        _block(prev, spend_height, (_SUBSIDY, b"\x6a"), [signed.raw])
    )
    accepted = script_ok and ok_block and kernel.height() == spend_height

    detail = (
        f"coinbase of block 1 spent in block {spend_height}: "
        + (f"connected, tip at height {kernel.height()}" if accepted else f"REFUSED: {why_block}")
        + f"; script check {'accepts' if script_ok else 'REFUSES'} the input"
        + f"; flipped signature: block {'refused' if not ok_flipped else 'ACCEPTED'}"
        + (f" ({why_flipped})" if not ok_flipped else "")
        + f", script check {'refuses' if not script_flipped else 'ACCEPTS'}"
    )
    return result(signed.txid, accepted, flipped_rejected, detail)
