"""blockd's command line and the settings it yields.

Owns: the options (`--data`, `--listen`, `--ready-file`, `--log-level`) and
their defaults. Must not: open files, bind sockets or configure logging.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from protos.runtime import split_host_port

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class Config:
    data_dir: Path  # the local store (FORMAT, LOCK, blocks/); also holds the log
    listen: str  # HOST:PORT; port 0 picks a free port (see ready_file)
    ready_file: Path | None  # gets the bound HOST:PORT once serving
    log_level: str = "INFO"


def parse_args(argv: Sequence[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        prog="blockd", description="The drivefs block daemon: content-addressed block storage."
    )
    parser.add_argument("--data", type=Path, required=True, help="data directory")
    parser.add_argument("--listen", default="127.0.0.1:7420", help="HOST:PORT to serve on")
    parser.add_argument(
        "--ready-file", type=Path, help="write the bound HOST:PORT here once serving"
    )
    parser.add_argument("--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS)
    args = parser.parse_args(argv)
    try:
        split_host_port(args.listen)
    except ValueError as exc:
        parser.error(str(exc))
    return Config(
        data_dir=args.data, listen=args.listen, ready_file=args.ready_file, log_level=args.log_level
    )
