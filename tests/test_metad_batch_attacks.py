"""ApplyBatch and Subscribe against a lying client: every refusal, and nothing leaks.

Real metad and blockd on 127.0.0.1 (conftest's `drive`). alice is the
attacker with raw stubs; bob shares folder `r` with her to READ and folder
`w` to WRITE, and keeps `p` private. Each attack must be refused (for its
operation only), leave bob's drive as it was, and give alice nothing she
could not read before. test_metad_batch.py covers the rules a batch shares
with every client (stale commits, taken names, invisible nodes, limits);
this file covers what only a hostile one sends.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import blake3
import grpc
import pytest

from fusefs.models import Role
from protos.drive.v1 import metadata_pb2 as pb
from protos.drive.v1 import metadata_pb2_grpc
from tests import signin
from tests.people import Person, people

TIMEOUT = 30.0
OK = grpc.StatusCode.OK.value[0]
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
ALREADY_EXISTS = grpc.StatusCode.ALREADY_EXISTS.value[0]
ABORTED = grpc.StatusCode.ABORTED.value[0]
INVALID = grpc.StatusCode.INVALID_ARGUMENT.value[0]
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION.value[0]
DENIED = grpc.StatusCode.PERMISSION_DENIED.value[0]


def stub(person: Person) -> metadata_pb2_grpc.MetadataStub:
    return metadata_pb2_grpc.MetadataStub(signin.channel(person.metad, person.token))


def op(request_id: str = "", **change) -> pb.BatchOperation:
    return pb.BatchOperation(request_id=request_id, **change)


def apply(meta: metadata_pb2_grpc.MetadataStub, *operations: pb.BatchOperation) -> list:
    reply = meta.ApplyBatch(pb.ApplyBatchRequest(operations=operations), timeout=TIMEOUT)
    assert len(reply.results) == len(operations)
    return list(reply.results)


def outcomes(results: list) -> list[tuple[int, str]]:
    return [(r.code, r.reason) for r in results]


def block(data: bytes, receipt: bytes = b"") -> pb.BlockRef:
    return pb.BlockRef(hash=blake3.blake3(data).digest(), offset=0, size=len(data), receipt=receipt)


def committing(node_id: int, base: int, size: int, *blocks: pb.BlockRef) -> pb.BatchOperation:
    request = pb.CommitRevisionRequest(
        node_id=node_id, base_revision=base, size=size, blocks=blocks, device="attacker"
    )
    return op(commit_revision=request)


def mkdir(parent: int, name: str, **fields) -> pb.BatchOperation:
    return op(make_directory=pb.MakeDirectoryRequest(parent_id=parent, name=name, **fields))


def create(parent: int, name: str, **fields) -> pb.BatchOperation:
    return op(create_file=pb.CreateFileRequest(parent_id=parent, name=name, **fields))


def rename(parent: int, name: str, new_parent: int, new_name: str, **fields) -> pb.BatchOperation:
    request = pb.RenameRequest(
        parent_id=parent, name=name, new_parent_id=new_parent, new_name=new_name, **fields
    )
    return op(rename=request)


def link(node_id: int, parent: int, name: str) -> pb.BatchOperation:
    return op(link=pb.LinkRequest(node_id=node_id, new_parent_id=parent, new_name=name))


def delete(parent: int, name: str, directory: bool = False) -> pb.BatchOperation:
    return op(delete=pb.DeleteRequest(parent_id=parent, name=name, directory=directory))


@dataclass
class Scene:
    alice: Person
    bob: Person
    mine: metadata_pb2_grpc.MetadataStub  # alice's raw stub
    theirs: metadata_pb2_grpc.MetadataStub  # bob's
    root: int  # alice's root
    bobs_root: int
    r: int  # bob's folder shared with alice to read
    w: int  # bob's folder shared with alice to write
    p: int  # bob's private folder
    files: dict[str, pb.Node]  # bob's files by path: r/doc, w/doc, p/secret, w/gone
    contents: dict[str, bytes]

    def tree(self) -> dict[str, tuple[int, int, int, int]]:
        """bob's drive as he sees it: path -> (id, revision, size, mode), each entry."""
        found: dict[str, tuple[int, int, int, int]] = {}

        def walk(folder: int, prefix: str) -> None:
            listed = self.theirs.ListDirectory(
                pb.ListDirectoryRequest(node_id=folder), timeout=TIMEOUT
            )
            for entry in listed.entries:
                path = f"{prefix}{entry.name}"
                found[path] = (entry.id, entry.revision, entry.size, entry.mode)
                if entry.kind == pb.NODE_KIND_DIRECTORY:
                    walk(entry.id, f"{path}/")

        walk(self.bobs_root, "")
        return found


