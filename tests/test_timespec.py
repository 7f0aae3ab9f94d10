"""TIME arguments (`drive ls --at`, `drive restore --at`): what people type, in local time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from fusefs.cli.timespec import format_time, parse_time

NOW = 1_795_339_815 * 10**9  # 2026-11-22 09:30:15 UTC
S = 10**9


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The local zone is Europe/Berlin (UTC+1 in November, UTC+2 in July)."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def utc(*fields: int) -> int:
    return int(datetime(*fields, tzinfo=UTC).timestamp()) * S


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22 09:30", utc(2026, 11, 22, 8, 30)),
        ("2026-11-22T09:30:15", utc(2026, 11, 22, 8, 30, 15)),
        ("  2026-11-22   09:30  ", utc(2026, 11, 22, 8, 30)),
        ("2026-11-22", utc(2026, 11, 21, 23, 0)),  # local midnight
        ("2026-07-01 12:00", utc(2026, 7, 1, 10, 0)),  # summer time
        ("2026-11-22T09:30:15Z", utc(2026, 11, 22, 9, 30, 15)),  # an offset wins
        ("2026-11-22 09:30+05:00", utc(2026, 11, 22, 4, 30)),
    ],
)
def test_dates_are_local_unless_they_say_otherwise(berlin: None, text: str, expected: int) -> None:
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "ago_s"),
    [
        ("10m", 600),
        ("2h", 7200),
        ("3d", 3 * 86400),
        ("1w", 7 * 86400),
        ("90s", 90),
        ("10 minutes ago", 600),
        ("1 hour ago", 3600),
        ("2 days", 2 * 86400),
        ("1.5h", 5400),
        ("now", 0),
    ],
)
def test_relative_times_count_back_from_now(text: str, ago_s: int) -> None:
    assert parse_time(text, NOW) == NOW - ago_s * S


def test_unix_seconds() -> None:
    assert parse_time("@1763803800", NOW) == 1_763_803_800 * S
    assert parse_time("@1763803800.5", NOW) == 1_763_803_800 * S + S // 2


@pytest.mark.parametrize("text", ["", "yesterday", "10 parsecs", "2026-13-01", "@x", "m10"])
def test_anything_else_is_refused_with_examples(text: str) -> None:
    with pytest.raises(ValueError, match=r"time"):
        parse_time(text, NOW)


def test_printed_times_read_back(berlin: None) -> None:
    shown = format_time(NOW + 123_456_789)
    assert shown == "2026-11-22 10:30:15"
    assert parse_time(shown, NOW) == NOW
