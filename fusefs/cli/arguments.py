"""The `drive` command's arguments: every subcommand, option and default.

Owns the argparse tree (what `drive --help` shows) and the defaults it names.
Must not run anything: fusefs.cli runs the command the arguments pick.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
from pathlib import Path

from fusefs.cli import config, install, timespec
from fusefs.mountpoints import DEFAULT_CACHE_BYTES
from protos.runtime import LOG_LEVELS, parse_size

DEFAULT_DATA = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / "drivefs"
DEFAULT_METAD = "127.0.0.1:7401"
DEFAULT_BLOCKD = "127.0.0.1:7402"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="drive", description="drivefs: a cloud drive as a folder")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    p.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS,
        help="the least a log line is, here and in the mount and daemons started "
        "(default WARNING; INFO with -v; the daemons INFO)",
    )  # fmt: skip
    p.add_argument("--version", action="version", version=f"drive (drivefs) {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the whole drive on this machine and mount it")
    up.add_argument("mountpoint", type=Path)
    up.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"default {DEFAULT_DATA}")
    kept = "default: as last time; at first 127.0.0.1:{} if free, else any port"
    up.add_argument("--metad", help="listen address (" + kept.format(7401) + ")")
    up.add_argument("--blockd", help="listen address (" + kept.format(7402) + ")")
    _listen_option(up)
    _mount_options(up, cache_required=False)
    _block_store_options(up)
    _background_option(up, "once mounted")

    serve = sub.add_parser("serve", help="run metad and blockd only")
    serve.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"default {DEFAULT_DATA}")
    serve.add_argument("--metad", help=f"listen address (default {DEFAULT_METAD})")
    serve.add_argument("--blockd", help=f"listen address (default {DEFAULT_BLOCKD})")
    _listen_option(serve)
    serve.add_argument(
        "--tls-cert", type=Path, metavar="FILE",
        help="your own certificate, then its chain up to the CA (default: the drive's own, "
        "made under DATA/tls on first start)",
    )  # fmt: skip
    serve.add_argument("--tls-key", type=Path, metavar="FILE", help="its key (with --tls-cert)")
    serve.add_argument(
        "--metadata", metavar="URL",
        help="keep the metadata in PostgreSQL: postgresql://USER@HOST[:PORT]/DB (a password "
        "from PGPASSWORD or ~/.pgpass); default: a SQLite file under DATA",
    )  # fmt: skip
    serve.add_argument(
        "--metrics", metavar="HOST:PORT", help="Prometheus metrics: metad there, blockd on PORT+1"
    )
    _block_store_options(serve)
    _background_option(serve, "once both daemons listen")

    mount = sub.add_parser("mount", help="mount a running drive (another device)")
    mount.add_argument("mountpoint", type=Path)
    mount.add_argument(
        "--metad", metavar="HOST[:PORT]",
        help="metad's address (default: the drive running under --data, else the drive "
        "of your most recent drive login)",
    )  # fmt: skip
    mount.add_argument("--blockd", help="blockd address HOST:PORT (default: where metad says)")
    mount.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a drive on this machine")
    _as_option(mount)
    _mount_options(mount, cache_required=False)
    _trust_options(mount)
    gc = sub.add_parser("gc", help="delete blocks no file refers to any more")
    _daemon_options(gc)
    gc.add_argument(
        "--grace", type=int, default=3600, metavar="SECONDS",
        help="keep blocks younger than this (uploads still in progress; default 3600)",
    )  # fmt: skip
    gc.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    scrub = sub.add_parser(
        "scrub",
        help="verify every stored block, name the files a damaged one is in; exit 1 on any problem",
    )
    scrub.add_argument(
        "--repair",
        action="store_true",
        help="heal damaged or missing blocks from the mount caches on this machine and from "
        "the devices that hold them",
    )
    scrub.add_argument(
        "--cache",
        type=Path,
        action="append",
        default=[],
        help="a mount's cache directory to heal from (default: the ones under DATA)",
    )
    _daemon_options(scrub)

    status = sub.add_parser(
        "status",
        help="your space (administrators: also the store's); this device's work not sent yet",
    )
    status.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    _daemon_options(status)

    sync = sub.add_parser(
        "sync",
        help="wait until the mounts on this machine have sent everything closed in them "
        "(exit 1 if something could not be sent)",
    )
    sync.add_argument("mountpoint", type=Path, nargs="*", help="default: every drivefs mount")
    umount = sub.add_parser(
        "umount",
        help="send what the mount can, say what is left (kept, sent by the next mount), unmount",
    )
    umount.add_argument("mountpoint", type=Path)

    login = sub.add_parser("login", help="sign in to a drive; the token is kept for commands")
    login.add_argument(
        "where", nargs="?", metavar="HOST[:PORT]",
        help="the drive's metad (port default 7401; default: --metad, else the drive "
        "running under --data)",
    )  # fmt: skip
    login.add_argument("name", help="your user name")
    _daemon_options(login)
    login.add_argument(
        "--fingerprint", metavar="SHA256:…",
        help="trust the drive's certificate authority if it has this fingerprint "
        "(as drive serve prints it); replaces a pin",
    )  # fmt: skip
    _password_options(login)

    logout = sub.add_parser("logout", help="forget the saved sign-in of a drive")
    logout.add_argument("where", nargs="?", metavar="HOST[:PORT]", help="the drive's metad")
    _daemon_options(logout)

    whoami = sub.add_parser("whoami", help="the account you are signed in as")
    _daemon_options(whoami)

    user = sub.add_parser("user", help="accounts (adding users and quotas: administrators)")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a user with an empty drive")
    add.add_argument("name")
    add.add_argument("--quota", type=parse_size, default=0, help="e.g. 20G (default: the server's)")
    add.add_argument("--admin", action="store_true", help="may manage users and maintenance")
    _daemon_options(add)
    _password_options(add)
    users = user_sub.add_parser("list", help="every user")
    _daemon_options(users)
    passwd = user_sub.add_parser("passwd", help="change your password (or, as admin, anyone's)")
    passwd.add_argument("name", nargs="?", default="", help="whose (default: yours)")
    _daemon_options(passwd)
    _password_options(passwd)
    quota = user_sub.add_parser("quota", help="set a user's quota")
    quota.add_argument("name")
    quota.add_argument("size", type=parse_size, help="e.g. 10G; 0 = unlimited")
    _daemon_options(quota)
    disable = user_sub.add_parser(
        "disable", help="sign a user out everywhere and refuse their sign-ins"
    )
    disable.add_argument("name")
    _daemon_options(disable)
    enable = user_sub.add_parser("enable", help="let a disabled user sign in again")
    enable.add_argument("name")
    _daemon_options(enable)

    _browse_parsers(sub)
    config.add_parser(sub)
    _service_parsers(sub)
    return p


def _background_option(p: argparse.ArgumentParser, when: str) -> None:
    p.add_argument(
        "--background", action="store_true",
        help=f"run detached, output to DATA/drive.log; return {when} (drive stop stops it)",
    )  # fmt: skip


def _service_parsers(sub: argparse._SubParsersAction) -> None:
    """Commands that run the drive as a service: stopping it, installing it."""
    stop = sub.add_parser("stop", help="stop the drive running under DATA (drive up or serve)")
    stop.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"default {DEFAULT_DATA}")
    stop.add_argument(
        "--timeout", type=float, default=60.0, metavar="SECONDS",
        help="give up waiting for it to save and stop after this long (default 60)",
    )  # fmt: skip

    setup = sub.add_parser("install", help="start the drive at boot; mount it with mount(8)")
    what = setup.add_subparsers(dest="install_command", required=True)
    unit = what.add_parser(
        "systemd", help="a systemd unit that runs drive up at boot and stops it cleanly"
    )
    unit.add_argument("mountpoint", type=Path)
    unit.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"default {DEFAULT_DATA}")
    unit.add_argument(
        "--user", action="store_true",
        help="a unit of your own systemd (~/.config/systemd/user): runs while you are logged "
        "in, or from boot with loginctl enable-linger",
    )  # fmt: skip
    unit.add_argument(
        "--output", metavar="FILE",
        help=f"write it there ('-': print it; default {install.SYSTEM_UNITS}/NAME or, with "
        f"--user, {install.USER_UNITS}/NAME)",
    )  # fmt: skip
    helper = what.add_parser(
        "mount-helper", help="the helper of `mount -t fuse.drivefs` and fstab (as root)"
    )
    helper.add_argument(
        "--output", type=Path, metavar="FILE", default=install.MOUNT_HELPER,
        help=f"default {install.MOUNT_HELPER}, where mount(8) looks for it",
    )  # fmt: skip


PATH_HELP = (
    'a path in the drive as the mount shows it, e.g. docs/plan.txt or "Shared with me/plan.txt"'
    " (a local path inside a mount works too)"
)
TIME_HELP = f"a past time: {timespec.EXAMPLES} (local time)"
JSON_HELP = "one JSON object per line, for scripts"


def _browse_parsers(sub: argparse._SubParsersAction) -> None:
    """Commands on your files: listing, history, restore, trash, sharing, watching."""
    ls = sub.add_parser("ls", help="a folder's entries, now or as they were at a time")
    ls.add_argument("path", nargs="?", default="", help=PATH_HELP + " (default: the root)")
    ls.add_argument("--at", metavar="TIME", help=TIME_HELP)
    ls.add_argument("--json", action="store_true", help=JSON_HELP)
    _daemon_options(ls)

    history = sub.add_parser("history", help="the kept revisions of a file")
    history.add_argument("path", help=PATH_HELP)
    history.add_argument("--json", action="store_true", help=JSON_HELP)
    _daemon_options(history)

    restore = sub.add_parser(
        "restore", help="bring back an old revision of a file, or a file or folder as it was"
    )
    restore.add_argument("path", help=PATH_HELP + "; with --at, as it was named then")
    which = restore.add_mutually_exclusive_group(required=True)
    which.add_argument("--revision", type=int, metavar="N", help="a revision (see drive history)")
    which.add_argument("--at", metavar="TIME", help=TIME_HELP)
    _daemon_options(restore)

    trash = sub.add_parser("trash", help="deleted files (default: list them)")
    trash.add_argument("--json", action="store_true", help=JSON_HELP + " (the listing)")
    _daemon_options(trash)
    trash_sub = trash.add_subparsers(dest="trash_command", metavar="{list,restore,empty}")
    _daemon_options(trash_sub.add_parser("list", help="what is in the trash"), defaults=False)
    back = trash_sub.add_parser("restore", help="put a deleted file or folder back")
    back.add_argument("what", metavar="PATH|ID", help="where it was, or its id in drive trash")
    _daemon_options(back, defaults=False)
    empty = trash_sub.add_parser("empty", help="forget deleted files' content for good")
    _daemon_options(empty, defaults=False)

    share = sub.add_parser("share", help="let another user read or change a file or folder")
    share.add_argument("path", help=PATH_HELP)
    share.add_argument("user", help="the user's name")
    share.add_argument(
        "--role", choices=["read", "write"], default="read", help="what they may do (default read)"
    )
    _daemon_options(share)

    unshare = sub.add_parser("unshare", help="take a share away")
    unshare.add_argument("path", help=PATH_HELP)
    unshare.add_argument("user", nargs="?", default="", help="whose (default: everyone's)")
    _daemon_options(unshare)

    shares = sub.add_parser("shares", help="what you share and what is shared with you")
    shares.add_argument("path", nargs="?", help="only shares of this file or folder")
    shares.add_argument("--json", action="store_true", help=JSON_HELP)
    _daemon_options(shares)

    changes = sub.add_parser("watch", help="print changes to your drive and shares as they happen")
    changes.add_argument(
        "--from", dest="from_sequence", type=int, metavar="SEQ",
        help="start after change SEQ (default: only changes from now on)",
    )  # fmt: skip
    changes.add_argument("--count", type=int, metavar="N", help="stop after N changes")
    changes.add_argument(
        "--sequence", action="store_true", help="start each line with its number (for --from)"
    )
    changes.add_argument("--json", action="store_true", help=JSON_HELP + " (with its sequence)")
    _daemon_options(changes)


def _block_store_options(p: argparse.ArgumentParser) -> None:
    """Where blockd keeps blocks; handed through to it (see `blockd --help`)."""
    env = os.environ.get
    g = p.add_argument_group(
        "block store",
        "blocks go to DATA/blockd unless an S3 bucket is given; "
        "S3 credentials come from the standard AWS variables and files",
    )
    g.add_argument("--s3-bucket", default=env("DRIVEFS_S3_BUCKET"), help="[DRIVEFS_S3_BUCKET]")
    g.add_argument("--s3-endpoint", metavar="URL", help="an S3-compatible service (default: AWS)")
    g.add_argument("--s3-region", help="the bucket's region")
    g.add_argument("--s3-prefix", help="key prefix of every object, e.g. drivefs/")
    g.add_argument("--key-file", type=Path, help="master keys (default DATA/blockd/keys.json)")


def _password_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password(s) from standard input, one per line, instead of asking",
    )


def _daemon_options(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    """--data, --metad, --blockd. defaults=False on a subcommand whose parent command
    has them already: argparse would otherwise reset what was given before it."""
    none = None if defaults else argparse.SUPPRESS
    data = DEFAULT_DATA if defaults else argparse.SUPPRESS
    p.add_argument("--data", type=Path, default=data, help="the running drive's data")
    p.add_argument(
        "--metad", default=none, help="metad HOST:PORT (default: the drive running under --data)"
    )
    p.add_argument(
        "--blockd", default=none, help="blockd HOST:PORT (default: the drive running under --data)"
    )
    _as_option(p, defaults)
    _trust_options(p, defaults)


def _as_option(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    p.add_argument(
        "--as", dest="as_user", metavar="NAME", default=None if defaults else argparse.SUPPRESS,
        help="act as NAME, with the login drive login saved for NAME (default: on this "
        "machine's drive its first user, elsewhere your most recent login)",
    )  # fmt: skip


def _listen_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--listen", metavar="HOST",
        help="listen on HOST (e.g. 0.0.0.0: every interface) instead of 127.0.0.1, "
        "on the same ports; beyond loopback the daemons speak TLS",
    )  # fmt: skip


def _trust_options(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    """--ca and --insecure: what to trust instead of the pin drive login saved."""
    p.add_argument(
        "--ca", type=Path, metavar="FILE", default=None if defaults else argparse.SUPPRESS,
        help="trust the drive's TLS certificate if this CA (PEM) signed it",
    )  # fmt: skip
    p.add_argument(
        "--insecure", action="store_true", default=False if defaults else argparse.SUPPRESS,
        help="plain text even to another machine: password and token cross the network readable",
    )  # fmt: skip


def _mount_options(p: argparse.ArgumentParser, cache_required: bool) -> None:
    p.add_argument("--cache", type=Path, required=cache_required, help="local cache directory")
    p.add_argument("--cache-size", type=parse_size, default=DEFAULT_CACHE_BYTES, help="e.g. 10G")
    p.add_argument("--device", help="name of this device in the drive's history")
    p.add_argument("--log-file", type=Path, metavar="FILE", help="the mount logs there, rotated")
    p.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="Prometheus metrics of the mount there (drive up: of metad there, blockd on "
        "PORT+1, the mount on PORT+2)",
    )


def _version() -> str:
    try:
        return importlib.metadata.version("drivefs")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"
