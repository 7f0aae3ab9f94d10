"""The helper of mount(8): `mount -t fuse.drivefs SOURCE MOUNTPOINT -o OPTIONS`, and so the
lines of /etc/fstab.

mount(8) looks for /sbin/mount.fuse.drivefs (written by `drive install
mount-helper`: a script running `python -m fusefs.cli.mount_helper`, also
installed as the `mount.drivefs` command) and runs it as
`mount.fuse.drivefs SOURCE MOUNTPOINT [-sfnv] [-o OPTIONS]`, with generic
options such as noauto and x-systemd.* already taken out, and with almost no
environment (no PATH, no HOME). It waits for the helper: so the helper starts
the mount detached (fusefs.cli.detached) and returns once it is mounted, or
with the mount's own error.

Which drive:
- `data=DIR`: the drive served on this machine under DIR (`drive serve`, or its
  unit), found through its ready files and signed in with its own key as its
  first user (the mount runs as `drive mount --data DIR`); SOURCE is then only
  a name (e.g. "drivefs");
- else SOURCE is HOST:PORT of metad, signed in as `drive login` saved it
  (the mount runs as `drive mount SOURCE`, with the same checks of whom to trust).

Options: cache=DIR, cache_size=10G, device=NAME, log_file=FILE (what the mount
writes; default CACHE/mount.log), ca=FILE (the drive's CA); ignored: what
mount(8) and systemd use themselves (defaults, rw, auto, nofail, _netdev, …).

Exit status, as mount(8) reads it: 0 mounted, 1 a mistake in the line (source
or options), 32 the mount failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from fusefs.cli import DEFAULT_DATA, detached, where
from fusefs.daemons import DaemonError
from fusefs.errors import DriveError
from fusefs.mountpoints import DEFAULT_CACHE_BYTES, MountError, check_mountpoint
from protos import names
from protos.runtime import parse_size, split_host_port

EXIT_USAGE = 1
EXIT_FAILED = 32
LOG_NAME = "mount.log"
# Options mount(8), the kernel or systemd act on, which mean nothing more to the mount.
GENERIC = frozenset(
    {
        "defaults", "rw", "auto", "noauto", "user", "nouser", "users", "owner", "group",
        "nofail", "_netdev", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "async",
        "atime", "noatime", "relatime", "strictatime", "nodiratime",
    }
)  # fmt: skip


class Usage(Exception):
    """A mistake in the mount line itself."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise Usage(message)


@dataclass(frozen=True)
class Options:
    """What the -o options ask of the mount."""

    data: Path | None = None
    cache: Path | None = None
    cache_size: int = DEFAULT_CACHE_BYTES
    device: str | None = None
    log_file: Path | None = None
    ca: Path | None = None


def parse_options(text: str, sloppy: bool = False) -> Options:
    """The mount's options of -o; Usage for one it does not know (unless sloppy: -s)."""
    given: dict[str, object] = {}
    for option in filter(None, text.split(",")):
        key, has_value, value = option.partition("=")
        if key in GENERIC or key.startswith("x-") or key == "comment":
            continue
        if key == "ro":
            raise Usage("drivefs mounts read-write only: remove ro")
        if key in ("data", "cache", "log_file", "ca") and has_value and value:
            given[key] = Path(value)
        elif key == "device" and has_value and value:
            given[key] = value
        elif key == "cache_size" and has_value:
            try:
                given[key] = parse_size(value)
            except argparse.ArgumentTypeError:
                raise Usage(f"cache_size={value}: a size such as 10G") from None
        elif key in ("data", "cache", "log_file", "ca", "device", "cache_size"):
            raise Usage(f"option {key} needs a value: {key}=…")
        elif not sloppy:
            raise Usage(
                f"unknown option {option!r} (drivefs takes data, cache, cache_size, device, "
                "log_file, ca)"
            )
    return Options(**given)  # type: ignore[arg-type]


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mount.fuse.drivefs", description="mount(8) helper of drivefs")
    p.add_argument("source", help="metad HOST:PORT, or a name with -o data=DIR")
    p.add_argument("mountpoint", type=Path)
    p.add_argument("-o", dest="options", action="append", default=[], help="OPT[,OPT…]")
    p.add_argument("-s", dest="sloppy", action="store_true", help="ignore unknown options")
    p.add_argument("-f", dest="fake", action="store_true", help="check only, mount nothing")
    p.add_argument("-n", dest="no_mtab", action="store_true", help="(no /etc/mtab: ignored)")
    p.add_argument("-v", dest="verbose", action="store_true", help="the mount logs what it does")
    p.add_argument("-t", dest="type", help="(fuse.drivefs: ignored)")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        options = parse_options(",".join(args.options), args.sloppy)
        return mount(args.source, args.mountpoint, options, fake=args.fake, verbose=args.verbose)
    except Usage as exc:
        _say(str(exc))
        return EXIT_USAGE
    except (MountError, DaemonError, DriveError) as exc:
        _say(str(exc))
        return EXIT_FAILED


def mount(source: str, mountpoint: Path, options: Options, *, fake: bool, verbose: bool) -> int:
    """Starts the mount detached and waits until mountpoint is mounted."""
    check_mountpoint(mountpoint)
    if options.data is not None:
        command, cache = _local_drive(mountpoint, options, verbose)
    else:
        command, cache = _other_drive(source, mountpoint, options, verbose)
    if fake:
        return 0
    log = options.log_file or cache / LOG_NAME
    child = detached.start(command, log)
    detached.wait_until_up(child, lambda: os.path.ismount(mountpoint), "the mount")
    return 0


def _local_drive(mountpoint: Path, options: Options, verbose: bool) -> tuple[list[str], Path]:
    """`drive mount --data DIR`: the drive served under DIR, signed in with its own key.
    Refused here when none runs there: `drive mount` would take the last login's drive."""
    data = options.data.absolute()  # type: ignore[union-attr]
    if any(where.ready_address(data, name) is None for name in ("metad", "blockd")):
        raise DriveError(
            f"no drive is running under {data}: start it first (drive serve --data {data})"
        )
    cache = (options.cache or data / "cache").absolute()
    return _drive_mount(mountpoint, options, verbose, cache, "--data", str(data)), cache


def _other_drive(
    source: str, mountpoint: Path, options: Options, verbose: bool
) -> tuple[list[str], Path]:
    """`drive mount --metad SOURCE`: a drive elsewhere, as `drive login` signed in to it."""
    try:
        split_host_port(source)
    except ValueError:
        raise Usage(
            f"source {source!r}: give metad's HOST:PORT, or -o data=DIR for the drive "
            "served on this machine"
        ) from None
    cache = (options.cache or DEFAULT_DATA / "cache" / (options.device or "default")).absolute()
    return _drive_mount(mountpoint, options, verbose, cache, "--metad", source), cache


def _drive_mount(
    mountpoint: Path, options: Options, verbose: bool, cache: Path, *which: str
) -> list[str]:
    """The `drive mount` command line: it settles whom to trust and as whom (running.mount)."""
    command = [
        sys.executable, "-m", "fusefs.cli", *(["--verbose"] if verbose else []),
        "mount", str(mountpoint.resolve()), *which,
        "--cache", str(cache), "--cache-size", str(options.cache_size),
    ]  # fmt: skip
    if options.device:
        command += ["--device", options.device]
    if options.ca:
        command += ["--ca", str(options.ca.absolute())]
    return command


def _say(message: str) -> None:
    print(f"drive: error: {names.printable(message)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
