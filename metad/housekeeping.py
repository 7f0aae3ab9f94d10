"""metad's periodic work: purging expired trash and thinning old revisions.

Both only drop rows of the database (revisions and their block references);
blockd's garbage collector reclaims the blocks nothing refers to any more
(`drive gc`). Runs on metad's event loop, one pass at start and then every
interval; a failed pass is logged and retried at the next one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from metad import requests
from metad.retention import DAY_NS, Retention
from metad.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Housekeeping:
    trash_ns: int = 30 * DAY_NS  # how long deleted nodes keep their content (0 = until emptied)
    retention: Retention = field(default_factory=Retention)
    interval_s: float = 3600.0


async def run_once(store: Store, policy: Housekeeping, now_ns: int | None = None) -> None:
    now = time.time_ns() if now_ns is None else now_ns
    if policy.trash_ns:
        nodes, size = await store.purge_trash(now - policy.trash_ns)
        if nodes:
            log.info("trash: purged %d node(s) past the trash period, %d bytes", nodes, size)
    dropped = await store.thin_revisions(policy.retention)
    if dropped:
        log.info("retention: thinned %d old revision(s)", dropped)
    forgotten = await store.purge_request_log(now - requests.KEEP_NS)
    if forgotten:
        log.info("request log: forgot %d request id(s) older than a day", forgotten)


async def run_forever(store: Store, policy: Housekeeping) -> None:
    while True:
        try:
            await run_once(store, policy)
        except Exception:
            log.exception("housekeeping pass failed; next try in %.0f s", policy.interval_s)
        await asyncio.sleep(policy.interval_s)
