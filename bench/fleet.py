"""Benchmark: a fleet of hosts, shown. Three hosts (Linux network namespaces on this machine),
two worker processes each, one batch, one shared rate limit; optionally one host's link cut.

    python bench/fleet.py run                                  # 3,000 jobs, every link up
    python bench/fleet.py run --cut host2 --cut-after 20       # host2's link down 20 s in
    python bench/fleet.py setup                                # the network alone, left up
    python bench/fleet.py teardown                             # remove it (and crashed runs')

Needs root and iproute2. The hosts reach Redis, PostgreSQL and the mock provider over veth
links to a hub namespace, where a relay (bench/fleet_relay.py, 1 ms each way by default)
forwards to the services on 127.0.0.1; the submit runs here, outside the hosts. The mock
provider admits ``--requests-per-window`` calls per 10 s sliding window and answers 429
beyond; the workers are given the per-minute equivalent (6x) and must share it fleet-wide.

Checked (exit 1 if any fails, bench/fleet_report.py): the batch completed, the results export
has every custom_id exactly once, one result per job, 0 429s, no sliding window above the
limit, and the provider saw each prompt once, except (with --cut) calls the cut host began
before it could know of the cut: the answer was lost on the wire, or TCP delivered the request
when the link came back; the others had taken the job over after ``dead_after`` and sent it
again. That is the at-least-once delivery docs/reliability.md describes for a lost worker.
--cut-mid-transaction cuts while the host has a database transaction open, and
--idle-transaction-timeout-ms lets PostgreSQL end it (docs/reliability.md, "A host cut off
mid-transaction").
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402
import yaml  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.common import REDIS_URL, REPO, fresh_postgres_schema, mock_provider, write_requests  # noqa: E402
from bench.fleet_net import (  # noqa: E402
    HUB_ADDRESS, PREFIX, FleetNetwork, Host, existing_netns, remove_leftovers, remove_netns,
)
from bench.fleet_report import fleet_report  # noqa: E402
from dispatcher import Client  # noqa: E402

PROVIDER_PORT_ON_HUB = 8080
# Takeover within seconds instead of the default 15 s + a housekeeping round.
WORKER = {"heartbeat_interval": 0.5, "dead_after": 3.0, "poll_interval": 0.5, "shutdown_grace": 5.0}


@dataclass
class FleetPlan:
    jobs: int = 3000
    requests_per_window: int = 400  # the mock provider's limit per window_s
    window_s: float = 10.0
    latency_ms: int = 200
    jitter_ms: int = 100
    link_delay_ms: float = 1.0  # one way, hub <-> services
    processes: int = 2  # per host
    concurrency: int = 16  # per process
    cut: str | None = None
    cut_after: float = 20.0  # seconds after the submit
    restore_after: float | None = 15.0  # seconds after the cut; None: never (a lost machine: its
    # processes are killed once the batch is done)
    timeout: float = 600.0
    worker: dict = field(default_factory=lambda: dict(WORKER))
    # PostgreSQL's idle_in_transaction_session_timeout for the hosts' sessions; None: the
    # server's default (off). See docs/reliability.md, "A host cut off mid-transaction".
    idle_transaction_timeout_ms: int | None = None
    cut_mid_transaction: bool = False  # wait until the host is in a transaction, then cut


# -- the pieces ----------------------------------------------------------------------------

def on_hub(url: str, host: Host, idle_transaction_timeout_ms: int | None = None) -> str:
    """A service URL as ``host`` reaches it: the hub address, the same port (the relay's).
    Its PostgreSQL sessions carry its name (pg_stat_activity.application_name)."""
    if url.startswith("redis"):
        parts = urlsplit(url)
        return parts._replace(netloc=parts.netloc.replace(parts.hostname, HUB_ADDRESS, 1)).geturl()
    hub = make_url(url).set(host=HUB_ADDRESS)
    query = {"application_name": f"fleet-{host.name}"}
    if idle_transaction_timeout_ms:
        options = hub.query.get("options", "")
        query["options"] = f"{options} -c idle_in_transaction_session_timeout={idle_transaction_timeout_ms}".strip()
    return hub.update_query_dict(query).render_as_string(hide_password=False)


def write_config(path: Path, plan: FleetPlan, api_base: str, database_url: str, redis_url: str,
                 namespace: str) -> Path:
    rpm = int(plan.requests_per_window * 60 / plan.window_s)
    path.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "chat", "litellm_params": {
            "model": "openai/bench", "api_base": api_base, "api_key": "sk-bench", "timeout": 60, "rpm": rpm,
        }}],
        "router_settings": {"num_retries": 3},
        "dispatcher_settings": {
            "database_url": database_url, "redis_url": redis_url, "namespace": namespace,
            "default_model": "chat", "worker": {**plan.worker, "concurrency": plan.concurrency},
        },
    }))
    return path


def start_relay(network: FleetNetwork, folder: Path, routes: dict[int, int], delay_ms: float) -> subprocess.Popen:
    """bench/fleet_relay.py: hub ports -> the same services on 127.0.0.1."""
    ready = folder / "relay.ready"
    command = [sys.executable, "-m", "bench.fleet_relay", "--netns", network.hub, "--listen", HUB_ADDRESS,
               "--delay-ms", str(delay_ms), "--ready-file", str(ready),
               *(f"{hub_port}=127.0.0.1:{port}" for hub_port, port in routes.items())]
    relay = subprocess.Popen(command, cwd=REPO)
    deadline = time.monotonic() + 15
    while not ready.exists():
        if relay.poll() is not None or time.monotonic() > deadline:
            relay.kill()
            raise RuntimeError("the relay did not start")
        time.sleep(0.05)
    return relay


def start_workers(host: Host, config: Path, processes: int, folder: Path) -> subprocess.Popen:
    """``llm-dispatch worker`` inside ``host`` (its supervisor's pid is the Popen's)."""
    log = (folder / f"{host.name}.log").open("wb")
    command = host.command([sys.executable, "-m", "cli", "-c", str(config), "worker", "--processes", str(processes)])
    return subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def stop_workers(fleet: dict[str, subprocess.Popen], grace_s: float = 20) -> None:
    """SIGTERM every host's supervisor at once, wait, then kill (teardown kills any children)."""
    for process in fleet.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in fleet.values():
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_workers(engine: sa.Engine, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    query = sa.text("SELECT count(*) FROM workers WHERE stopped_at IS NULL")
    while True:
        with engine.connect() as connection:
            if connection.execute(query).scalar() >= count:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {count} workers registered within {timeout:.0f} s")
        time.sleep(0.2)


def jobs_held(engine: sa.Engine, batch_id: str, hostname: str) -> list[str]:
    """custom_ids of the batch's jobs that SQL says run on ``hostname``'s workers."""
    query = sa.text("SELECT j.custom_id FROM jobs j JOIN workers w ON w.id = j.worker_id"
                    " WHERE j.batch_id = :batch AND j.status = 'running' AND w.hostname = :host")
    with engine.connect() as connection:
        return [row[0] for row in connection.execute(query, {"batch": batch_id, "host": hostname})]


def sessions_of_interest(engine: sa.Engine) -> list[list]:
    """The fleet's PostgreSQL sessions that hold a transaction open or wait for a lock: what
    can keep a cut host's jobs from being taken over."""
    query = sa.text(
        "SELECT application_name, state, wait_event_type, round(extract(epoch FROM now() - xact_start)::numeric, 1),"
        " left(query, 160) FROM pg_stat_activity WHERE application_name LIKE 'fleet-%'"
        " AND (state = 'idle in transaction' OR wait_event_type = 'Lock')")
    with engine.connect() as connection:
        return [[str(value) for value in row] for row in connection.execute(query)]


def in_transaction(engine: sa.Engine, hostname: str) -> bool:
    """Has ``hostname`` a PostgreSQL session inside a transaction (between its statements)?"""
    query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"
                    " AND state = 'idle in transaction'")
    with engine.connect() as connection:
        return connection.execute(query, {"name": f"fleet-{hostname}"}).scalar() > 0


def cut_link(engine: sa.Engine, network: FleetNetwork, plan: FleetPlan) -> bool:
    """Cut the host's link; with ``cut_mid_transaction``, at a moment when one of its
    transactions is open (tries again for up to 10 s: a transaction lasts milliseconds).
    Returns whether a transaction of the host stayed open across the cut."""
    deadline = time.monotonic() + (10 if plan.cut_mid_transaction else 0)
    while True:
        if plan.cut_mid_transaction:
            while not in_transaction(engine, plan.cut) and time.monotonic() < deadline:
                pass
        network.cut(plan.cut)
        caught = in_transaction(engine, plan.cut)
        if caught or time.monotonic() >= deadline:
            return caught
        network.restore(plan.cut)  # it committed before the cut: a blip of milliseconds


# -- the run -------------------------------------------------------------------------------

def watch(client: Client, engine: sa.Engine, network: FleetNetwork, plan: FleetPlan, batch_id: str,
          started: float) -> dict:
    """Wait for the batch; cut and restore the link on time; time the takeover."""
    events: dict = {}
    cut_at = restored_at = None
    while not client.status(batch_id).done:
        now = time.monotonic() - started
        if now > plan.timeout:
            info = client.status(batch_id)
            raise TimeoutError(
                f"batch not done after {plan.timeout:.0f} s: {info.succeeded} succeeded, {info.failed} failed "
                f"of {plan.jobs}; events {events}; sessions {sessions_of_interest(engine)}")
        if plan.cut and cut_at is None and now >= plan.cut_after:
            events["cut_mid_transaction"] = cut_link(engine, network, plan)
            now = time.monotonic() - started
            cut_at, events["cut_wall_time"] = now, time.time()
            events["held_at_cut"] = jobs_held(engine, batch_id, plan.cut)
            events["cut_at_s"] = round(now, 2)
        if cut_at is not None and "takeover_s" not in events:
            if not jobs_held(engine, batch_id, plan.cut):
                events["takeover_s"] = round(now - cut_at, 2)
            elif now > cut_at + plan.worker["dead_after"] + 3 and "takeover_late" not in events:
                events["takeover_late"] = sessions_of_interest(engine)
        if (cut_at is not None and restored_at is None and plan.restore_after is not None
                and now >= cut_at + plan.restore_after):
            network.restore(plan.cut)
            restored_at = events["restored_at_s"] = round(now, 2)
        time.sleep(0.2)
    events["wall_s"] = time.monotonic() - started
    return events


def run_fleet(plan: FleetPlan, network: FleetNetwork, folder: Path, database_url: str, redis_url: str,
              namespace: str) -> dict:
    """One run on a network already set up; returns fleet_report's summary."""
    with ExitStack() as stack:
        base = stack.enter_context(mock_provider(
            rpm=plan.requests_per_window, window_s=plan.window_s, latency_ms=plan.latency_ms,
            jitter_ms=plan.jitter_ms, seed=1))
        routes = {PROVIDER_PORT_ON_HUB: urlsplit(base).port,
                  make_url(database_url).port or 5432: make_url(database_url).port or 5432,
                  urlsplit(redis_url).port or 6379: urlsplit(redis_url).port or 6379}
        relay = start_relay(network, folder, routes, plan.link_delay_ms)
        stack.callback(relay.wait, 10)
        stack.callback(relay.terminate)
        here = write_config(folder / "here.yaml", plan, base, database_url, redis_url, namespace)
        api_base = f"http://{HUB_ADDRESS}:{PROVIDER_PORT_ON_HUB}/v1"
        configs = {host.name: write_config(
            folder / f"{host.name}.yaml", plan, api_base,
            on_hub(database_url, host, plan.idle_transaction_timeout_ms), on_hub(redis_url, host), namespace,
        ) for host in network.hosts}
        source = write_requests(folder / "requests.jsonl", plan.jobs, prompt_chars=40, max_tokens=50)
        engine = sa.create_engine(database_url)
        stack.callback(engine.dispose)
        fleet = {host.name: start_workers(host, configs[host.name], plan.processes, folder) for host in network.hosts}
        stack.callback(stop_workers, fleet)
        wait_for_workers(engine, len(network.hosts) * plan.processes)
        client = Client(here)
        stack.callback(client.close)
        started = time.monotonic()
        batch_id = client.submit(source).batch_id
        events = watch(client, engine, network, plan, batch_id, started)
        if plan.cut and "restored_at_s" not in events and "cut_at_s" in events:
            network.kill_processes(plan.cut)  # a host that never came back: lost with its link
        stop_workers(fleet)
        return fleet_report(plan, client, engine, base, batch_id, source, events, folder)


def forget_redis_keys(redis_url: str, namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{namespace}*", count=1000):
        client.delete(key)
    client.close()


def run_command(args: argparse.Namespace) -> int:
    plan = FleetPlan(jobs=args.jobs, requests_per_window=args.requests_per_window, cut=args.cut,
                     cut_after=args.cut_after, restore_after=None if args.stay_cut else args.restore_after,
                     link_delay_ms=args.link_delay_ms, timeout=args.timeout,
                     idle_transaction_timeout_ms=args.idle_transaction_timeout_ms,
                     cut_mid_transaction=args.cut_mid_transaction)
    network = FleetNetwork()
    namespace = f"fleet-{uuid.uuid4().hex[:6]}"
    remove_leftovers()
    try:
        network.setup()
        with tempfile.TemporaryDirectory(prefix="llmd-fleet-") as tmp:
            folder = args.keep_logs or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            summary = run_fleet(plan, network, folder, fresh_postgres_schema(), REDIS_URL, namespace)
    finally:
        network.teardown()
        forget_redis_keys(REDIS_URL, namespace)
    print(json.dumps({"plan": asdict(plan), **summary}, indent=2))
    return 1 if summary["failed_checks"] else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "setup", "teardown"])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--requests-per-window", type=int, default=400, help="the provider's limit per 10 s")
    parser.add_argument("--cut", choices=["host1", "host2", "host3"], help="the host whose link goes down")
    parser.add_argument("--cut-after", type=float, default=20.0, help="seconds after the submit")
    parser.add_argument("--restore-after", type=float, default=15.0, help="seconds after the cut")
    parser.add_argument("--stay-cut", action="store_true", help="never restore the cut link (a lost machine)")
    parser.add_argument("--link-delay-ms", type=float, default=1.0, help="one-way delay at the relay")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds the batch may take")
    parser.add_argument("--idle-transaction-timeout-ms", type=int, metavar="MS",
                        help="end the hosts' PostgreSQL transactions left idle this long (default: off)")
    parser.add_argument("--cut-mid-transaction", action="store_true",
                        help="cut while the host has a database transaction open")
    parser.add_argument("--keep-logs", type=Path, metavar="DIR", help="write configs and worker logs here")
    args = parser.parse_args()
    if args.command == "run":
        sys.exit(run_command(args))
    manual = FleetNetwork(tag="manual")
    if args.command == "setup":
        manual.setup()
        print("up:", manual.hub, *(host.netns for host in manual.hosts),
              f"(hub {HUB_ADDRESS}, no relay; try `ip netns exec {manual.hosts[0].netns} ip addr`)")
    else:
        for netns in existing_netns():
            if netns.startswith(f"{PREFIX}-manual-"):
                remove_netns(netns)
        print("removed:", " ".join(remove_leftovers()) or "no leftovers of crashed runs")


if __name__ == "__main__":
    main()
