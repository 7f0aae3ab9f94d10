"""Assembles a mount: clients → block cache → Vfs → FUSE operations.

Owns the mount's lifecycle: checks before mounting (clear errors for the
usual mistakes), the trio run with pyfuse3, following changes, and a clean
stop on SIGINT/SIGTERM or an external unmount that saves unsaved edits first.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pyfuse3
import trio

from fusefs import errors
from fusefs.cache import BlockCache
from fusefs.clients import BlockClient, GrantBook, MetadataClient, patience
from fusefs.models import Node
from fusefs.mount import task_stats
from fusefs.mount.follower import ChangeFollower
from fusefs.mount.journal import Journal
from fusefs.mount.namespace import Namespace
from fusefs.mount.operations import Operations
from fusefs.mount.reachability import Reachability, resting_after_failure
from fusefs.mount.replica import Replica
from fusefs.mount.synchronizer import Synchronizer
from fusefs.mount.vfs import Vfs
from fusefs.mountpoints import DEFAULT_CACHE_BYTES, MountError, check_mountpoint
from protos import metrics
from protos.runtime import quiet_garbage_collector
from protos.tls import Trust

log = logging.getLogger(__name__)

GC_YOUNG_ALLOCATIONS = 10_000  # container objects between two young collections

# A read of content not cached here waits this long for a blockd that does not answer,
# then fails (EIO): a program is not kept waiting; the synchronizer retries on its own.
BLOCKD_RETRY_SECONDS = 1.0
CONNECT_PATIENCE = 5.0  # each call of the start-up (see fusefs.clients.patience)

RPC_THREADS = 16
# The kernel's default 128 KiB readahead leaves a sequential reader waiting on
# one small request at a time; 1 MiB (about one block) lets it keep several in
# flight. Measured here: cold reads 400 -> 630 MB/s.
READAHEAD_KB = 1024
REPLICA_FILE = "replica.sqlite3"
JOURNAL_FOLDER = "journal"
REPLICA_FLUSH_SECONDS = 1.0
# A replica more changes behind the journal than this is started afresh
# rather than caught up on one change at a time.
MAX_CATCH_UP = 20_000


@dataclass(frozen=True)
class MountConfig:
    mountpoint: Path
    metad: str
    blockd: str
    cache_dir: Path
    device: str | None = None
    cache_bytes: int = DEFAULT_CACHE_BYTES
    token: Callable[[], str] | None = None  # the sign-in token of every call
    trust: Trust | None = None  # TLS to both daemons, trusting this (fusefs.cli.trust); None: plain
    metrics: str | None = None  # HOST:PORT of /metrics; None: not served


FUSE_CONF = Path("/etc/fuse.conf")


def others_may_use_mounts() -> bool:
    """Whether this process may mount with allow_other: root, or user_allow_other in fuse.conf."""
    if os.geteuid() == 0:
        return True
    try:
        lines = FUSE_CONF.read_text().splitlines()
    except OSError:
        return False
    return any(line.split("#", 1)[0].strip() == "user_allow_other" for line in lines)


@contextlib.contextmanager
def _locked_cache(cache_dir: Path) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / "lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MountError(f"cache {cache_dir} is in use by another mount") from None
        yield


def _device_name(cache_dir: Path, given: str | None) -> str:
    """The given name, or one made once per cache directory and kept."""
    if given:
        return given
    path = cache_dir / "device"
    if path.exists():
        return path.read_text().strip()
    name = f"{socket.gethostname()}-{secrets.token_hex(3)}"
    path.write_text(name + "\n")
    return name


def run_mount(config: MountConfig, on_mounted: Callable[[], None] | None = None) -> None:
    """Mounts and serves until unmounted or signalled. Raises MountError."""
    check_mountpoint(config.mountpoint)
    with _locked_cache(config.cache_dir):
        device = _device_name(config.cache_dir, config.device)
        grants = GrantBook()
        meta = MetadataClient(config.metad, device, config.token, grants, trust=config.trust)
        blocks = BlockClient(
            config.blockd, config.token, grants, trust=config.trust,
            retry_window=BLOCKD_RETRY_SECONDS,
        )  # fmt: skip
        replica = Replica(config.cache_dir / REPLICA_FILE, drive=config.metad)
        journal = Journal(config.cache_dir / JOURNAL_FOLDER)
        try:
            # A metad that accepts and does not answer is one away: start offline.
            with patience(CONNECT_PATIENCE):
                root, start, online = _connect(config, meta, blocks, replica, journal)
            staging = config.cache_dir / "staging"
            staging.mkdir(exist_ok=True)
            for leftover in staging.iterdir():
                leftover.unlink()
            parts = _Parts(meta, blocks, replica, journal, staging)
            trio.run(
                _serve, config, parts, root, start, online, on_mounted,
                instruments=task_stats.instruments(),
            )  # fmt: skip
        finally:
            journal.close()
            replica.close()
            meta.close()
            blocks.close()


def _connect(
    config: MountConfig,
    meta: MetadataClient,
    blocks: BlockClient,
    replica: Replica,
    journal: Journal,
) -> tuple[Node, int, bool]:
    """The drive's root, the journal sequence to follow from, and whether metad answered.

    Without metad, a mount that has a replica of the drive starts offline
    from it; one that never had one cannot start.
    """
    try:
        root = meta.root()
        head = meta.journal_head()
    except errors.Unavailable:
        root = replica.root()
        if root is None:
            raise MountError(f"cannot reach metad at {config.metad}") from None
        log.warning("metad at %s is unreachable: mounting offline", config.metad)
        return root, replica.cursor, False
    except errors.NotSignedIn as exc:
        raise MountError(
            f"metad at {config.metad} refused the sign-in ({exc}): run drive login"
        ) from None
    try:
        blocks.check()
    except errors.Unavailable:
        raise MountError(f"cannot reach blockd at {config.blockd}") from None
    except errors.NotSignedIn as exc:
        raise MountError(
            f"blockd at {config.blockd} refused the sign-in ({exc}): run drive login"
        ) from None
    try:
        journal.claim(f"{config.metad} user {root.owner_id}")
    except ValueError as exc:
        raise MountError(
            f"cache {config.cache_dir} belongs to another user of the drive ({exc}): "
            "mount with another --cache"
        ) from None
    start = replica.begin(root, head, MAX_CATCH_UP)
    replica.flush()
    return root, start, True


@dataclass(frozen=True)
class _Parts:
    """What a mount is made of below its file system: clients and local state."""

    meta: MetadataClient
    blocks: BlockClient
    replica: Replica
    journal: Journal
    staging: Path


async def _serve(
    config: MountConfig,
    parts: _Parts,
    root: Node,
    start: int,
    online: bool,
    on_mounted: Callable[[], None] | None,
) -> None:
    meta, blocks, replica = parts.meta, parts.blocks, parts.replica
    limiter = trio.CapacityLimiter(RPC_THREADS)
    reachability = Reachability(f"the drive at {config.metad}", up=online)
    cache = BlockCache(
        config.cache_dir,
        reachability.guard(resting_after_failure(blocks.download, BLOCKD_RETRY_SECONDS)),
        capacity_bytes=config.cache_bytes,
        limiter=limiter,
    )
    names = Namespace(meta, replica, limiter, reachability, parts.journal)
    sync = Synchronizer(meta, blocks, parts.journal, reachability, cache, limiter)
    vfs = Vfs(meta, names, parts.journal, sync, blocks, cache, root, parts.staging, limiter=limiter)
    if config.metrics:
        metrics.register(partial(_mount_metrics, parts.journal, sync, cache, reachability))
        log.info("metrics on http://%s/metrics", metrics.serve_metrics(config.metrics))
    ops = Operations(vfs)
    # nosuid, nodev: a collaborator with WRITE on a shared folder can store a setuid
    # file or a device node in it; the mount keeps them as data, never as privilege
    # (the kernel adds both itself when the mount is not root's).
    options = set(pyfuse3.default_options) | {
        "fsname=drivefs", "subtype=drivefs", "nosuid", "nodev",
    }  # fmt: skip
    if others_may_use_mounts():
        # Every user of the machine reaches the folder; the kernel checks each
        # access against the owner and mode of each node (default_permissions).
        options.add("allow_other")
    else:
        log.info(
            "only you can use this mount: other users would need user_allow_other in %s",
            FUSE_CONF,
        )
    # What start-up made (modules, the replica's nodes read into memory) lives as long
    # as the mount: kept out of the collector's full passes, which took 30-55 ms each in
    # the first seconds of a mount (a stall in stat after remount). Before the folder
    # appears: the collection itself took 20-65 ms, which the first request waited for.
    # Requests make many short-lived containers (nodes as shown, rows, replies): a young
    # pass every 700 of them made ~380 passes and 2-3 full ones (70-100 ms each, requests
    # waiting) per 10,000 entries untarred, 0.26-0.33 s of CPU; every 10,000: ~10 young
    # passes and no full one, 0.035 s (kernel-free untar of 10,000 entries).
    quiet_garbage_collector(GC_YOUNG_ALLOCATIONS)
    try:
        pyfuse3.init(ops, str(config.mountpoint), options)
    except RuntimeError as exc:
        raise MountError(f"cannot mount {config.mountpoint}: {exc}") from None
    log.info("mounted %s (metad %s, blockd %s)", config.mountpoint, config.metad, config.blockd)
    stop = _Stop(partial(_stop_waiting, parts, reachability))
    async with trio.open_nursery() as signals:
        # Signals are caught until the folder is unmounted: none kills the mount mid-save
        # (a stale mountpoint, "Transport endpoint is not connected").
        await signals.start(stop.watch)
        try:
            async with trio.open_nursery() as nursery:
                vfs.start(nursery, ops.invalidate)
                follower = ChangeFollower(meta, start, vfs.apply_change, reachability)
                nursery.start_soon(follower.run)
                nursery.start_soon(_flush_replica, replica, parts.journal, sync)
                nursery.start_soon(sync.run)
                nursery.start_soon(sync.keep_ids)
                nursery.start_soon(reachability.probe, meta.journal_head, limiter)
                nursery.start_soon(_list_root, names, root.id)
                nursery.start_soon(_stop_on_signal, vfs, stop)
                raise_readahead = partial(
                    trio.to_thread.run_sync, _raise_readahead, config.mountpoint
                )
                nursery.start_soon(raise_readahead)
                if on_mounted is not None:
                    on_mounted()
                await pyfuse3.main()
                stop.loop_ended()
                nursery.cancel_scope.cancel()
        finally:
            stop.loop_ended()
            try:
                with trio.CancelScope(shield=True):
                    await _send_before_leaving(stop, vfs, sync, parts.journal)
            finally:
                # Whatever happened above: a folder left mounted by a process gone is stale.
                pyfuse3.close(unmount=stop.requested.is_set())
                log.info("unmounted %s", config.mountpoint)
                signals.cancel_scope.cancel()


async def _send_before_leaving(stop: _Stop, vfs: Vfs, sync: Synchronizer, journal: Journal) -> None:
    """Unmounted from outside, or stopped: sends what is journaled while we may (until a
    second signal says not to wait)."""
    with stop.unless_hurried():
        async with trio.open_nursery() as sending:
            sending.start_soon(sync.run)
            sending.start_soon(vfs.take_landed)
            await vfs.commit_all()
            sending.cancel_scope.cancel()
    if stop.hurried:
        files, size = journal.totals()
        log.warning(
            "stopped without waiting for the servers: %d change(s) (%d bytes) "
            "kept in the journal for the next mount",
            files,
            size,
        )


class _Stop:
    """How signals stop a mount. The first SIGINT/SIGTERM saves open files, sends what is
    journaled and unmounts; a second one stops waiting for the servers: the mount unmounts
    at once and what is not sent stays in the journal for the next start. So does a first
    one while the mount already stops (unmounted from outside, sending on its way out)."""

    def __init__(self, stop_waiting: Callable[[], None]) -> None:
        self.requested = trio.Event()  # we end the FUSE loop ourselves (else: fusermount -u)
        self.signalled = trio.Event()
        self.hurried = False
        self._loop_ended = False
        self._stop_waiting = stop_waiting
        self._scopes: set[trio.CancelScope] = set()

    async def watch(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for _ in signals:
                if not self.signalled.is_set() and not self._loop_ended:
                    self.signalled.set()
                elif not self.hurried:
                    log.info("stopping now: not waiting for the servers any longer")
                    self._hurry()

    @contextlib.contextmanager
    def unless_hurried(self) -> Iterator[None]:
        """Runs the block until done, or until a second signal cancels it."""
        with trio.CancelScope() as scope:
            if self.hurried:
                scope.cancel()
            self._scopes.add(scope)
            try:
                yield
            finally:
                self._scopes.discard(scope)

    def loop_ended(self) -> None:
        """The FUSE loop is over: no request of a program calls a server any more."""
        if not self._loop_ended:
            self._loop_ended = True
            if self.hurried:
                self._stop_waiting()

    def _hurry(self) -> None:
        self.hurried = True
        for scope in self._scopes:
            scope.cancel()
        if self._loop_ended:
            self._stop_waiting()


def _stop_waiting(parts: _Parts, reachability: Reachability) -> None:
    """A call in a worker thread is not cancelled with its task, and waits for its server
    up to its deadline: closing the connections ends the calls still waiting (CANCELLED:
    Unavailable). Only once the FUSE loop is over; and offline first, so that nothing
    calls again on the way out (a file still to seal asks metad nothing: its quota as
    last heard)."""
    reachability.failed()
    parts.meta.close()
    parts.blocks.close()


def _mount_metrics(
    journal: Journal, sync: Synchronizer, cache: BlockCache, reachability: Reachability
) -> list[object]:
    """What the mount counts anyway, read when /metrics is asked for (another thread:
    plain reads, and the journal's totals under its lock)."""
    files, size = journal.totals()
    return [
        metrics.gauge("drive_mount_pending_changes", "changes not sent yet", files),
        metrics.gauge("drive_mount_pending_bytes", "bytes of them", size),
        metrics.counter("drive_mount_sent_bytes", "bytes sent since it began", sync.sent_bytes),
        metrics.gauge("drive_mount_online", "1 when the drive is reachable", int(reachability.up)),
        metrics.counter("drive_cache_hits", "reads served from the block cache", cache.hits),
        metrics.counter("drive_cache_loads", "blocks loaded from disk or blockd", cache.loads),
        metrics.gauge("drive_cache_bytes", "bytes in the cache folder", cache.disk_bytes),
    ]


async def _flush_replica(replica: Replica, journal: Journal, sync: Synchronizer) -> None:
    """What the replica learnt survives a crash of the mount within about a second (after
    the journal's rows of files made here: a name the replica keeps is never unknown to
    the journal after a crash; with the disk full, neither is written this time)."""
    while True:
        await trio.sleep(REPLICA_FLUSH_SECONDS)
        with contextlib.suppress(OSError):
            if journal.write_made():
                sync.wake()
            replica.flush()


def _raise_readahead(mountpoint: Path) -> None:
    """Sets the mount's readahead (needs root; a plain user keeps the default).

    Runs in a worker thread once the FUSE loop serves: the stat() below is
    answered by this very process, and only after the kernel's INIT, which
    would otherwise reset the value.
    """
    st = os.stat(mountpoint)
    device = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    try:
        Path(f"/sys/class/bdi/{device}/read_ahead_kb").write_text(f"{READAHEAD_KB}\n")
    except OSError as exc:
        log.info("readahead left at the kernel default: %s", exc)


async def _list_root(names: Namespace, root_id: int) -> None:
    """The root's entries into the replica at once: a device that loses the drive right
    after mounting still finds, reads and makes files there."""
    with contextlib.suppress(errors.DriveError):
        await names.list(root_id)


async def _stop_on_signal(vfs: Vfs, stop: _Stop) -> None:
    await stop.signalled.wait()
    log.info("stopping: saving open files")
    with stop.unless_hurried():
        await vfs.commit_all()
    stop.requested.set()
    pyfuse3.terminate()
