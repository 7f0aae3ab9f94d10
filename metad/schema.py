"""metad's schema: DDL, its version, and the migrations, for both engines.

Owns table definitions (every column commented, special values included) and
the upgrade path between versions. A database from a newer metad is refused,
never downgraded.

SQLite: PRAGMA user_version holds the version the file is at; the
schema_version table keeps the history of applied versions for operators.
MIGRATIONS[n] takes a file from version n - 1 to n.

PostgreSQL (schema_postgres.py): a new database starts from the same
definitions in PostgreSQL's types, then takes the later MIGRATIONS steps.

Must not hold queries of the service: those live in store.py and the
feature modules, which run on the engine's connections.

Ordering guarantee the change journal depends on: journal sequences become
visible in commit order (a reader never sees sequence N+1 before N).
Subscribe streams "rows with sequence > cursor" and relies on that to be
gapless. SQLite has a single writer; on PostgreSQL every write transaction
holds one advisory lock until it commits (postgres.py says why that is enough).
The same single writer lets a change name its journal row as the newest one
(transaction.py) instead of waiting for the sequence the INSERT drew: a
narrower lock (per user, say) would have to give that up as well.
"""

from __future__ import annotations

import sqlite3
import time

from metad.errors import SchemaTooNew, StartupError

SCHEMA_VERSION = 10

