"""One loader for the official vectors in ../shared/vectors (relative to the repo root)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"


def load_json(relpath: str) -> Any:
    """Parse ``../shared/vectors/<relpath>``."""
    return json.loads((VECTORS / relpath).read_text())
