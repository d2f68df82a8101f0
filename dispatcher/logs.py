"""Logging setup: human text or JSON lines on stderr, with secrets scrubbed from every record.

Context (batch id, job id, deployment, attempt) travels as ``extra=`` fields and appears as
keys in JSON logs. The redaction filter runs on the final message, so even an exception text
that quotes a key or an Authorization header is cleaned before it is written.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from dispatcher.config.secrets import redact

CONTEXT_FIELDS = ("batch_id", "job_id", "custom_id", "deployment", "attempt", "worker_id")
NOISY_LOGGERS = ("alembic", "dramatiq", "httpx", "httpcore", "asyncio")


class RedactingFilter(logging.Filter):
    """Replaces the record's message by its redacted text (args folded in)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = redact(message)
        record.args = ()
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(verbosity: int = 0, fmt: str = "text") -> None:
    """Configure the root logger once: level from verbosity, text or json, redacted."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if verbosity < 2 else logging.INFO)
