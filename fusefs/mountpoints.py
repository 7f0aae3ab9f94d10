"""What the mount and the `drive` command both know of a mount (neither imports the other):
what a mountpoint must be, checked by the mount and, before it starts anything, by
`drive up`/`drive mount`; and the block cache's default size."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CACHE_BYTES = 10 * 1024**3


class MountError(Exception):
    """The mount could not start; the message is meant for the user."""


def check_mountpoint(path: Path) -> None:
    if not path.exists():
        raise MountError(f"mountpoint {path} does not exist (create it with: mkdir -p {path})")
    if not path.is_dir():
        raise MountError(f"mountpoint {path} is not a directory")
    if os.path.ismount(path):
        raise MountError(f"{path} is already a mount point")
    if any(path.iterdir()):
        raise MountError(f"mountpoint {path} is not empty")
