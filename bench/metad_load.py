"""Load on metad: commits, listings and live subscriptions, on 1 or several replicas.

Starts REPLICAS metad processes on 127.0.0.1 sharing one database (SQLite:
one replica only; PostgreSQL: `--database postgresql://...`, any number), a
shared auth key, and USERS users. Then, one phase after the other:

    commits, one RPC each   WRITERS processes, each CreateFile + CommitRevision per
                            small file, replicas taken in turn
    commits, batched        the same through ApplyBatch (500 files per call)
    edits, batched          new content for as many files made before (not timed), through
                            ApplyBatch (1,000 commits per call): the sync of edits
    listings                ListDirectory of a 500-entry folder, from every writer
    subscriptions           SUBSCRIBERS Subscribe streams (users in turn, replicas in
                            turn) while the writers commit RATE files/s in all for
                            SECONDS; each event's delay is its arrival minus the
                            server time of its change; every stream must see each
                            change of its user exactly once, in order

Prints ops/s and p50/p99 latency of each phase, next to the targets of issue 13
(>= 2,000 batched commits/s through 3 replicas; 1,000 subscribers with p99
notification delay < 1 s). Writers and subscribers are separate processes, so
the client's own GIL is not the bottleneck; on 2 cores they share the machine
with metad, as a load test here must.

    .venv/bin/python bench/metad_load.py [--database URL] [--replicas 3]
        [--files 4000] [--writers 4] [--users 100] [--subscribers 1000]
        [--rate 200] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _metad_common as common
from fusefs.daemons import Daemon, start_daemon
from protos import auth
from protos.drive.v1 import accounts_pb2, accounts_pb2_grpc, metadata_pb2_grpc
from protos.drive.v1 import metadata_pb2 as pb
from protos.runtime import CLIENT_OPTIONS, create_channel

ADMIN_ID = 1  # the first user, made at first start
TIMEOUT = common.TIMEOUT
FILES_PER_BATCH = common.FILES_PER_BATCH
DEVICE = "load"
LISTED_ENTRIES = 500
PACERS = 8  # threads of the paced writer
PHASES = ("single", "batched", "edits", "listings", "subscriptions")
console = Console(width=120)


# --- writer processes (each its own channel, made after the process started) -----------


def write_singly(address: str, key_path: str, user_id: int, tag: str, files: int) -> list[float]:
    """Latencies (s) of each create + commit pair."""
    key = auth.load_or_create_key(Path(key_path))
    stub = common.stub(address, Path(key_path), user_id)
    folder = common.folder(stub, tag)
    latencies = []
    for index in range(files):
        started = time.perf_counter()
        common.one_file(stub, key, user_id, folder, index, DEVICE)
        latencies.append(time.perf_counter() - started)
    return latencies


def write_batched(address: str, key_path: str, user_id: int, tag: str, files: int) -> list[float]:
    """Latencies (s) of each ApplyBatch call."""
    key = auth.load_or_create_key(Path(key_path))
    stub = common.stub(address, Path(key_path), user_id)
    folder = common.folder(stub, tag)
    first = stub.ReserveNodeIds(pb.ReserveNodeIdsRequest(count=files), timeout=TIMEOUT).first
    latencies = []
    for start in range(0, files, FILES_PER_BATCH):
        indexes = range(start, min(start + FILES_PER_BATCH, files))
        started = time.perf_counter()
        common.apply_files(stub, key, user_id, folder, first, indexes, DEVICE)
        latencies.append(time.perf_counter() - started)
    return latencies


def make_files(address: str, key_path: str, user_id: int, tag: str, files: int) -> int:
    """Makes files small files through ApplyBatch (not timed); the first one's id."""
    key = auth.load_or_create_key(Path(key_path))
    stub = common.stub(address, Path(key_path), user_id)
    folder = common.folder(stub, tag)
    first = stub.ReserveNodeIds(pb.ReserveNodeIdsRequest(count=files), timeout=TIMEOUT).first
    for start in range(0, files, FILES_PER_BATCH):
        indexes = range(start, min(start + FILES_PER_BATCH, files))
        common.apply_files(stub, key, user_id, folder, first, indexes, DEVICE)
    return first


