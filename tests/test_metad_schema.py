"""metad's schema below gRPC: versions, upgrades of older databases, first start, refusals.

A test of the schema itself opens a real SQLite file and reads it back with
sqlite3; one of a first start runs on each engine (the `database` fixture).
The rest of the store: test_metad_store.py.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path

import pytest

from metad import schema
from metad.errors import SchemaTooNew, StartupError
from metad.models import ChangeKind, NodeKind
from metad.store import FIRST_USER_ID, Store
from tests.metad_stores import OWNER, open_store, run

# -- schema ----------------------------------------------------------------------------------


def test_schema_is_versioned_wal_and_every_column_is_commented(tmp_path: Path) -> None:
    db = tmp_path / "metadata.db"

    async def scenario() -> None:
        async with open_store(db):
            pass

    run(scenario)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = conn.execute("SELECT version FROM schema_version").fetchall()
        # Every migration step is recorded.
        assert versions == [(v,) for v in range(1, schema.SCHEMA_VERSION + 1)]
        tables = [
            (name, sql)
            for name, sql in conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%'"
            )
        ]
        assert {name for name, _ in tables} == {
            "users",
            "nodes",
            "revisions",
            "revision_blocks",
            "changes",
            "shares",
            "schema_version",
            "condemned_blocks",
            "share_changes",
            "purged_nodes",
            "user_security",
            "request_log",
            "links",
            "xattrs",
            "revision_xattrs",
            "node_id_reservations",
            "drive_settings",
        }
        for table, sql in tables:
            lines = sql.splitlines()
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            starts = {
                column: next(
                    i for i, line in enumerate(lines) if re.match(rf"[\s,]+{column}\s", line)
                )
                for column in columns
            }
            bounds = [*sorted(starts.values()), len(lines)]
            for column, start in starts.items():
                end = bounds[bounds.index(start) + 1]
                assert any("--" in line or "/*" in line for line in lines[start:end]), (
                    f"{table}.{column}"
                )
        # A name is unique among live entries only.
        index_sql = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'nodes_live_name'"
        ).fetchone()[0]
        assert "UNIQUE" in index_sql and "WHERE deleted_ns IS NULL" in index_sql


def _old_database(db: Path, version: int, rows: str) -> sqlite3.Connection:
    """A database as a metad of an older schema version left it: its owner and root
    folder, then rows (SQL). Returns the connection, open."""
    conn = sqlite3.connect(db, isolation_level=None)
    for step in range(1, version + 1):
        for statement in schema.MIGRATIONS[step]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (?, 0)", (step,))
    conn.execute(f"PRAGMA user_version = {int(version)}")
    conn.executescript(
        "INSERT INTO users (id, name, quota_bytes, admin, created_ns)"
        " VALUES (1, 'owner', 0, 1, 0);"
        "INSERT INTO nodes (id, owner_id, parent_id, name, kind, mode, mtime_ns, ctime_ns)"
        " VALUES (1, 1, NULL, '', 'dir', 493, 5, 5);"
        "UPDATE users SET root_node_id = 1;" + rows
    )
    return conn


def _version_4_database(db: Path) -> None:
    """A database as a metad of schema version 4 left it: a user, a file, its journal."""
    with contextlib.closing(
        _old_database(
            db,
            4,
            "INSERT INTO nodes (id, owner_id, parent_id, name, kind, mode, mtime_ns, ctime_ns,"
            " revision) VALUES (7, 1, 1, 'f', 'file', 420, 6, 6, 1);"
            "INSERT INTO revisions VALUES (7, 1, 0, 6, 420, 1, 'laptop', 6);"
            "INSERT INTO changes (sequence, owner_id, kind, node_id, node_kind, parent_id, name,"
            " revision, actor_id, device, time_ns) VALUES (41, 1, 'created', 7, 'file', 1, 'f',"
            " 1, 1, 'laptop', 6);",
        )
    ) as conn:
        journal = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'changes'").fetchone()
        assert "'damaged'" not in journal[0]


def test_a_version_4_database_keeps_its_journal_and_ids_through_the_upgrade(
    tmp_path: Path,
) -> None:
    db = tmp_path / "metadata.db"
    _version_4_database(db)

    async def upgraded() -> None:
        async with open_store(db) as store:
            assert await store.schema_version() == schema.SCHEMA_VERSION
            page = await store.read_changes(FIRST_USER_ID, 0, 100)
            assert [(e.sequence, e.name) for e in page.events] == [(41, "f")]
            old = await store.stat(FIRST_USER_ID, 7)
            assert (old.name, old.uid, old.gid) == ("f", None, None)  # shown as the mount's
            root = await store.get_root(FIRST_USER_ID)
            later = await store.make_directory(OWNER, root.id, "d", 0o755)
            assert later.id > 7 and later.change_sequence > 41  # never an id or sequence twice
            fifo = await store.make_node(OWNER, root.id, "p", NodeKind.FIFO, 0o644)
            assert fifo.kind is NodeKind.FIFO  # the new kinds fit the rebuilt tables
            assert await store.report_damaged([bytes([1]) * 32]) == 0
            page = await store.read_changes(FIRST_USER_ID, 41, 100)
            assert [e.kind for e in page.events] == [ChangeKind.CREATED, ChangeKind.CREATED]

    run(upgraded)


def test_usage_of_a_version_7_database_is_added_up_once_by_the_upgrade(tmp_path: Path) -> None:
    db = tmp_path / "metadata.db"
    _old_database(
        db,
        7,
        "INSERT INTO nodes (id, owner_id, parent_id, name, kind, mode, mtime_ns, ctime_ns,"
        " revision, size) VALUES (7, 1, 1, 'f', 'file', 420, 6, 6, 1, 600);"
        "INSERT INTO nodes (id, owner_id, parent_id, name, kind, mode, mtime_ns, ctime_ns,"
        " revision, size, deleted_ns) VALUES (8, 1, 1, 'g', 'file', 420, 6, 6, 1, 99, 7);",
    ).close()

    async def upgraded() -> None:
        async with open_store(db) as store:
            assert (await store.get_usage(FIRST_USER_ID)).used_bytes == 600
            await store.restore_from_trash(OWNER, 8)
            assert (await store.get_usage(FIRST_USER_ID)).used_bytes == 699

    run(upgraded)


def test_first_start_creates_the_owner_and_root_once(database: Path | str) -> None:
    db = database

    async def scenario() -> None:
        for _ in range(2):
            async with open_store(db) as store:
                root = await store.get_root(FIRST_USER_ID)
                assert root.kind is NodeKind.DIRECTORY
                assert root.mode == 0o755
                assert root.parent_id is None and root.name == ""
        async with open_store(db) as store:
            users = await store.list_users()
            assert [(u.id, u.name, u.quota_bytes, u.root_id) for u in users] == [(1, "owner", 0, 1)]
            assert (await store.find_user("owner")) == (users[0], None)  # no password
            # The next user gets the next id: the first one's was given, not drawn.
            other = await store.create_user("other", "hash", quota_bytes=0, admin=False)
            assert (other.id, other.root_id) == (2, 2)

    run(scenario)


def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "metadata.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")

    async def scenario() -> None:
        with pytest.raises(SchemaTooNew, match="newer than this metad"):
            await Store.open(db)

    run(scenario)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION + 1
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def test_a_file_that_is_not_a_database_is_a_startup_error(tmp_path: Path) -> None:
    db = tmp_path / "metadata.db"
    db.write_bytes(b"this is not a database file, it is just some text " * 100)

    async def scenario() -> None:
        with pytest.raises(StartupError, match="cannot open database"):
            await Store.open(db)

    run(scenario)
