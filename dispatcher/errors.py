"""Errors a user sees, each with the exit code the CLI gives it.

The CLI turns these into one clear message in one place; library code raises them with a
message that already says what went wrong and what to do. Provider failures are not here:
they live in ``dispatcher.providers.errors`` and end up recorded on jobs, not raised to users.
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


class ServiceUnavailableError(DispatcherError):
    """Redis or the database cannot be reached; the message names the (redacted) URL."""

    exit_code = 3


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

    from dispatcher.store.database import is_connection_error

    reason = _first_line(getattr(exc, "orig", None) or exc)
    if isinstance(exc, sa.exc.ArgumentError):
        return ConfigError(f"database_url: {reason}")
    if is_connection_error(exc):
        return ServiceUnavailableError(f"cannot reach the database: {reason}")
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
    import redis

    reason = _first_line(exc)
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return ServiceUnavailableError(f"cannot reach Redis: {reason}")
    return DispatcherError(f"Redis error ({type(exc).__name__}): {reason}")


def _first_line(exc: BaseException) -> str:
    """The first line of an error's text, without SQLAlchemy's statement and parameters."""
    from dispatcher.safe_text import printable

    text = str(exc).split("[SQL:", 1)[0].strip()
    first = text.splitlines()[0].strip() if text else type(exc).__name__
    return printable(first[:300])
