"""Benchmark: database bytes per job on PostgreSQL, where they go, and what prune gives back.

    python bench/storage.py                  # 50,000 jobs
    python bench/storage.py --jobs 200000 --json

Runs one batch end to end (fresh schema, mock provider at zero latency, one worker process),
then reports pg_total_relation_size of every table and index, bytes per job, dead tuples
(pg_stat_user_tables.n_dead_tup) and the average stored width of the wide job columns. Then
downloads the results (as a user would), prunes the batch's bodies (``prune`` with a cutoff of
now), VACUUMs, and reports the same again; last after VACUUM FULL (what a pruned job keeps).
The workers vacuum jobs themselves (store/vacuum.py); ``--no-fleet-vacuum`` turns that off,
to see what the layout alone gives. ``--vacuum-every S`` VACUUMs from the bench too, standing
in for autovacuum. Record the figures in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

from bench.common import (  # noqa: E402
    REDIS_URL,
    REPO,
    WorkerProcess,
    fresh_postgres_schema,
    mock_provider,
    wait_until_done,
    write_config,
)
from dispatcher import Client  # noqa: E402

_RELATIONS = """
SELECT c.relname AS name, c.relkind AS kind,
       pg_total_relation_size(c.oid) AS total, pg_relation_size(c.oid) AS main,
       COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS toast
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
WHERE c.relkind IN ('r', 'i')
ORDER BY pg_total_relation_size(c.oid) DESC
"""
_DEAD = """
SELECT relname, n_live_tup, n_dead_tup, n_tup_upd, n_tup_hot_upd, vacuum_count FROM pg_stat_user_tables
WHERE schemaname = current_schema() AND relname IN ('jobs', 'attempts', 'batches')
"""
_WIDTHS = """
SELECT avg(pg_column_size(body)) AS body, avg(pg_column_size(response)) AS response,
       avg(pg_column_size(jobs.*)) AS row
