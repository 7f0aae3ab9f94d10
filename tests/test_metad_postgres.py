"""What only the PostgreSQL engine does: placeholders, its schema, secrets, other replicas.

The store's behaviour is tested over both engines (test_metad_store.py,
test_metad_schema.py and their neighbours, through the `database` fixture); two
metad processes on one database in test_metad_replicas.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import psycopg
import pytest

from metad import postgres, schema, schema_postgres
from metad.errors import DatabaseUnavailable, SchemaTooNew, StartupError
from metad.models import Actor
from metad.postgres import translate
from metad.store import FIRST_USER_ID, Store

pytestmark = pytest.mark.postgresql


def run(coro) -> object:
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


def test_placeholders_become_numbered_and_percent_signs_stay_literal() -> None:
    assert translate("SELECT ? WHERE a = ?") == "SELECT $1 WHERE a = $2"
    assert translate("SELECT '?', \"a?\" , ?") == "SELECT '?', \"a?\" , $1"
    assert translate("SELECT format('%I', ?) WHERE b LIKE '5%'") == (
        "SELECT format('%I', $1) WHERE b LIKE '5%'"
    )


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bob:pw-s3cret@127.0.0.1:1/drive",
        "postgresql://127.0.0.1:1/drive?password=pw-s3cret&user=bob",
        "postgresql://bob:pw-s3cret@[::1",  # unparsable: libpq quotes it back
    ],
)
def test_a_database_that_cannot_be_opened_is_a_startup_error_without_the_password(
    url: str,
) -> None:
    async def scenario() -> None:
        with pytest.raises(StartupError, match="cannot open database") as raised:
            await Store.open(url)
        assert "pw-s3cret" not in str(raised.value)
        assert "pw-s3cret" not in repr(raised.value.__cause__)

    run(scenario())


def _columns_sqlite(path: Path) -> dict[str, list[str]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables}


def _columns_postgres(url: str) -> dict[str, list[str]]:
    with psycopg.connect(url) as conn:
        found: dict[str, list[str]] = {}
        for table, column in conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        ):
            found.setdefault(table, []).append(column)
        return found


def test_a_new_database_has_the_tables_and_columns_of_a_migrated_sqlite_file(
    tmp_path: Path, pg_database: str
) -> None:
    async def scenario() -> None:
        for database in (tmp_path / "metadata.db", pg_database):
            store = await Store.open(database)
            assert await store.schema_version() == schema.SCHEMA_VERSION
            await store.close()

    run(scenario())
    assert _columns_postgres(pg_database) == _columns_sqlite(tmp_path / "metadata.db")


def test_a_newer_schema_is_refused_and_left_untouched(pg_database: str) -> None:
    run(_open_and_close(pg_database))
    with psycopg.connect(pg_database, autocommit=True) as conn:
        (applied,) = conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()
        conn.execute(
            "INSERT INTO schema_version (version, applied_ns) VALUES (%s, 0)",
            (schema.SCHEMA_VERSION + 1,),
        )

    async def scenario() -> None:
        with pytest.raises(SchemaTooNew, match="newer than this metad"):
            await Store.open(pg_database)

    run(scenario())
    with psycopg.connect(pg_database) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()
        assert count == applied + 1  # the newer one; nothing migrated


def test_a_database_at_the_baseline_is_migrated_step_by_step(pg_database: str) -> None:
    with psycopg.connect(pg_database, autocommit=True) as conn:  # as a metad of version 7 left it
        for statement in schema_postgres.postgres_baseline():
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_version (version, applied_ns) VALUES (%s, 0)",
            (schema_postgres.POSTGRES_BASELINE,),
        )

    async def scenario() -> None:
        store = await Store.open(pg_database)
        try:
            assert await store.schema_version() == schema.SCHEMA_VERSION
            assert await store.adopt_drive_id("a" * 32) == "a" * 32
            assert await store.adopt_drive_id("b" * 32) == "a" * 32  # the first one stays
        finally:
            await store.close()

    run(scenario())
    with psycopg.connect(pg_database) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_version")]
    assert versions == list(range(schema_postgres.POSTGRES_BASELINE, schema.SCHEMA_VERSION + 1))


async def _open_and_close(database: str) -> None:
    store = await Store.open(database)
    await store.close()


def test_replicas_starting_together_migrate_once(pg_database: str) -> None:
    async def scenario() -> None:
        stores = await asyncio.gather(*(Store.open(pg_database) for _ in range(3)))
        users = await stores[0].list_users()
        assert [u.id for u in users] == [FIRST_USER_ID]
        for store in stores:
            await store.close()

    run(scenario())


def test_a_commit_another_process_made_wakes_subscribers_even_without_its_notification(
    pg_database: str,
) -> None:
    """The head is also polled: a notification lost (a dropped LISTEN) delays, never loses."""

    async def scenario() -> None:
        heads: list[int] = []
        woke = asyncio.Event()

        def on_commit(sequence: int, concerns: frozenset[int] | None) -> None:
            heads.append(sequence)
            woke.set()

        store = await Store.open(pg_database, on_commit=on_commit)
        try:
            # Another writer that journals without pg_notify.
            with psycopg.connect(pg_database, autocommit=True) as other:
                other.execute(
                    "INSERT INTO changes (owner_id, kind, node_id, node_kind, parent_id, name,"
                    " actor_id, device, time_ns) VALUES (1, 'attributes', 1, 'dir', NULL, '',"
                    " 1, 'elsewhere', 0)"
                )
            await asyncio.wait_for(woke.wait(), timeout=10)
            assert heads == [1]
            page = await store.read_changes(FIRST_USER_ID, 0, 10)
            assert [e.device for e in page.events] == ["elsewhere"]
        finally:
            await store.close()

    run(scenario())


def _drop_connections(url: str, *, refuse_new: bool | None = None) -> None:
    """Ends every other session on the database, as a server restart or a network cut does."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if refuse_new is not None:
            allow = "false" if refuse_new else "true"
            conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}")
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        )