_V1: tuple[str, ...] = (
    """
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
        -- stable user id, never reused; 1 = the owner made at first start
    name TEXT NOT NULL UNIQUE,  -- login name
    password_hash TEXT,  -- NULL = no password set (authentication arrived in version 3)
    quota_bytes INTEGER NOT NULL DEFAULT 0 CHECK (quota_bytes >= 0),  -- 0 = unlimited
    root_node_id INTEGER REFERENCES nodes (id),
        -- root directory of the user's drive; NULL only while the user is being created
    created_ns INTEGER NOT NULL  -- ns since the Unix epoch (as every *_ns column)
)""",
    """
CREATE TABLE nodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
        -- stable node id; AUTOINCREMENT so ids of deleted nodes are never reused
    owner_id INTEGER NOT NULL REFERENCES users (id),  -- user whose drive holds the node
    parent_id INTEGER REFERENCES nodes (id),
        -- containing directory; NULL for a drive root; kept after deletion (its last place,
        -- for restore)
    name TEXT NOT NULL,
        -- entry name, 1..255 bytes of UTF-8 without '/' or NUL; '' for a drive root;
        -- kept after deletion
    kind TEXT NOT NULL CHECK (kind IN ('dir', 'file', 'symlink')),
        -- directory, regular file or symbolic link
    mode INTEGER NOT NULL CHECK (mode BETWEEN 0 AND 4095),
        -- permission bits only (07777); 0777 for symlinks
    mtime_ns INTEGER NOT NULL,
        -- modification time (content; for directories: entries added/removed/renamed)
    ctime_ns INTEGER NOT NULL,  -- last change of content, attributes or place
    revision INTEGER NOT NULL DEFAULT 0,
        -- files: current revision number (1 = the empty file CreateFile makes); 0 otherwise
    size INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
        -- files: bytes of the current revision; symlinks: bytes of the target; directories: 0
    symlink_target TEXT,  -- symlinks: the target path as given; NULL for other kinds
    deleted_ns INTEGER,
        -- NULL while alive; once deleted: when it left the namespace (its revisions stay,
        -- for trash/restore)
    change_sequence INTEGER NOT NULL DEFAULT 0,
        -- changes.sequence of the node's last change; 0 = none (a drive root at creation)
    CHECK ((parent_id IS NULL) = (name = ''))
)""",
    # A name is taken only by a live node; deleted nodes keep their name.
    "CREATE UNIQUE INDEX nodes_live_name ON nodes (parent_id, name) WHERE deleted_ns IS NULL",
    # ListDirectory pages through live children in id order.
    "CREATE INDEX nodes_live_children ON nodes (parent_id, id) WHERE deleted_ns IS NULL",
    # GetUsage sums the live files of one owner.
    "CREATE INDEX nodes_live_owner ON nodes (owner_id, kind) WHERE deleted_ns IS NULL",
    """
CREATE TABLE revisions (
    node_id INTEGER NOT NULL REFERENCES nodes (id),  -- the file
    number INTEGER NOT NULL CHECK (number >= 1),
        -- 1, 2, 3... per file; 1 = the empty file CreateFile makes
    size INTEGER NOT NULL CHECK (size >= 0),  -- bytes of content
    mtime_ns INTEGER NOT NULL,  -- modification time the revision was committed with
    mode INTEGER NOT NULL,  -- the file's permission bits when the revision was made
    author_id INTEGER NOT NULL REFERENCES users (id),  -- user who committed it
    device TEXT NOT NULL,  -- device name the commit came from; '' = not reported
    created_ns INTEGER NOT NULL,  -- server time of the commit
    PRIMARY KEY (node_id, number)
) WITHOUT ROWID""",
    """
CREATE TABLE revision_blocks (
    node_id INTEGER NOT NULL,  -- the file (with revision: the revisions row)
    revision INTEGER NOT NULL,  -- revisions.number
    block_index INTEGER NOT NULL CHECK (block_index >= 0),  -- position in the revision, 0-based
    hash BLOB NOT NULL CHECK (length(hash) = 32),
        -- BLAKE3-256 of the plaintext block: its key in blockd
    file_offset INTEGER NOT NULL CHECK (file_offset >= 0),
        -- where the block starts; blocks are contiguous from 0
    size INTEGER NOT NULL CHECK (size > 0),  -- bytes in the block
    PRIMARY KEY (node_id, revision, block_index),
    FOREIGN KEY (node_id, revision) REFERENCES revisions (node_id, number)
) WITHOUT ROWID""",
    # Garbage collection asks which hashes are still referenced.
    "CREATE INDEX revision_blocks_hash ON revision_blocks (hash)",
    """
CREATE TABLE changes (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
        -- journal position: strictly increasing in commit order, never reused
    owner_id INTEGER NOT NULL REFERENCES users (id),
        -- drive the change happened in (subscriptions filter on it)
    kind TEXT NOT NULL CHECK (kind IN ('created', 'edited', 'moved', 'deleted',
                                       'attributes', 'restored', 'shared', 'unshared')),
        -- what happened
    node_id INTEGER NOT NULL REFERENCES nodes (id),  -- the node it happened to
    node_kind TEXT NOT NULL CHECK (node_kind IN ('dir', 'file', 'symlink')),
        -- nodes.kind, so readers need no join
    parent_id INTEGER,
        -- where the node is after the change (deleted: where it was); NULL for a drive root
    name TEXT NOT NULL,  -- its name after the change (deleted: its last name)
    old_parent_id INTEGER,  -- moved: the directory it was in before; NULL for other kinds
    old_name TEXT,  -- moved: its name before; NULL for other kinds
    revision INTEGER NOT NULL DEFAULT 0,
        -- edited: the new revision number; created file: 1; 0 otherwise
    actor_id INTEGER NOT NULL REFERENCES users (id),  -- user who made the change
    device TEXT NOT NULL,  -- device name the change came from; '' = not reported
    time_ns INTEGER NOT NULL,  -- server time of the commit
    replaced_node_id INTEGER REFERENCES nodes (id)
        -- moved over an existing entry: the node it replaced (now deleted); NULL otherwise
)""",
    "CREATE INDEX changes_owner ON changes (owner_id, sequence)",
    """
CREATE TABLE shares (
    node_id INTEGER NOT NULL REFERENCES nodes (id),  -- the shared directory or file
    user_id INTEGER NOT NULL REFERENCES users (id),  -- the user it is shared with
    role TEXT NOT NULL CHECK (role IN ('read', 'write')),
        -- what that user may do (the owner needs no row)
    created_ns INTEGER NOT NULL,  -- when it was shared
    PRIMARY KEY (node_id, user_id)
) WITHOUT ROWID""",
    "CREATE INDEX shares_user ON shares (user_id)",
    """
CREATE TABLE schema_version (
    version INTEGER PRIMARY KEY,
        -- a schema version this database was migrated to (PRAGMA user_version holds the current
        -- one)
    applied_ns INTEGER NOT NULL  -- when that migration committed
)""",
)

# Version 2: the garbage collection fence.
_V2: tuple[str, ...] = (
    """
CREATE TABLE condemned_blocks (
    hash BLOB PRIMARY KEY,
        -- BLAKE3-256 of a block no revision referred to when blockd's collector asked;
        -- CommitRevision refuses it until the collector has deleted it and released the row
    condemned_ns INTEGER NOT NULL  -- when it was condemned
) WITHOUT ROWID""",
)

