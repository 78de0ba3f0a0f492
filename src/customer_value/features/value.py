"""Value: customer value = benefits − costs (margin, acquisition cost, cost to serve, referrals).

The benefit of a customer is gross margin (amount − cost) where the log has a ``cost`` column, else
net revenue. ``customer_value_to_date`` = benefit − acquisition cost − cost to serve + the benefit
of the customers they referred, all up to ``as_of``; a missing acquisition cost or cost to serve
(no customers or interactions table) counts as 0 in that sum and stays missing in its own column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from customer_value.features.events import Events, per_customer

__all__ = ["value_features"]


def value_features(
    ev: Events,
    customers: pd.DataFrame | None,
    tickets_total: np.ndarray | None,
    cost_per_ticket: float,
) -> pd.DataFrame:
    """Margin, acquisition cost, cost to serve, referrals and value to date per customer."""
    n = ev.n
    tx = ev.tx
    revenue = ev.revenue
    sales = ev.gross
    cols: dict[str, np.ndarray] = {}
    if "cost" in tx.columns:
        # amount - cost (missing cost = 0), in a reused buffer: the same values, no fresh copies.
        line_margin = ev.workspace(np.float64, len(ev.code))
        np.copyto(line_margin, tx["cost"].to_numpy(dtype=float))
        np.nan_to_num(line_margin, copy=False)
        margin = per_customer(ev.code, n, np.subtract(ev.amount, line_margin, out=line_margin))
        cols["gross_margin_total"] = margin
        with np.errstate(divide="ignore", invalid="ignore"):
            cols["margin_rate"] = np.where(sales > 0, margin / sales, np.nan)
        benefit = margin
    else:
        benefit = revenue

    acq = np.full(n, np.nan)
    referrals = np.zeros(n)
    referred_revenue = np.zeros(n)
    referred_benefit = np.zeros(n)
    if customers is not None:
        cust = customers.set_index("customer_id")
        if "acquisition_cost" in cust.columns:
            acq = cust["acquisition_cost"].reindex(ev.customer_ids).to_numpy(dtype=float)
        if "referred_by" in cust.columns:
            # Only referred customers first seen by as_of count; the referrer must be known too.
            ref = cust["referred_by"].reindex(ev.customer_ids)
            pos = ev.customer_ids.get_indexer(ref.astype(object).where(ref.notna(), None))
            ok = pos >= 0
            referrals = per_customer(pos[ok], n)
            referred_revenue = per_customer(pos[ok], n, revenue[ok])
            referred_benefit = per_customer(pos[ok], n, benefit[ok])
    cols["acquisition_cost"] = acq
    if tickets_total is None:
        cost_to_serve = np.full(n, np.nan)
    else:
        cost_to_serve = tickets_total * cost_per_ticket
    cols["cost_to_serve"] = cost_to_serve
    cols["referrals_made"] = referrals
    cols["referred_revenue"] = referred_revenue
    cols["customer_value_to_date"] = (
        benefit - np.nan_to_num(acq) - np.nan_to_num(cost_to_serve) + referred_benefit
    )
    return pd.DataFrame(cols, index=ev.customer_ids, copy=False)  # see behaviour_features
