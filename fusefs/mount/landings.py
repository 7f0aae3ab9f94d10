"""What the synchronizer tells the layer above about what it sent (values, not calls).

Each value carries a `done` the receiver calls once it has recorded the
outcome: until then the journal's row still shows in what the mount answers,
so a stat never falls back to the state before the change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from fusefs.models import BlockRef, Node, Removed, Renamed
from fusefs.mount.journal_rows import PendingChange


def _nothing() -> None:
    pass


@dataclass(frozen=True, slots=True)
class Landed:
    """Content closed as node_id reached the drive: as node (node.id differs: a copy)."""

    node_id: int
    node: Node
    blocks: tuple[BlockRef, ...]  # of the revision it made
    why: str = ""  # a copy, or a file made elsewhere: why not where it was
    made: PendingChange | None = None  # a node made here: its row (where it was made)
    attributes: bool = False  # only its attributes were set (blocks: none)
    # A node made here whose first content landed with it: the ctime metad made it with
    # (its folder's times moved to that; node's is the commit's).
    made_ns: int = 0
    # What the journal drops of it, called by the receiver once it has recorded the
    # outcome (until then the journal's row still shows in what the mount answers).
    done: Callable[[], None] = _nothing


@dataclass(frozen=True, slots=True)
class EntrySettled:
    """What metad made of a removal, rename or link made offline (a DELETE, RENAME or
    LINK row; a link's outcome is the node as its new name shows it)."""

    row: PendingChange
    outcome: Renamed | Removed | Node | None
    refused: str = ""  # why metad did not apply it (outcome None)
    done: Callable[[], None] = _nothing  # as Landed.done


def coalesced(landings: Iterable[Landed | EntrySettled]) -> Iterator[Landed | EntrySettled]:
    """landings, with a file made here and its first content (two rows of one batch,
    one after the other) told as one landing: recorded once, not twice."""
    held: Landed | None = None
    for item in landings:
        if held is not None:
            if _continues(held, item):
                assert isinstance(item, Landed)
                yield Landed(
                    item.node_id, item.node, item.blocks, held.why, held.made,
                    made_ns=held.node.ctime_ns, done=_both(held.done, item.done),
                )  # fmt: skip
                held = None
                continue
            yield held
            held = None
        if isinstance(item, Landed) and item.made is not None and not item.blocks:
            held = item
        else:
            yield item
    if held is not None:
        yield held


def _continues(made: Landed, item: Landed | EntrySettled) -> bool:
    """Whether item is the first content of the node made landed as, in the same place."""
    return (
        isinstance(item, Landed)
        and item.made is None
        and not item.attributes
        and item.node_id == made.node_id == item.node.id == made.node.id
        and (item.node.parent_id, item.node.name) == (made.node.parent_id, made.node.name)
    )


def _both(first: Callable[[], None], then: Callable[[], None]) -> Callable[[], None]:
    def done() -> None:
        first()
        then()

    return done
