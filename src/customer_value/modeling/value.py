"""Net customer value over the horizon: benefits − costs, per customer and per persona.

Per customer, over ``horizon_days`` after ``as_of`` (all in the log's currency):

* ``predicted_clv``: the CLV model's expected revenue, or margin where the log has costs, over the
  horizon, discounted at ``annual_discount_rate`` (value assumed to arrive evenly over the horizon,
  so the factor is ``(1 − (1 + d)^−h) / (h ln(1 + d))`` with ``h`` in years; 1 when ``d = 0``).
* ``expected_cost_to_serve``: tickets per purchase day so far × expected purchase days over the
  horizon (BG/NBD) × cost per ticket.
* ``expected_referral_value``: the benefit of the customers they referred so far, per year of
  tenure, × the horizon in years (a run rate; 0 for customers who never referred anyone).
* ``acquisition_cost``: as recorded (0 when unknown).

``net_value = predicted_clv − expected_cost_to_serve + expected_referral_value − acquisition_cost``
(the mission's continuing value) and ``clv_to_cac = predicted_clv / acquisition_cost`` (missing when
the acquisition cost is unknown or 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["discount_factor", "customer_value", "persona_value"]


def discount_factor(horizon_days: int, annual_rate: float) -> float:
    """Present value of 1 spread evenly over the horizon, at a continuous-compounding equivalent.

    Examples
    --------
    >>> discount_factor(365, 0.0)
    1.0
    >>> round(discount_factor(365, 0.10), 4)
    0.9531
    """
    if annual_rate == 0:
        return 1.0
    h = horizon_days / 365.0
    k = np.log1p(annual_rate)
    return float((1 - np.exp(-k * h)) / (k * h))


def customer_value(
    features: pd.DataFrame,
    predicted_clv: pd.Series,
    expected_transactions: pd.Series,
    horizon_days: int,
    cost_per_ticket: float,
    annual_discount_rate: float = 0.0,
    rate_floor_days: int = 30,
) -> pd.DataFrame:
    """Per-customer value components and net value (see the module docstring)."""
    f = features
    factor = discount_factor(horizon_days, annual_discount_rate)
    clv = predicted_clv.reindex(f.index).astype(float) * factor
    tickets = f["tickets_total"] if "tickets_total" in f.columns else pd.Series(np.nan, index=f.index)
    per_day = (tickets / f["purchase_days"].where(f["purchase_days"] > 0)).fillna(0.0)
    expected = expected_transactions.reindex(f.index).fillna(0.0)
    cost_to_serve = per_day * expected * cost_per_ticket * factor
    years = np.maximum(f["tenure_days"], rate_floor_days) / 365.0
    if "referred_revenue" in f.columns:
        referred = f["referred_revenue"]
        if "margin_rate" in f.columns:
            # The benefit of referred customers: their revenue at this customer's margin rate.
            referred = referred * f["margin_rate"].fillna(f["margin_rate"].median())
        referral = referred / years * (horizon_days / 365.0) * factor
    else:
        referral = pd.Series(0.0, index=f.index)
    cac = f["acquisition_cost"] if "acquisition_cost" in f.columns else pd.Series(np.nan, index=f.index)
    net = clv - cost_to_serve + referral - cac.fillna(0.0)
    return pd.DataFrame(
        {
            "predicted_clv": clv,
            "expected_cost_to_serve": cost_to_serve,
            "expected_referral_value": referral,
            "acquisition_cost": cac,
            "net_value": net,
            "clv_to_cac": clv / cac.where(cac > 0),
        },
        index=f.index,
    )


def persona_value(values: pd.DataFrame, personas: pd.Series) -> pd.DataFrame:
    """Total and mean value components per persona."""
    frame = values.assign(persona=personas.reindex(values.index))
    g = frame.groupby("persona")
    out = pd.DataFrame(
        {
            "customers": g.size(),
            "predicted_clv_mean": g["predicted_clv"].mean(),
            "net_value_total": g["net_value"].sum(),
            "net_value_mean": g["net_value"].mean(),
            "clv_to_cac_median": g["clv_to_cac"].median(),
        }
    )
    return out
