"""`python -m fusefs.cli`: the drive command without its entry point installed."""

from fusefs.cli import main

main()
