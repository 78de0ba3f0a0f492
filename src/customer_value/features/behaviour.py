"""Behaviour: purchase rhythm, recent trends, breadth, mix, discounts, returns, weekends."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from customer_value.features.events import Events, per_customer

__all__ = ["behaviour_features", "top_values", "slug"]


def slug(value: str) -> str:
    """A column-name-safe version of a category or channel name."""
    return re.sub(r"[^0-9a-z]+", "_", str(value).lower()).strip("_") or "blank"


def _encode(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (-1 for missing) and the unique values, without a per-row Python call."""
    # On the Series itself: Arrow-backed strings are dictionary-encoded natively (no object copy).
    codes, uniques = pd.factorize(values)
    return np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=object)


def top_values(tx: pd.DataFrame | Events, column: str, k: int) -> list[str]:
    """The ``k`` values of ``column`` with the largest sales amount (ties broken by name).

    ``tx`` is a transaction frame, or the :class:`Events` at a cutoff (whose encoding of the column
    is then reused by :func:`behaviour_features`).
    """
    frame = tx.tx if isinstance(tx, Events) else tx
    if column not in frame.columns or k == 0:
        return []
    if isinstance(tx, Events):
        codes, uniques, complete = tx.codes(column)
        size = len(uniques)
        # Sales rows with a value add to their value's bin, in row order; the others to a spare
        # bin: the same sums as selecting those rows first.
        key = tx.workspace(np.int64, len(codes))
        np.copyto(key, codes)
        np.copyto(key, size, where=tx.not_sales)
        if not complete:
            np.copyto(key, size, where=codes < 0)
        totals = np.bincount(key, weights=tx.amount, minlength=size + 1)[:size]
    else:
        codes, uniques = _encode(frame[column])
        amount = frame["amount"].to_numpy(dtype=float)
        sel = (amount > 0) & (codes >= 0)
        totals = np.bincount(codes[sel], weights=amount[sel], minlength=len(uniques))
    ordered = sorted(
        ((str(u), t) for u, t in zip(uniques, totals, strict=True) if t > 0),
        key=lambda kv: (-kv[1], kv[0]),
    )
    return [name for name, _ in ordered[:k]]


