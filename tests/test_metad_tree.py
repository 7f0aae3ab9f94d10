"""metad over real gRPC: reading the tree, renaming and deleting, listing pages and usage.

Each test talks to a metad child process on 127.0.0.1 (conftest's `metad`
fixture) with a real SQLite file, or PostgreSQL with
DRIVEFS_TEST_METADATA=postgresql; the fixture fails the test on any
unexpected WARNING/ERROR line in the daemon's log. The Drive helper and its
`drive` fixture: tests/metad_drive.py.
"""

from __future__ import annotations

import time

import grpc

from protos.drive.v1 import metadata_pb2 as pb
from protos.drive.v1 import metadata_pb2_grpc
from tests.metad_drive import (
    DEVICE,
    NOT_FOUND,
    Drive,
    drive_fixture,  # noqa: F401 - the fixture "drive"
    expect_error,
    subscribe,
)

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


def test_set_attributes_keeps_when_a_device_made_the_change(drive: Drive) -> None:
    """A chown made offline (or queued) keeps the ctime the device showed for it, so a
    stat does not change when the change arrives; a lying clock gains nothing."""
    file = drive.create(drive.root().id, "f", mode=0o644)

    def chmod(mode: int, changed_ns: int) -> pb.Node:
        request = pb.SetAttributesRequest(
            node_id=file.id, device=DEVICE, mode=mode, changed_ns=changed_ns
        )
        return drive.stub.SetAttributes(request, timeout=10)

    made = file.ctime_ns + 1_000
    assert chmod(0o600, made).ctime_ns == made  # metad's own clock is later by now
    assert chmod(0o640, 5).ctime_ns == made  # never back
    before = time.time_ns()
    future = chmod(0o644, time.time_ns() + 10**12)
    assert before <= future.ctime_ns <= time.time_ns()  # never in the future
    assert drive.stat(file.id).ctime_ns == future.ctime_ns


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
