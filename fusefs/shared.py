"""Names the mount and the `drive` command both use (neither imports the other).

How files others shared with you are named, in the mount and on the command line.

Both show them in one folder, SHARED_FOLDER, at the top of your drive; each
share appears there under its own name, or, when two shares have the same
name, as "name (owner)" (and "name (owner, 2)" beyond). The mount and the CLI
call `share_names` so a path means the same thing in both.
"""

from __future__ import annotations

from collections.abc import Iterable

from fusefs.models import ShareInfo

SHARED_FOLDER = "Shared with me"
# Read on a mount's root, never listed: what that device has not sent yet (JSON,
# fusefs.mount.synchronizer.Status.as_json), for `drive sync` and `drive status`.
PENDING_XATTR = "user.drivefs.pending"


def share_names(shares: Iterable[ShareInfo]) -> dict[str, ShareInfo]:
    """Display name → share, stable for a given set (ordered by node id)."""
    by_node: dict[int, ShareInfo] = {}
    for share in shares:
        by_node.setdefault(share.node.id, share)
    ordered = sorted(by_node.values(), key=lambda s: s.node.id)
    counts: dict[str, int] = {}
    for share in ordered:
        counts[share.node.name] = counts.get(share.node.name, 0) + 1
    names: dict[str, ShareInfo] = {}
    for share in ordered:
        name = share.node.name
        if counts[name] > 1:
            name = _with_owner(share.node.name, share.owner_name)
            candidate, n = name, 2
            while candidate in names:
                candidate = _with_owner(share.node.name, f"{share.owner_name}, {n}")
                n += 1
            name = candidate
        names[name] = share
    return names


def _with_owner(name: str, tag: str) -> str:
    stem, _, ext = name.rpartition(".")
    if not stem or len(ext) > 16:
        return f"{name} ({tag})"
    return f"{stem} ({tag}).{ext}"