# Version 3: accounts. Users sign in; some administer. SQLite cannot add a
# commented column in place, so the table is rebuilt (foreign keys are not
# enforced while migrating; migrate() checks them before each commit).
_V3: tuple[str, ...] = (
    """
CREATE TABLE users_v3 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
        -- stable user id, never reused; 1 = the administrator made at first start
    name TEXT NOT NULL UNIQUE,  -- login name (metad/rules.py: letters, digits, . _ -)
    password_hash TEXT,
        -- "scrypt$N$r$p$salt$digest" (metad/passwords.py); NULL = no password: cannot sign in
        -- with one (the embedded first user signs in with the drive's key)
    quota_bytes INTEGER NOT NULL DEFAULT 0 CHECK (quota_bytes >= 0),  -- 0 = unlimited
    admin INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
        -- 1 = may create users, set quotas and run maintenance
    root_node_id INTEGER REFERENCES nodes (id),
        -- root directory of the user's drive; NULL only while the user is being created
    created_ns INTEGER NOT NULL  -- ns since the Unix epoch (as every *_ns column)
)""",
    "INSERT INTO users_v3 (id, name, password_hash, quota_bytes, admin, root_node_id, created_ns)"
    " SELECT id, name, password_hash, quota_bytes, id = 1, root_node_id, created_ns FROM users",
    "DROP TABLE users",
    "ALTER TABLE users_v3 RENAME TO users",
)

# Version 4: sharing, trash and snapshots. (New tables rather than new
# columns: SQLite appends an added column after the table's last line, which
# here ends in a comment.)
_V4: tuple[str, ...] = (
    """
CREATE TABLE share_changes (
    sequence INTEGER PRIMARY KEY REFERENCES changes (sequence),
        -- a 'shared' or 'unshared' journal row
    user_id INTEGER NOT NULL REFERENCES users (id),
        -- the user the share is (or was) for: the row reaches their subscriptions too
    role TEXT CHECK (role IN ('read', 'write'))  -- shared: the role granted; NULL for unshared
)""",
    "CREATE INDEX share_changes_user ON share_changes (user_id, sequence)",
    """
CREATE TABLE purged_nodes (
    node_id INTEGER PRIMARY KEY REFERENCES nodes (id),
        -- a deleted node whose revisions the trash let go of for good (emptied or expired)
    purged_ns INTEGER NOT NULL  -- when
)""",
    # Snapshots: every node ever in a folder, then each one's last change before a time.
    "CREATE INDEX changes_parent ON changes (parent_id, node_id)",
    "CREATE INDEX changes_node ON changes (node_id, sequence)",
    "CREATE INDEX changes_replaced ON changes (replaced_node_id, sequence)"
    " WHERE replaced_node_id IS NOT NULL",
    # Trash: a deleted folder's whole tree (deleted children included); the purge.
    "CREATE INDEX nodes_parent ON nodes (parent_id)",
    "CREATE INDEX nodes_trash ON nodes (owner_id, deleted_ns) WHERE deleted_ns IS NOT NULL",
    # Retention: revisions old enough to be thinned.
    "CREATE INDEX revisions_created ON revisions (created_ns)",
)

