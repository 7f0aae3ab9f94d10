"""The drive command's everyday commands: ls, history, restore, trash, sharing.

Each names files with a PATH (fusefs.cli.paths), calls metad through the
client, prints a plain table or one sentence to stdout, shows a spinner on
stderr while it waits, and returns the exit code. Failures are domain errors
(fusefs.errors) the cli turns into one line. Argument parsing stays in
cli.py; time syntax in fusefs.cli.timespec.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass

from fusefs import errors
from fusefs.cli.admin import Connection, console, human, say
from fusefs.cli.paths import Found, Resolver, drive_path
from fusefs.cli.timespec import format_time
from fusefs.clients import MetadataClient
from fusefs.models import Kind, Node, Role, ShareInfo, SnapshotEntry, TrashEntry
from fusefs.shared import SHARED_FOLDER
from protos import names

DEVICE = "drive-cli"  # how the history of a file names changes made by this command
_KIND = {
    Kind.DIRECTORY: "folder",
    Kind.FILE: "file",
    Kind.SYMLINK: "link",
    Kind.FIFO: "fifo",
    Kind.CHAR_DEVICE: "chardev",
    Kind.BLOCK_DEVICE: "blockdev",
    Kind.SOCKET: "socket",
}


@contextlib.contextmanager
def session(conn: Connection) -> Iterator[MetadataClient]:
    """A metadata client for one command, with one clear line for a metad not there."""
    meta = conn.metadata(DEVICE)
    try:
        yield meta
    except errors.Unavailable:
        raise errors.Unavailable(
            f"cannot reach metad at {meta.address}: is the drive running?"
        ) from None
    except errors.NotSignedIn as exc:
        raise errors.NotSignedIn(
            f"metad at {meta.address} refused the sign-in ({exc}): run drive login"
        ) from None
    finally:
        meta.close()


def busy(what: str) -> contextlib.AbstractContextManager[object]:
    """A spinner on stderr while one call runs (nothing when stderr is not a terminal)."""
    return console.status(what)


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Container[int] = ()
) -> None:
    """Aligned columns under a header; the last one is not padded (paths may be long)."""
    last = len(headers) - 1
    rows = [[names.printable(cell) for cell in row] for row in rows]
    widths = [max(len(r[i]) for r in (headers, *rows)) for i in range(last)]
    for row in (headers, *rows):
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=False))
        ]
        print("  ".join([*cells, row[last]]))


def _counted(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def _node_of(found: Found) -> Node:
    """The node of a PATH; SHARED_FOLDER is only a place that gathers shares."""
    if found.node is None:
        raise errors.InvalidArgument(
            f'"{SHARED_FOLDER}" only gathers what others share with you: name something in it'
        )
    return found.node


def _file_of(found: Found) -> Node:
    node = _node_of(found)
    if node.kind != Kind.FILE:
        raise errors.IsADirectory(
            f"{found.path or '/'} is a {_KIND[node.kind]}: revisions are kept for files"
        )
    return node


# --- ls ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Listed:
    """One line of a listing: what ls prints, as a table row or a JSON object."""

    name: str
    kind: Kind
    size: int
    mtime_ns: int
    target: str = ""
    note: str = ""

    def row(self) -> list[str]:
        shown = f"{self.name} -> {self.target}" if self.kind == Kind.SYMLINK else self.name
        return [
            _KIND[self.kind],
            human(self.size) if self.kind == Kind.FILE else "-",
            format_time(self.mtime_ns),
            shown + ("/" if self.kind == Kind.DIRECTORY else "") + self.note,
        ]

    def fields(self) -> dict:
        fields = {"name": self.name, "kind": _KIND[self.kind], "size": self.size}
        fields["modified_ns"] = self.mtime_ns
        if self.kind == Kind.SYMLINK:
            fields["target"] = self.target
        if self.note:
            fields["note"] = self.note.strip(" ()")
        return fields


def _listed(node: Node, name: str | None = None) -> _Listed:
    return _Listed(
        node.name if name is None else name,
        node.kind,
        node.size,
        node.mtime_ns,
        node.symlink_target,
    )


def _json_lines(objects: list[dict]) -> None:
    """One JSON object per line (JSON Lines), so `head` and `jq` take whole objects."""
    for obj in objects:
        print(json.dumps(obj, ensure_ascii=False))


def _print_listing(entries: list[_Listed], what: str, as_json: bool) -> None:
    entries.sort(key=lambda e: e.name.casefold())
    if as_json:
        _json_lines([entry.fields() for entry in entries])
        return
    if not entries:
        say(f"{what} is empty")
        return
    print_table(["KIND", "SIZE", "MODIFIED", "NAME"], [e.row() for e in entries], right={1})


def _entries(meta: MetadataClient, folder_id: int) -> list[Node]:
    entries: list[Node] = []
    more, after = True, 0
    while more:
        page, more = meta.list_directory(folder_id, after_id=after)
        entries += page
        after = page[-1].id if page else after
        more = more and bool(page)
    return entries


def ls(conn: Connection, path: str, as_json: bool = False) -> int:
    """A folder's entries now (or the one file PATH names)."""
    with session(conn) as meta, busy("listing"):
        resolver = Resolver(meta)
        found = resolver.resolve(path)
        if found.node is None:
            entries = [_listed(s.node, name) for name, s in resolver.shares().items()]
        elif found.node.kind != Kind.DIRECTORY:
            entries = [_listed(found.node)]
        else:
            entries = [_listed(n) for n in _entries(meta, found.node.id)]
            if found.path == "" and resolver.shares():
                entries.append(_Listed(SHARED_FOLDER, Kind.DIRECTORY, 0, found.node.mtime_ns))
    _print_listing(entries, found.path or "the drive", as_json)
    return 0


