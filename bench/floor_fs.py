"""The floors the bench reads the drive's many-small-entries figures against: two
trivial pyfuse3 file systems, each mounted by a process of its own (FloorMount) in
the same run as the drive, so a figure can be read against what pyfuse3, trio and
the kernel cost on this machine right now (the same trivial file system took 16 or
30 µs of CPU per stat within minutes here).

- "stat" answers a lookup of any name fN as a 4 KiB file and does nothing else: the
  floor of stat of known names after a remount.
- "untar" keeps a tree in memory with what `tar -xf` asks of a file system (lookup
  with negative entries, mkdir, create, write, setattr, getxattr): the floor of the
  untar figure. With a scratch file, every close first writes the file's first
  bytes there and fdatasyncs it: the floor of "close returns once the content is
  durable on local disk", which issue 10 asks of the drive.

Run as `python bench/floor_fs.py stat|untar MOUNTPOINT [--durable SCRATCH]`.

Must not: import the drive's code or the bench's figures, or serve as a file system
anyone keeps data in (nothing is removed, renamed or listed: those answer ENOSYS).
"""

from __future__ import annotations

import argparse
import errno
import os
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import pyfuse3
import trio

ROOT = pyfuse3.ROOT_INODE
# Long lifetimes: the kernel asks again only what it has not seen, so each figure
# counts the requests a drive cannot avoid either (the first lookup of each name).
STAT_ENTRY_SECONDS = 2.0
UNTAR_ENTRY_SECONDS = 300.0
# The most of a file each durable close writes to the scratch file: all of it for the
# bench's archive (files of 0..16 KiB); one byte for an empty file, whose creation a
# journal would have to make durable too.
DURABLE_BYTES = 64 * 1024
MOUNT_TIMEOUT = 30.0  # seconds for a floor to appear as a mount point


class StatFloor(pyfuse3.Operations):
    """Every name fN is a 4 KiB file with inode N + 2; the root is the only folder."""

    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext | None = None
    ) -> pyfuse3.EntryAttributes:
        attr = pyfuse3.EntryAttributes()
        try:
            attr.st_ino = 2 + int(name[1:])
        except ValueError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None
        attr.st_mode, attr.st_size = stat.S_IFREG | 0o644, 4096
        attr.entry_timeout = attr.attr_timeout = STAT_ENTRY_SECONDS
        return attr

    async def getattr(
        self, inode: int, ctx: pyfuse3.RequestContext | None = None
    ) -> pyfuse3.EntryAttributes:
        attr = pyfuse3.EntryAttributes()
        attr.st_ino = inode
        attr.st_mode = stat.S_IFDIR | 0o755 if inode == ROOT else stat.S_IFREG | 0o644
        return attr


@dataclass(slots=True)
class Node:
    """One file or folder of the untar floor; a folder has children (name → inode)."""

    inode: int
    mode: int
    uid: int
    gid: int
    children: dict[bytes, int] | None = None
    data: bytearray = field(default_factory=bytearray)
    atime_ns: int = field(default_factory=time.time_ns)
    mtime_ns: int = 0
    ctime_ns: int = 0

    def __post_init__(self) -> None:
        self.mtime_ns = self.ctime_ns = self.atime_ns


