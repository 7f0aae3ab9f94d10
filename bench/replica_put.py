"""µs per Replica.put, next to a put that also reads the node back from its row (what
put did before it kept the node it was given), in one run.

Puts --nodes new nodes, then the same nodes again --rounds times with a newer change
sequence (an update: what landing a batch does to nodes the replica holds), flushing
as the mount does; prints the best round of each (the machine is shared: the best is
the least disturbed).

    .venv/bin/python bench/replica_put.py [--nodes 5000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fusefs.models import Kind, Node
from fusefs.mount.replica import Replica
from fusefs.mount.replica_rows import node_of, node_row


def _nodes(count: int, sequence: int) -> list[Node]:
    def node(i: int) -> Node:
        return Node(
            id=i + 2, parent_id=1, name=f"f{i}", kind=Kind.FILE, mode=0o644, size=i,
            mtime_ns=i, ctime_ns=i, revision=1, symlink_target="", change_sequence=sequence,
            owner_id=1, entry_id=i + 2,
        )  # fmt: skip

    return [node(i) for i in range(count)]


def _best_us(replica: Replica, put: Callable[[Node], None], count: int, sequences: range) -> float:
    best = float("inf")
    for sequence in sequences:  # each round newer than the last: every put writes
        nodes = _nodes(count, sequence)
        started = time.perf_counter()
        for node in nodes:
            put(node)
        best = min(best, (time.perf_counter() - started) / count * 1e6)
        replica.flush()
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=20)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        replica = Replica(Path(folder) / "replica.sqlite3", drive="bench")
        try:
            for node in _nodes(args.nodes, 1):
                replica.put(node)
            replica.flush()

            def read_back(node: Node) -> None:
                replica.put(node)
                node_of(node_row(node))

            rounds = args.rounds
            kept = _best_us(replica, replica.put, args.nodes, range(2, 2 + rounds))
            before = _best_us(replica, read_back, args.nodes, range(2 + rounds, 2 + 2 * rounds))
        finally:
            replica.close()
    print(f"update of {args.nodes} nodes, best of {args.rounds} rounds:")
    print(f"  put (keeps the node given)      {kept:6.2f} µs")
    print(f"  put + node read from its row    {before:6.2f} µs  (what put did before)")


if __name__ == "__main__":
    main()
