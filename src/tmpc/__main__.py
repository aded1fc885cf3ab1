"""``python -m tmpc``: the command line.

Signal handling starts here, before the slow import of the command line: SIGINT, SIGTERM or
SIGHUP during start-up end the process with one line on standard error and status 128 + N,
never a traceback (nothing has been written yet). :func:`tmpc.cli.main` then installs the
handlers that unwind a running command so that its cleanup runs.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

__all__ = ["run"]


def _exit_during_startup(signum: int, frame: FrameType | None) -> None:
    # os._exit: no interpreter shutdown (itself interruptible) and nothing to clean up yet.
    os.write(2, f"tmpc: error: interrupted by {signal.Signals(signum).name}\n".encode())
    os._exit(128 + signum)


def run() -> None:
    """Entry point: start-up signal handling first, then :func:`tmpc.cli.main`."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _exit_during_startup)
    from tmpc.cli import main

    main()


if __name__ == "__main__":
    run()