# Version 5: trust. Revocations per user, the request log that makes retried
# changes idempotent, and the 'damaged' journal kind (the journal is rebuilt:
# its kind CHECK cannot be altered in place).
_V5: tuple[str, ...] = (
    """
CREATE TABLE user_security (
    user_id INTEGER PRIMARY KEY REFERENCES users (id),  -- whose tokens and grants
    token_generation INTEGER NOT NULL DEFAULT 0 CHECK (token_generation >= 0),
        -- tokens carrying an older generation are refused; raised by a password change
    grants_not_before_ms INTEGER NOT NULL DEFAULT 0,
        -- block grants issued before this (Unix ms) are refused: a password change, a
        -- disabled account or a share taken away
    disabled_ns INTEGER  -- when the account was disabled; NULL = enabled
) WITHOUT ROWID""",
    """
CREATE TABLE request_log (
    user_id INTEGER NOT NULL REFERENCES users (id),  -- who made the change
    request_id TEXT NOT NULL,  -- the id the client gave the change (1..128 characters)
    request_digest BLOB NOT NULL,
        -- BLAKE2b-128 of the method and request, so an id reused for another request is refused
    result BLOB NOT NULL,  -- the change's result as the store returned it (pickled)
    created_ns INTEGER NOT NULL,  -- when it was applied; rows older than a day are purged
    PRIMARY KEY (user_id, request_id)
) WITHOUT ROWID""",
    "CREATE INDEX request_log_created ON request_log (created_ns)",
    """
CREATE TABLE changes_v5 (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
        -- journal position: strictly increasing in commit order, never reused
    owner_id INTEGER NOT NULL REFERENCES users (id),
        -- drive the change happened in (subscriptions filter on it)
    kind TEXT NOT NULL CHECK (kind IN ('created', 'edited', 'moved', 'deleted',
                                       'attributes', 'restored', 'shared', 'unshared',
                                       'damaged')),
        -- what happened; 'damaged': storage found a block of the file damaged
    node_id INTEGER NOT NULL REFERENCES nodes (id),  -- the node it happened to
    node_kind TEXT NOT NULL CHECK (node_kind IN ('dir', 'file', 'symlink')),
        -- nodes.kind, so readers need no join
    parent_id INTEGER,
        -- where the node is after the change (deleted: where it was); NULL for a drive root
    name TEXT NOT NULL,  -- its name after the change (deleted: its last name)
    old_parent_id INTEGER,  -- moved: the directory it was in before; NULL for other kinds
    old_name TEXT,  -- moved: its name before; NULL for other kinds
    revision INTEGER NOT NULL DEFAULT 0,
        -- edited: the new revision number; created file: 1; 0 otherwise
    actor_id INTEGER NOT NULL REFERENCES users (id),
        -- user who made the change ('damaged': the file's owner)
    device TEXT NOT NULL,  -- device name the change came from; '' = not reported
    time_ns INTEGER NOT NULL,  -- server time of the commit
    replaced_node_id INTEGER REFERENCES nodes (id)
        -- moved over an existing entry: the node it replaced (now deleted); NULL otherwise
)""",
    "INSERT INTO changes_v5 SELECT * FROM changes",
    # Sequences are never reused, not even those of rows a future version might drop.
    "UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence"
    " WHERE name = 'changes')) WHERE name = 'changes_v5'",
    "DROP TABLE changes",
    "ALTER TABLE changes_v5 RENAME TO changes",
    "CREATE INDEX changes_owner ON changes (owner_id, sequence)",
    "CREATE INDEX changes_parent ON changes (parent_id, node_id)",
    "CREATE INDEX changes_node ON changes (node_id, sequence)",
    "CREATE INDEX changes_replaced ON changes (replaced_node_id, sequence)"
    " WHERE replaced_node_id IS NOT NULL",
)

