"""The mount program: `python -m fusefs.mount MOUNTPOINT --metad HOST:PORT --blockd HOST:PORT
--cache DIR`, serving until unmounted, Ctrl-C or SIGTERM.

`drive mount` and `drive up` run it (the `drive` command settles which TLS
certificate to trust first, asking the user if need be, and hands it over
with --ca); it runs alone as well. Signed in as: with --data, the first user
of the drive under DATA (a token made with its auth key); else the bearer of
DRIVEFS_TOKEN, the login saved for NAME (--as NAME), or the login saved for
--metad. A token is renewed when half spent, and a saved login is kept up to
date.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from fusefs.clients import AccountsClient
from fusefs.credentials import TokenSource, find_token, local_token, renew_saved
from fusefs.errors import DriveError, NotSignedIn
from fusefs.mount.lifecycle import MountConfig, run_mount
from fusefs.mountpoints import DEFAULT_CACHE_BYTES, MountError
from protos import names, tls
from protos.runtime import (
    LOG_LEVELS,
    configure_logging,
    limit_malloc_arenas,
    parse_size,
    reuse_freed_blocks,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fusefs.mount", description=__doc__.split("\n")[0])
    p.add_argument("mountpoint", type=Path, help="an empty folder")
    p.add_argument("--metad", required=True, help="metad HOST:PORT")
    p.add_argument("--blockd", required=True, help="blockd HOST:PORT")
    p.add_argument("--cache", type=Path, required=True, help="local cache folder")
    p.add_argument("--cache-size", type=parse_size, default=DEFAULT_CACHE_BYTES, help="e.g. 10G")
    p.add_argument("--device", help="name of this device in the drive's history")
    p.add_argument("--ca", type=Path, metavar="FILE", help="TLS: trust this root (PEM)")
    p.add_argument("--data", type=Path, help="sign in as the first user of the drive under DATA")
    p.add_argument("--as", dest="as_user", metavar="NAME", help="the login saved for NAME")
    p.add_argument("--verbose", action="store_true", help="log what the mount does")
    p.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS,
        help="the least a log line is (default WARNING; INFO with --verbose)",
    )  # fmt: skip
    p.add_argument("--log-file", type=Path, metavar="FILE", help="log there, rotated")
    p.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus metrics there")
    return p


def _local_source(data: Path) -> TokenSource:
    """The first user's token of a drive on this machine, made anew when half spent."""

    def renew(_old: str) -> tuple[str, int]:
        made = local_token(data)
        if made is None:
            raise NotSignedIn(f"no auth key under {data}")
        return made

    return TokenSource(*renew(""), renew=renew)


def _signed_in_source(metad: str, trust: tls.Trust | None, user: str | None) -> TokenSource:
    token, expires_s, source = find_token(metad, None, user=user)
    current = [token]

    def renew(old: str) -> tuple[str, int]:
        client = AccountsClient(metad, lambda: old, trust=trust)
        try:
            signed_in = client.renew()
        finally:
            client.close()
        return signed_in.token, signed_in.expires_s

    def save(new: str, expires: int) -> None:
        if source == "saved":
            renew_saved(current[0], new, expires)
        current[0] = new

    return TokenSource(token, expires_s, renew=renew, on_renewed=save)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Blocks pass through megabyte buffers: kept for reuse, within one heap of 32 MiB.
    # One heap, not 4: a block freed by one thread is reused by the next, whichever
    # thread that is (a cold read: 60-65k page faults per GiB instead of 88-100k,
    # mount CPU ~4 % lower, peak memory ~70 MiB lower); megabyte allocations are too
    # few for threads to wait on the heap's lock.
    limit_malloc_arenas(1)
    reuse_freed_blocks(32 * 1024**2)
    level = args.log_level or ("INFO" if args.verbose else "WARNING")
    configure_logging(getattr(logging, level), args.log_file)
    try:
        trust = tls.Trust.for_ca(args.ca.read_bytes(), args.ca) if args.ca else None
        if args.data:
            token = _local_source(args.data)
        else:
            token = _signed_in_source(args.metad, trust, args.as_user)
        config = MountConfig(
            mountpoint=args.mountpoint.resolve(),
            metad=args.metad,
            blockd=args.blockd,
            cache_dir=args.cache,
            device=args.device,
            cache_bytes=args.cache_size,
            token=token,
            trust=trust,
            metrics=args.metrics,
        )

        def mounted() -> None:
            print(f"drive mounted at {config.mountpoint}", flush=True)

        run_mount(config, on_mounted=mounted)
    except (MountError, DriveError, OSError, ValueError) as exc:
        print(f"drive: error: {names.printable(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
