"""Users of a test drive who make files through the clients and run the drive command.

The CLI tests create alice and bob (plain users, made by the first user) and
let them write files the way a mount does: blocks to blockd, then a revision
to metad. `drive(...)` runs the real command as them, in a child process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import blake3

from fusefs import errors
from fusefs.clients import AccountsClient, BlockClient, GrantBook, MetadataClient
from fusefs.credentials import TOKEN_ENV
from fusefs.models import BlockRef, Kind, Node
from tests import signin
from tests.running import drive_cli


@dataclass
class Person:
    name: str
    id: int
    token: str
    metad: str
    blockd: str
    meta: MetadataClient = field(init=False)
    blocks: BlockClient = field(init=False)

    def __post_init__(self) -> None:
        grants = GrantBook()
        self.meta = MetadataClient(self.metad, f"{self.name}-laptop", lambda: self.token, grants)
        self.blocks = BlockClient(self.blockd, lambda: self.token, grants)

    def close(self) -> None:
        self.meta.close()
        self.blocks.close()

    # --- the drive through the clients ---------------------------------------------------

    def node(self, path: str) -> Node:
        node = self.meta.root()
        for name in filter(None, path.split("/")):
            node = self.meta.lookup(node.id, name)
        return node

    def mkdir(self, path: str) -> Node:
        parent, _, name = path.rpartition("/")
        return self.meta.make_directory(self.node(parent).id, name, 0o755)

    def write(self, path: str, data: bytes) -> Node:
        """Creates or overwrites a file (one block; an empty file has none)."""
        parent, _, name = path.rpartition("/")
        try:
            node = self.node(path)
        except errors.NotFound:
            node = self.meta.create_file(self.node(parent).id, name, 0o644)
        return self.commit(node, data)

    def commit(self, node: Node, data: bytes) -> Node:
        digest = blake3.blake3(data).digest()
        refs = [BlockRef(digest, 0, len(data))] if data else []
        if data and self.blocks.find_missing([digest]):
            self.blocks.upload(lambda: [(digest, data)])
        return self.meta.commit_revision(node.id, node.revision, len(data), time.time_ns(), refs)

    def read(self, node_id: int, number: int = 0) -> bytes:
        """A file's content (number 0: the current revision), downloaded from blockd."""
        revision = self.meta.get_revision(node_id, number)
        hashes = [b.hash for b in revision.blocks]
        return b"".join(data for _, data in self.blocks.download(hashes)) if hashes else b""

    def remove(self, path: str) -> None:
        """As `rm -r` does: the files and folders inside first, one by one, then path."""
        node = self.node(path)
        if node.kind == Kind.DIRECTORY:
            entries, _ = self.meta.list_directory(node.id)
            for entry in entries:
                self.remove(f"{path}/{entry.name}")
        self.meta.delete(node.parent_id, node.name, node.kind == Kind.DIRECTORY)

    # --- the drive command ---------------------------------------------------------------

    def drive(
        self, *args: str, timeout: float = 60, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_drive(*args, "--metad", self.metad, token=self.token, timeout=timeout, cwd=cwd)

    def watch(self, *args: str) -> subprocess.Popen[str]:
        """`drive watch` running in the background; its stdout is read line by line."""
        return subprocess.Popen(
            [sys.executable, "-m", "fusefs.cli", "watch", "--metad", self.metad, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, TOKEN_ENV: self.token},
        )


def run_drive(
    *args: str,
    token: str,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(env or {}), TOKEN_ENV: token}
    return drive_cli(*args, env=env, timeout=timeout, cwd=cwd)


def add_person(metad: str, blockd: str, name: str) -> Person:
    admin = AccountsClient(metad, signin.token)
    try:
        account = admin.create_user(name, f"{name}'s long password")
    finally:
        admin.close()
    return Person(name, account.id, signin.token(account.id), metad, blockd)


def people(drive, *names: str) -> Iterator[list[Person]]:
    metad, blockd = drive
    made = [add_person(metad.address, blockd.address, name) for name in names]
    yield made
    for person in made:
        person.close()


def lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [line.rstrip() for line in result.stdout.splitlines()]


def one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The command failed with exactly one `drive: error: …` line naming fragments."""
    assert result.returncode != 0, result.stdout
    err = result.stderr.strip().splitlines()
    assert len(err) == 1, result.stderr
    assert err[0].startswith("drive: error: "), err[0]
    for fragment in fragments:
        assert fragment in err[0], err[0]
    return err[0]
