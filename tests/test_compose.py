"""docker-compose.yml gives a working fleet (docker cannot run here, so its structure is checked):
start-up order on real readiness, a config mount that cannot turn into a directory, every
provider key passed through, and commands the CLI accepts."""

from __future__ import annotations

import re
import shlex

import click
import pytest
import yaml

from cli import cli
from dispatcher.providers.azure.credentials import AD_TOKEN_ENV as AZURE_AD_TOKEN_ENV
from dispatcher.providers.azure.credentials import KEY_ENVS as AZURE_KEY_ENVS
from dispatcher.providers.azure.endpoint import API_VERSION_ENV as AZURE_API_VERSION_ENV
from dispatcher.providers.registry import PROVIDERS
from tests.conftest import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DISPATCHER_SERVICES = ("migrate", "worker", "api")


def parse_cli(args: list[str]) -> click.Command:
    """Resolve and parse ``llm-dispatch ARGS`` as click would, without running it: unknown
    commands, unknown options and bad values raise click.UsageError."""
    ctx = cli.make_context("llm-dispatch", list(args), resilient_parsing=False)
    command: click.Command = cli
    while isinstance(command, click.Group):
        name, command, rest = command.resolve_command(ctx, _unparsed(ctx))
        ctx = command.make_context(name, rest, parent=ctx)
    return command


def _unparsed(ctx: click.Context) -> list[str]:
    # Click 8.2 moved a group's subcommand name to _protected_args (public before; 9.0: args).
    subcommand = ctx.__dict__.get("_protected_args", ctx.__dict__.get("protected_args", []))
    return [*subcommand, *ctx.args]


def test_services():
    assert set(SERVICES) == {"redis", "postgres", "migrate", "worker", "api"}


def test_healthchecks_ask_over_tcp():
    postgres = SERVICES["postgres"]["healthcheck"]["test"]
    assert postgres[:2] == ["CMD", "pg_isready"]
    # Without -h, pg_isready uses the Unix socket, which answers while the image still runs
    # its initialisation server (no TCP): migrate would then meet "connection refused".
    assert postgres[postgres.index("-h") + 1] in ("127.0.0.1", "localhost")
    redis = SERVICES["redis"]["healthcheck"]["test"]
    assert redis[:2] == ["CMD", "redis-cli"] and redis[-1] == "ping"


def test_start_up_order():
    assert SERVICES["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    worker = SERVICES["worker"]["depends_on"]
    assert worker["migrate"] == {"condition": "service_completed_successfully"}
    assert worker["redis"] == {"condition": "service_healthy"}
    assert SERVICES["migrate"]["restart"] == "no"
    assert SERVICES["worker"]["restart"] == "unless-stopped"


def test_migrate_waits_for_a_database_that_still_refuses():
    command = SERVICES["migrate"]["command"]
    assert command[:2] == ["db", "upgrade"]
    assert float(command[command.index("--wait") + 1]) >= 30


@pytest.mark.parametrize("service", DISPATCHER_SERVICES)
def test_config_mount_cannot_become_a_directory(service):
    definition = SERVICES[service]
    config_path = definition["environment"]["LLM_DISPATCH_CONFIG"]
    mounts = [m for m in definition["volumes"] if isinstance(m, dict) and m["target"] == config_path]
    assert len(mounts) == 1, "the config is mounted with the long syntax, at LLM_DISPATCH_CONFIG"
    mount = mounts[0]
    assert mount["type"] == "bind" and mount["source"] == "./llm-dispatch.yaml"
    # The short form (./file:/path) creates a missing source as an empty directory.
    assert mount["bind"]["create_host_path"] is False
    assert mount["read_only"] is True
    assert not any(isinstance(m, str) and "llm-dispatch.yaml" in m for m in definition["volumes"])


@pytest.mark.parametrize("service", DISPATCHER_SERVICES)
def test_environment_names_the_services_and_every_provider_key(service):
    environment = SERVICES[service]["environment"]
    assert environment["LLM_DISPATCH_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in environment["LLM_DISPATCH_DATABASE_URL"]
    assert environment["LLM_DISPATCH_REDIS_URL"] == "redis://redis:6379/0"
    keys = {spec.key_env for spec in PROVIDERS.values() if spec.key_env}
    keys |= {spec.base_env for spec in PROVIDERS.values() if spec.base_env}
    keys |= {*AZURE_KEY_ENVS, AZURE_AD_TOKEN_ENV, AZURE_API_VERSION_ENV}  # Azure picks one per call
    assert keys <= set(environment), f"not passed through: {sorted(keys - set(environment))}"
    for key in keys:
        # No value: taken from the shell or .env when set, absent otherwise (an empty string
        # would be sent as a key and answered 401 instead of "variable not set").
        assert environment[key] is None, key


def test_ports_are_published_on_localhost_only():
    for service, port in (("postgres", 5432), ("redis", 6379)):
        (published,) = SERVICES[service]["ports"]
        # 127.0.0.1:${LLMD_POSTGRES_PORT:-5432}:5432 - the host port can be moved if taken.
        match = re.fullmatch(r"127\.0\.0\.1:\$\{LLMD_[A-Z]+_PORT:-(\d+)\}:(\d+)", published)
        assert match, published
        assert match.groups() == (str(port), str(port))


def test_database_password_is_the_same_on_both_sides():
    password = SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"]
    for service in DISPATCHER_SERVICES:
        url = SERVICES[service]["environment"]["LLM_DISPATCH_DATABASE_URL"]
        assert f"dispatcher:{password}@postgres" in url


@pytest.mark.parametrize("service", DISPATCHER_SERVICES)
def test_service_commands_are_valid_cli_commands(service):
    parse_cli(SERVICES[service]["command"])


def test_the_commands_the_readme_gives_are_valid():
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"docker compose run --rm (?:-T )?worker ([^<>\n]+?)(?: [<>] \S+)?$", readme, re.M)
    assert "submit -" in commands
    for command in commands:
        parse_cli([arg.replace("BATCH_ID", "batch_x") for arg in shlex.split(command)])


def test_parse_cli_refuses_what_the_cli_refuses():
    with pytest.raises(click.UsageError):
        parse_cli(["db", "upgrade", "--wait", "soon"])
    with pytest.raises(click.UsageError):
        parse_cli(["no-such-command"])
