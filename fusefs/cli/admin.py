"""The drive's account and maintenance commands: users, login, gc, scrub, status, trash.

Each talks to running daemons through the clients, shows progress while it
works (rich), and returns the process exit code. Argument parsing stays in
cli.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fusefs import credentials, errors
from fusefs.cachefiles import cached_copy
from fusefs.clients import AccountsClient, BlockClient, BlockProblem, MetadataClient
from fusefs.daemons import DaemonError
from protos import names
from protos.tls import Trust

console = Console(stderr=True)
# How long `drive scrub --repair` waits for devices to upload what storage lost.
REPAIR_WAIT_SECONDS = 10.0


def _plain(_address: str) -> Trust | None:
    return None


@dataclass(frozen=True)
class Connection:
    """Where the drive's daemons are, the token to call them with, and what to trust there."""

    metad: Callable[[], str]  # addresses are looked up only when a command needs them
    blockd: Callable[[], str]
    token: Callable[[], str]
    # The Trust to dial an address with (None: plain text); raises when the
    # daemon there is not what is expected (fusefs.cli.trust.DriveTrust).
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


def say(text: str) -> None:
    """One line to stdout; names in it show raw bytes and control characters escaped."""
    print(names.printable(text))


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


def scrub(conn: Connection, repair: bool = False, caches: Sequence[Path] = ()) -> int:
    """Verifies the store; names the files each problem hurts; with repair, heals what it can.

    blockd quarantines a damaged block as it finds it (and heals it from its
    own memory when it can). Repair then looks for verified copies of the
    rest in the mount caches on this machine, uploads them, and asks metad to
    have every device that follows an affected file upload what it holds.
    """
    client = conn.blocks()
    try:
        problems = _scrub_run(client, "verifying blocks")
        unresolved = list({p.hash: p for p in problems if not p.repaired}.values())
        if problems:
            _name_files(conn, [p.hash for p in problems], problems)
        if repair and unresolved:
            unresolved = _repair(conn, client, unresolved, caches)
    finally:
        client.close()
    found = f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found"
    if problems and not unresolved:
        print(f"{found}; all repaired")
    elif problems and repair:
        print(f"{found}; {len(unresolved)} block(s) still damaged or missing")
    return 1 if unresolved else 0


def _scrub_run(client: BlockClient, what: str, only: Sequence[bytes] = ()) -> list[BlockProblem]:
    problems: list[BlockProblem] = []
    with _progress() as bar:
        task = bar.add_task(what, total=None)
        last = None
        for last in client.scrub(only):
            bar.update(task, completed=last.checked, total=max(last.total, last.checked))
            for problem in last.problems:
                problems.append(problem)
                bar.console.print(f"block {problem.hash.hex()}: {problem.problem}")
    assert last is not None and last.done
    print(
        f"checked {last.checked:,} stored blocks and {last.referenced_checked:,} referenced: "
        f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    )
    return problems


def _name_files(
    conn: Connection, hashes: Sequence[bytes], problems: Sequence[BlockProblem]
) -> None:
    """Prints, per damaged block, the files (owner: path, revisions) that refer to it."""
    try:
        meta = conn.metadata("drive-scrub")
    except (DaemonError, errors.DriveError) as exc:
        print(f"(which files they belong to is unknown: {exc})")
        return
    try:
        references = meta.block_references(list(dict.fromkeys(hashes)))
    except errors.DriveError as exc:
        print(f"(which files they belong to is unknown: {exc})")
        return
    finally:
        meta.close()
    by_hash: dict[bytes, list[str]] = {}
    for r in references:
        where = f"{r.owner_name}: {r.path}" + (" (in the trash)" if r.deleted else "")
        numbers = ", ".join(f"r{n}" for n in r.revisions)
        by_hash.setdefault(r.hash, []).append(
            f"{where} [{numbers}{', current' if r.current else ''}]"
        )
    for problem in {p.hash: p for p in problems}.values():
        files = by_hash.get(problem.hash)
        state = "repaired" if problem.repaired else "damaged"
        if files:
            say(f"{state} block {problem.hash.hex()[:16]}… is in:")
            for line in files:
                say(f"  {line}")
        else:
            print(f"{state} block {problem.hash.hex()[:16]}… is in no kept file")


