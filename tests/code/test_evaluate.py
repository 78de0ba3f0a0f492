"""Metrics of METRICS.md on tiny hand-made data."""

import numpy as np
import pytest

from customer_value.modeling import evaluate


def test_gain_curve_spreads_ties():
    # Two tied at the top: each gets the mean of 0 and 10.
    assert evaluate.gain_curve([0, 10, 0, 10], [1, 1, 0, 0]).tolist() == [0.25, 0.5, 0.75, 1.0]
    # A constant prediction has the diagonal gain whatever the order of rows: G(k) = k/n, so
    # Gini = 2 mean(G) - 1 = 1/n (the discrete curve's offset; 0 as n grows).
    y = [5, 0, 0, 3, 2]
    assert evaluate.gain_curve(y, [1] * 5) == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert evaluate.gini(y, [1] * 5) == pytest.approx(1 / 5)
    assert evaluate.gini(y[::-1], [1] * 5) == pytest.approx(1 / 5)


def test_gini_by_hand():
    y = np.array([0.0, 0.0, 10.0, 30.0])
    p = np.array([0.1, 0.4, 0.3, 0.9])  # order by p: 30, 0, 10, 0
    g = evaluate.gain_curve(y, p)
    assert g.tolist() == [0.75, 0.75, 1.0, 1.0]
    assert evaluate.gini(y, p) == pytest.approx(2 * np.mean([0.75, 0.75, 1.0, 1.0]) - 1)
    perfect = 2 * np.mean([0.75, 1.0, 1.0, 1.0]) - 1
    assert evaluate.normalized_gini(y, p) == pytest.approx((2 * 0.875 - 1) / perfect)
    assert evaluate.normalized_gini(y, y) == pytest.approx(1.0)


def test_clv_metrics_by_hand():
    y = np.array([0.0] * 8 + [10.0, 30.0])
    p = np.array([1.0] * 8 + [20.0, 10.0])
    m = evaluate.clv_metrics(y, p)
    assert m["mae"] == pytest.approx((8 * 1 + 10 + 20) / 10)
    assert m["rmse"] == pytest.approx(np.sqrt((8 + 100 + 400) / 10))
    assert m["aggregate_error"] == pytest.approx((38 - 40) / 40)
    # Top decile = 1 customer: the one predicted 20 holds 10 of 40.
    assert m["top_decile_capture"] == pytest.approx(0.25)
    assert m["top_decile_capture_perfect"] == pytest.approx(0.75)


def test_decile_calibration():
    y = np.arange(20, dtype=float)
    cal = evaluate.decile_calibration(y, y)
    assert cal["customers"].tolist() == [2] * 10
    assert cal["mean_pred"].tolist() == cal["mean_actual"].tolist() == [0.5 + 2 * i for i in range(10)]
    assert evaluate.clv_metrics(y + 1, y + 1)["decile_mape"] == pytest.approx(0.0)


def test_churn_metrics_by_hand():
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0], dtype=float)
    q = np.array([0.9, 0.8, 0.7, 0.1, 0.6, 0.2, 0.3, 0.1, 0.1, 0.1])
    m = evaluate.churn_metrics(y, q)
    # Positives 0.9, 0.8, 0.6 vs negatives: 0.6 loses only to 0.7 -> 20/21 pairs.
    assert m["roc_auc"] == pytest.approx(20 / 21)
    assert m["brier"] == pytest.approx(np.mean((q - y) ** 2))
    assert m["lift_top_decile"] == pytest.approx(1 / 0.3)  # the top 1 of 10 churned
    assert m["churn_rate"] == pytest.approx(0.3)
    assert np.isfinite(evaluate.churn_metrics([0, 1], [0.0, 1.0])["log_loss"])


def test_reliability_curve():
    curve = evaluate.reliability_curve([0, 1, 1, 0], [0.05, 0.95, 0.91, 0.5])
    assert curve["bin"].tolist() == [0, 5, 9]
    assert curve["observed"].tolist() == [0.0, 0.0, 1.0]
