"""One loader for the official test vectors in ``tests/vectors/`` (inside the repository).

Each folder there holds one source's files and a README naming its source, commit and licence.
A missing file raises ``FileNotFoundError`` at collection: a vector test never skips.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parent / "vectors"


def load_json(relpath: str) -> Any:
    """Parse ``tests/vectors/<relpath>``."""
    return json.loads((VECTORS / relpath).read_text())
