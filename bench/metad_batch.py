"""Small-file creates + commits per second through metad: one RPC each vs ApplyBatch, in one run.

Starts a metad on 127.0.0.1 with a fresh database in a temporary directory
(synchronous=FULL, as always: every commit is fsynced) for each of three ways
of making `--files` small files:

    one RPC each        CreateFile then CommitRevision, one file after the other,
                        as a client replaying its journal in order would
    one RPC each, xN    the same from N threads: group commit shares fsyncs
    ApplyBatch          ReserveNodeIds once, then batches of 1,000 operations
                        (500 files: a create with a reserved id and its commit)

Files are made as bench/_metad_common.py makes them (metad_load.py too).

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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _metad_common as common
from fusefs.daemons import start_daemon
from protos import auth
from protos.drive.v1 import metadata_pb2 as pb
from protos.drive.v1 import metadata_pb2_grpc

USER_ID = 1  # the first user, made at first start
DEVICE = "bench"


class Bench:
    def __init__(self, stub: metadata_pb2_grpc.MetadataStub, key: auth.AuthKey) -> None:
        self.stub = stub
        self.key = key

    def one_file(self, folder: int, index: int) -> None:
        common.one_file(self.stub, self.key, USER_ID, folder, index, DEVICE)

    def singly(self, files: int) -> None:
        folder = common.folder(self.stub, "singly")
        for index in range(files):
            self.one_file(folder, index)

    def threaded(self, files: int, threads: int) -> None:
        folder = common.folder(self.stub, "threaded")
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda index: self.one_file(folder, index), range(files)))

    def batched(self, files: int) -> None:
        folder = common.folder(self.stub, "batched")
        request = pb.ReserveNodeIdsRequest(count=files)
        first = self.stub.ReserveNodeIds(request, timeout=common.TIMEOUT).first
        for start in range(0, files, common.FILES_PER_BATCH):
            indexes = range(start, min(start + common.FILES_PER_BATCH, files))
            common.apply_files(self.stub, self.key, USER_ID, folder, first, indexes, DEVICE)


def timed(key_path: Path, data_dir: Path, run: Callable[[Bench], None]) -> float:
    """Seconds run(bench) takes against a metad of its own (a fresh, empty database)."""
    key = auth.load_or_create_key(key_path)
    metad = start_daemon("metad", data_dir, "127.0.0.1:0", extra_args=["--auth-key", str(key_path)])
    try:
        bench = Bench(common.stub(metad.address, key_path, USER_ID, admin=True), key)
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
