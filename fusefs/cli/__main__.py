"""`python -m fusefs.cli`: the drive command without its entry point installed."""

import sys

from fusefs.cli import main

sys.exit(main())
