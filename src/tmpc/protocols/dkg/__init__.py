"""Dealerless distributed key generation: ChillDKG (BlockstreamResearch/bip-frost-dkg).

Three layers, each wrapping the one below, as in the draft's reference:
:mod:`~tmpc.protocols.dkg.simplpedpop` (Pedersen VSS with proofs of possession),
:mod:`~tmpc.protocols.dkg.encpedpop` (shares encrypted to the host keys) and
:mod:`~tmpc.protocols.dkg.chilldkg` (CertEq equality check, host keys, recovery data).
For secp256k1 every byte follows the draft and its vectors; the same code runs with Ed25519
as the target group (``SessionParams(..., group=ED25519)``), see
:mod:`~tmpc.protocols.dkg.suite`. :func:`run_dkg` runs a whole session in one process.
"""

from tmpc.protocols.dkg.chilldkg import (
    CoordinatorInvestigationMsg,
    CoordinatorMsg1,
    CoordinatorMsg2,
    CoordinatorState,
    DKGOutput,
    ParticipantMsg1,
    ParticipantMsg2,
    ParticipantState1,
    ParticipantState2,
    SessionParams,
    coordinator_finalize,
    coordinator_investigate,
    coordinator_recover,
    coordinator_step1,
    hostpubkey_gen,
    params_hash,
    params_id,
    params_validate,
    participant_finalize,
    participant_investigate,
    participant_recover,
    participant_step1,
    participant_step2,
)
from tmpc.protocols.dkg.exceptions import (
    DuplicateHostPubkeyError,
    FaultyParticipantOrCoordinatorError,
    HostSeckeyError,
    InvalidHostPubkeyError,
    RandomnessError,
    RecoveryDataError,
    SessionParamsError,
    ThresholdOrCountError,
    UnknownFaultyParticipantOrCoordinatorError,
)
from tmpc.protocols.dkg.runner import DKGPublicResult, DKGResult, recover, run_dkg

__all__ = [
    "CoordinatorInvestigationMsg",
    "CoordinatorMsg1",
    "CoordinatorMsg2",
    "CoordinatorState",
    "DKGOutput",
    "DKGPublicResult",
    "DKGResult",
    "DuplicateHostPubkeyError",
    "FaultyParticipantOrCoordinatorError",
    "HostSeckeyError",
    "InvalidHostPubkeyError",
    "ParticipantMsg1",
    "ParticipantMsg2",
    "ParticipantState1",
    "ParticipantState2",
    "RandomnessError",
    "RecoveryDataError",
    "SessionParams",
    "SessionParamsError",
    "ThresholdOrCountError",
    "UnknownFaultyParticipantOrCoordinatorError",
    "coordinator_finalize",
    "coordinator_investigate",
    "coordinator_recover",
    "coordinator_step1",
    "hostpubkey_gen",
    "params_hash",
    "params_id",
    "params_validate",
    "participant_finalize",
    "participant_investigate",
    "participant_recover",
    "participant_step1",
    "participant_step2",
    "recover",
    "run_dkg",
]
