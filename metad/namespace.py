"""Changes to the tree's names: create, rename, exchange, delete, link.

Each function applies the pure rules (rules.py) to its arguments at once and
returns the change as a body for a write transaction (transaction.Write), so
one implementation serves a change sent alone (the store runs it as one
write) and one sent in an ApplyBatch (run among others in one transaction).
Every body checks access, writes its journal rows and touches the folders it
changes, in the same transaction.

Must not: run a transaction (the store does), or know gRPC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from metad import access, links, quiet, reservations, rules, saves, trash
from metad.errors import (
    AlreadyExists,
    CrossDrive,
    DirectoryNotEmpty,
    InvalidMove,
    IsADirectory,
    NotADirectory,
    NotFound,
)
from metad.models import NO_OWNERSHIP, Actor, ChangeKind, Node, NodeKind, Ownership, Role
from metad.transaction import Transaction, Write, child

# What Rename returns: the node now at the new name, the id of the node whose
# name it took (or None), whether that node stays (it had other names), and,
# for a save over another file (saves.py), the id of the moved node, now gone.
Renamed = tuple[Node, int | None, bool, int | None]


def _create(
    tx: Transaction,
    actor: Actor,
    parent_id: int,
    name: str,
    kind: NodeKind,
    mode: int,
    mtime_ns: int,
    owner: Ownership,
    node_id: int | None,
    **fields: Any,
) -> Node:
    """A new node named name in a folder the actor may write to; journals CREATED.

    A file starts at revision 1, empty. node_id: an id reserved to the actor, by a
    device that made the node in its journal: then mtime_ns is when it did (the
    node's ctime, and its folder's times unless they are later already), so the
    device's view does not change when the node arrives.
    """
    rules.check_ownership(owner)
    # Asked together, checked in this order: the folder, the name, the reserved id.
    free = tx.ask_free(parent_id, name)
    claimed = None if node_id is None else reservations.ask_claim(tx, actor.user_id, node_id)
    parent = access.directory(tx.conn, parent_id, actor.user_id, Role.WRITE)
    free()
    if claimed is not None:
        claimed()
    mtime = mtime_ns or tx.now_ns
    born = min(mtime_ns, tx.now_ns) if node_id is not None else 0  # never in the future
    revision = 1 if kind is NodeKind.FILE else 0
    node = tx.insert_node(
        owner_id=parent.owner_id,
        parent_id=parent.id,
        role=parent.role,
        name=name,
        kind=kind,
        mode=rules.permission_bits(mode),
        mtime_ns=mtime,
        revision=revision,
        uid=owner.uid,
        gid=owner.gid,
        node_id=node_id,
        born_ns=born,
        **fields,
    )
    if revision:
        tx.insert_revision(node, 1, 0, mtime, actor)
    tx.touch_directory(parent.id, born)
    # Last: its answer is the change's last wait.
    return tx.journal(
        ChangeKind.CREATED, node, actor, parent_id=parent.id, name=name, revision=revision,
        fresh=True,
    )  # fmt: skip


def _plain(kind: NodeKind, function: str, doc: str) -> Callable[..., Write[Node]]:
    """The change that makes a folder or a regular file (the same arguments)."""

    def make(
        actor: Actor,
        parent_id: int,
        name: str,
        mode: int,
        mtime_ns: int = 0,
        owner: Ownership = NO_OWNERSHIP,
        node_id: int | None = None,
    ) -> Write[Node]:
        rules.check_name(name)
        return lambda tx: _create(tx, actor, parent_id, name, kind, mode, mtime_ns, owner, node_id)

    make.__name__ = make.__qualname__ = function
    make.__doc__ = doc
    return make


make_directory = _plain(NodeKind.DIRECTORY, "make_directory", "A new folder.")
create_file = _plain(NodeKind.FILE, "create_file", "A new empty file at revision 1.")


def create_symlink(
    actor: Actor,
    parent_id: int,
    name: str,
    target: str,
    owner: Ownership = NO_OWNERSHIP,
    node_id: int | None = None,
    mtime_ns: int = 0,
) -> Write[Node]:
    rules.check_name(name)
    rules.check_symlink_target(target)
    return lambda tx: _create(
        tx, actor, parent_id, name, NodeKind.SYMLINK, rules.SYMLINK_MODE, mtime_ns, owner,
        node_id,
        symlink_target=target,
        size=rules.symlink_size(target),
    )  # fmt: skip


def make_node(
    actor: Actor,
    parent_id: int,
    name: str,
    kind: NodeKind,
    mode: int,
    rdev: int = 0,
    owner: Ownership = NO_OWNERSHIP,
    node_id: int | None = None,
) -> Write[Node]:
    """A FIFO, a device or a socket: a node without content."""
    rules.check_name(name)
    rules.check_special(kind, rdev)
    return lambda tx: _create(tx, actor, parent_id, name, kind, mode, 0, owner, node_id, rdev=rdev)


def _place(tx: Transaction, entry: Node, parent_id: int, name: str) -> None:
    """Puts an entry (a node's own name, or a further name) at parent_id/name; ctime moves."""
    if entry.link_id is not None:
        tx.conn.execute(
            "UPDATE links SET parent_id = ?, name = ? WHERE id = ?",
            (parent_id, name, entry.link_id),
        )
        tx.conn.execute("UPDATE nodes SET ctime_ns = ? WHERE id = ?", (tx.now_ns, entry.id))
    else:
        tx.conn.execute(
            "UPDATE nodes SET parent_id = ?, name = ?, ctime_ns = ? WHERE id = ?",
            (parent_id, name, tx.now_ns, entry.id),
        )


def _check_replaceable(tx: Transaction, node: Node, replaced: Node) -> None:
    """rename(2) rules: a directory replaces only an empty directory, others only non-dirs."""
    if node.kind is NodeKind.DIRECTORY:
        if replaced.kind is not NodeKind.DIRECTORY:
            raise NotADirectory(f"cannot replace non-directory {replaced.id} by a directory")
        if not tx.is_empty(replaced.id):
            raise DirectoryNotEmpty(f"directory {replaced.id} is not empty")
    elif replaced.kind is NodeKind.DIRECTORY:
        raise IsADirectory(f"cannot replace directory {replaced.id} by a non-directory")


def rename(
    actor: Actor,
    parent_id: int,
    name: str,
    new_parent_id: int,
    new_name: str,
    *,
    no_replace: bool = False,
    expect_id: int | None = None,
) -> Write[Renamed]:
    """Moves an entry atomically (see Renamed for what the body returns).

    expect_id: the node the caller believes is at name (NotFound if another is).
    """
    rules.check_name(name)
    rules.check_name(new_name)

    def body(tx: Transaction) -> Renamed:
        old_parent = access.directory(tx.conn, parent_id, actor.user_id, Role.WRITE)
        node = child(tx.conn, old_parent.id, name)
        if node is None or expect_id not in (None, node.id):
            raise NotFound(f"no {name!r} in directory {old_parent.id}")
        new_parent = access.directory(tx.conn, new_parent_id, actor.user_id, Role.WRITE)
        if new_parent.id == old_parent.id and new_name == name:
            return node, None, False, None
        if new_parent.owner_id != node.owner_id:
            raise CrossDrive(f"cannot move {name!r} between two people's drives; copy it instead")
        if node.kind is NodeKind.DIRECTORY and tx.is_within(new_parent.id, node.id):
            raise InvalidMove(f"cannot move directory {node.id} into itself or its subtree")
        replaced = child(tx.conn, new_parent.id, new_name)
        if replaced is not None and replaced.id == node.id:
            return node, None, False, None  # two names of one file: rename(2) does nothing
        remains = False
        if replaced is not None:
            if no_replace:
                raise AlreadyExists(f"{new_name!r} already exists in {new_parent.id}")
            _check_replaceable(tx, node, replaced)
            if saves.applies(node, replaced):
                saved = saves.save_over(tx, actor, node, replaced, (old_parent.id, name))
                tx.touch_directory(old_parent.id)
                if new_parent.id != old_parent.id:
                    tx.touch_directory(new_parent.id)
                return replace(saved, role=new_parent.role), None, False, node.id
            remains = links.remove(tx, actor, replaced)
            if not remains:
                tx.conn.execute(
                    "UPDATE nodes SET deleted_ns = ?, ctime_ns = ? WHERE id = ?",
                    (tx.now_ns, tx.now_ns, replaced.id),
                )
        if node.link_id is not None:
            moved = links.move(tx, actor, node, new_parent, new_name)
            tx.touch_directory(old_parent.id)
            tx.touch_directory(new_parent.id)
            return moved, None if replaced is None else replaced.id, remains, None
        tx.conn.execute(
            "UPDATE nodes SET parent_id = ?, name = ?, ctime_ns = ? WHERE id = ?",
            (new_parent.id, new_name, tx.now_ns, node.id),
        )
        node = replace(node, role=new_parent.role)
        moved = tx.journal(
            ChangeKind.MOVED,
            node,
            actor,
            parent_id=new_parent.id,
            name=new_name,
            old_parent_id=old_parent.id,
            old_name=name,
            replaced_node_id=None if replaced is None or remains else replaced.id,
        )
        tx.touch_directory(old_parent.id)
        if new_parent.id != old_parent.id:
            tx.touch_directory(new_parent.id)
        return moved, None if replaced is None else replaced.id, remains, None

    return body


def exchange(
    actor: Actor,
    parent_id: int,
    name: str,
    other_parent_id: int,
    other_name: str,
    expect_id: int | None = None,
) -> Write[tuple[Node, Node]]:
    """Swaps two entries atomically (RENAME_EXCHANGE): (the one now at other_name, the
    one now at name). expect_id: the node the caller believes is at name (NotFound if
    another is: a swap made offline is not made with what took its place since)."""
    rules.check_name(name)
    rules.check_name(other_name)

    def body(tx: Transaction) -> tuple[Node, Node]:
        first_parent = access.directory(tx.conn, parent_id, actor.user_id, Role.WRITE)
        second_parent = access.directory(tx.conn, other_parent_id, actor.user_id, Role.WRITE)
        first = child(tx.conn, first_parent.id, name)
        second = child(tx.conn, second_parent.id, other_name)
        if first is None or second is None:
            raise NotFound(f"exchange needs both {name!r} and {other_name!r}")
        if expect_id not in (None, first.id):
            raise NotFound(f"{name!r} is another node now")
        if first.id == second.id:
            return first, second
        if first_parent.owner_id != second_parent.owner_id:
            raise CrossDrive("cannot exchange entries between two people's drives")
        for node, into in ((first, second_parent), (second, first_parent)):
            if node.kind is NodeKind.DIRECTORY and tx.is_within(into.id, node.id):
                raise InvalidMove(f"cannot move directory {node.id} into its own subtree")
        # Through a name no entry can have ('/'), so the swap never collides.
        _place(tx, first, first_parent.id, f"{name}/exchange")
        _place(tx, second, first_parent.id, name)
        _place(tx, first, second_parent.id, other_name)
        swapped = []
        for node, parent, new_name in (
            (first, second_parent, other_name),
            (second, first_parent, name),
        ):
            if node.link_id is not None:
                moved = links.journal_moved(tx, actor, node, parent.id, new_name)
            else:
                moved = tx.journal(
                    ChangeKind.MOVED,
                    node,
                    actor,
                    parent_id=parent.id,
                    name=new_name,
                    old_parent_id=node.parent_id,
                    old_name=node.name,
                )
            swapped.append(replace(moved, role=parent.role))
        tx.touch_directory(first_parent.id)
        tx.touch_directory(second_parent.id)
        return swapped[0], swapped[1]

    return body


def delete(
    actor: Actor,
    parent_id: int,
    name: str,
    *,
    directory: bool,
    quiet_ns: int = quiet.WINDOW_NS,
    expect_id: int | None = None,
) -> Write[tuple[int, bool]]:
    """Removes an entry: (node id, whether the node stays under its other names).

    The last name of a node sends it to the trash (its revisions are kept),
    unless it was a temporary (quiet.py; quiet_ns: its window). expect_id:
    the node the caller believes is at name (NotFound if another is).
    """
    rules.check_name(name)

    def body(tx: Transaction) -> tuple[int, bool]:
        parent = access.directory(tx.conn, parent_id, actor.user_id, Role.WRITE)
        node = child(tx.conn, parent.id, name)
        if node is None or expect_id not in (None, node.id):
            raise NotFound(f"no {name!r} in directory {parent.id}")
        if directory:
            if node.kind is not NodeKind.DIRECTORY:
                raise NotADirectory(f"{name!r} is not a directory")
            if not tx.is_empty(node.id):
                raise DirectoryNotEmpty(f"directory {name!r} is not empty")
        elif node.kind is NodeKind.DIRECTORY:
            raise IsADirectory(f"{name!r} is a directory")
        if links.remove(tx, actor, node):
            return node.id, True
        tx.conn.execute(
            "UPDATE nodes SET deleted_ns = ?, ctime_ns = ? WHERE id = ?",
            (tx.now_ns, tx.now_ns, node.id),
        )
        tx.journal(ChangeKind.DELETED, node, actor, parent_id=parent.id, name=name)
        tx.touch_directory(parent.id)
        if quiet.is_temporary(tx, node, quiet_ns, remover_id=actor.user_id):
            trash.purge(tx, "id = ?", (node.id,))
        return node.id, False

    return body


def link(actor: Actor, node_id: int, new_parent_id: int, new_name: str) -> Write[Node]:
    """A further name (hard link) for a file in a folder of the same drive.

    The file must be the caller's to change (WRITE), not only to read: a name
    changes its nlink and ctime, shows it in a folder others may see, and keeps
    it alive, writable there, when its owner deletes the name he shared.
    """
    rules.check_name(new_name)

    def body(tx: Transaction) -> Node:
        node = access.visible_node(tx.conn, node_id, actor.user_id)
        parent = access.directory(tx.conn, new_parent_id, actor.user_id, Role.WRITE)
        if parent.owner_id != node.owner_id:
            raise CrossDrive(f"cannot link {node.name!r} into another person's drive")
        role = node.role or Role.READ  # visible_node sets it
        if not role.allows(Role.WRITE):
            raise access.denied(node, role, Role.WRITE)
        made = links.add(tx, actor, node, parent, new_name)
        return replace(made, role=parent.role)

    return body
