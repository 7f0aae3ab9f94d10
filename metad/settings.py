"""The drive's own settings, kept in its database: today its id.

Owns the drive_settings table. Every metad sharing a database (PostgreSQL
replicas) must tell clients the same drive id, so the database holds it; the
first metad to start puts its own there and the others adopt it. Runs on the
writer's thread inside the write's transaction.

Must not: know files or gRPC (server.py keeps DATA/metad/drive.id in step).
"""

from __future__ import annotations

from metad import rows
from metad.transaction import Transaction

DRIVE_ID = "drive_id"


def adopt(tx: Transaction, name: str, proposed: str) -> str:
    """The setting's value: the one stored, or proposed if none was."""
    tx.conn.execute(
        "INSERT INTO drive_settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        (name, proposed),
    )
    row = rows.fetch_one(tx.conn, "SELECT value FROM drive_settings WHERE name = ?", (name,))
    return str(row[0])