@pytest.fixture
def scene(drive) -> Iterator[Scene]:
    for alice, bob in people(drive, "alice", "bob"):
        theirs = stub(bob)
        bobs_root = theirs.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT).id
        folders = {name: bob.mkdir(name).id for name in ("r", "w", "p")}
        contents = {path: f"bob's {path}\n".encode() for path in ("r/doc", "w/doc", "p/secret")}
        files = {path: bob.write(path, data) for path, data in contents.items()}
        bob.write("w/gone", b"trashed\n")
        files["w/gone"] = bob.node("w/gone")
        bob.meta.delete(folders["w"], "gone", False)
        bob.meta.share(folders["r"], "alice", Role.READ)
        bob.meta.share(folders["w"], "alice", Role.WRITE)
        mine = stub(alice)
        root = mine.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT).id
        yield Scene(
            alice, bob, mine, theirs, root, bobs_root, folders["r"], folders["w"],
            folders["p"], {path: _proto(node) for path, node in files.items()}, contents,
        )  # fmt: skip


def _proto(node) -> pb.Node:
    return pb.Node(id=node.id, revision=node.revision, size=node.size)


def test_ids_that_are_not_the_callers_to_write_are_refused_one_by_one(scene: Scene) -> None:
    s = scene
    before = s.tree()
    r_doc, w_doc, secret, gone = (s.files[k] for k in ("r/doc", "w/doc", "p/secret", "w/gone"))
    own = s.mine.CreateFile(pb.CreateFileRequest(parent_id=s.root, name="own"), timeout=TIMEOUT)
    attacks = {
        # A READ share: no write of any kind through it.
        "create in a read share": (create(s.r, "planted"), DENIED),
        "mkdir in a read share": (mkdir(s.r, "planted"), DENIED),
        "commit to a read-shared file": (committing(r_doc.id, r_doc.revision, 0), DENIED),
        "chmod a read-shared file": (
            op(set_attributes=pb.SetAttributesRequest(node_id=r_doc.id, mode=0o777)),
            DENIED,
        ),
        "xattr on a read-shared file": (
            op(set_xattr=pb.SetXattrRequest(node_id=r_doc.id, name="user.x", value=b"1")),
            DENIED,
        ),
        "rename in a read share": (rename(s.r, "doc", s.r, "moved"), DENIED),
        "move out of a read share": (rename(s.r, "doc", s.w, "stolen"), DENIED),
        "move into a read share": (rename(s.w, "doc", s.r, "pushed"), DENIED),
        "delete in a read share": (delete(s.r, "doc"), DENIED),
        "hard link of a read-shared file": (link(r_doc.id, s.w, "writable"), DENIED),
        # Across drives: refused even where alice may write on both sides.
        "move from a write share to her drive": (rename(s.w, "doc", s.root, "doc"), PRECONDITION),
        "move from her drive into a write share": (rename(s.root, "own", s.w, "own"), PRECONDITION),
        "hard link into bob's drive": (link(own.id, s.w, "own"), PRECONDITION),
        "hard link of a write-shared file into her drive": (
            link(w_doc.id, s.root, "w-doc"),
            PRECONDITION,
        ),
        "swap across drives": (
            rename(s.w, "doc", s.root, "own", exchange=True),
            PRECONDITION,
        ),
        # What alice may not see at all: as if it did not exist.
        "create in a private folder": (create(s.p, "planted"), NOT_FOUND),
        "commit to a private file": (committing(secret.id, secret.revision, 0), NOT_FOUND),
        "hard link of a private file": (link(secret.id, s.w, "leaked"), NOT_FOUND),
        "create in bob's root": (create(s.bobs_root, "planted"), NOT_FOUND),
        "chmod bob's root": (
            op(set_attributes=pb.SetAttributesRequest(node_id=s.bobs_root, mode=0o777)),
            NOT_FOUND,
        ),
        # A node in the trash.
        "commit to a trashed file": (committing(gone.id, gone.revision, 0), NOT_FOUND),
        "chmod a trashed file": (
            op(set_attributes=pb.SetAttributesRequest(node_id=gone.id, mode=0o777)),
            NOT_FOUND,
        ),
        "hard link of a trashed file": (link(gone.id, s.w, "revived"), NOT_FOUND),
        # Ids that do not exist, or cannot.
        "parent 0": (create(0, "x"), NOT_FOUND),
        "negative parent": (create(-1, "x"), NOT_FOUND),
        "huge parent": (create(2**63 - 1, "x"), NOT_FOUND),
        "lowest parent": (mkdir(-(2**63), "x"), NOT_FOUND),
        "commit to a huge id": (committing(2**63 - 1, 1, 0), NOT_FOUND),
        "link of no node": (link(-5, s.root, "x"), NOT_FOUND),
        # A root has no name to rename, delete or link it by.
        "hard link of her root": (link(s.root, s.root, "loop"), PRECONDITION),
        "delete her root by an empty name": (delete(s.root, "", True), INVALID),
    }
    results = apply(s.mine, *(attack for attack, _ in attacks.values()))
    got = {what: result for what, result in zip(attacks, results, strict=True)}
    wrong = {
        what: (got[what].code, got[what].reason, got[what].message)
        for what, (_, code) in attacks.items()
        if got[what].code != code
    }
    assert wrong == {}
    assert s.tree() == before
    # A request id bob used: the log is his, alice's retry of "his" change is hers.
    planned = pb.MakeDirectoryRequest(parent_id=s.p, name="planned", request_id="rid-1")
    made = s.theirs.MakeDirectory(planned, timeout=TIMEOUT)
    copied = pb.MakeDirectoryRequest(parent_id=s.p, name="planned")
    again = op("rid-1", make_directory=copied)
    assert outcomes(apply(s.mine, again)) == [(NOT_FOUND, "not-found")]
    assert s.theirs.MakeDirectory(planned, timeout=TIMEOUT) == made
    listed = s.mine.ListDirectory(pb.ListDirectoryRequest(node_id=s.root), timeout=TIMEOUT)
    assert [e.name for e in listed.entries] == ["own"]