def write_edits(address: str, key_path: str, user_id: int, first: int, files: int) -> list[float]:
    """Latencies (s) of each ApplyBatch giving the files make_files made (ids from first)
    new content, 2 * FILES_PER_BATCH commits per call."""
    key = auth.load_or_create_key(Path(key_path))
    stub = common.stub(address, Path(key_path), user_id)
    latencies = []
    for start in range(0, files, 2 * FILES_PER_BATCH):
        indexes = range(start, min(start + 2 * FILES_PER_BATCH, files))
        started = time.perf_counter()
        common.edit_files(stub, key, user_id, first, indexes, 2, DEVICE)
        latencies.append(time.perf_counter() - started)
    return latencies


def list_folder(address: str, key_path: str, user_id: int, tag: str, calls: int) -> list[float]:
    """Latencies (s) of listing a folder of LISTED_ENTRIES files, calls times."""
    stub = common.stub(address, Path(key_path), user_id)
    folder = common.folder(stub, tag)
    for index in range(LISTED_ENTRIES):
        stub.MakeDirectory(
            pb.MakeDirectoryRequest(parent_id=folder, name=f"d{index}", mode=0o755),
            timeout=TIMEOUT,
        )
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        page = stub.ListDirectory(
            pb.ListDirectoryRequest(node_id=folder, page_size=1000), timeout=TIMEOUT
        )
        latencies.append(time.perf_counter() - started)
        assert len(page.entries) == LISTED_ENTRIES, len(page.entries)
    return latencies


def write_paced(
    addresses: list[str], key_path: str, users: list[int], tag: str, rate: float, seconds: float
) -> dict[int, int]:
    """Commits about rate files/s for seconds, users in turn, from PACERS threads (one
    alone cannot keep a rate above 1 / its latency); files made per user."""
    shares = [users[i::PACERS] for i in range(PACERS)]
    with ThreadPoolExecutor(PACERS) as pool:
        parts = pool.map(
            lambda share: _pace(addresses, key_path, share, tag, rate / PACERS, seconds),
            [share for share in shares if share],
        )
    return {user: made for part in parts for user, made in part.items()}


def _pace(
    addresses: list[str], key_path: str, users: list[int], tag: str, rate: float, seconds: float
) -> dict[int, int]:
    key = auth.load_or_create_key(Path(key_path))
    stubs = {u: common.stub(addresses[u % len(addresses)], Path(key_path), u) for u in users}
    folders = {u: common.folder(stubs[u], tag) for u in users}
    made = dict.fromkeys(users, 0)
    started = time.perf_counter()
    index = 0
    while (now := time.perf_counter()) - started < seconds:
        due = started + index / rate
        if due > now:
            time.sleep(due - now)
        user = users[index % len(users)]
        common.one_file(stubs[user], key, user, folders[user], index, DEVICE)
        made[user] += 1
        index += 1
    return made


# --- the subscriber process -----------------------------------------------------------


def subscribe_all(
    addresses: list[str], key_path: str, users: list[int], count: int, ready, stop
) -> tuple[list[float], dict[int, list[int]], int]:
    """count streams; returns (delays s, sequences seen per stream's user, streams broken)."""
    return asyncio.run(_subscribe_all(addresses, key_path, users, count, ready, stop))


async def _subscribe_all(addresses, key_path, users, count, ready, stop):
    key = auth.load_or_create_key(Path(key_path))
    channels = [grpc.aio.insecure_channel(a, options=CLIENT_OPTIONS) for a in addresses]
    stubs = [metadata_pb2_grpc.MetadataStub(c) for c in channels]
    admin = key.token(ADMIN_ID, admin=True, ttl_seconds=3600)
    head = (
        await stubs[0].GetJournalHead(
            pb.GetJournalHeadRequest(), metadata=[(auth.AUTH_METADATA_KEY, f"Bearer {admin}")]
        )
    ).sequence
    delays: list[float] = []
    seen: dict[int, list[list[int]]] = {}
    broken = 0

    async def follow(stream_index: int) -> None:
        nonlocal broken
        user = users[stream_index % len(users)]
        mine: list[int] = []
        seen.setdefault(user, []).append(mine)
        token = key.token(user, admin=False, ttl_seconds=3600)
        call = stubs[stream_index % len(stubs)].Subscribe(
            pb.SubscribeRequest(from_sequence=head),
            metadata=[(auth.AUTH_METADATA_KEY, f"Bearer {token}")],
        )
        try:
            async for event in call:
                delays.append(time.time() - event.time_ns / 1e9)
                mine.append(event.sequence)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                broken += 1

    tasks = [asyncio.create_task(follow(i)) for i in range(count)]
    await asyncio.sleep(2.0)  # every stream open and caught up
    ready.set()
    while not stop.is_set():
        await asyncio.sleep(0.2)
    await asyncio.sleep(2.0)  # the last events arrive
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    per_user = {u: [sorted(set(s)) == s for s in streams] for u, streams in seen.items()}
    assert all(all(ok) for ok in per_user.values()), "a stream saw a change twice or out of order"
    counts = {u: [len(s) for s in streams] for u, streams in seen.items()}
    return delays, counts, broken


