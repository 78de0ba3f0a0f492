"""SHAP explanations as tidy frames keyed by ``customer_id``: global, per persona, per customer.

Contributions are exact TreeSHAP values from xgboost (``pred_contribs``, the same values as
``shap.TreeExplainer``) in the model's margin space: log-odds of churn, log of expected value.
The tables and reason codes work on the contributions frame; :func:`explanation` hands the same
numbers to the ``shap`` package as a ``shap.Explanation`` for its plots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # shap is imported where an Explanation is made (it imports slowly)
    import shap

__all__ = ["explanation", "global_importance", "persona_drivers", "top_drivers", "reason"]


def explanation(contributions: pd.DataFrame, features: pd.DataFrame) -> shap.Explanation:
    """The contributions as a ``shap.Explanation``, so that ``shap.plots.*`` draw them.

    Parameters
    ----------
    contributions : DataFrame
        One column per model feature plus ``bias``, indexed by customer_id (a model's
        ``contributions``); a row sums to the model's raw margin.
    features : DataFrame
        The feature rows of (at least) the same customers, indexed by customer_id.

    Returns
    -------
    shap.Explanation
        ``values`` (customers × features, float64), ``base_values`` (the ``bias`` column),
        ``data`` (the feature values, same rows and column order) and ``feature_names``. Rows
        follow ``contributions.index``: ``explanation[i]`` is customer ``contributions.index[i]``.

    Raises
    ------
    KeyError
        When ``features`` lacks a customer or a feature column of ``contributions``.

    Notes
    -----
    Customer ids are not stored as ``instance_names``: shap 0.51 relabels rows wrongly when an
    Explanation is sliced with a boolean mask (the values are right, the names are not).

    Examples
    --------
    >>> c = pd.DataFrame({"tenure_days": [0.5, -0.2], "bias": [-1.0, -1.0]}, index=["a", "b"])
    >>> f = pd.DataFrame({"tenure_days": [30, 400]}, index=["a", "b"])
    >>> e = explanation(c, f)
    >>> e.values[:, 0].tolist(), e.base_values.tolist(), e.data[:, 0].tolist(), e.feature_names
    ([0.5, -0.2], [-1.0, -1.0], [30.0, 400.0], ['tenure_days'])
    """
    import shap  # slow to import (numba, plotting): only where an Explanation is asked for

    if "bias" not in contributions.columns:
        raise KeyError("contributions need a 'bias' column (a model's `contributions` output)")
    names = [c for c in contributions.columns if c != "bias"]
    missing = contributions.index.difference(features.index)
    if len(missing):
        raise KeyError(
            f"features lack {len(missing)} customer(s) of the contributions, e.g. {missing[0]!r}"
        )
    rows = features.loc[contributions.index, names]
    return shap.Explanation(
        values=contributions[names].to_numpy(dtype=np.float64),
        base_values=contributions["bias"].to_numpy(dtype=np.float64),
        data=rows.to_numpy(dtype=np.float64, na_value=np.nan),
        feature_names=names,
    )


def global_importance(contributions: pd.DataFrame) -> pd.DataFrame:
    """Mean |SHAP| and mean SHAP per feature, largest first."""
    c = contributions.drop(columns=["bias"], errors="ignore")
    out = pd.DataFrame(
        {
            "feature": c.columns,
            "mean_abs_shap": c.abs().mean().to_numpy(),
            "mean_shap": c.mean().to_numpy(),
        }
    )
    return out.sort_values("mean_abs_shap", ascending=False, kind="stable").reset_index(drop=True)


def persona_drivers(contributions: pd.DataFrame, personas: pd.Series, top: int = 3) -> pd.DataFrame:
    """Per persona: the ``top`` features by mean |SHAP|, with their mean (signed) SHAP."""
    c = contributions.drop(columns=["bias"], errors="ignore")
    rows = []
    for name, idx in personas.reindex(c.index).groupby(personas.reindex(c.index)).groups.items():
        sub = c.loc[idx]
        imp = sub.abs().mean().sort_values(ascending=False, kind="stable").head(top)
        for rank, (feat, val) in enumerate(imp.items(), start=1):
            rows.append(
                {
                    "persona": name,
                    "rank": rank,
                    "feature": feat,
                    "mean_abs_shap": float(val),
                    "mean_shap": float(sub[feat].mean()),
                }
            )
    return pd.DataFrame(rows, columns=["persona", "rank", "feature", "mean_abs_shap", "mean_shap"])


def _fmt_all(values: np.ndarray) -> list[str]:
    """Numbers as short text: thousands separators from 100 up, else up to 2 decimals."""
    out = []
    for v in values.tolist():
        if v != v:
            out.append("missing")
        elif abs(v) >= 100:
            out.append(f"{v:,.0f}")
        else:
            out.append(f"{v:.2f}".rstrip("0").rstrip("."))
    return out


def _pct(values: np.ndarray) -> list[str]:
    return ["missing" if v != v else f"{v:.0%}" for v in values.tolist()]


def _times(values: np.ndarray) -> list[str]:
    return [
        "" if not (g == g) or g <= 0 else f", {d / g:.1f}× the usual gap" for d, g in values.tolist()
    ]


def _templates() -> dict:
    """Feature -> function(values, shap, gap) -> reasons (vectorised over customers)."""

    def days_since(v, s, g):
        return [
            f"no purchase for {a} days{b}"
            for a, b in zip(_fmt_all(v), _times(np.column_stack([v, g])), strict=True)
        ]

    def fixed(fmt, conv=_fmt_all):
        return lambda v, s, g: [fmt.format(x) for x in conv(v)]

    def trend(what, window):
        return lambda v, s, g: [
            f"{what} {'up' if x > 0 else 'down'} {abs(x):.0%} over the last {window} days"
            if x == x
            else f"{what} trend missing"
            for x in v.tolist()
        ]

    out = {
        "days_since_last_purchase": days_since,
        "overdue_ratio": fixed("{}× the usual gap since the last purchase"),
        "frequency_per_year": fixed("{} repeat purchases a year"),
        "orders_per_year": fixed("{} orders a year"),
        "revenue_per_year": fixed("spends {} a year"),
        "monetary_mean": fixed("orders worth {} on average"),
        "gg_expected_order_value": fixed("orders worth {} on average (Gamma-Gamma)"),
        "p_alive": fixed("{} likely still active (BG/NBD)", _pct),
        "bgnbd_p_no_purchase": fixed("{} BG/NBD chance of no purchase in the churn window", _pct),
        "bgnbd_expected_transactions": fixed("BG/NBD expects {} purchase days over the horizon"),
        "btyd_expected_spend": fixed("BG/NBD + Gamma-Gamma expect {} of spend over the horizon"),
        "return_rate": fixed("returns {} of what they buy", _pct),
        "discount_share": fixed("{} of spend discounted", _pct),
        "nps_last": fixed("last NPS {}"),
        "csat_mean": fixed("mean CSAT {}"),
        "tickets_90d": fixed("{} support tickets in 90 days"),
        "tenure_days": fixed("customer for {} days"),
        "days_since_last_survey": fixed("last survey answer {} days ago"),
    }
    for w in (7, 14, 30, 60, 90, 180, 365):
        out[f"spend_trend_{w}d"] = trend("spend", w)
        out[f"purchase_days_trend_{w}d"] = trend("purchase days", w)
    return out


_TEMPLATES = _templates()


def reasons_for(feature: str, values, shap, gap_mean_days) -> list[str]:
    """Short human-readable reasons for one driver feature, for many customers at once."""
    v = np.asarray(values, dtype=float)
    s = np.asarray(shap, dtype=float)
    g = np.asarray(gap_mean_days, dtype=float)
    template = _TEMPLATES.get(feature)
    if template is not None:
        return template(v, s, g)
    label = feature.replace("_", " ")
    return [
        f"{label} = {x} ({'raises' if y > 0 else 'lowers'} the prediction)"
        for x, y in zip(_fmt_all(v), s.tolist(), strict=True)
    ]


def reason(feature: str, value: float, contribution: float, gap_mean_days: float = np.nan) -> str:
    """A short human-readable reason for one driver of one customer's prediction.

    Examples
    --------
    >>> reason("days_since_last_purchase", 142, 0.8, gap_mean_days=47.3)
    'no purchase for 142 days, 3.0× the usual gap'
    >>> reason("tickets_total", 3, 0.2)
    'tickets total = 3 (raises the prediction)'
    """
    return reasons_for(feature, [value], [contribution], [gap_mean_days])[0]


def top_drivers(contributions: pd.DataFrame, features: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """Per customer, the ``k`` features with the largest |SHAP|: feature, value, SHAP, reason.

    Returns a wide frame indexed like ``contributions`` with columns ``driver_{i}_feature``,
    ``driver_{i}_value``, ``driver_{i}_shap``, ``driver_{i}_reason`` for i = 1..k.
    """
    c = contributions.drop(columns=["bias"], errors="ignore")
    values = c.to_numpy()
    # argpartition then a sort of k columns: O(n · features), no per-row Python sort.
    kk = min(k, values.shape[1])
    part = np.argpartition(-np.abs(values), kk - 1, axis=1)[:, :kk]
    order = np.take_along_axis(
        part, np.argsort(-np.abs(np.take_along_axis(values, part, 1)), axis=1, kind="stable"), 1
    )
    names = np.asarray(c.columns)
    out = {}
    feats = features.reindex(c.index)
    gaps = (
        feats["gap_mean_days"].to_numpy(dtype=float)
        if "gap_mean_days" in feats.columns
        else np.full(len(feats), np.nan)
    )
    # The driver's own value, read from the same columns the contributions are over (one copy).
    fmat = feats[list(c.columns)].to_numpy(dtype=float)
    for i in range(kk):
        col = order[:, i]
        fname = names[col]
        shap_v = values[np.arange(len(values)), col]
        fvals = fmat[np.arange(len(values)), col]
        text = np.empty(len(values), dtype=object)
        for feat in np.unique(fname):
            sel = fname == feat
            text[sel] = reasons_for(feat, fvals[sel], shap_v[sel], gaps[sel])
        out[f"driver_{i + 1}_feature"] = fname
        out[f"driver_{i + 1}_value"] = fvals
        out[f"driver_{i + 1}_shap"] = shap_v
        out[f"driver_{i + 1}_reason"] = text
    return pd.DataFrame(out, index=c.index)