def ls_at(conn: Connection, path: str, time_ns: int, as_json: bool = False) -> int:
    """A folder's entries as they were at time_ns (what `restore --at` would bring back)."""
    with session(conn) as meta, busy("reading the past"):
        target = Resolver(meta).resolve_at(path, time_ns)
        if target.kind == Kind.DIRECTORY:
            entries = meta.list_snapshot(target.node_id, time_ns)
        else:
            entries = [target.entry] if target.entry is not None else []
    listed = [_past(e) for e in entries]
    _print_listing(listed, f"{target.path or 'the drive'} at {format_time(time_ns)}", as_json)
    return 0


def _past(entry: SnapshotEntry) -> _Listed:
    gone = entry.kind == Kind.FILE and not entry.content_kept
    return _Listed(
        entry.name,
        entry.kind,
        entry.size,
        entry.mtime_ns,
        entry.symlink_target,
        "  (content no longer kept)" if gone else "",
    )


# --- history and restore -----------------------------------------------------------------------


def _people(conn: Connection, meta: MetadataClient) -> dict[int, str]:
    """Names of the users the caller can know of: themselves and those they share with."""
    accounts = conn.accounts()
    try:
        me = accounts.whoami()
    finally:
        accounts.close()
    names = {me.id: me.name}
    for share in (*meta.list_shares(), *meta.shared_with_me()):
        names.setdefault(share.owner_id, share.owner_name)
        names.setdefault(share.user_id, share.user_name)
    return names


