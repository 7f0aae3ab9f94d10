"""`python -m blockd` / the `blockd` console script, and `blockd rotate-key`.

Owns: logging setup (stderr, one format), running the server on asyncio, the
`rotate-key` command, and turning a start-up failure the user can fix (port
taken, data directory or bucket unusable or of a newer format, key file
missing, wrong or too open, plain text on a non-loopback address, a
certificate that cannot serve) into one line `blockd: error: ...` and exit
status 2, without a traceback.

Must not: know about blocks, gRPC services or backends beyond the errors
they raise at start.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from blockd import keys
from blockd.backends.base import BackendSetupError
from blockd.config import parse_args, parse_rotate_args
from blockd.server import run
from protos.auth import AuthKeyError
from protos.runtime import (
    BindError,
    configure_logging,
    limit_malloc_arenas,
    quiet_garbage_collector,
    stop_with_parent,
)
from protos.tls import TlsError

ROTATE_COMMAND = "rotate-key"


# Heaps glibc keeps for all of blockd's threads (see limit_malloc_arenas): one. The hot
# blocks (long-lived, made in worker threads) and the blocks in flight (short-lived:
# decoded blocks, serialized messages, gRPC's and obstore's buffers) then share one
# heap and reuse each other's freed holes. With 4 heaps each kept its own high-water
# mark: after a 1 GiB write and cold reads, ~310 MiB were freed but held (mallinfo2)
# and the peak RSS was 686-746 MiB (738 with 3 GiB) against 491-535 with one heap (the
# write's), whatever the size. CPU per GiB read or written was the same in alternating
# runs, local and S3 (blockd's threads mostly wait on disk, the network or the GIL).
MALLOC_ARENAS = 1


def main(argv: Sequence[str] | None = None) -> int:
    stop_with_parent()
    limit_malloc_arenas(MALLOC_ARENAS)
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [ROTATE_COMMAND]:
        return rotate_key(args[1:])
    config = parse_args(args)
    configure_logging(config.log_level, config.log_file)
    quiet_garbage_collector(GC_YOUNG_THRESHOLD)
    try:
        asyncio.run(run(config))
    except (BindError, BackendSetupError, keys.KeyFileError, AuthKeyError, TlsError) as exc:
        print(f"blockd: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 130  # interrupted before the server took over SIGINT
    return 0


# Allocations between two collections of the youngest objects (Python's default: 700).
# Each block served makes a few dozen short-lived objects: with the defaults the
# collector ran every few blocks and, every hundred runs, walked every object loaded
# (gRPC, protobuf, cryptography): ~6 % of blockd's CPU on a cold read.
GC_YOUNG_THRESHOLD = 20_000


def rotate_key(argv: Sequence[str]) -> int:
    config = parse_rotate_args(argv)
    try:
        if config.new:
            keyring = keys.create(config.key_path)
            print(f"new key file {config.key_path}, master key {keyring.current.name}; back it up")
            return 0
        keyring, key = keys.add_key(config.key_path)
    except keys.KeyFileError as exc:
        print(f"blockd: error: {exc}", file=sys.stderr, flush=True)
        return 2
    print(
        f"new current master key {key.name} in {config.key_path} ({len(keyring.keys)} keys); "
        "blocks written before stay readable; restart blockd to write with the new key"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
