"""Set-based writes for a batch's runs of edits: new revisions of one's own files.

The sync of edited files sends, for each, a CommitRevision based on the
revision it read. Run one by one that is ~10 statements and 3 waits per
file; this module checks a run of them with one query per kind of check (the
files, the blocks they keep, the quota, condemned blocks, request ids), all
sent before any is read, and writes it with one multi-row INSERT per table
(revisions, their blocks, the journal), one UPDATE of the files from a VALUES
list and one of their journal stamps.

It accepts only the plain case and proves it will succeed: every file
live, a regular file, the caller's own, at its base revision (>= 2: the
empty revision 1 a create leaves is dropped one by one), each file once in
the run, every block vouched by a receipt or kept from the file's base
revision (possession.py's first rule), the owner's quota passed by each
growth in turn, no block condemned. Anything else (someone else's file, a
file deleted or edited meanwhile, a quota crossed, a retried request id)
returns None and bulk.py runs the whole run one by one, which gives every
commit its own outcome; the test suite compares the two. Three checks are
also made by the database, and stay so that such a run turns back before
it writes rather than at an error: a file twice in the run (revisions' key), a
request id applied before (request_log's key, and its file's base revision
has passed), and a node that is not a regular file (only files have
revisions).

Journal order: the run's EDITED rows are one INSERT in the commits' order,
in the write transaction that holds the engine's writer lock (schema.py).

Must not: run or commit a transaction (the engine does), know gRPC, or
decide what a commit means (edits.py does; this writes the same rows for the
cases it accepts).
"""

from __future__ import annotations

from dataclasses import replace

from metad import edits, plain
from metad.models import ChangeKind, Node, NodeKind
from metad.plain import PlainCommit, chunks, marks
from metad.transaction import Transaction


def write(tx: Transaction, commits: list[PlainCommit], keys: list) -> list[Node] | None:
    """Checks then writes the commits; their results in order, or None when a check
    fails (nothing written then). keys: the commits' request ids (None: none)."""
    conn = tx.conn
    user_id = commits[0].actor.user_id
    ids = [commit.node_id for commit in commits]
    if any(commit.actor.user_id != user_id for commit in commits) or len(set(ids)) != len(ids):
        return None
    if any(commit.base_revision < 2 for commit in commits):
        return None
    unvouched = sorted({c.node_id for c in commits for block in c.blocks if not block.vouched})
    # Every question goes out before any answer is read: one wait for all.
    applied = plain.ask_applied(conn, user_id, [key for key in keys if key is not None])
    files = plain.ask_own_live(conn, user_id, ids)
    kept = [
        conn.ahead(
            "SELECT revision_blocks.node_id, hash, revision_blocks.size FROM revision_blocks"
            " JOIN nodes ON nodes.id = revision_blocks.node_id"
            " AND revision_blocks.revision = nodes.revision"
            f" WHERE revision_blocks.node_id IN ({marks(chunk)})",
            chunk,
        )
        for chunk in chunks(unvouched)
    ]
    room = plain.ask_room(conn, user_id)
    probe = conn.ahead(edits.ANY_CONDEMNED)
    if applied():
        return None
    found = files()
    nodes: list[Node] = []
    for commit in commits:
        node = found.get(commit.node_id)
        if node is None or node.kind is not NodeKind.FILE or node.revision != commit.base_revision:
            return None
        nodes.append(edits.with_attributes(node, commit.attributes))
    proven = {(row[0], bytes(row[1]), row[2]) for cursor in kept for row in cursor.fetchall()}
    for commit in commits:
        for block in commit.blocks:
            if not block.vouched and (commit.node_id, block.hash, block.size) not in proven:
                return None  # possession's other rules: one by one
    if not room([commit.size - node.size for commit, node in zip(commits, nodes, strict=True)]):
        return None
    hashes = {block.hash for commit in commits for block in commit.blocks}
    if edits.condemned_among(conn, hashes, probe):
        return None
    return _insert(tx, commits, nodes)


def _insert(tx: Transaction, commits: list[PlainCommit], nodes: list[Node]) -> list[Node]:
    """Writes what the commits leave behind (edits.commit_revision's rows); their results."""
    conn, now = tx.conn, tx.now_ns
    revisions, blocks, updates, journal = [], [], [], []
    edited: list[Node] = []
    for commit, node in zip(commits, nodes, strict=True):
        number = node.revision + 1
        mtime = commit.mtime_ns or now
        actor = commit.actor
        revisions.append(
            (node.id, number, commit.size, mtime, node.mode, actor.user_id, actor.device, now)
        )
        blocks += [
            (node.id, number, index, block.hash, block.offset, block.size)
            for index, block in enumerate(commit.blocks)
        ]
        updates.append(
            (node.id, number, commit.size, mtime, now, node.mode, node.uid, node.gid, node.atime_ns)
        )
        journal.append(
            (node.owner_id, ChangeKind.EDITED.value, node.id, NodeKind.FILE.value, node.parent_id,
             node.name, None, None, number, actor.user_id, actor.device, now, None)
        )  # fmt: skip
        edited.append(
            replace(node, revision=number, size=commit.size, mtime_ns=mtime, ctime_ns=now)
        )
    ids = [node.id for node in nodes]
    plain.insert_rows(
        conn,
        "INSERT INTO revisions (node_id, number, size, mtime_ns, mode, author_id, device,"
        " created_ns)",
        revisions,
    )
    for chunk in chunks(ids):  # the files' attributes now, kept with the new revision
        conn.execute(
            "INSERT INTO revision_xattrs (node_id, revision, name, value)"
            " SELECT xattrs.node_id, nodes.revision + 1, xattrs.name, xattrs.value FROM xattrs"
            f" JOIN nodes ON nodes.id = xattrs.node_id WHERE xattrs.node_id IN ({marks(chunk)})",
            chunk,
        )
    if blocks:
        plain.insert_rows(
            conn,
            "INSERT INTO revision_blocks (node_id, revision, block_index, hash, file_offset, size)",
            blocks,
        )
    for chunk in chunks(updates):
        listed, flat = plain.rows_of(chunk)
        # CAST: a column of NULLs alone (no uid) would be text to PostgreSQL.
        conn.execute(
            "UPDATE nodes SET revision = CAST(v.column2 AS BIGINT),"
            " size = CAST(v.column3 AS BIGINT), mtime_ns = CAST(v.column4 AS BIGINT),"
            " ctime_ns = CAST(v.column5 AS BIGINT), mode = CAST(v.column6 AS BIGINT),"
            " uid = CAST(v.column7 AS BIGINT), gid = CAST(v.column8 AS BIGINT),"
            " atime_ns = CAST(v.column9 AS BIGINT)"
            f" FROM (VALUES {listed}) AS v"
            " WHERE nodes.id = CAST(v.column1 AS BIGINT)",
            flat,
        )
    sequences = plain.journal(tx, journal)()
    return [
        replace(node, change_sequence=sequences[(node.id, ChangeKind.EDITED.value)])
        for node in edited
    ]
