"""Every feature family on a tiny hand-made log, against values computed by hand."""

import numpy as np
import pandas as pd
import pytest

from customer_value.config import FeatureConfig
from customer_value.features.build import build_features
from customer_value.features.labels import build_labels
from customer_value.validate import ValidatedData

AS_OF = "2024-02-01"


def tx_frame(rows):
    cols = [
        "customer_id",
        "timestamp",
        "order_id",
        "amount",
        "cost",
        "discount",
        "quantity",
        "category",
        "product_id",
        "channel",
    ]
    frame = pd.DataFrame(rows, columns=cols)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    frame["is_return"] = frame["amount"] < 0
    return frame


TX = tx_frame(
    [
        # A: two orders on 01-01 (same-day repeat counts once), 01-11, a return on 01-12, 01-31
        ("A", "2024-01-01 09:00", "o1", 10.0, 6.0, 0.0, 1, "x", "p1", "web"),
        ("A", "2024-01-01 09:00", "o1", 20.0, 10.0, 5.0, 2, "y", "p2", "web"),
        ("A", "2024-01-01 18:00", "o2", 5.0, 3.0, 0.0, 1, "x", "p1", "app"),
        ("A", "2024-01-11 10:00", "o3", 15.0, 9.0, 0.0, 1, "x", "p3", "web"),
        ("A", "2024-01-12 10:00", "R1", -10.0, -6.0, 0.0, -1, "x", "p1", "web"),
        ("A", "2024-01-31 23:59", "o4", 30.0, 15.0, 0.0, 3, "y", "p2", "app"),
        ("A", "2024-02-10 10:00", "o5", 100.0, 60.0, 0.0, 1, "x", "p1", "web"),  # after as_of
        # B: one purchase on a Saturday
        ("B", "2024-01-20 12:00", "o6", 50.0, 40.0, 10.0, 1, "y", "p4", "web"),
        ("B", "2024-02-20 12:00", "o8", 40.0, 20.0, 0.0, 1, "y", "p4", "web"),  # after as_of
        ("B", "2024-02-21 12:00", "R8", -50.0, -40.0, 0.0, -1, "y", "p4", "web"),  # after as_of
        # C: a purchase returned the same day: no purchase day at all
        ("C", "2024-01-05 10:00", "o7", 8.0, 4.0, 0.0, 1, "x", "p1", "store"),
        ("C", "2024-01-05 15:00", "R7", -8.0, -4.0, 0.0, -1, "x", "p1", "store"),
        # D: first seen after as_of
        ("D", "2024-02-05 10:00", "o9", 9.0, 5.0, 0.0, 1, "x", "p1", "web"),
    ]
)
CUSTOMERS = pd.DataFrame(
    {
        "customer_id": ["A", "B", "C", "D"],
        "signup_date": pd.to_datetime(["2023-12-31", "2024-01-19", "2024-01-04", "2024-02-04"]),
        "acquisition_cost": [20.0, 5.0, 7.5, 3.0],
        "referred_by": [None, "A", "A", "A"],
    }
)
INTERACTIONS = pd.DataFrame(
    {
        "customer_id": ["A", "A", "A", "A", "A", "B", "B", "D"],
        "timestamp": pd.to_datetime(
            [
                "2024-01-02",
                "2024-01-20",
                "2024-01-15",
                "2024-01-14",
                "2024-02-15",
                "2024-01-21",
                "2024-01-21",
                "2024-02-06",
            ]
        ),
        "kind": [
            "nps",
            "nps",
            "csat",
            "support_ticket",
            "support_ticket",
            "csat",
            "support_ticket",
            "nps",
        ],
        "score": [6.0, 9.0, 4.0, np.nan, np.nan, 2.0, np.nan, 10.0],
    }
)
CONFIG = FeatureConfig(
    trend_windows_days=[7, 30], top_categories=5, top_channels=5, cost_per_ticket=8.0, rate_floor_days=30
)
NAN = np.nan


@pytest.fixture(scope="module")
def feats():
    tables = ValidatedData(TX, CUSTOMERS, INTERACTIONS)
    return build_features(tables, AS_OF, CONFIG, btyd=False)


def check(feats, expected: dict):
    frame = pd.DataFrame(expected, index=pd.Index(["A", "B", "C"], name="customer_id"))
    pd.testing.assert_frame_equal(feats[frame.columns], frame, check_dtype=False, rtol=1e-9)


def test_one_row_per_customer_first_seen_by_as_of(feats):
    assert feats.index.tolist() == ["A", "B", "C"]


def test_rfm(feats):
    check(
        feats,
        {
            "recency_days": [30.0, 0.0, 0.0],
            "frequency": [2.0, 0.0, 0.0],
            "tenure_days": [31.0, 12.0, 27.0],
            "days_since_last_purchase": [1.0, 12.0, 27.0],
            "purchase_days": [3.0, 1.0, 0.0],
            "monetary_mean": [80 / 3, 50.0, NAN],
            "monetary_repeat_mean": [22.5, NAN, NAN],
            "monetary_total": [70.0, 50.0, 0.0],
            "order_count": [4.0, 1.0, 1.0],
            "items_per_order": [2.0, 1.0, 1.0],
            "frequency_per_year": [2 / 31 * 365, 0.0, 0.0],
            "orders_per_year": [4 / 31 * 365, 1 / 30 * 365, 1 / 30 * 365],
            "revenue_per_year": [70 / 31 * 365, 50 / 30 * 365, 0.0],
            "recency_share": [30 / 31, 0.0, 0.0],
        },
    )