# Version 6: POSIX ownership, special files, access times, hard links (a
# node's further names live in links) and extended attributes (kept with each
# revision too). The nodes table
# and the journal are rebuilt (their kind CHECKs widen); ids and sequences
# carry on where they were.
_V6: tuple[str, ...] = (
    """
CREATE TABLE nodes_v6 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
        -- stable node id; AUTOINCREMENT so ids of deleted nodes are never reused
    owner_id INTEGER NOT NULL REFERENCES users (id),  -- user whose drive holds the node
    parent_id INTEGER REFERENCES nodes (id),
        -- containing directory; NULL for a drive root; kept after deletion (its last place,
        -- for restore)
    name TEXT NOT NULL,
        -- entry name, 1..255 bytes of UTF-8 without '/' or NUL; '' for a drive root;
        -- kept after deletion
    kind TEXT NOT NULL CHECK (kind IN ('dir', 'file', 'symlink', 'fifo', 'chardev', 'blockdev',
                                       'socket')),
        -- directory, regular file, symbolic link, or a special file without content
    mode INTEGER NOT NULL CHECK (mode BETWEEN 0 AND 4095),
        -- permission bits with setuid, setgid and sticky (07777); 0777 for symlinks
    mtime_ns INTEGER NOT NULL,
        -- modification time (content; for directories: entries added/removed/renamed)
    ctime_ns INTEGER NOT NULL,  -- last change of content, attributes or place
    revision INTEGER NOT NULL DEFAULT 0,
        -- files: current revision number (1 = the empty file CreateFile makes); 0 otherwise
    size INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
        -- files: bytes of the current revision; symlinks: bytes of the target; others: 0
    symlink_target TEXT,  -- symlinks: the target path as given; NULL for other kinds
    deleted_ns INTEGER,
        -- NULL while alive; once deleted: when it left the namespace (its revisions stay,
        -- for trash/restore)
    change_sequence INTEGER NOT NULL DEFAULT 0,
        -- changes.sequence of the node's last change; 0 = none (a drive root at creation)
    uid INTEGER CHECK (uid BETWEEN 0 AND 4294967295),
        -- POSIX owner as the device that set it numbers it; NULL = never set (shown as the
        -- mounting user)
    gid INTEGER CHECK (gid BETWEEN 0 AND 4294967295),  -- POSIX group; NULL as for uid
    rdev INTEGER NOT NULL DEFAULT 0 CHECK (rdev >= 0),  -- devices: the device number; else 0
    atime_ns INTEGER,  -- last access (relatime); NULL = as mtime_ns
    CHECK ((parent_id IS NULL) = (name = ''))
)""",
    "INSERT INTO nodes_v6 (id, owner_id, parent_id, name, kind, mode, mtime_ns, ctime_ns,"
    " revision, size, symlink_target, deleted_ns, change_sequence)"
    " SELECT id, owner_id, parent_id, name, kind, mode, mtime_ns, ctime_ns, revision, size,"
    " symlink_target, deleted_ns, change_sequence FROM nodes",
    "UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence"
    " WHERE name = 'nodes')) WHERE name = 'nodes_v6'",
    "DROP TABLE nodes",
    "ALTER TABLE nodes_v6 RENAME TO nodes",
    "CREATE UNIQUE INDEX nodes_live_name ON nodes (parent_id, name) WHERE deleted_ns IS NULL",
    "CREATE INDEX nodes_live_children ON nodes (parent_id, id) WHERE deleted_ns IS NULL",
    "CREATE INDEX nodes_live_owner ON nodes (owner_id, kind) WHERE deleted_ns IS NULL",
    "CREATE INDEX nodes_parent ON nodes (parent_id)",
    "CREATE INDEX nodes_trash ON nodes (owner_id, deleted_ns) WHERE deleted_ns IS NOT NULL",
    # A directory's st_nlink counts its live subdirectories.
    "CREATE INDEX nodes_live_subdirectories ON nodes (parent_id)"
    " WHERE deleted_ns IS NULL AND kind = 'dir'",
    """
CREATE TABLE links (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
        -- stable id of the name; a listing resumes after it at LINK_ENTRY_BASE + id
    node_id INTEGER NOT NULL REFERENCES nodes (id),
        -- the node it names: a live file, symlink or special file, never a directory
    parent_id INTEGER NOT NULL REFERENCES nodes (id),  -- the directory the name is in
    name TEXT NOT NULL,
        -- 1..255 bytes of UTF-8 without '/' or NUL; unique in its directory among links and
        -- live nodes' own names alike
    created_ns INTEGER NOT NULL  -- when it was made
)""",
    "CREATE UNIQUE INDEX links_name ON links (parent_id, name)",
    "CREATE INDEX links_node ON links (node_id)",
    """
CREATE TABLE xattrs (
    node_id INTEGER NOT NULL REFERENCES nodes (id),  -- the node
    name TEXT NOT NULL,  -- the attribute's full name, namespace first: "user.origin"
    value BLOB NOT NULL,  -- its value, at most 64 KiB
    PRIMARY KEY (node_id, name)
) WITHOUT ROWID""",
    """
CREATE TABLE revision_xattrs (
    node_id INTEGER NOT NULL,  -- the file (with revision: the revisions row)
    revision INTEGER NOT NULL,  -- revisions.number
    name TEXT NOT NULL,  -- an extended attribute the file had when the revision was made
    value BLOB NOT NULL,  -- its value then (a restore brings it back)
    PRIMARY KEY (node_id, revision, name),
    FOREIGN KEY (node_id, revision) REFERENCES revisions (node_id, number)
) WITHOUT ROWID""",
    """
CREATE TABLE changes_v6 (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
        -- journal position: strictly increasing in commit order, never reused
    owner_id INTEGER NOT NULL REFERENCES users (id),
        -- drive the change happened in (subscriptions filter on it)
    kind TEXT NOT NULL CHECK (kind IN ('created', 'edited', 'moved', 'deleted',
                                       'attributes', 'restored', 'shared', 'unshared',
                                       'damaged', 'linked', 'unlinked')),
        -- what happened; 'damaged': storage found a block of the file damaged;
        -- 'linked'/'unlinked': a name of the node (a hard link) was added/removed, the
        -- node staying (parent_id, name: its place; old_parent_id, old_name: that name)
    node_id INTEGER NOT NULL REFERENCES nodes (id),  -- the node it happened to
    node_kind TEXT NOT NULL CHECK (node_kind IN ('dir', 'file', 'symlink', 'fifo', 'chardev',
                                                 'blockdev', 'socket')),
        -- nodes.kind, so readers need no join
    parent_id INTEGER,
        -- where the node is after the change (deleted: where it was); NULL for a drive root
    name TEXT NOT NULL,  -- its name after the change (deleted: its last name)
    old_parent_id INTEGER,
        -- moved: the directory it was in before; linked/unlinked: that name's directory
    old_name TEXT,  -- moved: its name before; linked/unlinked: that name
    revision INTEGER NOT NULL DEFAULT 0,
        -- edited: the new revision number; created file: 1; 0 otherwise
    actor_id INTEGER NOT NULL REFERENCES users (id),
        -- user who made the change ('damaged': the file's owner)
    device TEXT NOT NULL,  -- device name the change came from; '' = not reported
    time_ns INTEGER NOT NULL,  -- server time of the commit
    replaced_node_id INTEGER REFERENCES nodes (id)
        -- moved over an existing entry: the node it replaced (now deleted); NULL otherwise
)""",
    "INSERT INTO changes_v6 SELECT * FROM changes",
    "UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence"
    " WHERE name = 'changes')) WHERE name = 'changes_v6'",
    "DROP TABLE changes",
    "ALTER TABLE changes_v6 RENAME TO changes",
    "CREATE INDEX changes_owner ON changes (owner_id, sequence)",
    "CREATE INDEX changes_parent ON changes (parent_id, node_id)",
    "CREATE INDEX changes_node ON changes (node_id, sequence)",
    "CREATE INDEX changes_replaced ON changes (replaced_node_id, sequence)"
    " WHERE replaced_node_id IS NOT NULL",
)

