"""The drive's maintenance commands: gc, scrub, status, trash empty.

Each talks to running daemons through the clients, shows progress while it
works (rich), and returns the process exit code. Argument parsing stays in
cli.py.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fusefs.clients import BlockClient, MetadataClient

console = Console(stderr=True)


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def garbage_collect(blockd: str, grace_seconds: int, dry_run: bool) -> int:
    client = BlockClient(blockd)
    try:
        with _progress() as bar:
            task = bar.add_task("collecting garbage", total=None)
            last = None
            for last in client.collect_garbage(grace_seconds, dry_run):
                bar.update(task, completed=last.scanned, total=max(last.total, last.scanned))
    finally:
        client.close()
    assert last is not None and last.done
    verb = "would delete" if dry_run else "deleted"
    print(
        f"scanned {last.scanned:,} blocks, {verb} {last.deleted:,}: "
        f"{human(last.bytes_reclaimed)} reclaimed{' (dry run)' if dry_run else ''}"
    )
    return 0


def scrub(blockd: str) -> int:
    client = BlockClient(blockd)
    problems: list[tuple[bytes, str]] = []
    try:
        with _progress() as bar:
            task = bar.add_task("verifying blocks", total=None)
            last = None
            for last in client.scrub():
                bar.update(task, completed=last.checked, total=max(last.total, last.checked))
                for digest, problem in last.problems:
                    problems.append((digest, problem))
                    bar.console.print(f"block {digest.hex()}: {problem}")
    finally:
        client.close()
    assert last is not None and last.done
    print(
        f"checked {last.checked:,} stored blocks and {last.referenced_checked:,} referenced: "
        f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    )
    return 1 if problems else 0


def status(metad: str, blockd: str) -> int:
    meta = MetadataClient(metad, "drive-status")
    blocks = BlockClient(blockd)
    try:
        usage = meta.usage()
        summary = meta.storage_summary()
        stats = blocks.stats()
    finally:
        meta.close()
        blocks.close()
    quota = human(usage.quota_bytes) if usage.quota_bytes else "none"
    ratio = stats.stored_bytes / summary.referenced_bytes if summary.referenced_bytes else 0
    print(
        f"your files       {human(usage.used_bytes)} in {usage.node_count:,} entries"
        f" (quota {quota})"
    )
    print(f"all drives       {human(summary.logical_bytes)} of current file content")
    print(
        f"blocks in use    {summary.referenced_blocks:,} blocks, "
        f"{human(summary.referenced_bytes)} before compression"
    )
    print(
        f"stored           {stats.object_count:,} objects, {human(stats.stored_bytes)} "
        f"({ratio:.2f} of the referenced bytes)"
    )
    return 0


def empty_trash(metad: str) -> int:
    meta = MetadataClient(metad, "drive-trash")
    try:
        nodes, size = meta.empty_trash()
    finally:
        meta.close()
    print(
        f"trash emptied: {nodes:,} deleted files ({human(size)}) forgotten;"
        " run `drive gc` to reclaim their space"
    )
    return 0
