"""Whom to contact for a retention budget, and what it should return.

Pure arithmetic on a prediction table (frame in, new frames out). For each customer the expected
net gain of one contact is

    gain = P(churn) × CLV × save_rate − contact_cost

where ``P(churn) × CLV`` is the prediction's ``value_at_risk`` and ``save_rate`` is the share of
would-be churners a contact keeps (an assumption per persona, from the config). Customers are
ranked by gain; the list under a budget is the top of that ranking, cut where the budget runs out
or where the next contact would lose money, whichever comes first.

The cumulative expected return curve is concave (gains are sorted, highest first): it rises while
gains are positive, peaks at the last positive gain (the best depth) and falls after it. The
break-even depth is the last point where the cumulative net return is still >= 0: contacting
more customers than that loses money in expectation, even counting the profitable ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "TargetingPlan",
    "save_rates_for",
    "save_rates_from_uplift",
    "expected_gain",
    "return_curve",
    "plan_contacts",
]

#: Columns of the contact list, in order.
LIST_COLUMNS = [
    "rank",
    "customer_id",
    "persona_id",
    "persona",
    "churn_probability",
    "predicted_clv",
    "value_at_risk",
    "save_rate",
    "expected_saved_value",
    "contact_cost",
    "expected_net_gain",
    "cumulative_cost",
    "cumulative_net_gain",
]


@dataclass(frozen=True)
class TargetingPlan:
    """The contact list under a budget, with the curves and per-persona figures behind it.

    Attributes
    ----------
    contacts : DataFrame
        The customers to contact, best first (:data:`LIST_COLUMNS`, plus ``as_of`` when known).
    curve : DataFrame
        ``persona`` ("all" for the whole base), ``contacts``, ``cost``, ``expected_saved_value``,
        ``expected_net_gain``: the cumulative return of contacting the top ``contacts`` customers.
    personas : DataFrame
        Per persona (and "all"): customers, save rate, best depth, break-even depth, and what the
        budgeted list contacts there (count, cost, expected saved value, net gain, return on cost).
    summary : dict
        Budget, contact cost, contacts, cost, expected saved value and net gain of the list, the
        base's best and break-even depths, and customers left out for lack of a score.
    """

    contacts: pd.DataFrame
    curve: pd.DataFrame
    personas: pd.DataFrame
    summary: dict = field(default_factory=dict)


def save_rates_for(predictions: pd.DataFrame, default: float, by_persona: dict[str, float]) -> pd.Series:
    """Each customer's save rate: its persona's (by name or id) or ``default``.

    Parameters
    ----------
    predictions : DataFrame
        Needs ``persona``; ``persona_id`` is used when present.
    default : float
        The save rate of personas ``by_persona`` does not name.
    by_persona : dict
        Persona name (or id, as text) -> save rate. Keys must name a persona of ``predictions``.

    Raises
    ------
    KeyError
        A key that names no persona, with the names present (the caller words the error).
    """
    names = predictions["persona"].astype(str)
    ids = (
        predictions["persona_id"].astype("Int64").astype(str)
        if "persona_id" in predictions
        else pd.Series("", index=predictions.index)
    )
    rates = pd.Series(float(default), index=predictions.index)
    for key, rate in by_persona.items():
        hit = (names == str(key)) | (ids == str(key))
        if not hit.any():
            raise KeyError(str(key))
        rates[hit] = float(rate)
    return rates


def save_rates_from_uplift(predictions: pd.DataFrame, uplift: pd.Series) -> pd.Series:
    """Save rates implied by a learned uplift: ``max(uplift, 0) / P(churn)``, capped at 1.

    A contact that raises the chance of buying in the churn window by ``uplift`` keeps that share
    of the base, so of its would-be churners it keeps ``uplift / P(churn)``; then
    ``P(churn) × CLV × save_rate = uplift × CLV``. A negative uplift (the contact puts the customer
    off) counts as 0: the list never pays to contact such a customer. The cap keeps the saved value
    within the value at risk where the two models disagree (uplift above P(churn)), and a customer
    with no churn risk has nothing to save.

    Parameters
    ----------
    predictions : DataFrame
        ``customer_id`` and ``churn_probability``.
    uplift : Series
        Uplift by customer id; every customer of ``predictions`` must have one.
    """
    tau = uplift.reindex(predictions["customer_id"].astype(str)).to_numpy(dtype=float)
    risk = predictions["churn_probability"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(risk > 0, np.clip(tau, 0.0, None) / risk, 0.0)
    return pd.Series(np.clip(rate, 0.0, 1.0), index=predictions.index)


def expected_gain(predictions: pd.DataFrame, save_rate: pd.Series, contact_cost: float) -> pd.DataFrame:
    """``predictions`` plus the save rate, the expected saved value and the net gain of a contact.

    ``value_at_risk`` is recomputed from the two scores it is made of, so an edited file cannot
    carry a stale one.
    """
    out = predictions.copy()
    value_at_risk = out["churn_probability"].astype(float) * out["predicted_clv"].astype(float)
    out["value_at_risk"] = value_at_risk
    out["save_rate"] = save_rate.astype(float).to_numpy()
    out["expected_saved_value"] = value_at_risk * out["save_rate"]
    out["contact_cost"] = float(contact_cost)
    out["expected_net_gain"] = out["expected_saved_value"] - float(contact_cost)
    return out


def _ranked(frame: pd.DataFrame) -> pd.DataFrame:
    """Highest gain first; ties by customer id, so the list is the same on every run."""
    return frame.sort_values(
        ["expected_net_gain", "customer_id"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


def return_curve(gains: np.ndarray, contact_cost: float) -> pd.DataFrame:
    """Cumulative cost, saved value and net gain of contacting the top 0..n of ``gains``.

    ``gains`` must be sorted from highest to lowest; row ``i`` is the top ``i`` customers (row 0
    is nobody, so the curve starts at the origin).
    """
    gains = np.asarray(gains, dtype=float)
    n = np.arange(len(gains) + 1)
    net = np.concatenate([[0.0], np.cumsum(gains)])
    return pd.DataFrame(
        {
            "contacts": n,
            "cost": n * float(contact_cost),
            "expected_saved_value": net + n * float(contact_cost),
            "expected_net_gain": net,
        }
    )


def _depths(curve: pd.DataFrame) -> tuple[int, int]:
    """(best depth, break-even depth) of a concave cumulative return curve."""
    net = curve["expected_net_gain"].to_numpy()
    best = int(curve["contacts"].iloc[int(np.argmax(net))])
    # The last point still >= 0 (tiny negative float noise on an exact zero counts as zero).
    ok = np.flatnonzero(net >= -1e-9 * max(1.0, float(np.abs(net).max())))
    return best, int(curve["contacts"].iloc[ok[-1]])


def _persona_row(name: str, group: pd.DataFrame, chosen: pd.DataFrame, cost: float) -> dict:
    curve = return_curve(group["expected_net_gain"].to_numpy(), cost)
    best, even = _depths(curve)
    spent = float(chosen["contact_cost"].sum())
    net = float(chosen["expected_net_gain"].sum())
    rates = group["save_rate"].unique()
    at_risk = float(group["value_at_risk"].sum())
    # Rates learned per customer (uplift) differ within a persona: its rate is then the share of
    # its value at risk that contacting everyone in it would save.
    mixed = float(group["expected_saved_value"].sum()) / at_risk if at_risk > 0 else float("nan")
    return {
        "persona": name,
        "customers": int(len(group)),
        "save_rate": float(rates[0]) if len(rates) == 1 else mixed,
        "value_at_risk": float(group["value_at_risk"].sum()),
        "best_depth": best,
        "break_even_depth": even,
        "contacted": int(len(chosen)),
        "cost": spent,
        "expected_saved_value": float(chosen["expected_saved_value"].sum()),
        "expected_net_gain": net,
        "return_on_cost": net / spent if spent > 0 else float("nan"),
    }


def plan_contacts(
    predictions: pd.DataFrame,
    budget: float,
    contact_cost: float,
    save_rate: pd.Series,
) -> TargetingPlan:
    """The contact list under ``budget``, its return curve and the figures per persona.

    Parameters
    ----------
    predictions : DataFrame
        ``customer_id``, ``persona`` (and ``persona_id``), ``churn_probability``,
        ``predicted_clv``; ``as_of`` is carried into the list when present. Customers without a
        churn probability or a CLV are left out (counted in the summary).
    budget : float
        The most the contacts may cost in total (> 0).
    contact_cost : float
        The cost of one contact (> 0).
    save_rate : Series
        Each customer's save rate, aligned with ``predictions`` (:func:`save_rates_for`).
    """
    if not (math.isfinite(budget) and budget > 0 and math.isfinite(contact_cost) and contact_cost > 0):
        raise ValueError("budget and contact_cost must be finite and > 0")
    scored = predictions[["churn_probability", "predicted_clv"]].notna().all(axis=1)
    gains = _ranked(expected_gain(predictions[scored], save_rate[scored], contact_cost))
    curve = return_curve(gains["expected_net_gain"].to_numpy(), contact_cost)
    best, even = _depths(curve)
    affordable = int(math.floor(budget / contact_cost + 1e-9))
    chosen = gains.head(min(affordable, best)).copy()
    chosen.insert(0, "rank", np.arange(1, len(chosen) + 1))
    chosen["cumulative_cost"] = chosen["contact_cost"].cumsum()
    chosen["cumulative_net_gain"] = chosen["expected_net_gain"].cumsum()
    if "persona_id" not in chosen:
        chosen["persona_id"] = pd.array([pd.NA] * len(chosen), dtype="Int64")
    columns = LIST_COLUMNS + (["as_of"] if "as_of" in chosen else [])
    contacts = chosen[columns].reset_index(drop=True)

    curves = [curve.assign(persona="all")]
    rows = [_persona_row("all", gains, chosen, contact_cost)]
    for name, group in gains.groupby("persona", sort=True):
        curves.append(
            return_curve(group["expected_net_gain"].to_numpy(), contact_cost).assign(persona=name)
        )
        rows.append(_persona_row(str(name), group, chosen[chosen["persona"] == name], contact_cost))
    summary = {
        "budget": float(budget),
        "contact_cost": float(contact_cost),
        "affordable_contacts": affordable,
        "contacts": int(len(contacts)),
        "cost": float(contacts["contact_cost"].sum()),
        "expected_saved_value": float(contacts["expected_saved_value"].sum()),
        "expected_net_gain": float(contacts["expected_net_gain"].sum()),
        "best_depth": best,
        "break_even_depth": even,
        "customers": int(len(predictions)),
        "unscored": int((~scored).sum()),
        "limited_by": "budget" if affordable < best else "gain",
    }
    curve_frame = pd.concat(curves, ignore_index=True)[
        ["persona", "contacts", "cost", "expected_saved_value", "expected_net_gain"]
    ]
    return TargetingPlan(contacts, curve_frame, pd.DataFrame(rows), summary)
