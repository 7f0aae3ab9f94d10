"""Command line of metad: arguments, logging, and the exit status.

`python -m metad --data DIR [--database postgresql://...] [--listen HOST:PORT]
[--ready-file PATH] [--log-level LEVEL] [--tls-cert FILE --tls-key FILE | --insecure]`.
A startup failure the operator caused (port taken, data directory not
writable, database from a newer metad, plain text on a non-loopback address,
an unusable certificate) prints one line `metad: error: <message>` and
exits 2, without a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from metad import quiet, server
from metad.errors import StartupError
from metad.housekeeping import Housekeeping
from metad.retention import DAY_NS, Retention
from protos.runtime import (
    LOG_LEVELS,
    BindError,
    add_tls_options,
    check_tls_options,
    configure_logging,
    parse_size,
    split_host_port,
    stop_with_parent,
)
from protos.tls import TlsError

EXIT_USAGE = 2
DEFAULT_LISTEN = "127.0.0.1:7401"  # the port `drive serve` uses for metad


def _address(value: str) -> str:
    try:
        split_host_port(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return value


def _database(value: str) -> str:
    # Never echo the value back: a URL may carry a password.
    if not value.startswith(("postgresql://", "postgres://")):
        raise argparse.ArgumentTypeError("expected a postgresql:// URL")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="metad", description="drivefs metadata daemon (drive.v1.Metadata over gRPC)"
    )
    parser.add_argument("--data", type=Path, required=True, help="data directory")
    parser.add_argument(
        "--database",
        type=_database,
        metavar="URL",
        help="keep the metadata in PostgreSQL (postgresql://USER[:PASSWORD]@HOST[:PORT]/DB),"
        " which several metad may share; default: DATA/metadata.db (SQLite)",
    )
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
        choices=LOG_LEVELS,
        help="default: INFO",
    )
    parser.add_argument(
        "--log-file", type=Path, metavar="FILE", help="log there, rotated (default: stderr)"
    )
    parser.add_argument(
        "--auth-key",
        type=Path,
        help="file of the secret tokens are signed with, shared with blockd "
        "(default DATA/auth.key, created on first start)",
    )
    parser.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics",
    )
    parser.add_argument(
        "--blockd-address",
        default="",
        metavar="HOST:PORT",
        help="where clients reach blockd, told to anyone who asks (GetDrive); :PORT for "
        "the host clients reach metad at",
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
    keep = parser.add_argument_group(
        "trash and revisions", "what is kept, checked hourly; dropped content goes to `drive gc`"
    )
    keep.add_argument(
        "--trash-days",
        type=float,
        default=30,
        help="deleted files are purged after this many days (default 30, 0 = never)",
    )
    keep.add_argument(
        "--keep-all-days",
        type=float,
        default=30,
        help="every revision is kept this long (default 30)",
    )
    keep.add_argument(
        "--keep-daily-days",
        type=float,
        default=90,
        help="then one revision a day up to this age (default 90)",
    )
    keep.add_argument(
        "--keep-weekly-days",
        type=float,
        default=0,
        help="then one a week up to this age (default 0 = for ever)",
    )
    keep.add_argument(
        "--quiet-seconds",
        type=float,
        default=quiet.WINDOW_NS / 1e9,
        help="a file removed this soon after it was created skips the trash, as programs'"
        f" temporaries do (default {quiet.WINDOW_NS / 1e9:.0f}; 0 = by name only)",
    )
    keep.add_argument(
        "--housekeeping-interval",
        type=float,
        default=3600,
        metavar="SECONDS",
        help=argparse.SUPPRESS,
    )
    add_tls_options(parser)
    args = parser.parse_args(argv)
    check_tls_options(parser, args)
    return args


def main(argv: list[str] | None = None) -> None:
    stop_with_parent()
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_file)
    config = server.Config(
        data_dir=args.data,
        listen=args.listen,
        ready_file=args.ready_file,
        auth_key=args.auth_key,
        first_user=args.first_user,
        default_quota=args.default_quota,
        quiet_ns=int(args.quiet_seconds * 1e9),
        housekeeping=Housekeeping(
            trash_ns=int(args.trash_days * DAY_NS),
            retention=Retention.from_days(
                args.keep_all_days, args.keep_daily_days, args.keep_weekly_days
            ),
            interval_s=args.housekeeping_interval,
        ),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        insecure=args.insecure,
        blockd_address=args.blockd_address,
        metrics=args.metrics,
        database=args.database,
    )
    try:
        asyncio.run(server.run(config))
    except (StartupError, BindError, TlsError) as exc:
        print(f"metad: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()
