"""Usage, cost, budgets, the response cache, metrics and structured logs."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import chat_lines, cli_env, openai_deployment, run_cli, write_jsonl
from tests.e2e.test_faults import submit, wait_done
from tests.e2e.workers import WorkerFleet

pytestmark = pytest.mark.slow

IN_PRICE, OUT_PRICE = 2e-6, 8e-6


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def priced(provider, **extra):
    return openai_deployment(provider, input_cost_per_token=IN_PRICE, output_cost_per_token=OUT_PRICE, **extra)


def test_batch_usage_and_cost_equal_what_the_provider_billed(
    tmp_path, postgres_url, redis_server, redis_namespace, start_mock_provider, write_config
):
    provider = start_mock_provider(error_rate=0.1, seed=3)
    config = write_config(
        [("chat", priced(provider))],
        router={"num_retries": 5},
        settings={"database_url": postgres_url, "redis_url": redis_server, "namespace": redis_namespace},
    )
    batch_id = submit(config, write_jsonl(tmp_path / "in.jsonl", chat_lines(150, model="chat")))
    with WorkerFleet(config, processes=1):
        status = wait_done(config, batch_id)
    billed = provider.stats()["usage"]
    assert status["request_counts"]["completed"] == 150
    assert status["usage"]["prompt_tokens"] == billed["prompt_tokens"]
    assert status["usage"]["completion_tokens"] == billed["completion_tokens"]
    expected_cost = billed["prompt_tokens"] * IN_PRICE + billed["completion_tokens"] * OUT_PRICE
    assert status["cost_usd"] == pytest.approx(expected_cost, rel=1e-9)
    assert status["cost_unknown_requests"] == 0
    report = json.loads(run_cli("-c", str(config), "usage", "--by", "batch", "--json").stdout)
    assert report == [{
        "key": batch_id, "requests": provider.stats()["requests"],
        "failures": provider.stats()["by_status"].get("500", 0), "cache_hits": 0, "abandoned": 0,
        "prompt_tokens": billed["prompt_tokens"], "completion_tokens": billed["completion_tokens"],
        "total_tokens": billed["total_tokens"], "cached_tokens": 0,
        "cost": pytest.approx(expected_cost, rel=1e-9), "known_cost": pytest.approx(expected_cost, rel=1e-9),
        "unknown_cost_requests": 0,
    }]


def test_unknown_prices_are_reported_as_unknown_not_zero(tmp_path, mock_provider, write_config):
    config = write_config([("chat", openai_deployment(mock_provider))],  # openai/mock-gpt: no price
                          settings={"database_url": f"sqlite:///{tmp_path / 'u.db'}"})
    run_cli("-c", str(config), "run", str(write_jsonl(tmp_path / "in.jsonl", chat_lines(3, model="chat"))),
            "-o", str(tmp_path / "out.jsonl"))
    batch_id = json.loads(run_cli("-c", str(config), "list", "--json").stdout)[0]["id"]
    status = json.loads(run_cli("-c", str(config), "status", batch_id, "--json").stdout)
    assert status["cost_unknown_requests"] == 3 and status["cost_usd"] is None  # unknown, not free
    assert status["cost_known_usd"] == 0 and status["estimated_final_cost_usd"] is None
    human = run_cli("-c", str(config), "status", batch_id).stdout.decode()
    assert "3 calls of UNKNOWN price" in human


def test_max_cost_stops_the_batch_within_one_in_flight_window(
    tmp_path, postgres_url, redis_server, redis_namespace, start_mock_provider, write_config
):
    provider = start_mock_provider(latency_ms=100)
    concurrency = 4
    config = write_config(
        [("chat", priced(provider))],
        settings={"database_url": postgres_url, "redis_url": redis_server, "namespace": redis_namespace,
                  "worker": {"concurrency": concurrency}},
    )
    lines = chat_lines(200, model="chat")
    path = write_jsonl(tmp_path / "in.jsonl", lines)
    per_job = 10 * IN_PRICE + 12 * OUT_PRICE  # about 10 prompt and 12 completion tokens
    budget = 20 * per_job
    result = run_cli("-c", str(config), "submit", str(path), "--max-cost", str(budget))
    batch_id = result.stdout.decode().strip()
    with WorkerFleet(config, processes=1):
        status = wait_done(config, batch_id)
    assert status["status"] == "cancelled" and status["dispatcher_status"] == "budget_exceeded"
    assert status["cost_usd"] >= budget * 0.5
    billed = provider.stats()["usage"]
    cost_one = (billed["prompt_tokens"] * IN_PRICE + billed["completion_tokens"] * OUT_PRICE) / provider.stats()["completed"]
    # A call starts only while spent + the estimates of calls in flight < budget, and estimates
    # are not below real costs here: so at most the one call that crossed it is over.
    assert status["cost_usd"] <= budget + cost_one * 1.5
    done = status["request_counts"]["completed"]
    assert done + status["cancelled_requests"] == 200 and done < 200
    errors = tmp_path / "err.jsonl"
    run_cli("-c", str(config), "results", batch_id, "--errors", str(errors), "-o", str(tmp_path / "o.jsonl"))
    codes = {json.loads(line)["error"]["code"] for line in errors.read_text().splitlines()}
    assert codes == {"budget_exceeded"}


def test_cache_hits_make_no_provider_call_and_cost_nothing(tmp_path, mock_provider, write_config):
    config = write_config([("chat", priced(mock_provider))],
                          settings={"database_url": f"sqlite:///{tmp_path / 'c.db'}", "cache": {"enabled": True}})
    deterministic = chat_lines(10, prefix="same", model="chat", temperature=0)
    run = run_cli("-c", str(config), "run", str(write_jsonl(tmp_path / "a.jsonl", deterministic)), "-o", str(tmp_path / "a.out"))
    assert run.returncode == 0, run.stderr.decode()
    assert mock_provider.stats()["requests"] == 10
    renamed = [{**line, "custom_id": "again-" + line["custom_id"]} for line in deterministic]
    run = run_cli("-c", str(config), "run", str(write_jsonl(tmp_path / "b.jsonl", renamed)), "-o", str(tmp_path / "b.out"))
    assert run.returncode == 0, run.stderr.decode()
    assert mock_provider.stats()["requests"] == 10  # all ten answered from the cache
    first = [json.loads(line) for line in (tmp_path / "a.out").read_text().splitlines()]
    second = [json.loads(line) for line in (tmp_path / "b.out").read_text().splitlines()]
    assert [r["response"]["body"] for r in second] == [r["response"]["body"] for r in first]
    batch_id = json.loads(run_cli("-c", str(config), "list", "--json").stdout)[0]["id"]
    status = json.loads(run_cli("-c", str(config), "status", batch_id, "--json").stdout)
    assert status["cost_usd"] == 0 and status["usage"]["total_tokens"] == 0
    report = json.loads(run_cli("-c", str(config), "usage", "--by", "batch", "--json").stdout)
    assert {row["key"]: row["cache_hits"] for row in report}[batch_id] == 10
    # Without temperature 0 nothing is cached, unless the batch asks with --cache.
    warm = chat_lines(3, prefix="warm", model="chat")
    for name, extra in (("c.jsonl", []), ("d.jsonl", []), ("e.jsonl", ["--cache"]), ("f.jsonl", ["--cache"])):
        lines = [{**line, "custom_id": f"{name}-{line['custom_id']}"} for line in warm]
        run_cli("-c", str(config), "run", str(write_jsonl(tmp_path / name, lines)), *extra, "-o", str(tmp_path / "x.out"))
    assert mock_provider.stats()["requests"] == 10 + 3 + 3 + 3  # the last --cache run hit the cache


def test_usage_report_matches_a_hand_computed_example(tmp_path, write_config):
    from dispatcher import Client

    config = write_config([("chat", {"model": "mock/echo"}), ("cheap", {"model": "mock/echo"})],
                          settings={"database_url": f"sqlite:///{tmp_path / 'r.db'}"})
    client = Client(config)
    day1, day2 = 1_795_000_000.0, 1_795_000_000.0 + 86400  # 2026-11-18 and 2026-11-19 (UTC)
    rows = [  # group, deployment, batch, start, outcome, prompt, completion, cost
        ("chat", "a", "b1", day1, "success", 100, 50, 0.001),
        ("chat", "a", "b1", day1 + 5, "error", None, None, None),
        ("chat", "b", "b1", day1 + 9, "success", 200, 10, None),  # unknown price
        ("cheap", "c", "b2", day2, "success", 10, 5, 0.0001),
        ("cheap", None, "b2", day2 + 1, "cache_hit", None, None, 0.0),
        ("chat", "a", "b2", day2 + 2, "abandoned", None, None, None),
    ]
    with client.database.write() as connection:
        connection.execute(sa.text(
            "INSERT INTO attempts (job_id, batch_id, number, model_group, deployment_id, started_at, ended_at,"
            " outcome, prompt_tokens, completion_tokens, total_tokens, cost) VALUES (1, :b, 1, :g, :d, :s, :s,"
            " :o, :p, :c, :t, :cost)"),
            [dict(g=g, d=d, b=b, s=s, o=o, p=p, c=c, t=(p + c) if p is not None else None, cost=cost)
             for g, d, b, s, o, p, c, cost in rows])
    by_group = {r["key"]: r for r in client.usage(by="group")}
    assert by_group["chat"]["requests"] == 3 and by_group["chat"]["failures"] == 1
    assert by_group["chat"]["abandoned"] == 1
    assert (by_group["chat"]["prompt_tokens"], by_group["chat"]["completion_tokens"]) == (300, 60)
    assert by_group["chat"]["cost"] is None and by_group["chat"]["unknown_cost_requests"] == 1
    assert by_group["chat"]["known_cost"] == pytest.approx(0.001)
    assert by_group["cheap"]["requests"] == 2 and by_group["cheap"]["cache_hits"] == 1
    assert by_group["cheap"]["total_tokens"] == 15 and by_group["cheap"]["cost"] == pytest.approx(0.0001)
    by_day = {r["key"]: r["total_tokens"] for r in client.usage(by="day")}
    assert by_day == {"2026-11-18": 360, "2026-11-19": 15}
    by_deployment = {r["key"]: r["requests"] for r in client.usage(by="deployment")}
    assert by_deployment == {"a": 2, "b": 1, "c": 1, "-": 1}
    assert [r["key"] for r in client.usage(by="batch", since=day2)] == ["b2"]
    assert [r["key"] for r in client.usage(by="batch", until=day2)] == ["b1"]
    client.close()


def test_provider_budget_sends_traffic_elsewhere_once_spent(
    tmp_path, postgres_url, redis_server, redis_namespace, start_mock_provider, write_config
):
    budgeted, other = start_mock_provider(latency_ms=50), start_mock_provider(latency_ms=50)
    cap = 0.001  # about ten calls' worth
    config = write_config(
        [("chat", {**priced(budgeted), "model": "openai/m", "weight": 100}),
         ("chat", {**priced(other), "model": "deepseek/m", "weight": 1})],
        router={"provider_budget_config": {"openai": {"budget_limit": cap, "time_period": "1d"}}},
        settings={"database_url": postgres_url, "redis_url": redis_server, "namespace": redis_namespace,
                  "worker": {"concurrency": 4}},
    )
    batch_id = submit(config, write_jsonl(tmp_path / "in.jsonl", chat_lines(120, model="chat")))
    with WorkerFleet(config, processes=1):
        status = wait_done(config, batch_id)
    assert status["request_counts"]["completed"] == 120
    spent = budgeted.stats()["usage"]
    cost = spent["prompt_tokens"] * IN_PRICE + spent["completion_tokens"] * OUT_PRICE
    per_call = cost / max(1, budgeted.stats()["completed"])
    assert cost <= cap + 4 * per_call * 1.5  # at most the calls in flight past the cap
    assert other.stats()["completed"] > 60


def test_metrics_and_json_logs(tmp_path, postgres_url, redis_server, redis_namespace, start_mock_provider, write_config):
    provider = start_mock_provider(api_key="sk-metrics-right-000000")
    secret = "sk-metrics-wrong-111111"
    config = write_config(
        [("chat", priced(provider, api_key="sk-metrics-right-000000")),
         ("bad", priced(provider, api_key="os.environ/LLMD_TEST_BAD_KEY"))],
        settings={"database_url": postgres_url, "redis_url": redis_server, "namespace": redis_namespace},
    )
    good = chat_lines(5, prefix="good", model="chat")
    bad = chat_lines(2, prefix="bad", model="bad")
    port = free_port()
    env = cli_env(LLMD_TEST_BAD_KEY=secret)
    batch_id = submit(config, write_jsonl(tmp_path / "in.jsonl", good + bad))
    with WorkerFleet(config, 1, "--metrics-port", str(port), env=env) as fleet:
        wait_done(config, batch_id)
        time.sleep(0.3)
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    log = fleet.log()
    assert re.search(r'llmd_jobs_finished_total\{group="chat",status="succeeded"\} 5\.0', scraped)
    assert re.search(r'llmd_jobs_finished_total\{group="bad",status="failed"\} 2\.0', scraped)
    assert re.search(r'llmd_requests_total\{deployment="bad#0",outcome="AuthenticationError"\} 2\.0', scraped)
    assert 'llmd_tokens_total{deployment="chat#0",kind="prompt"}' in scraped
    assert 'llmd_cost_usd_total{deployment="chat#0"}' in scraped
    assert secret not in log and "sk-metrics-right" not in log
    # --log-format json: every line is JSON; failures carry the job's ids.
    json_config = run_cli("-c", str(config), "--log-format", "json", "-v", "run",
                          str(write_jsonl(tmp_path / "j.jsonl", chat_lines(2, prefix="j", model="bad"))),
                          "-o", str(tmp_path / "j.out"), env=env)
    lines = [json.loads(line) for line in json_config.stderr.decode().splitlines() if line.startswith("{")]
    failures = [line for line in lines if "failed" in line["msg"] and "custom_id" in line]
    assert failures and {"batch_id", "job_id", "custom_id", "deployment", "attempt"} <= set(failures[0])
    assert secret.encode() not in json_config.stderr + json_config.stdout
