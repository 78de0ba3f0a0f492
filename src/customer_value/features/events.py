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


_PER_DAY = {
    "D": 1,
    "h": 24,
    "m": 1440,
    "s": 86_400,
    "ms": 86_400_000,
    "us": 86_400_000_000,
    "ns": 86_400_000_000_000,
}


def to_day(values) -> np.ndarray:
    """Datetimes -> int64 days since 1970-01-01 (the calendar day, time of day dropped)."""
    arr = np.asarray(values)
    if arr.dtype.kind != "M":
        arr = arr.astype("datetime64[ns]")
    unit, count = np.datetime_data(arr.dtype)
    if unit in _PER_DAY and count == 1:
        # Floor division of the raw ticks: no intermediate datetime copies.
        return arr.view(np.int64) // _PER_DAY[unit]
    return arr.astype("datetime64[D]").astype(np.int64)


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
        return Events(
            as_of_day=as_of_day,
            customer_ids=customer_ids,
            tx=tx,
            code=empty,
            day=empty,
            d_code=empty,
            d_day=empty,
            d_net=np.zeros(0),
            p_code=empty,
            p_day=empty,
            p_net=np.zeros(0),
        )
    day_min = int(day.min())
    span = as_of_day - day_min + 1
    key = code.astype(np.int64) * span + (day - day_min)
    if len(key) and np.all(key[1:] >= key[:-1]):
        # Validated frames are sorted by (customer, time): customer-days without a sort.
        start = np.empty(len(key), dtype=bool)
        start[0] = True
        np.not_equal(key[1:], key[:-1], out=start[1:])
        uniq = key[start]
        inverse = np.cumsum(start) - 1
    else:
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
        p_code=d_code[purchase],
        p_day=d_day[purchase],
        p_net=d_net[purchase],
    )


def _encode(ids: pd.Series) -> tuple[pd.Index, np.ndarray]:
    """Sorted unique ids and each row's position among them.

    Validated frames are sorted by customer id, so the codes are a running count of id changes
    (one vectorised comparison, via Arrow when the strings are Arrow-backed); other frames fall back
    to a sorted factorize.
    """
    if len(ids) > 1:
        try:
            import pyarrow as pa
            import pyarrow.compute as pc

            arr = pa.array(ids.array) if hasattr(ids.array, "__arrow_array__") else None
        except (ImportError, TypeError, pa.ArrowInvalid):
            arr = None
        if (
            arr is not None
            and pa.types.is_string(arr.type)
            or (arr is not None and pa.types.is_large_string(arr.type))
        ):
            head, tail = arr[:-1], arr[1:]
            if arr.null_count == 0 and not pc.any(pc.less(tail, head)).as_py():
                change = pc.not_equal(tail, head).to_numpy(zero_copy_only=False)
                codes = np.concatenate([[0], np.cumsum(change)]).astype(np.int64)
                starts = np.concatenate([[0], np.flatnonzero(change) + 1])
                uniques = arr.take(pa.array(starts)).to_pylist()
                return pd.Index(uniques, dtype=str, name="customer_id"), codes
    codes, uniques = pd.factorize(ids, sort=True)
    return pd.Index(uniques.astype(str), name="customer_id"), codes.astype(np.int64)
