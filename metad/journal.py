"""Reading the change journal: one subscriber's events, with names and paths as they see them.

Owns the journal's read side: which rows are a user's (their drive, what is
shared with them, shares given to or taken from them) and how far a read
looked, which changes.follow relies on (see schema.py for the ordering the
engines guarantee). The rows are written by Transaction.journal. Runs on a
reader's thread, in one read transaction (the head and the rows from one
snapshot).

Must not: write, or know gRPC.
"""

from __future__ import annotations

from dataclasses import replace

from metad import access, rows, users
from metad.changes import ChangePage
from metad.models import ChangeEvent, ChangeKind
from metad.sql import Sql


def head(conn: Sql) -> int:
    """The newest journal sequence; 0 if there is none yet."""
    return int(rows.fetch_one(conn, "SELECT COALESCE(MAX(sequence), 0) FROM changes", ())[0])


def _place_of_entry(
    viewer: access.Viewer, event: ChangeEvent, parent_id: int | None, name: str
) -> tuple[str, bool] | None:
    """Where a name of the event's node is for the viewer; None where they cannot see it,
    nor in a share from before the viewer had it, or from while they had not."""
    place = viewer.place_of_entry(parent_id, name, event.node_id)
    if (
        place is not None
        and place[1]
        and not viewer.shared_at(parent_id, event.node_id, event.sequence)
    ):
        return None
    return place


def _as_seen(
    viewer: access.Viewer, event: ChangeEvent
) -> tuple[ChangeEvent, tuple[str, bool]] | None:
    """The event as the viewer may know it, and where: after the change, or, if it took
    the node out of their sight, where it was before. A move between a place they see
    and one they do not is, for them, the node appearing (CREATED) or going (DELETED):
    the other place is not theirs to learn, not even its name."""
    place = _place_of_entry(viewer, event, event.parent_id, event.name)
    old = None
    if event.old_parent_id is not None and event.old_name is not None:
        old = _place_of_entry(viewer, event, event.old_parent_id, event.old_name)
    if event.kind == ChangeKind.MOVED and place is not None and old is None:
        return replace(event, kind=ChangeKind.CREATED, old_parent_id=None, old_name=None), place
    if event.kind == ChangeKind.MOVED and place is None and old is not None:
        gone = replace(
            event, kind=ChangeKind.DELETED, parent_id=event.old_parent_id, name=event.old_name,
            old_parent_id=None, old_name=None, replaced_node_id=None,
        )  # fmt: skip
        return gone, old
    place = place or old
    return None if place is None else (event, place)


def read(conn: Sql, user_id: int, after: int, limit: int) -> ChangePage:
    """The user's events with sequence > after, from at most limit rows (in a snapshot)."""
    newest = head(conn)
    viewer = access.Viewer(conn, user_id)
    owners = sorted(viewer.owners_sharing - {user_id})
    marks = ",".join("?" * len(owners))
    others = f" OR owner_id IN ({marks})" if owners else ""
    found = conn.execute(
        f"SELECT {rows.CHANGE_COLUMNS} FROM {rows.CHANGES}"
        " WHERE changes.sequence > ? AND changes.sequence <= ?"
        f" AND (owner_id = ? OR share_changes.user_id = ?{others})"
        " ORDER BY changes.sequence LIMIT ?",
        (after, newest, user_id, user_id, *owners, limit),
    ).fetchall()
    more = len(found) == limit
    names = users.Names(conn)
    events: list[ChangeEvent] = []
    for row in found:
        event = rows.change(row)
        seen = _as_seen(viewer, event)
        if seen is not None:
            event, place = seen
        else:
            if event.owner_id != user_id and event.subject_user_id != user_id:
                continue  # in a drive that shares other things with them
            place = (event.name, event.owner_id != user_id)
        events.append(
            replace(
                event,
                actor_name=names.of(event.actor_id),
                subject_name=names.of(event.subject_user_id),
                path=place[0],
                shared=place[1],
            )
        )
    watch = frozenset({user_id, *viewer.owners_sharing})
    return ChangePage(events, int(found[-1]["sequence"]) if more else newest, more, watch)
