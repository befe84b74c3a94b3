"""Typed errors. Each carries a one-line message fit to show a user as is.

`UsageError` and its subclasses mean the input was wrong (the CLI exits with status 2); the
others mean the work itself failed (status 1).
"""


class PromptomatixError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1


class UsageError(PromptomatixError):
    """Bad input: an option, a name or a file the user gave."""

    exit_code = 2


class ConfigError(UsageError):
    """An option value that is out of range, unknown or inconsistent."""


class DataError(UsageError):
    """A data file that cannot be read, or rows that do not fit the task's fields."""


class RegistryError(UsageError):
    """An unknown registered name, version or alias, or a name already used otherwise."""


class PermissionDeniedError(RegistryError):
    """The tracking server refused a write for lack of a permission (HTTP 403, MLflow's
    PERMISSION_DENIED): nothing was changed; the message names the user, the permission and the
    registered model or prompt."""


class LLMError(PromptomatixError):
    """A model call that failed after its retries, or whose answer could not be parsed."""


class ParseError(LLMError):
    """A model's answers that could not be parsed, after the retries."""


class PluginError(PromptomatixError):
    """A plugin that cannot be loaded or does not implement its interface."""


class BudgetExhausted(PromptomatixError):  # noqa: N818 (a signal to stop, like StopIteration)
    """A model call was refused because a limit of the budget was reached. Backends stop their
    search on it and keep the best prompt so far; `limit` names the limit (`max_calls`,
    `max_cost` or `max_seconds`)."""

    def __init__(self, limit: str, message: str):
        super().__init__(message)
        self.limit = limit