# --- the run ------------------------------------------------------------------------


def _cpu_seconds(daemons: list[Daemon]) -> tuple[float, float]:
    """CPU seconds (user + system, /proc/PID/stat fields 14 and 15) used so far by the
    metad daemons, and by the PostgreSQL processes this run started (its descendants
    named postgres); wall time is noisy on a shared machine, CPU time much less."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, tuple[str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()  # fields from the 3rd on
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (name, (int(fields[11]) + int(fields[12])) / tick)

    def descends(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == os.getpid():
                return True
        return False

    metad = sum(cpu.get(d.process.pid, ("", 0.0))[1] for d in daemons)
    postgres = sum(t for pid, (n, t) in cpu.items() if n == "postgres" and descends(pid))
    return metad, postgres


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _fan_out(pool, fn: Callable, args: list[tuple]) -> tuple[float, list]:
    started = time.perf_counter()
    results = pool.starmap(fn, args)
    return time.perf_counter() - started, results


def start_replicas(tmp: Path, key_path: Path, database: str, replicas: int) -> list[Daemon]:
    extra = ["--auth-key", str(key_path)] + (["--database", database] if database else [])
    return [
        start_daemon("metad", tmp / f"metad-{i}", "127.0.0.1:0", extra_args=extra)
        for i in range(replicas)
    ]


def make_users(address: str, key_path: Path, count: int) -> list[int]:
    token = auth.load_or_create_key(key_path).token(ADMIN_ID, admin=True, ttl_seconds=3600)
    channel = grpc.intercept_channel(create_channel(address), auth.BearerAuth(lambda: token))
    stub = accounts_pb2_grpc.AccountsStub(channel)
    ids = []
    for index in range(count):
        request = accounts_pb2.CreateUserRequest(name=f"load{index}", password="load-password-1")
        ids.append(stub.CreateUser(request, timeout=TIMEOUT).id)
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="", help="postgresql://... (default: SQLite)")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="start a throwaway PostgreSQL cluster (fsync on) and use it",
    )
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--files", type=int, default=4000)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"which phases to run, comma-separated (default: all of {','.join(PHASES)})",
    )
    args = parser.parse_args()
    args.phases = set(args.phases.split(","))
    if not args.phases <= set(PHASES):
        parser.error(f"--phases: choose among {', '.join(PHASES)}")
    if args.postgres:
        from tests.pgserver import running_cluster  # a dev tool's dev dependency

        with running_cluster(durable=True) as cluster:
            args.database = cluster.create_database()
            run(parser, args)
    else:
        run(parser, args)


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.replicas > 1 and not args.database:
        parser.error("several replicas share one PostgreSQL database: give --database")
    rows: list[tuple[str, str, str, str, str]] = []
    cpu_notes: list[str] = []
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="metad-load-") as tmp_name:
        tmp = Path(tmp_name)
        key_path = tmp / "auth.key"
        auth.load_or_create_key(key_path)
        with console.status(f"starting {args.replicas} metad replica(s)"):
            daemons = start_replicas(tmp, key_path, args.database, args.replicas)
        addresses = [d.address for d in daemons]
        try:
            with console.status(f"making {args.users} users"):
                users = make_users(addresses[0], key_path, args.users)
            writers = args.writers
            per_writer = args.files // writers
            jobs = [
                (addresses[i % len(addresses)], str(key_path), users[i % len(users)], f"w{i}")
                for i in range(writers)
            ]
            with spawn.Pool(writers) as pool:
                for phase, name, fn, target in (
                    ("single", "commits, one RPC each", write_singly, ""),
                    ("batched", "commits, batched", write_batched, "≥ 2,000/s (3 replicas)"),
                    ("edits", "edits, batched", write_edits, ""),
                ):
                    if phase not in args.phases:
                        continue
                    with console.status(f"{name}: {per_writer * writers} files"):
                        tagged = [(*job[:3], f"{job[3]}-{fn.__name__}", per_writer) for job in jobs]
                        if phase == "edits":  # the files to edit first, not measured
                            firsts = pool.starmap(make_files, tagged)
                            tagged = [
                                (*t[:3], first, t[4])
                                for t, first in zip(tagged, firsts, strict=True)
                            ]
                        before = _cpu_seconds(daemons)
                        seconds, latencies = _fan_out(pool, fn, tagged)
                        after = _cpu_seconds(daemons)
                    flat = [x for part in latencies for x in part]
                    files = per_writer * writers
                    rows.append(_row(name, files / seconds, "files/s", flat, target))
                    cpu_notes.append(
                        f"{name}: CPU per file: metad {1e3 * (after[0] - before[0]) / files:.2f}"
                        f" ms (all replicas), PostgreSQL {1e3 * (after[1] - before[1]) / files:.2f}"
                        " ms"
                    )
                if "listings" in args.phases:
                    with console.status("listings"):
                        tagged = [(*job[:3], f"{job[3]}-list", 200) for job in jobs]
                        seconds, latencies = _fan_out(pool, list_folder, tagged)
                    flat = [x for part in latencies for x in part]
                    rows.append(
                        _row("listings (500 entries)", len(flat) / seconds, "calls/s", flat, "")
                    )
            if "subscriptions" in args.phases:
                rows.append(_subscriptions(spawn, addresses, key_path, users, args))
        finally:
            for daemon in daemons:
                daemon.stop()
    engine = "PostgreSQL" if args.database else "SQLite"
    console.print(f"metad x{args.replicas} on {engine}, {args.writers} writer processes:")
    console.print(f"  {'phase':<34} {'rate':>16} {'p50 ms':>9} {'p99 ms':>9}  target")
    for name, rate, p50, p99, target in rows:
        console.print(f"  {name:<34} {rate:>16} {p50:>9} {p99:>9}  {target}")
    for note in cpu_notes:
        console.print(f"  {note}")


def _row(name: str, rate: float, unit: str, latencies: list[float], target: str):
    return (
        name,
        f"{rate:,.0f} {unit}",
        f"{1e3 * statistics.median(latencies):.1f}",
        f"{1e3 * _percentile(latencies, 0.99):.1f}",
        target,
    )


def _subscriptions(spawn, addresses, key_path, users, args):
    """The subscription phase: streams open, paced commits, delays and counts checked."""
    with spawn.Manager() as manager, spawn.Pool(2) as pool:
        ready, stop = manager.Event(), manager.Event()
        with console.status(f"opening {args.subscribers} subscriptions"):
            subscribed = pool.apply_async(
                subscribe_all,
                (addresses, str(key_path), users, args.subscribers, ready, stop),
            )
            ready.wait(120)
        with console.status(f"{args.rate:.0f} commits/s for {args.seconds:.0f} s, watched"):
            made = pool.apply(
                write_paced,
                (addresses, str(key_path), users, "paced", args.rate, args.seconds),
            )
            stop.set()
            delays, counts, broken = subscribed.get(120)
    # Each stream sees its user's folder made, then each file made and edited: 2 per file.
    missing = sum(
        1 for user, streams in counts.items() for got in streams if got != 1 + 2 * made.get(user, 0)
    )
    target = "p99 < 1,000 ms (1,000 streams)"
    name = f"notifications, {args.subscribers} streams"
    row = _row(name, len(delays) / args.seconds, "events/s", delays, target)
    expected = sum((1 + 2 * made.get(u, 0)) * len(streams) for u, streams in counts.items())
    console.print(
        f"subscriptions: {sum(made.values())} files committed, {expected} events due to"
        f" {args.subscribers} streams, {len(delays)} arrived"
    )
    if missing or broken:
        console.print(f"[red]{missing} stream(s) missed or repeated changes, {broken} broke")
    return row


if __name__ == "__main__":
    main()
