"""The crash benchmark: 100 × kill -9 of the daemon during a few thousand real jobs (local executor).

    python bench/crash.py [--jobs 3000] [--kills 100] [--db postgresql+psycopg://…]

With ``--db``, the run gets a database of its own on that server (created, then dropped), so that nothing of an
earlier run is counted.

Writes ``bench/results/crash.json`` (``crash_postgresql.json`` with ``--db``): jobs, kills, wall time, final
states, GPU-seconds billed against GPU-seconds the runners recorded (and the largest gap for one attempt), and any
problem found (there must be none).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from common import write_result
from gigafactory.control.crashtest import crash_run


@contextlib.contextmanager
def fresh_database(url: str | None) -> Iterator[str | None]:
    if url is None:
        yield None
        return
    from sqlalchemy import create_engine, text

    server = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"gf_crash_{uuid.uuid4().hex[:10]}"
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=3000)
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--db", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.db) as db:
        r = crash_run(Path(tmp) / "gf", jobs=args.jobs, kills=args.kills, seed=args.seed, db=db, max_sleep_s=1.0,
                      timeout_s=1800)  # fmt: skip
    result = {
        "jobs": r.jobs,
        "kills": r.kills,
        "wall_s": round(r.wall_s, 1),
        "states": r.states,
        "problems": r.problems[:50],
        "billed_gpu_s": round(r.billed_gpu_s, 3),
        "ran_gpu_s": round(r.ran_gpu_s, 3),
        "worst_billing_error_s": round(r.worst_billing_error_s, 6),
        "ok": r.ok,
        "store": "postgresql" if args.db else "sqlite",
    }
    print(json.dumps(result, indent=2))
    print(f"wrote {write_result('crash' if args.db is None else 'crash_postgresql', result)}")
    return 0 if r.ok else 1


if __name__ == "__main__":
    sys.exit(main())
