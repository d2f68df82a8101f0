"""``serve`` fuzzed from its own OpenAPI schema (schemathesis): no answer is a 5xx, and every
answer is one the schema declares, in the shape it declares.

Every operation of ``/openapi.json`` gets schemathesis's coverage cases (boundary and invalid
values of each parameter) and a bounded number of generated ones, valid and invalid, with the
admin key; then again, fewer, with a team key limited to one model group and priority 3..9.
Random ids would only ever find 404s, so some path parameters and bodies are swapped for ids
that exist (files, result files, batches done, failed and held), so the fuzzing also reaches
the code behind them; the team key also gets the admin's ids, which it must not see. Hypothesis
runs with a fixed seed and no example database: a run tries the same cases on every machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import batch_lines, jsonl, upload, wait_for_batch

pytestmark = pytest.mark.slow

# Generated cases per operation, besides schemathesis's coverage cases; bounded so the whole
# file takes well under a minute on two busy cores.
ADMIN_EXAMPLES = 100
TEAM_EXAMPLES = 30
SEED = 13
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection]
TEAM_MODELS = ["chat"]
TEAM_MOST_URGENT = 3
VALID_MESSAGES = [{"role": "user", "content": "fuzz"}]
# Values our parsers of times, durations, priorities and ids read specially, drawn for some
# generated strings and numbers.
TRICKY_STRINGS = [
    "0", "-1", "9", "10", "urgent", "bulk", "1e308", "-1e308", "0001-01-01", "9999-12-31T23:59:59+14:00",
    "2026-02-30", "24h", "0s", "1e9d", "99999999999d", "-5m", " ", "\u0000", "file-out-", "file-err-batch_",
    "batch_", "/v1/chat/completions", "chat", "other",
]
TRICKY_NUMBERS = [0, -1, 9, 10, 1e308, -1e308, 5e-324, 2**63, -(2**63) - 1, 2**64]


@dataclass(frozen=True)
class Seeds:
    """Ids that exist on the server, for the fuzzer to use beside random ones."""

    file_ids: list[str]
    spare_file_ids: list[str]  # for DELETE, so the others stay for the operations after it
    batch_ids: list[str]
    input_file_id: str

    def beside(self, other: Seeds) -> Seeds:
        """These ids and ``other``'s (another owner's: they must answer 404, and stay)."""
        return Seeds(file_ids=[*self.file_ids, *other.file_ids],
                     spare_file_ids=[*self.spare_file_ids, *other.file_ids],
                     batch_ids=[*self.batch_ids, *other.batch_ids], input_file_id=self.input_file_id)


def _seed(api, key: str) -> Seeds:
    """Files and batches of ``key``: one done (an output and an error file), one refused (its
    input has a bad line), one held until far in the future (still cancellable)."""
    sdk = api.sdk(key)
    lines = batch_lines(2, prefix="fuzz")
    lines[1]["body"]["messages"][0]["content"] += " [[mock:status=400]]"
    source = upload(sdk, lines)
    done = sdk.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
    bad = upload(sdk, batch_lines(1, prefix="bad") + ["not json"])
    refused = sdk.batches.create(input_file_id=bad.id, endpoint="/v1/chat/completions", completion_window="24h")
    held = sdk.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h",
                              extra_body={"not_before": time.time() + 86400})
    spares = [upload(sdk, batch_lines(1, prefix=f"spare{i}")).id for i in range(2)]
    done = wait_for_batch(sdk, done.id)
    assert done.output_file_id and done.error_file_id
    return Seeds(
        file_ids=[source.id, bad.id, done.output_file_id, done.error_file_id],
        spare_file_ids=[*spares, done.output_file_id],
        batch_ids=[done.id, refused.id, held.id],
        input_file_id=source.id,
    )


def _real_values(seeds: Seeds, method: str, path: str) -> list[tuple[str, dict[str, Any]]]:
    """What may replace generated values of one operation: (where, {name: value}) each."""
    file_ids = seeds.spare_file_ids if method == "DELETE" else seeds.file_ids
    real = [("path", {"file_id": value}) for value in file_ids]
    real += [("path", {"batch_id": value}) for value in seeds.batch_ids]
    real += [("path", {"model": value}) for value in ("chat", "other")]
    if (method, path) == ("POST", "/v1/batches"):
        # The rest of the body (not_before, max_cost, weight, metadata...) stays generated.
        real += [("body", {"input_file_id": seeds.input_file_id}),
                 ("body", {"input_file_id": seeds.input_file_id, "endpoint": "/v1/chat/completions",
                           "completion_window": "24h", "model": "chat", "priority": 5})]
    if (method, path) == ("POST", "/v1/chat/completions"):
        real += [("body", {"model": "chat"}), ("body", {"model": "chat", "messages": VALID_MESSAGES}),
                 ("body", {"model": "chat", "messages": VALID_MESSAGES, "priority": None, "stream": None})]
    if (method, path) == ("POST", "/v1/files"):
        real += [("body", {"file": jsonl(batch_lines(1, prefix="fuzz-upload")), "purpose": "batch"})]
    return real


def _fits(case, where: str, values: dict[str, Any]) -> bool:
    """Whether ``case`` has the path parameters, or a JSON or form body, to put ``values`` in."""
    container = case.path_parameters if where == "path" else case.body
    return isinstance(container, dict) and (where == "body" or values.keys() <= container.keys())


def _swap(case, where: str, values: dict[str, Any]):
    (case.path_parameters if where == "path" else case.body).update(values)
    return case


def _with_real_values(seeds: Seeds) -> Callable:
    """A schemathesis hook: generated values swapped for ones that exist, some of the time.

    Only in cases meant to be valid: a swap could make an invalid case valid, and the check
    that invalid data is refused would then fail on our own doing."""

    def flatmap_case(context, case):
        if case.meta is None or case.meta.generation.mode.is_negative:
            return st.just(case)
        real = [swap for swap in _real_values(seeds, case.method.upper(), case.path) if _fits(case, *swap)]
        return st.sampled_from([None, *real]).map(lambda swap: case if swap is None else _swap(case, *swap))

    return flatmap_case


def _openapi_schema(api, key: str, seeds: Seeds, max_examples: int):
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        "headers": {"Authorization": f"Bearer {key}"},
        "request-timeout": 30,
        "cache": {"enabled": False},
        "dictionaries": {"strings": {"values": TRICKY_STRINGS}, "numbers": {"values": TRICKY_NUMBERS}},
        "generation": {
            "mode": "all", "max-examples": max_examples, "deterministic": True, "database": "none",
            "dictionaries": {kind: {"dictionary": name, "probability": 0.25}
                             for kind, name in (("string", "strings"), ("integer", "numbers"), ("number", "numbers"))},
        },
        "suppress-health-check": ["too_slow", "filter_too_much"],
    })
    schema = schemathesis.openapi.from_url(f"{api.server.root_url}/openapi.json", config=config)
    schema.hook("flatmap_case")(_with_real_values(seeds))
    return schema


@pytest.fixture(scope="module")
def admin_seeds(embedded_api) -> Seeds:
    return _seed(embedded_api, embedded_api.admin_key)


@pytest.fixture(scope="module")
def team_key(embedded_api) -> str:
    return embedded_api.make_key("fuzz-team", models=TEAM_MODELS, max_priority=TEAM_MOST_URGENT)


@pytest.fixture(scope="module")
def admin_schema(embedded_api, admin_seeds):
    return _openapi_schema(embedded_api, embedded_api.admin_key, admin_seeds, ADMIN_EXAMPLES)


@pytest.fixture(scope="module")
def team_schema(embedded_api, team_key, admin_seeds):
    seeds = _seed(embedded_api, team_key).beside(admin_seeds)
    return _openapi_schema(embedded_api, team_key, seeds, TEAM_EXAMPLES)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request):
    """schemathesis 4.32's ``from_fixture`` reads and relabels ``item._nodeid``, which pytest
    9.2 no longer has (its ``nodeid`` is derived); only the labels of its reports use it."""
    request.node._nodeid = request.node.nodeid


@schemathesis.pytest.from_fixture("admin_schema").parametrize()
def test_admin_key(case):
    case.call_and_validate(checks=CHECKS)


@schemathesis.pytest.from_fixture("team_schema").parametrize()
def test_team_key(case):
    case.call_and_validate(checks=CHECKS)
