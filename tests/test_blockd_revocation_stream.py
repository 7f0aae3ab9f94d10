"""blockd's revocation stream when metad goes silent or out of reach: grants are refused
rather than honoured on what may be out of date, and served again once the whole
state is read anew.

Through the real daemons. A SIGSTOPped metad keeps its socket accepting and answers
nothing, as a dead path (no RST) looks: only the fence channel's keepalive can end
the stream. A relay between blockd and metad cut while the devices still reach
metad is the case that matters: a grant can then be revoked without blockd hearing.
The rule itself (believed while heard, a grace after, never before) is first
checked alone, with a fed stream and a clock the test moves.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from types import SimpleNamespace

import grpc
import pytest

from blockd.fence import MetadataUnavailable
from blockd.follow import FollowedRevocations
from fusefs.models import Role
from protos.auth import UserRevocation
from protos.drive.v1 import blocks_pb2, blocks_pb2_grpc, metadata_pb2_grpc
from protos.drive.v1 import metadata_pb2 as pb
from protos.runtime import KEEPALIVE_ENV
from tests import signin
from tests.netcut import Relay
from tests.people import Person, people
from tests.waiting import eventually

TIMEOUT = 20
# Generous: what fails without keepalive is a stream that never ends (1 s pings and
# 0.5 s to answer end it in ~1.5 s, then grants are believed 1.5 s longer).
NOTICED_WITHIN = 30.0
REFUSING = r"refusing grants until metad's revocations are heard again"

# What a download by one person of one file's blocks came to.
SERVED, REFUSED, DENIED = "served", "refused for now", "denied"
Download = Callable[[], str]


class _FedStream:
    """A fence whose revocation streams the test feeds: a state, or an error that ends one."""

    def __init__(self) -> None:
        self.fed: asyncio.Queue[list[UserRevocation] | Exception] = asyncio.Queue()

    async def revocations(self) -> AsyncIterator[list[UserRevocation]]:
        while True:
            item = await self.fed.get()
            if isinstance(item, Exception):
                raise item
            yield item


async def _until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not check():
            await asyncio.sleep(0.01)


def test_revocations_are_believed_while_heard_then_for_a_while_and_never_before(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        now = [0.0]
        stream = _FedStream()
        followed = FollowedRevocations(stream, believed_after_loss=10, clock=lambda: now[0])
        follower = asyncio.create_task(followed.run())
        try:
            assert not followed.current()  # nothing heard yet
            stream.fed.put_nowait([UserRevocation(7, 0, 5, False)])
            await _until(followed.current)
            assert not followed.revocations.grant_allowed(7, 4)
            now[0] = 1000.0
            assert followed.current()  # a stream open is believed however long
            stream.fed.put_nowait(MetadataUnavailable("metad at x: UNAVAILABLE"))
            await _until(stream.fed.empty)
            await asyncio.sleep(0.01)
            now[0] = 1009.9
            assert followed.current()  # lost, but not for long
            now[0] = 1010.0
            assert not followed.current() and not followed.current()
            # Heard again (the follower retries by itself): the new state, believed.
            stream.fed.put_nowait([UserRevocation(7, 0, 9, False)])
            await _until(followed.current)
            assert not followed.revocations.grant_allowed(7, 8)
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)

    with caplog.at_level(logging.INFO, logger="blockd.follow"):
        asyncio.run(scenario())
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "refusing grants until metad's revocations are heard again (their stream broke 10 s ago)"
    ]


@pytest.fixture
def drive(daemons, tmp_path, monkeypatch: pytest.MonkeyPatch, allowed_log_patterns):
    """metad, a relay to it that a test can cut, and blockd following metad through it.

    The daemons ping every second and accept pings that often (KEEPALIVE_ENV).
    """
    allowed_log_patterns.append(REFUSING)
    monkeypatch.setenv(KEEPALIVE_ENV, "1")
    metad = daemons.start("metad", tmp_path / "metad")
    to_metad = Relay(metad.address)
    blockd = daemons.start("blockd", tmp_path / "blockd", extra_args=["--metad", to_metad.address])
    yield SimpleNamespace(metad=metad, to_metad=to_metad, blockd=blockd)
    to_metad.close()


@pytest.fixture
def pair(drive) -> Iterator[list[Person]]:
    yield from people((drive.metad, drive.blockd), "alice", "bob")


def _download(drive, person: Person, node_id: int) -> Download:
    """A download of node's blocks by person with the grants metad gives now, to repeat."""
    meta = metadata_pb2_grpc.MetadataStub(signin.channel(drive.metad.address, person.token))
    revision = meta.GetRevision(pb.GetRevisionRequest(node_id=node_id), timeout=TIMEOUT)
    request = blocks_pb2.DownloadRequest(
        hashes=[b.hash for b in revision.blocks],
        grants=[
            blocks_pb2.Grant(
                grant=b.grant,
                issued_ms=revision.grants_issued_ms,
                expires_s=revision.grants_expire_s,
            )
            for b in revision.blocks
        ],
    )
    blocks = blocks_pb2_grpc.BlocksStub(signin.channel(drive.blockd.address, person.token))

    def outcome() -> str:
        try:
            list(blocks.Download(request, timeout=TIMEOUT))
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.PERMISSION_DENIED:
                return DENIED
            if exc.code() == grpc.StatusCode.UNAVAILABLE and "try again" in exc.details():
                return REFUSED
            return f"{exc.code().name}: {exc.details()}"
        return SERVED

    return outcome


def test_a_stopped_metad_makes_blockd_refuse_grants_until_it_answers_again(drive, pair) -> None:
    alice, _ = pair
    node = alice.write("notes.bin", os.urandom(100_000))
    download = _download(drive, alice, node.id)
    assert download() == SERVED
    drive.metad.process.send_signal(signal.SIGSTOP)
    try:
        # Nothing asks metad anything: only the quiet stream's keepalive can notice.
        eventually(lambda: download() == REFUSED, NOTICED_WITHIN)
    finally:
        drive.metad.process.send_signal(signal.SIGCONT)
    eventually(lambda: download() == SERVED, timeout=TIMEOUT)
    assert "refusing grants" in drive.blockd.log_path.read_text()


def test_a_grant_revoked_while_blockd_was_cut_off_is_never_served(drive, pair, daemons) -> None:
    alice, bob = pair
    folder = alice.mkdir("shared")
    node = alice.write("shared/plan.bin", os.urandom(100_000))
    alice.meta.share(folder.id, "bob", Role.READ)
    bobs, alices = _download(drive, bob, node.id), _download(drive, alice, node.id)
    assert bobs() == alices() == SERVED

    drive.to_metad.cut()
    # The devices still reach metad: bob loses the share, and blockd cannot hear it.
    alice.meta.unshare(folder.id, "bob")
    eventually(lambda: bobs() == REFUSED, NOTICED_WITHIN)
    assert alices() == REFUSED  # nobody's grant is believed
    # A blockd started meanwhile has heard nothing, and believes nothing.
    daemons.restart(drive.blockd)
    eventually(lambda: not bobs().startswith("UNAVAILABLE"), TIMEOUT)  # (reconnected)
    assert bobs() == alices() == REFUSED

    drive.to_metad.restore()
    # From now on bob's grant is never served: refused for now, then for good.
    seen: list[str] = []
    eventually(lambda: seen.append(bobs()) or seen[-1] == DENIED, timeout=TIMEOUT)
    assert set(seen) <= {REFUSED, DENIED}
    assert alices() == SERVED
