"""Net customer value arithmetic, persona naming rules, and the estimators' behaviour."""

import numpy as np
import pandas as pd
import pytest

from customer_value.modeling.personas import name_personas
from customer_value.modeling.value import customer_value, discount_factor, persona_value


def test_discount_factor():
    assert discount_factor(365, 0.0) == 1.0
    # Value arriving evenly over a year at 10 %: (1 - 1/1.1) / ln(1.1).
    assert discount_factor(365, 0.10) == pytest.approx((1 - 1 / 1.1) / np.log(1.1))
    assert discount_factor(730, 0.10) < discount_factor(365, 0.10) < 1


def test_customer_value_by_hand():
    f = pd.DataFrame(
        {
            "tickets_total": [2.0, 0.0],
            "purchase_days": [4.0, 1.0],
            "tenure_days": [730.0, 10.0],
            "referred_revenue": [100.0, 0.0],
            "margin_rate": [0.5, np.nan],
            "acquisition_cost": [20.0, np.nan],
        },
        index=["a", "b"],
    )
    v = customer_value(
        f,
        pd.Series({"a": 300.0, "b": 50.0}),
        pd.Series({"a": 6.0, "b": 1.0}),
        horizon_days=365,
        cost_per_ticket=8.0,
    )
    # a: 2 tickets / 4 purchase days x 6 expected days x 8 = 24; referrals 100 x 0.5 / 2 years = 25.
    assert v.loc["a", "expected_cost_to_serve"] == pytest.approx(24.0)
    assert v.loc["a", "expected_referral_value"] == pytest.approx(25.0)
    assert v.loc["a", "net_value"] == pytest.approx(300 - 24 + 25 - 20)
    assert v.loc["a", "clv_to_cac"] == pytest.approx(15.0)
    # b: no acquisition cost known: counts 0 in net value, ratio missing.
    assert v.loc["b", "net_value"] == pytest.approx(50.0)
    assert np.isnan(v.loc["b", "clv_to_cac"])
    per = persona_value(v, pd.Series({"a": "X", "b": "X"}))
    assert per.loc["X", "net_value_total"] == pytest.approx(281.0 + 50.0)


def test_persona_names_follow_the_rules_and_are_unique():
    cols = [
        "revenue_per_year",
        "frequency_per_year",
        "days_since_last_purchase",
        "tenure_days",
        "monetary_mean",
        "discount_share",
        "return_rate",
    ]
    overall = pd.Series([100, 4, 100, 400, 50, 0.1, 0.05], index=cols)
    profile = pd.DataFrame(
        [
            [400, 10, 20, 500, 60, 0.05, 0.02],  # champions
            [120, 5, 60, 450, 40, 0.10, 0.05],  # loyal regulars
            [150, 2, 120, 100, 50, 0.10, 0.05],  # new (tenure 0.25x)
            [130, 2, 90, 400, 200, 0.05, 0.05],  # big-ticket occasionals
            [60, 3, 110, 400, 25, 0.40, 0.05],  # bargain hunters
            [50, 3, 100, 400, 50, 0.10, 0.30],  # serial returners
            [20, 1, 400, 700, 40, 0.10, 0.05],  # hibernating
            [150, 3, 300, 600, 60, 0.10, 0.05],  # at risk
            [90, 3, 100, 400, 50, 0.10, 0.05],  # nothing special
            [80, 3, 100, 400, 50, 0.10, 0.05],  # nothing special either
        ],
        columns=cols,
    )
    names = name_personas(profile, overall)
    assert names[:9] == [
        "Champions",
        "Loyal regulars",
        "New customers",
        "Big-ticket occasionals",
        "Bargain hunters",
        "Serial returners",
        "Hibernating",
        "At risk",
        "Occasional buyers",
    ]
    assert names[9] == "Occasional buyers, low spend"  # 80 < 100: a true qualifier, no number
    assert len(set(names)) == len(names)
