"""The `drive` command: run the embedded drive, serve the daemons, mount.

Every mistake a person can make (missing mountpoint, daemon unreachable,
port taken) ends in one line `drive: error: …` and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import signal
import sys
from pathlib import Path

from fusefs.cli import (
    admin,
    background,
    browse,
    config,
    install,
    pending,
    running,
    timespec,
    trust,
    watch,
    where,
)
from fusefs.cli.arguments import DEFAULT_DATA, build_parser
from fusefs.daemons import DaemonError
from fusefs.errors import DriveError, InvalidArgument, Unavailable
from fusefs.models import Role
from fusefs.mountpoints import MountError
from protos import auth, names


def _blockd_args(args: argparse.Namespace) -> list[str]:
    extra: list[str] = []
    if args.s3_bucket:
        extra += ["--backend", "s3", "--s3-bucket", args.s3_bucket]
        for option in ("s3_endpoint", "s3_region", "s3_prefix"):
            value = getattr(args, option)
            if value is not None:
                extra += ["--" + option.replace("_", "-"), value]
    elif args.s3_endpoint or args.s3_region or args.s3_prefix:
        raise DaemonError("--s3-endpoint, --s3-region and --s3-prefix need --s3-bucket")
    if args.key_file:
        extra += ["--key-file", str(args.key_file.absolute())]
    return extra


def _password(args: argparse.Namespace, prompt: str, *, confirm: bool = False) -> str:
    """A password from stdin (--password-stdin) or typed at a prompt without echo."""
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise DriveError("no password on standard input")
        return line.rstrip("\n")
    password = getpass.getpass(prompt)
    if confirm and getpass.getpass("again: ") != password:
        raise DriveError("the passwords do not match")
    return password


COMMANDS = {
    "up": lambda a: (
        background.up(a, sys.argv[1:])
        if background.detaching(a)
        else running.up(a, _blockd_args(a))
    ),
    "serve": lambda a: (
        background.serve(a, sys.argv[1:])
        if background.detaching(a)
        else running.serve(a, _blockd_args(a))
    ),
    "stop": lambda a: background.stop(a.data, a.timeout),
    "install": lambda a: (
        install.systemd_unit(a.mountpoint, a.data, a.user, a.output)
        if a.install_command == "systemd"
        else install.mount_helper(a.output)
    ),
    "mount": lambda a: running.mount(a, DEFAULT_DATA / "cache" / (a.device or "default")),
    "gc": lambda a: admin.garbage_collect(where.connection(a), a.grace, a.dry_run),
    "scrub": lambda a: admin.scrub(where.connection(a), a.repair, _caches(a)),
    "status": lambda a: _cmd_status(a),
    "sync": lambda a: pending.sync(a.mountpoint),
    "umount": lambda a: pending.unmount(a.mountpoint),
    "trash": lambda a: _cmd_trash(a),
    "ls": lambda a: (
        browse.ls(where.connection(a), a.path, a.json)
        if a.at is None
        else browse.ls_at(where.connection(a), a.path, _time(a.at), a.json)
    ),
    "history": lambda a: browse.history(where.connection(a), a.path, a.json),
    "restore": lambda a: (
        browse.restore_revision(where.connection(a), a.path, a.revision)
        if a.at is None
        else browse.restore_at(where.connection(a), a.path, _time(a.at))
    ),
    "share": lambda a: browse.share(where.connection(a), a.path, a.user, Role[a.role.upper()]),
    "unshare": lambda a: browse.unshare(where.connection(a), a.path, a.user),
    "shares": lambda a: browse.shares(where.connection(a), a.path, a.json),
    "watch": lambda a: watch.watch(
        where.connection(a), a.from_sequence, a.count, a.sequence, as_json=a.json
    ),
    "login": lambda a: _cmd_login(a),
    "logout": lambda a: admin.logout(_login_address(a, saved=True), a.as_user),
    "whoami": lambda a: admin.whoami(where.connection(a)),
    "user": lambda a: _cmd_user(a),
    "config": lambda a: config.show(build_parser, a, DEFAULT_DATA),
}


def _cmd_status(args: argparse.Namespace) -> int:
    shown = admin.status(where.connection(args))
    if args.json:
        print(json.dumps({**shown, "this_device": pending.report()}, ensure_ascii=False))
        return 0
    admin.print_status(shown)
    lines = pending.report_lines()
    if lines:
        print("this device:")
        for line in lines:
            print(f"  {line}")
    return 0


def _caches(args: argparse.Namespace) -> list[Path]:
    """The mount caches on this machine scrub --repair heals from: given, or found."""
    if args.cache:
        return list(args.cache)
    found = [args.data / "cache"]
    mounts = DEFAULT_DATA / "cache"
    if mounts.is_dir():
        found += sorted(d for d in mounts.iterdir() if d.is_dir())
    return [d for d in found if (d / "blocks").is_dir()]


def _time(text: str) -> int:
    try:
        return timespec.parse_time(text)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None


def _cmd_login(args: argparse.Namespace) -> int:
    """Decides what to trust (fusefs.cli.trust) before the password is asked for or sent."""
    metad = _login_address(args)
    accepted = trust.for_login(
        metad,
        data_dir=args.data,
        ca_file=args.ca,
        fingerprint=args.fingerprint,
        insecure=args.insecure,
        ask=_ask if sys.stdin.isatty() and not args.password_stdin else None,
    )
    password = _password(args, f"password for {args.name}: ")
    return admin.login(metad, args.name, password, accepted.trust, accepted.pin)


def _login_address(args: argparse.Namespace, *, saved: bool = False) -> str:
    """drive login/logout HOST[:PORT], else --metad, else the drive running under --data
    (logout, saved: else the drive of the most recent login)."""
    if args.where and args.metad:
        raise InvalidArgument("give the drive's address once: HOST[:PORT] or --metad")
    if args.where or args.metad:
        return where.with_port(args.where or args.metad)
    return where.metad(args).address if saved else _running_metad(args.data)


def _running_metad(data: Path) -> str:
    running = where.ready_address(data, "metad")
    if running is None:
        raise DaemonError(f"no drive running under {data}: drive login HOST[:PORT] NAME")
    return running


def _ask(question: str) -> bool:
    print(question, end="", file=sys.stderr, flush=True)
    try:
        return input().strip().lower() in ("y", "yes")
    except EOFError:
        return False


def _cmd_trash(args: argparse.Namespace) -> int:
    conn = where.connection(args)
    if args.trash_command == "empty":
        return admin.empty_trash(conn)
    if args.trash_command == "restore":
        return browse.trash_restore(conn, args.what)
    return browse.trash_list(conn, getattr(args, "json", False))


def _cmd_user(args: argparse.Namespace) -> int:
    conn = where.connection(args)
    if args.user_command == "add":
        password = _password(args, f"password for {args.name}: ", confirm=True)
        return admin.add_user(conn, args.name, password, args.quota, args.admin)
    if args.user_command == "list":
        return admin.list_users(conn)
    if args.user_command in ("disable", "enable"):
        return admin.set_disabled(conn, args.name, args.user_command == "disable")
    if args.user_command == "passwd":
        current = "" if args.name else _password(args, "current password (empty if none): ")
        new = _password(args, "new password: ", confirm=True)
        return admin.set_password(conn, args.name, current, new)
    return admin.set_quota(conn, args.name, args.size)


def main(argv: list[str] | None = None) -> int:
    """Runs one command; its exit status (documented in the README)."""
    try:
        return _run(argv)
    except BrokenPipeError:
        # The reader went away (`drive ls | head`): stop quietly, as cat and ls do. Output
        # still buffered must not fail again at exit, so stdout goes nowhere from now on.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _run(argv: list[str] | None) -> int:
    try:
        args = config.parse_args(build_parser, argv, DEFAULT_DATA)  # flags over config files
        logging.basicConfig(
            level=getattr(logging, args.log_level or ("INFO" if args.verbose else "WARNING")),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        return COMMANDS[args.command](args) or 0
    except Unavailable as exc:
        print(f"drive: error: the drive is not reachable: is it running? ({exc})", file=sys.stderr)
        return 1
    except (MountError, DaemonError, DriveError) as exc:
        said = str(exc)
        if said.endswith(auth.SIGN_IN_AGAIN):  # the daemons' words for any client
            said += " with drive login"
        print(f"drive: error: {names.printable(said)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
