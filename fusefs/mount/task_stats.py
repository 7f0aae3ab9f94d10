"""What the mount's trio tasks spend, for benchmarks (off unless DRIVEFS_TASK_STATS is set).

Owns one trio Instrument: the seconds each task spends in its steps, summed
per task name (pyfuse3's request workers as one), and the steps of the other
tasks that took SLOW_STEP or more, each with its start on the clock that
time.perf_counter reads (CLOCK_MONOTONIC: the same in every process here,
so a benchmark can pick the steps inside its own window). Written as JSON to
the file the variable names when the mount exits. bench/remount_stat.py
reads it to tell whether anything besides the answers to the kernel ran
while it timed stats.

Must not: change what the mount does, or cost anything when the variable is unset.
"""

from __future__ import annotations

import atexit
import json
import os
import time

import trio

TASK_STATS_ENV = "DRIVEFS_TASK_STATS"
SLOW_STEP = 0.2e-3  # seconds: a step this long is listed on its own
MAX_LISTED = 10_000  # steps listed at most (a mount that runs long keeps its first ones)
WORKERS = "pyfuse3 workers"  # pyfuse3 names its request workers pyfuse-NN


class TaskStats(trio.abc.Instrument):
    def __init__(self, path: str) -> None:
        self._path = path
        self._totals: dict[str, list[float]] = {}  # name -> [steps, seconds]
        self._slow: list[tuple[float, float, str]] = []  # (start, seconds, name)
        self._started = 0.0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._started = time.perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        took = time.perf_counter() - self._started
        name = WORKERS if task.name.startswith("pyfuse-") else task.name
        total = self._totals.setdefault(name, [0, 0.0])
        total[0] += 1
        total[1] += took
        if took >= SLOW_STEP and name != WORKERS and len(self._slow) < MAX_LISTED:
            self._slow.append((self._started, took, name))

    def write(self) -> None:
        with open(self._path, "w") as out:
            json.dump({"totals": self._totals, "slow": self._slow}, out)


def instruments() -> list[trio.abc.Instrument]:
    """The instruments for trio.run: a TaskStats if DRIVEFS_TASK_STATS names a file."""
    path = os.environ.get(TASK_STATS_ENV)
    if not path:
        return []
    stats = TaskStats(path)
    atexit.register(stats.write)
    return [stats]
