"""Workers that look dead but are not, and jobs that kill their workers.

A frozen worker (SIGSTOP) must not send calls for jobs taken over meanwhile, nor blame the
provider for the time it spent stopped; a worker whose clock is off, or a database outage,
must not get live workers reaped; a job whose call kills its worker ends ``failed`` after a
few deaths instead of being retried for ever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from dispatcher.providers.mock.replies import fingerprint
from tests.conftest import REPO, chat_lines, cli_env, openai_deployment, run_cli, write_jsonl
from tests.e2e.test_faults import attempt_rows, submit, wait_done
from tests.e2e.workers import WorkerFleet
from tests.helpers.fault_proxy import FaultProxy
from tests.helpers.sql import CALLS, query

pytestmark = pytest.mark.slow

# Offsets time.time() in a subprocess: a worker whose clock runs wrong.
SKEWED_CLOCK = '''
import os
import time

_offset = float(os.environ.get("LLMD_TEST_CLOCK_OFFSET_S", "0"))
if _offset:
    _real_time = time.time
    time.time = lambda: _real_time() + _offset
'''


def child_pid(fleet: WorkerFleet, timeout: float = 15) -> int:
    """The pid of the one worker process a fleet's supervisor started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-P", str(fleet.process.pid)], capture_output=True, text=True)
        if found.stdout.split():
            return int(found.stdout.split()[0])
        time.sleep(0.1)
    raise AssertionError("the worker process did not start")


