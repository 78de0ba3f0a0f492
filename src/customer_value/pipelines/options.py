"""Dates and day counts typed on the command line, parsed and checked one way for every command.

``--as-of``, ``--cutoffs`` and ``--cal-end`` are all ISO dates (``YYYY-MM-DD``, a time allowed)
without a time zone: ``01/07/2024`` is January or July depending on who reads it, so it is refused
rather than guessed. Day counts (``--horizon-days``, ``--holdout-days``) are at least 1. Every check
here runs before any data is read.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from customer_value.errors import UserError

__all__ = [
    "check_as_of_in_data",
    "check_days",
    "check_output",
    "check_windows",
    "input_paths",
    "parse_date",
    "parse_dates",
]

ISO_HINT = "use an ISO date, YYYY-MM-DD (e.g. 2024-06-30), without a time zone"


def parse_date(value, option: str = "--as-of") -> pd.Timestamp | None:
    """One date option as a naive Timestamp (None stays None).

    Parameters
    ----------
    value : str, date-like or None
        As typed (text) or passed from code (a date or Timestamp).
    option : str
        The option's name, for the message.

    Returns
    -------
    Timestamp or None

    Raises
    ------
    UserError
        Not an ISO date (``01/07/2024`` included: ambiguous), out of range, or with a time zone.

    Examples
    --------
    >>> parse_date("2024-06-30")
    Timestamp('2024-06-30 00:00:00')
    """
    if value is None:
        return None
    try:
        if isinstance(value, str):
            when = pd.to_datetime(value.strip(), format="ISO8601")
        else:
            when = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        raise UserError(f"{option} {str(value)[:40]!r} is not a date", hint=ISO_HINT) from None
    if pd.isna(when):
        raise UserError(f"{option} {str(value)[:40]!r} is not a date", hint=ISO_HINT)
    if when.tzinfo is not None:
        raise UserError(
            f"{option} {str(value)[:40]!r} has a time zone, but the data's timestamps have none",
            hint=f"{ISO_HINT} (dates are in data.timezone, or as written in the files)",
        )
    return when


def parse_dates(values: list[str], option: str) -> list[pd.Timestamp]:
    """A comma-separated date list (``--cutoffs``, ``--cal-end``): parsed, day-normalised, sorted.

    Raises
    ------
    UserError
        Empty, or any item is not an ISO date (the message names the first bad item).
    """
    items = [v.strip() for v in values if v is not None and str(v).strip()]
    if not items:
        raise UserError(f"{option} names no date", hint=f"{ISO_HINT}; separate several by commas")
    return sorted({parse_date(v, option).normalize() for v in items})


def check_days(days: int | None, option: str) -> int | None:
    """A day count option: None (the config decides) or at least 1."""
    if days is not None and int(days) < 1:
        raise UserError(f"{option} must be at least 1 day (got {days})", hint=f"e.g. {option} 91")
    return days


def check_windows(
    stamps: list[pd.Timestamp], days: int, last: pd.Timestamp, what: str, option: str
) -> list[pd.Timestamp]:
    """Every date must leave ``days`` of data after it (a label window or a holdout)."""
    late = [c for c in stamps if c + pd.Timedelta(days=days) > last]
    if late:
        raise UserError(
            f"{what} {', '.join(str(c.date()) for c in late)} leave less than the {days}-day window "
            f"before the data ends on {last.date()}",
            hint=f"use dates on or before {(last - pd.Timedelta(days=days)).date()}, or a shorter "
            f"{option}",
        )
    return stamps


def check_as_of_in_data(as_of: pd.Timestamp, first_date, last) -> None:
    """An as_of must lie within the data, for training and scoring alike.

    After the last transaction, training's out-of-time label window would count days the data does
    not cover as "no purchase", and scoring would age every customer by days nobody observed (each
    looks lapsed); before the first, no customer exists yet.
    """
    last = pd.Timestamp(last).normalize()
    first = pd.Timestamp(first_date).normalize() if first_date is not None else None
    span = (
        f"the data runs from {first.date()} to {last.date()}"
        if first is not None
        else (f"the data ends on {last.date()}")
    )
    if as_of > last:
        raise UserError(
            f"as_of {as_of.date()} is after the last transaction ({last.date()}): days after it "
            "are unobserved, not days without purchases",
            hint=f"{span}; omit --as-of (it defaults to the last date) or choose a date in that range",
        )
    if first is not None and as_of < first:
        raise UserError(
            f"as_of {as_of.date()} is before the first transaction ({first.date()})",
            hint=f"{span}; choose an --as-of in that range",
        )


def input_paths(config) -> dict[str, Path]:
    """Every file the config reads or keeps: the sources, the config itself, the tracking store."""
    paths: dict[str, Path] = {}
    for name in ("transactions", "customers", "interactions", "campaigns"):
        source = getattr(config.data, name, None)
        if source is not None and "://" not in str(source.path):
            paths[f"data.{name}.path"] = Path(source.path)
    if getattr(config, "source_path", None):
        paths["the config file"] = Path(config.source_path)
    if config.tracking.uri is None:
        paths["tracking.db_path"] = Path(config.tracking.db_path)
    return paths


def check_output(target, config, option: str) -> None:
    """Refuse an output that would replace one of the config's inputs (or its store).

    A features or predictions file written over the transactions it was computed from loses the
    data silently; the check compares resolved paths, and the files themselves when both exist (a
    hard or symbolic link to an input is the input).

    Raises
    ------
    UserError
        ``target`` is one of :func:`input_paths`.
    """
    if target is None or "://" in str(target):
        return
    out = Path(target).expanduser().resolve()
    for name, path in input_paths(config).items():
        path = path.expanduser().resolve()
        same = out == path
        if not same and out.exists() and path.exists():
            try:
                same = os.path.samefile(out, path)
            except OSError:
                same = False
        if same:
            raise UserError(
                f"{option} is the file configured as {name}: writing it would replace an input",
                where=str(target),
                hint=f"choose another {option}",
            )
