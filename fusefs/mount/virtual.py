"""The mount's folders that are not metad directories: "Shared with me" and .drive-history.

"Shared with me" (listed in the root) holds what others shared with this
user, under the names fusefs.shared.share_names gives them (the CLI uses the
same names). Its entries are the shared nodes themselves, with their usual
inode numbers: everything below them is ordinary drive, and metad decides
what the user may do there. The folder itself only ever changes when a share
does.

.drive-history (found by name, never listed, so copying the drive does not
copy its history) mirrors the drive: each folder as a folder, each file as a
folder holding one read-only file per kept revision, named like
"plan (r3 2026-11-22 093015).txt" (the time the revision was saved).

Owns: the share list cache, the virtual entries' inode numbers (from
inodes.VirtualInodes, so they never meet a node id) and their attributes.
Must not: change anything in the drive; know about pyfuse3 (vfs.py calls in,
and hands the kernel what refresh_shares says is stale).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

import trio

from fusefs import errors
from fusefs.clients import MetadataClient
from fusefs.models import Kind, Node, Revision, RevisionInfo, Role, ShareInfo
from fusefs.mount.inodes import (
    ROOT_INODE,
    VIRTUAL_BASE,
    DirEntry,
    InodeTable,
    Invalidation,
    VirtualInodes,
)
from fusefs.mount.synchronizer import local_stamp
from fusefs.shared import SHARED_FOLDER, share_names
from protos import names

log = logging.getLogger(__name__)

HISTORY_FOLDER = ".drive-history"
TAKEN = " (drive)"  # after a mount folder's name when an entry of the drive has that name
SHARED_INODE = VIRTUAL_BASE
HISTORY_INODE = VIRTUAL_BASE + 1
HISTORY_SHARED_INODE = VIRTUAL_BASE + 2  # .drive-history/Shared with me
FIRST_FREE_INODE = VIRTUAL_BASE + 16
DIRECTORY_MODE = 0o555
FILE_MODE = 0o444
READDIR_PAGE = 1000
# "ls" of "Shared with me" asks metad again unless the list is this fresh
# (events keep it current; this covers a lost event stream).
SHARES_MAX_AGE_S = 1.0
SHARES_RETRY_S = 5.0  # after metad could not list the shares, ask again on use after this

Call = Callable[..., Awaitable[Any]]


# --- what a virtual inode shows (its key in VirtualInodes) ----------------


@dataclass(frozen=True, slots=True)
class SharedFolder:
    """The "Shared with me" folder in the root."""


@dataclass(frozen=True, slots=True)
class HistoryShared:
    """.drive-history/Shared with me: the history of what others shared."""


@dataclass(frozen=True, slots=True)
class HistoryFolder:
    """The history of the folder node_id (the root's: .drive-history itself)."""

    node_id: int


@dataclass(frozen=True, slots=True)
class RevisionFolder:
    """The folder listing the kept revisions of file node_id."""

    node_id: int


@dataclass(frozen=True, slots=True)
class RevisionFile:
    """Revision number of file node_id, read-only."""

    node_id: int
    number: int


def revision_name(name: str, info: RevisionInfo) -> str:
    """'plan (r3 2026-11-22 093015).txt': the time is when the revision was saved."""
    saved_ns = info.created_ns or info.mtime_ns
    return names.tagged(name, f"r{info.number} {local_stamp(saved_ns / 1e9)}")


class Shares:
    """The user's share list, cached; `refresh` is the only way it changes."""

    def __init__(self, meta: MetadataClient, call: Call) -> None:
        self._meta = meta
        self._call = call
        self.names: dict[str, ShareInfo] = {}
        self.node_ids: set[int] = set()
        self.loaded_at: float | None = None
        self._retry_at: float | None = None  # set while the last refresh failed
        self._lock = trio.Lock()

    async def current(self, max_age: float | None = None) -> dict[str, ShareInfo]:
        """The list, loaded on first use, or again if older than max_age seconds."""
        now = time.monotonic()
        loaded = self.loaded_at
        if (
            loaded is None
            or (max_age is not None and now - loaded > max_age)
            or (self._retry_at is not None and now >= self._retry_at)
        ):
            await self.refresh()
        return self.names

    async def refresh(self) -> tuple[dict[str, ShareInfo], dict[str, ShareInfo]]:
        """Asks metad for the list again: (before, now)."""
        async with self._lock:
            before = self.names
            try:
                shares = await self._call(self._meta.shared_with_me)
            except errors.DriveError as exc:
                # Keep what we had: a daemon restarting must not empty the folder.
                log.info("could not list what is shared with you: %s", exc)
                self._retry_at = time.monotonic() + SHARES_RETRY_S
                if self.loaded_at is None:
                    self.loaded_at = time.monotonic()
                return before, before
            self.names = share_names(shares)
            self.node_ids = {s.node.id for s in self.names.values()}
            self.loaded_at = time.monotonic()
            self._retry_at = None
            return before, self.names


class VirtualTree:
    """Lookups, listings and attributes of the virtual entries (read-only)."""

    def __init__(
        self,
        meta: MetadataClient,
        call: Call,
        inodes: InodeTable,
        root: Node,
    ) -> None:
        self._meta = meta
        self._call = call
        self._inodes = inodes
        self._root = root
        self.user_id = root.owner_id
        self.shares = Shares(meta, call)
        self._numbers = VirtualInodes(FIRST_FREE_INODE)
        self._numbers.fix(SHARED_INODE, SharedFolder())
        self._numbers.fix(HISTORY_INODE, HistoryFolder(root.id))
        self._numbers.fix(HISTORY_SHARED_INODE, HistoryShared())
        self._attrs: dict[int, Node] = {}  # the last attributes handed out per virtual inode
        self._revisions: dict[int, dict[str, RevisionInfo]] = {}  # node id -> name -> revision
        self._started_ns = time.time_ns()

    # --- names in the drive's root ------------------------------------

    async def root_name(self, name: str) -> Node | None:
        """The virtual entry a name in the root stands for, if any.

        A real entry of the same name wins (your own folder named "Shared with
        me" never vanishes): the mount's folder then goes by that name with
        TAKEN after it.
        """
        if (
            name in (HISTORY_FOLDER, HISTORY_FOLDER + TAKEN)
            and await self._shown_as(HISTORY_FOLDER) == name
        ):
            return self._history_root()
        if (
            name in (SHARED_FOLDER, SHARED_FOLDER + TAKEN)
            and await self.shares.current()
            and await self._shown_as(SHARED_FOLDER) == name
        ):
            return self._shared_folder()
        return None

    async def root_entries(self) -> list[DirEntry]:
        """Virtual entries listed in the root (after the real ones): "Shared with me"."""
        if not await self.shares.current():
            return []
        name = await self._shown_as(SHARED_FOLDER)
        return [DirEntry(name, SHARED_INODE, self._shared_folder(), SHARED_INODE)]

    async def _shown_as(self, folder: str) -> str:
        """The name a mount folder goes by: its own, unless an entry of the drive has it."""
        try:
            await self._call(self._meta.lookup, self._root.id, folder)
        except errors.NotFound:
            return folder
        return folder + TAKEN

    # --- lookup counts ----------------------------------------------------

    def remember(self, inode: int) -> None:
        self._numbers.remember(inode)

    def forget(self, inode: int, count: int) -> None:
        key = self._numbers.key(inode)
        if self._numbers.forget(inode, count):
            self._attrs.pop(inode, None)
            if isinstance(key, RevisionFolder):
                self._revisions.pop(key.node_id, None)

    def known(self, inode: int) -> bool:
        return self._numbers.known(inode)

    # --- reading -----------------------------------------------------------

    def refusal(self, inode: int) -> errors.DriveError:
        """The error for any change in or of a virtual entry."""
        if inode == SHARED_INODE:
            return errors.PermissionDenied(
                f'"{SHARED_FOLDER}" lists what others share with you; change things inside them'
            )
        return errors.ReadOnly(f"{HISTORY_FOLDER} holds past revisions, read-only")

    async def getattr(self, inode: int) -> Node:
        key = self._key(inode)
        if isinstance(key, SharedFolder):
            return self._shared_folder()
        if isinstance(key, HistoryShared):
            return self._virtual(HISTORY_SHARED_INODE, SHARED_FOLDER, Kind.DIRECTORY)
        if inode == HISTORY_INODE:
            return self._history_root()
        node = self._attrs.get(inode)
        if node is None:
            raise errors.NotFound("no such entry")
        return node

    async def lookup(self, parent_inode: int, name: str) -> Node:
        """name in a virtual folder: a virtual node, or in "Shared with me" a real one."""
        key = self._key(parent_inode)
        if isinstance(key, SharedFolder):
            share = (await self.shares.current()).get(name)
            if share is None:
                raise errors.NotFound(f"nothing named {name!r} is shared with you")
            # Fresh attributes (size, role), and proof the share still holds.
            return await self._call(self._meta.stat, share.node.id)
        if isinstance(key, HistoryShared):
            share = (await self.shares.current()).get(name)
            if share is None:
                raise errors.NotFound(f"nothing named {name!r} is shared with you")
            node = await self._call(self._meta.stat, share.node.id)
            return self._mirror(node, name)
        if isinstance(key, HistoryFolder):
            if (
                key.node_id == self._root.id
                and name in (SHARED_FOLDER, SHARED_FOLDER + TAKEN)
                and await self.shares.current()
                and await self._shown_as(SHARED_FOLDER) == name
            ):
                return self._virtual(HISTORY_SHARED_INODE, name, Kind.DIRECTORY)
            node = await self._call(self._meta.lookup, key.node_id, name)
            if node.kind == Kind.SYMLINK:
                raise errors.NotFound("symbolic links keep no revisions")
            return self._mirror(node, name)
        if isinstance(key, RevisionFolder):
            info = await self._revision_named(key.node_id, name)
            return self._revision_node(key.node_id, name, info)
        raise errors.NotADirectory("not a directory")

    async def readdir(self, inode: int, after: int) -> tuple[list[DirEntry], int | None]:
        """A page of entries after offset `after`, and where the next page starts (None: done)."""
        key = self._key(inode)
        if isinstance(key, SharedFolder):
            by_name = await self.shares.current()
            return [
                DirEntry(name, self._inodes.inode_of(s.node.id), self._fresh(s.node), s.node.id)
                for name, s in by_name.items()
                if s.node.id > after
            ], None
        if isinstance(key, HistoryShared):
            by_name = await self.shares.current()
            entries = []
            for name, s in by_name.items():
                if s.node.id > after and s.node.kind != Kind.SYMLINK:
                    node = self._mirror(s.node, name)
                    entries.append(DirEntry(name, node.id, node, s.node.id))
            return entries, None
        if isinstance(key, HistoryFolder):
            return await self._history_page(key.node_id, after)
        if isinstance(key, RevisionFolder):
            folder = self._attrs.get(inode)
            listed = await self._list_revisions(key.node_id, folder.name if folder else "")
            entries = []
            for name, info in listed.items():
                if info.number > after:
                    node = self._revision_node(key.node_id, name, info)
                    entries.append(DirEntry(name, node.id, node, info.number))
            return entries, None
        raise errors.NotADirectory("not a directory")

    async def revision(self, inode: int) -> Revision:
        """The content of a revision file (with its blocks' grants)."""
        key = self._key(inode)
        if not isinstance(key, RevisionFile):
            raise errors.IsADirectory("is a directory")
        return await self._call(self._meta.get_revision, key.node_id, key.number)

    async def opendir(self, inode: int) -> None:
        key = self._key(inode)
        if isinstance(key, RevisionFile):
            raise errors.NotADirectory("not a directory")
        if isinstance(key, (SharedFolder, HistoryShared)):
            await self.shares.current(max_age=SHARES_MAX_AGE_S)

    # --- keeping up with shares ---------------------------------------

    async def refresh_shares(self) -> list[Invalidation]:
        """Reloads the share list; what the kernel must forget about its names."""
        before, now = await self.shares.refresh()
        todo: list[Invalidation] = []
        for name in before.keys() | now.keys():
            old, new = before.get(name), now.get(name)
            if old is None or new is None or old.node.id != new.node.id:
                todo.append(Invalidation(parent_inode=SHARED_INODE, name=name))
                todo.append(Invalidation(parent_inode=HISTORY_SHARED_INODE, name=name))
        if bool(before) != bool(now):
            todo.append(Invalidation(parent_inode=ROOT_INODE, name=SHARED_FOLDER))
            todo.append(Invalidation(parent_inode=HISTORY_INODE, name=SHARED_FOLDER))
        if todo:
            todo.append(Invalidation(inode=SHARED_INODE, attr_only=True))
        return todo

    # --- helpers -----------------------------------------------------------

    def _key(self, inode: int) -> Hashable:
        key = self._numbers.key(inode)
        if key is None:
            raise errors.NotFound("no such entry (forgotten)")
        return key

    def _virtual(
        self, inode: int, name: str, kind: Kind, *, size: int = 0, mtime_ns: int = 0
    ) -> Node:
        mtime_ns = mtime_ns or self._started_ns
        node = Node(
            id=inode,
            parent_id=0,
            name=name,
            kind=kind,
            mode=DIRECTORY_MODE if kind == Kind.DIRECTORY else FILE_MODE,
            size=size,
            mtime_ns=mtime_ns,
            ctime_ns=mtime_ns,
            revision=0,
            symlink_target="",
            change_sequence=0,
            owner_id=self.user_id,
            role=Role.READ,
        )
        self._attrs[inode] = node
        return node

    def _shared_folder(self) -> Node:
        return self._virtual(SHARED_INODE, SHARED_FOLDER, Kind.DIRECTORY)

    def _history_root(self) -> Node:
        root = self._inodes.cached(ROOT_INODE) or self._root
        return self._virtual(HISTORY_INODE, HISTORY_FOLDER, Kind.DIRECTORY, mtime_ns=root.mtime_ns)

    def _fresh(self, node: Node) -> Node:
        """The newest attributes we have of a real node."""
        return self._inodes.cached(self._inodes.inode_of(node.id)) or node

    def _mirror(self, node: Node, name: str) -> Node:
        """The history entry of a real folder or file, shown under name."""
        if node.kind == Kind.DIRECTORY:
            inode = self._numbers.inode(HistoryFolder(node.id))
        else:
            inode = self._numbers.inode(RevisionFolder(node.id))
        return self._virtual(inode, name, Kind.DIRECTORY, mtime_ns=node.mtime_ns)

    def _revision_node(self, node_id: int, name: str, info: RevisionInfo) -> Node:
        inode = self._numbers.inode(RevisionFile(node_id, info.number))
        return self._virtual(inode, name, Kind.FILE, size=info.size, mtime_ns=info.mtime_ns)

    async def _history_page(self, node_id: int, after: int) -> tuple[list[DirEntry], int | None]:
        in_root = node_id == self._root.id
        entries: list[DirEntry] = []
        if after < VIRTUAL_BASE:
            nodes, more = await self._call(self._meta.list_directory, node_id, after, READDIR_PAGE)
            for n in nodes:
                if n.kind == Kind.SYMLINK:
                    continue
                node = self._mirror(n, n.name)
                entries.append(DirEntry(n.name, node.id, node, n.entry_id))
            if more and nodes:
                return entries, nodes[-1].entry_id
        if in_root and after < HISTORY_SHARED_INODE and await self.shares.current():
            inode = HISTORY_SHARED_INODE
            name = await self._shown_as(SHARED_FOLDER)
            node = self._virtual(inode, name, Kind.DIRECTORY)
            entries.append(DirEntry(name, inode, node, inode))
        return entries, None

    async def _list_revisions(self, node_id: int, file_name: str) -> dict[str, RevisionInfo]:
        infos = await self._call(self._meta.list_revisions, node_id)
        if not file_name:
            file_name = (await self._call(self._meta.stat, node_id)).name
        listed = {revision_name(file_name, i): i for i in sorted(infos, key=lambda i: i.number)}
        self._revisions[node_id] = listed
        return listed

    async def _revision_named(self, node_id: int, name: str) -> RevisionInfo:
        """The revision a name stands for; asks metad again once if it is not known yet."""
        info = self._revisions.get(node_id, {}).get(name)
        if info is None:
            folder = self._attrs.get(self._numbers.inode(RevisionFolder(node_id)))
            listed = await self._list_revisions(node_id, folder.name if folder else "")
            info = listed.get(name)
        if info is None:
            raise errors.NotFound(f"no revision named {name!r}")
        return info
