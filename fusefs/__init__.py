"""The drivefs client: the FUSE mount and the `drive` command."""
