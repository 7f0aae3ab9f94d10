"""`drive watch`: the drive's change journal, live, one sentence per change.

Owns the wording of a change ("alice moved docs/a.txt to docs/b.txt") and
following the journal across broken streams: each stream resumes after the
last change printed, so none is missed and none printed twice (metad's
Subscribe delivers in sequence order from any cursor). Paths are as the
mount shows them: your own from your drive's root, others' under
SHARED_FOLDER.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import signal
import sys
import threading
from collections.abc import Callable

from fusefs import errors
from fusefs.cli.admin import Connection, console
from fusefs.cli.browse import session
from fusefs.clients import ChangeStream, MetadataClient
from fusefs.models import Change, ChangeKind, Kind
from fusefs.shared import SHARED_FOLDER
from protos import names

RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0


def shown_path(change: Change) -> str:
    """Where the changed node is, as the subscriber's mount shows it."""
    if change.shared:
        return f"{SHARED_FOLDER}/{change.path}" if change.path else SHARED_FOLDER
    return change.path or "/"


def describe(change: Change, old_path: str = "") -> str:
    """One readable line; old_path: where a MOVED node was (default: its old name)."""
    who = change.actor_name or f"user {change.actor_id}"
    path = shown_path(change)
    kind = change.kind
    if kind == ChangeKind.CREATED:
        return f"{who} created {path}"
    if kind == ChangeKind.EDITED:
        return f"{who} edited {path}"
    if kind == ChangeKind.MOVED:
        return f"{who} moved {old_path or change.old_name} to {path}"
    if kind == ChangeKind.DELETED:
        return f"{who} deleted {path}"
    if kind == ChangeKind.ATTRIBUTES:
        return f"{who} changed the attributes of {path}"
    if kind == ChangeKind.RESTORED:
        if change.node_kind == Kind.FILE and change.revision:
            return f"{who} restored {path} (now revision {change.revision})"
        return f"{who} restored {path}"
    if kind == ChangeKind.DAMAGED:
        return f"storage found damage in {path}: devices holding its content upload it again"
    if kind == ChangeKind.LINKED:
        return f"{who} gave {path} another name: {change.old_name}"
    if kind == ChangeKind.UNLINKED:
        return f"{who} removed the name {change.old_name} of {path}"
    subject = change.subject_name or f"user {change.subject_user_id}"
    if kind == ChangeKind.SHARED:
        return f"{who} shared {path} with {subject} ({change.role.name.lower()})"
    return f"{who} unshared {path} with {subject}"


class FolderBook:
    """Folder paths learned from the changes seen, to say where a moved node was.

    A change names only the folder (id) a node left; this remembers the paths
    of folders seen since the watch began, and follows them when they move.
    """

    def __init__(self, root_id: int) -> None:
        self._paths: dict[int, str] = {root_id: ""}

    def old_path(self, change: Change) -> str:
        if change.old_parent_id == change.parent_id:  # renamed in place
            return posixpath.join(posixpath.dirname(shown_path(change)), change.old_name)
        folder = self._paths.get(change.old_parent_id)
        return change.old_name if folder is None else posixpath.join(folder, change.old_name)

    def note(self, change: Change) -> None:
        path = shown_path(change) if change.path else ""
        self._paths[change.parent_id] = posixpath.dirname(path)
        if change.node_kind != Kind.DIRECTORY:
            return
        old = self._paths.get(change.node_id)
        self._paths[change.node_id] = path
        if change.kind == ChangeKind.MOVED and old is not None:
            for folder_id, folder in list(self._paths.items()):
                if folder.startswith(old + "/"):
                    self._paths[folder_id] = path + folder[len(old) :]


class Stopper:
    """Ends a watch from a signal handler by cancelling its stream.

    A KeyboardInterrupt raised inside a blocking gRPC call can leave the
    channel unable to close (its close() then waits forever); cancelling the
    call ends the stream cleanly instead.
    """

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self._stream: ChangeStream | None = None

    def watching(self, stream: ChangeStream) -> None:
        self._stream = stream
        if self.stopped.is_set():
            stream.cancel()

    def stop(self, *_: object) -> None:
        self.stopped.set()
        if self._stream is not None:
            self._stream.cancel()


