"""The mount's task accounting for benchmarks (fusefs/mount/task_stats.py), without a mount."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import trio

from fusefs.mount import task_stats
from fusefs.mount.task_stats import WORKERS, TaskStats


def test_a_slow_step_is_listed_with_its_task_and_start_and_workers_count_as_one(
    tmp_path: Path,
) -> None:
    """bench/remount_stat.py picks the steps inside its own window by their start on
    time.perf_counter's clock, and tells pyfuse3's workers from everything else."""
    out = tmp_path / "tasks.json"
    stats = TaskStats(str(out))

    async def busy() -> None:
        time.sleep(0.003)  # holds the thread, as a slow task would

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(busy, name="upkeep")
            for n in (1, 2):
                nursery.start_soon(trio.sleep, 0, name=f"pyfuse-{n:02d}")

    before = time.perf_counter()
    trio.run(main, instruments=[stats])
    after = time.perf_counter()
    stats.write()
    written = json.loads(out.read_text())
    [(start, seconds, name)] = written["slow"]
    assert name == "upkeep" and seconds >= 0.003 and before <= start <= after
    assert written["totals"][WORKERS][0] >= 2  # both workers' steps, under one name


def test_nothing_is_instrumented_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(task_stats.TASK_STATS_ENV, raising=False)
    assert task_stats.instruments() == []
