"""Labels for a snapshot at cutoff ``c``: only events in ``(c, c + window]`` are read.

Per METRICS.md: a window excludes the cutoff day and includes its last day; churned = no purchase
day in ``(c, c + churn_window_days]``; future revenue = the sum over customer-days in
``(c, c + horizon_days]`` of the day's net amount clipped at 0; future transactions = purchase days
in that window; future margin = the net margin of those purchase days (where cost exists).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from customer_value.features.events import per_customer, to_day

__all__ = ["build_labels"]


def build_labels(
    transactions: pd.DataFrame,
    customer_ids: pd.Index,
    cutoff,
    horizon_days: int,
    churn_window_days: int,
) -> pd.DataFrame:
    """Churn and future-value labels for ``customer_ids`` after ``cutoff``.

    Parameters
    ----------
    transactions : DataFrame
        Validated transactions (any range; only the label windows are read).
    customer_ids : Index
        The customers to label (those scored at the cutoff).
    cutoff : date-like
        The snapshot's as_of.
    horizon_days, churn_window_days : int
        Window lengths.

    Returns
    -------
    DataFrame indexed by customer_id with ``churned``, ``future_revenue``, ``future_transactions``
    and, when the log has costs, ``future_margin``.
    """
    c = int(to_day([pd.Timestamp(cutoff)])[0])
    last = c + max(horizon_days, churn_window_days)
    day = to_day(transactions["timestamp"])
    sel = (day > c) & (day <= last)
    tx = transactions[sel]
    day = day[sel]
    n = len(customer_ids)
    pos = customer_ids.get_indexer(tx["customer_id"])
    ok = pos >= 0
    pos, day, tx = pos[ok], day[ok], tx[ok]
    amount = tx["amount"].to_numpy(dtype=float)
    has_cost = "cost" in tx.columns
    key = pos.astype(np.int64) * (last - c + 1) + (day - c)
    uniq, inv = np.unique(key, return_inverse=True)
    d_pos = uniq // (last - c + 1)
    d_day = uniq % (last - c + 1)  # 1 .. window length
    d_net = np.bincount(inv, weights=amount, minlength=len(uniq))
    # A sale and its same-day return net to float dust (1e-13), not to a purchase: the day's
    # net is rounded to 6 decimals first (as protocol R's scorer does).
    d_net = np.round(d_net, 6)
    purchase = d_net > 0
    in_h = d_day <= horizon_days
    in_c = d_day <= churn_window_days
    out = pd.DataFrame(
        {
            "churned": per_customer(d_pos[purchase & in_c], n) == 0,
            "future_revenue": per_customer(d_pos[purchase & in_h], n, d_net[purchase & in_h]),
            "future_transactions": per_customer(d_pos[purchase & in_h], n),
        },
        index=customer_ids,
    )
    if has_cost:
        d_margin = np.bincount(
            inv, weights=amount - np.nan_to_num(tx["cost"].to_numpy(dtype=float)), minlength=len(uniq)
        )
        out["future_margin"] = per_customer(d_pos[purchase & in_h], n, d_margin[purchase & in_h])
    return out
