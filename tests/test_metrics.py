"""/metrics of metad and blockd: what Prometheus reads parses, and moves with the work."""

from __future__ import annotations

import os
import socket
import urllib.request

import blake3
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fusefs.clients import BlockClient
from tests import signin
from tests.waiting import eventually


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _rpcs(samples: dict, method: str, code: str) -> float:
    return samples.get(("drive_rpc_total", (("code", code), ("method", method))), 0)


@pytest.fixture
def measured(daemons, tmp_path):
    ports = {"metad": _free_port(), "blockd": _free_port()}
    metad = daemons.start(
        "metad", tmp_path / "metad", extra_args=["--metrics", f"127.0.0.1:{ports['metad']}"]
    )
    blockd = daemons.start(
        "blockd",
        tmp_path / "blockd",
        extra_args=["--metad", metad.address, "--metrics", f"127.0.0.1:{ports['blockd']}"],
    )
    return metad, blockd, ports


def test_blockd_counts_uploads_their_bytes_and_refusals(measured) -> None:
    _, blockd, ports = measured
    before = _scrape(ports["blockd"])
    data = b"a block counted by /metrics" * 1000
    digest = blake3.blake3(data).digest()
    client = signin.block_client(blockd.address)
    try:
        client.upload(lambda: [(digest, data)])
    finally:
        client.close()
    liar = BlockClient(blockd.address, lambda: "not a token")
    try:
        with pytest.raises(Exception):  # noqa: B017 - any refusal; the count is the point
            liar.find_missing([digest])
    finally:
        liar.close()
    after = _scrape(ports["blockd"])
    upload = "/drive.v1.Blocks/UploadPacked"  # what BlockClient sends blocks with
    assert _rpcs(after, upload, "OK") == _rpcs(before, upload, "OK") + 1
    received = ("drive_received_bytes_total", ())
    assert after[received] == before.get(received, 0) + len(data)
    assert after[("drive_blocks", ())] == before[("drive_blocks", ())] + 1
    find = "/drive.v1.Blocks/FindMissing"
    assert _rpcs(after, find, grpc.StatusCode.UNAUTHENTICATED.name) >= 1
    latency = ("drive_rpc_seconds_count", (("method", upload),))
    assert after[latency] >= 1


def test_metad_counts_rpcs_and_shows_the_journal_moving(measured) -> None:
    metad, _, ports = measured
    before = _scrape(ports["metad"])
    meta = signin.metadata_client(metad.address)
    try:
        meta.create_file(meta.root().id, "counted.txt", 0o644)
    finally:
        meta.close()
    after = _scrape(ports["metad"])
    create = "/drive.v1.Metadata/CreateFile"
    assert _rpcs(after, create, "OK") == _rpcs(before, create, "OK") + 1
    sequence = ("drive_journal_sequence", ())
    assert after[sequence] > before[sequence]


def test_metad_counts_the_subscriptions_open(measured) -> None:
    metad, _, ports = measured
    subscribers = ("drive_subscribers", ())
    assert _scrape(ports["metad"])[subscribers] == 0
    meta = signin.metadata_client(metad.address)
    streams = [meta.subscribe(0) for _ in range(3)]
    try:
        eventually(lambda: _scrape(ports["metad"])[subscribers] == 3, timeout=10)
        streams.pop().cancel()
        eventually(lambda: _scrape(ports["metad"])[subscribers] == 2, timeout=10)
    finally:
        for stream in streams:
            stream.cancel()
        meta.close()
    eventually(lambda: _scrape(ports["metad"])[subscribers] == 0, timeout=10)


def test_a_mount_shows_its_backlog_what_it_sent_and_its_cache(measured, mounts) -> None:
    metad, blockd, _ = measured
    ports = {"a": _free_port(), "b": _free_port()}
    a = mounts.mount(metad, blockd, "dev-a", extra_args=["--metrics", f"127.0.0.1:{ports['a']}"])
    data = os.urandom(2 << 20)  # no block repeats: the cache holds all of it
    (a.path / "shown.bin").write_bytes(data)
    a.sync()
    sent = _scrape(ports["a"])
    assert sent[("drive_mount_sent_bytes_total", ())] >= len(data)
    assert sent[("drive_mount_pending_changes", ())] == 0
    assert sent[("drive_mount_online", ())] == 1
    b = mounts.mount(metad, blockd, "dev-b", extra_args=["--metrics", f"127.0.0.1:{ports['b']}"])
    assert (b.path / "shown.bin").read_bytes() == data
    read = _scrape(ports["b"])
    assert read[("drive_cache_loads_total", ())] >= 1
    assert read[("drive_cache_bytes", ())] >= len(data)
