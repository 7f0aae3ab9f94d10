"""The mount program: the drive as a local folder (pyfuse3 + trio).

Layers, each readable alone: operations (FUSE types, errno) → vfs (POSIX
rules, inodes, open files) → entries, replica, journal, synchronizer, block
cache → clients. A program of its own (`python -m fusefs.mount`, which
`drive mount` and `drive up` run): nothing here imports the `drive` command
(fusefs.cli), nor it this; both share clients, models, errors, credentials,
mountpoints and the block cache from the fusefs package.
"""

from fusefs.mount.lifecycle import MountConfig, run_mount

__all__ = ["MountConfig", "run_mount"]
