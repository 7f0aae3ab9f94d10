"""metad: the metadata daemon of drivefs.

Owns the versioned tree of every drive (nodes, file revisions and their block
lists), the change journal and its live fan-out, served over gRPC as
drive.v1.Metadata. It never sees file content: blocks live in blockd.

Layers, each importing only the ones below it:
__main__ (arguments, logging) → server (assembly) → service (proto ↔ domain,
errors → status) → store (SQL, transactions) → schema (DDL, migrations);
changes (commit notification, journal streaming), rules (pure checks),
models and errors are shared domain vocabulary.
"""