def history(conn: Connection, path: str, as_json: bool = False) -> int:
    """Kept revisions of a file, newest first, the current one marked."""
    with session(conn) as meta, busy("reading the history"):
        found = Resolver(meta).resolve(path)
        node = _file_of(found)
        revisions = meta.list_revisions(node.id)
        people = _people(conn, meta)
    if as_json:
        _json_lines(
            [
                {
                    "revision": r.number,
                    "current": r.number == node.revision,
                    "saved_ns": r.created_ns or r.mtime_ns,
                    "size": r.size,
                    "author": people.get(r.author_id, ""),
                    "author_id": r.author_id,
                    "device": r.device,
                }
                for r in revisions
            ]
        )
        return 0
    rows = [
        [
            f"{r.number}{' *' if r.number == node.revision else '  '}",
            format_time(r.created_ns or r.mtime_ns),
            human(r.size),
            people.get(r.author_id, f"user {r.author_id}"),
            r.device or "-",
        ]
        for r in revisions
    ]
    print_table(["REVISION", "SAVED", "SIZE", "AUTHOR", "DEVICE"], rows, right={0, 2})
    say(f"{_counted(len(rows), 'revision')} of {found.path} kept; * is the current one")
    return 0


def restore_revision(conn: Connection, path: str, number: int) -> int:
    """Makes an old revision's content the newest revision: nothing is overwritten."""
    with session(conn) as meta, busy(f"restoring revision {number}"):
        found = Resolver(meta).resolve(path)
        node = meta.restore_revision(_file_of(found).id, number)
    say(
        f"restored {found.path} to the content of revision {number}: "
        f"it is now revision {node.revision} ({human(node.size)})"
    )
    return 0


def restore_at(conn: Connection, path: str, time_ns: int) -> int:
    """Brings a file or folder (its whole tree) back as it was at time_ns."""
    when = format_time(time_ns)
    with session(conn) as meta, busy(f"restoring {path or 'the drive'} as it was at {when}"):
        target = Resolver(meta).resolve_at(path, time_ns)
        node_id = target.node_id or meta.root().id
        restored = meta.restore_snapshot(node_id, time_ns)
    shown = target.path or "the drive"
    brought = _counted(restored.restored, "file")
    if restored.directories:
        brought += f" and {_counted(restored.directories, 'folder')}"
    say(f"restored {shown} as it was at {when}: {brought} brought back")
    if restored.skipped:
        say(
            f"skipped {_counted(restored.skipped, 'file')} whose content from then"
            " is no longer kept"
        )
    if restored.path != target.path:
        say(f"{shown} is back at {restored.path}")
    return 0


# --- trash ---------------------------------------------------------------------------------------


def trash_list(conn: Connection, as_json: bool = False) -> int:
    with session(conn) as meta, busy("reading the trash"):
        entries = meta.list_trash()
    if as_json:
        _json_lines(
            [
                {
                    "path": e.path,
                    "kind": _KIND[e.node.kind],
                    "size": e.node.size,
                    "deleted_ns": e.deleted_ns,
                    "purge_ns": e.purge_ns or None,
                    "id": e.node.id,
                }
                for e in entries
            ]
        )
        return 0
    if not entries:
        say("the trash is empty")
        return 0
    rows = [
        [
            e.path + ("/" if e.node.kind == Kind.DIRECTORY else ""),
            human(e.node.size) if e.node.kind == Kind.FILE else "-",
            format_time(e.deleted_ns),
            format_time(e.purge_ns)[:10] if e.purge_ns else "never",
            str(e.node.id),
        ]
        for e in entries
    ]
    print_table(["PATH", "SIZE", "DELETED", "PURGED ON", "ID"], rows, right={1, 4})
    return 0


def _trash_entry(entries: list[TrashEntry], what: str) -> TrashEntry:
    """By id, or by the path it had (the most recently deleted of that path)."""
    if what.isdigit():
        by_id = [e for e in entries if e.node.id == int(what)]
        if by_id:
            return by_id[0]
    path = drive_path(what)
    matches = [e for e in entries if e.path == path]
    if not matches:
        raise errors.NotFound(f"nothing deleted from {path or what} is in the trash")
    return max(matches, key=lambda e: e.deleted_ns)


def trash_restore(conn: Connection, what: str) -> int:
    """Puts a deleted file or folder back (beside, as "… (restored)", if the name is taken)."""
    with session(conn) as meta, busy("restoring from the trash"):
        entry = _trash_entry(meta.list_trash(), what)
        restored = meta.restore_from_trash(entry.node.id)
    items = f" ({_counted(restored.restored, 'item')})" if restored.restored > 1 else ""
    where = f" as {restored.path}: the name was taken" if restored.path != entry.path else ""
    say(f"restored {entry.path}{items}{where}")
    return 0