FROM jobs
"""


def write_requests(path: Path, count: int, *, prompt_chars: int = 200, max_tokens: int = 50) -> Path:
    """Prompts of words drawn at random from the project's README: about as compressible as
    prose (bench.common's repeated filler would flatter compression)."""
    vocabulary = sorted(set(re.findall(r"[a-z]{2,12}", (REPO / "README.md").read_text().lower())))
    rng = random.Random(16)
    with path.open("w") as handle:
        for i in range(count):
            words = " ".join(rng.choice(vocabulary) for _ in range(prompt_chars // 5))[:prompt_chars]
            handle.write(json.dumps({
                "custom_id": f"req-{i}",
                "messages": [{"role": "user", "content": f"{i}: {words}"}],
                "max_tokens": max_tokens,
            }) + "\n")
    return path


def snapshot(database_url: str, jobs: int) -> dict:
    """Sizes per table and index, bytes per job, dead tuples, average widths of job columns."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            time.sleep(1.0)  # the statistics collector reports with a short delay
            connection.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
            relations = [dict(row._mapping) for row in connection.exec_driver_sql(_RELATIONS)]
            dead = {row.relname: dict(row._mapping) for row in connection.exec_driver_sql(_DEAD)}
            widths = dict(connection.exec_driver_sql(_WIDTHS).one()._mapping)
    finally:
        engine.dispose()
    tables = {r["name"]: r for r in relations if r["kind"] == "r"}
    total = sum(r["total"] for r in tables.values())
    return {
        "database_bytes": total,
        "bytes_per_job": round(total / jobs, 1),
        "tables": {
            name: {"total": r["total"], "heap": r["main"], "toast": r["toast"],
                   "indexes": r["total"] - r["main"] - r["toast"]}
            for name, r in tables.items() if r["total"] > 16384
        },
        "indexes": {r["name"]: r["total"] for r in relations if r["kind"] == "i" and r["total"] > 16384},
        "tuples": {name: {k: v for k, v in row.items() if k != "relname"} for name, row in dead.items()},
        "avg_job_widths": {k: round(float(v or 0), 1) for k, v in widths.items()},
    }


def vacuum(database_url: str, *, full: bool = False) -> None:
    engine = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for table in ("jobs", "attempts", "batches"):
                connection.exec_driver_sql(f"VACUUM {'FULL ' if full else ''}{table}")
    finally:
        engine.dispose()


class PeriodicVacuum(threading.Thread):
    """VACUUM jobs and attempts every ``seconds`` while the batch runs: what autovacuum does
    on a server where it is on (this bench's server may have it off), at a known pace."""

    def __init__(self, database_url: str, seconds: float):
        super().__init__(daemon=True)
        self.database_url, self.seconds, self.runs = database_url, seconds, 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.seconds):
            vacuum(self.database_url)
            self.runs += 1


def run(base_url: str, jobs: int, folder: Path, vacuum_every: float | None = None,
        fleet_vacuum: bool = True, fleet_vacuum_interval: float | None = None) -> dict:
    database_url = fresh_postgres_schema()
    config = write_config(folder, base_url, database_url=database_url, redis_url=REDIS_URL,
                          namespace=f"bench-{uuid.uuid4().hex[:6]}",
                          settings={"vacuum": {"enabled": fleet_vacuum, **(
                              {"interval": fleet_vacuum_interval} if fleet_vacuum_interval else {})}})
    source = write_requests(folder / "requests.jsonl", jobs)
    client = Client(config)
    client.database
    worker = WorkerProcess(config)
    vacuums = PeriodicVacuum(database_url, vacuum_every) if vacuum_every else None
    start = time.monotonic()
    batch_id = client.submit(source).batch_id
    if vacuums:
        vacuums.start()
    _, info = wait_until_done(client, batch_id, timeout=3600)
    wall = time.monotonic() - start
    if vacuums:
        vacuums.stopped.set()
        vacuums.join()
    _, log = worker.stop()
    assert info.succeeded == jobs, (info, log[-2000:])
    report: dict = {"jobs": jobs, "wall_s": round(wall, 1), "fleet_vacuum": fleet_vacuum,
                    "vacuums_during_batch": vacuums.runs if vacuums else 0,
                    "after_batch": snapshot(database_url, jobs)}
    report["fleet_vacuums"] = report["after_batch"]["tuples"]["jobs"]["vacuum_count"] - report["vacuums_during_batch"]
    started = time.monotonic()
    client.write_results(batch_id, folder / "out.jsonl")  # downloaded: prune may take it
    report["results_export_s"] = round(time.monotonic() - started, 2)
    started = time.monotonic()
    pruned = client.prune(finished_before=time.time() + 1)
    report["prune"] = {"jobs": pruned.jobs, "batches": len(pruned.batches), "s": round(time.monotonic() - started, 2)}
    report["after_prune"] = snapshot(database_url, jobs)
    vacuum(database_url)
    report["after_prune_and_vacuum"] = snapshot(database_url, jobs)
    vacuum(database_url, full=True)  # what a pruned job keeps, once the files are rewritten
    report["after_prune_and_vacuum_full"] = snapshot(database_url, jobs)
    client.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--json", action="store_true", help="the whole report as JSON")
    parser.add_argument("--vacuum-every", type=float, metavar="S",
                        help="VACUUM jobs and attempts every S seconds during the batch (autovacuum's part)")
    parser.add_argument("--no-fleet-vacuum", dest="fleet_vacuum", action="store_false",
                        help="turn off the workers' own VACUUM of jobs (dispatcher_settings.vacuum)")
    parser.add_argument("--fleet-vacuum-interval", type=float, metavar="S",
                        help="dispatcher_settings.vacuum.interval (default: the setting's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, mock_provider() as base_url:
        report = run(base_url, args.jobs, Path(tmp), args.vacuum_every, args.fleet_vacuum,
                     args.fleet_vacuum_interval)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['jobs']} jobs in {report['wall_s']} s (fleet vacuum {report['fleet_vacuum']}: "
          f"{report['fleet_vacuums']} runs, "
          f"{report['vacuums_during_batch']} bench VACUUMs during it); "
          f"results export {report['results_export_s']} s; prune: {report['prune']}")
    for stage in ("after_batch", "after_prune", "after_prune_and_vacuum", "after_prune_and_vacuum_full"):
        shot = report[stage]
        print(f"\n{stage}: {shot['database_bytes'] / 1e6:.1f} MB, {shot['bytes_per_job']} bytes per job")
        for name, sizes in shot["tables"].items():
            if sizes["total"] < 1e6:
                continue
            print(f"  table {name}: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))
        for name, size in shot["indexes"].items():
            print(f"  index {name}: {size / 1e6:.1f} MB")
        print(f"  tuples: {shot['tuples']}")
        print(f"  average job widths (bytes): {shot['avg_job_widths']}")


if __name__ == "__main__":
    main()
