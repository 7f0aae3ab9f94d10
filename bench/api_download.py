"""Downloading one file through the gRPC API, as another tool would, next to reading it
from a local directory, in one run.

Starts its own daemons (bench/throughput.py's Drive), writes a file through a mount,
then downloads it the way protos/API.md ("Reading a file") describes: one
GetRevision (the block list with a grant per block), then Download calls of a few
blocks each, several at once, every block checked against its BLAKE3 hash and
written at its offset. Prints MB/s for each number of parallel calls and channels.

Run as root (it mounts to write the file):

    .venv/bin/python bench/api_download.py [--size-mib 256]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from drive_runner import Drive
from figures_io import MiB, console, drop_page_cache, progress, read_file, write_file
from rich.table import Table

from fusefs.chunker import block_hash
from fusefs.clients import BlockClient, GrantBook, MetadataClient

BLOCKS_PER_CALL = 4
WAYS = ((1, 1), (4, 1), (8, 1), (8, 4))  # (calls at once, channels)


def download(drive: Drive, name: str, into: Path, calls: int, channels: int) -> float:
    """Seconds to download /name into a local file with calls Download calls at once."""
    grants = GrantBook()
    meta = MetadataClient(drive.metad.address, "bench", lambda: drive.token, grants)
    clients = [
        BlockClient(drive.blockd.address, lambda: drive.token, grants) for _ in range(channels)
    ]
    try:
        node = meta.lookup(meta.root().id, name)
        start = time.perf_counter()
        revision = meta.get_revision(node.id)
        where = {ref.hash: ref.offset for ref in revision.blocks}
        hashes = list(where)
        groups = [hashes[i : i + BLOCKS_PER_CALL] for i in range(0, len(hashes), BLOCKS_PER_CALL)]
        fd = os.open(into, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with progress() as bar, ThreadPoolExecutor(calls) as pool:
                task = bar.add_task(f"{calls} calls, {channels} channel(s)", total=revision.size)

                def fetch(numbered: tuple[int, list[bytes]]) -> None:
                    number, group = numbered
                    for h, data in clients[number % channels].download(group):
                        if block_hash(data) != h:
                            raise ValueError(f"block {h.hex()} arrived damaged")
                        os.pwrite(fd, data, where[h])
                        bar.update(task, advance=len(data))

                list(pool.map(fetch, enumerate(groups)))
        finally:
            os.close(fd)
        return time.perf_counter() - start
    finally:
        for client in clients:
            client.close()
        meta.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    args = parser.parse_args()
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="drivefs-api-"))
    drive = Drive(work, console)
    try:
        local = work / "local"
        local.mkdir()
        write_file(local / "big", size, "local write")
        drop_page_cache()
        local_seconds = read_file(local / "big", "local read (cold)")
        mnt = drive.mount("a")
        write_file(mnt / "big", size, "drive write")
        drive.unmount(mnt)
        table = Table(title=f"downloading a {args.size_mib} MiB file through the API")
        for column in ("how", "MB/s", "local read MB/s", "target"):
            table.add_column(column, justify="left" if column == "how" else "right")
        for calls, channels in WAYS:
            seconds = download(drive, "big", work / "downloaded", calls, channels)
            if (work / "downloaded").read_bytes() != (local / "big").read_bytes():
                raise SystemExit("the downloaded file differs from the one written")
            table.add_row(
                f"{calls} Download call(s) at once, {channels} channel(s)",
                f"{size / seconds / MiB:,.0f}",
                f"{size / local_seconds / MiB:,.0f}",
                "≥ 300",
            )
        console.print(table)
    finally:
        drive.close()


if __name__ == "__main__":
    main()
