"""metad over real gRPC: every RPC, every error mapping, the journal stream, durability.

Each test talks to a metad child process on 127.0.0.1 (conftest's `metad`
fixture) with a real SQLite file; the fixture fails the test on any
unexpected WARNING/ERROR line in the daemon's log.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from fusefs.daemons import Daemon, DaemonError
from protos.drive.v1 import metadata_pb2 as pb
from protos.drive.v1 import metadata_pb2_grpc
from protos.runtime import CURRENT_REVISION_KEY, ERROR_REASON_KEY
from tests import signin

TIMEOUT = 10.0
DEVICE = "test-device"

OK = None
NOT_FOUND = grpc.StatusCode.NOT_FOUND
ALREADY_EXISTS = grpc.StatusCode.ALREADY_EXISTS
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
ABORTED = grpc.StatusCode.ABORTED


def h(n: int) -> bytes:
    """A 32-byte stand-in for a block hash."""
    return n.to_bytes(32, "big")


class Drive:
    """The Metadata stub with deadlines and the short calls the tests need."""

    def __init__(self, stub: metadata_pb2_grpc.MetadataStub) -> None:
        self.stub = stub

    def root(self) -> pb.Node:
        return self.stub.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT)

    def mkdir(self, parent: int, name: str, mode: int = 0o755, mtime_ns: int = 0) -> pb.Node:
        request = pb.MakeDirectoryRequest(
            parent_id=parent, name=name, mode=mode, mtime_ns=mtime_ns, device=DEVICE
        )
        return self.stub.MakeDirectory(request, timeout=TIMEOUT)

    def create(self, parent: int, name: str, mode: int = 0o644, mtime_ns: int = 0) -> pb.Node:
        request = pb.CreateFileRequest(
            parent_id=parent, name=name, mode=mode, mtime_ns=mtime_ns, device=DEVICE
        )
        return self.stub.CreateFile(request, timeout=TIMEOUT)

    def symlink(self, parent: int, name: str, target: str) -> pb.Node:
        request = pb.CreateSymlinkRequest(parent_id=parent, name=name, target=target, device=DEVICE)
        return self.stub.CreateSymlink(request, timeout=TIMEOUT)

    def commit(
        self, node: int, base: int, sizes: list[int], mtime_ns: int = 0, first_hash: int = 1
    ) -> pb.Node:
        blocks, offset = [], 0
        for i, size in enumerate(sizes):
            digest = h(first_hash + i)
            receipt = signin.receipt(digest, size)  # as if uploaded: blockd's proof
            blocks.append(pb.BlockRef(hash=digest, offset=offset, size=size, receipt=receipt))
            offset += size
        return self.commit_blocks(node, base, offset, blocks, mtime_ns)

    def commit_blocks(
        self, node: int, base: int, size: int, blocks: list[pb.BlockRef], mtime_ns: int = 0
    ) -> pb.Node:
        request = pb.CommitRevisionRequest(
            node_id=node,
            base_revision=base,
            size=size,
            mtime_ns=mtime_ns,
            blocks=blocks,
            device=DEVICE,
        )
        return self.stub.CommitRevision(request, timeout=TIMEOUT)

    def lookup(self, parent: int, name: str) -> pb.Node:
        return self.stub.Lookup(pb.LookupRequest(parent_id=parent, name=name), timeout=TIMEOUT)

    def stat(self, node: int) -> pb.Node:
        return self.stub.Stat(pb.StatRequest(node_id=node), timeout=TIMEOUT)

    def ls(self, node: int, after: int = 0, page_size: int = 0) -> pb.ListDirectoryResponse:
        request = pb.ListDirectoryRequest(node_id=node, after_id=after, page_size=page_size)
        return self.stub.ListDirectory(request, timeout=TIMEOUT)

    def names(self, node: int) -> list[str]:
        return [entry.name for entry in self.ls(node).entries]

    def rename(
        self, parent: int, name: str, new_parent: int, new_name: str, no_replace: bool = False
    ) -> pb.RenameResponse:
        request = pb.RenameRequest(
            parent_id=parent,
            name=name,
            new_parent_id=new_parent,
            new_name=new_name,
            no_replace=no_replace,
            device=DEVICE,
        )
        return self.stub.Rename(request, timeout=TIMEOUT)

    def delete(self, parent: int, name: str, directory: bool = False) -> int:
        request = pb.DeleteRequest(parent_id=parent, name=name, directory=directory, device=DEVICE)
        return self.stub.Delete(request, timeout=TIMEOUT).node_id

    def set_attributes(
        self, node: int, mode: int | None = None, mtime_ns: int | None = None
    ) -> pb.Node:
        request = pb.SetAttributesRequest(node_id=node, device=DEVICE)
        if mode is not None:
            request.mode = mode
        if mtime_ns is not None:
            request.mtime_ns = mtime_ns
        return self.stub.SetAttributes(request, timeout=TIMEOUT)

    def revision(self, node: int, number: int = 0) -> pb.Revision:
        request = pb.GetRevisionRequest(node_id=node, number=number)
        return self.stub.GetRevision(request, timeout=TIMEOUT)

    def revisions(self, node: int) -> list[pb.Revision]:
        request = pb.ListRevisionsRequest(node_id=node)
        return list(self.stub.ListRevisions(request, timeout=TIMEOUT).revisions)

    def usage(self) -> pb.Usage:
        return self.stub.GetUsage(pb.GetUsageRequest(), timeout=TIMEOUT)

    def journal_head(self) -> int:
        return self.stub.GetJournalHead(pb.GetJournalHeadRequest(), timeout=TIMEOUT).sequence


class Subscription:
    """A Subscribe stream read by a thread into a queue, so reads can time out."""

    def __init__(self, stub: metadata_pb2_grpc.MetadataStub, from_sequence: int) -> None:
        self.call = stub.Subscribe(pb.SubscribeRequest(from_sequence=from_sequence), timeout=60)
        self.events: queue.Queue[pb.ChangeEvent | grpc.RpcError | None] = queue.Queue()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        try:
            for event in self.call:
                self.events.put(event)
        except grpc.RpcError as exc:
            self.events.put(exc)
        self.events.put(None)

    def next(self, timeout: float = TIMEOUT) -> pb.ChangeEvent:
        item = self.events.get(timeout=timeout)
        assert isinstance(item, pb.ChangeEvent), f"stream ended: {item!r}"
        return item

    def take(self, count: int) -> list[pb.ChangeEvent]:
        return [self.next() for _ in range(count)]

    def assert_quiet(self, seconds: float = 0.3) -> None:
        with pytest.raises(queue.Empty):
            item = self.events.get(timeout=seconds)
            pytest.fail(f"unexpected event {item}")

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(TIMEOUT)


@contextlib.contextmanager
def subscribe(
    stub: metadata_pb2_grpc.MetadataStub, from_sequence: int = 0
) -> Iterator[Subscription]:
    subscription = Subscription(stub, from_sequence)
    try:
        yield subscription
    finally:
        subscription.close()


@contextlib.contextmanager
def connect(daemon: Daemon) -> Iterator[Drive]:
    with signin.channel(daemon.address) as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
        yield Drive(metadata_pb2_grpc.MetadataStub(channel))


def expect_error(code: grpc.StatusCode, reason: str | None, call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    error = info.value
    assert error.code() == code, f"{error.code()}: {error.details()}"
    trailing = dict(error.trailing_metadata() or ())
    if reason is not None:
        assert trailing.get(ERROR_REASON_KEY) == reason, trailing
    return error


@pytest.fixture
def drive(metadata_stub: metadata_pb2_grpc.MetadataStub) -> Drive:
    return Drive(metadata_stub)


# -- reading the tree --------------------------------------------------------------------------


def test_root_is_the_owner_directory(drive: Drive) -> None:
    root = drive.root()
    assert root.id > 0
    assert (root.parent_id, root.name) == (0, "")
    assert root.kind == pb.NODE_KIND_DIRECTORY
    assert root.mode == 0o755
    assert (root.owner_id, root.role) == (1, pb.ROLE_OWNER)
    assert root.mtime_ns > 0 and root.ctime_ns > 0
    assert drive.stat(root.id) == root
    assert list(drive.ls(root.id).entries) == []
    assert drive.ls(root.id).more is False


def test_create_directory_file_and_symlink(drive: Drive) -> None:
    root = drive.root()
    before = time.time_ns()
    directory = drive.mkdir(root.id, "docs", mode=0o40750)  # type bits are dropped
    after = time.time_ns()
    assert directory.kind == pb.NODE_KIND_DIRECTORY
    assert (directory.parent_id, directory.name, directory.mode) == (root.id, "docs", 0o750)
    assert before <= directory.mtime_ns <= after
    assert directory.ctime_ns == directory.mtime_ns
    assert (directory.size, directory.revision) == (0, 0)
    assert directory.role == pb.ROLE_OWNER and directory.change_sequence > 0

    file = drive.create(directory.id, "notes.txt", mode=0o600, mtime_ns=1_234_567)
    assert file.kind == pb.NODE_KIND_FILE
    assert (file.size, file.revision, file.mode, file.mtime_ns) == (0, 1, 0o600, 1_234_567)
    assert file.ctime_ns >= before
    assert file.change_sequence > directory.change_sequence

    link = drive.symlink(directory.id, "latest", "notes.txt")
    assert link.kind == pb.NODE_KIND_SYMLINK
    assert (link.symlink_target, link.size, link.mode) == ("notes.txt", 9, 0o777)

    assert drive.lookup(root.id, "docs") == drive.stat(directory.id)
    assert drive.lookup(root.id, "docs").id == directory.id
    assert drive.lookup(directory.id, "notes.txt") == file
    assert drive.stat(link.id) == link
    assert drive.names(directory.id) == ["notes.txt", "latest"]
    unicode = drive.create(directory.id, "résumé ✓.txt")
    assert drive.lookup(directory.id, "résumé ✓.txt").id == unicode.id
    # A new file is revision 1: empty, no blocks.
    first = drive.revision(file.id)
    assert (first.number, first.size, list(first.blocks)) == (1, 0, [])
    assert (first.author_id, first.device, first.mode) == (1, DEVICE, 0o600)
    assert [r.number for r in drive.revisions(file.id)] == [1]


def test_parent_times_move_when_entries_change(drive: Drive) -> None:
    root = drive.root()
    a = drive.mkdir(root.id, "a")
    b = drive.mkdir(root.id, "b")
    times = {n: (drive.stat(n).mtime_ns, drive.stat(n).ctime_ns) for n in (a.id, b.id)}

    def moved(node: int) -> bool:
        mtime, ctime = times[node]
        now = drive.stat(node)
        times[node] = (now.mtime_ns, now.ctime_ns)
        return now.mtime_ns > mtime and now.ctime_ns > ctime

    f = drive.create(a.id, "f")
    assert moved(a.id) and not moved(b.id)
    drive.commit(f.id, 1, [10])  # content of a child is not an entry change
    assert not moved(a.id)
    drive.rename(a.id, "f", b.id, "g")
    assert moved(a.id) and moved(b.id)
    drive.rename(b.id, "g", b.id, "h")
    assert moved(b.id) and not moved(a.id)
    drive.delete(b.id, "h")
    assert moved(b.id)
    drive.symlink(a.id, "l", "x")
    assert moved(a.id)


def test_set_attributes(drive: Drive) -> None:
    root = drive.root()
    file = drive.create(root.id, "f", mode=0o644, mtime_ns=1000)
    changed = drive.set_attributes(file.id, mode=0o100600)
    assert (changed.mode, changed.mtime_ns) == (0o600, 1000)
    assert changed.ctime_ns > file.ctime_ns
    assert changed.change_sequence > file.change_sequence
    changed = drive.set_attributes(file.id, mtime_ns=5000)
    assert (changed.mode, changed.mtime_ns) == (0o600, 5000)
    changed = drive.set_attributes(file.id, mode=0o640, mtime_ns=0)
    assert (changed.mode, changed.mtime_ns) == (0o640, 0)
    unchanged = drive.set_attributes(file.id)
    assert unchanged == changed
    directory = drive.set_attributes(root.id, mode=0o700)
    assert directory.mode == 0o700 and drive.stat(root.id).mode == 0o700
    assert drive.revisions(file.id)[0].number == 1  # attributes make no revision
    expect_error(NOT_FOUND, "not-found", drive.set_attributes, 999_999, mode=0o600)


# -- revisions ---------------------------------------------------------------------------------


def test_commit_revision_and_read_revisions(drive: Drive) -> None:
    root = drive.root()
    file = drive.create(root.id, "data.bin")
    before = time.time_ns()
    second = drive.commit(file.id, 1, [4096, 4096, 100], mtime_ns=777)
    assert (second.revision, second.size, second.mtime_ns) == (2, 8292, 777)
    assert second.ctime_ns >= before
    third = drive.commit(file.id, 2, [50], first_hash=9)
    assert (third.revision, third.size) == (3, 50)
    assert before <= third.mtime_ns <= time.time_ns()  # mtime 0 = server time
    assert drive.stat(file.id) == third

    current = drive.revision(file.id)  # 0 = current
    assert (current.node_id, current.number, current.size) == (file.id, 3, 50)
    assert [(b.hash, b.offset, b.size) for b in current.blocks] == [(h(9), 0, 50)]
    old = drive.revision(file.id, 2)
    assert [(b.hash, b.offset, b.size) for b in old.blocks] == [
        (h(1), 0, 4096),
        (h(2), 4096, 4096),
        (h(3), 8192, 100),
    ]
    assert (old.mtime_ns, old.author_id, old.device) == (777, 1, DEVICE)
    listed = drive.revisions(file.id)
    # The empty revision 1 of CreateFile gave way to the first content.
    assert [(r.number, r.size) for r in listed] == [(3, 50), (2, 8292)]
    assert all(len(r.blocks) == 0 for r in listed)
    # Emptying a file is a revision without blocks.
    empty = drive.commit_blocks(file.id, 3, 0, [])
    assert (empty.revision, empty.size) == (4, 0)
    expect_error(NOT_FOUND, "not-found", drive.revision, file.id, 5)


def test_stale_base_revision_is_aborted_with_the_current_revision(drive: Drive) -> None:
    root = drive.root()
    file = drive.create(root.id, "f")
    drive.commit(file.id, 1, [10])
    drive.commit(file.id, 2, [20])
    for stale in (1, 2, 7):
        error = expect_error(ABORTED, None, drive.commit, file.id, stale, [5])
        trailing = dict(error.trailing_metadata())
        assert trailing[CURRENT_REVISION_KEY] == "3"
        assert "3" in error.details() and str(stale) in error.details()
    assert drive.stat(file.id).revision == 3
    assert drive.commit(file.id, 3, [5]).revision == 4


@pytest.mark.parametrize(
    ("size", "blocks"),
    [
        (10, [(1, 9)]),  # does not start at 0
        (10, [(0, 4), (5, 5)]),  # gap
        (10, [(0, 6), (5, 5)]),  # overlap
        (10, [(0, 4)]),  # sizes sum short of the size
        (3, [(0, 4)]),  # sizes sum past the size
        (0, [(0, 0)]),  # empty block
    ],
)
def test_commit_with_bad_blocks_is_invalid(
    drive: Drive, size: int, blocks: list[tuple[int, int]]
) -> None:
    file = drive.create(drive.root().id, "f")
    refs = [pb.BlockRef(hash=h(i), offset=o, size=s) for i, (o, s) in enumerate(blocks)]
    expect_error(INVALID_ARGUMENT, "invalid-blocks", drive.commit_blocks, file.id, 1, size, refs)
    assert drive.stat(file.id).revision == 1


def test_commit_with_a_short_hash_is_invalid(drive: Drive) -> None:
    file = drive.create(drive.root().id, "f")
    refs = [pb.BlockRef(hash=b"\x01" * 31, offset=0, size=4)]
    expect_error(INVALID_ARGUMENT, "invalid-blocks", drive.commit_blocks, file.id, 1, 4, refs)


def test_revisions_of_non_files(drive: Drive) -> None:
    root = drive.root()
    directory = drive.mkdir(root.id, "d")
    link = drive.symlink(root.id, "l", "d")
    expect_error(FAILED_PRECONDITION, "is-a-directory", drive.commit, directory.id, 0, [1])
    expect_error(FAILED_PRECONDITION, "not-a-file", drive.commit, link.id, 0, [1])
    expect_error(FAILED_PRECONDITION, "is-a-directory", drive.revision, directory.id)
    expect_error(FAILED_PRECONDITION, "not-a-file", drive.revisions, link.id)
    expect_error(NOT_FOUND, "not-found", drive.commit, 999_999, 1, [1])


# -- error mapping -----------------------------------------------------------------------------


def test_not_found(drive: Drive) -> None:
    root = drive.root()
    d = drive.mkdir(root.id, "d")
    f = drive.create(root.id, "f")
    drive.delete(root.id, "f")
    for node in (999_999, f.id):  # unknown, deleted
        expect_error(NOT_FOUND, "not-found", drive.stat, node)
        expect_error(NOT_FOUND, "not-found", drive.ls, node)
        expect_error(NOT_FOUND, "not-found", drive.lookup, node, "x")
        expect_error(NOT_FOUND, "not-found", drive.create, node, "x")
        expect_error(NOT_FOUND, "not-found", drive.mkdir, node, "x")
        expect_error(NOT_FOUND, "not-found", drive.symlink, node, "x", "t")
        expect_error(NOT_FOUND, "not-found", drive.revision, node)
        expect_error(NOT_FOUND, "not-found", drive.revisions, node)
        expect_error(NOT_FOUND, "not-found", drive.rename, node, "x", root.id, "y")
        expect_error(NOT_FOUND, "not-found", drive.rename, root.id, "d", node, "y")
        expect_error(NOT_FOUND, "not-found", drive.delete, node, "x")
    expect_error(NOT_FOUND, "not-found", drive.lookup, root.id, "f")
    expect_error(NOT_FOUND, "not-found", drive.lookup, d.id, "nothing")
    expect_error(NOT_FOUND, "not-found", drive.delete, root.id, "f")
    expect_error(NOT_FOUND, "not-found", drive.rename, root.id, "f", d.id, "g")


def test_already_exists(drive: Drive) -> None:
    root = drive.root()
    drive.mkdir(root.id, "dir")
    drive.create(root.id, "file")
    drive.symlink(root.id, "link", "file")
    for taken in ("dir", "file", "link"):
        expect_error(ALREADY_EXISTS, "already-exists", drive.mkdir, root.id, taken)
        expect_error(ALREADY_EXISTS, "already-exists", drive.create, root.id, taken)
        expect_error(ALREADY_EXISTS, "already-exists", drive.symlink, root.id, taken, "t")
    expect_error(
        ALREADY_EXISTS, "already-exists", drive.rename, root.id, "file", root.id, "link", True
    )
    assert drive.names(root.id) == ["dir", "file", "link"]


BAD_NAMES = [
    ("", "invalid-name"),
    (".", "invalid-name"),
    ("..", "invalid-name"),
    ("a/b", "invalid-name"),
    ("a\0b", "invalid-name"),
    ("x" * 256, "name-too-long"),
    ("é" * 128, "name-too-long"),  # 256 bytes of UTF-8
    ("\U0010feff" * 256, "name-too-long"),  # 256 raw bytes (protos.names)
    ("caf\U0010fec3\U0010fea9", "invalid-name"),  # "café" spelled as escapes
]


@pytest.mark.parametrize(("name", "reason"), BAD_NAMES)
def test_bad_names_are_invalid_arguments(drive: Drive, name: str, reason: str) -> None:
    root = drive.root()
    drive.create(root.id, "ok")
    expect_error(INVALID_ARGUMENT, reason, drive.mkdir, root.id, name)
    expect_error(INVALID_ARGUMENT, reason, drive.create, root.id, name)
    expect_error(INVALID_ARGUMENT, reason, drive.symlink, root.id, name, "t")
    expect_error(INVALID_ARGUMENT, reason, drive.lookup, root.id, name)
    expect_error(INVALID_ARGUMENT, reason, drive.rename, root.id, "ok", root.id, name)
    expect_error(INVALID_ARGUMENT, reason, drive.delete, root.id, name)
    assert drive.names(root.id) == ["ok"]


def test_longest_names_are_accepted(drive: Drive) -> None:
    root = drive.root()
    for name in ("x" * 255, "é" * 127 + "x", "...", "\U0010feff" * 255):
        assert drive.create(root.id, name).name == name


def test_bad_symlink_target(drive: Drive) -> None:
    root = drive.root()
    expect_error(INVALID_ARGUMENT, "invalid-target", drive.symlink, root.id, "l", "")
    expect_error(INVALID_ARGUMENT, "invalid-target", drive.symlink, root.id, "l", "a\0b")
    spelled = "\U0010fec3\U0010fea9"  # "é" as escapes: another spelling of the same bytes
    expect_error(INVALID_ARGUMENT, "invalid-target", drive.symlink, root.id, "l", spelled)


def test_not_a_directory(drive: Drive) -> None:
    root = drive.root()
    file = drive.create(root.id, "file")
    link = drive.symlink(root.id, "link", "file")
    drive.mkdir(root.id, "dir")
    for node in (file.id, link.id):
        expect_error(FAILED_PRECONDITION, "not-a-directory", drive.lookup, node, "x")
        expect_error(FAILED_PRECONDITION, "not-a-directory", drive.ls, node)
        expect_error(FAILED_PRECONDITION, "not-a-directory", drive.mkdir, node, "x")
        expect_error(FAILED_PRECONDITION, "not-a-directory", drive.create, node, "x")
        expect_error(FAILED_PRECONDITION, "not-a-directory", drive.symlink, node, "x", "t")
        expect_error(
            FAILED_PRECONDITION, "not-a-directory", drive.rename, root.id, "dir", node, "x"
        )
    for name in ("file", "link"):
        expect_error(FAILED_PRECONDITION, "not-a-directory", drive.delete, root.id, name, True)
        expect_error(
            FAILED_PRECONDITION, "not-a-directory", drive.rename, root.id, "dir", root.id, name
        )
    assert drive.names(root.id) == ["file", "link", "dir"]


def test_is_a_directory(drive: Drive) -> None:
    root = drive.root()
    drive.mkdir(root.id, "dir")
    drive.create(root.id, "file")
    drive.symlink(root.id, "link", "dir")
    expect_error(FAILED_PRECONDITION, "is-a-directory", drive.delete, root.id, "dir", False)
    for name in ("file", "link"):
        expect_error(
            FAILED_PRECONDITION, "is-a-directory", drive.rename, root.id, name, root.id, "dir"
        )
    assert drive.names(root.id) == ["dir", "file", "link"]


def test_directory_not_empty(drive: Drive) -> None:
    root = drive.root()
    full = drive.mkdir(root.id, "full")
    drive.create(full.id, "inside")
    drive.mkdir(root.id, "other")
    expect_error(FAILED_PRECONDITION, "directory-not-empty", drive.delete, root.id, "full", True)
    expect_error(
        FAILED_PRECONDITION, "directory-not-empty", drive.rename, root.id, "other", root.id, "full"
    )
    assert drive.names(full.id) == ["inside"]
    assert drive.lookup(root.id, "other").name == "other"


def test_a_directory_cannot_move_into_its_own_subtree(drive: Drive) -> None:
    root = drive.root()
    a = drive.mkdir(root.id, "a")
    b = drive.mkdir(a.id, "b")
    c = drive.mkdir(b.id, "c")
    for target in (a.id, b.id, c.id):
        expect_error(FAILED_PRECONDITION, "invalid-move", drive.rename, root.id, "a", target, "x")
    expect_error(FAILED_PRECONDITION, "invalid-move", drive.rename, a.id, "b", c.id, "b")
    # Moving up, or sideways next to itself, is fine; so is a file into a sibling directory.
    assert drive.rename(b.id, "c", root.id, "c").node.parent_id == root.id
    drive.create(a.id, "f")
    assert drive.rename(a.id, "f", b.id, "f").node.parent_id == b.id


# -- rename and delete -------------------------------------------------------------------------


def test_rename_moves_a_subtree_and_keeps_ids(drive: Drive) -> None:
    root = drive.root()
    src = drive.mkdir(root.id, "src")
    dst = drive.mkdir(root.id, "dst")
    sub = drive.mkdir(src.id, "sub")
    file = drive.create(sub.id, "f")
    response = drive.rename(root.id, "src", dst.id, "moved")
    assert response.replaced_node_id == 0
    assert (response.node.id, response.node.parent_id, response.node.name) == (
        src.id,
        dst.id,
        "moved",
    )
    assert response.node.ctime_ns > src.ctime_ns
    assert drive.stat(src.id) == response.node
    assert drive.lookup(drive.lookup(dst.id, "moved").id, "sub").id == sub.id
    assert drive.lookup(sub.id, "f").id == file.id
    expect_error(NOT_FOUND, "not-found", drive.lookup, root.id, "src")
    assert drive.names(root.id) == ["dst"]


def test_a_file_renamed_over_another_is_saved_as_its_next_revision(drive: Drive) -> None:
    root = drive.root()
    new = drive.create(root.id, "new")
    drive.commit(new.id, 1, [3])
    old = drive.create(root.id, "old")
    drive.commit(old.id, 1, [100])
    response = drive.rename(root.id, "new", root.id, "old")
    assert response.saved_from == new.id and response.replaced_node_id == 0
    assert (response.node.id, response.node.name, response.node.size) == (old.id, "old", 3)
    assert response.node.revision == 3
    assert drive.lookup(root.id, "old").id == old.id  # the file keeps its id and history
    assert [r.size for r in drive.revisions(old.id)] == [3, 100]
    expect_error(NOT_FOUND, "not-found", drive.stat, new.id)
    assert drive.names(root.id) == ["old"]
    assert drive.usage().used_bytes == 3
    # A symlink replaces a file, and a file a symlink: plain moves.
    drive.symlink(root.id, "link", "old")
    response = drive.rename(root.id, "link", root.id, "old")
    assert (response.replaced_node_id, response.saved_from) == (old.id, 0)


def test_rename_a_directory_over_an_empty_directory(drive: Drive) -> None:
    root = drive.root()
    moving = drive.mkdir(root.id, "moving")
    drive.create(moving.id, "content")
    empty = drive.mkdir(root.id, "empty")
    response = drive.rename(root.id, "moving", root.id, "empty")
    assert response.replaced_node_id == empty.id
    assert drive.lookup(root.id, "empty").id == moving.id
    assert drive.names(moving.id) == ["content"]
    expect_error(NOT_FOUND, "not-found", drive.stat, empty.id)


def test_rename_onto_itself_is_a_no_op(drive: Drive, metadata_stub) -> None:
    root = drive.root()
    file = drive.create(root.id, "same")
    root_before = drive.stat(root.id)
    response = drive.rename(root.id, "same", root.id, "same")
    assert response.replaced_node_id == 0
    assert response.node == file
    assert drive.stat(file.id) == file
    assert drive.stat(root.id) == root_before
    with subscribe(metadata_stub, file.change_sequence) as events:
        events.assert_quiet(0.2)  # no journal entry either


def test_delete_and_reuse_the_name(drive: Drive) -> None:
    root = drive.root()
    file = drive.create(root.id, "name")
    assert drive.delete(root.id, "name") == file.id
    expect_error(NOT_FOUND, "not-found", drive.stat, file.id)
    again = drive.create(root.id, "name")
    assert again.id > file.id  # ids are never reused
    assert drive.delete(root.id, "name") == again.id
    directory = drive.mkdir(root.id, "name")
    assert drive.delete(root.id, "name", directory=True) == directory.id
    link = drive.symlink(root.id, "name", "target")
    assert drive.delete(root.id, "name") == link.id
    assert drive.mkdir(root.id, "name").id > link.id
    assert drive.names(root.id) == ["name"]


# -- listing and usage -------------------------------------------------------------------------


def create_many(drive: Drive, parent: int, names: list[str], window: int = 200) -> list[int]:
    """Creates files with up to `window` calls in flight (metad commits them in groups)."""
    ids: list[int] = []
    in_flight: list[grpc.Future] = []
    for name in names:
        request = pb.CreateFileRequest(parent_id=parent, name=name, mode=0o644, device=DEVICE)
        in_flight.append(drive.stub.CreateFile.future(request, timeout=60))
        if len(in_flight) >= window:
            ids.append(in_flight.pop(0).result().id)
    ids.extend(future.result().id for future in in_flight)
    return ids


def test_list_directory_pages_through_thousands_of_entries(
    drive: Drive, metadata_stub: metadata_pb2_grpc.MetadataStub
) -> None:
    root = drive.root()
    big = drive.mkdir(root.id, "big")
    drive.mkdir(root.id, "elsewhere")
    ids = create_many(drive, big.id, [f"file-{i:04d}" for i in range(2500)])
    assert len(set(ids)) == 2500

    seen: list[int] = []
    pages = []
    after = 0
    while True:
        page = drive.ls(big.id, after=after)
        pages.append(len(page.entries))
        seen.extend(entry.id for entry in page.entries)
        if not page.more:
            break
        after = page.entries[-1].id
    assert pages == [1000, 1000, 500]  # default page size
    assert seen == sorted(ids)
    whole = drive.ls(big.id, page_size=100_000)
    assert len(whole.entries) == 2500 and not whole.more  # capped at 5000
    small = drive.ls(big.id, after=seen[10], page_size=3)
    assert [e.id for e in small.entries] == seen[11:14] and small.more
    last = drive.ls(big.id, after=seen[-2], page_size=1)
    assert [e.id for e in last.entries] == [seen[-1]] and not last.more

    for name in ("file-0000", "file-1234", "file-2499"):
        drive.delete(big.id, name)
    remaining = [e.id for e in drive.ls(big.id, page_size=5000).entries]
    assert len(remaining) == 2497 and len(set(remaining)) == 2497

    # The journal backlog spans several internal batches and arrives whole, in order.
    with subscribe(metadata_stub, 0) as events:
        backlog = events.take(2505)
        events.assert_quiet(0.1)
    assert [e.sequence for e in backlog] == list(range(1, 2506))
    created = [
        e.node_id for e in backlog if e.kind == pb.CHANGE_KIND_CREATED and e.parent_id == big.id
    ]
    assert sorted(created) == sorted(ids)


def test_usage_counts_live_files(drive: Drive) -> None:
    root = drive.root()
    # The first user gets the default quota, 10 GiB.
    assert (drive.usage().used_bytes, drive.usage().node_count, drive.usage().quota_bytes) == (
        0,
        1,
        10 * 1024**3,
    )
    d = drive.mkdir(root.id, "d")
    a = drive.create(d.id, "a")
    drive.commit(a.id, 1, [1000, 24])
    b = drive.create(root.id, "b")
    drive.commit(b.id, 1, [500])
    drive.commit(b.id, 2, [200])  # only the current revision counts
    drive.symlink(root.id, "l", "a-long-target")  # symlinks use no quota
    usage = drive.usage()
    assert (usage.used_bytes, usage.node_count, usage.quota_bytes) == (1224, 5, 10 * 1024**3)
    drive.delete(root.id, "b")
    usage = drive.usage()
    assert (usage.used_bytes, usage.node_count) == (1024, 4)


# -- the change journal ------------------------------------------------------------------------


def test_subscribe_delivers_each_change_with_its_fields(
    drive: Drive, metadata_stub: metadata_pb2_grpc.MetadataStub
) -> None:
    root = drive.root()
    with subscribe(metadata_stub, 0) as events:
        before = time.time_ns()
        a = drive.mkdir(root.id, "a")
        b = drive.mkdir(root.id, "b")
        f = drive.create(a.id, "f")
        edited = drive.commit(f.id, 1, [10])
        victim = drive.symlink(b.id, "g", "x")  # (a file over a file would be a save)
        moved = drive.rename(a.id, "f", b.id, "g")
        drive.set_attributes(moved.node.id, mode=0o600)
        drive.delete(b.id, "g")
        after = time.time_ns()
        received = events.take(8)
        events.assert_quiet(0.2)

    assert [e.sequence for e in received] == list(range(1, 9))
    assert [e.kind for e in received] == [
        pb.CHANGE_KIND_CREATED,
        pb.CHANGE_KIND_CREATED,
        pb.CHANGE_KIND_CREATED,
        pb.CHANGE_KIND_EDITED,
        pb.CHANGE_KIND_CREATED,
        pb.CHANGE_KIND_MOVED,
        pb.CHANGE_KIND_ATTRIBUTES,
        pb.CHANGE_KIND_DELETED,
    ]
    for event in received:
        assert (event.actor_id, event.device) == (1, DEVICE)
        assert before <= event.time_ns <= after
    mkdir_a, _, create_f, edit_f, _, move_f, attrs_f, delete_f = received
    assert (mkdir_a.node_id, mkdir_a.node_kind, mkdir_a.parent_id, mkdir_a.name) == (
        a.id,
        pb.NODE_KIND_DIRECTORY,
        root.id,
        "a",
    )
    assert (create_f.node_id, create_f.node_kind, create_f.parent_id, create_f.name) == (
        f.id,
        pb.NODE_KIND_FILE,
        a.id,
        "f",
    )
    assert (edit_f.node_id, edit_f.revision, edit_f.parent_id, edit_f.name) == (f.id, 2, a.id, "f")
    assert edit_f.sequence == edited.change_sequence
    assert (move_f.node_id, move_f.parent_id, move_f.name) == (f.id, b.id, "g")
    assert (move_f.old_parent_id, move_f.old_name) == (a.id, "f")
    assert move_f.replaced_node_id == victim.id
    assert move_f.sequence == moved.node.change_sequence
    assert (attrs_f.node_id, attrs_f.parent_id, attrs_f.name) == (f.id, b.id, "g")
    assert (delete_f.node_id, delete_f.node_kind, delete_f.parent_id, delete_f.name) == (
        f.id,
        pb.NODE_KIND_FILE,
        b.id,
        "g",
    )
    assert (delete_f.old_parent_id, delete_f.old_name, delete_f.replaced_node_id) == (0, "", 0)


def test_subscribe_resumes_from_a_cursor_without_gap_or_duplicate(
    drive: Drive, metadata_stub: metadata_pb2_grpc.MetadataStub
) -> None:
    root = drive.root()
    for i in range(30):
        drive.mkdir(root.id, f"d{i}")
    with subscribe(metadata_stub, 12) as events:
        backlog = events.take(18)
        assert [e.sequence for e in backlog] == list(range(13, 31))
        assert [e.name for e in backlog] == [f"d{i}" for i in range(12, 30)]
        events.assert_quiet(0.2)
        live = drive.mkdir(root.id, "live")
        event = events.next()
        assert (event.sequence, event.node_id, event.name) == (31, live.id, "live")
        events.assert_quiet(0.2)
    with subscribe(metadata_stub, 0) as events:
        assert [e.sequence for e in events.take(31)] == list(range(1, 32))
        events.assert_quiet(0.2)


def test_subscribe_from_beyond_the_end_waits(
    drive: Drive, metadata_stub: metadata_pb2_grpc.MetadataStub
) -> None:
    root = drive.root()
    first = drive.mkdir(root.id, "first")  # sequence 1
    with subscribe(metadata_stub, first.change_sequence + 3) as events:
        for name in ("a", "b", "c"):  # sequences 2..4
            drive.mkdir(root.id, name)
        events.assert_quiet(0.3)
        drive.mkdir(root.id, "d")
        assert events.next().sequence == 5


def test_subscribing_from_the_journal_head_gets_only_future_changes(
    drive: Drive, metadata_stub: metadata_pb2_grpc.MetadataStub
) -> None:
    assert drive.journal_head() == 0
    root = drive.root()
    for name in ("a", "b", "c"):
        last = drive.mkdir(root.id, name)
    head = drive.journal_head()
    assert head == last.change_sequence == 3
    drive.set_attributes(root.id, mode=0o700)  # a change to the root is journaled too
    assert drive.journal_head() == 4
    with subscribe(metadata_stub, drive.journal_head()) as events:
        events.assert_quiet(0.2)
        d = drive.mkdir(root.id, "d")
        event = events.next()
        assert (event.sequence, event.node_id) == (5, d.id)
    assert drive.journal_head() == 5


def test_concurrent_subscribers_each_get_everything(
    drive: Drive, metadata_stub: metadata_pb2_grpc.MetadataStub
) -> None:
    root = drive.root()
    drive.mkdir(root.id, "before")
    writers, per_writer = 4, 25
    with subscribe(metadata_stub, 0) as one, subscribe(metadata_stub, 0) as two:

        def write(w: int) -> None:
            for i in range(per_writer):
                drive.create(root.id, f"w{w}-{i}")

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        total = 1 + writers * per_writer
        first, second = one.take(total), two.take(total)
        one.assert_quiet(0.2)
        two.assert_quiet(0.0)
    assert [e.sequence for e in first] == list(range(1, total + 1))
    assert first == second
    assert {e.name for e in first} == {"before"} | {
        f"w{w}-{i}" for w in range(writers) for i in range(per_writer)
    }


def test_stopping_metad_ends_open_subscriptions_cleanly(
    metad: Daemon, drive: Drive, metadata_stub: metadata_pb2_grpc.MetadataStub
) -> None:
    drive.mkdir(drive.root().id, "x")
    with subscribe(metadata_stub, 0) as events:
        assert events.next().name == "x"
        assert metad.stop() == 0
        item = events.events.get(timeout=TIMEOUT)
        assert not isinstance(item, pb.ChangeEvent)
    # The fixture checks the log: no ERROR or Traceback at shutdown.


# -- durability and startup --------------------------------------------------------------------


def test_data_survives_a_restart(metad: Daemon, daemons, drive: Drive) -> None:
    root = drive.root()
    d = drive.mkdir(root.id, "d")
    f = drive.create(d.id, "f")
    drive.commit(f.id, 1, [7, 8])
    drive.delete(d.id, "f")
    g = drive.create(d.id, "f")
    assert metad.stop() == 0

    restarted = daemons.start("metad", metad.log_path.parent)
    with connect(restarted) as again:
        assert again.root().id == root.id
        assert again.lookup(root.id, "d").id == d.id
        assert again.lookup(d.id, "f").id == g.id
        expect_error(NOT_FOUND, "not-found", again.stat, f.id)
        # The journal continues where it was, and ids are not reused.
        h2 = again.create(d.id, "h")
        assert h2.id > g.id
        assert h2.change_sequence == g.change_sequence + 1
        with subscribe(again.stub, 0) as events:
            assert [e.sequence for e in events.take(h2.change_sequence)] == list(
                range(1, h2.change_sequence + 1)
            )


def test_every_returned_commit_survives_sigkill(metad: Daemon, daemons, drive: Drive) -> None:
    root = drive.root()
    acknowledged: list[tuple[int, int]] = []  # (node id, revision) whose RPC returned
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            i = 0
            while not stop.is_set():
                file = drive.create(root.id, f"f{i}")
                acknowledged.append((file.id, 1))
                committed = drive.commit(file.id, 1, [100 + i])
                acknowledged.append((file.id, committed.revision))
                i += 1
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                failures.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    while len(acknowledged) < 40:
        time.sleep(0.01)
    metad.kill()
    stop.set()
    thread.join(TIMEOUT)
    assert not failures

    restarted = daemons.start("metad", metad.log_path.parent)
    with connect(restarted) as again:
        for node_id, revision in acknowledged:
            assert again.stat(node_id).revision >= revision
        # The last change acknowledged may have been followed by one applied whose
        # reply was lost (a first commit replaces the empty revision 1): read what is.
        last_node, _ = acknowledged[-1]
        current = again.stat(last_node).revision
        assert again.revision(last_node, current).number == current


def run_metad(data: Path, listen: str = "127.0.0.1:0") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metad", "--data", str(data), "--listen", listen],
        capture_output=True,
        text=True,
        timeout=30,
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("metad: error:")]
    assert len(errors) == 1, result.stderr
    assert expected in errors[0]
    assert result.stderr.splitlines()[-1] == errors[0]


def test_a_second_metad_on_a_taken_port_exits_2(metad: Daemon, daemons, tmp_path: Path) -> None:
    with pytest.raises(DaemonError) as info:
        daemons.start("metad", tmp_path / "second", listen=metad.address)
    assert str(info.value).startswith(f"metad: error: cannot listen on {metad.address}")
    assert_one_error_line(run_metad(tmp_path / "third", metad.address), "cannot listen on")


@pytest.mark.skipif(
    os.environ.get("DRIVEFS_TEST_METADATA") == "postgresql",
    reason="about a SQLite file; test_metad_postgres.py refuses a newer PostgreSQL database",
)
def test_a_database_from_a_newer_metad_is_refused(daemons, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with contextlib.closing(sqlite3.connect(data / "metadata.db")) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(DaemonError, match=r"^metad: error: .*schema version 99"):
        daemons.start("metad", data)
    assert_one_error_line(run_metad(data), "schema version 99")


def test_unusable_data_directories_are_refused(metad: Daemon, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    assert_one_error_line(run_metad(not_a_dir), "cannot create data directory")
    # A second metad on the same data directory would not wake the first one's subscribers.
    assert_one_error_line(run_metad(metad.log_path.parent), "in use by another metad")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_data_directory_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "ro"
    data.mkdir(mode=0o500)
    assert_one_error_line(run_metad(data), "not writable")


def test_bad_command_lines_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "metad", "--data", "/tmp/x", "--listen", "nonsense"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "not a HOST:PORT address" in result.stderr


def test_every_rpc_of_the_contract_is_implemented() -> None:
    from metad.service import MetadataService

    service = pb.DESCRIPTOR.services_by_name["Metadata"]
    missing = [
        method.name
        for method in service.methods
        if getattr(MetadataService, method.name)
        is getattr(metadata_pb2_grpc.MetadataServicer, method.name)
    ]
    assert not missing


# -- garbage collection fence ------------------------------------------------------------------


def test_condemned_blocks_fence_commits_until_released(drive: Drive) -> None:
    root = drive.root()
    file = drive.create(root.id, "fenced")
    drive.commit(file.id, 1, [10], first_hash=40)  # refers to h(40)
    condemn = pb.CondemnBlocksRequest(hashes=[h(40), h(41)])
    assert list(drive.stub.CondemnBlocks(condemn, timeout=TIMEOUT).condemned) == [h(41)]
    listed = drive.stub.ListCondemnedBlocks(pb.ListCondemnedBlocksRequest(), timeout=TIMEOUT)
    assert list(listed.hashes) == [h(41)]
    asked = pb.ListCondemnedBlocksRequest(hashes=[h(40), h(41), h(42)])
    assert list(drive.stub.ListCondemnedBlocks(asked, timeout=TIMEOUT).hashes) == [h(41)]
    expect_error(
        FAILED_PRECONDITION, "blocks-condemned", drive.commit, file.id, 2, [10], first_hash=41
    )
    assert drive.stat(file.id).revision == 2
    drive.stub.ReleaseBlocks(pb.ReleaseBlocksRequest(hashes=[h(41)]), timeout=TIMEOUT)
    assert drive.commit(file.id, 2, [10], first_hash=41).revision == 3
    bad = pb.CondemnBlocksRequest(hashes=[b"short"])
    expect_error(INVALID_ARGUMENT, "invalid-blocks", drive.stub.CondemnBlocks, bad, timeout=TIMEOUT)
    summary = drive.stub.GetStorageSummary(pb.GetStorageSummaryRequest(), timeout=TIMEOUT)
    assert summary.referenced_blocks >= 2 and summary.logical_bytes >= 10


def test_referenced_blocks_page_through_every_hash_once(drive: Drive) -> None:
    root = drive.root()
    for i in range(5):
        file = drive.create(root.id, f"r{i}")
        drive.commit(file.id, 1, [10, 10, 10], first_hash=100 + 3 * i)
    same = drive.create(root.id, "dup")
    drive.commit(same.id, 1, [10], first_hash=100)  # deduplicated: listed once
    seen: list[bytes] = []
    after = b""
    while True:
        page = drive.stub.ListReferencedBlocks(
            pb.ListReferencedBlocksRequest(after_hash=after, page_size=4), timeout=TIMEOUT
        )
        seen += page.hashes
        if not page.more:
            break
        after = page.hashes[-1]
    assert seen == [h(n) for n in range(100, 115)]


def test_empty_trash_releases_deleted_files_blocks(drive: Drive) -> None:
    root = drive.root()
    kept = drive.create(root.id, "kept")
    drive.commit(kept.id, 1, [10], first_hash=70)
    gone = drive.create(root.id, "gone")
    drive.commit(gone.id, 1, [10, 5], first_hash=71)
    drive.stub.Delete(pb.DeleteRequest(parent_id=root.id, name="gone"), timeout=TIMEOUT)
    emptied = drive.stub.EmptyTrash(pb.EmptyTrashRequest(), timeout=TIMEOUT)
    assert (emptied.nodes, emptied.bytes) == (1, 15)
    # Now only the kept file's block is referenced: the collector may take the others.
    condemn = pb.CondemnBlocksRequest(hashes=[h(70), h(71), h(72)])
    assert list(drive.stub.CondemnBlocks(condemn, timeout=TIMEOUT).condemned) == [h(71), h(72)]
    drive.stub.ReleaseBlocks(pb.ReleaseBlocksRequest(hashes=[h(71), h(72)]), timeout=TIMEOUT)
    assert drive.stub.EmptyTrash(pb.EmptyTrashRequest(), timeout=TIMEOUT).nodes == 0
