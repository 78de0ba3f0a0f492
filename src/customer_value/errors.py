"""User-facing errors.

Every mistake a user can make (a bad config key, a missing column, an unparseable date) is raised as
a subclass of :class:`UserError`. The CLI turns these into a short message and exit code 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class UserError(Exception):
    """A problem with the user's input, config or environment, with a hint on how to fix it.

    Parameters
    ----------
    message : str
        What is wrong.
    where : str, optional
        Where it is wrong (a file, a config key, a column).
    hint : str, optional
        What to do about it.
    """

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        """Return the full message: where, what and what to do."""
        lines = []
        lines.append(f"{self.where}: {self.message}" if self.where else self.message)
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class ConfigError(UserError):
    """The configuration is invalid (unknown key, wrong type, impossible value)."""


class DataValidationError(UserError):
    """A source file breaks the data contract (missing column, bad values, empty file)."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        column: str | None = None,
        examples: Iterable[object] | None = None,
        hint: str | None = None,
    ):
        where = file
        if column is not None:
            where = f"{file}, column '{column}'" if file else f"column '{column}'"
        if examples is not None:
            shown = [repr(e) for e in list(examples)[:5]]
            if shown:
                message = f"{message} (e.g. {', '.join(shown)})"
        self.file = file
        self.column = column
        super().__init__(message, where=where, hint=hint)
