"""blockd: the block daemon of drivefs.

Stores file content as content-addressed blocks (BLAKE3-256 of the plaintext)
and serves them over the gRPC service drive.v1.Blocks. Layers, each knowing
only the one below: server (assembly) → service (proto ↔ domain) → store
(dedup, verification, counters, hot blocks) → backends: the codec wrapper
(zstd + AES-256-GCM, keys from `keys`) around a local directory or an S3
bucket, both retrying transient failures under the one policy of `retry`.
"""