def test_connections_the_server_dropped_are_opened_again_and_an_outage_is_unavailable(
    pg_database: str,
) -> None:
    async def scenario() -> None:
        store = await Store.open(pg_database)
        try:
            owner = Actor(FIRST_USER_ID, "laptop")
            await store.make_directory(owner, 1, "before", 0o755)
            _drop_connections(pg_database)
            # Idle connections lost: the next write, snapshot and lone read connect again.
            await store.make_directory(owner, 1, "after", 0o755)
            assert (await store.lookup(FIRST_USER_ID, 1, "before")).name == "before"
            assert await store.last_sequence() == 2
            # The server refuses connections: calls fail as unavailable, and work once it is back.
            _drop_connections(pg_database, refuse_new=True)
            with pytest.raises(DatabaseUnavailable):
                await store.make_directory(owner, 1, "during", 0o755)
            with pytest.raises(DatabaseUnavailable):
                await store.last_sequence()
            _drop_connections(pg_database, refuse_new=False)
            await store.make_directory(owner, 1, "later", 0o755)
            names = [e.name for e in (await store.read_changes(FIRST_USER_ID, 0, 10)).events]
            assert names == ["before", "after", "later"]
        finally:
            await store.close()

    run(scenario())


def test_a_commit_s_notification_names_whom_it_concerns_or_only_the_head() -> None:
    assert postgres.parse_notice(postgres.notice(12, frozenset({3, 1}))) == (12, {1, 3})
    many = frozenset(range(10**6, 10**6 + 2000))  # too long a list: everyone
    assert postgres.parse_notice(postgres.notice(12, many)) == (12, None)
    assert postgres.parse_notice("12") == (12, None)  # an older replica's
    for stranger in ("", "x", "12 a,b", "12 1,,2", "-1 2"):
        assert postgres.parse_notice(stranger) is None