# --- sharing -------------------------------------------------------------------------------------


def _role(role: Role) -> str:
    return role.name.lower()


def share(conn: Connection, path: str, user: str, role: Role) -> int:
    """Gives user role on a file or folder (again: changes the role)."""
    with session(conn) as meta, busy(f"sharing with {user}"):
        found = Resolver(meta).resolve(path)
        try:
            info = meta.share(_node_of(found).id, user, role)
        except errors.PermissionDenied as exc:
            raise errors.PermissionDenied(f"cannot share {found.path}: {exc}") from None
    say(f"shared {found.path or 'the drive'} with {info.user_name} ({_role(info.role)})")
    return 0


def unshare(conn: Connection, path: str, user: str) -> int:
    """Takes a share away from user, or from everyone ("")."""
    with session(conn) as meta, busy("unsharing"):
        found = Resolver(meta).resolve(path)
        node = _node_of(found)
        try:
            whom = [user] if user else [s.user_name for s in meta.list_shares(node.id)]
            removed = meta.unshare(node.id, user)
        except errors.PermissionDenied as exc:
            raise errors.PermissionDenied(f"cannot unshare {found.path}: {exc}") from None
    if removed == 0:
        say(f"{found.path or 'the drive'} was not shared with {user or 'anyone'}")
    else:
        say(f"{found.path or 'the drive'} is no longer shared with {', '.join(sorted(whom))}")
    return 0


def shares(conn: Connection, path: str | None, as_json: bool = False) -> int:
    """What you share (all, or of PATH) and what others share with you."""
    mine: list[ShareInfo] = []
    with session(conn) as meta, busy("reading shares"):
        resolver = Resolver(meta)
        found = resolver.resolve(path) if path is not None else None
        if found is None:
            mine = meta.list_shares()
        elif found.node is not None and found.share is None:
            mine = meta.list_shares(found.node.id)
        theirs = resolver.shares()
    if found is not None and found.node is not None and found.share is not None:
        theirs = {n: s for n, s in theirs.items() if s == found.share}
    if found is not None and (found.node is None or found.share is not None):
        mine = []  # PATH is in "Shared with me": only what is shared with you
    elif found is not None:
        theirs = {}  # PATH is yours: only what you share of it
    if as_json:
        _json_lines(
            [
                {"shared": "by me", "path": s.path, "user": s.user_name, "role": _role(s.role)}
                for s in mine
            ]
            + [
                {"shared": "with me", "name": n, "owner": s.owner_name, "role": _role(s.role)}
                for n, s in sorted(theirs.items())
            ]
        )
    elif found is None:
        _print_mine(mine)
        _print_theirs(theirs)
    elif theirs or found.node is None:
        _print_theirs(theirs)
    elif mine:
        _print_mine(mine)
    else:
        say(f"{found.path or 'the drive'} is not shared with anyone")
    return 0


def _print_mine(mine: list[ShareInfo]) -> None:
    if not mine:
        say("shared by me: nothing")
        return
    say("shared by me:")
    rows = [[s.path or "/", s.user_name, _role(s.role)] for s in mine]
    rows.sort(key=lambda r: (r[0].casefold(), r[1]))
    print_table(["  PATH", "USER", "ROLE"], [["  " + r[0], *r[1:]] for r in rows])


def _print_theirs(theirs: dict[str, ShareInfo]) -> None:
    if not theirs:
        say("shared with me: nothing")
        return
    say(f'shared with me (in "{SHARED_FOLDER}"):')
    rows = [[f"  {name}", s.owner_name, _role(s.role)] for name, s in sorted(theirs.items())]
    print_table(["  NAME", "OWNER", "ROLE"], rows)
