"""BG/NBD and Gamma-Gamma outputs as features, fitted on the RFM summary at ``as_of``."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from customer_value.modeling.btyd import BetaGeoModel, GammaGammaModel

__all__ = ["BTYDModels", "fit_btyd", "btyd_features"]


@dataclass
class BTYDModels:
    """The fitted BG/NBD and Gamma-Gamma models (None when the data cannot support a fit)."""

    bgnbd: BetaGeoModel | None
    gamma_gamma: GammaGammaModel | None


def _rfm_x(rfm: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "frequency": rfm["frequency"],
            "recency": rfm["recency_days"],
            "T": rfm["tenure_days"],
        },
        index=rfm.index,
    )


def fit_btyd(rfm: pd.DataFrame, penalizer: float) -> BTYDModels:
    """Fit BG/NBD on customers with a purchase day, Gamma-Gamma on those with a repeat purchase."""
    # Row selections on plain arrays: the fits read values only, and boolean indexing of a frame
    # indexed by customer id would hash that index (and copy every column) along the way.
    frequency = rfm["frequency"].to_numpy()
    monetary = rfm["monetary_repeat_mean"].to_numpy()
    buyers = rfm["purchase_days"].to_numpy() > 0
    bg = gg = None
    if buyers.sum() >= 10 and (frequency[buyers] > 0).any():
        bg = BetaGeoModel(penalizer=penalizer).fit(
            pd.DataFrame(
                {
                    "frequency": frequency[buyers],
                    "recency": rfm["recency_days"].to_numpy()[buyers],
                    "T": rfm["tenure_days"].to_numpy()[buyers],
                }
            )
        )
    repeat = buyers & (frequency > 0) & (monetary > 0)
    if repeat.sum() >= 10:
        gg = GammaGammaModel(penalizer=penalizer).fit(
            pd.DataFrame({"frequency": frequency[repeat], "monetary_value": monetary[repeat]})
        )
    if bg is None or gg is None:
        warnings.warn(
            "too few customers with repeat purchases to fit "
            + " and ".join(n for n, m in (("BG/NBD", bg), ("Gamma-Gamma", gg)) if m is None)
            + "; their features are missing. Use more history or more customers.",
            UserWarning,
            stacklevel=2,
        )
    return BTYDModels(bg, gg)


def btyd_features(
    rfm: pd.DataFrame, models: BTYDModels, horizon_days: int, churn_window_days: int
) -> pd.DataFrame:
    """p_alive, P(no purchase in the churn window), expected transactions and spend."""
    X = _rfm_x(rfm)
    n = len(rfm)
    nan = np.full(n, np.nan)
    out = pd.DataFrame(index=rfm.index)
    if models.bgnbd is not None:
        out["p_alive"] = models.bgnbd.p_alive(X).to_numpy()
        out["bgnbd_p_no_purchase"] = models.bgnbd.p_no_purchase(X, churn_window_days).to_numpy()
        out["bgnbd_expected_transactions"] = models.bgnbd.expected_transactions(
            X, horizon_days
        ).to_numpy()
    else:
        out["p_alive"] = out["bgnbd_p_no_purchase"] = out["bgnbd_expected_transactions"] = nan
    if models.gamma_gamma is not None:
        out["gg_expected_order_value"] = models.gamma_gamma.conditional_expected_value(
            pd.DataFrame({"frequency": rfm["frequency"], "monetary_value": rfm["monetary_repeat_mean"]})
        ).to_numpy()
    else:
        out["gg_expected_order_value"] = nan
    out["btyd_expected_spend"] = out["bgnbd_expected_transactions"] * out["gg_expected_order_value"]
    return out