# Version 7: node ids reserved to a user, for nodes their devices make offline
# first (metad/reservations.py). Reserving moves sqlite_sequence's 'nodes' row
# past the range, so ordinary creates never land in it.
_V7: tuple[str, ...] = (
    """
CREATE TABLE node_id_reservations (
    first_id INTEGER PRIMARY KEY,  -- the first node id of the range
    last_id INTEGER NOT NULL CHECK (last_id >= first_id),
        -- the last node id of the range (included); ranges never overlap
    user_id INTEGER NOT NULL REFERENCES users (id),
        -- the only user who may create nodes with these ids; each id makes one node at most
        -- (its nodes row, never deleted, says it is used)
    created_ns INTEGER NOT NULL  -- when it was reserved
)""",
)

# Version 8: the drive's own settings in its database, so that every metad
# sharing one (PostgreSQL replicas) tells clients the same drive id.
_V8: tuple[str, ...] = (
    """
CREATE TABLE drive_settings (
    name TEXT PRIMARY KEY,
        -- 'drive_id': the drive's id (32 hex digits), made at its first start and told to
        -- clients (Accounts.GetDrive); metad keeps a copy in DATA/metad/drive.id
    value TEXT NOT NULL  -- the setting's value
) WITHOUT ROWID""",
)

# Version 9: each user's usage kept as a running total, so a commit's quota check
# reads one row instead of adding up every live file the owner has (which made a
# burst of N new files cost N^2/2 rows read). Triggers keep it: every change of a
# node's size, kind, owner or trashing passes through them, whatever the query.
_V9: tuple[str, ...] = (
    # SQLite keeps an added column's text as given: its comment is a /* */ one.
    "ALTER TABLE users ADD COLUMN used_bytes INTEGER NOT NULL DEFAULT 0"
    " /* the sum of the sizes of the user's live (not trashed) files; kept by triggers */",
    "UPDATE users SET used_bytes = (SELECT COALESCE(SUM(size), 0) FROM nodes"
    " WHERE owner_id = users.id AND kind = 'file' AND deleted_ns IS NULL)",
    """
CREATE TRIGGER nodes_used_insert AFTER INSERT ON nodes
WHEN NEW.kind = 'file' AND NEW.deleted_ns IS NULL
BEGIN
    UPDATE users SET used_bytes = used_bytes + NEW.size WHERE id = NEW.owner_id;
END""",
    """
CREATE TRIGGER nodes_used_delete AFTER DELETE ON nodes
WHEN OLD.kind = 'file' AND OLD.deleted_ns IS NULL
BEGIN
    UPDATE users SET used_bytes = used_bytes - OLD.size WHERE id = OLD.owner_id;
END""",
    """
CREATE TRIGGER nodes_used_update AFTER UPDATE OF size, kind, owner_id, deleted_ns ON nodes
BEGIN
    UPDATE users SET used_bytes = used_bytes - OLD.size
        WHERE id = OLD.owner_id AND OLD.kind = 'file' AND OLD.deleted_ns IS NULL;
    UPDATE users SET used_bytes = used_bytes + NEW.size
        WHERE id = NEW.owner_id AND NEW.kind = 'file' AND NEW.deleted_ns IS NULL;
END""",
)