class UntarFloor(pyfuse3.Operations):
    """An in-memory tree that `tar -xf` can unpack into.

    A file handle is the file's inode: nothing is kept per open. Nothing is ever
    removed, so the kernel's lookup counts free nothing and forget has nothing to do.
    """

    def __init__(self, durable: int | None) -> None:
        """durable: a file descriptor each close writes to and fdatasyncs, or None."""
        super().__init__()
        self.nodes = {ROOT: Node(ROOT, stat.S_IFDIR | 0o755, os.getuid(), os.getgid(), {})}
        self.next_inode = ROOT + 1
        self.durable = durable

    def _attributes(self, node: Node) -> pyfuse3.EntryAttributes:
        attr = pyfuse3.EntryAttributes()
        attr.st_ino, attr.st_mode = node.inode, node.mode
        attr.st_nlink = 2 if node.children is not None else 1
        attr.st_uid, attr.st_gid = node.uid, node.gid
        attr.st_size = len(node.data)
        attr.st_blksize, attr.st_blocks = 4096, (len(node.data) + 511) // 512
        attr.st_atime_ns, attr.st_mtime_ns = node.atime_ns, node.mtime_ns
        attr.st_ctime_ns = node.ctime_ns
        attr.entry_timeout = attr.attr_timeout = UNTAR_ENTRY_SECONDS
        return attr

    def _folder(self, inode: int) -> dict[bytes, int]:
        children = self.nodes[inode].children
        if children is None:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return children

    def _add(self, parent: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext) -> Node:
        children = self._folder(parent)
        if name in children:
            raise pyfuse3.FUSEError(errno.EEXIST)
        folder = stat.S_ISDIR(mode)
        node = Node(
            self.next_inode,
            stat.S_IFMT(mode) | (stat.S_IMODE(mode) & ~ctx.umask),
            ctx.uid,
            ctx.gid,
            {} if folder else None,
        )
        self.next_inode += 1
        self.nodes[node.inode] = node
        children[name] = node.inode
        self.nodes[parent].mtime_ns = self.nodes[parent].ctime_ns = node.ctime_ns
        return node

    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext | None = None
    ) -> pyfuse3.EntryAttributes:
        inode = self._folder(parent_inode).get(name)
        if inode is None:
            # A negative entry: tar looks up each name before it creates it, and the
            # kernel then sends create without asking again.
            attr = pyfuse3.EntryAttributes()
            attr.st_ino, attr.entry_timeout = 0, UNTAR_ENTRY_SECONDS
            return attr
        return self._attributes(self.nodes[inode])

    async def getattr(
        self, inode: int, ctx: pyfuse3.RequestContext | None = None
    ) -> pyfuse3.EntryAttributes:
        return self._attributes(self.nodes[inode])

    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        node = self.nodes[inode]
        if fields.update_size:
            del node.data[attr.st_size :]
            node.data.extend(bytes(attr.st_size - len(node.data)))
        if fields.update_mode:
            node.mode = stat.S_IFMT(node.mode) | stat.S_IMODE(attr.st_mode)
        if fields.update_uid:
            node.uid = attr.st_uid
        if fields.update_gid:
            node.gid = attr.st_gid
        if fields.update_atime:
            node.atime_ns = attr.st_atime_ns
        if fields.update_mtime:
            node.mtime_ns = attr.st_mtime_ns
        node.ctime_ns = attr.st_ctime_ns if fields.update_ctime else time.time_ns()
        return self._attributes(node)

    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        # The kernel asks for security.capability before the first write to a file.
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        return self._attributes(self._add(parent_inode, name, stat.S_IFDIR | mode, ctx))

    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        node = self._add(parent_inode, name, stat.S_IFREG | stat.S_IMODE(mode), ctx)
        return pyfuse3.FileInfo(fh=node.inode), self._attributes(node)

    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        if flags & os.O_TRUNC:
            del self.nodes[inode].data[:]
        return pyfuse3.FileInfo(fh=inode)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        return bytes(self.nodes[fh].data[off : off + size])

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        node = self.nodes[fh]
        if off > len(node.data):
            node.data.extend(bytes(off - len(node.data)))
        node.data[off : off + len(buf)] = buf
        node.mtime_ns = node.ctime_ns = time.time_ns()
        return len(buf)

    async def flush(self, fh: int) -> None:
        if self.durable is not None:
            # On purpose in the event loop, not a worker thread: a floor counts only
            # the write and the disk's flush, not how a file system chooses to wait.
            os.pwrite(self.durable, bytes(self.nodes[fh].data[:DURABLE_BYTES]) or b"\0", 0)
            os.fdatasync(self.durable)

    async def release(self, fh: int) -> None:
        pass

    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        self._folder(inode)
        return inode

    async def releasedir(self, fh: int) -> None:
        pass

    async def forget(self, inode_list: list[tuple[int, int]]) -> None:
        pass


class FloorMount:
    """A floor file system served by a process of its own, mounted at mnt until closed
    (a context manager). durable: the scratch file of the untar floor's durable closes."""

    def __init__(self, kind: str, mnt: Path, durable: Path | None = None) -> None:
        self.mnt = mnt
        mnt.mkdir(exist_ok=True)
        extra = ["--durable", str(durable)] if durable is not None else []
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), kind, str(mnt), *extra]
        )
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not os.path.ismount(mnt):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise SystemExit(f"the {kind} floor file system did not mount at {mnt}")
            time.sleep(0.02)

    @property
    def pid(self) -> int:
        return self.process.pid

    def close(self) -> None:
        if os.path.ismount(self.mnt):
            subprocess.run(["fusermount3", "-u", str(self.mnt)], check=False)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)], check=False)

    def __enter__(self) -> FloorMount:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve(operations: pyfuse3.Operations, mnt: Path) -> None:
    """Serve operations at mnt until it is unmounted (FloorMount.close)."""
    pyfuse3.init(operations, str(mnt), set(pyfuse3.default_options) | {"fsname=floor"})
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=False)  # fusermount3 -u already did


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=("stat", "untar"))
    ap.add_argument("mountpoint", type=Path)
    ap.add_argument("--durable", type=Path, help="untar: fdatasync this scratch file at close")
    args = ap.parse_args()
    if args.kind == "stat":
        serve(StatFloor(), args.mountpoint)
        return
    fd = None
    if args.durable is not None:
        fd = os.open(args.durable, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        serve(UntarFloor(fd), args.mountpoint)
    finally:
        if fd is not None:
            os.close(fd)


if __name__ == "__main__":
    main()
