"""Suite-wide fixtures and guards.

- The code under test is this checkout's ``src/tmpc``, not another copy.
- Every test gets its own single-use ledger directory (``TMPC_STATE_HOME``), inherited by the
  CLI processes tests start, so no test writes to the user's home or sees another's ledger.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import tmpc
from tmpc.state.ledger import LEDGER_ENV

ROOT = Path(__file__).resolve().parents[1]

if not Path(tmpc.__file__).resolve().is_relative_to(ROOT / "src"):
    raise RuntimeError(f"tmpc imported from {tmpc.__file__}, not from {ROOT / 'src'}")


@pytest.fixture(autouse=True)
def _private_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh ``TMPC_STATE_HOME`` for each test (restored afterwards)."""
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp("state-home")
        mp.setenv(LEDGER_ENV, str(home))
        yield home
