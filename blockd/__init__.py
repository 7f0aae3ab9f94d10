"""blockd: the block daemon of drivefs.

Stores file content as content-addressed blocks (BLAKE3-256 of the plaintext)
and serves them over the gRPC service drive.v1.Blocks. Layers, each knowing
only the one below: server (assembly) → service (proto ↔ domain) → store
(dedup, verification, counters) → backends (object stores).
"""
