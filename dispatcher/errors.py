"""Errors a user sees, each with the exit code the CLI gives it, and the one tree of
infrastructure failures.

The CLI turns these into one clear message in one place; library code raises them with a
message that already says what went wrong and what to do. Provider failures are not here:
they live in ``dispatcher.providers.errors`` and end up recorded on jobs, not raised to users.

    DispatcherError                     exit 1
    ├── UsageError                      exit 2: asked for something that cannot be done
    │   ├── ConfigError, InputError, NotFoundError, OutputError
    └── InfrastructureError             the database or Redis failed a call
        ├── ServiceUnavailableError     exit 3: cannot be reached (transient)
        │   ├── DatabaseUnavailable
        │   └── RedisUnavailable
        └── DatabaseBusy                locked, deadlock, serialization failure (transient)

Failures are mapped into this tree at their edge, once: ``Database.read``/``write``
(``dispatcher.store.database.database_failure``), the shared Redis client
(``dispatcher.redis_client``) and wake messaging (``dispatcher.messaging``), as httpx maps its transport's errors in one place. Whether
retrying can help is then asked in one way, ``is_transient``. An error about the statement
itself (a refused value, a missing table) is not mapped: it propagates as the driver raised
it, callers may catch it by its class, and ``user_error_for`` explains it to a user.
"""


class DispatcherError(Exception):
    """Base of the errors a user is meant to read."""

    exit_code = 1


class UsageError(DispatcherError):
    """The command was asked for something that cannot be done (bad id, bad option)."""

    exit_code = 2


class ConfigError(UsageError):
    """The configuration file is missing or invalid; the message names the key path."""


class InputError(UsageError):
    """The submitted JSONL is invalid; ``problems`` lists the first bad lines."""

    def __init__(self, message: str, problems: list | None = None):
        super().__init__(message)
        self.problems = problems or []


class NotFoundError(UsageError):
    """A batch or job id that the database does not hold."""


class InfrastructureError(DispatcherError):
    """The database or Redis failed a call; ``transient`` says whether retrying can succeed."""

    transient = False


class ServiceUnavailableError(InfrastructureError):
    """Redis or the database cannot be reached; the message names the (redacted) URL."""

    exit_code = 3
    transient = True


class DatabaseUnavailable(ServiceUnavailableError):
    """The database refused or dropped the connection, or is starting or shutting down."""


class RedisUnavailable(ServiceUnavailableError):
    """Redis refused or dropped the connection, or did not answer in time."""


class DatabaseBusy(InfrastructureError):
    """The transaction lost to another one (SQLite locked, deadlock, serialization failure)."""

    transient = True


def is_transient(exc: BaseException) -> bool:
    """True when the same work can succeed if tried again later: the one answer to "transient?"
    (the engine's claim retry, the outcome writer's flush retry)."""
    return isinstance(exc, InfrastructureError) and exc.transient


class OutputError(UsageError):
    """A results file cannot be written (missing folder, a directory, no permission, disk full)."""


def user_error_for(exc: BaseException) -> DispatcherError | None:
    """The error to show for an unexpected database or Redis failure, or None for other errors.

    SQLAlchemy's own text carries the SQL statement and its parameters (request bodies, names,
    keys); only the driver's first line is kept. The cause chain is searched too, so an error
    raised while handling a database failure is explained the same way.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        module = type(exc).__module__
        if module.startswith("sqlalchemy"):
            return _database_error(exc)
        if module.startswith("redis"):
            return _redis_error(exc)
        exc = exc.__cause__ or exc.__context__
    return None


def _database_error(exc: BaseException) -> DispatcherError:
    import sqlalchemy as sa

    from dispatcher.store.database import database_failure

    reason = short_reason(getattr(exc, "orig", None) or exc)
    if isinstance(exc, sa.exc.ArgumentError):
        return ConfigError(f"database_url: {reason}")
    mapped = database_failure(exc)
    if isinstance(mapped, ServiceUnavailableError):
        return mapped
    if isinstance(exc, (sa.exc.IntegrityError, sa.exc.DataError)):
        return UsageError(
            f"the database refused a value: {reason}. Check the input or options this command "
            "was given (lengths, characters)"
        )
    lowered = reason.lower()
    if any(hint in lowered for hint in ("does not exist", "no such table", "no such column", "has no column")):
        return DispatcherError(
            f"the database schema does not match this version of llm-dispatch ({reason}); "
            "run: llm-dispatch db upgrade"
        )
    return DispatcherError(f"database error ({type(exc).__name__}): {reason}")


def _redis_error(exc: BaseException) -> DispatcherError:
    from dispatcher.redis_client import redis_failure

    mapped = redis_failure(exc)
    if mapped is not None:
        return mapped
    return DispatcherError(f"Redis error ({type(exc).__name__}): {short_reason(exc)}")


def short_reason(exc: BaseException) -> str:
    """The first line of an error's text, without SQLAlchemy's statement and parameters,
    safe to print (control characters escaped)."""
    from dispatcher.safe_text import printable

    text = str(exc).split("[SQL:", 1)[0].strip()
    first = text.splitlines()[0].strip() if text else type(exc).__name__
    return printable(first[:300])
