"""The POSIX conformance suite pjdfstest, whole, through a real mount.

The suite and its runner sit beside the checkout (../shared/pjdfstest): the
runner builds it once (autoconf, a compiler, perl's prove) and runs every
folder of tests inside the mount, as root, switching users as the tests ask.
This is the slow test of the suite (about five minutes); it runs once.

What a drive cannot pass is listed in README.md with its reason; today that
is the three subtests of rename/21.t that fail on a local ext4 folder too
(the runner's work folder is mode 0700, which uid 65534 cannot pass).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNNER = Path(os.environ.get("PJDFSTEST_RUNNER", REPO.parent / "shared/pjdfstest/run-pjdfstest"))
TARGET = 0.99
# Failing on ext4 as well through this runner (see the module docstring).
ALSO_FAILS_ON_EXT4 = {"rename": {"21.t"}}


def test_pjdfstest_passes_through_a_mount(mounts, metad, blockd, public: Path) -> None:
    assert RUNNER.exists(), f"pjdfstest's runner is not at {RUNNER} (set PJDFSTEST_RUNNER)"
    m = mounts.mount(metad, blockd, "pjdfstest", path=public / "mnt")
    results = public / "pjdfstest.json"
    run = subprocess.run(
        [str(RUNNER), str(m.path), "--json", str(results)],
        capture_output=True,
        text=True,
        timeout=40 * 60,
    )
    print(run.stdout)  # the per-folder table, shown when the test fails
    summary = re.search(r"pjdfstest: (\d+) passed, (\d+) failed", run.stdout)
    assert summary, run.stdout + run.stderr
    passed, failed = int(summary[1]), int(summary[2])
    assert passed / (passed + failed) >= TARGET, run.stdout
    by_folder = json.loads(results.read_text())
    unexpected = {
        folder: sorted(set(r["failed_files"]) - ALSO_FAILS_ON_EXT4.get(folder, set()))
        for folder, r in by_folder.items()
        if set(r["failed_files"]) - ALSO_FAILS_ON_EXT4.get(folder, set()) or r["timed_out"]
    }
    assert not unexpected, f"failing beyond the known ones: {unexpected}\n{run.stdout}"
