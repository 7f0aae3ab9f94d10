"""How the replica's SQLite file lays out what it keeps: its schema, the statements
that write a node, and a node's and a block list's row form.

A node's row never goes backwards: _PUT_NODE's upsert takes the newer change
sequence (or any answer over a row marked stale), so an older answer that
arrives late cannot overwrite a newer one.

Must not: open the file or decide what is kept (replica.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from fusefs.models import BlockRef, Kind, Node, Role

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nodes (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    symlink_target TEXT NOT NULL,
    change_sequence INTEGER NOT NULL,
    owner_id INTEGER NOT NULL,
    role INTEGER NOT NULL,
    uid INTEGER,
    gid INTEGER,
    rdev INTEGER NOT NULL,
    atime_ns INTEGER NOT NULL,
    nlink INTEGER NOT NULL,
    xattrs INTEGER NOT NULL,
    stale INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS entries (
    parent_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    node_id INTEGER NOT NULL,
    entry_id INTEGER NOT NULL,
    PRIMARY KEY (parent_id, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_in_order ON entries (parent_id, entry_id);
CREATE INDEX IF NOT EXISTS entries_of_node ON entries (node_id);
CREATE TABLE IF NOT EXISTS listed (dir_id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS revisions (
    node_id INTEGER NOT NULL,
    number INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    blocks BLOB NOT NULL,
    PRIMARY KEY (node_id, number)
) WITHOUT ROWID;
"""

NODE_COLUMNS = (
    "id, parent_id, name, kind, mode, size, mtime_ns, ctime_ns, revision, symlink_target, "
    "change_sequence, owner_id, role, uid, gid, rdev, atime_ns, nlink, xattrs"
)
JOINED_COLUMNS = ", ".join("n." + c for c in NODE_COLUMNS.split(", "))
_UPSERT = (
    f"INSERT INTO nodes ({NODE_COLUMNS}) VALUES ({', '.join('?' * 19)}) "
    "ON CONFLICT (id) DO UPDATE SET {updates}, stale = 0 "
    "WHERE excluded.change_sequence >= nodes.change_sequence OR nodes.stale"
)
PUT_NODE = _UPSERT.format(
    updates=", ".join(f"{c} = excluded.{c}" for c in NODE_COLUMNS.split(", ")[1:])
)
PUT_LINKED_NODE = _UPSERT.format(
    updates=", ".join(f"{c} = excluded.{c}" for c in NODE_COLUMNS.split(", ")[3:])
)

_HASH_BYTES = 32
_RECORD = 8 + 4  # offset (8 bytes), size (4 bytes) after each hash


def node_row(node: Node) -> tuple:
    return (
        node.id, node.parent_id, node.name, int(node.kind), node.mode, node.size,
        node.mtime_ns, node.ctime_ns, node.revision, node.symlink_target,
        node.change_sequence, node.owner_id, int(node.role), node.uid, node.gid,
        node.rdev, node.atime_ns, node.nlink, node.xattrs,
    )  # fmt: skip


def node_of(row: tuple, parent_id: int | None = None, name: str = "", entry_id: int = 0) -> Node:
    """A node from its row; as an entry shows it when parent_id, name and entry_id are given."""
    (id_, own_parent, own_name, kind, mode, size, mtime, ctime, revision, target, sequence,
     owner, role, uid, gid, rdev, atime, nlink, xattrs) = row  # fmt: skip
    return Node(
        id=id_,
        parent_id=own_parent if parent_id is None else parent_id,
        name=own_name if parent_id is None else name,
        kind=Kind(kind),
        mode=mode,
        size=size,
        mtime_ns=mtime,
        ctime_ns=ctime,
        revision=revision,
        symlink_target=target,
        change_sequence=sequence,
        owner_id=owner,
        role=Role(role),
        uid=uid,
        gid=gid,
        rdev=rdev,
        atime_ns=atime,
        nlink=nlink,
        entry_id=entry_id or id_,
        xattrs=xattrs,
    )


def pack_blocks(blocks: Iterable[BlockRef]) -> bytes:
    out = bytearray()
    for ref in blocks:
        out += ref.hash + ref.offset.to_bytes(8, "little") + ref.size.to_bytes(4, "little")
    return bytes(out)


def unpack_blocks(packed: bytes) -> tuple[BlockRef, ...]:
    step = _HASH_BYTES + _RECORD
    refs = []
    for at in range(0, len(packed), step):
        h = packed[at : at + _HASH_BYTES]
        offset = int.from_bytes(packed[at + _HASH_BYTES : at + _HASH_BYTES + 8], "little")
        size = int.from_bytes(packed[at + _HASH_BYTES + 8 : at + step], "little")
        refs.append(BlockRef(h, offset, size))
    return tuple(refs)
