"""kill -9 the daemon at random points during 1,000 real jobs; restart it each time. Nothing lost, nothing twice.

``bench/crash.py`` does the same with 100 kills.
"""

from __future__ import annotations

from pathlib import Path

from gigafactory.control.crashtest import crash_run


def test_daemon_survives_kill_9_without_losing_or_repeating_jobs(tmp_path: Path, db_url: str | None) -> None:
    r = crash_run(tmp_path / "gf", jobs=1000, kills=4, seed=7, db=db_url)
    assert r.kills == 4
    assert r.problems == []
    assert sum(r.states.values()) == 1000
    assert r.states["completed"] > 800 and r.states["failed"] > 0 and r.states["cancelled"] > 0
