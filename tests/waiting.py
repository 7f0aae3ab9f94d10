"""Checks for tests that watch a mount change under them.

Changes made elsewhere reach a mount a little later, so a test waits until
what it expects holds (an error meanwhile, e.g. ENOENT before a file
appears, counts as "not yet"), and reads the errno a refused call gives.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def eventually(check: Callable[[], bool], timeout: float = 1.0) -> float:
    """Seconds until check() held; fails the test after timeout."""
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except OSError:
            pass
        if time.monotonic() - start > timeout:
            pytest.fail(f"not seen within {timeout}s")
        time.sleep(0.01)


def refused(action: Callable[[], object]) -> int:
    """The errno action fails with (0 if it succeeded)."""
    try:
        action()
    except OSError as exc:
        return exc.errno or -1
    return 0