def wait_for_calls(provider, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while provider.stats()["completed"] < count:
        assert time.monotonic() < deadline, "the workers did not start calling"
        time.sleep(0.05)


def settings(postgres_url, redis_server, redis_namespace, **worker) -> dict:
    return {"database_url": postgres_url, "redis_url": redis_server, "namespace": redis_namespace,
            "worker": worker}


# Slack between the test's clock and the attempt rows' (database) clock. Takeovers start only
# after dead_after (3 s) of silence and the frozen worker records nothing while stopped, so an
# attempt of it dated before this margin passed was begun before the freeze.
FREEZE_MARGIN_S = 1.0


def freeze(pid: int) -> float:
    """SIGSTOP a process; returns the time.time() by which it had stopped."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert time.monotonic() < deadline, "the worker did not stop"
        time.sleep(0.001)
    return time.time()


# Alone: under parallel load the freeze instant and the calls around it drift apart. (A
# failure of about one run in ten was a call paused between the engine's lease check and the
# write: the adapters now ask the send permit right before writing, send_permit.py.)
@pytest.mark.alone
def test_a_frozen_worker_sends_nothing_for_jobs_taken_over_while_it_was_stopped(
    tmp_path, postgres_url, redis_server, redis_namespace, start_mock_provider, write_config, figures
):
    # 20 calls a second fleet-wide, booked up to 0.5 s ahead: a worker always holds a few
    # claimed jobs whose send time has not come yet.
    provider = start_mock_provider(latency_ms=5)
    config = write_config([("chat", openai_deployment(provider, rpm=1200))],
                          settings=settings(postgres_url, redis_server, redis_namespace, concurrency=10))
    jobs = 160
    lines = chat_lines(jobs, model="chat")
    batch_id = submit(config, write_jsonl(tmp_path / "in.jsonl", lines))
    started = time.monotonic()
    with WorkerFleet(config, processes=1) as steady, WorkerFleet(config, processes=1) as frozen:
        pid = child_pid(frozen)
        wait_for_calls(provider, 30)
        stopped_at = freeze(pid)
        # Past dead_after (3 s) + a housekeeping round + the reaper's own steady-heartbeat rule,
        # with room for a loaded machine: the other worker takes its jobs over.
        time.sleep(8.0)
        woke_at = time.time()
        os.kill(pid, signal.SIGCONT)
        status = wait_done(config, batch_id, timeout=30)
        log = steady.log() + frozen.log()
    elapsed = time.monotonic() - started
    assert status["request_counts"] == {"total": jobs, "completed": jobs, "failed": 0}
    assert "is dead" in log, log  # the freeze really outlasted dead_after
    [frozen_id] = query(postgres_url, "SELECT id FROM workers WHERE pid = :pid", pid=pid)[0]
    calls = query(postgres_url, "SELECT j.custom_id, a.worker_id, a.started_at, a.ended_at, a.outcome"
                                f" FROM {CALLS} a JOIN jobs j ON j.id = a.job_id WHERE a.outcome <> 'abandoned'")
    stats = provider.stats(detail=True)
    custom_id = {fingerprint({"messages": line["messages"]}): line["custom_id"] for line in lines}
    first_seen = {custom_id[key]: at for key, at in stats["first_seen"].items()}
    sent_twice = {custom_id[key] for key, count in stats["fingerprint_counts"].items() if count > 1}
    # The one duplicate a pause cannot avoid, as with a SIGKILL: a call the frozen worker had
    # begun before the freeze (its attempt row says when), whose result was not written yet
    # (still in flight, answered and waiting for the batched write, or stopped mid-write so the
    # provider saw it only after the wake), so the job was taken over. Before the fix, the calls
    # it had booked for later went out when it woke: attempts begun after the freeze.
    frozen_before = {row.custom_id for row in calls
                     if row.worker_id == frozen_id and row.started_at <= stopped_at + FREEZE_MARGIN_S}
    late = {job: round(first_seen[job] - stopped_at, 3) for job in sent_twice - frozen_before}
    assert late == {}, f"sent again, not begun before the freeze (first seen s after it): {late}"
    assert max(stats["fingerprint_counts"].values()) <= 2
    sent_after_wake = [row.custom_id for row in calls
                       if row.worker_id == frozen_id and row.started_at >= woke_at]
    assert set(sent_after_wake).isdisjoint(sent_twice)
    assert len(calls) == stats["requests"]
    figures.update(jobs=jobs, results=status["request_counts"]["completed"],
                   provider_requests=stats["requests"], attempt_rows=len(calls),
                   provider_duplicates=stats["duplicates"],
                   duplicates_begun_before_freeze=len(sent_twice),
                   frozen_worker_sends_after_wake=len(sent_after_wake), wall_s=round(elapsed, 1))


def wait_for_workers(database_url: str, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while query(database_url, "SELECT count(*) AS n FROM workers WHERE stopped_at IS NULL")[0].n < count:
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.1)


def submit_at(config, path, *args) -> tuple[str, float]:
    """Submit; returns the batch id and when (time.monotonic()) the submit began."""
    started = time.monotonic()
    result = run_cli("-c", str(config), "submit", str(path), *args)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().strip(), started


def test_workers_20s_behind_and_20s_ahead_share_the_work_as_fast_as_without_skew(
    tmp_path, postgres_url, redis_server, redis_namespace, start_mock_provider, write_config, figures
):
    """Heartbeats, claims, retries' not_before and expiry all on the database's clock: a worker
    whose clock is 20 s behind is not declared dead and sees requeued jobs due at once; one 20 s
    ahead expires nothing early (the window is 20 s) and its requeues are due for everyone.

    Two unskewed workers serve group ``plain`` and the two skewed ones group ``skew``, side by
    side on the same machine: the plain batch is the timing reference."""
    provider = start_mock_provider(latency_ms=100, error_rate=0.05, seed=7)
    config = write_config([("plain", openai_deployment(provider)), ("skew", openai_deployment(provider))],
                          router={"num_retries": 6, "retry_after": 0, "disable_cooldowns": True},
                          settings=settings(postgres_url, redis_server, redis_namespace, concurrency=10))
    hook = tmp_path / "skew"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SKEWED_CLOCK)

    def skewed(offset_s: str) -> dict:
        env = cli_env(LLMD_TEST_CLOCK_OFFSET_S=offset_s)
        env["PYTHONPATH"] = f"{hook}{os.pathsep}{REPO}"
        return env

    jobs = 200
    window = ("--completion-window", "20s")
    plain_in = write_jsonl(tmp_path / "plain.jsonl", chat_lines(jobs, prefix="plain", model="plain"))
    skew_in = write_jsonl(tmp_path / "skew.jsonl", chat_lines(jobs, prefix="skew", model="skew"))
    fleets = [WorkerFleet(config, 1, "--groups", "plain") for _ in range(2)]
    fleets += [WorkerFleet(config, 1, "--groups", "skew", env=skewed(offset)) for offset in ("-20", "20")]
    try:
        wait_for_workers(postgres_url, len(fleets))
        skew_id, skew_started = submit_at(config, skew_in, *window)
        plain_id, plain_started = submit_at(config, plain_in, *window)
        skewed_status = wait_done(config, skew_id, timeout=40)
        skewed_s = time.monotonic() - skew_started
        plain_status = wait_done(config, plain_id, timeout=40)
        plain_s = time.monotonic() - plain_started
        log = "".join(fleet.log() for fleet in fleets[2:])
    finally:
        for fleet in fleets:  # all at once: each waits for its calls in flight
            fleet.process.send_signal(signal.SIGTERM)
        for fleet in fleets:
            try:
                fleet.process.wait(30)
            except subprocess.TimeoutExpired:
                pass  # stop() kills it
            fleet.stop()
    assert plain_status["request_counts"] == {"total": jobs, "completed": jobs, "failed": 0}
    # Before the fix: the worker 20 s ahead expired every job at once (status "expired").
    assert skewed_status["status"] == "completed"
    assert skewed_status["request_counts"] == {"total": jobs, "completed": jobs, "failed": 0}
    rows = query(postgres_url, f"SELECT a.outcome, a.worker_id, a.model_group FROM {CALLS} a")
    skew_rows = [r for r in rows if r.model_group == "skew"]
    abandoned = [r for r in rows if r.outcome == "abandoned"]
    stats = provider.stats()
    # Before the heartbeat fix: the worker behind was declared dead again and again, and its
    # calls in flight were made twice.
    assert "is dead" not in log and abandoned == []
    assert stats["duplicates"] == 0 and len(rows) == stats["requests"]
    skew_workers = {r.worker_id for r in skew_rows}
    assert len(skew_workers) == 2  # both took part
    # Workers started with --groups plain never ran a skew job (before: a wake message for
    # any group made them claim it).
    assert skew_workers.isdisjoint({r.worker_id for r in rows if r.model_group == "plain"})
    # A requeue written on a clock 20 s ahead, or read on one 20 s behind, waited 20 s.
    assert skewed_s < 3 * plain_s, (skewed_s, plain_s)
    figures.update(jobs=jobs, clock_offsets_s=[-20, 20], provider_requests=stats["requests"],
                   attempt_rows=len(rows), skewed_attempts=len(skew_rows), abandoned=len(abandoned),
                   provider_duplicates=stats["duplicates"], unskewed_s=round(plain_s, 1),
                   skewed_s=round(skewed_s, 1))


def test_after_a_database_outage_no_live_worker_is_reaped(
    tmp_path, postgres_url, redis_server, redis_namespace, start_mock_provider, write_config, figures
):
    """Both workers lose the database for 4.5 s; the first gets it back 1.5 s before the
    second. The second's heartbeat is then 6 s old, but the first's own was stale until 1.5 s
    ago: it must not judge (before the fix it reaped the second at once)."""
    provider = start_mock_provider(latency_ms=200)
    port = make_url(postgres_url).port or 5432
    deployments = [("chat", openai_deployment(provider))]
    with FaultProxy(port) as first_link, FaultProxy(port) as second_link:
        first_config, second_config = (
            write_config(deployments, name=f"worker{i}.yaml", settings=settings(
                link.rewrite(postgres_url), redis_server, redis_namespace, concurrency=10))
            for i, link in enumerate((first_link, second_link))
        )
        cli = write_config(deployments, name="cli.yaml",
                           settings=settings(postgres_url, redis_server, redis_namespace))
        jobs = 300
        batch_id = submit(cli, write_jsonl(tmp_path / "in.jsonl", chat_lines(jobs, model="chat")))
        with WorkerFleet(first_config, processes=1) as first, \
                WorkerFleet(second_config, processes=1) as second:
            wait_for_calls(provider, 30)
            first_link.cut()
            second_link.cut()
            time.sleep(4.5)  # longer than dead_after (3 s) for everyone
            first_link.restore()
            time.sleep(1.5)
            second_link.restore()
            status = wait_done(cli, batch_id, timeout=30)
            log = first.log() + second.log()
    assert status["request_counts"] == {"total": jobs, "completed": jobs, "failed": 0}
    rows = attempt_rows(postgres_url)
    abandoned = [r for r in rows if r.outcome == "abandoned"]
    stats = provider.stats()
    assert "is dead" not in log and abandoned == []
    assert stats["duplicates"] == 0 and len(rows) == stats["requests"]
    figures.update(jobs=jobs, outage_s=4.5, provider_requests=stats["requests"], attempt_rows=len(rows),
                   abandoned=len(abandoned), provider_duplicates=stats["duplicates"])


def test_a_job_that_kills_its_worker_fails_after_three_deaths(
    tmp_path, postgres_url, redis_server, redis_namespace, start_mock_provider, write_config, figures
):
    provider = start_mock_provider(latency_ms=10)
    config = write_config([("chat", openai_deployment(provider))],
                          settings=settings(postgres_url, redis_server, redis_namespace, concurrency=4))
    lines = chat_lines(20, model="chat")
    poison = {"custom_id": "poison", "model": "chat", "max_tokens": 16,
              "messages": [{"role": "user", "content": "[[mock:sleep=60]] this call kills its worker"}]}
    batch_id = submit(config, write_jsonl(tmp_path / "in.jsonl", lines + [poison]))
    started = time.monotonic()
    kills = 0
    with WorkerFleet(config, processes=1) as fleet:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            [(state, pid)] = query(
                postgres_url,
                "SELECT j.status, w.pid FROM jobs j LEFT JOIN workers w ON w.id = j.worker_id"
                " WHERE j.custom_id = 'poison'",
            )
            if state not in ("queued", "running"):
                break
            if state == "running" and pid:
                os.kill(pid, signal.SIGKILL)  # as a segfault or the OOM killer would
                kills += 1
                while query(postgres_url, "SELECT status FROM jobs WHERE custom_id = 'poison'")[0].status == "running":
                    time.sleep(0.05)  # the supervisor hands it back
            time.sleep(0.1)
        status = wait_done(config, batch_id, timeout=15)
        log = fleet.log()
    elapsed = time.monotonic() - started
    [job] = query(postgres_url, "SELECT status, error_code, error_message FROM jobs WHERE custom_id = 'poison'")
    # Before the fix: queued again after every death, for ever.
    assert kills == 3, log[-2000:]
    assert (job.status, job.error_code) == ("failed", "worker_died")
    assert "died 3 times" in job.error_message
    assert status["request_counts"] == {"total": 21, "completed": 20, "failed": 1}
    figures.update(jobs=21, worker_kills=kills, poison_job=job.error_code,
                   completed=status["request_counts"]["completed"], wall_s=round(elapsed, 1))
