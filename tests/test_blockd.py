"""blockd end to end: a real daemon process, real gRPC over a socket.

Covers the Blocks API (round trip, FindMissing, dedup, verification on write
and on read, error codes), durability across restart and SIGKILL, start-up
failures, concurrency, and what the default codec makes of the data directory
(encrypted and compressed objects, the key file, rotation, hot blocks). The
backends have their own suite (test_blockd_backend.py), the codec and the keys
theirs (test_blockd_codec.py); test_blockd_s3.py runs the daemon on S3.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import stat
import string
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import blake3
import grpc
import pytest

from blockd import keys
from blockd.backends.base import Backend
from blockd.backends.codec import OVERHEAD_BYTES, CodecBackend
from blockd.backends.local import LocalBackend
from fusefs.daemons import Daemon, DaemonError
from protos.drive.v1 import blocks_pb2, blocks_pb2_grpc
from tests import signin

if TYPE_CHECKING:
    from conftest import DaemonRunner

MiB = 1024 * 1024
TIMEOUT = 30


def h(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


def blocks_of(*sizes: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for size in sizes]


def upload(stub: blocks_pb2_grpc.BlocksStub, blocks: Iterable[bytes]) -> blocks_pb2.UploadResponse:
    requests = (blocks_pb2.UploadRequest(hash=h(data), data=data) for data in blocks)
    return stub.Upload(requests, timeout=TIMEOUT)


def download(stub: blocks_pb2_grpc.BlocksStub, hashes: list[bytes]) -> list[blocks_pb2.Block]:
    return list(stub.Download(signin.download_request(hashes), timeout=TIMEOUT))


def find_missing(stub: blocks_pb2_grpc.BlocksStub, hashes: list[bytes]) -> list[bytes]:
    # With grants, as a client shows for blocks of files it may read: a true answer.
    request = blocks_pb2.FindMissingRequest(hashes=hashes, grants=signin.grants(hashes))
    reply = stub.FindMissing(request, timeout=TIMEOUT)
    return list(reply.missing)


def stats(stub: blocks_pb2_grpc.BlocksStub) -> blocks_pb2.StoreStats:
    return stub.GetStats(blocks_pb2.GetStatsRequest(), timeout=TIMEOUT)


def stored_size(*sizes: int) -> int:
    """Bytes at rest of random (incompressible) blocks of these sizes: each + the codec header."""
    return sum(size + OVERHEAD_BYTES for size in sizes)


def object_files(data_dir: Path) -> dict[str, Path]:
    """The block files on disk by name (hex hash); temp files would show up too."""
    return {p.name: p for p in (data_dir / "blocks").glob("*/*")}


@contextmanager
def connect(daemon: Daemon) -> Iterator[blocks_pb2_grpc.BlocksStub]:
    with signin.channel(daemon.address) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield blocks_pb2_grpc.BlocksStub(channel)


@pytest.fixture
def data_dir(blockd: Daemon) -> Path:
    return blockd.log_path.parent


# --- the API --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 1000, MiB, 4 * MiB, 16 * MiB], ids=lambda s: f"{s}B")
def test_upload_then_download_returns_identical_bytes(
    blocks_stub: blocks_pb2_grpc.BlocksStub, data_dir: Path, size: int
) -> None:
    (data,) = blocks_of(size, seed=size)
    reply = upload(blocks_stub, [data])
    assert (reply.blocks_received, reply.blocks_stored) == (1, 1)
    assert (reply.bytes_received, reply.bytes_stored) == (size, size)
    (block,) = download(blocks_stub, [h(data)])
    assert block.hash == h(data)
    assert block.data == data
    at_rest = object_files(data_dir)[h(data).hex()].read_bytes()
    assert len(at_rest) == stored_size(size)  # random data: stored as is, plus the header
    assert size < 16 or data[:64] not in at_rest  # (a byte or two may occur by chance)
    assert object_files(data_dir)[h(data).hex()].parent.name == h(data).hex()[:2]


def test_download_streams_in_request_order_with_repeats(
    blocks_stub: blocks_pb2_grpc.BlocksStub,
) -> None:
    blocks = blocks_of(10, 20_000, 3 * MiB, 5, 700_000)
    upload(blocks_stub, blocks)
    order = [4, 0, 2, 2, 1, 3, 0]
    got = download(blocks_stub, [h(blocks[i]) for i in order])
    assert [b.data for b in got] == [blocks[i] for i in order]
    assert [b.hash for b in got] == [h(blocks[i]) for i in order]
    assert download(blocks_stub, []) == []


def test_empty_block_is_refused(blocks_stub: blocks_pb2_grpc.BlocksStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        upload(blocks_stub, [b""])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "empty" in info.value.details()
    assert find_missing(blocks_stub, [h(b"")]) == [h(b"")]


def test_block_over_16_mib_is_refused(blocks_stub: blocks_pb2_grpc.BlocksStub) -> None:
    (data,) = blocks_of(16 * MiB + 1)
    with pytest.raises(grpc.RpcError) as info:
        upload(blocks_stub, [data])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert h(data).hex() in info.value.details()
    assert stats(blocks_stub).object_count == 0


def test_find_missing_before_and_after_upload(blocks_stub: blocks_pb2_grpc.BlocksStub) -> None:
    blocks = blocks_of(100, 200, 300, 400)
    hashes = [h(b) for b in blocks]
    assert find_missing(blocks_stub, hashes) == hashes
    upload(blocks_stub, [blocks[1], blocks[3]])
    assert find_missing(blocks_stub, hashes) == [hashes[0], hashes[2]]
    asked = [hashes[2], hashes[1], hashes[0], hashes[2]]
    assert find_missing(blocks_stub, asked) == [hashes[2], hashes[0], hashes[2]]
    assert find_missing(blocks_stub, []) == []


def test_find_missing_answers_tens_of_thousands(blocks_stub: blocks_pb2_grpc.BlocksStub) -> None:
    blocks = blocks_of(*[64] * 50, seed=7)
    upload(blocks_stub, blocks)
    held = {h(b) for b in blocks}
    asked = [h(i.to_bytes(4, "big")) for i in range(40_000)]
    asked[::800] = list(held)
    expected = [x for x in asked if x not in held]
    assert find_missing(blocks_stub, asked) == expected


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_bad_hash_length_is_invalid_argument(
    blocks_stub: blocks_pb2_grpc.BlocksStub, length: int
) -> None:
    bad = b"\x01" * length
    for call in (
        lambda: find_missing(blocks_stub, [h(b"x"), bad]),
        lambda: download(blocks_stub, [bad]),
        lambda: blocks_stub.Upload(
            iter([blocks_pb2.UploadRequest(hash=bad, data=b"x")]), timeout=TIMEOUT
        ),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "32 bytes" in info.value.details()


def test_duplicate_upload_is_stored_once(
    blocks_stub: blocks_pb2_grpc.BlocksStub, data_dir: Path
) -> None:
    a, b = blocks_of(MiB, 1000)
    # Every block is written (the answer says nothing of what was held), yet kept once.
    first = upload(blocks_stub, [a, a, b])
    assert (first.blocks_received, first.blocks_stored) == (3, 3)
    assert (first.bytes_received, first.bytes_stored) == (2 * MiB + 1000, 2 * MiB + 1000)
    second = upload(blocks_stub, [b, a])
    assert (second.blocks_received, second.blocks_stored) == (2, 2)
    assert (second.bytes_received, second.bytes_stored) == (MiB + 1000, MiB + 1000)
    s = stats(blocks_stub)
    assert (s.object_count, s.stored_bytes) == (2, stored_size(MiB, 1000))
    assert (s.blocks_received, s.bytes_received) == (5, 3 * MiB + 2000)
    assert sorted(object_files(data_dir)) == sorted([h(a).hex(), h(b).hex()])


def test_hash_mismatch_fails_the_call_and_stores_nothing_for_it(
    blocks_stub: blocks_pb2_grpc.BlocksStub, data_dir: Path
) -> None:
    # Big valid blocks still being written when the small bad one (hashed at
    # once) fails: the call must wait for them before it reports the error.
    before = blocks_of(*[2 * MiB] * 7, seed=1)
    good, evil = blocks_of(100, 100, seed=2)
    requests = [blocks_pb2.UploadRequest(hash=h(d), data=d) for d in before]
    requests.append(blocks_pb2.UploadRequest(hash=h(good), data=evil))
    with pytest.raises(grpc.RpcError) as info:
        blocks_stub.Upload(iter(requests), timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert h(good).hex() in info.value.details()
    # The blocks verified before it stay stored; neither hash of the bad one is.
    assert find_missing(blocks_stub, [h(d) for d in before]) == []
    assert find_missing(blocks_stub, [h(good), h(evil)]) == [h(good), h(evil)]
    assert set(object_files(data_dir)) == {h(d).hex() for d in before}
    assert stats(blocks_stub).object_count == len(before)


def test_download_of_unknown_hash_is_not_found_after_the_ones_before(
    blocks_stub: blocks_pb2_grpc.BlocksStub,
) -> None:
    known = blocks_of(1000, 2000, 3000)
    upload(blocks_stub, known)
    unknown = h(b"never uploaded")
    got = []
    with pytest.raises(grpc.RpcError) as info:
        for block in blocks_stub.Download(
            signin.download_request([h(known[0]), h(known[1]), unknown, h(known[2])]),
            timeout=TIMEOUT,
        ):
            got.append(block.data)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert unknown.hex() in info.value.details()
    assert got == known[:2]


@pytest.mark.parametrize(
    ("codec", "damage"),
    [("encrypted", "flip"), ("encrypted", "truncate"), ("encrypted", "empty"), ("plain", "flip")],
)
def test_corrupt_stored_object_is_data_loss_never_wrong_bytes(
    daemons: DaemonRunner,
    tmp_path: Path,
    allowed_log_patterns: list[str],
    codec: str,
    damage: str,
) -> None:
    # Encrypted, the codec's authentication catches the damage; plain, the
    # store's BLAKE3 check does. Either way: DATA_LOSS, never bytes.
    allowed_log_patterns += [
        r"ERROR blockd\.store: stored block [0-9a-f]{64} is (corrupt|unreadable)",
        r"WARNING blockd\.store: quarantined corrupt block",
    ]
    data_dir = tmp_path / "blockd"
    args = [] if codec == "encrypted" else ["--no-encryption"]
    healthy, victim = blocks_of(4096, MiB, seed=3)
    first = daemons.start("blockd", data_dir, extra_args=args)
    with connect(first) as stub:
        upload(stub, [healthy, victim])
        path = object_files(data_dir)[h(victim).hex()]
        content = bytearray(path.read_bytes())
        if damage == "flip":
            content[len(content) // 2] ^= 0x01
        elif damage == "truncate":
            del content[-1:]
        else:
            content.clear()
        path.write_bytes(content)
        # Still among the hot blocks (verified when written): served from memory, intact.
        assert [b.data for b in download(stub, [h(victim)])] == [victim]
    assert first.stop() == 0

    second = daemons.start("blockd", data_dir, extra_args=args)
    with connect(second) as stub:
        got = []
        with pytest.raises(grpc.RpcError) as info:
            for block in stub.Download(
                signin.download_request([h(healthy), h(victim)]), timeout=TIMEOUT
            ):
                got.append(block.data)
        assert info.value.code() == grpc.StatusCode.DATA_LOSS
        assert h(victim).hex() in info.value.details()
        assert got == [healthy]
        assert stats(stub).blocks_sent == 1
        # Quarantined: it counts as missing now, kept aside for inspection...
        assert find_missing(stub, [h(healthy), h(victim)]) == [h(victim)]
        assert h(victim).hex() not in object_files(data_dir)
        assert any(q.name.startswith(h(victim).hex()) for q in (data_dir / "quarantine").iterdir())
        # ...and the next upload of its content heals it.
        upload(stub, [victim])
        assert [b.data for b in download(stub, [h(victim)])] == [victim]


def test_stats_count_what_was_sent(blocks_stub: blocks_pb2_grpc.BlocksStub) -> None:
    blocks = blocks_of(100, MiB, 12345)
    upload(blocks_stub, blocks)
    download(blocks_stub, [h(blocks[1]), h(blocks[0]), h(blocks[1])])
    s = stats(blocks_stub)
    assert (s.blocks_sent, s.bytes_sent) == (3, 2 * MiB + 100)
    assert (s.object_count, s.stored_bytes) == (3, stored_size(100, MiB, 12345))


def test_many_small_blocks_in_one_stream(
    blocks_stub: blocks_pb2_grpc.BlocksStub, data_dir: Path
) -> None:
    rng = random.Random(5)
    blocks = blocks_of(*[rng.randint(1, 8192) for _ in range(200)], seed=5)
    reply = upload(blocks_stub, blocks)
    assert (reply.blocks_received, reply.blocks_stored) == (200, 200)
    assert reply.bytes_received == sum(map(len, blocks))
    assert len(object_files(data_dir)) == 200
    got = download(blocks_stub, [h(b) for b in blocks])
    assert [b.data for b in got] == blocks


def test_concurrent_uploads_from_four_threads(
    blocks_stub: blocks_pb2_grpc.BlocksStub, data_dir: Path
) -> None:
    shared = blocks_of(*[256 * 1024] * 8, seed=100)  # every thread uploads these too
    own = [blocks_of(*[256 * 1024] * 16, seed=200 + t) for t in range(4)]
    replies: list[blocks_pb2.UploadResponse] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker(t: int) -> None:
        try:
            start.wait()
            mine = own[t][:8] + shared + own[t][8:]
            replies.append(upload(blocks_stub, mine))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not errors
    unique = len(shared) + sum(len(o) for o in own)
    assert sum(r.blocks_received for r in replies) == 4 * 24
    assert sum(r.blocks_stored for r in replies) == 4 * 24  # the answers tell nothing
    s = stats(blocks_stub)
    assert (s.object_count, s.stored_bytes) == (unique, stored_size(*[256 * 1024] * unique))
    assert s.bytes_received == 4 * 24 * 256 * 1024
    assert len(object_files(data_dir)) == unique
    everything = shared + [b for o in own for b in o]
    assert [b.data for b in download(blocks_stub, [h(b) for b in everything])] == everything


def test_client_cancelling_midway_leaves_the_daemon_clean(
    blocks_stub: blocks_pb2_grpc.BlocksStub,
) -> None:
    blocks = blocks_of(*[MiB] * 12, seed=11)
    upload(blocks_stub, blocks)
    for _ in range(20):  # grpc's write-after-cancel race shows only now and then
        call = blocks_stub.Download(
            signin.download_request([h(b) for b in blocks]), timeout=TIMEOUT
        )
        assert next(call).data == blocks[0]
        call.cancel()

    sent_all = threading.Event()
    release = threading.Event()

    def requests() -> Iterator[blocks_pb2.UploadRequest]:
        for data in blocks_of(*[MiB] * 4, seed=12):
            yield blocks_pb2.UploadRequest(hash=h(data), data=data)
        sent_all.set()
        release.wait(TIMEOUT)

    upload_call = blocks_stub.Upload.future(requests(), timeout=TIMEOUT)
    assert sent_all.wait(TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while stats(blocks_stub).blocks_received < len(blocks) + 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    upload_call.cancel()
    release.set()
    assert upload_call.cancelled()
    # Still serving; the log check at teardown finds no error either.
    assert [b.data for b in download(blocks_stub, [h(blocks[-1])])] == [blocks[-1]]
    # The cancelled upload's blocks may or may not have been stored; no more.
    assert len(blocks) <= stats(blocks_stub).object_count <= len(blocks) + 4


# --- durability and start-up ------------------------------------------------------------------


def test_data_and_totals_survive_a_restart(daemons: DaemonRunner, tmp_path: Path) -> None:
    data_dir = tmp_path / "blockd"
    blocks = blocks_of(10, MiB, 3 * MiB, seed=9)
    first = daemons.start("blockd", data_dir)
    with connect(first) as stub:
        upload(stub, blocks)
    assert first.stop() == 0

    second = daemons.start("blockd", data_dir)
    with connect(second) as stub:
        s = stats(stub)
        assert (s.object_count, s.stored_bytes) == (3, stored_size(10, MiB, 3 * MiB))
        assert (s.blocks_received, s.bytes_sent) == (0, 0)  # counters restart
        assert [b.data for b in download(stub, [h(b) for b in blocks])] == blocks
    log = second.log_path.read_text()
    assert f"blockd data {data_dir}: 3 blocks, {stored_size(10, MiB, 3 * MiB)} bytes" in log


def test_every_returned_upload_survives_sigkill(daemons: DaemonRunner, tmp_path: Path) -> None:
    data_dir = tmp_path / "blockd"
    first = daemons.start("blockd", data_dir)
    uploaded: list[bytes] = []
    with connect(first) as stub:
        for n in range(8):
            batch = blocks_of(*[300_000] * 4, seed=1000 + n)
            upload(stub, batch)
            uploaded.extend(batch)
    first.kill()
    # A write cut short by a crash leaves a temp file; the next start removes it.
    stray = data_dir / "blocks" / "00" / f".00{'1' * 62}.abcdef012345.tmp"
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"half a block")

    second = daemons.start("blockd", data_dir)
    with connect(second) as stub:
        assert find_missing(stub, [h(b) for b in uploaded]) == []
        assert [b.data for b in download(stub, [h(b) for b in uploaded])] == uploaded
        assert stats(stub).object_count == len(uploaded)
    assert not stray.exists()


def test_second_blockd_on_a_taken_port_fails_with_one_line(
    daemons: DaemonRunner, blockd: Daemon, tmp_path: Path
) -> None:
    with pytest.raises(DaemonError) as info:
        daemons.start("blockd", tmp_path / "other", listen=blockd.address)
    assert str(info.value).startswith(f"blockd: error: cannot listen on {blockd.address}")
    log = (tmp_path / "other" / "blockd.log").read_text()
    assert "Traceback" not in log
    assert log.count("blockd: error:") == 1


def test_second_blockd_on_the_same_data_dir_is_refused(
    daemons: DaemonRunner, blockd: Daemon, data_dir: Path
) -> None:
    with pytest.raises(DaemonError, match=r"^blockd: error: data directory .* is in use"):
        daemons.start("blockd", data_dir)


def test_store_of_a_newer_format_is_refused(daemons: DaemonRunner, tmp_path: Path) -> None:
    data_dir = tmp_path / "blockd"
    data_dir.mkdir()
    (data_dir / "FORMAT").write_text(json.dumps({"format": "drivefs-blockd-local", "version": 9}))
    with pytest.raises(DaemonError, match=r"^blockd: error: .*format version 9"):
        daemons.start("blockd", data_dir)
    assert "Traceback" not in (data_dir / "blockd.log").read_text()


def test_unusable_data_dir_is_refused(daemons: DaemonRunner, tmp_path: Path) -> None:
    data_dir = tmp_path / "blockd"
    data_dir.mkdir()
    (data_dir / "blocks").write_text("a file where the block directory belongs")
    with pytest.raises(DaemonError, match=r"^blockd: error: cannot use data directory"):
        daemons.start("blockd", data_dir)


def test_sigterm_stops_cleanly(daemons: DaemonRunner, tmp_path: Path) -> None:
    daemon = daemons.start("blockd", tmp_path / "blockd")
    with connect(daemon) as stub:
        upload(stub, blocks_of(1000))
    assert daemon.stop() == 0
    assert not (tmp_path / "blockd" / "blockd.ready").exists()
    assert os.listdir(tmp_path / "blockd" / "blocks") != []


# --- at rest: the codec, the key file, hot blocks ---------------------------------------------

MARKER = b"drivefs-marker-5b1e0c"


def text_like(size: int, seed: int = 0, marker: bytes = b"") -> bytes:
    """Words of a made-up language (compresses about 3:1), with marker at both ends."""
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(3000)]
    body = " ".join(rng.choices(words, k=size // 5)).encode()
    return (marker + body)[: size - len(marker)] + marker


def prepare_store(data_dir: Path, *, encrypted: bool) -> bytes:
    """A data directory holding one block (and its key file), as a blockd would leave it."""
    data = b"a block stored before"

    async def main() -> None:
        backend: Backend = await LocalBackend.open(data_dir)
        try:
            if encrypted:
                backend = CodecBackend(backend, keys.create(data_dir / keys.DEFAULT_NAME))
            await backend.put(h(data).hex(), data)
        finally:
            await backend.close()

    asyncio.run(main())
    return data


def test_nothing_at_rest_is_plaintext_and_text_is_stored_smaller(
    blocks_stub: blocks_pb2_grpc.BlocksStub, data_dir: Path
) -> None:
    text = text_like(MiB, marker=MARKER)
    (noise,) = blocks_of(MiB, seed=21)
    upload(blocks_stub, [text, noise])
    assert [b.data for b in download(blocks_stub, [h(text), h(noise)])] == [text, noise]
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert MARKER not in path.read_bytes(), path
    sizes = {name: path.stat().st_size for name, path in object_files(data_dir).items()}
    assert sizes[h(text).hex()] < len(text) // 2
    assert len(noise) < sizes[h(noise).hex()] <= len(noise) + 100


def test_the_key_file_is_created_private_and_its_key_never_logged(
    blockd: Daemon, data_dir: Path
) -> None:
    path = data_dir / "keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert (doc["format"], doc["version"]) == ("drivefs-blockd-keys", 1)
    (key,) = doc["keys"]
    assert doc["current"] == key["id"]
    assert len(base64.b64decode(key["key"])) == 32
    log = blockd.log_path.read_text()
    assert f"writing with master key {key['id']}" in log
    assert key["key"] not in log


def test_after_a_key_rotation_old_and_new_blocks_read_back(
    daemons: DaemonRunner, tmp_path: Path
) -> None:
    data_dir = tmp_path / "blockd"
    old, new = blocks_of(5000, 6000, seed=31)
    first = daemons.start("blockd", data_dir)
    with connect(first) as stub:
        upload(stub, [old])
    assert first.stop() == 0

    rotate = subprocess.run(
        [sys.executable, "-m", "blockd", "rotate-key", "--data", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert rotate.returncode == 0, rotate.stderr
    doc = json.loads((data_dir / "keys.json").read_text())
    old_id, new_id = (key["id"] for key in doc["keys"])
    assert doc["current"] == new_id
    assert new_id in rotate.stdout
    assert all(key["key"] not in rotate.stdout + rotate.stderr for key in doc["keys"])

    # No hot blocks: every block below comes from disk, through its own master key.
    second = daemons.start("blockd", data_dir, extra_args=["--memory-cache", "0"])
    with connect(second) as stub:
        upload(stub, [new])
        assert [b.data for b in download(stub, [h(old), h(new), h(old)])] == [old, new, old]
    files = object_files(data_dir)
    assert files[h(old).hex()].read_bytes()[6:14].hex() == old_id  # the header's key id
    assert files[h(new).hex()].read_bytes()[6:14].hex() == new_id


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("wrong key file", r"the key file does not fit the stored objects .* lacks"),
        ("default key file gone", r"key file .*keys\.json is missing, but the store holds"),
        ("named key file missing", r"key file .*nowhere\.json not found"),
        ("key file readable by others", r"accessible by group or others \(mode 0640\)"),
        ("plain store", r"not encoded .*\(--no-encryption\)"),
    ],
)
def test_a_key_problem_at_start_is_one_line_and_exit_status_2(
    daemons: DaemonRunner, tmp_path: Path, case: str, message: str
) -> None:
    data_dir = tmp_path / "blockd"
    block = prepare_store(data_dir, encrypted=case != "plain store")
    key_file = data_dir / "keys.json"
    args: list[str] = []
    if case == "wrong key file":
        keys.create(tmp_path / "other.json")
        args = ["--key-file", str(tmp_path / "other.json")]
    elif case == "default key file gone":
        key_file.unlink()
    elif case == "named key file missing":
        args = ["--key-file", str(tmp_path / "nowhere.json")]
    elif case == "key file readable by others":
        key_file.chmod(0o640)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "blockd",
            "--data",
            str(data_dir),
            "--listen",
            "127.0.0.1:0",
            "--auth-key",
            str(signin.KEY_PATH),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 2
    assert result.stderr.count("blockd: error:") == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith("blockd: error: ")
    assert re.search(message, last), last
    assert "Traceback" not in result.stderr
    if key_file.exists():
        secret = json.loads(key_file.read_text())["keys"][0]["key"]
        assert secret not in result.stderr
    if case == "plain store":  # what the message advises works
        daemon = daemons.start("blockd", data_dir, extra_args=["--no-encryption"])
        with connect(daemon) as stub:
            assert [b.data for b in download(stub, [h(block)])] == [block]
