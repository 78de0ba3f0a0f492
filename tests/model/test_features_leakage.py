"""No future leakage: events after as_of change nothing; labels read only their window."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customer_value.config import FeatureConfig
from customer_value.features.build import build_features
from customer_value.features.labels import build_labels
from customer_value.validate import ValidatedData

START = pd.Timestamp("2024-01-01")
AS_OF = pd.Timestamp("2024-03-01")
CONFIG = FeatureConfig(trend_windows_days=[7, 30], top_categories=3, top_channels=2)

event = st.tuples(
    st.sampled_from(["A", "B", "C", "D"]),
    st.integers(0, 120),  # day offset from START
    st.integers(0, 1439),  # minute of the day
    st.floats(-50, 200, allow_nan=False).map(lambda v: round(v, 2)).filter(lambda v: v != 0),
    st.sampled_from(["x", "y", "z", "w"]),
    st.sampled_from(["web", "app", "store"]),
)


def frame(events):
    rows = [
        {
            "customer_id": c,
            "timestamp": START + pd.Timedelta(days=d, minutes=m),
            "amount": a,
            "order_id": f"o{i}",
            "quantity": 1.0,
            "product_id": f"p{cat}",
            "category": cat,
            "channel": ch,
            "cost": abs(a) * 0.6 * np.sign(a),
            "discount": 0.0,
            "is_return": a < 0,
        }
        for i, (c, d, m, a, cat, ch) in enumerate(events)
    ]
    return (
        pd.DataFrame(rows)
        .sort_values(["customer_id", "timestamp"], kind="stable")
        .reset_index(drop=True)
    )


def interactions(events):
    kinds = ["nps", "csat", "support_ticket"]
    rows = [
        {
            "customer_id": c,
            "timestamp": START + pd.Timedelta(days=d, minutes=m),
            "kind": kinds[i % 3],
            "score": [7.0, 4.0, np.nan][i % 3],
        }
        for i, (c, d, m, *_rest) in enumerate(events)
    ]
    return pd.DataFrame(rows, columns=["customer_id", "timestamp", "kind", "score"])


def customers():
    return pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D"],
            "acquisition_cost": [1.0, 2.0, 3.0, 4.0],
            "referred_by": [None, "A", "A", "B"],
        }
    )


def is_past(e):
    return START + pd.Timedelta(days=e[1], minutes=e[2]) < AS_OF + pd.Timedelta(days=1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    past=st.lists(event, min_size=1, max_size=25),
    future=st.lists(event, max_size=25),
    other_future=st.lists(event, max_size=25),
)
def test_events_after_as_of_change_no_feature(past, future, other_future):
    past = [e for e in past if is_past(e)]
    if not any(e[3] > 0 for e in past):
        return
    future = [e for e in future if not is_past(e)]
    other_future = [e for e in other_future if not is_past(e)]  # added, removed and changed events

    def feats(extra):
        tables = ValidatedData(frame(past + extra), customers(), interactions(past + extra))
        return build_features(tables, AS_OF, CONFIG, btyd=False)

    base = feats(future)
    pd.testing.assert_frame_equal(base, feats(other_future))
    pd.testing.assert_frame_equal(base, feats([]))


@settings(max_examples=60, deadline=None)
@given(events=st.lists(event, min_size=1, max_size=30), noise=st.lists(event, max_size=20))
def test_labels_read_only_their_window(events, noise):
    horizon, churn = 20, 10
    window_end = AS_OF + pd.Timedelta(days=horizon + 1)

    def outside(e):
        ts = START + pd.Timedelta(days=e[1], minutes=e[2])
        return ts < AS_OF + pd.Timedelta(days=1) or ts >= window_end

    ids = pd.Index(["A", "B", "C", "D"])
    labels = build_labels(frame(events), ids, AS_OF, horizon, churn)
    more = build_labels(frame(events + [e for e in noise if outside(e)]), ids, AS_OF, horizon, churn)
    pd.testing.assert_frame_equal(labels, more)


def test_btyd_features_ignore_the_future_on_simulated_data():
    from customer_value.synthetic import simulate_base

    base = simulate_base(3000, seed=3)
    as_of = pd.Timestamp("2023-06-30")
    tx = base.transactions.sort_values(["customer_id", "timestamp"]).reset_index(drop=True)
    cut = tx[tx["timestamp"] < as_of + pd.Timedelta(days=1)].reset_index(drop=True)
    cut["is_return"] = cut["amount"] < 0
    tx["is_return"] = tx["amount"] < 0
    full = build_features(ValidatedData(tx, base.customers, base.interactions), as_of, FeatureConfig())
    past = build_features(
        ValidatedData(
            cut,
            base.customers,
            base.interactions[base.interactions["timestamp"] < as_of + pd.Timedelta(days=1)],
        ),
        as_of,
        FeatureConfig(),
    )
    pd.testing.assert_frame_equal(full, past)
    assert full["p_alive"].notna().all()


def test_no_transactions_before_as_of_is_a_clear_error():
    from customer_value.errors import UserError

    tx = frame([("A", 100, 0, 5.0, "x", "web")])
    with pytest.raises(UserError, match="no customer has a transaction on or before 2024-03-01"):
        build_features(ValidatedData(tx), AS_OF, CONFIG, btyd=False)