def _repair(
    conn: Connection,
    client: BlockClient,
    problems: Sequence[BlockProblem],
    caches: Sequence[Path],
    wait_seconds: float = REPAIR_WAIT_SECONDS,
) -> list[BlockProblem]:
    """Heals from local caches, then from the devices; returns the problems left."""
    hashes = [p.hash for p in problems]
    found = {}
    for h in hashes:
        for directory in caches:
            copy = cached_copy(directory, h)
            if copy is not None:
                found[h] = copy
                break
    if found:
        client.upload(lambda: list(found.items()))
        print(f"restored {len(found)} block(s) from the caches on this machine")
    left = [h for h in hashes if h not in found]
    if left:
        try:
            meta = conn.metadata("drive-scrub")
            try:
                files = meta.report_damaged(left)
            finally:
                meta.close()
        except (DaemonError, errors.DriveError) as exc:
            print(f"could not ask the devices for the rest: {exc}")
        else:
            print(f"asked the devices that follow {files} file(s) for {len(left)} block(s)")
            deadline = time.monotonic() + wait_seconds
            while left and time.monotonic() < deadline:
                time.sleep(0.5)
                left = sorted(client.find_missing(left))
    remaining = _scrub_run(client, "checking the repairs", hashes) if hashes else []
    for problem in remaining:
        print(f"still damaged: block {problem.hash.hex()}: {problem.problem}")
    return remaining


def status(conn: Connection) -> dict:
    """Your space; for administrators also the whole store (None for others: theirs)."""
    meta = conn.metadata("drive-status")
    try:
        usage = meta.usage()
        try:
            summary = meta.storage_summary()
        except errors.PermissionDenied:
            summary = None
    finally:
        meta.close()
    shown: dict = {
        "you": {
            "used_bytes": usage.used_bytes,
            "entries": usage.node_count,
            "quota_bytes": usage.quota_bytes or None,
        },
        "store": None,
    }
    if summary is None:
        return shown
    blocks = conn.blocks()
    try:
        stats = blocks.stats()
    finally:
        blocks.close()
    shown["store"] = {
        "content_bytes": summary.logical_bytes,
        "referenced_blocks": summary.referenced_blocks,
        "referenced_bytes": summary.referenced_bytes,
        "stored_objects": stats.object_count,
        "stored_bytes": stats.stored_bytes,
    }
    return shown


def print_status(shown: dict) -> None:
    you = shown["you"]
    quota = human(you["quota_bytes"]) if you["quota_bytes"] else "none"
    print(
        f"your files       {human(you['used_bytes'])} in {you['entries']:,} entries (quota {quota})"
    )
    store = shown["store"]
    if store is None:
        return
    referenced = store["referenced_bytes"]
    ratio = store["stored_bytes"] / referenced if referenced else 0
    print(f"all drives       {human(store['content_bytes'])} of current file content")
    print(
        f"blocks in use    {store['referenced_blocks']:,} blocks, "
        f"{human(referenced)} before compression"
    )
    print(
        f"stored           {store['stored_objects']:,} objects, {human(store['stored_bytes'])} "
        f"({ratio:.2f} of the referenced bytes)"
    )


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
    """Signs in (over TLS when trust is given); saves the login under the drive's id (asked
    of metad first), and the pin once it worked."""
    client = AccountsClient(metad, trust=trust)
    try:
        drive = client.drive_info().drive_id
        signed_in = client.sign_in(name, password)
    finally:
        client.close()
    user = signed_in.account.name
    credentials.save_login(metad, signed_in.token, signed_in.expires_s, user, drive)
    if pin is not None:
        credentials.save_pin(metad, pin)
    how = "in plain text" if trust is None else f"over TLS (CA {trust.fingerprint})"
    print(f"signed in to {metad} as {user} {how}")
    return 0


def logout(metad: str, user: str | None) -> int:
    gone = credentials.forget_login(metad, user)
    who = f" as {user}" if user else ""
    if gone:
        names = ", ".join(sorted({x.user for x in gone}))
        print(f"signed out of {metad} ({names})")
    else:
        print(f"not signed in to {metad}{who}")
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


def set_disabled(conn: Connection, name: str, disabled: bool) -> int:
    client = conn.accounts()
    try:
        user = client.set_disabled(name, disabled)
    finally:
        client.close()
    if user.disabled:
        print(f"{user.name} is disabled: signed out everywhere, and may not sign in")
    else:
        print(f"{user.name} may sign in again")
    return 0


def set_quota(conn: Connection, name: str, quota: int) -> int:
    client = conn.accounts()
    try:
        user = client.set_quota(name, quota)
    finally:
        client.close()
    print(f"quota of {user.name}: {human(quota) if quota else 'unlimited'}")
    return 0
