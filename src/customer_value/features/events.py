"""The point-in-time view of the transaction log that every feature family reads.

:func:`prepare_events` keeps only events on or before ``as_of`` and encodes customers, days and
customer-days as integers once, so that each family is a handful of ``np.bincount`` calls: no Python
loop per customer, no repeated group-by on strings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Events", "prepare_events", "to_day", "per_customer"]


def to_day(values) -> np.ndarray:
    """Datetimes -> int64 days since 1970-01-01 (the calendar day, time of day dropped)."""
    return np.asarray(values, dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64)


def per_customer(codes: np.ndarray, n: int, weights=None) -> np.ndarray:
    """Sum ``weights`` (or count rows) per customer code."""
    return np.bincount(codes, weights=weights, minlength=n).astype(float)


@dataclass(frozen=True)
class Events:
    """Transactions on or before ``as_of``, integer-encoded.

    Attributes
    ----------
    as_of_day : int
        The cutoff as days since the epoch; events on this day are included.
    customer_ids : Index
        Sorted ids of customers first seen on or before ``as_of`` (the output rows).
    tx : DataFrame
        Transaction rows on or before ``as_of`` (validated columns).
    code, day : ndarray
        Per row: customer code (position in ``customer_ids``) and day.
    d_code, d_day, d_net : ndarray
        Customer-days sorted by (customer, day) with the day's net amount.
    p_code, p_day, p_net : ndarray
        Purchase days (net amount > 0), sorted by (customer, day).
    """

    as_of_day: int
    customer_ids: pd.Index
    tx: pd.DataFrame
    code: np.ndarray
    day: np.ndarray
    d_code: np.ndarray
    d_day: np.ndarray
    d_net: np.ndarray
    d_index: np.ndarray
    p_code: np.ndarray
    p_day: np.ndarray
    p_net: np.ndarray

    @property
    def n(self) -> int:
        """Number of customers."""
        return len(self.customer_ids)


def prepare_events(transactions: pd.DataFrame, as_of) -> Events:
    """Encode the events on or before ``as_of`` (a date; its whole day is included)."""
    as_of_day = int(to_day([pd.Timestamp(as_of)])[0])
    day_all = to_day(transactions["timestamp"])
    keep = day_all <= as_of_day
    tx = transactions[keep] if not keep.all() else transactions
    day = day_all[keep]
    customer_ids, code = _encode(tx["customer_id"])
    n = len(customer_ids)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Events(as_of_day, customer_ids, tx, empty, empty, empty, empty, np.zeros(0),
                      empty, empty, empty, np.zeros(0))
    day_min = int(day.min())
    span = as_of_day - day_min + 1
    key = code.astype(np.int64) * span + (day - day_min)
    uniq, inverse = np.unique(key, return_inverse=True)
    d_code = (uniq // span).astype(np.int64)
    d_day = (uniq % span + day_min).astype(np.int64)
    d_net = np.bincount(inverse, weights=tx["amount"].to_numpy(dtype=float), minlength=len(uniq))
    purchase = d_net > 0
    return Events(
        as_of_day=as_of_day,
        customer_ids=customer_ids,
        tx=tx,
        code=code,
        day=day,
        d_code=d_code,
        d_day=d_day,
        d_net=d_net,
        d_index=inverse,
        p_code=d_code[purchase],
        p_day=d_day[purchase],
        p_net=d_net[purchase],
    )


def _encode(ids: pd.Series) -> tuple[pd.Index, np.ndarray]:
    codes, uniques = pd.factorize(ids, sort=True)
    return pd.Index(uniques.astype(str), name="customer_id"), codes.astype(np.int64)