def reserve(meta: metadata_pb2_grpc.MetadataStub, count: int) -> range:
    reply = meta.ReserveNodeIds(pb.ReserveNodeIdsRequest(count=count), timeout=TIMEOUT)
    return range(reply.first, reply.first + reply.count)


def test_impossible_trees_and_borrowed_ids_are_refused_in_one_batch(scene: Scene) -> None:
    s = scene
    meta = s.mine
    made = {}
    for path in ("a", "a/b", "a/b/c", "x", "y"):
        made[path] = s.alice.mkdir(path).id
    a, b, c, x = made["a"], made["a/b"], made["a/b/c"], made["x"]
    ids = reserve(meta, 3)
    bobs_ids = reserve(s.theirs, 1)
    data = b"alice's own\n"
    digest = blake3.blake3(data).digest()
    s.alice.blocks.upload(lambda: [(digest, data)])
    receipt = signin.receipt(digest, len(data), s.alice.id)
    attacks = [
        # Folders into themselves: directly, by a swap, and by two moves that each look fine.
        (rename(s.root, "a", c, "a"), PRECONDITION),
        (rename(s.root, "a", a, "a"), PRECONDITION),
        (rename(s.root, "a", b, "c", exchange=True), PRECONDITION),
        (rename(s.root, "y", x, "y"), OK),
        (rename(s.root, "x", made["y"], "x"), PRECONDITION),
        # The same change twice, and a name made, removed and made again.
        (mkdir(s.root, "twice"), OK),
        (mkdir(s.root, "twice"), ALREADY_EXISTS),
        (create(s.root, "tmp"), OK),
        (delete(s.root, "tmp"), OK),
        (create(s.root, "tmp"), OK),
        # Ids: a commit to a node the batch makes only later, a reserved id used twice,
        # someone else's reserved id, an existing node's id, ids no one can reserve.
        (committing(ids[0], 1, len(data), block(data, receipt)), NOT_FOUND),
        (create(s.root, "f0", node_id=ids[0]), OK),
        (committing(ids[0], 1, len(data), block(data, receipt)), OK),
        (create(s.root, "f0-again", node_id=ids[0]), INVALID),
        (create(s.root, "bobs-id", node_id=bobs_ids[0]), INVALID),
        (create(s.root, "a-id", node_id=a), INVALID),
        (create(s.root, "negative-id", node_id=-ids[1]), INVALID),
        (create(s.root, "huge-id", node_id=2**63 - 1), INVALID),
        # A run of new files (written set-based) that uses one id for two files.
        (create(s.root, "f1", node_id=ids[1]), OK),
        (committing(ids[1], 1, len(data), block(data, receipt)), OK),
        (create(s.root, "f1-again", node_id=ids[1]), INVALID),
        (committing(ids[1], 1, len(data), block(data, receipt)), ABORTED),
        # Content into a folder; a revision from the future or the past.
        (committing(a, 0, 0), PRECONDITION),
        (committing(ids[0], 99, 0), ABORTED),
        (committing(ids[0], -1, 0), ABORTED),
    ]
    results = apply(meta, *(attack for attack, _ in attacks))
    wrong = [
        (index, result.code, result.reason, result.message)
        for index, ((_, code), result) in enumerate(zip(attacks, results, strict=True))
        if result.code != code
    ]
    assert wrong == []
    listed = meta.ListDirectory(pb.ListDirectoryRequest(node_id=s.root), timeout=TIMEOUT)
    assert sorted(e.name for e in listed.entries) == ["a", "f0", "f1", "tmp", "twice", "x"]
    assert s.alice.read(ids[0]) == s.alice.read(ids[1]) == data
    assert s.alice.node("x/y").id == made["y"]
    with pytest.raises(grpc.RpcError):  # the id bob reserved is still his to use
        meta.Stat(pb.StatRequest(node_id=bobs_ids[0]), timeout=TIMEOUT)
    made_by_bob = s.theirs.CreateFile(
        pb.CreateFileRequest(parent_id=s.bobs_root, name="his", node_id=bobs_ids[0]),
        timeout=TIMEOUT,
    )
    assert made_by_bob.id == bobs_ids[0]