def follow(
    meta: MetadataClient,
    after: int,
    on_change: Callable[[Change], None],
    limit: int | None = None,
    on_lost: Callable[[int], None] = lambda _after: None,
    stopper: Stopper | None = None,
) -> int:
    """Hands changes after `after` to on_change in order, across broken streams.

    Stops after `limit` changes (None: never), or when stopper is stopped;
    returns the last sequence handed.
    """
    stopper = stopper or Stopper()
    handed = 0
    delay = RETRY_FIRST_S
    while (limit is None or handed < limit) and not stopper.stopped.is_set():
        stream = meta.subscribe(after)
        stopper.watching(stream)
        try:
            for change in stream:
                if change.sequence <= after:
                    continue  # a resumed stream never repeats one, but be sure
                on_change(change)
                after, handed, delay = change.sequence, handed + 1, RETRY_FIRST_S
                if limit is not None and handed >= limit:
                    return after
        except errors.DriveError as exc:
            if not _temporary(exc):
                raise
        finally:
            stream.cancel()
        if stopper.stopped.is_set():
            break
        # The stream broke, or ended without being asked to (metad stopping).
        if delay == RETRY_FIRST_S:
            on_lost(after)
        stopper.stopped.wait(delay)
        delay = min(delay * 2, RETRY_MAX_S)
    return after


def _temporary(exc: errors.DriveError) -> bool:
    """A daemon restarting or a dropped connection (an unknown status is one too)."""
    return isinstance(exc, errors.Unavailable) or type(exc) is errors.DriveError


def as_fields(change: Change, old_path: str = "") -> dict:
    """A change for scripts (`drive watch --json`): what describe() says, as fields."""
    fields: dict = {
        "sequence": change.sequence,
        "kind": change.kind.name.lower(),
        "path": shown_path(change),
        "node_id": change.node_id,
        "node_kind": change.node_kind.name.lower(),
        "by": change.actor_name,
        "time_ns": change.time_ns,
    }
    if change.revision:
        fields["revision"] = change.revision
    if change.device:
        fields["device"] = change.device
    if change.kind == ChangeKind.MOVED:
        fields["old_path"] = old_path or change.old_name
    if change.kind in (ChangeKind.LINKED, ChangeKind.UNLINKED):
        fields["name"] = change.old_name
    if change.kind in (ChangeKind.SHARED, ChangeKind.UNSHARED):
        fields["with"] = change.subject_name
        if change.kind == ChangeKind.SHARED:
            fields["role"] = change.role.name.lower()
    return fields


def watch(
    conn: Connection,
    from_sequence: int | None,
    limit: int | None,
    numbered: bool,
    *,
    as_json: bool = False,
) -> int:
    """Prints changes as they happen until Ctrl-C (exit 0) or `limit` changes."""

    def lost(after: int) -> None:
        console.print(f"lost the connection to metad; resuming after change {after}…")

    stopper = Stopper()
    previous = signal.signal(signal.SIGINT, stopper.stop)  # Ctrl-C: how a watch is meant to end
    try:
        with session(conn) as meta:
            start = meta.journal_head() if from_sequence is None else from_sequence
            folders = FolderBook(meta.root().id)

            def show(change: Change) -> None:
                old_path = folders.old_path(change)
                folders.note(change)
                if as_json:
                    print(json.dumps(as_fields(change, old_path), ensure_ascii=False), flush=True)
                    return
                line = names.printable(describe(change, old_path))
                print(f"{change.sequence} {line}" if numbered else line, flush=True)

            if not stopper.stopped.is_set():
                console.print(f"watching changes after {start}; Ctrl-C stops")
            follow(meta, start, show, limit, lost, stopper)
    except BrokenPipeError:  # e.g. piped into `head`: the reader is gone
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        signal.signal(signal.SIGINT, previous)
    return 0
