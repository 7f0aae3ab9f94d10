"""Small-file creates + commits per second through metad: one RPC each vs ApplyBatch, in one run.

Starts a metad on 127.0.0.1 with a fresh database in a temporary directory
(synchronous=FULL, as always: every commit is fsynced) for each of three ways
of making `--files` small files:

    one RPC each        CreateFile then CommitRevision, one file after the other,
                        as a client replaying its journal in order would
    one RPC each, xN    the same from N threads: group commit shares fsyncs
    ApplyBatch          ReserveNodeIds once, then batches of 1,000 operations
                        (500 files: a create with a reserved id and its commit)

Blocks carry receipts made with the drive's key, as blockd's Upload gives
them: blockd is not involved, the figure is metad's.

    .venv/bin/python bench/metad_batch.py [--files 2000] [--threads 16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import blake3
import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fusefs.daemons import start_daemon
from protos import auth
from protos.drive.v1 import metadata_pb2 as pb
from protos.drive.v1 import metadata_pb2_grpc
from protos.runtime import create_channel

USER_ID = 1  # the first user, made at first start
TIMEOUT = 60.0
FILES_PER_BATCH = 500  # two operations each: 1,000, ApplyBatch's limit


class Bench:
    def __init__(self, stub: metadata_pb2_grpc.MetadataStub, key: auth.AuthKey) -> None:
        self.stub = stub
        self.key = key
        self.root = stub.GetRoot(pb.GetRootRequest(), timeout=TIMEOUT).id

    def folder(self, name: str) -> int:
        request = pb.MakeDirectoryRequest(parent_id=self.root, name=name, mode=0o755)
        return self.stub.MakeDirectory(request, timeout=TIMEOUT).id

    def commit(self, node_id: int, index: int) -> pb.CommitRevisionRequest:
        data = f"small file {index}\n".encode()
        digest = blake3.blake3(data).digest()
        block = pb.BlockRef(
            hash=digest,
            offset=0,
            size=len(data),
            receipt=self.key.receipt(USER_ID, digest, len(data)),
        )
        return pb.CommitRevisionRequest(
            node_id=node_id, base_revision=1, size=len(data), blocks=[block], device="bench"
        )

    def one_file(self, folder: int, index: int) -> None:
        create = pb.CreateFileRequest(parent_id=folder, name=f"f{index}", mode=0o644)
        node = self.stub.CreateFile(create, timeout=TIMEOUT)
        self.stub.CommitRevision(self.commit(node.id, index), timeout=TIMEOUT)

    def singly(self, files: int) -> None:
        folder = self.folder("singly")
        for index in range(files):
            self.one_file(folder, index)

    def threaded(self, files: int, threads: int) -> None:
        folder = self.folder("threaded")
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda index: self.one_file(folder, index), range(files)))

    def batched(self, files: int) -> None:
        folder = self.folder("batched")
        reserved = self.stub.ReserveNodeIds(pb.ReserveNodeIdsRequest(count=files), timeout=TIMEOUT)
        for start in range(0, files, FILES_PER_BATCH):
            operations = []
            for index in range(start, min(start + FILES_PER_BATCH, files)):
                node_id = reserved.first + index
                create = pb.CreateFileRequest(
                    parent_id=folder, name=f"f{index}", mode=0o644, node_id=node_id
                )
                operations.append(pb.BatchOperation(create_file=create))
                operations.append(pb.BatchOperation(commit_revision=self.commit(node_id, index)))
            reply = self.stub.ApplyBatch(
                pb.ApplyBatchRequest(operations=operations), timeout=TIMEOUT
            )
            failed = [r.message for r in reply.results if r.code]
            assert not failed, failed[:3]


def timed(key_path: Path, data_dir: Path, run: Callable[[Bench], None]) -> float:
    """Seconds run(bench) takes against a metad of its own (a fresh, empty database)."""
    key = auth.load_or_create_key(key_path)
    metad = start_daemon("metad", data_dir, "127.0.0.1:0", extra_args=["--auth-key", str(key_path)])
    try:
        token = key.token(USER_ID, admin=True, ttl_seconds=3600)
        channel = grpc.intercept_channel(
            create_channel(metad.address), auth.BearerAuth(lambda: token)
        )
        with channel:
            bench = Bench(metadata_pb2_grpc.MetadataStub(channel), key)
            started = time.perf_counter()
            run(bench)
            return time.perf_counter() - started
    finally:
        metad.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    files, threads = args.files, args.threads
    modes: list[tuple[str, Callable[[Bench], None]]] = [
        ("one RPC each", lambda bench: bench.singly(files)),
        (f"one RPC each, x{threads}", lambda bench: bench.threaded(files, threads)),
        ("ApplyBatch", lambda bench: bench.batched(files)),
    ]
    with tempfile.TemporaryDirectory(prefix="metad-batch-") as tmp:
        key_path = Path(tmp) / "auth.key"
        rows = [
            (name, timed(key_path, Path(tmp) / f"metad-{index}", run))
            for index, (name, run) in enumerate(modes)
        ]
    baseline = files / rows[0][1]
    print(f"{files} small files, each created and committed (an fsync per transaction):")
    for name, seconds in rows:
        rate = files / seconds
        print(f"  {name:<22} {rate:9.0f} files/s  {seconds:7.2f} s  x{rate / baseline:.1f}")


if __name__ == "__main__":
    main()
