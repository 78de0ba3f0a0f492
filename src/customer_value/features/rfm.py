"""RFM features with units in the names, and their rate-normalised versions.

Conventions (METRICS.md): a purchase day is a customer-day with net amount > 0; ``frequency`` =
purchase days − 1; ``recency_days`` = last − first purchase day; ``tenure_days`` (T) = as_of − first
purchase day. A customer whose rows up to ``as_of`` are all returns has no purchase day: frequency 0,
recency 0, T counted from the first row, monetary means missing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from customer_value.features.events import Events, per_customer

__all__ = ["rfm_features", "rfm_summary", "first_last"]


def first_last(
    codes: np.ndarray, values: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First and last value per customer of rows sorted by customer (NaN where a customer has none)."""
    starts = np.searchsorted(codes, np.arange(n), side="left")
    ends = np.searchsorted(codes, np.arange(n), side="right")
    has = ends > starts
    first = np.full(n, np.nan)
    last = np.full(n, np.nan)
    first[has] = values[starts[has]]
    last[has] = values[ends[has] - 1]
    return first, last, has


def rfm_summary(ev: Events) -> pd.DataFrame:
    """The BTYD summary only: frequency, recency_days, tenure_days, monetary_repeat_mean.

    The subset that ``lifetimes.utils.summary_data_from_transaction_data`` computes (its
    ``monetary_value`` is the mean over repeat purchase days too); the benchmark compares the two.
    """
    full = _rfm_core(ev)
    return full[["frequency", "recency_days", "tenure_days", "monetary_repeat_mean"]]


def _rfm_core(ev: Events) -> pd.DataFrame:
    n = ev.n
    n_pdays = per_customer(ev.p_code, n)
    first_p, last_p, has_p = first_last(ev.p_code, ev.p_day.astype(float), n)
    first_seen, _, _ = first_last(ev.d_code, ev.d_day.astype(float), n)
    first = np.where(has_p, first_p, first_seen)
    last = np.where(has_p, last_p, first_seen)
    frequency = np.maximum(n_pdays - 1, 0)
    tenure = ev.as_of_day - first
    p_total = per_customer(ev.p_code, n, ev.p_net)
    first_net, _, _ = first_last(ev.p_code, ev.p_net, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        monetary_mean = np.where(n_pdays > 0, p_total / n_pdays, np.nan)
        monetary_repeat_mean = np.where(frequency > 0, (p_total - first_net) / frequency, np.nan)
    return pd.DataFrame(
        {
            "recency_days": last - first,
            "frequency": frequency,
            "tenure_days": tenure,
            "days_since_last_purchase": ev.as_of_day - last,
            "purchase_days": n_pdays,
            "monetary_mean": monetary_mean,
            "monetary_repeat_mean": monetary_repeat_mean,
        },
        index=ev.customer_ids,
    )


def rfm_features(ev: Events, rate_floor_days: int = 30) -> pd.DataFrame:
    """Recency, frequency, tenure, monetary, orders and per-year rates at ``ev.as_of_day``."""
    n = ev.n
    tx = ev.tx
    core = _rfm_core(ev)
    n_pdays = core["purchase_days"].to_numpy()
    frequency = core["frequency"].to_numpy()
    tenure = core["tenure_days"].to_numpy()
    recency = core["recency_days"].to_numpy()
    amount = tx["amount"].to_numpy(dtype=float)
    sales = amount > 0
    if "order_id" in tx.columns:
        order_codes = np.asarray(pd.factorize(tx["order_id"])[0], dtype=np.int64)[sales]
        width = order_codes.max(initial=0) + 1
        pairs = pd.unique(ev.code[sales] * width + order_codes)  # hash-based, no sort
        order_count = per_customer(pairs // width, n)
    else:
        order_count = n_pdays
    if "quantity" in tx.columns:
        qty = per_customer(ev.code[sales], n, tx["quantity"].to_numpy(dtype=float)[sales])
        with np.errstate(divide="ignore", invalid="ignore"):
            items_per_order = np.where(order_count > 0, qty / order_count, np.nan)
    else:
        items_per_order = np.full(n, np.nan)

    years = np.maximum(tenure, rate_floor_days) / 365.0
    monetary_total = per_customer(ev.code, n, amount)
    with np.errstate(divide="ignore", invalid="ignore"):
        recency_share = np.where(tenure > 0, recency / tenure, np.nan)
    return core.assign(
        monetary_total=monetary_total,
        order_count=order_count,
        items_per_order=items_per_order,
        frequency_per_year=frequency / years,
        orders_per_year=order_count / years,
        revenue_per_year=monetary_total / years,
        recency_share=recency_share,
    )
