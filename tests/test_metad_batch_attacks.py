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
    listed = s.mine.ListDirectory(pb.ListDirectoryRequest(node_id=s.root), timeout=TIMEOUT)
    assert [e.name for e in listed.entries] == ["own"]
