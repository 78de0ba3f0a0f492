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


def top_values(tx: pd.DataFrame, column: str, k: int) -> list[str]:
    """The ``k`` values of ``column`` with the largest sales amount (ties broken by name)."""
    if column not in tx.columns or k == 0:
        return []
    codes, uniques = _encode(tx[column])
    amount = tx["amount"].to_numpy(dtype=float)
    sel = (amount > 0) & (codes >= 0)
    totals = np.bincount(codes[sel], weights=amount[sel], minlength=len(uniques))
    ordered = sorted(
        ((str(u), t) for u, t in zip(uniques, totals, strict=True) if t > 0),
        key=lambda kv: (-kv[1], kv[0]),
    )
    return [name for name, _ in ordered[:k]]


def _distinct(codes: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Distinct non-missing ``values`` (integer codes, -1 = missing) per customer."""
    width = int(values.max(initial=0)) + 2
    pairs = pd.unique(codes * width + (values + 1))  # hash-based; +1 keeps missing (-1) apart
    pairs = pairs[pairs % width != 0]
    return per_customer(pairs // width, n)


def _shares(codes, values: np.ndarray, uniques, weights, vocabulary, prefix, n):
    """Share of ``weights`` per customer falling in each vocabulary value."""
    total = per_customer(codes, n, weights)
    lookup = {str(name): i for i, name in enumerate(vocabulary)}
    to_vocab = np.array([lookup.get(str(u), -1) for u in uniques] + [-1], dtype=np.int64)
    idx = to_vocab[values]  # a missing value (-1) picks the trailing -1
    k = len(vocabulary)
    sel = idx >= 0
    parts = np.bincount(codes[sel] * k + idx[sel], weights=weights[sel], minlength=n * k)
    parts = parts.reshape(n, k) if k else np.zeros((n, 0))
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, i in lookup.items():
            out[f"{prefix}_{slug(name)}"] = np.where(total > 0, parts[:, i] / total, np.nan)
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

    # Inter-purchase gaps between consecutive purchase days of the same customer.
    same = ev.p_code[1:] == ev.p_code[:-1]
    gaps = np.diff(ev.p_day).astype(float)[same]
    gcode = ev.p_code[1:][same]
    cnt = per_customer(gcode, n)
    s1 = per_customer(gcode, n, gaps)
    s2 = per_customer(gcode, n, gaps**2)
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

    # Active months, and their share of the months since the first purchase.
    months = ev.p_day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    mpairs = pd.unique(ev.p_code * 100_000 + (months - months.min(initial=0)))
    active = per_customer(mpairs // 100_000, n)
    first_month = np.full(n, np.nan)
    if len(months):
        starts = np.searchsorted(ev.p_code, np.arange(n), side="left")
        has = per_customer(ev.p_code, n) > 0
        first_month[has] = months[starts[has]]
    as_of_month = np.datetime64(int(ev.as_of_day), "D").astype("datetime64[M]").astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["active_months"] = active
        cols["active_month_share"] = active / (as_of_month - first_month + 1)

    amount = tx["amount"].to_numpy(dtype=float)
    sales = amount > 0
    sc = ev.code[sales]
    sales_amount = amount[sales]
    gross = per_customer(sc, n, sales_amount)
    # Encode each text column once over all rows, then select integer codes (no string copies).
    if "category" in tx.columns:
        cat, cat_u = _encode(tx["category"])
        cols["distinct_categories"] = _distinct(sc, cat[sales], n)
        cols.update(_shares(sc, cat[sales], cat_u, sales_amount, categories, "cat_share", n))
    if "product_id" in tx.columns:
        cols["distinct_products"] = _distinct(sc, _encode(tx["product_id"])[0][sales], n)
    if "channel" in tx.columns:
        ch, ch_u = _encode(tx["channel"])
        cols.update(_shares(sc, ch[sales], ch_u, sales_amount, channels, "channel_share", n))
    with np.errstate(divide="ignore", invalid="ignore"):
        if "discount" in tx.columns:
            disc = per_customer(sc, n, tx["discount"].to_numpy(dtype=float)[sales])
            cols["discount_share"] = np.where(gross + disc > 0, disc / (gross + disc), np.nan)
        returned = per_customer(ev.code[~sales], n, -amount[~sales])
        cols["return_rate"] = np.where(gross > 0, returned / gross, np.nan)
        # 1970-01-01 was a Thursday: weekday = (day + 3) % 7 with Monday = 0.
        weekend = ((ev.p_day + 3) % 7) >= 5
        npd = per_customer(ev.p_code, n)
        cols["weekend_share"] = np.where(npd > 0, per_customer(ev.p_code[weekend], n) / npd, np.nan)
    return pd.DataFrame(cols, index=ev.customer_ids)
