"""The command line: a thin shell over the library.

:mod:`tmpc.cli.main` holds the ``tmpc`` command group and the one-process commands,
:mod:`tmpc.cli.node` the commands that run or talk to party nodes; :mod:`tmpc.cli.demo`,
:mod:`tmpc.cli.bench` and :mod:`tmpc.cli.testnet` are the jobs behind ``make demo``,
``tmpc bench`` and ``tmpc testnet-check``.
"""

from tmpc.cli.main import cli, main

__all__ = ["cli", "main"]