# Version 10: the usage triggers write a user's row only when the total changes,
# and once per change. A new file is empty, and a commit changes a size: the
# version 9 triggers wrote the owner's row on a create (+0) and twice on a
# commit (-old, +new). On PostgreSQL every write of a row is a new version of
# it that the rest of the transaction steps over, so a batch of N files made N
# row versions cost N^2 (schema_postgres.py has that engine's step).
_V10: tuple[str, ...] = (
    "DROP TRIGGER nodes_used_insert",
    "DROP TRIGGER nodes_used_update",
    """
CREATE TRIGGER nodes_used_insert AFTER INSERT ON nodes
WHEN NEW.kind = 'file' AND NEW.deleted_ns IS NULL AND NEW.size <> 0
BEGIN
    UPDATE users SET used_bytes = used_bytes + NEW.size WHERE id = NEW.owner_id;
END""",
    """
CREATE TRIGGER nodes_used_update AFTER UPDATE OF size, kind, owner_id, deleted_ns ON nodes
BEGIN
    UPDATE users SET used_bytes = used_bytes
        + (CASE WHEN NEW.kind = 'file' AND NEW.deleted_ns IS NULL THEN NEW.size ELSE 0 END)
        - (CASE WHEN OLD.kind = 'file' AND OLD.deleted_ns IS NULL THEN OLD.size ELSE 0 END)
        WHERE id = NEW.owner_id AND OLD.owner_id = NEW.owner_id
        AND (CASE WHEN NEW.kind = 'file' AND NEW.deleted_ns IS NULL THEN NEW.size ELSE 0 END)
        <> (CASE WHEN OLD.kind = 'file' AND OLD.deleted_ns IS NULL THEN OLD.size ELSE 0 END);
    UPDATE users SET used_bytes = used_bytes - OLD.size
        WHERE id = OLD.owner_id AND OLD.owner_id <> NEW.owner_id
        AND OLD.kind = 'file' AND OLD.deleted_ns IS NULL;
    UPDATE users SET used_bytes = used_bytes + NEW.size
        WHERE id = NEW.owner_id AND OLD.owner_id <> NEW.owner_id
        AND NEW.kind = 'file' AND NEW.deleted_ns IS NULL;
END""",
)

# MIGRATIONS[n] takes a database from version n - 1 to version n.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: _V1,
    2: _V2,
    3: _V3,
    4: _V4,
    5: _V5,
    6: _V6,
    7: _V7,
    8: _V8,
    9: _V9,
    10: _V10,
}


def user_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0]) if row else 0


def migrate_sqlite(conn: sqlite3.Connection) -> int:
    """Brings the database to SCHEMA_VERSION, one committed step per version.

    The connection must be in autocommit mode (isolation_level=None). Returns
    the version reached. Raises SchemaTooNew for a database from a newer metad.
    """
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read inside the write transaction: another process may have migrated meanwhile.
            current = user_version(conn)
            if current > SCHEMA_VERSION:
                raise SchemaTooNew(
                    f"the database has schema version {current}, newer than this metad "
                    f"supports ({SCHEMA_VERSION}); upgrade metad"
                )
            if current == SCHEMA_VERSION:
                conn.execute("COMMIT")
                return current
            target = current + 1
            for statement in MIGRATIONS[target]:
                conn.execute(statement)
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise StartupError(
                    f"migration to schema version {target} broke {len(broken)} references"
                )
            conn.execute(
                "INSERT INTO schema_version (version, applied_ns) VALUES (?, ?)",
                (target, time.time_ns()),
            )
            # PRAGMA takes no parameters; target is an int from our own table.
            conn.execute(f"PRAGMA user_version = {int(target)}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
