"""`python -m blockd` / the `blockd` console script.

Owns: logging setup (stderr, one format), running the server on asyncio, and
turning a start-up failure the user can fix (port taken, data directory
unusable or of a newer format) into one line `blockd: error: ...` and exit
status 2, without a traceback.

Must not: know about blocks, gRPC services or backends beyond the errors
they raise at start.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from blockd.backends.base import BackendSetupError
from blockd.config import parse_args
from blockd.server import run
from protos.runtime import BindError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=config.log_level, format=LOG_FORMAT)
    try:
        asyncio.run(run(config))
    except (BindError, BackendSetupError) as exc:
        print(f"blockd: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 130  # interrupted before the server took over SIGINT
    return 0


if __name__ == "__main__":
    sys.exit(main())
