"""What a fleet run (bench/fleet.py) shows: throughput, work per host, the provider's view of
duplicates and limits, and the checks that must hold."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import httpx
import sqlalchemy as sa

from dispatcher.providers.mock.replies import fingerprint
from dispatcher.store.calls import calls_sql

# A prompt the cut host sent may reach the provider a moment after the link went down (it
# was already past the link, in the relay's delay): still a call made before the cut.
CUT_MARGIN_S = 1.0
# Every call on record: attempts rows and the successes job rows hold (store/calls.py).
CALLS = calls_sql()


def exported_ids(client, batch_id: str, folder: Path) -> collections.Counter:
    """custom_id -> how many lines the results export (output file) has for it."""
    output, errors = folder / "output.jsonl", folder / "errors.jsonl"
    client.write_results(batch_id, output, errors)
    lines = output.read_text().splitlines() + errors.read_text().splitlines()
    return collections.Counter(json.loads(line)["custom_id"] for line in lines)


def by_host(engine: sa.Engine, sql: str, **params) -> dict:
    with engine.connect() as connection:
        rows = connection.execute(sa.text(sql), params).all()
    found: dict = {}
    for hostname, *key, count in rows:
        if key:
            found.setdefault(hostname, {})[key[0]] = count
        else:
            found[hostname] = count
    return dict(sorted(found.items()))


def worker_warnings(folder: Path, hosts: list[str], most: int = 12) -> dict[str, list[str]]:
    """The first warnings in each host's worker log (a takeover, a lost link, a re-registration)."""
    found = {}
    for host in hosts:
        log = folder / f"{host}.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        found[host] = [line[:200] for line in lines if "WARNING" in line or "ERROR" in line][:most]
    return found


def provider_detail(base_url: str) -> dict:
    return httpx.get(base_url.removesuffix("/v1") + "/mock/stats", params={"detail": "1"}, timeout=30).json()


def fleet_report(plan, client, engine: sa.Engine, base_url: str, batch_id: str, source: Path,
                 events: dict, folder: Path) -> dict:
    info = client.status(batch_id)
    lines = [json.loads(line) for line in source.read_text().splitlines()]
    exported = exported_ids(client, batch_id, folder)
    stats = provider_detail(base_url)
    custom_id = {fingerprint({"messages": line["messages"]}): line["custom_id"] for line in lines}
    sent_twice = {custom_id[key]: n for key, n in stats["fingerprint_counts"].items() if n > 1}
    first_seen = {custom_id[key]: at for key, at in stats["first_seen"].items()}
    held = set(events.get("held_at_cut", ()))
    summary = {
        "status": info.status,
        "succeeded": info.succeeded,
        "failed": info.failed,
        "wall_s": round(events["wall_s"], 1),
        "jobs_per_s": round(plan.jobs / events["wall_s"], 1),
        "limit_per_s": plan.requests_per_window / plan.window_s,
        "results_exported": sum(exported.values()),
        "custom_ids_exported_twice": sorted(k for k, n in exported.items() if n > 1),
        "custom_ids_missing": sorted({line["custom_id"] for line in lines} - set(exported)),
        # The call whose answer is the job's result: the success under the job's last claim.
        "results_per_host": by_host(
            engine, f"SELECT w.hostname, count(*) FROM {CALLS} a JOIN workers w ON w.id = a.worker_id"
                    " JOIN jobs j ON j.id = a.job_id AND j.claim = a.claim"
                    " WHERE a.batch_id = :batch AND a.outcome = 'success' GROUP BY w.hostname", batch=batch_id),
        "attempts_per_host": by_host(
            engine, f"SELECT w.hostname, a.outcome, count(*) FROM {CALLS} a JOIN workers w ON w.id = a.worker_id"
                    " WHERE a.batch_id = :batch GROUP BY w.hostname, a.outcome", batch=batch_id),
        "provider_requests": stats["requests"],
        "provider_429s": stats["rate_limited"],
        "provider_peak_in_window": stats["peak_requests_in_window"],
        "provider_duplicates": stats["duplicates"],
    }
    summary["worker_warnings"] = worker_warnings(folder, [name for name in summary["results_per_host"]])
    if plan.cut:
        summary.update(cut_report(plan, engine, batch_id, events, held, sent_twice, first_seen))
    summary["failed_checks"] = failed_checks(plan, summary, lines, sent_twice)
    return summary


