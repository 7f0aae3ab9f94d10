"""What the tests of metad over real gRPC share: the Drive helper, its fixture, subscriptions.

tests/test_metad_{tree,revisions,errors,journal,startup}.py talk to a metad
child process through Drive (the Metadata stub with deadlines and short
calls); test_metad_batch.py and test_metad_replicas.py use it too.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator

import grpc
import pytest

from fusefs.daemons import Daemon
from protos.drive.v1 import metadata_pb2 as pb
from protos.drive.v1 import metadata_pb2_grpc
from protos.runtime import ERROR_REASON_KEY
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


@pytest.fixture(name="drive")
def drive_fixture(metadata_stub: metadata_pb2_grpc.MetadataStub) -> Drive:
    """The `drive` fixture of the test files that import it: conftest's metad, as a Drive."""
    return Drive(metadata_stub)