def _distinct(ev: Events, values: np.ndarray) -> np.ndarray:
    """Distinct non-missing ``values`` (per-row codes, -1 = missing) per customer, on sales rows.

    Sorts one integer key per row, customer × width + value + 1 (+1 keeps missing apart; rows that
    are not sales get a sentinel above every key), in a reused buffer, and counts the key changes:
    a sort of small integers (int32 when the keys fit) is several times cheaper than a hash table
    over every row, and gives the same counts.
    """
    n = ev.n
    width = int(values.max(initial=0)) + 2
    dtype = np.int32 if n * width < 2**31 - 1 else np.int64
    sentinel = np.iinfo(dtype).max
    key = ev.workspace(dtype, len(values))
    np.multiply(ev.code, width, out=key, casting="unsafe")
    np.add(key, values, out=key, casting="unsafe")
    key += 1
    np.copyto(key, sentinel, where=ev.not_sales)
    key.sort()
    key = key[: np.searchsorted(key, key.dtype.type(sentinel))]  # the sales rows
    first = np.empty(len(key), dtype=bool)
    first[:1] = True
    np.not_equal(key[1:], key[:-1], out=first[1:])
    pairs = key[first]
    pairs = pairs[pairs % width != 0]
    return per_customer(pairs // width, n)


def _value_sales(ev: Events, values: np.ndarray, complete: bool, size: int) -> np.ndarray | None:
    """Per (customer, value): the sales amount, an (n, size) array; None when too many values.

    One bin per (customer, value): key = customer × size + value on sales rows with a value, a
    spare bin (n × size) on the others; each bin adds its rows in row order, the same sums as
    selecting the rows of one value first.
    """
    n = ev.n
    if n * size > max(2**24, 32 * n):  # many values: the (n, size) array would be too large
        return None
    key = ev.workspace(np.int64, len(values))
    np.multiply(ev.code, size, out=key)
    key += values
    np.copyto(key, n * size, where=ev.not_sales)
    if not complete:
        np.copyto(key, n * size, where=values < 0)
    return np.bincount(key, weights=ev.amount, minlength=n * size + 1)[: n * size].reshape(n, size)


def _shares(
    ev: Events, values: np.ndarray, uniques, vocabulary, prefix, by_value: np.ndarray | None
) -> dict[str, np.ndarray]:
    """Share of sales per customer in each vocabulary value (``values``: per-row codes).

    ``by_value`` = :func:`_value_sales` of the column when it fits (a vocabulary value absent
    from the data gets zeros, as before); otherwise one bin per (customer, vocabulary value).
    """
    n = ev.n
    total = ev.gross
    column_of = {str(u): j for j, u in enumerate(uniques)}
    if by_value is None or len(column_of) != len(uniques):  # many values, or text forms collide
        lookup = {str(name): i for i, name in enumerate(vocabulary)}
        to_vocab = np.array([lookup.get(str(u), -1) for u in uniques] + [-1], dtype=np.int64)
        position = to_vocab[values]  # a missing value (-1) picks the trailing -1
        size = len(vocabulary)
        key = ev.workspace(np.int64, len(values))
        np.multiply(ev.code, size, out=key)
        key += position
        np.copyto(key, n * size, where=ev.not_sales | (position < 0))
        del position
        by_value = np.bincount(key, weights=ev.amount, minlength=n * size + 1)[: n * size]
        by_value = by_value.reshape(n, size)
        column_of = lookup
    zeros = np.zeros(n)
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name in vocabulary:
            j = column_of.get(str(name))
            part = zeros if j is None else by_value[:, j]
            out[f"{prefix}_{slug(name)}"] = np.where(total > 0, part / total, np.nan)
    return out


def behaviour_features(
    ev: Events,
    days_since_last: np.ndarray,
    trend_windows: list[int],
    categories: list[str],
    channels: list[str],
) -> pd.DataFrame:
    """Gaps, trends, active months, cross-buy, category and channel mix, discounts, returns."""
    n = ev.n
    tx = ev.tx
    cols: dict[str, np.ndarray] = {}

    # Inter-purchase gaps between consecutive purchase days of the same customer. Gaps across two
    # customers go to a spare bin (n): the same sums as selecting the same-customer gaps first.
    p_code, p_day = ev.p_code, ev.p_day
    gaps = np.subtract(p_day[1:], p_day[:-1], out=np.empty(max(len(p_day) - 1, 0)))
    gcode = np.where(p_code[1:] == p_code[:-1], p_code[1:], n)
    cnt = np.bincount(gcode, minlength=n + 1)[:n].astype(float)
    s1 = np.bincount(gcode, weights=gaps, minlength=n + 1)[:n]
    s2 = np.bincount(gcode, weights=np.square(gaps, out=gaps), minlength=n + 1)[:n]
    del gaps, gcode
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(cnt > 0, s1 / cnt, np.nan)
        var = np.where(cnt > 1, (s2 - cnt * mean**2) / (cnt - 1), np.nan)
        std = np.sqrt(np.maximum(var, 0.0))
        cols["gap_mean_days"] = mean
        cols["gap_std_days"] = np.where(cnt > 1, std, np.nan)
        cols["gap_cv"] = np.where((cnt > 1) & (mean > 0), std / mean, np.nan)
        cols["overdue_ratio"] = np.where(mean > 0, days_since_last / mean, np.nan)

    # Recent windows against the window of equal length before them (net spend, purchase days).
    for w in trend_windows:
        cur = ev.d_day > ev.as_of_day - w
        prev = (ev.d_day > ev.as_of_day - 2 * w) & ~cur
        spend_cur = per_customer(ev.d_code[cur], n, ev.d_net[cur])
        spend_prev = per_customer(ev.d_code[prev], n, ev.d_net[prev])
        pcur = ev.p_day > ev.as_of_day - w
        pprev = (ev.p_day > ev.as_of_day - 2 * w) & ~pcur
        orders_cur = per_customer(ev.p_code[pcur], n)
        orders_prev = per_customer(ev.p_code[pprev], n)
        denom = np.abs(spend_cur) + np.abs(spend_prev)
        with np.errstate(divide="ignore", invalid="ignore"):
            cols[f"spend_{w}d"] = spend_cur
            cols[f"purchase_days_{w}d"] = orders_cur
            cols[f"spend_trend_{w}d"] = np.where(denom > 0, (spend_cur - spend_prev) / denom, np.nan)
            cols[f"purchase_days_trend_{w}d"] = np.where(
                orders_cur + orders_prev > 0,
                (orders_cur - orders_prev) / (orders_cur + orders_prev),
                np.nan,
            )

    # Active months, and their share of the months since the first purchase. Purchase days are
    # sorted by (customer, day), so each new (customer, month) pair starts where either changes.
    months = p_day.view("datetime64[D]").astype("datetime64[M]").view(np.int64)
    new_pair = np.empty(len(months), dtype=bool)
    new_pair[:1] = True
    np.not_equal(months[1:], months[:-1], out=new_pair[1:])
    new_pair[1:] |= p_code[1:] != p_code[:-1]
    active = per_customer(p_code[new_pair], n)
    del new_pair
    first_month = np.full(n, np.nan)
    if len(months):
        starts = ev.p_bounds[0]
        has = ev.purchase_days > 0
        first_month[has] = months[starts[has]]
    as_of_month = np.datetime64(int(ev.as_of_day), "D").astype("datetime64[M]").astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["active_months"] = active
        cols["active_month_share"] = active / (as_of_month - first_month + 1)

    gross = ev.gross
    # Each text column is encoded once, straight to small integer codes.
    if "category" in tx.columns:
        cat, cat_u, cat_complete = ev.codes("category")
        by_value = _value_sales(ev, cat, cat_complete, len(cat_u))
        if by_value is not None:
            # A value was bought on a sales row (amount > 0) exactly when its bin sum is > 0.
            cols["distinct_categories"] = np.count_nonzero(by_value > 0, axis=1).astype(float)
        else:
            cols["distinct_categories"] = _distinct(ev, cat)
        cols.update(_shares(ev, cat, cat_u, categories, "cat_share", by_value))
        del by_value
    if "product_id" in tx.columns:
        cols["distinct_products"] = _distinct(ev, ev.codes("product_id")[0])
    if "channel" in tx.columns:
        ch, ch_u, ch_complete = ev.codes("channel")
        by_value = _value_sales(ev, ch, ch_complete, len(ch_u))
        cols.update(_shares(ev, ch, ch_u, channels, "channel_share", by_value))
        del by_value
    with np.errstate(divide="ignore", invalid="ignore"):
        if "discount" in tx.columns:
            disc = ev.sales_sums()["discount"]
            cols["discount_share"] = np.where(gross + disc > 0, disc / (gross + disc), np.nan)
        # Returned amount = the sum of -amount over the rows that are not sales, in row order.
        # Computed as 0.0 - (the sum of amount over those rows, the others feeding a spare bin):
        # negation is exact and rounding is symmetric, so every partial sum is the exact negative
        # of the original one (both +0.0 when a partial sum is zero), and 0.0 - s turns the final
        # sum into the original bit for bit, +0.0 included; no negated copy of the column.
        key = ev.workspace(np.int64, len(ev.code))
        np.copyto(key, ev.code)
        np.copyto(key, n, where=ev.sales)
        returned = 0.0 - np.bincount(key, weights=ev.amount, minlength=n + 1)[:n]
        cols["return_rate"] = np.where(gross > 0, returned / gross, np.nan)
        # 1970-01-01 was a Thursday: weekday = (day + 3) % 7 with Monday = 0.
        weekday = np.add(p_day, 3, out=months)  # the months buffer is spent: reuse it
        weekend = np.remainder(weekday, 7, out=weekday) >= 5
        npd = ev.purchase_days
        cols["weekend_share"] = np.where(npd > 0, per_customer(p_code[weekend], n) / npd, np.nan)
    # copy=False: the column arrays as they are, one block each, instead of copying them all into
    # one fresh 2-D block (a few hundred MB of new memory at 10M rows, for nothing: pandas copies
    # on write, and nothing here writes to these arrays afterwards).
    return pd.DataFrame(cols, index=ev.customer_ids, copy=False)
