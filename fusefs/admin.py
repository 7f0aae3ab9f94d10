"""The drive's account and maintenance commands: users, login, gc, scrub, status, trash.

Each talks to running daemons through the clients, shows progress while it
works (rich), and returns the process exit code. Argument parsing stays in
cli.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fusefs import credentials
from fusefs.clients import AccountsClient, BlockClient, MetadataClient
from protos.tls import Trust

console = Console(stderr=True)


def _plain(_address: str) -> Trust | None:
    return None


@dataclass(frozen=True)
class Connection:
    """Where the drive's daemons are, the token to call them with, and what to trust there."""

    metad: Callable[[], str]  # addresses are looked up only when a command needs them
    blockd: Callable[[], str]
    token: Callable[[], str]
    # The Trust to dial an address with (None: plain text); raises when the
    # daemon there is not what is expected (fusefs.trust.DriveTrust).
    trust: Callable[[str], Trust | None] = _plain

    def metadata(self, device: str = "drive-cli") -> MetadataClient:
        address = self.metad()
        return MetadataClient(address, device, self.token, trust=self.trust(address))

    def blocks(self) -> BlockClient:
        address = self.blockd()
        return BlockClient(address, self.token, trust=self.trust(address))

    def accounts(self) -> AccountsClient:
        address = self.metad()
        return AccountsClient(address, self.token, trust=self.trust(address))


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def garbage_collect(conn: Connection, grace_seconds: int, dry_run: bool) -> int:
    client = conn.blocks()
    try:
        with _progress() as bar:
            task = bar.add_task("collecting garbage", total=None)
            last = None
            for last in client.collect_garbage(grace_seconds, dry_run):
                bar.update(task, completed=last.scanned, total=max(last.total, last.scanned))
    finally:
        client.close()
    assert last is not None and last.done
    verb = "would delete" if dry_run else "deleted"
    print(
        f"scanned {last.scanned:,} blocks, {verb} {last.deleted:,}: "
        f"{human(last.bytes_reclaimed)} reclaimed{' (dry run)' if dry_run else ''}"
    )
    return 0


def scrub(conn: Connection) -> int:
    client = conn.blocks()
    problems: list[tuple[bytes, str]] = []
    try:
        with _progress() as bar:
            task = bar.add_task("verifying blocks", total=None)
            last = None
            for last in client.scrub():
                bar.update(task, completed=last.checked, total=max(last.total, last.checked))
                for digest, problem in last.problems:
                    problems.append((digest, problem))
                    bar.console.print(f"block {digest.hex()}: {problem}")
    finally:
        client.close()
    assert last is not None and last.done
    print(
        f"checked {last.checked:,} stored blocks and {last.referenced_checked:,} referenced: "
        f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    )
    return 1 if problems else 0


def status(conn: Connection) -> int:
    meta = conn.metadata("drive-status")
    blocks = conn.blocks()
    try:
        usage = meta.usage()
        summary = meta.storage_summary()
        stats = blocks.stats()
    finally:
        meta.close()
        blocks.close()
    quota = human(usage.quota_bytes) if usage.quota_bytes else "none"
    ratio = stats.stored_bytes / summary.referenced_bytes if summary.referenced_bytes else 0
    print(
        f"your files       {human(usage.used_bytes)} in {usage.node_count:,} entries"
        f" (quota {quota})"
    )
    print(f"all drives       {human(summary.logical_bytes)} of current file content")
    print(
        f"blocks in use    {summary.referenced_blocks:,} blocks, "
        f"{human(summary.referenced_bytes)} before compression"
    )
    print(
        f"stored           {stats.object_count:,} objects, {human(stats.stored_bytes)} "
        f"({ratio:.2f} of the referenced bytes)"
    )
    return 0


def empty_trash(conn: Connection) -> int:
    meta = conn.metadata("drive-trash")
    try:
        nodes, size = meta.empty_trash()
    finally:
        meta.close()
    print(
        f"trash emptied: {nodes:,} deleted files ({human(size)}) forgotten;"
        " run `drive gc` to reclaim their space"
    )
    return 0


# --- accounts -------------------------------------------------------------------------------


def login(
    metad: str,
    name: str,
    password: str,
    trust: Trust | None = None,
    pin: credentials.Pin | None = None,
) -> int:
    """Signs in (over TLS when trust is given); saves the token, and pin once it worked."""
    client = AccountsClient(metad, trust=trust)
    try:
        signed_in = client.sign_in(name, password)
    finally:
        client.close()
    credentials.save_token(metad, signed_in.token, signed_in.expires_s, signed_in.account.name)
    if pin is not None:
        credentials.save_pin(metad, pin)
    how = "in plain text" if trust is None else f"over TLS (CA {trust.fingerprint})"
    print(f"signed in to {metad} as {signed_in.account.name} {how}")
    return 0


def logout(metad: str) -> int:
    if credentials.forget_token(metad):
        print(f"signed out of {metad}")
    else:
        print(f"not signed in to {metad}")
    return 0


def whoami(conn: Connection) -> int:
    client = conn.accounts()
    try:
        me = client.whoami()
    finally:
        client.close()
    quota = human(me.quota_bytes) if me.quota_bytes else "unlimited"
    print(f"{me.name} (user {me.id}{', administrator' if me.admin else ''}; quota {quota})")
    return 0


def add_user(conn: Connection, name: str, password: str, quota: int, admin: bool) -> int:
    client = conn.accounts()
    try:
        user = client.create_user(name, password, quota, admin)
    finally:
        client.close()
    quota_text = human(user.quota_bytes) if user.quota_bytes else "unlimited"
    print(f"user {user.name} created (id {user.id}, quota {quota_text})")
    return 0


def list_users(conn: Connection) -> int:
    client = conn.accounts()
    try:
        users = client.list_users()
    finally:
        client.close()
    for user in users:
        extra = " administrator" if user.admin else ""
        quota = f" quota {human(user.quota_bytes)}" if user.quota_bytes else ""
        print(f"{user.id:>5}  {user.name}{extra}{quota}")
    return 0


def set_password(conn: Connection, name: str, current: str, new: str) -> int:
    client = conn.accounts()
    try:
        user = client.set_password(new, current, name)
    finally:
        client.close()
    print(f"password of {user.name} changed")
    return 0


def set_quota(conn: Connection, name: str, quota: int) -> int:
    client = conn.accounts()
    try:
        user = client.set_quota(name, quota)
    finally:
        client.close()
    print(f"quota of {user.name}: {human(quota) if quota else 'unlimited'}")
    return 0
