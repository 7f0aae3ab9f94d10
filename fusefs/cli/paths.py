"""What a PATH argument of the drive command names, now or at a past time.

A PATH is a path inside the drive as it looks under the mountpoint:
"docs/plan.txt" (a leading "/" allowed; "" or "/" is the root), where a
first component SHARED_FOLDER goes through `share_names`, exactly as the
mount shows it. A local path inside a mounted drivefs is accepted too (the
mountpoint is stripped), and so is a relative one typed in a folder of a
mount, so `drive history plan.txt` works where `ls` shows plan.txt.

Owns only the walk from text to nodes; printing is the commands' business.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fusefs import errors
from fusefs.cli.timespec import format_time
from fusefs.clients import MetadataClient
from fusefs.models import Kind, Node, ShareInfo, SnapshotEntry
from fusefs.shared import SHARED_FOLDER, share_names
from protos import names

MOUNTINFO = Path("/proc/self/mountinfo")
FS_TYPE = "fuse.drivefs"


def drivefs_mountpoints(mountinfo: Path = MOUNTINFO) -> list[str]:
    """Mountpoints of drivefs mounts on this machine, longest first."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        # "<id> <parent> <dev> <root> <mountpoint> <options> [optional…] - <type> <source> …"
        if "-" not in fields:
            continue
        rest = fields[fields.index("-") + 1 :]
        if rest[:1] == [FS_TYPE] or rest[1:2] == ["drivefs"]:
            found.append(_unescape(fields[4]))
    return sorted(found, key=len, reverse=True)


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code in ("040", "011", "012", "134"):
        field = field.replace("\\" + code, chr(int(code, 8)))
    return field


def drive_path(text: str, mountpoints: Iterable[str] | None = None, cwd: str | None = None) -> str:
    """The drive path a PATH argument means, normalized ("docs/plan.txt", "" = root)."""
    points = drivefs_mountpoints() if mountpoints is None else list(mountpoints)
    here = os.getcwd() if cwd is None else cwd
    local = os.path.normpath(os.path.join(here, text))
    if text.startswith("/") or _inside(here, points):
        for point in points:
            if _inside(local, [point]):
                return _clean(os.path.relpath(local, point))
    if not text.startswith("/") and _inside(here, points):
        raise errors.InvalidArgument(f"{text} is outside the drive mounted here")
    return _clean(text)


def _inside(path: str, points: Iterable[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in points)


def _clean(path: str) -> str:
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise errors.InvalidArgument(f"a drive path cannot go up with '..': {path}")
    # Arguments hold undecodable bytes as surrogates (PEP 383); the wire has its own escape.
    return "/".join(names.from_bytes(os.fsencode(p)) for p in parts)


@dataclass(frozen=True, slots=True)
class Found:
    """A file or folder a PATH named: the node, or None for SHARED_FOLDER itself."""

    path: str  # the normalized drive path, as the mount shows it
    node: Node | None
    share: ShareInfo | None = None  # set when reached through SHARED_FOLDER


@dataclass(frozen=True, slots=True)
class FoundAt:
    """What a PATH named at a past time: the node that was there (it may be gone now)."""

    path: str
    node_id: int  # 0 = the drive root (as ListSnapshot takes it)
    kind: Kind
    entry: SnapshotEntry | None = None  # as its folder listed it then (None: a starting point)


class Resolver:
    """Walks drive paths with a metadata client (one lookup per component)."""

    def __init__(self, meta: MetadataClient) -> None:
        self._meta = meta
        self._shares: dict[str, ShareInfo] | None = None

    def shares(self) -> dict[str, ShareInfo]:
        """SHARED_FOLDER's entries by display name (asked once)."""
        if self._shares is None:
            self._shares = share_names(self._meta.shared_with_me())
        return self._shares

    def _start(self, path: str) -> tuple[ShareInfo | None, list[str]]:
        """The share a path goes through (or None for the own drive), and the rest."""
        parts = path.split("/") if path else []
        if not parts or parts[0] != SHARED_FOLDER or len(parts) == 1:
            return None, parts
        share = self.shares().get(parts[1])
        if share is None:
            raise _not_found(path)
        return share, parts[2:]

    def resolve(self, text: str) -> Found:
        """The file or folder a PATH argument names now. Raises NotFound."""
        path = drive_path(text)
        if path == SHARED_FOLDER:
            return Found(path, None)
        share, rest = self._start(path)
        node = share.node if share is not None else self._meta.root()
        for name in rest:
            try:
                node = self._meta.lookup(node.id, name)
            except (errors.NotFound, errors.NotADirectory):
                raise _not_found(path) from None
        return Found(path, node, share)

    def resolve_at(self, text: str, time_ns: int) -> FoundAt:
        """What a PATH argument named at time_ns, walking the snapshot of that time."""
        path = drive_path(text)
        if path == SHARED_FOLDER:
            raise errors.InvalidArgument(
                f"{SHARED_FOLDER} has no past of its own: name a file or folder in it"
            )
        share, rest = self._start(path)
        found = (
            FoundAt(path, 0, Kind.DIRECTORY)
            if share is None
            else FoundAt(path, share.node.id, share.node.kind)
        )
        for name in rest:
            entry = self._entry_at(found, name, time_ns)
            if entry is None:
                raise errors.NotFound(
                    f"nothing was at {path} in the drive at {format_time(time_ns)}"
                )
            found = FoundAt(path, entry.node_id, entry.kind, entry)
        return found

    def _entry_at(self, folder: FoundAt, name: str, time_ns: int) -> SnapshotEntry | None:
        if folder.kind != Kind.DIRECTORY:
            return None
        entries = self._meta.list_snapshot(folder.node_id, time_ns)
        return next((e for e in entries if e.name == name), None)


def _not_found(path: str) -> errors.NotFound:
    return errors.NotFound(f"no such file or folder in the drive: {path}")
