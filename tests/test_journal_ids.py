"""Node ids reserved for files made here: one spent is never handed out again.

Over real journal files, reopened as a restart of the mount (or a kill -9:
everything here is committed when the call returns) would.
"""

from __future__ import annotations

from pathlib import Path

from fusefs.models import Ownership
from fusefs.mount.journal import Journal
from fusefs.mount.node_ids import SPEND_AHEAD


def _make_file(journal: Journal) -> int:
    node_id = journal.take_id()
    assert node_id is not None, "the reserve ran out"
    journal.record_create(
        node_id=node_id, parent_id=1, name=f"f{node_id}", mode=0o644,
        owner=Ownership(0, 0), mtime_ns=1,
    )  # fmt: skip
    return node_id


def test_an_id_spent_is_never_handed_out_again_after_a_restart(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.add_ids(1000, 1000)
    used: set[int] = set()
    for made in (1, 30, SPEND_AHEAD, SPEND_AHEAD + 1, 2):
        used |= {_make_file(journal) for _ in range(made)}
        journal.take_id()  # taken but never used: it may come back, or not
        journal.close()
        journal = Journal(tmp_path)
        fresh = journal.take_id()
        assert fresh is not None and fresh not in used and fresh > max(used)
        used.add(_make_file(journal))
    journal.close()


def test_ids_come_from_the_next_range_once_one_is_spent(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.add_ids(1000, 10)
    journal.add_ids(5000, 100)
    assert journal.ids_left() == 110
    used = [_make_file(journal) for _ in range(15)]
    assert used == [*range(1000, 1010), *range(5000, 5005)]
    assert journal.ids_left() == 95
    journal.close()

    journal = Journal(tmp_path)
    assert 0 < journal.ids_left() <= 95  # (a few may be skipped: see SPEND_AHEAD)
    fresh = [_make_file(journal) for _ in range(3)]
    assert min(fresh) >= 5005 and not set(fresh) & set(used)
    journal.close()


def test_another_user_starts_with_no_ids(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.claim("alice@drive")
    journal.add_ids(1000, 10)
    journal.close()

    journal = Journal(tmp_path)
    journal.claim("bob@drive")
    assert journal.ids_left() == 0 and journal.take_id() is None
    journal.close()
    assert Journal(tmp_path).ids_left() == 0
