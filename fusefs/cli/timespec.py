"""Points in time as people type them on the command line, and as we print them.

Owns the TIME syntax of `drive ls --at`, `drive restore --at` and the times
commands print: all in the local time zone, as a person reading a clock
means them. Pure functions: no clients, no output.

Accepted:
  "2026-11-22 09:30", "2026-11-22T09:30:15", "2026-11-22" (midnight), with an
  optional UTC offset ("…+01:00", "…Z") that overrides the local zone;
  "@1763803800" (Unix seconds, fractions allowed);
  "10m", "2h", "3d", "1w", "90s", also spelled "10 minutes ago", "2 hours":
  that long before now; "now".
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNITS: dict[str, int] = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}  # fmt: skip
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)(?:\s+ago)?")
_UNIX = re.compile(r"@(-?\d+(?:\.\d+)?)")
EXAMPLES = '"2026-11-22 09:30", "2026-11-22", "@1763803800", "10m", "2h", "3d" or "10 minutes ago"'


def parse_time(text: str, now_ns: int | None = None) -> int:
    """Nanoseconds since the epoch for a TIME; relative times count back from now_ns.

    Raises ValueError with a message meant for the user.
    """
    spec = " ".join(text.strip().lower().split())
    now = time.time_ns() if now_ns is None else now_ns
    if spec == "now":
        return now
    if m := _UNIX.fullmatch(spec):
        return round(float(m.group(1)) * 1_000_000_000)
    if m := _RELATIVE.fullmatch(spec):
        unit = _UNITS.get(m.group(2))
        if unit is None:
            raise ValueError(f"unknown unit {m.group(2)!r} in time {text!r}")
        return now - round(float(m.group(1)) * unit * 1_000_000_000)
    try:
        moment = datetime.fromisoformat(spec.upper())
    except ValueError:
        raise ValueError(f"cannot read time {text!r}: try {EXAMPLES}") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the local zone, daylight saving included
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def format_time(time_ns: int) -> str:
    """Local time to the second, the way parse_time reads it back."""
    return datetime.fromtimestamp(time_ns // 1_000_000_000).strftime("%Y-%m-%d %H:%M:%S")
