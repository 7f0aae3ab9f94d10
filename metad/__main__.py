"""Command line of metad: arguments, logging, and the exit status.

`python -m metad --data DIR [--listen HOST:PORT] [--ready-file PATH] [--log-level LEVEL]`.
A startup failure the operator caused (port taken, data directory not
writable, database from a newer metad) prints one line
`metad: error: <message>` and exits 2, without a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from metad import server
from metad.errors import StartupError
from protos.runtime import BindError, parse_size, split_host_port, stop_with_parent

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
EXIT_USAGE = 2
DEFAULT_LISTEN = "127.0.0.1:7401"  # the port `drive serve` uses for metad


def _address(value: str) -> str:
    try:
        split_host_port(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="metad", description="drivefs metadata daemon (drive.v1.Metadata over gRPC)"
    )
    parser.add_argument("--data", type=Path, required=True, help="data directory")
    parser.add_argument(
        "--listen",
        type=_address,
        default=DEFAULT_LISTEN,
        help=f"HOST:PORT to serve on, port 0 = any free port (default: {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--ready-file", type=Path, help="write the bound HOST:PORT here once listening"
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default: INFO",
    )
    parser.add_argument(
        "--auth-key",
        type=Path,
        help="file of the secret tokens are signed with, shared with blockd "
        "(default DATA/auth.key, created on first start)",
    )
    parser.add_argument(
        "--first-user",
        default=server.FIRST_USER_NAME,
        help="name of the administrator created on first start "
        f"(default {server.FIRST_USER_NAME!r})",
    )
    parser.add_argument(
        "--default-quota",
        type=parse_size,
        default=server.DEFAULT_QUOTA_BYTES,
        help="quota of new users, e.g. 10G (default), 0 = unlimited",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    stop_with_parent()
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format=LOG_FORMAT, stream=sys.stderr)
    config = server.Config(
        data_dir=args.data,
        listen=args.listen,
        ready_file=args.ready_file,
        auth_key=args.auth_key,
        first_user=args.first_user,
        default_quota=args.default_quota,
    )
    try:
        asyncio.run(server.run(config))
    except (StartupError, BindError) as exc:
        print(f"metad: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()
