"""`drive install systemd` and `drive install mount-helper`: the files through which the
system itself starts the drive (at boot) and mounts it (mount(8), /etc/fstab).

Both name this install of drivefs by the absolute path of its Python
(sys.executable, e.g. a venv's), so they keep working whatever PATH systemd or
mount(8) run them with (mount(8) runs helpers with almost no environment).

The unit runs `drive up` in the foreground (Type=simple) and stops it as
`drive stop` does: SIGTERM to drive up alone (KillMode=mixed), which has the
mount save open files and unmount, then stops metad and blockd. Under systemd's
default KillMode every process of the unit would get SIGTERM at once, and the
daemons would be gone while the mount is still saving.

Must not: start or stop anything (systemctl is the person's to run).
"""

from __future__ import annotations

import getpass
import os
import shlex
import sys
from pathlib import Path

from fusefs.errors import DriveError

SYSTEM_UNITS = Path("/etc/systemd/system")
USER_UNITS = Path("~/.config/systemd/user")
MOUNT_HELPER = Path("/sbin/mount.fuse.drivefs")  # where mount(8) looks for -t fuse.drivefs
# Long enough for the mount to save files still open and for the daemons to stop;
# what is not sent by then is in the mount's journal, sent by the next start.
STOP_TIMEOUT_SECONDS = 180
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:+=,@")


def systemd_unit(mountpoint: Path, data: Path, user: bool, output: str | None) -> int:
    """Writes (output "-": prints) the unit of `drive up MOUNTPOINT --data DATA`."""
    if not mountpoint.is_dir():
        raise DriveError(
            f"mountpoint {mountpoint} is not a folder (create it with: mkdir -p {mountpoint})"
        )
    mountpoint, data = mountpoint.resolve(), data.absolute()
    name = unit_name(mountpoint)
    text = unit_text(mountpoint, data, user)
    if output == "-":
        sys.stdout.write(text)
        return 0
    if output is not None:
        path = Path(output)
    elif user:
        path = USER_UNITS.expanduser() / name
    else:
        if os.geteuid() != 0:
            raise DriveError(
                f"installing a system unit in {SYSTEM_UNITS} needs root "
                "(sudo drive install systemd …), or --user for a unit of your own"
            )
        path = SYSTEM_UNITS / name
    _write(path, text, 0o644)
    systemctl = "systemctl --user" if user else "systemctl"
    print(f"wrote {path}: drive up {mountpoint} --data {data}")
    print("start it now and at every boot with:")
    print(f"  {systemctl} daemon-reload && {systemctl} enable --now {shlex.quote(name)}")
    print(f"(stop a drive already running under {data} first: drive stop --data {data})")
    if user:
        linger = f"loginctl enable-linger {getpass.getuser()}"
        print(f"to start it at boot rather than when you log in: {linger}")
    return 0


def unit_name(mountpoint: Path) -> str:
    """drivefs-<the mountpoint escaped as systemd-escape --path does>.service."""
    return f"drivefs-{_escape_path(str(mountpoint))}.service"


def unit_text(mountpoint: Path, data: Path, user: bool) -> str:
    command = [sys.executable, "-m", "fusefs.cli", "up", str(mountpoint), "--data", str(data)]
    network = (
        ""
        if user  # a user's systemd has no network-online.target of its own
        else "Wants=network-online.target\nAfter=network-online.target\n"
        f"RequiresMountsFor={_words([str(data), str(mountpoint.parent)])}\n"
    )
    return f"""\
# Written by `drive install systemd`: the drive under {_text(str(data))},
# mounted at {_text(str(mountpoint))}, started at boot and stopped cleanly.
[Unit]
Description=drivefs drive mounted at {_text(str(mountpoint))}
{network}
[Service]
Type=simple
ExecStart={_words(command)}
Environment=PYTHONUNBUFFERED=1
# SIGTERM to drive up alone: the mount saves and unmounts, then the daemons stop.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec={STOP_TIMEOUT_SECONDS}
Restart=on-failure
RestartSec=5

[Install]
WantedBy={"default.target" if user else "multi-user.target"}
"""


def mount_helper(output: Path) -> int:
    """Writes the script mount(8) runs for `mount -t fuse.drivefs` (and fstab lines)."""
    if output == MOUNT_HELPER and os.geteuid() != 0:
        raise DriveError(f"installing {MOUNT_HELPER} needs root: sudo drive install mount-helper")
    _write(output, helper_script(), 0o755)
    print(f"wrote {output}: mount -t fuse.drivefs now runs the drivefs of {sys.executable}")
    print("an /etc/fstab line for the drive served on this machine (drive serve):")
    print("  drivefs  /mnt/drive  fuse.drivefs  data=/var/lib/drivefs,_netdev,nofail  0 0")
    print("or for a drive elsewhere (after sudo drive login NAME --metad HOST:7401):")
    print("  HOST:7401  /mnt/drive  fuse.drivefs  device=NAME,_netdev,nofail  0 0")
    return 0


def helper_script() -> str:
    return f"""\
#!/bin/sh
# Written by `drive install mount-helper`: mount(8) runs this for -t fuse.drivefs
# (mount.fuse.drivefs SOURCE MOUNTPOINT [-o OPTIONS]). It gives no PATH.
PATH=${{PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}}
export PATH
exec {shlex.quote(sys.executable)} -m fusefs.cli.mount_helper "$@"
"""


def _write(path: Path, text: str, mode: int) -> None:
    """Whole or not at all: a temp file beside it, then rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        tmp.chmod(mode)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DriveError(f"cannot write {path}: {exc.strerror}") from None


def _escape_path(path: str) -> str:
    """As `systemd-escape --path`: "/" becomes "-", all but [A-Za-z0-9:_.] "\\xNN"."""
    trimmed = "/".join(part for part in path.split("/") if part)
    if not trimmed:
        return "-"
    out = []
    for i, byte in enumerate(trimmed.encode()):
        char = chr(byte)
        if char == "/":
            out.append("-")
        elif (char.isascii() and char.isalnum()) or char in ":_" or (char == "." and i > 0):
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def _text(value: str) -> str:
    """A value where systemd expands %-specifiers."""
    return value.replace("%", "%%")


def _words(words: list[str]) -> str:
    """A command line as systemd splits it: plain words bare, others double-quoted."""
    quoted = []
    for word in words:
        word = _text(word).replace("$", "$$")
        if word and set(word) <= _PLAIN:
            quoted.append(word)
        else:
            quoted.append('"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return " ".join(quoted)
