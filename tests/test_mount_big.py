"""A 10 GiB file goes to the drive and back to another device in bounded memory.

Mostly holes, so it takes a minute, not an hour: what is bounded is what the
processes hold while 10 GiB pass through them (the peak RSS, VmHWM), and the
bytes read back must be the bytes written.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import blake3

GiB = 1024**3
MiB = 1024**2
SIZE = 10 * GiB
# Written data: 1 MiB of random bytes every 512 MiB, at an odd offset; the rest is holes.
STRIDE = 512 * MiB
PIECE = MiB
# What each process may hold at its peak, whatever the file size (bench/throughput.py
# reports the same bounds): a mount keeps up to 128 MiB of blocks in memory, blockd
# 256 MiB of hot blocks (--memory-cache) and the blocks of the streams in flight.
MOUNT_PEAK_MIB = 640
METAD_PEAK_MIB = 256
BLOCKD_PEAK_MIB = 768


def _pieces() -> Iterator[tuple[int, bytes]]:
    rng = random.Random(11)
    for n in range(SIZE // STRIDE):
        yield n * STRIDE + n * 4097, rng.randbytes(PIECE)


def _expected_hash() -> bytes:
    h = blake3.blake3()
    at = 0
    zeros = bytes(64 * MiB)
    for offset, data in _pieces():
        while at < offset:
            n = min(len(zeros), offset - at)
            h.update(zeros[:n])
            at += n
        h.update(data)
        at += len(data)
    while at < SIZE:
        n = min(len(zeros), SIZE - at)
        h.update(zeros[:n])
        at += n
    return h.digest()


def _read_hash(path: Path) -> bytes:
    h = blake3.blake3()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(8 * MiB):
            h.update(chunk)
    return h.digest()


def _peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


def test_a_10_gib_file_round_trips_in_bounded_memory(mounts, metad, blockd) -> None:
    a = mounts.mount(metad, blockd, "dev-a")
    path = a.path / "big.img"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for offset, data in _pieces():
            assert os.pwrite(fd, data, offset) == len(data)
        os.ftruncate(fd, SIZE)
    finally:
        os.close(fd)
    a.sync(timeout=600)

    b = mounts.mount(metad, blockd, "dev-b")
    assert (b.path / "big.img").stat().st_size == SIZE
    assert _read_hash(b.path / "big.img") == _expected_hash()

    peaks = {
        "writing mount": (_peak_mib(a.process.pid), MOUNT_PEAK_MIB),
        "reading mount": (_peak_mib(b.process.pid), MOUNT_PEAK_MIB),
        "metad": (_peak_mib(metad.process.pid), METAD_PEAK_MIB),
        "blockd": (_peak_mib(blockd.process.pid), BLOCKD_PEAK_MIB),
    }
    print({name: f"{peak:.0f} MiB" for name, (peak, _) in peaks.items()})
    over = {name: round(peak) for name, (peak, bound) in peaks.items() if peak > bound}
    assert not over, f"peak RSS over the bound (MiB): {over}"
