"""``python -m tmpc``: the command line."""

from tmpc.cli import main

main()
