"""Suite-wide guard: the code under test is this checkout's ``src/tmpc``, not another copy."""

from __future__ import annotations

from pathlib import Path

import tmpc

ROOT = Path(__file__).resolve().parents[1]

if not Path(tmpc.__file__).resolve().is_relative_to(ROOT / "src"):
    raise RuntimeError(f"tmpc imported from {tmpc.__file__}, not from {ROOT / 'src'}")