def cut_report(plan, engine: sa.Engine, batch_id: str, events: dict, held: set[str],
               sent_twice: dict[str, int], first_seen: dict[str, float]) -> dict:
    cut_wall = events.get("cut_wall_time")
    finished_by = by_host(
        engine, f"SELECT w.hostname, count(*) FROM {CALLS} a JOIN jobs j ON j.id = a.job_id AND j.claim = a.claim"
                " JOIN workers w ON w.id = a.worker_id WHERE a.batch_id = :batch AND a.outcome = 'success'"
                " AND j.custom_id = ANY(:held) GROUP BY w.hostname",
        batch=batch_id, held=sorted(held)) if held else {}
    detail = sent_twice_detail(engine, batch_id, sorted(sent_twice), first_seen, cut_wall)
    # The cut host may begin a call while its last heartbeat is under dead_after / 2 old: it
    # cannot know yet that its link is down (docs/reliability.md, "A frozen worker").
    unaware_s = plan.worker["dead_after"] / 2 + CUT_MARGIN_S
    return {
        "cut": plan.cut,
        "cut_at_s": events.get("cut_at_s"),
        "cut_mid_transaction": events.get("cut_mid_transaction"),
        "jobs_held_by_cut_host": len(held),
        "takeover_s": events.get("takeover_s"),
        "held_jobs_finished_by": finished_by,
        "restored_at_s": events.get("restored_at_s"),
        # Sessions in a transaction or waiting for a lock when the takeover was 3 s late.
        "takeover_late_sessions": events.get("takeover_late"),
        "sent_twice": len(sent_twice),
        # The provider answered before the cut; the answer was lost on the cut link.
        "sent_twice_answer_lost": sum(1 for d in detail if d["first_sent_s_after_cut"] <= CUT_MARGIN_S),
        # The request was still in the cut host's kernel (TCP send buffer) when the link went
        # down; TCP delivered it when the link came back, besides the takeover's call.
        "sent_twice_delivered_on_restore": sum(1 for d in detail if d["first_sent_s_after_cut"] > CUT_MARGIN_S),
        "sent_twice_detail": detail[:10],
        # Each must be a job the cut host held, whose call it began before it could know of the cut.
        "sent_twice_unexplained": sorted(
            d["custom_id"] for d in detail
            if d["custom_id"] not in held or not any(
                host == plan.cut and started <= unaware_s for host, _, _, started in d["attempts"])),
    }


def sent_twice_detail(engine: sa.Engine, batch_id: str, jobs: list[str], first_seen: dict[str, float],
                      cut_wall: float | None) -> list[dict]:
    """For prompts the provider saw twice: when first, and each attempt's host, claim, outcome
    and start (seconds after the cut)."""
    if not jobs or cut_wall is None:
        return []
    query = sa.text(f"SELECT j.custom_id, w.hostname, a.claim, a.outcome, a.started_at FROM {CALLS} a"
                    " JOIN jobs j ON j.id = a.job_id LEFT JOIN workers w ON w.id = a.worker_id"
                    " WHERE a.batch_id = :batch AND j.custom_id = ANY(:jobs) ORDER BY a.started_at")
    with engine.connect() as connection:
        rows = connection.execute(query, {"batch": batch_id, "jobs": jobs}).all()
    return [{
        "custom_id": job,
        "first_sent_s_after_cut": round(first_seen[job] - cut_wall, 2),
        "attempts": [[row.hostname, row.claim, row.outcome, round(row.started_at - cut_wall, 2)]
                     for row in rows if row.custom_id == job],
    } for job in jobs]


def failed_checks(plan, summary: dict, lines: list[dict], sent_twice: dict[str, int]) -> list[str]:
    """The invariants of a fleet run; each failure as a sentence (none: the run passed)."""
    failed = []
    jobs = len(lines)
    if summary["status"] != "completed" or summary["succeeded"] != jobs:
        failed.append(f"batch {summary['status']}: {summary['succeeded']}/{jobs} succeeded")
    if summary["results_exported"] != jobs or summary["custom_ids_exported_twice"] or summary["custom_ids_missing"]:
        failed.append(f"export: {summary['results_exported']} lines for {jobs} jobs, twice "
                      f"{summary['custom_ids_exported_twice'][:5]}, missing {summary['custom_ids_missing'][:5]}")
    # A cut link restored while the batch runs lets TCP deliver requests the cut host had
    # booked seconds earlier, outside the fleet's schedule: each may crowd out one call.
    late = summary.get("sent_twice_delivered_on_restore", 0) if summary.get("restored_at_s") else 0
    if sum(summary["results_per_host"].values()) != jobs:
        failed.append(f"{sum(summary['results_per_host'].values())} results recorded by a call of the job's last claim")
    if summary["provider_429s"] > late:
        failed.append(f"{summary['provider_429s']} answers 429 ({late} requests delivered late on restore)")
    if summary["provider_peak_in_window"] > plan.requests_per_window:
        failed.append(f"peak {summary['provider_peak_in_window']} requests in a window > {plan.requests_per_window}")
    if summary["provider_requests"] != jobs + sum(n - 1 for n in sent_twice.values()) + summary["provider_429s"]:
        failed.append(f"{summary['provider_requests']} requests for {jobs} jobs, {len(sent_twice)} sent twice "
                      f"and {summary['provider_429s']} 429s")
    if not plan.cut and sent_twice:
        failed.append(f"{len(sent_twice)} prompts sent twice with every link up")
    if plan.cut:
        if summary["takeover_s"] is None:
            failed.append(f"{plan.cut}'s jobs were never taken over")
        if summary["sent_twice_unexplained"]:
            failed.append(f"sent twice, not begun by {plan.cut} before it could know of the cut: "
                          f"{summary['sent_twice_unexplained'][:5]}")
        if max(sent_twice.values(), default=0) > 2:
            failed.append("a prompt was sent more than twice")
    return failed
