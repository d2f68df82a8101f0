"""The checks of a batch input file made before anything is stored: its lines call the batch's
``endpoint``, and ask only for what the key may use.

``Client.submit`` with ``owner`` applies the key's limits to the batch's own options (a
``ForbiddenForKey``, answered 403) and refuses lines beyond them as invalid lines, which would
store a failed batch. The issue asks for a 403 with nothing stored for those lines too, so
the input is read once here first, for keys that have limits.
"""

from __future__ import annotations

from typing import BinaryIO, Iterator

import orjson

from dispatcher.api.auth import Caller
from dispatcher.intake.reader import iter_lines
from dispatcher.intake.validate import CHAT_COMPLETIONS, endpoint_of_url
from dispatcher.priority import parse_priority


def _json_objects(source: BinaryIO) -> Iterator[tuple[int, dict]]:
    """(line number, object) of the lines that are JSON objects; the others are left to submit,
    which refuses them with their line numbers."""
    for line_no, raw in iter_lines(source):
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(data, dict):
            yield line_no, data


def other_endpoint(source: BinaryIO, endpoint: str) -> str | None:
    """The problem if the file's lines call another endpoint than the batch's, else None.

    Only the first request line is read: submit makes every line use that line's url (as
    OpenAI does) and refuses the others by line number. Lines that are not JSON objects, or
    whose url is not served, are left to submit too.
    """
    for line_no, data in _json_objects(source):
        batch_form = {"url", "body", "method"} & data.keys()
        url = data.get("url", CHAT_COMPLETIONS) if batch_form else CHAT_COMPLETIONS
        called = endpoint_of_url(url)
        if called is None or called == endpoint:
            return None
        return (f"line {line_no}: url {url} calls {called}, not the batch's endpoint {endpoint}; "
                "every line of a batch must use its endpoint")
    return None


def forbidden_request(
    source: BinaryIO, caller: Caller, *, groups: set[str], default_group: str | None
) -> tuple[str, str] | None:
    """(message, param) for the first line asking for a model group or a priority the key may
    not use; None when every line is within its limits.

    Lines that are not valid requests are left to submit, which refuses them with their line
    numbers; only what a valid line would really get is checked here.
    """
    key = caller.key
    if key is None or (key.models is None and key.max_priority is None):
        return None
    for line_no, data in _json_objects(source):
        body = data.get("body") if isinstance(data.get("body"), dict) else data
        group = body.get("model") or default_group
        if isinstance(group, str) and group in groups and not key.allows_model(group):
            allowed = ", ".join(key.models or []) or "none"
            return (f"line {line_no}: this key may not use model group '{group}'; it may use: {allowed}",
                    "model")
        if "priority" in data:
            try:
                level = parse_priority(data["priority"])
            except ValueError:
                continue
            if not key.allows_priority(level):
                return (f"line {line_no}: this key may not ask for priority {level}; its most urgent is "
                        f"{key.max_priority} (0 is the most urgent, 9 the least)", "priority")
    return None