def test_bad_names_and_block_lists_are_refused_and_grant_nothing(scene: Scene) -> None:
    s = scene
    meta = s.mine
    file = meta.CreateFile(pb.CreateFileRequest(parent_id=s.root, name="f"), timeout=TIMEOUT)
    secret = s.files["p/secret"]
    bobs = s.contents["p/secret"]
    shared = s.contents["r/doc"]
    mine = b"alice's bytes\n"
    digest = blake3.blake3(mine).digest()
    s.alice.blocks.upload(lambda: [(digest, mine)])
    receipt = signin.receipt(digest, len(mine), s.alice.id)
    names = {
        "": INVALID, ".": INVALID, "..": INVALID, "a/b": INVALID, "a\0b": INVALID,
        "x" * 256: INVALID, "€" * 86: INVALID,  # 258 bytes
        "\U0010fec3\U0010fea9": INVALID,  # escaped bytes that spell "é": two names for one
        "€" * 85: OK, "\U0010feff" * 255: OK,  # 255 bytes each
    }  # fmt: skip
    blocks = [
        # The declared size disagrees with the blocks.
        (committing(file.id, 1, len(mine) + 1, block(mine, receipt)), INVALID),
        (committing(file.id, 1, -1), INVALID),
        (committing(file.id, 1, 0, block(mine, receipt)), INVALID),
        (committing(file.id, 1, 0, pb.BlockRef(hash=digest, offset=0, size=0)), INVALID),
        (committing(file.id, 1, 5, pb.BlockRef(hash=digest[:31], offset=0, size=5)), INVALID),
        (committing(file.id, 1, 5, pb.BlockRef(hash=digest, offset=1, size=5)), INVALID),
        # Blocks she never uploaded: bob's private one, bare or with a receipt made out
        # to bob, to nobody, or with her own receipt for another size.
        (committing(file.id, 1, len(bobs), block(bobs)), DENIED),
        (committing(file.id, 1, len(bobs), block(bobs, signin.receipt(
            blake3.blake3(bobs).digest(), len(bobs), s.bob.id))), DENIED),
        (committing(file.id, 1, len(bobs), block(bobs, b"\0" * 32)), DENIED),
        (committing(file.id, 1, len(mine) + 1, pb.BlockRef(
            hash=digest, offset=0, size=len(mine) + 1, receipt=receipt)), DENIED),
        # One she may read (a read share) is hers to refer to, as a copy would be.
        (committing(file.id, 1, len(shared), block(shared)), OK),
    ]  # fmt: skip
    attacks = [(mkdir(s.root, name), code) for name, code in names.items()] + blocks
    results = apply(meta, *(attack for attack, _ in attacks))
    wrong = [
        (index, result.code, result.reason, result.message)
        for index, ((_, code), result) in enumerate(zip(attacks, results, strict=True))
        if result.code != code
    ]
    assert wrong == []
    assert [r.reason for r in results[-5:-1]] == ["unproven-blocks"] * 4
    # Nothing of bob's private file came with it: no revision, no grant to download it.
    revisions = meta.ListRevisions(pb.ListRevisionsRequest(node_id=file.id), timeout=TIMEOUT)
    assert [r.number for r in revisions.revisions] == [2]
    current = meta.GetRevision(pb.GetRevisionRequest(node_id=file.id), timeout=TIMEOUT)
    assert [b.hash for b in current.blocks] == [blake3.blake3(shared).digest()]
    assert s.alice.read(file.id) == shared
    for number in (0, 1, 3, 99, -1):
        with pytest.raises(grpc.RpcError) as info:
            meta.GetRevision(pb.GetRevisionRequest(node_id=secret.id, number=number))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert s.bob.read(secret.id) == bobs
    # A name that is not UTF-8 at all (the proto says string): the request is refused whole.
    raw = pb.ApplyBatchRequest(operations=[mkdir(s.root, "AAAA")]).SerializeToString()
    call = signin.channel(s.alice.metad, s.alice.token).unary_unary("/drive.v1.Metadata/ApplyBatch")
    with pytest.raises(grpc.RpcError) as info:
        call(raw.replace(b"AAAA", b"\xff/\x00."), timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    listed = meta.ListDirectory(pb.ListDirectoryRequest(node_id=s.root), timeout=TIMEOUT)
    assert sorted(e.name for e in listed.entries) == sorted(["f", "€" * 85, "\U0010feff" * 255])


class Pages:
    """A batched Subscribe read in a thread: its events, flattened, in a queue."""

    def __init__(self, meta: metadata_pb2_grpc.MetadataStub, after: int) -> None:
        self.call = meta.Subscribe(pb.SubscribeRequest(from_sequence=after, batched=True))
        self.events: queue.Queue[pb.ChangeEvent] = queue.Queue()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        try:
            for message in self.call:
                page = [message, *message.following]
                message.ClearField("following")
                for event in page:
                    self.events.put(event)
        except grpc.RpcError:
            pass

    def until(self, node_id: int) -> list[pb.ChangeEvent]:
        """The events up to the first about node_id."""
        got = [self.events.get(timeout=TIMEOUT)]
        while got[-1].node_id != node_id:
            got.append(self.events.get(timeout=TIMEOUT))
        return got

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(TIMEOUT)


def test_subscribe_shows_only_what_was_visible_when_it_happened(scene: Scene) -> None:
    """Any cursor (negative, someone else's head, the future), read live or long after,
    gives alice only the events of her drive and of bob's shares while she had them:
    not bob's private folder, not what a shared folder held before he shared it, nor
    while it was not shared; still what she saw through a share since taken back."""
    s = scene
    sub = s.bob.mkdir("w/sub")
    bob_head = s.theirs.GetJournalHead(pb.GetJournalHeadRequest(), timeout=TIMEOUT).sequence
    future = Pages(s.mine, bob_head + 50)
    old = [Pages(s.mine, after) for after in (-(2**63), 0, bob_head)]
    try:
        s.bob.write("w/new", b"seen\n")
        s.bob.write("p/hidden", b"never seen\n")
        s.bob.meta.share(sub.id, "alice", Role.READ)
        s.bob.meta.unshare(s.w, "alice")
        after = s.bob.write("w/after", b"not seen while unshared\n")
        s.bob.meta.share(s.w, "alice", Role.READ)
        s.bob.write("w/back", b"seen again\n")
        marker = s.alice.mkdir("marker")
        expected = [
            (pb.CHANGE_KIND_CREATED, "new"),
            (pb.CHANGE_KIND_EDITED, "new"),
            (pb.CHANGE_KIND_SHARED, "sub"),
            (pb.CHANGE_KIND_UNSHARED, "w"),
            (pb.CHANGE_KIND_SHARED, "w"),
            (pb.CHANGE_KIND_CREATED, "back"),
            (pb.CHANGE_KIND_EDITED, "back"),
            (pb.CHANGE_KIND_CREATED, "marker"),
        ]
        seen = {}
        for pages in (*old, late := Pages(s.mine, 0)):
            events = pages.until(marker.id)
            seen[pages] = got = [(e.kind, e.name) for e in events]
            assert (pb.CHANGE_KIND_CREATED, "hidden") not in got  # the private folder
            assert after.id not in {e.node_id for e in events}  # while unshared
            if pages is old[2]:
                assert got == expected
            else:
                # Nothing from before the shares: bob making the folders, nor the file
                # he made and deleted in one before he shared it.
                assert got == [
                    (pb.CHANGE_KIND_SHARED, "r"),
                    (pb.CHANGE_KIND_SHARED, "w"),
                    (pb.CHANGE_KIND_CREATED, "sub"),
                    *expected,
                ]
        assert seen[late] == seen[old[1]]  # read after the unshare: what she saw live
        old.append(late)
        head = s.mine.GetJournalHead
        while head(pb.GetJournalHeadRequest(), timeout=TIMEOUT).sequence < bob_head + 50:
            s.alice.mkdir(f"m{time.monotonic_ns()}")  # up to the cursor she came with: nothing
        last = s.alice.mkdir("last")
        assert [e.name for e in future.until(last.id)] == ["last"]
    finally:
        for pages in (future, *old):
            pages.close()


def moved_into_a_share(s: Scene, old_name: str) -> list[pb.ChangeEvent]:
    """alice's events from before bob made p/old_name, wrote and deleted a file in it,
    and moved it into the folder he shares with her as w/plans."""
    head = s.theirs.GetJournalHead(pb.GetJournalHeadRequest(), timeout=TIMEOUT).sequence
    plans = s.bob.mkdir(f"p/{old_name}")
    s.bob.write(f"p/{old_name}/layoffs.txt", b"private\n")
    s.bob.meta.delete(plans.id, "layoffs.txt", False)
    s.bob.write(f"p/{old_name}/agenda.txt", b"kept\n")
    s.bob.meta.rename(s.p, old_name, s.w, "plans", False)
    s.bob.write("w/plans/agenda.txt", b"kept, edited in the share\n")
    marker = s.alice.mkdir("marker")
    pages = Pages(s.mine, head)
    try:
        return pages.until(marker.id)
    finally:
        pages.close()


def test_what_moves_into_a_share_brings_no_private_history(scene: Scene) -> None:
    events = moved_into_a_share(scene, "plans")
    assert [(e.kind, e.name, e.path) for e in events] == [
        (pb.CHANGE_KIND_CREATED, "plans", "w/plans"),  # for her it appeared there
        (pb.CHANGE_KIND_EDITED, "agenda.txt", "w/plans/agenda.txt"),
        (pb.CHANGE_KIND_CREATED, "marker", "marker"),
    ]


def test_a_move_into_a_share_does_not_tell_where_it_came_from(scene: Scene) -> None:
    events = moved_into_a_share(scene, "layoffs-2027")
    assert "layoffs-2027" not in {e.old_name for e in events}
    assert scene.p not in {e.old_parent_id for e in events}


def test_a_move_out_of_a_share_does_not_tell_where_it_went(scene: Scene) -> None:
    """For alice, what bob moves from the shared folder into his private one is gone
    from where she saw it; the private folder and the new name stay his."""
    s = scene
    head = s.theirs.GetJournalHead(pb.GetJournalHeadRequest(), timeout=TIMEOUT).sequence
    report = s.bob.write("w/report", b"shared for a while\n")
    s.bob.meta.rename(s.w, "report", s.p, "report-for-the-board", False)
    marker = s.alice.mkdir("marker")
    pages = Pages(s.mine, head)
    try:
        events = pages.until(marker.id)
    finally:
        pages.close()
    gone = [e for e in events if e.node_id == report.id][-1]
    assert (gone.kind, gone.name, gone.parent_id, gone.path) == (
        pb.CHANGE_KIND_DELETED, "report", s.w, "w/report",
    )  # fmt: skip
    assert not any(
        "report-for-the-board" in (e.name, e.old_name, e.path)
        or s.p in (e.parent_id, e.old_parent_id)
        for e in events
    )


def test_what_someone_else_made_goes_to_its_owners_trash_even_named_as_a_temporary(
    scene: Scene,
) -> None:
    """The quiet trash forgets a program's temporaries (named as one, or removed right
    after they were made) when whoever made them removes them: removed by someone
    else, bob's file is his to get back."""
    s = scene
    bobs = s.bob.write("w/draft.tmp", b"bob's notes, saved as .tmp\n")
    assert outcomes(apply(s.mine, delete(s.w, "draft.tmp"))) == [(OK, "")]
    trash = s.theirs.ListTrash(pb.ListTrashRequest(), timeout=TIMEOUT)
    assert bobs.id in {e.node.id for e in trash.entries}
    s.theirs.RestoreFromTrash(pb.RestoreFromTrashRequest(node_id=bobs.id), timeout=TIMEOUT)
    assert s.bob.read(bobs.id) == b"bob's notes, saved as .tmp\n"
    # What she made herself and removes: forgotten as before.
    apply(s.mine, create(s.w, "hers.tmp"), delete(s.w, "hers.tmp"))
    trash = s.theirs.ListTrash(pb.ListTrashRequest(), timeout=TIMEOUT)
    assert "hers.tmp" not in {e.node.name for e in trash.entries}
