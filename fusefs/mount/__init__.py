"""The mount program: the drive as a local folder (pyfuse3 + trio).

Layers, each readable alone: operations (FUSE types, errno) → vfs (POSIX
rules, inodes, open files) → follower / block cache → clients. Nothing
here imports the `drive` command (fusefs.cli); both share clients, models,
errors, credentials and the block cache from the fusefs package.
"""

from fusefs.mount.lifecycle import (
    DEFAULT_CACHE_BYTES,
    MountConfig,
    MountError,
    check_mountpoint,
    run_mount,
)

__all__ = ["DEFAULT_CACHE_BYTES", "MountConfig", "MountError", "check_mountpoint", "run_mount"]
