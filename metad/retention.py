"""Which old revisions a file keeps: every one for a while, then one a day, then one a week.

A pure policy (no I/O) so it can be tested directly and configured from
metad's command line. The current revision is always kept; within a day (or
week) bucket the newest revision stands for the bucket.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DAY_NS = 86_400 * 1_000_000_000
WEEK_NS = 7 * DAY_NS


@dataclass(frozen=True, slots=True)
class Retention:
    keep_all_ns: int = 30 * DAY_NS  # every revision younger than this
    daily_ns: int = 90 * DAY_NS  # then one per day up to this age
    weekly_ns: int = 0  # then one per week up to this age (0 = for ever)

    @classmethod
    def from_days(cls, keep_all: float, daily: float, weekly: float) -> Retention:
        return cls(int(keep_all * DAY_NS), int(daily * DAY_NS), int(weekly * DAY_NS))

    def to_drop(self, revisions: Sequence[tuple[int, int]], current: int, now_ns: int) -> list[int]:
        """Numbers of the revisions (number, created_ns) this policy lets go of."""
        newest_in_bucket: dict[tuple[str, int], int] = {}
        drop: list[int] = []
        for number, created_ns in sorted(revisions, key=lambda r: (r[1], r[0]), reverse=True):
            age = now_ns - created_ns
            if number == current or age < self.keep_all_ns:
                continue
            if age < self.daily_ns:
                bucket = ("day", created_ns // DAY_NS)
            elif not self.weekly_ns or age < self.weekly_ns:
                bucket = ("week", created_ns // WEEK_NS)
            else:
                drop.append(number)  # older than anything kept
                continue
            if bucket in newest_in_bucket:
                drop.append(number)
            else:
                newest_in_bucket[bucket] = number
        return sorted(drop)