def test_behaviour(feats):
    check(
        feats,
        {
            "gap_mean_days": [15.0, NAN, NAN],
            "gap_std_days": [np.sqrt(50.0), NAN, NAN],
            "gap_cv": [np.sqrt(50.0) / 15, NAN, NAN],
            "overdue_ratio": [1 / 15, NAN, NAN],
            "spend_7d": [30.0, 0.0, 0.0],
            "spend_trend_7d": [1.0, -1.0, NAN],
            "purchase_days_7d": [1.0, 0.0, 0.0],
            "purchase_days_trend_7d": [1.0, -1.0, NAN],
            "spend_30d": [35.0, 50.0, 0.0],
            "spend_trend_30d": [0.0, 1.0, NAN],
            "purchase_days_30d": [2.0, 1.0, 0.0],
            "purchase_days_trend_30d": [1 / 3, 1.0, NAN],
            "active_months": [1.0, 1.0, 0.0],
            "active_month_share": [0.5, 0.5, NAN],
            "distinct_categories": [2.0, 1.0, 1.0],
            "distinct_products": [3.0, 1.0, 1.0],
            "cat_share_y": [0.625, 1.0, 0.0],
            "cat_share_x": [0.375, 0.0, 1.0],
            "channel_share_web": [0.5625, 1.0, 0.0],
            "channel_share_app": [0.4375, 0.0, 0.0],
            "channel_share_store": [0.0, 0.0, 1.0],
            "discount_share": [5 / 85, 10 / 60, 0.0],
            "return_rate": [0.125, 0.0, 1.0],
            "weekend_share": [0.0, 1.0, NAN],
        },
    )


def test_value(feats):
    check(
        feats,
        {
            "gross_margin_total": [33.0, 10.0, 0.0],
            "margin_rate": [33 / 80, 0.2, 0.0],
            "acquisition_cost": [20.0, 5.0, 7.5],
            "cost_to_serve": [8.0, 8.0, 0.0],
            "referrals_made": [2.0, 0.0, 0.0],  # D joined after as_of: not counted
            "referred_revenue": [50.0, 0.0, 0.0],
            "customer_value_to_date": [33 - 20 - 8 + 10, 10 - 5 - 8, -7.5],
        },
    )


def test_feedback(feats):
    check(
        feats,
        {
            "nps_last": [9.0, NAN, NAN],
            "nps_mean": [7.5, NAN, NAN],
            "nps_promoter": [1.0, NAN, NAN],
            "nps_detractor": [0.0, NAN, NAN],
            "csat_mean": [4.0, 2.0, NAN],
            "surveys": [3.0, 1.0, 0.0],
            "tickets_total": [1.0, 1.0, 0.0],
            "tickets_90d": [1.0, 1.0, 0.0],
            "days_since_last_survey": [12.0, 11.0, NAN],
            "days_since_last_ticket": [18.0, 11.0, NAN],
        },
    )
    assert feats["nps_class"].tolist() == ["promoter", None, None]


def test_missing_tables_stay_missing():
    feats = build_features(ValidatedData(TX), AS_OF, CONFIG, btyd=False)
    assert (
        feats[["nps_last", "csat_mean", "surveys", "tickets_total", "cost_to_serve", "acquisition_cost"]]
        .isna()
        .all()
        .all()
    )
    assert feats["referrals_made"].eq(0).all()
    assert feats.loc["A", "customer_value_to_date"] == 33.0  # margin only


def test_no_cost_column_uses_revenue():
    feats = build_features(ValidatedData(TX.drop(columns=["cost"])), AS_OF, CONFIG, btyd=False)
    assert "gross_margin_total" not in feats.columns
    assert feats.loc["A", "customer_value_to_date"] == 70.0


def test_labels_exact():
    ids = pd.Index(["A", "B", "C"], name="customer_id")
    labels = build_labels(TX, ids, AS_OF, horizon_days=30, churn_window_days=10)
    expected = pd.DataFrame(
        {
            "churned": [False, True, True],
            "future_revenue": [100.0, 40.0, 0.0],  # B's return day nets -50: clipped at 0
            "future_transactions": [1.0, 1.0, 0.0],
            "future_margin": [40.0, 20.0, 0.0],
        },
        index=ids,
    )
    pd.testing.assert_frame_equal(labels, expected, check_dtype=False)


def test_label_window_excludes_cutoff_day_includes_last_day():
    frame = tx_frame(
        [
            ("A", "2024-01-01 10:00", "o1", 5.0, 1.0, 0.0, 1, "x", "p", "web"),
            ("A", "2024-02-01 23:00", "o2", 7.0, 1.0, 0.0, 1, "x", "p", "web"),  # cutoff day: out
            ("A", "2024-03-02 10:00", "o3", 11.0, 1.0, 0.0, 1, "x", "p", "web"),  # day 30: in
            ("A", "2024-03-03 00:00", "o4", 13.0, 1.0, 0.0, 1, "x", "p", "web"),  # day 31: out
        ]
    )
    labels = build_labels(frame, pd.Index(["A"]), AS_OF, horizon_days=30, churn_window_days=29)
    assert labels.loc["A", "future_revenue"] == 11.0
    assert bool(labels.loc["A", "churned"]) is True  # day 30 is outside the 29-day churn window
    feats = build_features(ValidatedData(frame), AS_OF, CONFIG, btyd=False)
    assert feats.loc["A", "monetary_total"] == 12.0  # the cutoff day's purchase is a feature
