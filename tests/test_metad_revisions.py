"""metad over real gRPC: a file's revisions, and the garbage collection fence on commits.

Each test talks to a metad child process on 127.0.0.1 (conftest's `metad`
fixture) with a real SQLite file, or PostgreSQL with
DRIVEFS_TEST_METADATA=postgresql; the fixture fails the test on any
unexpected WARNING/ERROR line in the daemon's log. The Drive helper and its
`drive` fixture: tests/metad_drive.py.
"""

from __future__ import annotations

import time

import pytest

from protos.drive.v1 import metadata_pb2 as pb
from protos.runtime import CURRENT_REVISION_KEY
from tests.metad_drive import (
    ABORTED,
    DEVICE,
    FAILED_PRECONDITION,
    INVALID_ARGUMENT,
    NOT_FOUND,
    TIMEOUT,
    Drive,
    drive_fixture,  # noqa: F401 - the fixture "drive"
    expect_error,
    h,
)

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
