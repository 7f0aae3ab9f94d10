"""Blocking clients of metad and blockd, called from trio worker threads.

Owns: protobuf ↔ domain values, deadlines, retries, the proofs that go with
blocks (grants from metad, receipts from blockd, kept in a GrantBook), and
gRPC status → domain error (the one place that mapping lives on the client
side). Must not know about inodes, FUSE or caching.

    rpc       channels, deadlines (patience: a program's calls; stalled streams),
              retries, request ids, status → error
    proofs    GrantBook: grants and receipts
    metadata  MetadataClient
    metadata_wire  its messages: protobuf ↔ domain values
    change_stream  ChangeStream: Subscribe's events as Change values
    blocks    BlockClient
    accounts  AccountsClient
"""

from fusefs.clients.accounts import Account, AccountsClient, SignedIn
from fusefs.clients.blocks import BlockClient, BlockProblem, ScrubProgress
from fusefs.clients.change_stream import ChangeStream
from fusefs.clients.metadata import MetadataClient
from fusefs.clients.proofs import Grant, GrantBook
from fusefs.clients.rpc import patience, request_id, translate

__all__ = [
    "Account",
    "AccountsClient",
    "BlockClient",
    "BlockProblem",
    "ChangeStream",
    "Grant",
    "GrantBook",
    "MetadataClient",
    "ScrubProgress",
    "SignedIn",
    "patience",
    "request_id",
    "translate",
]
