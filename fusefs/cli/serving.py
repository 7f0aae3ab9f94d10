"""What `drive up` and `drive serve` settle before a daemon starts: the data folder is
theirs alone, and the addresses they listen on stay the same from start to start.

One running drive per data folder: a second `drive up` on it would start
daemons that cannot open their stores, and on the way remove the ready files
through which every command finds the running drive. The folder is locked
(flock on DATA/drive.lock, released by the kernel when the holder exits, even
on kill -9) before anything is touched.

Addresses: other devices and saved logins know the drive by its address, so a
restart must not move it. `drive up` listens where it listened the last time
(DATA/addresses.json); on the first start on the default ports when they are
free, else on ports the system picks, which are then kept.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from fusefs.daemons import DaemonError
from protos.runtime import is_loopback, split_host_port

LOCK_FILE = "drive.lock"
ADDRESSES_FILE = "addresses.json"
DEFAULT_PORTS = {"metad": 7401, "blockd": 7402}
LOOPBACK = "127.0.0.1"


@contextlib.contextmanager
def data_folder(data: Path) -> Iterator[None]:
    """Holds DATA for this process; DaemonError if a running drive holds it already."""
    data.mkdir(parents=True, exist_ok=True)
    fd = os.open(data / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if not _locked(fd, fcntl.LOCK_EX):
            raise DaemonError(running_already(data, _pid_in(fd)))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def running_already(data: Path, pid: int) -> str:
    """What a second start on DATA is told (pid 0: the holder has not written it yet)."""
    return (
        f"the drive in {data} is running already (pid {pid or '?'}); "
        "stop it first, or give another --data"
    )


def holder(data: Path) -> int | None:
    """The pid of the drive running under DATA (0 if it has not written it yet), or None.

    Creates nothing. When DATA is free its lock is taken for an instant: a drive
    starting in that very instant is refused as if two had started at once.
    """
    try:
        fd = os.open(data / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return None if _locked(fd, fcntl.LOCK_SH) else _pid_in(fd)  # closing lets go of it
    finally:
        os.close(fd)


def _locked(fd: int, how: int) -> bool:
    """Takes DATA's lock (flock how, not waiting); False when a running drive holds it."""
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
            raise
        return False
    return True


def _pid_in(fd: int) -> int:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else 0


def listen_addresses(
    data: Path, asked: dict[str, str | None], host: str | None = None
) -> dict[str, str]:
    """Where each daemon listens: as asked, else where it did last time, else its
    default port on loopback if free, else a port the system picks (0). host (--listen)
    replaces the host of the kept or default address; the port stays."""
    kept = _kept(data)
    chosen = {}
    for name, address in asked.items():
        if address is not None:
            chosen[name] = address
        elif name in kept:
            port = split_host_port(kept[name])[1]
            chosen[name] = kept[name] if host is None else join_host_port(host, port)
        else:
            port = DEFAULT_PORTS[name]
            on = host or LOOPBACK
            chosen[name] = join_host_port(on, port if _free(on, port) else 0)
    return chosen


def join_host_port(host: str, port: int) -> str:
    bare = host.strip("[]")
    return f"[{bare}]:{port}" if ":" in bare else f"{bare}:{port}"


def beyond_loopback(addresses: list[str]) -> bool:
    """Whether any of these listen addresses can be reached from another machine."""
    return any(not is_loopback(split_host_port(a)[0].strip("[]")) for a in addresses)


def concrete(address: str) -> str:
    """address, with a free port picked now for port 0: metad must be told blockd's
    address before blockd starts (it starts second: it needs metad's)."""
    host, port = split_host_port(address)
    if port:
        return address
    with socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET) as s:
        s.bind((host.strip("[]"), 0))
        return f"{host}:{s.getsockname()[1]}"


def advertised(address: str) -> str:
    """How metad names blockd's listen address to clients (GetDrive): a wildcard host
    becomes none (":PORT"), which clients read as the host they reached metad at."""
    host, port = split_host_port(address)
    return f":{port}" if host.strip("[]") in ("0.0.0.0", "::") else address


def keep_addresses(data: Path, bound: dict[str, str]) -> None:
    """Records the addresses the daemons bound, for the next start (temp + rename)."""
    path = data / ADDRESSES_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(bound, indent=1) + "\n")
    os.replace(tmp, path)


def _kept(data: Path) -> dict[str, str]:
    try:
        kept = json.loads((data / ADDRESSES_FILE).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise DaemonError(f"{data / ADDRESSES_FILE} is unreadable ({exc}); remove it") from None
    if not isinstance(kept, dict):
        raise DaemonError(f"{data / ADDRESSES_FILE} is not what drive up writes; remove it")
    good = {}
    for name, address in kept.items():
        with contextlib.suppress(ValueError, TypeError):
            split_host_port(address)
            good[name] = address
    return good


def _free(host: str, port: int) -> bool:
    bare = host.strip("[]")
    with socket.socket(socket.AF_INET6 if ":" in bare else socket.AF_INET) as s:
        try:
            s.bind((bare, port))
        except OSError:
            return False
    return True
