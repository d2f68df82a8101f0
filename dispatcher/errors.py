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
